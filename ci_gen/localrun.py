"""Preparing a project for a local, offline run with gitlab-ci-local.

gitlab-ci-local (npm, pinned 4.73.0: the newest that runs on Node 20) runs a pipeline from a
git work tree. What it needs around it, and what this module provides:
- the tool itself: `find_gitlab_ci_local`;
- a work tree it can read: `project_context` checks the git preconditions (a commit, an
  `origin` remote it can parse) and works out what gitlab-ci-local will derive from them;
- includes that resolve without a network: `resolve_includes` walks the project's includes,
  and writes each ci-gen component (or `include: project:` of a ci-gen template) pinned at the
  installed version where gitlab-ci-local looks before it fetches:
  `.gitlab-ci-local/includes/<origin-host>/<project-path>/<ref>/templates/<name>.yml`;
- a stand-in for the GitLab project that jobs push to: `LocalOrigin`, a bare repository
  under `.gitlab-ci-local/` (`CI_GEN_PUSH_URL`).
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ci_gen import __version__
from ci_gen import components as desc
from ci_gen.errors import CiGenError
from ci_gen.inputs import resolve as resolve_inputs

GITLAB_CI_LOCAL_VERSION = "4.73.0"
STATE_DIR = ".gitlab-ci-local"
INSTALL_HINT = (
    f"install it with `npm ci` in the ci-gen checkout (scripts/bootstrap.sh does), or "
    f"`npm install --global gitlab-ci-local@{GITLAB_CI_LOCAL_VERSION}`, or point "
    f"CI_GEN_GITLAB_CI_LOCAL at the executable"
)


# -- the tool -----------------------------------------------------------------------------

def _checkout_root() -> Path | None:
    """The ci-gen source checkout this package runs from, if it is one (editable install)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "package.json").is_file() and (root / "pyproject.toml").is_file() else None


def find_gitlab_ci_local() -> str:
    """$CI_GEN_GITLAB_CI_LOCAL, else the checkout's node_modules/.bin, else PATH."""
    explicit = os.environ.get("CI_GEN_GITLAB_CI_LOCAL")
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise CiGenError(f"CI_GEN_GITLAB_CI_LOCAL={explicit} is not an executable file")
        return explicit
    root = _checkout_root()
    if root is not None:
        candidate = root / "node_modules" / ".bin" / "gitlab-ci-local"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("gitlab-ci-local")
    if found:
        return found
    raise CiGenError(f"gitlab-ci-local {GITLAB_CI_LOCAL_VERSION} not found: {INSTALL_HINT}")


def tool_version(tool: str) -> str:
    try:
        proc = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise CiGenError(f"cannot start {tool}: {exc.strerror} (is Node.js installed?)") from None
    if proc.returncode != 0:
        raise CiGenError(f"{tool} --version failed: {_last_line(proc.stderr or proc.stdout)}")
    return proc.stdout.strip()


def check_host_tools(origin_schema: str) -> None:
    """Tools gitlab-ci-local calls without saying so when they are missing."""
    if shutil.which("rsync") is None:
        raise CiGenError("rsync not found: gitlab-ci-local copies each job's files with it "
                         "(Debian: apt-get install rsync; scripts/bootstrap.sh installs it)")
    if origin_schema == "git" and shutil.which("ssh") is None:
        # For a git@host:group/project origin it asks `ssh -G` for the port, and silently
        # falls back to gitlab.com/fallback.group when that fails.
        raise CiGenError("ssh not found: gitlab-ci-local reads a git@host:path origin with "
                         "`ssh -G` (Debian: apt-get install openssh-client)")


# -- git ----------------------------------------------------------------------------------

def git(cwd: Path, *args: str, check: bool = True) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise CiGenError("git not found (Debian: apt-get install git)") from None
    if check and proc.returncode != 0:
        raise CiGenError(f"git {args[0]} failed in {cwd}: {_last_line(proc.stderr)}")
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def redact_url(url: str) -> str:
    """A remote URL without any user:password part (never shown)."""
    return re.sub(r"//[^/@]*@", "//", url)


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
    remote_name = "gcl-origin" if git(root, "remote", "get-url", "gcl-origin", check=False) else "origin"
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


# -- includes -----------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """Safe YAML that tolerates GitLab's `!reference` tag."""


_Loader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))


