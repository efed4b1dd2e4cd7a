"""`ci-gen job dvc-auth`: credentials for the DVC remotes, in the job's environment only.

`--auth keys`: DVC reads the masked AWS_* / OSS_* CI/CD variables itself; endpoints go into
.dvc/config.local. `--auth oidc`: the job's GitLab ID token is exchanged for short-lived
credentials (`ci_gen.dvcrepo.oidc`), printed with `--shell` as `export` lines on stdout for the
job's shell to `eval` (a command substitution: a pipe into the shell, never a file; every
message goes to stderr). The work is in `ci_gen.dvcrepo`; this module only parses.
"""

from __future__ import annotations

import argparse
import os
import sys

from ci_gen import components as desc
from ci_gen.dvcrepo.credentials import write_credentials
from ci_gen.inputs import check_flag
from ci_gen.patterns import RE_OIDC_AUD, RE_REMOTE_ROLE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dvc-auth", help="DVC remote credentials: masked keys from env vars, or an ID token exchanged (oidc)",
        description="For every s3:// and oss:// remote of the DVC project, say which "
        "credentials DVC will read from the AWS_* / OSS_* environment variables (secrets are "
        "never written to disk) and write the endpoint settings (AWS_ENDPOINT_URL, OSS_ENDPOINT) "
        "into .dvc/config.local (mode 0600, never tracked). With --auth oidc, first exchange the "
        f"job's ID token (${desc.ID_TOKEN_VARIABLE}) for short-lived credentials of --role; with "
        "--shell they are printed as `export` lines for the job's shell to eval, and nothing else "
        "goes to stdout. Prints names only, never values.")
    p.add_argument("--repo", default=".", metavar="DIR", help="DVC project directory (default: .)")
    p.add_argument("--auth", choices=("keys", "oidc"), default="keys",
                   help="keys: masked CI/CD variables (default); oidc: exchange the ID token")
    p.add_argument("--role", default="none", metavar="ARN",
                   help=f"role to assume with oidc (`none`: the variable {desc.ROLE_VARIABLE})")
    p.add_argument("--aud", default=desc.OIDC_AUD, metavar="AUD",
                   help="audience the job's ID token was minted for (checked before the exchange)")
    p.add_argument("--duration", type=int, default=desc.OIDC_DEFAULT_DURATION, metavar="SECONDS",
                   help=f"lifetime of the credentials ({desc.OIDC_MIN_DURATION}..{desc.OIDC_MAX_DURATION}, "
                        f"default {desc.OIDC_DEFAULT_DURATION})")
    p.add_argument("--shell", action="store_true",
                   help="print shell `export` lines on stdout (for eval), messages on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # The same rules GitLab applies to the inputs these flags come from.
    check_flag("--role", args.role, RE_REMOTE_ROLE, "is not an AWS or Alibaba Cloud role ARN (nor `none`)")
    check_flag("--aud", args.aud, RE_OIDC_AUD, "is not an audience (letters, digits, ._:/@-)")
    from ci_gen.dvcrepo import oidc  # pydantic and botocore: only when a job runs

    out = sys.stderr if args.shell else sys.stdout
    env = dict(os.environ)
    creds = None
    if args.auth == "oidc":
        role = oidc.parse_role(args.role, env)
        if role.cloud == "aliyun":
            problem = oidc.oss_session_token_problem()
            if problem:
                raise oidc.Refused(f"dvc-auth: {problem}")
        creds = oidc.exchange(role, env, args.aud, args.duration)
        env.update(creds.env)
    write_credentials(args.repo, env=env, out=out, secrets=False)
    if creds is not None:
        print(f"dvc-auth: assumed {args.role if args.role != 'none' else 'the role in ' + oidc.ROLE_VARIABLE} "
              f"with the job's ID token; {', '.join(sorted(creds.env))} expire at {creds.expires} "
              "(in this job's environment only)", file=out)
        if not args.shell:
            import shlex
            again = shlex.join(["ci-gen", "job", "dvc-auth", "--repo", args.repo, "--auth", "oidc",
                                "--role", args.role, "--aud", args.aud, "--shell"])
            print("dvc-auth: without --shell the credentials cannot reach the job's shell; "
                  f"use: eval \"$({again})\"", file=out)
            return 1
        sys.stdout.write(oidc.shell_exports(creds))
    return 0
