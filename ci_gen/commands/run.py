"""`ci-gen run [DIR]`: run the project's pipeline locally and offline with gitlab-ci-local."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ci_gen.dotenv import parse_assignments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run the project's pipeline locally and offline (gitlab-ci-local)",
        description="Run DIR's .gitlab-ci.yml with gitlab-ci-local 4.73.0 (shell executor, "
        "each job in its own copy of the work tree, only artifacts flow between jobs). ci-gen "
        "components pinned at the installed version resolve offline. Jobs run as on a runner: "
        "no venv of the caller on PATH, a job on the ci-gen runtime image gets a runtime "
        "environment built once per version from the installed ci-gen's wheel, a job on any other "
        "image a fresh empty Python environment; the caller's CI/CD variables and tokens are "
        "withheld. Default: the "
        "default-branch pipeline without its manual jobs (--manual runs them, --job NAME runs "
        "NAME and what it needs); environments it deploys are stopped afterwards. Exit status 1 "
        "when a job fails.")
    p.add_argument("directory", nargs="?", default=".", type=Path, metavar="DIR",
                   help="project directory: a git work tree with a commit and an origin remote "
                   "(default: .)")
    p.add_argument("--job", metavar="NAME", help="run only NAME and the jobs it needs")
    p.add_argument("--mr", action="store_true",
                   help="run as a merge request pipeline from the current branch into main")
    p.add_argument("--schedule", action="store_true",
                   help="run the scheduled pipeline (CI_PIPELINE_SOURCE=schedule: the monitor job) "
                   "instead of the branch pipeline")
    p.add_argument("--tag", metavar="TAG",
                   help="run the tag pipeline of TAG at HEAD (CI_COMMIT_TAG=TAG, no CI_COMMIT_BRANCH): "
                   "what GitLab runs when TAG is pushed, e.g. --tag 1.2.0 registers the model as 1.2.0")
    manual = p.add_mutually_exclusive_group()
    manual.add_argument("--manual", dest="manual", action="store_true", default=None,
                        help="run the manual jobs too, as if a person started each (by default "
                        "they, and the jobs that need them, are left out)")
    manual.add_argument("--no-manual", dest="manual", action="store_false",
                        help="never run a manual job, not even one that --job NAME needs")
    p.add_argument("--keep-deployed", action="store_true",
                   help="do not run the environments' stop jobs after the pipeline")
    p.add_argument("--variable", "-v", action="append", default=[], metavar="KEY=VALUE",
                   help="set a CI/CD variable for every job (repeatable), e.g. "
                   "CI_REGISTRY_IMAGE=127.0.0.1:5000/group/app; secrets are better exported "
                   "in the environment (jobs inherit it, but for CI_*, GITLAB_*, CI_GEN_* and "
                   "*_TOKEN)")
    p.add_argument("--host-env", action="store_true",
                   help="faster, less faithful: jobs use the caller's environment (this ci-gen, "
                   "dvc and python, with whatever they install) instead of a stand-in for their image")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="show only job progress and the summary, not the jobs' output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ci_gen.errors import UsageError
    from ci_gen.local.pipeline import RunOptions, run_local

    if sum(map(bool, (args.schedule, args.mr, args.tag))) > 1:
        raise UsageError("--schedule, --mr and --tag are different pipelines: pass one of them")
    _schema_first(args.directory)
    opts = RunOptions(
        directory=args.directory, job=args.job, mr=args.mr, schedule=args.schedule, tag=args.tag or "",
        manual=args.manual,
        keep_deployed=args.keep_deployed, variables=parse_assignments(args.variable, "--variable", identifier=True),
        quiet=args.quiet, host_env=args.host_env)
    return run_local(opts).exit_code


def _schema_first(directory: Path) -> None:
    """GitLab's schema before gitlab-ci-local: its own message for an invalid file is about
    something else (a git ref, an empty script), ci-gen lint's names the key and the line."""
    from ci_gen.errors import CiGenError
    from ci_gen.lint import ERROR, lint_file

    ci = directory / ".gitlab-ci.yml"
    if not ci.is_file():
        return  # run_local says so, with what to do
    errors = [f for f in lint_file(ci, schema_only=True).findings if f.severity == ERROR]
    if errors:
        for finding in errors:
            print(finding, file=sys.stderr)
        raise CiGenError(f"{ci} does not pass GitLab's schema (`ci-gen lint` says the same, "
                         "above); nothing was run")
