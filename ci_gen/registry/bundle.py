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
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import AfterValidator, Field, StringConstraints

from ci_gen.errors import shown
from ci_gen.parse import Model, ParseError, parse, parse_json
from ci_gen.registry.client import RegistryError

ARCHIVE = "model.tar.gz"
MANIFEST = "manifest.json"
EDGE_DIR = "edge"
FORMAT = 1
_FLAT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MANIFEST_LIMIT = 1024 * 1024       # a manifest is a few hundred bytes per file
DEFAULT_MAX_BYTES = 2 * 1024 ** 3


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


def max_bytes() -> int:
    """The most a model may weigh, downloaded or unpacked (CI_GEN_MODEL_MAX_BYTES, default
    2 GiB): a registry's answer, its manifest included, is hostile until checked."""
    raw = os.environ.get("CI_GEN_MODEL_MAX_BYTES", "")
    if not raw:
        return DEFAULT_MAX_BYTES
    if not re.fullmatch(r"[0-9]{1,15}", raw):
        raise RegistryError(f"CI_GEN_MODEL_MAX_BYTES must be a number of bytes, not {shown(raw)}")
    return int(raw)


def _dir_name(value: str) -> str:
    # The directory a download creates under --out: one plain name, never a path.
    if value in (".", "..") or not value or any(c in value for c in "/\\") \
            or not value.isprintable():
        raise ValueError("must be one directory name, not a path")
    return value


class FileEntry(Model):
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Field(ge=0, strict=True)]  # pack writes a number: "12" is not one


class Manifest(Model):
    """manifest.json as `pack` writes it; read back from a registry, so checked."""

    format: Literal[1]
    model: Annotated[str, AfterValidator(_dir_name)]
    files: dict[str, FileEntry]
    contents: dict[str, Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]] = {}
    edge: list[str] = []


def as_manifest(manifest: Manifest | Mapping[str, Any], where: str) -> Manifest:
    if isinstance(manifest, Manifest):
        return manifest
    try:
        return parse(Manifest, manifest, f"{MANIFEST} of {where}")
    except ParseError as exc:
        raise RegistryError(str(exc)) from None


def edge_names(manifest: Manifest | Mapping[str, Any], where: str) -> list[str]:
    """The edge files a manifest lists (each one also in its `files`)."""
    if not isinstance(manifest, Manifest):
        names = manifest.get("edge") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RegistryError(f"{MANIFEST} of {where} lists edge files it does not describe")
    manifest = as_manifest(manifest, where)
    names = manifest.edge
    if any(not _FLAT.fullmatch(n) or n in (ARCHIVE, MANIFEST) or n not in manifest.files
           for n in names):
        raise RegistryError(f"{MANIFEST} of {where} lists edge files it does not describe")
    return names


def read_manifest(data: bytes, where: str) -> Manifest:
    """manifest.json, typed: a wrong shape is one line naming the field."""
    source = f"{MANIFEST} of {where}"
    try:
        manifest = parse_json(Manifest, data, source)
    except ParseError as exc:
        if '"format"' not in data.decode("utf-8", "replace")[:4096]:
            raise RegistryError(f"{source} is not a ci-gen manifest (format {FORMAT})") from None
        raise RegistryError(str(exc)) from None
    if ARCHIVE not in manifest.files:
        raise RegistryError(f"{source}: files.{ARCHIVE}: missing")
    limit = max_bytes()
    for name, entry in manifest.files.items():
        if entry.size > limit:
            raise RegistryError(f"{source}: files.{shown(name)} claims {entry.size} bytes, more "
                                f"than the {limit} allowed (CI_GEN_MODEL_MAX_BYTES)")
    return manifest


