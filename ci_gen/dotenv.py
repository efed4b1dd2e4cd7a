"""The one home for KEY=VALUE text: dotenv files, `KEY=VALUE` command-line arguments and
`K=V,K2=V2` input lists.

Errors name the source and line or the flag, never a value: these values are often secrets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from ci_gen.errors import CiGenError, UsageError, shown

KEY_RE = re.compile(r"[A-Za-z0-9_]{1,255}")  # GitLab's rule for variable keys
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "$": "$",
            "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


@dataclass
class Entry:
    key: str
    value: str
    line: int


def parse_assignments(pairs: Iterable[str], flag: str, *, identifier: bool = False) -> dict[str, str]:
    """`KEY=VALUE` arguments of a repeatable flag into a dict (values stay strings).

    An argument without `=` is never echoed: it may be a secret typed without its name.
    With `identifier`, KEY must be a variable name.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"{flag} expects KEY=VALUE; one argument has no '='")
        if identifier and not (key.isidentifier() and key.isascii()):
            raise UsageError(f"{flag} expects KEY=VALUE with KEY a variable name, got {shown(key)}")
        if not key:
            raise UsageError(f"{flag} expects KEY=VALUE; one argument has no KEY")
        out[key] = value
    return out


def parse_kv_list(text: str, flag: str, key: re.Pattern[str], value: re.Pattern[str],
                  max_items: int) -> dict[str, str]:
    """`K=V,K2=V2` (an input value) into a dict; "" gives {}. Keys and values must fully
    match the given patterns; at most `max_items` pairs."""
    out: dict[str, str] = {}
    if not text:
        return out
    items = text.split(",")
    if len(items) > max_items:
        raise UsageError(f"{flag}: at most {max_items} KEY=VALUE pairs")
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not key.fullmatch(k) or not value.fullmatch(v):
            raise UsageError(f"{flag}: {item[:80]!r} is not KEY=VALUE with plain words")
        out[k] = v
    return out


def parse_dotenv(text: str, source: str = "<dotenv>") -> list[Entry]:
    """KEY=VALUE entries. Errors name the file and line, never the value."""
    lines = text.splitlines()
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    i = 0
    while i < len(lines):
        lineno = i + 1
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if re.match(r"export[ \t]", line):
            line = line[6:].lstrip()
        m = re.match(r"([^=\s]+)[ \t]*=[ \t]*", line)
        if not m:
            raise CiGenError(f"{source}:{lineno}: expected KEY=VALUE")
        key = m.group(1)
        if not KEY_RE.fullmatch(key):
            raise CiGenError(f"{source}:{lineno}: invalid key (GitLab allows letters, digits "
                             "and _, at most 255)")
        rest = line[m.end():]
        if rest[:1] in ('"', "'"):
            quote = rest[0]
            buf = rest[1:]
            while True:
                end = _closing_quote(buf, quote)
                if end >= 0:
                    break
                if i >= len(lines):
                    raise CiGenError(f"{source}:{lineno}: unterminated {quote} quote for {key}")
                buf += "\n" + lines[i]
                i += 1
            raw, after = buf[:end], buf[end + 1:].strip()
            if after and not after.startswith("#"):
                raise CiGenError(f"{source}:{lineno}: unexpected text after the closing quote "
                                 f"of {key}")
            value = _unescape(raw) if quote == '"' else raw
        else:
            value = re.split(r"[ \t]#", rest, maxsplit=1)[0].rstrip()
        if key in seen:
            raise CiGenError(f"{source}:{lineno}: {key} is already set on line {seen[key]}")
        seen[key] = lineno
        entries.append(Entry(key, value, lineno))
    return entries


def _closing_quote(buf: str, quote: str) -> int:
    j = 0
    while j < len(buf):
        if quote == '"' and buf[j] == "\\":
            j += 2
            continue
        if buf[j] == quote:
            return j
        j += 1
    return -1


def _unescape(raw: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), raw,
                  flags=re.DOTALL)
