"""`ci-gen run` and the component includes, with the real gitlab-ci-local 4.73.0.

Each test builds a scratch git project; pipelines are tiny shell jobs (or jobs of the real
components that need no TensorFlow), so a run takes a few seconds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ci_gen import __version__
from ci_gen import components as desc
from ci_gen.local.gitlab_ci_local import GCL_FLAGS
from ci_gen.local.project import parse_origin
from ci_gen.render import render
from support.cli import cli
from support.git import IDENTITY, git, make_project
from support.pipeline import ci_gen_run, gitlab_ci_local, summary


# -- acceptance 4 of issue 2: the six components resolve in gitlab-ci-local ------------------

@pytest.mark.slow
def test_every_component_resolves_at_commit_sha(tmp_path):
    tool = gitlab_ci_local()
    project = tmp_path / "ci-gen"
    project.mkdir()
    git(project, "init", "-q", "-b", "main")
    git(project, "remote", "add", "origin", "git@gitlab.example.com:mlops/ci-gen.git")
    (project / "README.md").write_text("templates\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "readme")
    # What the server had before this push: every file of the next commit is a change.
    git(project, "update-ref", "refs/remotes/origin/main", "HEAD")
    built = cli("build", "--dir", str(project / "templates"))
    assert built.returncode == 0, built.stderr
    stages = "\n".join(f"  - {s}" for s in desc.default_stages())
    includes = "\n".join(f"  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/{n}@$CI_COMMIT_SHA"
                         for n in desc.ORDER)
    (project / ".gitlab-ci.yml").write_text(f"stages:\n{stages}\ninclude:\n{includes}\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "components")

    proc = subprocess.run([tool, "--list-csv", *GCL_FLAGS], cwd=project, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split(";")[0]: line.split(";") for line in proc.stdout.splitlines()[1:] if line}
    # monitor's job belongs to scheduled pipelines only.
    assert set(rows) == {"mlops-train", "mlops-edge-convert", "mlops-edge-gate", "mlops-eval-report",
                         "mlops-docker-build", "mlops-register", "mlops-dvc-upload", "mlops-deploy", "mlops-rollback", "mlops-stop",
                         "mlops-inference"}
    assert rows["mlops-train"][1] == "train"
    assert rows["mlops-deploy"][1:3] == ["deploy", "manual"]
    assert rows["mlops-dvc-upload"][2] == "manual"
    assert rows["mlops-inference"][5] == "[mlops-deploy]"
    # Nothing was fetched: the components came from this work tree.
    assert not (project / ".gitlab-ci-local" / "includes").exists()


# -- offline resolution of ci-gen components pinned at the installed version ----------------

def _components_ci(version: str, names=("train", "eval-report", "docker-build"),
                   extra_inputs: str = "") -> str:
    inc = "\n".join(f"  - component: gitlab.example.com/mlops/ci-gen/{n}@{version}" + (
        f"\n    inputs:\n{extra_inputs}" if n == "docker-build" and extra_inputs else "")
        for n in names)
    return f"""\
stages: [train, evaluate, build, upload, deploy, inference]
include:
{inc}
# A job of ours that runs the docker-build component's own script.
smoke:
  extends: .mlops-buildah
  stage: build
  needs: []
