"""A plain-REST client for the MLflow API subset that GitLab's model registry implements.

GitLab (lib/api/ml/mlflow/) answers registered-models get/create/search, model-versions
create/get/update, runs create/get/update/log-batch/set-tag, and model files at the version
run's `artifact_uri` (`.../packages/ml_models/<id>/files/<file>`, flat files only). An MLflow
server answers the same calls (a superset); its files go through the artifact proxy
(`mlflow-artifacts:/...` URIs). The token travels as `Authorization: Bearer` and is never
part of a message. Failures are one-line `RegistryError`s.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Mapping

from ci_gen.errors import CiGenError, shown

API = "/api/2.0/mlflow/"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts/"
# GitLab's documented tracking URI; anything else is treated as an MLflow server.
_GITLAB_URI = re.compile(r"/api/v4/projects/[^/]+/ml/mlflow/?$")
_RETRY_STATUS = {429, 502, 503, 504}
SEMVER_TAG = "gitlab.version"  # GitLab reads a version's SemVer from this tag


class RegistryError(CiGenError):
    """The registry refused, failed or is unreachable."""


class NotFound(RegistryError):
    """RESOURCE_DOES_NOT_EXIST: the model, version or run is not there."""


class Unsupported(RegistryError):
    """The endpoint itself does not exist on this server (GitLab's plain 404)."""


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
    def from_api(cls, data: Mapping[str, Any]) -> Version:
        tags = {t.get("key", ""): t.get("value", "") for t in data.get("tags") or []}
        aliases = [a for a in data.get("aliases") or [] if a]
        ident = str(data.get("version", ""))
        semver = tags.get(SEMVER_TAG) or (aliases[0] if aliases else ident)
        return cls(name=data.get("name", ""), semver=semver, ident=ident,
                   run_id=data.get("run_id") or "", tags=tags,
                   created_ms=int(data.get("creation_timestamp") or 0),
                   description=data.get("description") or "",
                   source=data.get("source") or "")


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw else default
    except ValueError:
        raise RegistryError(f"{name} must be a number, not {shown(raw)}") from None


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
        uri = uri.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", uri):
            raise RegistryError(f"tracking URI must be an http(s) URL, not {shown(uri)}")
        self.uri = uri
        self._token = token or None
        self.gitlab = bool(_GITLAB_URI.search(uri + "/"))
        self.retries = int(_env_number("CI_GEN_REGISTRY_RETRIES", 3))
        self.timeout = _env_number("CI_GEN_REGISTRY_TIMEOUT", 30)
        self.max_wait = _env_number("CI_GEN_REGISTRY_MAX_WAIT", 4)

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
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.uri, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # an answer, even an error one
            except (urllib.error.URLError, socket.timeout, ConnectionError):
                time.sleep(0.5)

    # --- transport ---------------------------------------------------------------------
    def _send(self, method: str, url: str, body: bytes | None, ctype: str) -> tuple[int, bytes]:
        headers = {"Accept": "application/json", "User-Agent": "ci-gen"}
        if body is not None:
            headers["Content-Type"] = ctype
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        attempts = max(1, self.retries)
        for attempt in range(1, attempts + 1):
            req = urllib.request.Request(url, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                data = exc.read()
                if exc.code not in _RETRY_STATUS or attempt == attempts:
                    return exc.code, data
            except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
                if attempt == attempts:
                    reason = getattr(exc, "reason", exc)
                    raise RegistryError(
                        f"model registry at {self.where} is not reachable ({_reason(reason)}) "
                        f"after {attempts} attempt(s)") from None
            time.sleep(min(self.max_wait, 0.5 * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")

    def _fail(self, status: int, data: bytes, what: str) -> RegistryError:
        try:
            payload = json.loads(data or b"{}")
        except ValueError:
            payload = {}
        payload = payload if isinstance(payload, dict) else {}
        code = payload.get("error_code", "")
        message = payload.get("message") or payload.get("error") or ""
        if status in (401, 403):
            return RegistryError(
                f"model registry at {self.where} refused the token for {what} (HTTP {status}): "
                "check MLFLOW_TRACKING_TOKEN (GitLab: an access token with api scope, "
                "Developer role)")
        if status == 404 and code == "RESOURCE_DOES_NOT_EXIST":
            return NotFound(f"{what}: not found in the model registry at {self.where}")
        if status == 404:
            return Unsupported(f"{what}: the model registry at {self.where} has no such "
                               "endpoint (HTTP 404)")
        detail = " ".join(str(x) for x in (code, message) if x)
        return RegistryError(f"model registry at {self.where} failed {what} (HTTP {status}"
                             f"{': ' + shown(detail, 160) if detail else ''})")

    def call(self, method: str, endpoint: str, payload: Mapping[str, Any] | None = None,
             what: str = "") -> dict[str, Any]:
        """One REST call: GET takes `payload` as the query, POST/PATCH as a JSON body."""
        url = self.uri + API + endpoint
        body = None
        if method == "GET" and payload:
            url += "?" + urllib.parse.urlencode(payload)
        elif payload is not None:
            body = json.dumps(payload).encode()
        status, data = self._send(method, url, body, "application/json")
        if status >= 300:
            raise self._fail(status, data, what or f"{method} {endpoint}")
        try:
            out = json.loads(data or b"{}")
        except ValueError:
            raise RegistryError(f"model registry at {self.where} answered {endpoint} with "
                                "something that is not JSON") from None
        return out if isinstance(out, dict) else {}

    # --- registered models -------------------------------------------------------------
    def get_model(self, name: str) -> dict[str, Any]:
        return self.call("GET", "registered-models/get", {"name": name},
                         f"model {shown(name)}")["registered_model"]

    def ensure_model(self, name: str, description: str = "") -> bool:
        """Create the registered model when missing; True when it was created."""
        try:
            self.get_model(name)
            return False
        except NotFound:
            pass
        try:
            self.call("POST", "registered-models/create",
                      {"name": name, "description": description}, f"create model {shown(name)}")
        except RegistryError as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc):  # created meanwhile: fine
                raise
            return False
        return True

    def list_models(self) -> list[dict[str, Any]]:
        models: list[dict[str, Any]] = []
        token = ""
        while True:
            query = {"max_results": 200, **({"page_token": token} if token else {})}
            out = self.call("GET", "registered-models/search", query, "list models")
            models += out.get("registered_models") or []
            token = out.get("next_page_token") or ""
            if not token:
                return models

    # --- model versions ----------------------------------------------------------------
    def list_versions(self, name: str) -> list[Version]:
        """Every version of `name`: MLflow's search, or (GitLab, which has no version search)
        the registered model's own list, which GitLab fills with all its versions."""
        if not self.gitlab:
            self.get_model(name)  # MLflow's search finds nothing for an unknown model: say so
            found: list[Version] = []
            token = ""
            while True:
                query = {"filter": f"name='{name}'", "max_results": 200,
                         **({"page_token": token} if token else {})}
                out = self.call("GET", "model-versions/search", query,
                                f"list versions of {shown(name)}")
                found += [Version.from_api(v) for v in out.get("model_versions") or []]
                token = out.get("next_page_token") or ""
                if not token:
                    return found
        model = self.get_model(name)
        return [Version.from_api(v) for v in model.get("latest_versions") or []]

    def create_version(self, name: str, semver: str, tags: Mapping[str, str],
                       run_id: str = "", source: str = "", description: str = "") -> Version:
        payload: dict[str, Any] = {
            "name": name, "source": source, "description": description,
            "tags": [{"key": k, "value": v} for k, v in {**tags, SEMVER_TAG: semver}.items()]}
        if run_id:
            payload["run_id"] = run_id
        out = self.call("POST", "model-versions/create", payload,
                        f"create version {semver} of {shown(name)}")
        return Version.from_api(out["model_version"])

    # --- runs --------------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        """The experiment called `name`, created when missing (MLflow servers only; GitLab
        makes a model's experiment, `[model]NAME`, itself)."""
        try:
            out = self.call("GET", "experiments/get-by-name", {"experiment_name": name},
                            f"experiment {shown(name)}")
            return str(out["experiment"]["experiment_id"])
        except NotFound:
            out = self.call("POST", "experiments/create", {"name": name},
                            f"create experiment {shown(name)}")
            return str(out["experiment_id"])

    def create_run(self, experiment_id: str, run_name: str) -> dict[str, Any]:
        out = self.call("POST", "runs/create", {
            "experiment_id": experiment_id, "run_name": run_name,
            "start_time": int(time.time() * 1000)}, "create run")
        return out["run"]

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self.call("GET", "runs/get", {"run_id": run_id}, f"run {shown(run_id)}")["run"]

    def log_batch(self, run_id: str, params: Mapping[str, str], metrics: Mapping[str, float],
                  tags: Mapping[str, str]) -> None:
        now = int(time.time() * 1000)
        self.call("POST", "runs/log-batch", {
            "run_id": run_id,
            "params": [{"key": k, "value": str(v)} for k, v in params.items()],
            "metrics": [{"key": k, "value": float(v), "timestamp": now, "step": 0}
                        for k, v in metrics.items()],
            "tags": [{"key": k, "value": str(v)} for k, v in tags.items()]},
            "log params, metrics and tags")

    def finish_run(self, run_id: str) -> None:
        self.call("POST", "runs/update", {"run_id": run_id, "status": "FINISHED",
                                          "end_time": int(time.time() * 1000)}, "finish run")

    # --- files ---------------------------------------------------------------------------
    def files_url(self, artifact_uri: str) -> str:
        """Where a run's flat files live over HTTP."""
        if artifact_uri.startswith("mlflow-artifacts:"):
            path = re.sub(r"^mlflow-artifacts:(//[^/]*)?/?", "", artifact_uri)
            return self.uri + ARTIFACTS_API + path.strip("/") + "/"
        if re.match(r"^https?://", artifact_uri):
            return artifact_uri.rstrip("/") + "/"
        raise RegistryError(
            f"the run's files are at {shown(artifact_uri)}, which ci-gen cannot reach over "
            "HTTP: start the MLflow server with --artifacts-destination (proxied artifacts)")

    def put_file(self, base: str, name: str, data: bytes) -> None:
        _check_flat(name)
        status, body = self._send("PUT", base + urllib.parse.quote(name), data,
                                  "application/octet-stream")
        if status >= 300:
            raise self._fail(status, body, f"upload {name}")

    def get_file(self, base: str, name: str) -> bytes:
        _check_flat(name)
        status, body = self._send("GET", base + urllib.parse.quote(name), None, "")
        if status >= 300:
            if status == 404:
                raise NotFound(f"file {name}: not found in the model registry at {self.where}")
            raise self._fail(status, body, f"download {name}")
        return body


def _check_flat(name: str) -> None:
    # GitLab's registry takes flat files only (no artifact_path, no directories).
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", name):
        raise RegistryError(f"registry file names are flat (no directories): {shown(name)}")


def _reason(reason: object) -> str:
    text = str(getattr(reason, "strerror", None) or reason)
    return text.replace("[Errno 111] ", "").strip() or "no answer"
