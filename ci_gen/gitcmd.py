"""The one wrapper around the git command line.

Named `gitcmd`, not `git`, so it can never shadow a `git` package on sys.path.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Mapping

from ci_gen.errors import CiGenError

MISSING = "git not found (Debian: apt-get install git)"


class GitMissing(CiGenError):
    """git is not installed: never read as "no history" or "no baseline"."""


def run(cwd: Path | str, *args: str, env: Mapping[str, str] | None = None,
        input: str | None = None) -> subprocess.CompletedProcess:
    """git ARGS in `cwd`, output captured as text; the caller reads the return code."""
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              env=None if env is None else dict(env), input=input, check=False)
    except FileNotFoundError:
        raise GitMissing(MISSING) from None


def git(cwd: Path | str, *args: str, check: bool = True,
        env: Mapping[str, str] | None = None) -> str:
    """git ARGS in `cwd`; its stdout stripped. A failure raises (with git's last line)
    when `check`, else gives ""."""
    proc = run(cwd, *args, env=env)
    if proc.returncode != 0:
        if check:
            raise CiGenError(f"git {args[0]} failed in {cwd}: {last_line(proc.stderr)}")
        return ""
    return proc.stdout.strip()


def last_line(text: str | None) -> str:
    """The last non-blank line of a command's output (where git and most tools say why)."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def redact_url(url: str) -> str:
    """A remote URL without any user:password part (never shown)."""
    return re.sub(r"//[^/@]*@", "//", url)
