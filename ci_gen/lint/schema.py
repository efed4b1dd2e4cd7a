"""GitLab's own CI schema, as vendored by check-jsonschema (`vendor.gitlab-ci`).

The check-jsonschema CLI refuses multi-document files (a component is a `spec:` header,
`---`, and the jobs), so the documents are validated here through its Python API: the same
schema, regex engine and format checks as `check-jsonschema --builtin-schema vendor.gitlab-ci`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

SCHEMA_NAME = "vendor.gitlab-ci"
_MAX_INSTANCE = 60  # characters of a value quoted in a message

# Keys of a hidden job (`.name:`) that mark it as a job template rather than a plain anchor:
# GitLab's schema accepts anything under hidden keys, so these are checked as job templates.
_JOB_KEYS = frozenset({"script", "stage", "extends", "needs", "rules", "trigger", "environment"})


@lru_cache(maxsize=1)
def validator() -> Any:
    """The schema's validator, built once per process (building it dominates a small lint)."""
    from check_jsonschema.formats import FormatOptions
    from check_jsonschema.regex_variants import RegexImplementation, RegexVariantName
    from check_jsonschema.schema_loader import BuiltinSchemaLoader

    regex = RegexImplementation(RegexVariantName.default)
    loader = BuiltinSchemaLoader(SCHEMA_NAME)
    return loader.get_validator(SCHEMA_NAME, {}, FormatOptions(regex_impl=regex), regex, False)


def _deep_match(error: Any) -> Any:
    """The most specific sub-error, as check-jsonschema's "Best Deep Match" picks it."""
    if not error.context:
        return error
    candidates = []
    stack = list(error.context)
    while stack:
        err = stack.pop(0)
        candidates.append(err)
        stack.extend(err.context or ())
    return max(candidates, key=lambda e: (e.validator not in ("anyOf", "oneOf"),
                                          len(e.absolute_path), -len(e.path)))


def _message(error: Any) -> str:
    """jsonschema's message, with a long quoted instance cut short."""
    text = error.message
    shown = repr(error.instance)
    if len(shown) > _MAX_INSTANCE and text.startswith(shown):
        text = shown[: _MAX_INSTANCE - 3] + "..." + text[len(shown):]
    return text


def _unexpected_key(error: Any) -> tuple:
    """For "Additional properties are not allowed": the first offending key, to point at it."""
    if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
        return ()
    known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    listed = error.message.rpartition("(")[2]  # "('a', 'b' were unexpected)"
    for key in error.instance:
        if key not in known and repr(key) in listed:
            return (key,)
    return ()


# A schema error: (key path, message, key path to point at).
SchemaError = tuple[tuple, str, tuple]


def _errors(instance: Any, schema: Any | None = None, base: tuple[Any, ...] = ()) -> list[SchemaError]:
    v = validator()
    if schema is None:
        raw = v.iter_errors(instance)
    else:
        raw = v.descend(instance, schema)
    out = []
    for err in raw:
        best = _deep_match(err)
        key = base + tuple(best.absolute_path)
        out.append((key, _message(best), key + _unexpected_key(best)))
    return sorted(out, key=lambda e: [str(p) for p in e[0]])


def check_config(data: Any) -> list[SchemaError]:
    """(key path, message, where) for each schema error of a pipeline configuration document."""
    out = _errors(data)
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and key.startswith(".") and isinstance(value, dict) \
                    and _JOB_KEYS & set(value):
                out.extend(_errors(value, {"$ref": "#/definitions/job_template"}, (key,)))
    return out


def check_header(data: Any) -> list[SchemaError]:
    """(key path, message, where) for each error of a component header (`spec:` only)."""
    if not isinstance(data, dict):
        return [((), "a header document must be a mapping with `spec:`", ())]
    out: list[SchemaError] = [
        ((key,), f"unexpected key {key!r} in the header; the header holds only `spec:`, "
                 "the jobs go below `---`", (key,))
        for key in data if key != "spec"]
    out.extend(_errors({"spec": data.get("spec")}))
    return out
