"""`remote-auth: oidc` in a real pipeline (issue 25, acceptance 1 and 2): the example project
on an S3 remote served by moto with IAM authentication on, every DVC component included with
`remote-auth: oidc`, and no static key anywhere in the jobs' environment. train ->
dvc-upload in gitlab-ci-local, then a fresh pipeline's train restores the uploaded model; each
job's ID token is minted by the test (RS256, GitLab's claims) and exchanged through the STS
stand-in of tests/support/sts.py (what it proves and does not: see its docstring). Then no
issued credential (nor the ID token) is in any file of any job's work tree, artifact, cache or
log, nor in the project.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from support.cli import cli
from support.counts import record_counts
from support.pipeline import job_log, run_pipeline
from support.sts import ROLE, Signer, StsStandIn, start_auth_moto

from ci_gen.local.project import parse_origin
from ci_gen.scaffold.example import STAND_IN_REMOTE

pytestmark = pytest.mark.slow

BUCKET = "ci-gen-oidc-pipeline"
DVC_COMPONENTS = ("train", "sweep", "edge-convert", "eval-report", "dvc-upload", "inference", "monitor")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout


def _use_oidc(project: Path) -> None:
    """Every DVC component's include gets remote-auth: oidc and the role."""
    path = project / ".gitlab-ci.yml"
    config = yaml.safe_load(path.read_text())
    changed = 0
    for inc in config["include"]:
        name = (inc.get("component") or inc.get("local", "")).rsplit("/", 1)[-1].split("@")[0].removesuffix(".yml")
        if name in DVC_COMPONENTS:
            inc.setdefault("inputs", {}).update({"remote-auth": "oidc", "remote-role": ROLE})
            changed += 1
    assert changed >= 5, config["include"]
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def test_oidc_train_upload_then_a_fresh_pipeline_restores(tmp_path, monkeypatch):
    for name in ("GITLAB_API_TOKEN", "REPO_TOKEN", "CI_JOB_TOKEN", "TF_CPP_MIN_LOG_LEVEL",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.aws behind the test's back
    moto = start_auth_moto(BUCKET)
    signer = Signer()
    sts = None
    try:
        project = tmp_path / "fmnist"
        # Setup, authentication still off: `ci-gen init` pushes the training data (any key).
        res = cli("init", str(project), "--example", "fashion-mnist", "--remote", f"s3://{BUCKET}/fmnist",
                  "--endpoint-url", moto.url,
                  env={"AWS_ACCESS_KEY_ID": moto.user_keys[0], "AWS_SECRET_ACCESS_KEY": moto.user_keys[1]})
        assert res.returncode == 0, res.stderr
        # init keeps the user's keys in the user's own .dvc/config.local: a job must not find them.
        (project / ".dvc" / "config.local").unlink()
        params = project / "params.yaml"
        params.write_text(params.read_text().replace("epochs: 12", "epochs: 1").replace("width: 32", "width: 8"))
        _use_oidc(project)
        _git(project, "commit", "-qam", "test: remote-auth oidc, one epoch")
        # init gives a repository it creates the `gcl-origin` stand-in (never `origin`).
        origin = parse_origin(_git(project, "remote", "get-url", STAND_IN_REMOTE).strip())
        path = origin.path
        sts = StsStandIn(signer, moto, trusted=f"project_path:{path}:ref_type:branch:ref:main").start()

        def stored() -> int:
            pages = moto.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="fmnist/")
            return sum(page.get("KeyCount", 0) for page in pages)

        data_only = stored()  # the training data init pushed
        moto.authenticate_from_now()
        from botocore.exceptions import ClientError
        with pytest.raises(ClientError, match="InvalidAccessKeyId"):
            moto.client("s3", ("AKIAMADEUP0000000000", "nope", None)).list_objects_v2(Bucket=BUCKET)
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.url)

        # 1. train -> dvc-upload. GitLab mints a token per job; gitlab-ci-local mints none, so the
        # test passes one for the run as the variable the jobs declare.
        tokens = [signer.token(project=path), signer.token(project=path, job_id=4343)]
        code, status, out = run_pipeline(project, quiet=False, job="mlops-dvc-upload",
                                         variables={"CI_GEN_ID_TOKEN": tokens[0]})
        assert code == 0, out[-4000:]
        assert status["mlops-train"] == "passed" and status["mlops-dvc-upload"] == "passed", status
        for job in ("mlops-train", "mlops-dvc-upload"):
            log = job_log(project, job)
            assert "dvc-auth: assumed arn:aws:iam::123456789012:role/ci-gen-dvc with the job's ID token" in log
        assert len(sts.issued) == 2
        assert {r["RoleSessionName"].rsplit(".", 1)[0] for r in sts.requests} == {
            f"{path.replace('/', '.')}.mlops-train", f"{path.replace('/', '.')}.mlops-dvc-upload"}
        assert stored() > data_only  # the model and the run cache, pushed with the role's credentials

        # 2. A fresh pipeline on the pointer commit: train restores the model from the remote.
        _git(project, "pull", "-q", "--ff-only", str(project / ".gitlab-ci-local" / "origin.git"), "main")
        cache = project / ".gitlab-ci-local" / "cache"
        if cache.exists():
            subprocess.run(["rm", "-rf", str(cache)], check=True)
        code, status, out2 = run_pipeline(project, quiet=False, job="mlops-train",
                                          variables={"CI_GEN_ID_TOKEN": tokens[1]})
        assert code == 0, out2[-4000:]
        assert "ci-gen: train: restored from the remote (dvc.lock matches)" in job_log(project, "mlops-train")
        assert len(sts.issued) == 3

        # 3. No issued credential, nor a token, in any file of the project, the jobs' work
        # trees, artifacts, caches and logs (all under the project), nor in the output.
        secrets = [v for c in sts.issued for v in (c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])]
        secrets += tokens
        files = list(_files(project))
        found = [(p, s[:8]) for p in files for s in secrets if s.encode() in p.read_bytes()]
        # benchmarks/hardening_counts.py prints these figures (secrets, oidc path).
        record_counts("secrets_oidc", {"secrets": len(secrets), "scanned": len(files) + 2,
                                       "found": len(found)})
        assert found == []
        assert not any(s in out + out2 for s in secrets)
        builds = project / ".gitlab-ci-local" / "builds"
        assert {p.name for p in builds.iterdir()} >= {"mlops-train", "mlops-dvc-upload"}
    finally:
        if sts:
            sts.stop()
        moto.stop()
