"""Whole trees: prove nothing changed, and that no secret was written anywhere."""

from __future__ import annotations

import hashlib
from pathlib import Path


def tree_hash(root: Path) -> str:
    """A hash of every path, mode and content under root (to prove nothing changed)."""
    h = hashlib.sha256()
    if not root.exists():
        return "absent"
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        h.update(f"{rel}\0{st.st_mode}\0".encode())
        if path.is_file() and not path.is_symlink():
            h.update(path.read_bytes())
    return h.hexdigest()


def scan_secrets(roots: list[Path], secrets: list[str]) -> tuple[int, list[str]]:
    """(files scanned, files holding a secret, relative to their root) under roots.

    `.dvc/config.local` is skipped: it is where `ci-gen job dvc-auth` is meant to write
    credentials (0600, never tracked), so a secret there is not a leak."""
    needles = [s.encode() for s in secrets]
    scanned, hits = 0, []
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or path.is_symlink() or path.name == "config.local":
                continue
            scanned += 1
            if any(n in path.read_bytes() for n in needles):
                hits.append(str(path.relative_to(root)))
    return scanned, hits
