"""Releases on a deploy target: Debian's podman serving the Docker-compatible API, images
built here with buildah (FROM scratch, busybox-static's httpd serving a TF-Serving-like status
JSON) and pulled from the local docker-registry with htpasswd auth.

`ci-gen job deploy / rollback / stop` run as the CI job runs them, each from its own work
tree: the only state is on the target. The podman service, the registry and the images are
started and built once for the module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import servers
from ci_gen.deploy.engine_api import demux, registry_of, split_image
from ci_gen.deploy.target import registry_auth
from ci_gen.registry import bundle, lineage
from ci_gen.registry.client import Registry
from ci_gen.registry.register import register
from gitlab_fake import PROJECT_ID, FakeGitLab
from support.cli import cancelled

MODEL = "fashion-mnist"
SHA = "0123456789abcdef0123456789abcdef01234567"
# (tag, model state, marker): the third never becomes AVAILABLE.
IMAGES = (("v1", "AVAILABLE", "one"), ("v2", "AVAILABLE", "two"), ("v3", "LOADING", "three"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    yield from servers.start_registry(tmp_path_factory.mktemp("registry"),
                                      auth=("ci-deployer", "registry-secret-pw"))


@pytest.fixture(scope="module")
def images(registry, tmp_path_factory) -> dict[str, str]:
    """The three releases' images, pushed to the registry: tag -> image reference."""
    busybox = shutil.which("busybox")
    # A FROM scratch image has no loader: the busybox must be the static one.
    if busybox is None or not Path("/usr/share/doc/busybox-static").is_dir():
        pytest.skip("busybox-static not installed (Debian package busybox-static; scripts/bootstrap.sh)")
    work = tmp_path_factory.mktemp("images")
    b = servers.make_buildah(work / "buildah")
    b.run("login", "--tls-verify=false", "-u", registry.username, "--password-stdin", registry.host,
          input=registry.password)
    out = {}
    for tag, state, marker in IMAGES:
        ctx = work / tag
        (ctx / "www" / "v1" / "models").mkdir(parents=True)
        shutil.copy(busybox, ctx / "busybox")
        status = {"model_version_status": [{"version": "1", "state": state}], "marker": marker}
        (ctx / "www" / "v1" / "models" / MODEL).write_text(json.dumps(status))
        (ctx / "Containerfile").write_text(
            # busybox httpd as PID 1 ignores SIGTERM: without this every stop waits its grace.
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nSTOPSIGNAL SIGKILL\n"
            'ENTRYPOINT ["/bin/busybox", "httpd", "-f", "-p", "8501", "-h", "/www"]\n')
        ref = f"{registry.host}/ml/demo:{tag}"
        b.run("bud", "--isolation", "chroot", "-t", ref, str(ctx))
        b.run("push", "--tls-verify=false", "--digestfile", str(work / f"{tag}.digest"), ref)
        out[tag] = ref
        # By digest, as docker-build publishes it (CI_GEN_IMAGE) for the registry's lineage.
        out[f"{tag}@"] = f"{registry.host}/ml/demo@{(work / f'{tag}.digest').read_text().strip()}"
    return out


@pytest.fixture(scope="module")
def engine(registry, tmp_path_factory):
    yield from servers.start_podman_service(tmp_path_factory.mktemp("podman"), registry.host)


