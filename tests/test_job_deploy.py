"""`ci-gen job deploy` / `ci-gen job stop`: real processes, real HTTP on 127.0.0.1.

The serve scripts are small http.server programs written by the tests (the example's real
serve.py is covered by the example's own tests): one healthy, one that stays LOADING, one
that exits at once. Every test runs with its own CI_GEN_STATE_DIR, and a fixture kills any
process started from it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from ci_gen import cli
from ci_gen.deploy.health import probe
from ci_gen.deploy.spec import make_spec
from ci_gen.deploy.target import container_config
from ci_gen.errors import UsageError
from servers import free_port
from support.cli import cancelled

SERVE = textwrap.dedent('''\
    import argparse, http.server, json, os, sys
    MODE = {mode!r}
    MARKER = {marker!r}
    ap = argparse.ArgumentParser()
    ap.add_argument("--model_name", required=True)
    ap.add_argument("--model_base_path", required=True)
    ap.add_argument("--rest_api_port", type=int, required=True)
    ap.add_argument("--rest_api_host", default="0.0.0.0")
    a = ap.parse_args()
    if MODE == "exit":
        print("boom: cannot load model from " + a.model_base_path, flush=True)
        sys.exit(3)
    version = max(os.listdir(a.model_base_path), key=int)

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/v1/models/" + a.model_name:
                self.send_response(404); self.end_headers(); return
            state = "AVAILABLE" if MODE == "ok" else "LOADING"
            body = json.dumps({{
                "model_version_status": [{{"version": version, "state": state,
                                          "status": {{"error_code": "OK", "error_message": ""}}}}],
                "marker": MARKER,
                "greeting": os.environ.get("GREETING"),
                "model_name_env": os.environ.get("MODEL_NAME"),
                "leaked": sorted(k for k in os.environ if k.startswith(("AWS_", "CI_JOB"))),
            }}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    print("serving " + MARKER + " on port " + str(a.rest_api_port), flush=True)
    http.server.HTTPServer((a.rest_api_host, a.rest_api_port), H).serve_forever()
''')


def _pids_under(path: Path) -> list[int]:
    """Live processes whose command line mentions `path` (the test's state dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(path) in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class Project:
    """A job workspace (serve script + model) and the state dir of its deployments."""

    def __init__(self, root: Path):
        self.root = root
        self.work = root / "work"
        self.state = root / "state"
        self.work.mkdir()
        self.port = free_port()
        self.dotenv = self.work / "deploy.env"
        (self.work / "model" / "fashion-mnist" / "1").mkdir(parents=True)
        (self.work / "model" / "fashion-mnist" / "1" / "saved_model.pb").write_bytes(b"x")
        self.serve("ok", "A")

    def serve(self, mode: str, marker: str) -> None:
        (self.work / "serve.py").write_text(SERVE.format(mode=mode, marker=marker))

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_", "AWS_"))}
        env.update(CI_GEN_STATE_DIR=str(self.state), CI_GEN_DEPLOY_PORT=str(self.port))
        env.update(extra)
        return env

    def run(self, job: str, *args: str, sha: str = "", timeout: str = "10",
            engine: str = "process", **extra: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "ci_gen", "job", job, "--environment", "review",
                "--engine", engine]
        if job == "deploy":
            argv += ["--image", "registry.example.com/g/p:" + (sha or "x"), "--host", "127.0.0.1",
                     "--port", "8501", "--model-name", "fashion-mnist",
                     "--model-path", "model/fashion-mnist", "--serve-script", "serve.py",
                     "--health-path", "", "--health-timeout", timeout, "--env", "",
                     "--dotenv", "deploy.env"]
        argv += list(args)
        env = self.env(**extra)
        if sha:
            env["CI_COMMIT_SHORT_SHA"] = sha
        return subprocess.run(argv, cwd=self.work, env=env, capture_output=True, text=True,
                              timeout=120)

    def current(self) -> dict | None:
        path = self.state / "deploy" / "review" / "current.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def status(self, port: int | None = None) -> dict:
        url = f"http://127.0.0.1:{port or self.port}/v1/models/fashion-mnist"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=5) as resp:
            return json.loads(resp.read())


