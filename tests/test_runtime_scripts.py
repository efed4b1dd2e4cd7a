"""The runtime venv's console scripts, re-pointed for the jobs layered over it (jobenv): pip
writes either a plain shebang or, for an interpreter path too long for one, a /bin/sh
trampoline. Both must be recognised, or a job on the runtime image finds no `ci-gen` and
no `pip` of its own, and falls through to whatever pip is next on PATH."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pip._vendor.distlib.scripts import ScriptMaker

from ci_gen.local.runtime import script_body


def _pip_script(tmp_path: Path, python: str) -> bytes:
    """The console script pip itself writes for an entry point run by PYTHON."""
    maker = ScriptMaker(None, str(tmp_path), add_launchers=False)
    maker.executable = python
    maker.variants = {""}
    [written] = maker.make("tool = json.tool:main")
    return Path(written).read_bytes()


@pytest.mark.parametrize("length", [30, 200])  # a shebang line holds at most 127 bytes
def test_both_forms_pip_writes_give_the_code_after_the_interpreter(tmp_path, length):
    venv = "/" + "v" * length
    python = f"{venv}/bin/python"
    data = _pip_script(tmp_path, python)
    assert data.startswith(b"#!/bin/sh\n") == (length > 100)
    body = script_body(data, python.encode())
    assert body is not None and body.lstrip().startswith((b"# -*- coding", b"import"))
    assert b"json.tool" in body and python.encode() not in body
    # Re-pointed as _job_bin does, the script runs with whatever `python` comes first.
    script = tmp_path / "repointed"
    script.write_bytes(b"#!/usr/bin/env python3\n" + body)
    script.chmod(0o755)
    proc = subprocess.run([str(script)], input='{"a": 1}', capture_output=True, text=True)
    assert proc.returncode == 0 and '"a": 1' in proc.stdout


def test_another_interpreters_script_is_left_alone(tmp_path):
    data = _pip_script(tmp_path, "/" + "o" * 200 + "/bin/python")
    assert script_body(data, ("/" + "v" * 200 + "/bin/python").encode()) is None
    assert script_body(b"#!/bin/sh\necho hi\n", b"/v/bin/python") is None
