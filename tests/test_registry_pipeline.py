"""The model registry end to end in gitlab-ci-local: `ci-gen run` starts a real MLflow server,
two default-branch pipelines of one small DVC project (plain Python, no TensorFlow) register
two versions with their lineage and edge files, and the files downloaded back match the
trained ones. Then deploy by registry version (`ci-gen job deploy`, process engine, on the
same server): version 1, then 2, then an unhealthy 3 → back on 2; a manual rollback to the
previous registered version; bad input (unknown version, registry down, wrong token,
corrupted download, no image for a container engine) leaves the running release untouched;
the MR report links the next and the latest version."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import urllib.request
import sys
from pathlib import Path

import pytest
import yaml

from ci_gen import __version__
from ci_gen import invocation
from ci_gen.local import registry as local
from ci_gen.registry import catalog, lineage, links
from ci_gen.registry.client import Registry
from gitlab_fake import PROJECT_ID, FakeGitLab
from servers import free_port
from support.cli import cli, new_shell, printed
from support.git import git, make_project
from support.pipeline import gitlab_ci_local, job_log, run_pipeline

CI = f"""\
stages: [train, evaluate, register]
include:
  - component: gitlab.example.com/mlops/ci-gen/train@{__version__}
    inputs:
      data: data.dvc
      artifacts: [model/, eval/, edge/, dvc.lock]
      push-run-cache: false
  - component: gitlab.example.com/mlops/ci-gen/register@{__version__}
    inputs:
      model-name: tiny
      model-path: model
      metrics: eval/metrics.json
      data: data.dvc
"""
FILES = {
    ".gitignore": ".gitlab-ci-local/\n",
    "requirements.txt": "# nothing to install\n",
    "params.yaml": "train:\n  epochs: 1\n",
    "make.py": """\
        import json, pathlib
        epochs = int(pathlib.Path("params.yaml").read_text().split("epochs:")[1].split()[0])
        pathlib.Path("model/weights").mkdir(parents=True, exist_ok=True)
        pathlib.Path("model/weights/w.bin").write_bytes(bytes(range(256)) * epochs)
        pathlib.Path("model/config.txt").write_text(f"epochs={epochs}\\n")
        pathlib.Path("edge").mkdir(exist_ok=True)
        pathlib.Path("edge/model-int8.tflite").write_bytes(bytes([epochs]) * 100)
        pathlib.Path("eval").mkdir(exist_ok=True)
        pathlib.Path("eval/metrics.json").write_text(json.dumps({"accuracy": 0.5 + epochs / 10}))
        """,
    "dvc.yaml": """\
        stages:
          train:
            cmd: python make.py
            deps: [make.py, data]
            params: [train]
            outs: [model, edge, eval/metrics.json]
        """,
}


# A serve script with TF Serving's flags that serves the model's config.txt; a model whose
# config says "broken" never becomes healthy (it exits).
SERVE = """\
import argparse, http.server, json, pathlib, sys
ap = argparse.ArgumentParser()
for flag in ("--model_name", "--model_base_path", "--rest_api_host"):
    ap.add_argument(flag, default="127.0.0.1")
