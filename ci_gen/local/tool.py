"""gitlab-ci-local itself, and the host tools it calls without saying so when they are missing.

gitlab-ci-local is an npm package, pinned at 4.73.0: the newest that runs on Node 20.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ci_gen.errors import CiGenError
from ci_gen.gitcmd import last_line

GITLAB_CI_LOCAL_VERSION = "4.73.0"
INSTALL_HINT = (
    f"install it with `npm ci` in the ci-gen checkout (scripts/bootstrap.sh does), or "
    f"`npm install --global gitlab-ci-local@{GITLAB_CI_LOCAL_VERSION}`, or point "
    f"CI_GEN_GITLAB_CI_LOCAL at the executable"
)


def _checkout_root() -> Path | None:
    """The ci-gen source checkout this package runs from, if it is one (editable install)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "package.json").is_file() and (root / "pyproject.toml").is_file() else None


def find_gitlab_ci_local() -> str:
    """$CI_GEN_GITLAB_CI_LOCAL, else the checkout's node_modules/.bin, else PATH."""
    explicit = os.environ.get("CI_GEN_GITLAB_CI_LOCAL")
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise CiGenError(f"CI_GEN_GITLAB_CI_LOCAL={explicit} is not an executable file")
        return explicit
    root = _checkout_root()
    if root is not None:
        candidate = root / "node_modules" / ".bin" / "gitlab-ci-local"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("gitlab-ci-local")
    if found:
        return found
    raise CiGenError(f"gitlab-ci-local {GITLAB_CI_LOCAL_VERSION} not found: {INSTALL_HINT}")


def tool_version(tool: str) -> str:
    try:
        proc = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise CiGenError(f"cannot start {tool}: {exc.strerror} (is Node.js installed?)") from None
    if proc.returncode != 0:
        raise CiGenError(f"{tool} --version failed: {last_line(proc.stderr or proc.stdout)}")
    return proc.stdout.strip()


def check_host_tools(origin_schema: str) -> None:
    """Tools gitlab-ci-local calls without saying so when they are missing."""
    if shutil.which("rsync") is None:
        raise CiGenError("rsync not found: gitlab-ci-local copies each job's files with it "
                         "(Debian: apt-get install rsync; scripts/bootstrap.sh installs it)")
    if origin_schema == "git" and shutil.which("ssh") is None:
        # For a git@host:group/project origin it asks `ssh -G` for the port, and silently
        # falls back to gitlab.com/fallback.group when that fails.
        raise CiGenError("ssh not found: gitlab-ci-local reads a git@host:path origin with "
                         "`ssh -G` (Debian: apt-get install openssh-client)")
