"""The bad-input table (tests/data/bad_inputs.yaml): every command, refused cleanly.

Each case runs `python -m ci_gen ...` as a user would, in a scratch tree (work dir, HOME and
ci-gen's state dir all inside it), and asserts: the documented message, exactly one line on
stderr and no traceback, the documented exit code, no secret in any output, and the whole
tree unchanged (hashed before and after).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.git import IDENTITY
from support.trees import tree_hash

TABLE = Path(__file__).resolve().parent / "data" / "bad_inputs.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
LONG = "a" * 300
# The caller's environment must not decide a case: no tokens, no CI job, no cloud keys.
DROP = ("GITLAB_API_TOKEN", "REPO_TOKEN", "CI_", "AWS_", "OSS_", "GCL_", "DVC_")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def substitute(text: str, tokens: dict[str, str]) -> str:
    for key, value in tokens.items():
        text = text.replace("{" + key + "}", value)
    return text


def prepare(case: dict[str, Any], root: Path) -> tuple[Path, dict[str, str], list[str]]:
    """Build the case's tree; returns (work dir, environment, argv)."""
    work, home, state = root / "work", root / "home", root / "state"
    for d in (work, home, state):
        d.mkdir()
    tokens = {"long": LONG, "closed_port": str(closed_port()), "marker": str(root / "PWNED")}
    setup = case.get("setup") or {}
    for rel, text in (setup.get("files") or {}).items():
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(substitute(text, tokens), encoding="utf-8")
    for rel, hexdata in (setup.get("bytes") or {}).items():
        (work / rel).write_bytes(bytes.fromhex(hexdata))
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROP)}
    env.update(HOME=str(home), CI_GEN_STATE_DIR=str(state), CI_GEN_GITLAB_RETRIES="0",
               CI_GEN_GITLAB_TIMEOUT="5")
    if setup.get("git"):
        genv = {**env, **IDENTITY}
        for args in (["init", "-q", "-b", "main"],
                     ["remote", "add", "origin", "git@gitlab.example.com:mlops/demo.git"],
                     ["add", "-A"], ["commit", "-q", "-m", "init"]):
            subprocess.run(["git", *args], cwd=work, env=genv, check=True, capture_output=True)
    env.update({k: substitute(str(v), tokens) for k, v in (setup.get("env") or {}).items()})
    argv = [substitute(str(a), tokens) for a in case["command"]]
    return work, env, argv


def _param(case: dict[str, Any]):
    marks = [pytest.mark.xfail(strict=True, reason=f"BUG: {case['bug']}")] if case.get("bug") else []
    return pytest.param(case, id=case["name"], marks=marks)


def test_table_is_well_formed():
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)) >= 30
    allowed = {"name", "doc", "command", "setup", "stream", "message", "exit", "secret", "bug"}
    for c in CASES:
        assert set(c) <= allowed and {"name", "doc", "command", "message", "exit"} <= set(c), c["name"]
        assert isinstance(c["command"], list) and c["command"], c["name"]
        assert c["exit"] in (1, 2) and c.get("stream", "stderr") in ("stderr", "stdout"), c["name"]
    # Every command of the CLI has cases.
    commands = {c["command"][0] for c in CASES}
    assert {"list", "render", "build", "init", "lint", "run", "report", "variables", "job"} <= commands
    jobs = {c["command"][1] for c in CASES if c["command"][0] == "job"}
    assert {"deploy", "stop", "gate", "eval-report", "dvc-auth", "commit-pointers"} <= jobs


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input_is_refused_cleanly(case, tmp_path):
    work, env, argv = prepare(case, tmp_path)
    before = tree_hash(tmp_path)
    # Not support.cli.cli: that one starts from os.environ, and the case's environment must win.
    proc = subprocess.run([sys.executable, "-m", "ci_gen", *argv], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    out, err = proc.stdout, proc.stderr
    assert "Traceback" not in err, err
    lines = err.splitlines()
    stream = case.get("stream", "stderr")
    if stream == "stderr":
        assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err!r}"
        assert case["message"] in lines[0], (case["message"], lines[0])
    else:
        assert lines == [], err
        assert case["message"] in out, out
    assert proc.returncode == case["exit"], (proc.returncode, err)
    if case.get("secret"):
        assert case["secret"] not in out + err
    assert tree_hash(tmp_path) == before, "files changed on disk"
