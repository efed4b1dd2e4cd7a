"""The `register` job: a model version per distinct model, with its files, params, metrics,
lineage.

Idempotent by model, not commit: a version stands for the model's files and params (their
hash, the `ci_gen.model_sha256` tag), so a pipeline after an unrelated commit (serve.py, a
README, the pointer commit) reuses the version of the byte-identical model. A tag pipeline
registers the tag's SemVer whatever is registered already. If an earlier attempt stopped
before its manifest was uploaded, the missing steps are done again (params are re-logged
with the same values, files re-uploaded, the manifest last), so a version is either complete
or visibly incomplete. Params GitLab cannot store are fitted before the version is created.
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
    created: bool     # a new version (False: this model's version was already there)
    completed: bool   # files uploaded now (False: it was complete already)


def experiment_name(model: str) -> str:
    # GitLab's own name for a model's experiment; an MLflow server gets the same.
    return f"[model]{model}"


def choose(existing: list[Version], commit: str, tag: str, data: str = "",
           model: str = "") -> tuple[Version | None, str]:
    """This model's version if there is one, else the SemVer a new one gets. On a tag
    pipeline: the tag's version, which must hold this model (or this commit: a re-run of
    the tag pipeline retrains). Versions registered before the model hash was recorded
    are matched by commit and training data, as they were then."""
    if tag:
        wanted = semver.from_tag(tag)
        same = [v for v in existing if v.semver == wanted]
        if same and same[0].tags.get(lineage.COMMIT) != commit \
                and not (model and same[0].tags.get(lineage.MODEL) == model):
            raise RegistryError(f"version {wanted} is already registered for commit "
                                f"{same[0].tags.get(lineage.COMMIT, '?')[:12]}, not this "
                                f"commit {commit[:12]}")
        return (same[0] if same else None), wanted
    mine = [v for v in existing if (model and v.tags.get(lineage.MODEL) == model)
            or (lineage.MODEL not in v.tags and v.tags.get(lineage.COMMIT) == commit
                and v.tags.get(lineage.DATA, "") == data)]
    if mine:
        best = max(mine, key=lambda v: semver.parse(v.semver) or ())
        return best, best.semver
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
    model = lineage.model_hash(pack.manifest, params)
    # Checked before anything is created: a param GitLab cannot store would fail log-batch
    # after the version exists.
    stored = lineage.fit_params(params, gitlab=reg.gitlab, log=log)
    if reg.ensure_model(name, "Registered by ci-gen's register component"):
        log(f"register: created the registered model {name}")
    found, number = choose(reg.list_versions(name), commit, tag, tags.get(lineage.DATA, ""), model)
    if found is not None and is_complete(reg, found):
        return Outcome(found, created=False, completed=False)
    created = found is None
    version = found or _create(reg, name, number, {**tags, lineage.MODEL: model}, env)
    run_tags = {**tags, lineage.MODEL: model, **lineage.job_tags(env, gitlab=reg.gitlab)}
    reg.log_batch(version.run_id, stored, metrics, {k: v for k, v in run_tags.items() if v})
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
