"""Deploy a release behind a health gate, roll back when it fails; stop an environment.

Used by `ci-gen job deploy`, `rollback` and `stop`. Container engines (docker, podman) keep
their releases on the target: ci_gen.deploy.target. The process engine runs on the runner
host (shell runners): deploy stops the previous release, starts the new one and waits for its
health URL; if it never becomes healthy the new one is removed and the previous one is
started again. Its state and format: ci_gen.deploy.state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NoReturn

from ci_gen.deploy.engines import Engine, engine_for
from ci_gen.deploy.guard import reason, sigterm_raises
from ci_gen.deploy.health import free_port, port_in_use, wait_healthy
from ci_gen.deploy.spec import CONTAINER_ENGINES, Spec
from ci_gen.deploy.state import (
    Release,
    env_dir,
    locked,
    new_release_id,
    prune,
    publish,
    read_release,
    write_release,
)
from ci_gen.errors import CiGenError

Say = Callable[[str], None]


def deploy(spec: Spec, environ: dict[str, str] | None = None, say: Say = print) -> Release | None:
    """Deploy one release with a health gate; returns the process engine's record, raises on
    failure. A registry version is fetched and checked first: nothing changes on the target
    until it is."""
    from ci_gen.deploy.by_version import fetched

    environ = os.environ if environ is None else environ
    with fetched(spec, environ, say) as ready:
        return _deploy(ready, environ, say)


def _deploy(spec: Spec, environ: dict[str, str], say: Say) -> Release | None:
    if spec.engine in CONTAINER_ENGINES:
        from ci_gen.deploy import target  # http.client and ssh: not for `ci-gen --help`

        target.deploy(spec, environ, say)
        return None
    engine = engine_for(spec.engine, environ)
    engine.check(spec)
    edir = env_dir(spec.environment, environ)
    with locked(edir, say):
        rollout = _Rollout(spec, engine, edir, say, previous=read_release(edir / "current.json"))
        rel = rollout.prepare(environ)
        # From the stop on, whatever ends the deploy (unhealthy, an exception, a cancelled
        # job) starts the previous release again: ci_gen.deploy.guard.
        with sigterm_raises() as guard:
            failure = ""
            try:
                rollout.stop_previous(environ)
                rel, healthy, why = rollout.start(rel)
            except BaseException as exc:  # noqa: BLE001 - every ending restores
                healthy, why = False, reason(exc)
                failure = why
                rel = rollout.started or rel  # its pid, when it got as far as starting
            guard.restoring()  # from here on a SIGTERM waits: promoting or restoring finishes
            if healthy:
                return rollout.promote(rel)
            rollout.discard(rel, why)
            rollout.roll_back(rel.release, failure)


def stop(environment: str, engine_name: str, environ: dict[str, str] | None = None,
         say: Say = print) -> bool:
    """Stop the current release of the environment; False when nothing was deployed."""
    environ = os.environ if environ is None else environ
    if engine_name in CONTAINER_ENGINES:
        from ci_gen.deploy import target

        return target.stop(engine_name, environment, environ, say)
    edir = env_dir(environment, environ)
    if not (edir / "current.json").is_file():
        say(f"stop: nothing deployed in environment {environment}")
        return False
    with locked(edir, say):
        rel = read_release(edir / "current.json")
        if rel is None:
            say(f"stop: nothing deployed in environment {environment}")
            return False
        engine = engine_for(rel.engine, environ)
        was_running = engine.stop(rel, remove=True)
        (edir / "current.json").unlink()
        state = "stopped" if was_running else "was no longer running; forgot"
        say(f"stop: release {engine.describe(rel)} of {environment} {state}")
        return True


def rollback(environment: str, engine_name: str, health_timeout: float, dotenv: str = "",
             environ: dict[str, str] | None = None, say: Say = print) -> None:
    """Return the environment to its previous release (container engines: on the target)."""
    environ = os.environ if environ is None else environ
    if engine_name in CONTAINER_ENGINES:
        from ci_gen.deploy import target

        target.rollback(engine_name, environment, environ, say, health_timeout, dotenv)
        return
    edir = env_dir(environment, environ)
    with locked(edir, say):
        current, previous = _recorded_previous(edir)
        engine = engine_for("process", environ)
        say(f"rollback: stopping release {current.release}{_version(current)}")
        engine.stop(current, remove=True)
        say(f"rollback: starting release {previous.release}{_version(previous)}")
        restored = engine.restart(previous)
        ok, why = wait_healthy(lambda: engine.alive(restored), restored.release,
                               restored.health_url, health_timeout, say)
        if not ok:
            with contextlib.suppress(CiGenError):
                engine.stop(restored, remove=True)
            write_release(edir / "current.json", engine.restart(current))
            raise CiGenError(f"rollback: release {previous.release} is not healthy ({why}); "
                             f"release {current.release} started again")
        write_release(edir / "current.json", restored)
        write_release(edir / "releases" / restored.release / "release.json", restored)
        publish(dotenv, restored.url, restored.model_version)
        say(f"rollback: release {restored.release}{_version(restored)} serves {environment} "
            f"at {restored.url}")


def _version(rel: Release) -> str:
    return f" (model version {rel.model_version})" if rel.model_version else ""


def _rollback_point(edir: Path, rel: Release, previous: Release | None) -> str | None:
    """The release a rollback from `rel` returns to: the one it replaced, unless that one
    serves the same registered version (a redeploy), whose own rollback point is then
    inherited, so a rollback goes back to the previous registered version."""
    if previous is None:
        return None
    earlier = previous.extra.get("previous")
    if (rel.model_version and previous.model_version == rel.model_version
            and isinstance(earlier, str) and (edir / "releases" / earlier).is_dir()):
        return earlier
    return previous.release


def _recorded_previous(edir: Path) -> tuple[Release, Release]:
    """(current, the release it replaced), as the current one's promotion recorded them."""
    current = read_release(edir / "current.json")
    prev_id = current.extra.get("previous") if current else None
    previous = None
    if isinstance(prev_id, str) and "/" not in prev_id and prev_id not in (".", ".."):
        previous = read_release(edir / "releases" / prev_id / "release.json")
    if current is None or previous is None or not previous.cmd:
        raise CiGenError(f"rollback: no previous release of {edir.name} recorded on this runner")
    return current, previous