@pytest.fixture
def project(tmp_path):
    proj = Project(tmp_path)
    yield proj
    # Whatever a test left running is killed here, group and all.
    for pid in _pids_under(proj.state):
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
                break
            except (ProcessLookupError, PermissionError):
                continue
    deadline = time.monotonic() + 5
    while _pids_under(proj.state) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pids_under(proj.state), "a serve process survived the test"


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


# ---------------------------------------------------------------- process engine

def test_first_deploy_is_healthy_and_writes_dotenv(project):
    out = _ok(project.run("deploy", sha="aaaaaaa")).stdout
    assert project.dotenv.read_text() == f"DEPLOY_URL=http://127.0.0.1:{project.port}\n"
    assert project.status()["marker"] == "A"
    assert f"release aaaaaaa is healthy at http://127.0.0.1:{project.port}" in out

    cur = project.current()
    assert cur["release"] == "aaaaaaa" and cur["engine"] == "process" and cur["port"] == project.port
    assert _alive(cur["pid"])
    rdir = project.state / "deploy" / "review" / "releases" / "aaaaaaa"
    # The release runs from its own copies: the job's workspace can be wiped.
    assert cur["cmd"][1] == str(rdir / "serve.py")
    assert (rdir / "model" / "1" / "saved_model.pb").read_bytes() == b"x"
    assert "serving A" in (rdir / "serve.log").read_text()


def test_service_gets_its_env_and_no_job_secrets(project):
    _ok(project.run("deploy", "--env", "GREETING=hello-world", sha="aaaaaaa",
                    AWS_SECRET_ACCESS_KEY="do-not-leak", CI_JOB_TOKEN="do-not-leak"))
    status = project.status()
    assert status["greeting"] == "hello-world"
    assert status["model_name_env"] == "fashion-mnist"
    assert status["leaked"] == []
    assert "do-not-leak" not in (project.state / "deploy" / "review" / "current.json").read_text()


def test_second_deploy_replaces_the_first(project):
    _ok(project.run("deploy", sha="aaaaaaa"))
    first = project.current()
    project.serve("ok", "B")
    out = _ok(project.run("deploy", sha="bbbbbbb")).stdout
    assert "stopping previous release aaaaaaa" in out
    assert "replaced aaaaaaa" in out
    assert not _alive(first["pid"])
    assert project.status()["marker"] == "B"
    assert project.current()["release"] == "bbbbbbb"


def test_workspace_cleanup_does_not_break_the_release(project):
    _ok(project.run("deploy", sha="aaaaaaa"))
    (project.work / "serve.py").unlink()
    import shutil

    shutil.rmtree(project.work / "model")
    # Stopping and restoring uses the release's own copies, not the (gone) workspace.
    project.serve("exit", "B")
    (project.work / "model" / "fashion-mnist" / "1").mkdir(parents=True)
    proc = project.run("deploy", sha="bbbbbbb")
    assert proc.returncode == 1
    assert project.status()["marker"] == "A"


@pytest.mark.slow
def test_unhealthy_release_restores_the_previous_one(project):
    _ok(project.run("deploy", sha="aaaaaaa"))
    project.serve("loading", "B")
    proc = project.run("deploy", sha="bbbbbbb", timeout="6")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "ci-gen: error: release bbbbbbb never became healthy in 6s; previous release aaaaaaa restored"]
    assert "waiting for bbbbbbb" in proc.stdout and "model state LOADING" in proc.stdout
    assert project.status()["marker"] == "A"
    cur = project.current()
    assert cur["release"] == "aaaaaaa" and _alive(cur["pid"])
    bdir = project.state / "deploy" / "review" / "releases" / "bbbbbbb"
    assert _pids_under(bdir) == []


