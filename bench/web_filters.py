"""Time the watch list's text and finding filters at 20,000 records, on SQLite and PostgreSQL,
with and without the planner's statistics.

The store is built the way ``bench/web_pages.py`` builds its own (rows written straight into
the tables: statuses, titles, tags, versions, open findings on 5 % of the records), into a
fresh SQLite file and a fresh PostgreSQL database. Each filter is asked of the store
(``browse_watches``, the query the list page runs) first on the store as built, before any
``ANALYZE`` (a planner without statistics: what a store has after ``import-bulk`` until
something analyses it), then after ``ANALYZE``. Prints the median and the worst of each, in ms.

    .venv/bin/python bench/web_filters.py [--n 20000] [--runs 15]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]  (--postgres "" skips it)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from web_pages import Plan, build, study_id  # noqa: E402

from service.store import Store, WatchFilters  # noqa: E402

CASES: tuple[tuple[str, WatchFilters, str], ...] = (
    ("text (common word)", WatchFilters(text="metformin"), "id"),
    ("text (an id's part)", WatchFilters(text="9001234"), "id"),
    ("finding any", WatchFilters(finding="any"), "id"),
    ("text + finding any", WatchFilters(text="metformin", finding="any"), "id"),
    ("text + finding rule", WatchFilters(text="cancer", finding="results_overdue"), "id"),
    ("text + finding, by change", WatchFilters(text="lung", finding="any"), "-changed"),
    ("text + finding, by status", WatchFilters(text="lung", finding="any"), "status"),
    ("rare text + finding", WatchFilters(text="900123", finding="any"), "id"),
)


def timed(store: Store, filters: WatchFilters, sort: str, runs: int) -> tuple[float, float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        store.browse_watches(filters, sort, None, 50)  # type: ignore[arg-type]
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), max(timings)


def measure(name: str, url: str, runs: int) -> Iterator[str]:
    store = Store.open(url, migrate=False)
    try:
        for label, analyse in (("no statistics", False), ("after ANALYZE", True)):
            if analyse:
                with store.engine.begin() as connection:
                    connection.execute(text("ANALYZE"))
            for case, filters, sort in CASES:
                median, worst = timed(store, filters, sort, runs)
                yield f"{name:10} {label:14} {case:28} {median:9.1f} {worst:9.1f}"
    finally:
        store.close()


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    name = f"tw_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    plan = Plan(args.n, study_id(args.n // 2))
    print(f"{'database':10} {'planner':14} {'filter':28} {'median ms':>9} {'worst ms':>9}")
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/tw.db"
        build(url, plan)
        for line in measure("SQLite", url, args.runs):
            print(line, flush=True)
    if args.postgres:
        with postgres_database(args.postgres) as url:
            build(url, plan)
            for line in measure("PostgreSQL", url, args.runs):
                print(line, flush=True)


if __name__ == "__main__":
    main()
