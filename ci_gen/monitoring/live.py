"""The live side: the reference's statistics over a window, from Prometheus or a direct scrape.

`PrometheusSource` asks Prometheus' HTTP API (`GET /api/v1/query`) for the increase of each
signal's series over the window, summed by bucket or category, at one evaluation time for all
signals. `ScrapeSource` reads the service's own metrics endpoint once: with no Prometheus in
between, the "window" is the service's lifetime (its counters since it started).

Both return, per signal, the counts in the reference's bins. Failures are one line: Prometheus
or the service unreachable or answering an error, buckets that differ from the reference's, and
TensorFlow Serving's own metrics where serve.py's were expected (`tfserving`: no input statistics).
Every answer goes through `ci_gen.http.Client` (deadline, size limit) and is parsed before use
(`PromAnswer`, `Sample`): a count that is NaN or infinite, a bucket bound that is not a number,
a body of the wrong shape is one line naming the source and the field, never a count.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Annotated, Optional, Protocol

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from ci_gen.errors import CiGenError, shown
from ci_gen.http import Client, HttpError, Response, Unreachable
from ci_gen.monitoring import tfserving
from ci_gen.monitoring.reference import Signal, finite_count
from ci_gen.parse import Model, ParseError, parse

TIMEOUT = 15.0    # per connect and per read
DEADLINE = 60.0   # per query, retries included
MAX_BYTES = 16 * 1024 * 1024  # a query result or an exposition; far above serve.py's few KiB


class SourceError(CiGenError):
    """The live statistics cannot be read."""


class Source(Protocol):
    description: str

    def counts(self, signal: Signal, model: str) -> tuple[float, ...]: ...


def _count(value: object) -> float:
    # Prometheus writes sample values as strings ("42", "NaN", "+Inf"); a scrape gives floats.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise PydanticCustomError("count", "must be a number") from None
    return finite_count(value)


Count = Annotated[float, BeforeValidator(_count)]


class PromSeries(Model):
    metric: dict[str, str]
    value: tuple[float, Count]  # (evaluation time, sample value)


class PromData(Model):
    resultType: str
    result: list[PromSeries]


class PromAnswer(Model):
    """Prometheus' query API envelope (docs: querying/api, "Format overview")."""

    status: str
    data: Optional[PromData] = None
    errorType: Optional[str] = None
    error: Optional[str] = None


class Sample(Model):
    """One sample of a scraped exposition, as prometheus_client's parser gives it."""

    name: str
    labels: dict[str, str]
    value: Count


def bound(le: str, where: str) -> float:
    """A histogram `le` label as a number (+Inf included), or one line naming where it was."""
    value = tfserving.le_bound(le)
    if value is None:
        raise SourceError(f"{where}: le={shown(le)} is not a bucket bound (a number or +Inf)")
    return value


def _get(client: Client, url: str, what: str, params: dict | None = None,
         accept: str = "application/json") -> Response:
    try:
        return client.request("GET", url, params=params, what=what, headers={"Accept": accept})
    except Unreachable as exc:
        tries = f", {exc.attempts} attempts" if exc.attempts > 1 else ""
        raise SourceError(f"cannot reach {client.what} at {client.base.text} ({exc.reason}{tries})") from None
    except HttpError as exc:
        raise SourceError(str(exc)) from None


def per_bucket(cumulative: dict[float, float], signal: Signal, what: str) -> tuple[float, ...]:
    """Cumulative `le` counts -> the reference's per-bucket counts (bounds must match)."""
    missing = [b for b in signal.bins if b not in cumulative]
    if missing:
        have = ", ".join(f"{b:g}" for b in sorted(cumulative)) or "none"
        raise SourceError(f"{what}: histogram {signal.metric} has no bucket le={missing[0]:g} of the "
                          f"reference (buckets there: {have}); serve and profile must use the same bounds")
    out, below = [], 0.0
    for le in signal.bins:
        total = cumulative[le]
        # increase() extrapolates each bucket on its own: a hair below the previous one is noise.
        out.append(max(0.0, total - below))
        below = max(below, total)
    return tuple(out)


def per_category(by_label: dict[str, float], signal: Signal) -> tuple[float, ...]:
    """Counts in the reference's category order (a category it never saw is left out)."""
    return tuple(max(0.0, by_label.get(c, 0.0)) for c in signal.bins)


def _add(into: dict, key: object, value: float) -> None:
    # Sums of finite counts stay finite: past the largest float they are capped, not infinite.
    total = into.get(key, 0.0) + value
    into[key] = total if math.isfinite(total) else sys.float_info.max


