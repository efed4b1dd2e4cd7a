"""How a user calls this ci-gen from a new shell: what printed advice (`next:`, `see it with:`)
puts where a command goes, so that the line works when typed.

A venv's `bin/` is on nobody's PATH in a new shell (`make demo` runs `.venv/bin/ci-gen`), so
the bare name `ci-gen` is printed only for an installation a plain PATH finds; otherwise the
full path of this installation's `ci-gen` script.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

# Debian's PATH for a new login shell (/etc/profile, /etc/login.defs): what a new shell finds.
PLAIN_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def command() -> str:
    """`ci-gen`, as typed in a new shell from any directory (shell-quoted)."""
    script = Path(sys.executable).parent / "ci-gen"  # the console script beside this interpreter
    if not script.is_file():
        found = shutil.which("ci-gen")
        if found is None:  # run as `python3 -m ci_gen` from a checkout
            return f"{shlex.quote(str(Path(sys.executable).absolute()))} -m ci_gen"
        script = Path(found)
    script = script.absolute()  # not resolved: a venv's python is a symlink to the system's
    if str(script.parent) in PLAIN_PATH:
        return "ci-gen"
    return shlex.quote(str(script))
