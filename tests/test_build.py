"""`ci-gen build`: templates/ and the README tables are generated, and drift is caught."""

from __future__ import annotations

import shutil

from ci_gen import components as desc
from ci_gen import docs
from ci_gen.commands.build import expected
from support.cli import REPO, cli


def test_committed_templates_are_up_to_date():
    for fname, text in expected().items():
        assert (REPO / "templates" / fname).read_text() == text, f"templates/{fname}: run `ci-gen build`"


def test_readme_has_one_current_table_per_component():
    text = (REPO / "README.md").read_text()
    assert docs.blocks(text) == list(desc.ORDER)
    assert docs.update_readme(text) == text, "README inputs tables drifted: run `ci-gen build`"


def test_check_passes_then_fails_after_a_source_edit(tmp_path):
    out = tmp_path / "templates"
    assert cli("build", "--dir", str(out), "--readme", str(tmp_path / "none.md")).returncode == 0
    ok = cli("build", "--check", "--dir", str(out), "--readme", str(tmp_path / "none.md"))
    assert ok.returncode == 0, ok.stderr
    # A hand edit of a generated file is drift.
    (out / "train.yml").write_text((out / "train.yml").read_text().replace("interruptible: true", "interruptible: false"))
    bad = cli("build", "--check", "--dir", str(out), "--readme", str(tmp_path / "none.md"))
    assert bad.returncode == 1
    assert "train.yml differs from its source" in bad.stdout
    assert bad.stderr.strip().startswith("ci-gen: error: 1 generated file(s) out of date")


def test_check_fails_after_editing_a_source(tmp_path):
    """Acceptance: editing a Jinja source without rebuilding makes --check exit 1."""
    pkg = tmp_path / "pkg"
    shutil.copytree(REPO / "ci_gen", pkg / "ci_gen", ignore=shutil.ignore_patterns("__pycache__", "examples"))
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    src = pkg / "ci_gen" / "sources" / "inference.yml.jinja"
    src.write_text(src.read_text().replace("needs:", "# edited\n  needs:", 1))
    env = {"PYTHONPATH": str(pkg)}
    res = cli("build", "--check", "--dir", str(tmp_path / "templates"), "--readme", "none.md", cwd=tmp_path, env=env)
    assert res.returncode == 1
    assert "inference.yml differs from its source" in res.stdout


def test_build_writes_missing_and_reports_unexpected(tmp_path):
    out = tmp_path / "t"
    res = cli("build", "--dir", str(out), "--readme", "none.md", cwd=tmp_path)
    assert res.returncode == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.yml" for n in desc.ORDER)
    (out / "old.yml").write_text("x: 1\n")
    res = cli("build", "--check", "--dir", str(out), "--readme", "none.md", cwd=tmp_path)
    assert res.returncode == 1 and "old.yml has no source" in res.stdout


def test_example_pipeline_is_what_init_writes(tmp_path):
    from ci_gen.commands.build import example_pipelines

    (path, text), = example_pipelines(REPO / "examples").items()
    assert path.read_text() == text, "examples/fashion-mnist/.gitlab-ci.yml drifted: run `ci-gen build`"
    res = cli("init", str(tmp_path / "p"), "--include-mode", "component")
    assert res.returncode == 0
    # The minimal scaffold differs only by the example's inputs.
    assert "requirements-client.txt" in text and "requirements-client.txt" not in (tmp_path / "p/.gitlab-ci.yml").read_text()


def test_readme_cli_table_is_generated_from_the_parser_and_checked(tmp_path):
    # Issue 22: the hand-written table lacked options; it is now the parser's, and drift fails
    # `build --check`.
    from ci_gen.cli import build_parser

    text = (REPO / "README.md").read_text()
    assert docs.update_readme(text, build_parser()) == text, "README CLI table drifted: run `ci-gen build`"
    table = text.split("<!-- ci-gen:cli -->", 1)[1].split("<!-- /ci-gen:cli -->", 1)[0]
    rows = {}
    for line in table.splitlines():
        if line.startswith("| `ci-gen "):
            words = line.split("`")[1].split()
            rows[" ".join(words[1:3]) if words[1] == "models" else words[1]] = line
    for option in ("--schedule", "--keep-deployed", "--variable KEY=VALUE ...", "--quiet", "--host-env"):
        assert option in rows["run"], option
    assert "--sweep" in rows["init"] and "--project DIR" in rows["models show"]
    assert set(rows) >= {"list", "render", "build", "init", "lint", "run", "report", "variables", "job",
                         "models list", "models show", "models download"}

    readme = tmp_path / "README.md"
    readme.write_text(text.replace(" [--quiet]", ""))
    out = tmp_path / "templates"
    assert cli("build", "--dir", str(out), "--readme", str(tmp_path / "none.md")).returncode == 0
    bad = cli("build", "--check", "--dir", str(out), "--readme", str(readme), "--examples", str(tmp_path))
    assert bad.returncode == 1 and "generated tables (inputs, CLI) differ" in bad.stdout, bad.stdout
    assert cli("build", "--dir", str(out), "--readme", str(readme), "--examples", str(tmp_path)).returncode == 0
    assert readme.read_text() == text


def test_readme_include_example_declares_every_default_stage():
    # "declare the stages you use in `stages:`": the README's own example declares them all.
    from ci_gen import components as desc

    text = (REPO / "README.md").read_text()
    assert f"stages: [{', '.join(desc.default_stages())}]" in text
    assert "the same `job-prefix` for all ten" in text and len(desc.ORDER) == 10