def _load_ci_yaml(path: Path) -> dict[str, Any]:
    try:
        docs = [d for d in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader)]
    except (OSError, UnicodeDecodeError) as exc:
        raise CiGenError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise CiGenError(f"{path}{where}: malformed YAML") from None
    docs = [d for d in docs if d is not None]
    if not docs:
        return {}
    body = docs[-1] if len(docs) > 1 and isinstance(docs[0], dict) and "spec" in docs[0] else docs[0]
    if not isinstance(body, dict):
        raise CiGenError(f"{path}: expected a mapping of jobs and keywords")
    return body


def _entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    inc = doc.get("include")
    if inc is None:
        return []
    items = inc if isinstance(inc, list) else [inc]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append({"remote": item} if item.startswith(("http:", "https:")) else {"local": item})
        elif isinstance(item, dict):
            out.append(item)
    return out


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand(text: str, variables: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return variables.get(name, m.group(0))
    return _VAR.sub(sub, str(text))


_COMPONENT = re.compile(r"(?P<domain>[^/:\s]+)(:(?P<port>\d+))?/(?P<project>.+)/(?P<name>[^@]+)@(?P<ref>.+)")


@dataclass(frozen=True)
class Resolved:
    """One include that gitlab-ci-local will find without a network."""

    kind: str  # "component" | "project" | "local-component"
    text: str  # as written in the file, after variable expansion
    path: Path  # file gitlab-ci-local reads
    jobs: tuple[str, ...] = ()  # the jobs it defines, job-prefix applied


def _version_ok(ref: str) -> bool:
    return ref in (__version__, f"v{__version__}")


def _mismatch(what: str, ref: str) -> CiGenError:
    return CiGenError(
        f"{what} is pinned at {ref!r} but the installed ci-gen is {__version__}: local runs "
        f"resolve components offline from the installed templates only; pin @{__version__} "
        f"or install ci-gen {ref} (no network is tried)")


def _tracked_matches(ctx: ProjectContext, pattern: str) -> list[str]:
    pat = pattern.lstrip("/")
    if any(ch in pat for ch in "*?["):
        return sorted(f for f in ctx.tracked if fnmatch.fnmatchcase(f, pat))
    return [pat] if pat in ctx.tracked else []


@dataclass
class Includes:
    """The includes of a pipeline, resolved offline, and every job name they define."""

    resolved: list[Resolved]
    jobs: list[str]  # in file order: the project's own files, then each include's
    pending: list[tuple[Path, str]] = field(default_factory=list)

    def write(self) -> None:
        """Write ci-gen components where gitlab-ci-local looks before it fetches."""
        for target, text in self.pending:
            _write(target, text)
        self.pending = []


def resolve_includes(ctx: ProjectContext, variables: dict[str, str], write: bool = True) -> Includes:
    """Walk .gitlab-ci.yml and its local includes; anything that would need a network is an
    error. The ci-gen components are written (now, or by `.write()`) where gitlab-ci-local
    looks before it fetches."""
    from ci_gen.render import render  # jinja2 only when a run needs it

    expand_vars = {**ctx.predefined(), **variables}
    includes_root = ctx.state_dir / "includes" / ctx.origin.host
    resolved: list[Resolved] = []
    jobs: list[str] = []
    pending: list[tuple[Path, str]] = []  # written only once every include checked out
    seen: set[str] = set()
    queue: list[tuple[str, Path]] = [(".gitlab-ci.yml", ctx.root / ".gitlab-ci.yml")]
    while queue:
        where, path = queue.pop(0)
        doc = _load_ci_yaml(path)
        jobs.extend(job_keys(doc))
        for entry in _entries(doc):
            entry = {k: (expand(v, expand_vars) if isinstance(v, str) else v) for k, v in entry.items()}
            if "local" in entry:
                pattern = str(entry["local"])
                matches = _tracked_matches(ctx, pattern)
                if not matches:
                    state = "exists but is not tracked by git (git add it)" \
                        if (ctx.root / pattern.lstrip("/")).exists() else "does not exist"
                    raise CiGenError(f"{where}: include local {pattern!r} {state}; gitlab-ci-local "
                                     f"only includes files git tracks")
                for rel in matches:
                    if rel not in seen:
                        seen.add(rel)
                        queue.append((rel, ctx.root / rel))
            elif "component" in entry:
                resolved.append(_component(ctx, where, str(entry["component"]), entry.get("inputs"),
                                           includes_root, render, pending))
            elif "project" in entry:
                resolved.extend(_project(ctx, where, entry, includes_root, render, pending))
            elif "remote" in entry or "template" in entry:
                what = entry.get("remote") or entry.get("template")
                raise CiGenError(f"{where}: include {what!r} needs the network; local runs resolve "
                                 f"only local files and ci-gen components offline")
            else:
                raise CiGenError(f"{where}: include entry not understood: {sorted(entry)}")
    includes = Includes(resolved, jobs + [j for r in resolved for j in r.jobs], pending)
    if write:
        includes.write()
    return includes


# Top-level keys that are GitLab keywords, not jobs.
_KEYWORDS = frozenset({"default", "include", "stages", "variables", "workflow", "image", "services",
                       "cache", "before_script", "after_script", "types", "spec"})
_PREFIX = "$[[ inputs.job-prefix ]]"


def job_keys(doc: dict[str, Any]) -> list[str]:
    """The (visible) job names a CI file defines."""
    return [k for k, v in doc.items() if isinstance(k, str) and isinstance(v, dict)
            and k not in _KEYWORDS and not k.startswith(".")]


def component_jobs(text: str, given: Any) -> tuple[str, ...]:
    """Job names of a component file (spec header + jobs), with its job-prefix input applied."""
    try:
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError:
        return ()
    if not docs or not isinstance(docs[-1], dict):
        return ()
    spec = docs[0].get("spec", {}) if len(docs) > 1 and isinstance(docs[0], dict) else {}
    default = ((spec or {}).get("inputs") or {}).get("job-prefix", {}) or {}
    prefix = (given or {}).get("job-prefix") if isinstance(given, dict) else None
    prefix = str(prefix or (default.get("default", "") if isinstance(default, dict) else ""))
    return tuple(k.replace(_PREFIX, prefix) for k in job_keys(docs[-1]))


def _write(target: Path, text: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CiGenError(f"cannot write {target}: {exc.strerror}") from None


def _check_inputs(where: str, name: str, given: Any) -> None:
    """The include's inputs, checked as GitLab would (and `ci-gen lint` does): they reach
    shells in the jobs, so a value outside its regex never gets to gitlab-ci-local."""
    if given is None:
        return
    if not isinstance(given, dict):
        raise CiGenError(f"{where}: the inputs of {name} must be a mapping")
    resolve_inputs(desc.get(name), given, where=f"{where}: {name}")


def _component(ctx: ProjectContext, where: str, text: str, given: Any, includes_root: Path, render: Any,
               pending: list[tuple[Path, str]]) -> Resolved:
    if "$" in text:
        raise CiGenError(f"{where}: cannot expand the variables in component {text!r} "
                         f"(GitLab allows predefined project/commit variables there)")
    m = _COMPONENT.fullmatch(text.strip())
    if not m:
        raise CiGenError(f"{where}: component {text!r} is not HOST/GROUP/PROJECT/NAME@VERSION")
    project, name, ref = m["project"], m["name"], m["ref"]
    if project == ctx.origin.path and ref == ctx.head_sha:
        # gitlab-ci-local reads templates/NAME.yml of this very work tree.
        for rel in (f"templates/{name}.yml", f"templates/{name}/template.yml"):
            if (ctx.root / rel).is_file():
                jobs = component_jobs((ctx.root / rel).read_text(encoding="utf-8", errors="replace"), given)
                return Resolved("local-component", text, ctx.root / rel, jobs)
        raise CiGenError(f"{where}: component {text!r} is this project at HEAD, but "
                         f"templates/{name}.yml does not exist (run `ci-gen build`)")
    if name not in desc.ORDER:
        raise CiGenError(f"{where}: component {text!r}: {name!r} is not a ci-gen component "
                         f"(known: {', '.join(desc.ORDER)}); local runs cannot fetch other components")
    if not _version_ok(ref):
        if ref == "~latest" or re.fullmatch(r"\d+(\.\d+)?", ref):
            raise CiGenError(f"{where}: component {text!r}: a version range needs the network to "
                             f"resolve; pin the full version @{__version__}")
        raise _mismatch(f"{where}: component {text!r}", ref)
    _check_inputs(where, name, given)
    target = includes_root / project / ref / "templates" / f"{name}.yml"
    rendered = render(name)
    pending.append((target, rendered))
    return Resolved("component", text, target, component_jobs(rendered, given))


def _project(ctx: ProjectContext, where: str, entry: dict[str, Any], includes_root: Path,
             render: Any, pending: list[tuple[Path, str]]) -> list[Resolved]:
    project = str(entry["project"])
    ref = str(entry.get("ref") or "HEAD")
    files = entry.get("file") or []
    files = [files] if isinstance(files, str) else list(files)
    out = []
    for f in files:
        rel = expand(str(f), ctx.predefined()).lstrip("/")
        m = re.fullmatch(r"templates/([a-z0-9-]+)(?:\.yml|/template\.yml)", rel)
        if not m or m.group(1) not in desc.ORDER:
            raise CiGenError(f"{where}: include project {project!r} file {rel!r} is not a ci-gen "
                             f"template; local runs cannot fetch other projects' files")
        if not _version_ok(ref):
            raise _mismatch(f"{where}: include project {project!r} file {rel!r}", ref)
        _check_inputs(where, m.group(1), entry.get("inputs"))
        target = includes_root / project / ref / rel
        rendered = render(m.group(1))
        pending.append((target, rendered))
        out.append(Resolved("project", f"{project}@{ref}:{rel}", target,
                            component_jobs(rendered, entry.get("inputs"))))
    return out


def match_job(name: str, jobs: list[str]) -> str:
    """The job `--job NAME` means: NAME itself, else the one job named <prefix>-NAME (a
    component's name finds its job whatever the job-prefix). Unknown or ambiguous: an error."""
    if name in jobs:
        return name
    found = [j for j in dict.fromkeys(jobs) if j.endswith(f"-{name}")]
    if len(found) == 1:
        return found[0]
    if found:
        raise CiGenError(f"--job {name!r} matches several jobs: {', '.join(found)}; name one of them")
    raise CiGenError(f"no job {name!r} in the pipeline; jobs: {', '.join(dict.fromkeys(jobs)) or 'none'}")


def uncommitted(ctx: ProjectContext) -> list[str]:
    """Tracked files that differ from HEAD. gitlab-ci-local copies the work tree (tracked
    files as they are now, untracked ones left out), so these changes are part of the run."""
    proc = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain=v1", "-z",
                           "--untracked-files=no", "--no-renames"], cwd=ctx.root,
                          capture_output=True, text=True)  # unstripped: "XY path" entries
    return sorted({entry[3:] for entry in proc.stdout.split("\0") if len(entry) > 3})


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


