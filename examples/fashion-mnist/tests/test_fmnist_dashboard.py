"""The monitoring files the example ships: the Grafana dashboard is what dashboard.py generates,
and its queries and the scrape config name the metrics serve.py exports."""

from __future__ import annotations

import json
import re
import sys

import yaml

from fmnist_testlib import EXAMPLE_DIR

sys.path.insert(0, str(EXAMPLE_DIR / "monitoring"))
import dashboard  # noqa: E402
import fmnist_profile  # noqa: E402

EXPORTED = {fmnist_profile.REQUESTS + "_total", fmnist_profile.PREDICTED_CLASS + "_total",
            *(f"{m}_{s}" for m in (fmnist_profile.LATENCY, fmnist_profile.BATCH_SIZE, fmnist_profile.MEAN_INTENSITY)
              for s in ("bucket", "sum", "count"))}


def test_checked_in_dashboard_is_the_generated_one():
    assert (EXAMPLE_DIR / "monitoring/grafana-dashboard.json").read_text() == dashboard.render()
    assert dashboard.main(["--check"]) == 0


def test_every_query_names_a_metric_serve_py_exports():
    doc = json.loads(dashboard.render())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    names = {n for e in exprs for n in re.findall(r"\b(serving_[a-z_]+)\b", e)}
    assert names and names <= EXPORTED, names - EXPORTED
    assert len({p["id"] for p in doc["panels"]}) == len(doc["panels"])


def test_scrape_config_reads_tf_servings_metrics_path():
    config = yaml.safe_load((EXAMPLE_DIR / "monitoring/prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/monitoring/prometheus/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8501"]
