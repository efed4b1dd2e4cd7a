"""Validate and coerce component input values exactly as the descriptor says.

GitLab enforces `type`, `options` and `regex` when a pipeline is created; ci-gen enforces
the same rules earlier (render, init, lint) so a bad value never reaches a file or a shell.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from ci_gen.components import KV_MAX_ITEMS, RE_KV_LIST, Component, Input
from ci_gen.errors import InputError, UsageError, shown
from ci_gen.patterns import RE_ARRAY_ITEM, RE_NUMBER, RE_PATH, RE_SWEEP_VALUE, RE_SWEEP_VARIABLE

_NUMBER = re.compile(RE_NUMBER)
# What RE_PATH and RE_MODEL_NAME mean, in errors (the path regex is unreadable in one).
NOT_A_PATH = "is not a path relative to the project"
NOT_A_MODEL_NAME = "is not a model name"
_ARRAY_ITEM = re.compile(RE_ARRAY_ITEM)
# The bound on a sweep's grid: the input that holds it, and GitLab's own cap on a matrix
# (PARALLEL_LIMIT in lib/gitlab/ci/config/entry/product/parallel.rb, checked by matrix.rb).
MAX_CELLS_INPUT = "max-cells"
GITLAB_MATRIX_LIMIT = 200


def parse_number(text: str, what: str) -> int | float:
    """`8501`, `0.5`, `1.0e-05` (Ruby's float form) -> a finite number, else a UsageError naming `what`.
    The one number parser of `--input` values and of the `ci-gen job` arguments."""
    text = str(text).strip()
    if not _NUMBER.fullmatch(text):
        raise UsageError(f"{what} must be a number (e.g. 8501, 0.5, 1.0e-05), got {shown(text, limit=60)}")
    if "." not in text and "e" not in text.lower():
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise UsageError(f"{what} must be a finite number, got {shown(text, limit=60)}")
    return value


def check_flag(flag: str, value: Any, pattern: str, meaning: str) -> str:
    """`value` when all of it matches `pattern` (its input's regex), else a one-line UsageError:
    `FLAG 'value' MEANING`. The one pattern check of `ci-gen job` flags, so a job run by hand
    refuses what GitLab would. A full match: Python's `$` also matches before a final newline,
    RE2's (GitLab's) does not."""
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise UsageError(f"{flag} {shown(value)} {meaning}")
    return value


def check_paths(flags: Iterable[tuple[str, Any]], what: str = "") -> None:
    """Each (flag, value) a job got from a path input: empty, or a path as the input's regex
    lets GitLab pass it (relative to the project)."""
    for flag, value in flags:
        text = "" if value is None else str(value)
        if text:
            check_flag(what + flag, text, RE_PATH, NOT_A_PATH)


def ruby_number(value: int | float) -> str:
    """A number as GitLab writes it into a string (Ruby's Integer#to_s / Float#to_s):
    8501, 0.5, 1.0e-05, 1.0e+16. Python's repr switches to exponents at the same places."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa and mantissa.lstrip("-").isdigit():
        mantissa += ".0"
    return mantissa + e + exponent


@lru_cache(maxsize=256)
def _re2(regex: str) -> Any:
    import re2  # google-re2: the engine GitLab compiles input regexes with

    options = re2.Options()
    options.log_errors = False  # the error is raised (and reported once), not logged to stderr
    try:
        return re2.compile(regex, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        return reason.decode() if isinstance(reason, bytes) else str(reason)
    except UnicodeEncodeError:
        return "not valid UTF-8 text"


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: no YAML file, so no GitLab, can hold them
        return False
    return True


def regex_problem(name: str, regex: str, value: Any, *, default: bool) -> str | None:
    """Why GitLab refuses `value` for a string input with this `regex`, or None.

    GitLab's own rules, read in its source: lib/gitlab/ci/config/interpolation/inputs/
    string_input.rb compiles the regex with Gitlab::UntrustedRegexp (lib/gitlab/untrusted_regexp.rb,
    RE2) and runs it on the default (base_input.rb checks the default of every optional input,
    given a value or not) and on a given value; UntrustedRegexp#match? is a search that is false
    for an empty string (`text.present? && ...`); a regex RE2 refuses is an error of its own.
    """
    compiled = _re2(regex)
    if isinstance(compiled, str):
        return (f"input '{name}': regex {shown(regex, limit=60)} is refused by RE2, GitLab's regex engine "
                f"({compiled}); GitLab will not include the file")
    if not isinstance(value, str):
        return None  # a wrong type is reported by the type check
    which = "default" if default else "value"
    if value == "":
        said = "default" if default else "provided"  # GitLab's own words, as it reports them
        return (f"input '{name}': empty {which}: GitLab never matches an empty string against a "
                f"`regex` (\"{said} value does not match required RegEx pattern\")")
    if not _utf8(value):
        return f"input '{name}': {which} {shown(value, limit=60)} is not valid UTF-8 text"
    if compiled.search(value) is None:
        return f"input '{name}': {which} {shown(value, limit=60)} does not match {regex}"
    return None


def coerce(inp: Input, raw: Any, where: str) -> Any:
    """Turn a value (from YAML or the command line) into the input's type, or raise."""
    if inp.type == "string":
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            # GitLab refuses a YAML number for a string input (StringInput#valid_value? in
            # lib/gitlab/ci/config/interpolation/inputs/string_input.rb: "provided value is not
            # a string"); the thresholds were number inputs before 0.3.0, so say how to write it.
            text = ruby_number(raw) if math.isfinite(raw) else str(raw)
            raise InputError(f"{where}: input '{inp.name}' is a string input and GitLab refuses a number "
                             f"for it (\"provided value is not a string\"): quote it, {inp.name}: \"{text}\"")
        if not isinstance(raw, str):
            raise InputError(f"{where}: input '{inp.name}' must be a string, got {shown(raw, limit=60)}")
        return raw
    if inp.type == "number":
        if isinstance(raw, bool):
            raise InputError(f"{where}: input '{inp.name}' must be a number, got {shown(raw, limit=60)}")
        if isinstance(raw, float) and not math.isfinite(raw):
            raise InputError(f"{where}: input '{inp.name}' must be a finite number, got {shown(raw, limit=60)}")
        if isinstance(raw, (int, float)):
            return raw
        if isinstance(raw, str) and _NUMBER.fullmatch(raw):
            try:
                return parse_number(raw, f"{where}: input '{inp.name}'")
            except UsageError as exc:
                raise InputError(str(exc)) from None
        raise InputError(f"{where}: input '{inp.name}' must be a number, got {shown(raw, limit=60)}")
    if inp.type == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw in ("true", "false"):
            return raw == "true"
        raise InputError(f"{where}: input '{inp.name}' must be true or false, got {shown(raw, limit=60)}")
    if inp.type == "array":
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise InputError(
                    f"{where}: input '{inp.name}' must be an array, e.g. '[\"a\", \"b\"]', got {shown(raw, limit=60)}"
                ) from None
        if not isinstance(raw, list):
            raise InputError(f"{where}: input '{inp.name}' must be an array, got {shown(raw, limit=60)}")
        if inp.items == "matrix":
            return check_matrix(raw, f"{where}: input '{inp.name}'")
        for item in raw:
            if not isinstance(item, str) or not item or "\n" in item or len(item) > 200:
                raise InputError(
                    f"{where}: input '{inp.name}' items must be one-line strings, got {shown(item, limit=60)}"
                )
            if not item.isprintable() or not _ARRAY_ITEM.fullmatch(item):
                raise InputError(
                    f"{where}: input '{inp.name}' items must be single words without quotes, "
                    f"spaces, control characters or shell syntax (` $( ; | & < > \\ #), got {shown(item, limit=60)}"
                )
        return raw
    raise AssertionError(f"unknown input type {inp.type}")


def check_matrix(raw: Any, where: str) -> list[dict[str, list[str]]]:
    """A `parallel: matrix` (list of {VARIABLE: value or [values]}) as GitLab takes it, each
    name and value checked: -> the same entries with every value a list of strings."""
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}: empty sweep: give at least one entry of VARIABLE: [values]")
    out: list[dict[str, list[str]]] = []
    for entry in raw:
        if not isinstance(entry, dict) or not entry:
            raise InputError(f"{where}: each entry must map variables to values, got {shown(entry, limit=60)}")
        cleaned: dict[str, list[str]] = {}
        for name, values in entry.items():
            if not isinstance(name, str) or not re.fullmatch(RE_SWEEP_VARIABLE, name):
                raise InputError(f"{where}: variable {shown(name, limit=60)} does not name a params key "
                                 f"(letters, digits and `_`; nesting as `__`, e.g. train__learning_rate)")
            values = values if isinstance(values, list) else [values]
            if not values:
                raise InputError(f"{where}: {name} has no values")
            words = []
            for value in values:
                if isinstance(value, (bool, float)):
                    # GitLab takes only strings and integers as matrix values (validate_alphanumeric,
                    # lib/gitlab/config/entry/legacy_validation_helpers.rb): `0.1` unquoted is refused.
                    said = str(value).lower() if isinstance(value, bool) else ruby_number(value)
                    raise InputError(f"{where}: {name}: value {said} is a {'boolean' if isinstance(value, bool) else 'decimal'}"
                                     f" and GitLab takes only strings and integers in a matrix: quote it, \"{said}\"")
                text = value if isinstance(value, str) else (str(value) if isinstance(value, int) else None)
                if text is None or not re.fullmatch(RE_SWEEP_VALUE, text):
                    raise InputError(f"{where}: {name}: value {shown(value, limit=60)} is not one plain word "
                                     f"(a number, true/false or a name: letters, digits, `_.+-`)")
                words.append(text)
            if len(set(words)) != len(words):
                raise InputError(f"{where}: {name} lists a value twice")
            cleaned[name] = words
        out.append(cleaned)
    return out


def matrix_size(matrix: list[dict[str, list[str]]]) -> int:
    """How many jobs GitLab makes of a matrix: each entry's product of value counts, summed."""
    return sum(math.prod(len(v) for v in entry.values()) for entry in matrix)


def check(inp: Input, value: Any, where: str, *, default: bool = False) -> None:
    """Raise when a typed value breaks the input's options or regex, as GitLab would."""
    retired = dict(inp.retired)
    if value in retired:
        raise InputError(f"{where}: input '{inp.name}': {shown(value, limit=60)} is no longer offered: "
                         f"{retired[value]}")
    if inp.options is not None and value not in inp.options:
        choices = ", ".join(str(o) for o in inp.options)
        raise InputError(f"{where}: input '{inp.name}' must be one of {choices}; got {shown(value, limit=60)}")
    if inp.regex is not None:
        problem = regex_problem(inp.name, inp.regex, value, default=default)
        if problem:
            raise InputError(f"{where}: {problem}")
    if inp.regex == RE_KV_LIST and value.count(",") >= KV_MAX_ITEMS:
        raise InputError(f"{where}: input '{inp.name}' has more than {KV_MAX_ITEMS} KEY=VALUE pairs")


def resolve(component: Component, given: dict[str, Any], where: str | None = None) -> dict[str, Any]:
    """All inputs of a component: given values validated, defaults filled in."""
    where = where or component.name
    known = {i.name: i for i in component.inputs}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InputError(  # the name is shown escaped: it may hold newlines or escape codes
            f"{where}: unknown input {shown(unknown[0], limit=60)}; {component.name} takes: {', '.join(known)}"
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
            if not inp.required:  # GitLab checks the default even when a value is given
                check(inp, inp.default, f"{where} (the component's own default)", default=True)
            check(inp, value, where, default=inp.name not in given)
        values[inp.name] = value
    _check_bounds(component, values, where)
    return values


def _check_bounds(component: Component, values: dict[str, Any], where: str) -> None:
    """A sweep's grid is no larger than its `max-cells` (nor GitLab's own matrix cap)."""
    for inp in component.inputs:
        if inp.items != "matrix" or MAX_CELLS_INPUT not in values:
            continue
        cells, bound = matrix_size(values[inp.name]), values[MAX_CELLS_INPUT]
        if not (isinstance(bound, int) or float(bound).is_integer()) or not 1 <= bound <= GITLAB_MATRIX_LIMIT:
            raise InputError(f"{where}: input '{MAX_CELLS_INPUT}' must be a whole number from 1 to "
                             f"{GITLAB_MATRIX_LIMIT}, got {shown(bound, limit=60)}")
        if cells > bound:
            raise InputError(f"{where}: the sweep has {cells} cells, more than {MAX_CELLS_INPUT} "
                             f"({int(bound)}): shrink the matrix or raise {MAX_CELLS_INPUT}")
