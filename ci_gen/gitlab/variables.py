"""`ci-gen variables set`: create or update a project's CI/CD variables from a dotenv file.

Variables are masked by default, and every value is checked against GitLab's masking rule
before anything is sent, so a secret is never stored unmasked by accident. Values are never
printed: not in the plan, not in errors (which name the key and line instead).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_gen import gitlab_api
from ci_gen.dotenv import Entry, parse_dotenv  # noqa: F401  (Entry: part of this API)
from ci_gen.errors import CiGenError, UsageError

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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("variables", help="set a project's CI/CD variables (GitLab)",
                       description="Manage a GitLab project's CI/CD variables. Token: "
                       "GITLAB_API_TOKEN, else REPO_TOKEN (Maintainer role, `api` scope).")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    s = actions.add_parser("set", help="create or update variables from a dotenv file",
                           description="Create or update project CI/CD variables (raw, "
                           "environment scope '*') from KEY=VALUE lines. Masked unless "
                           "--no-mask; values that GitLab cannot mask are refused. No value "
                           "is ever printed.")
    s.add_argument("--project", required=True, metavar="PATH|ID",
                   help="project path (group/name) or numeric id")
    s.add_argument("--from", dest="source", required=True, type=Path, metavar="FILE",
                   help="dotenv file: KEY=VALUE lines, quotes, # comments, `export` prefix")
    s.add_argument("--gitlab-url", metavar="URL", help="GitLab server (default: $CI_SERVER_URL)")
    s.add_argument("--protected", nargs="+", action="extend", default=[], metavar="KEY",
                   help="keys to store as protected (only protected branches/tags see them)")
    s.add_argument("--no-mask", nargs="+", action="extend", default=[], metavar="KEY",
                   help="keys to store unmasked (for values GitLab cannot mask)")
    s.add_argument("--dry-run", action="store_true",
                   help="show keys and what would change; send nothing")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    set_variables(args.source, args.project, gitlab_url=args.gitlab_url,
                  protected=args.protected, no_mask=args.no_mask, dry_run=args.dry_run)
    return 0


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
    out = out or sys.stdout
    protected, no_mask = list(protected), list(no_mask)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CiGenError(f"dotenv file not found: {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CiGenError(f"cannot read {source}: {type(exc).__name__}") from None
    entries = parse_dotenv(text, str(source))
    if not entries:
        raise CiGenError(f"{source}: no KEY=VALUE lines")
    check(entries, protected, no_mask, str(source))  # before any network traffic
    for e in entries:  # masked values are secrets: hide them in anything we print
        if e.key not in no_mask:
            gitlab_api.register_secret(e.value)

    gl = gitlab_api.connect(gitlab_url, action="set CI/CD variables")
    proj = gitlab_api.get_project(gl, project)
    with gitlab_api.errors(f"list the CI/CD variables of {proj.path_with_namespace}", gl.url):
        existing = {v.key: v.asdict() for v in proj.variables.list(iterator=True)
                    if getattr(v, "environment_scope", SCOPE) == SCOPE}
    changes = plan(existing, entries, protected, no_mask)
    values = {e.key: e.value for e in entries}

    print(f"ci-gen: project {proj.path_with_namespace} (id {proj.id}) at {gl.url}", file=out)
    width = max(len(c.key) for c in changes)
    for c in changes:
        flags = ", ".join(["masked" if c.masked else "not masked"]
                          + (["protected"] if c.protected else []))
        note = f"; {c.note}" if c.note else ""
        print(f"  {c.action:<9}  {c.key:<{width}}  ({flags}{note})", file=out)
    counts = {a: sum(c.action == a for c in changes) for a in ("create", "update", "unchanged")}
    if dry_run:
        print(f"ci-gen: dry run: {counts['create']} to create, {counts['update']} to update, "
              f"{counts['unchanged']} unchanged; nothing sent", file=out)
        return changes

    for c in changes:
        if c.action == "unchanged":
            continue
        data = {"value": values[c.key], "masked": c.masked, "protected": c.protected,
                "raw": True, "variable_type": "env_var"}
        with gitlab_api.errors(f"{c.action} CI/CD variable {c.key}", gl.url):
            if c.action == "create":
                proj.variables.create({"key": c.key, "environment_scope": SCOPE, **data})
            else:
                proj.variables.update(c.key, data, filter={"environment_scope": SCOPE})
    print(f"ci-gen: created {counts['create']}, updated {counts['update']}, "
          f"unchanged {counts['unchanged']}", file=out)
    return changes
