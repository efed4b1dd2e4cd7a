"""Acceptance 1: in a copy of the example made its own git repo, `dvc repro` trains and evaluates."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

import fmnist_data
import train
from fmnist_testlib import EXAMPLE_DIR, N_TEST, dvc

pytestmark = pytest.mark.slow


def test_repro_writes_the_savedmodel_metrics_and_confusion_matrix(trained_project):
    project = trained_project["dir"]
    version = project / "model/fashion-mnist/1"

    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    metrics = json.loads((project / "model/eval/metrics.json").read_text())
    assert metrics["accuracy"] > 0.6, metrics["accuracy"]  # chance is 0.1
    assert 0 < metrics["loss"] < 2.3  # below the loss of uniform guessing, ln 10
    assert metrics["test_samples"] == N_TEST
    assert list(metrics["per_class"]) == list(fmnist_data.CLASS_NAMES)
    for values in metrics["per_class"].values():
        assert set(values) == {"precision", "recall", "f1", "support"}
        assert all(0.0 <= values[k] <= 1.0 for k in ("precision", "recall", "f1"))
    assert set(metrics["macro_avg"]) == {"precision", "recall", "f1"}
    png = (project / "model/eval/confusion_matrix.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    with open(project / "model/eval/plots/confusion.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == N_TEST and set(rows[0]) == {"actual", "predicted"}
    agree = sum(r["actual"] == r["predicted"] for r in rows) / len(rows)
    assert agree == pytest.approx(metrics["accuracy"])


def test_every_output_is_cached_so_the_run_cache_can_restore_stages(trained_project):
    stages = yaml.safe_load((EXAMPLE_DIR / "dvc.yaml").read_text())["stages"]
    lock = yaml.safe_load((trained_project["dir"] / "dvc.lock").read_text())["stages"]

    for stage in stages.values():
        for entry in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            options = next(iter(entry.values())) if isinstance(entry, dict) else {}
            assert options.get("cache", True) is True, entry  # `cache: false` defeats the run cache
    assert stages["train"]["cmd"] == "python train.py" and stages["evaluate"]["cmd"] == "python eval.py"
    assert [o["path"] for o in lock["train"]["outs"]] == ["model/fashion-mnist"]
    assert sorted(o["path"] for o in lock["evaluate"]["outs"]) == [
        "model/eval/confusion_matrix.png",
        "model/eval/metrics.json",
        "model/eval/plots/confusion.csv",
        "model/eval/profile.json",
    ]
    assert {d["path"] for d in lock["train"]["deps"]} == {"train.py", "fmnist_data.py", "train_data"}
    assert set(lock["train"]["params"]["params.yaml"]["train"]) == set(train.TRAIN_PARAMS)


def test_dvc_reads_the_declared_metrics_and_plots(trained_project, tmp_path):
    project = trained_project["dir"]
    env = {"DVC_SITE_CACHE_DIR": trained_project["site_cache"]}

    shown = json.loads(dvc(["metrics", "show", "--json"], project, **env).stdout)
    plots = json.loads(dvc(["plots", "show", "--json", "-o", str(tmp_path / "plots")], project, **env).stdout)

    metrics = json.loads((project / "model/eval/metrics.json").read_text())
    assert shown[""]["data"]["model/eval/metrics.json"]["data"] == metrics
    confusion = plots["data"]["model/eval/plots/confusion.csv"][0]
    assert confusion["type"] == "vega" and len(confusion["content"]["data"]["values"]) == N_TEST
    assert plots["data"]["model/eval/confusion_matrix.png"][0]["type"] == "image"


def test_unchanged_repro_skips_and_forced_repro_gives_identical_metrics(trained_project):
    project = trained_project["dir"]
    env = {"DVC_SITE_CACHE_DIR": trained_project["site_cache"]}

    again = dvc(["repro"], project, **env)
    assert "Stage 'train' didn't change, skipping" in again.stdout
    assert "Stage 'evaluate' didn't change, skipping" in again.stdout

    dvc(["repro", "-f"], project, **env)
    # Fixed seeds and op determinism: bit-identical on the same CPU (bound: exact equality).
    assert (project / "model/eval/metrics.json").read_text() == trained_project["first_metrics"]
