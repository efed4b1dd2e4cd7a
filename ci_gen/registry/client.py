"""A plain-REST client for the MLflow API subset that GitLab's model registry implements.

GitLab (lib/api/ml/mlflow/) answers registered-models get/create/search, model-versions
create/get/update, runs create/get/update/log-batch/set-tag, and model files at the version
run's `artifact_uri` (`.../packages/ml_models/<id>/files/<file>`, flat files only). An MLflow
server answers the same calls (a superset); its files go through the artifact proxy
(`mlflow-artifacts:/...` URIs).

Transport is `ci_gen.http.Client`: the token travels as `Authorization: Bearer` to the
tracking server's origin only (a file download that GitLab redirects to object storage, or a
run whose `artifact_uri` names another host, gets none), each call has a deadline and a size
limit, and only idempotent calls are retried. A create whose outcome is unknown (5xx, the
answer lost) is never repeated blindly: the thing is looked up first. Every answer is parsed
into the models below (`ci_gen.parse`); a wrong shape is one `RegistryError` line naming the
field. Failures are one-line `RegistryError`s, without the token or a URL password.
"""

from __future__ import annotations

import os
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Mapping, Optional, TypeVar

from ci_gen.errors import CiGenError, shown
from ci_gen.http import MiB, Client, HttpError, Response, parse_url
from ci_gen.parse import Model, ParseError, parse

API = "/api/2.0/mlflow/"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts/"
# GitLab's documented tracking URI; anything else is treated as an MLflow server.
_GITLAB_URI = re.compile(r"/api/v4/projects/[^/]+/ml/mlflow/?$")
SEMVER_TAG = "gitlab.version"  # GitLab reads a version's SemVer from this tag
ANSWER_LIMIT = 16 * MiB        # a JSON answer (a page of 200 models with their versions)
# GitLab answers a plain 404 (no error_code) both for an endpoint it lacks and when the
# model registry is off or the token's user may not read it: lib/api/ml/mlflow/api_helpers.rb
# `check_api_read!`, lib/api/ml_model_packages.rb `not_found! unless can?(...)`.
PLAIN_404 = ("no such endpoint, or the model registry is disabled or not visible to this "
             "token's user (HTTP 404)")


class RegistryError(CiGenError):
    """The registry refused, failed or is unreachable, or answered something unusable."""


class NotFound(RegistryError):
    """RESOURCE_DOES_NOT_EXIST: the model, version or run is not there."""


class Unsupported(RegistryError):
    """GitLab's plain 404: no such endpoint, or the registry is not visible to the token."""


class OutcomeUnknown(RegistryError):
    """A create got no usable answer (5xx, or the answer was lost): it may have happened."""


# --- what the registry answers (lib/api/entities/ml/mlflow/, MLflow's REST API) ----------
# Optional strings are `str | None`: GitLab sends null (user_id), MLflow leaves empty fields
# out. Numbers are never strings and strings never numbers.

class Tag(Model):
    key: str
    value: Optional[str] = None


class Metric(Model):
    key: str
    value: float
    timestamp: int = 0
    step: int = 0


class VersionAnswer(Model):
    name: str
    version: str
    run_id: Optional[str] = None
    creation_timestamp: int = 0
    description: Optional[str] = None
    source: Optional[str] = None
    tags: list[Tag] = []
    aliases: list[str] = []


class RegisteredModel(Model):
    name: str
    description: Optional[str] = None
    latest_versions: list[VersionAnswer] = []


class _ModelAnswer(Model):
    registered_model: RegisteredModel


class _ModelsPage(Model):
    registered_models: list[RegisteredModel] = []
    next_page_token: Optional[str] = None


class _VersionsPage(Model):
    model_versions: list[VersionAnswer] = []
    next_page_token: Optional[str] = None


class _VersionAnswer(Model):
    model_version: VersionAnswer


class RunInfo(Model):
    run_id: str
    artifact_uri: str
    run_name: Optional[str] = None
    status: Optional[str] = None


class RunData(Model):
    metrics: list[Metric] = []
    params: list[Tag] = []
    tags: list[Tag] = []


