"""`ci-gen job train`: end with the DVC pipeline's outputs in the workspace, and say how.

The work is `ci_gen.dvcrepo.reproduce` (restored, reused from the run cache, or trained); this
module only parses and reports.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ci_gen.components import RETRAIN_VARIABLE  # set on the retraining pipeline the monitor starts
from ci_gen.inputs import check_paths


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="restore or reproduce the DVC pipeline's outputs, installing only to train",
        description="Pull the training data, then bring every stage of dvc.yaml back: pulled "
        "from the remote when dvc.lock matches, checked out from the run cache when an earlier "
        "run had the same deps and params, otherwise the requirements are installed and "
        "`dvc repro` runs. Prints one line saying which happened. In a retraining pipeline "
        f"({RETRAIN_VARIABLE}=1) imported data pointers are refreshed with `dvc update` first.")
    p.add_argument("--data", action="append", default=[], metavar="PATH",
                   help="DVC pointer of the training data, pulled first (repeatable)")
    p.add_argument("--requirements", metavar="FILE",
                   help="pip requirements installed only when a stage must run")
    p.add_argument("--push-run-cache", choices=("true", "false"), default="false",
                   help="push outputs and the run cache to the default remote afterwards")
    p.add_argument("--repo", default=".", metavar="DIR", help="DVC project directory (default: .)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ci_gen.dvcrepo.reproduce import reproduce  # imports DVC: only when the job runs

    check_paths([*(("--data", d) for d in args.data), ("--requirements", args.requirements)])
    retrain = os.environ.get(RETRAIN_VARIABLE) == "1"
    outcome = reproduce(Path(args.repo), data=args.data, requirements=args.requirements,
                        push_run_cache=args.push_run_cache == "true", refresh=retrain)
    if retrain:
        updated = ", ".join(outcome.updated) or "no imported data"
        print(f"ci-gen: train: retraining ({RETRAIN_VARIABLE}=1): updated {updated}", flush=True)
    print(f"ci-gen: train: {outcome.summary}", flush=True)
    return 0
