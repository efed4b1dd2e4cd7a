"""Reading the registry back: find a version, download it verified, describe it."""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path

from ci_gen.errors import printable, shown
from ci_gen.registry import bundle, lineage, semver
from ci_gen.registry.client import NotFound, Registry, RegistryError, Version


def versions(reg: Registry, name: str) -> list[Version]:
    """The versions of `name`, oldest SemVer first; a one-line error for an unknown model."""
    try:
        found = reg.list_versions(name)
    except NotFound:
        raise RegistryError(f"no registered model {shown(name)} in the model registry at "
                            f"{reg.where}") from None
    return sorted(found, key=lambda v: (semver.parse(v.semver) or (), v.created_ms))


def find(reg: Registry, name: str, number: str = "") -> Version:
    """Version `number` of `name` (empty: the highest)."""
    found = versions(reg, name)
    if not found:
        raise RegistryError(f"model {shown(name)} has no versions yet")
    if not number:
        return found[-1]
    for v in found:
        if v.semver == number:
            return v
    known = ", ".join(v.semver for v in found[-5:])
    raise RegistryError(f"model {shown(name)} has no version {shown(number)} "
                        f"(latest: {known})")


def download(reg: Registry, version: Version, dest: Path) -> tuple[Path, dict]:
    """Fetch the manifest, then each file (each refused past the size the manifest gives it);
    check every hash; unpack into `dest`."""
    where = f"{version.name} {version.semver}"
    base = reg.files_url(reg.run(version.run_id).info.artifact_uri)
    try:
        manifest = bundle.read_manifest(
            reg.get_file(base, bundle.MANIFEST, bundle.MANIFEST_LIMIT), where)
    except NotFound:
        raise RegistryError(f"{where} has no {bundle.MANIFEST}: its registration did not "
                            "finish (re-run its register job)") from None
    edge_names = bundle.edge_names(manifest, where)
    # The archive goes to a file as it arrives (a model can weigh gigabytes), then is checked
    # and unpacked from there; the temporary copy goes whatever happens.
    with tempfile.TemporaryDirectory(prefix="ci-gen-download-") as tmp:
        archive = Path(tmp) / bundle.ARCHIVE
        with open(archive, "wb") as sink:
            reg.get_file(base, bundle.ARCHIVE, manifest.files[bundle.ARCHIVE].size, sink)
        bundle.check(bundle.ARCHIVE, archive, manifest, where)
        edge = {}
        for name in edge_names:
            edge[name] = reg.get_file(base, name, manifest.files[name].size)
            bundle.check(name, edge[name], manifest, where)
        return bundle.unpack(archive, manifest, dest, where, edge), manifest.model_dump()


def when(ms: int) -> str:
    if not ms:
        return "-"
    # GitLab gives seconds, MLflow milliseconds.
    seconds = ms / 1000 if ms > 10**11 else ms
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def list_lines(reg: Registry, name: str = "") -> list[str]:
    if not name:
        models = reg.models()
        if not models:
            return [f"no registered models in the model registry at {reg.where}"]
        return [printable(m.name) for m in models]
    rows = [f"{'VERSION':<12} {'CREATED':<21} {'COMMIT':<12} REF"]
    for v in versions(reg, name):
        rows.append(printable(f"{v.semver:<12} {when(v.created_ms):<21} "
                               f"{v.tags.get(lineage.COMMIT, '-')[:12]:<12} "
                               f"{v.tags.get(lineage.REF, '-')}"))
    return rows


def show_lines(reg: Registry, version: Version) -> list[str]:
    run = reg.run(version.run_id)
    out = [f"{version.name} {version.semver}", f"  created: {when(version.created_ms)}"]
    tags = {**run.tag_map(), **version.tags}
    for key, label in lineage.SHOWN:
        if tags.get(key):
            out.append(f"  {label}: {tags[key]}")
    for kind, items in (("params", sorted((p.key, p.value or "") for p in run.data.params)),
                        ("metrics", sorted((m.key, m.value) for m in run.data.metrics))):
        if items:
            out.append(f"  {kind}: " + ", ".join(f"{k}={_num(v)}" for k, v in items))
    return [printable(line) for line in out]


def _num(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
