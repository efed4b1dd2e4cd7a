"""Drift per signal: the Population Stability Index between reference and live proportions.

PSI = sum over bins of (live - ref) * ln(live / ref), on proportions. It is symmetric, needs
no distribution assumption, works for histograms and categories alike, and has a reading the
industry agrees on: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.
A bin empty on one side would make it infinite, so proportions are floored at EPSILON first.

Counts are refused unless finite and non-negative (NaN in a PSI would compare as "not above the
threshold", that is "no drift"), and proportions are taken after scaling by the largest count,
so counts near the float limit (1e308) cannot overflow a sum into a false drift. A PSI that is
not finite anyway counts as drift, never as stable.

Sampling noise alone gives PSI of about (bins - 1) * (1/n_live + 1/n_ref) on identical
distributions, so a window needs enough predictions (`min-samples`) before it is judged.
"""

from __future__ import annotations

import math
import sys
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
        # Written so that an undefined PSI (NaN) is a drift: `nan > t` would be False.
        return not self.psi <= self.threshold


class CountError(CiGenError):
    """A count that is not a finite, non-negative number: drift cannot be judged."""


def checked(counts: tuple[float, ...], source: str) -> tuple[float, ...]:
    """`counts` as floats, or one line naming `source` and the bin of the first bad one."""
    out = []
    for i, c in enumerate(counts):
        try:
            value = float(c)
        except (TypeError, ValueError, OverflowError):
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise CountError(f"{source}: count {i + 1} of {len(counts)} is {c!r}, not a finite "
                             "non-negative number; drift cannot be judged")
        out.append(value)
    return tuple(out)


def total(counts: tuple[float, ...]) -> float:
    """The sum of finite counts, capped at the largest float instead of overflowing."""
    top = max(counts, default=0.0)
    if top <= 0:
        return 0.0
    scaled = top * math.fsum(c / top for c in counts)
    return scaled if math.isfinite(scaled) else sys.float_info.max


def proportions(counts: tuple[float, ...]) -> tuple[float, ...]:
    """Shares of finite, non-negative counts; each count is divided by the largest first, so
    nothing is summed that could overflow (5 x 1e308 is infinite, 5 x 1.0 is not)."""
    top = max(counts, default=0.0)
    if not top > 0:
        return tuple(0.0 for _ in counts)
    scaled = [c / top for c in counts]
    whole = math.fsum(scaled)
    return tuple(s / whole for s in scaled)


def psi(reference: tuple[float, ...], live: tuple[float, ...]) -> float:
    """PSI of two count (or proportion) vectors over the same bins (finite, non-negative)."""
    if len(reference) != len(live):
        raise ValueError("reference and live must have the same bins")
    ref = [max(p, EPSILON) for p in proportions(checked(reference, "reference"))]
    cur = [max(p, EPSILON) for p in proportions(checked(live, "live"))]
    # Every share is in [EPSILON, 1]: each term is finite, and so is their sum.
    return math.fsum((c - r) * math.log(c / r) for r, c in zip(ref, cur))


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


def compare(signal: Signal, live_counts: tuple[float, ...], threshold: float,
            source: str = "live") -> SignalDrift:
    live_counts = checked(live_counts, f"{source}: signal {signal.name}")
    reference = checked(signal.counts, f"reference signal {signal.name}")
    return SignalDrift(signal.name, psi(reference, live_counts), threshold, tuple(signal.bin_names()),
                       proportions(reference), proportions(live_counts), total(live_counts))
