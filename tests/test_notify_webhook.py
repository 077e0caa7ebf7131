"""Webhook delivery against a real HTTP receiver that verifies every signature; the apprise
sender (whose ``json://`` service posts to the same receiver) and ``build_sender``."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from notify_servers import (
    WEBHOOK_SECRET,
    Reply,
    WebhookReceiver,
    closed_port,
    make_change,
    make_message,
    webhook_receiver,
)

from service.errors import DeliveryError
from service.netguard import BlockedURL, address_problem, check_url
from service.notify.apprise_sender import AppriseSender
from service.notify.base import Sender, build_sender
from service.notify.email import EmailSender
from service.notify.render import webhook_body
from service.notify.webhook import RESPONSE_CAP, WebhookSender, sign, verify
from service.settings import AppriseChannel, EmailChannel, WebhookChannel

__all__ = ["closed_port", "webhook_receiver"]  # fixtures, imported for pytest

SECRET_ENV = "TRIALWATCH_WEBHOOK_SECRET"
ENVIRON = {SECRET_ENV: WEBHOOK_SECRET.decode()}


# The README's snippet, verbatim: what a receiver pastes. It must accept what trialwatch sends.
def readme_verify(secret: bytes, header: str, body: bytes, tolerance: int = 300) -> bool:
    """True if `header` (Trialwatch-Signature) signs the raw request `body` with `secret`."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    # trust_env=False: a proxy set in the environment must not stand between us and 127.0.0.1.
    with httpx.Client(trust_env=False) as client:
        yield client


def channel(url: str, **options: Any) -> WebhookChannel:
    values: dict[str, Any] = {
        "name": "hook",
        "type": "webhook",
        "url": url,
        "allow_private_network": True,
        "timeout_seconds": 2.0,
    }
    return WebhookChannel(**(values | options))


def sender(url: str, http: httpx.Client, **options: Any) -> WebhookSender:
    return WebhookSender(channel(url, **options), http, environ=ENVIRON)


