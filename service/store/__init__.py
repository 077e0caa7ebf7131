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
import logging
import os
import threading
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
    ColumnElement,
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
    column,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from service.errors import StoreConflict, StoreError
from service.findings.rules import Finding
from service.findings.stored import FindingInfo
from service.models import Change, Route, Snapshot, StoredChange, VersionInfo, WatchInfo
from service.urls import mask_url

MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"
SYNC_LOCK = 0x7472_6961_6C77  # "trialw": the advisory lock key of the sync cycle

log = logging.getLogger(__name__)


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
    served_id: Mapped[str | None] = mapped_column(String(64))  # the id an alias answer carried
    backfill: Mapped[str | None] = mapped_column(String(16), index=True)  # pending|done|failed
    backfill_error: Mapped[str | None] = mapped_column(Text)
    backfill_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    findings_due: Mapped[str | None] = mapped_column(String(10), index=True)  # yyyy-MM-dd


class VersionRow(Base):
    __tablename__ = "record_versions"
    __table_args__ = (
        UniqueConstraint("record_id", "seq", name="uq_record_versions_seq"),
        # a registry version is stored once per record, however many syncs race for it
        # (several NULLs, for versions without a registry number, stay allowed); an index, not
        # a constraint, because SQLite adds one without rebuilding the table
        Index("uq_record_versions_registry", "record_id", "registry_version", unique=True),
    )

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
    mode: Mapped[str | None] = mapped_column(String(16))  # probe | listing | quiet (whole list)
    registry_timestamp: Mapped[str | None] = mapped_column(String(40))  # /version dataTimestamp
    since: Mapped[str | None] = mapped_column(String(10))  # the listing's first day


@dataclass(frozen=True)
class CycleMark:
    """The last whole-watch-list cycle that succeeded: where an incremental cycle starts."""

    started_at: datetime
    registry_timestamp: str | None
    cycles_since_probe: int  # whole-list cycles since the last full probe (that one is 0)


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
    old_field: Mapped[str | None] = mapped_column(String(255))  # outcome kinds: old position
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


class FindingRow(Base):
    """One time a transparency rule held for a record: open, then resolved (a rule that holds
    again later opens a new row)."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    rule: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)  # open | resolved
    severity: Mapped[str] = mapped_column(String(8))
    summary: Mapped[str] = mapped_column(Text)
    detail: Mapped[Any] = mapped_column(JSON, nullable=True)
    source: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    historical: Mapped[bool] = mapped_column(Boolean, default=False)


class SearchRow(Base):
    """A saved search: registry query parameters (``query.cond`` …), refreshed every cycle."""

    __tablename__ = "searches"
    __table_args__ = (UniqueConstraint("name", name="uq_searches_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registry_key: Mapped[str] = mapped_column("registry", String(16))
    name: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refreshed_stamp: Mapped[str | None] = mapped_column(String(40))  # registry data timestamp


class SearchMatchRow(Base):
    __tablename__ = "search_matches"
    __table_args__ = (UniqueConstraint("search_id", "study_id", name="uq_search_matches_study"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"))
    study_id: Mapped[str] = mapped_column(String(64))
    matched_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class SearchInfo:
    name: str
    registry: str
    params: dict[str, str]
    created_at: datetime
    refreshed_at: datetime | None
    refreshed_stamp: str | None
    matches: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "registry": self.registry,
            "params": self.params,
            "created_at": self.created_at.isoformat(),
            "refreshed_at": self.refreshed_at.isoformat() if self.refreshed_at else None,
            "matches": len(self.matches),
            "study_ids": list(self.matches),
        }


@dataclass(frozen=True)
class StoredVersion:
    """A stored version with what the transparency rules read of it."""

    number: int  # the registry's version number, else the store's sequence
    posted: str
    raw: dict[str, Any]
    changes: list[StoredChange]  # the changes that led into it


@dataclass(frozen=True)
class FindingUpdate:
    """What a review of a record's findings decided, to store in one transaction."""

    opened: Sequence[Finding]
    resolved: Sequence[str]  # rules
    changes: Sequence[Change]  # finding_opened / finding_resolved, in that order
    routes: Sequence[Route]
    historical: bool
    due: str | None  # the day date-dependent rules are next due, yyyy-MM-dd


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
    served_id: str | None = None  # the id the registry serves it under, if another


