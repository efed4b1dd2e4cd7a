"""Reading a pipeline's `include:` entries: the one parser, used by `ci-gen lint` (which
checks what they include) and `ci-gen run` (which resolves them for gitlab-ci-local).

- `Loader`: PyYAML's safe loader plus GitLab's `!reference` tag;
- `items` / `normalise`: `include:` as a string, a mapping or a list, into mappings;
- `parse_component`: a `component:` address, `<host>/<project>/<name>@<version>`;
- `template_name`: the component a `templates/<name>.yml` path names;
- `pins_installed`: whether a version pin is the installed ci-gen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from ci_gen import __version__


class Reference(list):
    """`!reference [.job, script]`: kept as its list of names, which the schema expects."""


class Loader(yaml.SafeLoader):
    """SafeLoader plus GitLab's `!reference` tag."""


def _construct_reference(loader: Loader, node: yaml.Node) -> Reference:
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(
            None, None, "!reference expects a list, e.g. !reference [.job, script]", node.start_mark)
    return Reference(loader.construct_sequence(node, deep=True))


Loader.add_constructor("!reference", _construct_reference)


def items(value: Any) -> list[tuple[tuple, Any]]:
    """(key path, include item) for `include:` as a string, a mapping or a list of them."""
    if value is None:
        return []
    if isinstance(value, list):
        return [(("include", i), item) for i, item in enumerate(value)]
    return [(("include",), value)]


def normalise(item: Any) -> dict | None:
    """An include item as a mapping: a string is a remote URL or a local path (GitLab's
    short form); anything else but a mapping is None (malformed)."""
    if isinstance(item, str):
        return {"remote": item} if re.match(r"^https?://", item) else {"local": item}
    return item if isinstance(item, dict) else None


_HOST = re.compile(r"[^/:\s]+(:\d+)?")


@dataclass(frozen=True)
class ComponentAddress:
    """`<host>/<project>/<name>@<version>`; parts missing from the text are empty (version:
    None without an `@`)."""

    host: str
    project: str
    name: str
    version: str | None

    @property
    def complete(self) -> bool:
        """HOST/GROUP/PROJECT/NAME@VERSION with every part present."""
        return bool(_HOST.fullmatch(self.host) and self.project and self.name and self.version)


def parse_component(text: str) -> ComponentAddress:
    """The parts of a `component:` address (read up to its first `@`)."""
    address, at, version = text.partition("@")
    parts = [p for p in address.split("/") if p]
    return ComponentAddress(parts[0] if len(parts) > 1 else "", "/".join(parts[1:-1]),
                            parts[-1] if parts else "", version if at else None)


_TEMPLATE_FILE = re.compile(r"^/?templates/([A-Za-z0-9_-]+)(?:\.yml|/template\.yml)$")


def template_name(path: str) -> str | None:
    """NAME of `templates/NAME.yml` or `templates/NAME/template.yml` (where ci-gen's
    components live in a project), else None. Whether NAME is a ci-gen component is the
    caller's question."""
    m = _TEMPLATE_FILE.match(path)
    return m.group(1) if m else None


def pins_installed(ref: str | None) -> bool:
    """A version pin (`0.1.0` or `v0.1.0`) that is the installed ci-gen."""
    return ref in (__version__, f"v{__version__}")
