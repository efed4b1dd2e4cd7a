"""The CLI's contract: fast start-up, one-line errors, exit codes, list and render output."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from ci_gen import __version__
from ci_gen import components as desc
from support.cli import cli

HEAVY = ("tensorflow", "gitlab", "dvc", "numpy", "requests", "jsonschema", "check_jsonschema", "boto3")


def test_start_up_imports_no_heavy_module():
    probe = ("import sys; from ci_gen.cli import build_parser; build_parser(); "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_help_lists_every_command():
    res = cli("--help")
    assert res.returncode == 0
    for command in ("list", "render", "build", "init", "lint", "run", "report", "variables", "job"):
        assert f"    {command} " in res.stdout or f"    {command}\n" in res.stdout, command


def test_version():
    assert cli("--version").stdout.strip() == f"ci-gen {__version__}"


def test_list_json_matches_descriptor():
    data = json.loads(cli("list", "--json").stdout)
    assert [c["name"] for c in data] == list(desc.ORDER)
    assert all(c["version"] == __version__ for c in data)
    train = data[0]
    assert train["inputs"]["push-run-cache"] == {
        "required": False, "type": "boolean", "default": True,
        "description": desc.COMPONENTS["train"].input("push-run-cache").description,
    }


def test_list_text_names_components_and_inputs():
    out = cli("list").stdout
    assert f"train@{__version__}" in out and "push-run-cache" in out and "min-accuracy" in out


def test_render_prints_two_documents():
    res = cli("render", "inference", "--input", "samples=5")
    header, body = list(yaml.safe_load_all(res.stdout))
    assert header["spec"]["inputs"]["samples"]["default"] == 5
    assert "$[[ inputs.job-prefix ]]-inference" in body


def test_render_errors_are_one_line_with_exit_codes():
    bad_input = cli("render", "train", "--input", "stage=build;id")
    assert bad_input.returncode == 1
    assert bad_input.stderr.count("\n") == 1 and "does not match" in bad_input.stderr
    malformed = cli("render", "train", "--input", "stage")
    assert malformed.returncode == 2 and "--input expects KEY=VALUE" in malformed.stderr
    unknown = cli("render", "nope")
    assert unknown.returncode == 1 and "unknown component 'nope'" in unknown.stderr
    usage = cli("render", "train", "--mode", "weird")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1
    assert not any("Traceback" in r.stderr for r in (bad_input, malformed, unknown, usage))


def test_help_does_not_import_jinja2_or_yaml():
    # `ci-gen --help` itself, as typed (issue 22: jinja2 came in through the render and build
    # command modules and made start-up 0.53x of check-jsonschema's, against 0.5x).
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "ci_gen", "--help"],
                         capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if "|" in line}
    assert "ci_gen.cli" in imported  # the probe sees the CLI's imports
    assert not {m for m in imported if m.split(".")[0] in ("jinja2", "yaml")}
    assert not {m for m in imported if m.startswith("ci_gen.jobs")}  # `job`'s modules: only for `ci-gen job`
    assert "ci-gen job" in cli("job", "--help").stdout and "deploy" in cli("job", "--help").stdout


def test_a_closed_pipe_ends_the_command_quietly():
    # `ci-gen list | head -1`: the reader goes away; no BrokenPipeError traceback, the exit
    # status a shell gives a command ended by SIGPIPE. The read end is closed before ci-gen
    # writes its first byte, so the first write fails, whatever the output's size.
    proc = subprocess.Popen([sys.executable, "-m", "ci_gen", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""


def test_models_without_a_registry_names_project(tmp_path):
    # Outside a project and with no tracking URI: the error names every way to give one.
    res = cli("models", "list", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": ""})
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert "--project DIR" in res.stderr and "--tracking-uri URL" in res.stderr, res.stderr
