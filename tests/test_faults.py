"""Faults and leaks (issue 6): the S3 remote going away before and in the middle of a
pipeline, a DVC push against a dead remote, and the registry password through a real build.

The outage is real: a loopback TCP forwarder (faultproxy.FaultProxy) sits between DVC and
moto; `.down()` refuses new connections and resets open ones while moto keeps its objects,
`.up()` brings the same endpoint back. Pipelines run with `ci_gen.local.pipeline.run_local`
(gitlab-ci-local, shell executor), as `ci-gen run` does.
"""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ci_gen import __version__
from ci_gen.local.gitlab_ci_local import ANSI
from faultproxy import FaultProxy
from support.cli import cli
from support.git import IDENTITY, git
from support.pipeline import job_log, run_pipeline
from support.trees import scan_secrets

# The faults this module injects into ci-gen's jobs (the S3 remote down before train, between
# train and dvc-upload, inside dvc-upload before its push; a DVC push against a dead remote)
# are listed, with the test that injects each, in benchmarks/hardening_counts.py (FAULT_TESTS),
# which counts a fault "survived" when its test passes. The proxy's own self-test is not counted.
# Secret scans this module runs (sentinel -> where): the other half of the counts.
SECRET_SCANS: dict[str, str] = {
    "aws-keys-failed-pipelines": "test_s3_outage_before_and_during_the_pipeline",
    "aws-keys-dvc-push-errors": "test_dvc_push_against_a_dead_remote_fails_cleanly",
    "registry-password-docker-build": "test_registry_password_never_leaks",
}

# Sentinels: moto accepts any key pair. Distinct from other modules' so a hit names its source.
AWS_KEY = "AKIACIGENFAULTS00042"
AWS_SECRET = "ci-gen-faults-sentinel-Wq3xR8tYb2"
NO_CONNECT = "Could not connect to the endpoint URL"  # botocore's message, relayed by DVC


# -- helpers ----------------------------------------------------------------------------------

def _keys(s3, prefix: str = "") -> list[str]:
    """Object keys in the bucket, read from moto directly (not through the proxy)."""
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


class _OutageAt(io.StringIO):
    """A run's output stream that takes the remote down at the first line matching PATTERN.

    Lines arrive as gitlab-ci-local prints them (run_local passes them on as they come), so
    the outage lands at a known point of the pipeline: `ci-gen: JOB: passed` comes before the
    jobs that need JOB start; a job's `$ command` echo comes before that command runs (and
    `dvc`/`ci-gen` take a second to start before they reach S3).
    """

    def __init__(self, pattern: str, proxy: FaultProxy, s3) -> None:
        super().__init__()
        self.pattern = re.compile(pattern, re.M)
        self.proxy, self.s3 = proxy, s3
        self.keys_at_outage: list[str] | None = None

    def write(self, text: str) -> int:
        n = super().write(text)
        if self.keys_at_outage is None and self.pattern.search(ANSI.sub("", text)):
            self.proxy.down()
            self.keys_at_outage = _keys(self.s3)
        return n


@pytest.fixture
def s3_proxy(moto_server):
    """A FaultProxy in front of moto_server, up."""
    port = int(moto_server.endpoint_url.rsplit(":", 1)[1])
    with FaultProxy(port) as proxy:
        yield proxy


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Sentinel AWS keys in the environment (jobs inherit it), nothing else that could point
    DVC elsewhere or supply other credentials."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "GCL_")) or name in ("GITLAB_API_TOKEN", "REPO_TOKEN", "CI_JOB_TOKEN"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


# -- the forwarder itself ---------------------------------------------------------------------

