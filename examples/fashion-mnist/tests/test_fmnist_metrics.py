"""serve.py's Prometheus metrics: the exposition format, what is counted, and that it is aggregates only."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import fmnist_data
import fmnist_profile
import serve

MODEL = "fashion-mnist"
FAMILIES = {  # family name -> type, as the text-format parser reports them
    "serving_requests": "counter",
    "serving_request_latency_seconds": "histogram",
    "serving_batch_size": "histogram",
    "serving_predicted_class": "counter",
    "serving_input_mean_intensity": "histogram",
}


def scrape(url: str) -> tuple[str, dict]:
    """(Content-Type, {family name: family}) of one scrape, parsed by prometheus_client's parser."""
    with urllib.request.urlopen(url + "/monitoring/prometheus/metrics", timeout=30) as resp:
        ctype, text = resp.headers["Content-Type"], resp.read().decode()
    return ctype, {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict, sample_name: str, **labels: str) -> float:
    family = families[sample_name.removesuffix("_total").removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")]
    found = [s.value for s in family.samples if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, (sample_name, labels, found)
    return found[0] if found else 0.0


JSON = {"Content-Type": "application/json"}  # serve.py answers 415 to a predict body of another type


def predict(url: str, images: np.ndarray) -> list:
    req = urllib.request.Request(f"{url}/v1/models/{MODEL}:predict", data=json.dumps({"instances": images.tolist()}).encode(),
                                 headers=JSON)
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["predictions"]


def test_bucket_counts_follow_prometheus_le_semantics():
    # A value on a bound belongs to that bucket (v <= le); above the last bound is +Inf.
    counts = fmnist_profile.bucket_counts(np.array([0.0, 0.05, 0.0500001, 1.0, 1.5]))

    assert len(counts) == len(fmnist_profile.INTENSITY_BUCKETS) + 1
    assert counts[0] == 2 and counts[1] == 1 and counts[19] == 1 and counts[20] == 1


def test_a_request_is_counted_before_its_answer_leaves():
    # The handler thread is held right after writing its answer, as a busy machine may
    # deschedule it: a scrape the client makes once it has the answer must already count it.
    # A refused body is a predict request that never reaches the model, so none is loaded.
    release = threading.Event()

    class Held(serve.Handler):
        def _send(self, status, payload):
            super()._send(status, payload)
            if status == 400:
                release.wait(30)

    servable = SimpleNamespace(name=MODEL, version=1, outputs={}, metrics=None)
    httpd = serve.make_server(servable, "127.0.0.1", 0)
    httpd.RequestHandlerClass = type("HeldBound", (Held,), {"servable": servable})
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{url}/v1/models/{MODEL}:predict", data=b"nope", headers=JSON), timeout=30)
        assert refused.value.code == 400
        _, families = scrape(url)
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()

    ids = {"model": MODEL, "version": "1"}
    assert value(families, "serving_requests_total", **ids, status="400") == 1
    assert value(families, "serving_request_latency_seconds_count", **ids) == 1


@pytest.mark.slow
def test_metrics_endpoint_is_valid_text_format_with_the_documented_families(server):
    ctype, families = scrape(server.url)

    assert ctype.startswith("text/plain; version=0.0.4")
    assert {name: f.type for name, f in families.items()} == FAMILIES
    # Series exist from the start, so a windowed increase sees the first prediction.
    assert len(families["serving_predicted_class"].samples) >= 10


@pytest.mark.slow
def test_predictions_are_counted_by_status_batch_class_and_intensity(server, trained_project):
    images, _ = fmnist_data.load_split(trained_project["dir"] / "train_data", "t10k")
    batch = images[:32].astype(np.float32) / 255.0
    _, before = scrape(server.url)

    predictions = predict(server.url, batch)
    predict(server.url, batch[:1])
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/v1/models/{MODEL}:predict", data=b"nope", headers=JSON), timeout=30)
    assert refused.value.code == 400
    _, after = scrape(server.url)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    ids = {"model": MODEL, "version": "1"}
    assert delta("serving_requests_total", **ids, status="200") == 2
    assert delta("serving_requests_total", **ids, status="400") == 1
    assert delta("serving_request_latency_seconds_count", **ids) == 3
    assert delta("serving_batch_size_count", **ids) == 2 and delta("serving_batch_size_sum", **ids) == 33
    assert delta("serving_batch_size_bucket", **ids, le="1.0") == 1  # the single-image request
    first = np.asarray(predictions).argmax(axis=1)
    predicted = np.bincount(np.concatenate([first, first[:1]]), minlength=10)  # the first image was sent twice
    classes = [delta("serving_predicted_class_total", **ids, **{"class": name}) for name in fmnist_data.CLASS_NAMES]
    assert classes == predicted.tolist()
    expected = np.cumsum(fmnist_profile.bucket_counts(fmnist_profile.mean_intensity(np.concatenate([batch, batch[:1]]))))
    got = [delta("serving_input_mean_intensity_bucket", **ids, le=repr(float(le))) for le in fmnist_profile.INTENSITY_BUCKETS]
    assert got == expected[:-1].tolist() and delta("serving_input_mean_intensity_count", **ids) == 33


@pytest.mark.slow
def test_only_aggregates_leave_the_service(server):
    _, families = scrape(server.url)

    label_names = {k for f in families.values() for s in f.samples for k in s.labels}
    assert label_names <= {"model", "version", "status", "class", "le"}
    classes = {s.labels["class"] for s in families["serving_predicted_class"].samples}
    assert classes <= set(fmnist_data.CLASS_NAMES)


@pytest.mark.slow
def test_evaluate_writes_the_reference_profile_of_the_test_split(trained_project):
    project = trained_project["dir"]
    images, _ = fmnist_data.load_split(project / "train_data", "t10k")
    confusion = (project / "model/eval/plots/confusion.csv").read_text().splitlines()[1:]

    profile = json.loads((project / "model/eval/profile.json").read_text())

    assert profile["format"] == "ci-gen/profile/v1" and profile["model"] == MODEL
    assert profile["samples"] == len(images)
    intensity, classes = profile["signals"]["mean_intensity"], profile["signals"]["predicted_class"]
    assert intensity["metric"] == "serving_input_mean_intensity" and intensity["le"][-1] == "+Inf"
    assert intensity["counts"] == fmnist_profile.bucket_counts(fmnist_profile.mean_intensity(images / 255.0))
    predicted = [row.rsplit(",", 1)[1] for row in confusion]
    assert classes["categories"] == list(fmnist_data.CLASS_NAMES)
    assert classes["counts"] == [predicted.count(name) for name in fmnist_data.CLASS_NAMES]
