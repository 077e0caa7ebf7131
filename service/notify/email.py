"""Email delivery over SMTP: one multipart/alternative message (plain text + HTML) per event.

The ``Message-ID`` is derived from the event id, so a retried email is recognisably the same
message (mail clients and list servers thread or drop duplicates by it), and the event id is
also in a ``Trialwatch-Event-Id`` header for filters and scripts.

Failures become ``DeliveryError`` where they happen, classified by what trying again can do:

* retryable: nothing listening, timeouts, the server hanging up, any 4xx reply (SMTP's
  "transient negative completion": greylisting, 421 shutting down, 451 local error, 452 full);
* not retryable: any 5xx reply (550 mailbox unavailable, 535 authentication failed, 554),
  a server without the STARTTLS or AUTH the channel asks for, a certificate that does not
  verify, a password variable that is not set.

The whole conversation (connect, greeting, every command, the message, QUIT) ends by the
channel's ``deadline_seconds``: a server that answers a byte at a time, or stalls after DATA,
fails the delivery there as retryable. A socket timeout cannot do that (it bounds each read,
and smtplib reads a reply in as many reads as the server likes), so a ``Watchdog`` thread
shuts the socket down at the deadline, or at once when the daemon is stopping: ``shutdown``
wakes whatever read or write blocks on it, inside smtplib, TLS included, whatever command it
is in, and the conversation fails with the deadline's reason.

The password is read from the environment variable ``password_env`` names, at send time only,
and is scrubbed from every error message.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from service.deadline import Deadline, Watchdog
from service.errors import DeliveryError
from service.notify.render import Message, email_html, email_subject, email_text
from service.settings import EmailChannel

__all__ = ["EmailSender", "build_email", "message_id"]

log = logging.getLogger(__name__)

_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")
_DOMAIN = re.compile(r"[A-Za-z0-9.-]{1,253}")
_REPLY_MAX = 200  # characters of a server reply quoted in an error message


def message_id(event_id: str, sender: str) -> str:
    """``<trialwatch.EVENT@sender-domain>``: the same event always gets the same id."""
    local = event_id if _ATOM.fullmatch(event_id) and ".." not in event_id else None
    if local is None or local.startswith(".") or local.endswith("."):
        # Not usable verbatim in a Message-ID: a stable digest of it is.
        local = hashlib.sha256(event_id.encode()).hexdigest()[:32]
    domain = sender.rpartition("@")[2].strip(" >")
    if not _DOMAIN.fullmatch(domain) or "." not in domain:
        domain = "trialwatch.invalid"
    return f"<trialwatch.{local}@{domain}>"


def build_email(message: Message, channel: EmailChannel) -> EmailMessage:
    """The email for ``message`` on ``channel``: headers, a text part and an HTML part."""
    mail = EmailMessage()
    mail["Subject"] = email_subject(message)
    mail["From"] = channel.sender
    mail["To"] = ", ".join(channel.recipients)
    # The event's time, not the send time: a retry must be the same message.
    mail["Date"] = format_datetime(message.created_at)
    mail["Message-ID"] = message_id(message.event_id, channel.sender)
    mail["Trialwatch-Event-Id"] = message.event_id
    # RFC 3834: vacation responders must not answer automated mail.
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(email_text(message))
    mail.add_alternative(email_html(message), subtype="html")
    return mail


class EmailSender:
    """Delivers messages to one email channel's recipients over SMTP."""

    def __init__(
        self,
        channel: EmailChannel,
        *,
        environ: Mapping[str, str] = os.environ,
        ssl_context: ssl.SSLContext | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.channel = channel
        self.name = channel.name
        self._environ = environ
        self._stop = stop  # set: the process is stopping, a conversation is cut off
        # None: the system's trust store and hostname checks (tests pass their own CA).
        self._ssl_context = ssl_context
        self._where = f"email {channel.name} (SMTP {channel.smtp_host}:{channel.smtp_port})"

    def send(self, message: Message) -> None:
        """Hand ``message`` to the SMTP server; return once it accepted it for delivery."""
        mail = build_email(message, self.channel)
        password = self._password()
        try:
            refused = self._transmit(mail, password)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(exc, password) from None
        if refused:
            # Some recipients accepted it: sending again would duplicate it for them.
            log.warning(
                "%s: event %s refused for %s",
                self._where,
                message.event_id,
                ", ".join(sorted(refused)),
            )

    def _password(self) -> str:
        if not self.channel.username:
            return ""
        # Read at send time: secrets never sit in settings objects that might be logged.
        password = self._environ.get(self.channel.password_env, "")
        if not password:
            raise DeliveryError(
                f"{self._where}: no SMTP password: set the environment variable "
                f"{self.channel.password_env} (username {self.channel.username!r} is configured)",
                retryable=False,
            )
        return password

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _connect(self, conversation: _Conversation, timeout: float) -> smtplib.SMTP:
        c = self.channel
        if c.ssl:
            return _WatchedSMTPSSL(
                conversation, c.smtp_host, c.smtp_port, timeout=timeout, context=self._context()
            )
        return _WatchedSMTP(conversation, c.smtp_host, c.smtp_port, timeout=timeout)

    def _transmit(self, mail: EmailMessage, password: str) -> dict[str, tuple[int, bytes]]:
        deadline = Deadline.after(self.channel.deadline_seconds, stop=self._stop)
        conversation = _Conversation()
        with Watchdog(deadline, conversation.cut) as watchdog:
            try:
                smtp = self._connect(conversation, deadline.cap(self.channel.timeout_seconds))
                try:
                    return self._converse(smtp, mail, password)
                finally:
                    _close_quietly(smtp)
            except (smtplib.SMTPException, OSError):
                if watchdog.fired:  # the failure is the cut socket's: say why it was cut
                    raise DeliveryError(
                        f"{self._where}: {deadline.reason()}", retryable=True
                    ) from None
                raise

    def _converse(
        self, smtp: smtplib.SMTP, mail: EmailMessage, password: str
    ) -> dict[str, tuple[int, bytes]]:
        if self.channel.starttls and not self.channel.ssl:
            smtp.starttls(context=self._context())
        if self.channel.username:
            smtp.login(self.channel.username, password)
        return smtp.send_message(
            mail, from_addr=self.channel.sender, to_addrs=self.channel.recipients
        )

    def _error(self, exc: BaseException, password: str) -> DeliveryError:
        problem, retryable = _classify(exc)
        text = " ".join(f"{self._where}: {problem}".split())
        if password:
            text = text.replace(password, "***")
        return DeliveryError(text, retryable=retryable)


class _Conversation:
    """The SMTP client of one conversation, known from before it connects, so the watchdog
    can cut its socket from the greeting on."""

    smtp: smtplib.SMTP | None = None

    def cut(self) -> None:
        sock = getattr(self.smtp, "sock", None)  # the TLS socket once STARTTLS made one
        if sock is not None:
            # (an OSError: closed meanwhile, so nothing is blocked on it any more)
            with contextlib.suppress(OSError):
                # the plain socket call, under TLS too: it wakes a read blocked in OpenSSL
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watched(smtplib.SMTP):
    def __init__(self, conversation: _Conversation, *args: Any, **kwargs: Any) -> None:
        conversation.smtp = self  # before connecting: the greeting is watched too
        super().__init__(*args, **kwargs)


class _WatchedSMTP(_Watched):
    pass


class _WatchedSMTPSSL(_Watched, smtplib.SMTP_SSL):
    pass


def _close_quietly(smtp: smtplib.SMTP) -> None:
    """QUIT and close, ignoring failures: once the server accepted the message, a QUIT that
    times out or is answered oddly must not turn a delivery into a retry (a duplicate)."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _reply(code: int, text: bytes | str) -> str:
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    said = " ".join(said.split())
    if len(said) > _REPLY_MAX:
        said = said[: _REPLY_MAX - 1] + "…"
    return f"{code} {said}".strip()


def _transient(code: int) -> bool:
    return 400 <= code < 500


def _classify(exc: BaseException) -> tuple[str, bool]:
    """(one-line problem, retryable) for an SMTP or socket failure."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = exc.recipients.values()
        # Every recipient refused, so nothing was delivered: retry if any refusal was transient.
        retryable = any(_transient(code) for code, _ in replies)
        shown = "; ".join(f"{rcpt}: {_reply(*reply)}" for rcpt, reply in exc.recipients.items())
        return f"all recipients refused ({shown})", retryable
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"authentication failed ({_reply(exc.smtp_code, exc.smtp_error)})", _transient(
            exc.smtp_code
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"server answered {_reply(exc.smtp_code, exc.smtp_error)}", _transient(exc.smtp_code)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"the server closed the connection ({exc})", True
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"the server does not support what the channel asks for ({exc})", False
    if isinstance(exc, smtplib.SMTPException):  # e.g. no AUTH mechanism in common
        return f"SMTP failed ({exc})", False
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the server's TLS certificate does not verify ({exc.verify_message})", False
    if isinstance(exc, TimeoutError):
        return "timed out", True
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the SMTP server running?)", True
    if isinstance(exc, OSError):  # DNS failures, resets, TLS handshakes cut short
        return f"connection failed ({exc.strerror or exc})", True
    return f"failed ({exc})", False
