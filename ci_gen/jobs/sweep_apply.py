"""`ci-gen job sweep-apply`: a follow-up merge request with the best cell's params.

The work is `ci_gen.sweep.apply`; this module only parses and reports.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep-apply", help="open a merge request setting the best sweep cell's params",
        description="Create a branch from the pipeline's commit with the best cell's params in the "
        "params file (GitLab's Commits API) and open a merge request from it into the branch the "
        "sweep ran on. Needs GITLAB_API_TOKEN (api scope). Never pushes to an existing branch.")
    p.add_argument("--leaderboard", type=Path, default=Path("sweep/leaderboard.json"), metavar="FILE",
                   help="sweep-collect's leaderboard (default: sweep/leaderboard.json)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), metavar="FILE",
                   help="params file to change (default: params.yaml)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ci_gen.jobs.sweep_cell import check_flags
    from ci_gen.sweep.apply import open_mr

    check_flags(args, ("params",))
    open_mr(args.leaderboard, args.params, say=lambda line: print(f"ci-gen: {line}", flush=True))
    return 0
