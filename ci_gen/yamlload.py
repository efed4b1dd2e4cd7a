"""The one way ci-gen reads YAML it did not write: CI files (lint), params.yaml, metrics,
DVC pointers and lock files, sweep files.

A YAML file is hostile until checked. Before anything walks or copies its data:
- at most MAX_BYTES, UTF-8 (else one line, not a UnicodeDecodeError);
- at most MAX_DEPTH levels of nesting, checked on the parser's event stream, which is not
  recursive: a 5000-deep file is one line, not a RecursionError;
- at most MAX_NODES values once aliases are expanded, and no alias inside the node it names,
  counted on the composed node graph (aliases shared, sizes memoised): a 948-byte "billion
  laughs" file is refused in milliseconds instead of growing to gigabytes when a caller
  flattens it. Aliases also count towards the depth (an alias of a deep node, nested deep).
Every failure is one `name:line:col: invalid YAML: ...` CiGenError.

`load` gives the data (PyYAML, YAML 1.1 as GitLab's Psych reads it); `check` is for callers
that parse with another loader after it (lint's own with `!reference`, the sweep's round-trip
ruamel.yaml that keeps comments).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ci_gen.errors import CiGenError
from ci_gen.files import TooLarge, read_limited

MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 100
MAX_NODES = 200_000


class YamlError(CiGenError):
    """A YAML file is unreadable, malformed or over a limit."""


def read_text(path: Path, name: str | None = None, what: str = "YAML file",
              max_bytes: int = MAX_BYTES) -> str:
    """The text of `path`, or one line naming `name`: missing, a directory, too large, not
    UTF-8, unreadable."""
    name = name or str(path)
    try:
        raw = read_limited(path, max_bytes)
    except TooLarge:
        raise YamlError(f"{name}: larger than {max_bytes // (1024 * 1024)} MiB") from None
    except FileNotFoundError:
        raise YamlError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise YamlError(f"{name}: is a directory, not a {what}") from None
    except OSError as exc:
        raise YamlError(f"{name}: cannot read: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"{name}: not UTF-8 text (byte {exc.start})") from None


def check(text: str, name: str, loader: type = yaml.SafeLoader) -> None:
    """Refuse `text` (one line) when it is malformed or over a limit; see the module doc."""
    if len(text) > MAX_BYTES:
        raise YamlError(f"{name}: larger than {MAX_BYTES // (1024 * 1024)} MiB")
    limited = _limited(loader)
    with _errors(name):
        depth = 0
        for event in yaml.parse(text, Loader=limited):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _at(name, event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        for node in yaml.compose_all(text, Loader=loader):
            if node is not None:
                _check_graph(node, name)


def load(text: str, name: str, loader: type = yaml.SafeLoader) -> Any:
    """The one document of `text`, checked (see `check`)."""
    check(text, name, loader)
    with _errors(name):
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader, checked above


def read(path: Path, name: str | None = None) -> Any:
    """The one document of the YAML file `path`, read and checked."""
    name = name or str(path)
    return load(read_text(path, name), name)


def problem(exc: yaml.YAMLError, name: str) -> YamlError:
    """A PyYAML error as one `name:line:col: invalid YAML: ...` line."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        text = exc.problem or exc.context or "cannot parse"
        return _at(name, mark, text) if mark else YamlError(f"{name}: invalid YAML: {text}")
    lines = str(exc).splitlines()  # reader errors (bad bytes) carry no mark
    return YamlError(f"{name}: invalid YAML: {lines[0] if lines else type(exc).__name__}")


class _errors:
    """PyYAML's errors (and a recursion it should never reach) as one YamlError line."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if isinstance(exc, yaml.YAMLError):
            raise problem(exc, self.name) from None
        if isinstance(exc, RecursionError):
            raise YamlError(f"{self.name}: invalid YAML: nested too deeply") from None
        return False


_LIMITED: dict[type, type] = {}


def _limited(loader: type) -> type:
    """`loader` whose scanner refuses flow collections (`[`, `{`) nested past MAX_DEPTH as it
    meets them: PyYAML scans ahead through a run of `[[[[` (each may start a simple key) and
    checks every open level for each token, so 5,000 of them cost seconds and a megabyte of
    them hours before the first event could be counted."""
    if loader not in _LIMITED:
        def deeper(self: Any, start: Any) -> None:
            if self.flow_level >= MAX_DEPTH:
                raise yaml.scanner.ScannerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                self.get_mark())
            start(self)

        base_seq, base_map = loader.fetch_flow_sequence_start, loader.fetch_flow_mapping_start
        _LIMITED[loader] = type(f"Limited{loader.__name__}", (loader,), {
            "fetch_flow_sequence_start": lambda self: deeper(self, base_seq),
            "fetch_flow_mapping_start": lambda self: deeper(self, base_map)})
    return _LIMITED[loader]


def _at(name: str, mark: Any, text: str) -> YamlError:
    return YamlError(f"{name}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {text}")


def _check_graph(root: yaml.Node, name: str) -> None:
    """Expanded size and depth of a composed document, without recursion or expansion:
    post-order over the node graph, each node's (size, depth) memoised by identity."""
    done: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in done:
            continue
        kids = _children(node)
        if not children_done:
            if key in on_path:
                raise _at(name, node.start_mark, "an alias refers to a node that contains it")
            on_path.add(key)
            stack.append((node, True))
            for kid in kids:
                if id(kid) in on_path:
                    raise _at(name, kid.start_mark, "an alias refers to a node that contains it")
                if id(kid) not in done:
                    stack.append((kid, False))
            continue
        on_path.discard(key)
        size = 1 + sum(done[id(k)][0] for k in kids)
        depth = 1 + max((done[id(k)][1] for k in kids), default=0)
        if size > MAX_NODES:
            raise _at(name, root.start_mark,
                      f"more than {MAX_NODES} values once aliases are expanded")
        if depth > MAX_DEPTH + 1:
            raise _at(name, node.start_mark,
                      f"nested more than {MAX_DEPTH} levels deep once aliases are expanded")
        done[key] = (size, depth)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
