"""`ci-gen run` runs jobs the way a runner does (issue 11): a job on a user image starts from
an empty Python environment and installs ci-gen from the run's index; a job on the ci-gen
runtime image gets the runtime environment (built once per version, shared by the suite
through the per-user cache); nothing a job installs reaches the caller's venv, and nothing of
the caller's CI/CD environment reaches a job. Real gitlab-ci-local, real pip, real venvs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ci_gen import __version__
from ci_gen.local import runtime
from support.git import git, make_project
from support.pipeline import ci_gen_run, gitlab_ci_local, job_log, summary

pytestmark = pytest.mark.slow

# A merge request pipeline: CI_COMMIT_BRANCH must be unset in its jobs (GitLab's rule), the
# thing the repository's own unit-tests tripped over when the caller was itself a CI job.
CI = f"""\
stages: [check]
workflow:
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
user-image:
  stage: check
  image: python:3.11.11-slim-bookworm
  script:
    - echo "branch=${{CI_COMMIT_BRANCH-unset}} job-token=${{CI_JOB_TOKEN-unset}} skip=${{CI_GEN_SKIP_BUILD-unset}}"
    - echo "python=$(command -v python) venv=$VIRTUAL_ENV"
    - if command -v ci-gen; then echo "ci-gen before install"; exit 1; fi
    - pip install --quiet --no-deps --index-url "$CI_GEN_INDEX_URL" "ci-gen=={__version__}"
    - pip install --quiet "ci-gen=={__version__}"
    - ci-gen job dvc-auth --help | head -1
    - python -c "import dvc" 2>/dev/null && exit 1 || echo "no dvc in a user image"
runtime-image:
  stage: check
  image: $CI_REGISTRY/mlops/ci-gen/runtime:{__version__}
  script:
    - ci-gen job dvc-auth --help | head -1
    - python -c "import dvc, ci_gen; print('runtime', ci_gen.__version__)"
    - pip install --quiet --no-deps --force-reinstall --index-url "$CI_GEN_INDEX_URL" "ci-gen=={__version__}"
    - python -c "import ci_gen, sys; print('job install in', ci_gen.__file__.startswith(sys.prefix))"
"""
POLLUTED = {"CI_COMMIT_BRANCH": "leaked-branch", "CI_JOB_TOKEN": "leaked-job-token-7731",
            "GITLAB_API_TOKEN": "glpat-leaked-7731", "CI_GEN_SKIP_BUILD": "leaked",
            "CI": "true", "GITLAB_CI": "true"}


def _freeze() -> str:
    return subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True,
                          text=True, check=True).stdout


def _site_mtimes() -> dict[str, float]:
    site = Path(runtime.purelib(Path(sys.prefix)))
    return {p.name: p.stat().st_mtime for p in [site, *site.iterdir()]}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    gitlab_ci_local()
    root = make_project(tmp_path_factory.mktemp("runner") / "p", CI)
    git(root, "checkout", "-q", "-b", "feature")
    (root / "README.md").write_text("a change\n")
    git(root, "add", "README.md")
    git(root, "commit", "-qm", "change")
    return root


def test_jobs_start_from_their_image_and_nothing_leaks(project):
    freeze, mtimes = _freeze(), _site_mtimes()
    proc = ci_gen_run(project, "--mr", runner=True, env=POLLUTED)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    out = proc.stdout
    assert summary(out) == {"user-image": "passed", "runtime-image": "passed"}
    # The caller's CI/CD side is named (names only), never handed over.
    line = next(ln for ln in out.splitlines() if "not passed to jobs" in ln)
    for name in POLLUTED:
        assert name in line
    assert not any(v in out for v in POLLUTED.values() if len(v) > 6)
    user = job_log(project, "user-image")
    assert "branch=unset job-token=unset skip=no container registry" in user  # ci-gen's own skip
    assert "a fresh empty Python environment" in user
    venv = re.search(r"python=(\S+) venv=(\S+)", user)
    assert venv and venv[1] == f"{venv[2]}/bin/python" and not venv[2].startswith(sys.prefix)
    assert "usage: ci-gen job dvc-auth" in user and "no dvc in a user image" in user
    rt = job_log(project, "runtime-image")
    assert f"runtime {__version__}" in rt and "the ci-gen" in rt
    assert "job install in True" in rt  # into the job's own venv, not the shared runtime
    # Setup time (job start -> first `ci-gen job` command) in the summary, for each job.
    rows = {ln.split()[1]: ln for ln in out.split("ci-gen: summary:")[1].splitlines()[1:3]}
    for name in ("user-image", "runtime-image"):
        assert re.search(r"setup \d+\.\d s", rows[name]), rows[name]
    # Nothing the jobs installed reached the caller's venv.
    assert _freeze() == freeze
    assert _site_mtimes() == mtimes


def test_host_env_is_todays_behaviour_without_the_ci_leak(project):
    proc = ci_gen_run(project, "--mr", env=POLLUTED)  # --host-env
    assert proc.returncode == 1  # the user job finds the caller's ci-gen before installing it
    user = job_log(project, "user-image")
    assert "branch=unset job-token=unset skip=no container registry" in user
    assert "ci-gen before install" in user


def test_matrix_cells_on_the_runtime_image_get_the_runtime_environment(tmp_path):
    """A `parallel: matrix` job's cells (the sweep's) on the runtime image: each cell is set up
    like any runtime job, in seconds, never as "no image" reinstalling ci-gen."""
    cells_ci = (f"cell:\n  image: $CI_REGISTRY/mlops/ci-gen/runtime:{__version__}\n"
                f"  parallel:\n    matrix:\n      - RATE: ['0.001', '0.003']\n"
                f"  script:\n    - ci-gen --version\n")
    import io

    # Built here when this test runs alone: minutes once per version, beyond the run's timeout.
    runtime.runtime_env(runtime.own_wheel(io.StringIO()), io.StringIO())
    project = make_project(tmp_path / "cells", cells_ci)
    proc = ci_gen_run(project, runner=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    assert "2 on the ci-gen runtime environment, 0 in a fresh empty Python environment" in proc.stdout
    for value in ("0.001", "0.003"):
        log = job_log(project, f"cell: [{value}]")
        setup = re.search(rf"image \S+runtime:{re.escape(__version__)}: the ci-gen {re.escape(__version__)} "
                          r"runtime environment \(set up in ([0-9.]+) s\)", log)
        assert setup and float(setup[1]) <= 5, log[:2000]
        assert f"ci-gen {__version__}" in log


def test_host_env_jobs_use_the_callers_venv_whatever_bashrc_puts_first(tmp_path):
    """Debian's bash sources ~/.bashrc when its stdin is a socket (Node's child processes) and
    SHLVL is unset or 0, as under a process that is not a shell: a pyenv or conda set-up there
    puts another python first. --host-env jobs must still get the caller's venv."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "python").write_text("#!/bin/sh\necho 'not the caller python'\n")
    (elsewhere / "python").chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text(f'echo "bashrc sourced"\nexport PATH="{elsewhere}:$PATH"\n')
    project = make_project(tmp_path / "p", 'which:\n  script: [\'python -c "import sys; print(sys.prefix)"\']\n')
    proc = ci_gen_run(project, env={"HOME": str(home), "SHLVL": "0"})
    log = job_log(project, "which")
    assert "bashrc sourced" in log  # the case this is about happened
    assert proc.returncode == 0, log
    assert sys.prefix in log.splitlines() and "not the caller python" not in log


