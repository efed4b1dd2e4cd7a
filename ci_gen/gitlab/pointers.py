"""Commit changed DVC pointers back to the branch over git, safely (`ci-gen job commit-pointers`).

Only `*.dvc` and `dvc.lock` files are committed, with `[skip ci]` so the push does not start
another pipeline. A push rejected because the branch moved (another pipeline or person pushed
first) is retried after fetch + rebase, a bounded number of times; nothing is ever
force-pushed. The token travels in an `http.extraHeader` given to git through the
environment (GIT_CONFIG_*), so it is neither in `.git/config`, nor on a command line, nor in
any output.
"""

from __future__ import annotations

import base64
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ci_gen import gitcmd
from ci_gen.errors import CiGenError, UsageError
from ci_gen.gitlab import api

SKIP = "[skip ci]"
BACKOFF_VAR = "CI_GEN_PUSH_BACKOFF"  # seconds; jittered wait between push attempts
_RETRYABLE = ("non-fast-forward", "fetch first", "cannot lock ref", "failed to update ref",
              "stale info", "incorrect old value")


def is_pointer(path: str) -> bool:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name == "dvc.lock" or (name.endswith(".dvc") and name != ".dvc")


@dataclass
class _Checkout:
    """A work tree, the environment git runs with there, and the secrets that environment
    carries (gitcmd runs git; this adds what only a push knows: which token to scrub)."""

    repo: Path
    env: dict[str, str]
    secrets: tuple[str, ...] = ()

    def git(self, *args: str, check: bool = True, what: str | None = None,
            ) -> subprocess.CompletedProcess[str]:
        # input="": git never waits on the job's stdin
        proc = gitcmd.run(self.repo, *args, env=self.env, input="")
        if check and proc.returncode != 0:
            raise CiGenError(f"{what or 'git ' + args[0]} failed: {self.last_line(proc)}")
        return proc

    def last_line(self, proc: subprocess.CompletedProcess[str]) -> str:
        text = proc.stderr + proc.stdout
        line = gitcmd.last_line(text) if text.strip() else f"exit {proc.returncode}"
        return api.scrub(line, self.secrets)


def changed_pointers(checkout: _Checkout) -> list[str]:
    """Pointer files that differ from HEAD (modified, added, deleted or untracked)."""
    out = checkout.git("status", "--porcelain=v1", "-z", "--untracked-files=all",
                       "--no-renames").stdout
    paths = [entry[3:] for entry in out.split("\0") if len(entry) > 3]
    return sorted(p for p in paths if is_pointer(p))


def _identity(env: Mapping[str, str]) -> dict[str, str]:
    host = env.get("CI_SERVER_HOST") or "localhost"
    name = env.get("GITLAB_USER_NAME") or "ci-gen bot"
    email = env.get("GITLAB_USER_EMAIL") or f"ci-gen-bot@noreply.{host}"
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}


def push_target(env: Mapping[str, str]) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """(URL, extra environment for git, secrets to scrub from git's output)."""
    url = env.get("CI_GEN_PUSH_URL", "").strip()
    if url:
        return url, {}, ()
    token = api.find_token(env)
    if token is None:
        raise CiGenError(api.missing_token_message("push to the repository", env))
    server = (env.get("CI_SERVER_URL") or (f"https://{env['CI_SERVER_HOST']}"
                                           if env.get("CI_SERVER_HOST") else "")).rstrip("/")
    path = env.get("CI_PROJECT_PATH", "").strip("/")
    if not server or not path:
        raise CiGenError("cannot tell where to push: set CI_GEN_PUSH_URL, or run in a GitLab "
                         "job (CI_SERVER_URL and CI_PROJECT_PATH)")
    if _git_version() < (2, 31):
        raise CiGenError("git 2.31 or newer is needed to pass the token without writing it "
                         "anywhere (GIT_CONFIG_COUNT)")
    basic = base64.b64encode(f"oauth2:{token}".encode()).decode()
    # Appended after any GIT_CONFIG_* the runner set; the empty value drops other extraHeaders.
    n = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
    extra = {"GIT_CONFIG_COUNT": str(n + 2),
             f"GIT_CONFIG_KEY_{n}": "http.extraHeader", f"GIT_CONFIG_VALUE_{n}": "",
             f"GIT_CONFIG_KEY_{n + 1}": "http.extraHeader",
             f"GIT_CONFIG_VALUE_{n + 1}": f"Authorization: Basic {basic}"}
    return f"{server}/{path}.git", extra, (token, basic)


