"""Start a pipeline through the API with variables, and ask how one is doing.

GitLab: POST /projects/:id/pipeline (ref, variables: [{key, value}]) needs a token with the
`api` scope (the pipeline then runs as that token's user, source `api`);
GET /projects/:id/pipelines/:pipeline_id.

Pipeline variables are a permission of their own: below the project's "Minimum role to use
pipeline variables" (`ci_pipeline_variables_minimum_override_role`; `no_one_allowed` on new
GitLab.com projects since 17.7, `maintainer` on self-managed) GitLab refuses the whole
pipeline with 400 {"message": {"base": ["Insufficient permissions to set pipeline
variables"]}} (lib/gitlab/ci/pipeline/chain/build/associations.rb, answered by
lib/api/ci/pipelines.rb's render_validation_error!). `create` raises VariablesRefused then.
"""

from __future__ import annotations

from typing import Any

from ci_gen.errors import CiGenError
from ci_gen.gitlab import api

REFUSED = "Insufficient permissions to set pipeline variables"  # associations.rb's message
SETTING = 'Settings > CI/CD > Variables, "Minimum role to use pipeline variables"'


class VariablesRefused(CiGenError):
    """GitLab refused a pipeline because it carries pipeline variables."""


# Statuses of a pipeline that has not finished (GitLab's list; `manual` waits for a person).
ACTIVE = frozenset({"created", "waiting_for_resource", "preparing", "pending", "running",
                    "scheduled", "manual"})


def create(gl: Any, project: Any, ref: str, variables: dict[str, str]) -> Any:
    import gitlab.exceptions as gexc

    with api.errors(f"create a pipeline on {ref}", gl.url):
        try:
            return project.pipelines.create(
                {"ref": ref, "variables": [{"key": k, "value": v} for k, v in variables.items()]})
        except gexc.GitlabCreateError as exc:
            if exc.response_code == 400 and REFUSED in str(exc.error_message):
                raise VariablesRefused(refusal(gl, project, sorted(variables))) from None
            raise


def refusal(gl: Any, project: Any, keys: list[str]) -> str:
    """One line: what was refused, the setting that decides, its value and the token's role."""
    setting = getattr(project, "ci_pipeline_variables_minimum_override_role", None)
    known = isinstance(setting, str) and bool(setting)
    now = f" (now {setting})" if known else ""
    # Changing it takes a Maintainer, or an Owner once it is `owner` or `no_one_allowed` (docs:
    # ci/variables, "Restrict pipeline variables").
    who = "a Maintainer" if known and setting in ("developer", "maintainer") else "an Owner"
    return (f"GitLab refused a pipeline with the variable{'s' if len(keys) != 1 else ''} "
            f"{', '.join(keys)}: {REFUSED}. The token's role is {api.token_role(gl, project)}; "
            f"{who} can lower {SETTING}{now} to that role")


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
