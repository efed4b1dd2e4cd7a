"""The tag pipeline's Python steps: a tag is refused unless version, CHANGELOG section and
templates say the same version (the section is the release notes), and the trusted-publishing
exchange talks to a loopback stand-in of PyPI's documented mint-token endpoint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from ci_gen import __version__
from ci_gen.errors import CiGenError
from ci_gen.release import pypi, tag
from support.cli import REPO

NOTES = "### Added\n- **train**: something.\n"


@pytest.fixture
def release_tree(tmp_path):
    """The files the check reads, as a release commit has them: the section dated."""
    # The job runs `python -m ci_gen.release` from the checkout: the package comes with it.
    shutil.copytree(REPO / "ci_gen", tmp_path / "ci_gen", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / "CHANGELOG.md").write_text(
        f"# Changelog\n\nIntro.\n\n## {__version__} — 2026-12-01\n\n{NOTES}\n## 0.0.1 — 2026-01-01\n\nOld.\n")
    return tmp_path


def test_the_notes_are_the_versions_section(release_tree):
    assert tag.check(release_tree, __version__) == NOTES


def _main(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ci_gen.release", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_check_writes_the_notes_file_for_the_release_job(release_tree):
    proc = _main("check", __version__, "--notes", "notes.md", cwd=release_tree)
    assert proc.returncode == 0, proc.stderr
    assert (release_tree / "notes.md").read_text() == NOTES


def _changelog(text):
    return lambda t: (t / "CHANGELOG.md").write_text(text.replace("V", __version__))


def _template(name, old, new):
    def change(t):
        path = t / "templates" / name
        path.write_text(path.read_text().replace(old.replace("V", __version__), new))
    return change


@pytest.mark.parametrize("change, message", [
    (lambda t: None, "tag 9.9.9 but ci_gen/__init__.py says"),
    (_changelog("# Changelog\n\n## 0.0.1\n\nOld.\n"), "no section `## V`"),
    (_changelog("# Changelog\n\n## V — unreleased\n\nSoon.\n"), "still calls V unreleased"),
    (_changelog("# Changelog\n\n## V — 2026-12-01\n\n## 0.0.1\n"), "section V is empty"),
    (_template("train.yml", 'ci-gen==V"', 'ci-gen==0.0.9"'), "templates/train.yml pins ci-gen 0.0.9, not V"),
    (_template("deploy.yml", "/runtime:V", "/runtime:0.0.8"), "templates/deploy.yml pins ci-gen 0.0.8, not V"),
])
def test_a_tag_that_does_not_match_is_refused_in_one_line(release_tree, change, message):
    """Each broken piece alone; the exit is non-zero and stderr is one line, notes unwritten."""
    change(release_tree)
    wanted = "9.9.9" if "9.9.9" in message else __version__
    proc = _main("check", wanted, "--notes", "notes.md", cwd=release_tree)
    assert proc.returncode == 1
    assert message.replace("V", __version__) in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not (release_tree / "notes.md").exists()


@pytest.mark.parametrize("bad", ["v0.1.1", "0.1", "0.1.1-rc1", "01.2.3", "0.1.1\n"])
def test_only_plain_versions_are_release_tags(bad):
    with pytest.raises(CiGenError, match="not a version X.Y.Z"):
        tag.check_tag(bad)


# -- trusted publishing ---------------------------------------------------------------------

OIDC = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJweXBpIn0.c2lnbmF0dXJl"


def test_the_oidc_token_is_exchanged_at_the_mint_endpoint(httpserver):
    httpserver.expect_oneshot_request("/_/oidc/mint-token", method="POST", json={"token": OIDC}) \
        .respond_with_json({"success": True, "token": "pypi-minted-upload-token"})
    index = httpserver.url_for("").rstrip("/")
    assert pypi.mint_token(OIDC, index) == "pypi-minted-upload-token"
    httpserver.check_assertions()


def test_the_job_entry_point_reads_the_id_token_from_the_environment(httpserver, tmp_path):
    httpserver.expect_oneshot_request("/_/oidc/mint-token", method="POST", json={"token": OIDC}) \
        .respond_with_json({"success": True, "token": "pypi-minted-upload-token"})
    index = httpserver.url_for("").rstrip("/")
    proc = subprocess.run([sys.executable, "-m", "ci_gen.release", "pypi-token", "--index", index],
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "PYPI_ID_TOKEN": OIDC},
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "pypi-minted-upload-token\n"), proc.stderr


def test_a_refused_exchange_says_pypis_reason_without_the_token(httpserver):
    httpserver.expect_oneshot_request("/_/oidc/mint-token", method="POST").respond_with_json(
        {"message": "Token request failed", "errors": [
            {"code": "invalid-publisher", "description": "valid token, but no corresponding publisher"}]},
        status=422)
    index = httpserver.url_for("").rstrip("/")
    with pytest.raises(CiGenError) as err:
        pypi.mint_token(OIDC, index)
    assert "HTTP 422" in str(err.value) and "no corresponding publisher" in str(err.value)
    assert OIDC not in str(err.value)


@pytest.mark.parametrize("answer", [{"success": True}, {"token": "not-a-pypi-token"}, ["x"]])
def test_an_answer_without_an_upload_token_is_refused(httpserver, answer):
    httpserver.expect_oneshot_request("/_/oidc/mint-token", method="POST").respond_with_data(
        json.dumps(answer), content_type="application/json")
    with pytest.raises(CiGenError, match="without an upload token"):
        pypi.mint_token(OIDC, httpserver.url_for("").rstrip("/"))


@pytest.mark.parametrize("token, index, message", [
    ("", pypi.PYPI, "no OIDC token"),
    ("not a jwt", pypi.PYPI, "no OIDC token"),
    (OIDC, "http://pypi.org", "not an https URL"),
    (OIDC, "https://pypi.org/_/x?y", "not an https URL"),
])
def test_bad_token_or_index_is_refused_before_any_request(token, index, message):
    with pytest.raises(CiGenError, match=message):
        pypi.mint_token(token, index)


@pytest.fixture(scope="session")
def httpserver_listen_address():
    """The PyPI stand-in on 127.0.0.1 (pytest-httpserver binds `localhost` otherwise)."""
    return ("127.0.0.1", 0)


def test_the_self_test_never_waits_for_a_runtime_image_its_commit_has_not_published():
    """The runtime image of a version exists only after its tag pipeline: the self-test at
    $CI_COMMIT_SHA gives every component that defaults to it a Python image (with ci-gen
    from the commit), the stop job included."""
    import yaml

    from ci_gen import components as desc

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))
    pipeline = yaml.load((REPO / ".gitlab-ci.yml").read_text(), Loader=Loader)
    for entry in pipeline["include"]:
        name = entry["component"].rsplit("/", 1)[1].split("@", 1)[0]
        if desc.get(name).input("image").default == desc.RUNTIME_IMAGE:
            assert entry["inputs"].get("image", "").startswith("python:3."), name
    assert pipeline["selftest-stop"]["variables"]["GIT_STRATEGY"] == "fetch"
    assert pipeline["selftest-stop"]["extends"] == ".selftest-cigen"


def test_the_self_test_deploys_where_its_process_outlives_the_job():
    """A `process` deploy serves from the runner host: on a docker executor the process dies with
    the job's container. The self-test's deploy (with its rollback and stop) and inference go to
    the same shell runner by tag; the rollback has a checkout for ci-gen, as the stop job; the
    release's glab image is a tag GitLab's releases documentation names (glab >= 1.58.0)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))
    text = (REPO / ".gitlab-ci.yml").read_text()
    pipeline = yaml.load(text, Loader=Loader)
    inputs = {e["component"].rsplit("/", 1)[1].split("@", 1)[0]: e.get("inputs", {}) for e in pipeline["include"]}
    assert inputs["deploy"]["engine"] == "process"
    assert inputs["deploy"]["tags"] == inputs["inference"]["tags"] == ["ci-gen-shell"]
    assert pipeline["selftest-rollback"]["variables"]["GIT_STRATEGY"] == "fetch"
    assert pipeline["selftest-rollback"]["extends"] == ".selftest-cigen"
    image = pipeline["release"]["image"]
    assert image == "registry.gitlab.com/gitlab-org/cli:v1.58.0"
    major, minor, _ = map(int, re.fullmatch(r".*:v(\d+)\.(\d+)\.(\d+)", image).groups())
    assert (major, minor) >= (1, 58) and "doc/user/project/releases/_index.md" in text
    from ci_gen.lint import lint_file

    report = lint_file(REPO / ".gitlab-ci.yml", root=REPO)
    assert report.errors == report.warnings == 0, [str(f) for f in report.findings]
