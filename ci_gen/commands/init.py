"""`ci-gen init DIR`: scaffold a project whose `.gitlab-ci.yml` includes the components."""

from __future__ import annotations

import argparse
import shlex
import textwrap
from pathlib import Path

from ci_gen import __version__
from ci_gen.scaffold import plan


_DESCRIPTION = (
    "Write a .gitlab-ci.yml that includes the components pinned to a version, and what the "
    "project needs around it. With --example, copy the example project, make it a git repository, "
    "add its training data with DVC, set up the data and model remotes and push the data.",
    "Git: without --example (--minimal, the default), init writes .gitlab-ci.yml and .gitignore "
    "and touches no git at all; you add and commit them. With --example it stages and commits only "
    "the files it writes, never yours. In a repository it "
    "creates, it commits them, since `ci-gen run` needs a commit (with your git identity; without "
    "one, as ci-gen <ci-gen@localhost>, "
    "and says so), and adds a `gcl-origin` remote that only `ci-gen run` reads (never `origin`). "
    "In a repository that exists, it stages them and prints the `git commit` to run; "
    "--commit commits them with your identity, leaving whatever else you staged as it is. It adds "
    "no remote to a repository that exists.",
    "Your files stay yours: a README.md that exists is kept and the example's README is written "
    "to README.ci-gen.md. Refusals come before anything is written: a file init would overwrite "
    "needs --force; a path init writes that has uncommitted changes (modified, staged or untracked) "
    "is refused even with --force, unless it holds exactly what a plain init wrote. An existing "
    ".gitignore is added to, never replaced, each entry once.",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init", help="scaffold a project that uses the components",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="\n\n".join(textwrap.fill(part, 88, break_on_hyphens=False) for part in _DESCRIPTION))
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--example", choices=plan.EXAMPLES, help="copy a complete example project")
    kind.add_argument("--minimal", action="store_true", help="only .gitlab-ci.yml and .gitignore (default)")
    p.add_argument("dir", metavar="DIR", type=Path, help="project directory (created if missing)")
    p.add_argument("--templates-project", default=plan.DEFAULT_TEMPLATES_PROJECT, metavar="GROUP/PROJECT",
                   help=f"GitLab project that publishes the components (default {plan.DEFAULT_TEMPLATES_PROJECT})")
    p.add_argument("--version", default=__version__, metavar="X.Y.Z",
                   help=f"component version to pin (default: this ci-gen, {__version__})")
    p.add_argument("--include-mode", choices=plan.INCLUDE_MODES, default="component",
                   help="component (default): include: component; project: include: project + inputs; "
                   "inline: rendered copies under .gitlab/ci-gen/")
    p.add_argument("--force", action="store_true",
                   help="overwrite files that exist at the paths init writes (in a git repository: only "
                   "files whose content is committed, so git can restore them)")
    p.add_argument("--sweep", action="store_true",
                   help="also include the opt-in sweep component: a hyperparameter grid as parallel:matrix "
                   "cells in merge request pipelines, a leaderboard in the MR report (README: Sweeps)")
    data = p.add_argument_group("example data (with --example)")
    data.add_argument("--data", type=Path, metavar="PATH",
                      help="directory with the four Fashion-MNIST .gz files (default: generate a small synthetic set)")
    data.add_argument("--remote", metavar="URL",
                      help="DVC storage base: a local directory (default DIR/.dvc-storage, written to "
                      ".dvc/config relative to the project), s3://BUCKET/PREFIX or oss://BUCKET/PREFIX; "
                      "data and models go to BASE/data and BASE/models")
    data.add_argument("--endpoint-url", metavar="URL", help="endpoint of an S3-compatible or OSS store")
    data.add_argument("--commit", action="store_true",
                      help="in a repository that exists, commit the files init wrote (only those) with "
                      "your git identity, instead of only staging them")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ci_gen.scaffold.project import init_project

    committed = init_project(args.dir, args.example, args.templates_project, args.version, args.include_mode,
                             args.force, args.data, args.remote, args.endpoint_url, args.commit,
                             opt_in=("sweep",) if args.sweep else ())
    for line in next_steps(args.dir, args.example is not None, committed):
        print(line)
    return 0


def next_steps(project: Path, example: bool, committed: bool) -> list[str]:
    """What to type next, each command as it works in a new shell from where init was run."""
    from ci_gen import invocation
    from ci_gen.scaffold.example import has_run_remote

    cmd = invocation.command()
    where = shlex.quote(str(project))
    if not example:
        # No DVC project, no commit: `ci-gen run` cannot work yet, `ci-gen lint` can.
        return [f"next: cd {where} && {cmd} lint",
                "then: the jobs run your DVC pipeline: dvc.yaml (training writes model/ and "
                "model/eval/metrics.json), params.yaml, requirements.txt, the training data as "
                "train_data.dvc in a DVC remote, a git commit of it all with an origin remote; then "
                f"`{cmd} run` (README: \"In an existing project\")"]
    lines = []
    if not committed:
        lines.append("first: commit ci-gen's files (the git commit above)")
    if not has_run_remote(project):
        lines.append("first: add your GitLab project as origin (git remote add origin URL); "
                     "`ci-gen run` reads the project path from it, nothing is pushed")
    # --manual: the example's upload and deploy are manual jobs (a person starts them on
    # GitLab); the rehearsal runs them too, so it ends with the deployed model's predictions.
    lines.append(f"next: cd {where} && {cmd} lint && {cmd} run --manual")
    return lines
