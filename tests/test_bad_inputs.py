"""The bad-input table (tests/data/bad_inputs.yaml): every command, refused cleanly.

Each case runs `python -m ci_gen ...` as a user would, in a scratch tree (work dir, HOME and
ci-gen's state dir all inside it), and asserts: the documented message, exactly one line on
stderr and no traceback, the documented exit code, no secret in any output, and the whole
tree unchanged (hashed before and after).

Sections. Surfaces whose hostile input cannot be a static table entry (a server's answer, a
file whose name depends on a hash) have sections of their own below the table. The
convention, which benchmarks/hardening_counts.py relies on to count them:
  - a section is ONE parametrised test function in this file, named `test_bad_<surface>`;
  - each of its parameters is one case, and the case is clean when the test passes;
  - the table itself is the section `test_bad_input_is_refused_cleanly`.
Non-parametrised tests (checks of the table's own shape) are not sections.
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
def test_bad_registry_answer(httpserver, tmp_path, command, path,
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
    # The port is chosen when the test runs: xdist workers must collect the same ids.
    (f"http://user:{REG_SECRET}@127.0.0.1:CLOSED/", "is not reachable"),
])
def test_bad_tracking_uri(tmp_path, uri, expect):
    uri = uri.replace("CLOSED", str(closed_port()))
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
    ("outs: [\n", "invalid YAML"),
])
def test_bad_dvc_pointer(tmp_path, pointer, expect):
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
def test_bad_register_answer(httpserver, tmp_path, path, body,
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


# --- monitor: hostile Prometheus answers, scrapes and reference profiles (issue 21) ----------
# Self-contained: a loopback stand-in answers every request with one canned body (a Prometheus
# query answer or a metrics exposition); `ci-gen job monitor` runs as a user runs it. Each case:
# one line on stderr naming the source and the field, exit 1, no traceback, no report written.

import json as _json  # noqa: E402
import threading as _threading  # noqa: E402
from http.server import BaseHTTPRequestHandler as _Handler, ThreadingHTTPServer as _Server  # noqa: E402

MON_MODEL = "fashion-mnist"
MON_BOUNDS = [0.25, 0.5, 0.75, 1.0]
MON_CLASSES = ["shirt", "shoe", "bag"]


def mon_profile(intensity=(10, 60, 25, 5, 0), classes=(40, 30, 30)) -> dict:
    return {"format": "ci-gen/profile/v1", "model": MON_MODEL, "samples": 100, "signals": {
        "mean_intensity": {"kind": "histogram", "metric": "serving_input_mean_intensity",
                           "le": [*MON_BOUNDS, "+Inf"], "counts": list(intensity)},
        "predicted_class": {"kind": "categorical", "metric": "serving_predicted_class_total",
                            "label": "class", "categories": MON_CLASSES, "counts": list(classes)}}}


def exposition(intensity=(10, 60, 25, 5, 0), classes=(40, 30, 30), value=repr) -> str:
    """serve.py's metrics for per-bucket `intensity` and per-class `classes` counts."""
    ids = f'model="{MON_MODEL}",version="1"'
    lines = ["# TYPE serving_input_mean_intensity histogram"]
    total = 0.0
    for le, count in zip([*map(repr, MON_BOUNDS), "+Inf"], intensity):
        total += count
        lines.append(f'serving_input_mean_intensity_bucket{{{ids},le="{le}"}} {value(total)}')
    lines += [f"serving_input_mean_intensity_count{{{ids}}} {value(total)}",
              f"serving_input_mean_intensity_sum{{{ids}}} 1.0",
              "# TYPE serving_predicted_class counter"]
    lines += [f'serving_predicted_class_total{{{ids},class="{c}"}} {value(n)}'
              for c, n in zip(MON_CLASSES, classes)]
    return "\n".join(lines) + "\n"


class Canned:
    """A loopback server answering every GET with (status, content type, body[, length])."""

    def __init__(self, status: int, body: bytes, ctype: str = "application/json",
                 length: int | None = None) -> None:
        class Handler(_Handler):
            def do_GET(self):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body if length is None else b"")

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        _threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_monitor(tmp_path: Path, reference: str | bytes, source_flag: str, url: str,
                *extra: str) -> subprocess.CompletedProcess:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    data = reference if isinstance(reference, bytes) else reference.encode()
    (work / "profile.json").write_bytes(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROP)}
    env.update(HOME=str(tmp_path), CI_GEN_STATE_DIR=str(tmp_path / "state"))
    return subprocess.run([sys.executable, "-m", "ci_gen", "job", "monitor", "--reference", "profile.json",
                           "--model-name", MON_MODEL, source_flag, url, "--min-samples", "1", *extra],
                          cwd=work, env=env, capture_output=True, text=True, timeout=120)


def assert_one_line(proc: subprocess.CompletedProcess, *expected: str) -> None:
    err = proc.stderr
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, f"expected one line on stderr, got: {err!r}"
    for text in expected:
        assert text in err, (text, err)
    assert proc.returncode == 1, (proc.returncode, err)


def vector(*rows: object) -> bytes:
    return _json.dumps({"status": "success", "data": {"resultType": "vector", "result": list(rows)}}).encode()


