"""`ci-gen job stop`: stop the environment's current release (the environment's stop job)."""

from __future__ import annotations

import argparse
import os

from ci_gen.deploy.release import stop
from ci_gen.deploy.spec import check_engine


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stop", help="stop the current release of an environment",
        description="Stop the environment's current release (process: its process group; "
        "container: stop + rm). Nothing deployed: says so, exit 0. Reads the state under "
        "$CI_GEN_STATE_DIR (default ~/.local/state/ci-gen).")
    p.add_argument("--environment", required=True, metavar="ENV", help="GitLab environment name")
    p.add_argument("--engine", default="docker", metavar="ENGINE",
                   help="docker, podman or process (the recorded engine wins)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    engine = check_engine(os.environ.get("CI_GEN_DEPLOY_ENGINE") or args.engine)
    stop(args.environment, engine, say=lambda line: print(line, flush=True))
    return 0
