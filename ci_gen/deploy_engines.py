"""Deploy, health-gate, roll back and stop model releases on the runner host.

Used by `ci-gen job deploy` and `ci-gen job stop`. State lives under
`$CI_GEN_STATE_DIR` (default `~/.local/state/ci-gen`) in `deploy/<environment>/`:

    current.json            the release that serves now (engine, pid or container, port, ...)
    releases/<id>/          one per release; for the process engine a copy of the serve script
                            and the model (a later job's workspace cleanup cannot break it),
                            its log (serve.log) and release.json (how to start it again)

Engines: `process` (the project's serve script, detached in its own session) and
`docker`/`podman` (`run -d` of the image built by the pipeline). Deploy stops the previous
release, starts the new one and waits for its health URL; if it never becomes healthy the
new one is removed and the previous one is started again.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ci_gen.components import AUTO, KV_MAX_ITEMS, NONE, given
from ci_gen.errors import CiGenError, UsageError
from ci_gen.inputs import parse_number

ENGINES = ("docker", "podman", "process")
KEEP_RELEASES = 3
CONTAINER_PORT = 8501  # TF Serving's REST port inside the image
PROGRESS_EVERY = 5.0  # seconds between "still waiting" lines
POLL = 0.2  # seconds between health probes

# Every value below reaches a process (argv, file names): tight patterns, no shell words.
RE = {
    "environment": re.compile(r"^[a-z][a-z0-9_-]{0,63}$"),
    "image": re.compile(r"^[a-z0-9][A-Za-z0-9._/:-]{0,299}(@sha256:[a-f0-9]{64})?$"),
    "host": re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$"),
    "model_name": re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
    "path": re.compile(r"^/?[A-Za-z0-9_.][A-Za-z0-9_./-]{0,299}$"),
    "health_path": re.compile(r"^(/[A-Za-z0-9_./:-]{0,200})?$"),
    "env_key": re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"),
    "env_value": re.compile(r"^[A-Za-z0-9_./:@+-]{0,200}$"),
    "release": re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
}
_SHORT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
# What a detached serve process inherits: enough to run Python, never the job's secrets.
_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH",
             "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES")


@dataclass
class Spec:
    """A validated deploy request."""

    environment: str
    engine: str
    image: str = "local"
    host: str = "127.0.0.1"
    port: int = 8501
    model_name: str = "model"
    model_path: str = "model"
    serve_script: str = "serve.py"
    health_path: str = ""
    health_timeout: float = 120.0
    env: dict[str, str] = field(default_factory=dict)
    dotenv: str = ""
    engine_note: str = ""  # why the engine differs from --engine, when it does

    @property
    def health(self) -> str:
        return self.health_path or f"/v1/models/{self.model_name}"


def _check(name: str, value: str, flag: str) -> str:
    if not isinstance(value, str) or not RE[name].fullmatch(value):
        raise UsageError(f"{flag} {str(value)[:80]!r} is not allowed (expected {RE[name].pattern})")
    if name == "path" and ".." in value.split("/"):
        raise UsageError(f"{flag} {value[:80]!r}: '..' is not allowed")
    return value


def parse_env(text: str) -> dict[str, str]:
    """`K=V,K2=V2` -> dict; plain words only (values reach the service's environment)."""
    out: dict[str, str] = {}
    if not text:
        return out
    items = text.split(",")
    if len(items) > KV_MAX_ITEMS:
        raise UsageError(f"--env: at most {KV_MAX_ITEMS} KEY=VALUE pairs")
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not RE["env_key"].fullmatch(key) or not RE["env_value"].fullmatch(value):
            raise UsageError(f"--env: {item[:80]!r} is not KEY=VALUE with plain words")
        out[key] = value
    return out


def make_spec(environment: str, engine: str, *, image: str = "local", host: str = "127.0.0.1",
              port: str | int = "8501", model_name: str = "model", model_path: str = "model",
              serve_script: str = "serve.py", health_path: str = "", health_timeout: str | float = "120",
              env: str = "", dotenv: str = "", environ: dict[str, str] | None = None) -> Spec:
    """Validate every flag (and the CI_GEN_DEPLOY_ENGINE / _PORT overrides) into a Spec."""
    environ = os.environ if environ is None else environ
    flag_engine, engine = engine, environ.get("CI_GEN_DEPLOY_ENGINE") or engine
    # The job log echoes the component's --engine; say which engine really runs, and why.
    note = f"CI_GEN_DEPLOY_ENGINE overrides --engine {flag_engine[:40]}" if engine != flag_engine else ""
    if engine not in ENGINES:
        raise UsageError(f"engine {engine[:40]!r} is not one of {', '.join(ENGINES)}")
    # Numbers arrive as GitLab writes them (8501, 120, 1.0e+02): one parser for all of ci-gen.
    port_text = environ.get("CI_GEN_DEPLOY_PORT") or str(port)
    port_value = parse_number(port_text, "--port (or CI_GEN_DEPLOY_PORT)")
    if port_value != int(port_value):
        raise UsageError(f"--port {port_text[:20]} is not a whole number")
    if not 0 <= port_value <= 65535:
        raise UsageError(f"--port {port_text[:20]} is out of range 0-65535")
    timeout = float(parse_number(str(health_timeout), "--health-timeout"))
    if not 0 < timeout <= 99999:
        raise UsageError("--health-timeout must be > 0 and at most 99999 seconds")
    return Spec(
        environment=_check("environment", environment, "--environment"),
        engine=engine,
        image=_check("image", image, "--image"),
        host=_check("host", host, "--host"),
        port=int(port_value),
        model_name=_check("model_name", model_name, "--model-name"),
        model_path=_check("path", model_path, "--model-path"),
        serve_script=_check("path", serve_script, "--serve-script"),
        health_path=_check("health_path", given(health_path, AUTO), "--health-path"),
        health_timeout=timeout,
        env=parse_env(given(env, NONE)),
        dotenv=_check("path", dotenv, "--dotenv") if dotenv else "",
        engine_note=note,
    )


# ---------------------------------------------------------------- state

def state_root(environ: dict[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("CI_GEN_STATE_DIR") or os.path.join(
        os.path.expanduser("~"), ".local", "state", "ci-gen")
    return Path(base) / "deploy"


def env_dir(environment: str, environ: dict[str, str] | None = None) -> Path:
    return state_root(environ) / _check("environment", environment, "--environment")


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CiGenError(f"deploy state {path} is unreadable ({exc}); remove it to start over") from None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(directory: Path, say: Callable[[str], None]) -> Iterator[None]:
    """One deploy/stop of an environment at a time (GitLab's resource_group does it in CI)."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another deploy/stop of {directory.name} to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def new_release_id(releases: Path, environ: dict[str, str]) -> str:
    sha = environ.get("CI_COMMIT_SHORT_SHA", "")
    base = sha if _SHORT_SHA.match(sha) else _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    # The same commit deployed again gets the next number, never a pruned release's id.
    taken = [0] + [1 if d.name == base else int(d.name[len(base) + 1:])
                   for d in releases.iterdir()
                   if d.name == base or re.fullmatch(re.escape(base) + r"-[0-9]{1,6}", d.name)]
    n = max(taken) + 1
    return base if n == 1 else f"{base}-{n}"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_bind_addr(host) or "127.0.0.1", 0))
        return s.getsockname()[1]


def _bind_addr(host: str) -> str | None:
    """The address to listen on for `host`: an IP literal, loopback for localhost, else None."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def port_in_use(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- health

def probe(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    """(healthy, why): HTTP 200 and, for TF Serving's status JSON, a version AVAILABLE."""
    import urllib.error
    import urllib.request

    # Never through a proxy: the service is on this host or its network.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            status, body = resp.status, resp.read(65536)
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, str(getattr(reason, "strerror", None) or reason)[:100]
    if status != 200:
        return False, f"HTTP {status}"
    try:
        data = json.loads(body)
    except ValueError:
        return True, "HTTP 200"
    if isinstance(data, dict) and "model_version_status" in data:
        states = [s.get("state") for s in data["model_version_status"] or [] if isinstance(s, dict)]
        if "AVAILABLE" not in states:
            return False, f"model state {'/'.join(map(str, states)) or 'none'}"
    return True, "HTTP 200"


# ---------------------------------------------------------------- engines

class Engine:
    """How releases are started, checked, stopped and started again."""

    name = ""

    def check(self, spec: Spec) -> None:
        """Raise a clear error when this engine cannot work here."""

    def prepare(self, spec: Spec, rid: str, rdir: Path, port: int) -> dict[str, Any]:
        raise NotImplementedError

    def start(self, rec: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def alive(self, rec: dict[str, Any]) -> tuple[bool, str]:
        raise NotImplementedError

    def stop(self, rec: dict[str, Any], remove: bool) -> bool:
        """Stop the release; True when something was running."""
        raise NotImplementedError

    def restart(self, rec: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def log_tail(self, rec: dict[str, Any], lines: int = 30) -> str:
        raise NotImplementedError

    def describe(self, rec: dict[str, Any]) -> str:
        return rec["release"]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a pid, or None when it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


class ProcessEngine(Engine):
    name = "process"

    def __init__(self, environ: dict[str, str] | None = None):
        self.environ = os.environ if environ is None else environ
        self.children: dict[int, subprocess.Popen] = {}

    def check(self, spec: Spec) -> None:
        if not Path(spec.serve_script).is_file():
            raise CiGenError(f"serve script {spec.serve_script} not found (input serve-script)")
        if not Path(spec.model_path).is_dir():
            raise CiGenError(f"model directory {spec.model_path} not found "
                             "(input model-path; does the job get the train job's artifacts?)")
        python = self.python()
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            raise CiGenError(f"CI_GEN_DEPLOY_PYTHON {python[:100]!r} is not an executable file")

    def python(self) -> str:
        return self.environ.get("CI_GEN_DEPLOY_PYTHON") or sys.executable

    def prepare(self, spec: Spec, rid: str, rdir: Path, port: int) -> dict[str, Any]:
        # The release owns its copy: the job's workspace is wiped after the job.
        script = rdir / Path(spec.serve_script).name
        shutil.copy2(spec.serve_script, script)
        shutil.copytree(spec.model_path, rdir / "model", symlinks=False)
        cmd = [self.python(), str(script), "--model_name", spec.model_name,
               "--model_base_path", str(rdir / "model"), "--rest_api_port", str(port)]
        bind = _bind_addr(spec.host)
        if bind:
            cmd += ["--rest_api_host", bind]
        env = {k: self.environ[k] for k in _PASS_ENV if k in self.environ}
        env.update(spec.env, MODEL_NAME=spec.model_name)
        return {"cmd": cmd, "cwd": str(rdir), "log": str(rdir / "serve.log"), "env": env}

    def start(self, rec: dict[str, Any]) -> dict[str, Any]:
        try:
            with open(rec["log"], "ab") as log:
                log.write(f"--- ci-gen: starting release {rec['release']} at "
                          f"{_dt.datetime.now().isoformat(timespec='seconds')}\n".encode())
                log.flush()
                # Own session: it outlives the job, and stop can kill its whole group.
                proc = subprocess.Popen(rec["cmd"], cwd=rec["cwd"], env=rec["env"],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                        start_new_session=True, close_fds=True)
        except OSError as exc:
            raise CiGenError(f"cannot start release {rec['release']}: "
                             f"{exc.strerror or exc} ({exc.filename or rec['cmd'][0]})") from None
        self.children[proc.pid] = proc
        stat = _proc_stat(proc.pid)
        return dict(rec, pid=proc.pid, start_ticks=stat[1] if stat else None)

    def alive(self, rec: dict[str, Any]) -> tuple[bool, str]:
        pid = rec.get("pid")
        if not pid:
            return False, "not started"
        child = self.children.get(pid)
        if child is not None:
            code = child.poll()
            return (True, "running") if code is None else (False, f"process exited with code {code}")
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            return False, "process is gone"
        if rec.get("start_ticks") is not None and stat[1] != rec["start_ticks"]:
            return False, "process is gone (pid reused)"
        return True, "running"

    def stop(self, rec: dict[str, Any], remove: bool = True) -> bool:
        running, _ = self.alive(rec)
        if not running:
            return False
        pid = rec["pid"]
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            self._signal(pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not self.alive(rec)[0]:
                    return True
                time.sleep(0.05)
        raise CiGenError(f"release {rec['release']} (pid {pid}) did not stop")

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        try:
            if os.getpgid(pid) == pid:  # its own group: the server and anything it spawned
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def restart(self, rec: dict[str, Any]) -> dict[str, Any]:
        return self.start(rec)

    def log_tail(self, rec: dict[str, Any], lines: int = 30) -> str:
        try:
            text = Path(rec["log"]).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe(self, rec: dict[str, Any]) -> str:
        return f"{rec['release']} (pid {rec.get('pid')})"


class ContainerEngine(Engine):
    """docker or podman, same CLI."""

    def __init__(self, name: str):
        self.name = name

    def binary(self) -> str:
        path = shutil.which(self.name)
        if not path:
            raise CiGenError(f"{self.name} not found on PATH: install it on the runner, or use "
                             "engine `process` (input engine, or CI_GEN_DEPLOY_ENGINE=process)")
        return path

    def check(self, spec: Spec) -> None:
        self.binary()

    @staticmethod
    def container_name(environment: str, rid: str) -> str:
        return f"ci-gen-{environment}-{rid}"

    def run_cmd(self, spec: Spec, rid: str, port: int) -> list[str]:
        """The exact `run` command line (argv, no shell)."""
        bind = _bind_addr(spec.host)
        publish = f"{bind}:{port}:{CONTAINER_PORT}" if bind else f"{port}:{CONTAINER_PORT}"
        cmd = [self.name, "run", "-d", "--name", self.container_name(spec.environment, rid),
               "-p", publish, "-e", f"MODEL_NAME={spec.model_name}"]
        for key, value in spec.env.items():
            cmd += ["-e", f"{key}={value}"]
        return cmd + [spec.image]

    def prepare(self, spec: Spec, rid: str, rdir: Path, port: int) -> dict[str, Any]:
        return {"cmd": self.run_cmd(spec, rid, port),
                "container": self.container_name(spec.environment, rid), "image": spec.image}

    def _run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.binary(), *args], capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            err = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
            raise CiGenError(f"{self.name} {args[0]} failed: {err}")
        return proc

    def start(self, rec: dict[str, Any]) -> dict[str, Any]:
        self._run(*rec["cmd"][1:], check=True)
        return rec

    def alive(self, rec: dict[str, Any]) -> tuple[bool, str]:
        proc = self._run("inspect", "-f", "{{.State.Running}}", rec["container"])
        if proc.returncode != 0:
            return False, "container is gone"
        return (True, "running") if proc.stdout.strip() == "true" else (False, "container stopped")

    def stop(self, rec: dict[str, Any], remove: bool = True) -> bool:
        running, why = self.alive(rec)
        if running:
            self._run("stop", rec["container"], check=True)
        if remove and why != "container is gone":
            self._run("rm", "-f", rec["container"], check=True)
        return running

    def restart(self, rec: dict[str, Any]) -> dict[str, Any]:
        self._run("start", rec["container"], check=True)
        return rec

    def log_tail(self, rec: dict[str, Any], lines: int = 30) -> str:
        proc = self._run("logs", "--tail", str(lines), rec["container"])
        return (proc.stdout + proc.stderr).rstrip()

    def describe(self, rec: dict[str, Any]) -> str:
        return f"{rec['release']} (container {rec['container']})"


def engine_for(name: str, environ: dict[str, str] | None = None) -> Engine:
    if name == "process":
        return ProcessEngine(environ)
    if name in ("docker", "podman"):
        return ContainerEngine(name)
    raise CiGenError(f"unknown deploy engine {name[:40]!r} in the deploy state")


# ---------------------------------------------------------------- deploy and stop

def wait_healthy(engine: Engine, rec: dict[str, Any], timeout: float,
                 say: Callable[[str], None]) -> tuple[bool, str]:
    """Poll the health URL until healthy, dead or out of time; a line every few seconds."""
    start = time.monotonic()
    deadline, next_note = start + timeout, start + PROGRESS_EVERY
    why = "not checked yet"
    while True:
        running, state = engine.alive(rec)
        if not running:
            return False, state
        ok, why = probe(rec["health_url"], timeout=max(0.2, min(2.0, deadline - time.monotonic())))
        if ok:
            return True, why
        now = time.monotonic()
        if now >= deadline:
            return False, f"timed out ({why})"
        if now >= next_note:
            say(f"deploy: waiting for {rec['release']} at {rec['health_url']}: "
                f"{now - start:.0f}s/{timeout:g}s ({why})")
            next_note = now + PROGRESS_EVERY
        time.sleep(min(POLL, max(0.0, deadline - now)))


def _prune(releases: Path, keep: set[str]) -> list[str]:
    dirs = sorted((d for d in releases.iterdir() if d.is_dir()),
                  key=lambda d: d.stat().st_mtime, reverse=True)
    removed = []
    for d in dirs[KEEP_RELEASES:]:
        if d.name not in keep:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    return removed


def write_dotenv(path: str, url: str) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(f"DEPLOY_URL={url}\n", encoding="utf-8")
    os.replace(tmp, target)


def deploy(spec: Spec, environ: dict[str, str] | None = None,
           say: Callable[[str], None] = print) -> dict[str, Any]:
    """Deploy one release with a health gate; returns its record, raises on failure."""
    environ = os.environ if environ is None else environ
    engine = engine_for(spec.engine, environ)
    engine.check(spec)
    edir = env_dir(spec.environment, environ)
    with locked(edir, say):
        releases = edir / "releases"
        releases.mkdir(parents=True, exist_ok=True)
        previous = read_json(edir / "current.json")
        port = free_port(spec.host) if spec.port == 0 else spec.port
        rid = new_release_id(releases, environ)
        rdir = releases / rid
        rdir.mkdir()
        url = f"http://{spec.host}:{port}"
        rec = {"release": rid, "environment": spec.environment, "engine": engine.name,
               "host": spec.host, "port": port, "url": url, "health_url": url + spec.health,
               "model_name": spec.model_name, "health_timeout": spec.health_timeout,
               "created": _dt.datetime.now().isoformat(timespec="seconds")}
        try:
            rec.update(engine.prepare(spec, rid, rdir, port))
            write_json(rdir / "release.json", rec)
        except OSError as exc:
            shutil.rmtree(rdir, ignore_errors=True)
            raise CiGenError(f"cannot prepare release {rid} in {rdir}: "
                             f"{exc.strerror or exc}") from None

        prev_engine = engine_for(previous["engine"], environ) if previous else None
        if previous:
            say(f"deploy: stopping previous release {prev_engine.describe(previous)}")
            prev_engine.stop(previous, remove=False)
        note = f"; {spec.engine_note}" if spec.engine_note else ""
        say(f"deploy: starting release {rid} with engine {engine.name}{note} on {url}")
        if port_in_use(spec.host, port):
            healthy, why = False, f"port {port} on {spec.host} is already in use by another program"
        else:
            try:
                rec = engine.start(rec)
            except CiGenError as exc:
                healthy, why = False, str(exc)
            else:
                write_json(rdir / "release.json", rec)
                healthy, why = wait_healthy(engine, rec, spec.health_timeout, say)
        if healthy:
            write_json(edir / "current.json", rec)
            if spec.dotenv:
                write_dotenv(spec.dotenv, url)
            if previous and isinstance(prev_engine, ContainerEngine):
                prev_engine.stop(previous, remove=True)
            removed = _prune(releases, {rid, previous["release"]} if previous else {rid})
            say(f"deploy: release {rid} is healthy at {url}"
                + (f" (replaced {previous['release']})" if previous else ""))
            if removed:
                say(f"deploy: pruned old releases {', '.join(removed)}")
            return rec

        # Unhealthy: show why, remove it, bring the previous release back.
        say(f"deploy: release {rid} is not healthy: {why}")
        tail = engine.log_tail(rec) if rec.get("pid") or rec.get("container") else ""
        if tail:
            say(f"deploy: last lines of release {rid}'s log:")
            say("\n".join("    " + line for line in tail.splitlines()))
        with contextlib.suppress(CiGenError):
            engine.stop(rec, remove=True)
        waited = f"{spec.health_timeout:g}s"
        if not previous:
            raise CiGenError(f"release {rid} never became healthy in {waited}; "
                             "no previous release to restore")
        say(f"deploy: restoring previous release {previous['release']}")
        try:
            restored = prev_engine.restart(previous)
            ok, pwhy = wait_healthy(prev_engine, restored,
                                    float(previous.get("health_timeout") or spec.health_timeout), say)
        except CiGenError as exc:
            ok, pwhy, restored = False, str(exc), previous
        write_json(edir / "current.json", restored)
        prev_dir = releases / previous["release"]
        if prev_dir.is_dir():
            write_json(prev_dir / "release.json", restored)
        if not ok:
            raise CiGenError(f"release {rid} never became healthy in {waited}; previous "
                             f"release {previous['release']} could not be restored ({pwhy})")
        say(f"deploy: previous release {previous['release']} is serving again at {previous['url']}")
        raise CiGenError(f"release {rid} never became healthy in {waited}; "
                         f"previous release {previous['release']} restored")


def stop(environment: str, engine_name: str, environ: dict[str, str] | None = None,
         say: Callable[[str], None] = print) -> bool:
    """Stop the current release of the environment; False when nothing was deployed."""
    environ = os.environ if environ is None else environ
    edir = env_dir(environment, environ)
    if not (edir / "current.json").is_file():
        say(f"stop: nothing deployed in environment {environment}")
        return False
    with locked(edir, say):
        rec = read_json(edir / "current.json")
        if rec is None:
            say(f"stop: nothing deployed in environment {environment}")
            return False
        engine = engine_for(rec.get("engine", ""), environ)
        if engine.name != engine_name:
            say(f"stop: release {rec['release']} runs on {engine.name} (not {engine_name}); "
                f"stopping it there")
        was_running = engine.stop(rec, remove=True)
        (edir / "current.json").unlink()
        state = "stopped" if was_running else "was no longer running; forgot"
        say(f"stop: release {engine.describe(rec)} of {environment} {state}")
        return True
