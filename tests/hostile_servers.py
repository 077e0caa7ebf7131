"""Hostile servers on real sockets (127.0.0.1), for the deadline tests: each answers slowly on
purpose, and slowly enough that only a whole-exchange deadline ends the exchange.

* ``DrippingHttp``: reads a request, then sends an HTTP answer a byte at a time (``drip``
  seconds apart): the status line and headers at once and the body dripped (``"body"``), the
  headers dripped too (``"headers"``), or nothing at all (``"silent"``).
* ``DrippingSmtp``: an SMTP server that drips its greeting (``"greeting"``), or answers every
  command promptly and then stalls after the message's final dot (``"after_data"``).

Each server thread stops when the test ends (``close``): nothing outlives the test.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Protocol, TypeVar

import pytest

JSON_BODY = b'{"studies": [], "totalCount": 0, "dataTimestamp": "2026-11-22T06:00:00"}'


class _SocketServer:
    """Accepts connections on 127.0.0.1 and serves each in a thread of its own."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.closed = threading.Event()
        self.connections = 0
        self.requests: list[bytes] = []  # the first bytes of each request, as received
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve_closing, args=(conn,), daemon=True).start()

    def _serve_closing(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.serve(conn)

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def drip(self, conn: socket.socket, data: bytes, every: float) -> None:
        """``data`` a byte at a time, ``every`` seconds apart, until sent or the test ends."""
        for byte in data:
            if self.closed.wait(every):
                return
            conn.sendall(bytes([byte]))

    def close(self) -> None:
        self.closed.set()
        # close() alone does not wake a thread blocked in accept() on Linux: shutdown does
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()


class DrippingHttp(_SocketServer):
    def __init__(self, mode: str = "body", drip: float = 0.2, body: bytes = JSON_BODY) -> None:
        super().__init__()
        self.mode, self.every, self.body = mode, drip, body

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            data = conn.recv(65536)
            if not data:
                return
            request += data
        self.requests.append(request)
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(self.body)}\r\n\r\n".encode()
        )
        if self.mode == "silent":
            self.closed.wait()
        elif self.mode == "headers":
            self.drip(conn, head + self.body, self.every)
        else:
            conn.sendall(head)
            self.drip(conn, self.body, self.every)
        self.closed.wait()  # keep the connection open: the client must end it


class DrippingSmtp(_SocketServer):
    def __init__(self, mode: str = "after_data", drip: float = 0.2) -> None:
        super().__init__()
        self.mode, self.every = mode, drip
        self.messages = 0  # messages received up to their final dot

    def serve(self, conn: socket.socket) -> None:
        greeting = b"220 drip.test ESMTP ready\r\n"
        if self.mode == "greeting":
            self.drip(conn, greeting * 100, self.every)
            return
        conn.sendall(greeting)
        reader = conn.makefile("rb")
        while not self.closed.is_set():
            line = reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250-drip.test\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                while reader.readline() not in (b".\r\n", b""):
                    pass
                self.messages += 1
                self.closed.wait()  # never answers the final dot
                return
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")


class _Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)


def _closed_at_the_end(server_class: type[S]) -> Iterator[type[S]]:
    """A subclass of ``server_class`` whose servers are all closed when the test ends."""
    made: list[S] = []

    class Made(server_class):  # type: ignore[valid-type,misc]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    yield Made
    for server in made:
        server.close()


@pytest.fixture
def dripping_http() -> Iterator[type[DrippingHttp]]:
    """A factory of ``DrippingHttp`` servers, all closed when the test ends."""
    yield from _closed_at_the_end(DrippingHttp)


@pytest.fixture
def dripping_smtp() -> Iterator[type[DrippingSmtp]]:
    """A factory of ``DrippingSmtp`` servers, all closed when the test ends."""
    yield from _closed_at_the_end(DrippingSmtp)


def elapsed(since: float) -> float:
    return time.monotonic() - since
