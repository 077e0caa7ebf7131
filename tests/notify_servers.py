"""Real servers for the notification tests: an SMTP server and a webhook receiver, on 127.0.0.1.

* ``smtp_server`` / ``smtp_factory``: aiosmtpd ``Controller``s that keep every message they
  accept and can be told to answer RCPT or DATA with a chosen reply (``550 …``, ``451 …``),
  require AUTH, or speak TLS (STARTTLS or implicit) with a throwaway certificate.
* ``webhook_receiver``: a ``ThreadingHTTPServer`` that checks every request's signature with
  ``service.notify.webhook.verify`` and answers with scripted replies (any status, headers,
  body, or hanging until the test ends, for timeouts).
* ``closed_port`` (nothing listens) and ``hangup_server`` (accepts, then closes at once).
* ``make_change`` / ``make_message``: sample messages for the senders.

Tests import the fixtures from here (``from notify_servers import smtp_server, …``); nothing
sleeps to wait for a server: ``wait_until`` polls a condition with a deadline.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServerProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from service.models import StoredChange
from service.notify.render import Message, StudyChanges
from service.notify.webhook import verify

WEBHOOK_SECRET = b"test-webhook-secret-0123456789"
SMTP_LOGIN = "trialwatch"
SMTP_PASSWORD = "correct horse battery staple"


DETECTED = datetime(2026, 11, 22, 6, 0, 3, tzinfo=UTC)


def make_change(**fields: Any) -> StoredChange:
    """A stored change; by default NCT05605665's status going Recruiting → Completed."""
    values: dict[str, Any] = {
        "registry": "ctgov",
        "study_id": "NCT05605665",
        "kind": "status_changed",
        "field": "protocolSection.statusModule.overallStatus",
        "old": "RECRUITING",
        "new": "COMPLETED",
        "severity": "medium",
        "summary": "Overall status: Recruiting → Completed",
        "id": 7,
        "detected_at": DETECTED,
        "from_version": 1,
        "to_version": 2,
    }
    values.update(fields)
    return StoredChange(**values)


def make_message(
    *changes: StoredChange,
    event_id: str = "evt-0001",
    title: str = "Low-dose IL-2 and rapamycin in lupus",
    study_id: str = "NCT05605665",
) -> Message:
    """A ``study.changed`` message for one study."""
    return Message(
        event_id=event_id,
        created_at=DETECTED,
        kind="study.changed",
        studies=[
            StudyChanges(study_id=study_id, title=title, changes=list(changes) or [make_change()])
        ],
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], *, timeout: float = 5.0, what: str = "it") -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


# --------------------------------------------------------------------------- SMTP


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    authenticated: bool

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed


class SmtpHandler:
    """Accepts mail, or answers RCPT/DATA with the reply a test set (``"550 …"``)."""

    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None

    async def handle_RCPT(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTPServerProtocol, session: Session, envelope: Envelope
    ) -> str:
        if self.data_reply:
            return self.data_reply
        content = envelope.original_content or b""
        self.received.append(
            ReceivedMail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                data=content if isinstance(content, bytes) else content.encode(),
                authenticated=bool(session.authenticated),
            )
        )
        return "250 Message accepted for delivery"


def password_authenticator(login: str, password: str) -> Callable[..., AuthResult]:
    """An aiosmtpd authenticator accepting exactly one login and password."""

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == login.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return authenticate


@dataclass
class SmtpServer:
    controller: Controller
    handler: SmtpHandler

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def received(self) -> list[ReceivedMail]:
        return self.handler.received


SmtpFactory = Callable[..., SmtpServer]


@pytest.fixture
def smtp_factory() -> Iterator[SmtpFactory]:
    """Start SMTP servers: ``smtp_factory(**aiosmtpd SMTP options)``
    (``authenticator=…, auth_require_tls=False``, ``tls_context=…``, ``ssl_context=…``)."""
    started: list[Controller] = []

    def start(**options: Any) -> SmtpServer:
        handler = SmtpHandler()
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
        controller.start()  # returns once the server answers a connection
        started.append(controller)
        return SmtpServer(controller, handler)

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def smtp_server(smtp_factory: SmtpFactory) -> SmtpServer:
    """A plain SMTP server (no TLS, no AUTH) that accepts every message."""
    return smtp_factory()


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Trusts exactly this certificate (issued for IP 127.0.0.1)."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway self-signed certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not available to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    files = TlsFiles(folder / "cert.pem", folder / "key.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(files.key), "-out", str(files.cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return files


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    return free_port()


@pytest.fixture
def hangup_server() -> Iterator[int]:
    """A port whose server accepts each connection and closes it before saying anything."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    listener.close()


# --------------------------------------------------------------------------- webhook receiver


@dataclass
class Reply:
    """What the receiver answers to one request."""

    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hang: bool = False  # wait (until the test ends) instead of answering: a timeout


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    signature_valid: bool


class _QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that stops reading (a capped body, a timeout) resets the connection:
        # expected here, and not worth a traceback in the test output.
        pass


class WebhookReceiver:
    """A real HTTP receiver on 127.0.0.1 that verifies trialwatch's signatures."""

    def __init__(self, secret: bytes = WEBHOOK_SECRET) -> None:
        self.secret = secret
        self.requests: list[ReceivedRequest] = []
        self.replies: deque[Reply] = deque()  # answered in order, then ``default``
        self.default = Reply(204)
        self.released = threading.Event()  # set at teardown: hanging replies return
        self._server = _QuietHTTPServer(("127.0.0.1", 0), self._handler_class())
        # A short poll interval: shutdown() waits for it, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/trialwatch"

    def reply(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next_reply(self) -> Reply:
        try:
            return self.replies.popleft()
        except IndexError:
            return self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                signature = self.headers.get("Trialwatch-Signature", "")
                receiver.requests.append(
                    ReceivedRequest(
                        method="POST",
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        signature_valid=verify(receiver.secret, signature, body),
                    )
                )
                self._answer(receiver._next_reply())

            def _answer(self, reply: Reply) -> None:
                if reply.hang:
                    receiver.released.wait(timeout=30)
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a capped read closes early)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A running receiver; its secret is ``WEBHOOK_SECRET``."""
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()
