"""Releases on a container engine that outlives the job: deploy, roll back, stop.

The state is on the target, nowhere else: each release is a container named
`ci-gen-<project>-<environment>-<n>` and labelled with the project, environment, release
number, commit, URL, model and the registered model version it serves (when known).
The serving release ("current") is the newest running one; "previous" is the newest stopped
one before it that serves another registered version (else the newest stopped one before
it). So any job, on any runner, in any work tree, finds the same releases.

deploy: pull (credentials in the request only) → create → stop current → start → health at
the real URL; unhealthy: remove it and start the previous one again. Old releases beyond
KEEP_RELEASES are removed. rollback: current → previous. stop: every release removed.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NoReturn

from ci_gen.deploy.endpoint import from_environ
from ci_gen.deploy.engine_api import ContainerItem, EngineAPI, EngineError, registry_of
from ci_gen.deploy.guard import reason, sigterm_raises
from ci_gen.deploy.health import bind_addr, wait_healthy
from ci_gen.deploy.spec import Spec
from ci_gen.deploy.state import publish
from ci_gen.errors import CiGenError, shown
from ci_gen.patterns import RE_COMMIT_SHA, RE_PROJECT_SLUG

Say = Callable[[str], None]
CONTAINER_PORT = 8501  # TF Serving's REST port inside the image
KEEP_RELEASES = 3  # the serving one and two to roll back to
LABEL = "ci-gen."
PROJECT, ENVIRONMENT, NUMBER, COMMIT = (LABEL + k for k in ("project", "environment", "release", "commit"))
URL, HEALTH_PATH, MODEL_NAME = (LABEL + k for k in ("url", "health-path", "model-name"))
MODEL_VERSION = LABEL + "model-version"  # the registered version the release serves
_SLUG, _SHA = re.compile(RE_PROJECT_SLUG), re.compile(RE_COMMIT_SHA)


@dataclass
class TargetRelease:
    """One release container as the target lists it."""

    cid: str
    name: str
    number: int
    running: bool
    url: str
    health_path: str
    commit: str = ""
    model_version: str = ""

    @property
    def health_url(self) -> str:
        return self.url + self.health_path

    def describe(self) -> str:
        commit = f", commit {self.commit[:8]}" if self.commit else ""
        version = f", model version {self.model_version}" if self.model_version else ""
        return f"release {self.number} ({self.name}{commit}{version})"

    @classmethod
    def from_listing(cls, item: ContainerItem) -> TargetRelease | None:
        labels = item.Labels or {}
        number = labels.get(NUMBER, "")
        if not (number.isdigit() and len(number) < 10):
            return None  # not one of ours, or tampered with: never touched
        names = item.Names or [item.Id]
        return cls(cid=item.Id, name=names[0].lstrip("/"), number=int(number),
                   running=item.State == "running", url=labels.get(URL, ""),
                   health_path=labels.get(HEALTH_PATH, ""), commit=labels.get(COMMIT, ""),
                   model_version=labels.get(MODEL_VERSION, ""))


def project_slug(environ: dict[str, str]) -> str:
    """Which project's releases: GitLab's CI_PROJECT_PATH_SLUG (two projects may both have a
    `production` on one target), `local` outside GitLab."""
    slug = environ.get("CI_PROJECT_PATH_SLUG", "") or "local"
    if not _SLUG.fullmatch(slug):
        raise CiGenError(f"CI_PROJECT_PATH_SLUG {shown(slug)} is not a GitLab project slug")
    return slug


class Target:
    """The environment's releases on one engine, through its API."""

    def __init__(self, api: EngineAPI, engine: str, project: str, environment: str, say: Say):
        self.api, self.engine, self.say = api, engine, say
        self.project, self.environment = project, environment

    def releases(self) -> list[TargetRelease]:
        items = self.api.containers({PROJECT: self.project, ENVIRONMENT: self.environment})
        found = (TargetRelease.from_listing(item) for item in items)
        return sorted((r for r in found if r), key=lambda r: r.number)

    @staticmethod
    def current(releases: list[TargetRelease]) -> TargetRelease | None:
        running = [r for r in releases if r.running]
        return running[-1] if running else None

    @staticmethod
    def previous(releases: list[TargetRelease], before: TargetRelease | None) -> TargetRelease | None:
        limit = before.number if before else None
        older = [r for r in releases if not r.running and (limit is None or r.number < limit)]
        # A redeploy of the same registered version is skipped: back to the previous version.
        other = [r for r in older if before and before.model_version
                 and r.model_version != before.model_version]
        return (other or older or [None])[-1]

    def alive(self, rel: TargetRelease) -> tuple[bool, str]:
        info = self.api.inspect(rel.cid)
        if info is None:
            return False, "container is gone"
        if info.State.Running:
            return True, "running"
        return False, f"container exited with code {info.State.ExitCode}"

    def healthy(self, rel: TargetRelease, timeout: float) -> tuple[bool, str]:
        return wait_healthy(lambda: self.alive(rel), rel.describe(), rel.health_url, timeout, self.say)

    def start(self, rel: TargetRelease, timeout: float) -> tuple[bool, str]:
        try:
            self.api.start(rel.cid)
        except EngineError as exc:
            return False, f"the engine could not start it: {exc}"
        return self.healthy(rel, timeout)

    def discard(self, rel: TargetRelease, why: str) -> None:
        """Say why a release is unhealthy, show its log, remove it."""
        self.say(f"deploy: {rel.describe()} is not healthy: {why}")
        # Best effort, whatever the engine answers: restoring the previous release comes next.
        with contextlib.suppress(Exception):
            tail = self.api.logs(rel.cid)
            if tail:
                self.say(f"deploy: last lines of {rel.name}'s log:")
                self.say("\n".join("    " + line for line in tail.splitlines()))
        with contextlib.suppress(Exception):
            self.api.remove(rel.cid)

    def prune(self, keep: int = KEEP_RELEASES) -> list[str]:
        releases = self.releases()
        current = self.current(releases)
        point = self.previous(releases, current)  # what a rollback returns to stays
        old = [r for r in releases if r not in (current, point)][:max(0, len(releases) - keep)]
        for rel in old:
            self.api.remove(rel.cid)
        return [r.name for r in old]


