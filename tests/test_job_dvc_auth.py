"""`ci-gen job dvc-auth`: secrets stay in the environment (DVC reads them there), endpoints
go into .dvc/config.local; nothing is printed but names. `ci-gen init`'s own use writes the
secrets too (the user's project, not a job's work tree).

Real `dvc init`/`dvc remote` projects; one test pushes to a real S3 endpoint (moto_server on
127.0.0.1) with the secrets in the environment only, after dvc-auth wrote none to disk.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ci_gen import cli
from ci_gen.dvcrepo import credentials as dvc_credentials

BIN = Path(sys.executable).parent
# Values a real secret may contain, including configobj's special characters.
SECRET = "wJalr/XUtnFEMI+K7MDENG=bPxR#fi;CY'\"x,y"
ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE123",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLETOKEN==",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "OSS_ACCESS_KEY_ID": "LTAIEXAMPLE",
    "OSS_ACCESS_KEY_SECRET": "oss-" + SECRET,
    "OSS_ENDPOINT": "oss-cn-hangzhou.aliyuncs.com",
}


def _clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "OSS_", "DVC_", "CI_"))}
    # No ~/.aws or global DVC config can supply credentials behind the test's back.
    env.update(HOME=str(tmp / "home"), DVC_NO_ANALYTICS="1", XDG_CONFIG_HOME=str(tmp / "xdg"),
               AWS_EC2_METADATA_DISABLED="true")  # no instance-metadata probing for creds
    env.update(extra)
    return env


def _dvc(repo: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A git + DVC project with s3, oss and local remotes, made once (dvc's CLI is slow)."""
    tmp = tmp_path_factory.mktemp("dvc-auth")
    root = tmp / "proj"
    root.mkdir()
    env = _clean_env(tmp)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    _dvc(root, "init", "-q", env=env)
    _dvc(root, "remote", "add", "-d", "data", "s3://data-bucket/dvc", env=env)
    _dvc(root, "remote", "add", "models", "oss://model-bucket/dvc", env=env)
    _dvc(root, "remote", "add", "shared", "/srv/shared-remote", env=env)
    return root


@pytest.fixture
def repo(template, tmp_path):
    root = tmp_path / "proj"
    shutil.copytree(template, root, symlinks=True)
    return root


def _auth(repo: Path, tmp: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ci_gen", "job", "dvc-auth"], cwd=repo,
                          env=_clean_env(tmp, **env), capture_output=True, text=True, timeout=60)


def _local_conf(repo: Path) -> dict:
    from dvc.config import Config

    return Config(dvc_dir=str(repo / ".dvc"), validate=False).read("local")["remote"]


def test_writes_no_secret_and_prints_only_names(repo, tmp_path):
    proc = _auth(repo, tmp_path, ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "dvc-auth: remote 'shared' (local): needs no credentials from ci-gen",
        "dvc-auth: remote 'data' (s3): DVC reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_SESSION_TOKEN from the environment (no secret written to disk)",
        "dvc-auth: remote 'models' (oss): DVC reads OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET "
        "from the environment (no secret written to disk)",
        "dvc-auth: remote 'data' (s3): wrote endpointurl to .dvc/config.local",
        "dvc-auth: remote 'models' (oss): wrote oss_endpoint to .dvc/config.local",
    ]
    for value in ENV.values():
        assert value not in proc.stdout + proc.stderr
    local = repo / ".dvc" / "config.local"
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    conf = _local_conf(repo)
    assert conf["data"] == {"endpointurl": "http://127.0.0.1:9"}
    assert conf["models"] == {"oss_endpoint": "oss-cn-hangzhou.aliyuncs.com"}
    assert "shared" not in conf
    secrets = [v for k, v in ENV.items() if "ENDPOINT" not in k]
    for path in (repo / ".dvc").rglob("*"):
        if path.is_file():
            assert not any(v in path.read_text(errors="replace") for v in secrets), path
    status = subprocess.run(["git", "status", "--porcelain", "--ignored", ".dvc/config.local"],
                            cwd=repo, capture_output=True, text=True, check=True).stdout
    assert status.startswith("!!")


def test_init_writes_every_setting_into_the_users_project(repo, tmp_path):
    """`ci-gen init` (the user's own machine, before its first push) keeps the secrets in
    .dvc/config.local, so the user's later `dvc push` works."""
    import io

    written = dvc_credentials.write_credentials(repo, env=ENV, out=io.StringIO())
    assert written == {"data": ["access_key_id", "endpointurl", "secret_access_key", "session_token"],
                       "models": ["oss_endpoint", "oss_key_id", "oss_key_secret"]}
    conf = _local_conf(repo)
    assert conf["data"]["secret_access_key"] == SECRET
    assert conf["models"]["oss_key_secret"] == "oss-" + SECRET
    # DVC's own CLI reads the file back, and nothing secret went to the tracked config.
    got = _dvc(repo, "config", "--local", "remote.data.secret_access_key", env=_clean_env(tmp_path)).stdout
    assert got.strip() == SECRET
    assert SECRET not in (repo / ".dvc" / "config").read_text()


