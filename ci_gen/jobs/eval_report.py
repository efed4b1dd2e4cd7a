"""`ci-gen job eval-report`: report.md + report.json from the metrics, vs. a baseline ref.

The report is built by `ci_gen.evaluation` (metrics, baseline, report); this module only
parses and reports.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ci_gen.components import NONE, given
from ci_gen.evaluation.gate import DIRECTIONS
from ci_gen.evaluation.report import build
from ci_gen.inputs import NOT_A_MODEL_NAME, check_flag, check_paths
from ci_gen.patterns import RE_MODEL_NAME


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval-report", help="write report.md and report.json (metrics, diff vs. a baseline)",
        description="Write DIR/report.md (metrics, comparison with the baseline ref, params "
        "diff, confusion matrix) and DIR/report.json (metrics, baseline, deltas). Baseline: "
        "--baseline, else the merge request's target branch, else none.")
    p.add_argument("--metrics", required=True, metavar="PATH", help="metrics file (JSON or YAML)")
    p.add_argument("--image", default="", metavar="PATH",
                   help="confusion matrix image copied next to the report (none: no image)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--baseline", default="", metavar="REF",
                   help="git ref to compare with (default: $CI_MERGE_REQUEST_TARGET_BRANCH_NAME)")
    p.add_argument("--params", default="params.yaml", metavar="PATH",
                   help="params file diffed against the baseline (default: params.yaml)")
    p.add_argument("--gate-metric", default="", metavar="NAME",
                   help="the quality gate's metric: its change is judged by --gate-direction")
    p.add_argument("--gate-direction", default="higher", choices=DIRECTIONS,
                   help="which way the gate metric is better (default: higher)")
    p.add_argument("--sections", default="report.d", metavar="DIR",
                   help="append every DIR/*.md to the report, e.g. edge-convert's table "
                   "(default: report.d; a missing directory adds nothing)")
    p.add_argument("--model-name", default=NONE, metavar="NAME",
                   help="registered model: the report links the version this pipeline (a "
                   "merge) would register and the latest registered one, when a model registry "
                   "is configured (MLFLOW_TRACKING_URI, or MLFLOW_TRACKING_TOKEN for GitLab's); "
                   "none (default): no registry section")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_paths((("--metrics", args.metrics), ("--image", given(args.image, NONE)), ("--out", args.out),
                 ("--params", args.params), ("--sections", args.sections)), "eval-report: ")
    out = Path(args.out)
    registry = _registry_section(given(args.model_name, NONE))
    report = build(Path(args.metrics), out, image=given(args.image, NONE), baseline=args.baseline,
                   params=Path(args.params), gate_metric=args.gate_metric,
                   gate_direction=args.gate_direction, sections=Path(args.sections),
                   extra=[("model registry", registry)] if registry else [])
    print(f"eval-report: wrote {out / 'report.md'} and {out / 'report.json'} "
          f"({len(report['metrics'])} metrics)")
    files = [name for name in report["sections"] if name.endswith(".md")]
    if files:
        print(f"eval-report: added {', '.join(files)} from {args.sections}")
    if report["baseline"] is not None:
        print(f"eval-report: compared with {report['baseline_ref']}")
    else:
        print(f"eval-report: {report['baseline_note']}")
    return 0


def _registry_section(name: str) -> str:
    """The model registry's section, or "" (none configured: quietly; the registry failing:
    one line in the log, the report goes on without it)."""
    if not name:
        return ""
    check_flag("--model-name", name, RE_MODEL_NAME, NOT_A_MODEL_NAME)
    from ci_gen.registry import links
    from ci_gen.registry.client import RegistryError

    try:
        info = links.lookup(os.environ, name)
    except RegistryError as exc:
        print(f"eval-report: no model registry section: {exc}")
        return ""
    if info is None:
        return ""
    print(f"eval-report: model registry: next version {info['next']}, compared with "
          f"{info['compare'] or 'nothing registered yet'}")
    return links.markdown(info)