class Job:
    """`ci-gen job ...` as the deploy component's jobs call it, in a fresh work tree each."""

    def __init__(self, root: Path, registry, target_env: dict[str, str]):
        self.root, self.registry, self.target_env = root, registry, target_env
        self.port = servers.free_port()
        self.runs = 0

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CI_", "DEPLOY_", "CONTAINER"))}
        env.update(CI_REGISTRY=self.registry.host, CI_REGISTRY_USER=self.registry.username,
                   CI_REGISTRY_PASSWORD=self.registry.password, CI_PROJECT_PATH_SLUG="ml-demo",
                   CI_COMMIT_SHA=SHA, CI_GEN_STATE_DIR=str(self.root / "no-state-here"))
        env.update(self.target_env)
        env.update(extra)
        return env

    def run(self, job: str, *args: str, **extra: str) -> subprocess.CompletedProcess:
        self.runs += 1
        work = self.root / f"work-{self.runs}"  # another job, another work tree
        work.mkdir()
        argv = [sys.executable, "-m", "ci_gen", "job", job, "--environment", "production",
                "--engine", "podman", *args]
        return subprocess.run(argv, cwd=work, env=self.env(**extra), capture_output=True,
                              text=True, timeout=180)

    def deploy(self, image: str, timeout: str = "20", **extra: str) -> subprocess.CompletedProcess:
        return self.run("deploy", "--image", image, "--host", "127.0.0.1", "--port", str(self.port),
                        "--model-name", MODEL, "--health-timeout", timeout, "--dotenv", "deploy.env",
                        **extra)

    def last_dotenv(self) -> str:
        return (self.root / f"work-{self.runs}" / "deploy.env").read_text()

    def serving(self) -> str:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{self.port}/v1/models/{MODEL}", timeout=5) as resp:
            return json.loads(resp.read())["marker"]


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ci-gen: error: "), proc.stderr
    return lines[0]


def _releases(engine) -> list[tuple[str, str, str]]:
    """(name, state, release label) of every container on the target."""
    items = json.loads(engine.podman("ps", "-a", "--format", "json").stdout or "[]")
    return sorted((c["Names"][0], c["State"], (c.get("Labels") or {}).get("ci-gen.release", ""))
                  for c in items)


def test_releases_live_on_the_target_deploy_replace_roll_back_stop(engine, images, registry, tmp_path):
    job = Job(tmp_path, registry, {"DEPLOY_ENGINE_HOST": engine.url})
    first = _ok(job.deploy(images["v1"]))
    assert job.serving() == "one"
    assert job.last_dotenv() == f"DEPLOY_URL=http://127.0.0.1:{job.port}\n"
    assert "with the job's registry credentials" in first
    labels = json.loads(engine.podman("inspect", "ci-gen-ml-demo-production-1").stdout)[0]["Config"]["Labels"]
    assert labels["ci-gen.commit"] == SHA and labels["ci-gen.environment"] == "production"
    assert labels["ci-gen.url"] == f"http://127.0.0.1:{job.port}"
    # Nothing of the pull's credentials is left on the target.
    assert registry.password not in engine.podman("info", "--format", "json").stdout

    second = _ok(job.deploy(images["v2"]))
    assert job.serving() == "two" and "replaced release 1" in second
    assert [(n, s) for n, s, _ in _releases(engine)] == [
        ("ci-gen-ml-demo-production-1", "exited"), ("ci-gen-ml-demo-production-2", "running")]

    third = job.deploy(images["v3"], timeout="3")
    line = _one_line_error(third)
    assert line == ("ci-gen: error: release 3 (ci-gen-ml-demo-production-3, commit 01234567) never "
                    "became healthy; release 2 restored")
    assert "model state LOADING" in third.stdout and "restoring release 2" in third.stdout
    assert job.serving() == "two"
    assert [n for n, _, _ in _releases(engine)] == ["ci-gen-ml-demo-production-1",
                                                    "ci-gen-ml-demo-production-2"]

    back = _ok(job.run("rollback", "--health-timeout", "20", "--dotenv", "deploy.env"))
    assert job.serving() == "one" and "release 2 removed" in back
    assert job.last_dotenv() == f"DEPLOY_URL=http://127.0.0.1:{job.port}\n"
    assert _releases(engine) == [("ci-gen-ml-demo-production-1", "running", "1")]

    # The stop job runs in another work tree, with no state of its own: it reads the target.
    stopped = _ok(job.run("stop"))
    assert "removed ci-gen-ml-demo-production-1" in stopped
    assert _releases(engine) == []
    with pytest.raises(OSError):
        job.serving()
    assert "nothing deployed in environment production" in _ok(job.run("stop"))


@pytest.fixture(scope="module")
def model_registry():
    """The GitLab stand-in's model registry (in-process, token required)."""
    fake = FakeGitLab().start()
    fake.add_project(PROJECT_ID, "ml/demo")
    yield Registry(f"{fake.url}/api/v4/projects/{PROJECT_ID}/ml/mlflow", fake.token)
    fake.stop()


