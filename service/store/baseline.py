"""A registry's baseline, written as fast as the database takes it: the rows of each record
and its first version are built where the record is decoded (the bulk import's worker
processes: hashing, serialising the snapshot and compressing the raw record are most of the
cost), and written by one writer, a multi-row statement a table. What
``RecordStore.save_first_versions`` stores for records seen for the first time without
changes, split at the point where the work is done and the writing starts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select

from service.store.base import StoreBase
from service.store.batches import _insert_ids, _new_record, _version_values
from service.store.records import FirstSighting, NewVersion
from service.store.rows import PackedRaw, pack_raw
from service.store.tables import RECORDS, RecordRow, VersionRow


@dataclass(frozen=True)
class BaselineRows:
    """One record's rows, ready to write: the record (less its id) and its first version
    (less its record's id). Plain values: cheap to hand from one process to another."""

    study_id: str
    record: dict[str, Any]
    version: dict[str, Any]


def baseline_rows(version: NewVersion) -> BaselineRows:
    """The rows ``save_baseline`` writes for a record seen for the first time."""
    packed = replace(version, raw=PackedRaw(pack_raw(version.raw)))
    content_hash = version.snapshot.content_hash()
    return BaselineRows(
        version.snapshot.study_id,
        _new_record(FirstSighting(packed, []), content_hash),
        _version_values(packed, 0, 1, content_hash),
    )


def save_baseline(store: StoreBase, rows: Sequence[BaselineRows]) -> None:
    """Write the records and their first versions in one transaction. The records must not
    be in the store yet (``stored_ids``): one writer, so none can arrive meanwhile."""
    if not rows:
        return
    with store._session() as session:
        connection = session.connection()
        record_ids = _insert_ids(connection, RecordRow, [row.record for row in rows])
        versions = [
            {**row.version, "record_id": record_id}
            for row, record_id in zip(rows, record_ids, strict=True)
        ]
        _insert_ids(connection, VersionRow, versions)


def stored_ids(store: StoreBase, registry: str) -> set[str]:
    """The studies of ``registry`` the store has (600,000 ids: ~50 MB, one column read)."""
    query = select(RECORDS.c.study_id).where(RECORDS.c.registry == registry)
    with store._session() as session:
        return set(session.scalars(query))
