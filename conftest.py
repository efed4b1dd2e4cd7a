"""Suite-wide pytest hooks (the fixtures live in tests/conftest.py and the example's own).

`make test` runs the suite on two xdist workers. Each test module stays on one worker, so
a module's slow fixture (a pipeline, a server) still starts once; the example's tests share
one session fixture (a trained project), so they all go to the same worker."""

from __future__ import annotations

from pathlib import Path

import pytest

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
