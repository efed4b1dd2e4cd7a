"""`ci-gen job dvc-auth`: credentials from masked CI/CD variables into `.dvc/config.local`.

The writing is `ci_gen.dvcrepo.credentials`; this module only parses.
"""

from __future__ import annotations

import argparse

from ci_gen.dvcrepo.credentials import write_credentials


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dvc-auth", help="write DVC remote credentials from env vars into .dvc/config.local",
        description="For every s3:// and oss:// remote of the DVC project, write the "
        "credentials found in AWS_* / OSS_* environment variables into .dvc/config.local "
        "(mode 0600, never tracked). Prints setting names only, never values.")
    p.add_argument("--repo", default=".", metavar="DIR", help="DVC project directory (default: .)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    write_credentials(args.repo)
    return 0