@dataclass
class _Rollout:
    """One deploy of an environment, step by step, under its lock."""

    spec: Spec
    engine: Engine
    edir: Path
    say: Say
    previous: Release | None = None
    prev_engine: Engine | None = None
    started: Release | None = None  # the new release once running (what to stop on failure)

    @property
    def releases(self) -> Path:
        return self.edir / "releases"

    def prepare(self, environ: dict[str, str]) -> Release:
        """A new release directory with release.json: how to start it (and start it again)."""
        self.releases.mkdir(parents=True, exist_ok=True)
        spec = self.spec
        port = free_port(spec.host) if spec.port == 0 else spec.port
        rid = new_release_id(self.releases, environ)
        rdir = self.releases / rid
        rdir.mkdir()
        url = f"http://{spec.host}:{port}"
        rel = Release(release=rid, environment=spec.environment, engine=self.engine.name,
                      host=spec.host, port=port, url=url, health_url=url + spec.health,
                      model_name=spec.model_name, health_timeout=spec.health_timeout,
                      created=_dt.datetime.now().isoformat(timespec="seconds"),
                      model_version=spec.model_version or None)
        try:
            rel = self.engine.prepare(spec, rel, rdir)
            write_release(rdir / "release.json", rel)
        except (OSError, CiGenError) as exc:
            shutil.rmtree(rdir, ignore_errors=True)
            raise CiGenError(f"cannot prepare release {rid} in {rdir}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
        return rel

    def stop_previous(self, environ: dict[str, str]) -> None:
        """Stop (keep) the serving release: the new one takes its port."""
        if self.previous:
            self.prev_engine = engine_for(self.previous.engine, environ)
            self.say(f"deploy: stopping previous release {self.prev_engine.describe(self.previous)}")
            self.prev_engine.stop(self.previous, remove=False)

    def start(self, rel: Release) -> tuple[Release, bool, str]:
        """Start the new release and wait for its health URL: (record, healthy, why)."""
        note = f"; {self.spec.engine_note}" if self.spec.engine_note else ""
        self.say(f"deploy: starting release {rel.release}{_version(rel)} with engine "
                 f"{self.engine.name}{note} on {rel.url}")
        if port_in_use(rel.host, rel.port):
            return rel, False, f"port {rel.port} on {rel.host} is already in use by another program"
        try:
            rel = self.engine.start(rel)
        except CiGenError as exc:
            return rel, False, str(exc)
        self.started = rel
        write_release(self.releases / rel.release / "release.json", rel)
        return rel, *wait_healthy(lambda: self.engine.alive(rel), rel.release, rel.health_url,
                                  self.spec.health_timeout, self.say)

    def promote(self, rel: Release) -> Release:
        """The healthy release becomes current; the previous one and old releases go."""
        previous = self.previous
        point = _rollback_point(self.edir, rel, previous)
        if point:  # what a rollback returns to
            rel = dataclasses.replace(rel, extra={**rel.extra, "previous": point})
            write_release(self.releases / rel.release / "release.json", rel)
        write_release(self.edir / "current.json", rel)
        publish(self.spec.dotenv, rel.url, rel.model_version)
        removed = prune(self.releases, {rel.release, point} if point else {rel.release})
        self.say(f"deploy: release {rel.release}{_version(rel)} is healthy at {rel.url}"
                 + (f" (replaced {previous.release}{_version(previous)})" if previous else ""))
        if removed:
            self.say(f"deploy: pruned old releases {', '.join(removed)}")
        return rel

    def discard(self, rel: Release, why: str) -> None:
        """Say why the new release is unhealthy, show its log, remove it."""
        self.say(f"deploy: release {rel.release} is not healthy: {why}")
        # Best effort whatever happens: restoring the previous release comes next.
        with contextlib.suppress(Exception):
            tail = self.engine.log_tail(rel) if rel.pid or rel.container else ""
            if tail:
                self.say(f"deploy: last lines of release {rel.release}'s log:")
                self.say("\n".join("    " + line for line in tail.splitlines()))
        with contextlib.suppress(Exception):
            self.engine.stop(rel, remove=True)

    def roll_back(self, rid: str, failure: str = "") -> NoReturn:
        """Start the previous release again; always raises (the deploy failed). `failure`:
        what broke the deploy (empty: the release never became healthy)."""
        waited = f"{self.spec.health_timeout:g}s"
        what = (f"release {rid} failed ({failure})" if failure
                else f"release {rid} never became healthy in {waited}")
        previous, prev_engine = self.previous, self.prev_engine
        if not previous or not prev_engine:
            raise CiGenError(f"{what}; no previous release to restore")
        self.say(f"deploy: restoring previous release {previous.release}")
        try:
            restored = prev_engine.restart(previous)
            ok, why = wait_healthy(lambda: prev_engine.alive(restored), restored.release,
                                   restored.health_url,
                                   float(previous.health_timeout or self.spec.health_timeout), self.say)
        except BaseException as exc:  # noqa: BLE001 - the job must still say what is serving
            ok, why, restored = False, reason(exc), previous
        write_release(self.edir / "current.json", restored)
        prev_dir = self.releases / previous.release
        if prev_dir.is_dir():
            write_release(prev_dir / "release.json", restored)
        if not ok:
            raise CiGenError(f"{what}; previous release {previous.release} could not be "
                             f"restored ({why})")
        self.say(f"deploy: previous release {previous.release}{_version(previous)} is serving "
                 f"again at {previous.url}")
        raise CiGenError(f"{what}; previous release {previous.release} restored")
