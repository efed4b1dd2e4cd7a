"""Rendering: component headers come from the descriptor, inline mode interpolates like GitLab."""

from __future__ import annotations

import re

import pytest
import yaml

from ci_gen import __version__
from ci_gen import components as desc
from ci_gen.errors import InputError
from ci_gen.render import interpolate, render

PLACEHOLDER = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")


def split(text: str) -> tuple[dict, dict]:
    header, body = list(yaml.safe_load_all(text))
    return header, body


@pytest.mark.parametrize("name", desc.ORDER)
def test_header_matches_descriptor(name):
    header, body = split(render(name))
    spec = header["spec"]["inputs"]
    component = desc.COMPONENTS[name]
    assert list(spec) == component.input_names
    for inp in component.inputs:
        assert spec[inp.name]["description"] == inp.description
        assert ("default" in spec[inp.name]) == (not inp.required)


@pytest.mark.parametrize("name", desc.ORDER)
def test_every_placeholder_names_a_declared_input(name):
    text = render(name)
    used = set(PLACEHOLDER.findall(text.split("---\n", 1)[1]))
    assert used, "a component without inputs in its body"
    assert used <= set(desc.COMPONENTS[name].input_names)


@pytest.mark.parametrize("name", desc.ORDER)
def test_every_input_is_used(name):
    body = render(name).split("---\n", 1)[1]
    used = set(PLACEHOLDER.findall(body))
    assert set(desc.COMPONENTS[name].input_names) - {"image"} <= used | {"image"}


@pytest.mark.parametrize("name", desc.ORDER)
def test_inline_has_no_placeholders_and_typed_values(name):
    text = render(name, {"tags": '["gpu", "linux"]', "job-prefix": "ml"}, mode="inline")
    assert "$[[" not in text
    jobs = yaml.safe_load(text)
    visible = {k: v for k, v in jobs.items() if not k.startswith(".")}
    assert all(job_name.startswith("ml-") for job_name in visible)
    for job in visible.values():
        assert job["tags"] == ["gpu", "linux"]


@pytest.mark.parametrize("name", desc.ORDER)
def test_pinned_version_of_ci_gen_in_jobs(name):
    text = render(name)
    if "ci-gen job" in text or "ci-gen report" in text:
        assert f'"ci-gen[dvc]=={__version__}"' in text


def test_interpolate_whole_and_partial_strings():
    values = {"n": 3, "flag": False, "names": ["a", "b"], "s": "x"}
    data = {"$[[ inputs.s ]]-job": {"a": "$[[ inputs.n ]]", "b": "v=$[[ inputs.n ]]",
                                     "c": "$[[ inputs.flag ]]", "d": "$[[inputs.names]]",
                                     "e": "echo $[[ inputs.names ]] $[[ inputs.flag ]]"}}
    assert interpolate(data, values) == {"x-job": {"a": 3, "b": "v=3", "c": False, "d": ["a", "b"],
                                                   "e": 'echo ["a", "b"] false'}}


def test_component_mode_given_inputs_become_defaults():
    header, _ = split(render("deploy", {"environment": "staging", "port": "9000"}))
    assert header["spec"]["inputs"]["environment"]["default"] == "staging"
    assert header["spec"]["inputs"]["port"]["default"] == 9000


@pytest.mark.parametrize(
    "name, given, message",
    [
        ("train", {"nope": "x"}, "unknown input 'nope'"),
        ("train", {"job-prefix": "a;rm -rf /"}, "does not match"),
        ("train", {"job-prefix": "ok\nnext"}, "does not match"),
        ("train", {"image": "python:latest"}, "does not match"),
        ("train", {"image": "python"}, "does not match"),
        ("train", {"tags": "gpu"}, "must be an array"),
        ("train", {"push-run-cache": "yes"}, "must be true or false"),
        ("deploy", {"engine": "kubectl"}, "must be one of docker, podman, process"),
        ("deploy", {"port": "80; id"}, "must be a number"),
        ("eval-report", {"reporter": "slack"}, "must be one of"),
        ("inference", {"client": "python x.py; curl evil"}, "does not match"),
        ("docker-build", {"build-args": "A=$(id)"}, "does not match"),
    ],
)
def test_bad_inputs_are_refused(name, given, message):
    with pytest.raises(InputError, match=re.escape(message)):
        render(name, given)


def test_unknown_component():
    with pytest.raises(InputError, match="unknown component 'trian'; known: train, eval-report"):
        render("trian")
