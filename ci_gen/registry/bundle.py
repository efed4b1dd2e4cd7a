"""A model as flat registry files: `model.tar.gz` plus `manifest.json` (sha256 of each).

GitLab's registry stores flat files only, so a model directory travels as one archive; the
manifest lists every uploaded file's hash and size and every archived file's hash, so a
download is checked byte for byte. The archive is reproducible (sorted, no times, no
owners): the same files give the same bytes. The manifest is uploaded last: a version
without it is incomplete.

Edge models (edge-convert's `.tflite` files) travel next to the archive as flat files of
their own, listed in the manifest's `files` (hash, size) and `edge` (their names); a
download puts them in `edge/` beside the model directory, as the pipeline had them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_gen.errors import shown
from ci_gen.registry.client import RegistryError

ARCHIVE = "model.tar.gz"
MANIFEST = "manifest.json"
EDGE_DIR = "edge"
FORMAT = 1
_FLAT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Bundle:
    files: dict[str, bytes]     # name -> content, uploaded in this order (manifest last)
    manifest: dict[str, Any]


def _members(root: Path) -> list[Path]:
    if root.is_symlink() or not root.exists():
        raise RegistryError(f"model path {shown(str(root))} does not exist")
    if root.is_file():
        return [root]
    out = sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())
    links = [p for p in out if p.is_symlink()]
    if links:
        raise RegistryError(f"model directory holds a symbolic link: {shown(str(links[0]))}")
    if not out:
        raise RegistryError(f"model directory {shown(str(root))} is empty")
    return out


def edge_files(directory: Path) -> list[Path]:
    """The `.tflite` files of edge-convert's output directory; none when it is absent."""
    directory = Path(directory)
    return sorted(p for p in directory.glob("*.tflite") if p.is_file()) if directory.is_dir() else []


def pack(model: Path, edge: list[Path] = ()) -> Bundle:
    """Archive `model` (a directory or one file) and describe it, with `edge` files beside."""
    model = Path(model)
    base = model.name
    contents: dict[str, str] = {}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _members(model):
            rel = base if path == model else f"{base}/{path.relative_to(model).as_posix()}"
            data = path.read_bytes()
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
            contents[rel] = sha256(data)
    archive = gzip.compress(raw.getvalue(), mtime=0)
    files = {ARCHIVE: archive}
    for path in edge:
        if not _FLAT.fullmatch(path.name) or path.name in (ARCHIVE, MANIFEST):
            raise RegistryError(f"edge file name {shown(path.name)} cannot be a registry file")
        files[path.name] = path.read_bytes()
    manifest = {"format": FORMAT, "model": base,
                "files": {n: {"sha256": sha256(d), "size": len(d)} for n, d in files.items()},
                "contents": contents}
    if edge:
        manifest["edge"] = [p.name for p in edge]
    text = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    return Bundle({**files, MANIFEST: text}, manifest)


def edge_names(manifest: dict[str, Any], where: str) -> list[str]:
    """The edge files a manifest lists (each one also in its `files`)."""
    names = manifest.get("edge") or []
    if not isinstance(names, list) or any(not isinstance(n, str) or not _FLAT.fullmatch(n)
                                          or n not in manifest["files"] for n in names):
        raise RegistryError(f"{MANIFEST} of {where} lists edge files it does not describe")
    return names


def read_manifest(data: bytes, where: str) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or not isinstance(manifest.get("files"), dict):
        raise RegistryError(f"{MANIFEST} of {where} is not a ci-gen manifest (format {FORMAT})")
    return manifest


def check(name: str, data: bytes, manifest: dict[str, Any], where: str) -> None:
    want = manifest["files"].get(name) or {}
    got = sha256(data)
    if got != want.get("sha256") or len(data) != want.get("size"):
        raise RegistryError(f"hash mismatch for {name} of {where}: expected sha256 "
                            f"{str(want.get('sha256'))[:12]}..., got {got[:12]}... "
                            "(corrupted download or changed file); nothing was written")


def unpack(archive: bytes, manifest: dict[str, Any], dest: Path, where: str,
           edge: dict[str, bytes] | None = None) -> Path:
    """Extract into `dest`/<model> after checking every file against the manifest; the
    directory appears whole (renamed into place) or not at all. `edge` files (checked by the
    caller) go to `dest`/edge/ the same way."""
    dest = Path(dest)
    target = dest / manifest["model"]
    for there in (target, dest / EDGE_DIR) if edge else (target,):
        if there.exists():
            raise RegistryError(f"{shown(str(there))} already exists; remove it or choose "
                                "another --out")
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".ci-gen-download-"))
    try:
        seen: dict[str, str] = {}
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for member in tar.getmembers():
                if not member.isfile() or member.name.startswith("/") or ".." in member.name.split("/"):
                    raise RegistryError(f"{ARCHIVE} of {where} holds an unsafe entry "
                                        f"{shown(member.name)}")
                data = tar.extractfile(member).read()
                seen[member.name] = sha256(data)
                out = tmp / member.name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
        if seen != manifest.get("contents"):
            raise RegistryError(f"the files in {ARCHIVE} of {where} do not match its manifest; "
                                "nothing was written")
        if edge:
            (tmp / ".edge").mkdir()
            for name, data in edge.items():
                (tmp / ".edge" / name).write_bytes(data)
            os.replace(tmp / ".edge", dest / EDGE_DIR)
        os.replace(tmp / manifest["model"], target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
