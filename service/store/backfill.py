"""The history backfill queue.

A record seen for the first time is stored at once with its current version and queued here;
its past versions are fetched later, within a time budget per cycle, and slotted in before it
(the store's sequence renumbered), so a long watch list is live in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.models import Change, Route, Snapshot, StoredChange
from service.store.base import StoreBase
from service.store.outbox import _queue
from service.store.records import NewVersion
from service.store.rows import (
    _change_values,
    _raw_gz,
    _stored_change,
    _version_number,
    raw_json,
)
from service.store.tables import VERSIONS, ChangeRow, RecordRow, VersionRow
from service.text import storable


class BackfillQueue(StoreBase):
    """Records whose past versions are still to be fetched, and storing them when they are."""

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
                raw=raw_json(row.raw_gz),
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
                .values(
                    backfill=state,
                    backfill_error=None
                    if error is None
                    else storable(error),  # may quote the registry
                    backfill_after=after,
                )
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


def _shift_versions(session: Session, record_id: int, by: int) -> None:
    """Move a record's versions ``by`` places later in its sequence. Through negative
    numbers, so that no intermediate state breaks the unique (record, seq) constraint."""
    table = VERSIONS
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
