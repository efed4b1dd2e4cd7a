"""The live side: the reference's statistics over a window, from Prometheus or a direct scrape.

`PrometheusSource` asks Prometheus' HTTP API (`GET /api/v1/query`) for the increase of each
signal's series over the window, summed by bucket or category, at one evaluation time for all
signals. `ScrapeSource` reads the service's own metrics endpoint once: with no Prometheus in
between, the "window" is the service's lifetime (its counters since it started).

Both return, per signal, the counts in the reference's bins. Failures are one line: Prometheus
or the service unreachable or answering an error, buckets that differ from the reference's, and
TensorFlow Serving's own metrics where serve.py's were expected (`tfserving`: no input statistics).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Protocol

from ci_gen.errors import CiGenError, shown
from ci_gen.monitoring import tfserving
from ci_gen.monitoring.reference import Signal

TIMEOUT = 15.0


class SourceError(CiGenError):
    """The live statistics cannot be read."""


class Source(Protocol):
    description: str

    def counts(self, signal: Signal, model: str) -> tuple[float, ...]: ...


def _get(url: str, what: str) -> bytes:
    try:
        with urllib.request.urlopen(urllib.request.Request(url), timeout=TIMEOUT) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace").strip()
        raise SourceError(f"{what} answered HTTP {exc.code}: {' '.join(detail.split())[:200]}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceError(f"cannot reach {what} ({reason})") from None


def per_bucket(cumulative: dict[float, float], signal: Signal, what: str) -> tuple[float, ...]:
    """Cumulative `le` counts -> the reference's per-bucket counts (bounds must match)."""
    missing = [b for b in signal.bins if b not in cumulative]
    if missing:
        have = ", ".join(f"{b:g}" for b in sorted(cumulative)) or "none"
        raise SourceError(f"{what}: histogram {signal.metric} has no bucket le={missing[0]:g} of the "
                          f"reference (buckets there: {have}); serve and profile must use the same bounds")
    out, below = [], 0.0
    for bound in signal.bins:
        total = cumulative[bound]
        # increase() extrapolates each bucket on its own: a hair below the previous one is noise.
        out.append(max(0.0, total - below))
        below = max(below, total)
    return tuple(out)


def per_category(by_label: dict[str, float], signal: Signal) -> tuple[float, ...]:
    """Counts in the reference's category order (a category it never saw is left out)."""
    return tuple(max(0.0, by_label.get(c, 0.0)) for c in signal.bins)


class PrometheusSource:
    def __init__(self, url: str, window: str, at: float | None = None):
        self.url = url.rstrip("/")
        self.window = window
        self.at = time.time() if at is None else at  # one evaluation time for every signal
        self.description = f"Prometheus at {self.url}, last {window}"

    def query(self, promql: str) -> list[dict]:
        qs = urllib.parse.urlencode({"query": promql, "time": f"{self.at:.3f}"})
        raw = _get(f"{self.url}/api/v1/query?{qs}", f"Prometheus at {self.url}")
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError:
            raise SourceError(f"Prometheus at {self.url} answered something that is not JSON "
                              "(is this Prometheus' base URL?)") from None
        if doc.get("status") != "success" or doc.get("data", {}).get("resultType") != "vector":
            raise SourceError(f"Prometheus at {self.url} refused {promql!r}: {shown(doc.get('error'), 200)}")
        return doc["data"]["result"]

    def counts(self, signal: Signal, model: str) -> tuple[float, ...]:
        selector = f'{{model="{model}"}}'
        if signal.kind == "histogram":
            rows = self.query(f"sum by (le) (increase({signal.metric}_bucket{selector}[{self.window}]))")
            cumulative = {tfserving.le_bound(r["metric"].get("le", "")): float(r["value"][1])
                          for r in rows if "le" in r["metric"]}
            if not cumulative:
                self._not_tf_serving(model)
                return tuple(0.0 for _ in signal.bins)  # no series in the window: no traffic
            return per_bucket(cumulative, signal, self.description)
        rows = self.query(f"sum by ({signal.label}) (increase({signal.metric}{selector}[{self.window}]))")
        if not rows:
            self._not_tf_serving(model)
        return per_category({r["metric"].get(signal.label, ""): float(r["value"][1]) for r in rows}, signal)

    def _not_tf_serving(self, model: str) -> None:
        """No series of a signal: is Prometheus scraping TF Serving's own endpoint instead of serve.py's?"""
        # `{__name__=...}`: TF Serving's names start with `:`, which a bare PromQL name may not.
        selector = f'{{__name__="%s",model_name="{model}"}}'
        rows = self.query(f"sum by (status) (increase({selector % tfserving.REQUESTS}[{self.window}]))")
        if not rows:
            return
        latency = self.query(f"sum by (le) (increase({selector % (tfserving.LATENCY + '_bucket')}[{self.window}]))")
        summary = tfserving.summarise(
            {r["metric"].get("status", ""): float(r["value"][1]) for r in rows},
            {tfserving.le_bound(r["metric"]["le"]): float(r["value"][1]) for r in latency if "le" in r["metric"]})
        raise SourceError(tfserving.explain(
            f"Prometheus at {self.url} has TensorFlow Serving's own metrics over the last {self.window}, "
            "none of serve.py's", summary, model))


class ScrapeSource:
    def __init__(self, metrics_url: str):
        self.url = metrics_url
        self.description = f"{metrics_url} (counters since the service started)"
        self._samples: list | None = None
        self._families: set[str] = set()

    def _read(self) -> list:
        if self._samples is None:
            from prometheus_client.parser import text_string_to_metric_families

            text = _get(self.url, f"the metrics endpoint {self.url}").decode("utf-8", "replace")
            try:
                families = list(text_string_to_metric_families(text))
            except ValueError as exc:
                raise SourceError(f"{self.url} is not in Prometheus' text format ({exc})") from None
            self._families = {f.name for f in families}
            self._samples = [s for f in families for s in f.samples]
        return self._samples

    def counts(self, signal: Signal, model: str) -> tuple[float, ...]:
        read = self._read()
        if not any(s.name.startswith(signal.metric) for s in read) and tfserving.recognised(self._families):
            raise SourceError(tfserving.explain(f"{self.url} is TensorFlow Serving's own metrics endpoint",
                                                tfserving.from_samples(read, model), model))
        samples = [s for s in read if s.labels.get("model") == model]
        if signal.kind == "histogram":
            cumulative: dict[float, float] = {}
            for s in samples:
                if s.name == f"{signal.metric}_bucket":
                    bound = tfserving.le_bound(s.labels["le"])
                    cumulative[bound] = cumulative.get(bound, 0.0) + s.value
            if not cumulative:
                return tuple(0.0 for _ in signal.bins)
            return per_bucket(cumulative, signal, self.url)
        by_label: dict[str, float] = {}
        for s in samples:
            if s.name == signal.metric and signal.label in s.labels:
                by_label[s.labels[signal.label]] = by_label.get(s.labels[signal.label], 0.0) + s.value
        return per_category(by_label, signal)
