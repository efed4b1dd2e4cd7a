"""`ci-gen job stop`: stop the environment (the environment's stop job)."""

from __future__ import annotations

import argparse
import os

from ci_gen.deploy.release import stop
from ci_gen.deploy.spec import check, check_engine


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stop", help="stop the environment: its releases removed",
        description="Container engines: remove every release of the environment from the "
        "target (DEPLOY_ENGINE_HOST; see `ci-gen job deploy --help`). Process engine: stop the "
        "current release's process group (state under $CI_GEN_STATE_DIR, default "
        "~/.local/state/ci-gen). Nothing deployed: says so, exit 0.")
    p.add_argument("--environment", required=True, metavar="ENV", help="GitLab environment name")
    p.add_argument("--engine", default="docker", metavar="ENGINE",
                   help="docker, podman or process (default: docker)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    engine = check_engine(os.environ.get("CI_GEN_DEPLOY_ENGINE") or args.engine)
    stop(check("environment", args.environment, "--environment"), engine,
         say=lambda line: print(line, flush=True))
    return 0
