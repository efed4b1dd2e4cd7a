"""Run ci-gen as a user would, and `ci-gen run` pipelines; read the run's summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ci_gen.errors import CiGenError
from ci_gen.localrun import find_gitlab_ci_local

from .git import IDENTITY

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path | str | None = None, env: dict | None = None, timeout: float = 600):
    """Run `python -m ci_gen ARGS` as a user would; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "ci_gen", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def gitlab_ci_local() -> str:
    """The gitlab-ci-local `ci-gen run` uses; skips the test when it is not installed."""
    try:
        return find_gitlab_ci_local()
    except CiGenError as exc:  # pragma: no cover - bootstrap installs it
        pytest.skip(str(exc))


def ci_gen_run(project: Path, *args: str, env: dict[str, str] | None = None):
    """`ci-gen run PROJECT ARGS` with a git identity; returns the CompletedProcess."""
    return cli("run", str(project), *args, env={**IDENTITY, **(env or {})}, timeout=300)


def summary(stdout: str) -> dict[str, str]:
    """job name -> status, from the summary table."""
    lines = stdout.split("ci-gen: summary:", 1)[1].splitlines()[1:]
    out = {}
    for line in lines:
        if not line.startswith("  "):
            break
        status, name = line.split()[:2]
        out[name] = status
    return out
