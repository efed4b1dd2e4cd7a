"""A project's includes, resolved offline for gitlab-ci-local.

`resolve_includes` walks .gitlab-ci.yml and its local includes, and writes each ci-gen
component (or `include: project:` of a ci-gen template) pinned at the installed version where
gitlab-ci-local looks before it fetches:
`.gitlab-ci-local/includes/<origin-host>/<project-path>/<ref>/templates/<name>.yml`.
Anything that would need a network is an error.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ci_gen import __version__
from ci_gen import components as desc
from ci_gen.errors import CiGenError
from ci_gen.includes import Loader, items, normalise, parse_component, pins_installed, template_name
from ci_gen.inputs import resolve as resolve_inputs
from ci_gen.local.project import ProjectContext


def _load_ci_yaml(path: Path) -> dict[str, Any]:
    try:
        docs = [d for d in yaml.load_all(path.read_text(encoding="utf-8"), Loader=Loader)]
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
    return [e for e in (normalise(item) for _key, item in items(doc.get("include"))) if e is not None]


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand(text: str, variables: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return variables.get(name, m.group(0))
    return _VAR.sub(sub, str(text))


@dataclass(frozen=True)
class Resolved:
    """One include that gitlab-ci-local will find without a network."""

    kind: str  # "component" | "project" | "local-component"
    text: str  # as written in the file, after variable expansion
    path: Path  # file gitlab-ci-local reads
    jobs: tuple[str, ...] = ()  # the jobs it defines, job-prefix applied


def _mismatch(what: str, ref: str) -> CiGenError:
    return CiGenError(
        f"{what} is pinned at {ref!r} but the installed ci-gen is {__version__}: local runs "
        f"resolve components offline from the installed templates only; pin @{__version__} "
        f"or install ci-gen {ref} (no network is tried)")


def _tracked_matches(ctx: ProjectContext, where: str, pattern: str) -> list[str]:
    """The tracked files an `include: local:` names; none is an error."""
    pat = pattern.lstrip("/")
    if any(ch in pat for ch in "*?["):
        matches = sorted(f for f in ctx.tracked if fnmatch.fnmatchcase(f, pat))
    else:
        matches = [pat] if pat in ctx.tracked else []
    if not matches:
        state = "exists but is not tracked by git (git add it)" \
            if (ctx.root / pat).exists() else "does not exist"
        raise CiGenError(f"{where}: include local {pattern!r} {state}; gitlab-ci-local "
                         f"only includes files git tracks")
    return matches


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
                for rel in _tracked_matches(ctx, where, str(entry["local"])):
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
        docs = [d for d in yaml.load_all(text, Loader=Loader) if d is not None]
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
    address = parse_component(text.strip())
    if not address.complete:
        raise CiGenError(f"{where}: component {text!r} is not HOST/GROUP/PROJECT/NAME@VERSION")
    project, name, ref = address.project, address.name, str(address.version)
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
    if not pins_installed(ref):
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
        name = template_name(rel)
        if name not in desc.ORDER:
            raise CiGenError(f"{where}: include project {project!r} file {rel!r} is not a ci-gen "
                             f"template; local runs cannot fetch other projects' files")
        if not pins_installed(ref):
            raise _mismatch(f"{where}: include project {project!r} file {rel!r}", ref)
        _check_inputs(where, name, entry.get("inputs"))
        target = includes_root / project / ref / rel
        rendered = render(name)
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
