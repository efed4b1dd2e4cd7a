"""`ci-gen run --schedule`: the scheduled pipeline, run locally, is the monitor job alone, and it
prints the drift report of a real metrics endpoint (test_monitoring's Service)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ci_gen import __version__
from support.git import make_project
from support.pipeline import ci_gen_run, gitlab_ci_local, summary
from test_monitoring import Service, profile

pytestmark = pytest.mark.slow


def test_schedule_runs_only_the_monitor_and_prints_its_report(tmp_path):
    gitlab_ci_local()
    service = Service()
    try:
        service.normal(200)
        ci = f"""\
            stages: [train, monitor]
            include:
              - component: $CI_SERVER_FQDN/mlops/ci-gen/train@{__version__}
              - component: $CI_SERVER_FQDN/mlops/ci-gen/monitor@{__version__}
                inputs:
                  reference: profile.json
                  metrics-url: {service.url}
                  min-samples: 50
            """
        project = make_project(tmp_path / "p", ci, {"profile.json": json.dumps(profile())})
        subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=project, check=True)
        subprocess.run(["git", "add", "-A"], cwd=project, check=True)
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "dvc"], cwd=project, check=True)

        proc = ci_gen_run(project, "--schedule")
    finally:
        service.server.shutdown()
        service.server.server_close()

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "scheduled pipeline for main" in proc.stdout
    # Nothing about what a schedule does not run or compare.
    assert "rules: changes" not in proc.stdout and "docker-build" not in proc.stdout, proc.stdout
    assert summary(proc.stdout) == {"mlops-train": "excluded", "mlops-monitor": "passed"}
    assert "## Model monitoring: fashion-mnist: no drift" in proc.stdout
    assert "| mean_intensity | 0.000 | 0.2 | ok |" in proc.stdout