def check(name: str, data: bytes | Path, manifest: Manifest | Mapping[str, Any],
          where: str) -> None:
    """`data` (bytes, or a file read in pieces) is the file the manifest describes."""
    want = as_manifest(manifest, where).files.get(name)
    if isinstance(data, Path):
        digest = hashlib.sha256()
        with open(data, "rb") as fh:
            for piece in iter(lambda: fh.read(1024 * 1024), b""):
                digest.update(piece)
        got, size = digest.hexdigest(), data.stat().st_size
    else:
        got, size = sha256(data), len(data)
    if want is None or got != want.sha256 or size != want.size:
        expected = want.sha256[:12] if want else "(none listed)"
        raise RegistryError(f"hash mismatch for {name} of {where}: expected sha256 "
                            f"{expected}..., got {got[:12]}... "
                            "(corrupted download or changed file); nothing was written")


def unpack(archive: bytes | Path, manifest: Manifest | Mapping[str, Any], dest: Path,
           where: str, edge: dict[str, bytes] | None = None, limit: int | None = None) -> Path:
    """Extract into `dest`/<model> after checking every file against the manifest; the
    directory appears whole (renamed into place) or not at all. `edge` files (checked by the
    caller) go to `dest`/edge/ the same way.

    Bounded while unpacking, before any content is trusted: no more members than the
    manifest lists, no member it does not list, no more than `limit` bytes in all
    (CI_GEN_MODEL_MAX_BYTES), each member's hash checked as it is written."""
    manifest = as_manifest(manifest, where)
    limit = max_bytes() if limit is None else limit
    dest = Path(dest)
    target = dest / manifest.model
    for there in (target, dest / EDGE_DIR) if edge else (target,):
        if there.exists():
            raise RegistryError(f"{shown(str(there))} already exists; remove it or choose "
                                "another --out")
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".ci-gen-download-"))
    try:
        seen: set[str] = set()
        total = 0
        source = ({"name": archive} if isinstance(archive, Path)
                  else {"fileobj": io.BytesIO(archive)})
        with tarfile.open(mode="r:gz", **source) as tar:
            for member in tar:
                name = member.name
                parts = name.split("/")
                if not member.isfile() or name.startswith("/") or ".." in parts \
                        or parts[0] != manifest.model or not name.isprintable():
                    raise RegistryError(f"{ARCHIVE} of {where} holds an unsafe entry "
                                        f"{shown(name)}")
                if name not in manifest.contents or name in seen:
                    raise RegistryError(f"{ARCHIVE} of {where} holds {shown(name)}, which its "
                                        "manifest does not list (once); nothing was written")
                total += member.size
                if total > limit:
                    raise RegistryError(f"{ARCHIVE} of {where} unpacks to more than the {limit} "
                                        "bytes allowed (CI_GEN_MODEL_MAX_BYTES); nothing was "
                                        "written")
                seen.add(name)
                out = tmp / name
                out.parent.mkdir(parents=True, exist_ok=True)
                if _copy(tar.extractfile(member), out, member.size) != manifest.contents[name]:
                    raise RegistryError(f"the files in {ARCHIVE} of {where} do not match its "
                                        f"manifest ({shown(name)}); nothing was written")
        if seen != set(manifest.contents):
            raise RegistryError(f"the files in {ARCHIVE} of {where} do not match its manifest; "
                                "nothing was written")
        if edge:
            (tmp / ".edge").mkdir()
            for name, data in edge.items():
                (tmp / ".edge" / name).write_bytes(data)
            os.replace(tmp / ".edge", dest / EDGE_DIR)
        os.replace(tmp / manifest.model, target)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile):
        raise RegistryError(f"{ARCHIVE} of {where} is not a readable archive") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _copy(src: Any, out: Path, size: int) -> str:
    """Write one member in pieces (never whole in memory); its sha256."""
    digest = hashlib.sha256()
    left = size
    with open(out, "wb") as fh:
        while left > 0:
            chunk = src.read(min(left, 1024 * 1024))
            if not chunk:
                break
            left -= len(chunk)
            digest.update(chunk)
            fh.write(chunk)
    return digest.hexdigest()
