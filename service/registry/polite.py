"""Asking a registry politely and safely: a pace never exceeded, retries with backoff on the
answers that pass (429, 5xx, a web firewall's 403 where the registry is known to send one, an
HTML maintenance page, a cut body), one deadline for the whole of each exchange, a cap on the
size of an answer, and one-line errors of the service's own tree.

The clients of the registries that keep no version history (EUCTR, CTIS, ISRCTN) ask through
``PoliteHttp``; each decides what a body must look like (``expect``) and what its answers mean.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    wait_exponential_jitter,
)

from service import __version__
from service.deadline import Deadline, DeadlineExceeded, limit_passed, within_limit
from service.deadline_http import guard_client, stream_within
from service.errors import (
    RecordInvalid,
    RecordNotFound,
    RegistryError,
    RegistryUnavailable,
    RequestAbandoned,
)
from service.registry.tls import registry_tls_context
from service.settings import SourceSettings

USER_AGENT = f"trialwatch/{__version__} (clinical-trial registry monitor; python-httpx)"
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

Expect = Literal["json", "xml", "text"]


class RateLimiter:
    """At most ``rate`` request starts per second, across threads. With ``quiet_after``, the
    interval is also kept after each answer (``answered``): the history API wants a quiet
    gap after a request ends, and a slow answer would eat into a gap counted from its start."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        *,
        quiet_after: bool = False,
    ) -> None:
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._quiet_after = quiet_after
        self._next = 0.0
        self._lock = threading.Lock()

    def answered(self) -> None:
        if self._quiet_after:
            with self._lock:
                self._next = max(self._next, self._clock() + self.interval)

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            self._sleep(wait)


class PassingFault(RecordInvalid):
    """A body that may be a passing fault (maintenance page, cut connection): retried, and a
    ``RecordInvalid`` when every attempt gets one."""


