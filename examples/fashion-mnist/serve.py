"""Serve the exported model over TF Serving's REST API, for local runs, CI without containers and tests.

Production uses the `tensorflow/serving` image (see Dockerfile) with the same model directory;
this script takes the same flags and answers the same requests, so one client works with both:

    python serve.py --model_name fashion-mnist --model_base_path model/fashion-mnist --rest_api_port 8501

    GET  /v1/models/NAME[/versions/N]            -> {"model_version_status": [{"state": "AVAILABLE", ...}]}
    GET  /v1/models/NAME[/versions/N]/metadata   -> the serving signature (input/output names, shapes)
    POST /v1/models/NAME[/versions/N]:predict    {"instances": [...]} -> {"predictions": [...]}
                                                 {"inputs": ...}      -> {"outputs": ...}
    GET  /monitoring/prometheus/metrics          -> Prometheus metrics (TF Serving's path; off
                                                    with --no_metrics)

Metrics (prometheus-client; names and buckets in fmnist_profile.py): predict requests by
model, version and HTTP status, their latency, batch sizes, predicted classes, and a histogram
of each image's mean pixel intensity. Only these aggregates leave the service, never an input.

The model directory holds numeric version subdirectories (SavedModels); the highest is served.
For this example's model the input is `images`: float32 [batch, 28, 28] (pixels / 255, in [0, 1])
and the output is [batch, 10] class probabilities. Errors are JSON `{"error": "..."}`: 400 for
a malformed request, 404 for an unknown model, version or path.

Hostile requests are answered, never served: a predict body must be `Content-Type:
application/json` (415 otherwise: a web page's form post cannot reach the model and skew the
drift metrics), strict JSON (NaN, Infinity, numbers beyond float32 such as 1e39, integers of
more than 100 digits, nesting too deep: 400), at most 64 MiB (413) with a Content-Length (411).
Each connection's reads time out (--rest_api_timeout_in_ms, as TF Serving's flag) and at most
--rest_api_num_threads connections are served at once, so half-open connections cannot pile
up threads. Every predict request is counted once by its status: 408 for headers or a body
that did not arrive in time, 499 (as nginx) for a client that closed the connection before
sending it all.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import fmnist_profile as stats

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep service logs readable

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_INT_DIGITS = 100  # no input value needs more; Python's own limit (4300) would raise a ValueError
DEFAULT_TIMEOUT_MS = 30_000  # TF Serving's --rest_api_timeout_in_ms default
DEFAULT_THREADS = 32
CLIENT_CLOSED = 499  # nginx's status for a request whose client went away; never sent
SIGNATURE = "serving_default"
METRICS_PATH = "/monitoring/prometheus/metrics"
_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<tail>/metadata|:[A-Za-z]+)?$")


class ServeError(Exception):
    """An error answered to the client as JSON {"error": message}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Aborted(Exception):
    """The client closed the connection before its request was complete: nothing to answer."""


class StartupError(RuntimeError):
    """The server cannot start (bad model directory, unusable model); one-line message."""