ROW = {"metric": {"le": "0.25"}, "value": [1700000000.0, "10"]}
PROMETHEUS_ANSWERS = {
    "a list": (b"[]", "the document: expected an object, got a list"),
    "null": (b"null", "the document: expected an object, got null"),
    "a row without value": (vector({"metric": {"le": "0.25"}}), "data.result.0.value: missing"),
    "le not a number": (vector({**ROW, "metric": {"le": "abc"}}), "data.result.0.metric.le: le='abc' is not a bucket bound"),
    "le NaN": (vector({**ROW, "metric": {"le": "NaN"}}), "le='NaN' is not a bucket bound"),
    "value +Inf": (vector({**ROW, "value": [1700000000.0, "+Inf"]}), "data.result.0.value.1: must be a finite number"),
    "value NaN": (vector({**ROW, "value": [1700000000.0, "NaN"]}), "data.result.0.value.1: must be a finite number"),
    "value a word": (vector({**ROW, "value": [1700000000.0, "lots"]}), "data.result.0.value.1: must be a number"),
    "value a list": (vector({**ROW, "value": [1700000000.0, [1]]}), "data.result.0.value.1"),
    "value negative": (vector({**ROW, "value": [1700000000.0, "-5"]}), "must be a non-negative number"),
    "value one item": (vector({**ROW, "value": ["10"]}), "data.result.0.value"),
    "metric a list": (vector({**ROW, "metric": []}), "data.result.0.metric: expected an object, got a list"),
    "label an integer": (vector({**ROW, "metric": {"le": 5}}), "data.result.0.metric.le: expected a string"),
    "result an object": (_json.dumps({"status": "success", "data": {"resultType": "vector", "result": {}}}).encode(),
                         "data.result: expected a list, got an object"),
    "status an integer": (b'{"status": 1}', "status: expected a string, got the integer 1"),
    "data missing": (b'{"status": "success"}', "expected an instant vector, got no data"),
    "a matrix": (_json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode(),
                 "expected an instant vector, got resultType 'matrix'"),
    "NaN literal": (b'{"status": "success", "data": NaN}', "NaN is not a JSON number"),
    "nested too deep": (b"[" * 5000 + b"]" * 5000, "nested too deep"),
    "not JSON": (b"<html>hello</html>", "is not JSON"),
    "an error": (b'{"status": "error", "errorType": "bad_data", "error": "parse error"}', "refused"),
}


@pytest.mark.parametrize("case", list(PROMETHEUS_ANSWERS))
def test_bad_prometheus_answer(case, tmp_path):
    body, expected = PROMETHEUS_ANSWERS[case]
    prometheus = Canned(200, body)
    try:
        proc = run_monitor(tmp_path, _json.dumps(mon_profile()), "--prometheus-url", prometheus.url)
    finally:
        prometheus.close()
    assert_one_line(proc, f"Prometheus at {prometheus.url}", expected)
    assert not (tmp_path / "work" / "drift").exists()


@pytest.mark.parametrize(("status", "body", "length", "expected"), [
    (500, b"<html>oops</html>", None, "answered HTTP 500"),
    (200, b"", 64 * 1024 * 1024, "more than the 16.0 MiB allowed"),
])
def test_bad_prometheus_status(tmp_path, status, body, length, expected):
    prometheus = Canned(status, body, length=length)
    try:
        proc = run_monitor(tmp_path, _json.dumps(mon_profile()), "--prometheus-url", prometheus.url)
    finally:
        prometheus.close()
    assert_one_line(proc, expected)


SCRAPES = {
    "a count +Inf": (exposition(value=lambda v: "+Inf"), "value: must be a finite number"),
    "a count NaN": (exposition(value=lambda v: "NaN"), "value: must be a finite number"),
    "a class count +Inf": (exposition().replace('class="bag"} 30', 'class="bag"} +Inf'),
                           "serving_predicted_class_total{class='bag'"),
    "le not a number": (exposition().replace('le="0.25"', 'le="abc"'), "label le: le='abc' is not a bucket bound"),
    "not the text format": ('serving_input_mean_intensity_bucket{le="0.25} 1\n', "is not in Prometheus' text format"),
}


@pytest.mark.parametrize("case", list(SCRAPES))
def test_bad_metrics_scrape(case, tmp_path):
    text, expected = SCRAPES[case]
    endpoint = Canned(200, text.encode(), "text/plain; version=0.0.4")
    try:
        proc = run_monitor(tmp_path, _json.dumps(mon_profile()), "--metrics-url", endpoint.url + "/metrics")
    finally:
        endpoint.close()
    assert_one_line(proc, endpoint.url, expected)
    assert "no drift" not in proc.stdout
    assert not (tmp_path / "work" / "drift").exists()


def _counts(profile: str, field: str, value: str) -> str:
    return profile.replace('"counts": [10, 60, 25, 5, 0]', f'"counts": [10, {value}, 25, 5, 0]') \
        if field == "intensity" else profile.replace('"counts": [40, 30, 30]', f'"counts": [40, {value}, 30]')


REFERENCES = {
    "a count Infinity": (_counts(_json.dumps(mon_profile()), "intensity", "Infinity"),
                         "signals.mean_intensity.counts.1: must be a finite number"),
    "a count NaN": (_counts(_json.dumps(mon_profile()), "classes", "NaN"),
                    "signals.predicted_class.counts.1: must be a finite number"),
    "a count 1e400": (_counts(_json.dumps(mon_profile()), "intensity", "1e400"),
                      "signals.mean_intensity.counts.1: must be a finite number"),
    "a count of 400 digits": (_counts(_json.dumps(mon_profile()), "intensity", "9" * 400),
                              "signals.mean_intensity.counts.1: must be a finite number"),
    "a count a string": (_counts(_json.dumps(mon_profile()), "intensity", '"60"'),
                         "signals.mean_intensity.counts.1: must be a non-negative number"),
    "a bound Infinity": (_json.dumps(mon_profile()).replace("0.25", "Infinity"), "bucket bound Infinity"),
    "signals a list": (_json.dumps({**mon_profile(), "signals": []}), "signals: expected an object, got a list"),
    "a signal null": (_json.dumps({**mon_profile(), "signals": {"x": None}}), "signals.x: expected an object, got null"),
    "a label an integer": (_json.dumps(mon_profile()).replace('"label": "class"', '"label": 7'),
                           "signals.predicted_class.label: expected a string"),
    "the document a list": ("[]", "the document: expected an object, got a list"),
    "nested for RecursionError": ('{"format": "ci-gen/profile/v1", "signals": ' + "[" * 100_000 + "]" * 100_000 + "}",
                                  "nested too deep"),
    "not UTF-8": (b'{"format": "\xff\xfe"}', "not readable JSON"),
}


