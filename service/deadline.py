"""Wall-clock deadlines for whole network exchanges, and the stop signal that cuts them short.

A per-read timeout is no deadline: a server that sends a byte just before each read would time
out keeps an exchange open for ever. So every outbound exchange (a registry request, a webhook
POST, an SMTP conversation) gets a ``Deadline``: a point on the monotonic clock by which the
whole exchange (connect, request, headers, body) is over, and the process's stop event, which
ends it at once when the daemon is asked to stop. What enforces it depends on the protocol:

* HTTP (httpx): ``service.deadline_http`` puts the deadline into every socket operation (reads
  in short slices that look at the clock and the stop event in between); the caller also looks
  between body chunks.
* SMTP (smtplib) and anything else that blocks inside a library: a ``Watchdog`` thread acts
  at the deadline (shuts the socket down, which wakes any read or write blocked on it).

A caller can also bound every deadline made inside a block (``no_later_than``): the history
backfill's time budget ends a request in flight when the budget runs out. This module is pure
stdlib and knows no protocol, so the registries still to come and the senders share it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType

__all__ = [
    "Deadline",
    "DeadlineExceeded",
    "Watchdog",
    "active",
    "applied",
    "limit_passed",
    "no_later_than",
    "within_limit",
]


class DeadlineExceeded(Exception):
    """An exchange outlived its deadline, or the process is stopping. Internal: translated
    where it enters (``RegistryUnavailable``, ``DeliveryError``) with ``reason`` in the line."""

    def __init__(self, deadline: Deadline) -> None:
        super().__init__(deadline.reason())
        self.deadline = deadline

    @property
    def stopping(self) -> bool:
        return self.deadline.stopping()


@dataclass(frozen=True)
class _Limit:
    at: float
    why: str  # "the history backfill budget ran out"


# the tightest bound of the enclosing ``no_later_than`` blocks (per thread: a contextvar)
_limit: ContextVar[_Limit | None] = ContextVar("trialwatch_deadline_limit", default=None)
# the deadline of the exchange in hand, read by the guarded sockets of ``deadline_http``
_active: ContextVar[Deadline | None] = ContextVar("trialwatch_deadline_active", default=None)


@dataclass(frozen=True)
class Deadline:
    """The end of one exchange: ``at`` on ``time.monotonic``'s clock, ``seconds`` long as
    configured (for messages), cut short by ``stop`` or an enclosing ``no_later_than``."""

    at: float
    seconds: float
    stop: threading.Event | None = None
    limit: _Limit | None = None  # the enclosing bound, when it comes before our own end

    @classmethod
    def after(cls, seconds: float, *, stop: threading.Event | None = None) -> Deadline:
        """``seconds`` from now, or the enclosing bound if that comes first."""
        own = time.monotonic() + seconds
        bound = _limit.get()
        if bound is not None and bound.at < own:
            return cls(bound.at, seconds, stop, bound)
        return cls(own, seconds, stop)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def expired(self) -> bool:
        return self.stopping() or time.monotonic() >= self.at

    def check(self) -> None:
        if self.expired():
            raise DeadlineExceeded(self)

    def cap(self, timeout: float | None) -> float:
        """``timeout`` (a per-operation timeout; None: none), never beyond the deadline."""
        left = self.remaining()
        return left if timeout is None else min(timeout, left)

    def reason(self) -> str:
        """Why the exchange ended, for an error line: '… within its 120 s deadline'."""
        if self.stopping():
            return "abandoned: trialwatch is stopping"
        if self.limit is not None:
            return f"cut short: {self.limit.why}"
        return f"not finished within its {self.seconds:g} s deadline"


@contextmanager
def no_later_than(at: float, why: str) -> Iterator[None]:
    """Every deadline made inside the block ends by ``at`` (``time.monotonic``) at the latest;
    ``why`` says what ran out, in the error of an exchange it cuts short."""
    current = _limit.get()
    token = _limit.set(_Limit(at, why) if current is None or at < current.at else current)
    try:
        yield
    finally:
        _limit.reset(token)


def within_limit(seconds: float) -> float:
    """``seconds``, or the time left before the enclosing bound if that is less (a wait must
    not outlast a budget)."""
    bound = _limit.get()
    return seconds if bound is None else max(0.0, min(seconds, bound.at - time.monotonic()))


def limit_passed() -> bool:
    """Whether the enclosing ``no_later_than`` bound is behind us (retrying is then futile)."""
    bound = _limit.get()
    return bound is not None and time.monotonic() >= bound.at


@contextmanager
def applied(deadline: Deadline) -> Iterator[Deadline]:
    """Makes ``deadline`` the one the guarded sockets of this thread obey inside the block."""
    token = _active.set(deadline)
    try:
        yield deadline
    finally:
        _active.reset(token)


def active() -> Deadline | None:
    """The deadline applied to this thread's exchange in hand, if any."""
    return _active.get()


class Watchdog:
    """Calls ``on_expiry`` from a thread of its own once ``deadline`` passes (or its stop is
    set), unless the block ends first; and again every ``poll`` seconds until it does, so an
    action that found nothing to act on yet (a socket not made yet) is taken once there is.
    ``fired`` says whether it acted: the exchange's failure is then the deadline's."""

    def __init__(
        self, deadline: Deadline, on_expiry: Callable[[], None], *, poll: float = 0.1
    ) -> None:
        self.deadline = deadline
        self.fired = False
        self._on_expiry = on_expiry
        self._poll = poll
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="deadline-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(self._poll if self.fired else self._next_look()):
            if self.deadline.expired():
                self.fired = True
                self._on_expiry()

    def _next_look(self) -> float:
        return min(self._poll, self.deadline.remaining())