def pick_version(base: str | os.PathLike) -> tuple[int, Path]:
    """(version, path) of the numerically highest version directory, as TF Serving's default policy."""
    base = Path(base)
    if not base.is_dir():
        raise StartupError(f"{base}: model base path not found")
    versions = [(int(p.name), p) for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        raise StartupError(f"{base}: no numeric version directory (expected e.g. {base}/1 holding a SavedModel)")
    return max(versions)


class Servable:
    """One loaded SavedModel version and its serving signature."""

    def __init__(self, name: str, base_path: str | os.PathLike):
        import tensorflow as tf

        self.name = name
        self.version, self.path = pick_version(base_path)
        try:
            # Keep the loaded object: the signature function needs its variables alive.
            self._loaded = tf.saved_model.load(str(self.path))
        except Exception as exc:  # TF raises many types; all mean "not a usable SavedModel"
            raise StartupError(f"{self.path}: cannot load SavedModel ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
        if SIGNATURE not in self._loaded.signatures:
            raise StartupError(f"{self.path}: no '{SIGNATURE}' signature (export with Keras model.export)")
        self._fn = self._loaded.signatures[SIGNATURE]
        inputs = self._fn.structured_input_signature[1]
        if len(inputs) != 1:
            raise StartupError(f"{self.path}: {len(inputs)} inputs; this server handles single-input models")
        ((self.input_name, spec),) = inputs.items()
        self.input_shape = tuple(spec.shape.as_list())  # e.g. (None, 28, 28)
        self.input_dtype = spec.dtype.as_numpy_dtype
        self.outputs = dict(self._fn.structured_outputs)
        self._tf = tf
        self.metrics: Metrics | None = None  # set by make_server unless metrics are off

    # --- requests --------------------------------------------------------------------

    def status(self) -> dict:
        return {
            "model_version_status": [
                {"version": str(self.version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            ]
        }

    def metadata(self) -> dict:
        from tensorflow.core.framework import types_pb2

        def tensor(name, spec):
            dims = [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape.as_list()]
            return {
                "dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
                "tensor_shape": {"dim": dims, "unknown_rank": False},
                "name": name,
            }

        inputs = {self.input_name: tensor(self.input_name, self._fn.structured_input_signature[1][self.input_name])}
        outputs = {k: tensor(k, v) for k, v in self.outputs.items()}
        signature = {"inputs": inputs, "outputs": outputs, "method_name": "tensorflow/serving/predict", "defaults": {}}
        return {
            "model_spec": {"name": self.name, "signature_name": "", "version": str(self.version)},
            "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
        }

    def predict(self, body: object) -> tuple[dict, int]:
        """(response, batch size) for a parsed JSON request body."""
        batch, columnar = self._parse(body)
        results = self._fn(**{self.input_name: self._tf.constant(batch)})
        results = {k: v.numpy() for k, v in results.items()}
        if self.metrics is not None:
            self.metrics.observe_batch(batch, results)
        if columnar:
            if len(results) == 1:
                return {"outputs": next(iter(results.values())).tolist()}, len(batch)
            return {"outputs": {k: v.tolist() for k, v in results.items()}}, len(batch)
        if len(results) == 1:
            return {"predictions": next(iter(results.values())).tolist()}, len(batch)
        rows = [{k: v[i].tolist() for k, v in results.items()} for i in range(len(batch))]
        return {"predictions": rows}, len(batch)

    def _parse(self, body: object):
        import numpy as np

        if not isinstance(body, dict):
            raise ServeError(400, "request body must be a JSON object with 'instances' or 'inputs'")
        signature = body.get("signature_name", SIGNATURE)
        if signature not in (SIGNATURE, ""):
            raise ServeError(400, f"serving signature name: '{signature}' not found in signature def")
        if ("instances" in body) == ("inputs" in body):
            raise ServeError(400, "request must have exactly one of 'instances' (row format) or 'inputs' (columnar format)")
        columnar = "inputs" in body
        value = body["inputs"] if columnar else body["instances"]
        if columnar:
            value = self._unwrap(value)
        else:
            if not isinstance(value, list) or not value:
                raise ServeError(400, "'instances' must be a non-empty list")
            value = [self._unwrap(row) for row in value]
        try:
            raw = np.asarray(value)
        except (ValueError, RecursionError):  # ragged, or nested deeper than any tensor
            raise ServeError(400, f"input '{self.input_name}' is ragged: all instances must have the same shape") from None
        if raw.dtype.kind not in "iuf":
            raise ServeError(400, f"input '{self.input_name}' must hold numbers only, got {raw.dtype.kind!r} values")
        expected = self.input_shape
        if raw.ndim != len(expected) or any(e is not None and e != g for e, g in zip(expected, raw.shape)):
            want = ", ".join("batch" if e is None else str(e) for e in expected)
            raise ServeError(400, f"input '{self.input_name}' must have shape [{want}], got {list(raw.shape)}")
        if raw.shape[0] == 0:
            raise ServeError(400, "empty batch")
        with np.errstate(over="ignore", invalid="ignore"):
            cast = raw.astype(self.input_dtype)
        if cast.dtype.kind == "f" and not np.isfinite(cast).all():
            # JSON has no NaN or Infinity (refused when parsed); this is a number beyond the
            # input type's range (1e39 in float32), which would reach the model as infinity.
            limit = float(np.finfo(cast.dtype).max)
            raise ServeError(400, f"input '{self.input_name}' holds a number beyond {np.dtype(cast.dtype).name}'s "
                                  f"range (+-{limit:.3g})")
        return cast, columnar

    def _unwrap(self, value):
        # Named form {"images": ...} is accepted like TF Serving does, for a single input too.
        if isinstance(value, dict):
            if set(value) != {self.input_name}:
                raise ServeError(400, f"unknown input names {sorted(value)}; this model takes '{self.input_name}'")
            return value[self.input_name]
        return value


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per server)."""

    def __init__(self, servable: Servable):
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

        disable_created_metrics()  # no `*_created` series: half the exposition, nothing the monitor reads
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version")
        self._labels = {"model": servable.name, "version": str(servable.version)}
        self.requests = Counter(stats.REQUESTS, "Predict requests answered, by HTTP status.",
                                (*labels, "status"), registry=self.registry)
        self.latency = Histogram(stats.LATENCY, "Time from request to answer ready, of predict requests.",
                                 labels, buckets=stats.LATENCY_BUCKETS, registry=self.registry).labels(**self._labels)
        self.batch_size = Histogram(stats.BATCH_SIZE, "Instances per predict request.",
                                    labels, buckets=stats.BATCH_BUCKETS, registry=self.registry).labels(**self._labels)
        self.intensity = Histogram(stats.MEAN_INTENSITY, "Mean pixel intensity (0 to 1) of each input image.",
                                   labels, buckets=stats.INTENSITY_BUCKETS, registry=self.registry).labels(**self._labels)
        classes = Counter(stats.PREDICTED_CLASS, "Predictions, by predicted class.",
                          (*labels, "class"), registry=self.registry)
        self._by_class: list = []  # bound children, in the model's class order
        self._by_status = {"200": self.requests.labels(**self._labels, status="200")}  # exported from the start, as 0
        outputs = list(servable.outputs.values())
        if len(outputs) == 1 and outputs[0].shape.rank == 2 and outputs[0].shape[1]:
            # Series exist at 0 from the start, so a rate over a window that saw the first
            # prediction counts it (Prometheus cannot see an increase from a missing series).
            names = stats.class_names(int(outputs[0].shape[1]))
            self._by_class = [classes.labels(**self._labels, **{"class": name}) for name in names]

    def observe_request(self, status: int, seconds: float | None) -> None:
        key = str(status)
        child = self._by_status.get(key)
        if child is None:  # a handful of statuses at most: bound children are kept
            child = self._by_status.setdefault(key, self.requests.labels(**self._labels, status=key))
        child.inc()
        if seconds is not None:  # None: refused by the HTTP layer before the handler ran
            self.latency.observe(seconds)

    def observe_batch(self, batch, results: dict) -> None:
        """Batch size, each instance's mean intensity, the predicted classes: aggregates only."""
        import numpy as np

        self.batch_size.observe(len(batch))
        for value in stats.mean_intensity(batch).tolist():
            if math.isfinite(value):  # inputs are checked finite; a NaN here would poison the sum for good
                self.intensity.observe(value)
        if self._by_class and len(results) == 1:
            scores = next(iter(results.values()))
            for k, n in enumerate(np.bincount(scores.argmax(axis=1), minlength=len(self._by_class)).tolist()):
                if n:
                    self._by_class[k].inc(n)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

        # The classic text format (0.0.4), as TF Serving answers: every Prometheus 2.x reads it.
        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4


def strict_json(body: bytes) -> object:
    """A request body as JSON, or a 400: NaN, Infinity, 1e400 (a float's infinity), integers
    too long to be a value and nesting deeper than Python's parser goes are not numbers."""
    def constant(name: str) -> object:
        raise ServeError(400, f"request body holds {name}, which is not a number (JSON has no NaN or Infinity)")

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ServeError(400, f"request body holds {text[:40]}, a number beyond any float")
        return value

    def integer(text: str) -> int:
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise ServeError(400, f"request body holds an integer of {len(text.lstrip('-'))} digits "
                                  f"(at most {MAX_INT_DIGITS})")
        value = int(text)
        # Beyond int64 numpy would make an array of Python objects; as a float, the range check names it.
        return value if -2**63 <= value < 2**63 else float(value)

    try:
        return json.loads(body, parse_constant=constant, parse_float=number, parse_int=integer)
    except RecursionError:
        raise ServeError(400, "request body is nested too deep") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ServeError(400, f"request body is not valid JSON: {str(exc)[:200]}") from None


class Handler(BaseHTTPRequestHandler):
    server_version = "fmnist-serve/1"
    protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving
    # Headers and body go out in separate writes: with Nagle's algorithm on, the body waits for
    # the client's delayed ACK (~40 ms per request on a keep-alive connection).
    disable_nagle_algorithm = True
    # Every read on the connection (request line, headers, body, the next keep-alive request)
    # times out: a half-open connection is closed instead of holding its thread for ever.
    timeout = DEFAULT_TIMEOUT_MS / 1000
    servable: Servable  # set on the class by make_server

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def _is_predict(self) -> bool:
        """Is this request for this model's predict (whatever the method)? Those are counted."""
        match = _ROUTE.match(unquote(urlsplit(getattr(self, "path", "") or "").path))
        return bool(match and match["name"] == self.servable.name and match["tail"] == ":predict"
                    and match["version"] in (None, str(self.servable.version)))

    def _count(self, status: int, seconds: float | None) -> None:
        metrics = self.servable.metrics
        if metrics is not None and not self._counted and self._is_predict():
            self._counted = True
            metrics.observe_request(status, seconds)

    def handle_one_request(self):
        self._counted = False
        self.path = ""  # not the previous request's on this connection, if this one has none
        try:
            super().handle_one_request()
        except ConnectionError:  # the client went away while its headers were read
            self._count(CLIENT_CLOSED, None)
            raise
        # Whatever was not counted yet is a request line whose headers did not come in time:
        # the base class closed the connection without an answer (a no-op for anything else).
        self._count(408, None)

    def send_error(self, code, message=None, explain=None):
        # The HTTP layer's own refusals (header too large, unsupported method, bad request line)
        # are answered before do_* runs: a predict request among them is counted here.
        self._count(code, None)
        super().send_error(code, message, explain)

    def _handle(self, method: str) -> None:
        started = time.perf_counter()
        self._note = ""
        try:
            status, payload = self._route(method)
        except ServeError as exc:
            status, payload = exc.status, {"error": exc.message}
        except Aborted:
            status, payload = CLIENT_CLOSED, None
        except Exception as exc:  # a bug or a TF failure: answer, log, keep serving
            status, payload = 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}
        seconds = time.perf_counter() - started
        # Counted before the answer leaves: a client that has its answer and then scrapes must
        # see it, even when this thread is descheduled right after the write.
        self._count(status, seconds)
        if payload is not None:
            try:
                self._send(status, payload)
            except OSError:  # the client left while the answer was written
                self.close_connection = True
        ms = seconds * 1000
        sys.stderr.write(f'{self.address_string()} "{method} {self.path}" {status} {ms:.1f}ms{self._note}\n')

    def _route(self, method: str) -> tuple[int, dict]:
        # Read any body, even on GET: unread bytes would corrupt the next request on this connection.
        body = self._read_body(required=method == "POST")
        path = unquote(urlsplit(self.path).path)
        if path == METRICS_PATH and self.servable.metrics is not None:
            if method != "GET":
                raise ServeError(405, f"{path} needs GET")
            return 200, self.servable.metrics.exposition()
        match = _ROUTE.match(path)
        if not match:
            raise ServeError(404, f"malformed request: {method} {path}")
        name, version, tail = match["name"], match["version"], match["tail"] or ""
        servable = self.servable
        if name != servable.name:
            raise ServeError(404, f"servable not found for request: Latest({name})")
        if version is not None and version != str(servable.version):
            raise ServeError(404, f"servable not found for request: Specific({name}, {version})")
        if tail.startswith(":"):
            if method != "POST":
                raise ServeError(405, f"{tail[1:]} needs POST")
            if tail != ":predict":
                raise ServeError(400, f"method {tail[1:]!r} not supported by this server (only predict)")
            ctype = self.headers.get("Content-Type")
            if self.headers.get_content_type() != "application/json" or ctype is None:
                got = "none" if ctype is None else repr(ctype[:80])
                raise ServeError(415, f"predict needs Content-Type: application/json (got {got})")
            request = strict_json(body)
            response, n = servable.predict(request)
            self._note = f" batch={n}"
            return 200, response
        if method != "GET":
            raise ServeError(405, f"{path} needs GET")
        return 200, servable.metadata() if tail == "/metadata" else servable.status()

    def _read_body(self, required: bool) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None and not required and "Transfer-Encoding" not in self.headers:
            return b""
        if length is None or not length.isdigit():
            self.close_connection = True
            raise ServeError(411, "a request body needs a Content-Length header")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # unread body: the connection cannot be reused
            raise ServeError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        try:
            body = self.rfile.read(int(length))
        except TimeoutError:
            self.close_connection = True
            raise ServeError(408, f"request body not received within {self.timeout:g} s") from None
        except ConnectionError:
            self.close_connection = True
            raise Aborted from None
        if len(body) < int(length):  # the client closed its side before sending it all
            self.close_connection = True
            raise Aborted
        return body

    def _send(self, status: int, payload: dict | tuple[bytes, str]) -> None:
        # A (bytes, content type) pair is sent as is: the metrics exposition.
        data, ctype = payload if isinstance(payload, tuple) else (json.dumps(payload, allow_nan=False).encode(),
                                                                  "application/json")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code="-", size="-"):
        pass  # _handle logs one line per request, with its duration

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with at most `threads` connections served at once: the next one
    waits in the listen queue until a thread is free (a read timeout frees it in time)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, threads: int = DEFAULT_THREADS):
        self._slots = threading.BoundedSemaphore(threads)
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_server(servable: Servable, host: str, port: int, metrics: bool = True,
                timeout_ms: int = DEFAULT_TIMEOUT_MS, threads: int = DEFAULT_THREADS) -> ThreadingHTTPServer:
    servable.metrics = Metrics(servable) if metrics else None
    handler = type("BoundHandler", (Handler,), {"servable": servable, "timeout": timeout_ms / 1000})
    try:
        server = Server((host, port), handler, threads)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_name", default=os.environ.get("MODEL_NAME", "fashion-mnist"))
    parser.add_argument("--model_base_path", default=None, help="directory of numeric version subdirectories")
    parser.add_argument("--rest_api_port", type=int, default=8501, help="0 picks a free port (printed at start)")
    parser.add_argument("--rest_api_host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--no_metrics", action="store_true", help=f"do not collect or serve metrics at {METRICS_PATH}")
    parser.add_argument("--rest_api_timeout_in_ms", type=int, default=DEFAULT_TIMEOUT_MS,
                        help="each read on a connection times out after this (default: 30000, as TF Serving)")
    parser.add_argument("--rest_api_num_threads", type=int, default=DEFAULT_THREADS,
                        help=f"connections served at once; more wait (default: {DEFAULT_THREADS})")
    args = parser.parse_args(argv)
    if args.rest_api_timeout_in_ms < 1 or args.rest_api_num_threads < 1:
        parser.error("--rest_api_timeout_in_ms and --rest_api_num_threads must be at least 1")
    base = args.model_base_path or os.path.join(os.environ.get("MODEL_BASE_PATH", "model"), args.model_name)
    try:
        servable = Servable(args.model_name, base)
        server = make_server(servable, args.rest_api_host, args.rest_api_port, metrics=not args.no_metrics,
                             timeout_ms=args.rest_api_timeout_in_ms, threads=args.rest_api_num_threads)
    except StartupError as exc:
        print(f"serve.py: error: {exc}", file=sys.stderr)
        return 1

    def stop(signum, frame):
        raise KeyboardInterrupt  # leaves serve_forever in the main thread

    signal.signal(signal.SIGTERM, stop)
    host, port = server.server_address[:2]
    print(
        f"serve.py: serving model '{servable.name}' version {servable.version} from {servable.path} "
        f"at http://{host}:{port}/v1/models/{servable.name} "
        f"(input '{servable.input_name}' {list(servable.input_shape)})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("serve.py: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
