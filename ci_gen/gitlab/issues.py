"""One issue per concern, found again by a label and a marker, updated in place (never a new one per run).

GitLab: GET /projects/:id/issues?labels=L&state=opened, POST /projects/:id/issues,
PUT /projects/:id/issues/:iid. A closed issue is not reopened: the next alert after someone
closed it is a new episode and gets a new issue.
"""

from __future__ import annotations

from typing import Any

from ci_gen.gitlab import api


def find_open(gl: Any, project: Any, label: str, marker: str) -> Any | None:
    """The oldest open issue with `label` whose description carries `marker`, or None."""
    with api.errors(f"list the open issues labelled {label}", gl.url):
        found = [i for i in project.issues.list(labels=[label], state="opened", iterator=True,
                                                order_by="created_at", sort="asc")
                 if marker in (i.description or "")]
    return found[0] if found else None


def upsert(gl: Any, project: Any, existing: Any | None, *, title: str, description: str,
           label: str) -> tuple[str, Any]:
    """("created" | "updated", issue): update `existing`, else create one with `label`."""
    if existing is not None:
        with api.errors(f"update issue #{existing.iid}", gl.url):
            existing.title = title
            existing.description = description
            existing.save()
        return "updated", existing
    with api.errors("create an issue", gl.url):
        issue = project.issues.create({"title": title, "description": description, "labels": label})
    return "created", issue
