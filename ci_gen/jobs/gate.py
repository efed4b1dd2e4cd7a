"""`ci-gen job gate`: fail the job when a metric dropped more than allowed vs. the baseline.

Reads the report.json written by `ci-gen job eval-report`. With `--direction higher` (default,
accuracy-like metrics) the regression is `baseline - current`; with `lower` (loss-like) it is
`current - baseline`. Runs after the report is posted, so a failing MR shows why.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

from ci_gen.components import NONE, given
from ci_gen.errors import CiGenError, UsageError
from ci_gen.inputs import parse_number

METRIC = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_./-]{0,199})?$")
# Float noise: 0.90 - 0.01 is 0.8900000000000001, and a drop of exactly X must pass.
_EPS = 1e-9
DIRECTIONS = ("higher", "lower")
# "Empty" inputs arrive as "" or as the components' "none" sentinel: both turn the gate off.
_OFF = ("", "none")


class GateFailed(CiGenError):
    """The gate metric dropped more than allowed (exit 1)."""


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


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CiGenError(f"gate: report {path} not found (run `ci-gen job eval-report` first)") from None
    except (OSError, ValueError) as exc:
        raise CiGenError(f"gate: cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise CiGenError(f"gate: {path} is not a report.json from `ci-gen job eval-report`")
    return data


def check(report: Mapping[str, Any], metric: str, max_drop: float, direction: str = "higher") -> str:
    """One line saying why the gate passes; raises GateFailed when it does not."""
    if metric in _OFF:
        return "gate off (no gate metric set)"
    current = report["metrics"]
    if metric not in current:
        names = ", ".join(sorted(current)) or "none"
        raise CiGenError(f"gate: unknown metric '{metric}'; available metrics: {names}")
    value = current[metric]
    if not _num(value):
        raise CiGenError(f"gate: metric '{metric}' is not a number ({json.dumps(value)[:60]})")
    baseline = report.get("baseline")
    ref = report.get("baseline_ref") or "the baseline"
    if baseline is None:
        why = report.get("baseline_note") or "no baseline"
        return f"gate passed: {metric} = {value:.4f}; nothing to compare with ({why})"
    if not _num(baseline.get(metric)):
        return f"gate passed: {metric} = {value:.4f}; {ref} has no value for it (new metric)"
    base = baseline[metric]
    drop = base - value if direction == "higher" else value - base
    if drop > max_drop + _EPS:
        moved = "dropped" if direction == "higher" else "rose"
        raise GateFailed(f"gate failed: {metric} {moved} from {base:.4f} ({ref}) to {value:.4f}, "
                         f"a regression of {drop:.4f} > allowed {max_drop:.4f}")
    return (f"gate passed: {metric} = {value:.4f} vs {base:.4f} on {ref} "
            f"(change {value - base:+.4f}, {direction} is better, allowed regression {max_drop:.4f})")


def parse_max_drop(raw: str) -> float:
    value = parse_number(raw, "gate: --max-drop")  # also Ruby's 1.0e-05, as GitLab writes it
    if value < 0:
        raise UsageError(f"gate: --max-drop must be a number >= 0, got {str(raw).strip()[:40]!r}")
    return float(value)


def run(args: argparse.Namespace) -> int:
    args.metric = given(args.metric, NONE)  # `none` (or the old empty string): gate off
    if not METRIC.fullmatch(args.metric):
        raise UsageError(f"gate: --metric {args.metric[:60]!r} is not a metric name")
    max_drop = parse_max_drop(args.max_drop)
    if args.metric in _OFF:
        print(check({}, "", max_drop))
        return 0
    print(check(load_report(Path(args.report)), args.metric, max_drop, args.direction))
    return 0