@pytest.mark.parametrize("case", list(REFERENCES))
def test_bad_reference_profile(case, tmp_path):
    reference, expected = REFERENCES[case]
    endpoint = Canned(200, exposition().encode(), "text/plain; version=0.0.4")
    try:
        proc = run_monitor(tmp_path, reference, "--metrics-url", endpoint.url + "/metrics")
    finally:
        endpoint.close()
    assert_one_line(proc, "reference profile profile.json", expected)
    assert not (tmp_path / "work" / "drift").exists()


@pytest.mark.parametrize("side", ["live", "reference"])
def test_bad_huge_counts(tmp_path, side):
    # 1e308 a count: every sum of them overflows a float. Shares equal on both sides: PSI 0.
    huge = (1e307, 6e307, 2.5e307, 5e306, 0.0), (1e308, 1e308, 1e308)
    small = (2, 12, 5, 1, 0), (1, 1, 1)
    live, ref = (huge, small) if side == "live" else (small, huge)
    endpoint = Canned(200, exposition(*live).encode(), "text/plain; version=0.0.4")
    try:
        proc = run_monitor(tmp_path, _json.dumps(mon_profile(*ref)), "--metrics-url", endpoint.url + "/metrics")
    finally:
        endpoint.close()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    report = _json.loads((tmp_path / "work" / "drift" / "report.json").read_text())
    assert report["verdict"] == "stable" and [s["psi"] for s in report["signals"]] == [0.0, 0.0]


def test_monitor_psi_is_never_nan_and_undefined_is_never_no_drift():
    import math

    from ci_gen.monitoring import drift

    for bad in (math.inf, math.nan, -1.0):
        with pytest.raises(drift.CountError, match="not a finite non-negative number"):
            drift.psi((1.0, 2.0), (bad, 2.0))
        with pytest.raises(drift.CountError):
            drift.psi((bad, 2.0), (1.0, 2.0))
    assert drift.psi((1e308,) * 5, (1e308,) * 5) == 0.0
    assert drift.psi((1.0, 0.0), (0.0, 1.0)) == pytest.approx(2 * (1 - 1e-4) * math.log(1e4))
    undefined = drift.SignalDrift("x", math.nan, 0.2, ("a",), (1.0,), (1.0,), 1.0)
    assert undefined.drifted  # NaN is not "at or below the threshold"


# --- the example's serve.py: hostile requests (issue 21) ----------------------------------------
# A real serve.py process serving a real (tiny, untrained) SavedModel with the example's
# signature: `images` float32 [batch, 28, 28] -> `output_0` [batch, 10]. Reads time out after
# 1 s and 4 connections are served at once, so the half-open case is quick. Each refusal is a
# JSON answer {"error": one line} with the status asserted; every predict request is counted once.

import http.client as _http  # noqa: E402
import time as _time  # noqa: E402
import urllib.error as _urlerror  # noqa: E402
import urllib.request as _urlrequest  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families as _families  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fashion-mnist"
SERVE_MODEL = "tiny"
SERVE_THREADS, SERVE_TIMEOUT_MS = 4, 1000
TINY_SAVEDMODEL = """
import sys
import tensorflow as tf

class Tiny(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([784, 10], seed=[1, 2]) * 0.01)

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32, name="images")])
    def serve(self, images):
        return {"output_0": tf.nn.softmax(tf.matmul(tf.reshape(images, [-1, 784]), self.w))}

tiny = Tiny()
tf.saved_model.save(tiny, sys.argv[1], signatures={"serving_default": tiny.serve})
"""


@pytest.fixture(scope="module")
def tiny_serve(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", TINY_SAVEDMODEL, str(root / "model" / "1")], env=env,
                   check=True, capture_output=True, timeout=600)
    log = open(root / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, str(EXAMPLE / "serve.py"), "--model_name", SERVE_MODEL,
                             "--model_base_path", str(root / "model"), "--rest_api_port", "0",
                             "--rest_api_timeout_in_ms", str(SERVE_TIMEOUT_MS),
                             "--rest_api_num_threads", str(SERVE_THREADS)],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = proc.stdout.readline()
        assert " at http://" in line, (line, (root / "serve.log").read_text())
        url = line.split(" at ", 1)[1].split("/v1/", 1)[0]
        yield {"url": url, "pid": proc.pid, "log": root / "serve.log",
               "host": "127.0.0.1", "port": int(url.rsplit(":", 1)[1])}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


ZEROS = _json.dumps({"instances": [[[0.0] * 28] * 28]})


def predict_raw(serve: dict, body: bytes, ctype: str | None = "application/json",
                method: str = "POST") -> tuple[int, bytes]:
    headers = {} if ctype is None else {"Content-Type": ctype}
    req = _urlrequest.Request(f"{serve['url']}/v1/models/{SERVE_MODEL}:predict", data=body,
                              method=method, headers=headers)
    try:
        with _urlrequest.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except _urlerror.HTTPError as exc:
        return exc.code, exc.read()


def strict(raw: bytes) -> object:
    def refuse(name):
        raise AssertionError(f"{name} in an answer: not JSON")
    return _json.loads(raw, parse_constant=refuse)


def one_error(status: int, raw: bytes, expected_status: int, expected: str) -> None:
    answer = strict(raw)
    assert status == expected_status, (status, answer)
    assert set(answer) == {"error"} and "\n" not in answer["error"], answer
    assert expected in answer["error"], (expected, answer)


