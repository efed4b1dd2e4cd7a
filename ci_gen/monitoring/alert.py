"""Drift found: open or update the model's one drift issue, then start one retraining pipeline.

The issue is found again by its label and a marker naming the model, and its description is
replaced with the newest report: one issue per drift episode, however many scheduled runs see
it. The retraining pipeline is the project's own pipeline on the default branch with
CI_GEN_RETRAIN=1 (the train job then refreshes imported data and retrains; the eval gate
decides). While the one it started last is still running, no other is started; its id is kept
in the issue, so nothing else needs to remember it.

The issue is written before the pipeline is asked for: GitLab may refuse pipeline variables
(the project's "Minimum role to use pipeline variables", lib/gitlab/ci/pipeline/chain/build/
associations.rb), and a refusal must not lose the drift. It is recorded in the issue and the
job then fails with one line naming the setting and the token's role.
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
    running = _running(gl, project, existing, say) if retrain else None
    with api.errors(f"upload {plot.name}", gl.url):
        url = project.upload(plot.name, filepath=str(plot))["url"]
    title = f"Model drift: {report.model}"

    def write(issue: Any | None, retraining: str) -> tuple[str, Any]:
        body = _description(report, mark, url, retraining, env.get("CI_JOB_URL", ""))
        return issues.upsert(gl, project, issue, title=title, description=body, label=label)

    # The issue first: whatever happens to the retraining pipeline, the drift is on record.
    pending = _kept(running) if running else (_starting() if retrain else "")
    action, issue = write(existing, pending)
    say(f"{action} issue #{issue.iid} ({getattr(issue, 'web_url', '')})")
    pipeline_id = running
    if retrain and running is None:
        try:
            pipeline_id = _start(gl, project, ref, say)
        except pipelines.VariablesRefused as exc:
            write(issue, _refused(str(exc)))
            raise pipelines.VariablesRefused(f"the retraining pipeline was not started: {exc} "
                                             f"(issue #{issue.iid} says so)") from None
        except api.GitLabApiError as exc:
            write(issue, f"Retraining: **not started**: {exc}.")
            raise
        write(issue, _started(pipeline_id))
    return {"issue": action, "iid": issue.iid, "pipeline": pipeline_id}


def _would_do(report: DriftReport, label: str, retrain: bool, ref: str) -> str:
    """What a job with a token does on drift, for a run without one (e.g. `ci-gen run --schedule`)."""
    issue = f"a GitLab job with a token opens or updates the issue \"Model drift: {report.model}\" (label {label})"
    return issue + (f" and starts a pipeline on {ref} with {RETRAIN_VARIABLE}=1" if retrain else "")


def _running(gl: Any, project: Any, existing: Any | None, say: Callable[[str], None]) -> int | None:
    """The retraining pipeline the issue names, while it has not finished."""
    from ci_gen.gitlab import pipelines

    found = _PIPELINE_MARK.search(getattr(existing, "description", "") or "") if existing else None
    if found:
        previous = int(found.group(1))
        state = pipelines.status(gl, project, previous)
        if state in pipelines.ACTIVE:
            say(f"retraining pipeline #{previous} is still {state}: not starting another")
            return previous
    return None


def _start(gl: Any, project: Any, ref: str, say: Callable[[str], None]) -> int:
    from ci_gen.gitlab import pipelines

    pipeline = pipelines.create(gl, project, ref, {RETRAIN_VARIABLE: "1"})
    say(f"started retraining pipeline #{pipeline.id} on {ref} ({RETRAIN_VARIABLE}=1; "
        f"{getattr(pipeline, 'web_url', '')})")
    return int(pipeline.id)


def _started(pipeline_id: int) -> str:
    return (f"Retraining: pipeline #{pipeline_id} ({RETRAIN_VARIABLE}=1) refreshes imported data, "
            "retrains, and its evaluation gate decides whether the new model is promoted.\n\n"
            f"<!-- ci-gen:retrain-pipeline={pipeline_id} -->")


def _kept(pipeline_id: int) -> str:
    return _started(pipeline_id).replace("Retraining: pipeline", "Retraining: still running, pipeline", 1)


def _starting() -> str:
    return f"Retraining: starting a pipeline with {RETRAIN_VARIABLE}=1 (this issue is updated once it has started)."


def _refused(why: str) -> str:
    return (f"Retraining: **not started**. {why}. Meanwhile a person whose role the setting allows can "
            f"run a pipeline on the default branch with {RETRAIN_VARIABLE}=1 (Build > Pipelines > Run pipeline).")


def _description(report: DriftReport, mark: str, plot_url: str, retraining: str, job_url: str) -> str:
    lines = [mark, report.markdown(plot=plot_url)]
    if retraining:
        lines.append(retraining)
    if job_url:
        lines.append(f"Report of job {job_url} (its artifacts hold report.json and the plot).")
    lines.append("Close this issue once handled; the next drift opens a new one.")
    return "\n\n".join(lines) + "\n"
