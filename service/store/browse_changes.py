"""Browsing change events and findings page by page, for the web app: filtered, newest first
(or oldest first), by keyset on the id, never by OFFSET, so page 2,000 of a store with a
million changes costs what page 1 does.

Record-level filters (a study, a watch tag, a seed, a saved search) restrict by a subquery of
record ids that the database runs itself: the filter never becomes a Python list of 100,000
ids. A tag is an element of the JSON list ``watches.tags``; SQLite looks inside it with
``json_each``, PostgreSQL with ``jsonb @>``.

``ChangeFilter.quiet`` leaves out what notifications leave out (first sightings, historical
changes): the web pages and the feed ask for it unless a reader asks for everything.
``last_finished_run`` is what a page's banner reads of the syncs run by other processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, cast, exists, func, literal, or_, select

from service.findings.stored import FindingInfo
from service.models import StoredChange
from service.store.base import StoreBase
from service.store.findings import _finding_info
from service.store.rows import _stored_change
from service.store.tables import (
    ChangeRow,
    FindingRow,
    RecordRow,
    SyncRunRow,
    VersionRow,
    WatchRow,
)

QUIET_KIND = "record_added"  # a first sighting: the notifications' quiet kind too


@dataclass(frozen=True)
class ChangeFilter:
    """Which changes to show; every field that is set must hold (None: no restriction; an
    empty tuple of kinds or severities allows none)."""

    study_id: str | None = None
    kinds: tuple[str, ...] | None = None
    severities: tuple[str, ...] | None = None
    since: datetime | None = None
    tags: tuple[str, ...] = ()  # watch tags, each required: "NAME", "seed:ID", "query:NAME"
    # leave out what notifications leave out: first sightings ("Now watching", unless their
    # kind is asked for) and the changes found in a record's past when it was first watched
    quiet: bool = False


@dataclass(frozen=True)
class BrowsedChange:
    """A change with what a list of changes shows beside it."""

    change: StoredChange
    title: str  # the record's title now
    # Whether the change's new version carries the registry's own version number, so that
    # its from/to numbers are the registry's and its side-by-side view can be linked.
    registry_versions: bool


@dataclass(frozen=True)
class BrowsedFinding:
    id: int  # the stored row's id: the key of the next page
    finding: FindingInfo
    title: str = ""  # the record's title now


@dataclass(frozen=True)
class FindingFilter:
    study_id: str | None = None
    rule: str | None = None
    state: str | None = None  # open | resolved


# the registries of one cycle run one after the other: runs this close are one cycle's
SAME_CYCLE = timedelta(hours=1)


@dataclass(frozen=True)
class FinishedRun:
    """The last finished sync run of any process: what a page's banner says of it."""

    finished_at: datetime
    status: str  # ok | partial | failed | interrupted
    checked: int
    failed: int
    error: str | None  # the first error it recorded, if any


