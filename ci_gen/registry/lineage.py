"""What a registered version records about where it came from.

Tags on the version (and its run): commit, ref, pipeline and job links, the training data's
DVC hash, the image, ci-gen's version; `gitlab.CI_JOB_ID` links the run to its job in
GitLab's UI. Params come from params.yaml (flattened), metrics from the pipeline's metrics
file, through the same reader as eval-report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

from ci_gen import __version__, yamlload
from ci_gen.errors import shown
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
# In the order `ci-gen models show` prints them.
SHOWN = ((COMMIT, "commit"), (REF, "ref"), (PIPELINE, "pipeline"), (JOB, "job"),
         (DATA, "training data (DVC md5)"), (IMAGE, "image"), (TOOL, "ci-gen"))


def data_hash(pointer: Path) -> str:
    """The md5 DVC recorded for the training data (a `.dvc` pointer's first output)."""
    try:
        doc = yamlload.read(pointer)
    except yamlload.YamlError as exc:
        raise RegistryError(f"cannot read the DVC pointer: {exc}") from None
    outs = doc.get("outs") if isinstance(doc, dict) else None
    first = outs[0] if isinstance(outs, list) and outs and isinstance(outs[0], dict) else {}
    md5 = first.get("md5")
    if not md5:
        raise RegistryError(f"{shown(str(pointer))} records no md5 for its data")
    return str(md5)


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
