"""Drift found: open or update the model's one drift issue, and start one retraining pipeline.

The issue is found again by its label and a marker naming the model, and its description is
replaced with the newest report: one issue per drift episode, however many scheduled runs see
it. The retraining pipeline is the project's own pipeline on the default branch with
CI_GEN_RETRAIN=1 (the train job then refreshes imported data and retrains; the eval gate
decides). While the one it started last is still running, no other is started; its id is kept
in the issue, so nothing else needs to remember it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ci_gen.components import RETRAIN_VARIABLE
from ci_gen.monitoring.report import DriftReport

_PIPELINE_MARK = re.compile(r"<!-- ci-gen:retrain-pipeline=([0-9]{1,20}) -->")


def marker(model: str) -> str:
    return f"<!-- ci-gen:monitor model={model} -->"


def raise_alert(report: DriftReport, plot: Path, *, label: str, retrain: bool, ref: str,
                env: Mapping[str, str] | None = None, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Issue (and pipeline) for a drifted report; {"issue": "created"|"updated"|"skipped", ...}."""
    from ci_gen.gitlab import api, issues, pipelines

    env = os.environ if env is None else env
    token = api.find_token(env)
    if token is None or not (env.get("CI_SERVER_URL") or env.get("CI_API_V4_URL")) or not env.get("CI_PROJECT_ID"):
        why = ("no GitLab token (GITLAB_API_TOKEN or REPO_TOKEN)" if token is None
               else "not in a GitLab job (CI_SERVER_URL/CI_PROJECT_ID unset)")
        say(f"{why}: {_would_do(report, label, retrain, ref)}; here the report stays the job's artifact")
        return {"issue": "skipped", "pipeline": None}
    gl = api.connect(None, token, action="open the drift issue", env=env)
    project = api.get_project(gl, env["CI_PROJECT_ID"])
    mark = marker(report.model)
    existing = issues.find_open(gl, project, label, mark)
    pipeline_id = _retrain(gl, project, existing, ref, say) if retrain else None
    with api.errors(f"upload {plot.name}", gl.url):
        url = project.upload(plot.name, filepath=str(plot))["url"]
    body = _description(report, mark, url, pipeline_id, env.get("CI_JOB_URL", ""))
    action, issue = issues.upsert(gl, project, existing, title=f"Model drift: {report.model}",
                                  description=body, label=label)
    say(f"{action} issue #{issue.iid} ({getattr(issue, 'web_url', '')})")
    return {"issue": action, "iid": issue.iid, "pipeline": pipeline_id}


def _would_do(report: DriftReport, label: str, retrain: bool, ref: str) -> str:
    """What a job with a token does on drift, for a run without one (e.g. `ci-gen run --schedule`)."""
    issue = f"a GitLab job with a token opens or updates the issue \"Model drift: {report.model}\" (label {label})"
    return issue + (f" and starts a pipeline on {ref} with {RETRAIN_VARIABLE}=1" if retrain else "")


def _retrain(gl: Any, project: Any, existing: Any | None, ref: str, say: Callable[[str], None]) -> int:
    from ci_gen.gitlab import pipelines

    found = _PIPELINE_MARK.search(getattr(existing, "description", "") or "") if existing else None
    if found:
        previous = int(found.group(1))
        state = pipelines.status(gl, project, previous)
        if state in pipelines.ACTIVE:
            say(f"retraining pipeline #{previous} is still {state}: not starting another")
            return previous
    pipeline = pipelines.create(gl, project, ref, {RETRAIN_VARIABLE: "1"})
    say(f"started retraining pipeline #{pipeline.id} on {ref} ({RETRAIN_VARIABLE}=1; "
        f"{getattr(pipeline, 'web_url', '')})")
    return int(pipeline.id)


def _description(report: DriftReport, mark: str, plot_url: str, pipeline_id: int | None, job_url: str) -> str:
    lines = [mark, report.markdown(plot=plot_url)]
    if pipeline_id is not None:
        lines.append(f"Retraining: pipeline #{pipeline_id} ({RETRAIN_VARIABLE}=1) refreshes imported data, "
                     "retrains, and its evaluation gate decides whether the new model is promoted.")
        lines.append(f"<!-- ci-gen:retrain-pipeline={pipeline_id} -->")
    if job_url:
        lines.append(f"Report of job {job_url} (its artifacts hold report.json and the plot).")
    lines.append("Close this issue once handled; the next drift opens a new one.")
    return "\n\n".join(lines) + "\n"
