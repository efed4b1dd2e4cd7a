"""The git side of `ci-gen init`: what it may touch in a repository, checked before anything
is written, and how its own files (and only those) are staged and committed.

Rules:
- ci-gen stages and commits only the paths it wrote, by explicit path list; a commit is
  limited to those paths (`git commit -- PATHS`), so changes the user had staged elsewhere
  are neither committed nor unstaged.
- A repository ci-gen creates gets one commit of ci-gen's files (`ci-gen run` needs a
  commit), by the user's git identity, or by a visible fallback identity when none is set.
- A repository that existed before is the user's: ci-gen stages its files and prints the
  `git commit` command, or commits them with the user's identity when asked (`--commit`).
- A path ci-gen writes that holds uncommitted changes (modified, staged or untracked) is
  refused even with `--force`: git could not give it back.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ci_gen.errors import CiGenError
from ci_gen import gitcmd
from ci_gen.gitcmd import git

COMMIT_MESSAGE = "Scaffold the MLOps pipeline with ci-gen"
FALLBACK_IDENTITY = ("ci-gen", "ci-gen@localhost")


@dataclass
class Repo:
    root: Path
    existed: bool                                        # a repository before init ran
    changed: dict[str, str] = field(default_factory=dict)  # path -> porcelain XY code
    index: bytes | None = None                           # the index before init, to put back

    @property
    def staged(self) -> set[str]:
        """Paths whose changes the user has staged."""
        return {p for p, xy in self.changed.items() if xy[0] not in " ?!"}

    def dirty(self, rel: str) -> bool:
        """`rel` (a file, or a directory and what is under it) has uncommitted changes."""
        return any(p == rel or p.startswith(rel.rstrip("/") + "/") for p in self.changed)


def inspect(target: Path) -> Repo:
    """The repository at `target` as it is now (no repository: `existed` is False)."""
    if not (target / ".git").exists():
        return Repo(target, existed=False)
    git(target, "rev-parse", "--git-dir")  # a broken repository fails here, in one line
    # Raw output: `git()` strips it, and a porcelain entry may start with a space.
    # GIT_OPTIONAL_LOCKS=0: a check must not even refresh the index file.
    proc = gitcmd.run(target, "status", "--porcelain=v1", "-z", "--untracked-files=all",
                      env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    if proc.returncode != 0:
        raise CiGenError(f"git status failed in {target}: {gitcmd.last_line(proc.stderr)}")
    out = proc.stdout
    changed: dict[str, str] = {}
    entries = iter(out.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        xy, path = entry[:2], entry[3:]
        changed[path] = xy
        if xy[0] in "RC":  # a rename's source path follows as its own entry
            changed[next(entries, "")] = xy
    return Repo(target, existed=True, changed=changed, index=_read_index(target))


def _index_path(target: Path) -> Path:
    return Path(target, git(target, "rev-parse", "--git-path", "index"))


def _read_index(target: Path) -> bytes | None:
    path = _index_path(target)
    return path.read_bytes() if path.is_file() else None


def restore_index(repo: Repo) -> None:
    """Put the index back as it was before init (after a failed init in an existing repo)."""
    if not repo.existed:
        return
    path = _index_path(repo.root)
    if repo.index is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(repo.index)


def has_identity(target: Path) -> bool:
    """A git identity is configured for commits in `target` (config or environment)."""
    name = os.environ.get("GIT_AUTHOR_NAME") or git(target, "config", "user.name", check=False)
    email = (os.environ.get("GIT_AUTHOR_EMAIL") or os.environ.get("EMAIL")
             or git(target, "config", "user.email", check=False))
    return bool(name and email)


def check(target: Path, repo: Repo, writes: list[str], merged: set[str], force: bool,
          stages: bool, own: set[str] = frozenset()) -> None:
    """Refuse, before anything is written, to overwrite a file without `--force`, or a path
    with uncommitted changes at all. `merged` files are added to, not replaced: they count
    only when init stages them (`stages`) and the user has changes in them. `own` paths hold
    exactly what an earlier plain init wrote: nothing of the user's to lose."""
    uncommitted, existing = [], []
    for rel in writes:
        path = target / rel
        if rel in own:
            continue
        if repo.existed and repo.dirty(rel) and (rel not in merged or stages):
            uncommitted.append(rel)
        elif rel not in merged and (path.exists() or path.is_symlink()):
            existing.append(rel)
    if uncommitted:
        raise CiGenError(f"{target}: uncommitted changes at paths init writes: {_few(uncommitted)}; "
                         "commit or stash them first (--force replaces only committed files); "
                         "nothing was written")
    if existing and not force:
        raise CiGenError(f"{target}: {_few(existing)} already exist(s); use --force to overwrite "
                         "(nothing was written)")


def committed_text(target: Path, rel: str) -> str | None:
    """`rel` as committed at HEAD (None: no repository, no commit, or not tracked)."""
    if not (target / ".git").exists():
        return None
    try:
        proc = gitcmd.run(target, "show", f"HEAD:{rel}")
    except UnicodeDecodeError:  # not text: not what init wrote either
        return None
    return proc.stdout if proc.returncode == 0 else None


def _few(paths: list[str]) -> str:
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def stage(target: Path, paths: list[str]) -> list[str]:
    """`git add` exactly `paths` (those that exist); returns them. `-f`: they are the
    project's files even where a .gitignore of the user's would hide them."""
    present = [p for p in paths if (target / p).exists()]
    git(target, "add", "-f", "--", *present)
    return present


def commit(target: Path, paths: list[str], fallback: bool) -> None:
    """Commit exactly `paths`, leaving the rest of the index as it is."""
    who = ["-c", f"user.name={FALLBACK_IDENTITY[0]}", "-c", f"user.email={FALLBACK_IDENTITY[1]}"] if fallback else []
    git(target, *who, "commit", "-q", "-m", COMMIT_MESSAGE, "--", *paths)


def commit_command(paths: list[str], others_staged: bool) -> str:
    """The `git commit` a user runs to commit what init staged (limited to init's paths when
    the index also holds changes of theirs)."""
    cmd = ["git", "commit", "-m", COMMIT_MESSAGE]
    if others_staged:
        cmd += ["--", *paths]
    return shlex.join(cmd)


@dataclass
class Journal:
    """What init is about to change in a directory that exists, to put back if a later step
    fails: files as they were (None: absent, removed again), and the index. (init adds no
    remote to a repository that existed, so there is none to take back.)"""
    repo: Repo
    before: dict[str, bytes | None]

    @classmethod
    def start(cls, repo: Repo, paths: list[str]) -> "Journal":
        before: dict[str, bytes | None] = {}
        tops = {p.split("/", 1)[0] for p in paths}
        for rel in sorted(set(paths) | tops | {".git", ".dvc", ".dvcignore"}):
            path = repo.root / rel
            if path.is_file() and not path.is_symlink():
                before[rel] = path.read_bytes()
            elif not (path.exists() or path.is_symlink()):
                before[rel] = None
        return cls(repo, before)

    def undo(self) -> None:
        restore_index(self.repo)
        for rel, content in sorted(self.before.items(), reverse=True):
            path = self.repo.root / rel
            if content is not None:
                path.write_bytes(content)
            elif path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink()
