"""Inputs checked the way GitLab checks them: RE2, the default, the empty string, numbers.

GitLab's rules (lib/gitlab/untrusted_regexp.rb, lib/gitlab/ci/config/interpolation/inputs/
string_input.rb and base_input.rb): every `regex` is compiled with RE2, the default of every
optional input is checked, and an empty string never matches. gitlab-ci-local uses
JavaScript's engine and none of these rules, so only these tests catch a component GitLab
would refuse to include.
"""

from __future__ import annotations

import pytest
import yaml

from ci_gen import cli
from ci_gen import components as desc
from ci_gen.commands import build
from ci_gen.errors import InputError, UsageError
from ci_gen.inputs import parse_number, regex_problem, resolve, ruby_number
from ci_gen.lint import lint_file
from ci_gen.render import render
from support.cli import REPO

# (regex, value, is it the default, expected problem text or None)
RULES = [
    # RE2 refuses repetition counts above 1000, also as nested products.
    (r"^(x{0,200}){0,31}$", "x", True, "is refused by RE2, GitLab's regex engine (invalid repetition size"),
    (r"^x{0,1001}$", "x", False, "is refused by RE2"),
    (r"^(?=a)a$", "a", True, "is refused by RE2"),  # look-ahead: Python has it, RE2 does not
    (r"^a(b)\1$", "abb", True, "is refused by RE2"),  # back-reference
    # An empty default or value never matches, even where the regex would accept "".
    (r"^(a)?$", "", True, "empty default: GitLab never matches an empty string"),
    (r"^(a)?$", "", False, "empty value: GitLab never matches an empty string"),
    (r"^.*$", "", False, "empty value"),
    # Plain mismatches name which of the two failed.
    (r"^[a-z]+$", "Prod", True, "default 'Prod' does not match ^[a-z]+$"),
    (r"^[a-z]+$", "a b", False, "value 'a b' does not match ^[a-z]+$"),
    # Good cases.
    (r"^[a-z]+$", "prod", True, None),
    (r"^(x{0,200}){0,5}$", "xx", False, None),  # 1000 exactly is allowed
    (desc.RE_KV_LIST, "A=1,B=2", False, None),
    (desc.RE_KV_LIST, "none", True, None),
    (desc.RE_HEALTH_PATH, "auto", True, None),
    (desc.RE_IMAGE, "$CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX/python:3.11.11-slim-bookworm", False, None),
    (desc.RE_IMAGE, "${CI_DEPENDENCY_PROXY_DIRECT_GROUP_IMAGE_PREFIX}/python:3.11.11-slim-bookworm", False, None),
    (desc.RE_IMAGE, "registry.example.com:5000/group/img:v1.2@sha256:" + "a" * 64, False, None),
    (desc.RE_IMAGE, "$CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX/python:latest", False, "does not match"),
    (desc.RE_IMAGE, "$CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX/python", False, "does not match"),
    (desc.RE_IMAGE, "python", False, "does not match"),
    (desc.RE_IMAGE, "$(id)/python:3.11", False, "does not match"),
    (desc.RE_IMAGE, "python:3.11;id", False, "does not match"),
    (desc.RE_IMAGE, "${A:-x}/python:3.11", False, "does not match"),
    (desc.RE_IMAGE, "python:3.11/$HOME", False, "does not match"),
]


@pytest.mark.parametrize("regex, value, default, expected", RULES)
def test_gitlab_regex_rules(regex, value, default, expected):
    problem = regex_problem("x", regex, value, default=default)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem and problem.startswith("input 'x': ")
        assert "\n" not in problem


def _all_inputs():
    return [(c, i) for c in desc.COMPONENTS.values() for i in c.inputs]


@pytest.mark.parametrize("component, inp", _all_inputs(),
                         ids=lambda v: v.name if hasattr(v, "name") else str(v))
def test_every_descriptor_input_passes_gitlabs_check(component, inp):
    """What would have caught deploy/docker-build (RE2) and the empty defaults: each regex
    compiles in RE2 and each default passes it as GitLab checks it."""
    if inp.regex is not None:
        assert regex_problem(inp.name, inp.regex, inp.default, default=True) is None
        assert inp.type == "string"
    if inp.type == "string" and not inp.required:
        assert inp.default != ""  # an optional string input says "not set" with a word
        if inp.options is not None:
            assert inp.default in inp.options


def test_every_template_header_passes_gitlabs_check():
    assert build.refused_by_gitlab(build.expected()) == []
    for name in desc.ORDER:
        report = lint_file(build.__file__.replace("ci_gen/commands/build.py", f"templates/{name}.yml"),
                           strict=True)
        assert [str(f) for f in report.findings] == []