def test_deploy_by_registry_version_runs_the_image_its_lineage_records(engine, images, registry,
                                                                       model_registry, tmp_path):
    """Versions 1.0.0-1.0.2 record the v1-v3 images by digest: deploy 1.0.0, then 1.0.1, then
    the unhealthy 1.0.2 (back on 1.0.1); a redeploy of 1.0.1 and the manual rollback return to
    1.0.0, the previous registered version, not the previous container."""
    name = f"demo-{os.getpid()}-{tmp_path.name[-6:]}".lower()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "saved_model.pb").write_bytes(b"x")
    for n, tag in enumerate(("v1", "v2", "v3")):
        env = {"CI_COMMIT_SHA": f"{n}" * 40}
        register(model_registry, name, bundle.pack(tmp_path / "model"), params={}, metrics={},
                 tags=lineage.tags(env, image=images[f"{tag}@"]), env=env, tag=f"v1.0.{n}",
                 log=lambda _: None)
    job = Job(tmp_path, registry, {"DEPLOY_ENGINE_HOST": engine.url, "NO_PROXY": "127.0.0.1",
                                   "MLFLOW_TRACKING_URI": model_registry.uri,
                                   "MLFLOW_TRACKING_TOKEN": model_registry._token})

    def deploy(version: str, timeout: str = "20") -> subprocess.CompletedProcess:
        return job.run("deploy", "--image", "ignored.example.com/x:1", "--host", "127.0.0.1",
                       "--port", str(job.port), "--model-name", name, "--health-path",
                       f"/v1/models/{MODEL}", "--health-timeout", timeout, "--model-version",
                       version, "--dotenv", "deploy.env")

    def label(n: int) -> tuple[str, str]:
        info = json.loads(engine.podman("inspect", f"ci-gen-ml-demo-production-{n}").stdout)[0]
        return info["Config"]["Labels"]["ci-gen.model-version"], info["ImageDigest"]

    out = _ok(deploy("1.0.0"))
    assert f"runs the image its lineage records: {images['v1@']}" in out
    assert job.serving() == "one" and label(1) == ("1.0.0", images["v1@"].split("@")[1])
    assert job.last_dotenv().endswith("DEPLOY_MODEL_VERSION=1.0.0\n")
    _ok(deploy("1.0.1"))
    assert job.serving() == "two" and label(2)[0] == "1.0.1"
    line = _one_line_error(deploy("latest", timeout="3"))
    assert "model version 1.0.2" in line and line.endswith("release 2 restored")
    assert job.serving() == "two"
    _ok(deploy("1.0.1"))
    back = _ok(job.run("rollback", "--health-timeout", "20", "--dotenv", "deploy.env"))
    assert "starting release 1 (" in back and job.serving() == "one"
    assert job.last_dotenv().endswith("DEPLOY_MODEL_VERSION=1.0.0\n")
    _ok(job.run("stop"))


def test_wrong_registry_password_changes_nothing_on_the_target(engine, images, registry, tmp_path):
    job = Job(tmp_path, registry, {"DEPLOY_ENGINE_HOST": engine.url})
    _ok(job.deploy(images["v1"]))
    before = _releases(engine)
    proc = job.deploy(images["v2"], CI_REGISTRY_PASSWORD="not-the-password")
    line = _one_line_error(proc)
    assert line.startswith(f"ci-gen: error: cannot pull {images['v2']} on the target: ")
    assert "unauthorized" in line and "not-the-password" not in proc.stdout + proc.stderr
    assert _releases(engine) == before and job.serving() == "one"
    _ok(job.run("stop"))


@pytest.mark.parametrize("endpoint, why", [
    ("unix:///nonexistent/engine.sock", "No such file or directory"),
    ("tcp://127.0.0.1:1", "DEPLOY_ENGINE_TLS_CA is not set"),
])
def test_unreachable_or_unconfigured_target_is_one_line(endpoint, why, registry, images, tmp_path):
    job = Job(tmp_path, registry, {"DEPLOY_ENGINE_HOST": endpoint})
    for proc in (job.deploy(images["v1"]), job.run("stop"), job.run("rollback")):
        assert why in _one_line_error(proc)


