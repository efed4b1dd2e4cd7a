"""The reference profile: statistics of the test data, written at training time next to the metrics.

Format "ci-gen/profile/v1" (the example's fmnist_profile.py writes it):

    {"format": "ci-gen/profile/v1", "model": "NAME", "samples": N,
     "signals": {NAME: {"kind": "histogram", "metric": M, "le": [0.05, ..., "+Inf"], "counts": [...]},
                 NAME: {"kind": "categorical", "metric": M_total, "label": L, "categories": [...], "counts": [...]}}}

A histogram signal is compared with the Prometheus histogram M (its `M_bucket` series, per-bucket
counts here, cumulative there); a categorical one with the counter M, split by label L. The
names end up in PromQL queries, so they are checked against Prometheus' own name rules.

The file is parsed by the `Profile` model (ci_gen.parse): every count a finite, non-negative
number, so no NaN or Infinity can reach the PSI; a wrong shape is one line naming the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

from pydantic import BeforeValidator, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ci_gen.errors import CiGenError, shown
from ci_gen.files import TooLarge, read_limited
from ci_gen.http import HttpError, loads_json
from ci_gen.parse import Model, ParseError, parse
from ci_gen.patterns import RE_PROM_LABEL, RE_PROM_METRIC

FORMAT = "ci-gen/profile/v1"
KINDS = ("histogram", "categorical")
MAX_BYTES = 16 * 1024 * 1024  # a profile is a few hundred bytes; a huge one is not a profile


class ReferenceError(CiGenError):
    """The reference profile is missing or unusable."""


def finite_count(value: object) -> float:
    """A count as a float: a non-negative, finite number (not a boolean, not 1e400)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("count", "must be a non-negative number")
    try:
        number = float(value)
    except OverflowError:
        raise PydanticCustomError("count", "must be a finite number (too large for a float)") from None
    if not math.isfinite(number):
        raise PydanticCustomError("count", "must be a finite number")
    if number < 0:
        raise PydanticCustomError("count", "must be a non-negative number")
    return number


Count = Annotated[float, BeforeValidator(finite_count)]


def _bad(message: str) -> PydanticCustomError:
    # A message of our own, shown as is after the field's path.
    return PydanticCustomError("profile", message.replace("{", "{{").replace("}", "}}"))


class SignalSpec(Model):
    kind: str
    metric: str
    label: Optional[str] = None
    le: Optional[list[object]] = None  # numbers, then "+Inf": checked below
    categories: Optional[list[str]] = None
    counts: list[Count]

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in KINDS:
            raise _bad(f"must be one of {', '.join(KINDS)}")
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if not re.fullmatch(RE_PROM_METRIC, value):
            raise _bad("must be a Prometheus metric name")
        return value

    @model_validator(mode="after")
    def _bins(self) -> "SignalSpec":
        if self.kind == "histogram":
            bins = self.bounds()
        else:
            if self.label is None or not re.fullmatch(RE_PROM_LABEL, self.label):
                raise _bad(f"`label` must be a Prometheus label name, got {shown(self.label)}")
            cats = self.categories
            if not cats or not all(cats) or len(set(cats)) != len(cats):
                raise _bad("`categories` must be a list of distinct names")
            bins = tuple(cats)
        if len(self.counts) != len(bins):
            raise _bad(f"`counts` must be {len(bins)} non-negative numbers, one per bin")
        if not any(c > 0 for c in self.counts):
            raise _bad("all counts are 0; the profile says nothing")
        return self

    def bounds(self) -> tuple[float, ...]:
        le = self.le
        if not isinstance(le, list) or len(le) < 2 or le[-1] != "+Inf":
            raise _bad('`le` must list the bucket upper bounds, ending with "+Inf"')
        bounds = []
        for b in le[:-1]:
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(float(b)):
                raise _bad(f"bucket bound {shown(b)} is not a finite number")
            bounds.append(float(b))
        if any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise _bad("bucket bounds must increase")
        return (*bounds, math.inf)


class Profile(Model):
    format: str
    model: Optional[str] = None
    samples: Optional[int] = None
    signals: dict[str, SignalSpec]

    @field_validator("signals")
    @classmethod
    def _some(cls, value: dict) -> dict:
        if not value:
            raise _bad("no signals")
        return value


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
    where = f"reference profile {path}"
    try:
        raw = read_limited(path, MAX_BYTES)
    except TooLarge:
        raise ReferenceError(f"{where} is larger than {MAX_BYTES // (1024 * 1024)} MiB: "
                             "not a profile") from None
    except FileNotFoundError:
        raise ReferenceError(f"reference profile {path} not found: the training pipeline's evaluate "
                             f"stage writes it (`dvc pull {path}` to fetch the committed one)") from None
    except OSError as exc:
        raise ReferenceError(f"{where} is not readable ({exc.strerror or type(exc).__name__})") from None
    try:
        # Infinity and NaN are kept as floats here so that the model names the field holding one.
        doc = loads_json(raw, where, keep_nonfinite=True)
    except HttpError as exc:
        raise ReferenceError(f"{where} is not readable JSON ({str(exc).removeprefix(where + ': ')})") from None
    if isinstance(doc, dict) and doc.get("format") != FORMAT:
        raise ReferenceError(f"{where}: format must be {FORMAT!r}, got {shown(doc.get('format'))}")
    try:
        profile = parse(Profile, doc, where)
    except ParseError as exc:
        raise ReferenceError(str(exc)) from None
    signals = tuple(_signal(name, spec) for name, spec in profile.signals.items())
    return Reference(str(path), profile.model or "", profile.samples or 0, signals)


def _signal(name: str, spec: SignalSpec) -> Signal:
    if spec.kind == "histogram":
        label, bins = "le", spec.bounds()
    else:
        label, bins = spec.label or "", tuple(spec.categories or ())
    return Signal(name, spec.kind, spec.metric, label, bins, tuple(spec.counts))
