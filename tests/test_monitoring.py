"""`ci-gen job monitor` against a real metrics endpoint (prometheus-client's own exposition on
127.0.0.1) and the loopback GitLab API: verdicts and exit codes, the report files, one issue
per drift episode, one retraining pipeline at a time, and one clear line for each bad input.
The scenario with a real Prometheus and the example's serve.py is test_monitoring_prometheus.py.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from ci_gen import cli
from ci_gen.monitoring import drift
from ci_gen.monitoring.reference import ReferenceError, load_reference
from gitlab_fake import PROJECT_ID, clean_env, gitlab_fake, job_env  # noqa: F401  (fixtures)

MODEL = "fashion-mnist"
BOUNDS = (0.25, 0.5, 0.75)
CLASSES = ("shirt", "shoe", "bag")
REF_INTENSITY = [10, 60, 25, 5, 0]  # per bucket, +Inf last
REF_CLASSES = [40, 30, 30]


def profile(**change) -> dict:
    doc = {"format": "ci-gen/profile/v1", "model": MODEL, "samples": 100, "signals": {
        "mean_intensity": {"kind": "histogram", "metric": "serving_input_mean_intensity",
                           "le": [*BOUNDS, 1.0, "+Inf"], "counts": REF_INTENSITY},
        "predicted_class": {"kind": "categorical", "metric": "serving_predicted_class_total",
                            "label": "class", "categories": list(CLASSES), "counts": REF_CLASSES}}}
    doc.update(change)
    return doc


class MetricsEndpoint:
    """A loopback /monitoring/prometheus/metrics answering each GET with `body()`."""

    def __init__(self, body: Callable[[], bytes]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                data = body()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/monitoring/prometheus/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Service(MetricsEndpoint):
    """A metrics endpoint like serve.py's: prometheus-client's exposition of a registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.intensity = Histogram("serving_input_mean_intensity", "mean intensity", ["model", "version"],
                                   buckets=(*BOUNDS, 1.0), registry=self.registry).labels(MODEL, "1")
        self.classes = Counter("serving_predicted_class", "classes", ["model", "version", "class"],
                               registry=self.registry)
        for name in CLASSES:  # series from the start, as serve.py has them
            self.classes.labels(MODEL, "1", name)
        # Another model's series on the same endpoint must not count.
        Histogram("serving_input_mean_intensity_other", "x", registry=self.registry)
        super().__init__(lambda: generate_latest(self.registry))

    def traffic(self, intensities: list[float], classes: list[str]) -> None:
        for value in intensities:
            self.intensity.observe(value)
        for name in classes:
            self.classes.labels(MODEL, "1", name).inc()

    def normal(self, n: int) -> None:
        """n predictions spread like the reference (one value per bucket midpoint)."""
        mids = (0.1, 0.4, 0.6, 0.9)
        values = [m for m, c in zip(mids, REF_INTENSITY) for _ in range(round(c * n / 100))]
        names = [c for c, k in zip(CLASSES, REF_CLASSES) for _ in range(round(k * n / 100))]
        self.traffic(values, names)


@pytest.fixture
def service():
    svc = Service()
    yield svc
    svc.server.shutdown()
    svc.server.server_close()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profile.json").write_text(json.dumps(profile()))
    return tmp_path


