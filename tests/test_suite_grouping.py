"""`make test` keeps each test module on one xdist worker, and the example's tests together.

The modules' slow fixtures (a Prometheus stack, a pipeline) are module-scoped and some tests
rely on the module's earlier ones; split over two workers they start twice and run out of
order. The grouping rests on xdist rewriting node ids, which pytest 9.2 silently broke
(pytest-xdist issue 1386), so it is checked here on a scratch tree with the root conftest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MODULE = """
import os, time

def _where(name):
    time.sleep(0.05)  # long enough that an idle worker would take the next test
    with open(os.environ["WHERE_LOG"], "a") as fh:
        fh.write(f"{__name__} {name} {os.environ['PYTEST_XDIST_WORKER']}\\n")

""" + "".join(f"def test_{i}():\n    _where({i})\n\n" for i in range(6))


def test_each_module_and_the_example_run_on_one_worker(tmp_path):
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    layout = {"tests/test_alpha.py", "tests/test_beta.py",
              "examples/fashion-mnist/tests/test_ex_one.py", "examples/fashion-mnist/tests/test_ex_two.py"}
    for rel in layout:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(MODULE)
    log = tmp_path / "where.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "--import-mode=importlib", "tests", "examples"],
        cwd=tmp_path, env={**env, "WHERE_LOG": str(log)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    workers: dict[str, set[str]] = {}
    for line in log.read_text().splitlines():
        module, _, worker = line.split()
        workers.setdefault(re.sub(r".*\.", "", module), set()).add(worker)
    assert sorted(workers) == ["test_alpha", "test_beta", "test_ex_one", "test_ex_two"]
    for module, seen in workers.items():
        assert len(seen) == 1, f"{module} ran on {sorted(seen)}"
    assert workers["test_ex_one"] == workers["test_ex_two"], workers


def test_the_longest_groups_go_out_first():
    """conftest's LONGEST_FIRST names real groups, and `make test` keeps xdist from reordering
    the groups by test count (which would start the one-test end-to-end modules last)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    assert spec and spec.loader
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    modules = {p.name for p in (ROOT / "tests").glob("test_*.py")} | {conftest.EXAMPLE_GROUP}
    assert set(conftest.LONGEST_FIRST) <= modules
    make_test = next(ln for ln in (ROOT / "Makefile").read_text().splitlines() if "-m pytest" in ln)
    assert "--dist loadgroup" in make_test and "--no-loadscope-reorder" in make_test
    assert "--durations=10" in make_test
