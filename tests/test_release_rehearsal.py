"""This repository's own `.gitlab-ci.yml`, rehearsed locally in gitlab-ci-local (shell
executor, each job in its own copy of the tree), as a release commit tagged X.Y.Z on
gitlab.com/mlops/ci-gen.

What it covers: `release-check` (notes = the CHANGELOG section), `generated-files`,
`build-dist` (wheel + sdist with `build`), `publish-package` (twine to a real pypiserver
standing for the project's GitLab package registry), `publish-pypi` (the trusted-publishing
exchange against a loopback stand-in of PyPI's documented mint-token endpoint, then twine to
a second pypiserver standing for upload.pypi.org), and `unit-tests` narrowed by PYTEST_ARGS to
the tests that failed inside CI (a CI job's environment leaked into the pipelines they start).
Then runtime/install.sh, what runtime/Dockerfile runs, installs the published release from
the package server into a fresh venv, and a consumer project's job on its own image, run by
`ci-gen run` as a runner would, installs it from there with the components' own install step.

What it does not: `runtime-image` (buildah cannot pull a Python base image offline, so the
image itself is not built here), the `release:` keyword (glab talks to GitLab), the
self-test jobs of the components (they `pip install -e` into whatever Python the job has,
which here would be the caller's own venv, until `ci-gen run` gives each job a fresh one).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import servers
from ci_gen import __version__
from ci_gen.local.gitlab_ci_local import GCL_FLAGS
from support.cli import REPO
from support.git import IDENTITY, make_project
from support.pipeline import ci_gen_run, gitlab_ci_local, job_log

pytestmark = pytest.mark.slow

OIDC = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJweXBpIn0.cmVoZWFyc2Fs"
MINTED = "pypi-rehearsal-upload-token"
# The cases that failed when the suite ran inside a CI job (issue 11).
INSIDE_CI = ("tests/test_run.py::test_merge_request_pipeline_and_rules_changes "
             "tests/test_run.py::test_run_builds_and_pushes_with_a_registry "
             "tests/test_faults.py::test_registry_password_never_leaks")


def _tree_files() -> list[str]:
    """What a clone of this work tree holds: tracked files and new ones git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


@pytest.fixture(scope="module")
def release_commit(tmp_path_factory) -> Path:
    """This tree as the release commit of __version__: its CHANGELOG section dated, tagged."""
    project = tmp_path_factory.mktemp("release") / "ci-gen"
    for name in _tree_files():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, project / name)
    changelog = project / "CHANGELOG.md"
    changelog.write_text(changelog.read_text().replace(f"## {__version__} — unreleased",
                                                       f"## {__version__} — 2026-12-01"))
    env = {**os.environ, **IDENTITY}
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", f"Release {__version__}"],
                ["tag", __version__], ["remote", "add", "origin", "git@gitlab.com:mlops/ci-gen.git"]):
        subprocess.run(["git", *cmd], cwd=project, env=env, check=True, capture_output=True)
    return project


@pytest.fixture(scope="module")
def registry_index(tmp_path_factory):
    """Stands for the project's GitLab package registry."""
    yield from servers.start_pypiserver(tmp_path_factory.mktemp("registry-index"))


@pytest.fixture(scope="module")
def pypi_index(tmp_path_factory):
    """Stands for upload.pypi.org."""
    yield from servers.start_pypiserver(tmp_path_factory.mktemp("pypi-index"))


