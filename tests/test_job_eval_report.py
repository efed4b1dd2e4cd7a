"""`ci-gen job eval-report`: report.md + report.json, baseline read through DVC for real.

The module fixture builds what a merge request pipeline sees: an origin repo whose `main`
committed dvc.lock and pushed its outputs to a local directory remote, and a fresh clone
(empty DVC cache) on a branch that changed a param and re-ran the stage.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ci_gen import __version__, cli
from ci_gen.evaluation import baseline as ev_baseline
from ci_gen.evaluation import metrics as ev_metrics
from ci_gen.evaluation import report as ev_report

BIN = Path(sys.executable).parent
MAKE_METRICS = textwrap.dedent('''\
    import json, os, yaml
    p = yaml.safe_load(open("params.yaml"))["train"]
    os.makedirs("eval", exist_ok=True)
    acc = round(0.80 + 0.01 * p["epochs"], 4)
    json.dump({"accuracy": acc, "loss": round(1 - acc, 4), "epochs": p["epochs"],
               "per_class": {"T-shirt": {"precision": acc, "recall": 0.5},
                             "Trouser": {"precision": 0.7, "recall": acc}}},
              open("eval/metrics.json", "w"))
    open("eval/confusion_matrix.png", "wb").write(b"\\x89PNG\\r\\n\\x1a\\n" + bytes([p["epochs"]]))
''')


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_", "DVC_", "GIT_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", HOME=str(tmp / "home"),
               DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    env.update(extra)
    return env


def _sh(cwd: Path, env: dict[str, str], *argv: str) -> str:
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{argv}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def _md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval-report")
    env = _env(tmp)
    origin, remote = tmp / "origin", tmp / "remote"
    origin.mkdir()
    _sh(origin, env, "git", "init", "-q", "-b", "main")
    (origin / "README.md").write_text("demo\n")
    _sh(origin, env, "git", "add", "README.md")
    _sh(origin, env, "git", "commit", "-qm", "before the pipeline")
    _sh(origin, env, "git", "tag", "before-pipeline")
    _sh(origin, env, "dvc", "init", "-q")
    _sh(origin, env, "dvc", "remote", "add", "-q", "-d", "store", str(remote))
    (origin / "params.yaml").write_text("train:\n  epochs: 2\n  lr: 0.01\n  batch: 64\n")
    (origin / "make_metrics.py").write_text(MAKE_METRICS)
    _sh(origin, env, "dvc", "stage", "add", "-q", "-n", "evaluate", "-d", "make_metrics.py",
        "-p", "train", "-o", "eval", "python make_metrics.py")
    _sh(origin, env, "dvc", "repro", "-q")
    _sh(origin, env, "dvc", "push", "-q")
    _sh(origin, env, "git", "add", "-A")
    _sh(origin, env, "git", "commit", "-qm", "main: model")
    main_metrics_md5 = _md5(origin / "eval" / "metrics.json")

    clone = tmp / "clone"
    _sh(tmp, env, "git", "clone", "-q", str(origin), str(clone))
    _sh(clone, env, "git", "checkout", "-qb", "feature")
    (clone / "params.yaml").write_text("train:\n  epochs: 5\n  lr: 0.01\n  dropout: 0.2\n")
    _sh(clone, env, "dvc", "repro", "-q")
    return {"tmp": tmp, "clone": clone, "env": env, "main_md5": main_metrics_md5}


@pytest.fixture
def clone(world, tmp_path):
    """A private copy of the MR clone (a test's DVC fetches must not help the next one)."""
    dest = tmp_path / "clone"
    shutil.copytree(world["clone"], dest, symlinks=True)
    return dest


def _report(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ci_gen", "job", "eval-report",
                           "--metrics", "eval/metrics.json", "--image", "eval/confusion_matrix.png",
                           "--out", "report", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)


def _cache_has(repo: Path, md5: str) -> bool:
    return (repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).exists()


def test_baseline_comes_from_the_dvc_remote(world, clone):
    # The clone never had main's outputs: DVC has to fetch them from the remote.
    assert not _cache_has(clone, world["main_md5"])
    proc = _report(clone, world["env"], "--baseline", "origin/main")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "eval-report: compared with origin/main"
    data = json.loads((clone / "report" / "report.json").read_text())
    assert data["baseline_ref"] == "origin/main" and data["baseline_note"] is None
    assert data["metrics"]["accuracy"] == 0.85 and data["baseline"]["accuracy"] == 0.82
    assert data["deltas"]["accuracy"] == pytest.approx(0.03)
    assert data["deltas"]["loss"] == pytest.approx(-0.03)
    assert data["metrics"]["per_class.T-shirt.precision"] == 0.85
    assert data["params_diff"] == [
        {"param": "train.batch", "baseline": 64, "current": None},
        {"param": "train.dropout", "baseline": None, "current": 0.2},
        {"param": "train.epochs", "baseline": 2, "current": 5},
    ]
    assert data["image"] == "confusion_matrix.png"
    assert (clone / "report" / "confusion_matrix.png").read_bytes() == (
        clone / "eval" / "confusion_matrix.png").read_bytes()

    md = (clone / "report" / "report.md").read_text()
    assert md.startswith("# Model evaluation report\n")
    assert "| `accuracy` | 0.8500 |" in md
    assert "| per class | precision | recall |" in md and "| T-shirt | 0.8500 | 0.5000 |" in md
    assert "## Compared with `origin/main`" in md
    # Each change is judged by the metric's direction; `epochs` has none, so no verdict.
    assert "| metric | `origin/main` | current | change |" in md
    assert "| `accuracy` | 0.8200 | 0.8500 | ▲ +0.0300 better |" in md
    assert "| `loss` | 0.1800 | 0.1500 | ▼ -0.0300 better |" in md
    assert "| `epochs` | 2 | 5 | ▲ +3 |" in md
    assert data["verdicts"] == {"accuracy": "better", "loss": "better", "epochs": None,
                                "per_class.T-shirt.precision": "better",
                                "per_class.T-shirt.recall": None,
                                "per_class.Trouser.precision": None,
                                "per_class.Trouser.recall": "better"}
    assert "| `train.epochs` | 2 | 5 |" in md and "| `train.lr`" not in md
    assert "| `per_class.T-shirt.precision` | 0.8200 | 0.8500 | ▲ +0.0300 better |" in md
    assert "| `per_class.T-shirt.recall`" not in md  # unchanged per-class values stay out
    assert "![confusion matrix](confusion_matrix.png)" in md


def test_merge_request_target_branch_prefers_origin(world, clone):
    env = dict(world["env"], CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main",
               CI_COMMIT_SHORT_SHA="1a2b3c4d", CI_COMMIT_REF_NAME="feature",
               CI_PIPELINE_ID="42", CI_PIPELINE_URL="https://gitlab.example.com/g/p/-/pipelines/42")
    proc = _report(clone, env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((clone / "report" / "report.json").read_text())
    assert data["baseline_ref"] == "origin/main" and data["baseline"]["accuracy"] == 0.82
    md = (clone / "report" / "report.md").read_text()
    assert md.rstrip().splitlines()[-1] == (
        f"Generated by ci-gen {__version__} · commit `1a2b3c4d` on `feature` · "
        "[pipeline #42](https://gitlab.example.com/g/p/-/pipelines/42)")


def test_gate_direction_judges_the_gate_metric(world, clone):
    # The gate's direction wins over the name: a gate on loss that says "higher" calls its
    # drop worse; an unknown metric gets the verdict the gate gives it.
    proc = _report(clone, world["env"], "--baseline", "origin/main", "--gate-metric", "loss",
                   "--gate-direction", "higher")
    assert proc.returncode == 0, proc.stderr
    md = (clone / "report" / "report.md").read_text()
    assert "| `loss` | 0.1800 | 0.1500 | ▼ -0.0300 worse |" in md
    assert "| `accuracy` | 0.8200 | 0.8500 | ▲ +0.0300 better |" in md
    proc = _report(clone, world["env"], "--baseline", "origin/main", "--gate-metric", "epochs",
                   "--gate-direction", "lower")
    assert "| `epochs` | 2 | 5 | ▲ +3 worse |" in (clone / "report" / "report.md").read_text()


def test_pipeline_link_and_number_agree(world, clone):
    # gitlab-ci-local: CI_PIPELINE_ID is IID + 1000 and the URL ends in the IID.
    env = dict(world["env"], CI_PIPELINE_ID="1005", CI_PIPELINE_IID="5",
               CI_PIPELINE_URL="https://gitlab.example.com/g/p/pipelines/5")
    assert _report(clone, env).returncode == 0
    md = (clone / "report" / "report.md").read_text()
    assert md.rstrip().splitlines()[-1] == (
        f"Generated by ci-gen {__version__} · "
        "[pipeline #5](https://gitlab.example.com/g/p/pipelines/5)")


def test_no_merge_request_means_no_baseline(world, clone):
    proc = _report(clone, world["env"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "eval-report: no baseline: not a merge request pipeline"
    data = json.loads((clone / "report" / "report.json").read_text())
    assert data["baseline"] is None and data["baseline_ref"] is None and data["deltas"] == {}
    md = (clone / "report" / "report.md").read_text()
    assert "## Comparison\n\n_no baseline: not a merge request pipeline_" in md
    assert "Params changed" not in md


def test_baseline_without_the_metrics_is_a_note(world, clone):
    # The target branch has no metrics yet (the first model): a note, and the gate has
    # nothing to compare with.
    proc = _report(clone, world["env"], "--baseline", "before-pipeline")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((clone / "report" / "report.json").read_text())
    assert data["baseline"] is None and data["baseline_ref"] == "before-pipeline"
    assert data["baseline_note"] == (
        "no baseline: before-pipeline has no eval/metrics.json (no metrics on the target branch yet)")
    md = (clone / "report" / "report.md").read_text()
    assert ("## Compared with `before-pipeline`\n\n_no baseline: before-pipeline has no "
            "eval/metrics.json (no metrics on the target branch yet)_") in md


def test_unknown_ref_fails_the_job(world, clone):
    proc = _report(clone, world["env"], "--baseline", "origin/nope")
    assert proc.returncode == 1
    assert proc.stderr == ("ci-gen: error: eval-report: cannot compute the baseline: ref "
                           "origin/nope not found in this clone (shallow clone? set GIT_DEPTH: 0 "
                           "or fetch the target branch)\n")
    assert not (clone / "report").exists()


def test_missing_git_fails_the_job_never_the_gate(world, clone):
    # python:3.11-slim has no git. A PATH with python and DVC (the venv's bin) but no git:
    # the job must fail, not report "no baseline" and let the gate pass.
    assert shutil.which("git", path=str(BIN)) is None
    env = dict(world["env"], PATH=str(BIN), CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main")
    proc = _report(clone, env)
    assert proc.returncode == 1
    assert proc.stderr == ("ci-gen: error: eval-report: cannot compute the baseline: git is not "
                           "installed (No such file or directory); use a job image with git\n")
    assert not (clone / "report").exists()
    gate = subprocess.run([sys.executable, "-m", "ci_gen", "job", "gate", "--report",
                           "report/report.json", "--metric", "accuracy", "--max-drop", "0.01"],
                          cwd=clone, env=env, capture_output=True, text=True)
    assert gate.returncode == 1 and "report report/report.json not found" in gate.stderr


def test_failing_dvc_remote_fails_the_job(world, clone, tmp_path):
    # main's metrics are a DVC output that this clone has to fetch; a remote that is gone is
    # "cannot compute", not "no baseline".
    _sh(clone, world["env"], "dvc", "remote", "modify", "--local", "store", "url",
        str(tmp_path / "gone"))
    proc = _report(clone, world["env"], "--baseline", "origin/main")
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith("ci-gen: error: eval-report: cannot compute the baseline: DVC "
                                  "could not read eval/metrics.json at origin/main (")
    assert proc.stderr.endswith("; is the DVC remote reachable, with its credentials set?\n")
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert not (clone / "report").exists()


def test_report_then_gate_in_a_pipeline(world, clone):
    _report(clone, world["env"], "--baseline", "origin/main")
    gate = [sys.executable, "-m", "ci_gen", "job", "gate", "--report", "report/report.json"]
    ok = subprocess.run(gate + ["--metric", "accuracy", "--max-drop", "0.01"], cwd=clone,
                        env=world["env"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("gate passed: accuracy = 0.8500 vs 0.8200")
    # loss went down by 0.03: the gate takes higher as better, so a 0.01 gate on it fails.
    bad = subprocess.run(gate + ["--metric", "loss", "--max-drop", "0.01"], cwd=clone,
                         env=world["env"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr == ("ci-gen: error: gate failed: loss dropped from 0.1800 (origin/main) "
                          "to 0.1500, a regression of 0.0300 > allowed 0.0100\n")


# ---------------------------------------------------------------- errors and plain functions

def test_missing_metrics_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["job", "eval-report", "--metrics", "model/eval/metrics.json",
                     "--image", "", "--out", "report"])
    assert code == 1
    assert capsys.readouterr().err == (
        "ci-gen: error: eval-report: metrics file 'model/eval/metrics.json' not found "
        "(did the train job run and keep it as an artifact?)\n")
    assert not (tmp_path / "report").exists()


def test_invalid_metrics_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("m.json").write_text("{not json")
    assert cli.main(["job", "eval-report", "--metrics", "m.json", "--out", "r"]) == 1
    assert capsys.readouterr().err.startswith("ci-gen: error: eval-report: m.json is not valid JSON: ")


def test_bad_baseline_ref_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("m.json").write_text('{"accuracy": 0.9}')
    assert cli.main(["job", "eval-report", "--metrics", "m.json", "--out", "r",
                     "--baseline=--upload-pack=touch x"]) == 2
    assert "is not a git ref name" in capsys.readouterr().err


def test_bad_gate_metric_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("m.json").write_text('{"accuracy": 0.9}')
    assert cli.main(["job", "eval-report", "--metrics", "m.json", "--out", "r",
                     "--gate-metric", "acc; rm -rf ."]) == 2
    assert capsys.readouterr().err == ("ci-gen: error: eval-report: --gate-metric 'acc; rm -rf .' "
                                       "is not a metric name\n")
    assert not Path("r").exists()


def test_yaml_metrics_no_image_and_missing_image(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", raising=False)
    Path("metrics.yaml").write_text("eval:\n  accuracy: 0.9\n  top_k: [1, 5]\nok: true\n")
    rep = ev_report.build(Path("metrics.yaml"), Path("out"), image="", env={})
    assert rep["metrics"] == {"eval.accuracy": 0.9, "eval.top_k": [1, 5], "ok": True}
    md = Path("out/report.md").read_text()
    assert "| `eval.accuracy` | 0.9000 |" in md and "| `eval.top_k` | [1, 5] |" in md
    assert "Confusion matrix" not in md
    rep = ev_report.build(Path("metrics.yaml"), Path("out"), image="cm.png", env={})
    assert rep["image"] is None and rep["image_note"] == "image cm.png not found"
    assert "_image cm.png not found_" in Path("out/report.md").read_text()


def test_flatten_and_blocks():
    nested = {"acc": 0.9, "per_class": {"a": {"p": 1.0, "r": 0.5}, "b": {"p": 0.25}},
              "deep": {"x": {"y": 2}}}
    assert ev_metrics.flatten(nested) == {"acc": 0.9, "per_class.a.p": 1.0, "per_class.a.r": 0.5,
                                  "per_class.b.p": 0.25, "deep.x.y": 2}
    scalars, blocks = ev_metrics.split_blocks(nested)
    assert scalars == {"acc": 0.9, "deep.x.y": 2}
    assert blocks == {"per_class": {"a": {"p": 1.0, "r": 0.5}, "b": {"p": 0.25}}}


def test_tracked_at_finds_git_files_and_dvc_outputs_in_subfolders(tmp_path):
    env = _env(tmp_path)
    _sh(tmp_path, env, "git", "init", "-q", "-b", "main")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  train:\n    cmd: x\n    outs:\n    - path: model\n      md5: 1\n")
    (tmp_path / "data.dvc").write_text("outs:\n- path: raw/\n  md5: 2\n")
    (tmp_path / "m.json").write_text("{}")
    _sh(tmp_path, env, "git", "add", "-A")
    _sh(tmp_path, env, "git", "commit", "-qm", "x")
    assert ev_baseline._tracked_at("sub/model/eval/metrics.json", "main", tmp_path)
    assert ev_baseline._tracked_at("raw/metrics.json", "main", tmp_path)
    assert ev_baseline._tracked_at("m.json", "main", tmp_path)
    assert not ev_baseline._tracked_at("model/eval/metrics.json", "main", tmp_path)


@pytest.mark.parametrize("name, way", [
    ("loss", "lower"), ("val_loss", "lower"), ("eval.rmse", "lower"), ("latency_ms", "lower"),
    ("error_rate", "lower"), ("accuracy", "higher"), ("per_class.Bag.f1", "higher"),
    ("roc_auc", "higher"), ("val.precision", "higher"), ("epochs", None), ("n_samples", None),
])
def test_direction_by_name(name, way):
    assert ev_metrics.direction(name) == way


def test_verdicts_and_pipeline_link():
    assert ev_metrics.verdict(0.1, "higher") == "better" and ev_metrics.verdict(0.1, "lower") == "worse"
    assert ev_metrics.verdict(-0.1, "lower") == "better" and ev_metrics.verdict(-0.1, "higher") == "worse"
    assert ev_metrics.verdict(0.0, "higher") is None and ev_metrics.verdict(1, None) is None
    assert ev_metrics.direction("loss", "loss", "higher") == "higher"
    assert ev_metrics.direction("loss", "none", "higher") == "lower"  # the "empty" sentinel: no gate
    url = "https://gitlab.example.com/g/p/-/pipelines/77"
    assert ev_report.pipeline_link({"CI_PIPELINE_ID": "77", "CI_PIPELINE_URL": url}) == f"[pipeline #77]({url})"
    assert ev_report.pipeline_link({"CI_PIPELINE_IID": "3"}) == "pipeline #3"
    assert ev_report.pipeline_link({"CI_PIPELINE_URL": "https://h/x"}) == "[pipeline](https://h/x)"
    assert ev_report.pipeline_link({}) is None


def test_delta_format():
    assert ev_report._fmt_delta(0.0312) == "▲ +0.0312"
    assert ev_report._fmt_delta(-0.5) == "▼ -0.5000"
    assert ev_report._fmt_delta(0.0) == "= 0"
    assert ev_report._fmt_delta(0.00002) == "▲ +2e-05"
