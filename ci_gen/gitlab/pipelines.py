"""Start a pipeline through the API with variables, and ask how one is doing.

GitLab: POST /projects/:id/pipeline (ref, variables: [{key, value}]) needs a token with the
`api` scope (the pipeline then runs as that token's user, source `api`);
GET /projects/:id/pipelines/:pipeline_id.
"""

from __future__ import annotations

from typing import Any

from ci_gen.gitlab import api

# Statuses of a pipeline that has not finished (GitLab's list; `manual` waits for a person).
ACTIVE = frozenset({"created", "waiting_for_resource", "preparing", "pending", "running",
                    "scheduled", "manual"})


def create(gl: Any, project: Any, ref: str, variables: dict[str, str]) -> Any:
    with api.errors(f"create a pipeline on {ref}", gl.url):
        return project.pipelines.create(
            {"ref": ref, "variables": [{"key": k, "value": v} for k, v in variables.items()]})


def status(gl: Any, project: Any, pipeline_id: int) -> str | None:
    """The pipeline's status, or None when it no longer exists (deleted)."""
    import gitlab.exceptions as gexc

    with api.errors(f"get pipeline {pipeline_id}", gl.url):
        try:
            return project.pipelines.get(pipeline_id).status
        except gexc.GitlabGetError as exc:
            if exc.response_code == 404:
                return None
            raise