HOSTILE_BODIES = {
    "NaN": (ZEROS.replace("0.0", "NaN", 1), "NaN, which is not a number"),
    "Infinity": (ZEROS.replace("0.0", "Infinity", 1), "Infinity, which is not a number"),
    "-Infinity": (ZEROS.replace("0.0", "-Infinity", 1), "-Infinity, which is not a number"),
    "1e39 overflows float32": (ZEROS.replace("0.0", "1e39", 1), "beyond float32's range"),
    "-1e39": (ZEROS.replace("0.0", "-1e39", 1), "beyond float32's range"),
    "1e400 overflows any float": (ZEROS.replace("0.0", "1e400", 1), "a number beyond any float"),
    "a 5000-digit integer": (ZEROS.replace("0.0", "9" * 5000, 1), "integer of 5000 digits"),
    "a 101-digit integer": (ZEROS.replace("0.0", "9" * 101, 1), "integer of 101 digits"),
    "nested 5000 deep": ('{"instances": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deep"),
    "nested 500 deep": ('{"instances": ' + "[" * 500 + "0" + "]" * 500 + "}", "ragged"),
    "a huge integer within the JSON limit": (ZEROS.replace("0.0", "1" + "0" * 60, 1), "beyond float32's range"),
    "not UTF-8": ('{"instances": "\udcff"}', "not valid JSON"),
    "booleans": (ZEROS.replace("0.0", "true"), "numbers only"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(HOSTILE_BODIES))
def test_bad_serve_input(tiny_serve, case):
    text, expected = HOSTILE_BODIES[case]
    status, raw = predict_raw(tiny_serve, text.encode("utf-8", "surrogateescape"))
    one_error(status, raw, 400, expected)


@pytest.mark.slow
@pytest.mark.parametrize(("ctype", "status"), [
    ("application/x-www-form-urlencoded", 415), ("text/plain", 415),
    ("multipart/form-data; boundary=x", 415), (None, 415), ("application/json-patch+json", 415),
    ("application/json", 200), ("application/json; charset=utf-8", 200), ("Application/JSON", 200),
])
def test_bad_serve_content_type(tiny_serve, ctype, status):
    got, raw = predict_raw(tiny_serve, ZEROS.encode(), ctype)
    if status == 200:
        assert got == 200 and len(strict(raw)["predictions"]) == 1
    else:
        one_error(got, raw, 415, "predict needs Content-Type: application/json")


def scrape(serve: dict) -> dict:
    with _urlrequest.urlopen(serve["url"] + "/monitoring/prometheus/metrics", timeout=30) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in _families(text) for s in f.samples}


def by_status(samples: dict) -> dict[str, float]:
    return {dict(k[1])["status"]: v for k, v in samples.items() if k[0] == "serving_requests_total"}


def raw_request(serve: dict, head: bytes, body: bytes = b"", then_close: bool = True,
                read: bool = True) -> bytes:
    sock = socket.create_connection((serve["host"], serve["port"]), timeout=30)
    try:
        sock.sendall(head + body)
        if then_close:
            sock.shutdown(socket.SHUT_WR)
        return sock.recv(65536) if read else b""
    finally:
        sock.close()


@pytest.mark.slow
def test_serve_counts_every_predict_request_once_by_its_status(tiny_serve):
    path = f"/v1/models/{SERVE_MODEL}:predict"
    before = scrape(tiny_serve)
    assert predict_raw(tiny_serve, ZEROS.encode())[0] == 200
    assert predict_raw(tiny_serve, ZEROS.replace("0.0", "NaN").encode())[0] == 400
    assert predict_raw(tiny_serve, ZEROS.encode(), "application/x-www-form-urlencoded")[0] == 415
    assert predict_raw(tiny_serve, b"", method="GET")[0] == 405
    # 411: no Content-Length; 413: one over the limit (the body is never read).
    assert b" 411 " in raw_request(tiny_serve, f"POST {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert b" 413 " in raw_request(tiny_serve, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                   f"application/json\r\nContent-Length: {64 * 1024 * 1024 + 1}\r\n\r\n".encode())
    # Aborted: 10 of 1000 bytes, then the client closes. Nothing can be answered; counted as 499.
    assert raw_request(tiny_serve, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                       "\r\nContent-Length: 1000\r\n\r\n".encode(), b'{"instance') == b""
    # Timed out: 10 of 1000 bytes and the client waits: 408 after the read timeout.
    assert b" 408 " in raw_request(tiny_serve, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                   "application/json\r\nContent-Length: 1000\r\n\r\n".encode(),
                                   b'{"instance', then_close=False)
    # Headers that never end: the connection is closed after the read timeout, no answer; 408.
    assert raw_request(tiny_serve, f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode(), then_close=False) == b""
    # Refused by the HTTP layer before the handler: an unsupported method.
    assert b" 501 " in raw_request(tiny_serve, f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    deadline = _time.monotonic() + 10
    while True:  # the aborted request is counted once its thread saw the close
        after = scrape(tiny_serve)
        delta = {k: v - by_status(before).get(k, 0.0) for k, v in by_status(after).items()}
        if delta.get("499") or _time.monotonic() > deadline:
            break
        _time.sleep(0.2)
    assert {k: v for k, v in delta.items() if v} == {
        "200": 1, "400": 1, "405": 1, "408": 2, "411": 1, "413": 1, "415": 1, "499": 1, "501": 1}
    intensity = [v for k, v in after.items() if k[0] == "serving_input_mean_intensity_sum"]
    assert intensity and all(v == v and abs(v) != float("inf") for v in intensity)


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.mark.slow
def test_serve_half_open_connections_are_timed_out_and_threads_stay_bounded(tiny_serve):
    # TensorFlow starts thread pools of its own on the first predictions and its count
    # moves a little: warm it first, take the highest of a few samples, and allow a few
    # threads of slack. Unbounded serving would add one thread per connection (24 here).
    predict_raw(tiny_serve, ZEROS.encode())
    baseline = max(_threads(tiny_serve["pid"]) for _ in range(5) if not _time.sleep(0.1))
    slack = 4
    socks = []
    try:
        for _ in range(24):  # request line and half the headers, then nothing
            s = socket.create_connection((tiny_serve["host"], tiny_serve["port"]), timeout=30)
            s.sendall(f"POST /v1/models/{SERVE_MODEL}:predict HTTP/1.1\r\nHost: x\r\n".encode())
            socks.append(s)
        _time.sleep(0.5)
        most = max(_threads(tiny_serve["pid"]) for _ in range(5) if not _time.sleep(0.1))
        assert most <= baseline + SERVE_THREADS + slack < baseline + 24, (baseline, most)
        # Each is closed by the server: 24 connections, 4 at a time, 1 s each.
        started = _time.monotonic()
        for s in socks:
            assert s.recv(1024) == b""  # EOF: the server closed it (the client's own timeout is 30 s)
        closed_after = _time.monotonic() - started
        assert closed_after < 24 / SERVE_THREADS * SERVE_TIMEOUT_MS / 1000 + 5, closed_after
    finally:
        for s in socks:
            s.close()
    status, raw = predict_raw(tiny_serve, ZEROS.encode())
    assert status == 200 and len(strict(raw)["predictions"]) == 1


# =============================================================================================
# Sections of issue 21 (deploy/engine answers, edge-convert's cache, YAML files jobs read,
# sweep cell files). Self-contained: their helpers start with `_j`.
# =============================================================================================

def _jenv(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROP + ("DEPLOY_", "MLFLOW_"))}
    (root / "home").mkdir(exist_ok=True)
    (root / "state").mkdir(exist_ok=True)
    env.update(HOME=str(root / "home"), CI_GEN_STATE_DIR=str(root / "state"), **extra)
    return env


def _jrun(argv: list[str], work: Path, env: dict[str, str], message: str,
          timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `ci-gen ARGV`: one line on stderr naming MESSAGE, exit 1, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "ci_gen", *argv], cwd=work, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {proc.stderr!r}"
    assert lines[0].startswith("ci-gen: error: ") and message in lines[0], (message, lines[0])
    assert "\x1b" not in proc.stdout + proc.stderr  # no raw escape reaches the terminal
    assert proc.returncode == 1, proc.returncode
    return proc


# -- deploy: a container engine's answers ------------------------------------------------------

def _answer(path: str, status: int, body: bytes, method: str = ""):
    def rule(m, p, state):
        if p == path or (path.endswith("/*/json") and p.startswith("/containers/")
                         and p.endswith("/json") and p != "/containers/json"):
            if not method or m == method:
                return status, body
        return None
    return rule


_ENGINE_LIST = "/containers/json"
_CREATE = "/containers/create"
_INSPECT = "/containers/*/json"
ENGINE_CASES = [
    # (id, job, rule, message)
    ("list-not-json", "stop", _answer(_ENGINE_LIST, 200, b"<html>oops</html>"),
     "engine answer to GET /containers/json: not JSON"),
    ("list-an-object", "stop", _answer(_ENGINE_LIST, 200, b'{"Id": "x"}'),
     "engine answer to GET /containers/json: the document: expected a list"),
    ("list-of-strings", "stop", _answer(_ENGINE_LIST, 200, b'["abc"]'),
     "engine answer to GET /containers/json: 0: expected an object"),
    ("labels-a-list", "stop", _answer(_ENGINE_LIST, 200, b'[{"Id": "abc", "Labels": ["ci-gen.release=1"]}]'),
     "engine answer to GET /containers/json: 0.Labels: expected an object, got a list"),
    ("label-not-a-string", "stop", _answer(_ENGINE_LIST, 200, b'[{"Id": "abc", "Labels": {"ci-gen.release": 1}}]'),
     "0.Labels.ci-gen.release: expected a string"),
    ("item-without-id", "stop", _answer(_ENGINE_LIST, 200, b'[{"Names": ["/x"], "State": "running"}]'),
     "engine answer to GET /containers/json: 0.Id: missing"),
    ("id-with-a-path", "stop", _answer(_ENGINE_LIST, 200, b'[{"Id": "../../images/x", "Labels": {}}]'),
     "engine answer to GET /containers/json: 0.Id: String should match pattern"),
    ("list-with-nan", "stop", _answer(_ENGINE_LIST, 200, b'[{"Id": "abc", "State": NaN}]'),
     "engine answer to GET /containers/json: NaN is not a JSON number"),
    ("list-nested-5000-deep", "stop", _answer(_ENGINE_LIST, 200, b"[" * 5000 + b"]" * 5000),
     "engine answer to GET /containers/json: JSON nested too deep"),
    ("list-9-mib", "stop", _answer(_ENGINE_LIST, 200, b"[" + b" " * (9 * 1024 * 1024) + b"]"),
     "answered GET /containers/json with more than 8 MiB"),
    ("error-with-escape-bytes", "stop", _answer(_ENGINE_LIST, 500, b'{"message": "\x1b[2Jboom\x1b[0m"}'),
     "boom"),
    ("error-not-json", "stop", _answer(_ENGINE_LIST, 500, "\x1b]0;pwned\x07 engine down".encode()),
     "engine down"),
    ("create-without-id", "deploy", _answer(_CREATE, 201, b'{"Warnings": []}'),
     "engine answer to POST /containers/create: Id: missing"),
    ("create-a-list", "deploy", _answer(_CREATE, 201, b'[]'),
     "engine answer to POST /containers/create: the document: expected an object"),
    ("create-id-an-int", "deploy", _answer(_CREATE, 201, b'{"Id": 7}'),
     "engine answer to POST /containers/create: Id: expected a string"),
    ("inspect-not-json", "deploy", _answer(_INSPECT, 200, b"Bad Gateway"),
     "failed (engine answer to GET /containers/0123456789ab/json: not JSON); no previous release"),
    ("inspect-state-a-list", "deploy", _answer(_INSPECT, 200, b'{"State": []}'),
     "State: expected an object"),
    ("inspect-running-a-list", "deploy", _answer(_INSPECT, 200, b'{"State": {"Running": [true]}}'),
     "State.Running: expected true or false"),
    ("connection-dropped-at-inspect", "deploy",
     lambda m, p, st: "drop" if p == "/containers/0123456789ab/json" else None,
     "failed (deploy target unix://"),
]


@pytest.mark.parametrize("job, rule, message", [pytest.param(*c[1:], id=c[0]) for c in ENGINE_CASES])
def test_bad_engine_answer(job, rule, message, tmp_path):
    """deploy/stop against a stand-in engine on a unix socket that answers as a broken or
    hostile engine would (tests/faultproxy.py EngineStandIn)."""
    import tempfile

    from faultproxy import EngineStandIn
    from servers import free_port

    sockdir = Path(tempfile.mkdtemp(prefix="ci-gen-bad-"))
    work = tmp_path / "work"
    work.mkdir()
    try:
        with EngineStandIn(sockdir / "engine.sock", rule=rule) as engine:
            env = _jenv(tmp_path, DEPLOY_ENGINE_HOST=engine.url, CI_PROJECT_PATH_SLUG="ml-demo")
            argv = ["job", job, "--environment", "production", "--engine", "podman"]
            if job == "deploy":
                argv += ["--image", "127.0.0.1:5000/ml/demo:v1", "--host", "127.0.0.1",
                         "--port", str(free_port()), "--model-name", "m", "--health-timeout", "2"]
            before = tree_hash(work)
            _jrun(argv, work, env, message, timeout=60)
            assert tree_hash(work) == before
    finally:
        import shutil
        shutil.rmtree(sockdir, ignore_errors=True)


def _jtls_key(tmp_path: Path) -> dict[str, str]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-aes256", "-pass", "pass:secret-pp", "-out", str(key)], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "req", "-new", "-x509", "-key", str(key), "-passin", "pass:secret-pp",
                    "-subj", "/CN=ci", "-days", "1", "-out", str(cert)], check=True, capture_output=True)
    return {"DEPLOY_ENGINE_HOST": f"tcp://127.0.0.1:{closed_port()}", "DEPLOY_ENGINE_TLS_CA": str(cert),
            "DEPLOY_ENGINE_TLS_CERT": str(cert), "DEPLOY_ENGINE_TLS_KEY": str(key)}