def test_the_unset_words_are_accepted_by_their_inputs():
    unset = {(c.name, i.name): i.default for c, i in _all_inputs() if i.default in desc.UNSET}
    assert unset == {("eval-report", "gate-metric"): "none", ("docker-build", "build-args"): "none",
                     ("dvc-upload", "remote"): "default", ("deploy", "health-path"): "auto",
                     ("deploy", "env"): "none", ("deploy", "host"): "auto", ("monitor", "prometheus-url"): "none",
                     ("monitor", "metrics-url"): "auto", ("monitor", "signal-thresholds"): "none",
                     ("deploy", "model-version"): "none",
                     # remote-auth: oidc's role, from the CI_GEN_REMOTE_ROLE variable when `none`
                     **{(c, "remote-role"): "none" for c in ("train", "sweep", "edge-convert", "eval-report",
                                                              "dvc-upload", "inference", "monitor")}}
    for comp, inp in (("eval-report", "confusion-matrix"), ("inference", "data")):
        resolve(desc.get(comp), {inp: "none"})


@pytest.mark.parametrize("component, name", [
    ("eval-report", "gate-metric"), ("eval-report", "confusion-matrix"), ("dvc-upload", "remote"),
    ("deploy", "health-path"), ("deploy", "env"), ("docker-build", "build-args"), ("inference", "data"),
    ("monitor", "prometheus-url"), ("monitor", "signal-thresholds"), ("deploy", "model-version"),
])
def test_an_empty_value_is_refused_naming_the_input(component, name):
    with pytest.raises(InputError) as info:
        resolve(desc.get(component), {name: ""})
    assert f"input '{name}': empty value: GitLab never matches an empty string" in str(info.value)


def test_kv_pairs_are_counted_in_code():
    comp = desc.get("deploy")
    resolve(comp, {"env": ",".join(f"K{i}=v" for i in range(desc.KV_MAX_ITEMS))})
    with pytest.raises(InputError, match=f"more than {desc.KV_MAX_ITEMS} KEY=VALUE pairs"):
        resolve(comp, {"env": ",".join(f"K{i}=v" for i in range(desc.KV_MAX_ITEMS + 1))})


def test_kaniko_is_refused_naming_its_replacement():
    with pytest.raises(InputError) as info:
        resolve(desc.get("docker-build"), {"builder": "kaniko"})
    assert "'kaniko' is no longer offered: Kaniko is archived upstream; use `buildkit`" in str(info.value)


# -- numbers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, text", [
    (1e-05, "1.0e-05"), (0.5, "0.5"), (8501, "8501"), (0.0001, "0.0001"), (1e16, "1.0e+16"),
    (-2e-05, "-2.0e-05"), (120, "120"), (0.01, "0.01"), (1.5e-07, "1.5e-07"),
])
def test_numbers_print_as_ruby_prints_them(value, text):
    assert ruby_number(value) == text
    assert parse_number(text, "x") == value


@pytest.mark.parametrize("text", ["", "abc", "1e", "0x10", "1e999", "1,5", "nan", "inf", " 1 2"])
def test_bad_numbers_are_one_line(text):
    with pytest.raises(UsageError) as info:
        parse_number(text, "--max-drop")
    assert str(info.value).startswith("--max-drop must be a") and "\n" not in str(info.value)


def test_inline_render_writes_decimals_as_given_and_numbers_as_gitlab_does():
    # The thresholds are decimal strings (the CI/CD Catalog refuses a decimal default): they reach
    # the shell exactly as written; number inputs as Ruby prints them.
    text = render("eval-report", {"max-drop": "0.00001", "gate-metric": "accuracy"}, mode="inline")
    job = yaml.safe_load(text)["mlops-eval-report"]
    gate = next(line for line in job["script"] if "ci-gen job gate" in line)
    assert '--max-drop "0.00001"' in gate and '--metric "accuracy"' in gate
    text = render("inference", {"min-accuracy": "0.75", "samples": 3}, mode="inline")
    client = yaml.safe_load(text)["mlops-inference"]["script"][-1]
    assert '--samples "3" --min-accuracy "0.75"' in client
    with pytest.raises(InputError, match=r"input 'min-accuracy' is a string input and GitLab refuses a number"):
        render("inference", {"min-accuracy": 1e-05}, mode="inline")
    with pytest.raises(InputError, match=r"input 'min-accuracy': value '1.5' does not match"):
        render("inference", {"min-accuracy": "1.5"}, mode="inline")


def test_cli_input_takes_ruby_float_form(capsys):
    assert cli.main(["render", "deploy", "--mode", "inline", "--input", "health-timeout=1.0e+02"]) == 0
    assert '--health-timeout "100.0"' in capsys.readouterr().out


