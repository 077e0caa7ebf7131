"""What hostile or unlucky clients do to the web app: a request body that is never read
does not hold a connection (real uvicorn, real sockets); the Host check looks at the host name
only; the right token always passes the 401 slow-down; NUL and lone surrogates from a request
never reach the database and a 503 never names the store (SQLite and PostgreSQL); a record's
versions are paged in the store's order; ``/metrics`` reads its gauges through the pages'
store."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from service.app import App
from service.models import Change, Snapshot
from service.settings import Settings
from service.store import NewVersion, Store
from service.web import records
from service.web.app import create_app
from service.web.pages import STORE_UNAVAILABLE
from service.web.security import FailedAttempts, allowed_hosts, host_name
from web.test_edges import _break_the_store
from web.test_limits import ServeWeb, base, get, serve_web  # noqa: F401 (a fixture)

TOKEN = "a-long-enough-token-for-the-tests-0123456789"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
BIG_BODY = b"Content-Length: 100000000\r\n"


# ---- 1. a body that is never read ------------------------------------------------------------


def _one_answer(sock: socket.socket) -> bytes:
    """One whole answer (head and ``Content-Length`` bytes of body) from a kept-alive one."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536) or pytest.fail("closed before an answer")
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536) or pytest.fail("closed inside an answer")
    return head + b"\r\n\r\n" + body


def _dripping_request(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head + b"\r\n" + b"x")  # the headers and one byte of a huge body
    return sock


