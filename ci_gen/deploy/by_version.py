"""Deploy by registry version: fetch the version a deploy names, checked, before anything runs.

The deploy's `model-version` (a SemVer version, or `latest`) names a version of the
registered model `model-name` in the registry the register job uses (MLFLOW_TRACKING_URI,
else GitLab's; token MLFLOW_TRACKING_TOKEN). Its files are downloaded and every sha256 of
its manifest checked, for every engine, so an incomplete or corrupted version is never
deployed. Then:

- process engine: the downloaded model directory is what the release serves;
- docker/podman: the image its lineage records (`ci_gen.image`, docker-build's image by
  digest), so the release runs exactly the image that was built with that model.

An unknown version, a registry that is down or refuses the token, a hash mismatch, or a
version without the image a container engine needs: one line, and the environment is not
touched (all of it happens before the deploy starts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Mapping

from ci_gen.deploy.spec import CONTAINER_ENGINES, LATEST, Spec
from ci_gen.errors import CiGenError
from ci_gen.registry import catalog, lineage
from ci_gen.registry.client import Registry, Version

Say = Callable[[str], None]


@contextlib.contextmanager
def fetched(spec: Spec, environ: Mapping[str, str], say: Say) -> Iterator[Spec]:
    """`spec` as it deploys the version it names (unchanged without one); the downloaded
    files are removed afterwards (a process release keeps its own copy)."""
    if not spec.from_registry:
        yield spec
        return
    reg = Registry.for_job(environ)
    version = catalog.find(reg, spec.model_name, "" if spec.model_version == LATEST else spec.model_version)
    where = f"{version.name} {version.semver}"
    changes: dict[str, object] = {"model_version": version.semver}
    if spec.engine in CONTAINER_ENGINES:
        image = lineage.image_ref(_recorded_image(reg, version))
        if not image:
            raise CiGenError(f"model {where} records no image by digest (its pipeline had no "
                             f"docker-build job): engine {spec.engine} needs one; deploy it "
                             "with engine process, or register it from a pipeline that builds "
                             "the image")
        changes["image"] = image
    tmp = tempfile.mkdtemp(prefix="ci-gen-model-")
    try:
        path, manifest = catalog.download(reg, version, Path(tmp))
        say(f"deploy: {where} downloaded from the model registry at {reg.where} "
            f"({len(manifest['contents'])} file(s), sha256 checked)")
        if spec.engine in CONTAINER_ENGINES:
            say(f"deploy: {where} runs the image its lineage records: {changes['image']}")
        else:
            changes["model_path"] = str(path)
        yield dataclasses.replace(spec, **changes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _recorded_image(reg: Registry, version: Version) -> str:
    image = version.tags.get(lineage.IMAGE, "")
    if image:
        return image
    # GitLab keeps lineage on the version's run as well; an MLflow version may lack tags.
    run_tags = (reg.get_run(version.run_id).get("data") or {}).get("tags") or []
    return next((t.get("value", "") for t in run_tags if t.get("key") == lineage.IMAGE), "")
