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
import zlib
from collections.abc import Iterable, Iterator, Sequence
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
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from service.errors import StoreError
from service.models import Change, Snapshot, StoredChange, VersionInfo, WatchInfo

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


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


@dataclass(frozen=True)
class RecordState:
    """What a sync needs to know of a record before it looks at a fresh copy."""

    record_id: int
    content_hash: str | None
    latest_seq: int
    latest_version: int | None  # registry number where known, else seq
    state: str


@dataclass(frozen=True)
class NewVersion:
    """A fetched record to store as the next version of its study."""

    registry: str
    snapshot: Snapshot
    raw: dict[str, Any]
    registry_version: int | None
    last_update_posted: str
    fetched_at: datetime


def database_url(url: str) -> str:
    """psycopg 3 is the PostgreSQL driver trialwatch installs; plain URLs mean it."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
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
        with self._session() as session:
            for start in range(0, len(ids), 500):
                rows = session.scalars(
                    select(RecordRow).where(
                        RecordRow.registry_key == registry,
                        RecordRow.study_id.in_(ids[start : start + 500]),
                    )
                )
                for row in rows:
                    states[row.study_id] = RecordState(
                        record_id=row.id,
                        content_hash=row.content_hash,
                        latest_seq=row.latest_seq,
                        latest_version=_version_number(row.latest_registry_version, row.latest_seq),
                        state=row.state,
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
            text = session.scalar(query)
        return None if text is None else Snapshot.model_validate_json(text)

    def save_version(
        self, version: NewVersion, changes: Sequence[Change], run_id: int | None
    ) -> list[StoredChange]:
        """Store the next version of a record and the changes that lead to it, atomically."""
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
                raw_gz=zlib.compress(json.dumps(version.raw, sort_keys=True).encode(), 6),
                last_update_posted=version.last_update_posted,
                fetched_at=version.fetched_at,
            )
            session.add(row)
            session.flush()
            _advance_record(record, row, snapshot, version.fetched_at, changed=bool(changes))
            session.flush()
            to_version = _version_number(row.registry_version, row.seq)
            rows = [
                _change_row(
                    c, record.id, run_id, row.id, from_version, to_version, version.fetched_at
                )
                for c in changes
            ]
            session.add_all(rows)
            session.flush()
            return [_stored_change(r, record) for r in rows]

    def mark_checked(self, registry: str, study_ids: Sequence[str], now: datetime) -> None:
        """Record that these records were fetched and found the same (one statement a chunk)."""
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

    def mark_unavailable(
        self, registry: str, study_id: str, change: Change, now: datetime, run_id: int | None
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
            row = _change_row(change, record.id, run_id, None, version, None, now)
            session.add(row)
            session.flush()
            return _stored_change(row, record)

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
            run.status = "ok" if not report["failed"] else "partial"
            for key in ("checked", "new", "changed", "unchanged", "failed", "requests"):
                setattr(run, key, report[key])
            run.errors = report["errors"]

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

    def count_rows(self) -> dict[str, int]:
        tables = {
            "watches": WatchRow,
            "records": RecordRow,
            "record_versions": VersionRow,
            "changes": ChangeRow,
            "sync_runs": SyncRunRow,
        }
        with self._session() as session:
            return {
                name: session.scalar(select(func.count()).select_from(model)) or 0
                for name, model in tables.items()
            }


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _version_number(registry_version: int | None, seq: int) -> int:
    return registry_version if registry_version is not None else seq


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


def _change_row(
    change: Change,
    record_id: int,
    run_id: int | None,
    to_version_id: int | None,
    from_version: int | None,
    to_version: int | None,
    now: datetime,
) -> ChangeRow:
    return ChangeRow(
        record_id=record_id,
        sync_run_id=run_id,
        to_version_id=to_version_id,
        from_version=from_version,
        to_version=to_version,
        kind=change.kind,
        field=change.field,
        old=change.old,
        new=change.new,
        severity=change.severity,
        summary=change.summary,
        outcome_type=change.outcome_type,
        historical=False,
        detected_at=now,
    )


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