def failure(webhook: WebhookSender, **message: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        webhook.send(make_message(**message))
    return caught.value


# --------------------------------------------------------------------------- delivery


def test_a_delivery_is_a_signed_post_of_the_contract_body(
    webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    message = make_message(event_id="evt-42")
    sender(webhook_receiver.url, http).send(message)

    [request] = webhook_receiver.requests
    assert request.method == "POST" and request.path == "/hooks/trialwatch"
    assert request.body == webhook_body(message)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["trialwatch-event-id"] == "evt-42"
    assert request.signature_valid
    assert readme_verify(WEBHOOK_SECRET, request.headers["trialwatch-signature"], request.body)
    body = json.loads(request.body)
    assert list(body) == ["id", "type", "created_at", "study", "changes"]
    assert body["id"] == "evt-42" and body["type"] == "study.changed"


def test_the_signature_header_has_the_send_time_and_an_hmac_of_it_and_the_body(
    webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    webhook = WebhookSender(channel(webhook_receiver.url), http, environ=ENVIRON, clock=lambda: 1e9)
    webhook.send(make_message())
    [request] = webhook_receiver.requests
    expected = hmac.new(WEBHOOK_SECRET, b"1000000000." + request.body, hashlib.sha256).hexdigest()
    assert request.headers["trialwatch-signature"] == f"t=1000000000,v1={expected}"


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_a_delivery(
    status: int, webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    webhook_receiver.reply(Reply(status, body=b"thanks"))
    sender(webhook_receiver.url, http).send(make_message())
    assert len(webhook_receiver.requests) == 1


def test_a_retry_carries_the_same_event_id_and_body(
    webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    webhook_receiver.reply(Reply(503))
    times = iter([1_000_000_000.0, 1_000_000_060.0])
    webhook = WebhookSender(
        channel(webhook_receiver.url), http, environ=ENVIRON, clock=lambda: next(times)
    )
    message = make_message(event_id="evt-7")
    with pytest.raises(DeliveryError) as caught:
        webhook.send(message)
    assert caught.value.retryable
    webhook.send(message)

    first, second = webhook_receiver.requests
    assert first.headers["trialwatch-event-id"] == second.headers["trialwatch-event-id"] == "evt-7"
    assert first.body == second.body
    # A fresh timestamp per attempt, so the retry is not rejected as stale.
    assert first.headers["trialwatch-signature"] != second.headers["trialwatch-signature"]


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (408, True),
        (429, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (410, False),
        (422, False),
    ],
)
def test_the_answer_decides_whether_to_retry(
    status: int, retryable: bool, webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    webhook_receiver.reply(Reply(status, body=b"nope"))
    error = failure(sender(webhook_receiver.url, http))
    assert error.retryable is retryable
    assert str(status) in error.message
    assert "\n" not in error.message


def test_410_gone_is_not_retried(webhook_receiver: WebhookReceiver, http: httpx.Client) -> None:
    webhook_receiver.reply(Reply(410, body=b"this hook was deleted"))
    error = failure(sender(webhook_receiver.url, http))
    assert not error.retryable
    assert "410 Gone" in error.message and "this hook was deleted" in error.message


def test_429_keeps_the_receivers_retry_after_in_the_message(
    webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    webhook_receiver.reply(Reply(429, headers={"Retry-After": "120"}))
    error = failure(sender(webhook_receiver.url, http))
    assert error.retryable and "Retry-After: 120" in error.message


def test_a_redirect_is_not_followed_and_not_retried(
    webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    webhook_receiver.reply(Reply(301, headers={"Location": "https://hooks.example.org/new"}))
    error = failure(sender(webhook_receiver.url, http))
    assert not error.retryable
    assert "webhook answered 301 redirect to https://hooks.example.org/new" in error.message
    assert "configure the final URL" in error.message
    assert len(webhook_receiver.requests) == 1


def test_a_redirect_loop_ends_after_one_request(
    webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    webhook_receiver.default = Reply(302, headers={"Location": webhook_receiver.url})
    error = failure(sender(webhook_receiver.url, http))
    assert not error.retryable and "302 redirect" in error.message
    assert len(webhook_receiver.requests) == 1


def test_a_receiver_that_does_not_answer_in_time_is_retried(
    webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    webhook_receiver.reply(Reply(hang=True))
    started = time.monotonic()
    error = failure(sender(webhook_receiver.url, http, timeout_seconds=0.2))
    assert error.retryable and "no answer within 0.2 s" in error.message
    assert time.monotonic() - started < 2


def test_nothing_listening_is_retried(closed_port: int, http: httpx.Client) -> None:
    error = failure(sender(f"http://127.0.0.1:{closed_port}/hook", http))
    assert error.retryable and "connection failed" in error.message


def test_a_huge_error_body_is_read_only_up_to_the_cap_and_quoted_in_one_short_line(
    webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    webhook_receiver.reply(Reply(400, body=b"error\n" * (4 * RESPONSE_CAP)))
    error = failure(sender(webhook_receiver.url, http))
    assert not error.retryable
    assert "\n" not in error.message and len(error.message) < 400


def test_a_missing_secret_names_the_variable_and_sends_nothing(
    webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    webhook = WebhookSender(
        channel(webhook_receiver.url, secret_env="HOOK_SECRET_FOR_TESTS"), http, environ={}
    )
    error = failure(webhook)
    assert not error.retryable and "HOOK_SECRET_FOR_TESTS" in error.message
    assert webhook_receiver.requests == []


def test_errors_never_show_the_secret_or_the_urls_path(
    webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    url = webhook_receiver.url + "/T000/B000/tokentokentoken?key=querytoken"
    webhook_receiver.reply(Reply(500))
    error = failure(sender(url, http))
    assert WEBHOOK_SECRET.decode() not in error.message
    assert "tokentokentoken" not in error.message and "querytoken" not in error.message
    assert "webhook hook (127.0.0.1)" in error.message


# --------------------------------------------------------------------------- private network


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_loopback_receiver_is_refused_before_any_request_unless_allowed(
    host: str, webhook_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    url = webhook_receiver.url.replace("127.0.0.1", host)
    error = failure(sender(url, http, allow_private_network=False))
    assert isinstance(error, DeliveryError) and not error.retryable
    assert "loopback" in error.message and "allow_private_network" in error.message
    assert webhook_receiver.requests == []

    sender(url, http, allow_private_network=True).send(make_message())
    assert len(webhook_receiver.requests) == 1


def resolver(*addresses: str) -> Any:
    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    return resolve


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata services
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("::1", "loopback"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped
        ("224.0.0.1", "multicast"),
    ],
)
def test_non_public_addresses_are_refused(address: str, problem: str) -> None:
    with pytest.raises(BlockedURL) as caught:
        check_url("https://hooks.example.org/x", False, resolve=resolver(address))
    assert problem in caught.value.message and not caught.value.retryable
    assert isinstance(caught.value, ValueError)


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(BlockedURL):
        check_url(
            "https://hooks.example.org/x", False, resolve=resolver("93.184.216.34", "10.0.0.1")
        )


def test_public_addresses_pass_and_allowing_private_skips_resolution() -> None:
    check_url("https://hooks.example.org/x", False, resolve=resolver("93.184.216.34"))

    def no_dns(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        raise AssertionError("resolved although private networks are allowed")

    check_url("http://10.0.0.1/x", True, resolve=no_dns)


def test_a_host_that_does_not_resolve_is_retryable() -> None:
    def failing(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(DeliveryError) as caught:
        check_url("https://nowhere.example.org/x", False, resolve=failing)
    assert caught.value.retryable and not isinstance(caught.value, BlockedURL)


@pytest.mark.parametrize("url", ["ftp://example.org/x", "http:///nohost", "http://h:notaport/"])
def test_urls_that_are_not_http_with_a_host_are_refused(url: str) -> None:
    with pytest.raises(BlockedURL):
        check_url(url, True)


def test_address_problem_accepts_a_public_address() -> None:
    import ipaddress

    assert address_problem(ipaddress.ip_address("93.184.216.34")) is None
    assert address_problem(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946")) is None


# --------------------------------------------------------------------------- sign / verify


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"e"}'
    digest = hmac.new(b"s", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(b"s", 1700000000, body) == f"t=1700000000,v1={digest}"


def test_verify_accepts_a_fresh_signature_and_rejects_tampering() -> None:
    body = b'{"id":"e"}'
    header = sign(b"s", 1700000000, body)
    assert verify(b"s", header, body, now=1700000100)
    assert not verify(b"s", header, body + b" ", now=1700000100)
    assert not verify(b"other", header, body, now=1700000100)
    assert not verify(b"s", header.replace("t=1700000000", "t=1700000001"), body, now=1700000100)


def test_verify_rejects_a_signature_older_or_newer_than_the_tolerance() -> None:
    header = sign(b"s", 1700000000, b"x")
    assert not verify(b"s", header, b"x", now=1700000301)
    assert not verify(b"s", header, b"x", now=1699999699)
    assert verify(b"s", header, b"x", now=1700000600, tolerance_seconds=600)


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", "t=1700000000", "garbage"])
def test_verify_rejects_malformed_headers(header: str) -> None:
    assert not verify(b"s", header, b"x", now=1700000000)


def test_verify_accepts_any_of_several_v1_signatures_for_secret_rotation() -> None:
    new = sign(b"new", 1700000000, b"x")
    old_digest = sign(b"old", 1700000000, b"x").partition("v1=")[2]
    header = f"{new},v1={old_digest}"
    assert verify(b"new", header, b"x", now=1700000000)
    assert verify(b"old", header, b"x", now=1700000000)


def test_the_readme_snippet_agrees_with_verify() -> None:
    now = int(time.time())
    body = webhook_body(make_message(make_change(), make_change(id=8, severity="high")))
    header = sign(WEBHOOK_SECRET, now, body)
    assert readme_verify(WEBHOOK_SECRET, header, body) and verify(WEBHOOK_SECRET, header, body)
    stale = sign(WEBHOOK_SECRET, now - 3600, body)
    assert not readme_verify(WEBHOOK_SECRET, stale, body) and not verify(
        WEBHOOK_SECRET, stale, body
    )
    assert not readme_verify(WEBHOOK_SECRET, header, body + b"x")


# --------------------------------------------------------------------------- the other senders


# apprise 2.x imports the deprecated imghdr module (its problem, not ours).
APPRISE_IMPORT = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")


def apprise_channel(*urls: str) -> AppriseChannel:
    return AppriseChannel(name="chat", type="apprise", urls=list(urls), allow_private_network=True)


def test_build_sender_picks_the_sender_for_the_channel_type(http: httpx.Client) -> None:
    email = EmailChannel(name="m", type="email", recipients=["a@example.org"])
    hook = channel("https://hooks.example.org/x")
    chat = apprise_channel("json://hooks.example.org/x")
    senders = [build_sender(c, http) for c in (email, hook, chat)]
    assert [type(s) for s in senders] == [EmailSender, WebhookSender, AppriseSender]
    assert [s.name for s in senders] == ["m", "hook", "chat"]
    assert all(isinstance(s, Sender) for s in senders)


@APPRISE_IMPORT
def test_apprise_posts_the_subject_and_text(webhook_receiver: WebhookReceiver) -> None:
    pytest.importorskip("apprise")
    url = webhook_receiver.url.replace("http://", "json://")
    AppriseSender(apprise_channel(url)).send(make_message(event_id="evt-a"))
    [request] = webhook_receiver.requests
    posted = json.loads(request.body)
    assert posted["title"] == "NCT05605665: Recruiting → Completed"
    assert "Overall status: Recruiting → Completed" in posted["message"]


@APPRISE_IMPORT
def test_apprise_failures_are_retryable_and_never_show_the_url(
    webhook_receiver: WebhookReceiver,
) -> None:
    pytest.importorskip("apprise")
    webhook_receiver.reply(Reply(500))
    url = webhook_receiver.url.replace("http://", "json://") + "/secret-token"
    with pytest.raises(DeliveryError) as caught:
        AppriseSender(apprise_channel(url)).send(make_message())
    assert caught.value.retryable and "secret-token" not in caught.value.message


@APPRISE_IMPORT
def test_an_apprise_url_it_does_not_understand_is_not_retryable() -> None:
    pytest.importorskip("apprise")
    with pytest.raises(DeliveryError) as caught:
        AppriseSender(apprise_channel("nosuchservice://token@x")).send(make_message())
    assert not caught.value.retryable and "URL #1" in caught.value.message
    assert "token" not in caught.value.message


def test_without_apprise_installed_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # makes `import apprise` fail
    with pytest.raises(DeliveryError) as caught:
        AppriseSender(apprise_channel("json://hooks.example.org/x")).send(make_message())
    assert not caught.value.retryable
    assert "pip install 'trialwatch[apprise]'" in caught.value.message
