"""`remote-auth: oidc` (issue 25): `ci-gen job dvc-auth --auth oidc` exchanges the job's ID
token for short-lived credentials, which reach the job's shell through `eval` only.

Against moto's server with IAM authentication on and the loopback STS stand-in of
tests/support/sts.py (its docstring says what that proves and what it does not): the
documented refusals are each one line naming the cause, with nothing on stdout, so the job's
shell stops before any DVC command and nothing is pushed; an accepted token gives
credentials that DVC pushes with while static keys are refused. The pipeline run
(train -> dvc-upload -> a fresh pipeline restores) is test_dvc_auth_oidc_pipeline.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitlab_fake import PROJECT_ID, clean_env, gitlab_fake  # noqa: F401  (fixtures)
from support.sts import AUD, ROLE, Signer, StsStandIn, start_auth_moto

from ci_gen import cli
from ci_gen.dvcrepo import oidc
from ci_gen.render import render

BIN = Path(sys.executable).parent
BUCKET = "ci-gen-oidc"
PROJECT_ENV = {"CI_PROJECT_PATH": "mlops/fmnist", "CI_JOB_NAME": "mlops-dvc-upload", "CI_JOB_ID": "4242"}


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OSS_", "DVC_", "CI_"))}
    env.update(HOME=str(tmp / "home"), DVC_NO_ANALYTICS="1", XDG_CONFIG_HOME=str(tmp / "xdg"),
               AWS_EC2_METADATA_DISABLED="true", PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    env.update(PROJECT_ENV)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def signer():
    return Signer()


@pytest.fixture(scope="module")
def clouds(signer):
    """moto (auth on after setup) and the STS stand-in in front of it."""
    moto = start_auth_moto(BUCKET)
    sts = None
    try:
        sts = StsStandIn(signer, moto).start()
        moto.authenticate_from_now()
        yield moto, sts
    finally:
        if sts:
            sts.stop()
        moto.stop()


@pytest.fixture
def project(tmp_path, clouds):
    """A DVC project whose default remote is the moto bucket; one file added, not pushed."""
    moto, _ = clouds
    root = tmp_path / "proj"
    root.mkdir()
    env = _env(tmp_path)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    for args in (("init", "-q"), ("remote", "add", "-d", "data", f"s3://{BUCKET}/{tmp_path.name}"),
                 ("remote", "modify", "data", "endpointurl", moto.url)):
        subprocess.run([str(BIN / "dvc"), *args], cwd=root, env=env, check=True, capture_output=True)
    (root / "data.txt").write_text("keyless\n")
    subprocess.run([str(BIN / "dvc"), "add", "-q", "data.txt"], cwd=root, env=env, check=True,
                   capture_output=True)
    return root


def _keys_under(moto, prefix: str) -> list[str]:
    listed = moto.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def _auth_line() -> str:
    """dvc-upload's own script line for the credentials, and the line after it, as rendered."""
    import yaml

    body = yaml.safe_load(render("dvc-upload").split("\n---\n", 1)[1])
    script = body["$[[ inputs.job-prefix ]]-dvc-upload"]["script"]
    line = next(s for s in script if "ci-gen job dvc-auth" in s)
    values = {"remote-auth": "oidc", "remote-role": ROLE, "remote-aud": AUD}
    return re.sub(r"\$\[\[ inputs\.([a-z-]+) \]\]", lambda m: values[m.group(1)], line)


