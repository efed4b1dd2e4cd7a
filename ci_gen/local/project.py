"""The git work tree gitlab-ci-local runs from.

`project_context` checks its preconditions (a commit, an `origin` remote it can parse), one
clear error each, and works out what gitlab-ci-local will derive from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ci_gen.errors import CiGenError
from ci_gen.gitcmd import git, redact_url, run

# The remote gitlab-ci-local reads before `origin`: `ci-gen init` adds it to a repository it
# creates, so that the user's `origin` stays theirs to add.
STAND_IN = "gcl-origin"

STATE_DIR = ".gitlab-ci-local"


@dataclass(frozen=True)
class Origin:
    """The origin remote as gitlab-ci-local parses it (src/git-data.ts of 4.73.0)."""

    schema: str  # git | ssh | http | https
    host: str
    port: str
    group: str
    project: str

    @property
    def path(self) -> str:
        return f"{self.group}/{self.project}"

    @property
    def fqdn(self) -> str:
        # CI_SERVER_PORT is 443 unless the remote is http(s) with another port.
        port = self.port if self.schema in ("http", "https") else "443"
        return self.host if port == "443" else f"{self.host}:{port}"


def parse_origin(url: str) -> Origin | None:
    norm = re.sub(r"\.git$", "", re.sub(r"/$", "", url.strip()))
    if norm.startswith("http"):
        m = re.search(r"(?P<schema>https?)://(?:([^:]+):([^@]+)@)?(?P<host>[^/:]+):?(?P<port>\d+)?"
                      r"/(?P<group>\S+)/(?P<project>\S+)", norm)
        if not m:
            return None
        default = "443" if m["schema"] == "https" else "80"
        return Origin(m["schema"], m["host"], m["port"] or default, m["group"], m["project"])
    if norm.startswith("ssh://"):
        m = re.search(r"(?P<schema>ssh)://(\w+)@(?P<host>[^/:]+):?(?P<port>\d+)?"
                      r"/(?P<group>\S+)/(?P<project>\S+)", norm)
        if not m:
            return None
        return Origin("ssh", m["host"], m["port"] or "22", m["group"], m["project"])
    m = re.search(r"(?P<username>\S+)@(?P<host>[^:]+):(?P<group>\S+)/(?P<project>\S+)", norm)
    if not m:
        return None
    return Origin("git", m["host"], "22", m["group"], m["project"])


@dataclass
class ProjectContext:
    root: Path
    head_sha: str
    branch: str  # "HEAD" when detached
    origin: Origin
    default_branch: str
    tracked: frozenset[str] = field(default_factory=frozenset)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def predefined(self) -> dict[str, str]:
        """The variables GitLab allows in `include:` paths, as gitlab-ci-local sets them."""
        o = self.origin
        return {
            "CI_SERVER_FQDN": o.fqdn,
            "CI_SERVER_HOST": o.host,
            "CI_PROJECT_PATH": o.path,
            "CI_PROJECT_NAMESPACE": o.group,
            "CI_PROJECT_ROOT_NAMESPACE": o.group.split("/")[0],
            "CI_PROJECT_NAME": o.project,
            "CI_COMMIT_SHA": self.head_sha,
            "CI_COMMIT_REF_NAME": self.branch,
            "CI_DEFAULT_BRANCH": self.default_branch,
        }


def project_context(directory: Path) -> ProjectContext:
    """Check gitlab-ci-local's preconditions for DIR, with one clear error for each."""
    if not directory.is_dir():
        raise CiGenError(f"{directory} is not a directory")
    root = directory.resolve()
    if not (root / ".gitlab-ci.yml").is_file():
        raise CiGenError(f"{root}/.gitlab-ci.yml not found: nothing to run")
    top = git(root, "rev-parse", "--show-toplevel", check=False)
    if not top:
        raise CiGenError(f"{root} is not a git repository: gitlab-ci-local runs from one "
                         f"(git init && git add -A && git commit -m init)")
    if Path(top).resolve() != root:
        raise CiGenError(f"{root} is inside the git repository {top} but is not its top level; "
                         f"run ci-gen run on {top}")
    head = git(root, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
    if not head:
        raise CiGenError(f"{root} has no commit yet: gitlab-ci-local needs one "
                         f"(git add -A && git commit -m init)")
    # gitlab-ci-local reads `gcl-origin` before `origin` (ci-gen init's stand-in remote).
    remote_name = STAND_IN if git(root, "remote", "get-url", STAND_IN, check=False) else "origin"
    url = git(root, "remote", "get-url", remote_name, check=False)
    if not url:
        raise CiGenError(f"{root} has no `origin` remote: gitlab-ci-local takes CI_SERVER_HOST "
                         f"and CI_PROJECT_PATH from it; add one, no network is used "
                         f"(git remote add origin git@gitlab.example.com:group/project.git)")
    origin = parse_origin(url)
    if origin is None:
        raise CiGenError(f"cannot read host and project path from the {remote_name} remote "
                         f"{redact_url(url)} (expected git@HOST:GROUP/PROJECT.git or "
                         f"https://HOST/GROUP/PROJECT.git)")
    branch = git(root, "rev-parse", "--abbrev-ref", "HEAD")
    default = git(root, "symbolic-ref", "--short", "-q", "refs/remotes/origin/HEAD", check=False)
    default_branch = default.removeprefix("origin/") if default else "main"
    tracked = frozenset(git(root, "ls-files", "-z").split("\0")) - {""}
    return ProjectContext(root, head, branch, origin, default_branch, tracked)


def uncommitted(ctx: ProjectContext) -> list[str]:
    """Tracked files that differ from HEAD. gitlab-ci-local copies the work tree (tracked
    files as they are now, untracked ones left out), so these changes are part of the run."""
    proc = run(ctx.root, "--no-optional-locks", "status", "--porcelain=v1", "-z",
               "--untracked-files=no", "--no-renames")  # unstripped: "XY path" entries
    return sorted({entry[3:] for entry in proc.stdout.split("\0") if len(entry) > 3})


def ensure_state_gitignore(ctx: ProjectContext) -> None:
    """The same .gitignore gitlab-ci-local writes, so files written before it runs stay
    out of `git status` and out of the jobs' copies."""
    ignore = ctx.state_dir / ".gitignore"
    if not ignore.is_file():
        ctx.state_dir.mkdir(parents=True, exist_ok=True)
        ignore.write_text("*\n!.gitignore\n", encoding="utf-8")