@pytest.mark.parametrize("setting, message", [
    pytest.param(_jtls_key, "DEPLOY_ENGINE_TLS_KEY is protected by a passphrase", id="tls-key-with-passphrase"),
    pytest.param(lambda _: {"DEPLOY_ENGINE_HOST": "tcp://deployer:secret-pp@127.0.0.1:2376"},
                 "DEPLOY_ENGINE_HOST 'tcp://***@127.0.0.1:2376' is not unix:///PATH", id="host-with-password"),
    pytest.param(lambda _: {"DEPLOY_ENGINE_HOST": "unix:///run/\x1b[2Jx.sock"},
                 "is not unix:///PATH", id="host-with-escape"),
])
def test_bad_deploy_setting(setting, message, tmp_path):
    """The target's variables: a key that would prompt on the job's terminal (OpenSSL asks for
    a passphrase there), a credential or an escape in DEPLOY_ENGINE_HOST: one line, no secret."""
    work = tmp_path / "work"
    work.mkdir()
    env = _jenv(tmp_path, **setting(tmp_path))
    proc = _jrun(["job", "stop", "--environment", "production", "--engine", "docker"], work, env, message)
    assert "secret-pp" not in proc.stdout + proc.stderr


# -- edge-convert: a poisoned cache entry is a cache miss with one line -------------------------