def _job(project: Path, tmp: Path, sts: StsStandIn, moto, token: str) -> subprocess.CompletedProcess:
    """The job's shell as a runner runs it (`set -e`): the rendered dvc-auth line, then a push."""
    script = f"set -eo pipefail\n{_auth_line()}\ndvc push -q\necho pushed\n"
    env = _env(tmp, CI_GEN_ID_TOKEN=token, AWS_ENDPOINT_URL=moto.url, AWS_ENDPOINT_URL_STS=sts.url)
    return subprocess.run(["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True,
                          timeout=180)


# -- refusals: one line naming the cause, nothing pushed ---------------------------------------

REFUSALS = {
    # a token for another project: the role's trust policy does not name it
    "other project": (dict(project="someone/else"), 0,
                      "dvc-auth: the role arn:aws:iam::123456789012:role/ci-gen-dvc does not trust this token "
                      "(project someone/else, branch main): its trust policy's `sub` condition does not name "
                      "this project and branch; AWS STS said AccessDenied: "
                      "'Not authorized to perform sts:AssumeRoleWithWebIdentity'"),
    # an unprotected feature branch, where the role trusts main only
    "other branch": (dict(ref="feature-x", protected=False), 0,
                     "dvc-auth: the role arn:aws:iam::123456789012:role/ci-gen-dvc does not trust this token "
                     "(project mlops/fmnist, branch feature-x): its trust policy's `sub` condition does not "
                     "name this project and branch; AWS STS said AccessDenied: "
                     "'Not authorized to perform sts:AssumeRoleWithWebIdentity'"),
    # expired by AWS's clock (ours is behind): the ExpiredTokenException answer
    "expired": (dict(lifetime=60), 3600,
                "dvc-auth: expired ID token (project mlops/fmnist, branch main); AWS STS said "
                "ExpiredTokenException: 'Token expired: current date/time must be before the expiration "
                "date/time'"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_exchange_is_one_line_and_nothing_is_pushed(case, signer, clouds, project, tmp_path):
    moto, sts = clouds
    claims, skew, line = REFUSALS[case]
    sts.clock_skew = skew
    try:
        proc = _job(project, tmp_path, sts, moto, signer.token(**claims))
    finally:
        sts.clock_skew = 0
    assert proc.returncode != 0
    assert proc.stderr.splitlines() == [f"ci-gen: error: {line}"], proc.stderr
    assert proc.stdout == ""  # no export line, and the job never reached `dvc push`
    assert _keys_under(moto, tmp_path.name) == []
    assert not (project / ".dvc" / "config.local").exists()


def test_an_invalid_token_and_a_wrong_audience_are_named(signer, clouds, project, tmp_path):
    moto, sts = clouds
    forged = Signer().token()  # right claims, another key: AWS cannot verify the signature
    proc = _job(project, tmp_path, sts, moto, forged)
    assert proc.stderr.splitlines() == [
        "ci-gen: error: dvc-auth: invalid ID token (signature, issuer or provider not accepted); AWS STS said "
        "InvalidIdentityToken: \"Couldn't verify the signature of the token\""], proc.stderr
    # The provider does not list the token's audience (the job's `aud` agrees with --aud).
    sts.audiences = ("sts.amazonaws.com",)
    try:
        proc = _job(project, tmp_path, sts, moto, signer.token())
    finally:
        sts.audiences = (AUD,)
    assert proc.stderr.splitlines() == [
        "ci-gen: error: dvc-auth: wrong audience: the ID token is for ci-gen, which the cloud's OIDC provider "
        "does not list as a client ID / audience; AWS STS said InvalidIdentityToken: 'Incorrect token audience'"]
    assert proc.stdout == "" and _keys_under(moto, tmp_path.name) == []


def test_an_expired_token_or_another_audience_is_refused_before_any_call(signer, clouds, project, tmp_path):
    moto, sts = clouds
    before = len(sts.requests)
    expired = signer.token(lifetime=-30)
    proc = _job(project, tmp_path, sts, moto, expired)
    assert re.fullmatch(r"ci-gen: error: dvc-auth: expired ID token \(project mlops/fmnist, branch main\): "
                        r"it expired 3\d s ago; GitLab mints one per job, valid for the job's timeout: "
                        r"re-run the job\n", proc.stderr), proc.stderr
    proc = _job(project, tmp_path, sts, moto, signer.token(aud="https://gitlab.example.com"))
    assert proc.stderr == ("ci-gen: error: dvc-auth: wrong audience: the ID token is for "
                           "https://gitlab.example.com, not ci-gen; the job's `id_tokens` and the input "
                           "`remote-aud` must agree\n")
    assert len(sts.requests) == before


# -- accepted: the credentials reach DVC through the shell only ------------------------------

def test_the_credentials_push_with_auth_on_and_stay_out_of_files(signer, clouds, project, tmp_path):
    moto, sts = clouds
    # Authentication is really on: a made-up key and no key at all are refused.
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        moto.client("s3", ("AKIAMADEUP0000000000", "nope", None)).list_objects_v2(Bucket=BUCKET)
    token = signer.token()
    proc = _job(project, tmp_path, sts, moto, token)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "pushed\n"
    pushed = _keys_under(moto, tmp_path.name)
    assert len(pushed) == 1 and pushed[0].startswith(f"{tmp_path.name}/files/md5/"), pushed
    issued = sts.issued[-1]
    request = sts.requests[-1]
    assert request["RoleArn"] == ROLE and request["DurationSeconds"] == "3600"
    assert request["RoleSessionName"] == "mlops.fmnist.mlops-dvc-upload.4242"
    secrets = [issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"], token]
    assert not any(s in proc.stdout + proc.stderr for s in secrets)
    assert "dvc-auth: remote 'data' (s3): DVC reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, " \
           "AWS_SESSION_TOKEN from the environment (no secret written to disk)" in proc.stderr
    for path in [*project.rglob("*"), *(tmp_path / "home").rglob("*")]:
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), path


def test_without_shell_the_credentials_are_not_printed(signer, clouds, project, tmp_path):
    moto, sts = clouds
    env = _env(tmp_path, CI_GEN_ID_TOKEN=signer.token(), AWS_ENDPOINT_URL=moto.url, AWS_ENDPOINT_URL_STS=sts.url)
    proc = subprocess.run([sys.executable, "-m", "ci_gen", "job", "dvc-auth", "--auth", "oidc", "--role", ROLE],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1] == (
        "dvc-auth: without --shell the credentials cannot reach the job's shell; use: "
        f'eval "$(ci-gen job dvc-auth --repo . --auth oidc --role {ROLE} --aud ci-gen --shell)"')
    assert sts.issued[-1]["SecretAccessKey"] not in proc.stdout + proc.stderr


# -- fast units ---------------------------------------------------------------------------------

def test_session_names_fit_both_clouds():
    pattern = re.compile(r"[A-Za-z0-9_.@-]{2,64}")
    cases = [PROJECT_ENV, {}, {"CI_JOB_ID": "9" * 20, "CI_PROJECT_PATH": "g/" + "sub/" * 40 + "p",
                              "CI_JOB_NAME": "train: [gpu, 0.001]" * 5},
             {"CI_PROJECT_PATH": "ä/b c", "CI_JOB_ID": "1"}]
    for env in cases:
        name = oidc.session_name(env)
        assert pattern.fullmatch(name), name
    long = oidc.session_name(cases[2])
    assert long.endswith("." + "9" * 20) and ".p." in long and len(long) <= 64
    assert oidc.session_name(PROJECT_ENV) == "mlops.fmnist.mlops-dvc-upload.4242"


def test_roles_and_missing_pieces_are_one_line(monkeypatch, capsys, tmp_path):
    assert oidc.parse_role("none", {oidc.ROLE_VARIABLE: ROLE}) == oidc.Role(ROLE, "aws")
    assert oidc.parse_role("acs:ram::1234:role/dvc", {}).cloud == "aliyun"
    with pytest.raises(oidc.Refused, match="no role is named: set the input `remote-role` or the CI/CD "
                                           "variable CI_GEN_REMOTE_ROLE"):
        oidc.parse_role("none", {})
    with pytest.raises(oidc.Refused, match=r"is empty: the job declares no `id_tokens: CI_GEN_ID_TOKEN`"):
        oidc.read_token({})
    with pytest.raises(oidc.Refused, match="not an ID token"):
        oidc.read_token({oidc.TOKEN_VARIABLE: "not-a-jwt"})
    monkeypatch.chdir(tmp_path)
    code = cli.main(["job", "dvc-auth", "--auth", "oidc", "--role", "arn:aws:iam::1:role/x;id", "--shell"])
    assert code == 2
    assert capsys.readouterr().err.startswith("ci-gen: error: --role 'arn:aws:iam::1:role/x;id' is not")


def test_credentials_never_show_in_a_repr():
    creds = oidc.Credentials({"AWS_SECRET_ACCESS_KEY": "s3cr3t-value"}, "2026-01-01T00:00:00")
    assert "s3cr3t" not in repr(creds) and "s3cr3t" not in str(creds)
    lines = oidc.shell_exports(oidc.Credentials({"AWS_SESSION_TOKEN": "a'b"}, "x"))
    assert lines == "export AWS_SESSION_TOKEN='a'\"'\"'b'\nunset CI_GEN_ID_TOKEN\n"


def test_aliyun_roles_stop_at_dvc_oss_without_a_session_token(monkeypatch, capsys, tmp_path):
    """dvc-oss 3.0.0 passes no security token to ossfs: STS credentials could not reach OSS,
    so the job stops with one line instead of a confusing OSS error later."""
    from importlib import metadata
    monkeypatch.setattr(metadata, "version", lambda name: "3.0.0")
    monkeypatch.chdir(tmp_path)
    code = cli.main(["job", "dvc-auth", "--auth", "oidc", "--role", "acs:ram::1234:role/dvc", "--shell"])
    assert code == 1
    err = capsys.readouterr().err
    assert err == ("ci-gen: error: dvc-auth: dvc-oss 3.0.0 passes no security token to OSS, so DVC cannot use "
                   "the STS credentials of an Alibaba Cloud role: keep remote-auth: keys for oss:// remotes "
                   "until a dvc-oss release reads one\n")


def test_aliyun_exchange_sends_the_documented_request(signer, monkeypatch):
    """AssumeRoleWithOIDC as Alibaba's API reference documents it, against a loopback server
    that only records the request and answers in the documented shapes (no Alibaba Cloud
    stand-in decides anything here: the refusal's wording comes from the documented code)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs

    from servers import free_port

    seen: list[tuple[str, dict]] = []
    answers = [
        (200, {"RequestId": "r1", "AssumedRoleUser": {"Arn": "acs:ram::1234:role/dvc/s", "AssumedRoleId": "3"},
               "Credentials": {"AccessKeyId": "STS.NUgYrLnoC37mZZCNnAbez2", "AccessKeySecret": "CVwjCkNzTMupZ8NbTCxCBRq3K16jtcWFTJAyBEv2",
                               "SecurityToken": "CAIS+AF1q6Ft5B2yfSjIr5b", "Expiration": "2026-12-05T04:00:00Z"}}),
        (400, {"RequestId": "r2", "Code": "AuthenticationFail.OIDCToken.Expired",
               "Message": "This JsonWebToken is expired."}),
        (403, {"RequestId": "r3", "Code": "NoPermission", "Message": "You are not authorized to do this action."}),
    ]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            seen.append((self.path, {k: v[0] for k, v in parse_qs(body).items()}))
            status, data = answers[len(seen) - 1]
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        token = signer.token()
        env = {**PROJECT_ENV, oidc.TOKEN_VARIABLE: token, oidc.ALIYUN_ENDPOINT_VARIABLE:
               f"http://127.0.0.1:{server.server_address[1]}",
               oidc.PROVIDER_VARIABLE: "acs:ram::1234:oidc-provider/gitlab"}
        role = oidc.Role("acs:ram::1234:role/dvc", "aliyun")
        creds = oidc.exchange(role, env, AUD, 900)
        assert sorted(creds.env) == ["OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"]
        path, form = seen[0]
        assert path == "/" and token not in path  # the token travels in the body only
        assert {k: form[k] for k in ("Action", "Version", "Format", "RoleArn", "OIDCProviderArn",
                                     "RoleSessionName", "DurationSeconds", "OIDCToken")} == {
            "Action": "AssumeRoleWithOIDC", "Version": "2015-04-01", "Format": "JSON",
            "RoleArn": "acs:ram::1234:role/dvc", "OIDCProviderArn": "acs:ram::1234:oidc-provider/gitlab",
            "RoleSessionName": "mlops.fmnist.mlops-dvc-upload.4242", "DurationSeconds": "900",
            "OIDCToken": token}
        with pytest.raises(oidc.Refused) as info:
            oidc.exchange(role, env, AUD, 900)
        assert str(info.value) == ("dvc-auth: expired ID token (project mlops/fmnist, branch main); Alibaba Cloud "
                                   "STS said AuthenticationFail.OIDCToken.Expired: 'This JsonWebToken is expired.'")
        with pytest.raises(oidc.Refused, match=r"^dvc-auth: the role acs:ram::1234:role/dvc does not trust"):
            oidc.exchange(role, env, AUD, 900)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(oidc.Refused, match="set the CI/CD variable CI_GEN_OIDC_PROVIDER_ARN"):
        oidc.exchange(role, {**env, oidc.PROVIDER_VARIABLE: ""}, AUD, 900)
    with pytest.raises(oidc.Refused, match="--duration 60 is outside 900..43200"):
        oidc.exchange(role, env, AUD, 60)


# -- ci-gen lint: static keys while oidc is available ------------------------------------------

def _pipeline(tmp_path: Path, auth: str, variables: str = "") -> Path:
    from ci_gen import __version__

    f = tmp_path / ".gitlab-ci.yml"
    f.write_text(
        "stages: [train]\n"
        + variables +
        "include:\n"
        f"  - component: $CI_SERVER_FQDN/mlops/ci-gen/train@{__version__}\n"
        "    inputs:\n"
        f"      remote-auth: {auth}\n"
        f"      remote-role: {ROLE}\n")
    return f


def test_lint_warns_of_static_keys_while_oidc_is_available(tmp_path):
    from ci_gen.lint.linter import lint_file

    f = _pipeline(tmp_path, "keys", "variables:\n  AWS_SECRET_ACCESS_KEY: $SOMETHING\n")
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    remote = data\n['remote \"data\"']\n"
                                              "    url = s3://b/p\n    secret_access_key = abc123\n")
    found = [(Path(x.path).relative_to(tmp_path).as_posix(), x.location, x.severity, x.message)
             for x in lint_file(f, root=tmp_path).findings]
    hint = ("the DVC jobs (mlops-train) can use `remote-auth: oidc` instead: short-lived credentials from the "
            "job's ID token, no stored key (see Keyless credentials in ci-gen's README)")
    assert (".gitlab-ci.yml", "3:3", "warning",
            f"static cloud key AWS_SECRET_ACCESS_KEY in the pipeline file: a secret in the repository; {hint}") in found
    assert (".dvc/config", "5:1", "warning",
            f"static cloud key `secret_access_key` committed in the DVC config: a secret in the repository; "
            f"{hint}") in found
    assert not any("abc123" in x[3] for x in found)
    # oidc: the jobs need no key, so nothing to warn about; the component renders and lints clean.
    f = _pipeline(tmp_path, "oidc")
    assert [x for x in lint_file(f, root=tmp_path).findings if "static cloud key" in x.message] == []
    assert [str(x) for x in lint_file(f, root=tmp_path).findings if x.severity == "error"] == []


def test_keys_mode_in_the_job_line_prints_nothing_to_eval(project, tmp_path):
    """remote-auth: keys (the default) through the same script line: DVC reads the masked
    variables itself; ci-gen's messages go to the log (stderr), nothing is evaluated."""
    env = _env(tmp_path, AWS_ACCESS_KEY_ID="AKIAKEYSMODE00000000", AWS_SECRET_ACCESS_KEY="keys-mode-secret")
    proc = subprocess.run([sys.executable, "-m", "ci_gen", "job", "dvc-auth", "--auth", "keys", "--role", "none",
                           "--aud", AUD, "--shell"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "dvc-auth: remote 'data' (s3): DVC reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY from the environment "
        "(no secret written to disk)"]


def test_lint_with_gitlab_warns_of_keys_the_project_stores(tmp_path, clean_env, gitlab_fake, capsys):
    """`ci-gen lint --gitlab-url`: the project's CI/CD variables (keys only, never a value)
    hold static cloud keys while its DVC jobs could use oidc: one warning naming them. A token
    that may not list variables (403) adds nothing."""
    from gitlab_fake import PROJECT_PATH

    clean_env.setenv("GITLAB_API_TOKEN", gitlab_fake.token)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "OTHER"):
        gitlab_fake.variables[PROJECT_ID].append({
            "variable_type": "env_var", "key": key, "value": "sentinel-value-123", "protected": False,
            "masked": True, "hidden": False, "raw": True, "environment_scope": "*", "description": None})
    f = _pipeline(tmp_path, "keys")
    # 1: the loopback GitLab publishes no ci-gen release to include ("content not found", as
    # GitLab says); the variables are checked all the same.
    assert cli.main(["lint", str(f), "--gitlab-url", gitlab_fake.url, "--project", PROJECT_PATH]) == 1
    out = capsys.readouterr().out
    assert (f"{f}: warning: project {PROJECT_PATH} stores static cloud keys (AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY) as CI/CD variables while its DVC jobs (mlops-train) can use "
            "`remote-auth: oidc`: short-lived credentials from the job's ID token; then delete the keys "
            "(see Keyless credentials in ci-gen's README)") in out.splitlines(), out
    assert "sentinel-value" not in out
    gitlab_fake.can_admin_variables = False
    cli.main(["lint", str(f), "--gitlab-url", gitlab_fake.url, "--project", PROJECT_PATH])
    assert "stores static cloud keys" not in capsys.readouterr().out
    gitlab_fake.can_admin_variables = True
    f = _pipeline(tmp_path, "oidc")
    cli.main(["lint", str(f), "--gitlab-url", gitlab_fake.url, "--project", PROJECT_PATH])
    assert "stores static cloud keys" not in capsys.readouterr().out
