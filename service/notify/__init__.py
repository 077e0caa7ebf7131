"""Notifications: render a change message once, deliver it through a channel's sender.

``render`` is pure (message → webhook body, email subject, text and HTML); ``email``,
``webhook`` and ``apprise_sender`` hold one sender each, all behind the ``Sender`` protocol of
``base``, and raise ``DeliveryError(retryable=…)`` for the outbox to act on.
"""

from __future__ import annotations

from service.notify.base import Sender, build_sender
from service.notify.render import Message, StudyChanges
from service.notify.webhook import sign, verify

__all__ = ["Message", "Sender", "StudyChanges", "build_sender", "sign", "verify"]