class ChangeBrowser(StoreBase):
    """Pages of changes and findings for the web app."""

    def last_finished_run(self) -> FinishedRun | None:
        """The newest finished sync run (of any registry, any process), None before one. A run
        a stop cut short is passed over (a restart is not a failure); a failed run is the
        cycle's failure only when no other registry's run of that cycle (finished within
        ``SAME_CYCLE`` before it) went through: otherwise the cycle was partial."""
        finished = SyncRunRow.finished_at.is_not(None) & (SyncRunRow.status != "interrupted")
        query = select(SyncRunRow).where(finished).order_by(SyncRunRow.id.desc()).limit(1)
        with self._session() as session:
            run = session.scalar(query)
            if run is None or run.finished_at is None:
                return None
            status = run.status
            if status == "failed":
                others = session.scalar(
                    select(func.count(SyncRunRow.id)).where(
                        finished,
                        SyncRunRow.registry_key != run.registry_key,
                        SyncRunRow.status.in_(("ok", "partial")),
                        SyncRunRow.finished_at >= run.finished_at - SAME_CYCLE,
                    )
                )
                status = "partial" if others else status
            errors = [e.get("error") for e in run.errors or () if isinstance(e, dict)]
            error = next((str(e) for e in errors if e), None)
            return FinishedRun(run.finished_at, status, run.checked, run.failed, error)

    def changes_to_versions(
        self, registry: str, study_id: str, first_seq: int, last_seq: int
    ) -> list[StoredChange]:
        """The changes of a record that led to its versions ``first_seq`` … ``last_seq`` (the
        store's sequence, not the displayed number, which can repeat), oldest first: a
        record page's window of versions."""
        query = (
            select(ChangeRow, RecordRow)
            .join(RecordRow, RecordRow.id == ChangeRow.record_id)
            .join(VersionRow, VersionRow.id == ChangeRow.to_version_id)
            .where(
                RecordRow.registry_key == registry,
                RecordRow.study_id == study_id,
                VersionRow.seq.between(first_seq, last_seq),
            )
            .order_by(ChangeRow.id)
        )
        with self._session() as session:
            return [_stored_change(change, record) for change, record in session.execute(query)]

    def browse_changes(
        self,
        filters: ChangeFilter,
        *,
        after_id: int | None = None,
        limit: int,
        newest_first: bool = True,
    ) -> list[BrowsedChange]:
        """At most ``limit`` changes past ``after_id`` (the last id of the previous page) in
        the order asked for. Ask for one more than a page to learn whether another follows."""
        query = (
            select(ChangeRow, RecordRow, VersionRow.registry_version)
            .join(RecordRow, RecordRow.id == ChangeRow.record_id)
            .outerjoin(VersionRow, VersionRow.id == ChangeRow.to_version_id)
            .where(*self._change_conditions(filters))
        )
        if after_id is not None:
            past = ChangeRow.id < after_id if newest_first else ChangeRow.id > after_id
            query = query.where(past)
        order = ChangeRow.id.desc() if newest_first else ChangeRow.id.asc()
        query = query.order_by(order).limit(limit)
        with self._session() as session:
            return [
                BrowsedChange(_stored_change(change, record), record.title, number is not None)
                for change, record, number in session.execute(query)
            ]

    def _change_conditions(self, filters: ChangeFilter) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if filters.kinds is not None:
            conditions.append(ChangeRow.kind.in_(filters.kinds))
        if filters.severities is not None:
            conditions.append(ChangeRow.severity.in_(filters.severities))
        if filters.since is not None:
            conditions.append(ChangeRow.detected_at >= filters.since)
        if filters.quiet:
            conditions.append(ChangeRow.historical.is_(False))
            if filters.kinds is None or QUIET_KIND not in filters.kinds:
                conditions.append(ChangeRow.kind != QUIET_KIND)
        records = self._record_ids(filters.study_id, filters.tags)
        if records is not None:
            # a subquery, so the database can walk changes(record_id) for a rare record
            conditions.append(ChangeRow.record_id.in_(records))
        return conditions

    def _record_ids(self, study_id: str | None, tags: Sequence[str]) -> Select[Any] | None:
        """The ids of the records a study filter and watch tags select, as a subquery."""
        if study_id is None and not tags:
            return None
        query = select(RecordRow.id)
        if study_id is not None:
            query = query.where(RecordRow.study_id == study_id)
        if tags:
            watched = and_(
                WatchRow.registry_key == RecordRow.registry_key,
                WatchRow.study_id == RecordRow.study_id,
            )
            query = query.join(WatchRow, watched).where(*(self._tagged(tag) for tag in tags))
        return query

    def _tagged(self, tag: str) -> ColumnElement[bool]:
        """The watch's tags hold ``tag`` (an exact element, not a substring)."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB  # PostgreSQL's only

            return cast(WatchRow.tags, JSONB).contains([tag])
        element = func.json_each(WatchRow.tags).table_valued("value")
        return exists(select(literal(1)).select_from(element).where(element.c.value == tag))

    def browse_findings(
        self,
        filters: FindingFilter,
        *,
        after: tuple[str, int] | None = None,
        limit: int,
        backwards: bool = False,
    ) -> list[BrowsedFinding]:
        """Findings, open ones first (``open`` sorts before ``resolved``), newest first within
        each state; ``after`` is the (state, id) of the previous page's last finding.
        ``backwards``: the other way, from ``after`` back towards the first (a previous
        page, read in reverse)."""
        query = select(FindingRow, RecordRow).join(RecordRow, RecordRow.id == FindingRow.record_id)
        if filters.study_id is not None:
            query = query.where(RecordRow.study_id == filters.study_id)
        if filters.rule is not None:
            query = query.where(FindingRow.rule == filters.rule)
        if filters.state is not None:
            query = query.where(FindingRow.state == filters.state)
        if after is not None:
            state, last_id = after
            further = (
                or_(
                    FindingRow.state < state,
                    and_(FindingRow.state == state, FindingRow.id > last_id),
                )
                if backwards
                else or_(
                    FindingRow.state > state,
                    and_(FindingRow.state == state, FindingRow.id < last_id),
                )
            )
            query = query.where(further)
        order = (
            (FindingRow.state.desc(), FindingRow.id.asc())
            if backwards
            else (FindingRow.state.asc(), FindingRow.id.desc())
        )
        query = query.order_by(*order).limit(limit)
        with self._session() as session:
            return [
                BrowsedFinding(finding.id, _finding_info(finding, record), record.title)
                for finding, record in session.execute(query)
            ]
