"""`ci-gen lint [FILE ...]`: GitLab's schema and policy checks, offline; optionally GitLab's own lint."""

from __future__ import annotations

import argparse
import sys

from ci_gen.errors import CiGenError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lint", help="check CI files against GitLab's schema and ci-gen's policy (offline)",
        description="Check each FILE (default .gitlab-ci.yml) offline: every YAML document against "
        "GitLab's CI schema, then policy (pinned images, needs, stages, extends; for component "
        "files: no global keywords, described and constrained inputs, resource_group on deploys). "
        "Includes of ci-gen's components are rendered by this ci-gen, so the whole pipeline is "
        "checked. Prints `path:line:col: severity: message` lines and a summary; exit 1 on errors.")
    p.add_argument("files", nargs="*", default=[".gitlab-ci.yml"], metavar="FILE",
                   help="CI files or component files (default: .gitlab-ci.yml)")
    p.add_argument("--policy-strict", action="store_true",
                   help="also require interruptible train/eval jobs, `[skip ci]` on commits pushed "
                   "from CI and resource_group on deploys (always on for ci-gen's own templates/)")
    p.add_argument("--gitlab-url", metavar="URL",
                   help="GitLab server for the server-side lint (default: $CI_SERVER_URL)")
    p.add_argument("--project", metavar="PATH|ID",
                   help="after the offline checks pass, also ask this project's CI lint API "
                   "(token: GITLAB_API_TOKEN or REPO_TOKEN)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ci_gen.lint import lint_file, server_findings

    if args.gitlab_url and not args.project:
        from ci_gen.errors import UsageError
        raise UsageError("--gitlab-url needs --project PATH|ID (the project whose CI lint API answers)")
    failed = False
    for name in args.files:
        try:
            report = lint_file(name, strict=args.policy_strict)
        except CiGenError as exc:
            # A missing or malformed file: one line, and the other files are still checked.
            print(f"ci-gen: error: {exc}", file=sys.stderr)
            failed = True
            continue
        if args.project and not report.errors:
            valid, found = server_findings(report, args.gitlab_url, args.project)
            report.findings.extend(found)
            failed |= not valid
        for finding in report.findings:
            print(finding)
        print(report.summary())
        failed |= report.errors > 0
    return 1 if failed else 0
