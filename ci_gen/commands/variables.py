"""`ci-gen variables set`: create or update a project's CI/CD variables from a dotenv file.

The work (masking rules, plan, apply) is in `ci_gen.gitlab.variables`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


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
    from ci_gen.gitlab.variables import set_variables  # here: `ci-gen --help` must not import the GitLab client

    set_variables(args.source, args.project, gitlab_url=args.gitlab_url,
                  protected=args.protected, no_mask=args.no_mask, dry_run=args.dry_run)
    return 0