# -- `ci-gen run` after `pip install ci-gen`: no checkout, no node_modules ----------------------

@pytest.fixture(scope="module")
def installed_ci_gen(tmp_path_factory) -> Path:
    """ci-gen installed from its wheel: the runtime environment's venv (built once, shared with
    the tests above) and this wheel's overlay, behind a `ci-gen` and a `python` command."""
    import io

    env = runtime.runtime_env(runtime.own_wheel(io.StringIO()), io.StringIO())
    bin_dir = tmp_path_factory.mktemp("installed")
    # -P: not the working directory first on sys.path (the tests run in the checkout).
    for name, args in (("ci-gen", "-P -m ci_gen "), ("python", "-P ")):
        (bin_dir / name).write_text(f'#!/bin/sh\nPYTHONPATH="{env.overlay}" exec "{env.venv}/bin/python" {args}"$@"\n')
        (bin_dir / name).chmod(0o755)
    return bin_dir / "ci-gen"


def test_runs_of_two_checkouts_each_get_their_own_ci_gen_and_never_change_the_others(tmp_path):
    """Two wheels of one version (another clone, an edit): one shared venv, an overlay each;
    making the second leaves the first as it was, and a job set up for each run imports its own."""
    import io
    import shutil
    import zipfile

    from ci_gen.local.jobenv import JobImage, setup_script

    wheel_a = runtime.own_wheel(io.StringIO())
    wheel_b = tmp_path / "other-checkout" / wheel_a.name
    wheel_b.parent.mkdir(parents=True)
    shutil.copy(wheel_a, wheel_b)
    with zipfile.ZipFile(wheel_b, "a") as zf:
        zf.writestr("ci_gen/_which_checkout.py", "NAME = 'other'\n")

    a = runtime.runtime_env(wheel_a, io.StringIO())
    before = {p: p.stat().st_mtime_ns for p in a.overlay.rglob("*")}
    # An overlay unused for 8 days and a scratch directory a killed run left: both pruned
    # when the next overlay is made; the one a run just took up stays.
    stale = [a.overlay.parent / ("0" * 16), a.overlay.parent / ".new-killed"]
    for path in stale:
        path.mkdir(exist_ok=True)
        os.utime(path, (time.time() - 8 * 86400,) * 2)
    out = io.StringIO()
    b = runtime.runtime_env(wheel_b, out)
    assert out.getvalue() == ""  # no venv built: only the overlay, in seconds
    assert b.venv == a.venv and b.overlay != a.overlay
    assert {p: p.stat().st_mtime_ns for p in a.overlay.rglob("*")} == before
    assert not any(p.exists() for p in stale)
    assert runtime.runtime_env(wheel_b, io.StringIO()) == b  # made once

    probe = ("import ci_gen, dvc, importlib.util; "
             "print(ci_gen.__file__, importlib.util.find_spec('ci_gen._which_checkout') is not None)")
    for rt, other in ((a, False), (b, True)):
        script = tmp_path / f"setup-{other}.sh"
        script.write_text(setup_script([JobImage("j", "runtime", True)], rt, tmp_path / f"envs-{other}",
                                       runtime.base_python()))
        proc = subprocess.run(["bash", "-c", f"python -c {probe!r}"], capture_output=True, text=True, cwd=tmp_path,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BASH_ENV": str(script),
                                   "CI_JOB_NAME": "j"}, timeout=120)
        assert proc.returncode == 0, proc.stderr
        where, found = proc.stdout.split()[-2:]
        assert where.startswith(str(rt.overlay)) and found == str(other), proc.stdout


