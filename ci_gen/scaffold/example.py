"""Make a scaffolded example runnable: git repository, training data, DVC remotes, first push.

Remotes: `data` holds the training data (the `train_data.dvc` output names it), `models`
is the default remote and holds models and the run cache. `--remote BASE` gives both a home:
BASE/data and BASE/models. A local store inside the project (the default `.dvc-storage/`)
goes to `.dvc/config` as a relative path, so the committed config holds no path of this
machine. Credentials never go to tracked files: S3 keys come from AWS_*, OSS keys from OSS_*
(written to `.dvc/config.local` by `ci-gen job dvc-auth` in CI). Git: see `ci_gen.scaffold.gitrepo`.
"""

from __future__ import annotations

import importlib.util
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import yaml

from ci_gen.dvcrepo import tool as dvctool
from ci_gen.errors import CiGenError, UsageError, shown
from ci_gen.gitcmd import git
from ci_gen.local.project import STAND_IN
from ci_gen.patterns import RE_CLOUD, RE_ENDPOINT, RE_LOCAL
from ci_gen.scaffold import gitrepo

DATA_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
SYNTHETIC_TRAIN, SYNTHETIC_TEST, SYNTHETIC_SEED = 6000, 1000, 0
# The remote a repository init creates gets for `ci-gen run` (never `origin`: see setup_example).
STAND_IN_REMOTE = STAND_IN
STAND_IN_ORIGIN = "git@gitlab.example.com:mlops/{name}.git"
# What DVC writes beside the plan's files (its repository files only when init runs `dvc init`).
DVC_FILES = ("train_data.dvc", ".dvc/config", ".dvc/.gitignore", ".dvcignore")
# What a directory name may keep in the default origin's project name (not a validation).
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def has_run_remote(project: Path) -> bool:
    """`project` has the remote `ci-gen run` reads its server and project path from."""
    return bool({"origin", STAND_IN_REMOTE} & set(git(project, "remote", check=False).split()))


def check_remote(remote: str | None, endpoint_url: str | None) -> None:
    if remote is not None and not (re.fullmatch(RE_CLOUD, remote) or re.fullmatch(RE_LOCAL, remote)):
        raise UsageError(
            f"--remote must be s3://BUCKET/PREFIX, oss://BUCKET/PREFIX or a local directory, got {shown(remote)}"
        )
    if remote is not None and remote.startswith("~"):
        try:
            Path(remote).expanduser()
        except RuntimeError:
            raise UsageError(f"--remote {shown(remote)}: cannot expand '~' to a home directory") from None
    if endpoint_url is not None:
        if not re.fullmatch(RE_ENDPOINT, endpoint_url):
            raise UsageError(f"--endpoint-url must be an http(s) URL without credentials, got {shown(endpoint_url)}")
        if remote is None or not re.fullmatch(RE_CLOUD, remote):
            raise UsageError("--endpoint-url needs an s3:// or oss:// --remote")


def check_data(data: Path | None) -> None:
    if data is None:
        return
    if not data.is_dir():
        raise UsageError(f"--data {data}: not a directory")
    missing = [f for f in DATA_FILES if not (data / f).is_file()]
    if missing:
        raise UsageError(f"--data {data}: missing {', '.join(missing)}")


def remote_urls(project: Path, remote: str | None) -> tuple[str, str]:
    """The data and model remote URLs, as given to `dvc remote add` run in `project`.

    A local store inside the project (the default `.dvc-storage`) is given relative to the
    project: DVC then writes it to `.dvc/config` relative to `.dvc/` (`../.dvc-storage/data`),
    so a clone with the same layout finds it; the machine's absolute path is never committed.
    """
    if remote is None:
        base = ".dvc-storage"
    elif re.fullmatch(RE_CLOUD, remote):
        base = remote.rstrip("/")
    else:
        path = Path(remote).expanduser().resolve()
        try:
            base = path.relative_to(project.resolve()).as_posix()
        except ValueError:
            base = str(path)
    return f"{base}/data", f"{base}/models"


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        line = dvctool.error_line(f"{proc.stderr}\n{proc.stdout}", proc.returncode)
        raise CiGenError(f"{what} failed: {line}")
    return proc.stdout


def _dvc(project: Path, *args: str, what: str) -> str:
    # Never `-q`: it silences DVC's ERROR line too, and leaves only the exit code to report.
    return _run([sys.executable, "-m", "dvc", *args], project, what)


def _load_data_module(project: Path):
    """The example's own data module (loader + synthetic generator): one implementation."""
    path = project / "fmnist_data.py"
    spec = importlib.util.spec_from_file_location("ci_gen_example_fmnist_data", path)
    if spec is None or spec.loader is None:
        raise CiGenError(f"{path}: cannot load the example's data module")
    module = importlib.util.module_from_spec(spec)
    # Imported from the user's repository: no __pycache__ left in it (nor after a rollback).
    before, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = before
    return module


def check_tools(remote: str | None = None) -> None:
    """The example's set-up runs DVC (with the plugin of a cloud remote) and the example's
    numpy-based data module."""
    for module, extra in (("dvc", "dvc"), ("numpy", "dvc")):
        if importlib.util.find_spec(module) is None:
            raise CiGenError(f"init --example needs {module}: pip install 'ci-gen[{extra}]'")
    if remote is not None:
        dvctool.check_plugin(remote)


def own_paths(project: Path, plan_files: list[str]) -> list[str]:
    """Every file `init --example` writes in `project`: the plan's files and what DVC adds
    (its repository files only when ci-gen runs `dvc init`). Only these are staged."""
    extra = list(DVC_FILES[:2]) if (project / ".dvc").exists() else list(DVC_FILES)
    return sorted(set(plan_files) | set(extra))


