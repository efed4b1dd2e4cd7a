"""The whole example pipeline, for real, in one project and every pipeline after the first:
`ci-gen init --example` on an S3 remote (moto on 127.0.0.1), a cold `ci-gen run` in
gitlab-ci-local, a fresh clone that pulls the uploaded model back, then (issue 9) main after
pulling the pointer commit, a merge request that changes only serve.py, a params-only merge
request whose report diffs against main and is posted to the loopback GitLab API, a data-only
change and the run after it; each train job says whether it restored, reused or trained. Ends
with a scan for the sentinel credentials used throughout.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from gitlab_fake import API, PROJECT_ID, gitlab_fake  # noqa: F401  (fixture)
from support.cli import REPO, cli
from support.counts import record_counts
from support.pipeline import job_log, run_pipeline
from support.trees import scan_secrets

from ci_gen import __version__

pytestmark = pytest.mark.slow

# Sentinels: moto accepts any key pair, the loopback GitLab its own token.
AWS_KEY = "AKIACIGENSENTINEL0001"
AWS_SECRET = "ci-gen-sentinel-secret-7Hq2vZ9pLm"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _set_params(project: Path, **train) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["train"].update(train)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _train_line(project: Path) -> str:
    """The train job's one line saying whether it restored, reused or trained."""
    found = re.findall(r"ci-gen: train: ((?:restored|reused|trained) .*)$", job_log(project, "mlops-train"), re.M)
    assert len(found) == 1, found
    return found[0]


def _assert_not_trained(project: Path, how: str) -> None:
    assert _train_line(project) == how
    log = job_log(project, "mlops-train")
    assert "Epoch " not in log and "installing requirements.txt" not in log


def _scheduled_monitor_sees_drift(project: Path, warm_out: str) -> None:
    """Issue 14, acceptance 2, after the main demo: drifted traffic (inverted images) to the kept
    deployment, then `ci-gen run --schedule` prints the drift report and says what a GitLab job
    would do (no token here); then the environment is stopped."""
    assert "environment production left running (--keep-deployed)" in warm_out
    url = re.search(r"^mlops-deploy environment: \{ name: production, url: (http://127\.0\.0\.1:\d+) \}$",
                    warm_out, re.M).group(1)
    client = subprocess.run([sys.executable, "inference_client.py", "--url", url, "--model-name", "fashion-mnist",
                             "--samples", "300", "--seed", "2", "--invert"], cwd=project, capture_output=True, text=True)
    assert client.returncode == 0, client.stderr
    try:
        code, status, out = run_pipeline(project, quiet=False, host_env=False, schedule=True)
    finally:
        stop = run_pipeline(project, job="mlops-stop")
    assert stop[0] == 0 and stop[1]["mlops-stop"] == "passed", stop[2][-2000:]
    assert "scheduled pipeline for main" in out
    assert {k: v for k, v in status.items() if v != "excluded"} == {"mlops-monitor": "warning"}, out[-3000:]
    assert "## Model monitoring: fashion-mnist: drift found" in out
    assert re.search(r"^mlops-monitor > \| mean_intensity \| \d+\.\d{3} \| 0\.2 \| \*\*drift\*\* \|$", out, re.M), \
        out[-3000:]
    assert "ci-gen: monitor: drift in mean_intensity" in out
    assert ('a GitLab job with a token opens or updates the issue "Model drift: fashion-mnist" (label model-drift) '
            "and starts a pipeline on main with CI_GEN_RETRAIN=1") in out
    with pytest.raises(OSError):  # stopped: nothing answers any more
        urllib.request.urlopen(url + "/v1/models/fashion-mnist", timeout=5)