def test_fault_proxy_refuses_and_resets_while_down(s3_proxy, moto_server):
    import socket

    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=s3_proxy.url(), region_name="us-east-1",
                          aws_access_key_id="k", aws_secret_access_key="s",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5))
    client.put_object(Bucket=moto_server.bucket, Key="probe", Body=b"kept")
    assert s3_proxy.accepted >= 1
    held = socket.create_connection(("127.0.0.1", s3_proxy.port), timeout=5)
    port = s3_proxy.port

    s3_proxy.down()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    # The connection open at the outage is cut: EOF or a reset, never a hang.
    held.settimeout(5)
    try:
        assert held.recv(1) == b""
    except ConnectionResetError:
        pass
    held.close()

    s3_proxy.up()
    assert s3_proxy.port == port
    # moto kept its state through the outage.
    assert client.get_object(Bucket=moto_server.bucket, Key="probe")["Body"].read() == b"kept"


# -- a job against a dead remote --------------------------------------------------------------

@pytest.mark.slow  # botocore retries a refused connection a few times before DVC gives up
def test_dvc_push_against_a_dead_remote_fails_cleanly(tmp_path, s3_proxy, moto_server, aws_env):
    repo = tmp_path / "proj"
    repo.mkdir()
    dvc = [sys.executable, "-m", "dvc"]

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(cmd), cwd=repo, capture_output=True, text=True, timeout=180)

    git(repo, "init", "-q")
    for cmd in (["init", "-q"], ["remote", "add", "-d", "storage", f"s3://{moto_server.bucket}/job"],
                ["remote", "modify", "storage", "endpointurl", s3_proxy.url()]):
        proc = run(*dvc, *cmd)
        assert proc.returncode == 0, proc.stderr
    (repo / "data.txt").write_text("rows\n" * 1000)
    assert run(*dvc, "add", "-q", "data.txt").returncode == 0

    auth = run(sys.executable, "-m", "ci_gen", "job", "dvc-auth")
    assert auth.returncode == 0, auth.stderr
    assert "DVC reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY from the environment" in auth.stdout

    s3_proxy.down()
    push = run(*dvc, "push")
    assert push.returncode != 0
    err = push.stdout + push.stderr
    assert NO_CONNECT in err and f"127.0.0.1:{s3_proxy.port}" in err, err
    assert "Traceback" not in err
    assert AWS_KEY not in err and AWS_SECRET not in err
    assert _keys(moto_server, "job/") == []

    # The same push, same endpoint, once the remote is back: the failure was the outage.
    s3_proxy.up()
    push = run(*dvc, "push")
    assert push.returncode == 0, push.stdout + push.stderr
    assert "1 file pushed" in push.stdout
    assert len(_keys(moto_server, "job/")) == 1
    assert AWS_SECRET not in push.stdout + push.stderr


# -- the example pipeline with the remote going away ------------------------------------------

