"""The `sweep` component's jobs without a pipeline: a cell's params from its matrix variables
(comments of params.yaml kept), the leaderboard's ranking in both directions, and bad input
(empty sweep, too many cells, unknown param, a value that is not a plain word, a bad
direction, an incomplete sweep): one line on stderr, a non-zero exit, nothing written.
The sweep in gitlab-ci-local is tests/test_sweep_pipeline.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci_gen.cli import main
from ci_gen.sweep import grid
from ci_gen.sweep.leaderboard import collect

PARAMS = """\
# Hyperparameters (a comment that must survive)
train:
  epochs: 2
  learning_rate: 0.001   # Adam's
  dropout: 0.3
  activation: relu
evaluate:
  batch_size: 512
"""
CELL = ["job", "sweep-cell", "--metric", "accuracy", "--max-cells", "8", "--data", "none"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(PARAMS)
    for name in ("CI_NODE_INDEX", "CI_NODE_TOTAL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_a_cells_params_come_from_its_matrix_variables_and_keep_the_comments():
    params = grid.load(PARAMS, "params.yaml")
    env = {"train__learning_rate": "0.003", "train__activation": "tanh", "HOME": "/root",
           "other__thing": "x"}  # not a section of params.yaml: not the sweep's
    cell = grid.cell_params(env, params, "params.yaml")
    assert cell == {"train.activation": "tanh", "train.learning_rate": 0.003}
    text = grid.apply(PARAMS, cell, "params.yaml")
    assert text.startswith("# Hyperparameters (a comment that must survive)\n")
    assert "  learning_rate: 0.003   # Adam's\n" in text and "  activation: tanh\n" in text
    assert grid.leaves(grid.load(text, "p"))["train.epochs"] == 2
    assert grid.label(cell) == "activation=tanh, learning_rate=0.003"
    assert [grid.scalar(v) for v in ("64", "1.0e-05", "true", "relu")] == [64, 1e-05, True, "relu"]


def _cells(root: Path, *accuracies: float) -> Path:
    cells = root / "sweep" / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    for i, acc in enumerate(accuracies, 1):
        (cells / f"cell-{i}.json").write_text(json.dumps({
            "index": i, "total": len(accuracies), "params": {"train.dropout": i / 10},
            "metrics": {"accuracy": acc, "loss": 1 - acc}, "seconds": 1.5 * i, "how": "trained"}))
    return cells


@pytest.mark.parametrize("metric, direction, best", [("accuracy", "higher", 3), ("loss", "lower", 3),
                                                      ("accuracy", "lower", 1)])
def test_the_leaderboard_ranks_by_the_metric_in_its_direction(project, metric, direction, best):
    cells = _cells(project, 0.81, 0.86, 0.9, 0.84)
    board = collect(cells, project / "sweep", project / "report.d/sweep.md", metric=metric,
                    direction=direction, max_cells=8)
    values = [c["metrics"][metric] for c in board["cells"]]
    assert values == sorted(values, reverse=direction == "higher")
    assert board["best"]["index"] == best and board["best"]["rank"] == 1
    section = (project / "report.d/sweep.md").read_text()
    assert section.startswith("## Hyperparameter sweep\n")
    assert f"| 1 🏆 | {best / 10:.4f} |" in section and section.count("🏆") == 1
    assert json.loads((project / "sweep/leaderboard.json").read_text())["best"]["index"] == best


@pytest.mark.parametrize("argv, env, message", [
    (CELL, {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4"},
     "sweep: empty sweep: no matrix variable names a key of params.yaml"),
    (CELL, {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "9", "train__dropout": "0.1"},
     "sweep: the sweep has 9 cells, more than max-cells (8)"),
    (CELL, {"CI_NODE_INDEX": "5", "CI_NODE_TOTAL": "4", "train__dropout": "0.1"},
     "sweep: cell 5 is outside the sweep's 4 cells"),
    (CELL, {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4", "train__dropout": "0.1", "train__learnin_rate": "1"},
     "sweep: unknown param train.learnin_rate (matrix variable train__learnin_rate): params.yaml has no such key"),
    (CELL, {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4", "train__dropout": "0.1;id"},
     "sweep: train__dropout='0.1;id' is not one plain word"),
    (CELL, {"train__dropout": "0.1"}, "CI_NODE_INDEX/CI_NODE_TOTAL are not set"),
    (CELL[:5] + ["0"] + CELL[6:], {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "1", "train__dropout": "0.1"},
     "sweep: --max-cells must be from 1 to 200, got 0"),
    (["job", "sweep-collect", "--metric", "accuracy", "--direction", "sideways", "--max-cells", "8"], {},
     "argument --direction: invalid choice: 'sideways'"),
    (["job", "sweep-collect", "--metric", "accuracy", "--direction", "higher", "--max-cells", "8"], {},
     "sweep-collect: no cell results in sweep/cells"),
    (["job", "sweep-cell", "--metric", "acc;id", "--max-cells", "8"], {}, "--metric 'acc;id' is not a metric name"),
], ids=["empty", "too-many-cells", "index-beyond", "unknown-param", "bad-value", "not-a-matrix-job",
        "max-cells-zero", "direction", "no-cells", "metric"])
def test_bad_input_is_one_line_and_writes_nothing(project, monkeypatch, capsys, argv, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    err = capsys.readouterr().err
    assert code != 0 and message in err, err
    assert err.count("\n") == 1 or "usage:" in err
    assert (project / "params.yaml").read_text() == PARAMS
    assert sorted(p.name for p in project.iterdir()) == ["params.yaml"]


def test_an_incomplete_sweep_is_refused(project, capsys):
    cells = _cells(project, 0.8, 0.9, 0.7)
    (cells / "cell-2.json").unlink()
    code = main(["job", "sweep-collect", "--metric", "accuracy", "--direction", "higher", "--max-cells", "8"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "the sweep has 3 cells but cell(s) 2 are missing from sweep/cells" in err
    assert not (project / "sweep/leaderboard.json").exists() and not (project / "report.d").exists()
    assert main(["job", "sweep-collect", "--metric", "f1", "--direction", "higher", "--max-cells", "8"]) == 1
    assert "sweep-collect: the sweep has 3 cells but" in capsys.readouterr().err
    _cells(project, 0.8, 0.9, 0.7)
    assert main(["job", "sweep-collect", "--metric", "accuracy", "--direction", "higher", "--max-cells", "2"]) == 1
    assert "the sweep has 3 cells, more than max-cells (2)" in capsys.readouterr().err
