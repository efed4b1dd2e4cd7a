"""The quality gate: fail when a metric dropped more than allowed vs. the baseline.

Reads the report.json written by `ci-gen job eval-report`. With `--direction higher` (default,
accuracy-like metrics) the regression is `baseline - current`; with `lower` (loss-like) it is
`current - baseline`. Runs after the report is posted, so a failing MR shows why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ci_gen.components import COMPONENTS
from ci_gen.errors import CiGenError, UsageError
from ci_gen.evaluation.metrics import is_num
from ci_gen.inputs import parse_number

# Float noise: 0.90 - 0.01 is 0.8900000000000001, and a drop of exactly X must pass.
_EPS = 1e-9
DIRECTIONS = COMPONENTS["eval-report"].input("gate-direction").options  # higher, lower
# "Empty" inputs arrive as "" or as the components' "none" sentinel: both turn the gate off.
_OFF = ("", "none")


class GateFailed(CiGenError):
    """The gate metric dropped more than allowed (exit 1)."""


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
    if not is_num(value):
        raise CiGenError(f"gate: metric '{metric}' is not a number ({json.dumps(value)[:60]})")
    baseline = report.get("baseline")
    ref = report.get("baseline_ref") or "the baseline"
    if baseline is None:
        why = report.get("baseline_note") or "no baseline"
        return f"gate passed: {metric} = {value:.4f}; nothing to compare with ({why})"
    if not is_num(baseline.get(metric)):
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