@pytest.mark.slow
def test_s3_outage_before_and_during_the_pipeline(tmp_path, s3_proxy, moto_server, aws_env, monkeypatch):
    # botocore's default retries stretch each refused pull to 10-30 s; two attempts keep the
    # failure (and the test) quick. test_dvc_push_against_a_dead_remote_fails_cleanly keeps
    # the defaults.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    project = tmp_path / "fmnist"
    res = cli("init", str(project), "--example", "fashion-mnist", "--remote",
              f"s3://{moto_server.bucket}/x", "--endpoint-url", s3_proxy.url(), env=IDENTITY)
    assert res.returncode == 0, res.stderr
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["epochs"] = 1  # the pipeline is the same; one epoch keeps it fast
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(project, "commit", "-qam", "test: 1 epoch")
    head = git(project, "rev-parse", "HEAD")
    origin = project / ".gitlab-ci-local" / "origin.git"
    outputs: list[str] = []

    # 1. The remote is down before the pipeline: train fails on its first pull, clearly,
    #    and leaves nothing behind (no artifacts, no objects, no commit).
    keys = _keys(moto_server)
    assert keys, "init pushed the training data"
    s3_proxy.down()
    code, status, out = run_pipeline(project, job="mlops-train")
    outputs.append(out)
    assert code == 1, out
    assert status == {"mlops-train": "failed"}
    log = job_log(project, "mlops-train")
    assert f'{NO_CONNECT}: "http://127.0.0.1:{s3_proxy.port}/' in log
    # One line from `ci-gen job train`: the step, then DVC's ERROR line (no support footer).
    assert "ci-gen: error: train: cannot pull train_data.dvc: ERROR: failed to connect to s3" in log
    assert "Having any troubles" not in log and "Running stage" not in log  # stopped at the pull
    assert NO_CONNECT in out  # run_local shows the failed job's last lines
    assert git(origin, "rev-parse", "main") == head
    assert not (project / ".gitlab-ci-local" / "artifacts" / "mlops-train" / "model").exists()
    assert _keys(moto_server) == keys

    # 2. The remote is back, then goes down mid-pipeline, right after train (which pushed the
    #    run cache): dvc-upload fails at its first pull, pushes nothing, commits nothing.
    s3_proxy.up()
    stream = _OutageAt(r"^ci-gen: mlops-train: passed", s3_proxy, moto_server)
    code, status, out = run_pipeline(project, stream, job="mlops-dvc-upload")
    outputs.append(out)
    assert stream.keys_at_outage is not None, out
    assert code == 1, out
    assert status == {"mlops-train": "passed", "mlops-dvc-upload": "warning"}  # allow_failure: manual
    assert "trained 1 epochs on" in job_log(project, "mlops-train")
    upload = job_log(project, "mlops-dvc-upload")
    assert f'{NO_CONNECT}: "http://127.0.0.1:{s3_proxy.port}/' in upload
    assert "$ dvc commit" not in upload and "$ ci-gen job commit-pointers" not in upload
    assert git(origin, "rev-parse", "main") == head
    assert _keys(moto_server) == stream.keys_at_outage
    assert len(stream.keys_at_outage) > len(keys)  # train did reach the remote before
    assert git(project, "status", "--porcelain") == ""

    # 3. The remote goes down inside dvc-upload, after its pull and before its push (the
    #    `$ dvc commit` echo): the push fails, the pointers hashed into the job's dvc.lock
    #    are not committed, nothing reaches origin.
    s3_proxy.up()
    stream = _OutageAt(r"^mlops-dvc-upload\b.*\$ dvc commit", s3_proxy, moto_server)
    code, status, out = run_pipeline(project, stream, quiet=False, job="mlops-dvc-upload")
    outputs.append(out)
    assert stream.keys_at_outage is not None, out
    assert code == 1, out
    assert status == {"mlops-train": "passed", "mlops-dvc-upload": "warning"}  # allow_failure: manual
    upload = job_log(project, "mlops-dvc-upload")
    pulled, _, pushed = upload.partition("$ dvc commit")
    assert NO_CONNECT not in pulled and "files added" in pulled  # the pull still worked
    assert "dvc push dvc.yaml" in pushed and f"{NO_CONNECT}: \"http://127.0.0.1:{s3_proxy.port}/" in pushed, upload
    assert "$ ci-gen job commit-pointers" not in upload
    assert git(origin, "rev-parse", "main") == head
    assert _keys(moto_server) == stream.keys_at_outage

    # 4. The remote is back: train restores from the run cache pushed in 2, and dvc-upload
    #    commits the pointers exactly once, with [skip ci]. (The rest of the pipeline after a
    #    recovery is the example's end-to-end test.)
    s3_proxy.up()
    code, status, out = run_pipeline(project, job="mlops-dvc-upload")
    outputs.append(out)
    assert code == 0, out
    assert status == {"mlops-train": "passed", "mlops-dvc-upload": "passed"}
    assert "ci-gen: train: reused from the run cache" in job_log(project, "mlops-train")
    new = git(origin, "rev-list", f"{head}..main").split()
    assert len(new) == 1
    assert git(origin, "rev-parse", f"{new[0]}^") == head
    assert git(origin, "log", "-1", "--format=%s", "main").endswith("[skip ci]")
    changed = git(origin, "diff", "--name-only", head, "main").split()
    assert changed and all(p == "dvc.lock" or p.endswith(".dvc") for p in changed), changed
    assert any(k.startswith("x/models/") for k in _keys(moto_server))

    # No AWS credential in any log, artifact, build copy, commit or printed line, failed
    # runs included.
    history = git(project, "log", "-p", "--all") + git(origin, "log", "-p", "--all")
    scanned, hits = scan_secrets([project], [AWS_KEY, AWS_SECRET])
    assert scanned > 50 and hits == []
    # The secret reached the jobs (they pushed to S3) through the environment only: no job's
    # work tree holds it, not even in the untracked .dvc/config.local.
    builds = list((project / ".gitlab-ci-local" / "builds").rglob("config.local"))
    assert not any(AWS_SECRET in p.read_text() for p in builds)
    assert not any(s in history + "".join(outputs) for s in (AWS_KEY, AWS_SECRET))


