"""Send random test images to a served model (serve.py or tensorflow/serving) and check the answers.

    python inference_client.py --url http://127.0.0.1:8501 --model-name fashion-mnist --samples 20 --min-accuracy 0.8

Waits (bounded, exponential backoff) until GET /v1/models/NAME reports a version AVAILABLE,
sends the N images in one `:predict` request ({"instances": [28x28 floats in [0, 1], ...]}),
prints each prediction next to the true label and then the sample accuracy. `--invert` sends
the images inverted (1 - pixel): traffic the model never saw, to rehearse the drift monitor.
Exit 0 on success; 1 with one clear line if the service is unreachable, answers something that
is not a valid prediction, or the sample accuracy is below --min-accuracy.

Needs only numpy and the standard library (no TensorFlow), so the inference job stays light.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

import fmnist_data


class ClientError(RuntimeError):
    """A failure reported as one line and exit code 1."""


def _request(url: str, timeout: float, payload: dict | None = None) -> tuple[int, bytes]:
    """(HTTP status, body); HTTP error statuses are returned, connection problems raised."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def _json(body: bytes, what: str) -> object:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        snippet = body[:80].decode("utf-8", "replace").replace("\n", " ")
        raise ClientError(f"{what} is not JSON: {snippet!r}") from None


def wait_until_available(url: str, model: str, timeout: float, first_delay: float = 0.25, max_delay: float = 2.0) -> str:
    """Poll GET /v1/models/MODEL until a version is AVAILABLE; returns that version.

    Backoff doubles from first_delay up to max_delay; gives up after `timeout` seconds in all.
    """
    status_url = f"{url}/v1/models/{model}"
    deadline = time.monotonic() + timeout
    delay, attempts, last = first_delay, 0, "no answer yet"
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        try:
            code, body = _request(status_url, timeout=max(0.1, min(remaining, 10.0)))
            if code != 200:
                # TF Serving answers 404 until the model's first version is loaded: keep waiting.
                last = f"HTTP {code} {body[:120].decode('utf-8', 'replace')!r}"
            else:
                doc = _json(body, f"status from {status_url}")
                states = doc.get("model_version_status") if isinstance(doc, dict) else None
                if not isinstance(states, list) or not all(isinstance(s, dict) for s in states):
                    raise ClientError(f"status from {status_url} has no 'model_version_status' list: {str(doc)[:80]!r}")
                for state in states:
                    if state.get("state") == "AVAILABLE":
                        return str(state.get("version"))
                last = "state " + ", ".join(str(s.get("state")) for s in states) if states else "no version loaded"
        except (urllib.error.URLError, http.client.HTTPException, socket.timeout, ConnectionError, OSError) as exc:
            last = _describe(exc)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ClientError(f"{status_url} not available after {timeout:g}s ({attempts} attempts, last: {last})")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, max_delay)


def predict(url: str, model: str, images: np.ndarray, timeout: float) -> np.ndarray:
    """Class probabilities (n, 10) for float images (n, 28, 28), checked for shape and sanity."""
    predict_url = f"{url}/v1/models/{model}:predict"
    payload = {"instances": np.round(images, 5).tolist()}  # 5 decimals: exact enough for bytes/255
    try:
        code, body = _request(predict_url, timeout, payload)
    except (urllib.error.URLError, http.client.HTTPException, socket.timeout, ConnectionError, OSError) as exc:
        raise ClientError(f"{predict_url}: request failed ({_describe(exc)})") from None
    doc = _json(body, f"answer from {predict_url} (HTTP {code})")
    if code != 200:
        error = doc.get("error") if isinstance(doc, dict) else None
        raise ClientError(f"{predict_url}: HTTP {code}: {error or str(doc)[:120]}")
    predictions = doc.get("predictions") if isinstance(doc, dict) else None
    if predictions is None:
        raise ClientError(f"answer from {predict_url} has no 'predictions': {str(doc)[:120]!r}")
    try:
        probs = np.asarray(predictions, dtype=np.float64)
    except (ValueError, TypeError):
        raise ClientError(f"'predictions' from {predict_url} are not a numeric matrix") from None
    expected = (len(images), fmnist_data.NUM_CLASSES)
    if probs.shape != expected:
        raise ClientError(f"'predictions' from {predict_url} have shape {list(probs.shape)}, expected {list(expected)}")
    if not np.all(np.isfinite(probs)):
        raise ClientError(f"'predictions' from {predict_url} contain NaN or infinite values")
    return probs


def sample(data_dir: str, n: int, seed: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices, float images in [0, 1], labels) of n random test images."""
    images, labels = fmnist_data.load_split(data_dir, "t10k")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(images), size=min(n, len(images)), replace=False)
    return idx, images[idx].astype(np.float32) / 255.0, labels[idx].astype(np.int64)


def run(args: argparse.Namespace) -> float:
    url = args.url.rstrip("/")
    idx, images, labels = sample(args.data_dir, args.samples, args.seed)
    if args.invert:
        images = 1.0 - images
    started = time.monotonic()
    version = wait_until_available(url, args.model_name, args.timeout)
    print(f"{url}: model '{args.model_name}' version {version} is AVAILABLE")
    probs = predict(url, args.model_name, images, timeout=max(args.timeout - (time.monotonic() - started), 10.0))
    predicted = probs.argmax(axis=1)
    names = fmnist_data.CLASS_NAMES
    print(f"{'#':>3}  {'test index':>10}  {'true':<12}  {'predicted':<12}  {'p':>5}")
    for i, (k, truth, guess) in enumerate(zip(idx, labels, predicted), start=1):
        mark = "ok" if truth == guess else "WRONG"
        print(f"{i:>3}  {k:>10}  {names[truth]:<12}  {names[guess]:<12}  {probs[i - 1, guess]:5.3f}  {mark}")
    correct = int((predicted == labels).sum())
    accuracy = correct / len(labels)
    print(f"sample accuracy: {accuracy:.3f} ({correct}/{len(labels)})")
    if accuracy < args.min_accuracy:
        raise ClientError(f"sample accuracy {accuracy:.3f} is below --min-accuracy {args.min_accuracy:g}")
    return accuracy


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="service root, e.g. http://127.0.0.1:8501")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--samples", type=_positive(int), default=20, help="random test images to send (default: 20)")
    parser.add_argument("--min-accuracy", type=_fraction, default=0.0, help="fail below this sample accuracy (default: 0)")
    parser.add_argument("--data-dir", default="train_data", help="directory with the t10k IDX files (default: train_data)")
    parser.add_argument("--seed", type=int, default=None, help="sample seed (default: a new sample each run)")
    parser.add_argument("--timeout", type=_positive(float), default=60.0, help="seconds to wait for the service (default: 60)")
    parser.add_argument("--invert", action="store_true",
                        help="send the images inverted (1 - pixel): drifted traffic, for the monitor")
    args = parser.parse_args(argv)
    if not Path(args.data_dir).is_dir():
        print(f"inference_client.py: error: {args.data_dir}: no such data directory (dvc pull train_data.dvc?)", file=sys.stderr)
        return 1
    try:
        run(args)
    except (ClientError, fmnist_data.DataError) as exc:
        print(f"inference_client.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
