"""A page of records written in one transaction with one multi-row statement a table: the
first versions of records seen for the first time, and the next version of records already
stored. What ``RecordStore.save_version`` does for one record, for hundreds: a first load of
100,000 studies is 100 transactions, and a page of changed records one, not one each (its
ORM unit of work cost ~4 ms a record, most of a one-shot cycle's time after start-up).

Both take an open session and leave committing to it. Both raise ``StoreConflict`` (nothing
written, once the session rolls back) when another process got to a record first; the caller
then stores the records one by one, each settling its own conflict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.orm import Session

from service.errors import StoreConflict
from service.models import Change, StoredChange
from service.store.outbox import _queue
from service.store.rows import _change_values, _raw_gz, _version_number
from service.store.tables import ChangeRow, RecordRow, VersionRow

if TYPE_CHECKING:
    from service.store.base import Base
    from service.store.records import FirstSighting, NewVersion, NextVersion


def insert_first_versions(
    session: Session, sightings: Sequence[FirstSighting], run_id: int | None
) -> list[list[StoredChange]]:
    """Store new records, each with its one version, changes and notifications; returns the
    stored changes, per sighting."""
    hashes = [s.version.snapshot.content_hash() for s in sightings]
    connection = session.connection()
    records = [_new_record(s, h) for s, h in zip(sightings, hashes, strict=True)]
    record_ids = _insert_ids(connection, RecordRow, records)
    versions = [
        _version_values(s.version, record_id, 1, h)
        for s, record_id, h in zip(sightings, record_ids, hashes, strict=True)
    ]
    version_ids = _insert_ids(connection, VersionRow, versions)
    steps = [
        _Step(s.version, s.changes, s.historical, s.routes, record_id, version_id, None, 1)
        for s, record_id, version_id in zip(sightings, record_ids, version_ids, strict=True)
    ]
    return _insert_changes(session, steps, run_id)


def insert_next_versions(
    session: Session, registry: str, steps: Sequence[NextVersion], run_id: int | None
) -> list[list[StoredChange]]:
    """Store the next version of records already stored, each with its changes and their
    notifications; returns the stored changes, per step. A record whose latest version is no
    longer the one the step follows (another process stored one meanwhile), or whose
    registry version is stored already, raises ``StoreConflict``."""
    connection = session.connection()
    known = _latest(connection, registry, [s.version.snapshot.study_id for s in steps])
    _check_follows(connection, steps, known)
    hashes = [s.version.snapshot.content_hash() for s in steps]
    versions = [
        _version_values(s.version, known[s.version.snapshot.study_id].id, s.after_seq + 1, h)
        for s, h in zip(steps, hashes, strict=True)
    ]
    version_ids = _insert_ids(connection, VersionRow, versions)
    _advance_records(connection, steps, known, hashes)
    written = []
    for step, version_id in zip(steps, version_ids, strict=True):
        record = known[step.version.snapshot.study_id]
        from_version = _version_number(record.latest_registry_version, record.latest_seq)
        written.append(
            _Step(
                step.version,
                step.changes,
                step.historical,
                step.routes,
                record.id,
                version_id,
                from_version,
                step.after_seq + 1,
            )
        )
    return _insert_changes(session, written, run_id)


class _Step:
    """A version just inserted, with what its changes need to be stored."""

    __slots__ = (
        "changes",
        "from_version",
        "historical",
        "record_id",
        "routes",
        "to_version",
        "version",
        "version_id",
    )

    def __init__(
        self,
        version: NewVersion,
        changes: Sequence[Change],
        historical: Sequence[bool],
        routes: Sequence[Any],
        record_id: int,
        version_id: int,
        from_version: int | None,
        seq: int,
    ) -> None:
        self.version = version
        self.changes = changes
        self.historical = historical
        self.routes = routes
        self.record_id = record_id
        self.version_id = version_id
        self.from_version = from_version
        self.to_version = _version_number(version.registry_version, seq)

    def flag(self, index: int) -> bool:
        return bool(self.historical[index]) if index < len(self.historical) else False


def _insert_changes(
    session: Session, steps: Sequence[_Step], run_id: int | None
) -> list[list[StoredChange]]:
    """The steps' changes (one multi-row insert) and their notifications."""
    values = [
        _change_values(
            change,
            step.record_id,
            run_id,
            step.version_id,
            step.from_version,
            step.to_version,
            step.version.fetched_at,
            step.flag(index),
        )
        for step in steps
        for index, change in enumerate(step.changes)
    ]
    change_ids = iter(_insert_ids(session.connection(), ChangeRow, values))
    stored: list[list[StoredChange]] = []
    for step in steps:
        ids = [next(change_ids) for _ in step.changes]
        if step.routes:
            rows = [ChangeRow(id=change_id) for change_id in ids]
            _queue(session, step.record_id, rows, step.routes, step.version.fetched_at)
        stored.append(_stored_changes(step, ids))
    return stored


