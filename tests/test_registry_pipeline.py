"""The model registry end to end in gitlab-ci-local: `ci-gen run` starts a real MLflow server,
two default-branch pipelines of one small DVC project (plain Python, no TensorFlow) register
two versions with their lineage, and the files downloaded back match the trained ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ci_gen import __version__
from ci_gen.local import registry as local
from ci_gen.registry import catalog, lineage
from ci_gen.registry.client import Registry
from support.cli import cli
from support.git import git, make_project
from support.pipeline import gitlab_ci_local, job_log, run_pipeline

CI = f"""\
stages: [train, evaluate, register]
include:
  - component: gitlab.example.com/mlops/ci-gen/train@{__version__}
    inputs:
      data: data.dvc
      artifacts: [model/, eval/, dvc.lock]
      push-run-cache: false
  - component: gitlab.example.com/mlops/ci-gen/register@{__version__}
    inputs:
      model-name: tiny
      model-path: model
      metrics: eval/metrics.json
      data: data.dvc
"""
FILES = {
    ".gitignore": ".gitlab-ci-local/\n",
    "requirements.txt": "# nothing to install\n",
    "params.yaml": "train:\n  epochs: 1\n",
    "make.py": """\
        import json, pathlib
        epochs = int(pathlib.Path("params.yaml").read_text().split("epochs:")[1].split()[0])
        pathlib.Path("model/weights").mkdir(parents=True, exist_ok=True)
        pathlib.Path("model/weights/w.bin").write_bytes(bytes(range(256)) * epochs)
        pathlib.Path("model/config.txt").write_text(f"epochs={epochs}\\n")
        pathlib.Path("eval").mkdir(exist_ok=True)
        pathlib.Path("eval/metrics.json").write_text(json.dumps({"accuracy": 0.5 + epochs / 10}))
        """,
    "dvc.yaml": """\
        stages:
          train:
            cmd: python make.py
            deps: [make.py, data]
            params: [train]
            outs: [model, eval/metrics.json]
        """,
}


def _dvc(project: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, capture_output=True,
                          text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.slow
def test_two_pipelines_register_two_versions_with_lineage(tmp_path, monkeypatch):
    gitlab_ci_local()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = make_project(tmp_path / "tiny", CI, FILES, origin="git@gitlab.example.com:mlops/tiny.git")
    (project / "data").mkdir()
    (project / "data" / "x.txt").write_text("7\n")
    _dvc(project, "init", "-q")
    _dvc(project, "remote", "add", "-d", "models", str(tmp_path / "remote"))
    _dvc(project, "add", "-q", "data")
    _dvc(project, "push", "-q", "data.dvc")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "data")
    md5 = yaml.safe_load((project / "data.dvc").read_text())["outs"][0]["md5"]
    artifacts = project / ".gitlab-ci-local" / "artifacts" / "mlops-train"

    # 1. `ci-gen run` starts a local server on the project's store and stops it after.
    code, status, out = run_pipeline(project, job="mlops-register")
    assert code == 0, out
    assert status == {"mlops-train": "passed", "mlops-register": "passed"}, out
    assert "register: tiny 0.1.0 registered for commit" in job_log(project, "mlops-register")
    assert (f"model registry: tiny 0.1.0 registered; see it with: ci-gen models show tiny 0.1.0 "
            f"--project {project}") in out
    shas = [git(project, "rev-parse", "HEAD")]
    models = [_tree(artifacts / "model")]

    # 2. The same store served once more (as `ci-gen models --project` does), named by
    #    MLFLOW_TRACKING_URI: the run uses it instead of starting its own.
    server = local.open_project(project)
    try:
        (project / "params.yaml").write_text("train:\n  epochs: 2\n")
        git(project, "commit", "-qam", "two epochs")
        code, status, out = run_pipeline(project, job="mlops-register",
                                         variables={"MLFLOW_TRACKING_URI": server.url})
        assert code == 0, out
        assert f"model registry: {server.url} (MLFLOW_TRACKING_URI)" in out
        assert "register: tiny 0.1.1 registered for commit" in job_log(project, "mlops-register")
        shas.append(git(project, "rev-parse", "HEAD"))
        models.append(_tree(artifacts / "model"))

        reg = Registry(server.url)
        found = catalog.versions(reg, "tiny")
        assert [v.semver for v in found] == ["0.1.0", "0.1.1"]
        for v, sha, model, epochs in zip(found, shas, models, (1, 2)):
            assert v.tags[lineage.COMMIT] == sha and v.tags[lineage.DATA] == md5
            assert v.tags[lineage.TOOL] == __version__ and v.tags[lineage.REF] == "main"
            assert "/pipelines/" in v.tags[lineage.PIPELINE] and "/jobs/" in v.tags[lineage.JOB]
            data = reg.get_run(v.run_id)["data"]
            assert {p["key"]: p["value"] for p in data["params"]} == {"train.epochs": str(epochs)}
            assert {m["key"]: m["value"] for m in data["metrics"]} == {"accuracy": 0.5 + epochs / 10}
            assert {t["key"] for t in data["tags"]} >= {lineage.JOB_ID, lineage.COMMIT}
            path, manifest = catalog.download(reg, v, tmp_path / f"v{epochs}")
            assert _tree(path) == model  # byte-identical to what the pipeline trained
        shown = cli("models", "show", "tiny", "0.1.0", "--tracking-uri", server.url)
        assert shown.returncode == 0 and f"commit: {shas[0]}" in shown.stdout, shown.stderr
    finally:
        server.stop()
    assert git(project, "status", "--porcelain") == ""
