"""The registry client over HTTP, against the strict GitLab stand-in and loopback servers:
the token stays with the tracking server (a download GitLab redirects to object storage, a
run whose artifact_uri names another host), creates whose answer was lost are looked up
instead of repeated, 429's Retry-After is honoured, a plain 404 says what it may mean, and
downloads are bounded (a huge manifest answer, an archive that unpacks too much)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
import uuid

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from ci_gen.registry import bundle, catalog, lineage
from ci_gen.registry.client import Registry, RegistryError, Version
from ci_gen.registry.register import register
from gitlab_fake import PROJECT_ID, FakeGitLab, ObjectStorage
from support.cli import cli

SHA = "4" * 40


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("CI_GEN_REGISTRY_RETRIES", "3")
    monkeypatch.setenv("CI_GEN_REGISTRY_MAX_WAIT", "5")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    fake = FakeGitLab().start()
    fake.add_project(PROJECT_ID, "mlops/demo")
    yield fake
    fake.stop()


@pytest.fixture
def storage():
    storage = ObjectStorage().start()
    yield storage
    storage.stop()


def uri(fake: FakeGitLab) -> str:
    return f"{fake.url}/api/v4/projects/{PROJECT_ID}/ml/mlflow"


def model_dir(tmp_path, seed: str = "a"):
    root = tmp_path / "model" / "tiny"
    root.mkdir(parents=True)
    (root / "w.bin").write_bytes(bytes(range(256)) * 40 + seed.encode())
    (root / "config.txt").write_text(f"seed={seed}\n")
    return root


def do(reg: Registry, name: str, model, sha: str = SHA):
    env = {"CI_COMMIT_SHA": sha, "CI_COMMIT_REF_NAME": "main", "CI_JOB_ID": "7"}
    return register(reg, name, bundle.pack(model), tags=lineage.tags(env),
                    params={"train.epochs": "2"}, metrics={"accuracy": 0.9}, env=env,
                    log=lambda _: None)


def tree(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- credentials stay with their origin (issue 21 point 1, acceptance 2) ----------------------

def test_a_download_redirected_to_object_storage_carries_no_token_and_succeeds(
        fake, storage, tmp_path):
    name = f"m-{uuid.uuid4().hex[:8]}"
    model = model_dir(tmp_path)
    do(Registry(uri(fake), fake.token), name, model)
    fake.ml.storage = storage  # from now on every file download is a redirect
    out = tmp_path / "out"
    done = cli("models", "download", name, "--out", str(out),
               env={"MLFLOW_TRACKING_URI": uri(fake), "MLFLOW_TRACKING_TOKEN": fake.token,
                    "NO_PROXY": "127.0.0.1"})
    assert done.returncode == 0, done.stderr
    assert tree(out / "tiny") == tree(model)
    assert len(storage.seen) == 2  # manifest.json and model.tar.gz, both from the storage
    assert all("Authorization" not in h and "PRIVATE-TOKEN" not in h for h in storage.seen)
    assert fake.token not in json.dumps(storage.seen)


def test_a_run_whose_files_are_on_another_host_gets_no_token(fake):
    other = HTTPServer(host="127.0.0.1", port=0)
    other.start()
    try:
        other.expect_request("/elsewhere/manifest.json").respond_with_data(b"{}")
        reg = Registry(uri(fake), fake.token)
        assert reg.get_file(other.url_for("/elsewhere/"), bundle.MANIFEST) == b"{}"
        assert [req.headers.get("Authorization") for req, _ in other.log] == [None]
    finally:
        other.clear()
        other.stop()


# --- creates whose outcome is unknown are looked up, not repeated (issue 20 point 9) ----------

@pytest.mark.parametrize("lost, method, path", [
    ("model-versions/create", "POST", r"model-versions/create$"),
    ("registered-models/create", "POST", r"registered-models/create$"),
    ("runs/log-batch", "POST", r"runs/log-batch$"),
    ("PUT files", "PUT", r"/files/model\.tar\.gz$"),
])
def test_a_create_whose_answer_was_lost_is_looked_up_not_sent_again(fake, tmp_path, lost,
                                                                     method, path):
    reg = Registry(uri(fake), fake.token)
    name = f"m-{uuid.uuid4().hex[:8]}"
    model = model_dir(tmp_path)
    fake.ml.lost[lost] = 1  # the server does it, then the answer is a 502
    done = do(reg, name, model)
    assert (done.created, done.version.semver) == (True, "0.1.0")
    assert len(fake.requests_to(method, path)) == 1
    assert [v["semver"] for v in fake.ml.versions if v["model"] == name] == ["0.1.0"]
    path_out, _ = catalog.download(reg, catalog.find(reg, name), tmp_path / "out")
    assert tree(path_out) == tree(model)


def test_a_create_that_did_not_happen_is_sent_again(fake, tmp_path):
    reg = Registry(uri(fake), fake.token)
    name = f"m-{uuid.uuid4().hex[:8]}"
    fake.fail(1, 503, method="POST", path_re=r"model-versions/create$")
    assert do(reg, name, model_dir(tmp_path)).version.semver == "0.1.0"
    assert len(fake.requests_to("POST", r"model-versions/create$")) == 2


def test_a_taken_semver_of_another_commit_is_one_line(fake, tmp_path):
    reg = Registry(uri(fake), fake.token)
    name = f"m-{uuid.uuid4().hex[:8]}"
    do(reg, name, model_dir(tmp_path))
    with pytest.raises(RegistryError, match="already exists .* made for another commit"):
        reg.create_version(name, "0.1.0", {lineage.COMMIT: "5" * 40})


def test_429_retry_after_is_honoured_for_a_create(fake):
    reg = Registry(uri(fake), fake.token)
    name = f"m-{uuid.uuid4().hex[:8]}"
    reg.ensure_model("warm-up")  # the connection is open: the wait measured is the 429's
    fake.ml.throttle(1, "1")
    fake.seen.clear()
    t0 = time.monotonic()
    assert reg.ensure_model(name) is True  # a GET (throttled, retried), then the create
    assert time.monotonic() - t0 >= 0.9
    assert len(fake.requests_to("GET", r"registered-models/get$")) == 2  # 429, then 404
    # A 429 on the create itself: refused before anything was done, so sent again, after
    # the wait GitLab asks for.
    fake.fail(1, 429, headers={"Retry-After": "1"}, method="POST",
              path_re=r"registered-models/create$")
    t0 = time.monotonic()
    assert reg.ensure_model(name + "-2") is True
    assert time.monotonic() - t0 >= 0.9
    assert [s.status for s in fake.requests_to("POST", r"registered-models/create$")] == \
        [200, 429, 200]


def test_a_plain_404_says_the_registry_may_be_off_or_hidden(fake):
    reg = Registry(uri(fake), fake.token)
    with pytest.raises(RegistryError) as err:
        reg.call("GET", "model-versions/search", {"filter": "name='x'"})
    assert "no such endpoint, or the model registry is disabled or not visible to this " \
           "token's user" in str(err.value)


# --- downloads are bounded (issue 21: "a 200 MiB answer to a 300-byte manifest") -------------

def _mlflow_like(server: HTTPServer, manifest_body) -> Version:
    files = server.url_for("/files/")
    server.expect_request("/api/2.0/mlflow/runs/get").respond_with_json(
        {"run": {"info": {"run_id": "r1", "artifact_uri": files}, "data": {}}})
    server.expect_request("/files/manifest.json").respond_with_response(manifest_body)
    return Version(name="m", semver="0.1.0", ident="1", run_id="r1")


def test_a_huge_answer_to_the_manifest_request_is_refused_while_reading(httpserver, tmp_path):
    sent = []

    def huge():
        for _ in range(200):  # 200 MiB, produced only as far as the client reads
            sent.append(1)
            yield b"x" * (1024 * 1024)

    version = _mlflow_like(httpserver, Response(huge(), content_type="application/json"))
    t0 = time.monotonic()
    with pytest.raises(RegistryError, match=r"more than the 1\.0 MiB allowed"):
        catalog.download(Registry(httpserver.url_for("/")), version, tmp_path / "out")
    assert time.monotonic() - t0 < 10
    assert len(sent) < 50  # stopped long before 200 MiB
    assert not (tmp_path / "out").exists()


def _archive(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def _manifest(archive: bytes, members: dict[str, bytes], model: str = "m") -> dict:
    return {"format": 1, "model": model,
            "files": {bundle.ARCHIVE: {"sha256": bundle.sha256(archive), "size": len(archive)}},
            "contents": {n: bundle.sha256(d) for n, d in members.items()}}


def test_an_archive_that_unpacks_past_the_limit_is_refused_while_unpacking(tmp_path, monkeypatch):
    members = {"m/a.bin": b"\0" * (8 * 1024 * 1024), "m/b.bin": b"\0" * (8 * 1024 * 1024)}
    archive = _archive(members)
    assert len(archive) < 100_000  # 16 MiB of zeros packs small
    manifest = _manifest(archive, members)  # a manifest that vouches for it: still bounded
    monkeypatch.setenv("CI_GEN_MODEL_MAX_BYTES", str(10 * 1024 * 1024))
    with pytest.raises(RegistryError, match="unpacks to more than the 10485760 bytes"):
        bundle.unpack(archive, manifest, tmp_path / "out", "m 1")
    assert list((tmp_path / "out").iterdir()) == []  # the partial extraction is gone


@pytest.mark.parametrize("members, contents, message", [
    ({"m/a": b"a", "m/x": b"x"}, {"m/a": b"a"}, "which its manifest does not list"),
    ({"m/a": b"a", "other/b": b"b"}, {"m/a": b"a", "other/b": b"b"}, "unsafe entry"),
    ({"m/a": b"a"}, {"m/a": b"A"}, "do not match its manifest"),
])
def test_archive_members_are_checked_before_they_are_written(tmp_path, members, contents, message):
    archive = _archive(members)
    manifest = {**_manifest(archive, members),
                "contents": {n: bundle.sha256(d) for n, d in contents.items()}}
    with pytest.raises(RegistryError, match=message):
        bundle.unpack(archive, manifest, tmp_path / "out", "m 1")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("model", ["..", "../outside", "/etc", "a\x1b[2Jb", "."])
def test_a_manifest_cannot_name_a_directory_outside_the_target(model):
    members = {"m/a": b"a"}
    archive = _archive(members)
    data = json.dumps(_manifest(archive, members, model)).encode()
    with pytest.raises(RegistryError, match="manifest.json of m 1: model: "):
        bundle.read_manifest(data, "m 1")


def test_a_manifest_claiming_more_than_the_limit_is_refused_before_downloading(monkeypatch):
    monkeypatch.setenv("CI_GEN_MODEL_MAX_BYTES", "1000")
    data = json.dumps({"format": 1, "model": "m", "contents": {},
                       "files": {bundle.ARCHIVE: {"sha256": "0" * 64, "size": 5000}}}).encode()
    with pytest.raises(RegistryError, match="claims 5000 bytes, more than the 1000 allowed"):
        bundle.read_manifest(data, "m 1")


def test_ci_gen_run_never_prints_the_tracking_uri_password(tmp_path):
    from ci_gen.local import registry as local

    secret = "Run-Pa55word-77"
    said: list[str] = []
    env: dict[str, str] = {}
    uri = f"https://bot:{secret}@mlflow.example.com/"
    run = local.for_run(tmp_path, ["mlops-register"], {"MLFLOW_TRACKING_URI": uri}, env,
                        said.append)
    report = tmp_path / "artifacts" / "mlops-register" / ".gitlab-ci-reports" / "dotenv"
    report.mkdir(parents=True)
    (report / "register.env").write_text("CI_GEN_MODEL_NAME=m\nCI_GEN_MODEL_VERSION=0.1.0\n")
    run.report(said.append, tmp_path / "artifacts")
    assert len(said) == 2 and secret not in "\n".join(said), said
    assert "ci-gen models show m 0.1.0" in said[1]


def test_links_for_the_mr_report_never_carry_the_uri_password():
    secret = "Link-Pa55word-3"
    reg = Registry(f"https://bot:{secret}@mlflow.example.com:5000/")
    version = Version(name="m", semver="0.1.0", ident="4", run_id="r")
    links = (reg.model_url("m"), reg.version_url(version), reg.where)
    assert all(secret not in link and "bot" not in link for link in links), links
    assert reg.model_url("m") == "https://mlflow.example.com:5000/#/models/m"