def _stored_changes(step: _Step, ids: list[int]) -> list[StoredChange]:
    return [
        StoredChange.trusted(  # the changes were validated when they were made
            **dict(change),
            id=change_id,
            detected_at=step.version.fetched_at,
            from_version=step.from_version,
            to_version=step.to_version,
            historical=step.flag(index),
        )
        for index, (change, change_id) in enumerate(zip(step.changes, ids, strict=True))
    ]


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


def _version_values(
    version: NewVersion, record_id: int, seq: int, content_hash: str
) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "seq": seq,
        "registry_version": version.registry_version,
        "content_hash": content_hash,
        "snapshot": version.snapshot.model_dump_json(),
        "raw_gz": _raw_gz(version.raw),
        "last_update_posted": version.last_update_posted,
        "fetched_at": version.fetched_at,
    }


def _latest(connection: Any, registry: str, study_ids: list[str]) -> dict[str, Row[Any]]:
    """Each stored record's id and latest version, as this transaction sees them."""
    table = RecordRow.__table__
    rows = connection.execute(
        select(
            table.c.study_id,
            table.c.id,
            table.c.latest_seq,
            table.c.latest_registry_version,
            table.c.content_hash,
            table.c.last_changed_at,
        ).where(table.c.registry == registry, table.c.study_id.in_(study_ids))
    )
    return {row.study_id: row for row in rows}


def _check_follows(
    connection: Any, steps: Sequence[NextVersion], known: dict[str, Row[Any]]
) -> None:
    """``StoreConflict`` unless every step follows its record's latest stored version and
    brings a registry version the record does not have yet."""
    for step in steps:
        record = known.get(step.version.snapshot.study_id)
        if record is None or record.content_hash is None or record.latest_seq != step.after_seq:
            raise StoreConflict(f"{step.version.snapshot.study_id} has a newer version")
    numbered = {
        (known[s.version.snapshot.study_id].id, s.version.registry_version): s
        for s in steps
        if s.version.registry_version is not None
    }
    if not numbered:
        return
    table = VersionRow.__table__
    stored = connection.execute(
        select(table.c.record_id, table.c.registry_version).where(
            table.c.record_id.in_(sorted({record_id for record_id, _ in numbered})),
            table.c.registry_version.in_(sorted({number for _, number in numbered})),
        )
    )
    clash = next((numbered[key] for row in stored if (key := tuple(row)) in numbered), None)
    if clash is not None:
        number = clash.version.registry_version
        raise StoreConflict(
            f"{clash.version.snapshot.study_id}: version {number} is stored already"
        )


def _advance_records(
    connection: Any, steps: Sequence[NextVersion], known: dict[str, Row[Any]], hashes: list[str]
) -> None:
    """Each record's row now describes its new latest version (one executemany)."""
    table = RecordRow.__table__
    statement = (
        update(table)
        .where(table.c.id == bindparam("rid"))
        .values(
            title=bindparam("new_title"),
            overall_status=bindparam("status"),
            state="active",
            content_hash=bindparam("hash"),
            latest_seq=bindparam("seq"),
            latest_registry_version=bindparam("number"),
            last_update_posted=bindparam("posted"),
            last_checked_at=bindparam("checked"),
            last_changed_at=bindparam("changed"),
            served_id=bindparam("served"),
        )
    )
    rows = []
    for step, content_hash in zip(steps, hashes, strict=True):
        version = step.version
        record = known[version.snapshot.study_id]
        rows.append(
            {
                "rid": record.id,
                "new_title": version.snapshot.title,
                "status": version.snapshot.overall_status,
                "hash": content_hash,
                "seq": step.after_seq + 1,
                "number": version.registry_version,
                "posted": version.last_update_posted,
                "checked": version.fetched_at,
                "changed": version.fetched_at if step.changes else record.last_changed_at,
                "served": version.served_id,
            }
        )
    connection.execute(statement, rows)
