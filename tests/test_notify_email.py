"""Email delivery against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest
from notify_servers import (
    SMTP_LOGIN,
    SMTP_PASSWORD,
    SmtpFactory,
    SmtpServer,
    TlsFiles,
    closed_port,
    hangup_server,
    make_change,
    make_message,
    password_authenticator,
    smtp_factory,
    smtp_server,
    tls_files,
)

from service.errors import DeliveryError
from service.notify.email import EmailSender, build_email, message_id
from service.notify.render import email_subject
from service.settings import EmailChannel

__all__ = ["closed_port", "hangup_server", "smtp_factory", "smtp_server", "tls_files"]

PASSWORD_ENV = "TRIALWATCH_SMTP_PASSWORD"


def channel(port: int, **options: Any) -> EmailChannel:
    values: dict[str, Any] = {
        "name": "team-mail",
        "type": "email",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "sender": "trialwatch@example.org",
        "recipients": ["team@example.org", "lead@example.org"],
        "timeout_seconds": 5.0,
    }
    return EmailChannel(**(values | options))


def failure(mailer: EmailSender) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        mailer.send(make_message())
    assert "\n" not in caught.value.message
    return caught.value


def parts(mail: EmailMessage) -> dict[str, str]:
    found = {}
    for part in mail.walk():
        if part.get_content_maintype() == "text":
            assert isinstance(part, EmailMessage)
            found[part.get_content_type()] = part.get_content()
    return found


# --------------------------------------------------------------------------- delivery


def test_an_email_reaches_the_server_with_subject_text_and_html(smtp_server: SmtpServer) -> None:
    message = make_message(
        make_change(),
        make_change(
            id=8,
            kind="enrollment_changed",
            field="protocolSection.designModule.enrollmentInfo.count",
            old=30,
            new=28,
            summary="Enrollment: 30 → 28",
        ),
        title="IL-2 <script>alert('x')</script> in lupus",
    )
    EmailSender(channel(smtp_server.port)).send(message)

    [received] = smtp_server.received
    assert received.mail_from == "trialwatch@example.org"
    assert received.rcpt_tos == ["team@example.org", "lead@example.org"]
    mail = received.message
    assert mail["Subject"] == "NCT05605665: Recruiting → Completed; enrollment 30 → 28"
    assert mail["From"] == "trialwatch@example.org"
    assert mail["To"] == "team@example.org, lead@example.org"
    assert mail.get_content_type() == "multipart/alternative"
    text, html = parts(mail)["text/plain"], parts(mail)["text/html"]
    assert "Overall status: Recruiting → Completed" in text
    assert "IL-2 <script>alert('x')</script> in lupus" in text  # plain text carries it as text
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "https://clinicaltrials.gov/study/NCT05605665" in html


def test_the_event_id_is_in_a_header_and_in_a_stable_message_id(smtp_server: SmtpServer) -> None:
    mailer = EmailSender(channel(smtp_server.port))
    message = make_message(event_id="evt-0042")
    mailer.send(message)
    mailer.send(message)  # a retry

    first, second = (r.message for r in smtp_server.received)
    assert first["Trialwatch-Event-Id"] == second["Trialwatch-Event-Id"] == "evt-0042"
    assert first["Message-ID"] == second["Message-ID"] == "<trialwatch.evt-0042@example.org>"
    assert first["Date"] == second["Date"]
    assert first["Auto-Submitted"] == "auto-generated"


def test_message_ids_stay_valid_for_any_event_id() -> None:
    assert message_id("a b<c>", "x@example.org").startswith("<trialwatch.")
    assert " " not in message_id("a b<c>", "x@example.org")
    assert message_id("e1", "no-domain") == "<trialwatch.e1@trialwatch.invalid>"


def test_a_digest_subject_counts_studies_and_changes() -> None:
    from service.notify.render import Message, StudyChanges

    digest = Message(
        event_id="d1",
        created_at=make_change().detected_at,
        kind="digest",
        studies=[
            StudyChanges(study_id="NCT05605665", changes=[make_change(), make_change(id=9)]),
            StudyChanges(study_id="NCT00000001", changes=[make_change(study_id="NCT00000001")]),
        ],
    )
    mail = build_email(digest, channel(25))
    assert mail["Subject"] == "trialwatch digest: 2 studies, 3 changes" == email_subject(digest)


# --------------------------------------------------------------------------- failures


def test_nothing_listening_is_retried(closed_port: int) -> None:
    error = failure(EmailSender(channel(closed_port)))
    assert error.retryable and "connection refused" in error.message


def test_a_server_that_hangs_up_is_retried(hangup_server: int) -> None:
    error = failure(EmailSender(channel(hangup_server)))
    assert error.retryable and "closed the connection" in error.message


def test_550_mailbox_unavailable_is_not_retried(smtp_server: SmtpServer) -> None:
    smtp_server.handler.rcpt_reply = "550 5.1.1 Mailbox unavailable"
    error = failure(EmailSender(channel(smtp_server.port)))
    assert not error.retryable and "550 5.1.1 Mailbox unavailable" in error.message
    assert smtp_server.received == []


@pytest.mark.parametrize(
    "reply", ["451 4.3.0 Local error, try again later", "421 4.3.2 Shutting down", "452 Full"]
)
def test_4xx_replies_to_data_are_retried(smtp_server: SmtpServer, reply: str) -> None:
    smtp_server.handler.data_reply = reply
    error = failure(EmailSender(channel(smtp_server.port)))
    assert error.retryable and reply.split()[0] in error.message


def test_a_4xx_reply_to_recipients_is_retried(smtp_server: SmtpServer) -> None:
    smtp_server.handler.rcpt_reply = "450 4.2.1 Greylisted, come back later"
    error = failure(EmailSender(channel(smtp_server.port)))
    assert error.retryable and "Greylisted" in error.message


def test_554_to_data_is_not_retried(smtp_server: SmtpServer) -> None:
    smtp_server.handler.data_reply = "554 5.7.1 Rejected as spam"
    error = failure(EmailSender(channel(smtp_server.port)))
    assert not error.retryable and "554" in error.message


# --------------------------------------------------------------------------- authentication


# aiosmtpd warns that AUTH without TLS is unsafe: true, and what these tests need.
AUTH_WITHOUT_TLS = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def auth_server(smtp_factory: SmtpFactory) -> SmtpServer:
    return smtp_factory(
        authenticator=password_authenticator(SMTP_LOGIN, SMTP_PASSWORD),
        auth_require_tls=False,
        auth_required=True,
    )


@AUTH_WITHOUT_TLS
def test_login_uses_the_password_from_the_environment(auth_server: SmtpServer) -> None:
    mailer = EmailSender(
        channel(auth_server.port, username=SMTP_LOGIN), environ={PASSWORD_ENV: SMTP_PASSWORD}
    )
    mailer.send(make_message())
    [received] = auth_server.received
    assert received.authenticated


@AUTH_WITHOUT_TLS
def test_a_wrong_password_is_not_retried_and_never_shown(auth_server: SmtpServer) -> None:
    wrong = "hunter2-wrong-password"
    mailer = EmailSender(
        channel(auth_server.port, username=SMTP_LOGIN), environ={PASSWORD_ENV: wrong}
    )
    error = failure(mailer)
    assert not error.retryable and "535" in error.message
    assert wrong not in error.message and wrong not in repr(error)
    assert auth_server.received == []


@AUTH_WITHOUT_TLS
def test_a_missing_password_variable_is_named_and_not_retried(auth_server: SmtpServer) -> None:
    mailer = EmailSender(
        channel(auth_server.port, username=SMTP_LOGIN, password_env="MY_SMTP_PW"), environ={}
    )
    error = failure(mailer)
    assert not error.retryable and "MY_SMTP_PW" in error.message


def test_no_password_is_read_without_a_username(smtp_server: SmtpServer) -> None:
    EmailSender(channel(smtp_server.port), environ={}).send(make_message())
    assert len(smtp_server.received) == 1


# --------------------------------------------------------------------------- TLS


def test_starttls_upgrades_the_connection(smtp_factory: SmtpFactory, tls_files: TlsFiles) -> None:
    server = smtp_factory(tls_context=tls_files.server_context(), require_starttls=True)
    mailer = EmailSender(
        channel(server.port, starttls=True), ssl_context=tls_files.client_context()
    )
    mailer.send(make_message())
    assert len(server.received) == 1


def test_implicit_tls_works(smtp_factory: SmtpFactory, tls_files: TlsFiles) -> None:
    server = smtp_factory(ssl_context=tls_files.server_context())
    mailer = EmailSender(channel(server.port, ssl=True), ssl_context=tls_files.client_context())
    mailer.send(make_message())
    assert len(server.received) == 1


def test_a_certificate_that_does_not_verify_is_not_retried(
    smtp_factory: SmtpFactory, tls_files: TlsFiles
) -> None:
    server = smtp_factory(tls_context=tls_files.server_context(), require_starttls=True)
    # The system's trust store does not know the throwaway certificate.
    error = failure(EmailSender(channel(server.port, starttls=True)))
    assert not error.retryable and "certificate" in error.message
    assert server.received == []


def test_starttls_asked_of_a_server_without_it_is_not_retried(smtp_server: SmtpServer) -> None:
    error = failure(EmailSender(channel(smtp_server.port, starttls=True)))
    assert not error.retryable and "STARTTLS" in error.message
    assert smtp_server.received == []