@contextlib.contextmanager
def connected(engine: str, environment: str, environ: dict[str, str], say: Say) -> Iterator[Target]:
    """The target DEPLOY_ENGINE_HOST names (or the runner's own engine), reachable, or a
    one-line error; the connection (and an ssh session) closed afterwards."""
    endpoint = from_environ(engine, environ)
    api = EngineAPI(endpoint)
    try:
        api.ping()
        mode = "runner-host mode, shell runners only" if endpoint.runner_host else "target"
        say(f"deploy: {engine} engine at {endpoint.url} ({mode})")
        yield Target(api, engine, project_slug(environ), environment, say)
    finally:
        api.close()


def registry_auth(image: str, environ: dict[str, str]) -> dict[str, str] | None:
    """The job's registry credentials, for the registry they belong to only (never sent to
    another registry): DEPLOY_REGISTRY_* when set, else GitLab's CI_REGISTRY_*."""
    registry = environ.get("DEPLOY_REGISTRY") or environ.get("CI_REGISTRY", "")
    user = environ.get("DEPLOY_REGISTRY_USER") or environ.get("CI_REGISTRY_USER", "")
    password = environ.get("DEPLOY_REGISTRY_PASSWORD") or environ.get("CI_REGISTRY_PASSWORD", "")
    if not (registry and user and password) or registry_of(image) != registry:
        return None
    return {"username": user, "password": password, "serveraddress": registry}


def container_config(spec: Spec, number: int, url: str, environ: dict[str, str],
                      project: str) -> dict[str, Any]:
    commit = environ.get("CI_COMMIT_SHA", "")
    labels = {PROJECT: project, ENVIRONMENT: spec.environment, NUMBER: str(number), URL: url,
              HEALTH_PATH: spec.health, MODEL_NAME: spec.model_name}
    if spec.model_version:
        labels[MODEL_VERSION] = spec.model_version
    if _SHA.fullmatch(commit):
        labels[COMMIT] = commit
    port = f"{CONTAINER_PORT}/tcp"
    env = [f"MODEL_NAME={spec.model_name}"] + [f"{k}={v}" for k, v in spec.env.items()]
    return {"Image": spec.image, "Labels": labels, "Env": env, "ExposedPorts": {port: {}},
            "HostConfig": {"PortBindings": {port: [{"HostIp": bind_addr(spec.host) or "",
                                                   "HostPort": str(spec.port)}]},
                           # A restarted target host brings the serving release back.
                           "RestartPolicy": {"Name": "unless-stopped"}}}


def deploy(spec: Spec, environ: dict[str, str], say: Say) -> TargetRelease:
    """Deploy `spec.image` as the environment's next release behind the health gate."""
    if spec.port == 0:
        raise CiGenError("port 0 (a free port) works with engine process only: a release on a "
                         "target needs a fixed port for its URL")
    url = f"http://{spec.host}:{spec.port}"
    with connected(spec.engine, spec.environment, environ, say) as target:
        releases = target.releases()
        current = target.current(releases)
        rel = _pull_and_create(target, spec, environ, releases, url)
        # From the first stop on, whatever ends the deploy (an unhealthy release, a dropped
        # connection, an answer that does not parse, a cancelled job) starts `current` again.
        with sigterm_raises() as guard:
            failure = ""
            try:
                for other in (r for r in releases if r.running):
                    say(f"deploy: stopping {other.describe()}")
                    target.api.stop(other.cid)
                say(f"deploy: starting {rel.describe()} on {url}")
                ok, why = target.start(rel, spec.health_timeout)
            except BaseException as exc:  # noqa: BLE001 - every ending restores (guard.py)
                ok, why = False, reason(exc)
                failure = why
            if not ok:
                guard.restoring()
                target.discard(rel, why)
                _restore(target, current, rel, spec.health_timeout, failure)
        publish(spec.dotenv, url, spec.model_version)
        removed = target.prune()
        say(f"deploy: {rel.describe()} is healthy at {url}"
            + (f" (replaced release {current.number})" if current else ""))
        if removed:
            say(f"deploy: removed old releases {', '.join(removed)}")
        return rel


