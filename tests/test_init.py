"""`ci-gen init` without the example: pipeline file, include modes, refusal without --force."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from ci_gen import __version__
from ci_gen import components as desc
from support.cli import cli
from support.trees import tree_hash


def test_minimal_pipeline_includes_all_components_pinned(tmp_path):
    res = cli("init", str(tmp_path / "p"))
    assert res.returncode == 0, res.stderr
    doc = yaml.safe_load((tmp_path / "p" / ".gitlab-ci.yml").read_text())
    assert doc["stages"] == desc.default_stages()
    assert [i["component"] for i in doc["include"]] == [
        f"$CI_SERVER_FQDN/mlops/ci-gen/{n}@{__version__}" for n in desc.INCLUDED
    ]
    assert "/.gitlab-ci-local/" in (tmp_path / "p" / ".gitignore").read_text()
    # The opt-in sweep is named, commented out, with the flag that adds it.
    text = (tmp_path / "p" / ".gitlab-ci.yml").read_text()
    assert f"#   - component: $CI_SERVER_FQDN/mlops/ci-gen/sweep@{__version__}" in text
    assert "`ci-gen init --sweep` adds it" in text


def test_sweep_is_opt_in_and_lints(tmp_path):
    """`init --sweep` includes the sweep after train; lint counts its three jobs and refuses a
    grid larger than max-cells (GitLab cannot: an array input has no regex)."""
    res = cli("init", str(tmp_path / "p"), "--sweep")
    assert res.returncode == 0, res.stderr
    path = tmp_path / "p" / ".gitlab-ci.yml"
    doc = yaml.safe_load(path.read_text())
    assert [i["component"].split("/")[-1] for i in doc["include"]][:2] == [f"train@{__version__}",
                                                                           f"sweep@{__version__}"]
    assert "--sweep` adds it" not in path.read_text()
    lint = cli("lint", str(path))
    assert lint.returncode == 0 and f"({len(desc.INCLUDED) + 3 + 3} jobs" in lint.stdout, lint.stdout
    doc["include"][1]["inputs"] = {"max-cells": 3}  # the default grid has 4 cells
    path.write_text(yaml.safe_dump(doc))
    lint = cli("lint", str(path))
    assert lint.returncode == 1
    assert "sweep@0.3.0: the sweep has 4 cells, more than max-cells (3)" in lint.stdout + lint.stderr


def test_project_mode_and_custom_project_and_version(tmp_path):
    res = cli("init", str(tmp_path), "--include-mode", "project", "--templates-project", "ml/tools/ci-gen",
              "--version", "1.4.2")
    assert res.returncode == 0, res.stderr
    doc = yaml.safe_load((tmp_path / ".gitlab-ci.yml").read_text())
    assert doc["include"][0] == {"project": "ml/tools/ci-gen", "ref": "1.4.2", "file": "/templates/train.yml"}


def test_inline_mode_writes_rendered_components(tmp_path):
    res = cli("init", str(tmp_path), "--include-mode", "inline")
    assert res.returncode == 0, res.stderr
    doc = yaml.safe_load((tmp_path / ".gitlab-ci.yml").read_text())
    assert doc["include"][2] == {"local": "/.gitlab/ci-gen/eval-report.yml"}
    jobs = yaml.safe_load((tmp_path / ".gitlab/ci-gen/eval-report.yml").read_text())
    assert jobs["mlops-eval-report"]["stage"] == "evaluate"


def test_second_init_refuses_and_changes_nothing(tmp_path):
    target = tmp_path / "p"
    assert cli("init", str(target)).returncode == 0
    before = tree_hash(target)
    res = cli("init", str(target), "--include-mode", "inline")
    assert res.returncode == 1
    assert "already exist" in res.stderr and "--force" in res.stderr
    assert "Traceback" not in res.stderr
    assert tree_hash(target) == before
    forced = cli("init", str(target), "--include-mode", "inline", "--force")
    assert forced.returncode == 0 and tree_hash(target) != before


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--templates-project", "group"], 2, "--templates-project must look like GROUP/PROJECT"),
        (["--templates-project", "g/p;id"], 2, "--templates-project must look like GROUP/PROJECT"),
        (["--version", "1.2"], 2, "--version must be a SemVer version"),
        (["--version", "1.2.3\n"], 2, "--version must be a SemVer version"),
        (["--include-mode", "inline", "--version", "9.9.9"], 2, "cannot pin 9.9.9"),
        (["--include-mode", "remote"], 2, "invalid choice"),
        (["--remote", "s3://b/p"], 1, "only apply with --example"),
        (["--example", "mnist"], 2, "invalid choice"),
    ],
)
def test_bad_options_write_nothing(tmp_path, args, code, message):
    target = tmp_path / "p"
    res = cli("init", str(target), *args)
    assert res.returncode == code
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not target.exists()


def test_unwritable_target(tmp_path):
    (tmp_path / "file").write_text("x")
    res = cli("init", str(tmp_path / "file"))
    assert res.returncode == 1 and "is not a directory" in res.stderr


@pytest.mark.slow
def test_example_scaffold_lints_and_second_init_changes_nothing(tmp_path):
    """Issue 2, acceptance 5: init --example, lint passes; a second init fails, tree byte-identical."""
    target = tmp_path / "p"
    res = cli("init", str(target), "--example", "fashion-mnist")
    assert res.returncode == 0, res.stderr
    for step in ("[1/6] git repository", "synthetic", "[5/6] dvc push", "[6/6] first commit"):
        assert step in res.stdout
    lint = cli("lint", str(target / ".gitlab-ci.yml"))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # One warning: the default local DVC store is out of a runner's reach.
    assert lint.stdout.strip().endswith(f"({len(desc.INCLUDED) + 3} jobs, 1 document), 1 warning(s)")
    # The data is tracked by DVC in its own remote, never by git.
    tracked = subprocess.run(["git", "ls-files"], cwd=target, capture_output=True, text=True).stdout.split()
    assert "train_data.dvc" in tracked and not any(p.startswith("train_data/") for p in tracked)
    before = tree_hash(target)
    again = cli("init", str(target), "--example", "fashion-mnist")
    assert again.returncode == 1 and "already exist" in again.stderr
    assert tree_hash(target) == before


def test_example_with_bad_data_dir_writes_nothing(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    res = cli("init", str(tmp_path / "p"), "--example", "fashion-mnist", "--data", str(tmp_path / "data"))
    assert res.returncode == 2 and "missing train-labels-idx1-ubyte.gz" in res.stderr
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_example_with_corrupt_data_is_rolled_back(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (data / name).write_bytes(b"\x1f\x8b truncated")
    res = cli("init", str(tmp_path / "p"), "--example", "fashion-mnist", "--data", str(data))
    assert res.returncode == 1
    assert "training data rejected" in res.stderr and "train-images-idx3-ubyte.gz" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "p").exists()


def test_existing_gitignore_is_added_to_never_replaced(tmp_path):
    """The user's lines (even bytes that are not UTF-8) stay; only missing entries are added,
    once, however often init runs."""
    mine = b"*.log\n/.dvc-storage/\n# caf\xe9\n"
    (tmp_path / ".gitignore").write_bytes(mine)
    assert cli("init", str(tmp_path)).returncode == 0
    merged = (tmp_path / ".gitignore").read_bytes()
    assert merged.startswith(mine)
    assert merged.count(b"/.dvc-storage/") == 1 and merged.count(b"/.gitlab-ci-local/") == 1
    assert cli("init", str(tmp_path), "--force").returncode == 0
    assert (tmp_path / ".gitignore").read_bytes() == merged


def test_example_gitignore_names_each_entry_once():
    # Issue 22: /train_data, /model and __pycache__/ were written twice (the example's own
    # .gitignore, then ci-gen's block); `/model`, `model/` and `model` are one entry.
    from ci_gen.scaffold import plan as scaffold

    text = scaffold.plan("fashion-mnist", scaffold.DEFAULT_TEMPLATES_PROJECT, __version__,
                         "component").files[".gitignore"].decode()
    entries = [ln.strip().strip("/") for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert sorted(entries) == sorted(set(entries)), entries
    assert {"train_data", "model", "__pycache__", ".gitlab-ci-local", ".dvc-storage"} <= set(entries)
