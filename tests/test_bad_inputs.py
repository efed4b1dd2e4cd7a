"""The bad-input table (tests/data/bad_inputs.yaml): every command, refused cleanly.

Each case runs `python -m ci_gen ...` as a user would, in a scratch tree (work dir, HOME and
ci-gen's state dir all inside it), and asserts: the documented message, exactly one line on
stderr and no traceback, the documented exit code, no secret in any output, and the whole
tree unchanged (hashed before and after).
"""

from __future__ import annotations

import json
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


# --- the model registry: hostile answers and tracking URIs (issue 21 points 2, 9, 10) ---------
# Self-contained: a loopback server (pytest-httpserver's `httpserver`) answers as an MLflow tracking server,
# correctly except for the one answer a case replaces. `ci-gen models ...` must print one line
# naming what was wrong, exit 1, no traceback, no secret, no control character, no files.

REG_SECRET = "Pa55-w0rd-SECRET-9"
_REG_MODEL = {"m/w.bin": b"weights", "m/config.txt": b"epochs=1\n"}


def _reg_bundle() -> tuple[bytes, dict[str, Any]]:
    import tempfile

    from ci_gen.registry import bundle

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in _REG_MODEL.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_bytes(data)
        pack = bundle.pack(Path(tmp) / "m")
    return pack.files[bundle.ARCHIVE], pack.manifest


def _reg_answers(base: str) -> dict[str, bytes]:
    """What a healthy server answers (path -> JSON or bytes)."""
    archive, manifest = _reg_bundle()
    api = "/api/2.0/mlflow/"
    version = {"name": "m", "version": "1", "run_id": "r1",
               "tags": [{"key": "gitlab.version", "value": "0.1.0"}]}
    return {
        api + "registered-models/search": json.dumps({"registered_models": [{"name": "m"}]}).encode(),
        api + "registered-models/get": json.dumps({"registered_model": {"name": "m"}}).encode(),
        api + "model-versions/search": json.dumps({"model_versions": [version]}).encode(),
        api + "runs/get": json.dumps({"run": {"info": {"run_id": "r1", "artifact_uri": base + "/files/"},
                                              "data": {"params": [{"key": "a", "value": "1"}]}}}).encode(),
        "/files/manifest.json": json.dumps(manifest).encode(),
        "/files/model.tar.gz": archive,
    }


