"""A page of records written in one transaction with one multi-row statement a table: the
first versions of records seen for the first time, and the next version of records already
stored. What ``RecordStore.save_version`` does for one record, for hundreds: a first load of
100,000 studies is 100 transactions, and a page of changed records one, not one each (stored
one by one through the ORM, 20 changed records cost a one-shot cycle ~30 ms more).

Both take an open session and leave committing to it. Both raise ``StoreConflict`` (nothing
written, once the session rolls back) when another process got to a record first; the caller
then stores the records one by one, each settling its own conflict."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.orm import Session

from service.errors import StoreConflict
from service.models import Change, Route, StoredChange
from service.store.outbox import _queue
from service.store.rows import (
    _change_values,
    _raw_gz,
    _version_number,
    links_of,
    listed_status,
    storable_change,
)
from service.store.tables import RECORDS, VERSIONS, ChangeRow, RecordRow, VersionRow

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
    batch = [
        _VersionChanges(
            record_id,
            version_id,
            None,
            _version_number(s.version.registry_version, 1),
            s.version.fetched_at,
            s.changes,
            s.historical,
            s.routes,
        )
        for s, record_id, version_id in zip(sightings, record_ids, version_ids, strict=True)
    ]
    return _insert_changes(session, batch, run_id)


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
    batch = []
    for step, version_id in zip(steps, version_ids, strict=True):
        record = known[step.version.snapshot.study_id]
        batch.append(
            _VersionChanges(
                record.id,
                version_id,
                _version_number(record.latest_registry_version, record.latest_seq),
                _version_number(step.version.registry_version, step.after_seq + 1),
                step.version.fetched_at,
                step.changes,
                step.historical,
                step.routes,
            )
        )
    return _insert_changes(session, batch, run_id)


class _VersionChanges(NamedTuple):
    """The changes into one stored version of a record, with what storing them needs."""

    record_id: int
    version_id: int | None  # None: a record with no stored version (yet)
    from_version: int | None
    to_version: int
    detected_at: datetime
    changes: Sequence[Change]
    historical: Sequence[bool] = ()
    routes: Sequence[Route] = ()

    def flag(self, index: int) -> bool:
        return bool(self.historical[index]) if index < len(self.historical) else False


def _insert_changes(
    session: Session, batch: Sequence[_VersionChanges], run_id: int | None
) -> list[list[StoredChange]]:
    """The changes of ``batch`` (one multi-row insert) and their notifications; returns the
    stored changes, per entry."""
    batch = [entry._replace(changes=list(map(storable_change, entry.changes))) for entry in batch]
    values = [
        _change_values(
            change,
            entry.record_id,
            run_id,
            entry.version_id,
            entry.from_version,
            entry.to_version,
            entry.detected_at,
            entry.flag(index),
        )
        for entry in batch
        for index, change in enumerate(entry.changes)
    ]
    change_ids = iter(_insert_ids(session.connection(), ChangeRow, values))
    stored: list[list[StoredChange]] = []
    for entry in batch:
        ids = [next(change_ids) for _ in entry.changes]
        if entry.routes:
            rows = [ChangeRow(id=change_id) for change_id in ids]
            _queue(session, entry.record_id, rows, entry.routes, entry.detected_at)
        stored.append(_stored_changes(entry, ids))
    return stored


class Events(NamedTuple):
    """Change events about a record that come from outside its versions (findings, saved
    searches), with where they are to be notified."""

    record: Any  # its row, ORM or Core: ``id``, ``latest_seq``, ``latest_registry_version``
    changes: Sequence[Change]
    historical: bool = False
    routes: Sequence[Route] = ()


def attach_events(
    session: Session, batch: Sequence[Events], now: datetime, run_id: int | None
) -> list[list[StoredChange]]:
    """Store each entry's events against its record's latest version (one multi-row insert)
    and queue their notifications; returns the stored changes, per entry."""
    latest = latest_version_ids(session.connection(), [e.record.id for e in batch])
    return _insert_changes(
        session,
        [
            _VersionChanges(
                e.record.id,
                latest.get(e.record.id),
                None,
                _version_number(e.record.latest_registry_version, e.record.latest_seq),
                now,
                e.changes,
                [e.historical] * len(e.changes),
                e.routes,
            )
            for e in batch
        ],
        run_id,
    )


def latest_version_ids(connection: Any, record_ids: list[int]) -> dict[int, int]:
    """The id of each record's newest stored version."""
    newest: dict[int, tuple[int, int]] = {}
    for record_id, seq, version_id in connection.execute(
        select(VERSIONS.c.record_id, VERSIONS.c.seq, VERSIONS.c.id).where(
            VERSIONS.c.record_id.in_(record_ids)
        )
    ):
        if record_id not in newest or seq > newest[record_id][0]:
            newest[record_id] = (seq, version_id)
    return {record_id: version_id for record_id, (_, version_id) in newest.items()}


def _stored_changes(entry: _VersionChanges, ids: list[int]) -> list[StoredChange]:
    return [
        StoredChange.trusted(  # the changes were validated when they were made
            **dict(change),
            id=change_id,
            detected_at=entry.detected_at,
            from_version=entry.from_version,
            to_version=entry.to_version,
            historical=entry.flag(index),
        )
        for index, (change, change_id) in enumerate(zip(entry.changes, ids, strict=True))
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
        "overall_status": listed_status(snapshot),
        "lifecycle": snapshot.lifecycle,
        "links": links_of(snapshot),
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
    table = RECORDS
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
    table = VERSIONS
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
    table = RECORDS
    statement = (
        update(table)
        .where(table.c.id == bindparam("rid"))
        .values(
            title=bindparam("new_title"),
            overall_status=bindparam("status"),
            lifecycle=bindparam("life"),
            links=bindparam("linked"),
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
                "status": listed_status(version.snapshot),
                "life": version.snapshot.lifecycle,
                "linked": links_of(version.snapshot),
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
