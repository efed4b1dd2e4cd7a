"""Helpers shared by the example's tests (a distinct name: /work/main/tests has its own helpers)."""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

EXAMPLE_DIR = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
N_TRAIN, N_TEST = 2000, 500
EPOCHS = 2
COPY_IGNORE = shutil.ignore_patterns("tests", "__pycache__", ".pytest_cache", "model", "train_data", "*.pyc", ".gitlab-ci-local")


def tool_env(**extra: str) -> dict:
    """Environment for subprocesses: the venv's bin first, so dvc stages' `python` is this one."""
    env = dict(os.environ)
    env["PATH"] = str(Path(PYTHON).parent) + os.pathsep + env.get("PATH", "")
    env["DVC_NO_ANALYTICS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, timeout: float = 300, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(**env), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def dvc(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return run([PYTHON, "-m", "dvc", *args], cwd, **kw)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """serve.py started as a real process; `url` once it printed its address."""

    def __init__(self, model_base_path: Path, cwd: Path, log_path: Path, port: int = 0, name: str = "fashion-mnist"):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [PYTHON, "serve.py", "--model_name", name, "--model_base_path", str(model_base_path), "--rest_api_port", str(port)],
            cwd=cwd,
            env=tool_env(),
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.url: str | None = None

    def wait_ready(self, timeout: float = 120) -> str:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise AssertionError(f"serve.py printed nothing in {timeout}s; log:\n{self.log_path.read_text()}") from None
        if " at http://" not in line:
            self.stop()
            raise AssertionError(f"serve.py did not start: {line!r}; log:\n{self.log_path.read_text()}")
        self.url = line.split(" at ", 1)[1].split("/v1/", 1)[0]
        return self.url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()
