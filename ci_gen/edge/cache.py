"""edge-convert's reuse: measurements kept under a key of everything they depend on.

The key hashes ci-gen's version, the SavedModel's files, the data's DVC pointer, the loader's
source file and the sample counts. An unchanged model (most merge requests) is then not
converted again, and nothing is installed: the component keeps DIR in GitLab's `cache:`.
The gate is judged afresh from the cached figures, so new thresholds apply at once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from ci_gen import __version__
from ci_gen.files import atomic_write

KEEP = 5  # entries kept; older ones are removed after each store
RESULT = "measured.json"


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


def load(cache: Path, entry: str) -> tuple[dict[str, Any], dict[str, bytes]] | None:
    """(measurements, .tflite bytes by variant) of an entry, or None when absent or damaged."""
    folder = cache / entry
    try:
        measured = json.loads((folder / RESULT).read_text(encoding="utf-8"))
        blobs = {row["name"]: (folder / f"{row['name']}.tflite").read_bytes()
                 for row in measured["variants"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return measured, blobs


def store(cache: Path, entry: str, measured: dict[str, Any], blobs: dict[str, bytes]) -> None:
    folder = cache / entry
    for name, blob in blobs.items():
        atomic_write(folder / f"{name}.tflite", blob)
    atomic_write(folder / RESULT, json.dumps(measured) + "\n")  # last: marks the entry whole
    entries = sorted((p for p in cache.iterdir() if p.is_dir()),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
