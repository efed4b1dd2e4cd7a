"""ARCHITECTURE.md matches the tree, and the layering it describes holds."""

from __future__ import annotations

import ast
import re

from support.cli import REPO

PACKAGE = REPO / "ci_gen"
MAP = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")


def _modules() -> list[str]:
    """Top-level modules and sub-packages of ci_gen, as the map names them."""
    names = []
    for path in sorted(PACKAGE.iterdir()):
        if path.is_dir() and (path / "__init__.py").is_file():
            names.append(f"{path.name}/")
        elif path.suffix == ".py" and path.stem not in ("__init__", "__main__"):
            names.append(f"{path.name}")
    return names


def test_every_module_and_package_is_on_the_map():
    tree = MAP.split("```", 2)[1]
    missing = [name for name in _modules() if not re.search(rf"(?<![\w/]){re.escape(name)}", tree)]
    assert missing == []


def test_every_module_the_map_names_exists():
    tree = MAP.split("```", 2)[1]
    files = {p.name for p in REPO.glob("ci_gen/**/*.py")} | {p.name for p in REPO.glob("tests/*.py")}
    assert {n for n in re.findall(r"\b([a-z_]+\.py)\b", tree) if n not in files} == set()
    # Inside a package's entry, "name (what it does)" names one of its modules.
    for package, body in re.findall(r"^  ([a-z_]+)/ +(.*(?:\n {18}.*)*)", tree, re.M):
        for module in re.findall(r"\b([a-z_]+) \(", body):
            assert (PACKAGE / package / f"{module}.py").is_file(), f"{package}/{module}.py"


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_nothing_below_the_cli_imports_commands_or_jobs():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("commands", "jobs") or rel.name in ("cli.py", "__main__.py"):
            continue
        bad = {m for m in _imports(path) if m.startswith(("ci_gen.commands", "ci_gen.jobs"))}
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert offenders == []


def test_benchmarks_import_the_package_never_the_tests():
    for path in (REPO / "benchmarks").glob("*.py"):
        imported = _imports(path)
        assert not {m for m in imported if m.split(".")[0] in ("tests", "support", "helpers", "conftest")
                    or m.startswith("test_")}, path.name
