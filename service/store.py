"""The store: the only module that speaks SQLAlchemy.

Tables (created by the Alembic migrations beside this file, never by ``create_all``):
``watches`` (what users asked to follow), ``records`` (one row per registry record seen, with
the hash of its latest version), ``record_versions`` (every distinct normalised snapshot, with
the raw record compressed), ``changes`` (change events) and ``sync_runs``.

A new version and the changes that lead to it are written in one transaction, so a crash
leaves either both or neither.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from service.errors import StoreError
from service.models import Change, Route, Snapshot, StoredChange, VersionInfo, WatchInfo

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SYNC_LOCK = 0x7472_6961_6C77  # "trialw": the advisory lock key of the sync cycle


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class WatchRow(Base):
    __tablename__ = "watches"
    __table_args__ = (UniqueConstraint("registry", "study_id", name="uq_watches_study"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registry_key: Mapped[str] = mapped_column("registry", String(16))
    study_id: Mapped[str] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RecordRow(Base):
    __tablename__ = "records"
    __table_args__ = (UniqueConstraint("registry", "study_id", name="uq_records_study"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registry_key: Mapped[str] = mapped_column("registry", String(16))
    study_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text, default="")
    overall_status: Mapped[str] = mapped_column(String(40), default="")
    state: Mapped[str] = mapped_column(String(16), default="active")
    content_hash: Mapped[str | None] = mapped_column(String(64))
    latest_seq: Mapped[int] = mapped_column(Integer, default=0)
    latest_registry_version: Mapped[int | None] = mapped_column(Integer)
    last_update_posted: Mapped[str] = mapped_column(String(10), default="")
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class VersionRow(Base):
    __tablename__ = "record_versions"
    __table_args__ = (UniqueConstraint("record_id", "seq", name="uq_record_versions_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    registry_version: Mapped[int | None] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    snapshot: Mapped[str] = mapped_column(Text)
    raw_gz: Mapped[bytes] = mapped_column(LargeBinary)
    last_update_posted: Mapped[str] = mapped_column(String(10), default="")
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SyncRunRow(Base):
    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="running")
    checked: Mapped[int] = mapped_column(Integer, default=0)
    new: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, str]]] = mapped_column(JSON)


class ChangeRow(Base):
    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    sync_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id"))
    to_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("record_versions.id", ondelete="CASCADE")
    )
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    field: Mapped[str] = mapped_column(String(255))
    old: Mapped[Any] = mapped_column(JSON, nullable=True)
    new: Mapped[Any] = mapped_column(JSON, nullable=True)
    severity: Mapped[str] = mapped_column(String(8))
    summary: Mapped[str] = mapped_column(Text)
    outcome_type: Mapped[str | None] = mapped_column(String(16))
    historical: Mapped[bool] = mapped_column(Boolean, default=False)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


# ---- outbox tables -----------------------------------------------------------------------


class OutboxRow(Base):
    """One notification to deliver: the changes of one study for one channel.

    Digest rows of one channel and due time share a ``group_key`` and go out as one message.
    The event id of an immediate row is set when it is queued; digest rows get theirs when
    first claimed together, so a retry repeats the same set under the same id and a row that
    joins the group later goes out under another.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str | None] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(16))
    group_key: Mapped[str] = mapped_column(String(200), index=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | sent | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")


class OutboxChangeRow(Base):
    """Which changes a notification carries; a change is queued once per channel, ever."""

    __tablename__ = "outbox_changes"
    __table_args__ = (UniqueConstraint("channel", "change_id", name="uq_outbox_changes_channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(100))


@dataclass(frozen=True)
class RecordState:
    """What a sync needs to know of a record before it looks at a fresh copy."""

    record_id: int
    content_hash: str | None
    latest_seq: int
    latest_version: int | None  # registry number where known, else seq
    latest_registry_version: int | None
    state: str
    last_update_posted: str


@dataclass(frozen=True)
class NewVersion:
    """A fetched record to store as the next version of its study."""

    registry: str
    snapshot: Snapshot
    raw: dict[str, Any]
    registry_version: int | None
    last_update_posted: str
    fetched_at: datetime


@dataclass(frozen=True)
class FirstSighting:
    """A record seen for the first time: its only version, the changes that come with it
    (``record_added``), where they are to be notified and which were found by backfill."""

    version: NewVersion
    changes: Sequence[Change]
    routes: Sequence[Route] = ()
    historical: Sequence[bool] = ()


@dataclass(frozen=True)
class StudyDelivery:
    outbox_id: int
    registry: str
    study_id: str
    title: str
    changes: list[StoredChange]


@dataclass(frozen=True)
class Delivery:
    """A claimed message: one study's changes (immediate) or a channel's digest."""

    event_id: str
    channel: str
    mode: str
    group_key: str
    attempts: int
    created_at: datetime
    studies: list[StudyDelivery]

    @property
    def outbox_ids(self) -> list[int]:
        return [s.outbox_id for s in self.studies]


def database_url(url: str) -> str:
    """psycopg 3 is the PostgreSQL driver trialwatch installs; plain URLs mean it."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # first: the pragmas below may need a lock
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL syncs at checkpoints instead of at every commit: a crash cannot corrupt
    # the store, and a power cut loses at most the last transactions (a sync redoes them).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_store_engine(url: str) -> Engine:
    url = database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def shown_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


class Store:
    """The study store. Methods are units of work: each commits or rolls back as a whole."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        store = cls(create_store_engine(url))
        if migrate:
            store.migrate()
        return store

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> None:
        from service.migrate import upgrade

        try:
            upgrade(self.engine)
        except OperationalError as exc:
            raise StoreError(f"store {shown_url(self.engine)}: {_first_line(exc)}") from None

    @contextmanager
    def _session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise StoreError(f"store {shown_url(self.engine)}: {_first_line(exc)}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    # ---- watches -------------------------------------------------------------------------

    def add_watches(
        self, registry: str, study_ids: Sequence[str], tags: Sequence[str], now: datetime
    ) -> list[str]:
        """Watch the ids not yet watched; add the tags to those already watched."""
        added: list[str] = []
        with self._session() as session:
            existing = {
                row.study_id: row
                for row in session.scalars(
                    select(WatchRow).where(
                        WatchRow.registry_key == registry, WatchRow.study_id.in_(study_ids)
                    )
                )
            }
            for study_id in dict.fromkeys(study_ids):
                row = existing.get(study_id)
                if row is None:
                    session.add(
                        WatchRow(
                            registry_key=registry,
                            study_id=study_id,
                            tags=sorted(set(tags)),
                            created_at=now,
                        )
                    )
                    added.append(study_id)
                elif not set(tags) <= set(row.tags):
                    row.tags = sorted(set(row.tags) | set(tags))
        return added

    def remove_watches(self, registry: str, study_ids: Sequence[str]) -> list[str]:
        with self._session() as session:
            removed = list(
                session.scalars(
                    delete(WatchRow)
                    .where(WatchRow.registry_key == registry, WatchRow.study_id.in_(study_ids))
                    .returning(WatchRow.study_id)
                )
            )
        return sorted(removed)

    def watched_ids(self, registry: str) -> list[str]:
        with self._session() as session:
            return list(
                session.scalars(
                    select(WatchRow.study_id)
                    .where(WatchRow.registry_key == registry)
                    .order_by(WatchRow.study_id)
                )
            )

    def list_watches(self) -> list[WatchInfo]:
        query = (
            select(WatchRow, RecordRow)
            .outerjoin(
                RecordRow,
                (RecordRow.registry_key == WatchRow.registry_key)
                & (RecordRow.study_id == WatchRow.study_id),
            )
            .order_by(WatchRow.registry_key, WatchRow.study_id)
        )
        with self._session() as session:
            return [_watch_info(watch, record) for watch, record in session.execute(query)]

    # ---- sync ----------------------------------------------------------------------------

    def record_states(self, registry: str, study_ids: Iterable[str]) -> dict[str, RecordState]:
        ids = list(study_ids)
        states: dict[str, RecordState] = {}
        # Plain columns, not ORM objects: a whole-registry watch list reads 100,000 rows here
        # every cycle, and building (then discarding) a mapped object per row tripled the cost.
        columns = (
            RecordRow.study_id,
            RecordRow.id,
            RecordRow.content_hash,
            RecordRow.latest_seq,
            RecordRow.latest_registry_version,
            RecordRow.state,
            RecordRow.last_update_posted,
        )
        with self._session() as session:
            for start in range(0, len(ids), 500):
                rows = session.execute(
                    select(*columns).where(
                        RecordRow.registry_key == registry,
                        RecordRow.study_id.in_(ids[start : start + 500]),
                    )
                )
                for study_id, record_id, content_hash, seq, registry_version, state, posted in rows:
                    states[study_id] = RecordState(
                        record_id=record_id,
                        content_hash=content_hash,
                        latest_seq=seq,
                        latest_version=_version_number(registry_version, seq),
                        latest_registry_version=registry_version,
                        state=state,
                        last_update_posted=posted,
                    )
        return states

    def latest_snapshot(self, registry: str, study_id: str) -> Snapshot | None:
        query = (
            select(VersionRow.snapshot)
            .join(RecordRow, RecordRow.id == VersionRow.record_id)
            .where(RecordRow.registry_key == registry, RecordRow.study_id == study_id)
            .order_by(VersionRow.seq.desc())
            .limit(1)
        )
        with self._session() as session:
            snapshot_json = session.scalar(query)
        return None if snapshot_json is None else Snapshot.model_validate_json(snapshot_json)

    def save_version(
        self,
        version: NewVersion,
        changes: Sequence[Change],
        run_id: int | None,
        routes: Sequence[Route] = (),
        historical: Sequence[bool] = (),
    ) -> list[StoredChange]:
        """Store the next version of a record, the changes that lead to it and the
        notifications they cause, in one transaction. ``historical[i]`` marks change ``i`` as
        found by backfill."""
        snapshot = version.snapshot
        with self._session() as session:
            record = session.scalar(
                select(RecordRow).where(
                    RecordRow.registry_key == version.registry,
                    RecordRow.study_id == snapshot.study_id,
                )
            )
            if record is None:
                record = RecordRow(
                    registry_key=version.registry,
                    study_id=snapshot.study_id,
                    first_seen_at=version.fetched_at,
                    latest_seq=0,
                )
                session.add(record)
            from_version = (
                _version_number(record.latest_registry_version, record.latest_seq)
                if record.content_hash
                else None
            )
            session.flush()
            row = VersionRow(
                record_id=record.id,
                seq=record.latest_seq + 1,
                registry_version=version.registry_version,
                content_hash=snapshot.content_hash(),
                snapshot=snapshot.model_dump_json(),
                raw_gz=_raw_gz(version.raw),
                last_update_posted=version.last_update_posted,
                fetched_at=version.fetched_at,
            )
            session.add(row)
            session.flush()
            _advance_record(record, row, snapshot, version.fetched_at, changed=bool(changes))
            session.flush()
            to_version = _version_number(row.registry_version, row.seq)
            flags = list(historical) + [False] * (len(changes) - len(historical))
            rows = [
                ChangeRow(
                    **_change_values(
                        c,
                        record.id,
                        run_id,
                        row.id,
                        from_version,
                        to_version,
                        version.fetched_at,
                        flag,
                    )
                )
                for c, flag in zip(changes, flags, strict=False)
            ]
            session.add_all(rows)
            session.flush()
            _queue(session, record.id, rows, routes, version.fetched_at)
            return [_stored_change(r, record) for r in rows]

    def save_first_versions(
        self, sightings: Sequence[FirstSighting], run_id: int | None
    ) -> list[list[StoredChange]]:
        """Store records seen for the first time, each with its one version, its changes and
        their notifications, all in one transaction: what ``save_version`` does for one
        record, with one multi-row statement per table for the lot (a first load of 100,000
        studies is 100 transactions, not 100,000). Returns the stored changes, per sighting.
        The records must not be in the store yet."""
        if not sightings:
            return []
        hashes = [s.version.snapshot.content_hash() for s in sightings]
        with self._session() as session:
            connection = session.connection()
            records = [_new_record(s, h) for s, h in zip(sightings, hashes, strict=True)]
            record_ids = _insert_ids(connection, RecordRow, records)
            versions = [
                _first_version(s, record_id, h)
                for s, record_id, h in zip(sightings, record_ids, hashes, strict=True)
            ]
            version_ids = _insert_ids(connection, VersionRow, versions)
            change_values = [
                _first_change(sighting, index, record_id, version_id, run_id)
                for sighting, record_id, version_id in zip(
                    sightings, record_ids, version_ids, strict=True
                )
                for index in range(len(sighting.changes))
            ]
            change_ids = iter(_insert_ids(connection, ChangeRow, change_values))
            stored: list[list[StoredChange]] = []
            for sighting, record_id in zip(sightings, record_ids, strict=True):
                ids = [next(change_ids) for _ in sighting.changes]
                if sighting.routes:
                    rows = [ChangeRow(id=change_id) for change_id in ids]
                    _queue(session, record_id, rows, sighting.routes, sighting.version.fetched_at)
                stored.append(_stored_first_changes(sighting, ids))
            return stored

    def mark_checked(
        self,
        registry: str,
        study_ids: Sequence[str],
        now: datetime,
        moved_dates: Mapping[str, str] | None = None,
    ) -> None:
        """Record that these records were checked and found the same: one statement per 500,
        plus one batched statement for those whose last-update-posted date moved without
        their content changing (``moved_dates``: id → new date)."""
        with self._session() as session:
            for start in range(0, len(study_ids), 500):
                session.execute(
                    update(RecordRow)
                    .where(
                        RecordRow.registry_key == registry,
                        RecordRow.study_id.in_(study_ids[start : start + 500]),
                    )
                    .values(last_checked_at=now, state="active")
                )
            if moved_dates:
                table = RecordRow.__table__
                # Core executemany: one statement for all, not one ORM round trip each
                session.connection().execute(
                    update(table)
                    .where(table.c.registry == registry, table.c.study_id == bindparam("sid"))
                    .values(last_update_posted=bindparam("posted")),
                    [{"sid": sid, "posted": date} for sid, date in moved_dates.items()],
                )

    def mark_unavailable(
        self,
        registry: str,
        study_id: str,
        change: Change,
        now: datetime,
        run_id: int | None,
        routes: Sequence[Route] = (),
    ) -> StoredChange | None:
        """Flag a known record as no longer served; the change is stored only once."""
        with self._session() as session:
            record = session.scalar(
                select(RecordRow).where(
                    RecordRow.registry_key == registry, RecordRow.study_id == study_id
                )
            )
            if record is None or record.state == "unavailable":
                return None
            record.state = "unavailable"
            record.last_checked_at = now
            record.last_changed_at = now
            version = _version_number(record.latest_registry_version, record.latest_seq)
            row = ChangeRow(**_change_values(change, record.id, run_id, None, version, None, now))
            session.add(row)
            session.flush()
            _queue(session, record.id, [row], routes, now)
            return _stored_change(row, record)

    @contextmanager
    def sync_lock(self) -> Iterator[bool]:
        """Whether this process may run a sync cycle now: on PostgreSQL one replica at a time
        (a session advisory lock, released by the server if the holder dies); SQLite stores
        are single-host and serialise their writers themselves, so there it is always yes."""
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        with self.engine.connect() as connection:
            locked = connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": SYNC_LOCK}
            )
            connection.commit()
            try:
                yield bool(locked)
            finally:
                if locked:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SYNC_LOCK})
                    connection.commit()

    def start_run(self, now: datetime) -> int:
        with self._session() as session:
            run = SyncRunRow(started_at=now, status="running", errors=[])
            session.add(run)
            session.flush()
            return run.id

    def finish_run(self, run_id: int, report: dict[str, Any], now: datetime) -> None:
        with self._session() as session:
            run = session.get(SyncRunRow, run_id)
            if run is None:
                return
            run.finished_at = now
            run.status = run_status(report["checked"], report["failed"])
            for key in ("checked", "new", "changed", "unchanged", "failed", "requests"):
                setattr(run, key, report[key])
            run.errors = report["errors"]

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
        return {
            "trialwatch_outbox_pending": counts.get("pending", 0),
            "trialwatch_outbox_dead": counts.get("dead", 0),
            "trialwatch_watched_records": watched,
            "trialwatch_last_sync_success_timestamp_seconds": last.timestamp() if last else 0,
        }

    # ---- queries -------------------------------------------------------------------------

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

    def list_versions(self, registry: str, study_id: str) -> list[VersionInfo]:
        with self._session() as session:
            record = session.scalar(
                select(RecordRow).where(
                    RecordRow.registry_key == registry, RecordRow.study_id == study_id
                )
            )
            if record is None:
                return []
            versions = session.scalars(
                select(VersionRow).where(VersionRow.record_id == record.id).order_by(VersionRow.seq)
            ).all()
            summaries: dict[int, list[str]] = {}
            for version_id, summary in session.execute(
                select(ChangeRow.to_version_id, ChangeRow.summary)
                .where(ChangeRow.record_id == record.id)
                .order_by(ChangeRow.id)
            ):
                if version_id is not None:
                    summaries.setdefault(version_id, []).append(summary)
            return [_version_info(record, v, summaries.get(v.id, [])) for v in versions]

    def raw_record(self, registry: str, study_id: str, seq: int) -> dict[str, Any] | None:
        query = (
            select(VersionRow.raw_gz)
            .join(RecordRow, RecordRow.id == VersionRow.record_id)
            .where(
                RecordRow.registry_key == registry,
                RecordRow.study_id == study_id,
                VersionRow.seq == seq,
            )
        )
        with self._session() as session:
            blob = session.scalar(query)
        return None if blob is None else json.loads(zlib.decompress(blob))

    # ---- outbox --------------------------------------------------------------------------

    def watch_tags(self, registry: str, study_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        with self._session() as session:
            rows = session.execute(
                select(WatchRow.study_id, WatchRow.tags).where(WatchRow.registry_key == registry)
            )
            wanted = set(study_ids)
            return {sid: tuple(tags or ()) for sid, tags in rows if sid in wanted}

    def claim_due(
        self, now: datetime, worker: str, lease_until: datetime, limit: int
    ) -> list[Delivery]:
        """Claim due notifications for ``worker`` until ``lease_until``.

        A claim is a conditional UPDATE, so two workers never both win a row; on PostgreSQL
        the candidate rows are also locked with SKIP LOCKED so workers do not wait on each
        other. A claim whose lease ran out (its worker died) can be claimed again.
        """
        claimable = (OutboxRow.status == "pending") & (OutboxRow.due_at <= now)
        claimable &= (OutboxRow.lease_until.is_(None)) | (OutboxRow.lease_until < now)
        with self._session() as session:
            groups = list(
                session.scalars(
                    select(OutboxRow.group_key)
                    .where(claimable)
                    .order_by(OutboxRow.due_at, OutboxRow.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            if not groups:
                return []
            claimed = (
                session.execute(
                    update(OutboxRow)
                    .where(claimable, OutboxRow.group_key.in_(set(groups)))
                    .values(lease_until=lease_until, claimed_by=worker)
                    .returning(OutboxRow.id)
                )
                .scalars()
                .all()
            )
            _name_digests(session, claimed)
            return self._deliveries(session, claimed)

    def _deliveries(self, session: Session, outbox_ids: Sequence[int]) -> list[Delivery]:
        rows = session.execute(
            select(OutboxRow, RecordRow)
            .join(RecordRow, RecordRow.id == OutboxRow.record_id)
            .where(OutboxRow.id.in_(outbox_ids))
            .order_by(OutboxRow.id)
        ).all()
        changes: dict[int, list[StoredChange]] = {}
        for outbox_id, change, record in session.execute(
            select(OutboxChangeRow.outbox_id, ChangeRow, RecordRow)
            .join(ChangeRow, ChangeRow.id == OutboxChangeRow.change_id)
            .join(RecordRow, RecordRow.id == ChangeRow.record_id)
            .where(OutboxChangeRow.outbox_id.in_(outbox_ids))
            .order_by(ChangeRow.id)
        ):
            changes.setdefault(outbox_id, []).append(_stored_change(change, record))
        grouped: dict[str, Delivery] = {}
        for outbox, record in rows:
            assert outbox.event_id is not None  # immediate: at queue time; digest: at claim
            study = StudyDelivery(
                outbox.id,
                record.registry_key,
                record.study_id,
                record.title,
                changes.get(outbox.id, []),
            )
            delivery = grouped.get(outbox.event_id)
            if delivery is None:
                grouped[outbox.event_id] = Delivery(
                    event_id=outbox.event_id,
                    channel=outbox.channel,
                    mode=outbox.mode,
                    group_key=outbox.group_key,
                    attempts=outbox.attempts,
                    created_at=outbox.created_at,
                    studies=[study],
                )
            else:
                delivery.studies.append(study)
        return list(grouped.values())

    def mark_sent(self, outbox_ids: Sequence[int], worker: str, now: datetime) -> None:
        self._settle(outbox_ids, worker, status="sent", sent_at=now, lease_until=None)

    def mark_retry(
        self, outbox_ids: Sequence[int], worker: str, error: str, due_at: datetime
    ) -> None:
        self._settle(
            outbox_ids,
            worker,
            attempts=OutboxRow.attempts + 1,
            last_error=error,
            due_at=due_at,
            lease_until=None,
        )

    def mark_dead(self, outbox_ids: Sequence[int], worker: str, error: str) -> None:
        self._settle(
            outbox_ids,
            worker,
            status="dead",
            attempts=OutboxRow.attempts + 1,
            last_error=error,
            lease_until=None,
        )

    def _settle(self, outbox_ids: Sequence[int], worker: str, **values: Any) -> None:
        # Only the worker holding the claim may settle it: one whose lease ran out and was
        # taken over must not overwrite the new holder's outcome.
        with self._session() as session:
            session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id.in_(outbox_ids),
                    OutboxRow.claimed_by == worker,
                    OutboxRow.status == "pending",
                )
                .values(**values)
            )

    def list_outbox(self, *, dead: bool = False) -> list[dict[str, Any]]:
        status = "dead" if dead else "pending"
        query = (
            select(OutboxRow, RecordRow.study_id, func.count(OutboxChangeRow.id))
            .join(RecordRow, RecordRow.id == OutboxRow.record_id)
            .outerjoin(OutboxChangeRow, OutboxChangeRow.outbox_id == OutboxRow.id)
            .where(OutboxRow.status == status)
            .group_by(OutboxRow.id, RecordRow.study_id)
            .order_by(OutboxRow.due_at, OutboxRow.id)
        )
        with self._session() as session:
            return [
                {
                    "id": row.id,
                    "event_id": row.event_id,
                    "channel": row.channel,
                    "mode": row.mode,
                    "study_id": study_id,
                    "changes": count,
                    "status": row.status,
                    "attempts": row.attempts,
                    "due_at": row.due_at.isoformat(),
                    "last_error": row.last_error,
                }
                for row, study_id, count in session.execute(query)
            ]

    def replay(self, outbox_ids: Sequence[int], now: datetime) -> list[int]:
        """Put dead (or sent) notifications back in the queue, due now, same event id.

        All or nothing: returns the ids that are not dead or sent, and then changes nothing.
        """
        replayable = OutboxRow.id.in_(outbox_ids) & OutboxRow.status.in_(("dead", "sent"))
        with self._session() as session:
            found = set(session.scalars(select(OutboxRow.id).where(replayable)))
            missing = sorted(set(outbox_ids) - found)
            if not missing:
                session.execute(
                    update(OutboxRow)
                    .where(replayable)
                    .values(
                        status="pending",
                        attempts=0,
                        due_at=now,
                        lease_until=None,
                        claimed_by=None,
                        last_error="",
                    )
                )
        return missing

    # ---- seeds ---------------------------------------------------------------------------

    def save_seeds(self, seeds: Sequence[SeedData], now: datetime) -> dict[str, str]:
        """Store seed studies and the links their files name, all or none.

        Returns ``{seed_id: "added" | "updated" | "unchanged"}``. Links a file no longer names
        are dropped; links recorded by commands (search hits, a person's choice) are kept.
        """
        with self._session() as session:
            return {seed.seed_id: _save_seed(session, seed, now) for seed in seeds}

    def add_seed_link(self, seed_id: str, link: SeedLinkData, now: datetime) -> bool:
        """Record a link found by a command; False when a stronger claim already holds it."""
        with self._session() as session:
            row_id = session.scalar(select(SeedRow.id).where(SeedRow.seed_id == seed_id))
            if row_id is None:
                raise StoreError(f"no seed study {seed_id!r} in the store")
            return _upsert_link(session, row_id, link, now)

    def list_seeds(self, seed_ids: Sequence[str] | None = None) -> list[StoredSeed]:
        """Seeds in id order (only ``seed_ids`` when given), each with its links."""
        query = select(SeedRow).order_by(SeedRow.seed_id)
        if seed_ids is not None:
            query = query.where(SeedRow.seed_id.in_(list(seed_ids)))
        with self._session() as session:
            return _stored_seeds(session, session.scalars(query).all())

    def seeds_linked_to(self, registry: str, study_id: str) -> list[StoredSeed]:
        """The seeds that link to one registry record (for re-comparing them after a sync)."""
        query = (
            select(SeedRow)
            .join(SeedLinkRow, SeedLinkRow.seed_row_id == SeedRow.id)
            .where(SeedLinkRow.registry_key == registry, SeedLinkRow.study_id == study_id)
            .order_by(SeedRow.seed_id)
        )
        with self._session() as session:
            return _stored_seeds(session, session.scalars(query).unique().all())

    # ---- seeds: end ----------------------------------------------------------------------

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


def _name_digests(session: Session, outbox_ids: Sequence[int]) -> None:
    """Give the digest rows just claimed that have no event id yet one per group."""
    unnamed = session.execute(
        select(OutboxRow.id, OutboxRow.group_key).where(
            OutboxRow.id.in_(outbox_ids), OutboxRow.event_id.is_(None)
        )
    ).all()
    names: dict[str, str] = {}
    for outbox_id, group_key in unnamed:
        event_id = names.setdefault(group_key, str(uuid.uuid4()))
        session.execute(
            update(OutboxRow).where(OutboxRow.id == outbox_id).values(event_id=event_id)
        )


def _queue(
    session: Session,
    record_id: int,
    changes: Sequence[ChangeRow],
    routes: Sequence[Route],
    now: datetime,
) -> None:
    for route in routes:
        event_id = str(uuid.uuid4()) if route.mode == "immediate" else None
        digest_key = f"digest:{route.channel}:{route.due_at.isoformat()}"
        outbox = OutboxRow(
            event_id=event_id,
            channel=route.channel,
            mode=route.mode,
            group_key=event_id or digest_key,
            record_id=record_id,
            status="pending",
            attempts=0,
            created_at=now,
            due_at=route.due_at,
            last_error="",
        )
        session.add(outbox)
        session.flush()
        session.add_all(
            OutboxChangeRow(outbox_id=outbox.id, change_id=changes[i].id, channel=route.channel)
            for i in route.change_indexes
        )


def run_status(checked: int, failed: int) -> str:
    """ok: nothing failed; partial: some studies failed; failed: every study failed."""
    if not failed:
        return "ok"
    return "failed" if failed >= checked else "partial"


def _first_line(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def _version_number(registry_version: int | None, seq: int) -> int:
    return registry_version if registry_version is not None else seq


def _raw_gz(raw: dict[str, Any]) -> bytes:
    # Compact separators: a fifth fewer bytes to compress, and the same JSON read back.
    return zlib.compress(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode(), 6)


def _insert_ids(connection: Any, model: type[Base], rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` with one executemany statement; their new ids, in the rows' order."""
    if not rows:
        return []
    table = model.__table__
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list(connection.execute(statement, rows).scalars())


def _new_record(sighting: FirstSighting, content_hash: str) -> dict[str, Any]:
    version = sighting.version
    snapshot = version.snapshot
    now = version.fetched_at
    return {
        "registry": version.registry,
        "study_id": snapshot.study_id,
        "title": snapshot.title,
        "overall_status": snapshot.overall_status,
        "state": "active",
        "content_hash": content_hash,
        "latest_seq": 1,
        "latest_registry_version": version.registry_version,
        "last_update_posted": version.last_update_posted,
        "first_seen_at": now,
        "last_checked_at": now,
        "last_changed_at": now if sighting.changes else None,
    }


def _first_version(sighting: FirstSighting, record_id: int, content_hash: str) -> dict[str, Any]:
    version = sighting.version
    return {
        "record_id": record_id,
        "seq": 1,
        "registry_version": version.registry_version,
        "content_hash": content_hash,
        "snapshot": version.snapshot.model_dump_json(),
        "raw_gz": _raw_gz(version.raw),
        "last_update_posted": version.last_update_posted,
        "fetched_at": version.fetched_at,
    }


def _first_change(
    sighting: FirstSighting, index: int, record_id: int, version_id: int, run_id: int | None
) -> dict[str, Any]:
    version, flags = sighting.version, sighting.historical
    return _change_values(
        sighting.changes[index],
        record_id,
        run_id,
        version_id,
        None,
        _version_number(version.registry_version, 1),
        version.fetched_at,
        historical=bool(flags[index]) if index < len(flags) else False,
    )


def _stored_first_changes(sighting: FirstSighting, ids: list[int]) -> list[StoredChange]:
    version = sighting.version
    flags = sighting.historical
    return [
        StoredChange(
            **change.model_dump(),
            id=change_id,
            detected_at=version.fetched_at,
            from_version=None,
            to_version=_version_number(version.registry_version, 1),
            historical=bool(flags[i]) if i < len(flags) else False,
        )
        for i, (change, change_id) in enumerate(zip(sighting.changes, ids, strict=True))
    ]


def _advance_record(
    record: RecordRow, version: VersionRow, snapshot: Snapshot, now: datetime, *, changed: bool
) -> None:
    record.title = snapshot.title
    record.overall_status = snapshot.overall_status
    record.state = "active"
    record.content_hash = version.content_hash
    record.latest_seq = version.seq
    record.latest_registry_version = version.registry_version
    record.last_update_posted = version.last_update_posted
    record.last_checked_at = now
    if changed:
        record.last_changed_at = now


def _change_values(
    change: Change,
    record_id: int,
    run_id: int | None,
    to_version_id: int | None,
    from_version: int | None,
    to_version: int | None,
    now: datetime,
    historical: bool = False,
) -> dict[str, Any]:
    """The columns of a change row (for an ORM row, or a multi-row insert)."""
    return {
        "record_id": record_id,
        "sync_run_id": run_id,
        "to_version_id": to_version_id,
        "from_version": from_version,
        "to_version": to_version,
        "kind": change.kind,
        "field": change.field,
        "old": change.old,
        "new": change.new,
        "severity": change.severity,
        "summary": change.summary,
        "outcome_type": change.outcome_type,
        "historical": historical,
        "detected_at": now,
    }


def _stored_change(row: ChangeRow, record: RecordRow) -> StoredChange:
    return StoredChange(
        id=row.id,
        registry=record.registry_key,
        study_id=record.study_id,
        kind=row.kind,  # type: ignore[arg-type]
        field=row.field,
        old=row.old,
        new=row.new,
        severity=row.severity,  # type: ignore[arg-type]
        summary=row.summary,
        outcome_type=row.outcome_type,  # type: ignore[arg-type]
        detected_at=row.detected_at,
        from_version=row.from_version,
        to_version=row.to_version,
        historical=row.historical,
    )


def _watch_info(watch: WatchRow, record: RecordRow | None) -> WatchInfo:
    return WatchInfo(
        registry=watch.registry_key,
        study_id=watch.study_id,
        tags=tuple(watch.tags or ()),
        added_at=watch.created_at,
        title=record.title if record else "",
        overall_status=record.overall_status if record else "",
        state=record.state if record else "never synced",
        versions=record.latest_seq if record else 0,
        last_checked_at=record.last_checked_at if record else None,
        last_changed_at=record.last_changed_at if record else None,
    )


def _version_info(record: RecordRow, version: VersionRow, summaries: list[str]) -> VersionInfo:
    snapshot = json.loads(version.snapshot)
    return VersionInfo(
        registry=record.registry_key,
        study_id=record.study_id,
        version=_version_number(version.registry_version, version.seq),
        registry_version=version.registry_version,
        seq=version.seq,
        fetched_at=version.fetched_at,
        last_update_posted=version.last_update_posted,
        overall_status=snapshot.get("overall_status", ""),
        enrollment_count=snapshot.get("enrollment_count"),
        enrollment_type=snapshot.get("enrollment_type", ""),
        content_hash=version.content_hash,
        changes=tuple(summaries),
    )


# ---- seeds ----------------------------------------------------------------------------------
# Seed studies (the documents trialwatch starts from) and their links to registry records.
# The store keeps each seed as the JSON of its validated file; ``service.seeds`` owns the model.

# Who may overwrite a link: a person's choice outranks a document's identifier, which outranks a
# search hit. A file reloaded with a weaker claim never undoes a stronger one.
LINK_AUTHORITY = {"search": 1, "document": 2, "person": 3}


class SeedRow(Base):
    __tablename__ = "seeds"
    __table_args__ = (UniqueConstraint("seed_id", name="uq_seeds_seed_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seed_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    document: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SeedLinkRow(Base):
    __tablename__ = "seed_links"
    __table_args__ = (
        UniqueConstraint("seed_row_id", "registry", "study_id", name="uq_seed_links_study"),
        Index("ix_seed_links_registry_study", "registry", "study_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seed_row_id: Mapped[int] = mapped_column(ForeignKey("seeds.id", ondelete="CASCADE"), index=True)
    registry_key: Mapped[str] = mapped_column("registry", String(16))
    study_id: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    from_file: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class SeedLinkData:
    """A seed's link to a registry record, as stored."""

    registry: str
    study_id: str
    confidence: float
    source: str  # document | search | person
    reasons: tuple[str, ...] = ()
    from_file: bool = False  # written in the seed file (reloading the file may remove it)


@dataclass(frozen=True)
class SeedData:
    """A validated seed file to store: its id, headline facts, JSON and the links it names."""

    seed_id: str
    title: str
    kind: str
    document: str
    content_hash: str
    source: str
    links: tuple[SeedLinkData, ...] = ()


@dataclass(frozen=True)
class StoredSeed:
    """A stored seed with every link it has, strongest first."""

    seed_id: str
    title: str
    kind: str
    document: str
    source: str
    created_at: datetime
    updated_at: datetime
    links: tuple[SeedLinkData, ...] = ()


def _save_seed(session: Session, seed: SeedData, now: datetime) -> str:
    row = session.scalar(select(SeedRow).where(SeedRow.seed_id == seed.seed_id))
    if row is None:
        row = SeedRow(seed_id=seed.seed_id, created_at=now)
        session.add(row)
        verdict = "added"
    else:
        verdict = "unchanged" if row.content_hash == seed.content_hash else "updated"
    if verdict != "unchanged":
        row.title, row.kind, row.document = seed.title, seed.kind, seed.document
        row.content_hash, row.source, row.updated_at = seed.content_hash, seed.source, now
    session.flush()
    _reconcile_file_links(session, row.id, seed.links, now)
    return verdict


def _reconcile_file_links(
    session: Session, seed_row_id: int, links: Sequence[SeedLinkData], now: datetime
) -> None:
    existing = {
        (row.registry_key, row.study_id): row
        for row in session.scalars(
            select(SeedLinkRow).where(SeedLinkRow.seed_row_id == seed_row_id)
        )
    }
    named = {(link.registry, link.study_id) for link in links}
    for key, row in existing.items():
        if row.from_file and key not in named:
            session.delete(row)
    for link in links:
        row = existing.get((link.registry, link.study_id))
        if row is None:
            session.add(_seed_link_row(seed_row_id, link, now, from_file=True))
        elif row.from_file or _outranks(link, row):
            _update_link(row, link, now, from_file=True)


def _upsert_link(session: Session, seed_row_id: int, link: SeedLinkData, now: datetime) -> bool:
    row = session.scalar(
        select(SeedLinkRow).where(
            SeedLinkRow.seed_row_id == seed_row_id,
            SeedLinkRow.registry_key == link.registry,
            SeedLinkRow.study_id == link.study_id,
        )
    )
    if row is None:
        session.add(_seed_link_row(seed_row_id, link, now, from_file=False))
        return True
    if not _outranks(link, row):
        return False
    _update_link(row, link, now, from_file=False)
    return True


def _outranks(link: SeedLinkData, row: SeedLinkRow) -> bool:
    return LINK_AUTHORITY.get(link.source, 0) >= LINK_AUTHORITY.get(row.source, 0)


def _seed_link_row(
    seed_row_id: int, link: SeedLinkData, now: datetime, *, from_file: bool
) -> SeedLinkRow:
    return SeedLinkRow(
        seed_row_id=seed_row_id,
        registry_key=link.registry,
        study_id=link.study_id,
        confidence=link.confidence,
        source=link.source,
        from_file=from_file,
        reasons=list(link.reasons),
        created_at=now,
        updated_at=now,
    )


def _update_link(row: SeedLinkRow, link: SeedLinkData, now: datetime, *, from_file: bool) -> None:
    changed = (row.confidence, row.source, list(row.reasons or ())) != (
        link.confidence,
        link.source,
        list(link.reasons),
    )
    row.confidence, row.source, row.reasons = link.confidence, link.source, list(link.reasons)
    row.from_file = from_file
    if changed:
        row.updated_at = now


def _stored_seeds(session: Session, rows: Sequence[SeedRow]) -> list[StoredSeed]:
    links: dict[int, list[SeedLinkData]] = {row.id: [] for row in rows}
    ids = list(links)
    for start in range(0, len(ids), 500):
        for link in session.scalars(
            select(SeedLinkRow)
            .where(SeedLinkRow.seed_row_id.in_(ids[start : start + 500]))
            .order_by(SeedLinkRow.confidence.desc(), SeedLinkRow.registry_key, SeedLinkRow.study_id)
        ):
            links[link.seed_row_id].append(
                SeedLinkData(
                    registry=link.registry_key,
                    study_id=link.study_id,
                    confidence=link.confidence,
                    source=link.source,
                    reasons=tuple(link.reasons or ()),
                    from_file=link.from_file,
                )
            )
    return [
        StoredSeed(
            seed_id=row.seed_id,
            title=row.title,
            kind=row.kind,
            document=row.document,
            source=row.source,
            created_at=row.created_at,
            updated_at=row.updated_at,
            links=tuple(links[row.id]),
        )
        for row in rows
    ]
