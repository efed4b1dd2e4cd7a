"""`ci-gen report REPORT.md`: post a markdown report to the merge request, updated in place.

The work is in `ci_gen.gitlab.notes`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="post a markdown report to the merge request (GitLab)",
                       description="Post REPORT.md as one merge request note (updated in place "
                       "on later runs) or a commit comment, with its local images uploaded to "
                       "the project. Token: GITLAB_API_TOKEN, else REPO_TOKEN; without one the "
                       "report stays a job artifact and the command exits 0.")
    p.add_argument("report", metavar="REPORT.md", type=Path, help="the markdown file to post")
    p.add_argument("--target", choices=("auto", "mr", "commit"), default="auto",
                   help="auto (default): the MR if there is one, else the commit; mr: fail "
                   "without an MR; commit: always a commit comment")
    p.add_argument("--watermark", metavar="TEXT",
                   help="hidden marker identifying the note to update (default: derived from "
                   "CI_PROJECT_ID and CI_JOB_NAME)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ci_gen.gitlab.notes import post_report  # here: `ci-gen --help` must not import the GitLab client

    post_report(args.report, target=args.target, watermark=args.watermark)
    return 0
