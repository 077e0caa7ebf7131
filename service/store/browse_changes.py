"""Browsing change events and findings page by page, for the web app: filtered, newest first
(or oldest first), by keyset on the id, never by OFFSET, so page 2,000 of a store with a
million changes costs what page 1 does.

Record-level filters (a study, a watch tag, a seed, a saved search) restrict by a subquery of
record ids that the database runs itself: the filter never becomes a Python list of 100,000
ids. A tag is an element of the JSON list ``watches.tags``; SQLite looks inside it with
``json_each``, PostgreSQL with ``jsonb @>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, cast, exists, func, literal, or_, select

from service.findings.stored import FindingInfo
from service.models import StoredChange
from service.store.base import StoreBase
from service.store.findings import _finding_info
from service.store.rows import _stored_change
from service.store.tables import ChangeRow, FindingRow, RecordRow, VersionRow, WatchRow


@dataclass(frozen=True)
class ChangeFilter:
    """Which changes to show; every field that is set must hold (None: no restriction; an
    empty tuple of kinds or severities allows none)."""

    study_id: str | None = None
    kinds: tuple[str, ...] | None = None
    severities: tuple[str, ...] | None = None
    since: datetime | None = None
    tags: tuple[str, ...] = ()  # watch tags, each required: "NAME", "seed:ID", "query:NAME"


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


@dataclass(frozen=True)
class FindingFilter:
    study_id: str | None = None
    rule: str | None = None
    state: str | None = None  # open | resolved


class ChangeBrowser(StoreBase):
    """Pages of changes and findings for the web app."""

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
    ) -> list[BrowsedFinding]:
        """Findings, open ones first (``open`` sorts before ``resolved``), newest first within
        each state; ``after`` is the (state, id) of the previous page's last finding."""
        query = select(FindingRow, RecordRow).join(RecordRow, RecordRow.id == FindingRow.record_id)
        if filters.study_id is not None:
            query = query.where(RecordRow.study_id == filters.study_id)
        if filters.rule is not None:
            query = query.where(FindingRow.rule == filters.rule)
        if filters.state is not None:
            query = query.where(FindingRow.state == filters.state)
        if after is not None:
            state, last_id = after
            query = query.where(
                or_(
                    FindingRow.state > state,
                    and_(FindingRow.state == state, FindingRow.id < last_id),
                )
            )
        query = query.order_by(FindingRow.state.asc(), FindingRow.id.desc()).limit(limit)
        with self._session() as session:
            return [
                BrowsedFinding(finding.id, _finding_info(finding, record))
                for finding, record in session.execute(query)
            ]
