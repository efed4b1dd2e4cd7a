"""git for tests: a fixed identity, and scratch projects with an origin and one commit."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

IDENTITY = {"GIT_AUTHOR_NAME": "CI Gen Test", "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "CI Gen Test", "GIT_COMMITTER_EMAIL": "test@example.com"}
ORIGIN = "git@gitlab.example.com:mlops/demo.git"


def git(cwd: Path, *args: str) -> str:
    """Run git with IDENTITY; asserts success, returns stdout stripped."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **IDENTITY})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def make_project(root: Path, ci: str, files: dict[str, str] | None = None,
                 origin: str = ORIGIN, message: str = "init") -> Path:
    """A git project on `main` with `origin`, `.gitlab-ci.yml` = CI and FILES, all committed
    (texts are dedented, so they can be written indented in a test)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", origin)
    (root / ".gitlab-ci.yml").write_text(textwrap.dedent(ci))
    for name, text in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return root