"""


@pytest.mark.slow
def test_run_resolves_components_offline_and_skips_build_without_registry(tmp_path):
    gitlab_ci_local()
    project = make_project(tmp_path / "demo", _components_ci(__version__),
                           {".gitignore": ".gitlab-ci-local/\n"})
    proc = ci_gen_run(project, "--job", "smoke")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = (project / ".gitlab-ci-local/includes/gitlab.example.com/mlops/ci-gen"
               / __version__ / "templates")
    for name in ("train", "eval-report", "docker-build"):
        assert (written / f"{name}.yml").read_text() == render(name)
    assert "3 ci-gen template include(s) resolved offline" in proc.stdout
    assert "ci-gen: docker-build skipped: no container registry configured for local runs" in proc.stdout
    assert summary(proc.stdout) == {"smoke": "passed"}
    # The work tree is untouched: state stays under the ignored .gitlab-ci-local/.
    assert git(project, "status", "--porcelain") == ""


@pytest.mark.slow
def test_run_builds_and_pushes_with_a_registry(tmp_path, buildah_env, docker_registry):
    gitlab_ci_local()
    files = {"hello.txt": "hello\n", "Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n"}
    ci = _components_ci(__version__, extra_inputs="      tls-verify: false\n")
    project = make_project(tmp_path / "demo", ci, files)
    image = f"{docker_registry.host}/mlops/demo"
    proc = ci_gen_run(project, "--job", "smoke", "--variable", f"CI_REGISTRY_IMAGE={image}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "docker-build will be skipped" not in proc.stdout
    sha = git(project, "rev-parse", "HEAD")
    assert docker_registry.tags("mlops/demo") == sorted([sha, "main"])


@pytest.mark.parametrize("ref, message", [
    ("9.9.9", f"is pinned at '9.9.9' but the installed ci-gen is {__version__}"),
    ("1.0", "a version range needs the network"),
])
def test_version_mismatch_is_one_clear_error(tmp_path, ref, message):
    project = make_project(tmp_path / "demo", _components_ci(ref, names=("train",)))
    proc = ci_gen_run(project)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (project / ".gitlab-ci-local" / "includes").exists()


def test_unknown_component_is_one_clear_error(tmp_path):
    ci = f"include:\n  - component: gitlab.example.com/mlops/ci-gen/nope@{__version__}\n"
    project = make_project(tmp_path / "demo", ci)
    proc = ci_gen_run(project)
    assert proc.returncode == 1
    assert "'nope' is not a ci-gen component" in proc.stderr


@pytest.mark.slow
def test_project_include_of_a_template_resolves(tmp_path):
    gitlab_ci_local()
    ci = f"""\
    stages: [train, evaluate, build]
    include:
      - project: mlops/ci-gen
        ref: {__version__}
        file: [templates/train.yml, templates/eval-report.yml, templates/docker-build.yml]
    smoke:
      extends: .mlops-buildah
      stage: build
      needs: []
    """
    project = make_project(tmp_path / "demo", ci)
    proc = ci_gen_run(project, "--job", "smoke", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    target = (project / ".gitlab-ci-local/includes/gitlab.example.com/mlops/ci-gen"
              / __version__ / "templates/docker-build.yml")
    assert target.read_text() == render("docker-build")


@pytest.mark.parametrize("case, message", [
    ("no-commit", "has no commit yet"),
    ("no-origin", "has no `origin` remote"),
    ("untracked-include", "exists but is not tracked by git"),
    ("not-git", "is not a git repository"),
])
def test_preconditions_are_clear_errors(tmp_path, case, message):
    root = tmp_path / "p"
    root.mkdir()
    (root / ".gitlab-ci.yml").write_text("include:\n  - local: extra.yml\njob:\n  script: ['true']\n")
    (root / "extra.yml").write_text("other:\n  script: ['true']\n")
    if case != "not-git":
        git(root, "init", "-q", "-b", "main")
    if case in ("no-origin", "untracked-include"):
        git(root, "add", ".gitlab-ci.yml")
        git(root, "commit", "-q", "-m", "init")
    if case in ("no-commit", "untracked-include"):
        git(root, "remote", "add", "origin", "https://gitlab.example.com/g/p.git")
    proc = ci_gen_run(root)
    assert proc.returncode == 1
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_origin_urls_parse_like_gitlab_ci_local():
    o = parse_origin("git@gitlab.example.com:mlops/sub/ci-gen.git")
    assert (o.host, o.path, o.fqdn) == ("gitlab.example.com", "mlops/sub/ci-gen", "gitlab.example.com")
    o = parse_origin("https://user:secret@gitlab.example.com:8443/mlops/demo.git")
    assert (o.host, o.path, o.fqdn) == ("gitlab.example.com", "mlops/demo", "gitlab.example.com:8443")
    assert parse_origin("/srv/repos/demo.git") is None


# -- progress, summary and exit status ------------------------------------------------------

TINY = """\
stages: [first, second]
ok:
  stage: first
  script:
    - echo all good
    - command -v ci-gen > which.txt
  artifacts:
    paths: [which.txt]
