"""`ci-gen job commit-pointers`: commit changed DVC pointers back to the branch, safely.

The work (commit, push with fetch + rebase retries, the `--check` dry-run push) is in
`ci_gen.gitlab.pointers`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ci_gen.gitlab.pointers import check_push, commit_pointers


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
