"""What serve.py's Prometheus metrics cost per request (a script: it prints numbers, asserts nothing).

    .venv/bin/python benchmarks/serving_metrics.py [--requests 500]

Two serve.py processes serve the same exported model (an untrained copy of the example's CNN:
latency does not depend on the weights), one with metrics and one with --no_metrics. Requests
alternate between the two, one by one, over one keep-alive connection each, so background
load on a shared machine hits both alike. Prints p50/p99 latency at batch 1 and 32 with
metrics on and off and the difference (also as the median of back-to-back pair differences,
which cancels load that comes and goes); then the metrics code alone per request, timed in
process (what the difference should be without noise), and the cost of one scrape.
All loops are bounded; everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
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


def start_server(model_dir: Path, log: Path, metrics: bool) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "serve.py", "--model_name", "fashion-mnist", "--model_base_path", str(model_dir),
           "--rest_api_port", "0"] + ([] if metrics else ["--no_metrics"])
    with open(log, "w") as log_file:
        proc = subprocess.Popen(cmd, cwd=EXAMPLE, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                stdout=subprocess.PIPE, stderr=log_file, text=True)
    line = proc.stdout.readline()
    if " at http://" not in line:
        proc.kill()
        raise SystemExit(f"serve.py did not start: {line!r}; log: {log.read_text()[-500:]}")
    return proc, int(line.split(" at http://127.0.0.1:", 1)[1].split("/", 1)[0])


def timed(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
        resp = conn.getresponse()
        data = resp.read()
        out.append(time.perf_counter() - t)
        if resp.status != 200:
            raise SystemExit(f"serve.py answered {resp.status}: {data[:200]!r}")
    return out


def p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="timed requests per batch size and setting (default: 500)")
    args = parser.parse_args()
    fmnist_data.import_tensorflow()
    with tempfile.TemporaryDirectory(prefix="fmnist-metrics-bench-") as tmp:
        return run(Path(tmp), args)


def run(work: Path, args: argparse.Namespace) -> int:
    model = train.build_model()
    model.export(str(work / "model" / "1"), verbose=False)
    images, _ = fmnist_data.synthetic_split(64, seed=1)
    x = train.to_float(images)
    servers = {name: start_server(work / "model", work / f"{name}.log", name == "on") for name in ("on", "off")}
    try:
        conns = {name: http.client.HTTPConnection("127.0.0.1", port, timeout=60) for name, (_, port) in servers.items()}
        path = "/v1/models/fashion-mnist:predict"
        print(f"# serve.py with and without metrics: {args.requests} requests per row, alternating "
              f"({os.cpu_count()} CPUs)")
        print(f"{'batch':>5} {'metrics':>8} {'p50 ms':>8} {'p99 ms':>8} {'p50 added':>10} {'p99 added':>10} {'paired':>8}")
        for batch in (1, 32):
            body = json.dumps({"instances": x[:batch].tolist()}).encode()
            for conn in conns.values():
                timed(conn, "POST", path, body, 20)  # warm-up: first calls trace the graph
            samples: dict[str, list[float]] = {"off": [], "on": []}
            for i in range(args.requests):
                for name in (("off", "on") if i % 2 else ("on", "off")):
                    samples[name] += timed(conns[name], "POST", path, body, 1)
            off50, off99 = p50_p99(samples["off"])
            # Median of on-minus-off over back-to-back pairs: load that comes and goes cancels out.
            paired = statistics.median(a - b for a, b in zip(samples["on"], samples["off"]))
            for name in ("off", "on"):
                p50, p99 = p50_p99(samples[name])
                added = "" if name == "off" else (f"{(p50 / off50 - 1) * 100:+9.1f}% {(p99 / off99 - 1) * 100:+9.1f}% "
                                                  f"{paired / off50 * 100:+7.1f}%")
                print(f"{batch:>5} {name:>8} {p50 * 1e3:8.2f} {p99 * 1e3:8.2f} {added}")
        in_process(work / "model", x)
        scrape = timed(conns["on"], "GET", "/monitoring/prometheus/metrics", None, 50)
        size = len(urlopen_text(servers["on"][1]))
        print(f"scrape of /monitoring/prometheus/metrics: p50 {statistics.median(scrape) * 1e3:.2f} ms, {size} bytes")
        for conn in conns.values():
            conn.close()
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    return 0


def in_process(model_dir: Path, x: np.ndarray, n: int = 2000) -> None:
    """The metrics code of one request (serve.Metrics), without HTTP, TensorFlow or noise."""
    import serve

    servable = serve.Servable("fashion-mnist", model_dir)
    metrics = serve.Metrics(servable)
    for batch in (1, 32):
        xb = x[:batch]
        outputs = servable._fn(images=servable._tf.constant(xb))
        results = {k: v.numpy() for k, v in outputs.items()}
        t = time.perf_counter()
        for _ in range(n):
            metrics.observe_batch(xb, results)
            metrics.observe_request(200, 0.002)
        print(f"metrics code per request, in process, batch {batch:>2}: {(time.perf_counter() - t) / n * 1e6:6.1f} us")


def urlopen_text(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/monitoring/prometheus/metrics")
    data = conn.getresponse().read()
    conn.close()
    return data


if __name__ == "__main__":
    sys.exit(main())
