"""Row ↔ model conversions the families share: a change's columns and its stored form, the
version number a version shows, finding a record's row, and telling a database that refused
one record's data from one that failed."""

from __future__ import annotations

import json
import zlib
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session

from service.errors import StoreError, StoreRefused
from service.models import Change, Snapshot, StoredChange
from service.store.tables import ChangeRow, RecordRow
from service.text import storable


def _record(session: Session, registry: str, study_id: str) -> RecordRow | None:
    return session.scalar(
        select(RecordRow).where(RecordRow.registry_key == registry, RecordRow.study_id == study_id)
    )


def _version_number(registry_version: int | None, seq: int) -> int:
    return registry_version if registry_version is not None else seq


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
    change = storable_change(change)
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
        "grade": change.grade,
        "historical": historical,
        "detected_at": now,
    }


def _stored_change(row: ChangeRow | Row[Any], record: RecordRow | Row[Any]) -> StoredChange:
    """A change row as the event it stores: an ORM row, or a Core row of the table's columns
    (its record's with ``registry`` read as ``registry_key``)."""
    return StoredChange.trusted(  # the store's own row: checked when it was written
        id=row.id,
        registry=record.registry_key,
        study_id=record.study_id,
        kind=row.kind,
        field=row.field,
        old=row.old,
        new=row.new,
        severity=row.severity,
        summary=row.summary,
        outcome_type=row.outcome_type,
        old_field=row.old_field,
        grade=row.grade,
        detected_at=row.detected_at,
        from_version=row.from_version,
        to_version=row.to_version,
        historical=row.historical,
    )


def _raw_gz(raw: dict[str, Any]) -> bytes:
    # Compact separators: a fifth fewer bytes to compress, and the same JSON read back.
    return zlib.compress(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode(), 6)


def storable_change(change: Change) -> Change:
    """``change`` with text every store can hold (no NUL, no lone surrogate): a change's text
    is mostly folded registry text already, but a finding or a seed quotes raw text."""
    old, new, summary = storable(change.old), storable(change.new), storable(change.summary)
    if old == change.old and new == change.new and summary == change.summary:
        return change
    return change.model_copy(update={"old": old, "new": new, "summary": summary})


def refusal(exc: StoreError) -> StoreError:
    """``exc`` as ``StoreRefused`` when the database answered and refused the data written
    (a value out of range or too long, text it cannot encode, a broken constraint that is not
    a race), else ``exc`` itself (down, locked, full: no record's fault)."""
    cause = exc.__cause__
    refused = isinstance(cause, DataError | IntegrityError) or (
        isinstance(cause, StatementError) and not isinstance(cause, DBAPIError)
    )
    if not refused or isinstance(exc, StoreRefused):
        return exc
    return StoreRefused(exc.message)


LISTED_STATUS_CHARS = 40  # records.overall_status: what listings show and filter on


def listed_status(snapshot: Snapshot) -> str:
    """The status a records row lists: the registry's own text, cut to the column (a trial
    whose countries disagree says so at length; its snapshot keeps all of it)."""
    status = snapshot.overall_status
    if len(status) <= LISTED_STATUS_CHARS:
        return status
    return status[: LISTED_STATUS_CHARS - 1].rstrip() + "…"


def links_of(snapshot: Snapshot) -> list[dict[str, str]]:
    return [link.model_dump() for link in snapshot.linked]
