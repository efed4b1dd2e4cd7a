"""Runner-like job environments for `ci-gen run` (the default; `--host-env` opts out).

gitlab-ci-local runs every job with the shell executor: without a container, a job would see
whatever the caller has (their venv on PATH, their CI/CD variables). Here:
- the caller's environment loses its CI/CD side (`CI_*`, `GITLAB_*`, `CI_GEN_*`, `GCL_*`,
  `*_TOKEN`) in both modes: only `--variable` hands such a value to a job;
- in runner-like mode it also loses every venv on PATH, and a setup script that every job's
  bash sources first (BASH_ENV) stands in for the job's image: the runtime venv for the
  ci-gen runtime image, a fresh empty venv (per job, per run) for any other image.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ci_gen import __version__
from ci_gen.components import PROJECT_VARIABLE, RUNTIME_IMAGE_REPO, TEMPLATE_PROJECT
from ci_gen.dvcrepo.credentials import SETTINGS
from ci_gen.local.includes import expand

if TYPE_CHECKING:
    from ci_gen.local.runtime import Runtime

_CICD = re.compile(r"^(CI_|GITLAB_|CI_GEN_|GCL_)|_TOKEN$")
# What a job's DVC remotes read (credentials.SETTINGS): the caller exports them for the run.
_REMOTE_VARS = frozenset(var for pairs in SETTINGS.values() for var, _ in pairs)
# Set on the job's bash once its image stand-in is in place (a nested bash skips the setup).
MARK = "CI_GEN_JOB_IMAGE"


def cicd_names(env: dict[str, str]) -> list[str]:
    """Names of the caller's CI/CD variables and tokens, which no job gets unasked."""
    return sorted(k for k in env if _CICD.search(k) and k not in _REMOTE_VARS)


def without_venvs(path: str) -> str:
    """PATH without any virtual environment's bin directory (the caller's tools)."""
    keep = [p for p in path.split(os.pathsep)
            if p and not (Path(p).parent / "pyvenv.cfg").is_file()]
    return os.pathsep.join(keep)


def runtime_tags() -> set[str]:
    """The runtime image's tags that mean this ci-gen: X.Y.Z, X.Y and X."""
    parts = __version__.split(".")
    return {".".join(parts[:n]) for n in (1, 2, 3)}


def is_runtime_image(image: str, variables: dict[str, str]) -> bool:
    """True when IMAGE, expanded as GitLab would, is the runtime image of this ci-gen.
    CI_GEN_PROJECT defaults as the components' job variables set it; a --variable overrides."""
    variables = {PROJECT_VARIABLE: TEMPLATE_PROJECT, **variables}
    repo, _, tag = expand(image, variables).rpartition(":")
    return bool(repo) and repo == expand(RUNTIME_IMAGE_REPO, variables) and tag in runtime_tags()


@dataclass(frozen=True)
class JobImage:
    job: str
    image: str  # as the job names it, expanded
    runtime: bool


def setup_script(images: list[JobImage], runtime: Runtime, envs: Path, python: str) -> str:
    """The bash sourced (BASH_ENV) by every bash of the run; in a job it sets up the image.

    A job on the runtime image gets its own venv too (no pip, no packages), layered over this
    run's ci-gen and the runtime's site-packages by a .pth file, with the runtime's console
    scripts: it sees what the image holds, and whatever it installs dies with it, as in a
    container."""
    from ci_gen.local.runtime import job_bin, purelib

    cases = []
    for i, ji in enumerate(images):
        cases.append(f"    {shlex.quote(ji.job)}) __cg_env={shlex.quote(str(envs / f'job-{i}'))}; "
                     f"__cg_rt={'1' if ji.runtime else ''}; "
                     f"__cg_image={shlex.quote(ji.image or 'no image')} ;;")
    q = shlex.quote
    pth = purelib(runtime.venv).relative_to(runtime.venv)  # lib/pythonX.Y/site-packages
    return f"""# Written by `ci-gen run` for one run. gitlab-ci-local's shell executor starts each job
# with bash; this file (BASH_ENV) makes the job start from what its image would hold.
if [ -n "${{CI_JOB_NAME:-}}" ] && [ -z "${{{MARK}:-}}" ]; then
  __cg_env={q(str(envs / 'job-other'))}; __cg_rt=; __cg_image='no image'
  case "$CI_JOB_NAME" in
{chr(10).join(cases)}
  esac
  __cg_t0=$EPOCHREALTIME
  rm -rf "$__cg_env" || exit 1
  if [ -n "$__cg_rt" ]; then
    {q(python)} -m venv --without-pip "$__cg_env" || exit 1
    printf '%s\n' {" ".join(q(str(d)) for d in runtime.site_dirs)} > "$__cg_env/{pth}/_ci_gen_runtime.pth"
    export PATH="$__cg_env/bin:"{q(str(job_bin(runtime.venv)))}":$PATH"
    __cg_what="the ci-gen {__version__} runtime environment"
  else
    {q(python)} -m venv "$__cg_env" || exit 1
    export PATH="$__cg_env/bin:$PATH"
    __cg_what="a fresh empty Python environment"
  fi
  # A pip outside the job's venv (the machine's own, next on PATH) refuses to install.
  export VIRTUAL_ENV="$__cg_env" {MARK}="$__cg_image" PIP_REQUIRE_VIRTUALENV=1
  echo "ci-gen run: image $__cg_image: $__cg_what" \
    "(set up in $(awk -v a="$__cg_t0" -v b="$EPOCHREALTIME" 'BEGIN {{printf "%.1f", b - a}}') s)"
  unset __cg_env __cg_rt __cg_image __cg_t0 __cg_what
fi
unset BASH_ENV
"""


def host_setup_script(bindir: str) -> str:
    """The BASH_ENV of a --host-env run: the caller's venv first on every job's PATH. The
    caller's PATH already starts with it, but bash may source the user's ~/.bashrc first
    (Debian's bash does when its stdin is a socket, as under Node), and a pyenv or conda
    set-up there would put another python ahead of the venv that holds the project's
    dependencies."""
    return f"""# Written by `ci-gen run --host-env` for one run: jobs use the caller's venv first.
if [ -n "${{CI_JOB_NAME:-}}" ] && [ -z "${{{MARK}:-}}" ]; then
  export PATH={shlex.quote(bindir)}":$PATH" {MARK}=host
fi
unset BASH_ENV
"""
