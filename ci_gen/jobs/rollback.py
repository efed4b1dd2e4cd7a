"""`ci-gen job rollback`: return the environment to its previous release (a manual job)."""

from __future__ import annotations

import argparse
import os

from ci_gen.deploy.release import rollback
from ci_gen.deploy.spec import check, check_engine, parse_health_timeout


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rollback", help="return the environment to its previous release",
        description="Back to the previous registered model version: the release before the "
        "serving one that serves another version (a redeploy of the same version is skipped; "
        "without recorded versions, the previous release). Container engines: stop the "
        "serving release on the target, start that one, wait for its health URL; healthy: remove the release rolled back from "
        "and write DEPLOY_URL to the dotenv file; not healthy: start the serving one again, "
        "exit 1. Process engine: back to the release the current one replaced, on the runner "
        "host (state under $CI_GEN_STATE_DIR).")
    p.add_argument("--environment", required=True, metavar="ENV", help="GitLab environment name")
    p.add_argument("--engine", default="docker", metavar="ENGINE",
                   help="docker, podman or process (default: docker)")
    p.add_argument("--health-timeout", default="120", metavar="SEC",
                   help="seconds to wait for health (default: 120)")
    p.add_argument("--dotenv", default="", metavar="FILE",
                   help="write DEPLOY_URL=... (and DEPLOY_MODEL_VERSION=... when known) here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    engine = check_engine(os.environ.get("CI_GEN_DEPLOY_ENGINE") or args.engine)
    rollback(check("environment", args.environment, "--environment"), engine,
             parse_health_timeout(args.health_timeout),
             check("path", args.dotenv, "--dotenv") if args.dotenv else "",
             say=lambda line: print(line, flush=True))
    return 0