@pytest.fixture(scope="module")
def mint_endpoint():
    """PyPI's `POST /_/oidc/mint-token`: answers only the expected OIDC token."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/_/oidc/mint-token", method="POST", json={"token": OIDC}) \
        .respond_with_json({"success": True, "token": MINTED})
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def _job_env(tmp: Path) -> dict[str, str]:
    """The caller's environment with a throwaway venv first on PATH instead of this one, so
    what the jobs `pip install` (build, twine, ci-gen -e) never lands in the caller's venv."""
    jobs_venv = tmp / "jobs-venv"
    if not jobs_venv.exists():
        subprocess.run([sys.executable, "-m", "venv", str(jobs_venv)], check=True)
    here = str(Path(sys.executable).parent)
    path = [str(jobs_venv / "bin")] + [p for p in os.environ["PATH"].split(os.pathsep) if p != here]
    # MAKEFLAGS & co.: a `make test PYTEST_ARGS=...` around this suite would otherwise hand its
    # PYTEST_ARGS to the unit-tests job's own `make test` (the whole suite, inside itself).
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
           and not k.startswith("CI_")}
    # PIP_REQUIRE_VIRTUALENV: a job's pip that resolves to a Python outside a venv (a machine's
    # pyenv shim, say) refuses to install instead of changing that Python.
    return {**env, **IDENTITY, "PATH": os.pathsep.join(path), "VIRTUAL_ENV": str(jobs_venv),
            "PIP_REQUIRE_VIRTUALENV": "1"}


