"""`ci-gen init DIR`: scaffold a project whose `.gitlab-ci.yml` includes the components."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import textwrap
from pathlib import Path

from ci_gen import __version__
from ci_gen import scaffold
from ci_gen.errors import CiGenError


_DESCRIPTION = (
    "Write a .gitlab-ci.yml that includes the six components pinned to a version, and what the "
    "project needs around it. With --example, copy the example project, make it a git repository, "
    "add its training data with DVC, set up the data and model remotes and push the data.",
    "Git: init stages and commits only the files it writes, never yours. In a repository it "
    "creates, it commits them, since `ci-gen run` needs a commit (with your git identity; without "
    "one, as ci-gen <ci-gen@localhost>, "
    "and says so). In a repository that exists, it stages them and prints the `git commit` to run; "
    "--commit commits them with your identity, leaving whatever else you staged as it is.",
    "Refusals come before anything is written: a file init would overwrite needs --force; a path "
    "init writes that has uncommitted changes (modified, staged or untracked) is refused even with "
    "--force. An existing .gitignore is added to, never replaced.",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init", help="scaffold a project that uses the components",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="\n\n".join(textwrap.fill(part, 88, break_on_hyphens=False) for part in _DESCRIPTION))
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--example", choices=scaffold.EXAMPLES, help="copy a complete example project")
    kind.add_argument("--minimal", action="store_true", help="only .gitlab-ci.yml and .gitignore (default)")
    p.add_argument("dir", metavar="DIR", type=Path, help="project directory (created if missing)")
    p.add_argument("--templates-project", default=scaffold.DEFAULT_TEMPLATES_PROJECT, metavar="GROUP/PROJECT",
                   help=f"GitLab project that publishes the components (default {scaffold.DEFAULT_TEMPLATES_PROJECT})")
    p.add_argument("--version", default=__version__, metavar="X.Y.Z",
                   help=f"component version to pin (default: this ci-gen, {__version__})")
    p.add_argument("--include-mode", choices=scaffold.INCLUDE_MODES, default="component",
                   help="component (default): include: component; project: include: project + inputs; "
                   "inline: rendered copies under .gitlab/ci-gen/")
    p.add_argument("--force", action="store_true",
                   help="overwrite files that exist at the paths init writes (in a git repository: only "
                   "files whose content is committed, so git can restore them)")
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


def write_files(target: Path, files: dict[str, bytes]) -> None:
    """Write every file through a temporary name, so none is ever half-written."""
    for rel, content in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        src_mode = 0o755 if content.startswith(b"#!") else 0o644
        os.chmod(tmp, src_mode)
        os.replace(tmp, path)


def _preflight(target: Path, plan_files: dict[str, bytes], example: bool, force: bool, commit: bool):
    """Everything init will write, checked against what is there: (repo, files, paths init
    owns, paths checked). Raises before anything is written."""
    from ci_gen import initrepo, project_setup

    repo = initrepo.inspect(target) if target.exists() else initrepo.Repo(target, existed=False)
    files = dict(plan_files)
    ignore = target / ".gitignore"
    files[".gitignore"] = scaffold.merge_gitignore(
        ignore.read_text(encoding="utf-8", errors="surrogateescape") if ignore.is_file() else None,
        files[".gitignore"])
    paths = project_setup.own_paths(target, list(files)) if example else sorted(files)
    checked = paths + (["train_data"] if example else [])
    initrepo.check(target, repo, checked, {".gitignore"}, force, stages=example)
    if commit and repo.existed and not initrepo.has_identity(target):
        raise CiGenError("--commit commits with your git identity and none is set: git config --global "
                         "user.name NAME; git config --global user.email EMAIL (nothing was written)")
    return repo, files, paths, checked


def init(target: Path, example: str | None = None, templates_project: str = scaffold.DEFAULT_TEMPLATES_PROJECT,
         version: str = __version__, include_mode: str = "component", force: bool = False,
         data: Path | None = None, remote: str | None = None, endpoint_url: str | None = None,
         commit: bool = False, say=print) -> bool:
    """Scaffold `target`; returns whether ci-gen's files are committed (see `ci_gen.initrepo`)."""
    from ci_gen import initrepo, project_setup

    if example is None and (data or remote or endpoint_url):
        raise CiGenError("--data, --remote and --endpoint-url only apply with --example")
    if example is None and commit:
        raise CiGenError("--commit only applies with --example (without it, init does not touch git)")
    plan = scaffold.plan(example, templates_project, version, include_mode)
    project_setup.check_remote(remote, endpoint_url)
    project_setup.check_data(data)
    if example is not None:
        project_setup.check_tools(remote)
    if target.exists() and not target.is_dir():
        raise CiGenError(f"{target} exists and is not a directory")
    created = not target.exists()
    repo, files, paths, checked = _preflight(target, plan.files, example is not None, force, commit)
    journal = None if created else initrepo.Journal.start(repo, checked)  # what to put back
    try:
        target.mkdir(parents=True, exist_ok=True)
        if not os.access(target, os.W_OK):
            raise CiGenError(f"{target} is not writable")
        write_files(target, files)
        say(f"wrote {len(files)} files to {target}")
        if example is None:
            return False
        return project_setup.setup_example(target, data, remote, endpoint_url, repo, paths, commit, say=say)
    except BaseException as exc:
        # A project we created and could not finish is removed; in a directory that existed,
        # what init added or changed is put back.
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:
            journal.undo()
        if isinstance(exc, OSError):
            raise CiGenError(f"cannot write to {target}: {exc.strerror or exc}") from None
        raise


def run(args: argparse.Namespace) -> int:
    committed = init(args.dir, args.example, args.templates_project, args.version, args.include_mode,
                     args.force, args.data, args.remote, args.endpoint_url, args.commit)
    if args.example is None or committed:
        print(f"next: cd {args.dir} && ci-gen lint && ci-gen run")
    else:
        print(f"next: commit (above), then cd {args.dir} && ci-gen lint && ci-gen run")
    return 0