def setup_example(
    project: Path,
    data: Path | None,
    remote: str | None,
    endpoint_url: str | None,
    repo: gitrepo.Repo,
    paths: list[str],
    commit: bool = False,
    say: Callable[[str], None] = print,
) -> bool:
    """Make the written example runnable; stage (and commit, see `gitrepo`) exactly `paths`.
    Returns whether a commit was made."""
    steps = 6
    say(f"[1/{steps}] git repository")
    if not repo.existed:
        git(project, "init", "-q", "-b", "main")
    if not repo.existed:
        # gitlab-ci-local reads the server and project path from `gcl-origin` before `origin`.
        # A stand-in under that name lets `ci-gen run` work in the repository init made,
        # while `origin`, where git pushes, is left for the user's real project.
        name = _NOT_IN_NAME.sub("-", project.resolve().name).strip("-.") or "project"
        stand_in = STAND_IN_ORIGIN.format(name=name.lower())
        git(project, "remote", "add", STAND_IN_REMOTE, stand_in)
        say(f"      remote {STAND_IN_REMOTE} = {stand_in}: only for `ci-gen run` (gitlab-ci-local "
            "reads the project path from it); add your GitLab project as origin when you have one")
    elif not has_run_remote(project):
        say("      no origin remote: ci-gen adds none to your repository; `ci-gen run` needs one "
            "(git remote add origin URL-OF-YOUR-GITLAB-PROJECT; nothing is pushed)")

    _add_data(project, data, steps, say)
    _add_remotes(project, remote, endpoint_url, steps, say)

    say(f"[4/{steps}] dvc add train_data")
    _dvc(project, "add", "train_data", what="dvc add train_data")
    pointer = project / "train_data.dvc"
    doc = yaml.safe_load(pointer.read_text())
    doc["outs"][0]["remote"] = "data"  # training data lives in its own remote
    pointer.write_text(yaml.safe_dump(doc, sort_keys=False))

    say(f"[5/{steps}] dvc push of the training data")
    from ci_gen.dvcrepo import credentials as dvc_credentials  # from the environment, into .dvc/config.local

    dvc_credentials.write_credentials(project, out=io.StringIO())
    _dvc(project, "push", "train_data.dvc", what="dvc push of the training data")

    say(f"[6/{steps}] " + ("first commit" if commit or not repo.existed else "staging ci-gen's files"))
    return _record(project, repo, paths, commit, say)


def _add_data(project: Path, data: Path | None, steps: int, say: Callable[[str], None]) -> None:
    target = project / "train_data"
    target.mkdir(exist_ok=True)
    fmnist = _load_data_module(project)
    if data is None:
        say(f"[2/{steps}] training data: generating a synthetic set in Fashion-MNIST's format "
            f"({SYNTHETIC_TRAIN} train / {SYNTHETIC_TEST} test images); get the real one with get_data.py")
        fmnist.make_synthetic(target, SYNTHETIC_TRAIN, SYNTHETIC_TEST, SYNTHETIC_SEED)
    else:
        say(f"[2/{steps}] training data: copying {data}")
        for fname in DATA_FILES:
            shutil.copyfile(data / fname, target / fname)
    try:
        fmnist.load_split(target, "train")
        fmnist.load_split(target, "t10k")
    except ValueError as exc:  # the loader's DataError names the file
        raise CiGenError(f"training data rejected: {exc}") from None


def _add_remotes(project: Path, remote: str | None, endpoint_url: str | None, steps: int,
                 say: Callable[[str], None]) -> None:
    say(f"[3/{steps}] DVC repository and remotes")
    if not (project / ".dvc").exists():
        _dvc(project, "init", what="dvc init")
    data_url, model_url = remote_urls(project, remote)
    _dvc(project, "remote", "add", "-f", "data", data_url, what="dvc remote add data")
    _dvc(project, "remote", "add", "-f", "-d", "models", model_url, what="dvc remote add models")
    if endpoint_url:
        key = "oss_endpoint" if data_url.startswith("oss://") else "endpointurl"
        for name in ("data", "models"):
            _dvc(project, "remote", "modify", name, key, endpoint_url, what=f"dvc remote modify {name}")
    say(f"      data -> {data_url}")
    say(f"      models (default) -> {model_url}")
    if dvctool.scheme(data_url) == "local":
        say("      (a local store: fine for `ci-gen run`, unreachable from a GitLab runner; "
            "`ci-gen lint` says how to move it to S3/OSS)")


def _record(project: Path, repo: gitrepo.Repo, paths: list[str], commit: bool,
            say: Callable[[str], None]) -> bool:
    staged = gitrepo.stage(project, paths)
    others = sorted(repo.staged - set(staged))
    keep = (f"      your staged changes to {len(others)} other path(s) stay staged, outside ci-gen's files"
            if others else "")
    # The same count as "wrote N files", plus what DVC wrote, named.
    by_dvc = [p for p in staged if p in DVC_FILES]
    what = f"the {len(staged) - len(by_dvc)} files init wrote and {len(by_dvc)} DVC wrote ({', '.join(by_dvc)})"
    if not commit and repo.existed:
        say(f"      staged {what}; nothing committed (the repository is yours)")
        if keep:
            say(keep)
        say("      commit them with: " + gitrepo.commit_command(staged, bool(others)))
        return False
    fallback = not repo.existed and not gitrepo.has_identity(project)
    gitrepo.commit(project, staged, fallback)
    say(f"      committed {what}, and nothing else")
    if fallback:
        name, email = gitrepo.FALLBACK_IDENTITY
        say(f"      no git identity is configured: committed as {name} <{email}> in this new repository; "
            "set yours (git config --global user.name/user.email), then "
            "`git commit --amend --reset-author --no-edit` makes the commit yours")
    if keep:
        say(keep)
    return True
