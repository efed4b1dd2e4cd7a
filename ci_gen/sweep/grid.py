"""A sweep cell's params: read from its matrix variables, checked against the params file,
and written into it with comments and order kept.

A variable names a params key with `__` for nesting (`train__learning_rate` is
`train.learning_rate`); only keys the params file already has can be swept, so a typo is an
error, not a silent new key every cell ignores. Values are plain words (RE_SWEEP_VALUE) turned
into YAML scalars: `0.001` a float, `64` an int, `true` a bool, anything else a string.
"""

from __future__ import annotations

import io
import re
from typing import Any, Mapping

from ci_gen.errors import CiGenError, shown
from ci_gen.evaluation.metrics import flatten
from ci_gen.inputs import GITLAB_MATRIX_LIMIT
from ci_gen.patterns import RE_NUMBER, RE_SWEEP_VALUE, RE_SWEEP_VARIABLE


def variable(path: str) -> str:
    """`train.learning_rate` -> `train__learning_rate`."""
    return path.replace(".", "__")


def scalar(text: str) -> Any:
    """A matrix value as the YAML scalar it stands for."""
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(RE_NUMBER, text):
        return int(text) if re.fullmatch(r"-?[0-9]+", text) else float(text)
    return text


def _yaml() -> Any:
    from ruamel.yaml import YAML  # DVC's own YAML library (its --set-param keeps comments too)

    yaml = YAML()
    yaml.preserve_quotes = True
    return yaml


def load(text: str, name: str) -> Any:
    """The params file, round-trip loaded (comments kept), after the checks every YAML file
    ci-gen reads passes (ci_gen.yamlload: depth, aliases, size), so nothing walking it later
    can hang or recurse without end."""
    from ruamel.yaml.error import YAMLError

    from ci_gen import yamlload

    try:
        yamlload.check(text, name)
    except yamlload.YamlError as exc:
        raise CiGenError(f"sweep: {exc}") from None
    try:
        data = _yaml().load(text)
    except RecursionError:
        raise CiGenError(f"sweep: {name}: invalid YAML: nested too deeply") from None
    except YAMLError as exc:
        raise CiGenError(f"{name} is not valid YAML: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(data, Mapping):
        raise CiGenError(f"{name} must hold a mapping of params")
    return data


def cell_params(env: Mapping[str, str], params: Any, name: str) -> dict[str, Any]:
    """{param path: value} of this cell: the variables that name a key of the params file.

    A variable whose first part is a section of the file but which names no key of it is an
    unknown param; other variables are not the sweep's (the job's environment has many).
    """
    known = {variable(path): path for path in flatten(params)}
    sections = {str(k) for k, v in params.items() if isinstance(v, Mapping)}
    out: dict[str, Any] = {}
    for var, value in sorted(env.items()):
        if var in known:
            if not re.fullmatch(RE_SWEEP_VALUE, value):
                raise CiGenError(f"sweep: {var}={shown(value, limit=60)} is not one plain word "
                                 f"(a number, true/false or a name)")
            out[known[var]] = scalar(value)
        elif "__" in var and var.split("__", 1)[0] in sections and re.fullmatch(RE_SWEEP_VARIABLE, var):
            raise CiGenError(f"sweep: unknown param {var.replace('__', '.')} (matrix variable {var}): "
                             f"{name} has no such key")
    if not out:
        raise CiGenError(f"sweep: empty sweep: no matrix variable names a key of {name} "
                         f"(write train.learning_rate as train__learning_rate)")
    return out


def unknown_variables(matrix: list[dict[str, list[str]]], params: Any) -> list[str]:
    """The matrix variables (all of them the sweep's) that name no key of the params file."""
    known = {variable(path) for path in flatten(params)}
    return [var for entry in matrix for var in entry if var not in known]


def node(env: Mapping[str, str], max_cells: int) -> tuple[int, int]:
    """(index, total) of this cell (CI_NODE_INDEX, CI_NODE_TOTAL), within max_cells."""
    if not 1 <= max_cells <= GITLAB_MATRIX_LIMIT:
        raise CiGenError(f"sweep: --max-cells must be from 1 to {GITLAB_MATRIX_LIMIT}, got {max_cells}")
    index, total = env.get("CI_NODE_INDEX", ""), env.get("CI_NODE_TOTAL", "")
    if not (index.isdigit() and total.isdigit()):
        raise CiGenError("sweep: CI_NODE_INDEX/CI_NODE_TOTAL are not set: a cell runs as a "
                         "`parallel: matrix` job")
    i, n = int(index), int(total)
    if n > max_cells:
        raise CiGenError(f"sweep: the sweep has {n} cells, more than max-cells ({max_cells}): "
                         f"shrink the matrix or raise max-cells")
    if not 1 <= i <= n:
        raise CiGenError(f"sweep: cell {i} is outside the sweep's {n} cells")
    return i, n


def apply(text: str, changes: Mapping[str, Any], name: str) -> str:
    """The params file's text with `changes` set (existing keys only; comments kept)."""
    data = load(text, name)
    for path, value in changes.items():
        *parents, key = path.split(".")
        target = data
        for part in parents:
            target = target.get(part) if isinstance(target, Mapping) else None
        if not isinstance(target, Mapping) or key not in target or isinstance(target[key], Mapping):
            raise CiGenError(f"sweep: unknown param {path}: {name} has no such key")
        target[key] = value
    out = io.StringIO()
    _yaml().dump(data, out)
    return out.getvalue()


def label(params: Mapping[str, Any]) -> str:
    """`learning_rate=0.003, dropout=0.1`: a cell's params, by their last parts when unique."""
    short = [p.rsplit(".", 1)[-1] for p in params]
    names = short if len(set(short)) == len(short) else list(params)
    return ", ".join(f"{n}={_text(v)}" for n, v in zip(names, params.values()))


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
