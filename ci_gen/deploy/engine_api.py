"""The Docker Engine API, as Docker and Podman (its Docker-compatible service) both serve it.

Plain HTTP/1.1 over the endpoint's socket (unix, TLS, or ssh's dial-stdio), so the job needs
no docker or podman client. Paths carry no API version: each engine answers in its own, and
the few fields used here (Image, Labels, Env, HostConfig.PortBindings) are the same in all.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from typing import Any

from ci_gen.deploy.endpoint import Endpoint
from ci_gen.errors import CiGenError

TIMEOUT = 60.0
PULL_TIMEOUT = 900.0


class _Connection(http.client.HTTPConnection):
    def __init__(self, endpoint: Endpoint):
        super().__init__("localhost", timeout=TIMEOUT)  # the Host header engines expect
        self.endpoint = endpoint

    def connect(self) -> None:
        self.sock = self.endpoint.connect()
        self.sock.settimeout(self.timeout)


class EngineAPI:
    """One engine, one kept-alive connection (one ssh session for an ssh target)."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.conn = _Connection(endpoint)

    def close(self) -> None:
        self.conn.close()
        self.endpoint.close()

    def __enter__(self) -> EngineAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, query: dict[str, str] | None = None,
             body: Any = None, headers: dict[str, str] | None = None,
             timeout: float = TIMEOUT, ok: tuple[int, ...] = (200, 201, 204, 304)) -> tuple[int, bytes]:
        """(status, body); an engine error or a lost connection is a CiGenError."""
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        self.conn.timeout = timeout
        if self.conn.sock is not None:
            self.conn.sock.settimeout(timeout)
        try:
            self.conn.request(method, url, body=data, headers=hdrs)
            resp = self.conn.getresponse()
            status, payload = resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            why = self.endpoint.ssh_error() or str(exc) or type(exc).__name__
            raise self.endpoint.unreachable(why) from None
        if status not in ok:
            raise EngineError(status, _message(payload) or f"HTTP {status}")
        return status, payload

    def json(self, method: str, path: str, **kw: Any) -> Any:
        _, payload = self.call(method, path, **kw)
        return json.loads(payload) if payload.strip() else None

    # -- operations ------------------------------------------------------------------------

    def ping(self) -> None:
        self.call("GET", "/_ping")

    def pull(self, image: str, auth: dict[str, str] | None) -> None:
        """Pull `image`; credentials go in this request's X-Registry-Auth only, so nothing is
        stored on the target. Engines answer 200 and report a failure inside the stream."""
        repo, tag = split_image(image)
        query = {"fromImage": repo, "tag": tag}
        headers = {"X-Registry-Auth": encode_auth(auth)} if auth else {}
        _, payload = self.call("POST", "/images/create", query=query, headers=headers,
                               timeout=PULL_TIMEOUT)
        for line in payload.decode(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("error"):
                raise EngineError(200, str(event["error"]))

    def containers(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        filters = json.dumps({"label": [f"{k}={v}" for k, v in sorted(labels.items())]})
        return self.json("GET", "/containers/json", query={"all": "1", "filters": filters}) or []

    def create(self, name: str, config: dict[str, Any]) -> str:
        return self.json("POST", "/containers/create", query={"name": name}, body=config)["Id"]

    def start(self, cid: str) -> None:
        self.call("POST", f"/containers/{cid}/start")

    def stop(self, cid: str, grace: int = 10) -> None:
        self.call("POST", f"/containers/{cid}/stop", query={"t": str(grace)}, timeout=grace + TIMEOUT)

    def remove(self, cid: str) -> None:
        self.call("DELETE", f"/containers/{cid}", query={"force": "1"}, ok=(200, 204, 404))

    def inspect(self, cid: str) -> dict[str, Any] | None:
        try:
            return self.json("GET", f"/containers/{cid}/json")
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise

    def logs(self, cid: str, tail: int = 30) -> str:
        _, payload = self.call("GET", f"/containers/{cid}/logs",
                               query={"stdout": "1", "stderr": "1", "tail": str(tail)})
        return demux(payload).decode(errors="replace").rstrip()


class EngineError(CiGenError):
    """The engine refused a request (its own message, one line)."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message.strip().splitlines()[-1][:300] if message.strip() else f"HTTP {status}")


def _message(payload: bytes) -> str:
    try:
        data = json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace").strip()[:300]
    return str(data.get("message") or "") if isinstance(data, dict) else ""


def split_image(image: str) -> tuple[str, str]:
    """(repository, tag or digest) of an image reference."""
    if "@" in image:
        repo, digest = image.split("@", 1)
        return repo, digest
    head, _, last = image.rpartition("/")
    if ":" in last:
        name, tag = last.rsplit(":", 1)
        return (f"{head}/{name}" if head else name), tag
    return image, "latest"


def registry_of(image: str) -> str:
    """The registry host an image reference names (Docker's rule: a first part with `.` or
    `:`, or `localhost`); "" for Docker Hub."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return ""


def encode_auth(auth: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()


def demux(payload: bytes) -> bytes:
    """The text of a non-TTY container log stream (8-byte frame headers), or the bytes as they
    are when the stream is not framed."""
    out, i = [], 0
    while i + 8 <= len(payload):
        if payload[i] not in (0, 1, 2) or payload[i + 1:i + 4] != b"\0\0\0":
            return payload
        size = int.from_bytes(payload[i + 4:i + 8], "big")
        out.append(payload[i + 8:i + 8 + size])
        i += 8 + size
    return b"".join(out) if i == len(payload) else payload
