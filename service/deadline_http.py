"""httpx transports whose sockets obey the ``service.deadline`` applied to the exchange in hand.

httpx has a timeout per socket operation only, so a server that drips its headers or body a
byte just inside each read timeout holds a request open for ever. ``guard_client`` gives the
httpcore pools of a client a network backend whose streams look at the thread's active
``Deadline`` (see ``deadline.applied``) in every operation:

* a read waits in slices of at most ``SLICE`` seconds, checking the deadline and the stop event
  between slices, while still honouring httpx's own per-read timeout;
* a connect, a TLS handshake (Python bounds a whole handshake by the socket timeout) and each
  piece of a write get at most the time left.

So the deadline holds in the connect, while headers arrive and while the body does, and a
stopping process abandons a request within a slice. A deadline that passes raises
``DeadlineExceeded``, which httpcore lets through after closing the connection (a half-read
connection is never reused) and the caller translates. Without an applied deadline the streams
behave exactly as httpcore's own.

httpx takes no network backend, so the pool's is replaced after httpx made it (checked: a
version of httpx without it fails ``guard`` loudly, not silently unguarded).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from service.deadline import Deadline, DeadlineExceeded, active, applied

__all__ = ["SLICE", "guard", "guard_client", "stream_within"]

SLICE = 0.25  # seconds a read waits between two looks at the deadline and the stop event
_WRITE_PIECE = 64 * 1024  # bytes written between two looks at the deadline


class _GuardedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        deadline = active()
        if deadline is None:
            return self._inner.read(max_bytes, timeout)
        started = time.monotonic()
        while True:
            deadline.check()
            wait = deadline.cap(SLICE)
            if timeout is not None:
                wait = min(wait, max(0.0, started + timeout - time.monotonic()))
            try:
                return self._inner.read(max_bytes, max(wait, 0.001))
            except httpcore.ReadTimeout:
                if timeout is not None and time.monotonic() - started >= timeout:
                    raise  # httpx's own read timeout: the caller's "timed out"
                # a slice ended: look at the deadline again (a TLS record half read stays
                # buffered in OpenSSL, so reading on is safe)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        deadline = active()
        if deadline is None:
            self._inner.write(buffer, timeout)
            return
        view = memoryview(buffer)
        while view:
            deadline.check()
            self._inner.write(bytes(view[:_WRITE_PIECE]), _bounded(deadline, timeout))
            view = view[_WRITE_PIECE:]

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        deadline = active()
        if deadline is not None:
            deadline.check()
            timeout = _bounded(deadline, timeout)
        return _GuardedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        deadline = active()
        if deadline is not None:
            deadline.check()
            timeout = _bounded(deadline, timeout)
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _GuardedStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, timeout, socket_options)
        return _GuardedStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@contextmanager
def stream_within(
    client: httpx.Client,
    method: str,
    url: str,
    deadline: Deadline,
    *,
    timeout: httpx.Timeout | float,
    **options: Any,
) -> Iterator[httpx.Response]:
    """``client.stream(...)`` as one exchange under ``deadline``: the guarded sockets obey it,
    no part of ``timeout`` reaches past it, and a timeout that fired because the deadline cut
    it down is the deadline's (``DeadlineExceeded``), not the server's per-read timeout. The
    caller reads the body inside the block (and may ``deadline.check()`` between chunks)."""
    per = httpx.Timeout(timeout)
    capped = httpx.Timeout(
        connect=deadline.cap(per.connect),
        read=deadline.cap(per.read),
        write=deadline.cap(per.write),
        pool=deadline.cap(per.pool),
    )
    with applied(deadline):
        try:
            with client.stream(method, url, timeout=capped, **options) as response:
                yield response
        except httpx.TimeoutException:
            if deadline.expired():
                raise DeadlineExceeded(deadline) from None
            raise


def _bounded(deadline: Deadline, timeout: float | None) -> float:
    left = deadline.cap(timeout)
    if left <= 0:
        raise DeadlineExceeded(deadline)
    return left


def guard(transport: httpx.BaseTransport) -> httpx.BaseTransport:
    """Puts the deadline-aware backend under an ``httpx.HTTPTransport`` (others, e.g. a test's
    ``MockTransport``, have no sockets and are returned as they are)."""
    if not isinstance(transport, httpx.HTTPTransport):
        return transport
    pool = transport._pool
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.NetworkBackend):
        raise RuntimeError(
            "this httpcore has no network backend to guard: deadlines would not hold"
        )
    if not isinstance(backend, _GuardedBackend):
        pool._network_backend = _GuardedBackend(backend)  # type: ignore[attr-defined]
    return transport


def guard_client(client: httpx.Client) -> httpx.Client:
    """Guards every transport of ``client``: its own and the proxies' it mounted from the
    environment (``HTTPS_PROXY`` …), so a request through a proxy has its deadline too."""
    guard(client._transport)
    for mounted in client._mounts.values():
        if mounted is not None:
            guard(mounted)
    return client