def monitor(service_url: str, capsys, *extra: str) -> tuple[int, str, str]:
    code = cli.main(["job", "monitor", "--reference", "profile.json", "--model-name", MODEL,
                     "--metrics-url", service_url, "--min-samples", "50", *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


# --- pieces ---------------------------------------------------------------------------

def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift():
    assert drift.psi((10, 20, 30), (1, 2, 3)) == pytest.approx(0.0)
    small = drift.psi((50, 50), (55, 45))
    large = drift.psi((50, 50), (90, 10))
    assert 0 < small < 0.1 < 0.25 < large
    # (0.55-0.5)ln(1.1) + (0.45-0.5)ln(0.9)
    assert small == pytest.approx(0.05 * math.log(1.1) - 0.05 * math.log(0.9))
    assert math.isfinite(drift.psi((10, 0), (0, 10)))  # empty bins are floored, not infinite


@pytest.mark.parametrize(("overrides", "default", "message"), [
    ({"colour": "0.3"}, 0.2, "unknown signal 'colour'"),
    ({"predicted_class": "lots"}, 0.2, "must be a number"),
    ({}, 0.0, "above 0 and at most 10"),
    ({"mean_intensity": "11"}, 0.2, "above 0 and at most 10"),
])
def test_thresholds_are_checked(workdir, overrides, default, message):
    with pytest.raises(Exception, match=message):
        drift.thresholds_for(load_reference("profile.json"), default, overrides)


BAD_PROFILES = {
    "not JSON": ("{", "not readable JSON"),
    "other format": (json.dumps(profile(format="v0")), "format must be 'ci-gen/profile/v1'"),
    "PromQL in a metric name": (json.dumps(profile(signals={"x": {**profile()["signals"]["mean_intensity"],
                                                                    "metric": 'm{a="b"}'}})), "Prometheus metric name"),
    "counts of another length": (json.dumps(profile(signals={"x": {**profile()["signals"]["predicted_class"],
                                                                     "counts": [1, 2]}})), "3 non-negative numbers"),
    "bounds not increasing": (json.dumps(profile(signals={"x": {**profile()["signals"]["mean_intensity"],
                                                                  "le": [0.5, 0.25, 0.75, 1.0, "+Inf"]}})), "must increase"),
    "all zero": (json.dumps(profile(signals={"x": {**profile()["signals"]["predicted_class"],
                                                     "counts": [0, 0, 0]}})), "all counts are 0"),
}


@pytest.mark.parametrize("case", list(BAD_PROFILES))
def test_a_bad_reference_is_one_line_and_exit_1(workdir, service, capsys, case):
    text, message = BAD_PROFILES[case]
    (workdir / "profile.json").write_text(text)
    service.normal(100)

    code, out, err = monitor(service.url, capsys)

    assert code == 1 and message in err and err.count("\n") == 1
    assert not (workdir / "drift").exists()


def test_a_missing_reference_says_how_to_get_it(workdir, service, capsys):
    (workdir / "profile.json").unlink()

    code, _, err = monitor(service.url, capsys)

    assert code == 1 and "reference profile profile.json not found" in err and "dvc pull profile.json" in err


# --- verdicts -------------------------------------------------------------------------

def test_traffic_like_the_reference_passes_quietly(workdir, service, capsys, clean_env):  # noqa: F811
    service.normal(200)

    code, out, err = monitor(service.url, capsys)

    report = json.loads((workdir / "drift/report.json").read_text())
    assert code == 0 and err == "" and report["verdict"] == "stable"
    assert report["samples"] == 200 and [s["psi"] for s in report["signals"]] == [0.0, 0.0]
    assert "no drift" in out and "| mean_intensity | 0.000 | 0.2 | ok |" in out
    assert (workdir / "drift/drift.png").read_bytes().startswith(b"\x89PNG")
    assert "![reference vs live](drift.png)" in (workdir / "drift/report.md").read_text()


def test_drift_without_a_gitlab_token_writes_the_report_and_says_why_no_issue(workdir, service, capsys,
                                                                             clean_env):  # noqa: F811
    service.traffic([0.9] * 100, ["bag"] * 100)  # bright images, one class

    code, out, err = monitor(service.url, capsys, "--signal-thresholds", "predicted_class=10")

    report = json.loads((workdir / "drift/report.json").read_text())
    assert code == 3 and report["verdict"] == "drift"
    psi = {s["name"]: s for s in report["signals"]}
    assert psi["mean_intensity"]["drifted"] and psi["mean_intensity"]["psi"] > 1
    assert not psi["predicted_class"]["drifted"] and psi["predicted_class"]["threshold"] == 10
    assert "drift in mean_intensity" in out and "no GitLab token" in out
    # What a job with a token does instead, in so many words (a local `ci-gen run --schedule`).
    assert ('a GitLab job with a token opens or updates the issue "Model drift: fashion-mnist" (label '
            "model-drift) and starts a pipeline on main with CI_GEN_RETRAIN=1; here the report stays") in out


def test_too_little_traffic_is_not_judged(workdir, service, capsys, job_env, gitlab_fake):  # noqa: F811
    service.traffic([0.9] * 10, ["bag"] * 10)

    code, out, _ = monitor(service.url, capsys)

    assert code == 4 and "not enough traffic to judge: 10 predictions in the window, 50 needed" in out
    assert "**drift**" not in out and "| mean_intensity |" in out and "not judged" in out
    assert json.loads((workdir / "drift/report.json").read_text())["verdict"] == "insufficient"
    assert gitlab_fake.seen == []  # no alert


@pytest.mark.parametrize("flag", ["--metrics-url", "--prometheus-url"])
def test_an_unreachable_source_is_one_line_and_no_report(workdir, capsys, flag):
    code = cli.main(["job", "monitor", "--reference", "profile.json", "--model-name", MODEL,
                     flag, "http://127.0.0.1:9/x"])
    err = capsys.readouterr().err

    assert code == 1 and err.startswith("ci-gen: error: cannot reach") and err.count("\n") == 1
    assert "connection refused" in err.lower() or "refused" in err.lower()
    assert not (workdir / "drift").exists()


@pytest.mark.parametrize(("flag", "value"), [("--window", "1 day"), ("--window", "0h"), ("--threshold", "high"),
                                             ("--min-samples", "0"), ("--issue-label", "a b"),
                                             ("--model-name", 'x"}')])
def test_bad_flags_are_usage_errors(workdir, capsys, flag, value):
    code = cli.main(["job", "monitor", "--reference", "profile.json", "--model-name", MODEL, flag, value])

    assert code == 2 and flag in capsys.readouterr().err


def test_auto_without_a_deployment_names_the_inputs_to_set(workdir, capsys, monkeypatch):
    monkeypatch.setenv("CI_GEN_STATE_DIR", str(workdir / "state"))

    code = cli.main(["job", "monitor", "--reference", "profile.json", "--model-name", MODEL])

    err = capsys.readouterr().err
    assert code == 1 and "nothing is deployed to environment 'production'" in err and "metrics-url" in err


# --- alerting -------------------------------------------------------------------------

def test_drift_opens_one_issue_updates_it_and_keeps_one_retraining_pipeline_running(
        workdir, service, capsys, job_env, gitlab_fake):  # noqa: F811
    service.traffic([0.9] * 100, ["bag"] * 100)

    first = monitor(service.url, capsys)
    second = monitor(service.url, capsys)

    issues, pipelines = gitlab_fake.issues[PROJECT_ID], gitlab_fake.pipelines[PROJECT_ID]
    assert first[0] == second[0] == 3
    assert len(issues) == 1 and issues[0]["labels"] == ["model-drift"] and issues[0]["title"] == f"Model drift: {MODEL}"
    assert "created issue #1" in first[1] and "updated issue #1" in second[1]
    # The issue is written before the pipeline is asked for, then names it; the second run
    # finds it still running and writes the issue once.
    assert len(gitlab_fake.requests_to("PUT", r"/issues/1$")) == 2
    assert len(pipelines) == 1 and pipelines[0]["ref"] == "main" and pipelines[0]["source"] == "api"
    assert pipelines[0]["variables"] == [{"variable_type": "env_var", "key": "CI_GEN_RETRAIN", "value": "1"}]
    assert f"retraining pipeline #{pipelines[0]['id']} is still created: not starting another" in second[1]
    body = issues[0]["description"]
    assert body.startswith(f"<!-- ci-gen:monitor model={MODEL} -->") and "drift found" in body
    assert "](/uploads/" in body and f"pipeline #{pipelines[0]['id']}" in body
    assert len(gitlab_fake.uploads) == 2 and gitlab_fake.uploads[0]["filename"] == "drift.png"

    # The retraining finished, drift goes on: a new retraining, still the same issue.
    pipelines[0]["status"] = "success"
    third = monitor(service.url, capsys)
    assert third[0] == 3 and len(pipelines) == 2 and len(issues) == 1
    # Someone closed the issue: the next drift is a new episode with a new issue.
    issues[0]["state"] = "closed"
    fourth = monitor(service.url, capsys, "--retrain", "false")
    assert fourth[0] == 3 and len(issues) == 2 and "created issue #2" in fourth[1] and len(pipelines) == 2


def test_a_gitlab_failure_is_one_line_after_the_report(workdir, service, capsys, job_env, gitlab_fake):  # noqa: F811
    service.traffic([0.9] * 100, ["bag"] * 100)
    gitlab_fake.fail(times=10, status=403, method="POST", path_re=r"/pipeline$")

    code, _, err = monitor(service.url, capsys)

    assert code == 1 and "cannot create a pipeline on main" in err and "403" in err and err.count("\n") == 1
    assert json.loads((workdir / "drift/report.json").read_text())["verdict"] == "drift"
    # The drift is on record all the same: the issue comes first and says what failed.
    (issue,) = gitlab_fake.issues[PROJECT_ID]
    assert "Retraining: **not started**: cannot create a pipeline on main" in issue["description"]
    assert gitlab_fake.token not in err and gitlab_fake.token not in issue["description"]


@pytest.mark.parametrize("existing", [False, True])
def test_refused_pipeline_variables_still_record_the_drift_and_name_the_setting(
        workdir, service, capsys, job_env, gitlab_fake, existing):  # noqa: F811
    """GitLab.com's default for new projects: nobody may set pipeline variables (17.7)."""
    service.traffic([0.9] * 100, ["bag"] * 100)
    if existing:
        monitor(service.url, capsys, "--retrain", "false")
    gitlab_fake.projects[PROJECT_ID]["ci_pipeline_variables_minimum_override_role"] = "no_one_allowed"

    code, out, err = monitor(service.url, capsys)

    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("ci-gen: error: the retraining pipeline was not started: GitLab refused a pipeline "
                          "with the variable CI_GEN_RETRAIN: Insufficient permissions to set pipeline variables. "
                          "The token's role is Maintainer; an Owner can lower Settings > CI/CD > Variables, "
                          '"Minimum role to use pipeline variables" (now no_one_allowed) to that role '
                          "(issue #1 says so)"), err
    (issue,) = gitlab_fake.issues[PROJECT_ID]
    assert ("updated" if existing else "created") + " issue #1" in out
    body = issue["description"]
    assert "drift found" in body and "Retraining: **not started**." in body
    assert '"Minimum role to use pipeline variables"' in body and "role is Maintainer" in body
    assert gitlab_fake.pipelines[PROJECT_ID] == []
    assert gitlab_fake.token not in err + body