def _bare_env(home: Path, path: str) -> dict[str, str]:
    keep = ("LANG", "LC_ALL", "TMPDIR", "NO_PROXY", "no_proxy")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("PIP_")}
    npm_cache = subprocess.run(["npm", "config", "get", "cache"], capture_output=True, text=True,
                               check=True).stdout.strip()
    # A fresh HOME, npm's (warm) cache, and no registry: the install must work offline.
    env.update(HOME=str(home), PATH=path, npm_config_cache=npm_cache, npm_config_offline="true",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@x")
    return env


def test_run_after_pip_install_installs_gitlab_ci_local(installed_ci_gen, tmp_path):
    project = make_project(tmp_path / "tiny", "hello:\n  script: [echo hello from the job]\n")
    home = tmp_path / "home"
    env = _bare_env(home, "/usr/local/bin:/usr/bin:/bin")
    cached = home / ".cache" / "ci-gen" / "gitlab-ci-local" / "4.73.0"
    for attempt in (1, 2):
        proc = subprocess.run([str(installed_ci_gen), "run", str(project), "--host-env"], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
        installing = f"ci-gen: installing gitlab-ci-local 4.73.0 with npm into {cached} (once)"
        assert (installing in proc.stdout) == (attempt == 1), proc.stdout[:2000]
        assert "hello from the job" in proc.stdout
    assert os.access(cached / "node_modules" / ".bin" / "gitlab-ci-local", os.X_OK)
    assert not list(cached.parent.glob(".install-*"))


def test_without_npm_says_what_to_install(installed_ci_gen, tmp_path):
    project = make_project(tmp_path / "tiny", "hello:\n  script: [echo hi]\n")
    bin_dir = tmp_path / "bin"  # git and rsync, no node, no npm
    bin_dir.mkdir()
    for tool in ("git", "rsync"):
        (bin_dir / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True,
                                                   check=True).stdout.strip())
    proc = subprocess.run([str(installed_ci_gen), "run", str(project)], capture_output=True, text=True,
                          env=_bare_env(tmp_path / "home", str(bin_dir)), timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (
        "ci-gen: error: gitlab-ci-local 4.73.0 not found (npm not found): install Node.js 20 or "
        "newer with npm (Debian: apt-get install nodejs npm) and ci-gen installs gitlab-ci-local "
        "4.73.0 itself, or point CI_GEN_GITLAB_CI_LOCAL at the executable\n")


def test_wheel_of_an_installed_ci_gen_is_rebuilt_from_its_record(installed_ci_gen, tmp_path):
    """Installed from a wheel (no checkout): the wheel handed to jobs is re-made from the
    files the dist-info RECORD lists, with a fresh RECORD whose hashes match."""
    import base64
    import csv
    import hashlib
    import zipfile

    python = installed_ci_gen.parent / "python"
    code = "import sys; from ci_gen.local.runtime import own_wheel; print(own_wheel(sys.stderr))"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    wheel = Path(proc.stdout.strip())
    assert wheel.name == f"ci_gen-{__version__}-py3-none-any.whl" and wheel.is_relative_to(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"ci_gen-{__version__}.dist-info"
        assert {"ci_gen/cli.py", "ci_gen/local/npm/package-lock.json", "ci_gen/local/constraints.txt",
                f"{info}/METADATA",
                f"{info}/entry_points.txt", f"{info}/RECORD"} <= names
        assert not any("__pycache__" in n or n.endswith((".pyc", "/INSTALLER", "/direct_url.json"))
                       for n in names)
        rows = list(csv.reader(zf.read(f"{info}/RECORD").decode().splitlines()))
        assert {r[0] for r in rows} == names
        for name, digest, _size in rows:
            if digest:
                raw = hashlib.sha256(zf.read(name)).digest()
                assert digest == "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