bad:
  stage: first
  script:
    - echo about to fail
    - exit 3
after-bad:
  stage: second
  needs: [bad]
  script: [echo never]
by-hand:
  stage: second
  needs: [ok]
  when: manual
  script: [echo manual ran]
"""


@pytest.mark.slow
def test_progress_summary_and_exit_code(tmp_path):
    gitlab_ci_local()
    project = make_project(tmp_path / "tiny", TINY)
    # PATH without the venv: ci-gen run hands its own bin dir to the jobs.
    proc = ci_gen_run(project, "--quiet", env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "ci-gen: ok: passed in" in out
    assert "ci-gen: bad: failed in" in out and "exit code 3" in out
    # Manual jobs are left out unless asked for (a person starts them on GitLab).
    assert summary(out) == {"ok": "passed", "bad": "failed", "after-bad": "skipped", "by-hand": "manual"}
    assert "ci-gen: pipeline failed: bad" in out
    assert "  > about to fail" in out  # the failed job's log tail, in quiet mode
    assert "hello" not in out and "all good" not in out  # quiet: no job output
    # Jobs run with the caller's tools: ci-gen from the same environment as the runner.
    which = (project / ".gitlab-ci-local/artifacts/ok/which.txt").read_text().strip()
    assert Path(which) == Path(sys.executable).parent / "ci-gen"
    assert "artifacts: " in out and (project / ".gitlab-ci-local/output/bad.log").is_file()


@pytest.mark.slow
def test_no_manual_and_single_job(tmp_path):
    gitlab_ci_local()
    ci = TINY.replace("    - exit 3\n", "")
    project = make_project(tmp_path / "tiny", ci)
    proc = ci_gen_run(project, "--manual")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary(proc.stdout) == {"ok": "passed", "bad": "passed", "after-bad": "passed",
                                    "by-hand": "passed"}
    assert "manual ran" in proc.stdout
    proc = ci_gen_run(project, "--no-manual")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary(proc.stdout) == {"ok": "passed", "bad": "passed", "after-bad": "passed",
                                    "by-hand": "manual"}
    assert "manual (--manual runs it)" in proc.stdout
    assert re.search(r"^ok +> all good$", proc.stdout, re.M)  # not quiet: the jobs' output is shown
    one = ci_gen_run(project, "--job", "by-hand", "--no-manual")  # a manual job asked for by name
    assert one.returncode == 0, one.stdout + one.stderr
    assert summary(one.stdout) == {"ok": "passed", "by-hand": "passed"}
    missing = ci_gen_run(project, "--job", "nope")
    assert missing.returncode == 1 and "no job 'nope' in the pipeline" in missing.stderr


DEPLOYING = """\
stages: [deploy, use]
deploy:
  stage: deploy
  when: manual
  environment:
    name: review
    on_stop: stop-review
  script:
    - mkdir -p "$CI_GEN_STATE_DIR"
    - echo "$CI_GEN_DEPLOY_ENGINE $CI_GEN_DEPLOY_PORT" > "$CI_GEN_STATE_DIR/running"
use:
  stage: use
  needs: [deploy]
  script:
    - cat "$CI_GEN_STATE_DIR/running"
stop-review:
  stage: use
  when: manual
  environment:
    name: review
    action: stop
  script:
    - mv "$CI_GEN_STATE_DIR/running" "$CI_GEN_STATE_DIR/stopped"
