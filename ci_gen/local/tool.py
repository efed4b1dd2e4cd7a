"""gitlab-ci-local itself, and the host tools it calls without saying so when they are missing.

gitlab-ci-local is an npm package, pinned at 4.73.0: the newest that runs on Node 20.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

from ci_gen.errors import CiGenError
from ci_gen.files import user_cache_dir
from ci_gen.gitcmd import last_line

GITLAB_CI_LOCAL_VERSION = "4.73.0"
INSTALL_HINT = (
    "install Node.js 20 or newer with npm (Debian: apt-get install nodejs npm) and ci-gen "
    f"installs gitlab-ci-local {GITLAB_CI_LOCAL_VERSION} itself, or point CI_GEN_GITLAB_CI_LOCAL "
    "at the executable"
)


def checkout_root() -> Path | None:
    """The ci-gen source checkout this package runs from, if it is one (editable install)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "package.json").is_file() and (root / "pyproject.toml").is_file() else None


def _lock_dir() -> Path | None:
    """Where the pinned package.json/package-lock.json are: in the wheel (force-included),
    or at the root of the checkout."""
    here = Path(__file__).resolve().parent / "npm"
    if (here / "package-lock.json").is_file():
        return here
    root = checkout_root()
    return root if root is not None and (root / "package-lock.json").is_file() else None


def _cached() -> Path:
    return user_cache_dir() / "gitlab-ci-local" / GITLAB_CI_LOCAL_VERSION


def _bin(prefix: Path) -> Path:
    return prefix / "node_modules" / ".bin" / "gitlab-ci-local"


def find_gitlab_ci_local(out: IO[str] | None = None) -> str:
    """$CI_GEN_GITLAB_CI_LOCAL, else the checkout's node_modules/.bin, else the per-user
    cache, else PATH; else installed into the per-user cache with npm (progress on OUT)."""
    explicit = os.environ.get("CI_GEN_GITLAB_CI_LOCAL")
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise CiGenError(f"CI_GEN_GITLAB_CI_LOCAL={explicit} is not an executable file")
        return explicit
    root = checkout_root()
    if root is not None:
        candidate = root / "node_modules" / ".bin" / "gitlab-ci-local"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    if os.access(_bin(_cached()), os.X_OK):
        return str(_bin(_cached()))
    found = shutil.which("gitlab-ci-local")
    if found:
        return found
    return install_gitlab_ci_local(out or sys.stdout)


def install_gitlab_ci_local(out: IO[str]) -> str:
    """npm ci of the pinned lock file into the per-user cache (npm's own cache first: works
    offline once npm has seen the packages); the executable."""
    npm = shutil.which("npm")
    lock = _lock_dir()
    if npm is None or lock is None:
        why = "npm not found" if npm is None else "this ci-gen ships no package-lock.json"
        raise CiGenError(f"gitlab-ci-local {GITLAB_CI_LOCAL_VERSION} not found ({why}): {INSTALL_HINT}")
    target = _cached()
    target.parent.mkdir(parents=True, exist_ok=True)
    out.write(f"ci-gen: installing gitlab-ci-local {GITLAB_CI_LOCAL_VERSION} with npm into {target} "
              f"(once)\n")
    out.flush()
    tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=target.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(lock / name, tmp / name)
        # Errors only: npm's per-request lines (hundreds on a first install) say nothing the
        # user needs; its last error line goes into the failure.
        cmd = [npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"]
        proc = subprocess.run(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace")
        if proc.returncode != 0 or not os.access(_bin(tmp), os.X_OK):
            raise CiGenError(f"npm could not install gitlab-ci-local {GITLAB_CI_LOCAL_VERSION}: "
                             f"{last_line(proc.stdout)}")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)  # node_modules/.bin links are relative: the tree moves as is
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(_bin(target))


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
