"""Where the components' jobs get ci-gen from: the runtime image of their version, or, on the
user's own image, the release's wheel from the template project's index only. Never a
bare-name install from an index the pipeline does not control, never `npm install`."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ci_gen import __version__
from ci_gen import components as desc
from ci_gen.render import render
from support.cli import REPO

TEMPLATES = sorted((REPO / "templates").glob("*.yml"))
INSTALL = re.compile(r"\b(pip3?|python3? -m pip|uv pip|pipx|npm|npx|easy_install)\s+(install|download|i|run)\b")
NAMES_CIGEN = re.compile(r"(?<![\w/.-])['\"]?ci-gen(\[[a-z,]+\])?(==|>=|~=|['\"\s]|$)")


def _install_lines() -> list[tuple[str, str]]:
    return [(path.name, line.strip()) for path in TEMPLATES
            for line in path.read_text(encoding="utf-8").splitlines() if INSTALL.search(line)]


def test_no_template_installs_ci_gen_by_bare_name_from_an_index_it_does_not_control():
    """Acceptance 3 of issue 11, as a grep: a line that names the `ci-gen` package must take
    it from `--index-url` (the template project's index) without dependencies; the install
    that follows names a downloaded wheel file, not the package."""
    lines = _install_lines()
    assert lines, "no install lines found: the pattern is stale"
    naming = [(f, line) for f, line in lines if NAMES_CIGEN.search(line)]
    assert naming, "no template fetches ci-gen: the pattern is stale"
    for fname, line in naming:
        assert "pip download" in line and "--index-url" in line and "--no-deps" in line \
            and "--extra-index-url" not in line, (fname, line)
        assert f'"ci-gen=={__version__}"' in line, (fname, line)
    assert not [(f, line) for f, line in lines if re.search(r"\bnpx?\b", line)]


def test_the_grep_catches_what_it_must():
    """The patterns above flag the install lines issue 11 found, and let the wheel file pass."""
    bad = ['command -v ci-gen || pip install --quiet "ci-gen[dvc]==0.1.0"', "pip install ci-gen",
           "python -m pip install 'ci-gen==1.0'", "npm install --global @dvcorg/cml@0.20.6"]
    for line in bad:
        assert INSTALL.search(line) and (NAMES_CIGEN.search(line) or "npm" in line), line
    assert not NAMES_CIGEN.search('pip install --quiet "$(ls "$d"/ci_gen-*.whl)[dvc]"')


@pytest.mark.parametrize("name", ["train", "eval-report", "register", "dvc-upload", "deploy", "inference"])
def test_ci_gen_only_jobs_default_to_the_runtime_of_their_version(name):
    default = desc.get(name).input("image").default
    assert default == desc.RUNTIME_IMAGE == f"$CI_REGISTRY/$CI_GEN_PROJECT/runtime:{__version__}"
    for job_name, job in yaml.safe_load(render(name, {}, mode="inline")).items():
        if job_name.startswith("."):
            continue  # a hidden base job (remote-auth's id_tokens), not a job
        assert job["image"] == default, job_name
        assert job["variables"][desc.PROJECT_VARIABLE] == desc.TEMPLATE_PROJECT


def test_train_defaults_to_the_runtime_too():
    # An unchanged run restores the model with what the runtime holds: nothing installed.
    assert desc.get("train").input("image").default == desc.RUNTIME_IMAGE


def test_the_runtime_image_passes_the_image_regex_as_gitlab_checks_it():
    """GitLab checks defaults too, with RE2, before expanding variables."""
    re2 = pytest.importorskip("re2")
    assert re2.compile(desc.RE_IMAGE).search(desc.RUNTIME_IMAGE)
    for bad in ("$A/$B/$C/runtime:1.0.0", "$CI_REGISTRY/$CI_GEN_PROJECT/runtime:latest", "$A/runtime"):
        assert not re2.compile(desc.RE_IMAGE).search(bad), bad


def test_the_lint_policy_accepts_the_runtime_image_as_pinned():
    from ci_gen.lint.policy import image_problem

    assert image_problem(desc.RUNTIME_IMAGE) is None
    assert image_problem("$CI_REGISTRY/$CI_GEN_PROJECT/runtime:latest")[0] == "error"


# -- the ensure step, run for real under sh ------------------------------------------------

def _ensure_item(name: str = "eval-report") -> str:
    job = yaml.safe_load(render(name, {}, mode="inline"))[f"mlops-{name}"]
    return next(item for item in job["script"] if "command -v ci-gen" in item)


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def _run_ensure(tmp_path: Path, env: dict[str, str], stubs: dict[str, str]):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in stubs.items():
        _stub(bin_dir, name, body)
    # Only the stubs and the basic tools (sh, sed, mktemp, ls): no ci-gen, pip or python of the host.
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    for tool in ("sed", "mktemp", "ls", "printf", "cat", "rm"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        if found.startswith("/"):
            (tools / tool).symlink_to(found)
    full = {"PATH": f"{bin_dir}:{tools}", "HOME": str(tmp_path), **env}
    return subprocess.run(["/bin/sh", "-ec", _ensure_item()], env=full, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)


def test_a_missing_ci_gen_is_fetched_from_the_template_projects_index(tmp_path):
    """No CI_GEN_INDEX_URL: the index follows from CI_GEN_PROJECT (URL-encoded path), and the
    wheel that comes back is installed as a file, its dependencies from the normal index."""
    log = tmp_path / "pip.log"
    pip = (f'echo "$*" >> {log}\n'
           'if [ "$1" = download ]; then for a; do case "$a" in --dest) d=1;; *) [ -n "${d:-}" ] && '
           f'{{ touch "$a/ci_gen-{__version__}-py3-none-any.whl"; d=; }};; esac; done; fi\nexit 0')
    proc = _run_ensure(tmp_path, {"CI_API_V4_URL": "https://gitlab.example.com/api/v4",
                                  "CI_GEN_PROJECT": "tools/ml/ci-gen"}, {"pip": pip, "touch": 'exec /usr/bin/touch "$@"'})
    assert proc.returncode == 0, proc.stderr
    download, install = log.read_text().splitlines()
    assert download.startswith("download --quiet --no-deps --only-binary=:all: --index-url "
                               "https://gitlab.example.com/api/v4/projects/tools%2Fml%2Fci-gen/packages/pypi/simple ")
    assert download.endswith(f"ci-gen=={__version__}")
    assert re.fullmatch(rf"install --quiet /\S+/ci_gen-{re.escape(__version__)}-py3-none-any\.whl\[dvc\]", install)


def test_an_explicit_index_wins(tmp_path):
    log = tmp_path / "pip.log"
    proc = _run_ensure(tmp_path, {"CI_GEN_INDEX_URL": "http://127.0.0.1:9/simple", "CI_GEN_PROJECT": "x/y",
                                  "CI_API_V4_URL": "https://gitlab.example.com/api/v4"},
                       {"pip": f'echo "$*" >> {log}; [ "$1" != install ]'})
    assert proc.returncode != 0  # the stub downloaded nothing, so the install had no wheel
    assert "--index-url http://127.0.0.1:9/simple " in log.read_text()


def test_a_ci_gen_of_another_version_in_the_image_is_one_clear_line(tmp_path):
    proc = _run_ensure(tmp_path, {}, {"ci-gen": 'echo "ci-gen 0.0.9"', "pip": "exit 99"})
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert f"the image has ci-gen 0.0.9, this component needs ci-gen {__version__}" in proc.stderr


def test_the_right_ci_gen_installs_nothing(tmp_path):
    proc = _run_ensure(tmp_path, {}, {"ci-gen": f'echo "ci-gen {__version__}"', "pip": "exit 99"})
    assert (proc.returncode, proc.stderr) == (0, "")


# -- reporter: cml -------------------------------------------------------------------------

def test_reporter_cml_without_the_cml_cli_fails_in_one_line_and_posts_nothing(tmp_path):
    job = yaml.safe_load(render("eval-report", {"reporter": "cml"}, mode="inline"))["mlops-eval-report"]
    item = next(i for i in job["script"] if "case " in i)
    assert "npm" not in item
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stub(bin_dir, "ci-gen", f'echo "ci-gen $*" >> {tmp_path}/calls')
    proc = subprocess.run(["/bin/sh", "-ec", item], env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert f"reporter cml needs the CML CLI (@dvcorg/cml {desc.CML_VERSION})" in proc.stderr
    assert not (tmp_path / "calls").exists()  # nothing posted by another way


def test_reporter_cml_with_the_cli_posts_through_it(tmp_path):
    job = yaml.safe_load(render("eval-report", {"reporter": "cml"}, mode="inline"))["mlops-eval-report"]
    item = next(i for i in job["script"] if "case " in i)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stub(bin_dir, "cml", f'echo "$*" >> {tmp_path}/cml.log')
    proc = subprocess.run(["/bin/sh", "-ec", item], env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cml.log").read_text() == \
        "comment update --target=pr --publish --publish-native report/report.md\n"
