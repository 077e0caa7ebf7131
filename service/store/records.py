"""Records and their versions: the watch list, what a sync needs to know of each record, a
new version stored with the changes that lead to it and their notifications (one transaction,
so a crash leaves either both or neither), first sightings in bulk, and reading versions back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Row, String, bindparam, cast, delete, func, select, tuple_, update
from sqlalchemy.orm import Session

from service.errors import StoreConflict, StoreError
from service.models import (
    Change,
    LinkedId,
    Route,
    Snapshot,
    StoredChange,
    VersionInfo,
    WatchInfo,
)
from service.store.base import StoreBase, _clash
from service.store.batches import insert_first_versions, insert_next_versions
from service.store.outbox import _queue
from service.store.rows import (
    _change_values,
    _raw_gz,
    _record,
    _stored_change,
    _version_number,
    links_of,
    listed_status,
    raw_json,
    refusal,
)
from service.store.tables import (
    RECORD_LINKS,
    RECORDS,
    VERSIONS,
    WATCHES,
    ChangeRow,
    RecordRow,
    VersionRow,
    WatchRow,
)

WATCH_PAGE = 1000  # watches a page of ``iter_watches``

# The watch list's columns: Core, not ORM objects (a page of 1,000 watches and records as ORM
# instances costs a one-shot ``watch list`` ~4× the time of their plain rows).
_WATCH_PAGE = (
    select(
        WATCHES.c.registry,
        WATCHES.c.study_id,
        WATCHES.c.tags,
        WATCHES.c.created_at,
        RECORDS.c.id.label("record_id"),
        RECORDS.c.title,
        RECORDS.c.overall_status,
        RECORDS.c.lifecycle,
        RECORDS.c.links,
        RECORDS.c.state,
        RECORDS.c.latest_seq,
        RECORDS.c.last_checked_at,
        RECORDS.c.last_changed_at,
        RECORDS.c.served_id,
        RECORDS.c.backfill,
    )
    .select_from(WATCHES)
    .outerjoin(
        RECORDS,
        (RECORDS.c.registry == WATCHES.c.registry) & (RECORDS.c.study_id == WATCHES.c.study_id),
    )
    .order_by(WATCHES.c.registry, WATCHES.c.study_id)
)


class NotFound(NamedTuple):
    """A watched id the registry said it never had: when first reported, when last asked."""

    reported_at: datetime
    checked_at: datetime


class RecordState(NamedTuple):
    """What a sync needs to know of a record before it looks at a fresh copy (a named tuple,
    not a frozen dataclass: every cycle makes one per watched record, 100,000 of them, and a
    frozen dataclass is built twice as slowly)."""

    record_id: int
    content_hash: str | None
    latest_seq: int
    latest_version: int | None  # registry number where known, else seq
    latest_registry_version: int | None
    state: str
    last_update_posted: str
    served_id: str | None = None  # the id the registry serves it under, if another
    # when the record was last fetched whole (registries without history: what their change
    # signal is read against); None: never, or before trialwatch kept it
    fetched_at: datetime | None = None


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
class NextVersion:
    """A stored record's next version: written only if ``after_seq`` is still its latest
    stored version, with the changes from that one, where they are to be notified and which
    were found by backfill."""

    version: NewVersion
    after_seq: int
    changes: Sequence[Change]
    routes: Sequence[Route] = ()
    historical: Sequence[bool] = ()


class RecordStore(StoreBase):
    """The watch list, records and their versions."""

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
            if added:
                # a record watched again was in no change signal meanwhile: fetched afresh
                session.execute(
                    update(RECORDS)
                    .where(RECORDS.c.registry == registry, RECORDS.c.study_id.in_(added))
                    .values(fetched_at=None)
                )
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

    def first_seen(self, registry: str, study_ids: Sequence[str]) -> dict[str, datetime]:
        """When each stored record of ``study_ids`` was first seen."""
        found: dict[str, datetime] = {}
        with self._session() as session:
            for start in range(0, len(study_ids), 500):
                rows = session.execute(
                    select(RECORDS.c.study_id, RECORDS.c.first_seen_at).where(
                        RECORDS.c.registry == registry,
                        RECORDS.c.study_id.in_(study_ids[start : start + 500]),
                    )
                )
                found.update((study_id, seen) for study_id, seen in rows)
        return found

    def tagged_watches(self, tag: str) -> list[tuple[str, str]]:
        """The (registry, study id) of every watch tagged ``tag`` (tags are JSON: filtered
        here, two short columns a watch)."""
        # The tag as the JSON text holds it, matched first by LIKE on that text: a store of
        # 600,000 watches decodes the few rows that can hold it, not every watch's tags (3 s).
        quoted = json.dumps(tag).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = select(WATCHES.c.registry, WATCHES.c.study_id, WATCHES.c.tags).where(
            cast(WATCHES.c.tags, String).like(f"%{quoted}%", escape="\\")
        )
        with self._session() as session:
            return sorted((r, s) for r, s, tags in session.execute(query) if tag in (tags or ()))

    def drop_tag(self, tag: str, keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Take ``tag`` off the watches of ``keys`` that have it; those it was taken off."""
        wanted = sorted(set(keys))
        dropped: list[tuple[str, str]] = []
        with self._session() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = session.scalars(
                    select(WatchRow).where(
                        tuple_(WatchRow.registry_key, WatchRow.study_id).in_(chunk)
                    )
                )
                for row in rows:
                    if tag in (row.tags or ()):
                        row.tags = [t for t in row.tags if t != tag]
                        dropped.append((row.registry_key, row.study_id))
        return sorted(dropped)

    def watch_count(self, registry: str) -> int:
        with self._session() as session:
            count = session.scalar(
                select(func.count()).select_from(WATCHES).where(WATCHES.c.registry == registry)
            )
        return int(count or 0)

    def watched_ids(self, registry: str) -> list[str]:
        query = (
            select(WATCHES.c.study_id)
            .where(WATCHES.c.registry == registry)
            .order_by(WATCHES.c.study_id)
        )
        with self._session() as session:
            return list(session.scalars(query))

    def watched_links(self) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """Each watched record that has a version: the registrations its latest version names
        ((registry, study id) → the (registry, study id) of each). Three columns a record: the
        trials are grouped from this before a snapshot is read."""
        # The links from ``record_links`` (a row a link, kept by the database from the JSON,
        # in the list's order), not by decoding every record's JSON: 600,000 records' worth
        # of json.loads was most of the time.
        return self._links_of(RECORDS.c.latest_seq > 0)

    def linked_watched_links(self) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """``watched_links`` of the records that name a registration or are named by one:
        every record of a trial registered more than once, and none of the records (most of
        a whole registry) that are a trial of their own. What a review of the trials that can
        disagree reads every cycle, instead of every record of the store."""
        records, links = RECORDS.c, RECORD_LINKS.c
        naming = select(links.record_id)
        named = select(records.id).join(
            RECORD_LINKS,
            (links.registry == records.registry) & (links.study_id == records.study_id),
        )
        return self._links_of(records.latest_seq > 0, records.id.in_(naming.union(named)))

    def _links_of(self, *conditions: Any) -> dict[tuple[str, str], list[tuple[str, str]]]:
        records, links = RECORDS.c, RECORD_LINKS.c
        query = (
            select(records.registry, records.study_id, links.registry, links.study_id)
            .join(
                WATCHES,
                (WATCHES.c.registry == records.registry) & (WATCHES.c.study_id == records.study_id),
            )
            .outerjoin(RECORD_LINKS, links.record_id == records.id)
            .where(*conditions)
            .order_by(records.id, links.id)
        )
        found: dict[tuple[str, str], list[tuple[str, str]]] = {}
        with self._session() as session:
            for registry, study_id, named_registry, named_id in session.execute(query):
                named = found.setdefault((registry, study_id), [])
                if named_id is not None:
                    named.append((named_registry, named_id))
        return found

    def list_watches(self) -> list[WatchInfo]:
        return list(self.iter_watches())

    def iter_watches(self, page_size: int = WATCH_PAGE) -> Iterator[WatchInfo]:
        """The watch list by registry and id, read ``page_size`` watches at a time (keyset on
        the watches' unique (registry, study_id) index, a short transaction a page): a whole
        registry's 600,000 watches are never all in memory, and the first rows print at once."""
        after: tuple[str, str] | None = None
        while True:
            query = _WATCH_PAGE.limit(page_size)
            if after is not None:
                query = query.where(tuple_(WATCHES.c.registry, WATCHES.c.study_id) > after)
            with self._session() as session:
                rows = session.execute(query).all()
            yield from map(_watch_info_row, rows)
            if len(rows) < page_size:
                return
            after = (rows[-1].registry, rows[-1].study_id)

    def watch_tags(self, registry: str, study_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        wanted = set(study_ids)
        query = select(WATCHES.c.study_id, WATCHES.c.tags).where(WATCHES.c.registry == registry)
        if len(wanted) <= 500:
            # a few records (a record's page, one sync step): read theirs, not all 100,000
            # rows' JSON; a whole watch list reads the lot once instead of in 200 batches
            query = query.where(WATCHES.c.study_id.in_(sorted(wanted)))
        with self._session() as session:
            rows = session.execute(query)
            return {sid: tuple(tags or ()) for sid, tags in rows if sid in wanted}

    # ---- ids the registry never had -------------------------------------------------------

    def not_found_watches(self, registry: str | None = None) -> dict[tuple[str, str], NotFound]:
        """The watches whose id the registry said it never had ((registry, id) → when first
        reported and last asked): a few rows, read by the cycle and the watch list."""
        columns = WATCHES.c
        query = select(
            columns.registry, columns.study_id, columns.not_found_at, columns.not_found_checked_at
        ).where(columns.not_found_at.is_not(None))
        if registry is not None:
            query = query.where(columns.registry == registry)
        with self._session() as session:
            return {
                (r, study_id): NotFound(first, last or first)
                for r, study_id, first, last in session.execute(query)
            }

    def mark_not_found(self, registry: str, study_ids: Sequence[str], now: datetime) -> None:
        """The registry said it does not have these ids now (first reported now, for those
        not reported before)."""
        if not study_ids:
            return
        columns = WATCHES.c
        with self._session() as session:
            for start in range(0, len(study_ids), 500):
                chunk = study_ids[start : start + 500]
                watched = (columns.registry == registry) & columns.study_id.in_(chunk)
                session.execute(update(WATCHES).where(watched).values(not_found_checked_at=now))
                session.execute(
                    update(WATCHES)
                    .where(watched, columns.not_found_at.is_(None))
                    .values(not_found_at=now)
                )

    def clear_not_found(self, registry: str, study_ids: Sequence[str]) -> None:
        """The registry serves these ids (again): no longer reported as never had."""
        if not study_ids:
            return
        columns = WATCHES.c
        with self._session() as session:
            for start in range(0, len(study_ids), 500):
                session.execute(
                    update(WATCHES)
                    .where(
                        columns.registry == registry,
                        columns.study_id.in_(study_ids[start : start + 500]),
                    )
                    .values(not_found_at=None, not_found_checked_at=None)
                )

    # ---- sync ----------------------------------------------------------------------------

    def record_states(self, registry: str, study_ids: Iterable[str]) -> dict[str, RecordState]:
        ids = list(study_ids)
        states: dict[str, RecordState] = {}
        # Plain columns of the table, not ORM objects nor ORM attributes: a whole-registry
        # watch list reads 100,000 rows here every cycle, and building (then discarding) a
        # mapped object per row tripled the cost; ORM attributes alone cost a one-shot sync
        # ~10 ms more (the ORM's compile step and result processing).
        columns = (
            RECORDS.c.study_id,
            RECORDS.c.id,
            RECORDS.c.content_hash,
            RECORDS.c.latest_seq,
            RECORDS.c.latest_registry_version,
            RECORDS.c.state,
            RECORDS.c.last_update_posted,
            RECORDS.c.served_id,
            RECORDS.c.fetched_at,
        )
        with self._session() as session:
            for rows in _states_rows(session, columns, registry, ids):
                for (
                    study_id,
                    record_id,
                    content_hash,
                    seq,
                    registry_version,
                    state,
                    posted,
                    served_id,
                    fetched_at,
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
                        fetched_at=fetched_at,
                    )
        return states

    def latest_snapshot(self, registry: str, study_id: str) -> Snapshot | None:
        return self.latest_snapshots(registry, [study_id]).get(study_id)

    def latest_snapshots(self, registry: str, study_ids: Sequence[str]) -> dict[str, Snapshot]:
        """The newest stored snapshot of each of ``study_ids`` that has a version."""
        records, versions = RECORDS.c, VERSIONS.c
        newest = (
            select(func.max(versions.seq))
            .where(versions.record_id == records.id)
            .correlate(RECORDS)
            .scalar_subquery()
        )
        found: dict[str, Snapshot] = {}
        with self._session() as session:
            for start in range(0, len(study_ids), 500):
                rows = session.execute(
                    select(records.study_id, versions.snapshot)
                    .join(VERSIONS, versions.record_id == records.id)
                    .where(
                        records.registry == registry,
                        records.study_id.in_(study_ids[start : start + 500]),
                        versions.seq == newest,
                    )
                )
                for study_id, snapshot_json in rows:
                    found[study_id] = Snapshot.model_validate_json(snapshot_json)
        return found

    def number_version(self, registry: str, study_id: str, seq: int, number: int) -> None:
        """Give version ``seq`` of a record, stored without its registry number (before the
        record's past was backfilled), the ``number`` gap filling found for it. A number
        another of its versions has already is left alone."""
        with self._session() as session:
            record = _record(session, registry, study_id)
            if record is None:
                return
            numbers = session.scalars(
                select(VersionRow.registry_version).where(VersionRow.record_id == record.id)
            )
            if number in set(numbers):
                return
            session.execute(
                update(VersionRow)
                .where(
                    VersionRow.record_id == record.id,
                    VersionRow.seq == seq,
                    VersionRow.registry_version.is_(None),
                )
                .values(registry_version=number)
            )
            if record.latest_seq == seq and record.latest_registry_version is None:
                record.latest_registry_version = number

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
        ``StoreConflict`` (or stores its version after the winner's, if it is another one).
        A value the database cannot hold raises ``StoreRefused``: that record's failure."""
        try:
            return self._save_version(version, changes, run_id, routes, historical)
        except StoreError as exc:
            if not _clash(exc):
                raise refusal(exc) from exc.__cause__
        try:
            return self._save_version(version, changes, run_id, routes, historical)
        except StoreError as exc:
            if not _clash(exc):
                raise refusal(exc) from exc.__cause__
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
        with self._session() as session:
            return insert_first_versions(session, sightings, run_id)

    def save_next_versions(
        self, registry: str, steps: Sequence[NextVersion], run_id: int | None
    ) -> list[list[StoredChange]]:
        """Store the next version of many stored records (a page's changed records), each
        with its changes and their notifications, all in one transaction: what
        ``save_version`` does for one, with one multi-row statement per table. Returns the
        stored changes, per step. If another process stored a version of any of them
        meanwhile, nothing is written and ``StoreConflict`` says so (store them one by one
        then: each settles its own conflict)."""
        if not steps:
            return []
        try:
            with self._session() as session:
                return insert_next_versions(session, registry, steps, run_id)
        except StoreConflict as exc:
            found = str(exc)
        except StoreError as exc:
            if not _clash(exc):
                raise
            found = "a version clashed with one stored at the same time"
        raise StoreConflict(
            f"{len(steps)} changed record(s): another process stored versions of some of them "
            f"meanwhile ({found}); nothing written"
        )

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
        records = RECORDS.c
        with self._session() as session:
            _update_records(session, registry, study_ids, last_checked_at=now, state="active")
            if moved_dates:
                # Core executemany: one statement for all, not one ORM round trip each
                session.connection().execute(
                    update(RECORDS)
                    .where(records.registry == registry, records.study_id == bindparam("sid"))
                    .values(last_update_posted=bindparam("posted")),
                    [{"sid": sid, "posted": date} for sid, date in moved_dates.items()],
                )

    def mark_fetched(self, registry: str, study_ids: Sequence[str], now: datetime) -> None:
        """Record that these records were fetched whole now (whatever was found in them)."""
        with self._session() as session:
            _update_records(session, registry, study_ids, fetched_at=now)

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

    # ---- reading versions back -----------------------------------------------------------

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
        return None if blob is None else raw_json(blob)


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
    record.overall_status = listed_status(snapshot)
    record.lifecycle = snapshot.lifecycle
    record.links = links_of(snapshot)
    record.state = "active"
    record.content_hash = version.content_hash
    record.latest_seq = version.seq
    record.latest_registry_version = version.registry_version
    record.last_update_posted = version.last_update_posted
    record.last_checked_at = now
    record.served_id = served_id
    if changed:
        record.last_changed_at = now


def _update_records(
    session: Session, registry: str, study_ids: Sequence[str], **values: Any
) -> None:
    """Set ``values`` on these records' rows: one statement per 500 ids."""
    for start in range(0, len(study_ids), 500):
        session.execute(
            update(RECORDS)
            .where(
                RECORDS.c.registry == registry,
                RECORDS.c.study_id.in_(study_ids[start : start + 500]),
            )
            .values(**values)
        )


WHOLE_READ = 5_000  # ids from which record_states reads the registry's records in one pass


def _states_rows(
    session: Session, columns: Sequence[Any], registry: str, ids: list[str]
) -> Iterator[Iterable[Row[Any]]]:
    """The rows of ``ids``' records: a statement per 500 ids for a few, one pass over the
    registry's records (those not asked for skipped here) for a whole watch list: 1,200
    statements of 500 bound ids each cost a 600,000-record cycle seconds of compiling."""
    if len(ids) < WHOLE_READ:
        for start in range(0, len(ids), 500):
            yield session.execute(
                select(*columns).where(
                    RECORDS.c.registry == registry,
                    RECORDS.c.study_id.in_(ids[start : start + 500]),
                )
            )
        return
    wanted = set(ids)
    rows = session.execute(select(*columns).where(RECORDS.c.registry == registry))
    yield (row for row in rows if row[0] in wanted)


def _watch_info_row(row: Row[Any]) -> WatchInfo:
    """A row of ``_WATCH_PAGE``: a watch and, where it was synced, its record's columns."""
    synced = row.record_id is not None
    return WatchInfo(
        registry=row.registry,
        study_id=row.study_id,
        tags=tuple(row.tags or ()),
        added_at=row.created_at,
        title=row.title or "",
        overall_status=row.overall_status or "",
        lifecycle=row.lifecycle or "",
        linked=tuple(LinkedId(**link) for link in (row.links or ())),
        state=row.state if synced else "never synced",
        versions=row.latest_seq if synced else 0,
        last_checked_at=row.last_checked_at,
        last_changed_at=row.last_changed_at,
        served_id=row.served_id,
        backfill=row.backfill,
    )


def _watch_info(watch: WatchRow, record: RecordRow | None) -> WatchInfo:
    return WatchInfo(
        registry=watch.registry_key,
        study_id=watch.study_id,
        tags=tuple(watch.tags or ()),
        added_at=watch.created_at,
        title=record.title if record else "",
        overall_status=record.overall_status if record else "",
        lifecycle=(record.lifecycle or "") if record else "",
        linked=tuple(LinkedId(**link) for link in (record.links or ())) if record else (),
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
