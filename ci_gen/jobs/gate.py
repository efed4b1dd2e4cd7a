"""`ci-gen job gate`: fail the job when a metric dropped more than allowed vs. the baseline.

The gate itself is `ci_gen.evaluation.gate`; this module only parses and reports.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ci_gen.components import NONE, given
from ci_gen.evaluation.gate import DIRECTIONS, check, load_report, parse_max_drop
from ci_gen.evaluation.metrics import check_metric_name


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gate", help="fail when a metric dropped more than allowed against the baseline",
        description="Quality gate over report.json: exit 1 when baseline - current > "
        "--max-drop for --metric. Empty or `none` --metric: gate off. No baseline: pass with a note.")
    p.add_argument("--report", required=True, metavar="FILE", help="report.json from eval-report")
    p.add_argument("--metric", default="", metavar="NAME",
                   help="metric name as in report.json, dotted for nested ones (none: gate off)")
    p.add_argument("--max-drop", default="0", metavar="X",
                   help="largest allowed regression, >= 0 (default: 0)")
    p.add_argument("--direction", default="higher", choices=DIRECTIONS,
                   help="which way is better: higher (accuracy, default) or lower (loss)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    metric = given(args.metric, NONE)  # `none` (or the old empty string): gate off
    check_metric_name(metric, "gate: --metric")
    max_drop = parse_max_drop(args.max_drop)
    if not metric:
        print(check({}, "", max_drop))
        return 0
    print(check(load_report(Path(args.report)), metric, max_drop, args.direction))
    return 0
