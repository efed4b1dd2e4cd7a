"""Is a release serving? Its health URL, probed until healthy, dead or out of time; and the
host side of its port (which address to bind, a free port, a port already taken)."""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from typing import Callable

PROGRESS_EVERY = 5.0  # seconds between "still waiting" lines
POLL = 0.2  # seconds between health probes


def probe(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    """(healthy, why): HTTP 200 and, for TF Serving's status JSON, a version AVAILABLE."""
    import urllib.error
    import urllib.request

    # Never through a proxy: the service is on this host or its network.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            status, body = resp.status, resp.read(65536)
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, str(getattr(reason, "strerror", None) or reason)[:100]
    if status != 200:
        return False, f"HTTP {status}"
    try:
        data = json.loads(body)
    except ValueError:
        return True, "HTTP 200"
    if isinstance(data, dict) and "model_version_status" in data:
        states = [s.get("state") for s in data["model_version_status"] or [] if isinstance(s, dict)]
        if "AVAILABLE" not in states:
            return False, f"model state {'/'.join(map(str, states)) or 'none'}"
    return True, "HTTP 200"


def wait_healthy(alive: Callable[[], tuple[bool, str]], name: str, url: str, timeout: float,
                 say: Callable[[str], None]) -> tuple[bool, str]:
    """Poll `url` until healthy, dead (`alive` says why) or out of time; a line every few
    seconds."""
    start = time.monotonic()
    deadline, next_note = start + timeout, start + PROGRESS_EVERY
    why = "not checked yet"
    while True:
        running, state = alive()
        if not running:
            return False, state
        ok, why = probe(url, timeout=max(0.2, min(2.0, deadline - time.monotonic())))
        if ok:
            return True, why
        now = time.monotonic()
        if now >= deadline:
            return False, f"timed out ({why})"
        if now >= next_note:
            say(f"deploy: waiting for {name} at {url}: {now - start:.0f}s/{timeout:g}s ({why})")
            next_note = now + PROGRESS_EVERY
        time.sleep(min(POLL, max(0.0, deadline - now)))


def bind_addr(host: str) -> str | None:
    """The address to listen on for `host`: an IP literal, loopback for localhost, else None."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((bind_addr(host) or "127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