@dataclass(frozen=True)
class NewVersion:
    """A fetched record to store as the next version of its study."""

    registry: str
    snapshot: Snapshot
    raw: dict[str, Any]
    registry_version: int | None
    last_update_posted: str
    fetched_at: datetime
    served_id: str | None = None  # the id the registry answered under, if another (an alias)


@dataclass(frozen=True)
class FirstSighting:
    """A record seen for the first time: its only version, the changes that come with it
    (``record_added``), where they are to be notified and which were found by backfill."""

    version: NewVersion
    changes: Sequence[Change]
    routes: Sequence[Route] = ()
    historical: Sequence[bool] = ()
    backfill: bool = False  # queue its past versions for the history backfill


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
    # hide_password covers user:PASSWORD@ only; libpq also takes ?password=… in the query
    return mask_url(engine.url.render_as_string(hide_password=True))


class Store:
    """The study store. Methods are units of work: each commits or rolls back as a whole."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._open_runs: set[int] = set()  # sync runs this process started and not finished
        self._file_identity: tuple[int, int] | None = None  # SQLite: (device, inode) when seen

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
            RecordRow.served_id,
        )
        with self._session() as session:
            for start in range(0, len(ids), 500):
                rows = session.execute(
                    select(*columns).where(
                        RecordRow.registry_key == registry,
                        RecordRow.study_id.in_(ids[start : start + 500]),
                    )
                )
                for (
                    study_id,
                    record_id,
                    content_hash,
                    seq,
                    registry_version,
                    state,
                    posted,
                    served_id,
                ) in rows:
                    states[study_id] = RecordState(
                        record_id=record_id,
                        content_hash=content_hash,
                        latest_seq=seq,
                        latest_version=_version_number(registry_version, seq),
                        latest_registry_version=registry_version,
                        state=state,
                        last_update_posted=posted,
                        served_id=served_id,
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
        found by backfill.

        Idempotent: a version already stored (the same registry version, or — without a
        registry number — the same content as the latest) raises ``StoreConflict`` and writes
        nothing. Two processes storing the next version at once clash on a unique constraint;
        the loser tries once more, seeing the winner's row, and so ends in a clean
        ``StoreConflict`` (or stores its version after the winner's, if it is another one)."""
        try:
            return self._save_version(version, changes, run_id, routes, historical)
        except StoreError as exc:
            if not _clash(exc):
                raise
        try:
            return self._save_version(version, changes, run_id, routes, historical)
        except StoreError as exc:
            if not _clash(exc):
                raise
            raise StoreConflict(
                f"{version.snapshot.study_id}: another process is storing versions of this "
                "record at the same time; nothing written (the next sync goes on from theirs)"
            ) from None

    def _save_version(
        self,
        version: NewVersion,
        changes: Sequence[Change],
        run_id: int | None,
        routes: Sequence[Route],
        historical: Sequence[bool],
    ) -> list[StoredChange]:
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
            elif _already_stored(session, record, version):
                number = version.registry_version
                which = f"version {number}" if number is not None else "this version"
                raise StoreConflict(
                    f"{snapshot.study_id}: {which} is already stored (another sync stored it "
                    "meanwhile); nothing written"
                )
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
            _advance_record(
                record,
                row,
                snapshot,
                version.fetched_at,
                changed=bool(changes),
                served_id=version.served_id,
            )
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
        The records must not be in the store yet: if another process stored one meanwhile,
        nothing is written and ``StoreConflict`` says so (store them one by one then)."""
        if not sightings:
            return []
        try:
            return self._save_first_versions(sightings, run_id)
        except StoreError as exc:
            if not _clash(exc):
                raise
            raise StoreConflict(
                f"{len(sightings)} new record(s): another process stored some of them "
                "meanwhile; nothing written"
            ) from None

    def _save_first_versions(
        self, sightings: Sequence[FirstSighting], run_id: int | None
    ) -> list[list[StoredChange]]:
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

    # ---- history backfill queue ----------------------------------------------------------
    # A record seen for the first time is stored at once with its current version and queued
    # here; its past versions are fetched later, within a time budget per cycle, and slotted in
    # before it (the store's sequence renumbered), so a long watch list is live in seconds.

    def pending_backfills(
        self, registry: str, now: datetime, study_ids: Sequence[str] | None = None
    ) -> list[str]:
        """Records whose past versions are still to be fetched, oldest in the queue first."""
        query = (
            select(RecordRow.study_id)
            .where(
                RecordRow.registry_key == registry,
                RecordRow.backfill == "pending",
                (RecordRow.backfill_after.is_(None)) | (RecordRow.backfill_after <= now),
            )
            .order_by(RecordRow.id)
        )
        with self._session() as session:
            pending = list(session.scalars(query))
        if study_ids is None:
            return pending
        wanted = set(study_ids)
        return [study_id for study_id in pending if study_id in wanted]

    def backfill_counts(self, registry: str | None = None) -> dict[str, int]:
        """How many records are pending, done and failed in the backfill queue."""
        query = select(RecordRow.backfill, func.count()).where(RecordRow.backfill.is_not(None))
        if registry is not None:
            query = query.where(RecordRow.registry_key == registry)
        with self._session() as session:
            counts = dict(session.execute(query.group_by(RecordRow.backfill)).all())
        return {state: int(counts.get(state, 0)) for state in ("pending", "done", "failed")}

    def first_version(self, registry: str, study_id: str) -> NewVersion | None:
        """The earliest stored version of a record, as it was fetched."""
        query = (
            select(VersionRow)
            .join(RecordRow, RecordRow.id == VersionRow.record_id)
            .where(RecordRow.registry_key == registry, RecordRow.study_id == study_id)
            .order_by(VersionRow.seq)
            .limit(1)
        )
        with self._session() as session:
            row = session.scalar(query)
            if row is None:
                return None
            return NewVersion(
                registry=registry,
                snapshot=Snapshot.model_validate_json(row.snapshot),
                raw=json.loads(zlib.decompress(row.raw_gz)),
                registry_version=row.registry_version,
                last_update_posted=row.last_update_posted,
                fetched_at=row.fetched_at,
            )

    def set_backfill(
        self,
        registry: str,
        study_id: str,
        state: str,
        *,
        error: str | None = None,
        after: datetime | None = None,
    ) -> None:
        with self._session() as session:
            session.execute(
                update(RecordRow)
                .where(RecordRow.registry_key == registry, RecordRow.study_id == study_id)
                .values(backfill=state, backfill_error=error, backfill_after=after)
            )

    def save_backfill(
        self,
        registry: str,
        study_id: str,
        past: Sequence[NewVersion],
        first_registry_version: int | None,
        steps: Sequence[Sequence[Change]],
        routes: Sequence[Sequence[Route]],
        run_id: int | None,
        now: datetime,
    ) -> list[StoredChange]:
        """Slot ``past`` versions (oldest first) in before the earliest stored one, with the
        changes of each step (``steps[i]`` leads into ``past[i]``; the last item of ``steps``
        leads from the last past version into the earliest stored one), all historical; the
        earliest stored version takes the registry number ``first_registry_version``. One
        transaction; the record leaves the queue."""
        with self._session() as session:
            record = session.scalar(
                select(RecordRow)
                .where(RecordRow.registry_key == registry, RecordRow.study_id == study_id)
                .with_for_update()
            )
            if record is None or record.backfill != "pending":
                return []  # removed meanwhile, or another process did it
            _shift_versions(session, record.id, len(past))
            versions = list(
                session.scalars(
                    select(VersionRow)
                    .where(VersionRow.record_id == record.id)
                    .order_by(VersionRow.seq)
                )
            )
            if first_registry_version is not None and versions:
                versions[0].registry_version = first_registry_version
                if len(versions) == 1:  # it is also the latest
                    record.latest_registry_version = first_registry_version
            inserted = [_past_version_row(record.id, i + 1, v) for i, v in enumerate(past)]
            session.add_all(inserted)
            record.latest_seq += len(past)
            record.backfill, record.backfill_error, record.backfill_after = "done", None, None
            session.flush()
            targets = [*inserted, *versions[:1]]
            rows = _backfill_change_rows(record.id, run_id, targets, steps, now)
            session.add_all(rows)
            session.flush()
            _renumber_changes(session, record.id)
            for change_rows, step_routes in zip(_by_step(rows, steps), routes, strict=True):
                if step_routes:
                    _queue(session, record.id, change_rows, step_routes, now)
            return [_stored_change(r, record) for r in rows]

    # ---- saved searches -----------------------------------------------------------------

    def add_search(self, registry: str, name: str, params: dict[str, str], now: datetime) -> None:
        with self._session() as session:
            if session.scalar(select(SearchRow.id).where(SearchRow.name == name)) is not None:
                raise StoreConflict(f"a saved search named {name!r} exists already")
            session.add(SearchRow(registry_key=registry, name=name, params=params, created_at=now))

    def remove_search(self, name: str) -> bool:
        """Forget a search (the records it brought in stay watched)."""
        with self._session() as session:
            row = session.scalar(select(SearchRow).where(SearchRow.name == name))
            if row is None:
                return False
            session.execute(delete(SearchMatchRow).where(SearchMatchRow.search_id == row.id))
            session.delete(row)
            return True

    def list_searches(self, registry: str | None = None) -> list[SearchInfo]:
        query = select(SearchRow).order_by(SearchRow.name)
        if registry is not None:
            query = query.where(SearchRow.registry_key == registry)
        with self._session() as session:
            rows = list(session.scalars(query))
            matches: dict[int, list[str]] = {}
            for search_id, study_id in session.execute(
                select(SearchMatchRow.search_id, SearchMatchRow.study_id).order_by(
                    SearchMatchRow.study_id
                )
            ):
                matches.setdefault(search_id, []).append(study_id)
            return [
                SearchInfo(
                    r.name,
                    r.registry_key,
                    dict(r.params),
                    r.created_at,
                    r.refreshed_at,
                    r.refreshed_stamp,
                    tuple(matches.get(r.id, [])),
                )
                for r in rows
            ]

    def set_search_matches(
        self,
        name: str,
        added: Sequence[str],
        removed: Sequence[str],
        now: datetime,
        stamp: str | None,
    ) -> None:
        with self._session() as session:
            row = session.scalar(select(SearchRow).where(SearchRow.name == name))
            if row is None:
                return
            row.refreshed_at, row.refreshed_stamp = now, stamp
            if removed:
                session.execute(
                    delete(SearchMatchRow).where(
                        SearchMatchRow.search_id == row.id,
                        SearchMatchRow.study_id.in_(list(removed)),
                    )
                )
            session.add_all(
                SearchMatchRow(search_id=row.id, study_id=study_id, matched_at=now)
                for study_id in added
            )

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
            record = self._record(session, registry, study_id)
            if record is None or not changes:
                return []
            latest = session.scalar(
                select(VersionRow.id)
                .where(VersionRow.record_id == record.id)
                .order_by(VersionRow.seq.desc())
                .limit(1)
            )
            number = _version_number(record.latest_registry_version, record.latest_seq)
            rows = [
                ChangeRow(**_change_values(c, record.id, run_id, latest, None, number, now))
                for c in changes
            ]
            session.add_all(rows)
            session.flush()
            _queue(session, record.id, rows, routes, now)
            return [_stored_change(r, record) for r in rows]

    # ---- transparency findings -----------------------------------------------------------

    def version_chain(self, registry: str, study_id: str) -> list[StoredVersion]:
        """Every stored version of a record, oldest first, with the changes into each."""
        with self._session() as session:
            record = self._record(session, registry, study_id)
            if record is None:
                return []
            versions = session.scalars(
                select(VersionRow).where(VersionRow.record_id == record.id).order_by(VersionRow.seq)
            ).all()
            changes: dict[int, list[StoredChange]] = {}
            for row in session.scalars(
                select(ChangeRow).where(ChangeRow.record_id == record.id).order_by(ChangeRow.id)
            ):
                if row.to_version_id is not None:
                    changes.setdefault(row.to_version_id, []).append(_stored_change(row, record))
            return [
                StoredVersion(
                    _version_number(v.registry_version, v.seq),
                    v.last_update_posted,
                    json.loads(zlib.decompress(v.raw_gz)),
                    changes.get(v.id, []),
                )
                for v in versions
            ]

    def open_findings(self, registry: str, study_id: str) -> dict[str, FindingInfo]:
        return {
            f.rule: f
            for f in self.list_findings(study_id=study_id, registry=registry, only_open=True)
        }

    def save_findings(
        self,
        registry: str,
        study_id: str,
        decided: FindingUpdate,
        run_id: int | None,
        now: datetime,
    ) -> list[StoredChange]:
        """Open and resolve findings, with their change events and notifications, in one
        transaction; remember when the record's date-dependent rules are next due."""
        with self._session() as session:
            record = self._record(session, registry, study_id)
            if record is None:
                return []
            record.findings_due = decided.due
            if decided.resolved:
                session.execute(
                    update(FindingRow)
                    .where(
                        FindingRow.record_id == record.id,
                        FindingRow.state == "open",
                        FindingRow.rule.in_(decided.resolved),
                    )
                    .values(state="resolved", resolved_at=now)
                )
            session.add_all(
                _finding_row(record.id, f, now, decided.historical) for f in decided.opened
            )
            if not decided.changes:
                return []
            latest = session.scalar(
                select(VersionRow)
                .where(VersionRow.record_id == record.id)
                .order_by(VersionRow.seq.desc())
                .limit(1)
            )
            to_version_id = latest.id if latest else None
            number = _version_number(record.latest_registry_version, record.latest_seq)
            rows = [
                ChangeRow(
                    **_change_values(
                        c, record.id, run_id, to_version_id, None, number, now, decided.historical
                    )
                )
                for c in decided.changes
            ]
            session.add_all(rows)
            session.flush()
            record.last_changed_at = now
            _queue(session, record.id, rows, decided.routes, now)
            return [_stored_change(r, record) for r in rows]

    def due_for_findings(self, registry: str, today: str) -> list[str]:
        """Records whose date-dependent rules are due for a look on ``today`` (yyyy-MM-dd)."""
        with self._session() as session:
            return list(
                session.scalars(
                    select(RecordRow.study_id)
                    .where(
                        RecordRow.registry_key == registry,
                        RecordRow.findings_due.is_not(None),
                        RecordRow.findings_due <= today,
                    )
                    .order_by(RecordRow.id)
                )
            )

    def list_findings(
        self,
        *,
        only_open: bool = False,
        study_id: str | None = None,
        rule: str | None = None,
        registry: str | None = None,
    ) -> list[FindingInfo]:
        query = select(FindingRow, RecordRow).join(RecordRow, RecordRow.id == FindingRow.record_id)
        if only_open:
            query = query.where(FindingRow.state == "open")
        if study_id:
            query = query.where(RecordRow.study_id == study_id)
        if registry:
            query = query.where(RecordRow.registry_key == registry)
        if rule:
            query = query.where(FindingRow.rule == rule)
        query = query.order_by(RecordRow.study_id, FindingRow.id)
        with self._session() as session:
            return [_finding_info(f, r) for f, r in session.execute(query)]

    @staticmethod
    def _record(session: Session, registry: str, study_id: str) -> RecordRow | None:
        return session.scalar(
            select(RecordRow).where(
                RecordRow.registry_key == registry, RecordRow.study_id == study_id
            )
        )

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
            run = SyncRunRow(started_at=now, status="running", errors=[])
            session.add(run)
            session.flush()
            run_id = run.id
        self._open_runs.add(run_id)
        return run_id

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
            cycle = report.get("cycle") or {}
            run.mode = cycle.get("mode")
            run.registry_timestamp = cycle.get("registry_timestamp")
            run.since = cycle.get("since")
        self._open_runs.discard(run_id)

    def last_cycle_mark(self) -> CycleMark | None:
        """The newest whole-list cycle that finished ``ok``, or None (then probe everything)."""
        with self._session() as session:
            runs = session.execute(
                select(SyncRunRow.started_at, SyncRunRow.registry_timestamp, SyncRunRow.mode)
                .where(SyncRunRow.status == "ok", SyncRunRow.mode.is_not(None))
                .order_by(SyncRunRow.id.desc())
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

    def check(self) -> None:
        """Raise ``StoreError`` unless the store answers — and, for a SQLite file, unless it
        is still the file this process opened: one deleted (or replaced) under a running
        daemon would otherwise take every later write with it, silently."""
        path = _sqlite_file(self.engine)
        if path is not None:
            self._check_file(path)
        with self._session() as session:
            session.execute(text("SELECT 1"))

    def _check_file(self, path: Path) -> None:
        where = f"store {shown_url(self.engine)}"
        try:
            stat = path.stat()
        except OSError:
            raise StoreError(
                f"{where}: the database file {path} is gone (deleted while trialwatch ran); "
                "restore it, or restart to create a new store"
            ) from None
        identity = (stat.st_dev, stat.st_ino)
        if self._file_identity is None:
            self._file_identity = identity
        elif identity != self._file_identity:
            raise StoreError(
                f"{where}: the database file {path} was replaced while trialwatch ran; "
                "restart to use the new one"
            )

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
        backfill = self.backfill_counts()
        return {
            "trialwatch_outbox_pending": counts.get("pending", 0),
            "trialwatch_outbox_dead": counts.get("dead", 0),
            "trialwatch_watched_records": watched,
            "trialwatch_backfill_pending": backfill["pending"],
            "trialwatch_backfill_failed": backfill["failed"],
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
        other. A claim whose lease ran out (its worker hangs or died) can be claimed again.
        On PostgreSQL a claim is also free as soon as the process that made it is gone: it is
        written on the connection that holds the worker's presence lock (``_Presence``), and
        the server drops that lock with the connection, so nobody waits out the lease of a
        killed replica.
        """
        free = OutboxRow.lease_until.is_(None) | (OutboxRow.lease_until < now)
        if self.engine.dialect.name == "postgresql":
            free |= _claimer_gone()
        claimable = (OutboxRow.status == "pending") & (OutboxRow.due_at <= now) & free
        with self._claim_session(worker) as session:
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

    @contextmanager
    def _claim_session(self, worker: str) -> Iterator[Session]:
        """The unit of work a claim is written in: on PostgreSQL on the connection holding
        ``worker``'s presence lock, so a claim never commits without the lock held (a
        connection that dies mid-claim rolls the claim back); elsewhere an ordinary one."""
        if self.engine.dialect.name != "postgresql":
            with self._session() as session:
                yield session
            return
        presence = self._presence(worker)
        with presence.lock:
            session: Session | None = None
            try:
                session = Session(bind=presence.connection(), expire_on_commit=False)
                yield session
                session.commit()
            except SQLAlchemyError as exc:
                raise StoreError(f"store {shown_url(self.engine)}: {_first_line(exc)}") from exc
            finally:
                if session is not None:
                    session.close()  # rolls back whatever was not committed

    def _presence(self, worker: str) -> _Presence:
        """``worker``'s presence, taken at its first claim and held until the store is closed
        or the process ends. Made on demand, not in ``__init__``: only a store that delivers
        on PostgreSQL needs one."""
        presences: dict[str, _Presence] = self.__dict__.setdefault("_presences", {})
        if worker not in presences:
            if not presences:  # Store.close disposes of the engine: let go of the locks then
                event.listen(self.engine, "engine_disposed", lambda _: _let_go(presences))
            presences[worker] = _Presence(self.engine, worker)
        return presences[worker]

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


WORKER_LOCK = 0x7477_6B72  # "twkr": the advisory lock class of delivery workers' presence

# The workers alive on this database: two-key advisory locks show in pg_locks with the first
# key as classid, the second as objid (an oid: cast back to the int4 hashtext gave) and
# objsubid 2, so they never meet the one-key sync lock.
_LIVE_WORKERS = (
    text(
        "SELECT objid::int4 AS objid FROM pg_locks"
        " WHERE locktype = 'advisory' AND granted AND objsubid = 2"
        " AND classid = CAST(:worker_lock AS oid)"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    .bindparams(worker_lock=WORKER_LOCK)
    .columns(column("objid", Integer))
)


def _claimer_gone() -> ColumnElement[bool]:
    """A claim whose worker holds no presence lock: the process that made it is gone. The
    key is ``hashtext(worker)``, computed by the server both when locking and here."""
    return func.hashtext(OutboxRow.claimed_by).not_in(_LIVE_WORKERS)


class _Presence:
    """A delivery worker's presence on PostgreSQL: a connection of its own that holds a
    session-level advisory lock keyed by the worker id for as long as the worker lives.

    The server drops the lock with the connection, so the claims of a process that dies
    (SIGKILL, a rescheduled container) are taken over at another worker's next claim instead
    of when their lease runs out; a worker that hangs keeps its lock, and the lease remains
    the fallback. A connection found dead is replaced and the lock taken again; claims made
    under the old one may have been taken over meanwhile, so a send in flight may go out
    twice, under the same event id, as after any takeover.
    """

    def __init__(self, engine: Engine, worker: str) -> None:
        self.engine = engine
        self.worker = worker
        self.lock = threading.Lock()  # one claim at a time on the connection
        self._connection: Connection | None = None

    def connection(self) -> Connection:
        """The connection holding the lock, checked with a round trip (a connection the
        server dropped has dropped the lock too), and replaced if it does not answer."""
        if self._connection is not None and not _answers(self._connection):
            log.warning("delivery worker %s: store connection lost, reconnecting", self.worker)
            self.close()
        if self._connection is None:
            self._connection = self._lock()
        return self._connection

    def _lock(self) -> Connection:
        connection = self.engine.connect()
        try:
            held = connection.scalar(
                text("SELECT pg_try_advisory_lock(:worker_lock, hashtext(:worker))"),
                {"worker_lock": WORKER_LOCK, "worker": self.worker},
            )
            connection.commit()
        except SQLAlchemyError:
            _discard(connection)
            raise
        if not held:
            connection.close()  # no lock taken: the connection may go back to the pool
            raise StoreError(f"delivery worker {self.worker!r} is running in another process")
        return connection

    def close(self) -> None:
        if self._connection is not None:
            _discard(self._connection)
            self._connection = None


def _answers(connection: Connection) -> bool:
    if connection.invalidated or connection.closed:
        return False
    try:
        connection.exec_driver_sql("SELECT 1")
        connection.rollback()
    except SQLAlchemyError:
        return False
    return True


def _discard(connection: Connection) -> None:
    """Close a presence connection for good: invalidated, never back in the pool, where
    another unit of work would inherit its lock and keep a dead worker's claims alive."""
    try:
        connection.invalidate()
        connection.close()
    except SQLAlchemyError as exc:
        log.warning("delivery worker: closing its connection failed (%s)", exc)


def _let_go(presences: dict[str, _Presence]) -> None:
    for presence in presences.values():
        with presence.lock:
            presence.close()
    presences.clear()


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


def _clash(exc: StoreError) -> bool:
    """Whether a failed write hit a unique constraint (another process wrote the same row
    first), rather than any other integrity error (a NOT NULL: a bug, not a race)."""
    cause = exc.__cause__
    if not isinstance(cause, IntegrityError):
        return False
    original = cause.orig
    return getattr(original, "sqlstate", None) == "23505" or "UNIQUE constraint" in str(original)


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


def _sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite store (None for PostgreSQL and in-memory stores)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(os.path.abspath(url.database))


def _already_stored(session: Session, record: RecordRow, version: NewVersion) -> bool:
    """Whether ``version`` is in the store: its registry number for this record, or — for a
    version without one — the content of the latest version."""
    if version.registry_version is None:
        return record.content_hash == version.snapshot.content_hash()
    found = session.scalar(
        select(VersionRow.id).where(
            VersionRow.record_id == record.id,
            VersionRow.registry_version == version.registry_version,
        )
    )
    return found is not None


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
        "served_id": version.served_id,
        "backfill": "pending" if sighting.backfill else None,
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
    record: RecordRow,
    version: VersionRow,
    snapshot: Snapshot,
    now: datetime,
    *,
    changed: bool,
    served_id: str | None = None,
) -> None:
    record.title = snapshot.title
    record.overall_status = snapshot.overall_status
    record.state = "active"
    record.content_hash = version.content_hash
    record.latest_seq = version.seq
    record.latest_registry_version = version.registry_version
    record.last_update_posted = version.last_update_posted
    record.last_checked_at = now
    record.served_id = served_id
    if changed:
        record.last_changed_at = now


