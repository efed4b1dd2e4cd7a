"""Plain functions of train.py, eval.py and serve.py that need no model: params, metrics, versions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import eval as fm_eval
import fmnist_data
import serve
import train
from fmnist_testlib import EXAMPLE_DIR


def test_shipped_params_are_valid_and_typed():
    params = train.load_params(EXAMPLE_DIR / "params.yaml")

    assert params["epochs"] == 12 and isinstance(params["epochs"], int)
    assert params["learning_rate"] == pytest.approx(1e-3) and isinstance(params["learning_rate"], float)
    assert set(params) == set(train.TRAIN_PARAMS)
    assert fm_eval.load_batch_size(EXAMPLE_DIR / "params.yaml") > 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"epochs": None}, "train.epochs is missing"),
        ({"epochs": "ten"}, "train.epochs must be a positive integer, got 'ten'"),
        ({"epochs": 0}, "train.epochs must be a positive integer, got 0"),
        ({"epochs": 2.5}, "train.epochs must be a positive integer, got 2.5"),
        ({"batch_size": True}, "train.batch_size must be a positive integer, got True"),
        ({"dropout": 1.0}, "train.dropout must be a number in [0, 1), got 1.0"),
        ({"learning_rate": -1}, "train.learning_rate must be a positive number, got -1"),
    ],
)
def test_bad_params_give_one_line_naming_the_key(tmp_path, change, expected):
    doc = yaml.safe_load((EXAMPLE_DIR / "params.yaml").read_text())
    for key, value in change.items():
        if value is None:
            del doc["train"][key]
        else:
            doc["train"][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(doc))

    with pytest.raises(train.ParamsError) as info:
        train.load_params(path)

    assert str(info.value) == f"{path}: {expected}"


def test_params_without_train_section(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("evaluate: {batch_size: 8}\n")

    with pytest.raises(train.ParamsError, match="no `train:` section"):
        train.load_params(path)
    assert fm_eval.load_batch_size(path) == 8


def test_metrics_match_a_hand_computed_case():
    # 4 samples: classes 0, 0, 1, 2; predictions 0, 1, 1, 1 (class 2 never predicted).
    labels = np.array([0, 0, 1, 2])
    probs = np.full((4, 10), 0.0)
    probs[0, 0] = probs[1, 1] = probs[2, 1] = probs[3, 1] = 0.5
    probs[:, 9] = 0.5 - 1e-3  # the rest of the mass, never the top class

    metrics, matrix = fm_eval.compute_metrics(labels, probs)

    assert matrix[0, 0] == 1 and matrix[0, 1] == 1 and matrix[1, 1] == 1 and matrix[2, 1] == 1 and matrix.sum() == 4
    assert metrics["accuracy"] == 0.5
    tshirt, trouser, pullover = (metrics["per_class"][n] for n in fmnist_data.CLASS_NAMES[:3])
    assert tshirt == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert trouser["precision"] == pytest.approx(1 / 3) and trouser["recall"] == 1.0 and trouser["f1"] == pytest.approx(0.5)
    assert pullover == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}  # zero division -> 0
    # loss: mean -log p(true class); samples 1 and 3 gave their true class 0 -> clipped to 1e-7
    expected_loss = (-np.log(0.5) - np.log(1e-7) - np.log(0.5) - np.log(1e-7)) / 4
    assert metrics["loss"] == pytest.approx(expected_loss)
    assert metrics["macro_avg"]["recall"] == pytest.approx((0.5 + 1.0 + 0.0) / 10)
    json.dumps(metrics)  # only JSON types (no numpy scalars)


def test_pick_version_takes_the_numerically_highest(tmp_path):
    for name in ("1", "2", "10", "tmp", "9.bak"):
        (tmp_path / name).mkdir()
    (tmp_path / "11").write_text("a file, not a version")

    version, path = serve.pick_version(tmp_path)

    assert version == 10 and path == tmp_path / "10"  # not "9.bak", not lexical "2"
    assert fm_eval.latest_version(tmp_path) == tmp_path / "10"  # eval reads what is served


def test_pick_version_errors_name_the_directory(tmp_path):
    with pytest.raises(serve.StartupError, match=f"{tmp_path}/missing: model base path not found"):
        serve.pick_version(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(serve.StartupError, match="no numeric version directory"):
        serve.pick_version(tmp_path / "empty")
    with pytest.raises(fm_eval.EvalError, match="run the train stage first"):
        fm_eval.latest_version(tmp_path / "missing")
