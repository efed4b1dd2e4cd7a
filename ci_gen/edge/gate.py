"""edge-convert's parity gate: each LiteRT model against the SavedModel.

A variant fails when its accuracy on the held-out set is lower than the SavedModel's by more
than the allowed drop, or when it agrees with the SavedModel's predictions on fewer samples
than the required share. `ci-gen job edge-gate` enforces the verdict that edge-convert wrote,
in its own job, so the MR report (which needs edge-convert) is posted either way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from ci_gen.errors import CiGenError, UsageError


def check_bounds(max_accuracy_drop: float, min_agreement: float) -> None:
    """Both thresholds are shares in [0, 1]."""
    for flag, value in (("--max-accuracy-drop", max_accuracy_drop),
                        ("--min-agreement", min_agreement)):
        if math.isnan(value) or not 0 <= value <= 1:
            raise UsageError(f"edge-convert: {flag} must be between 0 and 1, got {value}")


def judge(row: Mapping[str, Any], max_accuracy_drop: float, min_agreement: float) -> list[str]:
    """Why a variant fails the gate ([] when it passes)."""
    why = []
    if row["accuracy_drop"] > max_accuracy_drop + 1e-12:
        why.append(f"accuracy drop {row['accuracy_drop']:.4f} > {max_accuracy_drop:g}")
    if row["agreement"] < min_agreement - 1e-12:
        why.append(f"agreement {row['agreement']:.4f} < {min_agreement:g}")
    return why


def verdict(result_path: Path) -> dict[str, Any]:
    """The gate of an edge.json; a failed gate is one CiGenError naming each failure."""
    try:
        result = json.loads(result_path.read_text(encoding="utf-8"))
        gate = result["gate"]
        passed, failures = bool(gate["passed"]), list(gate["failures"])
    except FileNotFoundError:
        raise CiGenError(f"edge-gate: {result_path} not found (did edge-convert run and keep "
                         "its artifacts?)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CiGenError(f"edge-gate: {result_path} is not an edge-convert result "
                         f"({type(exc).__name__})") from None
    if not passed:
        raise CiGenError(f"edge-gate: failed: {'; '.join(failures)}")
    return gate
