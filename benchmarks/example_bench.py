"""Benchmark of examples/fashion-mnist (a script, not a test: it prints numbers, asserts nothing).

    .venv/bin/python benchmarks/example_bench.py [--requests 200] [--epochs 3]

Prints:
- seconds per training epoch on 10,000 generated 28x28 images (default params, batch 128), with
  and without TensorFlow op determinism (train.py enables it);
- latency p50/p99 and throughput for batch 1 and batch 32 through serve.py (HTTP + JSON, one
  keep-alive connection on 127.0.0.1) next to the in-process calls on the same inputs: the Keras
  `model(x)` and the exported SavedModel's serving signature (what serve.py runs), with the ratios;
- peak memory (ru_maxrss) of this process and of the serve.py process.
All loops are bounded; everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fashion-mnist"
sys.path.insert(0, str(EXAMPLE))

import numpy as np  # noqa: E402

import fmnist_data  # noqa: E402
import train  # noqa: E402


def epoch_seconds(x, y, params: dict, epochs: int) -> list[float]:
    import keras

    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    model = train.build_model(params["width"], params["dense_units"], params["dropout"], params["learning_rate"])
    model.fit(x, y, epochs=epochs, batch_size=params["batch_size"], shuffle=True, verbose=0, callbacks=[Timer()])
    return times, model


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return p50, p99


def time_calls(fn, n: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def start_server(model_dir: Path, log: Path) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "w") as log_file:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "serve.py", "--model_name", "fashion-mnist", "--model_base_path", str(model_dir), "--rest_api_port", "0"],
            cwd=EXAMPLE,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    line = proc.stdout.readline()  # serve.py prints its address once the model is loaded
    if " at http://" not in line:
        proc.kill()
        raise SystemExit(f"serve.py did not start: {line!r}; log: {log.read_text()[-500:]}")
    port = int(line.split(" at http://127.0.0.1:", 1)[1].split("/", 1)[0])
    return proc, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed calls per batch size (default: 200)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per training measurement (default: 3)")
    args = parser.parse_args()

    import tensorflow as tf

    print(f"# fashion-mnist example benchmark  ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"TF {tf.__version__}, Python {platform.python_version()})")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-") as tmp:
        return run(Path(tmp), args, tf)


def run(work: Path, args: argparse.Namespace, tf) -> int:
    fmnist_data.make_synthetic(work / "data", n_train=10000, n_test=1000, seed=0)
    images, labels = fmnist_data.load_split(work / "data", "train")
    x, y = train.to_float(images), labels.astype(np.int64)
    params = train.load_params(EXAMPLE / "params.yaml")

    print("\n## training: 10,000 images, batch %d, width %d" % (params["batch_size"], params["width"]))
    import keras

    keras.utils.set_random_seed(params["seed"])
    epoch_seconds(x[:2000], y[:2000], params, 1)  # warm-up (one-time library initialisation), not reported
    free, _ = epoch_seconds(x, y, params, args.epochs)
    train.set_determinism(params["seed"])
    fixed, model = epoch_seconds(x, y, params, args.epochs)
    for label, times in (("default ops", free), ("op determinism (train.py)", fixed)):
        rest = times[1:] or times
        print(f"{label:<28} first epoch {times[0]:6.2f} s   later epochs {statistics.median(rest):6.2f} s/epoch (median of {len(rest)})")

    export = work / "model" / "fashion-mnist"
    model.export(str(export / "1"), verbose=False)
    loaded = tf.saved_model.load(str(export / "1"))
    signature = loaded.signatures["serving_default"]

    print(f"\n## serving: {args.requests} sequential calls per row, same inputs for every path")
    print(f"{'path':<34} {'batch':>5} {'p50 ms':>8} {'p99 ms':>8} {'images/s':>10} {'p50 / keras':>12} {'p50 / savedmodel':>17}")
    test_x = train.to_float(fmnist_data.load_split(work / "data", "t10k")[0])
    server, port = start_server(export, work / "serve.log")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for batch in (1, 32):
            xb = test_x[:batch]
            tensor = tf.constant(xb)
            body = json.dumps({"instances": xb.tolist()}).encode()

            def over_http():
                conn.request("POST", "/v1/models/fashion-mnist:predict", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    raise SystemExit(f"serve.py answered {resp.status}: {data[:200]!r}")
                return data

            answer = np.asarray(json.loads(over_http())["predictions"])
            direct = signature(images=tensor)["output_0"].numpy()
            assert np.allclose(answer, direct, atol=1e-6), "served and in-process answers differ"

            rows = {
                "in-process keras model(x)": time_calls(lambda: model(tensor, training=False), args.requests),
                "in-process SavedModel signature": time_calls(lambda: signature(images=tensor), args.requests),
                "serve.py HTTP+JSON (body prebuilt)": time_calls(over_http, args.requests),
            }
            keras_p50 = percentiles(rows["in-process keras model(x)"])[0]
            sm_p50 = percentiles(rows["in-process SavedModel signature"])[0]
            for name, samples in rows.items():
                p50, p99 = percentiles(samples)
                throughput = batch * len(samples) / sum(samples)
                ratios = f"{p50 / keras_p50:11.1f}x {p50 / sm_p50:16.1f}x"
                print(f"{name:<34} {batch:>5} {p50 * 1e3:8.2f} {p99 * 1e3:8.2f} {throughput:10.0f} {ratios}")
            t = time.perf_counter()
            json.dumps({"instances": np.round(xb, 5).tolist()})
            print(f"{'  (client-side JSON encoding, once)':<34} {batch:>5} {(time.perf_counter() - t) * 1e3:8.2f}")
        conn.close()
    finally:
        server.terminate()
        server.wait(timeout=30)

    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print("\n## peak memory (ru_maxrss)")
    print(f"benchmark process (training + in-process inference): {self_peak:7.0f} MiB")
    print(f"serve.py process:                                    {child_peak:7.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