class PrometheusSource:
    def __init__(self, url: str, window: str, at: float | None = None):
        self.client = Client(url, what="Prometheus", timeout=TIMEOUT, deadline=DEADLINE,
                             max_bytes=MAX_BYTES)
        self.url = self.client.base.text.rstrip("/")  # without any user:password
        self.window = window
        self.at = time.time() if at is None else at  # one evaluation time for every signal
        self.description = f"Prometheus at {self.url}, last {window}"

    def query(self, promql: str) -> list[PromSeries]:
        resp = _get(self.client, self.client.url("api/v1/query"), "a query",
                    {"query": promql, "time": f"{self.at:.3f}"})
        source = f"Prometheus at {self.url}, answer to {promql!r}"
        try:
            answer = parse(PromAnswer, resp.json(source), source)
        except (HttpError, ParseError) as exc:
            if not resp.ok:
                raise SourceError(f"Prometheus at {self.url} answered HTTP {resp.status}: {resp.text()}") from None
            if "not JSON" in str(exc):
                raise SourceError(f"Prometheus at {self.url} answered something that is not JSON "
                                  "(is this Prometheus' base URL?)") from None
            raise SourceError(str(exc)) from None
        if answer.status != "success":
            raise SourceError(f"Prometheus at {self.url} refused {promql!r}: {shown(answer.error, 200)}")
        if answer.data is None or answer.data.resultType != "vector":
            got = "no data" if answer.data is None else f"resultType {shown(answer.data.resultType)}"
            raise SourceError(f"{source}: data: expected an instant vector, got {got}")
        return answer.data.result

    def _by(self, rows: list[PromSeries], label: str, promql: str) -> dict:
        out: dict = {}
        for i, row in enumerate(rows):
            if label not in row.metric:
                continue
            key = row.metric[label]
            if label == "le":
                key = bound(key, f"Prometheus at {self.url}, answer to {promql!r}: data.result.{i}.metric.le")
            _add(out, key, row.value[1])
        return out

    def counts(self, signal: Signal, model: str) -> tuple[float, ...]:
        selector = f'{{model="{model}"}}'
        if signal.kind == "histogram":
            promql = f"sum by (le) (increase({signal.metric}_bucket{selector}[{self.window}]))"
            cumulative = self._by(self.query(promql), "le", promql)
            if not cumulative:
                self._not_tf_serving(model)
                return tuple(0.0 for _ in signal.bins)  # no series in the window: no traffic
            return per_bucket(cumulative, signal, self.description)
        promql = f"sum by ({signal.label}) (increase({signal.metric}{selector}[{self.window}]))"
        rows = self.query(promql)
        if not rows:
            self._not_tf_serving(model)
        by_label: dict = {}
        for row in rows:
            _add(by_label, row.metric.get(signal.label, ""), row.value[1])
        return per_category(by_label, signal)

    def _not_tf_serving(self, model: str) -> None:
        """No series of a signal: is Prometheus scraping TF Serving's own endpoint instead of serve.py's?"""
        # `{__name__=...}`: TF Serving's names start with `:`, which a bare PromQL name may not.
        selector = f'{{__name__="%s",model_name="{model}"}}'
        promql = f"sum by (status) (increase({selector % tfserving.REQUESTS}[{self.window}]))"
        rows = self.query(promql)
        if not rows:
            return
        latency = f"sum by (le) (increase({selector % (tfserving.LATENCY + '_bucket')}[{self.window}]))"
        summary = tfserving.summarise(self._by(rows, "status", promql),
                                      self._by(self.query(latency), "le", latency))
        raise SourceError(tfserving.explain(
            f"Prometheus at {self.url} has TensorFlow Serving's own metrics over the last {self.window}, "
            "none of serve.py's", summary, model))


class ScrapeSource:
    def __init__(self, metrics_url: str):
        self.client = Client(metrics_url, what="the metrics endpoint", timeout=TIMEOUT,
                             deadline=DEADLINE, max_bytes=MAX_BYTES)
        self.url = self.client.base.text
        self.description = f"{self.url} (counters since the service started)"
        self._samples: list | None = None
        self._families: set[str] = set()

    def _read(self) -> list:
        if self._samples is None:
            from prometheus_client.parser import text_string_to_metric_families

            # The classic text format (what serve.py and TF Serving write), not OpenMetrics.
            resp = _get(self.client, self.client.base.text, "a scrape", accept="text/plain;version=0.0.4")
            if not resp.ok:
                raise SourceError(f"the metrics endpoint {self.url} answered HTTP {resp.status}: {resp.text()}")
            text = resp.body.decode("utf-8", "replace")
            try:
                families = list(text_string_to_metric_families(text))
            except (ValueError, IndexError, KeyError, TypeError) as exc:
                raise SourceError(f"{self.url} is not in Prometheus' text format "
                                  f"({shown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 120)})") from None
            self._families = {f.name for f in families}
            self._samples = [s for f in families for s in f.samples]
        return self._samples

    def _checked(self, sample) -> Sample:
        """A sample the counts use: its value finite and non-negative, or one line naming it."""
        labels = ",".join(f"{k}={shown(v, 40)}" for k, v in sorted(sample.labels.items()))
        return parse(Sample, {"name": sample.name, "labels": sample.labels, "value": sample.value},
                     f"{self.url}: sample {sample.name}{{{labels}}}")

    def counts(self, signal: Signal, model: str) -> tuple[float, ...]:
        read = self._read()
        if not any(s.name.startswith(signal.metric) for s in read) and tfserving.recognised(self._families):
            raise SourceError(tfserving.explain(f"{self.url} is TensorFlow Serving's own metrics endpoint",
                                                tfserving.from_samples(read, model), model))
        samples = [s for s in read if s.labels.get("model") == model]
        if signal.kind == "histogram":
            cumulative: dict = {}
            for s in samples:
                if s.name == f"{signal.metric}_bucket":
                    checked = self._checked(s)
                    le = bound(checked.labels.get("le", ""), f"{self.url}: sample {s.name}: label le")
                    _add(cumulative, le, checked.value)
            if not cumulative:
                return tuple(0.0 for _ in signal.bins)
            return per_bucket(cumulative, signal, self.url)
        by_label: dict = {}
        for s in samples:
            if s.name == signal.metric and signal.label in s.labels:
                checked = self._checked(s)
                _add(by_label, checked.labels[signal.label], checked.value)
        return per_category(by_label, signal)
