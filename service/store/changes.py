"""Changes and sync runs: change events that come from outside a record's versions, the
change log, the sync cycle's lock, its runs and where the next incremental cycle starts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from service.errors import StoreError
from service.models import Change, Route, StoredChange
from service.store.base import StoreBase, _first_line, log, shown_url
from service.store.batches import Events, attach_events
from service.store.rows import _record, _stored_change
from service.store.tables import SYNC_RUNS, ChangeRow, RecordRow, SyncRunRow

SYNC_LOCK = 0x7472_6961_6C77  # "trialw": the advisory lock key of the sync cycle


@dataclass(frozen=True)
class CycleMark:
    """The last whole-watch-list cycle that succeeded: where an incremental cycle starts."""

    started_at: datetime
    registry_timestamp: str | None
    cycles_since_probe: int  # whole-list cycles since the last full probe (that one is 0)


class ChangeStore(StoreBase):
    """Change events and the sync runs that find them."""

    def save_events(
        self,
        registry: str,
        study_id: str,
        changes: Sequence[Change],
        routes: Sequence[Route],
        run_id: int | None,
        now: datetime,
    ) -> list[StoredChange]:
        """Change events about a record that come from outside its versions (a saved search
        it entered or left), attached to its latest version, with their notifications."""
        with self._session() as session:
            record = _record(session, registry, study_id)
            if record is None or not changes:
                return []
            [stored] = attach_events(session, [Events(record, changes, routes=routes)], now, run_id)
            return stored

    def list_changes(
        self,
        *,
        study_id: str | None = None,
        since: datetime | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[StoredChange]:
        query = select(ChangeRow, RecordRow).join(RecordRow, RecordRow.id == ChangeRow.record_id)
        if study_id:
            query = query.where(RecordRow.study_id == study_id)
        if since:
            query = query.where(ChangeRow.detected_at >= since)
        if kind:
            query = query.where(ChangeRow.kind == kind)
        query = query.order_by(ChangeRow.id)
        if limit:
            query = query.limit(limit)
        with self._session() as session:
            return [_stored_change(change, record) for change, record in session.execute(query)]

    # ---- sync runs -----------------------------------------------------------------------

    @contextmanager
    def sync_lock(self) -> Iterator[bool]:
        """Whether this process may run a sync cycle now: on PostgreSQL one replica at a time
        (a session advisory lock, released by the server if the holder dies); SQLite stores
        are single-host and serialise their writers themselves, so there it is always yes.
        A database that does not answer is a ``StoreError``, like everywhere else."""
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        try:
            connection = self.engine.connect()
            locked = bool(
                connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": SYNC_LOCK})
            )
            connection.commit()
        except SQLAlchemyError as exc:
            raise StoreError(f"store {shown_url(self.engine)}: {_first_line(exc)}") from None
        try:
            yield locked
        finally:
            _unlock(connection, locked)

    def start_run(self, now: datetime) -> int:
        """A new sync run, ``running`` until ``finish_run`` (or ``abandon_runs``) ends it."""
        self.abandon_runs("cycle aborted earlier", now)  # left by a cycle that raised
        with self._session() as session:
            run_id = int(
                session.scalar(
                    insert(SYNC_RUNS)
                    .values(started_at=now, status="running", errors=[])
                    .returning(SYNC_RUNS.c.id)
                )
            )
        self._open_runs.add(run_id)
        return run_id

    def finish_run(self, run_id: int, report: dict[str, Any], now: datetime) -> None:
        cycle = report.get("cycle") or {}
        counts = ("checked", "new", "changed", "unchanged", "failed", "requests")
        with self._session() as session:
            session.execute(
                update(SYNC_RUNS)
                .where(SYNC_RUNS.c.id == run_id)
                .values(
                    finished_at=now,
                    status=run_status(report["checked"], report["failed"]),
                    errors=report["errors"],
                    mode=cycle.get("mode"),
                    registry_timestamp=cycle.get("registry_timestamp"),
                    since=cycle.get("since"),
                    **{key: report[key] for key in counts},
                )
            )
        self._open_runs.discard(run_id)

    def last_cycle_mark(self) -> CycleMark | None:
        """The newest whole-list cycle that finished ``ok``, or None (then probe everything)."""
        columns = SYNC_RUNS.c
        with self._session() as session:
            runs = session.execute(
                select(columns.started_at, columns.registry_timestamp, columns.mode)
                .where(columns.status == "ok", columns.mode.is_not(None))
                .order_by(columns.id.desc())
                .limit(1000)
            ).all()
        if not runs:
            return None
        since_probe = next((i for i, run in enumerate(runs) if run.mode == "probe"), len(runs))
        started_at, timestamp, _ = runs[0]
        return CycleMark(started_at, timestamp, since_probe)

    def abandon_runs(self, error: str, now: datetime) -> None:
        """Mark the sync runs this process started and did not finish as failed, with
        ``error`` (a cycle that raised must not leave its run ``running`` for ever). A store
        that does not answer keeps them open, for the next try."""
        if not self._open_runs:
            return
        try:
            with self._session() as session:
                session.execute(
                    update(SyncRunRow)
                    .where(SyncRunRow.id.in_(sorted(self._open_runs)))
                    .where(SyncRunRow.status == "running")
                    .values(
                        status="failed",
                        finished_at=now,
                        errors=[{"study_id": "", "error": error, "reason": "internal"}],
                    )
                )
        except StoreError as exc:
            log.warning("could not mark the aborted sync run as failed: %s", exc)
            return
        self._open_runs.clear()

    def recent_run_statuses(self, count: int) -> list[str]:
        """The statuses of the last ``count`` finished sync runs, newest first."""
        with self._session() as session:
            return list(
                session.scalars(
                    select(SyncRunRow.status)
                    .where(SyncRunRow.finished_at.is_not(None))
                    .order_by(SyncRunRow.id.desc())
                    .limit(count)
                )
            )

    def last_sync_success(self) -> datetime | None:
        """When a sync cycle (on any replica) last finished with something fetched."""
        with self._session() as session:
            return session.scalar(
                select(func.max(SyncRunRow.finished_at)).where(
                    SyncRunRow.status.in_(("ok", "partial"))
                )
            )


def run_status(checked: int, failed: int) -> str:
    """ok: nothing failed; partial: some studies failed; failed: every study failed."""
    if not failed:
        return "ok"
    return "failed" if failed >= checked else "partial"


def _unlock(connection: Any, locked: bool) -> None:
    """Release the sync lock and its connection; a server that went away has released the
    lock with the session, so a failure here is only logged."""
    try:
        if locked:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SYNC_LOCK})
            connection.commit()
        connection.close()
    except SQLAlchemyError as exc:
        log.warning("sync lock: release failed (%s); the server drops it with the session", exc)
        connection.invalidate()