def test_crashing_release_shows_its_log_and_restores_the_previous_one(project):
    _ok(project.run("deploy", sha="aaaaaaa"))
    project.serve("exit", "B")
    proc = project.run("deploy", sha="bbbbbbb")
    assert proc.returncode == 1
    assert "process exited with code 3" in proc.stdout
    assert "boom: cannot load model" in proc.stdout  # the new release's log tail
    assert proc.stderr.strip() == ("ci-gen: error: release bbbbbbb never became healthy in 10s; "
                                   "previous release aaaaaaa restored")
    assert project.status()["marker"] == "A"
    assert project.current()["release"] == "aaaaaaa"
    # The restored release is recorded again with its new pid; a stop finds it.
    _ok(project.run("stop"))
    assert _pids_under(project.state) == []


def test_cancelled_deploy_restores_the_previous_one(project):
    """GitLab cancels a job with SIGTERM; during the health wait the previous release is
    stopped, so the job starts it again before it ends (0.2.0 died with it stopped)."""
    _ok(project.run("deploy", sha="aaaaaaa"))
    project.serve("loading", "B")
    argv = ["job", "deploy", "--environment", "review", "--engine", "process", "--image",
            "registry.example.com/g/p:bbbbbbb", "--host", "127.0.0.1", "--port", "8501",
            "--model-name", "fashion-mnist", "--model-path", "model/fashion-mnist",
            "--serve-script", "serve.py", "--health-path", "", "--health-timeout", "120",
            "--env", "", "--dotenv", "deploy.env"]
    log = project.state / "deploy" / "review" / "releases" / "bbbbbbb" / "serve.log"
    proc = cancelled(argv, project.work, {**project.env(), "CI_COMMIT_SHORT_SHA": "bbbbbbb"},
                     lambda: log.is_file() and "serving B" in log.read_text())
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 1, out + err
    assert err.strip().splitlines() == [
        "ci-gen: error: release bbbbbbb failed (the job was cancelled (SIGTERM)); "
        "previous release aaaaaaa restored"]
    assert project.status()["marker"] == "A"
    assert project.current()["release"] == "aaaaaaa"
    assert _pids_under(log.parent) == []


def test_failure_without_previous_release_is_clean(project):
    project.serve("exit", "A")
    proc = project.run("deploy", sha="aaaaaaa")
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("ci-gen: error: release aaaaaaa never became healthy in 10s; "
                                   "no previous release to restore")
    assert project.current() is None
    assert not project.dotenv.exists()
    assert _pids_under(project.state) == []


def test_rollback_returns_to_the_release_the_current_one_replaced(project):
    _ok(project.run("deploy", sha="aaaaaaa"))
    project.serve("ok", "B")
    _ok(project.run("deploy", sha="bbbbbbb"))
    assert project.status()["marker"] == "B"
    project.dotenv.unlink()
    out = _ok(project.run("rollback", "--health-timeout", "10", "--dotenv", "deploy.env")).stdout
    assert "rollback: release aaaaaaa serves review at http://127.0.0.1:" in out
    assert project.status()["marker"] == "A" and project.current()["release"] == "aaaaaaa"
    assert project.dotenv.read_text() == f"DEPLOY_URL=http://127.0.0.1:{project.port}\n"
    # The first release replaced nothing: no further back.
    proc = project.run("rollback", "--health-timeout", "10")
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "ci-gen: error: rollback: no previous release of review recorded on this runner"]
    assert project.status()["marker"] == "A"
    _ok(project.run("stop"))


def test_stop_is_idempotent(project):
    _ok(project.run("deploy", sha="aaaaaaa"))
    pid = project.current()["pid"]
    out = _ok(project.run("stop")).stdout
    assert "stop: release aaaaaaa" in out and "stopped" in out
    assert not _alive(pid)
    assert project.current() is None
    again = _ok(project.run("stop")).stdout
    assert again.strip() == "stop: nothing deployed in environment review"


