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
