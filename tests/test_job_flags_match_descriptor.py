"""Each `ci-gen job` flag a component passes one of its inputs accepts what the descriptor lets
GitLab pass, and refuses what it refuses: no value GitLab accepts may fail in the job, no
value the descriptor refuses may slip through when the job is run by hand.

Which flag gets which input is read from the components themselves (`ci-gen job NAME ...
--flag "$[[ inputs.x ]]"` in their scripts). The accepted values come from the argparse
parser (`choices`) and, wherever the job checks a value in its own code, from running the
CLI: a refused value is a usage error (exit 2), an accepted one gets past the checks (the
job then fails for want of its files, or does nothing).
"""

from __future__ import annotations

import argparse
import re
import subprocess

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ci_gen import cli
from ci_gen import components as desc
from ci_gen.errors import InputError
from ci_gen.inputs import check
from ci_gen.render import render

_PLACEHOLDER = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")
_MARK = "CIGENINPUT{}CIGENINPUT"
# Refused by every option list and every input regex: shell syntax, a line break (a trailing
# one passes Python's `$`, never RE2's), an option.
_BAD = ("bad;$(value)", "`id`", "line\nbreak", "model\n", "-rf", "it's", "a|b")
# Values just outside some input regexes (a slash, a space, a leading slash, too long...),
# tried wherever the descriptor refuses them.
_OUTSIDE = ("a/b", "A" * 65, "/abs/path", "with space", "UPPER", "a:b", "a=b", "a@b", "a..b/", "..", "a/../b",
            "./-rf")
# Values at the edges of the path, name and host regexes, tried wherever the descriptor
# accepts them.
_EDGES = (".", "..", "a/../b", "a/", "_", "0", "a.b-c", "A" * 64, "127.0.0.1", "/v1/models/m:predict")


def _script_lines(name: str) -> list[str]:
    body = yaml.safe_load(render(name).split("\n---\n", 1)[1])
    return [line for job in body.values() if isinstance(job, dict)
            for line in job.get("script", []) if "ci-gen job " in line]


def _argv(line: str) -> list[str]:
    """The job's argv as the runner's shell gives it, each input left as a marker."""
    marked = _PLACEHOLDER.sub(lambda m: _MARK.format(m.group(1).replace("-", "_")), line)
    # The command ends at `;` or, inside a command substitution (dvc-auth's), at its `)"`.
    command = marked[marked.index("ci-gen job "):].split(";")[0].split(')"')[0]
    out = subprocess.run(["bash", "-c", f'set -- {command}; printf "%s\\0" "$@"'],
                         capture_output=True, text=True, check=True,
                         env={"CI_COMMIT_SHA": "0123abcd", "PATH": "/usr/bin:/bin"}).stdout
    return out.split("\0")[:-1]


def _calls() -> list[tuple[str, str, list[str], str, str]]:
    """(component, input, argv, flag, job) for every job flag that receives an input."""
    found = []
    for name in desc.ORDER:
        for line in _script_lines(name):
            argv = _argv(line)
            for i, arg in enumerate(argv):
                m = re.fullmatch(_MARK.format("(.+)"), arg)
                if m:
                    found.append((name, m.group(1).replace("_", "-"), argv, argv[i - 1], argv[2]))
                else:
                    assert "CIGENINPUT" not in arg, f"{name}: an input inside a longer argument: {arg}"
    return found


def _distinct(calls: list[tuple]) -> list[tuple]:
    """One call per job line and input rule: components that share an input (remote-auth's,
    on seven components) and pass it on the same line would only repeat the same cases."""
    seen, out = set(), []
    for c in calls:
        inp = desc.COMPONENTS[c[0]].input(c[1])
        key = (c[4], c[3], tuple(c[2]), inp.type, inp.regex, inp.options, repr(inp.default))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


CALLS = _distinct(_calls())
CHECKED = [c for c in CALLS if desc.COMPONENTS[c[0]].input(c[1]).type == "string"]
SWITCHES = [c for c in CALLS if desc.COMPONENTS[c[0]].input(c[1]).type == "boolean"]
def _case(c: tuple, value: str):
    return pytest.param(*c, value, id=f"{c[4]}{c[3]}={value[:12]}")


def test_the_components_pass_inputs_to_job_flags():
    jobs = {c[4] for c in CALLS}
    assert {"deploy", "stop", "eval-report", "gate", "train"} <= jobs, jobs
    assert len(CHECKED) >= 10, CHECKED


@pytest.mark.parametrize("component, name, argv, flag, job", SWITCHES,
                         ids=[f"{c[4]}{c[3]}" for c in SWITCHES])
