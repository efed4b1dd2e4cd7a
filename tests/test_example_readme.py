"""The example's README, which `ci-gen init` copies into every scaffolded project, works as
written there (issue 9, section 3).

Every command line it shows is checked: scripts it runs exist in the scaffold and accept the
flags it passes, `dvc` lines parse with DVC's own parser. Blocks marked
`<!-- readme-test: offline -->` run, in order, in a freshly scaffolded project; so do the
config-only `dvc remote modify` lines of the S3 block. What needs the internet (pip, the real
data, an S3 bucket, the base image) is only parsed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ci_gen.scaffold import plan as scaffold
from support.cli import cli

README = scaffold.example_root("fashion-mnist") / "README.md"
MARK = "<!-- readme-test: offline -->"
SHARED = "/mnt/shared/fashion-mnist"  # the README's shared disk; a temporary folder in the test


def blocks() -> list[tuple[bool, str, list[str]]]:
    """(offline?, text, command lines) of each ```bash block; the lines with comments and
    continuations resolved."""
    text = README.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"(<!-- readme-test: offline -->\n)?```bash\n(.*?)```", text, re.S):
        joined = m.group(2).replace("\\\n", " ")
        lines = [shlex.split(ln, comments=True) for ln in joined.splitlines()]
        out.append((bool(m.group(1)), m.group(2), [shlex.join(words) for words in lines if words]))
    return out


def commands() -> list[list[str]]:
    """Every simple command of every block (`a && b` is two)."""
    out = []
    for _, _, lines in blocks():
        for line in lines:
            words = shlex.split(line)
            cmd: list[str] = []
            for w in words + ["&&"]:  # `a && b` is two commands
                if w == "&&":
                    out.append(cmd)
                    cmd = []
                else:
                    cmd.append(w)
    return [c for c in out if c]


def test_readme_refers_to_no_file_of_the_ci_gen_repository():
    text = README.read_text(encoding="utf-8")
    for pattern in (r"\.\./\.\./", r"\bscripts/", r"\bMakefile\b", r"\bbenchmarks/", r"examples/fashion-mnist",
                    r"\.venv/bin/(?!activate)", r"ci-gen repository root"):
        assert not re.search(pattern, text), pattern
    assert sum(offline for offline, _, _ in blocks()) == 2


def test_every_command_names_a_script_and_flags_that_exist():
    files = scaffold.plan("fashion-mnist", scaffold.DEFAULT_TEMPLATES_PROJECT, "0.1.0", "component").files
    root = scaffold.example_root("fashion-mnist")
    checked = 0
    for cmd in commands():
        if cmd[0] == "python" and cmd[1].endswith(".py"):
            assert cmd[1] in files, cmd
            sub = [cmd[2]] if len(cmd) > 2 and not cmd[2].startswith("-") and cmd[1] == "fmnist_data.py" else []
            usage = subprocess.run([sys.executable, cmd[1], *sub, "--help"], cwd=root, capture_output=True,
                                   text=True, timeout=60)
            assert usage.returncode == 0, usage.stderr
            for flag in (w.split("=")[0] for w in cmd[2:] if w.startswith("--")):
                assert flag in usage.stdout, (cmd, flag)
            checked += 1
        elif cmd[:3] == ["pip", "install", "-r"]:
            assert cmd[3] in files
    assert checked >= 5


def test_every_dvc_line_parses_and_adds_no_remote_that_exists():
    from dvc.cli import parse_args

    lines = [c for c in commands() if c[0] == "dvc"]
    assert len(lines) >= 15
    for cmd in lines:
        parse_args(cmd[1:])  # DvcParserError on an unknown command or flag
        if cmd[1:3] == ["remote", "add"]:
            # `init` made `data` and `models`: adding them again fails ("already exists")
            assert not ({"data", "models"} & set(cmd[3:]) and "-f" not in cmd), cmd


@pytest.mark.slow
def test_offline_blocks_run_in_a_scaffolded_project(tmp_path):
    cfg = tmp_path / "gitconfig"
    cfg.write_text("[user]\n\tname = Readme Reader\n\temail = reader@example.com\n")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": str(cfg), "GIT_CONFIG_NOSYSTEM": "1",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    project = tmp_path / "p"
    assert cli("init", str(project), "--example", "fashion-mnist", env=env).returncode == 0
    shared = tmp_path / "shared"
    for offline, text, _ in blocks():
        if not offline:
            continue
        script = "set -euo pipefail\n" + text.replace(SHARED, str(shared))
        res = subprocess.run(["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
    assert subprocess.run(["git", "status", "--porcelain"], cwd=project, env=env, capture_output=True,
                          text=True).stdout == ""
    assert any((shared / "data").rglob("*.dir"))  # the data went to the new place
    pull = subprocess.run([sys.executable, "-m", "dvc", "pull", "train_data.dvc", "--force"], cwd=project,
                          env=env, capture_output=True, text=True)
    assert pull.returncode == 0, pull.stderr

    # The S3 block's config-only lines work offline too; then lint no longer warns.
    modify = [c for c in commands() if c[:3] == ["dvc", "remote", "modify"] and "s3://" in " ".join(c)
              or c[:3] == ["dvc", "remote", "modify"] and "endpointurl" in c]
    assert len(modify) == 4
    for cmd in modify:
        res = subprocess.run([sys.executable, "-m", *cmd], cwd=project, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    lint = cli("lint", str(project / ".gitlab-ci.yml"))
    assert lint.returncode == 0 and "warning" not in lint.stdout, lint.stdout
