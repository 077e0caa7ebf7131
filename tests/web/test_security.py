"""The token gate and the headers, in-process: loopback detection, which token a request
carries, and every answer's security headers (pages, errors, 401s)."""

from __future__ import annotations

import base64
import hmac
import logging
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from service.errors import ConfigError
from service.settings import WebSettings
from service.web.app import create_app
from service.web.pages import encode_cursor
from service.web.security import is_loopback, presented_token, web_token
from web.conftest import DEMO_STUDY

TOKEN = "tok-3f9a/b+c==-0123456789abcdef-long"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.4", False),
        ("::ffff:10.0.0.1", False),
        ("example.org", False),
    ],
)
def test_loopback_is_what_only_this_machine_reaches(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_token_is_needed_off_loopback_and_must_be_set() -> None:
    assert web_token(WebSettings(), "127.0.0.1", {}) is None
    with pytest.raises(ConfigError, match=r"refusing to serve on 0\.0\.0\.0 without a token"):
        web_token(WebSettings(), "0.0.0.0", {})
    settings = WebSettings(token_env="TW_TOKEN")
    with pytest.raises(ConfigError, match="TW_TOKEN is not set"):
        web_token(settings, "0.0.0.0", {"TW_TOKEN": "  "})
    assert web_token(settings, "0.0.0.0", {"TW_TOKEN": TOKEN}) == TOKEN
    for unsendable in ("caf\u00e9", "two words", "tab\there"):
        with pytest.raises(ConfigError, match="must be printable ASCII"):
            web_token(settings, "0.0.0.0", {"TW_TOKEN": unsendable})
    # configured, it is asked on loopback too: a proxy on this host makes everyone local
    assert web_token(settings, "127.0.0.1", {"TW_TOKEN": TOKEN}) == TOKEN


def scope(headers: dict[str, str] | None = None, query: str = "") -> dict[str, Any]:
    encoded = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http", "headers": encoded, "query_string": query.encode()}


def test_the_token_is_read_from_bearer_basic_or_the_query() -> None:
    assert presented_token(scope({"Authorization": "Bearer abc"})) == "abc"
    assert presented_token(scope({"Authorization": "bearer  abc "})) == "abc"
    basic = base64.b64encode(b"anyone:abc").decode()
    assert presented_token(scope({"Authorization": f"Basic {basic}"})) == "abc"
    assert presented_token(scope({"Authorization": "Basic !!!"})) is None
    assert presented_token(scope(query="study=NCT1&token=abc")) == "abc"
    assert presented_token(scope()) is None
    assert presented_token(scope({"Authorization": "Bearer "})) is None


def test_pages_answer_only_with_the_token_when_one_is_set(web_app: Any) -> None:
    # the default TestClient host is "testserver": not loopback, as an outside client
    client = TestClient(create_app(web_app, token=TOKEN))
    refused = client.get("/api/changes")
    assert refused.status_code == 401 and TOKEN not in refused.text
    assert refused.headers["x-content-type-options"] == "nosniff"
    accepted = client.get("/api/changes", headers={"Authorization": f"Bearer {TOKEN}"})
    assert accepted.status_code == 200
    assert client.get("/healthz").status_code == 200


def test_every_answer_carries_the_security_headers(client: TestClient) -> None:
    for path in ("/healthz", "/no/such/page", "/static/web.css", "/api/changes?size=0"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp, path
        assert "frame-ancestors 'none'" in csp
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"


def test_errors_are_one_line_naming_what_is_wrong(client: TestClient) -> None:
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "no such page" in missing.text
    bad = client.get("/api/changes?size=0")
    assert bad.status_code == 400
    assert bad.json() == {"error": "size: '0' is not a number from 1 to 500", "status": 400}
    assert client.get("/static/../../settings.py").status_code == 404


# ---- what a security reviewer tries first (issue 25) -----------------------------------------

READ_ONLY = (
    "/",
    "/api/studies",
    f"/studies/{DEMO_STUDY}",
    "/changes",
    "/api/changes",
    "/findings",
    "/api/findings",
    "/seeds",
    "/outbox",
    "/feeds/changes.atom",
    "/static/web.css",
    "/healthz",
    "/readyz",
)


def test_read_only_routes_answer_head_and_refuse_every_write_method(client: TestClient) -> None:
    for path in READ_ONLY:
        got = client.get(path)
        head = client.head(path)
        assert head.status_code == got.status_code and head.content == b"", path
        for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            refused = client.request(method, path, content=b"x=1")
            assert refused.status_code == 405, (method, path, refused.status_code)
            assert "POST" not in refused.headers["allow"] and "GET" in refused.headers["allow"]
            assert "500" not in refused.text


def test_the_token_is_compared_in_constant_time(
    web_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def watched(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", watched)
    client = TestClient(create_app(web_app, token=TOKEN))
    assert client.get("/api/changes", params={"token": "x" * len(TOKEN)}).status_code == 401
    assert client.get("/api/changes", params={"token": TOKEN}).status_code == 200
    assert [a for a, _ in compared] == [b"x" * len(TOKEN), TOKEN.encode()]  # no == anywhere


def test_the_token_is_never_echoed_into_a_location_an_error_page_a_feed_or_a_log(
    web_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(create_app(web_app, token=TOKEN))
    caplog.set_level(logging.DEBUG)
    asked = [
        "/changes/",  # a trailing slash: no redirect built from Host and query, a 404
        f"/studies/{DEMO_STUDY}/",
        "/nowhere",
        "/?size=0",
        "/changes?since=someday",
        "/api/changes?cursor=forged",
        "/feeds/changes.atom",
        "/feeds/changes.atom?kind=nope",
        f"/feeds/studies/{DEMO_STUDY}.atom",
    ]
    for path in asked:
        joined = "&" if "?" in path else "?"
        answer = client.get(f"{path}{joined}token={TOKEN}", follow_redirects=False)
        assert answer.status_code != 307 and "location" not in answer.headers, path
        if answer.status_code != 200 or path.endswith(".atom"):
            assert TOKEN not in answer.text, path  # error pages and the feed's self link
        for value in answer.headers.values():
            assert TOKEN not in value, path
    refused = client.get("/api/changes", params={"token": TOKEN[:-1]})
    assert refused.status_code == 401 and TOKEN[:-1] not in refused.text
    assert TOKEN not in caplog.text and TOKEN[:-1] not in caplog.text


# Forged, replayed and oversized parameters: a one-line 400, never a 500, never a slow query.
HOSTILE = [
    "size=99999999999999999999999",
    "size=-1",
    "size=1e3",
    "size=%EF%BC%95",  # a full-width digit 5: isdigit() says yes, int() would too
    "since=99999-01-01",
    "since=0001-01-01T00:00:00%2B14:00",
    "since=" + "9" * 300,
    "sort=id;DROP TABLE watches",
    "sort=" + "x" * 5000,
    "cursor=" + "A" * 5000,
    "cursor=" + encode_cursor(["id", None, "ctgov", "NCT" + "9" * 150]),
    "cursor=" + encode_cursor([2**70]),
    "cursor=" + encode_cursor([-1]),
    "cursor=" + encode_cursor(["open", 2**63]),
    "cursor=" + encode_cursor([{"$gt": ""}]),
    "cursor=" + encode_cursor([[1], [2]]),
    "before=" + encode_cursor(["x"]),
    "cursor=" + encode_cursor([1]) + "&before=" + encode_cursor([2]),
    "q=" + "%25_" * 60,
    "q=%00",
    "tag=%ED%A0%80",
    "study=" + "NCT" + "0" * 500,
]
PAGED = ("/", "/api/studies", "/changes", "/api/changes", "/findings", "/api/findings")


@pytest.mark.parametrize("query", HOSTILE, ids=[q[:28] for q in HOSTILE])
def test_forged_and_oversized_parameters_are_a_quick_400_on_every_paged_route(
    client: TestClient, query: str
) -> None:
    for path in PAGED:
        started = time.monotonic()
        answer = client.get(f"{path}?{query}")
        elapsed = time.monotonic() - started
        assert answer.status_code in (200, 400), (path, query, answer.status_code)
        assert elapsed < 2.0, (path, query, elapsed)
        if answer.status_code == 400:
            message = answer.json()["error"] if "/api/" in path else answer.text
            assert "Traceback" not in message and "sqlalchemy" not in message.lower()
    feed = client.get(f"/feeds/changes.atom?{query}")
    assert feed.status_code in (200, 400), (query, feed.status_code)


def test_a_cursor_replayed_on_another_page_or_order_is_refused(client: TestClient) -> None:
    from_changes = client.get("/api/changes?size=1&all=yes").links["next"]["url"]
    from_list = client.get("/api/studies?size=1").links["next"]["url"]
    changes_cursor = from_changes.split("cursor=")[1].split("&")[0]
    list_cursor = from_list.split("cursor=")[1].split("&")[0]
    assert client.get(f"/api/studies?cursor={changes_cursor}").status_code == 400
    assert client.get(f"/api/changes?cursor={list_cursor}").status_code == 400
    assert client.get(f"/api/findings?cursor={changes_cursor}").status_code == 400
    assert client.get(f"/api/studies?sort=status&cursor={list_cursor}").status_code == 400
    # replayed on its own page it is just that page again
    assert client.get(from_changes).json() == client.get(from_changes).json()
