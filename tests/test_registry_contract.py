"""One contract for the model registry, run against both backends: a real MLflow 3.17.2
server on 127.0.0.1 (started once per session) and the GitLab stand-in's model registry
(tests/gitlab_fake.py, as lib/api/ml/mlflow/ answers). Same calls, same outcomes.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from ci_gen.registry import bundle, catalog, lineage
from ci_gen.registry.client import Registry, RegistryError
from ci_gen.registry.register import register
from gitlab_fake import PROJECT_ID, FakeGitLab
from servers import free_port
from support.cli import cli

SHA1, SHA2, SHA3 = ("1" * 40, "2" * 40, "3" * 40)


@pytest.fixture(scope="module")
def fake():
    fake = FakeGitLab().start()
    fake.add_project(PROJECT_ID, "mlops/demo")
    fake.ml.builds.add("991")  # the job job_env names exists in this GitLab
    yield fake
    fake.stop()


class Backend:
    def __init__(self, kind: str, uri: str, token: str | None, corrupt) -> None:
        self.kind, self.uri, self.token, self.corrupt = kind, uri, token, corrupt

    def registry(self) -> Registry:
        return Registry(self.uri, self.token)

    def env(self) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": self.uri, "MLFLOW_TRACKING_TOKEN": self.token or ""}


@pytest.fixture(params=["mlflow", "gitlab"])
def backend(request, monkeypatch):
    monkeypatch.setenv("CI_GEN_REGISTRY_RETRIES", "2")
    monkeypatch.setenv("CI_GEN_REGISTRY_MAX_WAIT", "0")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    if request.param == "mlflow":
        server = request.getfixturevalue("mlflow_server")

        def corrupt(reg: Registry, version) -> None:
            run_id = version.run_id
            hits = [p for p in (server.root / "artifacts").rglob(bundle.ARCHIVE)
                    if run_id in p.parts]
            assert len(hits) == 1, hits
            data = bytearray(hits[0].read_bytes())
            data[len(data) // 2] ^= 0xFF
            hits[0].write_bytes(bytes(data))

        return Backend("mlflow", server.url, None, corrupt)
    gl = request.getfixturevalue("fake")

    def corrupt(reg: Registry, version) -> None:
        key = (int(version.ident), bundle.ARCHIVE)
        data = bytearray(gl.ml.files[key])
        data[len(data) // 2] ^= 0xFF
        gl.ml.files[key] = bytes(data)

    backend = Backend("gitlab", f"{gl.url}/api/v4/projects/{PROJECT_ID}/ml/mlflow", gl.token,
                      corrupt)
    backend.fake = gl
    return backend


def model_dir(tmp_path: Path, seed: str) -> Path:
    root = tmp_path / "model" / "fashion-mnist"
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(os.urandom(3000) + seed.encode())
    (root / "variables" / "variables.data-00000-of-00001").write_bytes(os.urandom(20000))
    (root / "fingerprint.pb").write_bytes(b"")
    return root


def job_env(sha: str, **extra: str) -> dict[str, str]:
    return {"CI_COMMIT_SHA": sha, "CI_COMMIT_REF_NAME": "main", "CI_JOB_ID": "991", "GITLAB_CI": "true",
            "CI_PIPELINE_URL": "https://gitlab.example.com/mlops/demo/-/pipelines/77",
            "CI_JOB_URL": "https://gitlab.example.com/mlops/demo/-/jobs/991", **extra}


def do(reg, name, model, sha, tag="", metrics=None, data="a1b2.dir", params=None, log=lambda _: None, **extra):
    env = job_env(sha, **extra)
    return register(reg, name, bundle.pack(model), tags=lineage.tags(env, data=data),
                    params=params or {"train.epochs": "2", "train.batch": "128"},
                    metrics=metrics or {"accuracy": 0.81, "loss": 0.52}, env=env, tag=tag,
                    log=log)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_register_then_download_gives_identical_files_and_lineage(backend, tmp_path):
    reg, name = backend.registry(), f"m-{uuid.uuid4().hex[:8]}"
    model = model_dir(tmp_path, "a")
    first = do(reg, name, model, SHA1)
    assert (first.created, first.version.semver) == (True, "0.1.0")

    version = catalog.find(reg, name)
    assert version.semver == "0.1.0" and version.tags[lineage.COMMIT] == SHA1
    shown = "\n".join(catalog.show_lines(reg, version))
    for text in (SHA1, "pipelines/77", "jobs/991", "a1b2.dir", "accuracy=0.81",
                 "train.epochs=2"):
        assert text in shown
    run_tags = {t["key"]: t["value"] for t in reg.get_run(version.run_id)["data"]["tags"]}
    assert run_tags[lineage.JOB_ID] == "991"

    path, manifest = catalog.download(reg, version, tmp_path / "out")
    assert tree(path) == tree(model)
    assert set(manifest["contents"]) == {f"fashion-mnist/{k}" for k in tree(model)}


def test_one_version_per_model_whatever_the_commit(backend, tmp_path):
    reg, name = backend.registry(), f"m-{uuid.uuid4().hex[:8]}"
    model = model_dir(tmp_path, "b")
    do(reg, name, model, SHA1)
    again = do(reg, name, model, SHA1)
    assert (again.created, again.completed, again.version.semver) == (False, False, "0.1.0")
    # An unrelated commit (serve.py, a README, the pointer commit): the same model, no new version.
    later = do(reg, name, model, SHA2, metrics={"accuracy": 0.85})
    assert (later.created, later.version.semver) == (False, "0.1.0")
    assert later.version.tags[lineage.COMMIT] == SHA1
    # Other params make another model, and so do other files (a retraining on refreshed data).
    tuned = do(reg, name, model, SHA2, params={"train.epochs": "3", "train.batch": "128"})
    assert (tuned.created, tuned.version.semver) == (True, "0.1.1")
    retrained = do(reg, name, model_dir(tmp_path / "r", "b"), SHA2, data="c3d4.dir")
    assert (retrained.created, retrained.version.semver) == (True, "0.1.2")
    assert [v.semver for v in catalog.versions(reg, name)] == ["0.1.0", "0.1.1", "0.1.2"]


def test_a_tag_registers_its_version_of_an_already_registered_model(backend, tmp_path):
    reg, name = backend.registry(), f"m-{uuid.uuid4().hex[:8]}"
    model = model_dir(tmp_path, "t")
    assert do(reg, name, model, SHA1).version.semver == "0.1.0"
    release = do(reg, name, model, SHA2, tag="v1.0.0")
    assert (release.created, release.version.semver) == (True, "1.0.0")
    assert do(reg, name, model, SHA2, tag="v1.0.0").created is False


def test_a_param_longer_than_gitlab_keeps_is_fitted_before_the_version_exists(backend, tmp_path):
    """GitLab stores a param in 250 characters (app/models/ml/candidate_param.rb); log-batch
    fails with 500 past that, after the version was created."""
    reg, name = backend.registry(), f"m-{uuid.uuid4().hex[:8]}"
    long = json.dumps([f"/data/shard-{i:04d}.tfrecord" for i in range(20)])
    said: list[str] = []
    done = do(reg, name, model_dir(tmp_path, "p"), SHA1, params={"train.files": long}, log=said.append)
    assert done.created and done.completed
    params = {p["key"]: p["value"] for p in reg.get_run(done.version.run_id)["data"]["params"]}
    said = [line for line in said if "param" in line]
    if backend.kind == "gitlab":
        assert params["train.files"] == long[:247] + "..."
        assert said == [f"register: param train.files is {len(long)} characters, GitLab keeps 250: "
                        'registered cut, with "..." at its end (the params file holds the whole value)']
    else:
        assert params["train.files"] == long and said == []
    if backend.kind == "gitlab":  # a name that long is refused before anything is created
        with pytest.raises(RegistryError, match="longer than GitLab's 250 characters"):
            do(reg, f"{name}-k", model_dir(tmp_path / "q", "q"), SHA1, params={"k" * 251: "1"})
        assert f"{name}-k" not in backend.fake.ml.models


def test_a_local_run_sends_no_job_id_to_gitlab(backend, tmp_path):
    """gitlab-ci-local sets GITLAB_CI=false and a CI_JOB_ID GitLab never had: GitLab answers
    500 for a gitlab.CI_JOB_ID naming no build."""
    reg, name = backend.registry(), f"m-{uuid.uuid4().hex[:8]}"
    done = do(reg, name, model_dir(tmp_path, "l"), SHA1, GITLAB_CI="false", CI_JOB_ID="4242")
    run_tags = {t["key"]: t["value"] for t in reg.get_run(done.version.run_id)["data"]["tags"]}
    assert run_tags.get(lineage.JOB_ID) == (None if backend.kind == "gitlab" else "4242")


def test_a_retry_finishes_an_incomplete_version(backend, tmp_path):
    reg, name = backend.registry(), f"m-{uuid.uuid4().hex[:8]}"
    model = model_dir(tmp_path, "i")
    if backend.kind == "gitlab":
        backend.fake.fail(times=1, status=403, path_re=r"/files/manifest\.json$")
    else:
        pytest.skip("the fault is injected in the GitLab stand-in")
    with pytest.raises(RegistryError):
        do(reg, name, model, SHA1)
    done = do(reg, name, model, SHA2)
    assert (done.created, done.completed, done.version.semver) == (False, True, "0.1.0")


def test_tag_pipelines_register_the_tags_semver(backend, tmp_path):
    reg, name = backend.registry(), f"m-{uuid.uuid4().hex[:8]}"
    model = model_dir(tmp_path, "c")
    assert do(reg, name, model, SHA1, tag="v1.2.0").version.semver == "1.2.0"
    assert do(reg, name, model, SHA1, tag="v1.2.0").created is False
    other = model_dir(tmp_path / "other", "c")
    assert do(reg, name, other, SHA2).version.semver == "1.2.1"
    with pytest.raises(RegistryError, match="already registered for commit 111111111111"):
        do(reg, name, other, SHA3, tag="1.2.0")
    with pytest.raises(RegistryError, match="not a SemVer version"):
        do(reg, name, model, SHA3, tag="release-7")
    assert [v.semver for v in catalog.versions(reg, name)] == ["1.2.0", "1.2.1"]


def test_bad_input_is_one_line_and_writes_nothing(backend, tmp_path):
    reg, name = backend.registry(), f"m-{uuid.uuid4().hex[:8]}"
    version = do(reg, name, model_dir(tmp_path, "d"), SHA1).version
    env = backend.env()
    out = tmp_path / "out"

    def fails(*args: str, extra: dict | None = None) -> str:
        done = cli("models", *args, env={**env, **(extra or {})})
        assert done.returncode == 1 and done.stdout == "", done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        return lines[0]

    assert "has no version '9.9.9' (latest: 0.1.0)" in fails("show", name, "9.9.9")
    assert "no registered model 'nope-x'" in fails("download", "nope-x", "--out", str(out))
    down = f"http://127.0.0.1:{free_port()}"
    assert "is not reachable" in fails("list", name, extra={"MLFLOW_TRACKING_URI": down})
    backend.corrupt(reg, version)
    line = fails("download", name, "0.1.0", "--out", str(out))
    assert "hash mismatch for model.tar.gz" in line and "nothing was written" in line
    assert not out.exists() or not any(out.iterdir())


def test_models_cli_lists_and_shows(backend, tmp_path):
    reg, name = backend.registry(), f"m-{uuid.uuid4().hex[:8]}"
    do(reg, name, model_dir(tmp_path, "e"), SHA1)
    done = cli("models", "list", name, env=backend.env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[0] == "0.1.0" and SHA1[:12] in done.stdout
    done = cli("models", "show", name, env=backend.env())
    assert done.returncode == 0 and f"{name} 0.1.0" in done.stdout and "see: http" in done.stdout
    assert name in cli("models", "list", env=backend.env()).stdout


# --- GitLab's restrictions and failure modes (the stand-in only) -----------------------------

def test_gitlab_wrong_token_is_refused_without_showing_it(fake, monkeypatch):
    uri = f"{fake.url}/api/v4/projects/{PROJECT_ID}/ml/mlflow"
    wrong = "glpat-wrong-Token-0000000000"
    done = cli("models", "list", env={"MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_TOKEN": wrong})
    assert done.returncode == 1 and "refused the token" in done.stderr
    assert wrong not in done.stderr + done.stdout
    done = cli("models", "list", env={"MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_TOKEN": ""})
    assert "HTTP 401" in done.stderr


def test_gitlab_answers_only_what_it_implements(fake, tmp_path):
    reg = Registry(f"{fake.url}/api/v4/projects/{PROJECT_ID}/ml/mlflow", fake.token)
    name = f"m-{uuid.uuid4().hex[:8]}"
    version = do(reg, name, model_dir(tmp_path, "f"), SHA1).version
    # A version's `version` is GitLab's id; its SemVer is the alias.
    assert version.ident.isdigit() and version.semver == "0.1.0"
    for method, endpoint in (("GET", "model-versions/search"), ("POST", "logged-models"),
                             ("POST", "model-versions/transition-stage")):
        with pytest.raises(RegistryError, match="no such endpoint"):
            reg.call(method, endpoint, {"name": name})
    base = reg.files_url(reg.get_run(version.run_id)["info"]["artifact_uri"])
    assert "/packages/ml_models/" in base
    status = reg.http.request("PUT", base + "dir/file.bin", data=b"x").status
    assert status == 400  # flat files only
    with pytest.raises(RegistryError, match="flat"):
        reg.put_file(base, "dir/file.bin", b"x")


def test_gitlab_an_interrupted_registration_is_finished_by_the_rerun(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("CI_GEN_REGISTRY_RETRIES", "1")
    reg = Registry(f"{fake.url}/api/v4/projects/{PROJECT_ID}/ml/mlflow", fake.token)
    name = f"m-{uuid.uuid4().hex[:8]}"
    model = model_dir(tmp_path, "g")
    fake.fail(1, 500, method="PUT", path_re=r"manifest\.json$")
    with pytest.raises(RegistryError, match="HTTP 500"):
        do(reg, name, model, SHA1)
    version = catalog.find(reg, name)
    with pytest.raises(RegistryError, match="did not finish"):
        catalog.download(reg, version, tmp_path / "out")
    again = do(reg, name, model, SHA1)
    assert (again.created, again.completed, again.version.semver) == (False, True, "0.1.0")
    path, _ = catalog.download(reg, version, tmp_path / "out")
    assert tree(path) == tree(model)
    assert len(catalog.versions(reg, name)) == 1


def test_register_job_defaults_to_the_projects_gitlab_registry(fake, tmp_path):
    project = tmp_path / "job"
    model_dir(project, "h")
    (project / "params.yaml").write_text("train:\n  epochs: 3\n")
    (project / "metrics.json").write_text(json.dumps({"accuracy": 0.9, "per_class": {"a": 1}}))
    name = f"m-{uuid.uuid4().hex[:8]}"
    env = {**job_env(SHA1), "CI_API_V4_URL": f"{fake.url}/api/v4", "CI_PROJECT_ID": str(PROJECT_ID),
           "MLFLOW_TRACKING_URI": "", "CI_COMMIT_TAG": "", "CI_GEN_REGISTRY_RETRIES": "1"}
    args = ("job", "register", "--model-name", name, "--model-path", "model/fashion-mnist",
            "--metrics", "metrics.json", "--data", "none")

    done = cli(*args, cwd=project, env={**env, "MLFLOW_TRACKING_TOKEN": "wrong-token-123"})
    assert done.returncode == 1 and "refused the token" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "wrong-token-123" not in done.stderr
    assert not (project / "register.env").exists() and name not in fake.ml.models

    env["MLFLOW_TRACKING_TOKEN"] = fake.token
    done = cli(*args, cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    assert f"register: {name} 0.1.0 registered for commit {SHA1[:12]} (1 params, 2 metrics" in done.stdout
    assert "see it at http://127.0.0.1" in done.stdout and "/-/ml/models/" in done.stdout
    assert (project / "register.env").read_text() == (f"CI_GEN_MODEL_NAME={name}\n"
                                                      "CI_GEN_MODEL_VERSION=0.1.0\n")
    again = cli(*args, cwd=project, env=env)
    assert "already registered for this model (commit 111111111111); nothing to do" in again.stdout
    assert len(fake.ml.versions) == len({(v["model"], v["semver"]) for v in fake.ml.versions})

    bad = cli("job", "register", "--model-name", "x;id", "--model-path", "m", cwd=project, env=env)
    assert bad.returncode == 2 and "is not a model name" in bad.stderr


def test_the_mr_reports_model_link_is_the_projects_page(fake, tmp_path, monkeypatch):
    """GitLab's model pages are per project (<project URL>/-/ml/models/<id>, the version's
    `source`); <server>/-/ml/models is a 404."""
    from ci_gen.registry import links

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    name = f"m-{uuid.uuid4().hex[:8]}"
    project_url = fake.projects[PROJECT_ID]["web_url"]
    env = {"MLFLOW_TRACKING_URI": f"{fake.url}/api/v4/projects/{PROJECT_ID}/ml/mlflow",
           "MLFLOW_TRACKING_TOKEN": fake.token, "CI_PROJECT_URL": project_url, "CI_COMMIT_SHA": SHA3}
    reg = Registry(env["MLFLOW_TRACKING_URI"], fake.token)
    reg.ensure_model(name)
    assert links.lookup(env, name)["model_url"] == f"{project_url}/-/ml/models"
    do(reg, name, model_dir(tmp_path, "u"), SHA1)
    info = links.lookup(env, name)
    model_id = fake.ml.models[name]["id"]
    assert info["model_url"] == f"{project_url}/-/ml/models/{model_id}"
    assert info["compare_url"].startswith(f"{project_url}/-/ml/models/{model_id}/versions/")
    assert f"]({project_url}/-/ml/models/{model_id})" in links.markdown(info)


def test_mlflow_a_run_whose_create_answer_was_lost_is_found_not_made_twice(mlflow_server,
                                                                          monkeypatch):
    """runs/create is not idempotent: after a lost answer the run is looked up by name
    (MLflow's runs/search) before another is made."""
    from ci_gen.registry.client import OutcomeUnknown

    monkeypatch.setenv("CI_GEN_REGISTRY_MAX_WAIT", "0")
    reg = Registry(mlflow_server.url)
    experiment = reg.experiment_id(f"[model]m-{uuid.uuid4().hex[:8]}")
    real = reg.call
    lost = []

    def call(method, endpoint, *args, **kw):
        out = real(method, endpoint, *args, **kw)
        if endpoint == "runs/create" and not lost:
            lost.append(out)
            raise OutcomeUnknown("model registry failed create run (HTTP 502)")
        return out

    monkeypatch.setattr(reg, "call", call)
    run = reg.create_run(experiment, "m 0.1.0")
    assert lost and run["info"]["run_id"] == lost[0].run.info.run_id
    found = real("POST", "runs/search", {"experiment_ids": [experiment]}, idempotent=True)
    assert len(found["runs"]) == 1
