"""Delivery through apprise (optional): Slack, Teams, Matrix, ntfy, Discord and ~100 more.

``apprise`` is an extra (``pip install 'trialwatch[apprise]'``) and is imported at send time,
so trialwatch runs without it until a channel of ``type = "apprise"`` actually sends. Each
message goes to every URL of the channel with the email subject as title and the plain-text
part as body. apprise reports only success or failure, not why, so a failure is taken as
passing (retryable); a URL apprise does not understand is a configuration error (not).
Error messages never quote the URLs: they carry the services' tokens.

The address gate (``netguard``) applies to apprise URLs that name a network host — a
self-hosted service (``json://``, ``ntfy://ntfy.example.org/topic``, ``gotify://``, ``mmost://``
…): its host must resolve to public addresses unless the channel sets
``allow_private_network = true``. Which part of an apprise URL is a host depends on the
service (``slack://TokenA/TokenB/TokenC`` has none, only tokens), so a host is what looks like
one: a name with a dot, an IP literal, or ``localhost``. Tokens are never looked up in DNS
(that would send them to the resolver). Limit: a host given in a query parameter
(``mailto://…?smtp=10.0.0.5``) is not checked.

apprise talks to the services itself (requests, smtplib …), with a timeout per read only and
no way to cut a call short, so it runs in a thread of its own that the sender waits for at most
the channel's ``deadline_seconds`` (or until the daemon is stopping): past that the delivery is
a retryable failure and the thread is left to end on its own (a daemon thread: it does not keep
the process alive). If that thread still gets through later, the retry sends the message again
(at least once; receivers dedupe by the event id in the text only where they can).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from service.deadline import Deadline
from service.errors import DeliveryError
from service.netguard import check_host
from service.notify.render import Message, email_subject, email_text
from service.settings import AppriseChannel

__all__ = ["INSTALL_HINT", "AppriseSender"]

INSTALL_HINT = "apprise is not installed: pip install 'trialwatch[apprise]'"


class AppriseSender:
    """Delivers messages to the services named by one apprise channel's URLs."""

    def __init__(self, channel: AppriseChannel, *, stop: threading.Event | None = None) -> None:
        self.channel = channel
        self.name = channel.name
        self._where = f"apprise {channel.name}"
        self._stop = stop

    def send(self, message: Message) -> None:
        apprise = _import_apprise(self._where)
        notifier = apprise.Apprise()
        for position, url in enumerate(self.channel.urls, start=1):
            if not notifier.add(url):
                raise DeliveryError(
                    f"{self._where}: URL #{position} is not one apprise understands",
                    retryable=False,
                )
            self._check_address(position, url)
        high = any(c.severity == "high" for s in message.studies for c in s.changes)
        ok = self._within_deadline(
            lambda: notifier.notify(
                title=email_subject(message),
                body=email_text(message),
                body_format=apprise.NotifyFormat.TEXT,
                notify_type=apprise.NotifyType.WARNING if high else apprise.NotifyType.INFO,
            )
        )
        # apprise 1.x returns a bool, 2.x an AppriseResult that is truthy only on success.
        if not ok:
            raise DeliveryError(
                f"{self._where}: apprise could not notify every service "
                f"({len(self.channel.urls)} URL(s)); see the log for apprise's reason",
                retryable=True,
            )

    def _within_deadline(self, notify: Callable[[], Any]) -> Any:
        """``notify()``'s answer, if it comes before the channel's deadline."""
        deadline = Deadline.after(self.channel.deadline_seconds, stop=self._stop)
        outcome: list[Any] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                outcome.append(notify())
            except Exception as exc:  # apprise's own failure, raised in the caller's thread
                failure.append(exc)

        worker = threading.Thread(target=run, name=f"apprise-{self.name}", daemon=True)
        worker.start()
        while worker.is_alive() and not deadline.expired():
            worker.join(min(0.25, deadline.remaining()) or 0.01)
        if worker.is_alive():
            raise DeliveryError(f"{self._where}: {deadline.reason()}", retryable=True)
        if failure:
            raise failure[0]
        return outcome[0]

    def _check_address(self, position: int, url: str) -> None:
        host, port = _network_host(url)
        if host is None:
            return
        try:
            check_host(host, port, self.channel.allow_private_network)
        except DeliveryError as exc:
            raise DeliveryError(
                f"{self._where}: URL #{position}: {exc.message}", retryable=exc.retryable
            ) from None


def _network_host(url: str) -> tuple[str | None, int]:
    """The host an apprise URL connects to, when it names one (see the module's doc)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:  # a malformed IPv6 literal; apprise decides what it makes of it
        return None, 0
    if not host or not ("." in host or ":" in host or host.lower() == "localhost"):
        return None, 0
    try:
        port = parts.port or 0
    except ValueError:  # "token:secret@…" read as host:port
        port = 0
    return host, port


def _import_apprise(where: str) -> Any:
    try:
        import apprise
    except ImportError:
        raise DeliveryError(f"{where}: {INSTALL_HINT}", retryable=False) from None
    return apprise
