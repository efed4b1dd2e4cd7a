"""The one HTTP client of ci-gen: `requests`, with what every call to a server needs.

- Credentials go to their own origin only. Redirects are followed here, not by requests, so
  that no credential header (Authorization, PRIVATE-TOKEN, JOB-TOKEN, ...) crosses to another
  scheme, host or port: GitLab answers package downloads with a redirect to object storage
  (lib/api/helpers/file_upload_helpers + `present_carrierwave_file!` -> `redirect(cdn_fronted_url)`).
  URL user:password is taken out of the URL, sent as basic auth to that origin only, and never
  shown.
- Bounded: a deadline for the whole call (retries and every read included; a server that
  sends one byte a second cannot hold a job past it), a size limit on every body, at most
  `retries` attempts, and only idempotent requests retried (a POST that creates something is
  sent once unless its caller says it is safe to repeat). `Retry-After` is honoured, capped.
- One line for every failure (`HttpError`), with the origin and never a credential.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

from ci_gen.errors import CiGenError, shown

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 64 * MiB
_IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
RETRY_STATUS = frozenset({429, 502, 503, 504})
_REDIRECTS = {301, 302, 303, 307, 308}
_MAX_REDIRECTS = 5
# Headers that carry a credential: sent to the client's own origin only.
_CREDENTIAL_HEADERS = ("authorization", "private-token", "job-token", "cookie",
                       "proxy-authorization")


class HttpError(CiGenError):
    """A server could not be reached, answered too slowly or too much, or a URL is unusable."""


class Unreachable(HttpError):
    """No answer at all (refused, unknown host, timed out, broken off), after every attempt:
    callers that word "cannot reach" apart from "answered badly" catch this one."""

    def __init__(self, message: str, reason: str = "", attempts: int = 1) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.attempts = attempts


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class Url:
    """A checked http(s) URL: `text` has no user:password; `basic` holds them, if given."""

    text: str
    origin: Origin
    basic: tuple[str, str] | None = field(default=None, repr=False)

    def join(self, path: str) -> str:
        return self.text.rstrip("/") + "/" + path.lstrip("/")


def parse_url(raw: str, what: str = "URL") -> Url:
    """Check an http(s) URL as one line naming `what` on any defect: a port that is not a
    number, an unclosed IPv6 bracket, spaces, another scheme. Credentials in it are never
    part of the message."""
    raw = (raw or "").strip()
    # Everything up to the last "@" after the scheme may be a password, even in a URL too
    # broken to parse (an unencoded "/" or "@" in it): never shown.
    masked = re.sub(r"^([^:/]*://).*@", r"\g<1>***@", raw, flags=re.S)
    bad = f"{what} must be an http(s) URL like https://host/path, not {shown(masked)}"
    if not raw or any(c.isspace() or ord(c) < 32 for c in raw):
        raise HttpError(bad)
    try:
        parts = urlsplit(raw)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        # The library's reason may quote a piece of the URL: left out when it has credentials.
        reason = "" if "@" in raw else f" ({_no_secret(str(exc), raw)})"
        raise HttpError(bad + reason) from None
    if parts.scheme not in ("http", "https") or not host:
        raise HttpError(bad)
    basic = None
    if parts.username is not None or parts.password is not None:
        from urllib.parse import unquote
        basic = (unquote(parts.username or ""), unquote(parts.password or ""))
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{port}"
    text = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    origin = Origin(parts.scheme, host, port or (443 if parts.scheme == "https" else 80))
    return Url(text, origin, basic)


def origin_of(url: str) -> Origin | None:
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        return Origin(parts.scheme, parts.hostname,
                      parts.port or (443 if parts.scheme == "https" else 80))
    except ValueError:
        return None


@dataclass
class Response:
    status: int
    url: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self, source: str) -> Any:
        """The body as JSON, or one line naming `source`. NaN/Infinity are not JSON."""
        return loads_json(self.body, source)

    def text(self, limit: int = 200) -> str:
        """A short, printable excerpt of the body for an error message."""
        return shown(self.body[:limit * 2].decode("utf-8", "replace"), limit)


def loads_json(raw: bytes | str, source: str, *, keep_nonfinite: bool = False) -> Any:
    """Strict JSON: NaN, Infinity, numbers too large for a float (1e400) and nesting too deep
    to parse are one-line errors. `keep_nonfinite` reads the non-finite ones as floats
    instead, for a `ci_gen.parse` Model (which refuses them) to name the field that holds one."""
    def refuse(name: str) -> Any:
        if keep_nonfinite:
            return float(name)
        raise HttpError(f"{source}: {name} is not a JSON number")

    def number(text: str) -> float:
        value = float(text)
        if not keep_nonfinite and not math.isfinite(value):
            raise HttpError(f"{source}: {shown(text, 40)} is not a finite number")
        return value
    try:
        return json.loads(raw, parse_constant=refuse, parse_float=number)
    except HttpError:
        raise
    except RecursionError:
        raise HttpError(f"{source}: JSON nested too deep") from None
    except (ValueError, UnicodeDecodeError):
        raise HttpError(f"{source}: not JSON") from None


class Client:
    """Calls to one server (`base`). `headers` are its credentials (sent to its origin only)."""

    def __init__(self, base: str, *, what: str, headers: Mapping[str, str] | None = None,
                 timeout: float = 30.0, deadline: float = 300.0, retries: int = 3,
                 max_wait: float = 30.0, max_bytes: int = DEFAULT_MAX_BYTES,
                 verify: bool | str = True) -> None:
        self.base = parse_url(base, what)
        self.what = what
        self._credentials = {k: v for k, v in (headers or {}).items() if v}
        self.timeout = timeout
        self.deadline = deadline
        self.retries = max(1, retries)
        self.max_wait = max_wait
        self.max_bytes = max_bytes
        self.verify = verify
        self._session: Any = None

    @property
    def where(self) -> str:
        """The server for messages: scheme, host, port and path, never credentials."""
        return shown(self.base.text, 120)

    def url(self, path: str) -> str:
        return self.base.join(path)

    def _requests(self) -> Any:
        if self._session is None:
            import requests  # imported on first use: `ci-gen --help` stays fast
            # trust_env stays on for the runner's proxy variables; every request passes an
            # explicit auth (see _NO_AUTH), so ~/.netrc never adds credentials for a host a
            # redirect names.
            self._session = requests.Session()
        return self._session

    def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, data: bytes | None = None,
                headers: Mapping[str, str] | None = None, idempotent: bool | None = None,
                max_bytes: int | None = None, what: str = "",
                sink: BinaryIO | None = None) -> Response:
        """One call, retried when safe; the answer whatever its status (callers judge it).
        Raises HttpError when no answer came within the deadline or it was too large. With a
        `sink`, a 2xx body is written there (emptied first on each attempt), not kept."""
        method = method.upper()
        what = what or f"{method} {urlsplit(url).path}"
        safe = method in _IDEMPOTENT if idempotent is None else idempotent
        limit = self.max_bytes if max_bytes is None else max_bytes
        end = time.monotonic() + self.deadline
        attempts = self.retries
        last = "no answer"
        tried = 0
        for attempt in range(1, attempts + 1):
            tried = attempt
            try:
                resp = self._follow(method, url, params, json_body, data, headers or {},
                                    end, limit, what, sink)
            except _Retryable as exc:
                last = str(exc)
                if not safe:
                    break  # it may have arrived: the caller looks before sending it again
            else:
                # A 429 is a refusal before anything was done (GitLab's throttles answer it
                # ahead of the API, lib/gitlab/rack_attack): safe to send again, whatever it is.
                again = resp.status == 429 or (safe and resp.status in RETRY_STATUS)
                if not again or attempt == attempts:
                    return resp
                wait = _retry_after(resp.headers.get("Retry-After"))
                last = f"HTTP {resp.status}"
                pause = min(self.max_wait, wait if wait is not None else 0.5 * 2 ** (attempt - 1))
                if time.monotonic() + pause >= end:
                    return resp
                time.sleep(pause)
                continue
            if attempt < attempts:
                pause = min(self.max_wait, 0.5 * 2 ** (attempt - 1))
                if time.monotonic() + pause >= end:
                    break
                time.sleep(pause)
        raise Unreachable(f"{self.what} at {self.where} is not reachable for {what} ({last})"
                          + (f" after {tried} attempts" if tried > 1 else ""), last, tried)

    def _follow(self, method: str, url: str, params: Any, json_body: Any, data: Any,
                headers: Mapping[str, str], end: float, limit: int, what: str,
                sink: BinaryIO | None = None) -> Response:
        import requests
        session = self._requests()
        for _ in range(_MAX_REDIRECTS + 1):
            target = parse_url(url, f"{self.what} URL")
            own = target.origin == self.base.origin
            send = {"User-Agent": "ci-gen", "Accept": "application/json", **headers}
            if own:
                send.update(self._credentials)
            else:
                send = {k: v for k, v in send.items() if k.lower() not in _CREDENTIAL_HEADERS}
            auth = target.basic or (self.base.basic if own else None) or _no_auth
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise HttpError(f"{self.what} at {self.where} did not answer {what} within "
                                f"{self.deadline:g} s")
            try:
                resp = session.request(
                    method, target.text, params=params, json=json_body, data=data,
                    headers=send, auth=auth, allow_redirects=False, stream=True,
                    timeout=(min(self.timeout, remaining), min(self.timeout, remaining)),
                    verify=self.verify)
            except requests.exceptions.SSLError as exc:
                raise HttpError(f"{self.what} at {self.where}: TLS failed "
                                f"({_no_secret(_first_line(exc), url)})") from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                raise _Retryable(_reason(exc, url)) from None
            except requests.exceptions.RequestException as exc:
                raise HttpError(f"{self.what} at {self.where}: {_no_secret(_first_line(exc), url)}") from None
            try:
                if resp.status_code in _REDIRECTS and resp.headers.get("Location"):
                    from urllib.parse import urljoin
                    url = urljoin(target.text, resp.headers["Location"])
                    if resp.status_code == 303 or (resp.status_code in (301, 302)
                                                   and method == "POST"):
                        method, json_body, data = "GET", None, None
                    params = None  # the Location carries its own query
                    continue
                ok = 200 <= resp.status_code < 300
                body = self._read(resp, end, limit, what, sink if ok else None)
                return Response(resp.status_code, target.text, dict(resp.headers), body)
            finally:
                resp.close()
        raise HttpError(f"{self.what} at {self.where} redirected {what} more than "
                        f"{_MAX_REDIRECTS} times")

    def _read(self, resp: Any, end: float, limit: int, what: str,
              sink: BinaryIO | None = None) -> bytes:
        import requests
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise HttpError(f"{self.what} at {self.where} answered {what} with "
                            f"{_size(int(declared))}, more than the {_size(limit)} allowed")
        chunks: list[bytes] = []
        total = 0
        if sink is not None:
            sink.seek(0)
            sink.truncate()
        try:
            for chunk in _chunks(resp.raw):
                total += len(chunk)
                if total > limit:
                    raise HttpError(f"{self.what} at {self.where} answered {what} with more "
                                    f"than the {_size(limit)} allowed")
                if sink is not None:
                    try:
                        sink.write(chunk)
                    except OSError as exc:  # the disk, not the server: never retried
                        raise HttpError(f"cannot keep {what}: {exc.strerror or exc}") from None
                else:
                    chunks.append(chunk)
                if time.monotonic() > end:
                    raise HttpError(f"{self.what} at {self.where} did not finish answering "
                                    f"{what} within {self.deadline:g} s")
        except (requests.exceptions.RequestException, OSError, ValueError) as exc:
            if isinstance(exc, HttpError):
                raise
            raise _Retryable(f"the answer broke off: {_first_line(exc)}") from None
        except Exception as exc:  # urllib3's own errors (ProtocolError, ReadTimeoutError)
            if type(exc).__module__.startswith("urllib3"):
                raise _Retryable(f"the answer broke off: {_first_line(exc)}") from None
            raise
        return b"".join(chunks)


def _no_auth(request: Any) -> Any:
    # An explicit "no credentials": requests consults ~/.netrc only when auth is empty.
    return request


class _Retryable(Exception):
    """A connection failed or broke off: worth another attempt for an idempotent call."""


def _chunks(raw: Any) -> Iterator[bytes]:
    # read1 returns what one socket read brings, so the deadline is checked between reads
    # even when a server trickles its answer (read(n) would wait for all n bytes).
    while True:
        chunk = raw.read1(64 * 1024, decode_content=True)
        if not chunk:
            return
        yield chunk


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (a number, or an HTTP date), None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,6}", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _no_secret(text: str, url: str) -> str:
    """Remove a URL's password (and user) from a library's message about it."""
    try:
        parts = urlsplit(url)
        for secret in (parts.password, parts.username):
            if secret:
                text = text.replace(secret, "***")
    except ValueError:
        pass
    return shown(text, 200)[1:-1] if text else text


def _reason(exc: BaseException, url: str) -> str:
    text = str(exc)
    for pattern, reason in ((r"Connection refused", "connection refused"),
                            (r"Read timed out", "timed out"),
                            (r"timed out", "timed out"),
                            (r"Name or service not known|nodename nor servname|"
                             r"Temporary failure in name resolution", "unknown host"),
                            (r"RemoteDisconnected|Connection aborted|reset by peer",
                             "connection closed")):
        if re.search(pattern, text):
            return reason
    return _no_secret(_first_line(exc), url)
