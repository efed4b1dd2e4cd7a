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


# tryfirst: xdist's worker turns the marks into `@group` node-id suffixes in its own
# modifyitems hook, which pytest would otherwise call before this conftest's.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("xdist"):
        return  # a plain `pytest`: one process, nothing to group
    for item in items:
        path = Path(str(item.fspath)).resolve()
        group = "fashion-mnist-example" if EXAMPLE_TESTS in path.parents else path.name
        item.add_marker(pytest.mark.xdist_group(group))
