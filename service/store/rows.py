"""Row ↔ model conversions the families share: a change's columns and its stored form, the
version number a version shows, and finding a record's row."""

from __future__ import annotations

import json
import zlib
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from service.models import Change, StoredChange
from service.store.tables import ChangeRow, RecordRow


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
        detected_at=row.detected_at,
        from_version=row.from_version,
        to_version=row.to_version,
        historical=row.historical,
    )


def _raw_gz(raw: dict[str, Any]) -> bytes:
    # Compact separators: a fifth fewer bytes to compress, and the same JSON read back.
    return zlib.compress(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode(), 6)
