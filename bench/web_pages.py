"""Time the web app's pages on a store of 100,000 watched records.

Builds (once; cached by ``--db``) a SQLite store whose rows are written straight into the
store's tables with SQLAlchemy Core, the shapes a year of syncs leaves:

- 100,000 watches (a few hundred never synced, so with no record), tags on a third of them
  (``oncology``, ``cardio``, ``seed:…`` for 1 %, ``query:…`` for 3 %);
- a record per synced watch: statuses in realistic proportions, first seen over five years,
  ``last_changed_at`` at the first sighting (its ``record_added``), later for the 10 % that
  changed since, and unset for 2 % (records loaded without a change);
- one version per record (two or three for those that changed), the record_added change of
  each, a status or enrollment change for each later version;
- open findings on 5 % of the records, resolved ones on 2 %.

One record (``--study``) holds the real demo record's versions (``tests/data/demo``), so that
its page draws real charts.

Then asks the app in-process (httpx's ASGITransport, no socket) for the list's first page,
filtered pages, each order, a page deep in the list (reached by following next links), the
JSON twin and a record's page, and prints the median and 95th percentile of each, in ms.
``/changes`` and ``/feeds/changes.atom`` are timed too where they answer (another part of the
app; skipped while they 404).

    .venv/bin/python bench/web_pages.py [--n 100000] [--db /tmp/tw-web-bench.db] [--rebuild]
                                        [--runs 30] [--postgres URL]

``--postgres URL`` builds and times the same store in that PostgreSQL database instead (created
when missing, rebuilt when it holds another number of watches), with the planner's statistics
refreshed after the build as the web app does when it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from service.registry.ctgov_normalise import normalise  # noqa: E402
from service.store import Store  # noqa: E402
from service.store.tables import (  # noqa: E402
    ChangeRow,
    FindingRow,
    RecordRow,
    VersionRow,
    WatchRow,
)

DEMO = ROOT / "tests" / "data" / "demo" / "NCT05605665"
FIRST_NUMBER = 90_000_000
BENCH_VERSION = 1  # bump when the rows change: a cached store of another version is rebuilt
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
BATCH = 5_000

# fmt: off
STATUSES = (
    ("COMPLETED", 40), ("RECRUITING", 18), ("UNKNOWN", 14), ("ACTIVE_NOT_RECRUITING", 8),
    ("TERMINATED", 6), ("NOT_YET_RECRUITING", 5), ("WITHDRAWN", 3), ("ENROLLING_BY_INVITATION", 3),
    ("SUSPENDED", 1), ("AVAILABLE", 1), ("NO_LONGER_AVAILABLE", 1),
)
WORDS = (
    "Study", "Trial", "Phase", "Randomized", "Safety", "Efficacy", "of", "in", "with", "Patients",
    "Adults", "Children", "Metformin", "Semaglutide", "Pembrolizumab", "Diabetes", "Asthma",
    "Heart", "Failure", "Cancer", "Lung", "Breast", "Stroke", "Pain", "Vaccine", "Placebo",
    "Controlled", "Open-label", "Evaluation", "Long-term", "Outcomes", "Exercise", "Diet",
)
RULES = ("results_overdue", "status_stale", "retrospective_registration", "enrollment_shortfall",
         "primary_outcome_changed_after_start", "retroactive_start_date")
# fmt: on


def study_id(i: int) -> str:
    return f"NCT{FIRST_NUMBER + i:08d}"


# ---- building the store ---------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    n: int
    study: str  # the record that holds the demo's real versions


def build(url: str, plan: Plan, seed: int = 7) -> None:
    store = Store.open(url)
    rng = random.Random(seed)
    demo = _demo_versions(plan.study)
    with store.engine.begin() as connection:
        for start in range(0, plan.n, BATCH):
            rows = [
                _study_rows(rng, i, plan, demo) for i in range(start, min(plan.n, start + BATCH))
            ]
            _insert_batch(connection, rows)
    store.close()


def _demo_versions(bench_id: str) -> list[dict[str, Any]]:
    versions = []
    for path in sorted(DEMO.glob("v*.json")):
        data = json.loads(path.read_text())
        study = data.get("study", data)
        study["protocolSection"]["identificationModule"]["nctId"] = bench_id
        versions.append(study)
    return versions


@dataclass
class StudyRows:
    watch: dict[str, Any]
    record: dict[str, Any] | None
    versions: list[dict[str, Any]]
    changes: list[list[dict[str, Any]]]  # per version: the changes that led to it
    findings: list[dict[str, Any]]


def _study_rows(rng: random.Random, i: int, plan: Plan, demo: list[dict[str, Any]]) -> StudyRows:
    sid = study_id(i)
    added = NOW - timedelta(days=rng.uniform(30, 5 * 365))
    watch = {"registry": "ctgov", "study_id": sid, "tags": _tags(rng), "created_at": added}
    if sid != plan.study and rng.random() < 0.004:
        return StudyRows(watch, None, [], [], [])  # watched, never synced yet
    status = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES])[0]
    title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14)))
    seen = added + timedelta(hours=rng.uniform(0, 24))
    count = len(demo) if sid == plan.study else (rng.choice((2, 3)) if rng.random() < 0.1 else 1)
    moments = sorted(
        seen + timedelta(days=rng.uniform(1, (NOW - seen).days or 1)) for _ in range(count - 1)
    )
    changed: datetime | None = moments[-1] if moments else seen
    if count == 1 and rng.random() < 0.02:
        changed = None  # loaded in bulk without a change event
    record = {
        "registry": "ctgov",
        "study_id": sid,
        "title": title,
        "overall_status": status,
        "state": "active",
        "content_hash": f"{i:064x}",
        "latest_seq": count,
        "latest_registry_version": count - 1,
        "last_update_posted": (moments[-1] if moments else seen).date().isoformat(),
        "first_seen_at": seen,
        "last_checked_at": NOW - timedelta(hours=3),
        "last_changed_at": changed,
        "served_id": None,
        "backfill": None,
    }
    versions, changes = _versions(
        rng, sid, status, [seen, *moments], demo if sid == plan.study else None
    )
    return StudyRows(watch, record, versions, changes, _findings(rng, seen))


def _tags(rng: random.Random) -> list[str]:
    tags = []
    if rng.random() < 0.2:
        tags.append("oncology")
    if rng.random() < 0.08:
        tags.append("cardio")
    if rng.random() < 0.01:
        tags.append(f"seed:seed-{rng.randint(1, 40):02d}")
    if rng.random() < 0.03:
        tags.append(f"query:{rng.choice(('diabetes', 'asthma', 'stroke'))}")
    return sorted(tags)


def _versions(
    rng: random.Random,
    sid: str,
    status: str,
    moments: list[datetime],
    demo: list[dict[str, Any]] | None,
) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    versions: list[dict[str, Any]] = []
    changes: list[list[dict[str, Any]]] = []
    for seq, moment in enumerate(moments, start=1):
        raw = (
            demo[seq - 1] if demo else {"protocolSection": {"identificationModule": {"nctId": sid}}}
        )
        snapshot = (
            normalise(raw).model_dump_json()
            if demo
            else json.dumps(
                {
                    "study_id": sid,
                    "overall_status": status,
                    "enrollment_count": rng.randint(10, 900),
                    "enrollment_type": "ESTIMATED",
                }
            )
        )
        versions.append(
            {
                "seq": seq,
                "registry_version": seq - 1,
                "content_hash": f"{seq:02d}{sid}",
                "snapshot": snapshot,
                "raw_gz": zlib.compress(json.dumps(raw).encode()),
                "last_update_posted": moment.date().isoformat(),
                "fetched_at": moment,
            }
        )
        changes.append([_change(rng, sid, seq, moment)])
    return versions, changes


def _change(rng: random.Random, sid: str, seq: int, moment: datetime) -> dict[str, Any]:
    base = {
        "from_version": seq - 2 if seq > 1 else None,
        "to_version": seq - 1,
        "detected_at": moment,
        "historical": False,
        "outcome_type": None,
        "old_field": None,
    }
    if seq == 1:
        return {
            **base,
            "kind": "record_added",
            "field": "",
            "old": None,
            "new": None,
            "severity": "low",
            "summary": f"Now watching {sid}",
        }
    if rng.random() < 0.5:
        return {
            **base,
            "kind": "status_changed",
            "field": "protocolSection.statusModule.overallStatus",
            "old": "RECRUITING",
            "new": "COMPLETED",
            "severity": "medium",
            "summary": "Overall status: Recruiting → Completed",
        }
    old, new = rng.randint(20, 400), rng.randint(20, 400)
    return {
        **base,
        "kind": "enrollment_changed",
        "field": "protocolSection.designModule.enrollmentInfo.count",
        "old": old,
        "new": new,
        "severity": "medium",
        "summary": f"Enrollment: {old} → {new}",
    }


def _findings(rng: random.Random, seen: datetime) -> list[dict[str, Any]]:
    found = []
    if rng.random() < 0.05:
        found.append(_finding(rng, seen, "open"))
    if rng.random() < 0.02:
        found.append(_finding(rng, seen, "resolved"))
    return found


def _finding(rng: random.Random, seen: datetime, state: str) -> dict[str, Any]:
    rule = rng.choice(RULES)
    opened = seen + timedelta(days=rng.uniform(0, 30))
    return {
        "rule": rule,
        "state": state,
        "severity": rng.choice(("low", "medium", "high")),
        "summary": f"{rule.replace('_', ' ')}",
        "detail": {},
        "source": "bench",
        "opened_at": opened,
        "resolved_at": opened + timedelta(days=60) if state == "resolved" else None,
        "historical": False,
    }


def _insert_batch(connection: Any, batch: list[StudyRows]) -> None:
    connection.execute(insert(WatchRow.__table__), [s.watch for s in batch])
    synced = [s for s in batch if s.record is not None]
    record_ids = _insert_ids(connection, RecordRow, [s.record for s in synced])
    version_rows = [
        {**v, "record_id": rid}
        for s, rid in zip(synced, record_ids, strict=True)
        for v in s.versions
    ]
    version_ids = iter(_insert_ids(connection, VersionRow, version_rows))
    change_rows, finding_rows = [], []
    for s, rid in zip(synced, record_ids, strict=True):
        for per_version in s.changes:
            vid = next(version_ids)
            change_rows += [
                {**c, "record_id": rid, "to_version_id": vid, "sync_run_id": None}
                for c in per_version
            ]
        finding_rows += [{**f, "record_id": rid} for f in s.findings]
    connection.execute(insert(ChangeRow.__table__), change_rows)
    if finding_rows:
        connection.execute(insert(FindingRow.__table__), finding_rows)


def _insert_ids(connection: Any, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    table = model.__table__
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list(connection.execute(statement, rows).scalars())


# ---- timing the pages -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    path: str


def cases(study: str) -> list[Case]:
    return [
        Case("list, first page", "/"),
        Case("list, by last change (newest)", "/?sort=-changed"),
        Case("list, by last change (oldest)", "/?sort=changed"),
        Case("list, by status", "/?sort=status"),
        Case("list, status=TERMINATED", "/?status=TERMINATED"),
        Case("list, tag=cardio", "/?tag=cardio"),
        Case("list, seed (1 in 4,000)", "/?seed=seed-07"),
        Case("list, saved search", "/?query=asthma&sort=-changed"),
        Case("list, any open finding", "/?finding=any"),
        Case("list, rule + newest", "/?finding=status_stale&sort=-changed"),
        Case("list, q=word of titles", "/?q=metformin"),
        Case("list, q=rare word", "/?q=zzzz"),
        Case("list, q=id part", "/?q=NCT9005"),
        Case("list, size=500", "/?size=500"),
        Case("api/studies, first page", "/api/studies"),
        Case("api/studies, size=500", "/api/studies?size=500&sort=-changed"),
        Case("record page (4 versions)", f"/studies/{study}"),
        Case("changes", "/changes"),
        Case("api/changes", "/api/changes"),
        Case("changes feed", "/feeds/changes.atom"),
        Case("findings", "/findings"),
        Case("findings, one rule, open", "/findings?rule=status_stale&state=open"),
        Case("api/findings", "/api/findings"),
    ]


async def deep_cases(client: Any) -> list[Case]:
    """Pages far into the list, reached the way readers reach them: by next links."""
    found = []
    for sort, hops in (("id", 100), ("-changed", 100), ("-changed", 196), ("status", 150)):
        url: str | None = f"/api/studies?size=500&sort={sort}"
        for _ in range(hops):
            answer = await client.get(url)
            url = _next_link(answer.headers.get("link"))
            if url is None:
                break
        if url is not None:
            cursor = url.split("cursor=", 1)[1].split("&", 1)[0]
            found.append(
                Case(f"list, {sort}, row {hops * 500:,}", f"/?sort={sort}&cursor={cursor}")
            )
    return found


def _next_link(header: str | None) -> str | None:
    if not header:
        return None
    return header.split(">", 1)[0].lstrip("<")


async def time_case(client: Any, case: Case, runs: int) -> tuple[int, list[float], int]:
    first = await client.get(case.path)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        await client.get(case.path)
        timings.append((time.perf_counter() - started) * 1000)
    return first.status_code, timings, len(first.content)


async def measure(url: str, study: str, runs: int) -> list[tuple[Case, int, list[float], int]]:
    import httpx

    from service.app import build_app
    from service.settings import load_settings
    from service.web.app import create_app

    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "trialwatch.toml"  # defaults: no config file of the checkout
        config.write_text("")
        app = build_app(load_settings(config, {"TRIALWATCH_DATABASE_URL": url}))
    web = create_app(app)
    transport = httpx.ASGITransport(app=web, client=("127.0.0.1", 4321))
    results = []
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for case in [*cases(study), *await deep_cases(client)]:
                status, timings, size = await time_case(client, case, runs)
                results.append((case, status, timings, size))
    finally:
        app.close()
    return results


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def report(results: list[tuple[Case, int, list[float], int]]) -> Iterator[str]:
    yield f"{'page':38} {'status':>6} {'median ms':>10} {'p95 ms':>8} {'bytes':>9}  path"
    for case, status, timings, size in results:
        if status == 404 and case.path.startswith(("/changes", "/feeds")):
            yield f"{case.name:38} {'404':>6} {'(not built yet: skipped)':>29}  {case.path}"
            continue
        median = statistics.median(timings)
        figures = f"{status:>6} {median:>10.1f} {p95(timings):>8.1f} {size:>9,}"
        yield f"{case.name:38} {figures}  {case.path[:60]}"


def ensure_postgres(url: str, plan: Plan, rebuild: bool) -> None:
    """The store in the PostgreSQL database at ``url``: kept when it holds ``plan.n`` watches,
    else (re)built in a fresh database."""
    import psycopg
    from sqlalchemy import make_url

    target = make_url(url)
    admin = psycopg.connect(
        host=target.host, port=target.port or 5432, user=target.username,
        password=target.password, dbname="postgres", autocommit=True,
    )  # fmt: skip
    with admin:
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)
        ).fetchone()
        if exists and not rebuild and _watch_count(url) == plan.n:
            return
        if exists:
            admin.execute(f'DROP DATABASE "{target.database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{target.database}"')
    started = time.perf_counter()
    build(url, plan)
    store = Store.open(url)
    store.refresh_planner_statistics()
    store.close()
    print(f"built {plan.n:,} watched records in {time.perf_counter() - started:.0f} s: {url}")


def _watch_count(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(text("SELECT count(*) FROM watches")) or 0)
    except Exception:  # no tables yet: a database a build was stopped in
        return -1
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/tw-web-bench.db"))
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--postgres", metavar="URL", help="time a PostgreSQL store instead")
    args = parser.parse_args()
    plan = Plan(args.n, study_id(args.n // 2))
    if args.postgres:
        ensure_postgres(args.postgres, plan, args.rebuild)
        results = asyncio.run(measure(args.postgres, plan.study, args.runs))
        print(f"{plan.n:,} watched records, PostgreSQL, {args.runs} runs per page, in-process")
        for line in report(results):
            print(line)
        return
    url = f"sqlite:///{args.db}"
    stamp = args.db.with_suffix(".json")
    wanted = {"n": plan.n, "version": BENCH_VERSION}
    if (
        args.rebuild
        or not args.db.exists()
        or not stamp.exists()
        or json.loads(stamp.read_text()) != wanted
    ):
        for path in (args.db, stamp, Path(f"{args.db}-wal"), Path(f"{args.db}-shm")):
            path.unlink(missing_ok=True)
        started = time.perf_counter()
        build(url, plan)
        stamp.write_text(json.dumps(wanted))
        print(
            f"built {plan.n:,} watched records in {time.perf_counter() - started:.0f} s: {args.db}"
        )
    results = asyncio.run(measure(url, plan.study, args.runs))
    print(f"{plan.n:,} watched records, SQLite, {args.runs} runs per page, in-process (ASGI)")
    for line in report(results):
        print(line)


if __name__ == "__main__":
    main()
