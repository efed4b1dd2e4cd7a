"""Fixtures for the example's tests: generated data, one trained project, one running server.

The expensive parts (a `dvc repro` in a throw-away git repo, a serve.py process) are
session-scoped and shared, so the whole example suite stays around a minute.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fmnist_testlib import COPY_IGNORE, EPOCHS, EXAMPLE_DIR, N_TEST, N_TRAIN, ServerProcess, dvc, run  # noqa: E402

sys.path.insert(0, str(EXAMPLE_DIR))  # the example's modules are scripts, not a package
import fmnist_data  # noqa: E402


def pytest_configure(config):
    # Registered here too, so the tests also run in a copied project without ci-gen's pytest config.
    config.addinivalue_line("markers", "slow: trains a model or starts TensorFlow (seconds)")


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """A data dir with a few generated images, for tests that need files but no training."""
    data = tmp_path_factory.mktemp("small") / "train_data"
    fmnist_data.make_synthetic(data, n_train=200, n_test=100, seed=7)
    return data


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory) -> dict:
    """The example copied into its own git repo with generated data, after one `dvc repro`.

    Returns {"dir": Path, "first_metrics": text of metrics.json after the first run,
    "repro": CompletedProcess}. Params are reduced to EPOCHS epochs to keep it fast.
    """
    project = tmp_path_factory.mktemp("project") / "fashion-mnist"
    shutil.copytree(EXAMPLE_DIR, project, ignore=COPY_IGNORE)
    run(["git", "-c", "init.defaultBranch=main", "init", "-q"], project)
    fmnist_data.make_synthetic(project / "train_data", n_train=N_TRAIN, n_test=N_TEST, seed=0)
    params = project / "params.yaml"
    text = params.read_text()
    assert "epochs: 12" in text
    params.write_text(text.replace("epochs: 12", f"epochs: {EPOCHS}"))
    site_cache = str(tmp_path_factory.mktemp("dvc-site-cache"))
    dvc(["init", "-q"], project, DVC_SITE_CACHE_DIR=site_cache)
    repro = dvc(["repro"], project, DVC_SITE_CACHE_DIR=site_cache)
    return {
        "dir": project,
        "first_metrics": (project / "model/eval/metrics.json").read_text(),
        "repro": repro,
        "site_cache": site_cache,
    }


@pytest.fixture(scope="session")
def served_model(trained_project, tmp_path_factory) -> Path:
    """A private copy of the trained export, so later `dvc repro -f` runs cannot touch it."""
    target = tmp_path_factory.mktemp("served") / "fashion-mnist"
    shutil.copytree(trained_project["dir"] / "model/fashion-mnist", target)
    return target


@pytest.fixture(scope="session")
def server(served_model, trained_project, tmp_path_factory):
    """serve.py serving the trained export on a free port; yields the ServerProcess."""
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    proc = ServerProcess(served_model, trained_project["dir"], log)
    proc.wait_ready()
    yield proc
    proc.stop()
