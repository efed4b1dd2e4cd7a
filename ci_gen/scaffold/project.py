"""`ci-gen init` from start to end: check everything, write the plan's files, set up the
example, and put the directory back as it was if any step fails.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ci_gen import __version__
from ci_gen.errors import CiGenError
from ci_gen.files import atomic_write
from ci_gen.scaffold import example as example_setup
from ci_gen.scaffold import gitrepo
from ci_gen.scaffold import plan as scaffold_plan


@dataclass
class _Preflight:
    """What init will write, checked against what is there before anything is written."""
    repo: gitrepo.Repo
    files: dict[str, bytes]  # relative path -> content, the .gitignore merged with the user's
    paths: list[str]         # the paths init owns (stages and commits)
    checked: list[str]       # the paths checked for conflicts (and put back on failure)
    readme_moved: bool = False  # the example's README went to EXAMPLE_README (README.md is yours)


# Where the example's README goes when the directory has a README.md: the user's stays theirs.
EXAMPLE_README = "README.ci-gen.md"


def init_project(target: Path, example: str | None = None,
                 templates_project: str = scaffold_plan.DEFAULT_TEMPLATES_PROJECT,
                 version: str = __version__, include_mode: str = "component", force: bool = False,
                 data: Path | None = None, remote: str | None = None, endpoint_url: str | None = None,
                 commit: bool = False, opt_in: tuple[str, ...] = (),
                 say: Callable[[str], None] = print) -> bool:
    """Scaffold `target`; returns whether ci-gen's files are committed (see
    `ci_gen.scaffold.gitrepo`)."""
    plan = _checked_plan(target, example, templates_project, version, include_mode, data, remote,
                         endpoint_url, commit, opt_in)
    created = not target.exists()
    pre = _preflight(target, plan.files, example is not None, force, commit,
                     (templates_project, version, include_mode, opt_in))
    journal = None if created else gitrepo.Journal.start(pre.repo, pre.checked)  # what to put back
    try:
        _write_project(target, pre.files)
        say(f"wrote {len(pre.files)} files to {target}")
        if pre.readme_moved:
            say(f"      README.md is yours and stays as it is: the example's README is {EXAMPLE_README}")
        if example is None:
            return False
        return example_setup.setup_example(target, data, remote, endpoint_url, pre.repo, pre.paths,
                                           commit, say=say)
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


def _checked_plan(target: Path, example: str | None, templates_project: str, version: str,
                  include_mode: str, data: Path | None, remote: str | None,
                  endpoint_url: str | None, commit: bool,
                  opt_in: tuple[str, ...] = ()) -> scaffold_plan.Plan:
    """The plan of files, once every option has been checked (nothing is written yet)."""
    if example is None and (data or remote or endpoint_url):
        raise CiGenError("--data, --remote and --endpoint-url only apply with --example")
    if example is None and commit:
        raise CiGenError("--commit only applies with --example (without it, init does not touch git)")
    plan = scaffold_plan.plan(example, templates_project, version, include_mode, opt_in)
    example_setup.check_remote(remote, endpoint_url)
    example_setup.check_data(data)
    if example is not None:
        example_setup.check_tools(remote)
    if target.exists() and not target.is_dir():
        raise CiGenError(f"{target} exists and is not a directory")
    return plan


def _preflight(target: Path, plan_files: dict[str, bytes], example: bool, force: bool,
               commit: bool, options: tuple = ()) -> _Preflight:
    """Everything init will write, checked against what is there. Raises before anything
    is written. `options` (templates project, version, include mode, opt-ins) say what a plain
    init with the same options wrote, so its uncommitted files are not taken for the user's."""
    repo = gitrepo.inspect(target) if target.exists() else gitrepo.Repo(target, existed=False)
    files = dict(plan_files)
    ignore = target / ".gitignore"
    files[".gitignore"] = scaffold_plan.merge_gitignore(
        ignore.read_text(encoding="utf-8", errors="surrogateescape") if ignore.is_file() else None,
        files[".gitignore"])
    moved = example and "README.md" in files and (target / "README.md").exists()
    if moved:
        files[EXAMPLE_README] = files.pop("README.md")
    paths = example_setup.own_paths(target, list(files)) if example else sorted(files)
    checked = paths + (["train_data"] if example else [])
    own = _inits_own(target, repo, options) if options and target.is_dir() else set()
    gitrepo.check(target, repo, checked, {".gitignore"}, force, stages=example, own=own)
    if commit and repo.existed and not gitrepo.has_identity(target):
        raise CiGenError("--commit commits with your git identity and none is set: git config --global "
                         "user.name NAME; git config --global user.email EMAIL (nothing was written)")
    return _Preflight(repo, files, paths, checked, moved)


def _inits_own(target: Path, repo: gitrepo.Repo, options: tuple) -> set[str]:
    """Paths whose content is exactly what a plain `ci-gen init` with the same options wrote,
    uncommitted (or in a directory that is no repository): init's own output, which a later
    `init --example` may replace. Committed, a file is the user's: --force as for any other."""
    templates_project, version, include_mode, opt_in = options
    plain = scaffold_plan.plain_files(templates_project, version, include_mode,
                                      gitrepo.committed_text(target, ".gitignore"), opt_in)
    own = set()
    for rel, content in plain.items():
        path = target / rel
        if (repo.dirty(rel) or not repo.existed) and path.is_file() and not path.is_symlink() and path.read_bytes() == content:
            own.add(rel)
    return own


def _write_project(target: Path, files: dict[str, bytes]) -> None:
    """Create `target` and write every file atomically (scripts executable)."""
    target.mkdir(parents=True, exist_ok=True)
    if not os.access(target, os.W_OK):
        raise CiGenError(f"{target} is not writable")
    for rel, content in files.items():
        try:
            atomic_write(target / rel, content, mode=0o755 if content.startswith(b"#!") else 0o644)
        except CiGenError as exc:
            # atomic_write names the file; init's message names the project (see init_project).
            if isinstance(exc.__context__, OSError):
                raise exc.__context__ from None
            raise