def _jmeasured(blobs: dict[str, bytes], **change) -> dict:
    import hashlib
    rows = [{"name": n, "size_bytes": len(b), "accuracy": 0.9, "agreement": 0.99,
             "latency_p50_ms": 0.1, "sha256": hashlib.sha256(b).hexdigest()} for n, b in blobs.items()]
    doc = {"model": "model", "loader": "loader:load", "test_samples": 10,
           "representative_samples": 5,
           "reference": {"size_bytes": 1, "accuracy": 0.9, "latency_p50_ms": 0.2}, "variants": rows}
    for key, value in change.items():
        if key.startswith("row_"):
            rows[0][key[4:]] = value
        else:
            doc[key] = value
    return doc


_JBLOBS = {"float32": b"f32", "dynamic-range": b"dyn", "int8": b"i8"}


def _jpoison(kind: str):
    """(measured.json text, extra files relative to the entry) of one poisoned entry."""
    import json as _json
    good = _jmeasured(_JBLOBS)
    if kind == "name-with-dotdot":
        return _json.dumps(_jmeasured({"../../../PWNED": b"x", "dynamic-range": b"dyn", "int8": b"i8"})), {}
    if kind == "name-absolute":
        return _json.dumps(_jmeasured({"/tmp/PWNED": b"x", "dynamic-range": b"dyn", "int8": b"i8"})), {}
    if kind == "unknown-field":
        return _json.dumps({**good, "gate": {"passed": True}}), {}
    if kind == "nan-accuracy":
        return _json.dumps(_jmeasured(_JBLOBS, row_accuracy=float("nan"))), {}
    if kind == "accuracy-above-one":
        return _json.dumps(_jmeasured(_JBLOBS, row_accuracy=2.0)), {}
    if kind == "faked-figures":  # the figures of another file: its sha256 does not match
        return _json.dumps(_jmeasured({**_JBLOBS, "float32": b"another model"})), {}
    if kind == "no-sha256":  # a 0.2.0 entry: nothing ties its figures to a file
        doc = _jmeasured(_JBLOBS)
        for row in doc["variants"]:
            del row["sha256"]
        return _json.dumps(doc), {}
    if kind == "a-variant-twice":
        doc = _jmeasured(_JBLOBS)
        doc["variants"][1] = dict(doc["variants"][0])
        return _json.dumps(doc), {}
    if kind == "not-json":
        return "{'variants': oops", {}
    if kind == "a-list":
        return "[]", {}
    if kind == "nested-5000-deep":
        return "[" * 5000 + "]" * 5000, {}
    raise AssertionError(kind)


