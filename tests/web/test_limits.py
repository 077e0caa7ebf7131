"""The web app within its limits, on a real uvicorn server on 127.0.0.1 with real sockets:
idle and half-open connections are capped and timed out while the probes answer; slow pages
queue on their own workers while the probes answer; a read past the statement timeout is a
one-line 503 (SQLite and PostgreSQL); the "accept failed" log line is rate-limited; a record
with many versions is paged; the planner gets statistics after a bulk import."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import resource
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from notify_servers import wait_until
from sqlalchemy import text

from service.app import App
from service.settings import Settings
from service.store import Store
from service.web.limits import AcceptErrorThrottle, throttle_accept_errors
from service.web.server import WebServer

# a statement that runs until it is stopped (both databases)
ENDLESS = text(
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000000000) "
    "SELECT count(*) FROM n"
)


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


ServeWeb = Callable[..., WebServer]


@pytest.fixture
def serve_web() -> Iterator[ServeWeb]:
    """Start the web app on a thread over a store URL with these ``[web]`` settings."""
    started: list[tuple[WebServer, App]] = []

    def start(url: str, environ: dict[str, str] | None = None, **web: Any) -> WebServer:
        settings = Settings.model_validate({"database": {"url": url}, "web": web})
        app = App(settings)
        app.store.check()
        server = WebServer(app, "127.0.0.1", 0, environ=environ or {}).start()
        started.append((server, app))
        wait_until(lambda: server.server.started, timeout=10, what="the web app to start")
        return server

    yield start
    for server, app in started:
        server.stop()
        app.close()


HELD_CONNECTIONS = 900


def _files_for(connections: int) -> bool:
    """Whether this process may open both ends of ``connections`` and its own files."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return hard == resource.RLIM_INFINITY or hard >= 2 * connections + 256


def base(server: WebServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def open_connections(server: WebServer) -> int:
    return sum(1 for c in server.server.server_state.connections if not c.transport.is_closing())


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def timed_probe(server: WebServer) -> float:
    started = time.perf_counter()
    status, body = get(base(server) + "/healthz", timeout=5)
    assert status == 200 and json.loads(body)["checks"]["store"] == "ok"
    return time.perf_counter() - started


def test_idle_and_half_open_connections_are_capped_and_the_probes_still_answer(
    serve_web: ServeWeb, sqlite_url: str
) -> None:
    server = serve_web(sqlite_url, max_connections=40, header_timeout_seconds=30)
    before = open_files()
    held: list[socket.socket] = []
    try:
        for i in range(400):  # ten times the cap: silent ones and ones stuck mid-headers
            sock = socket.create_connection(("127.0.0.1", server.port))
            if i % 2:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            held.append(sock)
        # the server's own descriptors: what the process holds beyond our 400 client ends
        # (those it closed to make room are released on its loop's next turns)
        wait_until(lambda: open_connections(server) <= 40, what="the cap to hold")
        wait_until(
            lambda: open_files() - before - len(held) <= 40 + 10,
            what="the server to hold no more than the cap's descriptors",
        )
        for _ in range(10):
            timed_probe(server)  # answered (its 5 s timeout is only a hang guard)
        assert get(base(server) + "/")[0] == 200  # pages too: the oldest waiting made room
    finally:
        for sock in held:
            sock.close()


def test_a_connection_that_never_finishes_its_headers_is_closed_by_the_deadline(
    serve_web: ServeWeb, sqlite_url: str
) -> None:
    server = serve_web(sqlite_url, header_timeout_seconds=0.5)
    silent = socket.create_connection(("127.0.0.1", server.port))
    dripping = socket.create_connection(("127.0.0.1", server.port))
    started = time.monotonic()
    try:
        dripping.sendall(b"GET /healthz HTTP/1.1\r\n")
        for byte in b"Host: 127.0.0.1\r\n":  # a byte at a time does not reset the deadline
            try:
                dripping.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.05)
        for sock in (silent, dripping):
            sock.settimeout(5)
            assert sock.recv(1024) == b""  # closed by the server, no answer
        assert time.monotonic() - started < 3
        assert open_connections(server) == 0
    finally:
        silent.close()
        dripping.close()


def _endless_page(store: Store) -> Callable[..., Any]:
    def browse(*_args: Any, **_kwargs: Any) -> Any:
        with store._session() as session:
            session.execute(ENDLESS)
        raise AssertionError("the endless statement ended")

    return browse


