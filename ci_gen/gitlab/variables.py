"""Create or update a project's CI/CD variables from a dotenv file (`ci-gen variables set`).

Variables are masked by default, and every value is checked against GitLab's masking rule
before anything is sent, so a secret is never stored unmasked by accident. Values are never
printed: not in the plan, not in errors (which name the key and line instead).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_gen.dotenv import Entry, parse_dotenv
from ci_gen.errors import CiGenError, UsageError
from ci_gen.gitlab import api

SCOPE = "*"
# GitLab's Ci::Maskable: a masked *raw* variable (all we create) must match \A\S{8,}\z,
# Ruby's \s being ASCII whitespace. Expanded (non-raw) ones have a stricter alphabet:
# [a-zA-Z0-9_+=/@:.~-]{8,}; we never create those.
_RUBY_SPACE = re.compile(r"[ \t\r\n\f\v]")
MASK_MIN = 8


@dataclass
class Change:
    key: str
    action: str  # create | update | unchanged
    masked: bool
    protected: bool
    note: str = ""


def mask_problems(value: str) -> list[str]:
    """Why GitLab would refuse to mask `value` (raw variable); empty when it can."""
    problems = []
    if "\n" in value or "\r" in value:
        problems.append("spans several lines")
    elif _RUBY_SPACE.search(value):
        problems.append("contains whitespace")
    if len(value) < MASK_MIN:
        problems.append(f"is shorter than {MASK_MIN} characters")
    return problems


# --- plan and apply ------------------------------------------------------------------

def check(entries: list[Entry], protected: list[str], no_mask: list[str], source: str) -> None:
    keys = {e.key for e in entries}
    for opt, named in (("--protected", protected), ("--no-mask", no_mask)):
        unknown = sorted(set(named) - keys)
        if unknown:
            raise UsageError(f"{opt}: not in {source}: {', '.join(unknown)}")
    refused = []
    for e in entries:
        if e.key not in no_mask:
            problems = mask_problems(e.value)
            if problems:
                refused.append(f"{e.key} (line {e.line}: value {' and '.join(problems)})")
    if refused:
        raise CiGenError(f"GitLab cannot mask {'; '.join(refused)}: fix the value, or store it "
                         f"unmasked with --no-mask {' '.join(r.split()[0] for r in refused)}; "
                         "nothing was sent")


def plan(existing: dict[str, dict[str, Any]], entries: list[Entry], protected: list[str],
         no_mask: list[str]) -> list[Change]:
    changes = []
    for e in entries:
        want = {"value": e.value, "masked": e.key not in no_mask,
                "protected": e.key in protected, "raw": True, "variable_type": "env_var"}
        have = existing.get(e.key)
        if have is None:
            changes.append(Change(e.key, "create", want["masked"], want["protected"]))
            continue
        note = ""
        if have.get("value") is None:
            note = "hidden value, cannot compare"
        same = all(have.get(k) == v for k, v in want.items())
        changes.append(Change(e.key, "unchanged" if same else "update", want["masked"],
                              want["protected"], note))
    return changes


def set_variables(source: Path, project: str, *, gitlab_url: str | None = None,
                  protected: list[str] = (), no_mask: list[str] = (), dry_run: bool = False,
                  out=None) -> list[Change]:
    """Print the plan for `source`'s variables in `project`, then apply it unless `dry_run`."""
    out = out or sys.stdout
    protected, no_mask = list(protected), list(no_mask)
    entries = read_entries(source)
    check(entries, protected, no_mask, str(source))  # before any network traffic
    for e in entries:  # masked values are secrets: hide them in anything we print
        if e.key not in no_mask:
            api.register_secret(e.value)

    gl = api.connect(gitlab_url, action="set CI/CD variables")
    proj = api.get_project(gl, project)
    changes = plan(_existing(gl, proj), entries, protected, no_mask)
    print(f"ci-gen: project {proj.path_with_namespace} (id {proj.id}) at {gl.url}", file=out)
    for line in plan_lines(changes):
        print(line, file=out)
    counts = {a: sum(c.action == a for c in changes) for a in ("create", "update", "unchanged")}
    if dry_run:
        print(f"ci-gen: dry run: {counts['create']} to create, {counts['update']} to update, "
              f"{counts['unchanged']} unchanged; nothing sent", file=out)
        return changes
    _apply(gl, proj, changes, {e.key: e.value for e in entries})
    print(f"ci-gen: created {counts['create']}, updated {counts['update']}, "
          f"unchanged {counts['unchanged']}", file=out)
    return changes


def read_entries(source: Path) -> list[Entry]:
    """The dotenv file's KEY=VALUE entries; at least one."""
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CiGenError(f"dotenv file not found: {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CiGenError(f"cannot read {source}: {type(exc).__name__}") from None
    entries = parse_dotenv(text, str(source))
    if not entries:
        raise CiGenError(f"{source}: no KEY=VALUE lines")
    return entries


def plan_lines(changes: list[Change]) -> list[str]:
    """One line per change: action, key, flags. Never the value."""
    width = max(len(c.key) for c in changes)
    lines = []
    for c in changes:
        flags = ", ".join(["masked" if c.masked else "not masked"]
                          + (["protected"] if c.protected else []))
        note = f"; {c.note}" if c.note else ""
        lines.append(f"  {c.action:<9}  {c.key:<{width}}  ({flags}{note})")
    return lines


def _existing(gl: Any, proj: Any) -> dict[str, dict[str, Any]]:
    """The project's variables of environment scope '*', by key."""
    with api.errors(f"list the CI/CD variables of {proj.path_with_namespace}", gl.url):
        return {v.key: v.asdict() for v in proj.variables.list(iterator=True)
                if getattr(v, "environment_scope", SCOPE) == SCOPE}


def _apply(gl: Any, proj: Any, changes: list[Change], values: dict[str, str]) -> None:
    for c in changes:
        if c.action == "unchanged":
            continue
        data = {"value": values[c.key], "masked": c.masked, "protected": c.protected,
                "raw": True, "variable_type": "env_var"}
        with api.errors(f"{c.action} CI/CD variable {c.key}", gl.url):
            if c.action == "create":
                proj.variables.create({"key": c.key, "environment_scope": SCOPE, **data})
            else:
                proj.variables.update(c.key, data, filter={"environment_scope": SCOPE})


def stored_keys(gitlab_url: str | None, project: str | int, wanted: tuple[str, ...]) -> list[str] | None:
    """Which of `wanted` the project stores as CI/CD variables (any environment scope): keys
    only, never a value. None when the token may not list them (Maintainer role needed)."""
    from gitlab.exceptions import GitlabAuthenticationError, GitlabListError

    gl = api.connect(gitlab_url, action="list CI/CD variables")
    proj = api.get_project(gl, project)
    try:
        keys = {v.key for v in proj.variables.list(iterator=True)}
    except (GitlabListError, GitlabAuthenticationError) as exc:
        if getattr(exc, "response_code", None) in (401, 403):
            return None
        with api.errors(f"list the CI/CD variables of {proj.path_with_namespace}", gl.url):
            raise
    return [k for k in wanted if k in keys]
