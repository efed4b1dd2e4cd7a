"""Server-side CI lint: ask a GitLab project's CI lint API about a configuration.

`ci-gen lint FILE --gitlab-url URL --project PATH|ID` calls `server_lint` after its offline
checks. GitLab resolves includes (components, templates) in the project's context, so this
catches what no offline schema can: a component version that does not exist, a missing input.
"""

from __future__ import annotations

from ci_gen.gitlab import api


def server_lint(content: str, gitlab_url: str | None, project: str | int,
                ) -> tuple[bool, list[str], list[str]]:
    """(valid, errors, warnings) exactly as GitLab returns them for `content`.

    POST /projects/:id/ci/lint through python-gitlab. The token comes from GITLAB_API_TOKEN
    (else REPO_TOKEN); network and auth failures raise one-line `CiGenError`s.
    """
    gl = api.connect(gitlab_url, action="lint CI configuration on GitLab")
    proj = api.get_project(gl, project)
    with api.errors("lint the CI configuration", gl.url):
        result = proj.ci_lint.create({"content": content})
    attrs = result.asdict() if hasattr(result, "asdict") else dict(result.attributes)
    if "valid" not in attrs:  # very old servers answer {"status": "valid"|"invalid"}
        valid = attrs.get("status") == "valid"
    else:
        valid = bool(attrs["valid"])
    return valid, [str(e) for e in attrs.get("errors") or []], \
        [str(w) for w in attrs.get("warnings") or []]
