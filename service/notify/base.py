"""The one interface the outbox sees: a ``Sender`` per configured channel.

A sender delivers one ``Message`` or raises ``DeliveryError`` whose ``retryable`` says whether
the outbox should try again later (with the same message, hence the same event id) or move the
delivery to the dead letters. ``build_sender`` is the only place that maps a channel's
``type`` to its sender class.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import httpx

from service.notify.apprise_sender import AppriseSender
from service.notify.email import EmailSender
from service.notify.render import Message
from service.notify.webhook import WebhookSender
from service.settings import AppriseChannel, EmailChannel, WebhookChannel

__all__ = ["Sender", "build_sender"]


@runtime_checkable
class Sender(Protocol):
    """Delivers messages to one channel."""

    name: str  # the channel's name

    def send(self, message: Message) -> None:
        """Deliver ``message`` or raise ``DeliveryError``."""
        ...


def build_sender(
    channel: EmailChannel | WebhookChannel | AppriseChannel,
    http: httpx.Client,
    *,
    environ: Mapping[str, str] = os.environ,
    stop: threading.Event | None = None,
) -> Sender:
    """The sender for ``channel``; ``http`` is shared by every webhook channel. Each sender
    ends an exchange at the channel's ``deadline_seconds``, and at once when ``stop`` is set."""
    if isinstance(channel, EmailChannel):
        return EmailSender(channel, environ=environ, stop=stop)
    if isinstance(channel, WebhookChannel):
        return WebhookSender(channel, http, environ=environ, stop=stop)
    if isinstance(channel, AppriseChannel):
        return AppriseSender(channel, stop=stop)
    raise TypeError(f"no sender for channel type {type(channel).__name__}")
