"""Changes and sync runs: change events that come from outside a record's versions, the
change log, the sync cycle's lock, its runs and where the next incremental cycle starts.

A sync run is ``running`` from ``start_run`` to ``finish_run``. A process killed in between
(SIGKILL, OOM, a power cut) cannot say so, so every run holds a *presence* for as long as its
process works on it: on PostgreSQL a session advisory lock keyed by the run id, on a
connection of its own; on SQLite an exclusive ``flock`` on ``<store>-runs/<id>.lock``. The
kernel or the server drops either with the process. The next run to start marks every run
that is still ``running`` without a presence ``interrupted`` — and only those: a cycle under
way in another live process (a replica, a second ``sync`` on the same file) keeps its lock
and is left alone. A presence is taken before the new run's row is committed, so no other
process ever sees a ``running`` run without one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, column, event, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from service.errors import StoreError
from service.models import Change, Route, StoredChange
from service.store.base import StoreBase, _first_line, _sqlite_file, log, shown_url
from service.store.batches import Events, attach_events
from service.store.rows import _record, _stored_change
from service.store.tables import CHANGES, RECORDS, SYNC_RUNS, SyncRunRow

SYNC_LOCK = 0x7472_6961_6C77  # "trialw": the advisory lock key of the sync cycle
RUN_LOCK = 0x7472_756E  # "trun": the advisory lock class of a sync run's presence
INTERRUPTED = "interrupted: the process running this cycle stopped before it finished"

# The runs alive on this database: two-key advisory locks show in pg_locks with the first key
# as classid, the second (the run id) as objid and objsubid 2 (see service.store.outbox).
_LIVE_RUNS = (
    text(
        "SELECT objid::int4 AS objid FROM pg_locks"
        " WHERE locktype = 'advisory' AND granted AND objsubid = 2"
        " AND classid = CAST(:run_lock AS oid)"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    .bindparams(run_lock=RUN_LOCK)
    .columns(column("objid", Integer))
)


CHANGE_PAGE = 1000  # changes a page of ``iter_changes``

# The change log's columns and its record's id, Core (an ORM pair a row costs a long log
# several times the time): ``_stored_change`` reads the record's registry as registry_key.
_CHANGES = select(*CHANGES.c, RECORDS.c.registry.label("registry_key"), RECORDS.c.study_id).join(
    RECORDS, RECORDS.c.id == CHANGES.c.record_id
)


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
        grade: str | None = None,
    ) -> list[StoredChange]:
        found = self.iter_changes(study_id=study_id, since=since, kind=kind, grade=grade)
        return list(islice(found, limit) if limit else found)

    def iter_changes(
        self,
        *,
        study_id: str | None = None,
        since: datetime | None = None,
        kind: str | None = None,
        grade: str | None = None,
        page_size: int = CHANGE_PAGE,
        newest: bool = False,
    ) -> Iterator[StoredChange]:
        """Stored changes oldest first (``newest``: newest first), read ``page_size`` at a time
        by keyset on the id (a short transaction a page): a whole registry's million changes
        are never all in memory, and the caller may stop early (``--limit``) without reading
        the rest."""
        query = _CHANGES.order_by(CHANGES.c.id.desc() if newest else CHANGES.c.id)
        if study_id:
            query = query.where(RECORDS.c.study_id == study_id)
        if since:
            query = query.where(CHANGES.c.detected_at >= since)
        if kind:
            query = query.where(CHANGES.c.kind == kind)
        if grade:  # outcome events only; those stored before grading have none
            query = query.where(CHANGES.c.grade == grade)
        after: int | None = None
        while True:
            page = query
            if after is not None:
                page = page.where(CHANGES.c.id < after if newest else CHANGES.c.id > after)
            with self._session() as session:
                rows = session.execute(page.limit(page_size)).all()
            yield from (_stored_change(row, row) for row in rows)
            if len(rows) < page_size:
                return
            after = rows[-1].id

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

    def start_run(self, now: datetime, registry: str = "ctgov") -> int:
        """A new sync run of ``registry``'s records, ``running`` until ``finish_run`` (or
        ``abandon_runs``) ends it, its presence held meanwhile. The runs of processes that are
        gone are marked ``interrupted`` first."""
        self.abandon_runs("cycle aborted earlier", now)  # left by a cycle that raised
        self.interrupt_runs(now)
        new_run = insert(SYNC_RUNS).values(
            registry=registry, started_at=now, status="running", errors=[]
        )
        new_run = new_run.returning(SYNC_RUNS.c.id)
        run_id = (
            self._start_locked_run(new_run)
            if self.engine.dialect.name == "postgresql"
            else self._start_run_with_file(new_run)
        )
        return run_id

    def _start_run_with_file(self, new_run: Any) -> int:
        """Insert a run and lock its presence file before the insert commits (SQLite's writer
        lock is held meanwhile, and nobody reads the uncommitted row)."""
        presences = self._run_presences()
        run_id: int | None = None
        try:
            with self._session() as session:
                run_id = int(session.scalar(new_run))
                presences[run_id] = _hold_run_file(self._runs_dir(), run_id)
        except BaseException:
            if run_id is not None:  # not committed: no run, no presence
                self._let_go_runs([run_id])
            raise
        return run_id

    def _start_locked_run(self, new_run: Any) -> int:
        """Insert a run and take its advisory lock in one transaction, on a connection kept
        for as long as the run is open (the lock is the session's, not the transaction's)."""
        try:
            connection = self.engine.connect()
        except SQLAlchemyError as exc:
            raise StoreError(f"store {shown_url(self.engine)}: {_first_line(exc)}") from None
        try:
            run_id = int(connection.scalar(new_run))
            connection.execute(
                text("SELECT pg_advisory_lock(:run_lock, :run_id)"),
                {"run_lock": RUN_LOCK, "run_id": run_id},
            )
            connection.commit()
        except SQLAlchemyError as exc:
            _discard(connection)
            raise StoreError(f"store {shown_url(self.engine)}: {_first_line(exc)}") from None
        self._run_presences()[run_id] = connection
        return run_id

    def interrupt_runs(self, now: datetime) -> list[int]:
        """Mark ``interrupted`` the runs left ``running`` by processes that are gone (their
        presence dropped with them); a run of a live process, this one or another, is left
        alone. Returns the ids marked."""
        with self._session() as session:
            running = select(SyncRunRow.id).where(SyncRunRow.status == "running")
            if mine := sorted(self._run_presences()):
                running = running.where(SyncRunRow.id.not_in(mine))
            if self.engine.dialect.name == "postgresql":
                running = running.where(SyncRunRow.id.not_in(_LIVE_RUNS))
            candidates = list(session.scalars(running.order_by(SyncRunRow.id)))
        if self.engine.dialect.name != "postgresql":
            runs_dir = self._runs_dir()
            if runs_dir is None:  # an in-memory store: no other process shares it
                return []
            _sweep_finished_run_files(runs_dir, {*candidates, *self._run_presences()})
            candidates = [run_id for run_id in candidates if _run_file_free(runs_dir, run_id)]
        if not candidates:
            return []
        error = [{"study_id": "", "error": INTERRUPTED, "reason": "interrupted"}]
        with self._session() as session:
            marked = list(
                session.scalars(
                    update(SyncRunRow)
                    .where(SyncRunRow.id.in_(candidates), SyncRunRow.status == "running")
                    .values(status="interrupted", finished_at=now, errors=error)
                    .returning(SyncRunRow.id)
                )
            )
        for run_id in marked:
            log.warning("sync run %d was interrupted (its process is gone): marked so", run_id)
        if self.engine.dialect.name != "postgresql":
            _forget_run_files(self._runs_dir(), candidates)
        return marked

    def _run_presences(self) -> dict[int, Any]:
        """The sync runs this process started and has not finished, and the presence each
        holds: a connection (PostgreSQL), a file descriptor (SQLite) or None (an in-memory
        store), let go when the run ends or the store is closed."""
        presences: dict[int, Any] | None = self.__dict__.get("_presences_of_runs")
        if presences is None:
            presences = self.__dict__.setdefault("_presences_of_runs", {})
            event.listen(self.engine, "engine_disposed", lambda _: self._let_go_runs(None))
        return presences

    def _let_go_runs(self, run_ids: Sequence[int] | None) -> None:
        """Drop the presence of ``run_ids`` (None: every open run's)."""
        presences = self._run_presences()
        for run_id in list(presences) if run_ids is None else run_ids:
            presence = presences.pop(run_id, None)
            if isinstance(presence, Connection):
                _discard(presence)
            elif isinstance(presence, int):
                os.close(presence)
                _forget_run_files(self._runs_dir(), [run_id])

    def _runs_dir(self) -> Path | None:
        """Where a SQLite store's run presences live (None: not a file)."""
        path = _sqlite_file(self.engine)
        return None if path is None else path.with_name(path.name + "-runs")

    def finish_run(self, run_id: int, report: dict[str, Any], now: datetime) -> None:
        cycle = report.get("cycle") or {}
        counts = ("checked", "new", "changed", "unchanged", "failed", "requests")
        with self._session() as session:
            session.execute(
                update(SYNC_RUNS)
                .where(SYNC_RUNS.c.id == run_id)
                .values(
                    finished_at=now,
                    status="interrupted"
                    if report.get("interrupted")
                    else run_status(report["checked"], report["failed"]),
                    errors=report["errors"],
                    mode=cycle.get("mode"),
                    registry_timestamp=cycle.get("registry_timestamp"),
                    since=cycle.get("since"),
                    **{key: report[key] for key in counts},
                )
            )
        self._let_go_runs([run_id])

    def last_cycle_mark(self, registry: str = "ctgov") -> CycleMark | None:
        """The newest whole-list cycle of ``registry`` that finished ``ok``, or None (then
        probe everything): another registry's cycle says nothing of this one's changes."""
        columns = SYNC_RUNS.c
        with self._session() as session:
            runs = session.execute(
                select(columns.started_at, columns.registry_timestamp, columns.mode)
                .where(columns.status == "ok", columns.mode.is_not(None))
                .where(columns.registry == registry)
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
        open_runs = sorted(self._run_presences())
        if not open_runs:
            return
        try:
            with self._session() as session:
                session.execute(
                    update(SyncRunRow)
                    .where(SyncRunRow.id.in_(open_runs))
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
        self._let_go_runs(open_runs)

    def recent_run_statuses(self, count: int, registry: str = "ctgov") -> list[str]:
        """The statuses of ``registry``'s last ``count`` finished sync runs, newest first."""
        with self._session() as session:
            return list(
                session.scalars(
                    select(SyncRunRow.status)
                    .where(SyncRunRow.finished_at.is_not(None))
                    .where(SyncRunRow.registry_key == registry)
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


def _hold_run_file(runs_dir: Path | None, run_id: int) -> int | None:
    """A SQLite run's presence: its lock file, created and locked (an ``flock`` belongs to the
    open file, so a second store in the same process sees it too, and the kernel drops it
    with the process). None for an in-memory store."""
    if runs_dir is None:
        return None
    import fcntl  # POSIX only, as the store's SQLite file locking is

    path = runs_dir / f"{run_id}.lock"
    try:
        runs_dir.mkdir(exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"sync run presence {runs_dir}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new run's file: nobody holds it
    except OSError as exc:  # a file left by a store copied in with its -runs folder, say
        os.close(fd)
        raise StoreError(f"sync run presence {path}: {exc.strerror or exc}") from None
    return fd


def _run_file_free(runs_dir: Path, run_id: int) -> bool:
    """Whether nobody holds the presence of ``run_id`` (no file: none was ever taken, or the
    run was marked by another process meanwhile)."""
    import fcntl

    try:
        fd = os.open(runs_dir / f"{run_id}.lock", os.O_RDWR)
    except FileNotFoundError:
        return True
    except OSError as exc:
        log.warning("sync run %d: presence unreadable (%s); left running", run_id, exc)
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


STALE_RUN_FILE_SECONDS = 60.0  # a free lock file this old belongs to no run being started


def _sweep_finished_run_files(runs_dir: Path, running: set[int]) -> None:
    """Remove the lock files of runs that are over, left by a process killed between ending
    its run and removing its file. Only old and free ones: a file just created may be that
    of a run whose row is not committed yet."""
    old_before = time.time() - STALE_RUN_FILE_SECONDS
    for path in runs_dir.glob("*.lock"):
        if not path.stem.isdigit() or int(path.stem) in running:
            continue
        with suppress(OSError):
            if path.stat().st_mtime < old_before and _run_file_free(runs_dir, int(path.stem)):
                path.unlink()


def _forget_run_files(runs_dir: Path | None, run_ids: Sequence[int]) -> None:
    if runs_dir is None:
        return
    for run_id in run_ids:
        with suppress(FileNotFoundError):
            (runs_dir / f"{run_id}.lock").unlink()


def _discard(connection: Connection) -> None:
    """Close a run's presence connection for good (never back to the pool with its lock)."""
    try:
        connection.invalidate()
        connection.close()
    except SQLAlchemyError as exc:
        log.warning("sync run presence: closing its connection failed (%s)", exc)


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
