"""The Docker Engine API, as Docker and Podman (its Docker-compatible service) both serve it.

Plain HTTP/1.1 over the endpoint's socket (unix, TLS, or ssh's dial-stdio), so the job needs
no docker or podman client. Paths carry no API version: each engine answers in its own, and
the few fields used here (Image, Labels, Env, HostConfig.PortBindings) are the same in all.

Why not ci_gen.http (requests): requests speaks TCP only; a unix socket or ssh's dial-stdio
would need a new dependency (requests-unixsocket) or a transport adapter as long as this
file. So this client is bounded by hand as ci_gen.http is: a total deadline per call (a
timer shuts the socket down, so an engine that trickles its answer cannot hold the job), a
size limit on every body, and every answer parsed with ci_gen.parse models (one line naming
the field and the call).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import urllib.parse
from typing import Any, Optional

from pydantic import Field, RootModel

from ci_gen.deploy.endpoint import Endpoint
from ci_gen.errors import CiGenError, shown
from ci_gen.parse import Model, parse, parse_json

TIMEOUT = 60.0
PULL_TIMEOUT = 900.0
MAX_BODY = 8 * 1024 * 1024  # a listing of a few containers, an inspect, a log tail
MAX_PULL_BODY = 64 * 1024 * 1024  # a pull's progress stream


# A container id goes into request paths: hex (or a name), never `/`, `?` or `..`.
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


# -- the answers used, as typed models (fields the code reads only) --------------------------

class ContainerItem(Model):
    """One entry of GET /containers/json."""

    Id: str = Field(pattern=_ID)
    Names: list[str] = []
    State: str = ""
    Labels: Optional[dict[str, str]] = None


class ContainerList(RootModel[list[ContainerItem]]):
    pass


class Created(Model):
    """POST /containers/create."""

    Id: str = Field(pattern=_ID)


class ContainerState(Model):
    Running: bool = False
    ExitCode: Optional[int] = None


class Inspected(Model):
    """GET /containers/{id}/json."""

    State: ContainerState = ContainerState()


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
             timeout: float = TIMEOUT, ok: tuple[int, ...] = (200, 201, 204, 304),
             max_bytes: int = MAX_BODY) -> tuple[int, bytes]:
        """(status, body) within `timeout` seconds in all and `max_bytes`; an engine error, a
        lost connection, a late or too large answer is one CiGenError line."""
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        self.conn.timeout = timeout
        if self.conn.sock is not None:
            self.conn.sock.settimeout(timeout)
        late = threading.Event()
        # The call's socket, kept here: http.client drops it once an answer that closes begins.
        sockets: list[socket.socket] = []
        timer = threading.Timer(timeout, self._cut, args=(late, sockets))
        timer.daemon = True
        timer.start()
        try:
            self.conn.request(method, url, body=data, headers=hdrs)
            if self.conn.sock is not None:
                sockets.append(self.conn.sock)
            resp = self.conn.getresponse()
            status, payload = resp.status, _read(resp, max_bytes)
        except _TooLarge:
            self.conn.close()
            raise CiGenError(f"the engine at {self.endpoint.url} answered {method} {path} with "
                             f"more than {max_bytes // (1024 * 1024)} MiB") from None
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            if late.is_set():
                raise self.endpoint.unreachable(
                    f"no complete answer to {method} {path} within {timeout:g} s") from None
            why = self.endpoint.ssh_error() or str(exc) or type(exc).__name__
            raise self.endpoint.unreachable(why) from None
        finally:
            timer.cancel()
        if late.is_set():  # cut at the deadline: what was read is not the whole answer
            self.conn.close()
            raise self.endpoint.unreachable(
                f"no complete answer to {method} {path} within {timeout:g} s") from None
        if status not in ok:
            raise EngineError(status, _message(payload) or f"HTTP {status}")
        return status, payload

    def _cut(self, late: threading.Event, sockets: list[socket.socket]) -> None:
        """The call's deadline passed: shut its socket, so a blocked read returns at once."""
        late.set()
        for sock in sockets or [s for s in (self.conn.sock,) if s is not None]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def json(self, method: str, path: str, **kw: Any) -> Any:
        _, payload = self.call(method, path, **kw)
        if not payload.strip():
            return None
        return parse_json(_Any, payload, f"engine answer to {method} {path}").root

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
                               timeout=PULL_TIMEOUT, max_bytes=MAX_PULL_BODY)
        for line in payload.decode(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(event, dict) and event.get("error"):
                raise EngineError(200, str(event["error"]))

    def containers(self, labels: dict[str, str]) -> list[ContainerItem]:
        filters = json.dumps({"label": [f"{k}={v}" for k, v in sorted(labels.items())]})
        data = self.json("GET", "/containers/json", query={"all": "1", "filters": filters})
        return parse(ContainerList, data or [], "engine answer to GET /containers/json").root

    def create(self, name: str, config: dict[str, Any]) -> str:
        data = self.json("POST", "/containers/create", query={"name": name}, body=config)
        return parse(Created, data, "engine answer to POST /containers/create").Id

    def start(self, cid: str) -> None:
        self.call("POST", f"/containers/{cid}/start")

    def stop(self, cid: str, grace: int = 10) -> None:
        self.call("POST", f"/containers/{cid}/stop", query={"t": str(grace)}, timeout=grace + TIMEOUT)

    def remove(self, cid: str) -> None:
        self.call("DELETE", f"/containers/{cid}", query={"force": "1"}, ok=(200, 204, 404))

    def inspect(self, cid: str) -> Inspected | None:
        try:
            data = self.json("GET", f"/containers/{cid}/json")
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise
        return parse(Inspected, data, f"engine answer to GET /containers/{cid[:12]}/json")

    def logs(self, cid: str, tail: int = 30) -> str:
        _, payload = self.call("GET", f"/containers/{cid}/logs",
                               query={"stdout": "1", "stderr": "1", "tail": str(tail)})
        return demux(payload).decode(errors="replace").rstrip()


class _Any(RootModel[Any]):
    """Any JSON: the strict JSON reading of ci_gen.parse (no NaN, depth bounded) before the
    answer's own model."""


class _TooLarge(Exception):
    pass


def _read(resp: http.client.HTTPResponse, limit: int) -> bytes:
    declared = resp.getheader("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge()
    chunks, total = [], 0
    while True:
        # read(n), not read1: it marks the response done when its length is reached, so the
        # kept-alive connection can send the next request (the call's timer bounds the wait).
        chunk = resp.read(64 * 1024)
        if not chunk:
            if resp.length:  # the connection ended before the declared length
                raise http.client.IncompleteRead(b"".join(chunks), resp.length)
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise _TooLarge()
        chunks.append(chunk)


class EngineError(CiGenError):
    """The engine refused a request (its own message, one line)."""

    def __init__(self, status: int, message: str):
        self.status = status
        lines = message.strip().splitlines()
        super().__init__(shown(lines[-1], 300)[1:-1] if lines else f"HTTP {status}")


def _message(payload: bytes) -> str:
    """The engine's own error message, printable (no control characters) and short."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        text = payload.decode(errors="replace").strip()
    else:
        text = str(data.get("message") or "") if isinstance(data, dict) else ""
    return shown(text, 300)[1:-1] if text else ""


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