def _finding_row(record_id: int, finding: Finding, now: datetime, historical: bool) -> FindingRow:
    return FindingRow(
        record_id=record_id,
        rule=finding.rule,
        state="open",
        severity=finding.severity,
        summary=finding.summary,
        detail=finding.detail,
        source=finding.source,
        opened_at=now,
        historical=historical,
    )


def _finding_info(row: FindingRow, record: RecordRow) -> FindingInfo:
    return FindingInfo(
        registry=record.registry_key,
        study_id=record.study_id,
        rule=row.rule,
        state=row.state,  # type: ignore[arg-type]
        opened_at=row.opened_at,
        resolved_at=row.resolved_at,
        severity=row.severity,  # type: ignore[arg-type]
        summary=row.summary,
        detail=row.detail or {},
        source=row.source,
        historical=row.historical,
    )


def _shift_versions(session: Session, record_id: int, by: int) -> None:
    """Move a record's versions ``by`` places later in its sequence. Through negative
    numbers, so that no intermediate state breaks the unique (record, seq) constraint."""
    table = VersionRow.__table__
    where = table.c.record_id == record_id
    session.execute(update(table).where(where).values(seq=-table.c.seq - by))
    session.execute(update(table).where(where).values(seq=-table.c.seq))


def _past_version_row(record_id: int, seq: int, version: NewVersion) -> VersionRow:
    return VersionRow(
        record_id=record_id,
        seq=seq,
        registry_version=version.registry_version,
        content_hash=version.snapshot.content_hash(),
        snapshot=version.snapshot.model_dump_json(),
        raw_gz=_raw_gz(version.raw),
        last_update_posted=version.last_update_posted,
        fetched_at=version.fetched_at,
    )


