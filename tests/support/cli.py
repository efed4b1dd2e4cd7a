"""Run ci-gen as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path | str | None = None, env: dict | None = None, timeout: float = 600):
    """Run `python -m ci_gen ARGS` as a user would; returns the CompletedProcess."""
    # A value None removes the caller's variable (e.g. PYTHONDONTWRITEBYTECODE of a dev machine).
    full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "ci_gen", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def cancelled(argv: list[str], cwd: Path, env: dict, ready, timeout: float = 120
              ) -> subprocess.CompletedProcess:
    """Start `python -m ci_gen ARGV`, wait until `ready()` is true (the job got far enough),
    send it SIGTERM as GitLab does when a job is cancelled, and return how it ended."""
    import signal
    import time

    full = [sys.executable, "-m", "ci_gen", *argv]
    proc = subprocess.Popen(full, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(full, proc.returncode, out, err)


# Debian's PATH for a new login shell: no venv, no ~/.local/bin.
PLAIN_PATH = ":".join(("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"))


def new_shell(line: str, cwd: Path | str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`line` typed into a new shell in `cwd`: Debian's plain PATH, the user's HOME, nothing else."""
    env = {"PATH": PLAIN_PATH, "HOME": os.environ.get("HOME", str(cwd)), "LANG": "C.UTF-8"}
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def printed(stdout: str, tag: str) -> list[str]:
    """What follows `tag` on each line that has it (`next:` opens a line, `see it with:` ends one)."""
    return [ln.split(tag, 1)[1].strip() for ln in stdout.splitlines() if tag in ln]
