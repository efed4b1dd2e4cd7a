"""What the jobs of a local run get: their environment and the run's CI/CD variables."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from ci_gen.errors import CiGenError, UsageError, shown
from ci_gen.gitcmd import git
from ci_gen.local.jobenv import cicd_names, without_venvs
from ci_gen.local.project import ProjectContext
from ci_gen.patterns import RE_GIT_REF

SKIP_BUILD_NO_REGISTRY = (
    "no container registry configured for local runs (pass --variable "
    "CI_REGISTRY_IMAGE=HOST:PORT/GROUP/NAME); the production base image cannot be pulled offline"
)
SKIP_BUILD_NO_BUILDAH = "buildah not found on PATH (Debian: apt-get install buildah)"


def run_variables(ctx: ProjectContext, given: dict[str, str], mr: bool,
                  push_url: Path, schedule: bool = False, tag: str = "") -> tuple[dict[str, str], list[str]]:
    """CI/CD variables of a local run, and the predefined ones it replaces (to unset in jobs).

    The user's --variable values win over every default here.
    """
    user = dict(given)
    v = {
        # The jobs' pip downloads go to this machine's own pip cache (a runner's `cache:` keeps
        # them between pipelines): the components' `cache:` of .cache/pip stays empty, so
        # gitlab-ci-local does not copy hundreds of MB into every job (one job at a time: the
        # cells of a sweep waited for each other), and a new project's first run reuses what
        # the machine has already downloaded.
        "PIP_CACHE_DIR": pip_cache_dir(),
        "CI_GEN_DEPLOY_ENGINE": "process",
        "CI_GEN_DEPLOY_PORT": "0",
        "CI_GEN_STATE_DIR": str(ctx.state_dir / "ci-gen-state"),
        "CI_GEN_PUSH_URL": str(push_url),
    }
    registry = user.get("CI_REGISTRY")
    if registry and not user.get("CI_REGISTRY_IMAGE"):
        # GitLab's own formula for the project's image path.
        v["CI_REGISTRY_IMAGE"] = f"{registry}/{ctx.origin.path.lower()}"
    if not (user.get("CI_REGISTRY_IMAGE") or v.get("CI_REGISTRY_IMAGE")):
        v["CI_GEN_SKIP_BUILD"] = SKIP_BUILD_NO_REGISTRY
    elif shutil.which("buildah") is None:
        v["CI_GEN_SKIP_BUILD"] = SKIP_BUILD_NO_BUILDAH
    unset: list[str] = []
    if schedule:
        v["CI_PIPELINE_SOURCE"] = "schedule"
    if mr:
        v.update(_merge_request_variables(ctx))
        unset.append("CI_COMMIT_BRANCH")
    if tag:
        v.update(_tag_variables(tag))
        unset.append("CI_COMMIT_BRANCH")
    v.update(user)
    return v, [u for u in unset if u not in user]


def pip_cache_dir() -> str:
    """pip's own cache directory for this user ($PIP_CACHE_DIR, else pip's default on Linux)."""
    given = os.environ.get("PIP_CACHE_DIR")
    if given:
        return given
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pip")


def _merge_request_variables(ctx: ProjectContext) -> dict[str, str]:
    """The predefined variables of a merge request pipeline into the default branch."""
    target = ctx.default_branch
    target_sha = git(ctx.root, "rev-parse", "-q", "--verify", f"refs/remotes/origin/{target}", check=False)
    base = git(ctx.root, "merge-base", "HEAD", target_sha, check=False) if target_sha else ""
    return {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        # Not defined in merge request pipelines: empty for rules, unset in jobs.
        "CI_COMMIT_BRANCH": "",
        "CI_MERGE_REQUEST_ID": "1001",
        "CI_MERGE_REQUEST_IID": "1",
        "CI_MERGE_REQUEST_TITLE": f"Local merge request {ctx.branch} into {target}",
        "CI_MERGE_REQUEST_EVENT_TYPE": "detached",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": ctx.branch,
        "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA": ctx.head_sha,
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": target,
        "CI_MERGE_REQUEST_TARGET_BRANCH_SHA": target_sha,
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
        "CI_MERGE_REQUEST_PROJECT_PATH": ctx.origin.path,
        "CI_MERGE_REQUEST_PROJECT_ID": "1217",  # gitlab-ci-local's CI_PROJECT_ID
        "CI_MERGE_REQUEST_REF_PATH": "refs/merge-requests/1/head",
        "CI_OPEN_MERGE_REQUESTS": f"{ctx.origin.path}!1",
    }


def check_tag(ctx: ProjectContext, tag: str) -> None:
    """A tag pipeline runs at its tag: refuse a name git would not take, or a tag that exists
    and names another commit than the one the run uses (a new name rehearses a tag to come)."""
    if not re.fullmatch(RE_GIT_REF, tag) or "~" in tag or "^" in tag:
        raise UsageError(f"--tag {shown(tag, limit=60)} is not a tag name (e.g. 1.2.0 or v1.2.0)")
    at = git(ctx.root, "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}", check=False)
    if at and at != ctx.head_sha:
        raise CiGenError(f"--tag {tag}: the tag names commit {at[:8]}, not HEAD {ctx.head_sha[:8]}; "
                         f"check it out first (git checkout {tag})")


def _tag_variables(tag: str) -> dict[str, str]:
    """The predefined variables of a tag pipeline: GitLab sets CI_COMMIT_TAG and leaves
    CI_COMMIT_BRANCH undefined (empty for rules, unset in jobs)."""
    return {
        "CI_PIPELINE_SOURCE": "push",
        "CI_COMMIT_TAG": tag,
        "CI_COMMIT_BRANCH": "",
        "CI_COMMIT_REF_NAME": tag,
        # GitLab's slug: lower case, anything but a-z0-9 -> `-`, at most 63, no `-` at the ends.
        "CI_COMMIT_REF_SLUG": re.sub(r"[^a-z0-9]+", "-", tag.lower())[:63].strip("-"),
    }


# Who a local run commits as when the project has no git identity (dvc-upload's pointer
# commit); gitlab-ci-local also reads it for GITLAB_USER_NAME/EMAIL instead of warning.
LOCAL_IDENTITY = (("user.name", "ci-gen local run"), ("user.email", "ci-gen@localhost"))


def identity_env(ctx: ProjectContext, env: dict[str, str]) -> dict[str, str]:
    """GIT_CONFIG_* entries for the parts of the git identity the project lacks ({} if none)."""
    missing = [(k, v) for k, v in LOCAL_IDENTITY if not git(ctx.root, "config", k, check=False)]
    if not missing:
        return {}
    n = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
    out = {"GIT_CONFIG_COUNT": str(n + len(missing))}
    for i, (key, value) in enumerate(missing, n):
        out[f"GIT_CONFIG_KEY_{i}"], out[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return out


def job_environment(extra: dict[str, str] | None = None, host_env: bool = False) -> tuple[dict[str, str], list[str]]:
    """The environment gitlab-ci-local (and so every job) runs with, and the names of the
    caller's CI/CD variables and tokens withheld from it (jobs get those only through
    --variable, as CI/CD variables).

    host_env: the caller's venv first on PATH, so jobs find this ci-gen, dvc and python.
    Otherwise no venv is on PATH at all: `jobenv` gives each job the stand-in for its image.
    """
    env = dict(os.environ)
    withheld = cicd_names(env)
    for name in withheld:
        del env[name]
    if host_env:
        bindir = os.path.dirname(sys.executable)
        env["PATH"] = os.pathsep.join([bindir, *[p for p in env.get("PATH", "").split(os.pathsep) if p and p != bindir]])
        if sys.prefix != sys.base_prefix:
            env["VIRTUAL_ENV"] = sys.prefix
    else:
        env["PATH"] = without_venvs(env.get("PATH", ""))
        for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE"):
            env.pop(name, None)
    env.update(extra or {})
    return env, withheld
