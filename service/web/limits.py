"""The web server's limits on connections, so that clients that connect and then say nothing
(or a byte a minute) cannot take every file descriptor of the process.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but sets no deadline
on a request's headers: its keep-alive timer starts only after a first answer, so a connection
that never completes a request's headers is held for ever (checked in uvicorn 0.55). And its
``limit_concurrency`` counts connections without closing any: past the limit it answers 503 to
every request, the health probes' too, while the idle connections stay open. So the HTTP
protocol here is uvicorn's h11 one with three additions:

- **a deadline for a request's headers**: from the connection's opening, and from the first
  byte of each later request on a kept-alive connection, the headers must be complete within
  ``header_timeout`` seconds or the connection is closed. One deadline for the whole head, not
  an idle timer reset by each byte, so dripping a byte a second does not hold it longer;
- **a cap on open connections**: a connection beyond ``max_connections`` closes the oldest
  connection that is waiting for a request (opened or kept alive, headers not complete) to
  make room, and is refused (503, closed) only when every open one is at work. Half-open
  connections thus make room for new clients, the probes among them, instead of starving them;
- **no body is waited for**: once an answer is complete, a connection whose request body was
  not read to its end is closed (the app has no route that reads a body). uvicorn would keep
  it open while the body drips, with no deadline: each byte cancels its keep-alive timer.

The listening socket's backlog and the process's soft limit of open files (raised to the
hard limit at start) give the cap room; the cap is lowered to fit that limit when needed.
When accepting fails anyway (EMFILE: asyncio then logs a traceback every second until a
descriptor is free), ``AcceptErrorThrottle`` lets one line through a minute, with a count of
those held back.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("trialwatch.web")

KEEP_ALIVE_SECONDS = 5  # an idle kept-alive connection is closed after this
MAX_HEADER_BYTES = 16 * 1024  # a request's line and headers (h11's incomplete event size)
LISTEN_BACKLOG = 1024  # connections the kernel holds until accepted (no descriptor yet)
RESERVED_FILES = 64  # descriptors kept for the store, logs and the registry's connections
ACCEPT_FAILED = "socket.accept() out of system resource"  # asyncio's words on EMFILE/ENFILE
BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 49\r\nconnection: close\r\nretry-after: 1\r\n\r\n"
    b"503 too many connections at work: try again soon\n"
)


def guarded_protocol(max_connections: int, header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a header deadline and a cap on open connections."""

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self.last_active = time.monotonic()
            self.header_timer: asyncio.TimerHandle | None = None
            crowded = _open_count(self.connections) >= max_connections
            super().connection_made(transport)
            if crowded and not _close_oldest_waiting(self.connections, self):
                log.warning("web: %d connections at work: one more refused", max_connections)
                transport.write(BUSY_ANSWER)
                transport.close()
                return
            self._arm_header_deadline()

        def data_received(self, data: bytes) -> None:
            if self.header_timer is None and self.conn.their_state is h11.IDLE:
                self._arm_header_deadline()  # the first byte of a request on a kept-alive one
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm_header_deadline()

        def on_response_complete(self) -> None:
            self.last_active = time.monotonic()
            if self.conn.their_state is not h11.DONE and not self.transport.is_closing():
                self._close_unread_body()
            super().on_response_complete()  # counts the request; a closing one stops there

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_deadline()
            super().connection_lost(exc)

        def waiting_for_request(self) -> bool:
            idle = self.cycle is None or self.cycle.response_complete
            return idle and self.conn.their_state is h11.IDLE

        def _arm_header_deadline(self) -> None:
            self._disarm_header_deadline()
            self.header_timer = self.loop.call_later(header_timeout, self._headers_too_late)

        def _disarm_header_deadline(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def _close_unread_body(self) -> None:
            # The answer went out before the request's body was read to its end (a 405, a
            # 401, a GET that ignores its body): no route reads a body, so the rest is never
            # needed, and waiting for it would let a client drip a byte a second for ever
            # (each byte cancels uvicorn's keep-alive timer, and no header deadline applies
            # while a body is sent). h11 could not start the next request anyway.
            if self.conn.our_state is h11.DONE:
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()

        def _headers_too_late(self) -> None:
            self.header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol


def _open_count(connections: set[Any]) -> int:
    return sum(1 for c in connections if c.transport is not None and not c.transport.is_closing())


def _close_oldest_waiting(connections: set[Any], newcomer: Any) -> bool:
    """Close the connection that has waited longest for a request; False when none waits."""
    waiting = [
        c
        for c in connections
        if c is not newcomer
        and c.transport is not None
        and not c.transport.is_closing()
        and getattr(c, "waiting_for_request", lambda: False)()
    ]
    if not waiting:
        return False
    oldest = min(waiting, key=lambda c: c.last_active)
    oldest.transport.close()
    return True


def raise_open_files_limit() -> int:
    """Raise the soft limit of open files to the hard one (no privilege needed); returns
    the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft if soft != resource.RLIM_INFINITY else wanted
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):
        return soft
    return wanted


def connection_cap(configured: int, open_files: int) -> int:
    """``configured``, lowered to fit the open-files limit with room for everything else."""
    # half of what is left: asyncio accepts a burst (up to the backlog) before any of it is
    # seen here and closed, and that burst must find descriptors too
    fitting = max(8, (open_files - RESERVED_FILES) // 2)
    if configured > fitting:
        log.warning(
            "web: [web] max_connections %d lowered to %d to fit the limit of %d open files",
            configured,
            fitting,
            open_files,
        )
    return min(configured, fitting)


class AcceptErrorThrottle(logging.Filter):
    """Lets one "accept failed" line through per ``every`` seconds (asyncio logs one with a
    traceback each second while the process is out of descriptors); the next one says how
    many were held back. Other records pass untouched."""

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every, self.clock = every, clock
        self.last_shown: float | None = None
        self.held_back = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(ACCEPT_FAILED):
            return True
        now = self.clock()
        if self.last_shown is not None and now - self.last_shown < self.every:
            self.held_back += 1
            return False
        error = record.exc_info[1] if record.exc_info else None
        record.msg = "web: accept failed (%s); %d more like it not logged in the last %d s"
        record.args = (error or "out of resources", self.held_back, round(self.every))
        record.exc_info, record.exc_text = None, None
        self.last_shown, self.held_back = now, 0
        return True


def throttle_accept_errors() -> AcceptErrorThrottle:
    """The throttle on asyncio's logger, installed once per process."""
    logger = logging.getLogger("asyncio")
    for existing in logger.filters:
        if isinstance(existing, AcceptErrorThrottle):
            return existing
    throttle = AcceptErrorThrottle()
    logger.addFilter(throttle)
    return throttle
