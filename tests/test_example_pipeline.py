"""The whole example pipeline, for real: `ci-gen init --example` on an S3 remote (moto on
127.0.0.1), `ci-gen run` in gitlab-ci-local, a warm re-run that restores instead of
retraining, a fresh clone that pulls the model back, a merge request pipeline whose report
diffs against main and is posted to the loopback GitLab API, and a scan for the sentinel
credentials used throughout.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ci_gen.localpipeline import RunOptions, run_local
from tests.gitlab_fake import API, PROJECT_ID, gitlab_fake  # noqa: F401  (fixture)
from tests.helpers import REPO, cli, scan_secrets

pytestmark = pytest.mark.slow

# Sentinels: moto accepts any key pair, the loopback GitLab its own token.
AWS_KEY = "AKIACIGENSENTINEL0001"
AWS_SECRET = "ci-gen-sentinel-secret-7Hq2vZ9pLm"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout


def _run(project: Path, **options) -> tuple[int, dict[str, str], str]:
    out = io.StringIO()
    outcome = run_local(RunOptions(directory=project, quiet=True, **options), out)
    return outcome.exit_code, {r.name: r.status for r in outcome.results}, out.getvalue()


def _log(project: Path, job: str) -> str:
    return (project / ".gitlab-ci-local" / "output" / f"{job}.log").read_text(errors="replace")


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _set_params(project: Path, **train) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["train"].update(train)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_example_pipeline_end_to_end(tmp_path, moto_server, gitlab_fake, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("GITLAB_API_TOKEN", "REPO_TOKEN", "CI_JOB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    project = tmp_path / "fmnist"
    remote = f"s3://{moto_server.bucket}/fmnist"

    res = cli("init", str(project), "--example", "fashion-mnist", "--remote", remote,
              "--endpoint-url", moto_server.endpoint_url)
    assert res.returncode == 0, res.stderr
    assert "synthetic" in res.stdout
    # Fewer epochs keep CI fast; the pipeline is the same.
    _set_params(project, epochs=3)
    _git(project, "commit", "-qam", "test: 3 epochs")

    # 1. Cold run: every job of the default-branch pipeline, predictions at the end.
    code, status, out = _run(project)
    assert code == 0, out
    assert status == {"mlops-train": "passed", "mlops-eval-report": "passed", "mlops-docker-build": "passed",
                      "mlops-dvc-upload": "passed", "mlops-deploy": "passed", "mlops-inference": "passed",
                      "mlops-stop": "passed"}
    assert "Epoch 3/3" in _log(project, "mlops-train")
    assert "docker-build skipped: " in _log(project, "mlops-docker-build")
    inference = _log(project, "mlops-inference")
    assert "sample accuracy:" in inference
    report = project / ".gitlab-ci-local/artifacts/mlops-eval-report/report/report.md"
    assert "| `accuracy` |" in report.read_text()
    trained = project / ".gitlab-ci-local/artifacts/mlops-train/model/fashion-mnist"
    model_digests = _digests(trained)
    assert any(name.endswith("saved_model.pb") for name in model_digests)

    # 2. Warm run, nothing changed: train restores from the run cache and installs nothing.
    code, status, out = _run(project)
    assert code == 0, out
    warm = _log(project, "mlops-train")
    assert "Stage 'train' is cached - skipping run" in warm
    assert "Epoch 1/" not in warm
    assert "Successfully installed" not in warm
    assert _digests(trained) == model_digests

    # 3. dvc-upload committed the pointers back with [skip ci]; a fresh clone pulls the model.
    origin = project / ".gitlab-ci-local" / "origin.git"
    message = _git(origin, "log", "-1", "--format=%s", "main").strip()
    assert message.endswith("[skip ci]")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(origin), str(clone))
    subprocess.run([sys.executable, "-m", "dvc", "pull", "-q", "dvc.yaml"], cwd=clone, check=True, capture_output=True,
                   env={**os.environ, "AWS_ENDPOINT_URL": moto_server.endpoint_url})
    assert _digests(clone / "model" / "fashion-mnist") == model_digests

    # 4. A merge request that changes params: the report diffs against main and is posted
    #    once to the merge request, with the confusion matrix uploaded.
    _git(project, "pull", "-q", "--ff-only", str(origin), "main")
    _git(project, "checkout", "-qb", "wider-dropout")
    _set_params(project, dropout=0.1)
    _git(project, "commit", "-qam", "try less dropout")
    head = _git(project, "rev-parse", "HEAD").strip()
    gitlab_fake.add_mr(PROJECT_ID, 1, sha=head, source_branch="wider-dropout")
    api = {"CI_SERVER_URL": gitlab_fake.url, "CI_API_V4_URL": gitlab_fake.url + API,
           "CI_PROJECT_ID": str(PROJECT_ID), "GITLAB_API_TOKEN": gitlab_fake.token}
    code, status, out = _run(project, mr=True, variables=api)
    assert code == 0, out
    assert status["mlops-train"] == "passed" and status["mlops-eval-report"] == "passed"
    assert "mlops-deploy" not in status or status["mlops-deploy"] != "passed"
    text = report.read_text()
    assert "Compared with" in text and "origin/main" in text
    assert "| `dropout` |" in text or "dropout" in text
    notes = gitlab_fake.notes[(PROJECT_ID, 1)]
    assert len(notes) == 1 and "/uploads/" in notes[0]["body"]

    # 5. No credential anywhere: logs, artifacts, builds, the work trees, every commit.
    secrets = [AWS_KEY, AWS_SECRET, gitlab_fake.token]
    history = tmp_path / "history.txt"
    history.write_text(_git(project, "log", "-p", "--all") + _git(origin, "log", "-p", "--all"))
    scanned, hits = scan_secrets([project, clone, REPO / "templates"], secrets)
    history_hits = sum(s in history.read_text() for s in secrets)
    output_hits = sum(s in out for s in secrets)
    if os.environ.get("CI_GEN_COUNTS_FILE"):  # read by benchmarks/hardening_counts.py
        Path(os.environ["CI_GEN_COUNTS_FILE"]).write_text(json.dumps(
            {"secrets": len(secrets), "scanned": scanned + 2, "found": len(hits) + history_hits + output_hits}))
    assert scanned > 100
    assert hits == []
    assert history_hits == 0
    assert output_hits == 0
