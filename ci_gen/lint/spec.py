"""`spec: inputs:` of any CI file: check given inputs and interpolate `$[[ inputs.x ]]`.

Used for component files (interpolated with their defaults, so typed fields such as
`tags: $[[ inputs.tags ]]` are checked as arrays) and for local includes with `inputs:`.
"""

from __future__ import annotations

import re
from typing import Any

from ci_gen.inputs import regex_problem
from ci_gen.render import interpolate as _interpolate

# `$[[ inputs.x ]]`, also with interpolation functions (`| expand_vars`, `| truncate(0,8)`).
_ANY_PLACEHOLDER = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*(\|[^\]]*)?\]\]")
_TYPES = {"string": str, "number": (int, float), "boolean": bool, "array": list}


def declared(header: Any) -> dict[str, dict]:
    """The inputs a header declares, each as a dict (an empty entry means a required string)."""
    spec = header.get("spec") if isinstance(header, dict) else None
    inputs = spec.get("inputs") if isinstance(spec, dict) else None
    if not isinstance(inputs, dict):
        return {}
    return {str(k): (v if isinstance(v, dict) else {}) for k, v in inputs.items()}


def _placeholder_value(name: str, conf: dict) -> Any:
    """A stand-in for a required input when there is no value: typed, so the schema sees
    the right shape; strings keep the placeholder text."""
    kind = conf.get("type", "string")
    if isinstance(conf.get("options"), list) and conf["options"]:
        return conf["options"][0]
    return {"number": 0, "boolean": False, "array": []}.get(kind, f"$[[ inputs.{name} ]]")


def _value_problem(name: str, conf: dict, value: Any, *, default: bool) -> str | None:
    """GitLab's checks of one value (a default or a given value): type, options, regex."""
    kind = conf.get("type", "string")
    expected = _TYPES.get(kind)
    which = "default" if default else "value"
    if expected and (not isinstance(value, expected) or (kind == "number" and isinstance(value, bool))):
        return f"input {name!r}: {which} must be of type {kind}, got {value!r}"
    options = conf.get("options")
    if isinstance(options, list) and value not in options:
        return f"input {name!r}: {which} must be one of {', '.join(map(str, options))}; got {value!r}"
    regex = conf.get("regex")
    if isinstance(regex, str) and kind == "string":
        return regex_problem(name, regex, value, default=default)
    return None


def header_problems(inputs: dict[str, dict]) -> list[tuple[tuple, str]]:
    """(header key, message) for each input GitLab refuses whatever the caller gives: a regex
    RE2 cannot compile, a default that breaks its own type, options or regex (GitLab checks
    the default of every optional input, see ci_gen.inputs.regex_problem). One per input."""
    out: list[tuple[tuple, str]] = []
    for name, conf in inputs.items():
        key = ("spec", "inputs", name)
        regex = conf.get("regex")
        refused = regex_problem(name, regex, None, default=True) if isinstance(regex, str) else None
        if refused:
            out.append((key + ("regex",), refused))
        elif "default" in conf:
            problem = _value_problem(name, conf, conf["default"], default=True)
            if problem:
                out.append((key + ("default",), problem))
    return out


def resolve(inputs: dict[str, dict], given: dict, *, required_ok: bool = False) -> tuple[dict, list[str]]:
    """(values, problems): the header's own problems, given values checked against
    type/options/regex as GitLab does, defaults filled.

    With `required_ok`, a missing required input gets a stand-in instead of a problem
    (linting a component on its own, with nobody to give values).
    """
    if not isinstance(given, dict):
        return {n: _placeholder_value(n, c) for n, c in inputs.items()}, ["`inputs:` must be a mapping"]
    own = header_problems(inputs)
    problems = [message for _key, message in own]
    broken = {key[2] for key, _message in own}
    for name in given:
        if name not in inputs:
            problems.append(f"unknown input {name!r}; the file declares: {', '.join(inputs) or 'none'}")
    values: dict[str, Any] = {}
    for name, conf in inputs.items():
        if name in given:
            value = given[name]
        elif "default" in conf:
            value = conf["default"]
        else:
            if not required_ok:
                problems.append(f"input {name!r} is required (it has no default)")
            values[name] = _placeholder_value(name, conf)
            continue
        values[name] = value
        if name in given and name not in broken:  # one error per input: its header's, if any
            problem = _value_problem(name, conf, value, default=False)
            if problem:
                problems.append(problem)
    return values, problems


def _names(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            _names(k, out)
            _names(v, out)
    elif isinstance(node, list):
        for v in node:
            _names(v, out)
    elif isinstance(node, str):
        out.update(m.group(1) for m in _ANY_PLACEHOLDER.finditer(node))
    return out


def used(body: Any) -> set[str]:
    """Names of the inputs a body refers to."""
    return _names(body, set())


def _strip_functions(node: Any) -> Any:
    # GitLab applies functions such as `expand_vars` when it interpolates; for checking the
    # shape of the result the plain value is enough.
    if isinstance(node, dict):
        return {_strip_functions(k): _strip_functions(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_strip_functions(v) for v in node]
    if isinstance(node, str) and "$[[" in node:
        return _ANY_PLACEHOLDER.sub(lambda m: f"$[[ inputs.{m.group(1)} ]]", node)
    return node


def interpolate(body: Any, values: dict[str, Any]) -> Any:
    """The body with every placeholder replaced, as GitLab does when it includes the file.
    Inputs the body uses but `values` lacks are left as they are."""
    values = dict(values)
    for name in used(body) - set(values):
        values[name] = f"$[[ inputs.{name} ]]"
    return _interpolate(_strip_functions(body), values)


def translate(path: tuple, interpolated: Any, raw: Any) -> tuple:
    """The raw document's key path for a path in its interpolated copy (keys such as
    `$[[ inputs.job-prefix ]]-train` change; their order does not)."""
    out: list[Any] = []
    for part in path:
        if isinstance(interpolated, dict) and isinstance(raw, dict):
            keys = list(interpolated)
            if part not in interpolated:
                break
            index = keys.index(part)
            raw_keys = list(raw)
            if index >= len(raw_keys):
                break
            out.append(raw_keys[index])
            interpolated, raw = interpolated[part], raw[raw_keys[index]]
        elif isinstance(interpolated, list) and isinstance(raw, list) and isinstance(part, int):
            if part >= len(raw) or part >= len(interpolated):
                break
            out.append(part)
            interpolated, raw = interpolated[part], raw[part]
        else:
            break
    return tuple(out)
