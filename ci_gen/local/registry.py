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
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ci_gen.errors import CiGenError

STARTUP_TIMEOUT = 90.0  # two shared cores: the first start imports a lot


@dataclass
class Server:
    url: str
    root: Path
    process: subprocess.Popen

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


def start(root: Path, timeout: float = STARTUP_TIMEOUT) -> Server:
    """Start `mlflow server` with its store under `root`; return once it answers /health."""
    command = executable()
    if command is None:
        raise CiGenError("mlflow is not installed: `pip install mlflow==3.17.2` (ci-gen's "
                         "`test` extra) to run a local model registry")
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CiGenError(f"the MLflow server exited at start ({_last_line(root)}); "
                             f"log: {root / 'server.log'}")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    if fresh:
                        _keep_template(db)
                    return server
        except OSError:
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