# -- the registry password through a real build and push --------------------------------------

CI_WITH_BUILD = f"""\
stages: [train, evaluate, build, upload, deploy, inference]
include:
  - component: gitlab.example.com/mlops/ci-gen/train@{__version__}
  - component: gitlab.example.com/mlops/ci-gen/eval-report@{__version__}
  - component: gitlab.example.com/mlops/ci-gen/docker-build@{__version__}
    inputs:
      tls-verify: false
# The docker-build component's own script, without the train and eval jobs it needs.
build:
  extends: .mlops-buildah
  stage: build
  needs: []
"""


@pytest.mark.slow  # a real build and push: ~4-5 s with the registry start
def test_registry_password_never_leaks(tmp_path, buildah_env, docker_registry_auth, monkeypatch):
    reg = docker_registry_auth
    for name in ("CI_REGISTRY_PASSWORD", "CI_REGISTRY_USER", "CI_REGISTRY", "CI_REGISTRY_IMAGE"):
        monkeypatch.delenv(name, raising=False)
    project = tmp_path / "demo"
    project.mkdir()
    git(project, "init", "-q", "-b", "main")
    git(project, "remote", "add", "origin", "git@gitlab.example.com:mlops/demo.git")
    (project / ".gitlab-ci.yml").write_text(CI_WITH_BUILD)
    (project / "hello.txt").write_text("hello\n")
    (project / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    (project / ".gitignore").write_text(".gitlab-ci-local/\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "init")

    # As masked CI/CD variables reach a job: variables of the run, not files or arguments.
    variables = {"CI_REGISTRY": reg.host, "CI_REGISTRY_IMAGE": f"{reg.host}/mlops/demo",
                 "CI_REGISTRY_USER": reg.username, "CI_REGISTRY_PASSWORD": reg.password}
    # Not quiet: `out` then holds every line gitlab-ci-local printed, job output included.
    code, status, out = run_pipeline(project, quiet=False, job="build", variables=variables)
    assert code == 0, out + job_log(project, "build")
    assert status == {"build": "passed"}
    assert "Login Succeeded" in job_log(project, "build")
    sha = git(project, "rev-parse", "HEAD")
    assert reg.tags("mlops/demo") == sorted([sha, "main"])  # the registry refuses anonymous pushes

    # The password, and the base64 user:password form registry auth files use.
    basic = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    secrets = [reg.password, basic]
    scanned, hits = scan_secrets([project], secrets)
    assert scanned > 10 and hits == []
    # Control: `buildah login` stored the credentials in its auth file (outside the project,
    # where a runner keeps them), so the scan above looks for the right bytes.
    assert scan_secrets([Path(os.environ["REGISTRY_AUTH_FILE"]).parent], [basic])[1] == ["auth.json"]
    assert not any(s in out for s in secrets)
    assert not any(s in git(project, "log", "-p", "--all") for s in secrets)