def test_keeps_other_local_settings_and_tightens_mode(repo, tmp_path):
    env = _clean_env(tmp_path)
    _dvc(repo, "remote", "modify", "--local", "data", "region", "eu-west-1", env=env)
    _dvc(repo, "config", "--local", "core.autostage", "true", env=env)
    local = repo / ".dvc" / "config.local"
    local.chmod(0o644)
    proc = _auth(repo, tmp_path, {"AWS_ACCESS_KEY_ID": "AKIA2", "AWS_SECRET_ACCESS_KEY": "s2",
                                  "AWS_ENDPOINT_URL": "http://127.0.0.1:8"})
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    conf = _local_conf(repo)
    assert conf["data"] == {"region": "eu-west-1", "endpointurl": "http://127.0.0.1:8"}
    assert "autostage = true" in local.read_text()
    assert "oss_key_id" not in local.read_text()
    assert ("dvc-auth: remote 'models' (oss): none of OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, "
            "OSS_ENDPOINT is set; left as is") in proc.stdout


def test_no_credentials_in_the_environment_changes_nothing(repo, tmp_path):
    proc = _auth(repo, tmp_path, {"AWS_ACCESS_KEY_ID": ""})
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[-1] == (
        "dvc-auth: no credentials in the environment; .dvc/config.local unchanged")
    assert not (repo / ".dvc" / "config.local").exists()


def test_project_without_remotes(tmp_path):
    root = tmp_path / "bare"
    root.mkdir()
    _dvc(root, "init", "-q", "--no-scm", env=_clean_env(tmp_path))
    proc = _auth(root, tmp_path, ENV)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "dvc-auth: the project has no DVC remote; nothing to do"


def test_not_a_dvc_project_is_a_clear_error(tmp_path, capsys, monkeypatch):
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA3")
    code = cli.main(["job", "dvc-auth", "--repo", str(plain)])
    err = capsys.readouterr().err
    assert code == 1
    assert err == (f"ci-gen: error: dvc-auth: {plain} is not inside a DVC project "
                   "(no .dvc directory; run `dvc init` first)\n")


def test_plan_matches_remote_types():
    remotes = {"a": {"url": "s3://b/p"}, "b": {"url": "OSS://b/p"}, "c": {"url": "gs://b/p"},
               "d": {"url": "/srv/dvc"}}
    env = {"AWS_ACCESS_KEY_ID": "k", "OSS_ENDPOINT": "e", "AWS_SECRET_ACCESS_KEY": ""}
    assert dvc_credentials.plan(remotes, env) == {"a": {"access_key_id": "k"}, "b": {"oss_endpoint": "e"}}
    assert dvc_credentials.plan(remotes, env, secrets=False) == {"b": {"oss_endpoint": "e"}}


# ---------------------------------------------------------------- a real S3 endpoint

@pytest.mark.slow
def test_dvc_push_to_s3_reads_the_secrets_from_the_environment(tmp_path, moto_server):
    root = tmp_path / "proj"
    root.mkdir()
    env = _clean_env(tmp_path)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    _dvc(root, "init", "-q", env=env)
    _dvc(root, "remote", "add", "-d", "data", f"s3://{moto_server.bucket}/dvc", env=env)
    # The endpoint is in the tracked config: only the credentials are missing.
    _dvc(root, "remote", "modify", "data", "endpointurl", moto_server.endpoint_url, env=env)
    (root / "data.txt").write_text("hello\n")
    _dvc(root, "add", "-q", "data.txt", env=env)

    # Without credentials the push fails: nothing else (env, ~/.aws) supplies them.
    denied = subprocess.run([str(BIN / "dvc"), "push"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=120)
    assert denied.returncode != 0
    assert "credentials" in (denied.stdout + denied.stderr).lower()

    creds = {"AWS_ACCESS_KEY_ID": "AKIAMOTO", "AWS_SECRET_ACCESS_KEY": SECRET}
    proc = _auth(root, tmp_path, creds)
    assert proc.returncode == 0, proc.stderr
    assert not any(SECRET in p.read_text(errors="replace") for p in (root / ".dvc").rglob("*") if p.is_file())
    env = {**env, **creds}  # as in the job: the masked variables, nowhere else
    _dvc(root, "push", "-q", env=env)
    listed = moto_server.client().list_objects_v2(Bucket=moto_server.bucket)
    assert [o["Key"] for o in listed.get("Contents", [])] == [
        "dvc/files/md5/b1/946ac92492d2347c6235b4d2611184"]
    shutil.rmtree(root / ".dvc" / "cache")
    (root / "data.txt").unlink()
    _dvc(root, "pull", "-q", env=env)
    assert (root / "data.txt").read_text() == "hello\n"
