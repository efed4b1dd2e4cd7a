"""ci_gen.http against real loopback servers: credentials stay with their origin across
redirects, only idempotent calls are retried, Retry-After is honoured and capped, every body
and every call is bounded, and every failure is one line without a secret."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ci_gen.http import Client, HttpError, loads_json, parse_url
from ci_gen.parse import Model, ParseError, parse, parse_json

SECRET = "s3cr3t-TOKEN-value"


@pytest.fixture
def other():
    """A second loopback server: another origin (object storage, say)."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def _seen(server: HTTPServer, header: str) -> list[str | None]:
    return [req.headers.get(header) for req, _ in server.log]


def test_a_redirect_to_another_host_carries_no_credential(httpserver, other):
    other.expect_request("/bucket/model.tar.gz").respond_with_data(b"payload")
    httpserver.expect_request("/files/model.tar.gz").respond_with_response(
        Response(status=302, headers={"Location": other.url_for("/bucket/model.tar.gz")}))
    client = Client(httpserver.url_for("/"), what="registry",
                    headers={"Authorization": f"Bearer {SECRET}", "PRIVATE-TOKEN": SECRET})
    resp = client.request("GET", client.url("files/model.tar.gz"))
    assert resp.status == 200 and resp.body == b"payload"
    assert _seen(httpserver, "Authorization") == [f"Bearer {SECRET}"]
    assert _seen(other, "Authorization") == [None]
    assert _seen(other, "PRIVATE-TOKEN") == [None]


def test_a_redirect_within_the_origin_keeps_the_credential(httpserver):
    httpserver.expect_request("/a").respond_with_response(
        Response(status=307, headers={"Location": "/b"}))
    httpserver.expect_request("/b").respond_with_data(b"ok")
    client = Client(httpserver.url_for("/"), what="registry", headers={"PRIVATE-TOKEN": SECRET})
    assert client.request("GET", client.url("a")).body == b"ok"
    assert _seen(httpserver, "PRIVATE-TOKEN") == [SECRET, SECRET]


def test_a_url_naming_another_host_gets_no_credential(httpserver, other):
    other.expect_request("/x").respond_with_data(b"x")
    client = Client(httpserver.url_for("/"), what="registry", headers={"Authorization": SECRET})
    client.request("GET", other.url_for("/x"))
    assert _seen(other, "Authorization") == [None]


def test_url_password_goes_as_basic_auth_to_its_origin_and_is_never_shown(httpserver):
    httpserver.expect_request("/api").respond_with_data(b"{}")
    base = httpserver.url_for("/").replace("http://", f"http://user:{SECRET}@")
    client = Client(base, what="registry")
    assert SECRET not in client.where
    client.request("GET", client.url("api"))
    assert _seen(httpserver, "Authorization")[0].startswith("Basic ")


@pytest.mark.parametrize("raw", [
    f"http://user:{SECRET}@127.0.0.1:abc/", "http://[::1/", "http://127.0.0.1/a b",
    f"ftp://user:{SECRET}@host/", "", "http://", "127.0.0.1:5000",
    f"http://user:{SECRET}/x@127.0.0.1:1/", f"http://u:{SECRET}@x@127.0.0.1:abc/"])
def test_bad_urls_are_one_line_without_the_password(raw):
    with pytest.raises(HttpError) as err:
        parse_url(raw, "MLFLOW_TRACKING_URI")
    message = str(err.value)
    assert "MLFLOW_TRACKING_URI" in message and "\n" not in message
    assert SECRET not in message


def test_post_is_sent_once_on_a_server_error(httpserver):
    httpserver.expect_request("/create", method="POST").respond_with_data("busy", status=503)
    client = Client(httpserver.url_for("/"), what="registry", retries=3, max_wait=0.01)
    resp = client.request("POST", client.url("create"), json_body={"a": 1})
    assert resp.status == 503
    assert len(httpserver.log) == 1


def test_a_429_is_retried_even_for_a_post_after_its_retry_after(httpserver):
    """A 429 refuses before anything is done (GitLab's throttles sit in front of the API):
    sending the create again is safe; a 5xx is not (test above)."""
    calls: list[float] = []

    def handler(request: Request) -> Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Response("Retry later\n", status=429, headers={"Retry-After": "1"})
        return Response("{}", status=200)

    httpserver.expect_request("/create", method="POST").respond_with_handler(handler)
    client = Client(httpserver.url_for("/"), what="registry", retries=3, max_wait=5)
    assert client.request("POST", client.url("create"), json_body={}).status == 200
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.9


def test_get_is_retried_and_retry_after_is_honoured(httpserver):
    calls: list[float] = []

    def handler(request: Request) -> Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Response("slow down", status=429, headers={"Retry-After": "1"})
        return Response("{}", status=200)

    httpserver.expect_request("/get").respond_with_handler(handler)
    client = Client(httpserver.url_for("/"), what="registry", retries=3, max_wait=5)
    assert client.request("GET", client.url("get")).status == 200
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.9


def test_retry_after_is_capped(httpserver):
    httpserver.expect_request("/get").respond_with_data(
        "later", status=429, headers={"Retry-After": "3600"})
    client = Client(httpserver.url_for("/"), what="registry", retries=2, max_wait=0.2)
    t0 = time.monotonic()
    assert client.request("GET", client.url("get")).status == 429
    assert time.monotonic() - t0 < 5