class Run(Model):
    info: RunInfo
    data: RunData = RunData()

    def tag_map(self) -> dict[str, str]:
        return {t.key: t.value or "" for t in self.data.tags}


class _RunAnswer(Model):
    run: Run


class _RunsPage(Model):
    runs: list[Run] = []


class _Experiment(Model):
    experiment_id: str


class _ExperimentAnswer(Model):
    experiment: _Experiment


class _ExperimentCreated(Model):
    experiment_id: str


class _Empty(Model):
    pass


A = TypeVar("A", bound=Model)
T = TypeVar("T")


@dataclass
class Version:
    """A model version as both backends describe it."""

    name: str
    semver: str
    ident: str            # the backend's own `version` field (GitLab: the version's id)
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)
    created_ms: int = 0
    description: str = ""
    source: str = ""

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | VersionAnswer,
                 source: str = "model registry answer") -> Version:
        v = data if isinstance(data, VersionAnswer) else _parsed(VersionAnswer, data, source)
        tags = {t.key: t.value or "" for t in v.tags}
        aliases = [a for a in v.aliases if a]
        semver = tags.get(SEMVER_TAG) or (aliases[0] if aliases else v.version)
        return cls(name=v.name, semver=semver, ident=v.version, run_id=v.run_id or "",
                   tags=tags, created_ms=v.creation_timestamp,
                   description=v.description or "", source=v.source or "")


def _parsed(model: type[A], data: Any, source: str) -> A:
    try:
        return parse(model, data, source)
    except ParseError as exc:
        raise RegistryError(str(exc)) from None


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = float("nan")
    if not (0 <= value < 10**6):  # NaN fails this too
        raise RegistryError(f"{name} must be a number of at most 6 digits, not {shown(raw)}")
    return value


def tracking_uri(env: Mapping[str, str]) -> str:
    """MLFLOW_TRACKING_URI, else this project's GitLab model registry (in a GitLab job)."""
    if env.get("MLFLOW_TRACKING_URI"):
        return env["MLFLOW_TRACKING_URI"]
    if env.get("CI_API_V4_URL") and env.get("CI_PROJECT_ID"):
        return f"{env['CI_API_V4_URL']}/projects/{env['CI_PROJECT_ID']}/ml/mlflow"
    return ""


def configured(env: Mapping[str, str]) -> bool:
    """Whether the project uses a registry at all: a URI named, or GitLab's registry with its
    token (every GitLab job has CI_API_V4_URL, and GitLab's registry needs the token)."""
    return bool(env.get("MLFLOW_TRACKING_URI") or
                (env.get("MLFLOW_TRACKING_TOKEN") and tracking_uri(env)))