def _gitlab_ci_local(project: Path, env: dict[str, str], variables: dict[str, str], *jobs: str):
    # One job at a time: jobs of one stage share the throwaway venv here (pip installs into
    # it would race), where a runner gives each its own container.
    cmd = [gitlab_ci_local(), *GCL_FLAGS, "--concurrency", "1",
           "--variable", f"CI_COMMIT_TAG={__version__}", "--variable", "CI_COMMIT_BRANCH="]
    for key, value in variables.items():
        cmd += ["--variable", f"{key}={value}"]
    return subprocess.run([*cmd, *jobs], cwd=project, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def tag_pipeline(release_commit, registry_index, pypi_index, mint_endpoint, tmp_path_factory):
    """The tag pipeline's publishing jobs, one gitlab-ci-local run; (process, seconds)."""
    env = _job_env(tmp_path_factory.getbasetemp())
    variables = {
        "PACKAGE_REGISTRY_URL": registry_index.url,
        "PYPI_URL": mint_endpoint.url_for("").rstrip("/"),
        "PYPI_UPLOAD_URL": pypi_index.url,
        # What GitLab's `id_tokens:` would set; gitlab-ci-local signs no tokens.
        "PYPI_ID_TOKEN": OIDC,
    }
    start = time.monotonic()
    proc = _gitlab_ci_local(release_commit, env, variables, "release-check", "generated-files",
                            "build-dist", "publish-package", "publish-pypi")
    return proc, time.monotonic() - start


def _passed(output: str, job: str) -> bool:
    return any(line.split() == ["PASS", job] for line in output.splitlines())


def test_the_tag_pipeline_publishes_wheel_and_sdist_to_both_indexes(tag_pipeline, registry_index, pypi_index):
    proc, seconds = tag_pipeline
    out = proc.stdout + proc.stderr
    print(f"tag pipeline: {seconds:.1f} s")
    for job in ("release-check", "generated-files", "build-dist", "publish-package", "publish-pypi"):
        assert _passed(out, job), out[-3000:]
    wanted = {f"ci_gen-{__version__}-py3-none-any.whl", f"ci_gen-{__version__}.tar.gz"}
    assert {p.name for p in registry_index.root.iterdir()} == wanted
    assert {p.name for p in pypi_index.root.iterdir()} == wanted


def test_pypi_got_the_oidc_token_and_no_password_was_shown(tag_pipeline, mint_endpoint, release_commit):
    proc, _ = tag_pipeline
    requests = [r for r, _ in mint_endpoint.log if r.path == "/_/oidc/mint-token"]
    assert [json.loads(r.get_data()) for r in requests] == [{"token": OIDC}]
    logs = "".join(p.read_text(errors="replace")
                   for p in (release_commit / ".gitlab-ci-local" / "output").glob("*.log"))
    assert MINTED not in proc.stdout + proc.stderr + logs


def test_the_release_notes_are_the_changelog_section(tag_pipeline, release_commit):
    notes = release_commit / ".gitlab-ci-local" / "artifacts" / "release-check" / "release-notes.md"
    section = (REPO / "CHANGELOG.md").read_text().split(f"## {__version__}", 1)[1].split("\n## ", 1)[0]
    assert notes.read_text().strip() == section.split("\n", 1)[1].strip()


def test_the_install_script_installs_the_published_release_into_a_fresh_venv(tag_pipeline, registry_index,
                                                                            release_commit, tmp_path):
    """What runtime/Dockerfile runs, with the package server standing for the registry."""
    venv = tmp_path / "runtime"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV" and not k.startswith("CI_")}
    env.update(PATH=f"{venv / 'bin'}:/usr/bin:/bin", CI_GEN_INDEX_URL=registry_index.simple,
               PIP_NO_COMPILE="1")
    start = time.monotonic()
    proc = subprocess.run(["sh", "runtime/install.sh", __version__, "constraints.txt"], cwd=release_commit,
                          env=env, capture_output=True, text=True, timeout=600)
    print(f"install.sh: {time.monotonic() - start:.1f} s")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == f"ci-gen {__version__}"
    version = subprocess.run([str(venv / "bin" / "ci-gen"), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"ci-gen {__version__}"
    import_dvc = subprocess.run([str(venv / "bin" / "python"), "-c", "import dvc, dvc_s3, ci_gen; print(ci_gen.__file__)"],
                                capture_output=True, text=True, cwd=tmp_path)
    assert import_dvc.returncode == 0 and import_dvc.stdout.startswith(str(venv)), import_dvc.stderr


def test_the_install_script_names_the_missing_index(release_commit, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(["sh", "runtime/install.sh", __version__, "constraints.txt"], cwd=release_commit,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "set CI_GEN_INDEX_URL" in proc.stderr and proc.stderr.count("\n") == 1


def test_unit_tests_job_passes_the_cases_that_failed_inside_ci(release_commit, tmp_path_factory):
    """`make test` in the unit-tests job, narrowed by its PYTEST_ARGS variable; the venv is
    this one (VENV), already bootstrapped, so the job installs nothing into it."""
    env = _job_env(tmp_path_factory.getbasetemp())
    start = time.monotonic()
    # CI_GEN_VENV_READONLY: the job's bootstrap must never re-point this venv at its build dir.
    # TEST_WORKERS=0: three tests need no xdist workers.
    proc = _gitlab_ci_local(release_commit, {**env, "CI_GEN_VENV_READONLY": "1"},
                            {"VENV": str(Path(sys.executable).parents[1]), "PYTEST_ARGS": INSIDE_CI,
                             "TEST_WORKERS": "0"}, "unit-tests")
    print(f"unit-tests job: {time.monotonic() - start:.1f} s")
    out = proc.stdout + proc.stderr
    assert _passed(out, "unit-tests"), out[-4000:]
    assert "3 passed" in out


def test_a_consumer_job_on_its_own_image_installs_the_published_release(tag_pipeline, registry_index, tmp_path):
    """The train component's install step, as rendered, in a job on a plain Python image of
    a consumer project, run runner-like (a fresh empty venv) with the package server as the
    index: ci-gen comes from there at the component's version, nowhere else."""
    import yaml

    from ci_gen.render import render

    job = next(iter(yaml.safe_load(render("train", {"image": "python:3.11.11-slim-bookworm"}, mode="inline")).values()))
    [install] = [line for line in job["script"] if "pip download" in line]
    ci = {"stages": ["train"],
          "consumer": {"stage": "train", "image": job["image"], "variables": job["variables"],
                       "script": ['echo "index=$CI_GEN_INDEX_URL"', install, "ci-gen --version",
                                  "ci-gen job dvc-auth --help | head -1"]}}
    project = make_project(tmp_path / "consumer", yaml.safe_dump(ci, sort_keys=False))
    proc = ci_gen_run(project, "--variable", f"CI_GEN_INDEX_URL={registry_index.simple}", runner=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    log = job_log(project, "consumer")
    assert "a fresh empty Python environment" in log
    assert f"ci-gen {__version__}" in log
    # The only index the step was given, and the only place that holds this release.
    assert f"index={registry_index.simple}" in log
