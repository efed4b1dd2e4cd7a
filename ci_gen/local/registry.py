"""`ci-gen run`'s model registry: a real MLflow tracking server on 127.0.0.1.

Started when the pipeline has a `register` job and mlflow is installed (the `test` extra),
with a SQLite store and proxied artifacts (`--artifacts-destination`, so jobs upload over
HTTP as they do to GitLab) under the project's `.gitlab-ci-local/registry/`, which keeps the
versions of earlier runs. Jobs get MLFLOW_TRACKING_URI; the server stops with the run.

Start-up is most of its cost: a fresh SQLite store runs MLflow's migrations (seconds), so an
empty migrated store is kept once per mlflow version in the user's cache and copied in.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ci_gen import invocation
from ci_gen.errors import CiGenError, shown

STARTUP_TIMEOUT = 90.0  # two shared cores: the first start imports a lot


@dataclass
class Server:
    url: str
    root: Path
    process: subprocess.Popen
    ready: bool = False

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:  # the server's own group: its workers go too
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=5)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def executable() -> str | None:
    """The `mlflow` command beside this Python (ci-gen's venv), else on PATH."""
    beside = Path(sys.executable).parent / "mlflow"
    return str(beside) if beside.exists() else shutil.which("mlflow")


def _template() -> Path | None:
    """The user's cached empty store for this mlflow version (None: mlflow's version unknown)."""
    from importlib import metadata

    try:
        version = metadata.version("mlflow")
    except metadata.PackageNotFoundError:
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ci-gen"
    return cache / f"mlflow-{version}-empty.sqlite"


def _seed(db: Path) -> bool:
    """Copy the cached empty store in when there is no store yet; True when a fresh store
    will be migrated by the server (and should be cached once it runs)."""
    template = _template()
    if db.exists() or template is None:
        return False
    if template.is_file():
        shutil.copyfile(template, db)
        return False
    return True


def _keep_template(db: Path) -> None:
    import sqlite3

    template = _template()
    if template is None:
        return
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        tmp = template.with_suffix(f".{os.getpid()}.tmp")
        with sqlite3.connect(db) as src, sqlite3.connect(tmp) as dst:
            src.backup(dst)  # consistent even while the server holds the store open
        os.replace(tmp, template)
    except (OSError, sqlite3.Error):
        pass  # only a cache: the next start migrates again


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: Path, timeout: float = STARTUP_TIMEOUT, wait: bool = True) -> Server:
    """Start `mlflow server` with its store under `root`; return once it answers /health
    (`wait=False`: at once; the jobs wait for it, see CI_GEN_REGISTRY_WAIT)."""
    command = executable()
    if command is None:
        raise CiGenError("mlflow is not installed: `pip install 'ci-gen[registry]'` (mlflow "
                         "3.17.2) to run a local model registry")
    root = Path(root).resolve()
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    db = root / "db.sqlite"
    fresh = _seed(db)
    port = _free_port()
    log = open(root / "server.log", "ab")
    # No job-runner process (MLflow 3's server-side jobs; a registry needs none), no telemetry.
    env = {**os.environ, "MLFLOW_ENABLE_TELEMETRY": "false", "DO_NOT_TRACK": "1",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = subprocess.Popen(
        [command, "server", "--backend-store-uri", f"sqlite:///{db}",
         "--artifacts-destination", str(root / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        start_new_session=True)
    log.close()
    server = Server(f"http://127.0.0.1:{port}", root, process)
    if not wait:
        return server
    from ci_gen.http import Client, HttpError

    probe = Client(server.url, what="the local MLflow server", timeout=2, deadline=3,
                   retries=1, max_bytes=64 * 1024)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CiGenError(f"the MLflow server exited at start ({_last_line(root)}); "
                             f"log: {root / 'server.log'}")
        try:
            if probe.request("GET", probe.url("health"), what="/health").status == 200:
                if fresh:
                    _keep_template(db)
                server.ready = True
                return server
        except HttpError:
            pass
        time.sleep(0.2)
    server.stop()
    raise CiGenError(f"the MLflow server did not answer within {timeout:.0f} s; "
                     f"log: {root / 'server.log'}")


def _last_line(root: Path) -> str:
    try:
        lines = (root / "server.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1][:160] if lines else "no output"


# --- `ci-gen run` ------------------------------------------------------------------------------

SKIP_NO_MLFLOW = ("no model registry: mlflow is not installed (pip install 'ci-gen[registry]') and "
                  "MLFLOW_TRACKING_URI is not set")
# How long a register job waits for the server, which starts while the first jobs run.
JOB_WAIT = "180"


def _has_credentials(uri: str) -> bool:
    return re.search(r"://[^?#]*@", uri) is not None


def store_dir(project_state: Path) -> Path:
    return project_state / "registry"


@dataclass
class RunRegistry:
    """The registry of one `ci-gen run`: a server it started, or one the user named."""

    uri: str
    root: Path | None
    server: Server | None = None
    since: float = field(default_factory=time.time)  # reports older than the run are stale

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def report(self, say, artifacts: Path) -> None:
        """After the run: what the register jobs registered, and how to look at it."""
        from ci_gen.dotenv import parse_dotenv

        for report in sorted(artifacts.glob("*-register/.gitlab-ci-reports/dotenv/*")):
            try:
                if report.stat().st_mtime < self.since:
                    continue
                values = {e.key: e.value for e in parse_dotenv(report.read_text(), str(report))}
            except (OSError, UnicodeDecodeError, CiGenError):
                continue
            name, version = values.get("CI_GEN_MODEL_NAME"), values.get("CI_GEN_MODEL_VERSION")
            if not (name and version):
                continue
            if self.root is not None:
                where = f" --project {shlex.quote(str(self.root.parent.parent))}"
            elif _has_credentials(self.uri):
                where = ""  # the URL holds a password: the command reads MLFLOW_TRACKING_URI
            else:
                where = f" --tracking-uri {shlex.quote(self.uri)}"
            say(f"model registry: {name} {version} registered; see it with: "
                f"{invocation.command()} models show {shlex.quote(name)} {shlex.quote(version)}{where}")


def for_run(state_dir: Path, chosen: list[str], given: dict[str, str], env: dict[str, str],
            say) -> RunRegistry | None:
    """Point the run's register jobs at a registry: the user's (MLFLOW_TRACKING_URI), else a
    local MLflow server started now (in the background), else skip them with a reason."""
    if not any(name.endswith("-register") for name in chosen):
        return None
    uri = given.get("MLFLOW_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri:
        # Never the URL's user:password: shown() masks them (issue 21: a password printed).
        say(f"model registry: {shown(uri, 200)[1:-1]} (MLFLOW_TRACKING_URI)")
        return RunRegistry(uri, None)
    if executable() is None:
        env["GCL_VARIABLE_CI_GEN_SKIP_REGISTER"] = SKIP_NO_MLFLOW
        say(f"register will be skipped: {SKIP_NO_MLFLOW}")
        return None
    root = store_dir(state_dir)
    server = start(root, wait=False)
    env["GCL_VARIABLE_MLFLOW_TRACKING_URI"] = server.url
    env["GCL_VARIABLE_CI_GEN_REGISTRY_WAIT"] = JOB_WAIT
    say(f"model registry: a local MLflow server at {server.url} (store: {root})")
    return RunRegistry(server.url, root, server)


def has_project_store(project: Path) -> bool:
    """`project` holds the local registry a `ci-gen run` made."""
    return (store_dir(Path(project) / ".gitlab-ci-local") / "db.sqlite").is_file()


def open_project(project: Path) -> Server:
    """Start the server on a project's local store (`ci-gen models --project`)."""
    root = store_dir(Path(project) / ".gitlab-ci-local")
    if not has_project_store(project):
        raise CiGenError(f"no local model registry in {project} (`ci-gen run` makes one when "
                         "the pipeline has a register job)")
    return start(root)