# -- the stand-in for the GitLab project ----------------------------------------------------

class LocalOrigin:
    """A bare repository under .gitlab-ci-local/ that plays the GitLab project's role.

    Before a run, HEAD is pushed to it as the branch the pipeline runs for (as a real
    `git push` would be); jobs that push back (dvc-upload's pointer commit) push there through
    CI_GEN_PUSH_URL. It never touches the project's own remotes or branches.
    """

    def __init__(self, ctx: ProjectContext) -> None:
        self.ctx = ctx
        self.path = ctx.state_dir / "origin.git"

    def ensure(self) -> None:
        if not (self.path / "HEAD").is_file():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            git(self.ctx.root, "init", "-q", "--bare", str(self.path))
            git(self.path, "symbolic-ref", "HEAD", f"refs/heads/{self.ctx.default_branch}")

    def publish(self, local_ref: str, branch: str) -> None:
        # Forced: the bare repo mirrors "what was pushed for this run"; it holds nothing else.
        git(self.ctx.root, "push", "-q", "--force", str(self.path), f"{local_ref}:refs/heads/{branch}")

    def head_of(self, branch: str) -> str:
        return git(self.path, "rev-parse", "-q", "--verify", f"refs/heads/{branch}", check=False)


def ensure_state_gitignore(ctx: ProjectContext) -> None:
    """The same .gitignore gitlab-ci-local writes, so files written before it runs stay
    out of `git status` and out of the jobs' copies."""
    ignore = ctx.state_dir / ".gitignore"
    if not ignore.is_file():
        ctx.state_dir.mkdir(parents=True, exist_ok=True)
        ignore.write_text("*\n!.gitignore\n", encoding="utf-8")


def job_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment, with this interpreter's bin dir first on PATH, so jobs
    (shell executor) find the same ci-gen, dvc and python."""
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bindir, *[p for p in env.get("PATH", "").split(os.pathsep) if p and p != bindir]])
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    env.update(extra or {})
    return env
