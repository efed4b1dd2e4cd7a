"""Load every YAML document of a CI file, with the line and column of each key.

GitLab reads CI files with a YAML 1.1 loader (Ruby's Psych), as PyYAML does, and accepts
its own `!reference [job, key]` tag. Positions let findings point at `file:line:col`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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


# Aliases are shared, not copied, when loading; every check walks the expanded tree, so a
# "billion laughs" file is refused before it is walked.
MAX_NODES = 200_000


class _Shape(Exception):
    pass


def _check_shape(data: Any) -> None:
    """Refuse self-referring aliases and trees that expand past MAX_NODES."""
    count = 0
    on_path: set[int] = set()

    def walk(node: Any) -> None:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise _Shape(f"more than {MAX_NODES} values once aliases are expanded")
        if isinstance(node, (dict, list)):
            if id(node) in on_path:
                raise _Shape("an alias refers to a node that contains it")
            on_path.add(id(node))
            for child in (node.values() if isinstance(node, dict) else node):
                walk(child)
            on_path.discard(id(node))

    walk(data)


def parse(text: str, name: str) -> list[Document]:
    """All documents of `text`; malformed YAML raises one `name:line:col:` CiGenError."""
    loader = Loader(text)
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            data = loader.construct_document(node)
            try:
                _check_shape(data)
            except _Shape as exc:
                mark = node.start_mark
                raise CiGenError(f"{name}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {exc}") from None
            marks: dict[Key, tuple[int, int]] = {}
            _walk(node, (), marks, set())
            start = (node.start_mark.line + 1, node.start_mark.column + 1)
            docs.append(Document(data, marks, start))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = exc.problem or exc.context or "cannot parse"
        raise CiGenError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:  # reader errors (bad bytes) carry no mark
        raise CiGenError(f"{name}: invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise CiGenError(f"{name}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    return docs


def read(path: Path, name: str | None = None) -> tuple[str, list[Document]]:
    """The text of a CI file and its documents."""
    name = name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CiGenError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise CiGenError(f"{name}: is a directory, not a CI file") from None
    except UnicodeDecodeError:
        raise CiGenError(f"{name}: not UTF-8 text") from None
    except OSError as exc:
        raise CiGenError(f"{name}: cannot read: {exc.strerror}") from None
    return text, parse(text, name)