"""


@pytest.mark.slow
def test_environment_is_stopped_after_the_pipeline(tmp_path):
    gitlab_ci_local()
    project = make_project(tmp_path / "dep", DEPLOYING)
    state = project / ".gitlab-ci-local" / "ci-gen-state"
    proc = ci_gen_run(project, "--manual")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary(proc.stdout) == {"deploy": "passed", "use": "passed", "stop-review": "passed"}
    assert re.search(r"^use +> process 0$", proc.stdout, re.M)  # local-run deploy defaults reach jobs
    assert (state / "stopped").read_text() == "process 0\n" and not (state / "running").exists()

    kept = ci_gen_run(project, "--manual", "--keep-deployed", "--variable", "CI_GEN_DEPLOY_PORT=8600")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert (state / "running").read_text() == "process 8600\n"
    assert f"stop it with: ci-gen run {project} --job stop-review" in kept.stdout
    assert summary(kept.stdout)["stop-review"] == "manual"


MR_CI = """\
stages: [train]
train:
  stage: train
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
      changes: [src/**/*, params.yaml]
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
  script:
    - echo "mr=$CI_MERGE_REQUEST_IID target=$CI_MERGE_REQUEST_TARGET_BRANCH_NAME branch=${CI_COMMIT_BRANCH-unset}"
    - git rev-parse origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME > target.txt
  artifacts:
    paths: [target.txt]
"""


@pytest.mark.slow
def test_merge_request_pipeline_and_rules_changes(tmp_path):
    gitlab_ci_local()
    project = make_project(tmp_path / "mr", MR_CI, {"src/model.py": "x = 1\n", "README.md": "hi\n"})
    main_sha = git(project, "rev-parse", "HEAD")
    on_main = ci_gen_run(project, "--mr")
    assert on_main.returncode == 1 and "check out a feature branch" in on_main.stderr

    git(project, "switch", "-q", "-c", "docs-only")
    (project / "README.md").write_text("more docs\n")
    git(project, "commit", "-qam", "docs")
    docs = ci_gen_run(project, "--mr")
    assert docs.returncode == 0, docs.stdout + docs.stderr
    assert "nothing to run" in docs.stdout
    assert git(project, "rev-parse", "refs/remotes/origin/main") == main_sha

    git(project, "switch", "-q", "-c", "model-change", "main")
    (project / "src/model.py").write_text("x = 2\n")
    git(project, "commit", "-qam", "model")
    mr = ci_gen_run(project, "--mr")
    assert mr.returncode == 0, mr.stdout + mr.stderr
    assert re.search(r"^train +> mr=1 target=main branch=unset$", mr.stdout, re.M)
    assert (project / ".gitlab-ci-local/artifacts/train/target.txt").read_text().strip() == main_sha


PUSHING = """\
stages: [upload]
commit-back:
  stage: upload
  script:
    - echo pointer > pointer.dvc
    - git add pointer.dvc
    - git commit -qm "pointers [skip ci]"
    - git push -q "$CI_GEN_PUSH_URL" "HEAD:refs/heads/$CI_COMMIT_BRANCH"
"""


@pytest.mark.slow
def test_commit_back_goes_to_the_local_origin(tmp_path):
    gitlab_ci_local()
    project = make_project(tmp_path / "push", PUSHING)
    head = git(project, "rev-parse", "HEAD")
    proc = ci_gen_run(project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bare = project / ".gitlab-ci-local" / "origin.git"
    pushed = git(bare, "rev-parse", "refs/heads/main")
    assert pushed != head and git(bare, "rev-parse", "refs/heads/main~1") == head
    assert git(bare, "log", "-1", "--format=%s", "main") == "pointers [skip ci]"
    assert "take it with: git -C" in proc.stdout and "pull --ff-only .gitlab-ci-local/origin.git main" in proc.stdout
    assert git(project, "rev-parse", "HEAD") == head  # the user's branch is not moved


QUIET_CI = """\
one:
  script: [echo one]
cell:
  image: registry.example.com/tools:1.0
  parallel:
    matrix:
      - RATE: ["0.001", "0.003"]
  rules:
    - changes: [params.yaml]
  script: [echo "$RATE"]
