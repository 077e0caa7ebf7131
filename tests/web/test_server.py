"""``trialwatch serve`` and the daemon's web app as users start them: real processes on real
sockets, answered over HTTP. Who may ask: loopback without a token, any other address only
with one (Bearer, Basic password or ``?token=``), and ``serve`` refusing to start off
loopback without a token configured (exit 2, one line)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from notify_servers import free_port, wait_until

from web.conftest import STATUS_STUDY, WebStore

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-web-token-0123456789abcdef"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except OSError:
        return 0, {}, b""


Start = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start(web_store: WebStore, tmp_path: Path) -> Iterator[Start]:
    started: list[subprocess.Popen[bytes]] = []

    def run(*args: str, config: str = "", **env: str) -> subprocess.Popen[bytes]:
        path = tmp_path / f"web-{len(started)}.toml"
        path.write_text(web_store.config.read_text() + config)
        environ = {**os.environ, **web_store.env, "TRIALWATCH_CONFIG": str(path), **env}
        process = subprocess.Popen(
            [sys.executable, "-m", "service", *args],
            env=environ,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        started.append(process)
        return process

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def answering(url: str) -> bool:
    return get(url)[0] != 0


def test_serve_answers_on_loopback_without_a_token_and_stops_on_sigterm(start: Start) -> None:
    port = free_port()
    process = start("serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: answering(base + "/healthz"), timeout=30, what="serve to answer")
    status, headers, body = get(base + "/api/changes")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert any(c["kind"] == "status_changed" for c in json.loads(body))
    status, headers, body = get(base + "/healthz")
    assert status == 200
    assert json.loads(body)["checks"] == {"scheduler": "elsewhere", "store": "ok"}
    assert "default-src 'none'" in headers["content-security-policy"]
    assert get(base + "/metrics")[2].count(b"trialwatch_outbox_pending") >= 1
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0


def test_serve_refuses_another_address_without_a_token(start: Start) -> None:
    process = start("serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert process.wait(timeout=30) == 2
    assert process.stderr is not None
    lines = process.stderr.read().decode().strip().splitlines()
    assert len(lines) == 1 and "without a token" in lines[0] and "token_env" in lines[0]


def test_serve_refuses_a_token_variable_that_is_not_set(start: Start) -> None:
    config = '\n[web]\ntoken_env = "TW_WEB_TOKEN_MISSING"\n'
    process = start("serve", "--host", "0.0.0.0", "--port", str(free_port()), config=config)
    assert process.wait(timeout=30) == 2
    assert process.stderr is not None
    err = process.stderr.read().decode().strip()
    assert err.endswith("the variable TW_WEB_TOKEN_MISSING is not set") and "\n" not in err


def test_serve_names_a_port_in_use(start: Start) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        process = start("serve", "--port", str(port))
        assert process.wait(timeout=30) == 2
        assert process.stderr is not None
        err = process.stderr.read().decode().strip()
    assert f"cannot listen on 127.0.0.1:{port}" in err and "\n" not in err


def test_off_loopback_every_page_needs_the_token_but_the_probes(start: Start) -> None:
    port = free_port()
    config = '\n[web]\ntoken_env = "TW_WEB_TOKEN"\n'
    start("serve", "--host", "0.0.0.0", "--port", str(port), config=config, TW_WEB_TOKEN=TOKEN)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: answering(base + "/healthz"), timeout=30, what="serve to answer")
    pages = ("/", "/api/changes", "/feeds/changes.atom", "/metrics", f"/studies/{STATUS_STUDY}")
    for path in pages:
        status, headers, body = get(base + path)
        assert status == 401, path
        assert headers["www-authenticate"].startswith("Bearer") and TOKEN.encode() not in body
    assert get(base + "/api/changes", {"Authorization": "Bearer wrong"})[0] == 401
    assert get(base + "/api/changes?token=wrong")[0] == 401
    assert get(base + "/api/changes", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    basic = base64.b64encode(f"reader:{TOKEN}".encode()).decode()
    assert get(base + "/api/changes", {"Authorization": f"Basic {basic}"})[0] == 200
    assert get(base + f"/feeds/changes.atom?token={TOKEN}")[0] == 200
    assert get(base + "/healthz")[0] == 200 and get(base + "/readyz")[0] in (200, 503)


def test_the_daemon_serves_the_web_app_with_its_probes_when_web_port_is_set(
    start: Start,
) -> None:
    port = free_port()
    config = f"\n[schedule]\nsync_every_seconds = 3600\n\n[web]\nport = {port}\n"
    daemon = start("run", config=config)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: answering(base + "/healthz"), timeout=30, what="the daemon's web app")
    status, _, body = get(base + "/healthz")
    assert status == 200 and json.loads(body)["checks"]["scheduler"] == "running"
    assert get(base + "/")[0] == 200
    assert b"trialwatch_sync_runs" in get(base + "/metrics")[2]
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    assert get(base + "/healthz")[0] == 0  # closed with the daemon
