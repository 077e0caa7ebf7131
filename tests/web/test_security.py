"""The token gate and the headers, in-process: loopback detection, which token a request
carries, and every answer's security headers (pages, errors, 401s)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from starlette.testclient import TestClient

from service.errors import ConfigError
from service.settings import WebSettings
from service.web.app import create_app
from service.web.security import is_loopback, presented_token, web_token

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