def test_port_zero_picks_a_free_port_and_state_dirs_are_isolated(project, tmp_path):
    project.port = 0
    _ok(project.run("deploy", sha="aaaaaaa"))
    url = project.dotenv.read_text().strip().removeprefix("DEPLOY_URL=")
    port = int(url.rsplit(":", 1)[1])
    assert port > 0 and project.status(port)["marker"] == "A"
    # Another state dir knows nothing of it, and stopping there touches nothing.
    other = project.env(CI_GEN_STATE_DIR=str(tmp_path / "other-state"))
    proc = subprocess.run([sys.executable, "-m", "ci_gen", "job", "stop", "--environment",
                           "review", "--engine", "process"], env=other, capture_output=True,
                          text=True, cwd=project.work)
    assert proc.returncode == 0 and "nothing deployed" in proc.stdout
    assert project.status(port)["marker"] == "A"


def test_engine_override_and_release_suffix_and_pruning(project):
    # --engine docker, but CI_GEN_DEPLOY_ENGINE=process wins (a runner without Docker).
    for i in range(5):
        project.serve("ok", f"R{i}")
        proc = project.run("deploy", sha="ccccccc", engine="docker", CI_GEN_DEPLOY_ENGINE="process")
        _ok(proc)
        # The log says which engine runs, not only the echoed --engine docker.
        assert ("with engine process; CI_GEN_DEPLOY_ENGINE overrides --engine docker on http://"
                in proc.stdout)
    releases = sorted(p.name for p in (project.state / "deploy" / "review" / "releases").iterdir())
    assert len(releases) == 3
    assert "ccccccc-5" in releases and "ccccccc-4" in releases
    assert project.current()["release"] == "ccccccc-5"
    assert project.status()["marker"] == "R4"


