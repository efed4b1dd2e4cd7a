"""A release tag against the tree it points at: `__version__`, the CHANGELOG section of that
version (which becomes the release notes) and the versions the templates pin."""

from __future__ import annotations

import re
from pathlib import Path

from ci_gen.errors import CiGenError, shown
from ci_gen.patterns import RE_RELEASE_TAG

_VERSION = re.compile(r'^__version__ = "([^"]*)"$', re.M)
_HEADING = re.compile(r"^## (\S+)(.*)$", re.M)
# What a rendered component pins: `"ci-gen==X"` for user images, `/runtime:X` for its image.
_PINS = re.compile(r'ci-gen==([^"\s]+)"|/runtime:([^"\s]+)')


def image_tags(version: str) -> list[str]:
    """The runtime image's tags for a release: X.Y.Z, X.Y and X (each moves to the newest)."""
    check_tag(version)
    major, minor, _patch = version.split(".")
    return [version, f"{major}.{minor}", major]


def check_tag(tag: str) -> None:
    if not re.fullmatch(RE_RELEASE_TAG, tag):
        raise CiGenError(f"release: tag {shown(tag)} is not a version X.Y.Z")


def package_version(root: Path) -> str:
    text = (root / "ci_gen" / "__init__.py").read_text(encoding="utf-8")
    m = _VERSION.search(text)
    if m is None:
        raise CiGenError("release: ci_gen/__init__.py has no __version__ line")
    return m.group(1)


def notes(changelog: str, version: str) -> str:
    """The body of the CHANGELOG section `## VERSION ...`, up to the next `## ` heading."""
    headings = list(_HEADING.finditer(changelog))
    for i, m in enumerate(headings):
        if m.group(1) != version:
            continue
        if "unreleased" in m.group(2).lower():
            raise CiGenError(f"release: CHANGELOG.md still calls {version} unreleased; "
                             "date its heading in the release commit")
        end = headings[i + 1].start() if i + 1 < len(headings) else len(changelog)
        body = changelog[m.end():end].strip()
        if not body:
            raise CiGenError(f"release: CHANGELOG.md section {version} is empty")
        return body + "\n"
    raise CiGenError(f"release: CHANGELOG.md has no section `## {version}`")


def template_pins(templates: Path) -> dict[str, set[str]]:
    """Each template's pinned ci-gen versions (ci-gen==X and runtime:X)."""
    pins = {}
    for path in sorted(templates.glob("*.yml")):
        found = {a or b for a, b in _PINS.findall(path.read_text(encoding="utf-8"))}
        if found:
            pins[path.name] = found
    return pins


def check(root: Path, tag: str) -> str:
    """The release notes for TAG, or CiGenError naming the first thing that does not match."""
    check_tag(tag)
    version = package_version(root)
    if version != tag:
        raise CiGenError(f"release: tag {tag} but ci_gen/__init__.py says {shown(version)}")
    body = notes((root / "CHANGELOG.md").read_text(encoding="utf-8"), tag)
    pins = template_pins(root / "templates")
    if not pins:
        raise CiGenError("release: templates/ pins no ci-gen version; run `ci-gen build`")
    for name, found in pins.items():
        if found != {tag}:
            other = ", ".join(sorted(found - {tag}))
            raise CiGenError(f"release: templates/{name} pins ci-gen {other}, not {tag}; run `ci-gen build`")
    return body