"""


@pytest.mark.slow
def test_run_says_only_what_concerns_its_pipeline_and_knows_each_cells_image(tmp_path):
    """No docker-build in the pipeline: no note about skipping it; the `rules: changes` note
    only while a job has such rules, once. A matrix cell has its job's image (gitlab-ci-local's
    --preview keeps the job once, under its base name)."""
    from ci_gen.local import gitlab_ci_local as gcl

    tool = gitlab_ci_local()
    project = make_project(tmp_path / "quiet", QUIET_CI)
    proc = ci_gen_run(project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "docker-build" not in proc.stdout
    assert proc.stdout.count("rules: changes not evaluated") == 1
    _, jobs = gcl.plan(tool, project, gcl.common_flags(False, []), dict(os.environ))
    cells = [j for name, j in jobs.items() if name.startswith("cell: [")]
    assert len(cells) == 2 and all(j.image == "registry.example.com/tools:1.0" and j.changes for j in cells)

    (project / ".gitlab-ci.yml").write_text("one:\n  script: [echo one]\n")
    git(project, "commit", "-qam", "one job")
    proc = ci_gen_run(project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "docker-build" not in proc.stdout and "rules: changes" not in proc.stdout, proc.stdout


PIP_CACHE_CI = """\
j:
  variables:
    PIP_CACHE_DIR: $CI_PROJECT_DIR/.cache/pip
  cache:
    - key: {prefix: pip, files: [requirements.txt]}
      paths: [.cache/pip]
  script: [echo "pip-cache=$PIP_CACHE_DIR"]
