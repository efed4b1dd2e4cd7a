"""Pipelines in tests: `ci-gen run` as a user runs it (and its summary table), or in-process
through the local pipeline runner; a job's log; the gitlab-ci-local they use."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ci_gen.errors import CiGenError
from ci_gen.local.pipeline import RunOptions, run_local
from ci_gen.local.gitlab_ci_local import log_path
from ci_gen.local.tool import find_gitlab_ci_local

from .cli import cli
from .git import IDENTITY


def gitlab_ci_local() -> str:
    """The gitlab-ci-local `ci-gen run` uses; skips the test when it is not installed."""
    try:
        return find_gitlab_ci_local()
    except CiGenError as exc:  # pragma: no cover - bootstrap installs it
        pytest.skip(str(exc))


def ci_gen_run(project: Path, *args: str, env: dict[str, str] | None = None, runner: bool = False):
    """`ci-gen run PROJECT ARGS` with a git identity; returns the CompletedProcess.

    With --host-env (jobs use this venv) unless `runner`: most tests are about the pipeline,
    not about the job environments, and the runner-like mode costs minutes of pip installs."""
    host = () if runner else ("--host-env",)
    return cli("run", str(project), *args, *host, env={**IDENTITY, **(env or {})}, timeout=300)


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


def run_pipeline(project: Path, stream: io.StringIO | None = None, quiet: bool = True,
                 **options) -> tuple[int, dict[str, str], str]:
    """`ci-gen run` in-process: (exit code, job name -> status, its output)."""
    out = stream or io.StringIO()
    options.setdefault("host_env", True)  # as ci_gen_run: runner-like only where a test asks
    options.setdefault("manual", True)  # the whole pipeline, as `make demo` runs it
    outcome = run_local(RunOptions(directory=project, quiet=quiet, **options), out)
    return outcome.exit_code, {r.name: r.status for r in outcome.results}, out.getvalue()


def job_log(project: Path, job: str) -> str:
    """The log gitlab-ci-local kept of JOB's last run in PROJECT."""
    return log_path(project / ".gitlab-ci-local", job).read_text(errors="replace")
