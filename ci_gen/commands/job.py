"""`ci-gen job NAME`: the commands the components' jobs call (see `ci_gen.jobs`)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def _add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return sub.add_parser("job", help="commands the components' jobs run (used inside CI jobs)",
                          description="The logic of the components' jobs. These run inside CI jobs; "
                          "each reads the job's predefined GitLab variables.")


def register_stub(sub: argparse._SubParsersAction) -> None:
    """The `job` line of `ci-gen --help` only: its job modules import the domain packages, which
    a command that is not `job` never needs (see `ci_gen.cli.build_parser`)."""
    _add(sub)


def register(sub: argparse._SubParsersAction) -> None:
    p = _add(sub)
    jobs = p.add_subparsers(dest="job", metavar="JOB")
    jobs.required = True
    from ci_gen import jobs as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"ci_gen.jobs.{info.name}").register(jobs)
