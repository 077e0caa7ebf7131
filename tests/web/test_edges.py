"""The web app's edges: forged cursors with integers out of range, the Host check without a
token (DNS rebinding) and links built from the configured address, short tokens refused at
start, repeated 401s slowed down, and probes on a token server that name no store path or
host (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from service.errors import ConfigError
from service.settings import WebSettings
from service.web.security import FailedAttempts, allowed_hosts, web_token
from web.test_limits import ServeWeb, base, get, serve_web  # noqa: F401 (a fixture)

TOKEN = "a-long-enough-token-for-the-tests-0123456789"


def cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize("forged", [2**63, -1, 10**30, True])
def test_a_cursor_with_an_integer_out_of_range_is_a_400(client: Any, forged: Any) -> None:
    changes = client.get("/api/changes", params={"cursor": cursor([forged])})
    assert changes.status_code == 400 and "not a cursor from this site" in changes.json()["error"]
    findings = client.get("/findings", params={"cursor": cursor(["open", forged])})
    assert findings.status_code == 400
    assert client.get("/api/changes", params={"cursor": cursor([2**63 - 1])}).status_code == 200


def test_without_a_token_only_the_bound_address_and_localhost_are_served(
    serve_web: ServeWeb,  # noqa: F811
    sqlite_url: str,
) -> None:
    server = serve_web(sqlite_url)
    port = server.port
    for host in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LOCALHOST:{port}"):
        assert get(base(server) + "/api/studies", {"Host": host})[0] == 200, host
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.2", "localhost.:80"):
        status, body = get(base(server) + "/api/studies", {"Host": host})
        assert status == 421 and body.startswith(b"421 misdirected request"), host
    assert get(base(server) + "/healthz", {"Host": "attacker.example"})[0] == 421
    assert allowed_hosts("::1") == {"::1", "127.0.0.1", "localhost"}
    assert allowed_hosts("[::1]") == allowed_hosts("0:0:0:0:0:0:0:1") == allowed_hosts("::1")


def test_links_are_built_from_the_configured_address_not_the_host_header(
    serve_web: ServeWeb,  # noqa: F811
    sqlite_url: str,
) -> None:
    server = serve_web(sqlite_url)
    status, body = get(base(server) + "/feeds/changes.atom", {"Host": f"localhost:{server.port}"})
    assert status == 200
    assert f'href="http://127.0.0.1:{server.port}/feeds/changes.atom"'.encode() in body
    assert b"localhost" not in body
    public = serve_web(sqlite_url, public_url="https://trials.example.org/")
    feed = get(base(public) + "/feeds/changes.atom")[1]
    assert b'href="https://trials.example.org/feeds/changes.atom"' in feed


def test_a_token_shorter_than_32_characters_is_refused_at_start(tmp_path: Path) -> None:
    settings = WebSettings(token_env="TW_TOKEN")
    with pytest.raises(ConfigError, match="has 31 characters, fewer than 32"):
        web_token(settings, "0.0.0.0", {"TW_TOKEN": "x" * 31})
    assert web_token(settings, "0.0.0.0", {"TW_TOKEN": "x" * 32}) == "x" * 32
    config = tmp_path / "tw.toml"
    config.write_text('[web]\ntoken_env = "TW_WEB_TOKEN"\n')
    environ = {
        **os.environ,
        "TRIALWATCH_CONFIG": str(config),
        "TRIALWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'tw.db'}",
        "TW_WEB_TOKEN": "short-token",
    }
    done = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--host", "0.0.0.0", "--port", "0"],
        env=environ,
        capture_output=True,
        timeout=60,
    )
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1
    assert "has 11 characters, fewer than 32" in lines[0] and "short-token" not in lines[0]


def test_repeated_401s_from_one_client_get_429_with_retry_after(
    serve_web: ServeWeb,  # noqa: F811
    sqlite_url: str,
) -> None:
    server = serve_web(sqlite_url, token_env="TW_WEB_TOKEN", environ={"TW_WEB_TOKEN": TOKEN})
    url = base(server) + "/api/studies"
    for _ in range(10):
        assert get(url, {"Authorization": "Bearer wrong"})[0] == 401
    status, body = get(url, {"Authorization": "Bearer wrong"})
    assert status == 429 and body.startswith(b"429 too many failed attempts")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=5)
    # the exact figure, on an injected clock: test_review_fixes (this one is wall-clock)
    assert refused.value.code == 429 and 1 <= int(refused.value.headers["Retry-After"]) <= 60
    assert get(url, {"Authorization": f"Bearer {TOKEN}"})[0] == 200  # the right one passes
    assert get(base(server) + "/healthz")[0] == 200  # the probes are not behind the gate


def test_failed_attempts_forget_old_failures_and_stay_bounded() -> None:
    now = [0.0]
    failures = FailedAttempts(limit=3, window=60, max_clients=100, clock=lambda: now[0])
    for _ in range(3):
        failures.failed("10.0.0.1")
    assert failures.wait("10.0.0.1") == 60 and failures.wait("10.0.0.2") == 0
    now[0] = 61
    assert failures.wait("10.0.0.1") == 0
    # one IPv6 machine's many addresses count as one client
    for suffix in range(3):
        failures.failed(f"2001:db8::{suffix + 1}")
    assert failures.wait("2001:db8::ffff") > 0
    for client in range(5_000):
        failures.failed(f"10.1.{client // 256}.{client % 256}")
    assert len(failures) == 100


def test_readyz_on_a_token_server_names_no_store_path_or_host(
    serve_web: ServeWeb,  # noqa: F811
    database_url: str,
) -> None:
    server = serve_web(database_url, token_env="TW_WEB_TOKEN", environ={"TW_WEB_TOKEN": TOKEN})
    status, body = get(base(server) + "/readyz")
    assert status == 503 and json.loads(body)["status"] == "starting"
    secret_words = _break_the_store(server, database_url)
    for probe in ("/readyz", "/healthz"):
        status, body = get(base(server) + probe)
        answer = json.loads(body)
        assert status == 503 and answer["status"] == "failing", probe
        assert answer["checks"]["store"] == "failing"
        expected = {"status", "detail", "last_sync", "last_success_at", "next_sync_at", "checks"}
        assert expected <= set(answer)
        for word in secret_words:
            assert word not in body.decode(), (probe, word)


def _break_the_store(server: Any, url: str) -> list[str]:
    """Make the store stop answering; the words its errors would show."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        path.unlink()
        return [str(path), path.name, "sqlite"]
    from dbs import _admin_connection

    with _admin_connection() as admin:
        admin.execute(f'DROP DATABASE "{parsed.database}" WITH (FORCE)')
    return [str(parsed.database), "127.0.0.1", "postgres", "5432"]
