"""TensorFlow Serving's own metrics: recognised, summarised, and named for what they cannot show.

TF Serving started with a monitoring config (`prometheus_config { enable: true }`) exports its
monitoring registry at /monitoring/prometheus/metrics, the path serve.py uses too. Its names are
TensorFlow's with `/` turned into `:` (`:tensorflow:serving:request_count{model_name,status}`,
the `:tensorflow:serving:request_latency{model_name,API,entrypoint}` histogram in microseconds),
and it counts requests and time only: nothing about the inputs or the predicted classes, which
is what the reference profile describes. Read as if it were serve.py's endpoint it would look
like a service without traffic; instead the monitor says what it is, what it does show, and
where input statistics come from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PREFIX = ":tensorflow:serving:"
REQUESTS = PREFIX + "request_count"
LATENCY = PREFIX + "request_latency"
OK_STATUS = "OK"


@dataclass(frozen=True)
class ServingSummary:
    """What TF Serving's metrics say about one model: requests, failures, latency (ms or None)."""

    requests: float
    failed: float
    p50_ms: float | None
    p99_ms: float | None


def recognised(family_names: set[str]) -> bool:
    return any(name.startswith(PREFIX) for name in family_names)


def quantile(q: float, cumulative: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative `le` counts (linear within a bucket)."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank, below, lower = q * total, 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # past the last finite bound: the best known is that bound
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        below, lower = count, bound
    return lower


def summarise(by_status: dict[str, float], latency_us: dict[float, float]) -> ServingSummary:
    """Requests by status and cumulative request-latency buckets (microseconds) -> the summary."""
    requests = sum(by_status.values())
    failed = sum(v for status, v in by_status.items() if status != OK_STATUS)
    p50, p99 = quantile(0.5, latency_us), quantile(0.99, latency_us)
    return ServingSummary(requests, failed, None if p50 is None else p50 / 1000, None if p99 is None else p99 / 1000)


def from_samples(samples: list, model: str) -> ServingSummary:
    """The summary of `model` from parsed exposition samples (prometheus_client's: name, labels,
    value). TF Serving's counters have no `_total` suffix; prometheus_client's parser adds one."""
    by_status: dict[str, float] = {}
    latency: dict[float, float] = {}
    for s in samples:
        if s.labels.get("model_name") != model or not math.isfinite(s.value) or s.value < 0:
            continue  # only a summary for the message: an unusable sample is left out
        if s.name in (REQUESTS, REQUESTS + "_total"):
            status = s.labels.get("status", "")
            by_status[status] = by_status.get(status, 0.0) + s.value
        elif s.name == LATENCY + "_bucket":
            bound = le_bound(s.labels.get("le", ""))
            if bound is not None:
                latency[bound] = latency.get(bound, 0.0) + s.value
    return summarise(by_status, latency)


def le_bound(value: str) -> float | None:
    """A histogram bucket's `le` label as a number; None when it is not one (or is NaN)."""
    if value in ("+Inf", "Inf", "inf"):
        return math.inf
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def explain(found: str, summary: ServingSummary, model: str) -> str:
    """The one line: what was found, what it shows, why drift cannot be judged, what to do.
    `found` says where, e.g. "URL is TensorFlow Serving's own metrics endpoint"."""
    if summary.requests:
        share = 100 * summary.failed / summary.requests
        seen = f"{model}: {summary.requests:.0f} requests, {share:.1f} % not OK"
        if summary.p50_ms is not None:
            seen += f", latency p50 {summary.p50_ms:.3g} ms, p99 {summary.p99_ms:.3g} ms"
    else:
        seen = f"no request for {model} yet"
    return (f"{found}: it shows requests and latency ({seen}) but no input or prediction "
            "statistics, so drift cannot be judged; input drift needs serve.py's serving_* metrics "
            "(serve the model with the example's serve.py, which speaks the same REST API, and point "
            "metrics-url or prometheus-url at it)")
