"""What a deploy does between stopping the serving release and promoting the new one.

Anything may end that stretch: an unhealthy release, the engine dropping the connection, an
answer that does not parse, a bug, Ctrl-C, or GitLab cancelling the job (SIGTERM, then
SIGKILL after the runner's grace period). Whatever it is, the previous release must be
started again, so the deploy code catches every exception there, and `sigterm_raises` turns
the first SIGTERM into an exception the same code handles (SIGTERM is ignored once the previous
release is being restored: GitLab's SIGKILL after its grace period is the only way to stop it).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

from ci_gen.errors import CiGenError, shown


class Terminated(BaseException):
    """SIGTERM arrived (GitLab cancelled the job). A BaseException, as KeyboardInterrupt is, so
    no `except Exception` on the way swallows it."""


class Guard:
    """While `raising`, the first SIGTERM raises Terminated; the restore sets it False, so a
    SIGTERM then (or a second one) cannot interrupt the restore itself."""

    def __init__(self) -> None:
        self.raising = True

    def restoring(self) -> None:
        self.raising = False


@contextlib.contextmanager
def sigterm_raises() -> Iterator[Guard]:
    """Inside: the first SIGTERM raises Terminated until `restoring()` is called; later ones
    are ignored. Only the main thread can set a signal handler; elsewhere (tests calling in a
    thread) SIGTERM keeps its default."""
    guard = Guard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return

    def handler(signum: int, frame: object) -> None:
        if guard.raising:
            guard.raising = False
            raise Terminated()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield guard
    finally:
        signal.signal(signal.SIGTERM, old)


def reason(exc: BaseException) -> str:
    """One line saying what ended the deploy."""
    if isinstance(exc, Terminated):
        return "the job was cancelled (SIGTERM)"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, CiGenError):
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # A bug or an unexpected library error: still one line, the type named for the report.
    text = str(exc).strip().splitlines()
    return f"unexpected {type(exc).__name__}" + (f": {shown(text[0], 160)}" if text else "")
