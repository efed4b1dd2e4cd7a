"""The `monitor` job as one function: read the reference, read the live window, judge, report, alert.

Exit codes (also in `ci-gen job monitor --help` and the README):
    0  no drift: every signal's PSI is at or below its threshold
    1  cannot judge: reference missing or invalid, Prometheus or the service unreachable, only
       TensorFlow Serving's own metrics (`tfserving`), a GitLab API failure (one line on stderr;
       no issue, no pipeline)
    3  drift found: report written; issue opened or updated, retraining started (when allowed)
    4  not enough traffic in the window (fewer than min-samples predictions): report written,
       nothing judged, no alert
Nothing is written before every input has been read, so a failed run leaves no half report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ci_gen.errors import CiGenError
from ci_gen.monitoring import drift, live, report as reports
from ci_gen.monitoring.reference import load_reference

EXIT_STABLE, EXIT_DRIFT, EXIT_INSUFFICIENT = 0, 3, 4
EXIT_CODES = {reports.STABLE: EXIT_STABLE, reports.DRIFT: EXIT_DRIFT, reports.INSUFFICIENT: EXIT_INSUFFICIENT}
METRICS_PATH = "/monitoring/prometheus/metrics"  # TF Serving's path, and the example's serve.py


@dataclass
class MonitorOptions:
    reference: Path
    model: str
    window: str = "1d"
    prometheus_url: str = ""   # "" : scrape metrics_url directly
    metrics_url: str = ""      # "" : the environment's current deployment on this host
    environment: str = "production"
    threshold: float = drift.DEFAULT_THRESHOLD
    signal_thresholds: dict[str, str] = field(default_factory=dict)
    min_samples: int = 100
    label: str = "model-drift"
    retrain: bool = True
    ref: str = "main"
    out_dir: Path = Path("drift")


def monitor(opts: MonitorOptions, env: Mapping[str, str] | None = None,
            say: Callable[[str], None] = print, show: Callable[[str], None] = print) -> int:
    """Judge the window; `say` gets status lines, `show` the report's summary. Returns the exit code."""
    env = os.environ if env is None else env
    reference = load_reference(opts.reference)
    if reference.model and reference.model != opts.model:
        raise CiGenError(f"reference profile {opts.reference} is for model {reference.model!r}, "
                         f"not {opts.model!r}")
    thresholds = drift.thresholds_for(reference, opts.threshold, opts.signal_thresholds)
    source = make_source(opts, env)
    results = [drift.compare(s, source.counts(s, opts.model), thresholds[s.name], source.description)
               for s in reference.signals]
    report = reports.DriftReport(opts.model, source.description, str(opts.reference), reference.samples,
                                 opts.min_samples, results)
    paths = reports.write(report, opts.out_dir)
    for line in report.markdown(plot=None).split("\n\n<details>")[0].splitlines():
        show(line)
    say(f"report: {paths['markdown']}, {paths['json']}, {paths['plot']}")
    verdict = report.verdict
    if verdict == reports.STABLE:
        say("no drift: every signal is within its threshold")
    elif verdict == reports.INSUFFICIENT:
        say(f"not enough traffic to judge: {report.samples:.0f} predictions in the window, "
            f"{opts.min_samples} needed (exit {EXIT_INSUFFICIENT}); no alert")
    else:
        say(f"drift in {', '.join(report.drifted)}")
        from ci_gen.monitoring.alert import raise_alert

        raise_alert(report, paths["plot"], label=opts.label, retrain=opts.retrain, ref=opts.ref, env=env, say=say)
    return EXIT_CODES[verdict]


def make_source(opts: MonitorOptions, env: Mapping[str, str]) -> live.Source:
    if opts.prometheus_url:
        return live.PrometheusSource(opts.prometheus_url, opts.window)
    return live.ScrapeSource(opts.metrics_url or _deployed_metrics_url(opts.environment, env))


def _deployed_metrics_url(environment: str, env: Mapping[str, str]) -> str:
    """The metrics endpoint of the environment's current release on this host (deploy state)."""
    from ci_gen.deploy.state import env_dir, read_release

    current = env_dir(environment, dict(env)) / "current.json"
    release = read_release(current)
    if release is None or not release.url:
        raise CiGenError(f"nothing is deployed to environment {environment!r} on this host ({current} "
                         "not found): set the metrics-url or prometheus-url input")
    return release.url.rstrip("/") + METRICS_PATH
