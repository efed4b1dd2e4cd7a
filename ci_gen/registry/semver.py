"""Model version numbers: SemVer, as GitLab's registry requires (semver.org, 2.0.0)."""

from __future__ import annotations

import re
from typing import Iterable

from ci_gen.errors import shown
from ci_gen.registry.client import RegistryError

_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?")
# Branch pipelines before any release: 0.x says "not a promised interface yet".
FIRST = "0.1.0"


def parse(text: str) -> tuple | None:
    """A sort key by SemVer precedence, or None when `text` is not SemVer."""
    m = _SEMVER.fullmatch(text)
    if not m:
        return None
    core = tuple(int(m.group(i)) for i in (1, 2, 3))
    pre = m.group(4)
    if pre is None:
        return core + ((1,),)  # a release ranks above its pre-releases
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return core + ((0,) + parts,)


def from_tag(tag: str) -> str:
    """The version a git tag names: `v1.2.0` or `1.2.0`."""
    version = tag[1:] if tag[:1] in ("v", "V") else tag
    if parse(version) is None:
        raise RegistryError(f"tag {shown(tag)} is not a SemVer version (e.g. v1.2.0): "
                            "GitLab's model registry takes SemVer versions only")
    return version


def next_patch(existing: Iterable[str]) -> str:
    """The next patch after the highest existing version (FIRST when there is none)."""
    keyed = [(k, v) for v in existing if (k := parse(v)) is not None]
    if not keyed:
        return FIRST
    major, minor, patch, rank = max(keyed)[0]
    # After a pre-release (1.1.0-rc1) the release itself comes next.
    return f"{major}.{minor}.{patch if rank[0] == 0 else patch + 1}"
