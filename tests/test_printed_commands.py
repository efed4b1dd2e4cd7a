"""Every command ci-gen prints for the user to type works when typed (issue 22, acceptance 2).

The `next:` lines of `ci-gen init` (and so of `make demo`, which runs `init --example` and
then `run`) and the `see it with:` line of a run that registered a model are run exactly as
printed, in a new `bash -c` with Debian's plain PATH and no venv, from the directory the
user was in. (The registry's `see it with:` line is run in tests/test_registry_pipeline.py,
on the pipeline that test runs anyway.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_gen import invocation
from support.cli import PLAIN_PATH, cli, new_shell, printed

def test_the_printed_command_names_this_ci_gen_by_a_path_a_new_shell_finds():
    assert PLAIN_PATH == ":".join(invocation.PLAIN_PATH)
    cmd = invocation.command()
    proc = new_shell(f"{cmd} --version", Path.cwd())
    assert proc.returncode == 0 and proc.stdout.startswith("ci-gen "), proc.stderr
    # This venv's bin/ is on no plain PATH: the bare name would not be found there.
    assert cmd != "ci-gen" and new_shell("command -v ci-gen", Path.cwd()).returncode != 0


@pytest.mark.parametrize("args", [(), ("--minimal",), ("--include-mode", "inline")])
def test_plain_init_next_line_works_as_typed(tmp_path, args):
    res = cli("init", "my project", *args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = printed(res.stdout, "next:")
    assert len(lines) == 1 and "lint" in lines[0]
    # No DVC project yet: no `ci-gen run` to type now; what it needs is said instead.
    assert " run" not in lines[0]
    assert printed(res.stdout, "then:") and "dvc.yaml" in printed(res.stdout, "then:")[0]
    proc = new_shell(lines[0], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok: .gitlab-ci.yml"), proc.stdout


@pytest.mark.slow
def test_example_init_next_line_works_as_typed(tmp_path):
    """What `make demo` prints first: init --example's `next:`, run as typed (lint, then the
    whole pipeline, as a runner would run it)."""
    res = cli("init", "demo", "--example", "fashion-mnist", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert not printed(res.stdout, "first:"), res.stdout  # a new repository: nothing to do first
    (line,) = printed(res.stdout, "next:")
    assert line.endswith(" run --manual") and line.startswith("cd demo && ")
    proc = new_shell(line, tmp_path, timeout=3000)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "ok: .gitlab-ci.yml" in proc.stdout and "sample accuracy:" in proc.stdout, out[-6000:]
    # The model the run registered: its `see it with:` line works as typed too.
    (see,) = printed(proc.stdout, "see it with:")  # mlflow is installed here (the test extra)
    shown = new_shell(see, tmp_path)
    assert shown.returncode == 0 and "fashion-mnist 0.1.0" in shown.stdout, shown.stderr