def test_slow_pages_queue_while_the_probes_answer_and_time_out_as_a_503(
    serve_web: ServeWeb, database_url: str
) -> None:
    server = serve_web(database_url, statement_timeout_seconds=3)
    # every list page now runs a statement that only the statement timeout stops
    server.reader.browse_watches = _endless_page(server.reader)  # type: ignore[method-assign]
    pages = ThreadPoolExecutor(max_workers=12)
    try:
        started = time.monotonic()
        answers = [pages.submit(get, base(server) + "/api/studies") for _ in range(12)]
        time.sleep(0.3)  # the pages are at work (eight) and queued (four)
        assert not any(a.done() for a in answers)
        for _ in range(5):
            timed_probe(server)
        status, body = get(base(server) + "/readyz")
        assert status == 503 and json.loads(body)["checks"]["store"] == "ok"
        assert not any(a.done() for a in answers)  # the probes answered while pages waited
        results = [a.result(timeout=30) for a in answers]
        elapsed = time.monotonic() - started
    finally:
        pages.shutdown(wait=True)
    for status, body in results:
        error = json.loads(body)
        assert status == 503 and "statement timeout" in error["error"]
        assert "\n" not in error["error"] and "Traceback" not in error["error"]
    # twelve pages on eight workers: two rounds of 3 s at least (the ceiling: a hang guard)
    assert 6 <= elapsed < 60


def test_the_accept_failed_line_is_let_through_once_a_minute_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [100.0]
    throttle = AcceptErrorThrottle(every=60, clock=lambda: clock[0])
    logger = logging.getLogger("asyncio")
    installed = logger.filters[:]  # a server started earlier in this process installed one
    logger.filters[:] = [throttle]
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            for second in range(120):  # asyncio retries accept() every second on EMFILE
                clock[0] = 100.0 + second
                loop.call_exception_handler(
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(errno.EMFILE, "Too many open files"),
                    }
                )
    finally:
        loop.close()
        logger.filters[:] = installed
    lines = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert len(lines) == 2
    assert lines[0].startswith("web: accept failed ([Errno 24] Too many open files); 0 more")
    assert "; 59 more like it not logged in the last 60 s" in lines[1]
    assert all(r.exc_info is None for r in caplog.records)
    assert throttle_accept_errors() is throttle_accept_errors()  # installed once
    logger.filters[:] = installed


def test_a_record_with_many_versions_is_paged(web_app: Any, client: Any) -> None:
    from service.web import records

    study = "NCT05605665"
    stored = web_app.store.list_versions("ctgov", study)
    numbers, seqs = [v.version for v in stored], [v.seq for v in stored]
    assert len(numbers) >= 3
    per_page = records.VERSIONS_PER_PAGE
    records.VERSIONS_PER_PAGE = 2
    newest, oldest = f'id="version-{numbers[-1]}"', f'id="version-{numbers[0]}"'
    try:
        first = client.get(f"/studies/{study}")
        assert first.status_code == 200
        assert f"2 of {len(numbers)}, newest first" in first.text
        assert newest in first.text and oldest not in first.text and "Older versions" in first.text
        assert f"?before={seqs[-2]}#versions" in first.text  # the store's order, not numbers
        older = client.get(f"/studies/{study}?before={seqs[-2]}")
        assert older.status_code == 200 and oldest in older.text
        assert newest not in older.text and "Newest versions" in older.text
        assert client.get(f"/studies/{study}?before=-1").status_code == 400
        assert client.get(f"/studies/{study}?before={2**63}").status_code == 400
    finally:
        records.VERSIONS_PER_PAGE = per_page


def test_the_planner_is_given_statistics(database_url: str) -> None:
    store = Store.open(database_url)
    try:
        store.refresh_planner_statistics()
        with store.engine.connect() as connection:
            if store.engine.dialect.name == "sqlite":
                statistics = "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"
                assert connection.execute(text(statistics)).scalar() == 1
            else:
                when = connection.execute(
                    text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'records'")
                ).scalar()
                assert when is not None
    finally:
        store.close()


@pytest.mark.skipif(
    not _files_for(HELD_CONNECTIONS), reason="the hard limit of open files is below ~2,000"
)
def test_healthz_stays_fast_with_hundreds_of_idle_connections(
    serve_web: ServeWeb, sqlite_url: str
) -> None:
    """Connections held against /healthz latency, printed for the record (-s); the probe's
    timeout is the only ceiling (a figure, not a wall-clock assertion)."""
    server = serve_web(sqlite_url, max_connections=1000, header_timeout_seconds=30)
    held: list[socket.socket] = []
    figures = []
    try:
        for target in (0, 100, 500, HELD_CONNECTIONS):
            while len(held) < target:
                held.append(socket.create_connection(("127.0.0.1", server.port)))
            latencies = sorted(timed_probe(server) for _ in range(20))
            figures.append((target, latencies[10] * 1000, latencies[-1] * 1000))
    finally:
        for sock in held:
            sock.close()
    for held_count, median, worst in figures:
        print(
            f"{held_count:5} idle connections: /healthz median {median:.1f} ms, worst {worst:.1f}"
        )
    assert [held for held, _, _ in figures] == [0, 100, 500, HELD_CONNECTIONS]
