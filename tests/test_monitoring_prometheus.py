"""The drift scenario with real parts: the example's train.py, eval.py (reference profile) and
serve.py, Debian's Prometheus scraping it every second with the example's scrape config, and
`ci-gen job monitor` reading Prometheus' query API, alerting through the loopback GitLab API.

One model, one service and one Prometheus for the module; traffic loops are bounded.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from ci_gen import cli
from gitlab_fake import PROJECT_ID, clean_env, gitlab_fake, job_env  # noqa: F401  (fixtures)
from test_monitoring_tfserving import tf_serving_endpoint, tf_serving_exposition

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fashion-mnist"
sys.path.insert(0, str(EXAMPLE))
import fmnist_data  # noqa: E402

MODEL = "fashion-mnist"
TFS_MODEL = "tfs-model"  # served by the TF Serving-format target only
N_TEST = 512
BATCH = 32


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout}\n{proc.stderr}"


def _started(cmd: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as fh:
        return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=fh, text=True)


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _wait(what: str, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A trained model and its reference profile, serve.py, and Prometheus scraping it every second."""
    work = tmp_path_factory.mktemp("monitoring")
    project = work / "project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("tests", "__pycache__", "model", "train_data"))
    fmnist_data.make_synthetic(project / "train_data", n_train=1000, n_test=N_TEST, seed=3)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["epochs"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    _run([sys.executable, "train.py"], project)
    _run([sys.executable, "eval.py"], project)  # writes model/eval/profile.json

    serve = _started([sys.executable, "serve.py", "--model_name", MODEL, "--model_base_path", "model/fashion-mnist",
                      "--rest_api_port", "0"], project, work / "serve.log")
    prometheus = tf_serving = None
    try:
        line = serve.stdout.readline()
        assert " at http://" in line, (line, (work / "serve.log").read_text())
        service = line.split(" at ", 1)[1].split("/v1/", 1)[0]
        # The example's own scrape config, pointed at this service and scraping every second.
        config = yaml.safe_load((EXAMPLE / "monitoring/prometheus.yml").read_text())
        config["global"]["scrape_interval"] = "1s"
        config["scrape_configs"][0]["static_configs"][0]["targets"] = [service.removeprefix("http://")]
        # A second target in TF Serving's own format (its model answers 10 more requests a scrape).
        tf_serving = tf_serving_endpoint(_growing_tf_serving(TFS_MODEL))
        config["scrape_configs"].append({
            "job_name": "tf-serving", "metrics_path": "/monitoring/prometheus/metrics",
            "static_configs": [{"targets": [tf_serving.url.split("/")[2]]}]})
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = _free_port()
        prometheus = _started(["prometheus", f"--config.file={work / 'prometheus.yml'}",
                               f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                              work, work / "prometheus.log")
        url = f"http://127.0.0.1:{port}"
        _wait("Prometheus to scrape the service",
              lambda: _query(url, f'up{{job="{MODEL}"}}') == 1.0, timeout=60)
        images, labels = fmnist_data.load_split(project / "train_data", "t10k")
        yield {"project": project, "service": service, "prometheus": url,
               "images": images.astype(np.float32) / 255.0, "labels": labels}
    finally:
        if tf_serving is not None:
            tf_serving.close()
        for proc in (prometheus, serve):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)


def _growing_tf_serving(model: str):
    scrapes = [0]

    def text() -> str:
        scrapes[0] += 1
        n = 10 * scrapes[0]
        return tf_serving_exposition(model, ok=n, failed=0, latencies_us=[2500.0] * n)

    return text


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _query(prometheus: str, promql: str) -> float | None:
    doc = _get_json(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    result = doc["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _send(stack: dict, images: np.ndarray) -> int:
    """Predict requests of BATCH images; returns the number of requests."""
    requests = 0
    for start in range(0, len(images), BATCH):
        body = json.dumps({"instances": images[start:start + BATCH].tolist()}).encode()
        req = urllib.request.Request(f"{stack['service']}/v1/models/{MODEL}:predict", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 200
        requests += 1
    return requests


def _scraped(stack: dict, requests: int) -> None:
    """Wait until Prometheus has scraped all `requests` predict requests so far."""
    promql = f'sum(serving_batch_size_count{{model="{MODEL}"}})'
    _wait(f"{requests} requests in Prometheus", lambda: (_query(stack["prometheus"], promql) or 0) >= requests)


def _monitor(stack: dict, capsys, window_since: float) -> tuple[int, str, str]:
    window = f"{math.ceil(time.time() - window_since) + 1}s"
    shutil.copy(stack["project"] / "model/eval/profile.json", "profile.json")  # a path relative to the job
    code = cli.main(["job", "monitor", "--reference", "profile.json",
                     "--model-name", MODEL, "--prometheus-url", stack["prometheus"], "--window", window,
                     "--min-samples", "200", "--out", "drift"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_normal_traffic_passes_then_drifted_traffic_opens_one_issue_and_one_retraining(
        stack, capsys, tmp_path, monkeypatch, job_env, gitlab_fake):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    sent = 0

    # Nothing served yet: an empty window is not judged and alerts nobody.
    code, out, _ = _monitor(stack, capsys, time.time() - 30)
    assert code == 4 and "0 predictions in the window" in out

    # The test split, as the reference saw it: no drift.
    start = time.time()
    sent += _send(stack, stack["images"])
    _scraped(stack, sent)
    code, out, err = _monitor(stack, capsys, start)
    report = json.loads((tmp_path / "drift/report.json").read_text())
    assert code == 0, (out, err)
    assert report["verdict"] == "stable" and report["samples"] >= 200
    assert all(s["psi"] < 0.1 for s in report["signals"]), report["signals"]
    assert gitlab_fake.seen == []

    # Inverted images of one class: bright where the reference is dark, one class predicted.
    time.sleep(2)  # the drifted window starts after the normal traffic's last scrape
    start = time.time()
    one_class = stack["images"][stack["labels"] == 0]
    drifted = np.tile(1.0 - one_class, (max(1, 256 // len(one_class) + 1), 1, 1))[:256]
    sent += _send(stack, drifted)
    _scraped(stack, sent)
    first = _monitor(stack, capsys, start)
    second = _monitor(stack, capsys, start)

    report = json.loads((tmp_path / "drift/report.json").read_text())
    psi = {s["name"]: s["psi"] for s in report["signals"]}
    assert first[0] == 3 and second[0] == 3, (first, second)
    assert psi["mean_intensity"] > 1.0 and psi["predicted_class"] > 0.2, psi
    assert "Prometheus at http://127.0.0.1" in report["source"]
    issues, pipelines = gitlab_fake.issues[PROJECT_ID], gitlab_fake.pipelines[PROJECT_ID]
    assert len(issues) == 1 and "created issue #1" in first[1] and "updated issue #1" in second[1]
    assert "drift found" in issues[0]["description"]
    assert len(pipelines) == 1
    assert pipelines[0]["variables"] == [{"variable_type": "env_var", "key": "CI_GEN_RETRAIN", "value": "1"}]


def test_buckets_that_differ_from_the_reference_are_one_line(stack, capsys, tmp_path, monkeypatch):
    """Prometheus has the histogram, but not with the reference's bounds: said, not a traceback."""
    monkeypatch.chdir(tmp_path)
    # Traffic of its own, scraped: the histogram has samples in the window whatever ran before.
    _scraped(stack, _send(stack, stack["images"][:BATCH * 2]))
    profile = json.loads((stack["project"] / "model/eval/profile.json").read_text())
    profile["signals"]["mean_intensity"]["le"] = [0.33, "+Inf"]  # not a bound serve.py exports
    profile["signals"]["mean_intensity"]["counts"] = [1, 1]
    (tmp_path / "profile.json").write_text(json.dumps(profile))

    code = cli.main(["job", "monitor", "--reference", "profile.json", "--model-name", MODEL,
                     "--prometheus-url", stack["prometheus"], "--window", "1h",
                     "--min-samples", "1"])

    out, err = capsys.readouterr()
    assert code == 1 and "has no bucket le=0.33 of the reference" in err and err.count("\n") == 1, (out, err)


def test_prometheus_with_only_tf_servings_metrics_for_the_model_says_what_they_show(
        stack, capsys, tmp_path, monkeypatch):
    """Prometheus scrapes TF Serving's own endpoint for this model, not serve.py's: one line
    naming it, with the requests and latency it does show, instead of "not enough traffic"."""
    monkeypatch.chdir(tmp_path)
    up = f'up{{job="tf-serving"}}'
    _wait("Prometheus to scrape the TF Serving target twice",
          lambda: (_query(stack["prometheus"], f"count_over_time({up}[1m])") or 0) >= 2)
    profile = json.loads((stack["project"] / "model/eval/profile.json").read_text())
    (tmp_path / "profile.json").write_text(json.dumps({**profile, "model": TFS_MODEL}))

    code = cli.main(["job", "monitor", "--reference", "profile.json", "--model-name", TFS_MODEL,
                     "--prometheus-url", stack["prometheus"], "--window", "5m"])

    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert f"Prometheus at {stack['prometheus']} has TensorFlow Serving's own metrics over the last 5m" in err
    assert re.search(rf"\({TFS_MODEL}: [1-9][0-9]* requests, 0\.0 % not OK, latency p50 [0-9.]+ ms", err), err
    assert "no input or prediction statistics, so drift cannot be judged" in err
    assert not (tmp_path / "drift").exists()
