"""`ci-gen job dvc-auth`: DVC remote settings from masked CI/CD variables; secrets stay in
the environment, where DVC reads them (nothing secret in the job's work tree).

The work is `ci_gen.dvcrepo.credentials`; this module only parses.
"""

from __future__ import annotations

import argparse

from ci_gen.dvcrepo.credentials import write_credentials


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dvc-auth", help="check DVC remote credentials in env vars; endpoints into .dvc/config.local",
        description="For every s3:// and oss:// remote of the DVC project, say which "
        "credentials DVC will read from the AWS_* / OSS_* environment variables (secrets are "
        "never written to disk) and write the endpoint settings (AWS_ENDPOINT_URL, OSS_ENDPOINT) "
        "into .dvc/config.local (mode 0600, never tracked). Prints names only, never values.")
    p.add_argument("--repo", default=".", metavar="DIR", help="DVC project directory (default: .)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    write_credentials(args.repo, secrets=False)
    return 0
