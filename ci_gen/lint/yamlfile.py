"""Load every YAML document of a CI file, with the line and column of each key.

GitLab reads CI files with a YAML 1.1 loader (Ruby's Psych), as PyYAML does, and accepts
its own `!reference [job, key]` tag. Positions let findings point at `file:line:col`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ci_gen import yamlload
from ci_gen.errors import CiGenError
from ci_gen.includes import Loader

Key = tuple[Any, ...]  # a path into the data: mapping keys and list indexes


@dataclass
class Document:
    """One YAML document: its data and where each key or list item starts (1-based)."""

    data: Any
    marks: dict[Key, tuple[int, int]] = field(default_factory=dict)
    start: tuple[int, int] = (1, 1)

    def where(self, path: Key) -> str:
        """`line:col` of the deepest known part of `path`."""
        path = tuple(str(p) if not isinstance(p, int) else p for p in path)
        while path:
            if path in self.marks:
                line, col = self.marks[path]
                return f"{line}:{col}"
            path = path[:-1]
        return f"{self.start[0]}:{self.start[1]}"


def _walk(node: yaml.Node, path: Key, marks: dict[Key, tuple[int, int]], seen: set[int]) -> None:
    # Aliases share nodes; walking one twice could loop on recursive anchors.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            sub = path + (key_node.value,)
            marks.setdefault(sub, (key_node.start_mark.line + 1, key_node.start_mark.column + 1))
            _walk(value_node, sub, marks, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            sub = path + (index,)
            marks.setdefault(sub, (item.start_mark.line + 1, item.start_mark.column + 1))
            _walk(item, sub, marks, seen)


def parse(text: str, name: str) -> list[Document]:
    """All documents of `text`; malformed YAML, or YAML over the limits every YAML file ci-gen
    reads has (ci_gen.yamlload: depth, aliases expanded, size), raises one `name:line:col:`
    CiGenError."""
    yamlload.check(text, name, Loader)
    loader = Loader(text)
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            data = loader.construct_document(node)
            marks: dict[Key, tuple[int, int]] = {}
            _walk(node, (), marks, set())
            start = (node.start_mark.line + 1, node.start_mark.column + 1)
            docs.append(Document(data, marks, start))
    except yaml.YAMLError as exc:
        raise yamlload.problem(exc, name) from None
    except RecursionError:
        raise CiGenError(f"{name}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    return docs


def read(path: Path, name: str | None = None) -> tuple[str, list[Document]]:
    """The text of a CI file and its documents."""
    name = name or str(path)
    text = yamlload.read_text(path, name, what="CI file")
    return text, parse(text, name)