EDGE_CACHE_CASES = [
    ("name-with-dotdot", "variants.0.name: Input should be"),
    ("name-absolute", "variants.0.name: Input should be"),
    ("unknown-field", "gate: Extra inputs are not permitted"),
    ("nan-accuracy", "NaN is not a JSON number"),
    ("accuracy-above-one", "variants.0.accuracy: Input should be less than or equal to 1"),
    ("faked-figures", "float32.tflite is not the file its figures were measured on"),
    ("no-sha256", "variants.0.sha256: missing"),
    ("a-variant-twice", "must hold float32, dynamic-range and int8 once each"),
    ("not-json", "measured.json: not JSON"),
    ("a-list", "the document: expected an object, got a list"),
    ("nested-5000-deep", "measured.json: JSON nested too deep"),
    ("entry-a-symlink-out", "lies outside the cache"),
    ("tflite-a-symlink-out", "float32.tflite lies outside the cache"),
]


@pytest.mark.parametrize("kind, said", [pytest.param(*c, id=c[0]) for c in EDGE_CACHE_CASES])
def test_bad_edge_cache(kind, said, tmp_path):
    """`job edge-convert --cache cache` finding a poisoned entry at its key: one stdout line
    says why it is not used, nothing is written outside the project, and the job goes on to
    a real conversion (here: its --requirements file is missing, one line, exit 1)."""
    import json as _json

    from ci_gen.edge import cache

    work, outside = tmp_path / "work", tmp_path / "outside"
    (work / "model").mkdir(parents=True)
    outside.mkdir()
    (work / "model" / "saved_model.pb").write_bytes(b"graph")
    (work / "loader.py").write_text("def load(split):\n    raise SystemExit('never called')\n")
    entry = cache.key(work, work / "model", "", "loader:load", (5, 10))
    folder = work / "cache" / entry
    if kind == "entry-a-symlink-out":
        (work / "cache").mkdir()
        (outside / entry).mkdir()
        (outside / entry / "measured.json").write_text(_json.dumps(_jmeasured(_JBLOBS)))
        for name, blob in _JBLOBS.items():
            (outside / entry / f"{name}.tflite").write_bytes(blob)
        folder.symlink_to(outside / entry)
    else:
        folder.mkdir(parents=True)
        text, _ = ("", None) if kind == "tflite-a-symlink-out" else _jpoison(kind)
        (folder / "measured.json").write_text(text or _json.dumps(_jmeasured(_JBLOBS)))
        for name, blob in _JBLOBS.items():
            (folder / f"{name}.tflite").write_bytes(blob)
        if kind == "tflite-a-symlink-out":
            (outside / "f.tflite").write_bytes(_JBLOBS["float32"])
            (folder / "float32.tflite").unlink()
            (folder / "float32.tflite").symlink_to(outside / "f.tflite")
    env = _jenv(tmp_path)
    before = tree_hash(work), tree_hash(outside)  # HOME is not hashed: pip keeps its cache there
    proc = _jrun(["job", "edge-convert", "--model", "model", "--loader", "loader:load",
                  "--representative-samples", "5", "--test-samples", "10", "--cache", "cache",
                  "--requirements", "absent.txt"], work, env,
                 "edge-convert: pip install -r absent.txt failed")
    notes = [ln for ln in proc.stdout.splitlines() if "not used" in ln]
    assert len(notes) == 1 and f"cache entry {entry} not used: " in notes[0] and said in notes[0], proc.stdout
    assert "reused the measurements" not in proc.stdout
    assert (tree_hash(work), tree_hash(outside)) == before, "files changed on disk"
    assert not list(tmp_path.rglob("*PWNED*"))


# -- YAML files a job reads (params.yaml, metrics), sweep cell files ----------------------------

