"""The store: the only package that speaks SQLAlchemy.

One module per table family, each a part of ``Store`` that runs its units of work in the one
session helper of ``base.StoreBase``:

- ``base``: the declarative base, the UTC column type, the engine, the session helper;
- ``tables``: every table (created by the Alembic migrations in ``service/migrations``);
- ``records``: the watch list, records and their versions, first sightings;
- ``backfill``: the queue of first sightings' past versions;
- ``changes``: change events, sync runs and the sync lock;
- ``findings``: transparency findings; ``searches``: saved searches; ``seeds``: seed studies;
- ``outbox``: notifications, written by the others in the transaction of their changes, then
  claimed, sent and settled.

A new version and the changes that lead to it are written in one transaction, with their
notifications, so a crash leaves either all or none.
"""

from __future__ import annotations

from sqlalchemy import func, select

from service.store.backfill import BackfillQueue
from service.store.base import (
    MIGRATIONS_DIR,
    Base,
    StoreBase,
    UTCDateTime,
    create_store_engine,
    database_url,
    shown_url,
)
from service.store.baseline import BaselineRows, baseline_rows, save_baseline, stored_ids
from service.store.browse_changes import (
    BrowsedChange,
    BrowsedFinding,
    ChangeBrowser,
    ChangeFilter,
    FindingFilter,
)
from service.store.browse_records import (
    ANY_FINDING,
    COUNT_LIMIT,
    WATCH_SORTS,
    RecordBrowser,
    WatchFilters,
    WatchKey,
    WatchPage,
    WatchSort,
)
from service.store.changes import SYNC_LOCK, ChangeStore, CycleMark, run_status
from service.store.findings import FindingStore, FindingUpdate, StoredVersion
from service.store.meta import MetaStore
from service.store.outbox import WORKER_LOCK, Delivery, OutboxStore, StudyDelivery
from service.store.records import (
    FirstSighting,
    NewVersion,
    NextVersion,
    NotFound,
    RecordState,
    RecordStore,
)
from service.store.searches import SearchInfo, SearchStore
from service.store.seeds import LINK_AUTHORITY, SeedData, SeedLinkData, SeedStore, StoredSeed
from service.store.tables import (
    ChangeRow,
    FindingRow,
    OutboxChangeRow,
    OutboxRow,
    RecordRow,
    SearchMatchRow,
    SearchRow,
    SeedLinkRow,
    SeedRow,
    SyncRunRow,
    VersionRow,
    WatchRow,
)

__all__ = [
    "ANY_FINDING",
    "COUNT_LIMIT",
    "LINK_AUTHORITY",
    "MIGRATIONS_DIR",
    "SYNC_LOCK",
    "WATCH_SORTS",
    "WORKER_LOCK",
    "Base",
    "BaselineRows",
    "BrowsedChange",
    "BrowsedFinding",
    "ChangeFilter",
    "ChangeRow",
    "CycleMark",
    "Delivery",
    "FindingFilter",
    "FindingRow",
    "FindingUpdate",
    "FirstSighting",
    "NewVersion",
    "NextVersion",
    "NotFound",
    "OutboxChangeRow",
    "OutboxRow",
    "RecordRow",
    "RecordState",
    "SearchInfo",
    "SearchMatchRow",
    "SearchRow",
    "SeedData",
    "SeedLinkData",
    "SeedLinkRow",
    "SeedRow",
    "Store",
    "StoreBase",
    "StoredSeed",
    "StoredVersion",
    "StudyDelivery",
    "SyncRunRow",
    "UTCDateTime",
    "VersionRow",
    "WatchFilters",
    "WatchKey",
    "WatchPage",
    "WatchRow",
    "WatchSort",
    "baseline_rows",
    "create_store_engine",
    "database_url",
    "run_status",
    "save_baseline",
    "shown_url",
    "stored_ids",
]


class Store(
    RecordStore,
    BackfillQueue,
    ChangeStore,
    FindingStore,
    SearchStore,
    OutboxStore,
    SeedStore,
    MetaStore,
    RecordBrowser,
    ChangeBrowser,
):
    """The study store. Methods are units of work: each commits or rolls back as a whole."""

    # ---- figures across the families ----------------------------------------------------

    def gauges(self) -> dict[str, float]:
        """Figures for /metrics, read at scrape time."""
        with self._session() as session:
            counts = dict(
                session.execute(
                    select(OutboxRow.status, func.count())
                    .where(OutboxRow.status.in_(("pending", "dead")))
                    .group_by(OutboxRow.status)
                ).all()
            )
            watched = session.scalar(select(func.count()).select_from(WatchRow)) or 0
        last = self.last_sync_success()
        backfill = self.backfill_counts()
        return {
            "trialwatch_outbox_pending": counts.get("pending", 0),
            "trialwatch_outbox_dead": counts.get("dead", 0),
            "trialwatch_watched_records": watched,
            "trialwatch_backfill_pending": backfill["pending"],
            "trialwatch_backfill_failed": backfill["failed"],
            "trialwatch_last_sync_success_timestamp_seconds": last.timestamp() if last else 0,
        }

    def count_rows(self) -> dict[str, int]:
        tables = {
            "watches": WatchRow,
            "records": RecordRow,
            "record_versions": VersionRow,
            "changes": ChangeRow,
            "sync_runs": SyncRunRow,
            "outbox": OutboxRow,
        }
        with self._session() as session:
            return {
                name: session.scalar(select(func.count()).select_from(model)) or 0
                for name, model in tables.items()
            }
