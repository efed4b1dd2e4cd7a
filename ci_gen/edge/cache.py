"""edge-convert's reuse: measurements kept under a key of everything they depend on.

The key hashes ci-gen's version, the SavedModel's files, the data's DVC pointer, the loader's
source file and the sample counts. An unchanged model (most merge requests) is then not
converted again, and nothing is installed: the component keeps DIR in GitLab's `cache:`.
The gate is judged afresh from the cached figures, so new thresholds apply at once.

A cache comes back from GitLab's cache archive, which anyone who can run a pipeline of the
project can write: an entry is hostile until checked. It is used only when its measured.json
parses as the `Measured` this module writes (a StrictModel: unknown fields, NaN, a variant
name that is not one of the three refused), its folder and files lie inside the cache and the
project (no symlink out), and every .tflite file has the size and sha256 recorded when it was
measured. Anything else is a cache miss with one line: the model is converted and measured
again, and the figures the parity gate judges are never ones a poisoned entry supplied.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from pydantic import Field, field_validator

from ci_gen import __version__
from ci_gen.errors import CiGenError
from ci_gen.files import TooLarge, atomic_write, read_limited
from ci_gen.parse import ParseError, StrictModel, parse_json

KEEP = 5  # entries kept; older ones are removed after each store
RESULT = "measured.json"
MAX_RESULT_BYTES = 1024 * 1024
_ENTRY = re.compile(r"[0-9a-f]{32}")  # what key() returns
Share = Annotated[float, Field(ge=0, le=1)]


class Reference(StrictModel):
    size_bytes: int = Field(ge=0)
    accuracy: Share
    latency_p50_ms: float = Field(ge=0)


class Variant(StrictModel):
    # One of the three conversions: a name is also a file name, so nothing else (no `../`).
    name: Literal["float32", "dynamic-range", "int8"]
    size_bytes: int = Field(ge=0)
    accuracy: Share
    agreement: Share
    latency_p50_ms: float = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # of the .tflite file the figures are of


class Measured(StrictModel):
    """measured.json: the figures of one model, as `_measure` in ci_gen.edge.convert made them."""

    model: str
    loader: str
    test_samples: int = Field(ge=1)
    representative_samples: int = Field(ge=1)
    reference: Reference
    variants: list[Variant] = Field(min_length=3, max_length=3)

    @field_validator("variants")
    @classmethod
    def _each_once(cls, rows: list[Variant]) -> list[Variant]:
        if sorted(r.name for r in rows) != sorted(("float32", "dynamic-range", "int8")):
            raise ValueError("must hold float32, dynamic-range and int8 once each")
        return rows


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def key(root: Path, saved: Path, data: str, loader: str, counts: tuple[int, int]) -> str:
    h = hashlib.sha256()

    def add(label: str, payload: bytes) -> None:
        h.update(f"{label}\0{len(payload)}\0".encode() + payload)

    add("version", __version__.encode())
    add("flags", json.dumps([loader, *counts]).encode())
    for path in sorted(p for p in saved.rglob("*") if p.is_file()):
        add(f"model/{path.relative_to(saved).as_posix()}", path.read_bytes())
    pointer = root / data if data else None
    add("data", pointer.read_bytes() if pointer is not None and pointer.is_file() else b"")
    add("loader", _loader_source(root, loader.split(":")[0]))
    return h.hexdigest()[:32]


def _loader_source(root: Path, module: str) -> bytes:
    """The loader module's file, located without importing it."""
    sys.path.insert(0, str(root.resolve()))
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    finally:
        sys.path.pop(0)
    origin = Path(spec.origin) if spec is not None and spec.origin else None
    return origin.read_bytes() if origin is not None and origin.is_file() else b""


def load(cache: Path, entry: str, root: Path = Path("."),
         say: Callable[[str], None] = print) -> tuple[dict[str, Any], dict[str, bytes]] | None:
    """(measurements, .tflite bytes by variant) of an entry; None when it is absent, or (with
    one line saying why) when it is damaged or poisoned: a cache miss either way."""
    folder = cache / entry
    if not (folder / RESULT).exists() and not (folder / RESULT).is_symlink():
        return None
    try:
        return _verified(cache, folder, entry, root)
    except CiGenError as exc:
        say(f"edge-convert: cache entry {entry} not used: {exc}")
        return None


def _verified(cache: Path, folder: Path, entry: str,
              root: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    if not _ENTRY.fullmatch(entry):
        raise CiGenError("not an entry name edge-convert writes")
    result = folder / RESULT
    _inside(result, cache, root)
    raw = _read(result, MAX_RESULT_BYTES)
    try:
        measured = parse_json(Measured, raw, f"{RESULT}")
    except ParseError as exc:
        raise CiGenError(str(exc)) from None
    blobs = {}
    for row in measured.variants:
        path = folder / f"{row.name}.tflite"
        _inside(path, cache, root)
        blob = _read(path, row.size_bytes)
        if len(blob) != row.size_bytes or sha256(blob) != row.sha256:
            raise CiGenError(f"{path.name} is not the file its figures were measured on "
                             f"(size or sha256 differs)")
        blobs[row.name] = blob
    return measured.model_dump(), blobs


def _inside(path: Path, cache: Path, root: Path) -> None:
    """PATH, symlinks resolved, lies inside the cache and inside the project."""
    real = path.resolve()
    for outer, what in ((cache, "the cache"), (root, "the project")):
        if not real.is_relative_to(outer.resolve()):
            raise CiGenError(f"{path.name} lies outside {what} (a symlink out of it)")


def _read(path: Path, limit: int) -> bytes:
    try:
        return read_limited(path, limit)
    except TooLarge:
        raise CiGenError(f"{path.name} is larger than recorded") from None
    except OSError as exc:
        raise CiGenError(f"cannot read {path.name}: {exc.strerror}") from None


def store(cache: Path, entry: str, measured: dict[str, Any], blobs: dict[str, bytes],
          root: Path = Path("."), say: Callable[[str], None] = print) -> None:
    """Keep the entry, unless the cache directory leads out of the project (then one line,
    nothing written: the job's results do not depend on the cache)."""
    folder = cache / entry
    try:
        _inside(folder, cache, root)
        _inside(cache, root, root)
    except CiGenError as exc:
        say(f"edge-convert: not caching the measurements: {exc}")
        return
    for name, blob in blobs.items():
        atomic_write(folder / f"{name}.tflite", blob)
    atomic_write(folder / RESULT, json.dumps(measured) + "\n")  # last: marks the entry whole
    entries = sorted((p for p in cache.iterdir() if p.is_dir() and not p.is_symlink()),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