@dataclass(frozen=True)
class Answer:
    """A registry's answer that passed the checks: its status, headers and body."""

    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class PoliteHttp:
    """Requests to one registry. ``requests`` counts every HTTP request, retries included.

    ``retry_forbidden``: a 403 is a web firewall's passing refusal (CTIS behind Azure's WAF
    answers 403 and 429 to bursts, rfhb/ctrdata#55), retried like a 429."""

    def __init__(
        self,
        http: httpx.Client,
        settings: SourceSettings,
        *,
        name: str,
        retry_forbidden: bool = False,
        sleep: Callable[[float], None] | None = None,
        observe: Callable[[str], None] = lambda _answer: None,
        stop: threading.Event | None = None,
    ) -> None:
        self._http = http
        self._settings = settings
        self.name = name  # the registry as errors name it ("EUCTR")
        self._retry_forbidden = retry_forbidden
        self._observe = observe
        self._stop = stop or threading.Event()
        self._sleep = sleep or self._stop.wait
        self._limiter = RateLimiter(settings.requests_per_second, sleep=self._sleep)
        self._backoff = wait_exponential_jitter(
            multiplier=settings.retry_initial_seconds,
            max=settings.retry_max_seconds,
            jitter=settings.retry_initial_seconds,
        )
        self.requests = 0

    def request(
        self,
        method: str,
        url: str,
        *,
        expect: Expect,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> Answer:
        """One exchange, retried while it fails in a way that passes. A 404 is
        ``RecordNotFound``; an answer that is not ``expect`` (an HTML page instead of JSON,
        XML or text) ``RecordInvalid``; a registry that does not answer ``RegistryUnavailable``."""
        retrying = Retrying(
            retry=retry_if_exception_type((RegistryUnavailable, PassingFault)),
            stop=stop_any(stop_after_attempt(self._settings.max_attempts), self._futile),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(self._once, method, url, expect, params, json)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            wait = min(retry_after, self._settings.retry_max_seconds)
        else:
            wait = self._backoff(state)
        return within_limit(wait)

    def _futile(self, _state: RetryCallState) -> bool:
        return self._stop.is_set() or limit_passed()

    def _once(
        self, method: str, url: str, expect: Expect, params: dict[str, str] | None, body: Any
    ) -> Answer:
        self._limiter.acquire()
        deadline = Deadline.after(self._settings.deadline_seconds, stop=self._stop)
        if deadline.expired():
            raise self._cut_short(url, deadline)
        self.requests += 1
        try:
            answer = self._read_capped(method, url, params, body, deadline)
        except DeadlineExceeded as exc:
            self._observe("error")
            raise self._cut_short(url, exc.deadline) from None
        except httpx.TimeoutException as exc:
            self._observe("error")
            raise RegistryUnavailable(f"{self.name} timed out ({_describe(url)})") from exc
        except httpx.TransportError as exc:
            self._observe("error")
            raise RegistryUnavailable(
                f"{self.name} unreachable ({_describe(url)}: {exc or type(exc).__name__})"
            ) from exc
        self._observe(str(answer.status))
        return self._checked(answer, url, expect)

    def _read_capped(
        self,
        method: str,
        url: str,
        params: dict[str, str] | None,
        body: Any,
        deadline: Deadline,
    ) -> Answer:
        cap = self._settings.max_response_mib * 1024 * 1024
        options: dict[str, Any] = {"params": params} if params else {}
        if body is not None:
            options["json"] = body
        with stream_within(
            self._http, method, url, deadline, timeout=self._http.timeout, **options
        ) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise self._too_large(url, cap)
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                deadline.check()
                size += len(chunk)
                if size > cap:
                    raise self._too_large(url, cap)
                chunks.append(chunk)
        return Answer(response.status_code, response.headers, b"".join(chunks))

    def _checked(self, answer: Answer, url: str, expect: Expect) -> Answer:
        status, where = answer.status, _describe(url)
        if status == 404:
            raise RecordNotFound(f"not found in {self.name}: {where}")
        if status in RETRYABLE_STATUS or (status == 403 and self._retry_forbidden):
            raise RegistryUnavailable(
                f"{self.name} answered {status} ({where})",
                retry_after=retry_after(answer.headers),
            )
        if status >= 400:
            raise RegistryError(f"{self.name} refused the request: {status} ({where})")
        content_type = answer.headers.get("content-type", "").lower()
        start = answer.body.lstrip()[:64].lower()
        # a page, by what it starts with: a register may label its text download text/html
        html = start.startswith((b"<!doctype html", b"<html")) or (
            "html" in content_type and start.startswith(b"<") and not start.startswith(b"<?xml")
        )
        if html:
            raise PassingFault(f"{self.name} sent an HTML page instead of {expect} ({where})")
        try:
            answer.body.decode("utf-8")
        except UnicodeDecodeError:
            raise PassingFault(f"{self.name} sent a body that is not UTF-8 ({where})") from None
        return answer

    def _cut_short(self, url: str, deadline: Deadline) -> RegistryUnavailable:
        error = RequestAbandoned if deadline.stopping() else RegistryUnavailable
        return error(f"{self.name} request {deadline.reason()} ({_describe(url)})")

    def _too_large(self, url: str, cap: int) -> RecordInvalid:
        return RecordInvalid(
            f"{self.name} answer larger than {cap // (1024 * 1024)} MiB refused "
            f"({_describe(url)}); raise max_response_mib if this is expected"
        )


def build_polite_client(
    settings: SourceSettings, *, accept: str, verify: Any = None
) -> httpx.Client:
    """An HTTP client for one registry, its sockets bound by each request's deadline.
    ``verify``: a TLS context of the registry's own (EUCTR ships an intermediate
    certificate); by default the trust store, read at the first TLS connection."""
    client = httpx.Client(
        verify=verify if verify is not None else registry_tls_context(),
        timeout=httpx.Timeout(
            settings.timeout_seconds, connect=min(10.0, settings.timeout_seconds)
        ),
        headers={"User-Agent": USER_AGENT, "Accept": accept},
        follow_redirects=True,
        max_redirects=5,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )
    return guard_client(client)


def _describe(url: str) -> str:
    return url.split("?", 1)[0]


def retry_after(headers: httpx.Headers) -> float | None:
    """The seconds a ``Retry-After`` header asks for (a number or an HTTP date), if any."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