def _git_version() -> tuple[int, int]:
    out = gitcmd.run(".", "--version").stdout
    m = re.search(r"(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _open(repo: Path, env: dict[str, str]) -> _Checkout:
    """The top of the repository holding `repo`, with a fixed identity and no prompts."""
    if shutil.which("git", path=env.get("PATH")) is None:
        raise CiGenError("git is not installed in this job's image, and committing the pointers "
                         "back needs it: use an image with git (the component's default, "
                         "python:3.11.11-bookworm, has it)")
    checkout = _Checkout(repo, {**env, **_identity(env), "GIT_TERMINAL_PROMPT": "0",
                                "LC_ALL": "C"})
    top = checkout.git("rev-parse", "--show-toplevel", check=False)
    if top.returncode != 0:
        raise CiGenError(f"not a git repository: {repo}")
    checkout.repo = Path(top.stdout.strip())
    return checkout


def _branch(checkout: _Checkout, env: Mapping[str, str]) -> tuple[str, str]:
    """(checked-out branch or "", branch to push to)."""
    current = checkout.git("symbolic-ref", "-q", "--short", "HEAD", check=False).stdout.strip()
    branch = env.get("CI_COMMIT_BRANCH", "").strip() or current
    if not branch:
        raise CiGenError("HEAD is detached and CI_COMMIT_BRANCH is unset: cannot tell which "
                         "branch to push to")
    return current, branch


@dataclass
class _Push:
    """Where and how to push: the checkout with the token's environment, the branch."""

    checkout: _Checkout
    current: str       # checked-out branch, "" on a detached HEAD
    branch: str
    url: str
    shown_url: str     # the URL without token or user:password@


def _prepare_push(checkout: _Checkout, env: Mapping[str, str]) -> _Push:
    current, branch = _branch(checkout, env)
    url, auth_env, secrets = push_target(env)
    authed = _Checkout(checkout.repo, {**checkout.env, **auth_env}, secrets)
    return _Push(authed, current, branch, url, api.scrub(url, secrets))


def _say(out) -> Callable[[str], None]:
    return lambda msg: print(f"ci-gen: {msg}", file=out or sys.stdout, flush=True)


def check_push(repo: Path, *, env: Mapping[str, str] | None = None, out=None) -> None:
    """Fail (one line) unless a push would work: git installed, a token set, the branch not
    protected against the token's user, and the push URL accepting it. `git push --dry-run`
    authenticates like a push (GitLab answers the receive-pack advertisement only to a user
    who may push) but sends nothing, so it never meets branch protection: GitLab checks that
    at the real push (lib/gitlab/git_access.rb). The branches API says it beforehand."""
    env = dict(os.environ if env is None else env)
    push = _prepare_push(_open(repo, env), env)
    refused = _protected_refusal(push.branch, env)
    if refused:
        raise CiGenError(f"commit-back cannot push to {push.branch} at {push.shown_url}: {refused}")
    proc = push.checkout.git("push", "--dry-run", "--porcelain", push.url,
                             f"HEAD:refs/heads/{push.branch}", check=False)
    # A branch that moved on since this pipeline started is no reason to stop: the real push
    # rebases. Anything else (no access, a protected branch, no server) is.
    if proc.returncode != 0 and not _retryable(proc):
        raise CiGenError(f"commit-back cannot push to {push.branch} at {push.shown_url}: "
                         f"{_push_reason(push.checkout, proc)}")
    _say(out)(f"commit-back check passed: the token can push to {push.branch} "
              f"at {push.shown_url}")


def _protected_refusal(branch: str, env: Mapping[str, str]) -> str:
    """Why GitLab would refuse the token's push to `branch`, from the branches API's `can_push`
    (lib/api/entities/branch.rb: Gitlab::UserAccess#can_push_to_branch? for the token's
    user, the rule lib/gitlab/git_access.rb applies to a push); "" when it may push, or when
    the push does not go to this project's GitLab (CI_GEN_PUSH_URL) or the API cannot say."""
    import gitlab.exceptions as gexc

    token = api.find_token(env)
    if env.get("CI_GEN_PUSH_URL", "").strip() or token is None or not env.get("CI_PROJECT_ID") \
            or not (env.get("CI_API_V4_URL") or env.get("CI_SERVER_URL")):
        return ""
    try:
        # The API's own URL first: CI_SERVER_URL may name where git pushes, not the API.
        gl = api.connect(env.get("CI_API_V4_URL") or None, token, action="read the branch's protection", env=env)
        project = api.get_project(gl, env["CI_PROJECT_ID"])
        with api.errors(f"read branch {branch}", gl.url):
            try:
                found = project.branches.get(branch)
            except gexc.GitlabGetError as exc:
                if exc.response_code == 404:
                    return ""  # a new branch: the push creates it
                raise
    except api.GitLabApiError:
        return ""  # e.g. a write_repository-only token cannot read the API: the dry run decides
    if getattr(found, "can_push", True) is not False:
        return ""
    role = api.token_role(gl, project)
    if getattr(found, "protected", False):
        return (f"{branch} is a protected branch and the token's role ({role}) may not push to it; "
                "allow that role under Settings > Repository > Protected branches, or give the "
                "project access token a role that may push (Maintainer)")
    return (f"the token's role ({role}) may not push to this project (Developer or higher is "
            "needed, and the `write_repository` or `api` scope)")


def commit_pointers(repo: Path, *, message: str | None = None, max_attempts: int = 5,
                    env: Mapping[str, str] | None = None, out=None) -> str | None:
    """Commit and push changed pointers; returns the pushed commit, or None if nothing changed."""
    env = dict(os.environ if env is None else env)
    if max_attempts < 1:
        raise UsageError("--max-attempts must be at least 1")
    say = _say(out)
    checkout = _open(repo, env)
    paths = changed_pointers(checkout)
    if not paths:
        say("no DVC pointer changes (*.dvc, dvc.lock) to commit")
        return None
    push = _prepare_push(checkout, env)  # before committing: fail early without a token
    _commit(push, paths, message, env, say)
    backoff = float(env.get(BACKOFF_VAR, "0.5") or 0)
    return _push_with_rebase(push, max_attempts, backoff, say)


def commit_message(message: str | None, short_sha: str) -> str:
    """The given message (default: one naming the commit), always with [skip ci]."""
    msg = message if message is not None else f"ci-gen: update DVC pointers for {short_sha} {SKIP}"
    if SKIP not in msg and "[ci skip]" not in msg:
        msg = f"{msg.rstrip()} {SKIP}"
    return msg


def _commit(push: _Push, paths: list[str], message: str | None, env: Mapping[str, str],
            say: Callable[[str], None]) -> None:
    git, branch = push.checkout.git, push.branch
    if not push.current:  # CI checks out a detached SHA: put the commit on a real branch
        git("checkout", "-q", "-B", branch, what=f"git checkout -B {branch}")
    short = env.get("CI_COMMIT_SHORT_SHA") or git("rev-parse", "--short", "HEAD").stdout.strip()
    git("add", "-A", "--", *paths)
    git("commit", "-q", "-m", commit_message(message, short), "--", *paths)
    say(f"committed {len(paths)} pointer file{'s' if len(paths) != 1 else ''} on {branch}: "
        f"{', '.join(paths)}")


def _push_with_rebase(push: _Push, max_attempts: int, backoff: float,
                      say: Callable[[str], None]) -> str | None:
    """Push; while the branch moved on, fetch, rebase and push again. The pushed commit, or
    None when the branch already holds these changes."""
    git, branch = push.checkout.git, push.branch
    for attempt in range(1, max_attempts + 1):
        proc = git("push", "--porcelain", push.url, f"HEAD:refs/heads/{branch}", check=False)
        if proc.returncode == 0:
            sha = git("rev-parse", "--short", "HEAD").stdout.strip()
            say(f"pushed {sha} to {branch} at {push.shown_url} (attempt {attempt})")
            return git("rev-parse", "HEAD").stdout.strip()
        if not _retryable(proc):
            raise CiGenError(f"push to {branch} failed: {_push_reason(push.checkout, proc)}")
        if attempt == max_attempts:
            break
        say(f"push rejected, {branch} moved on: fetching and rebasing "
            f"(attempt {attempt + 1} of {max_attempts})")
        if backoff:
            time.sleep(random.uniform(0, backoff * attempt))
        _rebase_on_remote(push)
        if not git("rev-list", "FETCH_HEAD..HEAD").stdout.strip():
            say(f"{branch} already has these pointer changes; nothing to push")
            return None
    raise CiGenError(f"push to {branch} still rejected after {max_attempts} attempts (the branch "
                     "keeps moving); rerun the job")


def _rebase_on_remote(push: _Push) -> None:
    """Fetch the branch and rebase the pointer commit onto it; a conflict aborts cleanly."""
    checkout, branch = push.checkout, push.branch
    checkout.git("fetch", "-q", push.url, f"refs/heads/{branch}", what=f"git fetch {branch}")
    # --autostash: other uncommitted files (outputs, logs) must not block the rebase
    rebase = checkout.git("rebase", "-q", "--autostash", "FETCH_HEAD", check=False)
    if rebase.returncode != 0:
        conflicts = checkout.git("diff", "--name-only", "--diff-filter=U",
                                 check=False).stdout.split()
        checkout.git("rebase", "--abort", check=False)
        raise CiGenError(f"cannot rebase onto the new {branch}: "
                         f"{', '.join(conflicts) or checkout.last_line(rebase)} changed there "
                         "too; rerun the job on the new commit")


def _retryable(proc: subprocess.CompletedProcess[str]) -> bool:
    """Rejected because the branch moved on (a fetch + rebase can fix it)."""
    return any(r in proc.stdout + proc.stderr for r in _RETRYABLE)


def _push_reason(checkout: _Checkout, proc: subprocess.CompletedProcess[str]) -> str:
    text = proc.stdout + proc.stderr
    for line in text.splitlines():  # GitLab explains protected-branch refusals this way
        if line.startswith("remote: GitLab:"):
            return api.scrub(line[len("remote: "):].strip(), checkout.secrets)
    for line in text.splitlines():  # porcelain: "!<TAB>src:dst<TAB>[rejected] (reason)"
        if line.startswith("!\t"):
            return api.scrub(line.split("\t")[-1], checkout.secrets)
    low = text.lower()
    if any(s in low for s in ("authentication failed", "could not read username", " 401",
                              " 403", "not allowed", "access denied")):
        return ("the token cannot push here (needs write access: a project access token with "
                "`api` or `write_repository` scope and a role allowed on this branch)")
    return checkout.last_line(proc)
