"""What every check returns: findings, printed one a line as `path:location: severity: message`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

ERROR = "error"
WARNING = "warning"
INFO = "info"


@dataclass(frozen=True)
class Finding:
    path: str       # the file as the user named it
    location: str   # `line:col`, or "" when the finding is about the whole file
    message: str
    severity: str   # error | warning | info

    def __str__(self) -> str:
        loc = f":{self.location}" if self.location else ""
        return f"{self.path}{loc}: {self.severity}: {self.message}"


# Where a finding about a key path of the checked data points:
# (file, `line:col`, message suffix); file None means the sink's own file.
Locate = Callable[[tuple[Any, ...]], tuple["str | None", str, str]]


class Sink:
    """Collects findings of one file; checks report key paths, the sink turns them into lines."""

    def __init__(self, path: str, locate: Locate) -> None:
        self.path = path
        self.locate = locate
        self.findings: list[Finding] = []

    def add(self, key: tuple[Any, ...], message: str, severity: str = ERROR) -> None:
        path, location, suffix = self.locate(key)
        self.findings.append(Finding(path or self.path, location, message + suffix, severity))

    def extend(self, findings: list[Finding]) -> None:
        self.findings.extend(findings)

    def with_locate(self, locate: Locate) -> "Sink":
        """A sink that shares this one's findings but locates keys differently."""
        other = Sink(self.path, locate)
        other.findings = self.findings
        return other


def json_path(key: tuple[Any, ...]) -> str:
    """`$.job.script[0]`, as check-jsonschema prints it."""
    out = "$"
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part and all(c.isalnum() or c in "_-" for c in part):
            out += f".{part}"
        else:
            out += f"[{str(part)!r}]"
    return out
