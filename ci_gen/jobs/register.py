"""`ci-gen job register`: register this pipeline's model as a new version (idempotent).

The logic is in `ci_gen.registry.register`; this module parses, gathers the inputs and
prints. Also writes `register.env` (CI_GEN_MODEL_NAME, CI_GEN_MODEL_VERSION) for the jobs
after it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ci_gen.components import NONE, given
from ci_gen.inputs import NOT_A_MODEL_NAME, check_flag, check_paths
from ci_gen.patterns import RE_MODEL_NAME


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "register", help="register the model as a new version in the model registry",
        description="Create the registered model when missing and a version for this model "
        "(SemVer from the tag on tag pipelines, else the next patch), with params, metrics, "
        "lineage tags and the model files (model.tar.gz + manifest.json). One version per "
        "distinct model (a hash of its files and params): running it again, on this or a later "
        "commit, with the same model changes nothing. Registry: MLFLOW_TRACKING_URI, else GitLab's "
        "($CI_API_V4_URL/projects/$CI_PROJECT_ID/ml/mlflow); token: MLFLOW_TRACKING_TOKEN.")
    p.add_argument("--model-name", required=True, metavar="NAME", help="registered model name")
    p.add_argument("--model-path", required=True, metavar="PATH",
                   help="the model directory (or file) to upload")
    p.add_argument("--metrics", default=NONE, metavar="PATH",
                   help="metrics file logged on the version (none: no metrics)")
    p.add_argument("--params", default="params.yaml", metavar="PATH",
                   help="params file logged on the version (default: params.yaml; missing: none)")
    p.add_argument("--data", default=NONE, metavar="PATH",
                   help="DVC pointer of the training data, whose md5 is recorded (none: not recorded)")
    p.add_argument("--edge", default=NONE, metavar="DIR",
                   help="edge-convert's output directory: its .tflite files are registered "
                   "beside the model, when the directory is there (none: no edge files)")
    p.add_argument("--out", default="register.env", metavar="PATH",
                   help="dotenv file written with the model name and version")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    check_flag("--model-name", args.model_name, RE_MODEL_NAME, NOT_A_MODEL_NAME)
    check_paths((f"--{flag.replace('_', '-')}", given(getattr(args, flag), NONE))
                for flag in ("model_path", "metrics", "params", "data", "edge", "out"))


def run(args: argparse.Namespace) -> int:
    from ci_gen.errors import printable
    from ci_gen.files import atomic_write
    from ci_gen.registry import bundle, lineage
    from ci_gen.registry.client import Registry
    from ci_gen.registry.register import register as do_register

    _check(args)
    env = dict(os.environ)
    reg = Registry.for_job(env)
    data = given(args.data, NONE)
    tags = lineage.tags(env, data=lineage.data_hash(Path(data)) if data else "",
                        image=lineage.image_ref(env.get("CI_GEN_IMAGE", "")))
    metrics_file = given(args.metrics, NONE)
    metrics = lineage.metrics(Path(metrics_file)) if metrics_file else {}
    params = lineage.params(Path(args.params))
    edge_dir = given(args.edge, NONE)
    edge = bundle.edge_files(Path(edge_dir)) if edge_dir else []
    pack = bundle.pack(Path(args.model_path), edge)
    done = do_register(reg, args.model_name, pack, tags=tags, params=params, metrics=metrics,
                       env=env, tag=env.get("CI_COMMIT_TAG", ""))
    v = done.version
    if done.created:
        print(printable(f"register: {v.name} {v.semver} registered for commit {tags[lineage.COMMIT][:12]} "
              f"({len(params)} params, {len(metrics)} metrics, "
              f"{len(pack.files[bundle.ARCHIVE])} bytes of model files"
              + (f", edge models {', '.join(p.name for p in edge)}" if edge else "") + ")"))
    elif done.completed:
        print(printable(f"register: {v.name} {v.semver} was incomplete for this model; "
                        "finished it"))
    else:
        print(printable(f"register: {v.name} {v.semver} is already registered for this model "
                        f"(commit {v.tags.get(lineage.COMMIT, '?')[:12]}); nothing to do"))
    print(printable(f"register: see it at {reg.version_url(v)}"))
    atomic_write(args.out, f"CI_GEN_MODEL_NAME={v.name}\nCI_GEN_MODEL_VERSION={v.semver}\n")
    return 0