def test_port_held_by_another_program_is_refused(project):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", project.port))
        squatter.listen()
        proc = project.run("deploy", sha="aaaaaaa")
    assert proc.returncode == 1
    assert "already in use by another program" in proc.stdout
    assert "no previous release to restore" in proc.stderr


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("flag,value", [
    ("--environment", "prod;rm -rf /"),
    ("--host", "a b"),
    ("--port", "99999"),
    ("--port", "80a"),
    ("--model-name", "../x"),
    ("--model-path", "../../etc"),
    ("--serve-script", "$(id).py"),
    ("--health-path", "v1/no-slash"),
    ("--health-timeout", "-1"),
    ("--health-timeout", "0"),
    ("--env", "A=$(id)"),
    ("--env", "A=1,B"),
    ("--image", "Bad Image"),
    ("--dotenv", "x\ny"),
    ("--engine", "kubernetes"),
    ("--model-version", "1.0"),
    ("--model-version", "v1.0.0"),
    ("--model-version", "1.0.0;id"),
])
def test_bad_flags_are_usage_errors(flag, value, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CI_GEN_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("CI_GEN_DEPLOY_ENGINE", raising=False)
    monkeypatch.delenv("CI_GEN_DEPLOY_PORT", raising=False)
    argv = {"--environment": "review", "--engine": "process", "--port": "8501",
            "--health-timeout": "5"}
    argv[flag] = value
    code = cli.main(["job", "deploy", *[x for kv in argv.items() for x in kv]])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("ci-gen: error: ") and err.count("\n") == 1
    assert not (tmp_path / "deploy").exists()


@pytest.mark.parametrize("flag, environ, expected", [
    ("none", {}, ("", False)),
    ("", {}, ("", False)),                                        # an old pipeline's empty flag
    ("1.2.0", {}, ("1.2.0", True)),
    ("latest", {}, ("latest", True)),
    ("none", {"CI_GEN_DEPLOY_MODEL_VERSION": "0.1.3"}, ("0.1.3", True)),  # set for one run
    # register.env of this pipeline: recorded, not fetched, and only for the same model.
    ("none", {"CI_GEN_MODEL_NAME": "fashion-mnist", "CI_GEN_MODEL_VERSION": "0.1.4"}, ("0.1.4", False)),
    ("none", {"CI_GEN_MODEL_NAME": "other", "CI_GEN_MODEL_VERSION": "0.1.4"}, ("", False)),
    ("none", {"CI_GEN_MODEL_NAME": "fashion-mnist", "CI_GEN_MODEL_VERSION": "x;y"}, ("", False)),
])
def test_model_version_flag_and_variables(flag, environ, expected):
    spec = make_spec("review", "process", model_name="fashion-mnist", model_version=flag,
                     environ=environ)
    assert (spec.model_version, spec.from_registry) == expected


def test_bad_model_version_override_is_refused():
    with pytest.raises(UsageError, match="CI_GEN_DEPLOY_MODEL_VERSION"):
        make_spec("review", "process", environ={"CI_GEN_DEPLOY_MODEL_VERSION": "$(id)"})


def test_bad_port_override_is_refused():
    with pytest.raises(UsageError, match="CI_GEN_DEPLOY_PORT"):
        make_spec("review", "process", environ={"CI_GEN_DEPLOY_PORT": "1;2"})


# ---------------------------------------------------------------- container engines

# (Releases on a real engine: tests/test_deploy_target.py.)

@pytest.mark.parametrize("host, bind", [("127.0.0.1", "127.0.0.1"), ("models.example.com", "")])
def test_container_release_config(host, bind):
    spec = make_spec("production", "podman", image="registry.example.com/g/p:0123abcd",
                     host=host, port="8600", model_name="fashion-mnist",
                     env="TF_CPP_MIN_LOG_LEVEL=2,MODE=fast", environ={})
    config = container_config(spec, 3, f"http://{host}:8600", {"CI_COMMIT_SHA": "ab" * 20}, "g-p")
    assert config["Image"] == "registry.example.com/g/p:0123abcd"
    assert config["Env"] == ["MODEL_NAME=fashion-mnist", "TF_CPP_MIN_LOG_LEVEL=2", "MODE=fast"]
    assert config["HostConfig"]["PortBindings"] == {"8501/tcp": [{"HostIp": bind, "HostPort": "8600"}]}
    assert config["Labels"] == {
        "ci-gen.project": "g-p", "ci-gen.environment": "production", "ci-gen.release": "3",
        "ci-gen.url": f"http://{host}:8600", "ci-gen.health-path": "/v1/models/fashion-mnist",
        "ci-gen.model-name": "fashion-mnist", "ci-gen.commit": "ab" * 20}


def test_container_engines_refuse_port_zero(project):
    proc = project.run("deploy", engine="podman", CI_GEN_DEPLOY_PORT="0")
    assert proc.stderr.strip().splitlines() == [
        "ci-gen: error: port 0 (a free port) works with engine process only: a release on a "
        "target needs a fixed port for its URL"]


def test_a_0_1_container_release_in_the_runner_state_is_a_clear_error(project):
    edir = project.state / "deploy" / "review"
    edir.mkdir(parents=True)
    (edir / "current.json").write_text(json.dumps(
        {"release": "abc1234", "engine": "podman", "container": "ci-gen-review-abc1234",
         "url": "http://127.0.0.1:1"}))
    proc = project.run("stop")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"ci-gen: error: the deploy state under {project.state} records a podman release of "
        "ci-gen 0.1: remove its container with `podman rm -f` and that state"]
    assert (edir / "current.json").is_file()  # nothing forgotten that may still run


def test_probe_reads_tf_serving_status(project):
    _ok(project.run("deploy", sha="aaaaaaa"))
    base = f"http://127.0.0.1:{project.port}"
    assert probe(base + "/v1/models/fashion-mnist") == (True, "HTTP 200")
    assert probe(base + "/v1/models/other") == (False, "HTTP 404")
    ok, why = probe(f"http://127.0.0.1:{free_port()}/")
    assert not ok and "refused" in why.lower()