class Registry:
    """One tracking server: `uri` is MLFLOW_TRACKING_URI, `token` MLFLOW_TRACKING_TOKEN."""

    def __init__(self, uri: str, token: str | None = None) -> None:
        try:
            url = parse_url(uri, "the tracking URI (MLFLOW_TRACKING_URI)")
        except HttpError as exc:
            raise RegistryError(str(exc)) from None
        # `uri` never holds a URL password: the client sends it as basic auth, to its origin.
        self.uri = url.text.rstrip("/")
        self._token = token or None
        self.gitlab = bool(_GITLAB_URI.search(self.uri + "/"))
        self.retries = max(1, int(_env_number("CI_GEN_REGISTRY_RETRIES", 3)))
        self.timeout = _env_number("CI_GEN_REGISTRY_TIMEOUT", 30) or 30
        # GitLab asks for up to a minute (its throttle windows, lib/gitlab/rack_attack.rb).
        self.max_wait = _env_number("CI_GEN_REGISTRY_MAX_WAIT", 60)
        deadline = _env_number("CI_GEN_REGISTRY_DEADLINE", 600) or 600
        self.http = Client(uri.strip(), what="model registry", timeout=self.timeout,
                           deadline=deadline, retries=self.retries, max_wait=self.max_wait,
                           max_bytes=ANSWER_LIMIT,
                           headers={"Authorization": f"Bearer {token}"} if token else None)

    @classmethod
    def from_env(cls, uri: str = "", env: Mapping[str, str] | None = None) -> Registry:
        env = os.environ if env is None else env
        uri = uri or env.get("MLFLOW_TRACKING_URI", "")
        if not uri:
            raise RegistryError("no model registry: set MLFLOW_TRACKING_URI (GitLab: "
                                "$CI_API_V4_URL/projects/$CI_PROJECT_ID/ml/mlflow) or pass "
                                "--tracking-uri")
        return cls(uri, env.get("MLFLOW_TRACKING_TOKEN") or None)

    @classmethod
    def for_job(cls, env: Mapping[str, str]) -> Registry:
        """The registry a CI job uses (tracking_uri), waiting first for `ci-gen run`'s local
        server when CI_GEN_REGISTRY_WAIT says so: it starts while the first jobs run."""
        reg = cls.from_env(tracking_uri(env), env)
        wait = env.get("CI_GEN_REGISTRY_WAIT", "")
        if wait:
            if not re.fullmatch(r"[0-9]{1,4}", wait):
                raise RegistryError(f"CI_GEN_REGISTRY_WAIT must be a number of seconds, not "
                                    f"{shown(wait)}")
            reg.wait_until_up(float(wait))
        return reg

    def version_url(self, version: Version) -> str:
        """Where a person sees the version: GitLab's page (the version's `source`), or the
        MLflow UI's."""
        if self.gitlab and version.source.startswith("http"):
            return version.source
        if self.gitlab:
            return self.model_url(version.name)
        return f"{self.model_url(version.name)}/versions/{version.ident}"

    def model_url(self, name: str) -> str:
        """Where a person sees the model's versions."""
        if self.gitlab:
            return re.sub(r"/api/v4/projects/.*$", "", self.uri) + "/-/ml/models"
        return f"{self.uri}/#/models/{urllib.parse.quote(name)}"

    @property
    def where(self) -> str:
        """The server for messages: scheme, host and path, never credentials."""
        return shown(self.uri, 120)

    def wait_until_up(self, seconds: float) -> None:
        """Wait (bounded) until the server answers at all: a local one may still be starting.
        Gives up silently; the next call then fails with its own one-line error."""
        probe = Client(self.uri, what="model registry", timeout=2, deadline=3, retries=1,
                       max_bytes=ANSWER_LIMIT)  # a UI page is an answer too, whatever its size
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                probe.request("GET", self.uri, what="a readiness probe")
                return  # an answer, even an error one
            except HttpError:
                time.sleep(0.5)

    # --- transport ---------------------------------------------------------------------
    def _request(self, method: str, url: str, what: str, *, idempotent: bool | None = None,
                 max_bytes: int | None = None, **kw: Any) -> Response:
        try:
            return self.http.request(method, url, what=what, idempotent=idempotent,
                                     max_bytes=max_bytes, **kw)
        except HttpError as exc:
            unsafe = idempotent is False or (idempotent is None and method == "POST")
            raise (OutcomeUnknown if unsafe else RegistryError)(str(exc)) from None

    def _fail(self, resp: Response, what: str) -> RegistryError:
        status = resp.status
        try:
            payload = resp.json("error")
        except HttpError:
            payload = None
        payload = payload if isinstance(payload, dict) else {}
        code = payload.get("error_code")
        code = code if isinstance(code, str) else ""
        message = payload.get("message") or payload.get("error") or ""
        message = message if isinstance(message, str) else shown(message, 160)
        if status in (401, 403):
            return RegistryError(
                f"model registry at {self.where} refused the token for {what} (HTTP {status}): "
                "check MLFLOW_TRACKING_TOKEN (GitLab: an access token with api scope, "
                "Developer role)")
        if status == 404 and code == "RESOURCE_DOES_NOT_EXIST":
            return NotFound(f"{what}: not found in the model registry at {self.where}")
        if status == 404:
            return Unsupported(f"{what}: the model registry at {self.where} answered {PLAIN_404}")
        if status == 429:
            return RegistryError(f"model registry at {self.where} still asks to slow down after "
                                 f"{self.retries} attempt(s) at {what} (HTTP 429)")
        detail = " ".join(x for x in (code, message) if x)
        error = OutcomeUnknown if status >= 500 else RegistryError
        # The server's text is shown escaped (shown): an ESC byte never reaches a terminal.
        return error(f"model registry at {self.where} failed {what} (HTTP {status}"
                     f"{': ' + shown(detail, 160) if detail else ''})")

    def call(self, method: str, endpoint: str, payload: Mapping[str, Any] | None = None,
             what: str = "", answer: type[A] | None = None, *,
             idempotent: bool | None = None) -> Any:
        """One REST call: GET takes `payload` as the query, POST/PATCH as a JSON body. The
        answer parsed as `answer` (a dict when none is named). A POST is sent once unless
        `idempotent`; its 5xx or lost answer is OutcomeUnknown."""
        what = what or f"{method} {endpoint}"
        url = self.uri + API + endpoint
        if method == "GET":
            resp = self._request(method, url, what, params=dict(payload or {}))
        else:
            resp = self._request(method, url, what, json_body=dict(payload or {}),
                                 idempotent=idempotent)
        if resp.status >= 300:
            raise self._fail(resp, what)
        source = f"model registry answer to {what}"
        try:
            data = resp.json(source) if resp.body.strip() else {}
        except HttpError as exc:
            raise RegistryError(str(exc)) from None
        if answer is None:
            return data if isinstance(data, dict) else {}
        return _parsed(answer, data, source)

    def _create(self, what: str, send: Callable[[], T], lookup: Callable[[], T | None]) -> T:
        """A create that is never repeated blindly: after an unknown outcome, `lookup` first
        (it may have happened); only when it finds nothing is the create sent again."""
        for attempt in range(1, self.retries + 1):
            try:
                return send()
            except OutcomeUnknown as exc:
                found = lookup()
                if found is not None:
                    return found
                if attempt == self.retries:
                    raise RegistryError(f"{exc} (not created; tried {attempt} time(s))") from None
                time.sleep(min(self.max_wait, 0.5 * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")

    # --- registered models -------------------------------------------------------------
    def model(self, name: str) -> RegisteredModel:
        return self.call("GET", "registered-models/get", {"name": name},
                         f"model {shown(name)}", _ModelAnswer).registered_model

    def get_model(self, name: str) -> dict[str, Any]:
        return self.model(name).model_dump()

    def _model_or_none(self, name: str) -> RegisteredModel | None:
        try:
            return self.model(name)
        except NotFound:
            return None

    def ensure_model(self, name: str, description: str = "") -> bool:
        """Create the registered model when missing; True when it was created."""
        if self._model_or_none(name) is not None:
            return False

        def send() -> bool:
            try:
                self.call("POST", "registered-models/create",
                          {"name": name, "description": description},
                          f"create model {shown(name)}", _Empty)
            except RegistryError as exc:
                if "RESOURCE_ALREADY_EXISTS" not in str(exc) or isinstance(exc, OutcomeUnknown):
                    raise
                return False  # created meanwhile: fine
            return True

        return self._create(f"create model {shown(name)}", send,
                            lambda: True if self._model_or_none(name) is not None else None)

    def models(self) -> list[RegisteredModel]:
        found: list[RegisteredModel] = []
        token = ""
        for _ in range(10_000):  # a server that always names a next page ends too
            query = {"max_results": 200, **({"page_token": token} if token else {})}
            page = self.call("GET", "registered-models/search", query, "list models",
                             _ModelsPage)
            found += page.registered_models
            token = page.next_page_token or ""
            if not token:
                return found
        raise RegistryError(f"model registry at {self.where} kept naming a next page of models")

    def list_models(self) -> list[dict[str, Any]]:
        return [m.model_dump() for m in self.models()]

    # --- model versions ----------------------------------------------------------------
    def list_versions(self, name: str) -> list[Version]:
        """Every version of `name`: MLflow's search, or (GitLab, which has no version search)
        the registered model's own list, which GitLab fills with all its versions."""
        source = f"model registry answer to list versions of {shown(name)}"
        if not self.gitlab:
            self.model(name)  # MLflow's search finds nothing for an unknown model: say so
            found: list[Version] = []
            token = ""
            for _ in range(10_000):
                query = {"filter": f"name='{name}'", "max_results": 200,
                         **({"page_token": token} if token else {})}
                page = self.call("GET", "model-versions/search", query,
                                 f"list versions of {shown(name)}", _VersionsPage)
                found += [Version.from_api(v, source) for v in page.model_versions]
                token = page.next_page_token or ""
                if not token:
                    return found
            raise RegistryError(f"model registry at {self.where} kept naming a next page of "
                                "versions")
        return [Version.from_api(v, source) for v in self.model(name).latest_versions]

    def create_version(self, name: str, semver: str, tags: Mapping[str, str],
                       run_id: str = "", source: str = "", description: str = "") -> Version:
        """Version `semver` of `name`. After an unknown outcome, or when the SemVer is taken
        ("Version has already been taken"), the existing version is this one when it was made
        for the same commit; otherwise that is one line."""
        what = f"create version {semver} of {shown(name)}"
        all_tags = {**tags, SEMVER_TAG: semver}
        payload: dict[str, Any] = {
            "name": name, "source": source, "description": description,
            "tags": [{"key": k, "value": v} for k, v in all_tags.items()]}
        if run_id:
            payload["run_id"] = run_id

        def existing() -> Version | None:
            same = [v for v in self.list_versions(name) if v.semver == semver]
            if not same:
                return None
            # The identity tags (commit, and the model hash `register` records) say whether
            # a version that exists is the one this call made.
            mine = [v for v in same if all(v.tags.get(k) == all_tags[k] for k in tags
                                           if k.startswith("ci_gen.commit")
                                           or k == "ci_gen.model_sha256")]
            if not mine:
                raise RegistryError(f"{what}: version {semver} already exists in the model "
                                    f"registry at {self.where}, made for another commit "
                                    "or model")
            return mine[0]

        def send() -> Version:
            try:
                out = self.call("POST", "model-versions/create", payload, what, _VersionAnswer)
            except RegistryError as exc:
                if isinstance(exc, OutcomeUnknown) or not re.search(
                        r"already been taken|RESOURCE_ALREADY_EXISTS", str(exc)):
                    raise
                found = existing()
                if found is None:
                    raise
                return found
            return Version.from_api(out.model_version, f"model registry answer to {what}")

        return self._create(what, send, existing)

    # --- runs --------------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        """The experiment called `name`, created when missing (MLflow servers only; GitLab
        makes a model's experiment, `[model]NAME`, itself)."""
        def lookup() -> str | None:
            try:
                return self.call("GET", "experiments/get-by-name", {"experiment_name": name},
                                 f"experiment {shown(name)}",
                                 _ExperimentAnswer).experiment.experiment_id
            except NotFound:
                return None

        found = lookup()
        if found is not None:
            return found
        return self._create(f"create experiment {shown(name)}", lambda: self.call(
            "POST", "experiments/create", {"name": name}, f"create experiment {shown(name)}",
            _ExperimentCreated).experiment_id, lookup)

    def create_run(self, experiment_id: str, run_name: str) -> dict[str, Any]:
        """A new run called `run_name`; after an unknown outcome, the run of that name (MLflow's
        runs/search) is taken instead of making a second one."""
        def lookup() -> Run | None:
            query = {"experiment_ids": [experiment_id], "max_results": 10,
                     "filter": f"attributes.run_name = '{run_name}'"}
            page = self.call("POST", "runs/search", query, "find run", _RunsPage,
                             idempotent=True)
            return page.runs[0] if page.runs else None

        run = self._create("create run", lambda: self.call("POST", "runs/create", {
            "experiment_id": experiment_id, "run_name": run_name,
            "start_time": int(time.time() * 1000)}, "create run", _RunAnswer).run, lookup)
        return run.model_dump()

    def run(self, run_id: str) -> Run:
        return self.call("GET", "runs/get", {"run_id": run_id}, f"run {shown(run_id)}",
                         _RunAnswer).run

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self.run(run_id).model_dump()

    def log_batch(self, run_id: str, params: Mapping[str, str], metrics: Mapping[str, float],
                  tags: Mapping[str, str]) -> None:
        """Log onto the run. After an unknown outcome the run is read back: when every param
        and tag is there, the batch arrived (sending it again would log the metrics twice)."""
        now = int(time.time() * 1000)
        body = {"run_id": run_id,
                "params": [{"key": k, "value": str(v)} for k, v in params.items()],
                "metrics": [{"key": k, "value": float(v), "timestamp": now, "step": 0}
                            for k, v in metrics.items()],
                "tags": [{"key": k, "value": str(v)} for k, v in tags.items()]}

        def arrived() -> bool | None:
            run = self.run(run_id)
            have = {p.key: p.value for p in run.data.params}
            keys = {m.key for m in run.data.metrics}
            done = (all(have.get(k) == str(v) for k, v in params.items())
                    and all(run.tag_map().get(k) == str(v) for k, v in tags.items())
                    and set(metrics) <= keys)
            return True if done else None

        def send() -> bool:
            self.call("POST", "runs/log-batch", body, "log params, metrics and tags", _Empty)
            return True

        self._create("log params, metrics and tags", send, arrived)

    def finish_run(self, run_id: str) -> None:
        # Setting a status is the same however often it is sent: safe to retry.
        self.call("POST", "runs/update", {"run_id": run_id, "status": "FINISHED",
                                          "end_time": int(time.time() * 1000)}, "finish run",
                  idempotent=True)

    # --- files ---------------------------------------------------------------------------
    def files_url(self, artifact_uri: str) -> str:
        """Where a run's flat files live over HTTP."""
        if artifact_uri.startswith("mlflow-artifacts:"):
            path = re.sub(r"^mlflow-artifacts:(//[^/]*)?/?", "", artifact_uri)
            return self.uri + ARTIFACTS_API + path.strip("/") + "/"
        if re.match(r"^https?://", artifact_uri):
            try:
                parse_url(artifact_uri, "the run's artifact_uri")
            except HttpError as exc:
                raise RegistryError(str(exc)) from None
            return artifact_uri.rstrip("/") + "/"
        raise RegistryError(
            f"the run's files are at {shown(artifact_uri)}, which ci-gen cannot reach over "
            "HTTP: start the MLflow server with --artifacts-destination (proxied artifacts)")

    def put_file(self, base: str, name: str, data: bytes) -> None:
        """Upload one file. A PUT of a package file adds a file to the package on GitLab, so
        after an unknown outcome the file is read back and only sent again when it is not
        there whole."""
        _check_flat(name)
        url = base + urllib.parse.quote(name)
        what = f"upload {name}"

        def send() -> bool:
            resp = self._request("PUT", url, what, data=data, idempotent=False,
                                 headers={"Content-Type": "application/octet-stream"})
            if resp.status >= 300:
                raise self._fail(resp, what)
            return True

        def arrived() -> bool | None:
            try:
                return True if self.get_file(base, name, len(data)) == data else None
            except NotFound:
                return None

        self._create(what, send, arrived)

    def get_file(self, base: str, name: str, max_bytes: int = 1 * MiB,
                 sink: BinaryIO | None = None) -> bytes:
        """One file, refused while reading once it passes `max_bytes` (the manifest's size);
        written to `sink` when given (a model is not held in memory), else returned."""
        _check_flat(name)
        what = f"download {name}"
        resp = self._request("GET", base + urllib.parse.quote(name), what,
                             max_bytes=max_bytes, headers={"Accept": "*/*"}, sink=sink)
        if resp.status >= 300:
            if resp.status == 404:
                raise NotFound(f"file {name}: not found in the model registry at {self.where}")
            raise self._fail(resp, what)
        return resp.body


def _check_flat(name: str) -> None:
    # GitLab's registry takes flat files only (no artifact_path, no directories).
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", name):
        raise RegistryError(f"registry file names are flat (no directories): {shown(name)}")
