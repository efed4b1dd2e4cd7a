"""Suite-wide pytest hooks (the fixtures live in tests/conftest.py and the example's own).

`make test` runs the suite on two xdist workers. Each test module stays on one worker, so
a module's slow fixture (a pipeline, a server) still starts once; the example's tests share
one session fixture (a trained project), so they all go to the same worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# In CI (CI set, as GitLab and most CI systems set it) the property tests draw the same
# examples every run, so a result depends on the commit alone; a developer's run draws new
# ones and may find what CI does not. Loaded here, before any test module builds its settings.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

EXAMPLE_TESTS = Path(__file__).resolve().parent / "examples" / "fashion-mnist" / "tests"
EXAMPLE_GROUP = "fashion-mnist-example"
# The longest groups (make test prints the slowest tests: keep this in step), longest first.
# xdist hands groups out in collection order (the Makefile turns its by-test-count reorder
# off): a minutes-long one-test module started last would run alone while the other worker
# idles. The rest follow in file order.
LONGEST_FIRST = ("test_example_pipeline.py", "test_readme_own_project.py", "test_release_rehearsal.py",
                 "test_faults.py", "test_sweep_pipeline.py", EXAMPLE_GROUP, "test_run_runner_mode.py",
                 "test_edge_convert.py", "test_monitoring_prometheus.py", "test_run.py")


# tryfirst: xdist's worker turns the marks into `@group` node-id suffixes in its own
# modifyitems hook, which pytest would otherwise call before this conftest's.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("xdist"):
        return  # a plain `pytest`: one process, nothing to group
    groups = {}
    for item in items:
        path = Path(str(item.fspath)).resolve()
        group = EXAMPLE_GROUP if EXAMPLE_TESTS in path.parents else path.name
        item.add_marker(pytest.mark.xdist_group(group))
        groups[item.nodeid] = group
    rank = {g: i for i, g in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda it: rank.get(groups[it.nodeid], len(rank)))  # stable: file order kept