def test_ssh_target_with_a_pinned_host_key(engine, images, registry, tmp_path):
    """ssh to 127.0.0.1 (Debian's openssh-server), `podman system dial-stdio` on the far end."""
    (tmp_path / "sshd").mkdir()
    gen = servers.start_sshd(tmp_path / "sshd", {"CONTAINER_HOST": engine.url})
    sshd = next(gen)
    try:
        target = {"DEPLOY_ENGINE_HOST": f"ssh://{sshd.user}@127.0.0.1:{sshd.port}",
                  "DEPLOY_SSH_KEY": str(sshd.key), "DEPLOY_SSH_KNOWN_HOSTS": str(sshd.known_hosts)}
        job = Job(tmp_path, registry, target)
        _ok(job.deploy(images["v1"]))
        assert job.serving() == "one"
        # Variables holding the text itself (not File variables) work too.
        _ok(job.run("stop", DEPLOY_SSH_KNOWN_HOSTS=sshd.known_hosts.read_text(),
                    DEPLOY_SSH_KEY=sshd.key.read_text().strip()))
        assert _releases(engine) == []
        other = tmp_path / "other_known_hosts"
        other.write_text(f"[127.0.0.1]:{sshd.port} " + (tmp_path / "sshd" / "userkey.pub").read_text())
        line = _one_line_error(job.run("stop", DEPLOY_SSH_KNOWN_HOSTS=str(other)))
        assert "is unreachable: Host key verification failed." in line
        assert not list(Path("/tmp").glob("ci-gen-ssh-*/key")), "the key copy was left behind"
    finally:
        gen.close()


def test_tls_target_with_client_certificates(engine, images, registry, tmp_path):
    """tcp:// with TLS both ways (socat in front of the engine's socket, as dockerd --tlsverify)."""
    gen = servers.start_tls_forwarder(tmp_path, engine.socket)
    port, tls = next(gen)
    try:
        target = {"DEPLOY_ENGINE_HOST": f"tcp://127.0.0.1:{port}", "DEPLOY_ENGINE_TLS_CA": str(tls.ca),
                  "DEPLOY_ENGINE_TLS_CERT": str(tls.cert), "DEPLOY_ENGINE_TLS_KEY": str(tls.key)}
        job = Job(tmp_path, registry, target)
        _ok(job.deploy(images["v2"]))
        assert job.serving() == "two"
        # A client the engine's CA did not sign is refused in the handshake.
        (tmp_path / "other").mkdir()
        other, _, _ = servers.make_tls_files(tmp_path / "other")
        line = _one_line_error(job.run("stop", DEPLOY_ENGINE_TLS_CERT=str(other.cert),
                                       DEPLOY_ENGINE_TLS_KEY=str(other.key)))
        assert line.startswith(f"ci-gen: error: deploy target tcp://127.0.0.1:{port} is unreachable: ")
        assert job.serving() == "two"
        _ok(job.run("stop"))
        assert _releases(engine) == []
    finally:
        gen.close()


@pytest.mark.parametrize("env, message", [
    ({"DEPLOY_ENGINE_HOST": "ssh://root@host;rm"}, "is not unix:///PATH"),
    ({"DEPLOY_ENGINE_HOST": "ssh://root@example.com"}, "DEPLOY_SSH_KEY is not set"),
    ({"DEPLOY_ENGINE_HOST": "ssh://root@example.com", "DEPLOY_SSH_KEY": "/etc/hostname"},
     "DEPLOY_SSH_KEY does not hold a private key"),
    ({"DEPLOY_ENGINE_HOST": "ssh://root@example.com",
      "DEPLOY_SSH_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"},
     "DEPLOY_SSH_KNOWN_HOSTS is not set"),
    ({"DEPLOY_ENGINE_HOST": "ssh://root@example.com", "DEPLOY_SSH_KEY": "/nonexistent/key"},
     "DEPLOY_SSH_KEY is not a file"),
    ({"DEPLOY_ENGINE_HOST": "http://example.com:2375"}, "is not unix:///PATH"),
])
def test_target_variables_are_checked(env, message, registry, tmp_path):
    job = Job(tmp_path, registry, env)
    assert message in _one_line_error(job.run("stop"))


