"""The MR report's model-registry section: the version a merge would register, and the
version to compare it with.

The next version follows register's rules (the tag's SemVer on a tag pipeline, else the
version already registered for this commit, else the next patch after the highest registered). The comparison is the latest registered version: what
a deploy environment runs is recorded on its target (labels, or the runner's deploy state),
which an MR pipeline does not reach; the report says so. Without a registry configured
(`client.configured`) there is no section.
"""

from __future__ import annotations

from typing import Any, Mapping

from ci_gen.registry import lineage, semver
from ci_gen.registry.client import NotFound, Registry, configured


def lookup(env: Mapping[str, str], name: str) -> dict[str, Any] | None:
    """What the section shows; None when no registry is configured. Registry failures raise
    RegistryError (one line)."""
    if not name or not configured(env):
        return None
    reg = Registry.for_job(env)  # waits for `ci-gen run`'s server when it is still starting
    try:
        found = reg.list_versions(name)
    except NotFound:
        found = []
    found.sort(key=lambda v: (semver.parse(v.semver) or (), v.created_ms))
    tag = env.get("CI_COMMIT_TAG", "")
    # A re-run on an already registered commit registers nothing new (register is idempotent).
    commit = env.get("CI_COMMIT_SHA", "")
    mine = [v for v in found if commit and v.tags.get(lineage.COMMIT) == commit]
    latest = found[-1] if found else None
    if tag:
        number = semver.from_tag(tag)
    else:
        number = mine[-1].semver if mine else semver.next_patch(v.semver for v in found)
    return {
        "model": name,
        "model_url": model_page(reg, env, name, found),
        "next": number,
        "registered": bool(mine) and not tag,
        "compare": latest.semver if latest else None,
        "compare_url": reg.version_url(latest) if latest else None,
        "compare_commit": latest.tags.get(lineage.COMMIT, "") if latest else "",
        "merge_request": bool(env.get("CI_MERGE_REQUEST_IID")),
    }


def model_page(reg: Registry, env: Mapping[str, str], name: str, found: list) -> str:
    """Where a person sees the model. GitLab's model pages live under the project
    (`<project URL>/-/ml/models/<model id>`, the versions' `source` minus `/versions/<id>`,
    lib/api/entities/ml/mlflow/model_version.rb), never at the server's root: with no version
    yet, the project's model list ($CI_PROJECT_URL/-/ml/models); "" when neither is known."""
    if not reg.gitlab:
        return reg.model_url(name)
    for version in reversed(found):
        head, sep, _ = version.source.rpartition("/versions/")
        if sep and head.startswith(("https://", "http://")) and "/-/ml/models/" in head:
            return head
    project = env.get("CI_PROJECT_URL", "").rstrip("/")
    return f"{project}/-/ml/models" if project.startswith(("https://", "http://")) else ""


def markdown(info: Mapping[str, Any]) -> str:
    who = "A merge registers" if info["merge_request"] else "This pipeline registers"
    model = f"`{info['model']}`"
    what = "already registered for this commit" if info.get("registered") else "the next version"
    shown = f"[{model} {info['next']}]({info['model_url']})" if info["model_url"] else f"{model} {info['next']}"
    rows = [f"| {who} | {shown} | {what} |"]
    if info["compare"]:
        commit = f", commit {info['compare_commit'][:8]}" if info["compare_commit"] else ""
        rows.append(f"| Compare with | [{model} {info['compare']}]({info['compare_url']}) | "
                    f"the latest registered version{commit} |")
    else:
        rows.append(f"| Compare with | nothing registered yet | {info['next']} is the first |")
    return "\n".join(["## Model registry", "", "| | version | |", "|---|---|---|", *rows, "",
                      "_What an environment runs is recorded with its deployment "
                      "(`DEPLOY_MODEL_VERSION`)._"])