def _pull_and_create(target: Target, spec: Spec, environ: dict[str, str],
                     releases: list[TargetRelease], url: str) -> TargetRelease:
    """The next release, created (not started): a refused pull or create changes nothing."""
    auth = registry_auth(spec.image, environ)
    target.say(f"deploy: pulling {spec.image} on the target"
               + (" with the job's registry credentials" if auth else " (no registry credentials)"))
    try:
        target.api.pull(spec.image, auth)
    except EngineError as exc:
        raise CiGenError(f"cannot pull {spec.image} on the target: {exc}") from None
    number = max((r.number for r in releases), default=0) + 1
    name = f"ci-gen-{target.project}-{spec.environment}-{number}"
    config = container_config(spec, number, url, environ, target.project)
    try:
        cid = target.api.create(name, config)
    except EngineError as exc:
        raise CiGenError(f"cannot create {name} on the target: {exc}") from None
    return TargetRelease(cid, name, number, False, url, spec.health, config["Labels"].get(COMMIT, ""),
                         spec.model_version)


def _restore(target: Target, previous: TargetRelease | None, failed: TargetRelease,
             timeout: float, failure: str = "") -> NoReturn:
    """Start `previous` again and raise one line saying how the deploy ended and whether the
    previous release serves again. `failure`: what broke the deploy (empty: unhealthy)."""
    what = (f"{failed.describe()} failed ({failure})" if failure
            else f"{failed.describe()} never became healthy")
    if previous is None:
        raise CiGenError(f"{what}; no previous release to restore")
    target.say(f"deploy: restoring {previous.describe()}")
    try:
        ok, why = target.start(previous, timeout)
    except BaseException as exc:  # noqa: BLE001 - the job must still say what is serving
        ok, why = False, reason(exc)
    if not ok:
        raise CiGenError(f"{what}; {previous.describe()} could not be restored ({why}): "
                         f"start it by hand")
    target.say(f"deploy: {previous.describe()} is serving again at {previous.url}")
    raise CiGenError(f"{what}; release {previous.number} restored")


def rollback(engine: str, environment: str, environ: dict[str, str], say: Say,
             timeout: float, dotenv: str = "") -> TargetRelease:
    """Return to the previous release; the one rolled back from is removed."""
    with connected(engine, environment, environ, say) as target:
        releases = target.releases()
        current = target.current(releases)
        previous = target.previous(releases, current)
        if previous is None:
            raise CiGenError(f"rollback: no previous release of {environment} on the target")
        with sigterm_raises() as guard:  # as deploy: whatever ends it, `current` starts again
            try:
                if current:
                    say(f"rollback: stopping {current.describe()}")
                    target.api.stop(current.cid)
                say(f"rollback: starting {previous.describe()}")
                ok, why = target.start(previous, timeout)
            except BaseException as exc:  # noqa: BLE001 - every ending restores (guard.py)
                ok, why = False, reason(exc)
            if not ok:
                guard.restoring()
                with contextlib.suppress(Exception):
                    target.api.stop(previous.cid)
                restarted = ""
                if current:
                    try:
                        target.api.start(current.cid)
                        restarted = f"release {current.number} started again"
                    except BaseException as exc:  # noqa: BLE001 - say what is serving
                        restarted = (f"release {current.number} could not be started again "
                                     f"({reason(exc)})")
                raise CiGenError(f"rollback: {previous.describe()} is not healthy ({why}); "
                                 + (restarted or "nothing serves"))
        if current:
            target.api.remove(current.cid)
        publish(dotenv, previous.url, previous.model_version)
        say(f"rollback: {previous.describe()} serves {environment} at {previous.url}"
            + (f"; release {current.number} removed" if current else ""))
        return previous


def stop(engine: str, environment: str, environ: dict[str, str], say: Say) -> bool:
    """Stop the environment: every release of it removed from the target. False when none."""
    with connected(engine, environment, environ, say) as target:
        releases = target.releases()
        if not releases:
            say(f"stop: nothing deployed in environment {environment}")
            return False
        for rel in releases:
            if rel.running:
                target.api.stop(rel.cid)  # its grace period, before remove's kill
            target.api.remove(rel.cid)
        names = ", ".join(r.name for r in releases)
        say(f"stop: environment {environment} stopped; removed {names}")
        return True
