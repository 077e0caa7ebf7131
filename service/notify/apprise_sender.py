"""Delivery through apprise (optional): Slack, Teams, Matrix, ntfy, Discord and ~100 more.

``apprise`` is an extra (``pip install 'trialwatch[apprise]'``) and is imported at send time,
so trialwatch runs without it until a channel of ``type = "apprise"`` actually sends. Each
message goes to every URL of the channel with the email subject as title and the plain-text
part as body. apprise reports only success or failure, not why, so a failure is taken as
passing (retryable); a URL apprise does not understand is a configuration error (not).
Error messages never quote the URLs: they carry the services' tokens.
"""

from __future__ import annotations

from typing import Any

from service.errors import DeliveryError
from service.notify.render import Message, email_subject, email_text
from service.settings import AppriseChannel

__all__ = ["INSTALL_HINT", "AppriseSender"]

INSTALL_HINT = "apprise is not installed: pip install 'trialwatch[apprise]'"


class AppriseSender:
    """Delivers messages to the services named by one apprise channel's URLs."""

    def __init__(self, channel: AppriseChannel) -> None:
        self.channel = channel
        self.name = channel.name
        self._where = f"apprise {channel.name}"

    def send(self, message: Message) -> None:
        apprise = _import_apprise(self._where)
        notifier = apprise.Apprise()
        for position, url in enumerate(self.channel.urls, start=1):
            if not notifier.add(url):
                raise DeliveryError(
                    f"{self._where}: URL #{position} is not one apprise understands",
                    retryable=False,
                )
        high = any(c.severity == "high" for s in message.studies for c in s.changes)
        ok = notifier.notify(
            title=email_subject(message),
            body=email_text(message),
            body_format=apprise.NotifyFormat.TEXT,
            notify_type=apprise.NotifyType.WARNING if high else apprise.NotifyType.INFO,
        )
        # apprise 1.x returns a bool, 2.x an AppriseResult that is truthy only on success.
        if not ok:
            raise DeliveryError(
                f"{self._where}: apprise could not notify every service "
                f"({len(self.channel.urls)} URL(s)); see the log for apprise's reason",
                retryable=True,
            )


def _import_apprise(where: str) -> Any:
    try:
        import apprise
    except ImportError:
        raise DeliveryError(f"{where}: {INSTALL_HINT}", retryable=False) from None
    return apprise