_A = "/api/2.0/mlflow/"
_LIST, _VERSIONS = ["models", "list"], ["models", "list", "m"]
_SHOW, _DOWNLOAD = ["models", "show", "m"], ["models", "download", "m", "--out", "out"]
# (id, command, path whose answer is replaced, (status, body), what the line must say)
REGISTRY_ANSWERS = [
    ("search-is-a-list", _LIST, _A + "registered-models/search", (200, b"[]"), "the document: expected an object"),
    ("search-models-an-object", _LIST, _A + "registered-models/search", (200, b'{"registered_models": {"a": 1}}'), "registered_models: expected a list"),
    ("model-name-an-int", _LIST, _A + "registered-models/search", (200, b'{"registered_models": [{"name": 5}]}'), "registered_models.0.name: expected a string, got the integer 5"),
    ("next-page-an-int", _LIST, _A + "registered-models/search", (200, b'{"registered_models": [], "next_page_token": 7}'), "next_page_token"),
    ("search-not-json", _LIST, _A + "registered-models/search", (200, b"<html>hi</html>"), "not JSON"),
    ("search-nan", _LIST, _A + "registered-models/search", (200, b'{"registered_models": [{"name": "m", "creation_timestamp": NaN}]}'), "NaN is not a JSON number"),
    ("search-nested-deep", _LIST, _A + "registered-models/search", (200, b"[" * 5000 + b"]" * 5000), "model registry answer"),
    ("model-missing", _VERSIONS, _A + "registered-models/get", (200, b"{}"), "registered_model: missing"),
    ("version-missing-version", _VERSIONS, _A + "model-versions/search", (200, b'{"model_versions": [{"name": "m"}]}'), "model_versions.0.version: missing"),
    ("version-an-int", _VERSIONS, _A + "model-versions/search", (200, b'{"model_versions": [{"name": "m", "version": 3}]}'), "model_versions.0.version: expected a string"),
    ("version-tags-an-object", _VERSIONS, _A + "model-versions/search", (200, b'{"model_versions": [{"name": "m", "version": "1", "tags": {"k": "v"}}]}'), "tags: expected a list"),
    ("version-timestamp-a-string", _VERSIONS, _A + "model-versions/search", (200, b'{"model_versions": [{"name": "m", "version": "1", "creation_timestamp": "soon"}]}'), "creation_timestamp"),
    ("run-info-a-list", _SHOW, _A + "runs/get", (200, b'{"run": {"info": []}}'), "run.info: expected an object"),
    ("run-metric-a-string", _SHOW, _A + "runs/get", (200, b'{"run": {"info": {"run_id": "r1", "artifact_uri": "x"}, "data": {"metrics": [{"key": "a", "value": "high"}]}}}'), "run.data.metrics.0.value"),
    ("run-without-artifact-uri", _DOWNLOAD, _A + "runs/get", (200, b'{"run": {"info": {"run_id": "r1"}}}'), "run.info.artifact_uri: missing"),
    ("manifest-a-list", _DOWNLOAD, "/files/manifest.json", (200, b"[1]"), "is not a ci-gen manifest"),
    ("manifest-size-a-string", _DOWNLOAD, "/files/manifest.json", (200, b'{"format": 1, "model": "m", "files": {"model.tar.gz": {"sha256": "' + b"0" * 64 + b'", "size": "12"}}}'), "files.model.tar.gz.size"),
    ("manifest-model-a-path", _DOWNLOAD, "/files/manifest.json", (200, b'{"format": 1, "model": "../../up", "files": {"model.tar.gz": {"sha256": "' + b"0" * 64 + b'", "size": 1}}}'), "model: "),
    ("manifest-files-missing", _DOWNLOAD, "/files/manifest.json", (200, b'{"format": 1, "model": "m"}'), "files: missing"),
    ("manifest-format-2", _DOWNLOAD, "/files/manifest.json", (200, b'{"format": 2, "model": "m", "files": {}}'), "format"),
    ("archive-not-gzip", _DOWNLOAD, "/files/model.tar.gz", (200, b"not an archive"), "hash mismatch for model.tar.gz"),
    ("plain-404", _LIST, _A + "registered-models/search", (404, b'{"message": "404 Not Found"}'), "not visible to this token's user"),
    ("error-body-with-esc", _LIST, _A + "registered-models/search", (500, b'{"error_code": "INTERNAL_ERROR", "message": "\\u001b[2J\\u001b]0;pwned\\u0007boom"}'), "INTERNAL_ERROR"),
    ("error-html-body", _SHOW, _A + "runs/get", (502, b"<html>\x1b[31mbad gateway</html>"), "HTTP 502"),
]


def _registry_env(tmp_path: Path, uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(DROP) and not k.startswith("MLFLOW_")}
    env.update(HOME=str(tmp_path / "home"), CI_GEN_STATE_DIR=str(tmp_path / "state"),
               MLFLOW_TRACKING_URI=uri, MLFLOW_TRACKING_TOKEN=REG_SECRET,
               CI_GEN_REGISTRY_RETRIES="1", CI_GEN_REGISTRY_TIMEOUT="5", NO_PROXY="127.0.0.1")
    return env


def _one_clean_line(proc: subprocess.CompletedProcess, expect: str) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert expect in lines[0], (expect, lines[0])
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert REG_SECRET not in proc.stdout + proc.stderr
    assert not any(ord(c) < 32 and c not in "\n" for c in proc.stdout + proc.stderr), \
        repr(proc.stderr)


@pytest.mark.parametrize("command, path, answer, expect",
                         [pytest.param(*c[1:], id=c[0]) for c in REGISTRY_ANSWERS])
def test_a_malformed_registry_answer_is_one_line(httpserver, tmp_path, command, path,
                                                 answer, expect):
    from werkzeug import Response

    base = httpserver.url_for("/").rstrip("/")
    answers = _reg_answers(base)
    for where, body in answers.items():
        status, data = answer if where == path else (200, body)
        httpserver.expect_request(where).respond_with_response(
            Response(data, status=status, content_type="application/json"))
    (tmp_path / "home").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-m", "ci_gen", *command], cwd=work,
                          env=_registry_env(tmp_path, base), capture_output=True, text=True,
                          timeout=120)
    _one_clean_line(proc, expect)
    assert not any((work / "out").rglob("*")), "files written"


@pytest.mark.parametrize("uri, expect", [
    (f"http://user:{REG_SECRET}@127.0.0.1:abc/", "must be an http(s) URL"),
    (f"http://user:{REG_SECRET}/x@127.0.0.1:1/", "must be an http(s) URL"),
    ("http://[::1/", "must be an http(s) URL"),
    ("http://127.0.0.1/a b", "must be an http(s) URL"),
    ("file:///tmp/mlruns", "must be an http(s) URL"),
    (f"http://user:{REG_SECRET}@127.0.0.1:{closed_port()}/", "is not reachable"),
])
def test_a_bad_tracking_uri_is_one_line_without_its_password(tmp_path, uri, expect):
    (tmp_path / "home").mkdir()
    proc = subprocess.run([sys.executable, "-m", "ci_gen", "models", "list"], cwd=tmp_path,
                          env=_registry_env(tmp_path, uri), capture_output=True, text=True,
                          timeout=120)
    _one_clean_line(proc, expect)


