"""One exception family: the CLI prints its message as one line and exits non-zero.

Also the one way to show a user's value inside such a message (`shown`).
"""

from __future__ import annotations

import json
import re
from typing import Any

# `scheme://user:password@host`: the credentials part of a URL, never shown.
_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]*@")


def shown(value: Any, limit: int = 80) -> str:
    """A value for an error message: quoted, control characters escaped, URL credentials
    masked, cut to `limit` characters."""
    if isinstance(value, str):
        text = repr(_URL_CREDENTIALS.sub(r"\1***@", value))
    else:
        text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def printable(text: str) -> str:
    """Text for the terminal, as it is except that control characters are escaped (`\x1b`,
    `\n`): a server's text can neither start a terminal sequence nor forge a line."""
    return text if text.isprintable() else "".join(
        c if c.isprintable() else repr(c)[1:-1] for c in text)


class CiGenError(Exception):
    """A failure the user can act on. Never carries a secret in its message."""

    exit_code = 1


class UsageError(CiGenError):
    """The command line itself is wrong (unknown option value, bad KEY=VALUE)."""

    exit_code = 2


class InputError(CiGenError):
    """A component input is unknown, missing or fails its type/options/regex."""


class DriftError(CiGenError):
    """Generated files differ from what the sources render."""
