"""A loopback TCP forwarder that can fail on demand, for fault tests.

`FaultProxy(port)` listens on 127.0.0.1 (a free port) and forwards every connection to
127.0.0.1:PORT. `.down()` stops listening and cuts every open connection, so clients get
"connection refused" (new connections) or a reset (open ones) while the server behind keeps
its state; `.up()` listens again on the same port. Real sockets, no mocking.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import threading
import time


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0  # connections forwarded so far (proves traffic went through here)
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    # -- control ---------------------------------------------------------------------------

    def up(self, timeout: float = 10.0) -> None:
        """Listen (again) on the same port; retried briefly if the port is still held."""
        if self._listener is not None:
            return
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", self.port))
                break
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        sock.listen(64)
        sock.settimeout(0.1)  # the accept loop checks _stop this often
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept_loop, args=(sock,), daemon=True,
                                        name=f"faultproxy-{self.port}")
        self._thread.start()

    def down(self) -> None:
        """Stop listening (new connections are refused) and reset every open connection."""
        if self._listener is None:
            return
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self._listener.close()
        self._listener = None
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            _abort(conn)

    def close(self) -> None:
        self.down()

    def __enter__(self) -> FaultProxy:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- forwarding ------------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _abort(client)
                continue
            with self._lock:
                if self._stop.is_set():  # down() began while this one was being accepted
                    _abort(client)
                    _abort(upstream)
                    continue
                self._conns.update((client, upstream))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy both ways until both sides have closed, or one fails (down() included)."""
        peer = {client: upstream, upstream: client}
        open_ = {client, upstream}
        try:
            while open_:
                readable, _, _ = select.select(list(open_), [], [])
                for src in readable:
                    data = src.recv(65536)
                    if data:
                        peer[src].sendall(data)
                    else:  # EOF: pass the half-close on
                        open_.discard(src)
                        peer[src].shutdown(socket.SHUT_WR)
            ok = True
        except (OSError, ValueError):  # ValueError: select on a socket down() closed
            ok = False
        with self._lock:
            self._conns.difference_update((client, upstream))
        for s in (client, upstream):
            if ok:
                s.close()
            else:
                _abort(s)


def _abort(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), waking any thread blocked on the socket."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


# -- a container engine's API on a unix socket, answering as a hostile engine would -----------

class EngineStandIn:
    """A Docker Engine API on a unix socket (`.url` is a DEPLOY_ENGINE_HOST).

    With `upstream` (a real engine's socket, e.g. the podman service) every request is passed
    on and the real answer returned, unless `rule(method, path, state)` returns another one;
    without, it answers as an empty engine would (no containers; pull, create, start succeed).
    A rule returns None (pass on), DROP (close the connection without an answer),
    (status, body bytes) or (status, body bytes, seconds): the body sent a byte at a time. `state` holds `created`: the ids the engine's create answers named,
    and `started`: the ids started through here. Real sockets, no mocking of ci-gen.
    """

    DROP = "drop"

    def __init__(self, path, upstream=None, rule=None) -> None:
        import http.server
        import socketserver

        self.path, self.upstream, self.rule = str(path), upstream, rule
        self.state: dict[str, list] = {"created": [], "started": [], "requests": []}
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: simple, and allowed

            def address_string(self) -> str:  # a unix socket has no client address
                return "unix"

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else b""
                answer = stand_in._answer(self.command, self.path, dict(self.headers), body)
                if answer == EngineStandIn.DROP:
                    _abort(self.connection)
                    self.close_connection = True
                    return
                status, payload, *pause = answer
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if pause:  # trickle: one byte every `pause` seconds
                        for i in range(len(payload)):
                            self.wfile.write(payload[i:i + 1])
                            self.wfile.flush()
                            time.sleep(pause[0])
                    self.wfile.write(b"")
                    if not pause:
                        self.wfile.write(payload)
                except OSError:  # the client gave up (its size limit or deadline): fine
                    self.close_connection = True

            do_GET = do_POST = do_DELETE = do_HEAD = _any

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(self.path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def __enter__(self) -> "EngineStandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, method: str, target: str, headers: dict, body: bytes):
        import json as _json
        import re as _re

        path = target.split("?", 1)[0]
        self.state["requests"].append(f"{method} {path}")
        m = _re.fullmatch(r"/containers/([^/]+)/start", path)
        if method == "POST" and m:
            self.state["started"].append(m.group(1))
        if self.rule is not None:
            answer = self.rule(method, path, self.state)
            if answer is not None:
                return answer
        if self.upstream is None:
            return _empty_engine(method, path)
        status, payload = _forward(self.upstream, method, target, headers, body)
        if method == "POST" and path == "/containers/create" and status == 201:
            self.state["created"].append(_json.loads(payload)["Id"])
        return status, payload


def _empty_engine(method: str, path: str):
    if path == "/_ping":
        return 200, b"OK"
    if path == "/containers/json":
        return 200, b"[]"
    if path == "/images/create":
        return 200, b'{"status":"pulled"}\n'
    if path == "/containers/create":
        return 201, b'{"Id":"0123456789ab","Warnings":[]}'
    if path.endswith("/json"):
        return 200, b'{"State":{"Running":true,"ExitCode":0}}'
    if path.endswith("/logs"):
        return 200, b""
    return 204, b""


def _forward(socket_path: str, method: str, target: str, headers: dict, body: bytes):
    import http.client

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(socket_path)

    conn = Conn("localhost", timeout=900)
    try:
        keep = {k: v for k, v in headers.items()
                if k.lower() in ("content-type", "x-registry-auth")}
        conn.request(method, target, body=body or None, headers=keep)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()