def test_server_text_reaches_the_terminal_escaped(httpserver, tmp_path):
    """Names, tags and params from the registry are printed with control characters escaped:
    an ESC from the server cannot clear the screen, retitle the terminal or forge a line."""
    from werkzeug import Response

    base = httpserver.url_for("/").rstrip("/")
    answers = _reg_answers(base)
    evil = "\x1b[2J\x1b]0;pwned\x07\nci-gen: all good"
    answers[_A + "registered-models/search"] = json.dumps(
        {"registered_models": [{"name": "m" + evil}]}).encode()
    answers[_A + "model-versions/search"] = json.dumps({"model_versions": [
        {"name": "m", "version": "1", "run_id": "r1",
         "tags": [{"key": "gitlab.version", "value": "0.1.0"},
                  {"key": "ci_gen.ref", "value": "main" + evil}]}]}).encode()
    for where, body in answers.items():
        httpserver.expect_request(where).respond_with_response(
            Response(body, content_type="application/json"))
    (tmp_path / "home").mkdir()
    env = _registry_env(tmp_path, base)
    for command in (_LIST, _VERSIONS, _SHOW):
        proc = subprocess.run([sys.executable, "-m", "ci_gen", *command], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout, repr(proc.stdout)
        assert "\\x1b[2J" in proc.stdout  # shown, escaped
        assert not any(line.startswith("ci-gen: all good") for line in proc.stdout.splitlines())


@pytest.mark.parametrize("pointer, expect", [
    ("outs: {md5: abc}\n", "outs: expected a list"),
    ("outs:\n- md5: 5\n", "outs.0.md5: expected a string, got the integer 5"),
    ("outs: []\n", "outs: List should have at least 1 item"),
    ("- 1\n", "the document: expected an object"),
    ("outs: [\n", "not YAML"),
])
def test_a_malformed_dvc_pointer_for_register_is_one_line(tmp_path, pointer, expect):
    (tmp_path / "home").mkdir()
    work = tmp_path / "work"
    (work / "model").mkdir(parents=True)
    (work / "model" / "w.bin").write_bytes(b"w")
    (work / "data.dvc").write_text(pointer)
    env = {**_registry_env(tmp_path, f"http://127.0.0.1:{closed_port()}"),
           "CI_COMMIT_SHA": "1" * 40}
    proc = subprocess.run([sys.executable, "-m", "ci_gen", "job", "register", "--model-name", "m",
                           "--model-path", "model", "--data", "data.dvc"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    _one_clean_line(proc, expect)
    assert "data.dvc" in proc.stderr and not (work / "register.env").exists()


@pytest.mark.parametrize("path, body, expect", [
    (_A + "registered-models/get", b"[]", "the document: expected an object"),
    (_A + "model-versions/search", b'{"model_versions": [{"name": "m", "version": 1}]}',
     "model_versions.0.version: expected a string, got the integer 1"),
    (_A + "experiments/get-by-name", b'{"experiment": {"experiment_id": ["1"]}}',
     "experiment.experiment_id: expected a string, got a list"),
])
def test_a_malformed_registry_answer_to_register_is_one_line(httpserver, tmp_path, path, body,
                                                             expect):
    from werkzeug import Response

    base = httpserver.url_for("/").rstrip("/")
    answers = {**_reg_answers(base), path: body,
               _A + "model-versions/search": json.dumps({"model_versions": []}).encode()
               if path != _A + "model-versions/search" else body}
    for where, data in answers.items():
        httpserver.expect_request(where).respond_with_response(
            Response(data, content_type="application/json"))
    (tmp_path / "home").mkdir()
    work = tmp_path / "work"
    (work / "model").mkdir(parents=True)
    (work / "model" / "w.bin").write_bytes(b"w")
    env = {**_registry_env(tmp_path, base), "CI_COMMIT_SHA": "1" * 40}
    proc = subprocess.run([sys.executable, "-m", "ci_gen", "job", "register", "--model-name", "m",
                           "--model-path", "model"], cwd=work, env=env, capture_output=True,
                          text=True, timeout=120)
    _one_clean_line(proc, expect)
    assert not (work / "register.env").exists()
