"""Signed webhook delivery, and the signature scheme receivers verify.

Each event is POSTed once per attempt with the contract's headers::

    Content-Type: application/json
    Trialwatch-Event-Id: EVENT_ID                  (the same on every retry: receivers dedupe)
    Trialwatch-Signature: t=UNIX_SECONDS,v1=HEX    (HMAC-SHA256(secret, f"{t}.".encode() + body))

The timestamp is inside the signed bytes so a captured request cannot be replayed later than
``verify``'s tolerance; the body is signed as the exact bytes sent, so receivers must verify
the raw request body before parsing it.

Outcomes, decided here so the outbox only reads ``DeliveryError.retryable``:

* 2xx: delivered.
* 408, 429, 5xx, timeouts, connection errors: retryable; so is an exchange that outlives the
  channel's ``deadline_seconds`` (a receiver that drips its answer, or its headers, is cut off
  there: ``service.deadline``) or that a stopping daemon abandons.
* 3xx: not retryable and not followed (a redirect would re-POST the body somewhere the
  operator did not configure, and could point inward); the message names the target.
* other 4xx (400, 401, 404, 410 …), a missing secret, a refused address: not retryable.

Response bodies are read up to ``RESPONSE_CAP`` bytes and only a one-line excerpt goes into
error messages; error messages name the channel and host, never the URL's path or query
(webhook URLs often embed tokens) and never the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx

from service import __version__
from service.deadline import Deadline, DeadlineExceeded
from service.deadline_http import guard_client, stream_within
from service.errors import DeliveryError
from service.netguard import check_url
from service.notify.render import Message, webhook_body
from service.settings import WebhookChannel
from service.urls import mask_urls

__all__ = [
    "RESPONSE_CAP",
    "SIGNATURE_TOLERANCE",
    "WebhookSender",
    "build_webhook_client",
    "sign",
    "verify",
]

log = logging.getLogger(__name__)

RESPONSE_CAP = 64 * 1024  # bytes of a response body read at most
SIGNATURE_TOLERANCE = 300  # seconds a signature stays valid either side of "now"
RETRYABLE_STATUS = frozenset({408, 429})
_EXCERPT = 200  # characters of a response body quoted in an error message
USER_AGENT = f"trialwatch/{__version__} (webhook)"


# --------------------------------------------------------------------------- signatures


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Trialwatch-Signature`` header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    secret: bytes,
    header: str,
    body: bytes,
    *,
    tolerance_seconds: int = SIGNATURE_TOLERANCE,
    now: float | None = None,
) -> bool:
    """True when ``header`` is a valid signature of the raw ``body`` under ``secret``, made
    within ``tolerance_seconds`` of ``now``. Several ``v1=`` entries are allowed (any one
    matching is enough), so a secret can be rotated without a gap."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, timestamp, body).partition(",v1=")[2]
    # compare_digest on every candidate: the time taken says nothing about the secret.
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


# --------------------------------------------------------------------------- the sender