def test_boolean_inputs_reach_flags_that_take_true_or_false(component, name, argv, flag, job):
    assert tuple(_job_action(job, flag).choices) == ("true", "false")


def _job_action(job: str, flag: str) -> argparse.Action:
    def sub(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return action.choices[name]

    parser = sub(sub(cli.build_parser(), "job"), job)
    return next(a for a in parser._actions if flag in a.option_strings)


def _concrete(argv: list[str], component: str) -> list[str]:
    """argv with every input at its default (as GitLab writes it into the script)."""
    comp = desc.COMPONENTS[component]

    def value(arg: str) -> str:
        m = re.fullmatch(_MARK.format("(.+)"), arg)
        if not m:
            return arg
        default = comp.input(m.group(1).replace("_", "-")).default
        return str(default).lower() if isinstance(default, bool) else str(default)
    return [value(a) for a in argv]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A job run that stops right after its checks: no files, no engine binaries, own state."""
    (tmp_path / "bin").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("CI_GEN_STATE_DIR", str(tmp_path / "state"))
    for name in ("CI_GEN_DEPLOY_ENGINE", "CI_GEN_DEPLOY_PORT", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse refuses a choice by exiting 2
        code = exc.code
    return code, capsys.readouterr().err


def _with(argv: list[str], component: str, flag: str, value: str) -> list[str]:
    out = _concrete(argv, component)
    out[argv.index(flag) + 1] = value
    return out[1:]  # without `ci-gen`


@pytest.mark.parametrize("component, name, argv, flag, job", CHECKED,
                         ids=[f"{c[4]}{c[3]}" for c in CHECKED])
def test_flag_choices_are_the_input_options(component, name, argv, flag, job):
    inp = desc.COMPONENTS[component].input(name)
    choices = _job_action(job, flag).choices
    if inp.options is not None and choices is not None:
        assert tuple(choices) == tuple(inp.options)
    if inp.options is None:
        assert choices is None, f"{job} {flag} has choices; the input {name} has a regex"


def _accepts(inp: desc.Input, value: str, component: str) -> bool:
    try:
        check(inp, value, component)
    except InputError:
        return False
    return True


@pytest.mark.parametrize("component, name, argv, flag, job, bad",
                         [_case(c, bad) for c in CHECKED for bad in _BAD])
def test_flag_refuses_what_the_descriptor_refuses(component, name, argv, flag, job, bad, sandbox,
                                                   capsys):
    assert not _accepts(desc.COMPONENTS[component].input(name), bad, component)
    code, err = _run(_with(argv, component, flag, bad), capsys)
    assert code == 2 and flag.lstrip("-") in err, (code, err)


def _edge_cases() -> list:
    return [_case(c, value) for c in CHECKED for value in _EDGES
            if desc.COMPONENTS[c[0]].input(c[1]).regex is not None
            and _accepts(desc.COMPONENTS[c[0]].input(c[1]), value, c[0])]


@pytest.mark.parametrize("component, name, argv, flag, job, value", _edge_cases())
def test_flag_accepts_the_descriptors_edge_values(component, name, argv, flag, job, value, sandbox,
                                                  capsys):
    code, err = _run(_with(argv, component, flag, value), capsys)
    assert code != 2, (value, err)


def _accepted(component: str, name: str):
    inp = desc.COMPONENTS[component].input(name)
    if inp.options is not None:
        return st.sampled_from(inp.options)
    return st.one_of(st.just(inp.default), st.from_regex(inp.regex, fullmatch=True).filter(
        lambda value: _accepts(inp, value, component)))


@pytest.mark.parametrize("component, name, argv, flag, job", CHECKED,
                         ids=[f"{c[4]}{c[3]}" for c in CHECKED])
@settings(max_examples=30, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(data=st.data())
def test_flag_accepts_what_the_descriptor_accepts(component, name, argv, flag, job, sandbox,
                                                   capsys, data):
    value = data.draw(_accepted(component, name), label=name)
    code, err = _run(_with(argv, component, flag, value), capsys)
    assert code != 2, (value, err)


def _outside_cases() -> list:
    return [_case(c, value) for c in CHECKED for value in _OUTSIDE
            if not _accepts(desc.COMPONENTS[c[0]].input(c[1]), value, c[0])]


@pytest.mark.parametrize("component, name, argv, flag, job, value", _outside_cases())
def test_flag_refuses_values_just_outside_the_descriptor(component, name, argv, flag, job, value,
                                                         sandbox, capsys):
    code, err = _run(_with(argv, component, flag, value), capsys)
    assert code == 2 and flag.lstrip("-") in err, (value, code, err)