# -- the `ci-gen job` commands take what the components pass them ----------------------------

def test_deploy_flags_take_the_unset_words_and_ruby_numbers():
    from ci_gen.deploy.spec import make_spec

    spec = make_spec("production", "process", port="8501", health_timeout="1.2e+02",
                        health_path="auto", env="none", model_name="fm", environ={})
    assert (spec.port, spec.health_timeout, spec.health, spec.env) == (8501, 120.0, "/v1/models/fm", {})
    old = make_spec("production", "process", health_path="", env="", environ={})  # older pipelines
    assert (old.health_path, old.env) == ("", {})
    assert make_spec("p", "process", port="8.501e+03", environ={}).port == 8501
    for bad in ("8501.5", "1e9", "80; id"):
        with pytest.raises(UsageError):
            make_spec("p", "process", port=bad, environ={})


def test_eval_report_and_dvc_upload_default_to_an_image_with_git():
    """eval-report reads the target branch's metrics with git, dvc-upload commits with it: the
    runtime image has git (runtime/install.sh), and a missing tool must fail, never look like
    "no baseline"."""
    assert "git" in (REPO / "runtime" / "install.sh").read_text()
    for name in ("eval-report", "dvc-upload"):
        assert desc.get(name).input("image").default == desc.RUNTIME_IMAGE
        job = yaml.safe_load(render(name, {}, mode="inline"))[f"mlops-{name}"]
        assert job["image"] == desc.RUNTIME_IMAGE


def test_dvc_upload_checks_the_push_before_dvc_push():
    script = yaml.safe_load(render("dvc-upload", {}, mode="inline"))["mlops-dvc-upload"]["script"]
    check = next(i for i, line in enumerate(script) if "commit-pointers --check" in line)
    push = next(i for i, line in enumerate(script) if "dvc push" in line)
    assert check < push
    assert 'if [ "default" = "default" ]; then dvc push dvc.yaml;' in script[push]
    desc_text = desc.get("dvc-upload").input("commit-back").description
    assert "write_repository" in desc_text and "job token cannot push" in desc_text


def test_text_that_is_not_utf8_is_one_line_not_a_traceback():
    """Found by the injection fuzzer: RE2 takes UTF-8, and a lone surrogate cannot be encoded."""
    assert "is not valid UTF-8 text" in regex_problem("x", "^a$", "\ud800", default=False)
    assert "refused by RE2" in regex_problem("x", "^\ud800$", "a", default=False)
    with pytest.raises(InputError, match="input 'job-prefix': value '\\\\ud800' is not valid UTF-8"):
        resolve(desc.get("train"), {"job-prefix": "\ud800"})


def test_build_check_and_build_refuse_what_gitlab_refuses(monkeypatch, tmp_path, capsys):
    """The old deploy `env` regex (RE2: invalid repetition size) and an empty default, put back
    into the descriptor: `build --check` names both inputs, and `build` writes nothing."""
    import dataclasses

    old_kv = r"^([A-Z]=[a-z]{0,200}(,[A-Z]=[a-z]{0,200}){0,31})?$"
    deploy = desc.COMPONENTS["deploy"]
    broken = tuple(dataclasses.replace(i, regex=old_kv, default="A=b") if i.name == "env" else
                   dataclasses.replace(i, default="") if i.name == "health-path" else i
                   for i in deploy.inputs)
    monkeypatch.setitem(desc.COMPONENTS, "deploy", dataclasses.replace(deploy, inputs=broken))
    # build imports the renderer when it renders (start-up stays light): patch it at its home.
    monkeypatch.setattr("ci_gen.render.render", lambda name: render(name, {}) if name != "deploy" else
                        _header_only(desc.COMPONENTS["deploy"]))
    problems = build.refused_by_gitlab(build.expected())
    assert len(problems) == 2, problems
    assert problems[0].startswith("deploy.yml would be refused by GitLab: input 'health-path': empty default")
    assert "input 'env': regex" in problems[1] and "invalid repetition size" in problems[1]
    assert cli.main(["build", "--check", "--dir", str(tmp_path / "t"), "--readme", str(tmp_path / "none.md"),
                     "--examples", str(tmp_path)]) == 1
    assert "deploy.yml would be refused by GitLab: input 'env'" in capsys.readouterr().out
    assert cli.main(["build", "--dir", str(tmp_path / "t"), "--readme", str(tmp_path / "none.md"),
                     "--examples", str(tmp_path)]) == 1
    assert not (tmp_path / "t").exists()


def _header_only(component: desc.Component) -> str:
    from ci_gen.render import header

    return header(component) + "---\n{}\n"
