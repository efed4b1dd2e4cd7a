"""Make a scaffolded example runnable: git repository, training data, DVC remotes, first push.

Remotes: `data` holds the training data (the `train_data.dvc` output names it), `models`
is the default remote and holds models and the run cache. `--remote BASE` gives both a home:
BASE/data and BASE/models. Credentials never go to tracked files: S3 keys come from AWS_*,
OSS keys from OSS_* (written to `.dvc/config.local` by `ci-gen job dvc-auth` in CI).
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

from ci_gen.errors import CiGenError, UsageError

DATA_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
SYNTHETIC_TRAIN, SYNTHETIC_TEST, SYNTHETIC_SEED = 6000, 1000, 0
DEFAULT_ORIGIN = "git@gitlab.example.com:mlops/{name}.git"
RE_CLOUD = re.compile(r"(s3|oss)://[a-z0-9][a-z0-9.-]{1,62}(/[A-Za-z0-9_.-]+)*/?")
RE_LOCAL = re.compile(r"[A-Za-z0-9_./~-][A-Za-z0-9_./-]{0,300}")
RE_ENDPOINT = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")
RE_PROJECT_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def shown(value: str) -> str:
    """A user's value for an error message: credentials in a URL masked, cut short."""
    value = re.sub(r"(://)[^/@\s]*@", r"\1***@", value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_remote(remote: str | None, endpoint_url: str | None) -> None:
    if remote is not None and not (RE_CLOUD.fullmatch(remote) or RE_LOCAL.fullmatch(remote)):
        raise UsageError(
            f"--remote must be s3://BUCKET/PREFIX, oss://BUCKET/PREFIX or a local directory, got {shown(remote)}"
        )
    if remote is not None and remote.startswith("~"):
        try:
            Path(remote).expanduser()
        except RuntimeError:
            raise UsageError(f"--remote {shown(remote)}: cannot expand '~' to a home directory") from None
    if endpoint_url is not None:
        if not RE_ENDPOINT.fullmatch(endpoint_url):
            raise UsageError(f"--endpoint-url must be an http(s) URL without credentials, got {shown(endpoint_url)}")
        if remote is None or not RE_CLOUD.fullmatch(remote):
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
    if remote is None:
        base = str((project / ".dvc-storage").resolve())
    elif RE_CLOUD.fullmatch(remote):
        base = remote.rstrip("/")
    else:
        base = str(Path(remote).expanduser().resolve())
    return f"{base}/data", f"{base}/models"


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit code {proc.returncode}"
        raise CiGenError(f"{what} failed: {last}")
    return proc.stdout


def _dvc(project: Path, *args: str, what: str) -> str:
    return _run([sys.executable, "-m", "dvc", *args], project, what)


def _load_data_module(project: Path):
    """The example's own data module (loader + synthetic generator): one implementation."""
    path = project / "fmnist_data.py"
    spec = importlib.util.spec_from_file_location("ci_gen_example_fmnist_data", path)
    if spec is None or spec.loader is None:
        raise CiGenError(f"{path}: cannot load the example's data module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_tools() -> None:
    """The example's set-up runs DVC and the example's numpy-based data module."""
    for module, extra in (("dvc", "dvc"), ("numpy", "dvc")):
        if importlib.util.find_spec(module) is None:
            raise CiGenError(f"init --example needs {module}: pip install 'ci-gen[{extra}]'")


def setup_example(
    project: Path,
    data: Path | None,
    remote: str | None,
    endpoint_url: str | None,
    say: Callable[[str], None] = print,
) -> None:
    steps = 6
    say(f"[1/{steps}] git repository")
    if not (project / ".git").exists():
        _run(["git", "init", "-q", "-b", "main"], project, "git init")
    remotes = _run(["git", "remote"], project, "git remote").split()
    if "origin" not in remotes:
        name = RE_PROJECT_NAME.sub("-", project.resolve().name).strip("-.") or "project"
        origin = DEFAULT_ORIGIN.format(name=name.lower())
        _run(["git", "remote", "add", "origin", origin], project, "git remote add")
        say(f"      origin set to {origin} (change it: git remote set-url origin URL)")

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

    say(f"[3/{steps}] DVC repository and remotes")
    if not (project / ".dvc").exists():
        _dvc(project, "init", "-q", what="dvc init")
    data_url, model_url = remote_urls(project, remote)
    _dvc(project, "remote", "add", "-f", "data", data_url, what="dvc remote add data")
    _dvc(project, "remote", "add", "-f", "-d", "models", model_url, what="dvc remote add models")
    if endpoint_url:
        key = "oss_endpoint" if data_url.startswith("oss://") else "endpointurl"
        for name in ("data", "models"):
            _dvc(project, "remote", "modify", name, key, endpoint_url, what=f"dvc remote modify {name}")
    say(f"      data -> {data_url}")
    say(f"      models (default) -> {model_url}")

    say(f"[4/{steps}] dvc add train_data")
    _dvc(project, "add", "-q", "train_data", what="dvc add train_data")
    pointer = project / "train_data.dvc"
    doc = yaml.safe_load(pointer.read_text())
    doc["outs"][0]["remote"] = "data"  # training data lives in its own remote
    pointer.write_text(yaml.safe_dump(doc, sort_keys=False))

    say(f"[5/{steps}] dvc push of the training data")
    from ci_gen.jobs import dvc_auth  # credentials from the environment, into .dvc/config.local

    dvc_auth.write_credentials(project, out=io.StringIO())
    _dvc(project, "push", "-q", "train_data.dvc", what="dvc push of the training data")

    say(f"[6/{steps}] first commit")
    _run(["git", "add", "-A"], project, "git add")
    status = _run(["git", "status", "--porcelain"], project, "git status")
    if status.strip():
        env_cmd = ["git", "-c", "user.name=ci-gen", "-c", "user.email=ci-gen@localhost"]
        has_identity = subprocess.run(["git", "config", "user.email"], cwd=project,
                                      capture_output=True).returncode == 0
        cmd = (["git"] if has_identity else env_cmd) + ["commit", "-q", "-m", "Scaffold the MLOps pipeline with ci-gen"]
        _run(cmd, project, "git commit")
