"""`ci-gen job deploy`: run a release on its target behind a health gate, or roll back.

The work is done in `ci_gen.deploy`; this module only parses the flags.
"""

from __future__ import annotations

import argparse

from ci_gen.deploy.release import deploy
from ci_gen.deploy.spec import make_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy", help="start a release, wait for its health URL, keep the previous one if not",
        description="Container engines (docker, podman): on the target named by "
        "DEPLOY_ENGINE_HOST (unix:///PATH, tcp://HOST:PORT with DEPLOY_ENGINE_TLS_CA/CERT/KEY, or "
        "ssh://USER@HOST[:PORT] with DEPLOY_SSH_KEY and DEPLOY_SSH_KNOWN_HOSTS; unset: the "
        "runner's own engine socket), through the engine's HTTP API: pull IMAGE (the job's "
        "CI_REGISTRY_* credentials, or DEPLOY_REGISTRY_*, sent with the pull only), create the "
        "next release container, stop the serving one, start it, wait for GET "
        "http://HOST:PORT<health-path> to answer 200 (TF Serving: a version AVAILABLE). Process "
        "engine: the serve script on the runner host (shell runners). Healthy: write DEPLOY_URL "
        "to the dotenv file. Unhealthy: remove it, start the previous release again, exit 1. "
        "Env overrides: CI_GEN_DEPLOY_ENGINE, CI_GEN_DEPLOY_PORT (0 = a free port, process "
        "only), CI_GEN_STATE_DIR (process state, default ~/.local/state/ci-gen), "
        "CI_GEN_DEPLOY_PYTHON (interpreter of the process engine).")
    p.add_argument("--environment", required=True, metavar="ENV", help="GitLab environment name")
    p.add_argument("--engine", default="docker", metavar="ENGINE",
                   help="docker, podman or process (default: docker)")
    p.add_argument("--image", default="local", metavar="IMG", help="image (container engines)")
    p.add_argument("--host", default="auto", metavar="H",
                   help="host the service is reached at (auto: 127.0.0.1, engine process only)")
    p.add_argument("--port", default="8501", metavar="P", help="host port (0: a free port)")
    p.add_argument("--model-name", default="model", metavar="N", help="served model name")
    p.add_argument("--model-path", default="model", metavar="DIR",
                   help="exported model directory (process engine)")
    p.add_argument("--serve-script", default="serve.py", metavar="FILE",
                   help="serve script with TF Serving's flags (process engine)")
    p.add_argument("--health-path", default="auto", metavar="PATH",
                   help="health path (default: auto, i.e. /v1/models/<model-name>)")
    p.add_argument("--health-timeout", default="120", metavar="SEC",
                   help="seconds to wait for health (default: 120)")
    p.add_argument("--env", default="none", metavar="K=V,K2=V2",
                   help="service environment (default: none)")
    p.add_argument("--model-version", default="none", metavar="VERSION",
                   help="registered version of --model-name to deploy (SemVer or latest), "
                   "downloaded from the model registry (MLFLOW_TRACKING_URI, else GitLab's; "
                   "token MLFLOW_TRACKING_TOKEN) with every hash checked; process engine: its "
                   "model directory is served; docker/podman: the image its lineage records. "
                   "none (default): this pipeline's model. CI_GEN_DEPLOY_MODEL_VERSION overrides")
    p.add_argument("--dotenv", default="", metavar="FILE",
                   help="write DEPLOY_URL=... (and DEPLOY_MODEL_VERSION=... when known) here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = make_spec(
        args.environment, args.engine, image=args.image, host=args.host, port=args.port,
        model_name=args.model_name, model_path=args.model_path, serve_script=args.serve_script,
        health_path=args.health_path, health_timeout=args.health_timeout, env=args.env,
        dotenv=args.dotenv, model_version=args.model_version)
    deploy(spec, say=lambda line: print(line, flush=True))
    return 0
