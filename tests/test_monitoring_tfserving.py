"""The production image serves with TensorFlow Serving, whose own metrics endpoint has request
and latency metrics only. `ci-gen job monitor` pointed at it says so in one line (what it shows,
why drift cannot be judged, where input statistics come from) instead of reporting "no traffic".

The endpoint here serves an exposition written the way TF Serving's exporter writes it
(tensorflow_serving/util/prometheus_exporter.cc): TensorFlow's metric names with `/` turned into
`:`, `# TYPE` lines and no `# HELP`, counters without `_total`, histograms as cumulative
`_bucket{...,le=...}` lines ending in `+Inf` then `_sum` and `_count`. Its families are those of
tensorflow_serving/servables/tensorflow/util.cc: request_count {model_name, status} and the
request_latency / runtime_latency samplers in microseconds (exponential buckets, 10 x 1.8^i).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ci_gen import cli
from ci_gen.monitoring import tfserving
from test_monitoring import MODEL, MetricsEndpoint, profile

LATENCY_BOUNDS = tuple(10 * 1.8 ** i for i in range(33))  # TF's Buckets::Exponential(10, 1.8, 33)


def _histogram(name: str, labels: str, values_us: list[float]) -> list[str]:
    lines, below = [], 0
    for bound in LATENCY_BOUNDS:
        below = sum(v <= bound for v in values_us)
        lines.append(f'{name}_bucket{{{labels},le="{bound:.6g}"}} {below}')
    lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {len(values_us)}')
    lines.append(f"{name}_sum{{{labels}}} {sum(values_us):.6g}")
    lines.append(f"{name}_count{{{labels}}} {len(values_us)}")
    return lines


def tf_serving_exposition(model: str, ok: int, failed: int, latencies_us: list[float]) -> str:
    """What TF Serving's /monitoring/prometheus/metrics answers after `ok` + `failed` predict
    requests of `model` over REST (latencies of the successful ones)."""
    lines = [
        "# TYPE :tensorflow:cc:saved_model:load_attempt_count counter",
        f':tensorflow:cc:saved_model:load_attempt_count{{model_path="/models/{model}/1",status="success"}} 1',
        "# TYPE :tensorflow:serving:request_count counter",
        f':tensorflow:serving:request_count{{model_name="{model}",status="OK"}} {ok}',
    ]
    if failed:
        lines.append(f':tensorflow:serving:request_count{{model_name="{model}",status="INVALID_ARGUMENT"}} {failed}')
    lines.append("# TYPE :tensorflow:serving:request_latency histogram")
    lines += _histogram(":tensorflow:serving:request_latency",
                        f'model_name="{model}",API="Predict",entrypoint="REST"', latencies_us)
    lines.append("# TYPE :tensorflow:serving:runtime_latency histogram")
    lines += _histogram(":tensorflow:serving:runtime_latency",
                        f'model_name="{model}",API="Predict",runtime="TF1"', [v * 0.8 for v in latencies_us])
    return "\n".join(lines) + "\n"


def tf_serving_endpoint(text: str | Callable[[], str]) -> MetricsEndpoint:
    """An endpoint answering with an exposition: a text, or a function giving the next one
    (counters that grow between scrapes)."""
    return MetricsEndpoint(lambda: (text() if callable(text) else text).encode())


# 40 successful requests: 20 at 1.5 ms, 19 at 3 ms, one slow at 40 ms; 3 refused.
LATENCIES = [1500.0] * 20 + [3000.0] * 19 + [40000.0]


@pytest.fixture
def endpoint():
    made = tf_serving_endpoint(tf_serving_exposition(MODEL, ok=40, failed=3, latencies_us=LATENCIES))
    yield made
    made.close()


def test_the_exposition_is_what_prometheus_client_parses_as_tf_serving():
    families = {f.name: f for f in text_string_to_metric_families(
        tf_serving_exposition(MODEL, ok=40, failed=3, latencies_us=LATENCIES))}
    assert tfserving.recognised(set(families))
    assert families[tfserving.REQUESTS].type == "counter"
    assert families[tfserving.LATENCY].type == "histogram"
    summary = tfserving.from_samples([s for f in families.values() for s in f.samples], MODEL)
    assert (summary.requests, summary.failed) == (43, 3)
    # The 20th of 40 closes the bucket (1102, 1983.59] us; the 39.6th (99 %) is in (37481.3, 67466.4].
    assert summary.p50_ms == pytest.approx(1.98359) and 37.48 < summary.p99_ms < 67.47
    assert not tfserving.recognised({"serving_requests", "serving_input_mean_intensity"})


def test_quantile_interpolates_within_a_bucket_like_histogram_quantile():
    cumulative = {1.0: 0.0, 2.0: 10.0, 4.0: 20.0, float("inf"): 20.0}
    assert tfserving.quantile(0.5, cumulative) == pytest.approx(2.0)
    assert tfserving.quantile(0.25, cumulative) == pytest.approx(1.5)
    assert tfserving.quantile(0.5, {1.0: 0.0, float("inf"): 0.0}) is None
    assert tfserving.quantile(0.99, {1.0: 0.0, float("inf"): 5.0}) == 1.0  # beyond the last finite bound


def test_a_tf_serving_endpoint_is_named_with_what_it_shows_in_one_line(tmp_path, monkeypatch, capsys, endpoint):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profile.json").write_text(json.dumps(profile()))

    code = cli.main(["job", "monitor", "--reference", "profile.json", "--model-name", MODEL,
                     "--metrics-url", endpoint.url])

    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith(f"ci-gen: error: {endpoint.url} is TensorFlow Serving's own metrics endpoint: ")
    assert f"({MODEL}: 43 requests, 7.0 % not OK, latency p50 " in err
    assert "no input or prediction statistics, so drift cannot be judged" in err
    assert "serve.py's serving_* metrics" in err
    assert not (tmp_path / "drift").exists()  # nothing judged, nothing half-written


def test_tf_serving_without_requests_for_the_model_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profile.json").write_text(json.dumps(profile()))
    other = tf_serving_endpoint(tf_serving_exposition("other-model", ok=5, failed=0, latencies_us=[900.0] * 5))
    try:
        code = cli.main(["job", "monitor", "--reference", "profile.json", "--model-name", MODEL,
                         "--metrics-url", other.url])
    finally:
        other.close()

    err = capsys.readouterr().err
    assert code == 1 and f"(no request for {MODEL} yet)" in err and "TensorFlow Serving" in err