def test_example_pipeline_end_to_end(tmp_path, moto_server, gitlab_fake, mlflow_server, monkeypatch):
    """Issue 9, section 1: every pipeline after the first upload, in one project: main after
    pulling the pointer commit (a), a merge request that changes only serve.py (b), a
    params-only (d) and a data-only change (c) that retrain, and the run after (c) (e).
    Issue 11: the first two runs (cold, then warm) run their jobs as a runner does, each in the
    runtime environment its default image stands for (train installs TensorFlow only when it
    trains; a user image's empty environment is test_run_runner_mode's); no credential in any
    job's work tree."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # The register jobs use the session's MLflow server (no server started per run).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    # A machine without a git identity: nothing may fall back to a made-up one noisily.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    # TF_CPP_MIN_LOG_LEVEL: the example's serve.py sets it in this pytest process when its
    # tests are collected; a user's shell has no such leftover (jobs inherit the caller's env).
    for name in ("GITLAB_API_TOKEN", "REPO_TOKEN", "CI_JOB_TOKEN", "TF_CPP_MIN_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    project = tmp_path / "fmnist"
    remote = f"s3://{moto_server.bucket}/fmnist"
    dvc_env = {**os.environ, "AWS_ENDPOINT_URL": moto_server.endpoint_url}

    res = cli("init", str(project), "--example", "fashion-mnist", "--remote", remote,
              "--endpoint-url", moto_server.endpoint_url)
    assert res.returncode == 0, res.stderr
    assert "synthetic" in res.stdout
    # Two epochs keep CI fast (and still print "Epoch" lines when training); same pipeline.
    _set_params(project, epochs=2)
    _git(project, "commit", "-qam", "test: 2 epochs")

    # 1. Cold run, runner-like: every job of the default-branch pipeline, predictions at the end.
    code, status, out = run_pipeline(project, quiet=False, host_env=False)
    assert code == 0, out
    assert status == {"mlops-train": "passed", "mlops-edge-convert": "passed", "mlops-edge-gate": "passed",
                      "mlops-eval-report": "passed", "mlops-docker-build": "passed",
                      "mlops-register": "passed", "mlops-dvc-upload": "passed", "mlops-deploy": "passed",
                      "mlops-inference": "passed", "mlops-stop": "passed", "mlops-rollback": "excluded",
                      "mlops-monitor": "excluded"}
    assert _train_line(project).startswith("trained (ran train, evaluate: no dvc.lock entry")
    assert "Epoch 2/2" in job_log(project, "mlops-train")
    runtime = f"the ci-gen {__version__} runtime environment"
    assert runtime in job_log(project, "mlops-train") and runtime in job_log(project, "mlops-eval-report")
    assert "installing requirements.txt" in job_log(project, "mlops-train")
    assert re.search(r"mlops-train +train .* setup \d", out), out[-2000:]
    assert "docker-build skipped: " in job_log(project, "mlops-docker-build")
    assert "register: fashion-mnist 0.1.0 registered for commit" in job_log(project, "mlops-register")
    inference = job_log(project, "mlops-inference")
    assert "sample accuracy:" in inference
    report = project / ".gitlab-ci-local/artifacts/mlops-eval-report/report/report.md"
    assert "| `accuracy` |" in report.read_text()
    # edge-convert (issue 15): the LiteRT models are artifacts, their table is in the report.
    edge = project / ".gitlab-ci-local/artifacts/mlops-edge-convert/edge"
    assert {p.name for p in edge.glob("*.tflite")} == {"model-float32.tflite", "model-dynamic-range.tflite",
                                                       "model-int8.tflite"}
    assert "| `edge/model-int8.tflite` (int8) |" in report.read_text()
    trained = project / ".gitlab-ci-local/artifacts/mlops-train/model/fashion-mnist"
    model_digests = _digests(trained)
    assert any(name.endswith("saved_model.pb") for name in model_digests)
    # Quiet logs (issue 9, section 5): none of the noise that used to hide the signal.
    train_log = job_log(project, "mlops-train")
    for noise in ("oneDNN custom operations", "absl::InitializeLog", "NodeDef mentions"):
        assert noise not in train_log + job_log(project, "mlops-eval-report"), noise
    assert "Using fallback git user" not in out
    assert "no matching files" not in out and ".dvc/cache: found" not in out
    assert "with engine process; CI_GEN_DEPLOY_ENGINE overrides --engine docker" in job_log(project, "mlops-deploy")
    assert "url:  }" not in out
    assert re.search(r"^mlops-deploy environment: \{ name: production, url: http://127\.0\.0\.1:\d+ \}$",
                     out, re.M), out[-3000:]

    # 2. dvc-upload committed the pointers back with [skip ci]; a fresh clone pulls the model.
    origin = project / ".gitlab-ci-local" / "origin.git"
    message = _git(origin, "log", "-1", "--format=%s|%an", "main").strip()
    assert message.endswith("[skip ci]|ci-gen local run")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(origin), str(clone))
    subprocess.run([sys.executable, "-m", "dvc", "pull", "-q", "dvc.yaml"], cwd=clone, check=True,
                   capture_output=True, env=dvc_env)
    assert _digests(clone / "model" / "fashion-mnist") == model_digests

    # (a) main again after pulling the pointer commit: restored, and the jobs after it pass.
    _git(project, "pull", "-q", "--ff-only", str(origin), "main")
    # warm, runner-like; the deployment is kept for the scheduled pipeline below (issue 14)
    code, status, out = run_pipeline(project, quiet=False, host_env=False, keep_deployed=True)
    assert code == 0, out
    assert re.search(r"^mlops-train +imported cache '0_pip-", out, re.M), out[-3000:]  # GitLab's cache:
    assert status["mlops-eval-report"] == "passed" and status["mlops-dvc-upload"] == "passed"
    _assert_not_trained(project, "restored from the remote (dvc.lock matches)")
    assert runtime in job_log(project, "mlops-train")
    assert _digests(trained) == model_digests
    # No credential in any job's work tree, not even the untracked .dvc/config.local.
    builds = project / ".gitlab-ci-local" / "builds"
    assert not [p for p in builds.rglob("*") if p.is_file() and not p.is_symlink()
                and any(s.encode() in p.read_bytes() for s in (AWS_KEY, AWS_SECRET))]
    # The same model: edge-convert reuses its measurements from GitLab's cache.
    assert "reused the measurements of an earlier run" in job_log(project, "mlops-edge-convert")
    _scheduled_monitor_sees_drift(project, out)

    # (b) a merge request that changes only serve.py: restored, not retrained.
    _git(project, "checkout", "-qb", "serve-tweak")
    with (project / "serve.py").open("a") as f:
        f.write("# a comment only\n")
    _git(project, "commit", "-qam", "serve: comment")
    code, status, out = run_pipeline(project, mr=True)
    assert code == 0, out
    assert status["mlops-train"] == "passed" and status["mlops-eval-report"] == "passed"
    _assert_not_trained(project, "restored from the remote (dvc.lock matches)")

    # (d) a merge request that changes params: retrained; the report diffs against main and
    #     is posted once to the merge request, with the confusion matrix uploaded.
    _git(project, "checkout", "-q", "main")
    _git(project, "checkout", "-qb", "wider-dropout")
    _set_params(project, dropout=0.1)
    _git(project, "commit", "-qam", "try less dropout")
    head = _git(project, "rev-parse", "HEAD").strip()
    gitlab_fake.add_mr(PROJECT_ID, 1, sha=head, source_branch="wider-dropout")
    api = {"CI_SERVER_URL": gitlab_fake.url, "CI_API_V4_URL": gitlab_fake.url + API,
           "CI_PROJECT_ID": str(PROJECT_ID), "GITLAB_API_TOKEN": gitlab_fake.token}
    code, status, out = run_pipeline(project, mr=True, variables=api)
    assert code == 0, out
    assert status["mlops-train"] == "passed" and status["mlops-eval-report"] == "passed"
    assert "mlops-deploy" not in status or status["mlops-deploy"] != "passed"
    assert _train_line(project).startswith("trained (ran train, evaluate: changed since dvc.lock: "
                                           "params.yaml:train;")
    assert "Epoch 2/2" in job_log(project, "mlops-train")
    edge_log = job_log(project, "mlops-edge-convert")  # a new model: converted, not reused
    assert "edge-convert: installing requirements.txt (a model must be converted)" in edge_log
    assert "reused the measurements" not in edge_log
    text = report.read_text()
    assert "Compared with" in text and "origin/main" in text
    assert any("dropout" in line and "0.1" in line and "0.3" in line for line in text.splitlines()), text
    notes = gitlab_fake.notes[(PROJECT_ID, 1)]
    assert len(notes) == 1 and "/uploads/" in notes[0]["body"]
    assert "## Edge conversion (LiteRT)" in text and "## Edge conversion (LiteRT)" in notes[0]["body"]
    assert f"report: {report}" in out  # `ci-gen run --mr` points at the report with the table

    # (c) a data-only change on main (new data, `dvc add`, pushed, committed): retrained.
    _git(project, "checkout", "-q", "main")
    subprocess.run([sys.executable, "fmnist_data.py", "synth", "--out", "train_data", "--train", "6000",
                    "--test", "1000", "--seed", "1"], cwd=project, check=True, capture_output=True)
    for args in (["add", "-q", "train_data"], ["push", "-q", "train_data.dvc"]):
        subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, check=True, capture_output=True,
                       env=dvc_env)
    assert _git(project, "status", "--porcelain").strip() == "M train_data.dvc"
    _git(project, "commit", "-qam", "new training data")
    code, status, out = run_pipeline(project, manual=False)
    assert code == 0, out
    assert status["mlops-train"] == "passed" and status["mlops-eval-report"] == "passed"
    assert _train_line(project).startswith("trained (ran train, evaluate: changed since dvc.lock: "
                                           "train_data;")
    assert "Epoch 2/2" in job_log(project, "mlops-train")
    retrained = _digests(trained)
    assert retrained != model_digests

    # (e) the run after (c): the same model from the run cache, nothing installed or trained.
    code, status, out = run_pipeline(project, manual=False)
    assert code == 0, out
    assert status["mlops-eval-report"] == "passed"
    _assert_not_trained(project, "reused from the run cache (deps and params match an earlier run)")
    assert _digests(trained) == retrained
    # The same commit again: its version is there already, nothing new is registered.
    assert "is already registered for this model (commit " in job_log(project, "mlops-register")

    # 5. No credential anywhere: logs, artifacts, builds, the work trees, every commit.
    secrets = [AWS_KEY, AWS_SECRET, gitlab_fake.token]
    history = tmp_path / "history.txt"
    history.write_text(_git(project, "log", "-p", "--all") + _git(origin, "log", "-p", "--all"))
    scanned, hits = scan_secrets([project, clone, REPO / "templates"], secrets)
    history_hits = sum(s in history.read_text() for s in secrets)
    output_hits = sum(s in out for s in secrets)
    record_counts("secrets", {"secrets": len(secrets), "scanned": scanned + 2,
                              "found": len(hits) + history_hits + output_hits})
    assert scanned > 100
    assert hits == []
    assert history_hits == 0
    assert output_hits == 0