class WebhookSender:
    """Delivers messages as signed JSON POSTs to one webhook channel."""

    def __init__(
        self,
        channel: WebhookChannel,
        http: httpx.Client,
        *,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
    ) -> None:
        self.channel = channel
        self.name = channel.name
        self._http = http
        self._stop = stop  # set: the process is stopping, a POST in flight is abandoned
        self._environ = environ
        self._clock = clock
        self._where = f"webhook {channel.name} ({urlsplit(channel.url).hostname})"

    def send(self, message: Message) -> None:
        """POST ``message``; return when the receiver answered 2xx, else raise DeliveryError."""
        secret = self._secret()
        self._check_address()
        body = webhook_body(message)
        headers = self._headers(message, secret, body)
        answer = self._post(body, headers)
        if 200 <= answer.status < 300:
            log.debug("%s: delivered event %s (%d)", self._where, message.event_id, answer.status)
            return
        raise _status_error(self._where, answer)

    def _secret(self) -> bytes:
        # Read at send time: secrets never sit in settings objects that might be logged.
        value = self._environ.get(self.channel.secret_env, "")
        if not value:
            raise DeliveryError(
                f"{self._where}: the signing secret is missing: set the environment variable "
                f"{self.channel.secret_env}",
                retryable=False,
            )
        return value.encode()

    def _check_address(self) -> None:
        try:
            check_url(self.channel.url, self.channel.allow_private_network)
        except DeliveryError as exc:
            raise DeliveryError(f"{self._where}: {exc.message}", retryable=exc.retryable) from None

    def _headers(self, message: Message, secret: bytes, body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Trialwatch-Event-Id": message.event_id,
            "Trialwatch-Signature": sign(secret, int(self._clock()), body),
        }

    def _post(self, body: bytes, headers: dict[str, str]) -> _Answer:
        """The receiver's answer; transport failures raised as DeliveryError. The whole
        exchange ends by the channel's deadline, however slowly the receiver answers."""
        timeout = self.channel.timeout_seconds
        deadline = Deadline.after(self.channel.deadline_seconds, stop=self._stop)
        try:
            with stream_within(
                self._http,
                "POST",
                self.channel.url,
                deadline,
                timeout=timeout,
                content=body,
                headers=headers,
                follow_redirects=False,
            ) as response:
                return _Answer(
                    status=response.status_code,
                    location=response.headers.get("location", ""),
                    retry_after=response.headers.get("retry-after", ""),
                    excerpt=_excerpt(_read_capped(response, deadline)),
                )
        except DeadlineExceeded:
            raise DeliveryError(f"{self._where}: {deadline.reason()}", retryable=True) from None
        except httpx.TimeoutException:
            raise DeliveryError(
                f"{self._where}: no answer within {timeout:g} s", retryable=True
            ) from None
        except httpx.TransportError as exc:
            raise DeliveryError(
                f"{self._where}: {_transport_problem(exc)}", retryable=True
            ) from None


class _Answer(NamedTuple):
    status: int
    location: str
    retry_after: str
    excerpt: str  # one line of the body, clipped


def build_webhook_client() -> httpx.Client:
    """The client every webhook channel shares: no redirects followed, and sockets that obey
    each POST's deadline (``service.deadline_http``)."""
    return guard_client(httpx.Client(follow_redirects=False, headers={"User-Agent": USER_AGENT}))


def _read_capped(response: httpx.Response, deadline: Deadline) -> bytes:
    """At most ``RESPONSE_CAP`` bytes of the body: a receiver cannot make us buffer more."""
    data = bytearray()
    for chunk in response.iter_bytes():
        deadline.check()
        data += chunk
        if len(data) >= RESPONSE_CAP:
            break
    return bytes(data[:RESPONSE_CAP])


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _excerpt(body: bytes) -> str:
    return _one_line(mask_urls(body[: _EXCERPT * 4].decode("utf-8", "replace")), _EXCERPT)


def _transport_problem(exc: httpx.TransportError) -> str:
    kind = {
        httpx.ConnectError: "connection failed",
        httpx.RemoteProtocolError: "the receiver broke the HTTP exchange",
        httpx.ReadError: "the connection failed while reading the answer",
        httpx.WriteError: "the connection failed while sending",
    }.get(type(exc), "transport error")
    detail = _one_line(mask_urls(str(exc)), _EXCERPT)  # httpx may quote the URL and its ?token=
    return f"{kind} ({detail})" if detail else kind


def _status_error(where: str, answer: _Answer) -> DeliveryError:
    status = answer.status
    if 300 <= status < 400:
        # a redirect target is stored in the outbox and shown: mask its credentials
        target = _one_line(mask_urls(answer.location), _EXCERPT) or "nowhere (no Location header)"
        return DeliveryError(
            f"{where}: webhook answered {status} redirect to {target}; configure the final URL",
            retryable=False,
        )
    retryable = status in RETRYABLE_STATUS or 500 <= status < 600
    said = f"{status} {httpx.codes.get_reason_phrase(status)}".strip()
    if answer.retry_after:
        said += f" (Retry-After: {_one_line(answer.retry_after, 40)})"
    if answer.excerpt:
        said += f": {answer.excerpt}"
    return DeliveryError(f"{where}: webhook answered {said}", retryable=retryable)
