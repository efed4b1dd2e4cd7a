""".ci/run runs the README's test command as a new user's plain Debian would (issue 22): nothing
but a new HOME, Debian's own PATH and CI, whatever the calling machine has set."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What make and bash add on their own.
OWN = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "SHLVL", "PWD", "OLDPWD", "_"}


def test_ci_run_gives_every_step_a_plain_debian_environment(tmp_path):
    tree = tmp_path / "checkout"
    (tree / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", tree / ".ci" / "run")
    # The steps record the environment they were given, instead of doing their work.
    record = 'env -0 > "$(dirname "$0")/../env-$(basename "$0")"\n'
    for path in (tree / "scripts" / "bootstrap.sh", tree / ".venv" / "bin" / "ci-gen"):
        path.parent.mkdir(parents=True)
        path.write_text("#!/bin/sh\n" + record.replace("$(dirname \"$0\")/..", str(tree)))
        path.chmod(0o755)
    (tree / "Makefile").write_text(f"test:\n\tenv -0 > {tree}/env-make-test\n")
    polluted = tmp_path / "shims"
    polluted.mkdir()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PIP_FIND_LINKS": "/opt/wheels",
           "CI": "true", "PATH": f"{polluted}:{os.environ['PATH']}", "HOME": str(tmp_path / "my-home")}
    proc = subprocess.run(["bash", str(tree / ".ci" / "run")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    homes = set()
    for step in ("env-bootstrap.sh", "env-make-test", "env-ci-gen"):
        pairs = [item.split("=", 1) for item in (tree / step).read_text().split("\0") if item]
        seen = dict(pairs)
        assert set(seen) - OWN == {"HOME", "PATH", "CI"}, (step, sorted(seen))
        assert seen["PATH"] == DEBIAN_PATH and seen["CI"] == "true"
        assert seen["HOME"] != env["HOME"]
        homes.add(seen["HOME"])
    assert len(homes) == 1  # one new HOME for the whole run (bootstrap's caches serve the tests)
    assert not Path(homes.pop()).exists()  # and removed afterwards
