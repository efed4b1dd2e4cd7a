"""`ci-gen job NAME`: the commands the components' jobs call (see `ci_gen.jobs`)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("job", help="commands the components' jobs run (used inside CI jobs)",
                       description="The logic of the components' jobs. These run inside CI jobs; "
                       "each reads the job's predefined GitLab variables.")
    jobs = p.add_subparsers(dest="job", metavar="JOB")
    jobs.required = True
    from ci_gen import jobs as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"ci_gen.jobs.{info.name}").register(jobs)
