"""`ci-gen lint`: GitLab's schema and policy checks, offline, and the server-side lint.

Example files live in tests/data/lint/{positive,negative}/ (see its README): one
parametrised test each, in the style of check-jsonschema's own example files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ci_gen import __version__
from ci_gen import components as desc
from ci_gen.cli import main
from ci_gen.errors import CiGenError
from ci_gen.lint import lint_file, policy, schema, spec
from ci_gen.lint.yamlfile import read
from gitlab_fake import PROJECT_ID, PROJECT_PATH, clean_env, gitlab_fake  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = sorted((REPO / "templates").glob("*.yml"))
DATA = Path(__file__).resolve().parent / "data" / "lint"
POSITIVE = sorted((DATA / "positive").glob("*.yml"))
NEGATIVE = sorted((DATA / "negative").glob("*.yml"))


def _directives(path: Path, tag: str) -> list[str]:
    prefix = f"# {tag}: "
    return [ln[len(prefix):] for ln in path.read_text().splitlines() if ln.startswith(prefix)]


def _lint_output(path: Path) -> tuple[str, int, int]:
    """(printed lines, errors, warnings) of linting an example file the way the CLI does."""
    strict = "strict" in _directives(path, "lint")
    rel = path.relative_to(DATA)
    cwd = os.getcwd()
    os.chdir(DATA)  # findings name files as given, relative to the examples directory
    try:
        report = lint_file(rel, strict=strict, root=DATA)
    except CiGenError as exc:
        return f"ci-gen: error: {exc}", 1, 0
    finally:
        os.chdir(cwd)
    lines = [str(f) for f in report.findings] + [report.summary()]
    return "\n".join(lines), report.errors, report.warnings


# -- ci-gen's own templates ------------------------------------------------------------------

def test_all_components_are_in_templates():
    assert [p.stem for p in TEMPLATES] == sorted(desc.ORDER)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_validates_against_gitlab_schema(path):
    _text, docs = read(path)
    assert len(docs) == 2, "a component is a spec: header, ---, and the jobs"
    header, body = docs[0].data, docs[1].data
    assert schema.check_header(header) == []
    values, problems = spec.resolve(spec.declared(header), {})
    assert problems == []
    interpolated = spec.interpolate(body, values)
    assert spec.used(interpolated) == set()
    assert schema.check_config(interpolated) == []


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_passes_lint_with_strict_policy(path):
    report = lint_file(path, strict=True)
    assert [str(f) for f in report.findings] == []
    assert report.jobs >= 1 and report.documents == 2
    assert report.summary().startswith(f"ok: {path} (")


def test_strict_policy_is_always_on_for_our_templates(tmp_path):
    # The same train component without `interruptible`: a plain file passes the default
    # policy, but as templates/train.yml the strict policy applies without the flag.
    text = (REPO / "templates" / "train.yml").read_text()
    assert "  interruptible: true\n" in text
    text = text.replace("  interruptible: true\n", "")
    plain = tmp_path / "train-copy.yml"
    plain.write_text(text)
    assert lint_file(plain).errors == 0
    ours = tmp_path / "templates" / "train.yml"
    ours.parent.mkdir()
    ours.write_text(text)
    messages = [f.message for f in lint_file(ours).findings]
    assert messages == ["job 'mlops-train': train/eval jobs must be `interruptible: true`, "
                        "so a newer pipeline cancels a stale run"]


def test_repo_pipeline_shape_lints_with_its_own_templates(tmp_path):
    # The repo tests its components at `$CI_PROJECT_PATH/<name>@$CI_COMMIT_SHA`: lint takes
    # them from templates/ of the work tree, as GitLab takes them from that commit.
    include = "\n".join(f"  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/{n}@$CI_COMMIT_SHA"
                        for n in desc.ORDER)
    f = tmp_path / ".gitlab-ci.yml"
    f.write_text(f"stages: {json.dumps(desc.default_stages())}\ninclude:\n{include}\n")
    report = lint_file(f, strict=True, root=REPO)
    assert [str(x) for x in report.findings] == []
    # One job a component, plus deploy's stop and rollback jobs, edge-convert's gate job and
    # the sweep's collect and apply jobs.
    assert report.jobs == len(desc.ORDER) + 5
    f.write_text(f"stages: {json.dumps(desc.default_stages()[:-1])}\ninclude:\n{include}\n")
    found = [str(x) for x in lint_file(f, root=REPO).findings]
    last = desc.ORDER[-1]  # the one whose stage was left out
    lines = (REPO / "templates" / f"{last}.yml").read_text().splitlines()
    line = lines.index("  stage: $[[ inputs.stage ]]") + 1
    assert found == [f"templates/{last}.yml:{line}:3: error: job 'mlops-{last}': stage '{last}' "
                     f"is not declared; declare it in `stages:` (via {f} include[{len(desc.ORDER) - 1}])"]


def test_check_jsonschema_cli_agrees(tmp_path):
    """The real check-jsonschema CLI, on what lint validates through its API, says the same."""
    files = []
    for path in TEMPLATES:
        _text, docs = read(path)
        values, _ = spec.resolve(spec.declared(docs[0].data), {})
        out = tmp_path / path.name
        out.write_text(yaml.safe_dump(spec.interpolate(docs[1].data, values)))
        files.append(str(out))
    cli = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.gitlab-ci"]
    ok = subprocess.run(cli + files, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(cli + [str(DATA / "negative" / "script-not-string.yml")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "$.bad.script: 5 is not of type 'string'" in bad.stdout


def test_schema_validator_is_built_once():
    assert schema.validator() is schema.validator()


# -- example files ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.name)
def test_positive_example(path):
    output, errors, warnings = _lint_output(path)
    assert errors == 0, output
    expected = _directives(path, "expect-warning")
    assert warnings == len(expected), output
    for text in expected:
        assert text in output


@pytest.mark.parametrize("path", NEGATIVE, ids=lambda p: p.name)
def test_negative_example(path):
    output, errors, _warnings = _lint_output(path)
    expected = _directives(path, "expect")
    assert expected, f"{path.name} names no `# expect:` text"
    assert errors > 0, output
    for text in expected:
        assert text in output


# -- the command line ------------------------------------------------------------------------

def test_cli_finding_lines_and_summary(tmp_path, capsys):
    f = tmp_path / "x.yml"
    f.write_text("stages: [build]\nbad:\n  stage: build\n  image: python:3.11.11\n  script: 5\n")
    assert main(["lint", str(f)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{f}:5:3: error: $.bad.script: 5 is not of type 'string'",
                   f"{f}: 1 error(s), 0 warning(s)"]


def test_cli_ok_summary_for_several_files(capsys):
    names = [str(p.relative_to(REPO)) for p in TEMPLATES]
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        assert main(["lint", *names]) == 0
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ok: templates/deploy.yml (3 jobs, 2 documents)"
    assert out[-1] == "ok: templates/train.yml (1 job, 2 documents)"
    assert len(out) == len(names)


def test_cli_default_file_is_gitlab_ci_yml(tmp_path, monkeypatch, capsys):
    shutil.copy(DATA / "positive" / "project-six-components.yml", tmp_path / ".gitlab-ci.yml")
    monkeypatch.chdir(tmp_path)
    assert main(["lint", "--policy-strict"]) == 0
    assert capsys.readouterr().out == "ok: .gitlab-ci.yml (8 jobs, 1 document)\n"


def test_cli_warning_alone_exits_zero(tmp_path, capsys):
    f = tmp_path / ".gitlab-ci.yml"
    f.write_text("stages: [train]\ninclude:\n  - component: gitlab.example.com/mlops/ci-gen/train@0.0.9\n")
    assert main(["lint", str(f)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"{f}:3:5: warning: include[0]: train@0.0.9: lint used the installed ci-gen "
                      f"{__version__}; the pipeline will use 0.0.9 (install ci-gen 0.0.9 to check that version)")
    assert out[1] == f"ok: {f} (1 job, 1 document), 1 warning(s)"


def test_cli_malformed_yaml_is_one_line(tmp_path, capsys):
    f = tmp_path / "bad.yml"
    f.write_text("build:\n  script: [make\n  stage: build\n")
    assert main(["lint", str(f)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"ci-gen: error: {f}:3:8: invalid YAML: expected ',' or ']', but got ':'\n"


def test_cli_missing_file_is_one_line_and_others_still_checked(tmp_path, capsys):
    missing = tmp_path / "nope.yml"
    assert main(["lint", str(missing), str(TEMPLATES[0])]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"ci-gen: error: {missing}: no such file\n"
    assert captured.out.startswith(f"ok: {TEMPLATES[0]} (")


def test_cli_gitlab_url_needs_project(capsys):
    assert main(["lint", "--gitlab-url", "http://127.0.0.1:9", str(TEMPLATES[0])]) == 2
    assert "--gitlab-url needs --project" in capsys.readouterr().err


def test_cli_in_a_real_process():
    proc = subprocess.run([sys.executable, "-m", "ci_gen", "lint", *map(str, TEMPLATES),
                           str(DATA / "negative" / "image-latest.yml")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "error: `default:`: image 'python:latest' is not pinned" in proc.stdout
    assert proc.stdout.count("\nok: ") + proc.stdout.startswith("ok: ") == len(TEMPLATES)


# -- checks on their own ---------------------------------------------------------------------

@pytest.mark.parametrize("ref,severity", [
    ("python:3.11.11-slim-bookworm", None),
    ("quay.io/buildah/stable:v1.37.3", None),
    ("registry.example.com:5000/a/b:1.0", None),
    ("alpine@sha256:" + "a" * 64, None),
    ("python", "error"),
    ("python:latest", "error"),
    ("quay.io/buildah/stable:stable", "error"),
    ("registry.example.com:5000/a/b", "error"),
    ("alpine@sha256:abc", "error"),
    ("$IMAGE", "warning"),
    ("${CI_REGISTRY_IMAGE}:$CI_COMMIT_SHA", "warning"),
])
def test_image_pinning(ref, severity):
    problem = policy.image_problem(ref)
    assert (problem[0] if problem else None) == severity


@pytest.mark.parametrize("regex,ok", [
    (r"^[a-z]+$", True),
    (r"^(a|b)$", True),
    (r"^[|]$", True),
    (r"^a|b$", False),
    (r"[a-z]+", False),
    (r"^[a-z]+", False),
    (r"^a\$", False),
])
def test_regex_anchoring(regex, ok):
    assert policy._anchored(regex) is ok


def test_every_descriptor_regex_is_anchored():
    for component in desc.COMPONENTS.values():
        for inp in component.inputs:
            if inp.regex is not None:
                assert policy._anchored(inp.regex), (component.name, inp.name)


# -- server-side lint (tests/gitlab_fake.py: GitLab's REST API on loopback) ------------------

@pytest.fixture
def api(clean_env, gitlab_fake):
    pytest.importorskip("ci_gen.gitlab.ci_lint", reason="ci_gen/gitlab/ci_lint.py (server_lint) not in this tree")
    clean_env.setenv("GITLAB_API_TOKEN", gitlab_fake.token)
    return gitlab_fake


def _lint_posts(fake):
    return fake.requests_to("POST", r".*/ci/lint")


def test_server_lint_valid_prints_warnings(api, tmp_path, capsys):
    f = tmp_path / ".gitlab-ci.yml"
    f.write_text("build:\n  image: python:3.11.11-slim-bookworm\n  script: [make]\n"
                 "  rules:\n    - changes: [src/**/*]\n      when: manual\n")
    assert main(["lint", str(f), "--gitlab-url", api.url, "--project", PROJECT_PATH]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{f}: warning: GitLab: jobs:build may allow multiple pipelines to run for a single action "
        "due to `rules:when` clause with no `workflow:rules` - read more: "
        "https://docs.gitlab.com/ee/ci/troubleshooting.html#pipeline-warnings",
        f"ok: {f} (1 job, 1 document), 1 warning(s)"]
    assert len(_lint_posts(api)) == 1
    assert api.token not in "".join(out)


def test_server_lint_invalid_exits_non_zero(api, capsys):
    # Offline, the includes resolve to eight jobs from the installed ci-gen; this server does not
    # publish the components and answers as GitLab does for each include: verbatim, exit 1.
    path = DATA / "positive" / "project-six-components.yml"
    assert main(["lint", str(path), "--gitlab-url", api.url, "--project", str(PROJECT_ID)]) == 1
    out = capsys.readouterr().out.splitlines()
    names = ("train", "eval-report", "docker-build", "dvc-upload", "deploy", "inference")
    assert out[:6] == [f"{path}: error: GitLab: Component '$CI_SERVER_FQDN/mlops/ci-gen/{n}@{__version__}' - content not found"
                       for n in names]
    assert out[-1] == f"{path}: {len(out) - 1} error(s), 0 warning(s)"


def test_server_lint_skipped_when_offline_checks_fail(api, capsys):
    path = DATA / "negative" / "script-not-string.yml"
    assert main(["lint", str(path), "--gitlab-url", api.url, "--project", str(PROJECT_ID)]) == 1
    assert _lint_posts(api) == []
    assert "$.bad.script: 5 is not of type 'string'" in capsys.readouterr().out


# -- one root cause, one error ---------------------------------------------------------------

def test_failed_include_is_one_error_not_a_cascade(tmp_path):
    # train's unknown input fails its include; eval-report and docker-build need mlops-train
    # and a job of ours extends a job the missing local file would define. Only the two
    # include errors are reported, not the dangling references they cause.
    f = tmp_path / ".gitlab-ci.yml"
    f.write_text(
        "stages: [train, evaluate, build]\n"
        "include:\n"
        f"  - component: $CI_SERVER_FQDN/mlops/ci-gen/train@{__version__}\n"
        "    inputs:\n"
        "      epochs: 3\n"
        f"  - component: $CI_SERVER_FQDN/mlops/ci-gen/eval-report@{__version__}\n"
        "  - local: ci/base.yml\n"
        "smoke:\n"
        "  stage: build\n"
        "  extends: .base\n"
        "  needs: [mlops-eval-report]\n"
        "  script: [echo ok]\n")
    report = lint_file(f, root=tmp_path)
    assert [(x.location, x.severity, x.message) for x in report.findings] == [
        ("3:5", "error", f"include[0] train@{__version__}: unknown input 'epochs'; train takes: "
                         + ", ".join(i.name for i in desc.get("train").inputs)),
        ("7:5", "error", f"include[2]: local file 'ci/base.yml' does not exist (looked in {tmp_path})"),
    ]


def test_dangling_needs_still_reported_when_every_include_resolves(tmp_path):
    f = tmp_path / ".gitlab-ci.yml"
    f.write_text(
        "stages: [evaluate]\n"
        "include:\n"
        f"  - component: $CI_SERVER_FQDN/mlops/ci-gen/eval-report@{__version__}\n")
    messages = [x.message for x in lint_file(f, root=tmp_path).findings if x.severity == "error"]
    assert messages == ["job 'mlops-eval-report': needs 'mlops-train', not a job of this pipeline "
                        f"(add `optional: true` if rules may leave it out) (in include[0] "
                        f"eval-report@{__version__})"]


def test_gitlab_refusals_give_one_error_per_input():
    """A regex RE2 refuses is one error (not also "default does not match"); so is an empty
    default; both name the input and point at the header line GitLab objects to."""
    output, errors, warnings = _lint_output(DATA / "negative" / "component-refused-by-gitlab.yml")
    lines = output.splitlines()[:-1]
    assert (errors, warnings) == (2, 0), output
    assert [line.split(": error: ")[1].split(":")[0] for line in lines] == ["input 'pairs'", "input 'metric'"]
    assert lines[0].startswith("negative/component-refused-by-gitlab.yml:9:7:")  # the regex line
    assert lines[1].startswith("negative/component-refused-by-gitlab.yml:12:7:")  # the default line
