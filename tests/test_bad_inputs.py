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


_LIST = "/containers/json"
_CREATE = "/containers/create"
_INSPECT = "/containers/*/json"
ENGINE_CASES = [
    # (id, job, rule, message)
    ("list-not-json", "stop", _answer(_LIST, 200, b"<html>oops</html>"),
     "engine answer to GET /containers/json: not JSON"),
    ("list-an-object", "stop", _answer(_LIST, 200, b'{"Id": "x"}'),
     "engine answer to GET /containers/json: the document: expected a list"),
    ("list-of-strings", "stop", _answer(_LIST, 200, b'["abc"]'),
     "engine answer to GET /containers/json: 0: expected an object"),
    ("labels-a-list", "stop", _answer(_LIST, 200, b'[{"Id": "abc", "Labels": ["ci-gen.release=1"]}]'),
     "engine answer to GET /containers/json: 0.Labels: expected an object, got a list"),
    ("label-not-a-string", "stop", _answer(_LIST, 200, b'[{"Id": "abc", "Labels": {"ci-gen.release": 1}}]'),
     "0.Labels.ci-gen.release: expected a string"),
    ("item-without-id", "stop", _answer(_LIST, 200, b'[{"Names": ["/x"], "State": "running"}]'),
     "engine answer to GET /containers/json: 0.Id: missing"),
    ("id-with-a-path", "stop", _answer(_LIST, 200, b'[{"Id": "../../images/x", "Labels": {}}]'),
     "engine answer to GET /containers/json: 0.Id: String should match pattern"),
    ("list-with-nan", "stop", _answer(_LIST, 200, b'[{"Id": "abc", "State": NaN}]'),
     "engine answer to GET /containers/json: NaN is not a JSON number"),
    ("list-nested-5000-deep", "stop", _answer(_LIST, 200, b"[" * 5000 + b"]" * 5000),
     "engine answer to GET /containers/json: JSON nested too deep"),
    ("list-9-mib", "stop", _answer(_LIST, 200, b"[" + b" " * (9 * 1024 * 1024) + b"]"),
     "answered GET /containers/json with more than 8 MiB"),
    ("error-with-escape-bytes", "stop", _answer(_LIST, 500, b'{"message": "\x1b[2Jboom\x1b[0m"}'),
     "boom"),
    ("error-not-json", "stop", _answer(_LIST, 500, "\x1b]0;pwned\x07 engine down".encode()),
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
