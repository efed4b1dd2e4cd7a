"""A retraining pipeline's train job refreshes imported data first (`dvc update`), and only that."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from ci_gen.dvcrepo.reproduce import _dvc_log, _update_imports


def _run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env={"DVC_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin"})


def test_imports_are_updated_and_added_data_is_left_alone(tmp_path, monkeypatch):
    source = tmp_path / "source.csv"
    source.write_text("v1\n")
    repo_dir = tmp_path / "repo"
    repo_dir.mkdir()
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], repo_dir)
    _run([*dvc, "init", "-q"], repo_dir)
    _run([*dvc, "import-url", str(source), "imported.csv"], repo_dir)
    (repo_dir / "added.csv").write_text("mine\n")
    _run([*dvc, "add", "added.csv"], repo_dir)
    source.write_text("v2\n")  # the source moved on
    pointer = (repo_dir / "imported.csv.dvc").read_text()

    from dvc.repo import Repo

    monkeypatch.chdir(repo_dir)  # as reproduce() runs: targets are relative to the project
    # As reproduce() calls it: DVC's messages go to the job's output, not to the handlers DVC
    # bound on import to whatever sys.stderr was then (an earlier test's closed capture).
    with Repo(".") as repo, _dvc_log(io.StringIO()) as log:
        updated = _update_imports(repo, ["imported.csv.dvc", "added.csv.dvc"])
    assert log.errors == []

    assert updated == ["imported.csv.dvc"]
    assert (repo_dir / "imported.csv").read_text() == "v2\n"
    assert (repo_dir / "imported.csv.dvc").read_text() != pointer  # the new hash, to commit
    assert (repo_dir / "added.csv").read_text() == "mine\n"
