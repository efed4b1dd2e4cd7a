"""Writing files so that none is ever half-written: the one home for atomic writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ci_gen.errors import CiGenError


def atomic_write(path: Path | str, data: bytes | str, *, mode: int | None = None,
                 encoding: str = "utf-8") -> None:
    """Write `data` to `path` through a temporary file in the same directory, then rename.

    Readers see the old content or the new one, never a part. `mode` sets the permission
    bits (default: 0o644, like a file created under the usual umask). An OS failure is one
    CiGenError naming the file; the temporary file is removed.
    """
    path = Path(path)
    raw = data.encode(encoding) if isinstance(data, str) else data
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.chmod(tmp, 0o644 if mode is None else mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise CiGenError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def user_cache_dir() -> Path:
    """ci-gen's per-user cache: $XDG_CACHE_HOME/ci-gen, else ~/.cache/ci-gen."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ci-gen"


class TooLarge(ValueError):
    """A file is larger than its reader allows."""


def read_limited(path: Path | str, limit: int) -> bytes:
    """The bytes of a file nobody vouches for, reading no more than `limit` + 1 of them:
    TooLarge past `limit`; OSError as open() raises it."""
    with open(path, "rb") as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise TooLarge(f"larger than {limit} bytes")
    return raw
