"""A hostile or broken registry (a real HTTP server on 127.0.0.1, in a thread of the test),
and processes killed mid-cycle.

- Pagination that cannot loop: a repeated ``nextPageToken``, an empty page naming a next
  one, more pages than ``totalCount`` allows, and a count that lies about the ids sent each
  end the listing with one ``invalid`` line; the ids actually returned are held to
  ``[ctgov] max_query_matches``.
- History answers are checked like live ones: a past version of another study is refused,
  never stored; dates going backwards or into the future are a warning, the versions kept.
- A sync run whose process was killed is marked ``interrupted`` by the next run, and a run
  of a live process (another replica, a second store) is left ``running``.

Study bodies are real ClinicalTrials.gov records (../shared/reference/ctgov), edited the way
an attacker or a broken registry would.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import twconfig
from sqlalchemy import select, text

from service.errors import RecordInvalid
from service.registry.ctgov import CtgovClient
from service.settings import CtgovSettings
from service.store import Store, SyncRunRow
from service.store.changes import RUN_LOCK

REPO = Path(__file__).resolve().parents[1]
WATCHED = "NCT00763412"
FOREIGN = "NCT02210780"  # another real record, served as if it were a version of WATCHED

Json = dict[str, Any]
Listing = Callable[[dict[str, str]], Json]


# ---- the hostile registry ---------------------------------------------------------------


class HostileRegistry:
    """API v2 (``/api/v2``) and the history API (``/api/int``), answering what the test
    says: ``listing(params)`` for ``/studies``, ``history[id]`` as (date, study) versions."""

    def __init__(self) -> None:
        self.listing: Listing = lambda _params: {"studies": [], "totalCount": 0}
        self.history: dict[str, list[tuple[str, Json]]] = {}
        self.current: dict[str, Json] = {}
        self.timestamp = "2026-01-01T00:00:00"
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests.append(self.path)
                status, body = registry.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, target: str) -> tuple[int, Any]:
        parts = urlsplit(target)
        params = dict(parse_qsl(parts.query))
        path = parts.path.rstrip("/").split("/")[1:]
        if path == ["api", "v2", "version"]:
            return 200, {"apiVersion": "2.0.0", "dataTimestamp": self.timestamp}
        if path == ["api", "v2", "studies"]:
            if "filter.ids" in params:  # the watched records, as they are now
                wanted = params["filter.ids"].split(",")
                return 200, {"studies": [self.current[i] for i in wanted if i in self.current]}
            return 200, self.listing(params)
        if path[:3] == ["api", "int", "studies"] and len(path) >= 4:
            versions = self.history.get(path[3])
            if versions is None:
                return 404, {"message": "not found"}
            if len(path) == 6:  # .../history/{n}
                return 200, {"studyVersion": int(path[5]), "study": versions[int(path[5])][1]}
            changes = [{"version": n, "date": day} for n, (day, _) in enumerate(versions)]
            return 200, {"changes": changes}
        return 404, {"message": f"unknown path {parts.path}"}

    def listing_requests(self) -> int:
        return sum(1 for r in self.requests if urlsplit(r).path.endswith("/api/v2/studies"))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    registry = HostileRegistry()
    yield registry
    registry.stop()


@pytest.fixture
def real(reference_dir: Path) -> Callable[[str], Json]:
    def read(study_id: str) -> Json:
        return json.loads((reference_dir / f"{study_id}.json").read_text())  # type: ignore[no-any-return]

    return read


def id_only(record: Json, study_id: str) -> Json:
    """A real record as a ``fields=NCTId`` listing returns it, under ``study_id``."""
    identification = copy.deepcopy(record["protocolSection"]["identificationModule"])
    identification["nctId"] = study_id
    return {"protocolSection": {"identificationModule": identification}}


def numbered(n: int) -> str:
    return f"NCT{90000000 + n:08d}"


def config_for(hostile: HostileRegistry, **ctgov: Any) -> str:
    keys = {"retry_initial_seconds": 0.01, "max_attempts": 1, **ctgov}
    return twconfig.ctgov(f"{hostile.base}/api/v2", f"{hostile.base}/api/int", **keys)


def runner_for(hostile: HostileRegistry, tmp_path: Path, url: str, **ctgov: Any) -> twconfig.Run:
    return twconfig.runner(twconfig.environment(tmp_path, config_for(hostile, **ctgov), url))


# ---- pagination that cannot loop --------------------------------------------------------


def repeating_token(record: Json) -> Listing:
    """Every page names the same next page."""

    def listing(params: dict[str, str]) -> Json:
        page = 2 if "pageToken" in params else 1
        return {
            "studies": [id_only(record, numbered(page))],
            "totalCount": 2500,
            "nextPageToken": "AAA",
        }

    return listing


def empty_page_with_a_next(record: Json) -> Listing:
    def listing(params: dict[str, str]) -> Json:
        if "pageToken" not in params:
            return {
                "studies": [id_only(record, numbered(1))],
                "totalCount": 2500,
                "nextPageToken": "t1",
            }
        return {"studies": [], "totalCount": 2500, "nextPageToken": params["pageToken"] + "x"}

    return listing


def endless_pages(record: Json) -> Listing:
    """A page of one new record after another, each naming a new next page, under a count
    that allows a single page."""

    def listing(params: dict[str, str]) -> Json:
        n = int(params.get("pageToken", "t0")[1:]) + 1
        return {
            "studies": [id_only(record, numbered(n))],
            "totalCount": 3,
            "nextPageToken": f"t{n}",
        }

    return listing


@pytest.mark.parametrize(
    ("make_listing", "what"),
    [
        (repeating_token, "page 2 repeats an earlier nextPageToken"),
        (empty_page_with_a_next, "page 2 is empty but names a next page"),
        (endless_pages, "page 2 is more than totalCount 3 allows (1)"),
    ],
)
def test_a_looping_listing_refuses_the_saved_search_in_one_line(
    hostile: HostileRegistry,
    real: Callable[[str], Json],
    sqlite_url: str,
    tmp_path: Path,
    make_listing: Callable[[Json], Listing],
    what: str,
) -> None:
    hostile.listing = make_listing(real(WATCHED))
    trialwatch = runner_for(hostile, tmp_path, sqlite_url)
    result = trialwatch("watch", "query", "add", "lung", "--cond", "lung cancer")
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert f"registry listing {hostile.base}/api/v2/studies refused: {what}" in line
    assert hostile.listing_requests() == 2  # stopped at the first page that gives it away
    assert trialwatch("watch", "query", "list", "--json").json() == []


def test_ids_past_max_query_matches_are_refused_whatever_the_count_says(
    hostile: HostileRegistry, real: Callable[[str], Json], sqlite_url: str, tmp_path: Path
) -> None:
    record = real(WATCHED)
    ids = [id_only(record, numbered(n)) for n in range(1000)]
    hostile.listing = lambda _params: {"studies": ids, "totalCount": 3, "nextPageToken": "more"}
    trialwatch = runner_for(hostile, tmp_path, sqlite_url, max_query_matches=5)
    result = trialwatch("watch", "query", "add", "lung", "--cond", "lung cancer")
    assert result.exit_code == 2, result.output
    assert "matches 1,000 records, more than [ctgov] max_query_matches (5)" in result.stderr
    assert hostile.listing_requests() == 1  # the page that passed the cap is the last read


def test_a_saved_search_whose_listing_loops_is_one_invalid_warning_of_the_sync(
    hostile: HostileRegistry, real: Callable[[str], Json], database_url: str, tmp_path: Path
) -> None:
    trialwatch = runner_for(hostile, tmp_path, database_url)
    assert trialwatch("watch", "query", "add", "lung", "--cond", "lung cancer").exit_code == 0
    hostile.listing = repeating_token(real(WATCHED))
    hostile.timestamp = "2026-01-02T00:00:00"  # the registry's data moved: searches refresh
    result = trialwatch("sync", "--json")
    assert result.exit_code == 0, result.output
    report = result.json()
    [warning] = [w for w in report["warnings"] if "saved search" in w["warning"]]
    assert warning["reason"] == "invalid"
    assert "'lung' not refreshed: registry listing" in warning["warning"]
    assert "repeats an earlier nextPageToken" in warning["warning"]
    assert report["errors"] == []


def client_of(hostile: HostileRegistry) -> CtgovClient:
    settings = CtgovSettings(
        api_url=f"{hostile.base}/api/v2",
        history_url=f"{hostile.base}/api/int",
        max_attempts=1,
        requests_per_second=100.0,
    )
    return CtgovClient(httpx.Client(timeout=5), settings, sleep=lambda _s: None)


def test_every_listing_of_the_client_ends_a_loop(
    hostile: HostileRegistry, real: Callable[[str], Json]
) -> None:
    """The changed-since listing, a search and a batch fetch follow page tokens too."""
    record = real(WATCHED)
    hostile.listing = repeating_token(record)
    client = client_of(hostile)
    listing = client.changed_since("2026-01-01")
    with pytest.raises(RecordInvalid, match="repeats an earlier nextPageToken"):
        list(listing.pages)
    hostile.listing = empty_page_with_a_next(record)
    with pytest.raises(RecordInvalid, match="empty but names a next page"):
        client.search({"query.cond": "lung"}, limit=100)

    def endless_batch(target: str) -> tuple[int, Any]:
        token = dict(parse_qsl(urlsplit(target).query)).get("pageToken", "t0")
        n = int(token[1:]) + 1
        return 200, {"studies": [id_only(record, WATCHED)], "nextPageToken": f"t{n}"}

    hostile.answer = endless_batch  # type: ignore[method-assign]
    hostile.requests.clear()
    batches = list(client.iter_batches([WATCHED]))
    assert isinstance(batches[-1].error, RecordInvalid)
    assert "more than the ids asked for allows (2)" in str(batches[-1].error)
    assert len(batches) == 3 and hostile.listing_requests() == 3


# ---- history answers checked like live ones ---------------------------------------------


def as_posted(record: Json, day: str, status: str) -> Json:
    """``record`` as posted on ``day`` with overall status ``status``."""
    edited = copy.deepcopy(record)
    status_module = edited["protocolSection"]["statusModule"]
    status_module["lastUpdatePostDateStruct"] = {"date": day, "type": "ACTUAL"}
    status_module["overallStatus"] = status
    return edited


def serve_watched(
    hostile: HostileRegistry,
    real: Callable[[str], Json],
    past: list[tuple[str, Json]],
    posted: str = "2013-06-01",
) -> Json:
    """The watched record now (posted on ``posted``) and a history of ``past`` + it."""
    current = as_posted(real(WATCHED), posted, "COMPLETED")
    hostile.current[WATCHED] = current
    hostile.history[WATCHED] = [*past, (posted, current)]
    return current


def synced_with_history(
    hostile: HostileRegistry, database_url: str, tmp_path: Path
) -> tuple[twconfig.Run, Json]:
    trialwatch = runner_for(hostile, tmp_path, database_url, history=True)
    assert trialwatch("watch", "add", WATCHED).exit_code == 0
    result = trialwatch("sync", "--json")
    assert result.exit_code == 0, result.output
    return trialwatch, result.json()


def test_a_past_version_of_another_study_is_refused_never_stored(
    hostile: HostileRegistry, real: Callable[[str], Json], database_url: str, tmp_path: Path
) -> None:
    foreign = as_posted(real(FOREIGN), "2012-01-15", "RECRUITING")  # no alias of WATCHED
    serve_watched(hostile, real, [("2012-01-15", foreign)])
    trialwatch, report = synced_with_history(hostile, database_url, tmp_path)
    [warning] = report["warnings"]
    assert warning["study_id"] == WATCHED and warning["reason"] == "invalid"
    assert f"history version 0 is a record of {FOREIGN}, not of {WATCHED}" in warning["warning"]
    assert report["backfill"]["failed"] == 1 and report["new"] == 1
    versions = trialwatch("history", WATCHED, "--json").json()
    assert [v["overall_status"] for v in versions] == ["COMPLETED"]  # the live record alone


def test_a_past_version_under_an_id_listing_the_watched_one_as_alias_is_kept(
    hostile: HostileRegistry, real: Callable[[str], Json], database_url: str, tmp_path: Path
) -> None:
    merged = as_posted(real(FOREIGN), "2012-01-15", "RECRUITING")
    merged["protocolSection"]["identificationModule"]["nctIdAliases"] = [WATCHED]
    serve_watched(hostile, real, [("2012-01-15", merged)])
    trialwatch, report = synced_with_history(hostile, database_url, tmp_path)
    assert report["warnings"] == [] and report["backfill"]["done"] == 1
    versions = trialwatch("history", WATCHED, "--json").json()
    assert [v["overall_status"] for v in versions] == ["RECRUITING", "COMPLETED"]


@pytest.mark.parametrize(
    ("dates", "problem"),
    [
        (
            ["2012-03-01", "2012-01-15", "2013-06-01"],
            "version 1 dated 2012-01-15, before version 0 (2012-03-01)",
        ),
        (["2012-01-15", "2012-03-01", "2999-01-01"], "version 2 dated 2999-01-01, after today"),
    ],
    ids=["backwards", "future"],
)
def test_history_dates_backwards_or_in_the_future_are_a_warning_and_the_versions_kept(
    hostile: HostileRegistry,
    real: Callable[[str], Json],
    database_url: str,
    tmp_path: Path,
    dates: list[str],
    problem: str,
) -> None:
    record = real(WATCHED)
    past = [
        (dates[0], as_posted(record, dates[0], "NOT_YET_RECRUITING")),
        (dates[1], as_posted(record, dates[1], "RECRUITING")),
    ]
    serve_watched(hostile, real, past, posted=dates[2])
    trialwatch, report = synced_with_history(hostile, database_url, tmp_path)
    [warning] = report["warnings"]
    assert warning["study_id"] == WATCHED and warning["reason"] == "dates"
    assert problem in warning["warning"]
    assert report["backfill"]["done"] == 1 and report["backfill"]["failed"] == 0
    versions = trialwatch("history", WATCHED, "--json").json()
    # in the registry's numbering, the live record placed by content as the newest
    assert [(v["version"], v["overall_status"]) for v in versions] == [
        (0, "NOT_YET_RECRUITING"),
        (1, "RECRUITING"),
        (2, "COMPLETED"),
    ]


def test_dates_problem_names_the_first_fault() -> None:
    from service.history import dates_problem
    from service.registry.base import HistoryEntry

    today = date(2026, 5, 1)
    entries = [HistoryEntry(0, "2026-01-01"), HistoryEntry(1, "2026-05-02")]
    assert dates_problem(entries, today) is None  # tomorrow is a time zone away
    entries.append(HistoryEntry(2, "2026-05-03"))
    assert dates_problem(entries, today) == "version 2 dated 2026-05-03, after today (2026-05-01)"
    assert (
        dates_problem([HistoryEntry(0, "2026-13-01")], today)
        == "version 0 has no date ('2026-13-01')"
    )


# ---- sync runs of killed processes ------------------------------------------------------

# a process that starts a sync run and then works on it for a long time
CHILD = """
import sys, time
from datetime import UTC, datetime
from service.store import Store
store = Store.open(sys.argv[1])
print(store.start_run(datetime.now(UTC)), flush=True)
time.sleep(120)
"""

EMPTY_REPORT = {
    "checked": 0, "new": 0, "changed": 0, "unchanged": 0, "failed": 0, "requests": 0,
    "errors": [],
}  # fmt: skip


def start_child_run(url: str) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip().isdigit(), f"the child did not start a run: {line!r}"
    return child, int(line)


def kill(child: subprocess.Popen[str]) -> None:
    child.kill()
    child.wait(timeout=10)


def presence_gone(url: str, run_id: int) -> None:
    """Wait until a killed process's run presence is dropped: the kernel drops a SQLite
    lock file's ``flock`` as the process dies, but a PostgreSQL backend notices its client
    is gone (and drops the advisory lock) a moment later."""
    if not url.startswith("postgresql"):
        return
    held = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND objsubid = 2 AND classid = CAST(:run_lock AS oid) AND objid::int4 = :run_id"
    )
    store = Store.open(url, migrate=False)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with store.engine.connect() as connection:
                if not connection.scalar(held, {"run_lock": RUN_LOCK, "run_id": run_id}):
                    return
            time.sleep(0.05)
        raise AssertionError(f"the killed run {run_id} still holds its advisory lock")
    finally:
        store.close()


def runs(url: str) -> dict[int, tuple[str, list[dict[str, str]]]]:
    store = Store.open(url, migrate=False)
    try:
        with store.engine.connect() as connection:
            rows = connection.execute(
                select(SyncRunRow.id, SyncRunRow.status, SyncRunRow.errors)
            ).all()
    finally:
        store.close()
    return {run_id: (status, errors) for run_id, status, errors in rows}


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            kill(child)


def test_the_run_of_a_killed_sync_is_marked_interrupted_and_a_live_ones_left_running(
    hostile: HostileRegistry,
    database_url: str,
    tmp_path: Path,
    children: list[subprocess.Popen[str]],
) -> None:
    now = datetime.now(UTC)
    mine = Store.open(database_url)  # a second store of this process: another replica
    my_run = mine.start_run(now)
    alive, alive_run = start_child_run(database_url)  # leaves the runs above alone
    children.append(alive)
    dead, dead_run = start_child_run(database_url)
    children.append(dead)
    kill(dead)  # SIGKILL mid-cycle: its run stays "running"
    presence_gone(database_url, dead_run)
    assert {r: s for r, (s, _) in runs(database_url).items()} == {
        dead_run: "running",
        alive_run: "running",
        my_run: "running",
    }

    trialwatch = runner_for(hostile, tmp_path, database_url)
    assert trialwatch("sync", "--json").exit_code == 0
    after = runs(database_url)
    assert after[dead_run][0] == "interrupted"
    assert "interrupted: the process running this cycle stopped" in after[dead_run][1][0]["error"]
    assert after[alive_run][0] == "running" and after[my_run][0] == "running"

    kill(alive)
    presence_gone(database_url, alive_run)
    assert trialwatch("sync", "--json").exit_code == 0
    after = runs(database_url)
    assert after[alive_run][0] == "interrupted" and after[my_run][0] == "running"
    mine.finish_run(my_run, {**EMPTY_REPORT}, now + timedelta(minutes=1))
    assert runs(database_url)[my_run][0] == "ok"
    assert "running" not in {status for status, _ in runs(database_url).values()}
    mine.close()


def test_an_interrupted_run_is_no_success(
    database_url: str, children: list[subprocess.Popen[str]]
) -> None:
    """/readyz and the alerts read these: an interrupted cycle did not succeed."""
    dead, dead_run = start_child_run(database_url)
    children.append(dead)
    kill(dead)
    presence_gone(database_url, dead_run)
    store = Store.open(database_url)
    try:
        assert store.interrupt_runs(datetime.now(UTC)) == [dead_run]
        assert store.recent_run_statuses(5) == ["interrupted"]
        assert store.last_sync_success() is None
        assert store.interrupt_runs(datetime.now(UTC)) == []  # once
    finally:
        store.close()


def test_lock_files_of_runs_that_are_over_are_swept_and_new_ones_kept(sqlite_url: str) -> None:
    """A process killed between ending its run and removing its lock file leaves the file;
    the next run removes it once it is old and free (a fresh one may be a run starting)."""
    store = Store.open(sqlite_url)
    try:
        runs_dir = Path(sqlite_url.removeprefix("sqlite:///") + "-runs")
        runs_dir.mkdir(exist_ok=True)
        left, fresh = runs_dir / "9001.lock", runs_dir / "9002.lock"
        left.touch()
        fresh.touch()
        long_ago = time.time() - 3600
        os.utime(left, (long_ago, long_ago))
        run_id = store.start_run(datetime.now(UTC))
        assert not left.exists() and fresh.exists()
        assert (runs_dir / f"{run_id}.lock").exists()  # the new run's presence
        store.finish_run(run_id, {**EMPTY_REPORT}, datetime.now(UTC))
        assert not (runs_dir / f"{run_id}.lock").exists()
    finally:
        store.close()