def _closed_while_dripping(sock: socket.socket, seconds: float = 6.0) -> bool:
    """Whether the server closes ``sock`` while a byte of its body is sent every 0.2 s
    (each byte cancels uvicorn's keep-alive timer: without the fix it stays open)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds  # a hang guard: closing takes milliseconds
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"y")
            if sock.recv(1) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset: the byte reached a closed connection
            return True
    return False


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + BIG_BODY, b"405"),
        (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + BIG_BODY, b"200"),
        (b"GET /api/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n" + BIG_BODY, b"200"),
    ],
)
def test_a_request_body_left_unread_does_not_keep_the_connection_open(
    serve_web: ServeWeb,  # noqa: F811
    sqlite_url: str,
    head: bytes,
    status: bytes,
) -> None:
    server = serve_web(sqlite_url, max_connections=8)  # the least the settings allow
    dripping = [_dripping_request(server.port, head) for _ in range(8)]
    try:
        for sock in dripping:
            sock.settimeout(5)
            assert _one_answer(sock).startswith(b"HTTP/1.1 " + status)
            sock.sendall(b"y")  # the body goes on dripping after the answer
        # the cap's worth of dripping clients leave room for the probe: no 503
        assert get(base(server) + "/healthz", timeout=5)[0] == 200
        assert all(_closed_while_dripping(sock) for sock in dripping)
    finally:
        for sock in dripping:
            sock.close()


def test_a_token_servers_401_closes_a_connection_whose_body_was_not_sent(
    serve_web: ServeWeb,  # noqa: F811
    sqlite_url: str,
) -> None:
    server = serve_web(sqlite_url, token_env="TW_WEB_TOKEN", environ={"TW_WEB_TOKEN": TOKEN})
    head = b"POST /api/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n" + BIG_BODY
    sock = _dripping_request(server.port, head)
    try:
        sock.settimeout(5)
        assert _one_answer(sock).startswith(b"HTTP/1.1 401")
        assert _closed_while_dripping(sock)
    finally:
        sock.close()


def test_kept_alive_connections_still_serve_request_after_request(
    serve_web: ServeWeb,  # noqa: F811
    sqlite_url: str,
) -> None:
    server = serve_web(sqlite_url)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(5)
        posted = b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\nok"
        asked = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for request, status in ((posted, b"405"), (asked, b"200"), (asked, b"200")):
            sock.sendall(request)  # a body read to its end leaves the connection usable
            answer = _one_answer(sock)
            assert answer.startswith(b"HTTP/1.1 " + status), answer[:80]


# ---- 2. the Host check -----------------------------------------------------------------------


def test_the_host_check_looks_at_the_name_not_the_port(
    serve_web: ServeWeb,  # noqa: F811
    sqlite_url: str,
) -> None:
    server = serve_web(sqlite_url)
    for host in ("localhost:9000", "127.0.0.1:1", "[::1]:8080", "[0:0::1]", "LocalHost"):
        assert get(base(server) + "/api/studies", {"Host": host})[0] == 200, host
    for host in (
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.evil.example",
        "localhost.evil.example:9000",
        "[::1]evil",
        "localhost:80x",
        "",
    ):
        assert get(base(server) + "/api/studies", {"Host": host})[0] == 421, host


@pytest.mark.parametrize(
    ("bound", "served", "refused"),
    [
        ("localhost", ("127.0.0.1:8080", "[::1]:8080", "localhost:9000"), ("evil.example",)),
        ("0:0:0:0:0:0:0:1", ("[::1]", "[::1]:8080", "localhost"), ("[::2]", "evil.example")),
        ("127.0.0.1", ("localhost:9000", "127.0.0.1"), ("127.0.0.2", "127.0.0.1.evil.example")),
    ],
)
def test_a_server_bound_to_loopback_answers_every_name_of_loopback(
    web_app: Any, bound: str, served: tuple[str, ...], refused: tuple[str, ...]
) -> None:
    web = create_app(web_app, hosts=allowed_hosts(bound))
    with TestClient(web, client=("127.0.0.1", 1234)) as client:
        for host in served:
            assert client.get("/api/studies", headers={"Host": host}).status_code == 200, host
        for host in refused:
            assert client.get("/api/studies", headers={"Host": host}).status_code == 421, host


def test_host_names_are_read_without_their_port() -> None:
    assert host_name("[::1]:8080") == "::1" and host_name("LOCALHOST:9000") == "localhost"
    assert host_name("0:0:0:0:0:0:0:1") == "::1" and host_name("127.0.0.1:80") == "127.0.0.1"
    for malformed in ("[::1", "[::1]:", "[::1]8080", "[127.0.0.1]", "host:", "host:port"):
        assert host_name(malformed) is None, malformed


# ---- 3. the 401 slow-down --------------------------------------------------------------------


def test_the_right_token_passes_while_wrong_ones_from_the_same_client_get_429(
    web_app: Any,
) -> None:
    now = [1000.0]
    failures = FailedAttempts(limit=10, window=60, clock=lambda: now[0])
    web = create_app(web_app, token=TOKEN, failures=failures)
    wrong, right = {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(web, client=("127.0.0.1", 1234)) as client:  # everyone behind one proxy
        for _ in range(10):
            assert client.get("/api/studies", headers=wrong).status_code == 401
        now[0] += 15
        refused = client.get("/api/studies", headers=wrong)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "45"
        assert client.get("/api/studies").status_code == 429  # no token: the same
        assert client.get("/api/studies", headers=right).status_code == 200
        # the right token cleared nothing: the guesser still waits
        assert client.get("/api/studies", headers=wrong).status_code == 429
        now[0] += 46
        assert client.get("/api/studies", headers=wrong).status_code == 401


# ---- 4. NUL and lone surrogates; a 503 names no store ----------------------------------------


@pytest.fixture
def empty_app(database_url: str) -> Iterator[App]:
    app = App(Settings.model_validate({"database": {"url": database_url}}))
    app.store.check()
    try:
        yield app
    finally:
        app.close()


def _cursor(values: list[Any]) -> str:
    raw = json.dumps(values).encode()  # ensure_ascii: "\u0000" and "\ud800" as escapes
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "path",
    [
        "/?q=%00",
        "/api/studies?q=a%00b",
        "/api/studies?tag=%00",
        "/api/changes?tag=%00",
        "/feeds/changes.atom?tag=%00",
        "/api/changes?study=NCT%00",
        "/api/studies?cursor=" + _cursor(["id", None, "ctgov", "NCT\u0000"]),
        "/api/studies?cursor=" + _cursor(["id", None, "ctgov", "NCT\ud800"]),
        "/api/studies?sort=status&cursor=" + _cursor(["status", "\u0000", "ctgov", "NCT1"]),
    ],
)
def test_nul_and_lone_surrogates_from_a_request_are_a_400(empty_app: App, path: str) -> None:
    with TestClient(create_app(empty_app), client=("127.0.0.1", 1234)) as client:
        answer = client.get(path)
    assert answer.status_code == 400, answer.text[:200]
    assert "sqlite" not in answer.text and "postgres" not in answer.text


def test_a_store_that_does_not_answer_is_a_503_that_names_no_store(
    empty_app: App, database_url: str
) -> None:
    reader = Store.open(database_url, migrate=False)
    try:
        with TestClient(create_app(empty_app, reader=reader), client=("127.0.0.1", 1)) as client:
            reader.engine.dispose()
            secret_words = _break_the_store(None, database_url)
            for path in ("/api/studies", "/", "/feeds/changes.atom", "/metrics"):
                answer = client.get(path)
                assert answer.status_code == 503, (path, answer.text[:200])
                assert STORE_UNAVAILABLE in answer.text, path
                for word in secret_words:
                    assert word not in answer.text, (path, word)
    finally:
        reader.close()


# ---- 5. a record's versions paged in the store's order ---------------------------------------

STUDY = "NCT09000001"


def _store_three_versions(store: Store) -> dict[int, int]:
    """Three versions of ``STUDY`` stored without registry numbers (shown as v1, v2, v3),
    then the third numbered 1 by gap filling: the numbers shown are 1, 2, 1. The id of the
    change that led to each version, by its sequence."""
    led_to: dict[int, int] = {}
    for seq, status in enumerate(("A", "B", "C"), start=1):
        snapshot = Snapshot(study_id=STUDY, brief_title="Paged", overall_status=status)
        version = NewVersion("ctgov", snapshot, {}, None, "", T0)
        change = Change(
            study_id=STUDY,
            kind="status_changed",
            field="protocolSection.statusModule.overallStatus",
            old="X",
            new=status,
            severity="medium",
            summary=f"Overall status: to {status}",
        )
        stored = store.save_version(version, [change] if seq > 1 else [], None)
        if stored:
            led_to[seq] = stored[0].id
    store.number_version("ctgov", STUDY, 3, 1)
    return led_to


def test_a_records_versions_are_paged_in_the_stores_order(
    empty_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    led_to = _store_three_versions(empty_app.store)
    assert [v.version for v in empty_app.store.list_versions("ctgov", STUDY)] == [1, 2, 1]
    monkeypatch.setattr(records, "VERSIONS_PER_PAGE", 1)
    pages: list[tuple[list[str], set[int]]] = []
    with TestClient(create_app(empty_app), client=("127.0.0.1", 1234)) as client:
        url: str | None = f"/studies/{STUDY}"
        while url is not None and len(pages) < 5:
            page = client.get(url)
            assert page.status_code == 200
            statuses = re.findall(r"Overall status: to (\w)", page.text)
            changes = {int(i) for i in re.findall(r'id="change-(\d+)"', page.text)}
            pages.append((statuses, changes))
            older = re.search(r'<a href="([^"]+)" rel="next">Older versions', page.text)
            url = older.group(1).replace("&amp;", "&") if older else None
    # newest first, each version once, each with the change that led to it and no other
    assert [changes for _, changes in pages] == [{led_to[3]}, {led_to[2]}, set()]
    assert [statuses for statuses, _ in pages] == [["C"], ["B"], []]


# ---- 6. /metrics through the pages' store ----------------------------------------------------


def test_metrics_read_the_gauges_through_the_pages_store(empty_app: App, database_url: str) -> None:
    reader = Store.open(database_url, migrate=False)
    read: list[str] = []
    gauges = reader.gauges

    def counted() -> dict[str, float]:
        read.append("reader")
        return gauges()

    reader.gauges = counted  # type: ignore[method-assign]
    empty_app.store.gauges = lambda: pytest.fail("read through the App's store")  # type: ignore[method-assign]
    try:
        with TestClient(create_app(empty_app, reader=reader), client=("127.0.0.1", 1)) as client:
            answer = client.get("/metrics")
        assert answer.status_code == 200 and read == ["reader"]
        assert "trialwatch_watched_records 0.0" in answer.text
        assert "# HELP trialwatch_watched_records Records on the watch list." in answer.text
        assert "trialwatch_sync_runs_total" in answer.text
    finally:
        reader.close()
