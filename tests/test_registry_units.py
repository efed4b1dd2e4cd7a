"""The registry's pure parts: SemVer order and numbering, the reproducible bundle."""

from __future__ import annotations

import pytest

from ci_gen.registry import bundle, lineage, links, semver
from ci_gen.registry.client import Registry, RegistryError, Version, configured, tracking_uri


@pytest.mark.parametrize("existing, expected", [
    ([], "0.1.0"),
    (["0.1.0"], "0.1.1"),
    (["0.1.9", "0.1.10", "0.1.2"], "0.1.11"),       # numeric, not text, order
    (["1.2.0", "1.10.0-rc.1"], "1.10.0"),           # after a pre-release: the release itself
    (["2.0.0", "1.9.9"], "2.0.1"),
    (["not-semver", "7"], "0.1.0"),                 # foreign versions are ignored
])
def test_next_patch(existing, expected):
    assert semver.next_patch(existing) == expected


@pytest.mark.parametrize("tag, version", [("v1.2.0", "1.2.0"), ("1.0.0-rc.1", "1.0.0-rc.1"),
                                          ("V2.0.0+build.5", "2.0.0+build.5")])
def test_tags_give_their_version(tag, version):
    assert semver.from_tag(tag) == version


@pytest.mark.parametrize("tag", ["release-1", "v1.2", "01.2.3", "1.2.3-", "v"])
def test_tags_that_are_not_semver_are_refused(tag):
    with pytest.raises(RegistryError, match="not a SemVer version"):
        semver.from_tag(tag)


def test_precedence_follows_semver_org():
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
               "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]
    assert sorted(reversed(ordered), key=semver.parse) == ordered


def test_bundle_is_reproducible_and_checked(tmp_path):
    model = tmp_path / "m"
    (model / "sub").mkdir(parents=True)
    (model / "a.bin").write_bytes(b"\x00" * 100)
    (model / "sub" / "b.txt").write_text("b\n")
    first, second = bundle.pack(model), bundle.pack(model)
    assert first.files == second.files  # same files, same bytes: mtimes and owners left out
    assert list(first.files) == [bundle.ARCHIVE, bundle.MANIFEST]  # manifest last
    bundle.check(bundle.ARCHIVE, first.files[bundle.ARCHIVE], first.manifest, "m 1.0.0")
    with pytest.raises(RegistryError, match="hash mismatch"):
        bundle.check(bundle.ARCHIVE, first.files[bundle.ARCHIVE][:-1], first.manifest, "m 1.0.0")
    out = bundle.unpack(first.files[bundle.ARCHIVE], first.manifest, tmp_path / "out", "m 1.0.0")
    assert (out / "sub" / "b.txt").read_text() == "b\n"
    with pytest.raises(RegistryError, match="already exists"):
        bundle.unpack(first.files[bundle.ARCHIVE], first.manifest, tmp_path / "out", "m 1.0.0")


def test_edge_files_travel_beside_the_archive(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w").write_bytes(b"w")
    (tmp_path / "edge").mkdir()
    for name in ("model-int8.tflite", "model-float32.tflite", "edge.json"):
        (tmp_path / "edge" / name).write_bytes(name.encode())
    edge = bundle.edge_files(tmp_path / "edge")
    assert [p.name for p in edge] == ["model-float32.tflite", "model-int8.tflite"]  # no edge.json
    assert bundle.edge_files(tmp_path / "absent") == []
    pack = bundle.pack(tmp_path / "m", edge)
    assert list(pack.files) == [bundle.ARCHIVE, "model-float32.tflite", "model-int8.tflite",
                                bundle.MANIFEST]
    assert bundle.edge_names(pack.manifest, "m 1") == ["model-float32.tflite", "model-int8.tflite"]
    files = {n: pack.files[n] for n in pack.manifest["edge"]}
    out = bundle.unpack(pack.files[bundle.ARCHIVE], pack.manifest, tmp_path / "out", "m 1", files)
    assert (out.parent / "edge" / "model-int8.tflite").read_bytes() == b"model-int8.tflite"
    with pytest.raises(RegistryError, match="hash mismatch for model-int8.tflite"):
        bundle.check("model-int8.tflite", b"x", pack.manifest, "m 1")
    forged = {**pack.manifest, "edge": ["../x.tflite"]}
    with pytest.raises(RegistryError, match="lists edge files it does not describe"):
        bundle.edge_names(forged, "m 1")


def test_image_by_digest_only():
    digest = "registry.example.com/g/p@sha256:" + "a" * 64
    assert lineage.image_ref(digest) == digest
    for other in ("registry.example.com/g/p@", "registry.example.com/g/p:1.0", "", "x@sha256:$(id)"):
        assert lineage.image_ref(other) == ""


def test_the_report_section_needs_a_configured_registry():
    gitlab_job = {"CI_API_V4_URL": "https://gitlab.example.com/api/v4", "CI_PROJECT_ID": "5"}
    assert tracking_uri(gitlab_job) == "https://gitlab.example.com/api/v4/projects/5/ml/mlflow"
    assert not configured(gitlab_job)  # every GitLab job has these; the token says "in use"
    assert configured({**gitlab_job, "MLFLOW_TRACKING_TOKEN": "t"})
    assert configured({"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert links.lookup(gitlab_job, "fashion-mnist") is None
    info = {"model": "m", "model_url": "U", "next": "0.1.0", "compare": None, "compare_url": None,
            "compare_commit": "", "merge_request": False}
    assert "| This pipeline registers | [`m` 0.1.0](U) |" in links.markdown(info)
    assert "nothing registered yet | 0.1.0 is the first" in links.markdown(info)


def test_a_symlink_or_an_empty_model_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match="is empty"):
        bundle.pack(tmp_path / "empty")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "x").symlink_to("/etc/hostname")
    with pytest.raises(RegistryError, match="symbolic link"):
        bundle.pack(tmp_path / "linked")


def test_versions_read_alike_from_both_backends():
    gitlab = Version.from_api({"name": "m", "version": "17", "aliases": ["1.2.0"], "run_id": "e1",
                               "tags": [{"key": "ci_gen.commit", "value": "abc"}]})
    mlflow = Version.from_api({"name": "m", "version": "3", "run_id": "r1",
                               "tags": [{"key": "gitlab.version", "value": "1.2.0"}]})
    assert (gitlab.semver, gitlab.ident, mlflow.semver, mlflow.ident) == ("1.2.0", "17", "1.2.0", "3")


@pytest.mark.parametrize("uri, gitlab", [
    ("https://gitlab.example.com/api/v4/projects/5/ml/mlflow", True),
    ("https://gitlab.example.com/api/v4/projects/mlops%2Fdemo/ml/mlflow/", True),
    ("http://127.0.0.1:5000", False)])
def test_gitlab_is_known_by_its_documented_uri(uri, gitlab):
    assert Registry(uri).gitlab is gitlab


@pytest.mark.parametrize("uri", ["", "file:///tmp/mlruns", "sqlite:///db", "127.0.0.1:5000"])
def test_only_http_tracking_uris(uri):
    with pytest.raises(RegistryError, match="http"):
        Registry(uri)


@pytest.mark.parametrize("name", ["dir/file", "../x", ".hidden", "a b"])
def test_file_names_are_flat(name):
    reg = Registry("http://127.0.0.1:9")
    with pytest.raises(RegistryError, match="flat"):
        reg.put_file("http://127.0.0.1:9/files/", name, b"")