def _backfill_change_rows(
    record_id: int,
    run_id: int | None,
    targets: Sequence[VersionRow],
    steps: Sequence[Sequence[Change]],
    now: datetime,
) -> list[ChangeRow]:
    """The historical change rows of a backfill: ``steps[i]`` lead into ``targets[i]``."""
    rows = []
    for i, (target, changes) in enumerate(zip(targets, steps, strict=False)):
        source = targets[i - 1] if i else None
        from_version = _version_number(source.registry_version, source.seq) if source else None
        to_version = _version_number(target.registry_version, target.seq)
        rows += [
            ChangeRow(
                **_change_values(
                    c, record_id, run_id, target.id, from_version, to_version, now, True
                )
            )
            for c in changes
        ]
    return rows


def _by_step(rows: Sequence[ChangeRow], steps: Sequence[Sequence[Change]]) -> list[list[ChangeRow]]:
    grouped, start = [], 0
    for changes in steps:
        grouped.append(list(rows[start : start + len(changes)]))
        start += len(changes)
    return grouped


def _renumber_changes(session: Session, record_id: int) -> None:
    """Give every change of a record the version numbers its versions have now (after a
    backfill slotted earlier versions in, seq-based numbers moved)."""
    versions = session.execute(
        select(VersionRow.id, VersionRow.registry_version, VersionRow.seq)
        .where(VersionRow.record_id == record_id)
        .order_by(VersionRow.seq)
    ).all()
    ids = [version_id for version_id, _, _ in versions]
    numbers = [_version_number(registry_version, seq) for _, registry_version, seq in versions]
    number_of = dict(zip(ids, numbers, strict=True))
    previous_of = dict(zip(ids[1:], numbers, strict=False))
    for change in session.scalars(
        select(ChangeRow).where(
            ChangeRow.record_id == record_id, ChangeRow.to_version_id.is_not(None)
        )
    ):
        assert change.to_version_id is not None
        change.to_version = number_of.get(change.to_version_id, change.to_version)
        if change.kind != "record_added":
            change.from_version = previous_of.get(change.to_version_id, change.from_version)


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
        "old_field": change.old_field,
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
        old_field=row.old_field,
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
        served_id=record.served_id if record else None,
        backfill=record.backfill if record else None,
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
