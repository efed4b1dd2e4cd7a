"""`ci-gen job sweep-cell`: one cell of a sweep (its params from the matrix variables).

The work is `ci_gen.sweep.cell`; this module only parses and reports.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ci_gen.components import NONE, given
from ci_gen.errors import UsageError
from ci_gen.evaluation.metrics import check_metric_name
from ci_gen.inputs import check_paths
from ci_gen.jobs import whole_number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep-cell", help="train (or restore) one cell of a sweep with its params set",
        description="One cell of the sweep component's `parallel: matrix`: the matrix variables that "
        "name params keys (train__learning_rate is train.learning_rate) are set in the params "
        "file of the work tree (not committed), then the DVC pipeline is restored, reused from "
        "the run cache, or trained, and the run cache pushed. Writes OUT/cell-<CI_NODE_INDEX>.json "
        "(params, metrics, duration, how).")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), metavar="FILE",
                   help="params file the cell overrides (default: params.yaml)")
    p.add_argument("--metrics", type=Path, default=Path("model/eval/metrics.json"), metavar="FILE",
                   help="metrics file the pipeline writes (default: model/eval/metrics.json)")
    p.add_argument("--metric", required=True, help="metric the sweep is ranked by (must be in --metrics)")
    p.add_argument("--max-cells", type=whole_number, required=True, metavar="N",
                   help="refuse to run in a sweep of more than N cells (CI_NODE_TOTAL)")
    p.add_argument("--data", default="", metavar="PATH", help="DVC pointer pulled first (none: nothing)")
    p.add_argument("--requirements", default="", metavar="FILE",
                   help="pip requirements installed only when the cell must really train")
    p.add_argument("--out", type=Path, default=Path("sweep/cells"), metavar="DIR",
                   help="where the cell's result goes (default: sweep/cells)")
    p.set_defaults(func=run)


def check_flags(args: argparse.Namespace, paths: tuple[str, ...]) -> None:
    """The flags that take the component's inputs, checked as the descriptor checks them,
    before anything is read or run (a job run by hand gets the same refusals as GitLab)."""
    if getattr(args, "metric", None) is not None:
        check_metric_name(args.metric, "--metric")
        if not args.metric:
            raise UsageError("--metric must name a metric")
    check_paths((f"--{name.replace('_', '-')}", getattr(args, name)) for name in paths)


def run(args: argparse.Namespace) -> int:
    from ci_gen.sweep.cell import Options, run as run_cell

    check_flags(args, ("params", "metrics", "data", "requirements"))
    data = given(args.data, NONE)
    opts = Options(params=args.params, metrics=args.metrics, metric=args.metric, max_cells=args.max_cells,
                   out=args.out, data=[data] if data else [], requirements=args.requirements or None)
    run_cell(opts, say=lambda line: print(f"ci-gen: {line}", flush=True))
    return 0