def test_container_engines_need_the_host(registry, tmp_path):
    job = Job(tmp_path, registry, {})
    proc = job.run("deploy", "--image", "127.0.0.1:5000/ml/demo:v1")
    assert "--host (input host) is required with engine podman" in _one_line_error(proc)


def test_registry_credentials_go_to_their_registry_only():
    env = {"CI_REGISTRY": "registry.example.com", "CI_REGISTRY_USER": "u", "CI_REGISTRY_PASSWORD": "p"}
    assert registry_auth("registry.example.com/g/p:1", env) == {
        "username": "u", "password": "p", "serveraddress": "registry.example.com"}
    assert registry_auth("docker.io/library/python:3", env) is None
    assert registry_auth("python:3", env) is None
    deploy_token = {**env, "DEPLOY_REGISTRY_USER": "d", "DEPLOY_REGISTRY_PASSWORD": "t"}
    assert registry_auth("registry.example.com/g/p:1", deploy_token)["username"] == "d"


@pytest.mark.parametrize("image, repo, tag, registry_host", [
    ("registry.example.com/g/p:0123abc", "registry.example.com/g/p", "0123abc", "registry.example.com"),
    ("127.0.0.1:5000/g/p:v1", "127.0.0.1:5000/g/p", "v1", "127.0.0.1:5000"),
    ("localhost/p", "localhost/p", "latest", "localhost"),
    ("python:3.11", "python", "3.11", ""),
    ("g/p@sha256:" + "a" * 64, "g/p", "sha256:" + "a" * 64, ""),
])
def test_image_references(image, repo, tag, registry_host):
    assert split_image(image) == (repo, tag)
    assert registry_of(image) == registry_host


def test_log_streams_are_demultiplexed():
    framed = b"\x01\0\0\0\0\0\0\x06hello\n" + b"\x02\0\0\0\0\0\0\x05oops\n"
    assert demux(framed) == b"hello\noops\n"
    assert demux(b"plain text, a TTY's log\n") == b"plain text, a TTY's log\n"


# -- whatever ends a deploy after the previous release was stopped, it is started again ------

