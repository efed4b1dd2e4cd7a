"""The `register` job: a model version per commit, with its files, params, metrics, lineage.

Idempotent by commit: a version already tagged with this commit (on a tag pipeline: the
tag's version) is reused; if an earlier attempt stopped before its manifest was uploaded,
the missing steps are done again (params are re-logged with the same values, files
re-uploaded, the manifest last), so a version is either complete or visibly incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ci_gen.errors import shown
from ci_gen.registry import bundle, lineage, semver
from ci_gen.registry.client import NotFound, Registry, RegistryError, Version


@dataclass
class Outcome:
    version: Version
    created: bool     # a new version (False: this commit's version was already there)
    completed: bool   # files uploaded now (False: it was complete already)


def experiment_name(model: str) -> str:
    # GitLab's own name for a model's experiment; an MLflow server gets the same.
    return f"[model]{model}"


def choose(existing: list[Version], commit: str, tag: str, data: str = "") -> tuple[Version | None, str]:
    """This commit's version if there is one, else the SemVer a new one gets. Off a tag, a
    version is this commit's only if it was trained on the same data too: a retraining
    pipeline (the monitor's) refreshes the data on an unchanged commit."""
    if tag:
        wanted = semver.from_tag(tag)
        same = [v for v in existing if v.semver == wanted]
        if same and same[0].tags.get(lineage.COMMIT) != commit:
            raise RegistryError(f"version {wanted} is already registered for commit "
                                f"{same[0].tags.get(lineage.COMMIT, '?')[:12]}, not this "
                                f"commit {commit[:12]}")
        return (same[0] if same else None), wanted
    mine = [v for v in existing if v.tags.get(lineage.COMMIT) == commit
            and v.tags.get(lineage.DATA, "") == data]
    if mine:
        return max(mine, key=lambda v: semver.parse(v.semver) or ()), mine[0].semver
    return None, semver.next_patch(v.semver for v in existing)


def is_complete(reg: Registry, version: Version) -> bool:
    try:
        base = reg.files_url(reg.run(version.run_id).info.artifact_uri)
        reg.get_file(base, bundle.MANIFEST, bundle.MANIFEST_LIMIT)
        return True
    except NotFound:
        return False


def register(reg: Registry, name: str, pack: bundle.Bundle, *, tags: Mapping[str, str],
             params: Mapping[str, str], metrics: Mapping[str, float], env: Mapping[str, str],
             tag: str = "", log=print) -> Outcome:
    commit = tags[lineage.COMMIT]
    if reg.ensure_model(name, "Registered by ci-gen's register component"):
        log(f"register: created the registered model {name}")
    found, number = choose(reg.list_versions(name), commit, tag, tags.get(lineage.DATA, ""))
    if found is not None and is_complete(reg, found):
        return Outcome(found, created=False, completed=False)
    created = found is None
    version = found or _create(reg, name, number, tags, env)
    run_tags = {**tags, lineage.JOB_ID: env.get("CI_JOB_ID", "")}
    reg.log_batch(version.run_id, params, metrics, {k: v for k, v in run_tags.items() if v})
    base = reg.files_url(reg.run(version.run_id).info.artifact_uri)
    for file_name, data in pack.files.items():  # the manifest is the last one
        reg.put_file(base, file_name, data)
    reg.finish_run(version.run_id)
    return Outcome(version, created=created, completed=True)


def _create(reg: Registry, name: str, number: str, tags: Mapping[str, str],
            env: Mapping[str, str]) -> Version:
    if reg.gitlab:
        # Every GitLab model version is a run of its own; run_id and source are ignored.
        version = reg.create_version(name, number, tags)
        if not version.run_id:
            raise RegistryError(f"the registry created version {number} of {shown(name)} "
                                "without a run_id")
        return version
    run = reg.create_run(reg.experiment_id(experiment_name(name)),
                         f"{name} {number}")
    return reg.create_version(name, number, tags, run_id=run["info"]["run_id"],
                              source=run["info"]["artifact_uri"])