"""


@pytest.mark.slow
def test_jobs_download_into_the_machines_pip_cache(tmp_path):
    """Not the job's .cache/pip: gitlab-ci-local would copy it into each job, one at a time
    (a warm sweep's cells waited 20 s for it), and a new project would download all again."""
    gitlab_ci_local()
    project = make_project(tmp_path / "pip", PIP_CACHE_CI, {"requirements.txt": "numpy\n"})
    mine = tmp_path / "my-pip-cache"
    proc = ci_gen_run(project, env={"PIP_CACHE_DIR": str(mine)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"pip-cache={mine}" in proc.stdout
    again = ci_gen_run(project, "--variable", "PIP_CACHE_DIR=/elsewhere")  # --variable wins
    assert "pip-cache=/elsewhere" in again.stdout, again.stdout


def test_missing_gitlab_ci_local_is_one_clear_error(tmp_path):
    project = make_project(tmp_path / "demo", "job:\n  script: ['true']\n")
    proc = ci_gen_run(project, env={"CI_GEN_GITLAB_CI_LOCAL": str(tmp_path / "none")})
    assert proc.returncode == 1
    assert "CI_GEN_GITLAB_CI_LOCAL" in proc.stderr and "Traceback" not in proc.stderr


def test_schema_invalid_file_is_refused_with_lint_line_before_gitlab_ci_local(tmp_path):
    # Issue 22: gitlab-ci-local's own message was about a git ref and an empty script; the
    # file is checked against GitLab's schema first, and nothing runs (no gitlab-ci-local: the
    # stand-in path does not exist, so reaching it would be a different error).
    project = make_project(tmp_path / "demo", "job1:\n  script: 5\n")
    proc = ci_gen_run(project, env={"CI_GEN_GITLAB_CI_LOCAL": str(tmp_path / "none")})
    lint = cli("lint", str(project / ".gitlab-ci.yml"))
    first = lint.stdout.splitlines()[0]
    assert lint.returncode == 1 and ": error: $.job1.script" in first
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        first, f"ci-gen: error: {project}/.gitlab-ci.yml does not pass GitLab's schema (`ci-gen lint` "
        "says the same, above); nothing was run"]
    assert not (project / ".gitlab-ci-local").exists()


@pytest.mark.slow
def test_first_install_of_gitlab_ci_local_says_one_line(tmp_path, monkeypatch):
    """The real npm into an empty per-user cache (npm's own cache under the real HOME makes
    it quick): one line, not npm's hundreds of `npm http fetch` lines."""
    import io

    from ci_gen.local.tool import install_gitlab_ci_local

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = io.StringIO()
    tool = install_gitlab_ci_local(out)
    assert os.access(tool, os.X_OK) and tool.startswith(str(tmp_path / "cache"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ci-gen: installing gitlab-ci-local "), lines


def test_bad_variable_is_a_usage_error(tmp_path):
    proc = cli("run", str(tmp_path), "--variable", "s3cr3t-without-name")
    assert proc.returncode == 2
    assert "s3cr3t" not in proc.stderr and "no '='" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (("--tag", "1.2.0", "--mr"), "--schedule, --mr and --tag are different pipelines"),
    (("--tag", "v1..2"), "--tag 'v1..2' is not a tag name"),
    (("--tag=-rf",), "--tag '-rf' is not a tag name"),
    (("--tag", "old"), "--tag old: the tag names commit"),
])
def test_a_bad_tag_pipeline_is_refused_before_anything_runs(tmp_path, args, message):
    project = make_project(tmp_path / "p", "job:\n  script: ['true']\n")
    git(project, "tag", "old")
    (project / "x.txt").write_text("x\n")
    git(project, "add", "x.txt")
    git(project, "commit", "-qm", "after the tag")
    proc = cli("run", str(project), *args)
    assert proc.returncode in (1, 2) and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (project / ".gitlab-ci-local").exists()


def test_run_help_lists_the_options():
    proc = cli("run", "--help")
    assert proc.returncode == 0
    for opt in ("--job", "--mr", "--manual", "--no-manual", "--keep-deployed", "--variable", "--tag"):
        assert opt in proc.stdout
    assert json.dumps(__version__)  # the version the components resolve at is importable


# -- --job names, refusals before anything is written, the run's header ---------------------

PREFIXED = """\
stages: [train, evaluate]
mlops-train:
  stage: train
  script: [echo training]
mlops-eval-report:
  stage: evaluate
  needs: [mlops-train]
  script: [cat params.txt]
"""


@pytest.mark.slow
def test_job_by_component_name_and_dirty_work_tree_header(tmp_path):
    gitlab_ci_local()
    project = make_project(tmp_path / "p", PREFIXED, {"params.txt": "a: 1\n", "notes.txt": "x\n"})
    (project / "params.txt").write_text("a: 2\n")  # tracked, changed, not committed
    (project / "scratch.txt").write_text("untracked\n")
    proc = ci_gen_run(project, "--job", "eval-report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ci-gen: --job eval-report: mlops-eval-report" in proc.stdout
    assert summary(proc.stdout) == {"mlops-train": "passed", "mlops-eval-report": "passed"}
    assert re.search(r"^mlops-eval-report +> a: 2$", proc.stdout, re.M)  # the dirty file ran
    assert ("ci-gen: uncommitted changes are part of this run: params.txt (jobs get the work "
            "tree as it is, not commit ") in proc.stdout
    assert "scratch.txt" not in proc.stdout.split("ci-gen: running")[0]


@pytest.mark.parametrize("job, message", [
    ("nope", "no job 'nope' in the pipeline; jobs: a-train, b-train, b-eval"),
    ("train", "--job 'train' matches several jobs: a-train, b-train; name one of them"),
])
def test_unknown_or_ambiguous_job_is_refused_before_anything_is_written(tmp_path, job, message):
    ci = "a-train:\n  script: ['true']\nb-train:\n  script: ['true']\nb-eval:\n  script: ['true']\n"
    project = make_project(tmp_path / "p", ci)
    proc = ci_gen_run(project, "--job", job)
    assert proc.returncode == 1
    assert proc.stderr == f"ci-gen: error: {message}\n"
    assert not (project / ".gitlab-ci-local").exists()


def test_component_jobs_are_known_with_their_prefix_before_writing(tmp_path):
    from ci_gen.local.includes import match_job, resolve_includes
    from ci_gen.local.project import project_context

    ci = (f"include:\n  - component: gitlab.example.com/mlops/ci-gen/train@{__version__}\n"
          f"    inputs:\n      job-prefix: ml\n"
          f"  - component: gitlab.example.com/mlops/ci-gen/deploy@{__version__}\n"
          f"own:\n  script: ['true']\n.hidden:\n  script: ['true']\n")
    project = make_project(tmp_path / "p", ci)
    includes = resolve_includes(project_context(project), {}, write=False)
    assert includes.jobs == ["own", "ml-train", "mlops-deploy", "mlops-rollback", "mlops-stop"]
    assert not (project / ".gitlab-ci-local").exists()
    assert [match_job(n, includes.jobs) for n in ("train", "stop", "own")] == \
        ["ml-train", "mlops-stop", "own"]
    includes.write()
    assert (project / ".gitlab-ci-local/includes/gitlab.example.com/mlops/ci-gen"
            / __version__ / "templates/train.yml").is_file()


@pytest.mark.slow
def test_a_project_without_git_identity_commits_as_ci_gen(tmp_path):
    gitlab_ci_local()
    project = make_project(tmp_path / "push", PUSHING)
    no_identity = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
                   **{k: "" for k in IDENTITY}}
    env = {k: v for k, v in os.environ.items() if k not in IDENTITY}
    env.update(no_identity)
    for k in IDENTITY:
        env.pop(k)
    proc = subprocess.run([sys.executable, "-m", "ci_gen", "run", str(project), "--host-env"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fallback git user" not in proc.stdout + proc.stderr
    bare = project / ".gitlab-ci-local" / "origin.git"
    assert git(bare, "log", "-1", "--format=%an <%ae>|%cn", "main") == \
        "ci-gen local run <ci-gen@localhost>|ci-gen local run"


def test_progress_drops_cache_path_lines_and_fills_the_environment_url(tmp_path):
    import io

    from ci_gen.local.gitlab_ci_local import PlannedJob, Progress, environment_url

    job = PlannedJob("mlops-deploy", "deploy", "manual", False, None,
                     {"name": "production", "url": "$DEPLOY_URL"})
    dotenv = tmp_path / "artifacts/mlops-deploy/.gitlab-ci-reports/dotenv"
    dotenv.mkdir(parents=True)
    (dotenv / "deploy.env").write_text("DEPLOY_URL=http://127.0.0.1:9999\n")
    out = io.StringIO()
    progress = Progress(["mlops-deploy", "mlops-train"], out, False, [".cache/pip", ".dvc/cache/"],
                        lambda name: environment_url(job, tmp_path / "artifacts"))
    for line in ("\x1b[33mWARNING: .cache/pip: no matching files. Ensure that the artifact path is "
                 "relative to the working directory\x1b[39m",
                 ".dvc/cache: found 29 artifact files and directories",
                 "WARNING: model/: no matching files. Ensure that the artifact path is relative "
                 "to the working directory",  # an artifact path: signal, kept
                 "mlops-deploy environment: { name: production, url:  }"):
        progress.feed(line + "\n")
    assert out.getvalue() == (
        "WARNING: model/: no matching files. Ensure that the artifact path is relative to the "
        "working directory\n"
        "mlops-deploy environment: { name: production, url: http://127.0.0.1:9999 }\n")
    (dotenv / "deploy.env").unlink()  # no report: the empty url is left out, not shown empty
    assert environment_url(job, tmp_path / "artifacts") == ""


def test_a_job_without_needs_takes_the_earlier_stages_as_gitlab_ci_local_runs_it():
    """`--job mlops-sweep-collect` (no `needs:`, its cells through `dependencies:`) runs the
    earlier stages' jobs but manual ones, as gitlab-ci-local's `--needs` does: all in the plan."""
    from ci_gen.local.gitlab_ci_local import PlannedJob, needs_closure

    def job(name, stage, needs=None, when="on_success"):
        return PlannedJob(name=name, stage=stage, when=when, allow_failure=False, needs=needs)

    jobs = {j.name: j for j in (
        job("mlops-train", "train", needs=[]), job("mlops-sweep: [0.1]", "train", needs=[]),
        job("mlops-sweep: [0.3]", "train", needs=[]), job("by-hand", "train", when="manual"),
        job("mlops-sweep-collect", "evaluate"),
        job("mlops-eval-report", "evaluate", needs=[{"job": "mlops-train"}]))}
    stages = [".pre", "train", "evaluate", ".post"]
    assert sorted(needs_closure(jobs, "mlops-sweep-collect", stages)) == [
        "mlops-sweep-collect", "mlops-sweep: [0.1]", "mlops-sweep: [0.3]", "mlops-train"]
    assert needs_closure(jobs, "mlops-eval-report", stages) == ["mlops-eval-report", "mlops-train"]
