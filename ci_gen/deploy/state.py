"""Deploy state on the runner host: release records, their directories, one lock.

Under `$CI_GEN_STATE_DIR` (default `~/.local/state/ci-gen`), `deploy/<environment>/` holds

    current.json            the release that serves now (engine, pid or container, port, ...)
    releases/<id>/          one per release; for the process engine a copy of the serve script
                            and the model (a later job's workspace cleanup cannot break it),
                            its log (serve.log) and release.json (how to start it again; its
                            `model_version`: the registered version it serves; `previous`:
                            the release a rollback returns to)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ci_gen.deploy.spec import check
from ci_gen.errors import CiGenError
from ci_gen.files import atomic_write
from ci_gen.patterns import RE_SHORT_SHA

KEEP_RELEASES = 3
_SHORT_SHA = re.compile(RE_SHORT_SHA)
# Written only when set: a process release has no container, a container no pid, and a
# process release gets its pid (and start_ticks, possibly null) only once started.
_OPTIONAL = ("cmd", "cwd", "log", "env", "container", "image", "model_version")


@dataclass
class Release:
    """One release as current.json and release.json hold it (the format of 0.1.x)."""

    release: str
    environment: str = ""
    engine: str = ""
    host: str = ""
    port: int = 0
    url: str = ""
    health_url: str = ""
    model_name: str = ""
    health_timeout: float | None = None
    created: str = ""
    cmd: list[str] | None = None
    cwd: str | None = None  # process engine: where it runs, its log, its environment
    log: str | None = None
    env: dict[str, str] | None = None
    container: str | None = None  # container engines
    image: str | None = None
    pid: int | None = None  # process engine, once started
    start_ticks: int | None = None  # tells a reused pid from ours
    model_version: str | None = None  # the registered version it serves, when known
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (f.name in _OPTIONAL and value is None):
                continue
            if f.name in ("pid", "start_ticks") and self.pid is None:
                continue
            out[f.name] = value
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Release:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        if not isinstance(known.get("release"), str):
            raise ValueError("no release id")
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})


def state_root(environ: dict[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("CI_GEN_STATE_DIR") or os.path.join(
        os.path.expanduser("~"), ".local", "state", "ci-gen")
    return Path(base) / "deploy"


def env_dir(environment: str, environ: dict[str, str] | None = None) -> Path:
    return state_root(environ) / check("environment", environment, "--environment")


def read_release(path: Path) -> Release | None:
    """The release recorded in `path`; None when there is none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            return None
        return Release.from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CiGenError(f"deploy state {path} is unreadable ({exc}); remove it to start over") from None


def publish(dotenv: str, url: str, model_version: str | None = "") -> None:
    """The deploy job's dotenv: DEPLOY_URL, and DEPLOY_MODEL_VERSION when the release serves
    a registered version."""
    if dotenv:
        atomic_write(dotenv, f"DEPLOY_URL={url}\n"
                     + (f"DEPLOY_MODEL_VERSION={model_version}\n" if model_version else ""))


def write_release(path: Path, rel: Release) -> None:
    atomic_write(path, json.dumps(rel.to_json(), indent=2) + "\n")


@contextlib.contextmanager
def locked(directory: Path, say: Callable[[str], None]) -> Iterator[None]:
    """One deploy/stop of an environment at a time (GitLab's resource_group does it in CI)."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another deploy/stop of {directory.name} to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def new_release_id(releases: Path, environ: dict[str, str]) -> str:
    sha = environ.get("CI_COMMIT_SHORT_SHA", "")
    base = sha if _SHORT_SHA.fullmatch(sha) else _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    # The same commit deployed again gets the next number, never a pruned release's id.
    taken = [0] + [1 if d.name == base else int(d.name[len(base) + 1:])
                   for d in releases.iterdir()
                   if d.name == base or re.fullmatch(re.escape(base) + r"-[0-9]{1,6}", d.name)]
    n = max(taken) + 1
    return base if n == 1 else f"{base}-{n}"


def prune(releases: Path, keep: set[str]) -> list[str]:
    """Remove all but the newest KEEP_RELEASES release directories (never those in `keep`)."""
    dirs = sorted((d for d in releases.iterdir() if d.is_dir()),
                  key=lambda d: d.stat().st_mtime, reverse=True)
    removed = []
    for d in dirs[KEEP_RELEASES:]:
        if d.name not in keep:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    return removed
