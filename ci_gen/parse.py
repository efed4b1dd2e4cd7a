"""Typed parsing of every document ci-gen reads from a server or a file (pydantic v2).

A document is hostile until it has passed a `Model`: a wrong shape is one line naming the
source and the field (`registry answer to get model: registered_model.name: expected a
string`), never a KeyError three calls later. Models ignore fields they do not name (servers
add fields), refuse NaN and infinities, and never coerce an int into a string or the reverse.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ci_gen.errors import CiGenError, printable, shown


class ParseError(CiGenError):
    """A document does not have the shape ci-gen needs."""


class Model(BaseModel):
    """The base of every parsed document."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False, strict=False,
                              coerce_numbers_to_str=False, str_max_length=1_000_000)


class StrictModel(Model):
    """A document ci-gen writes itself (caches, manifests): unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False,
                              str_max_length=1_000_000)


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any, source: str) -> M:
    """`data` as `model`, or one ParseError line naming `source` and the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ParseError(f"{source}: {describe(exc)}") from None
    except RecursionError:
        raise ParseError(f"{source}: nested too deep") from None


def parse_json(model: type[M], raw: bytes | str, source: str, *, name_nonfinite: bool = False) -> M:
    """JSON text as `model` (NaN, Infinity and deep nesting refused, one line).
    `name_nonfinite`: NaN/Infinity are refused by the model, so the message names their field
    (only for models whose every number is a float or int field, never `Any`)."""
    from ci_gen.http import HttpError, loads_json
    try:
        data = loads_json(raw, source, keep_nonfinite=name_nonfinite)
    except HttpError as exc:
        raise ParseError(str(exc)) from None
    return parse(model, data, source)


def describe(exc: ValidationError) -> str:
    """The first error of a validation as `field.path: what was wrong`."""
    errors = exc.errors(include_url=False, include_context=False, include_input=True)
    if not errors:
        return "invalid"
    first = errors[0]
    # A location can hold a document's own keys (a dict's): escaped like any value shown.
    loc = ".".join(printable(str(part)) for part in first.get("loc", ()) if part != "__root__")
    message = _message(first)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc or 'the document'}: {message}{more}"


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    got = error.get("input")
    if kind == "missing":
        return "missing"
    if kind in ("string_type", "int_type", "float_type", "bool_type", "dict_type",
                "list_type", "model_type", "model_attributes_type"):
        want = {"string_type": "a string", "int_type": "an integer", "float_type": "a number",
                "bool_type": "true or false", "dict_type": "an object",
                "list_type": "a list", "model_type": "an object",
                "model_attributes_type": "an object"}[kind]
        return f"expected {want}, got {_kind(got)}"
    if kind == "finite_number":
        return "must be a finite number (not NaN or infinite)"
    return str(error.get("msg", "invalid")).rstrip(".") + (
        f" (got {shown(got, 40)})" if isinstance(got, (str, int, float)) else "")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return f"the integer {value}" if abs(value) < 10 ** 12 else "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return f"the string {shown(value, 40)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
