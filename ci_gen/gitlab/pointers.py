"""`ci-gen job commit-pointers`: commit changed DVC pointers back to the branch, safely.

Only `*.dvc` and `dvc.lock` files are committed, with `[skip ci]` so the push does not start
another pipeline. A push rejected because the branch moved (another pipeline or person pushed
first) is retried after fetch + rebase, a bounded number of times; nothing is ever
force-pushed. The token travels in an `http.extraHeader` given to git through the
environment (GIT_CONFIG_*), so it is neither in `.git/config`, nor on a command line, nor in
any output.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ci_gen import gitlab_api
from ci_gen.errors import CiGenError, UsageError

SKIP = "[skip ci]"
BACKOFF_VAR = "CI_GEN_PUSH_BACKOFF"  # seconds; jittered wait between push attempts
_RETRYABLE = ("non-fast-forward", "fetch first", "cannot lock ref", "failed to update ref",
              "stale info", "incorrect old value")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("commit-pointers", help="commit changed *.dvc/dvc.lock back to the branch",
                       description="Commit changed DVC pointer files (*.dvc, dvc.lock) with "
                       "[skip ci] and push them to $CI_COMMIT_BRANCH; on a non-fast-forward, "
                       "fetch, rebase and retry. Never force-pushes. Push URL: $CI_GEN_PUSH_URL, "
                       "else $CI_SERVER_URL/$CI_PROJECT_PATH.git with GITLAB_API_TOKEN "
                       "(or REPO_TOKEN).")
    p.add_argument("--message", metavar="TEXT",
                   help="commit message (default: 'ci-gen: update DVC pointers for "
                   "$CI_COMMIT_SHORT_SHA [skip ci]'; [skip ci] is appended when missing)")
    p.add_argument("--max-attempts", type=int, default=5, metavar="N",
                   help="push attempts before giving up (default: 5)")
    p.add_argument("--check", action="store_true",
                   help="commit and push nothing: check that git is installed, a token is set and "
                   "the push URL accepts it (a dry-run push); run it before `dvc push`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.check:
        check_push(Path.cwd())
        return 0
    commit_pointers(Path.cwd(), message=args.message, max_attempts=args.max_attempts)
    return 0


def is_pointer(path: str) -> bool:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name == "dvc.lock" or (name.endswith(".dvc") and name != ".dvc")


class _Git:
    """Runs git in one repository; failures become one scrubbed line."""

    def __init__(self, repo: Path, env: dict[str, str], extra: tuple[str, ...] = ()) -> None:
        self.repo, self.env, self.extra = repo, env, extra

    def run(self, *args: str, check: bool = True, what: str | None = None,
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["git", *args], cwd=self.repo, env=self.env, text=True,
                              capture_output=True, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise CiGenError(f"{what or 'git ' + args[0]} failed: {self.last_line(proc)}")
        return proc

    def last_line(self, proc: subprocess.CompletedProcess[str]) -> str:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        return gitlab_api.scrub(lines[-1] if lines else f"exit {proc.returncode}", self.extra)


def changed_pointers(git: _Git) -> list[str]:
    """Pointer files that differ from HEAD (modified, added, deleted or untracked)."""
    out = git.run("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames").stdout
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
    token = gitlab_api.find_token(env)
    if token is None:
        raise CiGenError(gitlab_api.missing_token_message("push to the repository", env))
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
    out = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _open(repo: Path, env: dict[str, str]) -> _Git:
    """git at the top of the repository holding `repo`, with a fixed identity and no prompts."""
    if shutil.which("git", path=env.get("PATH")) is None:
        raise CiGenError("git is not installed in this job's image, and committing the pointers "
                         "back needs it: use an image with git (the component's default, "
                         "python:3.11.11-bookworm, has it)")
    git = _Git(repo, {**env, **_identity(env), "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    top = git.run("rev-parse", "--show-toplevel", check=False)
    if top.returncode != 0:
        raise CiGenError(f"not a git repository: {repo}")
    git.repo = Path(top.stdout.strip())
    return git


def _branch(git: _Git, env: Mapping[str, str]) -> tuple[str, str]:
    """(checked-out branch or "", branch to push to)."""
    current = git.run("symbolic-ref", "-q", "--short", "HEAD", check=False).stdout.strip()
    branch = env.get("CI_COMMIT_BRANCH", "").strip() or current
    if not branch:
        raise CiGenError("HEAD is detached and CI_COMMIT_BRANCH is unset: cannot tell which "
                         "branch to push to")
    return current, branch


def _say(out):
    return lambda msg: print(f"ci-gen: {msg}", file=out or sys.stdout, flush=True)


def check_push(repo: Path, *, env: Mapping[str, str] | None = None, out=None) -> None:
    """Fail (one line) unless a push would work: git installed, a token set, and the push URL
    accepting it. `git push --dry-run` authenticates like a push (GitLab answers the
    receive-pack advertisement only to a user who may push) but sends nothing."""
    env = dict(os.environ if env is None else env)
    git = _open(repo, env)
    _current, branch = _branch(git, env)
    url, auth_env, secrets = push_target(env)
    git = _Git(git.repo, {**git.env, **auth_env}, secrets)
    shown_url = gitlab_api.scrub(url, secrets)
    proc = git.run("push", "--dry-run", "--porcelain", url, f"HEAD:refs/heads/{branch}", check=False)
    # A branch that moved on since this pipeline started is no reason to stop: the real push
    # rebases. Anything else (no access, a protected branch, no server) is.
    if proc.returncode != 0 and not any(r in proc.stdout + proc.stderr for r in _RETRYABLE):
        raise CiGenError(f"commit-back cannot push to {branch} at {shown_url}: {_push_reason(git, proc)}")
    _say(out)(f"commit-back check passed: the token can push to {branch} at {shown_url}")


def commit_pointers(repo: Path, *, message: str | None = None, max_attempts: int = 5,
                    env: Mapping[str, str] | None = None, out=None) -> str | None:
    """Commit and push changed pointers; returns the pushed commit, or None if nothing changed."""
    env = dict(os.environ if env is None else env)
    if max_attempts < 1:
        raise UsageError("--max-attempts must be at least 1")
    say = _say(out)
    git = _open(repo, env)
    base_env = git.env

    paths = changed_pointers(git)
    if not paths:
        say("no DVC pointer changes (*.dvc, dvc.lock) to commit")
        return None

    current, branch = _branch(git, env)
    url, auth_env, secrets = push_target(env)  # before committing: fail early without a token
    git = _Git(git.repo, {**base_env, **auth_env}, secrets)
    shown_url = gitlab_api.scrub(url, secrets)  # also hides user:password@ in the URL

    if not current:  # CI checks out a detached SHA: put the commit on a real branch
        git.run("checkout", "-q", "-B", branch, what=f"git checkout -B {branch}")

    short = env.get("CI_COMMIT_SHORT_SHA") or git.run("rev-parse", "--short", "HEAD").stdout.strip()
    msg = message if message is not None else f"ci-gen: update DVC pointers for {short} {SKIP}"
    if SKIP not in msg and "[ci skip]" not in msg:
        msg = f"{msg.rstrip()} {SKIP}"
    git.run("add", "-A", "--", *paths)
    git.run("commit", "-q", "-m", msg, "--", *paths)
    say(f"committed {len(paths)} pointer file{'s' if len(paths) != 1 else ''} on {branch}: "
        f"{', '.join(paths)}")

    backoff = float(env.get(BACKOFF_VAR, "0.5") or 0)
    for attempt in range(1, max_attempts + 1):
        proc = git.run("push", "--porcelain", url, f"HEAD:refs/heads/{branch}", check=False)
        if proc.returncode == 0:
            sha = git.run("rev-parse", "--short", "HEAD").stdout.strip()
            say(f"pushed {sha} to {branch} at {shown_url} (attempt {attempt})")
            return git.run("rev-parse", "HEAD").stdout.strip()
        report = proc.stdout + proc.stderr
        if not any(r in report for r in _RETRYABLE):
            raise CiGenError(f"push to {branch} failed: {_push_reason(git, proc)}")
        if attempt == max_attempts:
            break
        say(f"push rejected, {branch} moved on: fetching and rebasing "
            f"(attempt {attempt + 1} of {max_attempts})")
        if backoff:
            time.sleep(random.uniform(0, backoff * attempt))
        git.run("fetch", "-q", url, f"refs/heads/{branch}", what=f"git fetch {branch}")
        # --autostash: other uncommitted files (outputs, logs) must not block the rebase
        rebase = git.run("rebase", "-q", "--autostash", "FETCH_HEAD", check=False)
        if rebase.returncode != 0:
            conflicts = git.run("diff", "--name-only", "--diff-filter=U",
                                check=False).stdout.split()
            git.run("rebase", "--abort", check=False)
            raise CiGenError(f"cannot rebase onto the new {branch}: "
                             f"{', '.join(conflicts) or git.last_line(rebase)} changed there too; "
                             "rerun the job on the new commit")
        if not git.run("rev-list", "FETCH_HEAD..HEAD").stdout.strip():
            say(f"{branch} already has these pointer changes; nothing to push")
            return None
    raise CiGenError(f"push to {branch} still rejected after {max_attempts} attempts (the branch "
                     "keeps moving); rerun the job")


def _push_reason(git: _Git, proc: subprocess.CompletedProcess[str]) -> str:
    text = proc.stdout + proc.stderr
    for line in text.splitlines():  # GitLab explains protected-branch refusals this way
        if line.startswith("remote: GitLab:"):
            return gitlab_api.scrub(line[len("remote: "):].strip(), git.extra)
    for line in text.splitlines():  # porcelain: "!<TAB>src:dst<TAB>[rejected] (reason)"
        if line.startswith("!\t"):
            return gitlab_api.scrub(line.split("\t")[-1], git.extra)
    low = text.lower()
    if any(s in low for s in ("authentication failed", "could not read username", " 401",
                              " 403", "not allowed", "access denied")):
        return ("the token cannot push here (needs write access: a project access token with "
                "`api` or `write_repository` scope and a role allowed on this branch)")
    return git.last_line(proc)