def _jbomb() -> str:
    """Nine levels of nine aliases: 9**9 values from under a kilobyte."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("train: {lr: 0.1}")
    return "\n".join(lines) + "\n"


_JDEEP = "train:\n  lr: 0.1\nx: " + "[" * 5000 + "]" * 5000 + "\n"
_JDEEP_MAP = "train: {lr: 0.1}\nx: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"
_JLOOP = "train: {lr: 0.1}\nx: &x [1, *x]\n"
_JALIAS_DEEP = ("train: {lr: 0.1}\n" + "d0: &d0 " + "[" * 60 + "]" * 60 + "\n"
                + "d1: &d1 " + "[" * 60 + "*d0" + "]" * 60 + "\n")
_JSWEEP_ENV = {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "1", "train__lr": "0.2"}
_JCELL = ["job", "sweep-cell", "--metric", "accuracy", "--max-cells", "8"]
_JREGISTER = ["job", "register", "--model-name", "demo", "--model-path", "model"]
_JREGISTER_ENV = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9/", "CI_COMMIT_SHA": "a" * 40}
_JEVAL = ["job", "eval-report", "--metrics", "metrics.yaml", "--out", "report"]


def _jcell(**change) -> str:
    import json as _json
    cell = {"index": 1, "total": 1, "params": {"train.lr": 0.1}, "metrics": {"accuracy": 0.9},
            "seconds": 1.0, "how": "trained"}
    cell.update(change)
    return _json.dumps(cell)


_JCOLLECT = ["job", "sweep-collect", "--metric", "accuracy", "--direction", "higher", "--max-cells", "8"]
YAML_FILE_CASES = [
    # (id, argv, {file: text or bytes}, env, message)
    ("params-alias-bomb-sweep-cell", _JCELL, {"params.yaml": _jbomb()}, _JSWEEP_ENV,
     "params.yaml:1:1: invalid YAML: more than 200000 values once aliases are expanded"),
    ("params-alias-bomb-register", _JREGISTER, {"params.yaml": _jbomb()}, _JREGISTER_ENV,
     "params.yaml:1:1: invalid YAML: more than 200000 values once aliases are expanded"),
    ("params-not-utf8-sweep-cell", _JCELL, {"params.yaml": b"train: {lr: \xff\xfe}\n"}, _JSWEEP_ENV,
     "params.yaml: not UTF-8 text"),
    ("params-not-utf8-register", _JREGISTER, {"params.yaml": b"train: {lr: \xff\xfe}\n"}, _JREGISTER_ENV,
     "params.yaml: not UTF-8 text"),
    ("params-5000-deep-sweep-cell", _JCELL, {"params.yaml": _JDEEP}, _JSWEEP_ENV,
     "invalid YAML: nested more than 100 levels deep"),
    ("params-5000-deep-map-register", _JREGISTER, {"params.yaml": _JDEEP_MAP}, _JREGISTER_ENV,
     "invalid YAML: nested more than 100 levels deep"),
    ("params-alias-loop-register", _JREGISTER, {"params.yaml": _JLOOP}, _JREGISTER_ENV,
     "invalid YAML: an alias refers to a node that contains it"),
    ("params-alias-loop-sweep-cell", _JCELL, {"params.yaml": _JLOOP}, _JSWEEP_ENV,
     "invalid YAML: an alias refers to a node that contains it"),
    ("params-deep-through-aliases", _JREGISTER, {"params.yaml": _JALIAS_DEEP}, _JREGISTER_ENV,
     "nested more than 100 levels deep once aliases are expanded"),
    ("params-a-list-register", _JREGISTER, {"params.yaml": "- 1\n- 2\n"}, _JREGISTER_ENV,
     "params.yaml: must hold a mapping of params"),
    ("metrics-yaml-bomb-eval-report", _JEVAL, {"metrics.yaml": _jbomb()}, {},
     "metrics.yaml:1:1: invalid YAML: more than 200000 values"),
    ("metrics-yaml-not-utf8-eval-report", _JEVAL, {"metrics.yaml": b"accuracy: \xff\n"}, {},
     "metrics.yaml: not UTF-8 text"),
    ("cell-claims-10-to-the-12-cells", _JCOLLECT, {"sweep/cells/cell-1.json": _jcell(total=10 ** 12)}, {},
     "total is 1000000000000, more than max-cells (8)"),
    ("cell-index-huge", _JCOLLECT, {"sweep/cells/cell-1.json": _jcell(index=10 ** 40)}, {},
     "index is a 41-digit number, more than max-cells (8)"),
    ("cell-not-json", _JCOLLECT, {"sweep/cells/cell-1.json": "{oops"}, {}, "cell-1.json: not JSON"),
    ("cell-a-list", _JCOLLECT, {"sweep/cells/cell-1.json": "[1, 2]"}, {},
     "cell-1.json: the document: expected an object, got a list"),
    ("cell-params-a-list", _JCOLLECT, {"sweep/cells/cell-1.json": _jcell(params=[1])}, {},
     "cell-1.json: params: expected an object, got a list"),
    ("cell-seconds-nan", _JCOLLECT, {"sweep/cells/cell-1.json": _jcell().replace('"seconds": 1.0', '"seconds": NaN')},
     {}, "cell-1.json: NaN is not a JSON number"),
    ("cell-index-a-word", _JCOLLECT, {"sweep/cells/cell-1.json": _jcell(index="one")}, {},
     "cell-1.json: index: Input should be a valid integer"),
    ("cell-without-how", _JCOLLECT, {"sweep/cells/cell-1.json": _jcell().replace(', "how": "trained"', "")},
     {}, "cell-1.json: how: missing"),
    ("cell-nested-5000-deep", _JCOLLECT, {"sweep/cells/cell-1.json": _jcell(params={"a": 1}).replace(
        '{"a": 1}', "[" * 5000 + "]" * 5000)}, {}, "cell-1.json: JSON nested too deep"),
    ("cell-2-mib", _JCOLLECT, {"sweep/cells/cell-1.json": _jcell(how="x" * (2 * 1024 * 1024))}, {},
     "cell-1.json is larger than 1024 KiB"),
    ("cells-more-than-max", _JCOLLECT,
     {f"sweep/cells/cell-{i}.json": _jcell(index=i, total=9) for i in range(1, 10)}, {},
     "the sweep has 9 cells, more than max-cells (8)"),
]


@pytest.mark.parametrize("argv, files, env, message",
                         [pytest.param(*c[1:], id=c[0]) for c in YAML_FILE_CASES])
def test_bad_yaml_and_sweep_file(argv, files, env, message, tmp_path):
    """params.yaml (sweep-cell, register), a YAML metrics file (eval-report) and sweep cell
    files (sweep-collect): hostile files are one line, quickly, with nothing written."""
    import time

    work = tmp_path / "work"
    (work / "model").mkdir(parents=True)
    (work / "model" / "saved_model.pb").write_bytes(b"graph")
    for rel, content in files.items():
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    env = _jenv(tmp_path, **env)
    before = tree_hash(tmp_path)
    start = time.monotonic()
    _jrun(argv, work, env, message, timeout=60)
    assert time.monotonic() - start < 30, "not refused quickly"
    assert tree_hash(tmp_path) == before, "files changed on disk"