def test_a_body_over_the_limit_is_refused(httpserver):
    httpserver.expect_request("/big").respond_with_data(b"x" * 300_000)
    client = Client(httpserver.url_for("/"), what="registry", max_bytes=100_000)
    with pytest.raises(HttpError, match="more than the 100000 bytes allowed"):
        client.request("GET", client.url("big"))


def test_a_chunked_body_over_the_limit_is_refused_while_reading(httpserver):
    def stream():
        for _ in range(100):
            yield b"y" * 10_000
    httpserver.expect_request("/stream").respond_with_response(Response(stream()))
    client = Client(httpserver.url_for("/"), what="registry", max_bytes=50_000)
    with pytest.raises(HttpError, match="allowed"):
        client.request("GET", client.url("stream"))


def test_a_trickling_server_cannot_hold_a_call_past_its_deadline():
    """A server that sends one byte every 0.2 s never trips a per-read timeout; the call's
    deadline ends it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while not stop.is_set():
            try:
                conn.sendall(b"x")
            except OSError:
                break
            time.sleep(0.2)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = Client(f"http://127.0.0.1:{port}/", what="registry", timeout=1, deadline=1.5,
                    retries=1)
    t0 = time.monotonic()
    with pytest.raises(HttpError, match="within 1.5 s"):
        client.request("GET", client.url("slow"))
    assert time.monotonic() - t0 < 4
    stop.set()
    listener.close()


def test_unreachable_is_one_line_naming_the_server():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = Client(f"http://user:{SECRET}@127.0.0.1:{port}/", what="model registry",
                    retries=2, max_wait=0.01)
    with pytest.raises(HttpError) as err:
        client.request("GET", client.url("x"))
    text = str(err.value)
    assert "model registry" in text and "connection refused" in text and "after 2 attempts" in text
    assert SECRET not in text and "\n" not in text


def test_json_refuses_nan_infinity_and_deep_nesting():
    for raw in (b'{"a": NaN}', b"[Infinity]", b"-Infinity", b"[" * 100_000 + b"]" * 100_000,
                b"\xff\xfe", b"not json"):
        with pytest.raises(HttpError):
            loads_json(raw, "answer")


class _Thing(Model):
    name: str
    count: int
    score: float


@pytest.mark.parametrize("data, field", [
    ({"name": 5, "count": 1, "score": 1.0}, "name: expected a string, got the integer 5"),
    ({"count": 1, "score": 1.0}, "name: missing"),
    ({"name": "a", "count": "x", "score": 1.0}, "count"),
    ({"name": "a", "count": 1, "score": float("inf")}, "score: must be a finite number"),
    ([], "the document: "),
])
def test_a_wrong_shape_is_one_line_naming_the_field(data, field):
    with pytest.raises(ParseError) as err:
        parse(_Thing, data, "registry answer")
    assert str(err.value).startswith("registry answer: ")
    assert field in str(err.value)


def test_parse_json_refuses_nan():
    with pytest.raises(ParseError, match="NaN"):
        parse_json(_Thing, b'{"name": "a", "count": 1, "score": NaN}', "profile.json")


class _Files(Model):
    files: dict[str, int]


def test_a_field_path_from_the_documents_own_keys_is_escaped():
    with pytest.raises(ParseError) as err:
        parse(_Files, {"files": {"\x1b]0;owned\x07": "x"}}, "manifest.json")
    assert "\x1b" not in str(err.value) and "\x07" not in str(err.value)
    assert "files.\\x1b]0;owned\\x07: " in str(err.value)


def test_a_sink_takes_a_2xx_body_and_an_error_body_stays_in_the_answer(httpserver, tmp_path):
    httpserver.expect_request("/big").respond_with_data(b"z" * 3_000_000)
    httpserver.expect_request("/gone").respond_with_data(b'{"message": "404 Not Found"}',
                                                         status=404)
    client = Client(httpserver.url_for("/"), what="registry")
    with open(tmp_path / "big", "wb+") as sink:
        sink.write(b"stale bytes from an earlier attempt")
        resp = client.request("GET", client.url("big"), sink=sink)
    assert resp.status == 200 and resp.body == b""
    assert (tmp_path / "big").read_bytes() == b"z" * 3_000_000
    with open(tmp_path / "gone", "wb") as sink:
        resp = client.request("GET", client.url("gone"), sink=sink)
    assert resp.status == 404 and b"404 Not Found" in resp.body
    assert (tmp_path / "gone").read_bytes() == b""


def test_json_refuses_a_number_beyond_any_float_unless_a_model_names_its_field():
    with pytest.raises(HttpError, match="'1e400' is not a finite number"):
        loads_json(b"[1e400]", "answer")
    assert loads_json(b"[1e400, NaN]", "answer", keep_nonfinite=True)[0] == float("inf")
    with pytest.raises(ParseError, match="score: must be a finite number"):
        parse_json(_Thing, b'{"name": "a", "count": 1, "score": Infinity}', "profile.json",
                   name_nonfinite=True)
