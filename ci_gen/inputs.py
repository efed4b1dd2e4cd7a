"""Validate and coerce component input values exactly as the descriptor says.

GitLab enforces `type`, `options` and `regex` when a pipeline is created; ci-gen enforces
the same rules earlier (render, init, lint) so a bad value never reaches a file or a shell.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Iterable

from ci_gen.components import Component, Input
from ci_gen.errors import InputError, UsageError

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # used with fullmatch: no trailing newline
# An array item (tag, path, glob) is one word without shell syntax: GitLab itself never runs
# them through a shell, but gitlab-ci-local (`ci-gen run`) pastes artifacts paths unquoted into
# a bash command, so `$(...)` there would run on the developer's machine. `$NAME`/`${NAME}`
# (CI/CD variables) stay allowed; IFS is not a variable anyone means in a path.
_ITEM_CHAR = r"[^\s`$;|&<>()\\\"'#]"
_ARRAY_ITEM = re.compile(rf"(?:{_ITEM_CHAR}|\$(?!IFS\b)[A-Za-z_][A-Za-z0-9_]*|\$\{{(?!IFS\}})[A-Za-z_][A-Za-z0-9_]*\}})+")


def _show(value: Any) -> str:
    """A value for an error message: quoted, control characters escaped, cut short."""
    text = json.dumps(value, ensure_ascii=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce(inp: Input, raw: Any, where: str) -> Any:
    """Turn a value (from YAML or the command line) into the input's type, or raise."""
    if inp.type == "string":
        if not isinstance(raw, str):
            if isinstance(raw, bool) or raw is None or isinstance(raw, (list, dict)):
                raise InputError(f"{where}: input '{inp.name}' must be a string, got {_show(raw)}")
            raw = str(raw)
        return raw
    if inp.type == "number":
        if isinstance(raw, bool):
            raise InputError(f"{where}: input '{inp.name}' must be a number, got {_show(raw)}")
        if isinstance(raw, float) and not math.isfinite(raw):
            raise InputError(f"{where}: input '{inp.name}' must be a finite number, got {_show(raw)}")
        if isinstance(raw, (int, float)):
            return raw
        if isinstance(raw, str) and _NUMBER.fullmatch(raw):
            return float(raw) if "." in raw else int(raw)
        raise InputError(f"{where}: input '{inp.name}' must be a number, got {_show(raw)}")
    if inp.type == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw in ("true", "false"):
            return raw == "true"
        raise InputError(f"{where}: input '{inp.name}' must be true or false, got {_show(raw)}")
    if inp.type == "array":
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise InputError(
                    f"{where}: input '{inp.name}' must be an array, e.g. '[\"a\", \"b\"]', got {_show(raw)}"
                ) from None
        if not isinstance(raw, list):
            raise InputError(f"{where}: input '{inp.name}' must be an array, got {_show(raw)}")
        for item in raw:
            if not isinstance(item, str) or not item or "\n" in item or len(item) > 200:
                raise InputError(
                    f"{where}: input '{inp.name}' items must be one-line strings, got {_show(item)}"
                )
            if not item.isprintable() or not _ARRAY_ITEM.fullmatch(item):
                raise InputError(
                    f"{where}: input '{inp.name}' items must be single words without quotes, "
                    f"spaces, control characters or shell syntax (` $( ; | & < > \\ #), got {_show(item)}"
                )
        return raw
    raise AssertionError(f"unknown input type {inp.type}")


def check(inp: Input, value: Any, where: str) -> None:
    """Raise when a typed value breaks the input's options or regex."""
    if inp.options is not None and value not in inp.options:
        choices = ", ".join(str(o) for o in inp.options)
        raise InputError(f"{where}: input '{inp.name}' must be one of {choices}; got {_show(value)}")
    if inp.regex is not None and not re.fullmatch(inp.regex.lstrip("^").rstrip("$"), value):
        raise InputError(
            f"{where}: input '{inp.name}' value {_show(value)} does not match {inp.regex}"
        )


def resolve(component: Component, given: dict[str, Any], where: str | None = None) -> dict[str, Any]:
    """All inputs of a component: given values validated, defaults filled in."""
    where = where or component.name
    known = {i.name: i for i in component.inputs}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InputError(  # the name is shown escaped: it may hold newlines or escape codes
            f"{where}: unknown input {_show(unknown[0])}; {component.name} takes: {', '.join(known)}"
        )
    values: dict[str, Any] = {}
    for inp in component.inputs:
        if inp.name in given:
            value = coerce(inp, given[inp.name], where)
        elif inp.required:
            raise InputError(f"{where}: input '{inp.name}' is required")
        else:
            value = inp.default
        if inp.type == "string":
            check(inp, value, where)
        values[inp.name] = value
    return values


def parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """`KEY=VALUE` strings from the command line into a dict (values stay strings)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--input expects KEY=VALUE, got {_show(pair)}")
        out[key] = value
    return out
