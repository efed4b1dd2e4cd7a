"""inference_client.py: predictions from a real server, bounded waiting, and clear failures."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import fmnist_data
from fmnist_testlib import EXAMPLE_DIR, PYTHON, ServerProcess, free_port, run, tool_env

AVAILABLE = {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


def client(url: str, data_dir, *extra: str, timeout: str = "10") -> subprocess.CompletedProcess:
    args = ["--url", url, "--model-name", "fashion-mnist", "--data-dir", str(data_dir), "--timeout", timeout, *extra]
    # The subprocess timeout only guards against a hang; the client's own --timeout must end it first.
    return run([PYTHON, str(EXAMPLE_DIR / "inference_client.py"), *args], EXAMPLE_DIR, timeout=120, check=False)


def assert_one_line_error(proc: subprocess.CompletedProcess, *parts: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith("inference_client.py: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    for part in parts:
        assert part in proc.stderr


# --- against the real serve.py ------------------------------------------------------------


@pytest.mark.slow
def test_gets_predictions_from_serve_py_and_prints_each_with_its_label(server, trained_project):
    proc = client(server.url, trained_project["dir"] / "train_data", "--samples", "12", "--seed", "3", "--min-accuracy", "0.5")

    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "model 'fashion-mnist' version 1 is AVAILABLE" in lines[0]
    rows = [line for line in lines if line.rstrip().endswith(("ok", "WRONG"))]
    assert len(rows) == 12
    assert all(any(name in row for name in fmnist_data.CLASS_NAMES) for row in rows)
    correct = sum(row.rstrip().endswith("ok") for row in rows)
    assert lines[-1] == f"sample accuracy: {correct / 12:.3f} ({correct}/12)"


@pytest.mark.slow
def test_same_seed_sends_the_same_sample(server, trained_project):
    data = trained_project["dir"] / "train_data"
    first = client(server.url, data, "--samples", "5", "--seed", "11")
    second = client(server.url, data, "--samples", "5", "--seed", "11")

    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout


@pytest.mark.slow
def test_waits_for_a_server_that_starts_late(served_model, trained_project, tmp_path):
    port = free_port()
    waiting = subprocess.Popen(
        [PYTHON, "inference_client.py", "--url", f"http://127.0.0.1:{port}", "--model-name", "fashion-mnist",
         "--samples", "5", "--data-dir", str(trained_project["dir"] / "train_data"), "--timeout", "90"],
        cwd=EXAMPLE_DIR, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)  # the client is now retrying against a closed port
    late = ServerProcess(served_model, EXAMPLE_DIR, tmp_path / "late.log", port=port)
    try:
        out, err = waiting.communicate(timeout=120)
    finally:
        late.stop()

    assert waiting.returncode == 0, err
    assert "sample accuracy:" in out


# --- failures, against a closed port and loopback stand-ins -------------------------------


def test_unreachable_service_fails_within_its_timeout(small_data):
    port = free_port()  # nothing listens

    started = time.monotonic()
    proc = client(f"http://127.0.0.1:{port}", small_data, timeout="2")
    elapsed = time.monotonic() - started

    assert_one_line_error(proc, f"http://127.0.0.1:{port}/v1/models/fashion-mnist not available after 2s", "Connection refused")
    assert "Traceback" not in proc.stderr
    print(f"gave up after {elapsed:.1f}s")  # informational; no timing assertion


class Stub:
    """A loopback HTTP server answering status and predict with canned bodies."""

    def __init__(self, status_body: bytes, predict_body=None, predict_code: int = 200):
        stub = self
        self.requests: list[str] = []
        self.instances: list[list] = []  # what each predict request sent

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                stub.requests.append("GET " + self.path)
                self._answer(200, status_body)

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append("POST " + self.path)
                stub.instances.append(request["instances"])
                body = predict_body(len(request["instances"])) if callable(predict_body) else predict_body
                self._answer(predict_code, body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    made = []

    def make(*args, **kwargs) -> Stub:
        made.append(Stub(*args, **kwargs))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _always_class(k: int):
    def body(n: int) -> bytes:
        row = [0.0] * 10
        row[k] = 1.0
        return json.dumps({"predictions": [row] * n}).encode()

    return body


STATUS_OK = json.dumps(AVAILABLE).encode()


@pytest.mark.parametrize(
    ("status_body", "predict_body", "expected"),
    [
        (b"<html>proxy error</html>", None, "status from http://127.0.0.1:"),
        (json.dumps({"hello": 1}).encode(), None, "has no 'model_version_status' list"),
        (STATUS_OK, b"Internal Server Error", "is not JSON: 'Internal Server Error'"),
        (STATUS_OK, json.dumps({"outputs": []}).encode(), "has no 'predictions'"),
        (STATUS_OK, json.dumps({"predictions": [[0.5, 0.5]]}).encode(), "have shape [1, 2], expected [5, 10]"),
        (STATUS_OK, json.dumps({"predictions": [["a"] * 10] * 5}).encode(), "are not a numeric matrix"),
    ],
    ids=["status not JSON", "status wrong shape", "predict not JSON", "no predictions", "wrong shape", "not numbers"],
)
def test_garbage_answers_fail_with_one_clear_line(stub, small_data, status_body, predict_body, expected):
    service = stub(status_body, predict_body)

    proc = client(service.url, small_data, "--samples", "5")

    assert_one_line_error(proc, expected)
    assert "Traceback" not in proc.stderr


def test_predict_error_status_is_reported_with_the_server_message(stub, small_data):
    service = stub(STATUS_OK, json.dumps({"error": "input 'images' must have shape [batch, 28, 28]"}).encode(), predict_code=400)

    proc = client(service.url, small_data, "--samples", "3")

    assert_one_line_error(proc, "HTTP 400: input 'images' must have shape [batch, 28, 28]")


def test_a_model_that_never_becomes_available_times_out_naming_its_state(stub, small_data):
    loading = {"model_version_status": [{"version": "1", "state": "LOADING", "status": {"error_code": "OK", "error_message": ""}}]}
    service = stub(json.dumps(loading).encode())

    proc = client(service.url, small_data, timeout="1.5")

    assert_one_line_error(proc, "not available after 1.5s", "last: state LOADING")
    assert len(service.requests) >= 2  # it retried before giving up
    assert not any(r.startswith("POST") for r in service.requests)


def test_accuracy_below_the_threshold_fails_after_printing_the_predictions(stub, small_data):
    service = stub(STATUS_OK, _always_class(0))

    proc = client(service.url, small_data, "--samples", "20", "--seed", "0", "--min-accuracy", "0.5")

    assert_one_line_error(proc, "below --min-accuracy 0.5")
    assert "sample accuracy: " in proc.stdout and proc.stdout.count("WRONG") >= 10


def test_invert_sends_the_same_sample_inverted(stub, small_data):
    service = stub(STATUS_OK, _always_class(0))

    plain = client(service.url, small_data, "--samples", "4", "--seed", "5")
    inverted = client(service.url, small_data, "--samples", "4", "--seed", "5", "--invert")

    assert plain.returncode == inverted.returncode == 0, plain.stderr + inverted.stderr
    sent, flipped = (np.asarray(x, dtype=np.float64) for x in service.instances)
    assert sent.shape == flipped.shape == (4, 28, 28)
    assert np.allclose(flipped, 1.0 - sent, atol=1e-5)
    assert flipped.mean() > 0.5 > sent.mean()  # dark garments on black become light on white


def test_missing_data_dir_and_bad_arguments(tmp_path):
    missing = client("http://127.0.0.1:9", tmp_path / "nope")
    assert_one_line_error(missing, "no such data directory")

    bad = run([PYTHON, "inference_client.py", "--url", "u", "--model-name", "m", "--min-accuracy", "2"], EXAMPLE_DIR, check=False)
    assert bad.returncode == 2 and "must be between 0 and 1" in bad.stderr
