"""Acceptance 2: serve.py serves the trained export with TF Serving's REST API, errors as JSON."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

import fmnist_data

pytestmark = pytest.mark.slow

MODEL = "fashion-mnist"


def call(url: str, payload: object | None = None, raw: bytes | None = None, method: str | None = None):
    """(status, parsed JSON body) of one request; non-JSON bodies fail the test."""
    data = raw if raw is not None else (None if payload is None else json.dumps(payload).encode())
    # serve.py, unlike TF Serving, requires the JSON content type of a predict body (415 otherwise).
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    return status, json.loads(body)


@pytest.fixture(scope="module")
def test_images(trained_project):
    images, labels = fmnist_data.load_split(trained_project["dir"] / "train_data", "t10k")
    return images[:40].astype(np.float32) / 255.0, labels[:40]


def test_status_reports_the_served_version_available(server):
    for path in (f"/v1/models/{MODEL}", f"/v1/models/{MODEL}/versions/1"):
        status, body = call(server.url + path)
        assert status == 200
        assert body == {
            "model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]
        }


def test_metadata_documents_the_signature(server):
    status, body = call(f"{server.url}/v1/models/{MODEL}/metadata")

    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert status == 200 and body["model_spec"]["version"] == "1"
    image_input = signature["inputs"]["images"]
    assert image_input["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in image_input["tensor_shape"]["dim"]] == ["-1", "28", "28"]
    assert [d["size"] for d in signature["outputs"]["output_0"]["tensor_shape"]["dim"]] == ["-1", "10"]


def test_row_format_predictions_are_probabilities_that_mostly_match_labels(server, test_images):
    images, labels = test_images

    status, body = call(f"{server.url}/v1/models/{MODEL}:predict", {"instances": images.tolist()})

    probs = np.asarray(body["predictions"])
    assert status == 200 and probs.shape == (40, 10)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert (probs.argmax(axis=1) == labels).mean() > 0.6


def test_columnar_and_named_forms_give_the_same_answer(server, test_images):
    images = test_images[0][:3].tolist()
    url = f"{server.url}/v1/models/{MODEL}/versions/1:predict"

    _, rows = call(url, {"instances": images})
    _, named_rows = call(url, {"instances": [{"images": x} for x in images], "signature_name": "serving_default"})
    _, columns = call(url, {"inputs": images})
    _, named_columns = call(url, {"inputs": {"images": images}})

    assert set(columns) == {"outputs"}  # as TF Serving: `inputs` -> `outputs`
    for other in (named_rows["predictions"], columns["outputs"], named_columns["outputs"]):
        assert np.allclose(other, rows["predictions"], atol=1e-6)


ONE = [[0.0] * 28] * 28

MALFORMED = {
    "not JSON": (b'{"instances": [', "not valid JSON"),
    "not an object": (json.dumps([ONE]).encode(), "must be a JSON object"),
    "missing key": (json.dumps({"images": [ONE]}).encode(), "exactly one of 'instances'"),
    "both keys": (json.dumps({"instances": [ONE], "inputs": [ONE]}).encode(), "exactly one of 'instances'"),
    "empty instances": (json.dumps({"instances": []}).encode(), "non-empty list"),
    "wrong shape": (json.dumps({"instances": [[[0.0] * 27] * 28]}).encode(), "must have shape [batch, 28, 28], got [1, 28, 27]"),
    "flat 784": (json.dumps({"instances": [[0.0] * 784]}).encode(), "must have shape [batch, 28, 28], got [1, 784]"),
    "ragged": (json.dumps({"instances": [ONE, ONE[:5]]}).encode(), "ragged"),
    "strings": (json.dumps({"instances": [[["a"] * 28] * 28]}).encode(), "numbers only"),
    "unknown input name": (json.dumps({"inputs": {"pixels": [ONE]}}).encode(), "this model takes 'images'"),
    "unknown signature": (json.dumps({"signature_name": "other", "instances": [ONE]}).encode(), "'other' not found"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_predict_gets_400_with_a_json_error(server, case):
    body, expected = MALFORMED[case]

    status, answer = call(f"{server.url}/v1/models/{MODEL}:predict", raw=body)

    assert status == 400
    assert set(answer) == {"error"} and expected in answer["error"]


@pytest.mark.parametrize(
    ("method", "path", "status", "expected"),
    [
        ("GET", "/v1/models/other", 404, "servable not found for request: Latest(other)"),
        ("POST", "/v1/models/other:predict", 404, "Latest(other)"),
        ("GET", f"/v1/models/{MODEL}/versions/2", 404, f"Specific({MODEL}, 2)"),
        ("GET", "/v2/whatever", 404, "malformed request"),
        ("GET", f"/v1/models/{MODEL}:predict", 405, "predict needs POST"),
        ("POST", f"/v1/models/{MODEL}:classify", 400, "only predict"),
    ],
)
def test_unknown_models_paths_and_methods_get_json_errors(server, method, path, status, expected):
    got, answer = call(server.url + path, raw=b"{}" if method == "POST" else None, method=method)

    assert got == status
    assert expected in answer["error"]


def test_post_without_content_length_is_refused(server):
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", f"/v1/models/{MODEL}:predict")
    conn.endheaders()
    resp = conn.getresponse()

    assert resp.status == 411 and "Content-Length" in json.loads(resp.read())["error"]
    conn.close()


def test_keeps_serving_after_errors_and_logs_one_line_per_request(server):
    call(f"{server.url}/v1/models/{MODEL}:predict", raw=b"garbage")
    status, _ = call(f"{server.url}/v1/models/{MODEL}")

    assert status == 200
    log = server.log_path.read_text()
    assert f'"POST /v1/models/{MODEL}:predict" 400' in log
    assert f'"GET /v1/models/{MODEL}" 200' in log
    assert "Traceback" not in log


def test_keep_alive_connection_survives_requests_with_bodies_and_errors(server, test_images):
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    answers = []
    for method, path, body in [
        ("GET", f"/v1/models/{MODEL}", b'{"ignored": true}'),  # a body on GET must be consumed
        ("POST", f"/v1/models/{MODEL}:predict", b"not json"),
        ("POST", f"/v1/models/{MODEL}:predict", json.dumps({"instances": test_images[0][:2].tolist()}).encode()),
    ]:
        conn.request(method, path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        answers.append((resp.status, json.loads(resp.read())))
    conn.close()

    assert [status for status, _ in answers] == [200, 400, 200]
    assert len(answers[2][1]["predictions"]) == 2
