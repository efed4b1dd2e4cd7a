"""Drift per signal: the Population Stability Index between reference and live proportions.

PSI = sum over bins of (live - ref) * ln(live / ref), on proportions. It is symmetric, needs
no distribution assumption, works for histograms and categories alike, and has a reading the
industry agrees on: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.
A bin empty on one side would make it infinite, so proportions are floored at EPSILON first.

Sampling noise alone gives PSI of about (bins - 1) * (1/n_live + 1/n_ref) on identical
distributions, so a window needs enough predictions (`min-samples`) before it is judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ci_gen.errors import CiGenError
from ci_gen.monitoring.reference import Reference, Signal

EPSILON = 1e-4
DEFAULT_THRESHOLD = 0.2


@dataclass(frozen=True)
class SignalDrift:
    name: str
    psi: float
    threshold: float
    bins: tuple[str, ...]
    reference: tuple[float, ...]  # proportions
    live: tuple[float, ...]       # proportions (all 0 with no traffic)
    live_total: float

    @property
    def drifted(self) -> bool:
        return self.psi > self.threshold


def proportions(counts: tuple[float, ...]) -> tuple[float, ...]:
    total = sum(counts)
    return tuple(c / total for c in counts) if total > 0 else tuple(0.0 for _ in counts)


def psi(reference: tuple[float, ...], live: tuple[float, ...]) -> float:
    """PSI of two count (or proportion) vectors over the same bins."""
    if len(reference) != len(live):
        raise ValueError("reference and live must have the same bins")
    ref = [max(p, EPSILON) for p in proportions(reference)]
    cur = [max(p, EPSILON) for p in proportions(live)]
    return sum((c - r) * math.log(c / r) for r, c in zip(ref, cur))


def thresholds_for(reference: Reference, default: float, overrides: dict[str, str]) -> dict[str, float]:
    """Each signal's threshold: `default`, or its override (NAME=VALUE); all checked."""
    names = [s.name for s in reference.signals]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise CiGenError(f"threshold for unknown signal {unknown[0]!r}; the reference has: {', '.join(names)}")
    out = {}
    for name in names:
        raw = overrides.get(name, default)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise CiGenError(f"threshold of {name} must be a number, got {raw!r}") from None
        if not (0 < value <= 10) or math.isnan(value):
            raise CiGenError(f"threshold of {name} must be above 0 and at most 10 (PSI), got {raw!r}")
        out[name] = value
    return out


def compare(signal: Signal, live_counts: tuple[float, ...], threshold: float) -> SignalDrift:
    return SignalDrift(signal.name, psi(signal.counts, live_counts), threshold, tuple(signal.bin_names()),
                       proportions(signal.counts), proportions(live_counts), sum(live_counts))