ap.add_argument("--rest_api_port", type=int)
a = ap.parse_args()
config = (pathlib.Path(a.model_base_path) / "config.txt").read_text().strip()
if "broken" in config:
    sys.exit("cannot load the model: " + config)

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"model_version_status": [{"version": "1", "state": "AVAILABLE"}],
                           "config": config}).encode()
        self.send_response(200 if self.path == "/v1/models/" + a.model_name else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.HTTPServer((a.rest_api_host, a.rest_api_port), H).serve_forever()
"""


def _dvc(project: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, capture_output=True,
                          text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _tiny(tmp_path: Path, ci: str = CI) -> Path:
    """The small DVC project, its data pushed to a local remote, all committed."""
    project = make_project(tmp_path / "tiny", ci, FILES, origin="git@gitlab.example.com:mlops/tiny.git")
    (project / "data").mkdir()
    (project / "data" / "x.txt").write_text("7\n")
    _dvc(project, "init", "-q")
    _dvc(project, "remote", "add", "-d", "models", str(tmp_path / "remote"))
    _dvc(project, "add", "-q", "data")
    _dvc(project, "push", "-q", "data.dvc")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "data")
    return project


@pytest.mark.slow
def test_a_scaffolded_projects_tag_pipeline_registers_the_tags_version(tmp_path, monkeypatch):
    """With the `workflow:rules` `ci-gen init` writes, a tag pipeline (`ci-gen run --tag`:
    CI_COMMIT_TAG set, no CI_COMMIT_BRANCH) runs train -> register, which records the tag's
    SemVer."""
    from ci_gen.scaffold import plan

    gitlab_ci_local()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    scaffold = yaml.safe_load(plan.pipeline(plan.DEFAULT_TEMPLATES_PROJECT, __version__, "component"))
    project = _tiny(tmp_path, CI + yaml.safe_dump({"workflow": scaffold["workflow"]}))
    code, status, out = run_pipeline(project, job="mlops-register", tag="1.2.0")
    assert code == 0, out
    assert "tag pipeline for 1.2.0 at" in out
    assert status == {"mlops-train": "passed", "mlops-register": "passed"}, out
    assert "register: tiny 1.2.0 registered" in job_log(project, "mlops-register")


@pytest.mark.slow
def test_two_pipelines_register_two_versions_with_lineage(tmp_path, monkeypatch):
    gitlab_ci_local()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = _tiny(tmp_path)
    md5 = yaml.safe_load((project / "data.dvc").read_text())["outs"][0]["md5"]
    artifacts = project / ".gitlab-ci-local" / "artifacts" / "mlops-train"

    # 1. `ci-gen run` starts a local server on the project's store and stops it after.
    code, status, out = run_pipeline(project, job="mlops-register")
    assert code == 0, out
    assert status == {"mlops-train": "passed", "mlops-register": "passed"}, out
    assert "register: tiny 0.1.0 registered for commit" in job_log(project, "mlops-register")
    see = f"{invocation.command()} models show tiny 0.1.0 --project {shlex.quote(str(project))}"
    assert f"model registry: tiny 0.1.0 registered; see it with: {see}" in out
    # Issue 22: the line works as typed in a new shell (no venv on PATH), from anywhere; the
    # server it starts stops with it, so no link to it is printed.
    typed = new_shell(printed(out, "see it with:")[0], tmp_path)
    assert typed.returncode == 0 and "tiny 0.1.0" in typed.stdout, typed.stderr
    assert "see: http" not in typed.stdout
    # Inside the project, no option at all: its local registry is the default.
    here = cli("models", "list", "tiny", cwd=project, env={"MLFLOW_TRACKING_URI": ""})
    assert here.returncode == 0 and "0.1.0" in here.stdout, here.stderr
    shas = [git(project, "rev-parse", "HEAD")]
    models = [_tree(artifacts / "model")]
    edges = [_tree(artifacts / "edge")]

    # 2. The same store served once more (as `ci-gen models --project` does), named by
    #    MLFLOW_TRACKING_URI: the run uses it instead of starting its own.
    server = local.open_project(project)
    try:
        (project / "params.yaml").write_text("train:\n  epochs: 2\n")
        git(project, "commit", "-qam", "two epochs")
        code, status, out = run_pipeline(project, job="mlops-register",
                                         variables={"MLFLOW_TRACKING_URI": server.url})
        assert code == 0, out
        assert f"model registry: {server.url} (MLFLOW_TRACKING_URI)" in out
        assert "register: tiny 0.1.1 registered for commit" in job_log(project, "mlops-register")
        shas.append(git(project, "rev-parse", "HEAD"))
        models.append(_tree(artifacts / "model"))
        edges.append(_tree(artifacts / "edge"))

        reg = Registry(server.url)
        found = catalog.versions(reg, "tiny")
        assert [v.semver for v in found] == ["0.1.0", "0.1.1"]
        for v, sha, model, edge, epochs in zip(found, shas, models, edges, (1, 2)):
            assert v.tags[lineage.COMMIT] == sha and v.tags[lineage.DATA] == md5
            assert v.tags[lineage.TOOL] == __version__ and v.tags[lineage.REF] == "main"
            assert "/pipelines/" in v.tags[lineage.PIPELINE] and "/jobs/" in v.tags[lineage.JOB]
            data = reg.get_run(v.run_id)["data"]
            assert {p["key"]: p["value"] for p in data["params"]} == {"train.epochs": str(epochs)}
            assert {m["key"]: m["value"] for m in data["metrics"]} == {"accuracy": 0.5 + epochs / 10}
            assert {t["key"] for t in data["tags"]} >= {lineage.JOB_ID, lineage.COMMIT}
            path, manifest = catalog.download(reg, v, tmp_path / f"v{epochs}")
            assert _tree(path) == model  # byte-identical to what the pipeline trained
            assert manifest["edge"] == ["model-int8.tflite"]
            assert _tree(path.parent / "edge") == edge == {"model-int8.tflite": bytes([epochs]) * 100}
        shown = cli("models", "show", "tiny", "0.1.0", "--tracking-uri", server.url)
        assert shown.returncode == 0 and f"commit: {shas[0]}" in shown.stdout, shown.stderr
        got = cli("models", "download", "tiny", "0.1.1", "--tracking-uri", server.url,
                  "--out", str(tmp_path / "cli"))
        assert got.returncode == 0 and "edge models in" in got.stdout, got.stderr
        assert _tree(tmp_path / "cli" / "edge") == edges[1]

        _deploy_by_version(tmp_path, server)
    finally:
        server.stop()
    assert git(project, "status", "--porcelain") == ""


@pytest.mark.slow
def test_an_unchanged_model_is_one_version_and_a_tag_registers_its_own(tmp_path, monkeypatch):
    """Register is idempotent by model, not commit: a default-branch pipeline after an
    unrelated commit reuses the version; a tag pipeline on the same model registers the tag's."""
    gitlab_ci_local()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = make_project(tmp_path / "same", CI, FILES, origin="git@gitlab.example.com:mlops/same.git")
    (project / "data").mkdir()
    (project / "data" / "x.txt").write_text("7\n")
    _dvc(project, "init", "-q")
    _dvc(project, "remote", "add", "-d", "models", str(tmp_path / "remote"))
    _dvc(project, "add", "-q", "data")
    _dvc(project, "push", "-q", "data.dvc")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "data")

    code, status, out = run_pipeline(project, job="mlops-register")
    assert code == 0 and status["mlops-register"] == "passed", out
    assert "register: tiny 0.1.0 registered for commit" in job_log(project, "mlops-register")
    first = git(project, "rev-parse", "HEAD")

    # An unrelated change the ML jobs' `changes:` still match (a serving script).
    (project / "serve.py").write_text("print('serving')\n")
    git(project, "add", "serve.py")
    git(project, "commit", "-qm", "serve script")
    code, status, out = run_pipeline(project, job="mlops-register")
    assert code == 0 and status["mlops-register"] == "passed", out
    assert (f"register: tiny 0.1.0 is already registered for this model (commit {first[:12]}); "
            "nothing to do") in job_log(project, "mlops-register")

    code, status, out = run_pipeline(project, job="mlops-register",
                                     variables={"CI_COMMIT_TAG": "v1.0.0", "CI_COMMIT_BRANCH": ""})
    assert code == 0 and status["mlops-register"] == "passed", out
    assert "register: tiny 1.0.0 registered for commit" in job_log(project, "mlops-register")
    server = local.open_project(project)
    try:
        found = catalog.versions(Registry(server.url), "tiny")
        assert [v.semver for v in found] == ["0.1.0", "1.0.0"]
        assert found[0].tags[lineage.MODEL] == found[1].tags[lineage.MODEL]
    finally:
        server.stop()


