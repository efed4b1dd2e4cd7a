"""`ci-gen init` without the example: pipeline file, include modes, refusal without --force."""

from __future__ import annotations

import pytest
import yaml

from ci_gen import __version__
from ci_gen import components as desc
from tests.helpers import cli, tree_hash


def test_minimal_pipeline_includes_all_components_pinned(tmp_path):
    res = cli("init", str(tmp_path / "p"))
    assert res.returncode == 0, res.stderr
    doc = yaml.safe_load((tmp_path / "p" / ".gitlab-ci.yml").read_text())
    assert doc["stages"] == desc.default_stages()
    assert [i["component"] for i in doc["include"]] == [
        f"$CI_SERVER_FQDN/mlops/ci-gen/{n}@{__version__}" for n in desc.ORDER
    ]
    assert "/.gitlab-ci-local/" in (tmp_path / "p" / ".gitignore").read_text()


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
    assert doc["include"][1] == {"local": "/.gitlab/ci-gen/eval-report.yml"}
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
