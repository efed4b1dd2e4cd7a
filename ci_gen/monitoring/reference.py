"""The reference profile: statistics of the test data, written at training time next to the metrics.

Format "ci-gen/profile/v1" (the example's fmnist_profile.py writes it):

    {"format": "ci-gen/profile/v1", "model": "NAME", "samples": N,
     "signals": {NAME: {"kind": "histogram", "metric": M, "le": [0.05, ..., "+Inf"], "counts": [...]},
                 NAME: {"kind": "categorical", "metric": M_total, "label": L, "categories": [...], "counts": [...]}}}

A histogram signal is compared with the Prometheus histogram M (its `M_bucket` series, per-bucket
counts here, cumulative there); a categorical one with the counter M, split by label L. The
names end up in PromQL queries, so they are checked against Prometheus' own name rules.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ci_gen.errors import CiGenError, shown
from ci_gen.patterns import RE_PROM_LABEL, RE_PROM_METRIC

FORMAT = "ci-gen/profile/v1"
KINDS = ("histogram", "categorical")


class ReferenceError(CiGenError):
    """The reference profile is missing or unusable."""


@dataclass(frozen=True)
class Signal:
    """One statistic: its bins (bucket upper bounds as floats, or category names) and counts."""

    name: str
    kind: str
    metric: str
    label: str  # "le" for a histogram
    bins: tuple  # floats (histogram, +Inf last) or str (categorical)
    counts: tuple[float, ...]

    def bin_names(self) -> list[str]:
        if self.kind == "categorical":
            return list(self.bins)
        return ["+Inf" if math.isinf(b) else f"<= {b:g}" for b in self.bins]


@dataclass(frozen=True)
class Reference:
    path: str
    model: str
    samples: int
    signals: tuple[Signal, ...]


def load_reference(path: str | Path) -> Reference:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReferenceError(f"reference profile {path} not found: the training pipeline's evaluate "
                             f"stage writes it (`dvc pull {path}` to fetch the committed one)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReferenceError(f"reference profile {path} is not readable JSON ({type(exc).__name__})") from None
    where = f"reference profile {path}"
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ReferenceError(f"{where}: format must be {FORMAT!r}, got {shown(got)}")
    signals = doc.get("signals")
    if not isinstance(signals, dict) or not signals:
        raise ReferenceError(f"{where}: no `signals`")
    parsed = tuple(_signal(where, name, spec) for name, spec in signals.items())
    samples = doc.get("samples")
    return Reference(str(path), str(doc.get("model") or ""), samples if isinstance(samples, int) else 0, parsed)


def _signal(where: str, name: str, spec: object) -> Signal:
    here = f"{where}: signal {shown(name)}"
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise ReferenceError(f"{here}: `kind` must be one of {', '.join(KINDS)}")
    metric = spec.get("metric")
    if not isinstance(metric, str) or not re.fullmatch(RE_PROM_METRIC, metric):
        raise ReferenceError(f"{here}: `metric` must be a Prometheus metric name, got {shown(metric)}")
    counts = spec.get("counts")
    if spec["kind"] == "histogram":
        label, bins = "le", _bounds(here, spec.get("le"))
    else:
        label = spec.get("label")
        if not isinstance(label, str) or not re.fullmatch(RE_PROM_LABEL, label):
            raise ReferenceError(f"{here}: `label` must be a Prometheus label name, got {shown(label)}")
        bins = spec.get("categories")
        if not isinstance(bins, list) or not bins or not all(isinstance(c, str) and c for c in bins) \
                or len(set(bins)) != len(bins):
            raise ReferenceError(f"{here}: `categories` must be a list of distinct names")
        bins = tuple(bins)
    if not isinstance(counts, list) or len(counts) != len(bins) or not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and c >= 0 for c in counts):
        raise ReferenceError(f"{here}: `counts` must be {len(bins)} non-negative numbers, one per bin")
    if sum(counts) <= 0:
        raise ReferenceError(f"{here}: all counts are 0; the profile says nothing")
    return Signal(str(name), spec["kind"], metric, label, bins, tuple(float(c) for c in counts))


def _bounds(here: str, le: object) -> tuple[float, ...]:
    if not isinstance(le, list) or len(le) < 2 or le[-1] != "+Inf":
        raise ReferenceError(f"{here}: `le` must list the bucket upper bounds, ending with \"+Inf\"")
    bounds = []
    for b in le[:-1]:
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b):
            raise ReferenceError(f"{here}: bucket bound {shown(b)} is not a finite number")
        bounds.append(float(b))
    if any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise ReferenceError(f"{here}: bucket bounds must increase")
    return (*bounds, math.inf)