class Deploys:
    """`ci-gen job deploy` and `rollback` by registry version (process engine) in a job
    workspace that has the serve script and no model: the model comes from the registry."""

    def __init__(self, root: Path, uri: str) -> None:
        self.work, self.state, self.port = root / "deploy", root / "state", free_port()
        self.work.mkdir()
        (self.work / "serve.py").write_text(SERVE)
        self.env = {"MLFLOW_TRACKING_URI": uri, "CI_GEN_STATE_DIR": str(self.state),
                    "CI_GEN_DEPLOY_PORT": str(self.port), "CI_GEN_REGISTRY_RETRIES": "1",
                    "CI_GEN_REGISTRY_MAX_WAIT": "0", "NO_PROXY": "127.0.0.1"}

    def job(self, job: str, *args: str, **env: str):
        (self.work / "deploy.env").unlink(missing_ok=True)
        flags = ("--model-name", "tiny", "--model-path", "model", "--serve-script", "serve.py",
                 "--health-timeout", "4") if job == "deploy" else ("--health-timeout", "4")
        return cli("job", job, "--environment", "production", "--engine", "process", *flags,
                   "--dotenv", "deploy.env", *args, cwd=self.work, env={**self.env, **env})

    def serving(self) -> str:
        """The config.txt of the model that answers, and the version the state records."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{self.port}/v1/models/tiny", timeout=5) as resp:
            config = json.loads(resp.read())["config"]
        current = json.loads((self.state / "deploy" / "production" / "current.json").read_text())
        return f"{config} {current['model_version']}"

    def dotenv(self) -> str:
        path = self.work / "deploy.env"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        assert cli("job", "stop", "--environment", "production", "--engine", "process",
                   cwd=self.work, env=self.env).returncode == 0


def _ok(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _one_line(proc, text: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert proc.stderr.count("\n") == 1 and text in proc.stderr, proc.stderr


def _deploy_by_version(tmp_path: Path, server) -> None:
    # A third version whose model never becomes healthy, registered by the job directly.
    broken = tmp_path / "broken"
    (broken / "model").mkdir(parents=True)
    (broken / "model" / "config.txt").write_text("broken\n")
    _ok(cli("job", "register", "--model-name", "tiny", "--model-path", "model", cwd=broken,
            env={"MLFLOW_TRACKING_URI": server.url, "CI_COMMIT_SHA": "3" * 40}))

    d = Deploys(tmp_path, server.url)
    try:
        out = _ok(d.job("deploy", "--model-version", "0.1.0"))
        assert "tiny 0.1.0 downloaded from the model registry" in out and "sha256 checked" in out
        assert d.serving() == "epochs=1 0.1.0"
        assert d.dotenv() == f"DEPLOY_URL=http://127.0.0.1:{d.port}\nDEPLOY_MODEL_VERSION=0.1.0\n"
        _ok(d.job("deploy", "--model-version", "0.1.1"))
        assert d.serving() == "epochs=2 0.1.1"
        # The health gate fails for 0.1.2: back on 0.1.1.
        failed = d.job("deploy", "--model-version", "latest")
        assert failed.returncode == 1 and "previous release" in failed.stderr, failed.stderr
        assert "cannot load the model: broken" in failed.stdout
        assert d.serving() == "epochs=2 0.1.1" and d.dotenv() == ""

        # Bad input: one line each, nothing deployed, the running release untouched.
        before = (d.state / "deploy" / "production" / "current.json").read_text()
        _one_line(d.job("deploy", "--model-version", "9.9.9"), "has no version '9.9.9'")
        _one_line(d.job("deploy", "--model-version", "0.1.0",
                        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}"), "is not reachable")
        gl = FakeGitLab().start()
        try:
            gl.add_project(PROJECT_ID, "mlops/tiny")
            _one_line(d.job("deploy", "--model-version", "0.1.0", MLFLOW_TRACKING_TOKEN="wrong",
                            MLFLOW_TRACKING_URI=f"{gl.url}/api/v4/projects/{PROJECT_ID}/ml/mlflow"),
                      "401")
        finally:
            gl.stop()
        run_id = catalog.find(Registry(server.url), "tiny", "0.1.2").run_id
        archive, = (p for p in (server.root / "artifacts").rglob("model.tar.gz") if run_id in p.parts)
        data = bytearray(archive.read_bytes())
        data[len(data) // 2] ^= 0xFF
        archive.write_bytes(bytes(data))
        _one_line(d.job("deploy", "--model-version", "0.1.2"), "hash mismatch for model.tar.gz")
        _one_line(d.job("deploy", "--model-version", "0.1.0", "--engine", "podman",
                        "--host", "127.0.0.1"), "records no image by digest")
        _one_line(d.job("deploy", "--model-version", "1.0"), "--model-version '1.0' is not allowed")
        assert (d.state / "deploy" / "production" / "current.json").read_text() == before
        assert d.serving() == "epochs=2 0.1.1" and d.dotenv() == ""

        # A redeploy of 0.1.1, then the manual rollback: back to 0.1.0, the previous version.
        _ok(d.job("deploy", "--model-version", "0.1.1"))
        out = _ok(d.job("rollback"))
        assert "(model version 0.1.0) serves production" in out
        assert d.serving() == "epochs=1 0.1.0"
        assert d.dotenv().endswith("DEPLOY_MODEL_VERSION=0.1.0\n")
    finally:
        d.stop()

    # The MR report links the version a merge would register and the latest registered one.
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text('{"accuracy": 0.9}')
    env = {"MLFLOW_TRACKING_URI": server.url, "CI_MERGE_REQUEST_IID": "7"}
    out = _ok(cli("job", "eval-report", "--metrics", "metrics.json", "--out", "r",
                  "--model-name", "tiny", cwd=report, env=env))
    assert "next version 0.1.3, compared with 0.1.2" in out
    text = (report / "r" / "report.md").read_text()
    assert f"| A merge registers | [`tiny` 0.1.3]({server.url}/#/models/tiny) |" in text
    assert "| Compare with | [`tiny` 0.1.2](" in text and "the latest registered version" in text
    # A re-run on a registered commit registers nothing new: the report says which it is.
    again = links.lookup({"MLFLOW_TRACKING_URI": server.url, "CI_COMMIT_SHA": "3" * 40}, "tiny")
    assert (again["next"], again["registered"]) == ("0.1.2", True)
    assert "| This pipeline registers | [`tiny` 0.1.2](" in links.markdown(again)
    # No registry configured: no section, quietly.
    bare = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = _ok(subprocess.run([sys.executable, "-m", "ci_gen", "job", "eval-report", "--metrics",
                              "metrics.json", "--out", "q", "--model-name", "tiny"], cwd=report,
                             env=bare, capture_output=True, text=True))
    assert "registry" not in out and "Model registry" not in (report / "q" / "report.md").read_text()