@pytest.fixture
def short_dir():
    """A short directory for unix sockets (their paths are limited to 107 bytes)."""
    import tempfile
    path = Path(tempfile.mkdtemp(prefix="ci-gen-eng-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _new_container_inspect(answer):
    """A rule: the inspect of the container this deploy created gets ANSWER."""
    def rule(method, path, state):
        if method == "GET" and any(path == f"/containers/{cid}/json" for cid in state["created"]):
            return answer
        return None
    return rule


def _everything_after_start(answer):
    """A rule: once the new container was started, every request gets ANSWER (the engine is
    gone for good: restoring fails too)."""
    def rule(method, path, state):
        if any(cid in state["started"] for cid in state["created"]):
            return answer
        return None
    return rule


@pytest.mark.parametrize("rule, why, restored", [
    (_new_container_inspect((200, b"<html>502 Bad Gateway</html>")),
     "engine answer to GET /containers/", True),
    (_new_container_inspect((200, b"[1, 2]")), "the document: expected an object, got a list", True),
    (_new_container_inspect("drop"), "is unreachable", True),
    (_everything_after_start("drop"), "is unreachable", False),
], ids=["inspect-not-json", "inspect-a-list", "connection-dropped-in-health-wait",
        "engine-gone-restore-fails"])
def test_any_failure_after_the_stop_starts_the_previous_release_again(
        rule, why, restored, engine, images, registry, tmp_path, short_dir):
    from faultproxy import EngineStandIn

    job = Job(tmp_path, registry, {"DEPLOY_ENGINE_HOST": engine.url})
    _ok(job.deploy(images["v1"]))
    with EngineStandIn(short_dir / "e.sock", upstream=str(engine.socket), rule=rule) as proxy:
        proc = job.deploy(images["v2"], DEPLOY_ENGINE_HOST=proxy.url)
    line = _one_line_error(proc)
    assert line.startswith("ci-gen: error: release 2 (ci-gen-ml-demo-production-2, "), line
    assert why in line and "Traceback" not in proc.stderr
    assert "deploy: stopping release 1" in proc.stdout
    if restored:
        assert line.endswith("; release 1 restored"), line
        assert job.serving() == "one"
    else:
        assert "release 1 (ci-gen-ml-demo-production-1, commit 01234567) could not be restored" in line
        # Nothing restored it, so the test does what the job's line asks of its user.
        engine.podman("start", "ci-gen-ml-demo-production-1")
    _ok(job.run("stop"))


def test_a_cancelled_deploy_starts_the_previous_release_again(engine, images, registry, tmp_path):
    """GitLab cancels a job with SIGTERM: during the health wait the previous release is
    stopped, so the job restores it before it ends."""
    job = Job(tmp_path, registry, {"DEPLOY_ENGINE_HOST": engine.url})
    _ok(job.deploy(images["v1"]))
    work = tmp_path / "cancelled"
    work.mkdir()
    argv = ["job", "deploy", "--environment", "production", "--engine", "podman", "--image",
            images["v3"], "--host", "127.0.0.1", "--port", str(job.port), "--model-name", MODEL,
            "--health-timeout", "120"]
    done = cancelled(argv, work, job.env(),
                     lambda: ("ci-gen-ml-demo-production-2", "running", "2") in _releases(engine))
    line = _one_line_error(done)
    assert line == ("ci-gen: error: release 2 (ci-gen-ml-demo-production-2, commit 01234567) "
                    "failed (the job was cancelled (SIGTERM)); release 1 restored")
    assert job.serving() == "one"
    assert [n for n, _, _ in _releases(engine)] == ["ci-gen-ml-demo-production-1"]
    _ok(job.run("stop"))


def test_a_failed_rollback_starts_the_current_release_again(engine, images, registry, tmp_path,
                                                           short_dir):
    """The engine drops the connection while the rollback waits for the previous release:
    the release it stopped for the rollback is started again (0.2.0 left nothing serving)."""
    from faultproxy import EngineStandIn

    job = Job(tmp_path, registry, {"DEPLOY_ENGINE_HOST": engine.url})
    _ok(job.deploy(images["v1"]))
    _ok(job.deploy(images["v2"]))
    first = engine.podman("inspect", "--format", "{{.Id}}", "ci-gen-ml-demo-production-1").stdout.strip()
    with EngineStandIn(short_dir / "e.sock", upstream=str(engine.socket),
                       rule=lambda m, p, st: "drop" if p == f"/containers/{first}/json" else None) as proxy:
        proc = job.run("rollback", "--health-timeout", "20", DEPLOY_ENGINE_HOST=proxy.url)
    line = _one_line_error(proc)
    assert line.startswith("ci-gen: error: rollback: release 1 (ci-gen-ml-demo-production-1, "), line
    assert "is unreachable" in line and line.endswith("; release 2 started again"), line
    assert job.serving() == "two"
    _ok(job.run("stop"))


def test_an_engine_that_trickles_its_answer_is_cut_at_the_call_deadline(short_dir):
    """The per-socket-read timeout of 0.2.0 let an engine sending a byte every 0.3 s hold a
    call for as long as it liked; the call's deadline is total."""
    import time

    from ci_gen.deploy.endpoint import from_environ
    from ci_gen.deploy.engine_api import EngineAPI
    from ci_gen.errors import CiGenError
    from faultproxy import EngineStandIn

    slow = lambda m, p, st: (200, b"[" + b" " * 40 + b"]", 0.3) if p == "/containers/json" else None  # noqa: E731
    with EngineStandIn(short_dir / "e.sock", rule=slow) as stand_in:
        api = EngineAPI(from_environ("podman", {"DEPLOY_ENGINE_HOST": stand_in.url}))
        start = time.monotonic()
        with pytest.raises(CiGenError, match=r"no complete answer to GET /containers/json within 1 s"):
            api.call("GET", "/containers/json", timeout=1)
        assert time.monotonic() - start < 3
        api.close()
