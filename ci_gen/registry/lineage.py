"""What a registered version records about where it came from.

Tags on the version (and its run): commit, ref, pipeline and job links, the training data's
DVC hash, the image, ci-gen's version; `gitlab.CI_JOB_ID` links the run to its job in
GitLab's UI. Params come from params.yaml (flattened), metrics from the pipeline's metrics
file, through the same reader as eval-report.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Mapping

from pydantic import Field, StringConstraints

from ci_gen import __version__, yamlload
from ci_gen.errors import shown
from ci_gen.parse import Model, ParseError, parse
from ci_gen.patterns import RE_IMAGE_BY_DIGEST
from ci_gen.registry.client import RegistryError

_IMAGE_BY_DIGEST = re.compile(RE_IMAGE_BY_DIGEST)
COMMIT = "ci_gen.commit"
REF = "ci_gen.ref"
PIPELINE = "ci_gen.pipeline_url"
JOB = "ci_gen.job_url"
DATA = "ci_gen.data_md5"
IMAGE = "ci_gen.image"
TOOL = "ci_gen.version"
JOB_ID = "gitlab.CI_JOB_ID"
MODEL = "ci_gen.model_sha256"  # what makes a version: the model's files and params (model_hash)
# GitLab keeps a param's name and value in columns of at most 250 characters
# (app/models/ml/candidate_param.rb); log-batch inserts them without validation
# (app/services/ml/experiment_tracking/candidate_repository.rb, called by
# lib/api/ml/mlflow/runs.rb), so a longer one is a 500 after the version exists.
PARAM_LIMIT = 250
# In the order `ci-gen models show` prints them.
SHOWN = ((COMMIT, "commit"), (REF, "ref"), (PIPELINE, "pipeline"), (JOB, "job"),
         (DATA, "training data (DVC md5)"), (IMAGE, "image"), (TOOL, "ci-gen"))


class _Out(Model):
    md5: Annotated[str, StringConstraints(min_length=1)]


class _Pointer(Model):
    outs: Annotated[list[_Out], Field(min_length=1)]


def data_hash(pointer: Path) -> str:
    """The md5 DVC recorded for the training data (a `.dvc` pointer's first output)."""
    try:
        doc = yamlload.read(pointer)
    except yamlload.YamlError as exc:
        raise RegistryError(f"cannot read the DVC pointer: {exc}") from None
    try:
        return parse(_Pointer, doc, f"the DVC pointer {shown(str(pointer))}").outs[0].md5
    except ParseError as exc:
        raise RegistryError(f"{exc} (it records no md5 for its data)") from None


def image_ref(value: str) -> str:
    """docker-build's CI_GEN_IMAGE when it names an image by digest (what a deploy of this
    version pulls); "" otherwise, so a half-written value is never recorded."""
    return value if _IMAGE_BY_DIGEST.fullmatch(value or "") else ""


def tags(env: Mapping[str, str], *, data: str = "", image: str = "") -> dict[str, str]:
    found = {COMMIT: env.get("CI_COMMIT_SHA", ""), REF: env.get("CI_COMMIT_REF_NAME", ""),
             PIPELINE: env.get("CI_PIPELINE_URL", ""), JOB: env.get("CI_JOB_URL", ""),
             DATA: data, IMAGE: image, TOOL: __version__}
    if not found[COMMIT]:
        raise RegistryError("CI_COMMIT_SHA is not set: a version is registered by a CI job "
                            "(or `ci-gen run`), which names its commit")
    return {k: v for k, v in found.items() if v}


def job_tags(env: Mapping[str, str], *, gitlab: bool) -> dict[str, str]:
    """`gitlab.CI_JOB_ID`, which links the run to its job in GitLab's UI. GitLab looks the job
    up (app/services/ml/experiment_tracking/handle_candidate_gitlab_metadata_service.rb) and
    answers 500 for one that does not exist, such as a local run's (gitlab-ci-local sets
    GITLAB_CI=false): sent to GitLab from a GitLab job only; an MLflow server just keeps it."""
    job = env.get("CI_JOB_ID", "")
    if not job or (gitlab and env.get("GITLAB_CI") != "true"):
        return {}
    return {JOB_ID: job}


def model_hash(manifest: Mapping[str, Any], params: Mapping[str, str]) -> str:
    """sha256 over the model's files (the bundle manifest's per-file hashes, edge files
    included) and its params: the same model gives the same hash, whatever the commit."""
    edge = {n: (manifest.get("files") or {}).get(n, {}).get("sha256", "") for n in manifest.get("edge") or []}
    doc = {"contents": manifest.get("contents") or {}, "edge": edge, "params": dict(params)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def fit_params(params: Mapping[str, str], *, gitlab: bool, log=print) -> dict[str, str]:
    """The params as the registry can store them, checked before any version is created:
    for GitLab, a value over PARAM_LIMIT characters is cut (and said so), a longer name is
    refused; an MLflow server takes them as they are."""
    if not gitlab:
        return dict(params)
    out: dict[str, str] = {}
    for key, value in params.items():
        if len(key) > PARAM_LIMIT:
            raise RegistryError(f"param name {shown(key)} is longer than GitLab's {PARAM_LIMIT} characters: "
                                "shorten it in the params file")
        if len(value) > PARAM_LIMIT:
            log(f"register: param {key} is {len(value)} characters, GitLab keeps {PARAM_LIMIT}: "
                "registered cut, with \"...\" at its end (the params file holds the whole value)")
            value = value[:PARAM_LIMIT - 3] + "..."
        out[key] = value
    return out


def params(path: Path) -> dict[str, str]:
    """params.yaml flattened to `a.b` keys; {} when the project has none."""
    if not path.exists():
        return {}
    from ci_gen.evaluation.metrics import flatten

    try:
        doc = yamlload.read(path) or {}
    except yamlload.YamlError as exc:
        raise RegistryError(str(exc)) from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{path}: must hold a mapping of params")
    return {k: _text(v) for k, v in flatten(doc).items()}


def metrics(path: Path) -> dict[str, float]:
    """The numeric metrics of the pipeline's metrics file, flattened."""
    from ci_gen.evaluation.metrics import flatten, is_num, load_metrics

    return {k: float(v) for k, v in flatten(load_metrics(path)).items() if is_num(v)}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
