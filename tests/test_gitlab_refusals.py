"""What GitLab refuses and gitlab-ci-local does not (issue 20, points 1, 2, 4, 5): the CI/CD
Catalog's schema on every component header (vendored from GitLab with provenance), decimal
thresholds as strings, matrix values, the sweep's grid against the params file and its
leaderboard, tag pipelines admitted by the scaffolded `workflow:rules`. The lint limits
(needs, changes, tags, matrix values) are example files in tests/data/lint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from ci_gen import __version__
from ci_gen import components as desc
from ci_gen.commands import build
from ci_gen.errors import InputError
from ci_gen.inputs import resolve
from ci_gen.lint import catalog, lint_file
from ci_gen.scaffold import plan

REPO = Path(__file__).resolve().parent.parent
VENDOR = REPO / "ci_gen" / "lint" / "vendor"
# The inputs that had decimal defaults in 0.2.0, which the Catalog refuses.
DECIMALS = [("eval-report", "max-drop"), ("edge-convert", "max-accuracy-drop"),
            ("edge-convert", "min-agreement"), ("inference", "min-accuracy"), ("monitor", "threshold")]


# -- point 1: the CI/CD Catalog ------------------------------------------------------------------

def test_the_vendored_schema_is_gitlabs_file_with_its_provenance():
    data = (VENDOR / "catalog_resource_component_spec.json").read_bytes()
    assert hashlib.sha256(data).hexdigest() == catalog.SHA256 and catalog.schema_text() == data
    readme = (VENDOR / "README.md").read_text()
    assert catalog.GITLAB_PATH in readme and catalog.GITLAB_COMMIT in readme
    schema = json.loads(data)
    assert schema["properties"]["inputs"]["patternProperties"][".*"]["patternProperties"]["default"]["type"] \
        == ["array", "boolean", "integer", "string"]


@pytest.mark.parametrize("name", desc.ORDER)
def test_every_component_header_passes_the_catalog_schema(name):
    header = yaml.safe_load((REPO / "templates" / f"{name}.yml").read_text().split("\n---\n", 1)[0])
    assert catalog.problems(header["spec"]) == []


def test_build_refuses_a_decimal_default_naming_the_component_and_input():
    text = ("spec:\n  inputs:\n    max-drop:\n      type: number\n      default: 0.01\n"
            "      description: Largest drop.\n---\ngate:\n  script: [gate]\n")
    problems = build.refused_by_gitlab({"eval-report.yml": text})
    assert problems == [
        "eval-report.yml would be refused by the CI/CD Catalog: input 'max-drop': default 0.01 is a "
        "decimal, which the CI/CD Catalog refuses (a default is an array, boolean, integer or string); "
        "make the input a string with a decimal `regex`, or count in whole units; GitLab's "
        f"{catalog.GITLAB_PATH}"]


def test_the_catalog_refuses_keys_beside_inputs_and_component():
    assert catalog.problems({"inputs": {}, "component": ["name", "version"]}) == []
    (path, message), = catalog.problems({"inputs": {}, "extra": 1})
    assert path == () and "Additional properties are not allowed" in message


@pytest.mark.parametrize("component, name", DECIMALS)
def test_former_decimal_inputs_are_strings_the_job_reads(component, name):
    inp = desc.COMPONENTS[component].input(name)
    assert inp.type == "string" and isinstance(inp.default, str) and inp.regex
    resolve(desc.COMPONENTS[component], {name: inp.default})  # the default passes its own regex
    for bad in ("", "1e-05", "-0.1", ".5", "0.5\n", "nan"):
        with pytest.raises(InputError):
            resolve(desc.COMPONENTS[component], {name: bad})


def test_a_number_for_a_decimal_string_input_says_to_quote_it():
    # GitLab: StringInput#valid_value? (lib/gitlab/ci/config/interpolation/inputs/string_input.rb)
    with pytest.raises(InputError, match=r"quote it, max-drop: \"0.02\""):
        resolve(desc.COMPONENTS["eval-report"], {"max-drop": 0.02})


def test_edge_convert_reads_its_decimals_and_refuses_what_is_not_a_number():
    from ci_gen.jobs import finite_number

    assert finite_number("0.95") == 0.95 and finite_number("2.0e-02") == 0.02  # 0.2.0's Ruby form
    for bad in ("nan", "inf", "0.5;id", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            finite_number(bad)


# -- point 4: the sweep ---------------------------------------------------------------------------

PARAMS = "train:\n  learning_rate: 0.001\n  dropout: 0.2\n"


def _sweep_project(root: Path, matrix: list, max_cells: int = 8) -> Path:
    root.mkdir()
    (root / "params.yaml").write_text(PARAMS)
    doc = {"stages": ["train", "evaluate"], "include": [
        {"component": f"$CI_SERVER_FQDN/mlops/ci-gen/train@{__version__}"},
        {"component": f"$CI_SERVER_FQDN/mlops/ci-gen/sweep@{__version__}",
         "inputs": {"matrix": matrix, "max-cells": max_cells}}]}
    (root / ".gitlab-ci.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root / ".gitlab-ci.yml"


def test_lint_refuses_a_sweep_grid_with_an_unknown_params_key(tmp_path):
    path = _sweep_project(tmp_path / "p", [{"train__dropout": ["0.1"], "train__nosuchkey": ["1", "2"]}])
    report = lint_file(path)
    messages = [f.message for f in report.findings if f.severity == "error"]
    assert len(messages) == 1, messages
    assert "matrix variable train__nosuchkey names no key of params.yaml (train.nosuchkey)" in messages[0]


def test_a_sweep_of_gitlabs_200_cells_lints(tmp_path):
    # 8 x 25 = 200 cells: GitLab's matrix cap. The collect job needs no cell, so no job needs
    # more than 50 (a need on a matrix job counts once per cell).
    rates = [f"0.{i:03d}" for i in range(1, 9)]
    drops = [f"0.{i:02d}" for i in range(1, 26)]
    path = _sweep_project(tmp_path / "p", [{"train__learning_rate": rates, "train__dropout": drops}], 200)
    report = lint_file(path)
    assert report.errors == 0, [str(f) for f in report.findings]


def test_lint_refuses_a_sweep_needed_cell_by_cell(tmp_path):
    # The 0.2.0 shape of the collect job (`needs:` on the matrix job) with 64 cells.
    cells = [f"{i}" for i in range(64)]
    (tmp_path / ".gitlab-ci.yml").write_text(yaml.safe_dump({
        "stages": ["train", "evaluate"],
        "cell": {"stage": "train", "image": "python:3.11.11", "script": ["x"],
                 "parallel": {"matrix": [{"SEED": cells}]}},
        "collect": {"stage": "evaluate", "image": "python:3.11.11", "script": ["y"],
                    "needs": [{"job": "cell", "artifacts": True}]}}))
    report = lint_file(tmp_path / ".gitlab-ci.yml")
    assert [f.message for f in report.findings if f.severity == "error"] == [
        "job 'collect' needs 64 jobs ('cell' x64: a need on a parallel job counts once per job it makes); "
        "GitLab allows at most 50 (lib/gitlab/ci/pipeline/seed/build.rb): need fewer, or drop `needs:` "
        "and take the artifacts of the earlier stages"]


def test_the_sweep_matrix_input_refuses_an_unquoted_decimal():
    # GitLab takes strings and integers as matrix values (validate_alphanumeric): 0.1 is a float.
    with pytest.raises(InputError, match=r"train__dropout: value 0.1 is a decimal .* quote it, \"0.1\""):
        resolve(desc.COMPONENTS["sweep"], {"matrix": [{"train__dropout": [0.1, "0.3"]}]})
    assert resolve(desc.COMPONENTS["sweep"], {"matrix": [{"train__epochs": [1, 2]}]})["matrix"] == \
        [{"train__epochs": ["1", "2"]}]


def test_the_leaderboard_shows_params_as_written(tmp_path):
    from ci_gen.sweep.leaderboard import collect

    cells = tmp_path / "cells"
    cells.mkdir()
    for i, rate in enumerate((0.003, 0.0001), 1):
        (cells / f"cell-{i}.json").write_text(json.dumps({
            "index": i, "total": 2, "params": {"train.learning_rate": rate},
            "metrics": {"accuracy": 0.8 + i / 100}, "seconds": 1.0, "how": "trained"}))
    collect(cells, tmp_path / "sweep", tmp_path / "sweep.md", metric="accuracy", direction="higher",
            max_cells=8)
    text = (tmp_path / "sweep.md").read_text()
    assert "| 0.003 |" in text and "| 0.0001 |" in text and "0.0030" not in text


# -- point 2: tag pipelines in a scaffolded project ------------------------------------------------

def test_the_scaffolded_workflow_admits_a_tag_pipeline(tmp_path):
    """GitLab drops a pipeline no `workflow:rules` entry admits. gitlab-ci-local does not filter
    by workflow rules, but it evaluates a job's `rules:` the GitLab way: the scaffold's workflow
    rules as a probe job's rules, in a tag pipeline (CI_COMMIT_TAG set, no CI_COMMIT_BRANCH)."""
    from support.git import make_project
    from support.pipeline import gitlab_ci_local

    tool = gitlab_ci_local()
    rules = yaml.safe_load(plan.pipeline(plan.DEFAULT_TEMPLATES_PROJECT, __version__, "component"))[
        "workflow"]["rules"]
    ci = yaml.safe_dump({"probe": {"image": "python:3.11.11", "rules": rules, "script": ["true"]}})
    project = make_project(tmp_path / "p", ci)

    def listed(*variables: str) -> bool:
        args = [a for v in variables for a in ("--variable", v)]
        out = subprocess.run([tool, "--list", *args, "--ignore-predefined-vars", "CI_COMMIT_BRANCH"],
                             cwd=project, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return any(line.split()[:1] == ["probe"] for line in out.stdout.splitlines())

    assert listed()  # the branch pipeline
    assert listed("CI_COMMIT_TAG=1.2.0", "CI_COMMIT_BRANCH=")
    assert not listed("CI_COMMIT_BRANCH=", "CI_PIPELINE_SOURCE=push")  # neither branch nor tag
