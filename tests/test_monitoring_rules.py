"""Which jobs each kind of pipeline holds, as gitlab-ci-local evaluates the components' rules:
a scheduled pipeline is the monitor's alone, a retraining pipeline (CI_GEN_RETRAIN=1) runs the
ML jobs without any change, and a push with nothing changed runs neither."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ci_gen import components as desc
from ci_gen.local.tool import find_gitlab_ci_local

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rules")
    shutil.copytree(REPO / "templates", root / "templates")
    includes = "\n".join(f"  - local: templates/{name}.yml" for name in desc.ORDER)
    (root / ".gitlab-ci.yml").write_text(f"stages: {json.dumps(desc.default_stages())}\ninclude:\n{includes}\n")
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"],
                ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pipeline"],
                ["remote", "add", "origin", "git@gitlab.example.com:mlops/demo.git"],
                ["update-ref", "refs/remotes/origin/main", "HEAD"]):
        subprocess.run(["git", *cmd], cwd=root, check=True, capture_output=True)
    return root


def jobs(project: Path, *variables: str) -> set[str]:
    args = [find_gitlab_ci_local(), "--list-json", "--ignore-schema-paths", "#/definitions/tags/minItems"]
    for v in variables:
        args += ["--variable", v]
    proc = subprocess.run(args, cwd=project, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    listed = json.loads(proc.stdout[re.search(r"^\[", proc.stdout, re.M).start():])
    return {j["name"] for j in listed if j.get("when") != "never"}


def test_pipelines_by_source(project):
    ml = {"mlops-train", "mlops-edge-convert", "mlops-edge-gate", "mlops-eval-report", "mlops-docker-build",
          "mlops-register"}
    promote = {"mlops-dvc-upload", "mlops-deploy", "mlops-stop", "mlops-inference", "mlops-rollback"}

    # A push that changed nothing the model depends on: only the way back, always at hand.
    assert jobs(project) == {"mlops-rollback"}
    assert jobs(project, "CI_PIPELINE_SOURCE=schedule") == {"mlops-monitor"}
    assert jobs(project, "CI_PIPELINE_SOURCE=api", "CI_GEN_RETRAIN=1") == ml | promote
    # A schedule that sets CI_GEN_RETRAIN=1 retrains on a calendar (and still monitors); promoting
    # its model stays manual.
    # The way back stays in the default branch's own pipelines.
    assert jobs(project, "CI_PIPELINE_SOURCE=schedule", "CI_GEN_RETRAIN=1") == (
        ml | promote | {"mlops-monitor"}) - {"mlops-rollback"}


def test_run_schedule_and_mr_are_different_pipelines(capsys):
    from ci_gen import cli

    assert cli.main(["run", "--schedule", "--mr"]) == 2
    assert "--schedule, --mr and --tag are different pipelines" in capsys.readouterr().err
