"""Transparency findings: a record's version chain as the rules read it, opening and
resolving findings with their change events and notifications in one transaction, and when a
record's date-dependent rules are next due."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.orm import Session

from service.errors import StoreError
from service.findings.stored import FindingInfo
from service.models import Change, Route, StoredChange
from service.store.base import StoreBase
from service.store.batches import Events, attach_events
from service.store.rows import _stored_change, _version_number, raw_json, refusal
from service.store.tables import (
    CHANGES,
    FINDINGS,
    RECORDS,
    VERSIONS,
    FindingRow,
    RecordRow,
)
from service.text import storable

if TYPE_CHECKING:  # annotations only: the rules (and what they import) load when a review runs
    from service.findings.rules import Finding


@dataclass(frozen=True)
class StoredVersion:
    """A stored version with what the transparency rules read of it."""

    number: int  # the registry's version number, else the store's sequence
    posted: str
    raw: dict[str, Any]
    changes: list[StoredChange]  # the changes that led into it


@dataclass(frozen=True)
class ReviewContext:
    """A stored record as a review of its findings reads it."""

    versions: list[StoredVersion]  # oldest first
    open: dict[str, FindingInfo]  # by rule
    due: str | None  # when its date-dependent rules are next due, yyyy-MM-dd


@dataclass(frozen=True)
class FindingUpdate:
    """What a review of a record's findings decided, to store in one transaction."""

    opened: Sequence[Finding]
    resolved: Sequence[str]  # rules
    changes: Sequence[Change]  # finding_opened / finding_resolved, in that order
    routes: Sequence[Route]
    historical: bool
    due: str | None  # the day date-dependent rules are next due, yyyy-MM-dd
    keep_due: bool = False  # a review of other rules (the trials'): the record's due day stands
    # open findings that still hold with another summary or detail: refreshed in place, their
    # opening day, severity and historical mark kept (no change event: see save_findings)
    updated: Sequence[Finding] = ()


class FindingStore(StoreBase):
    """Findings, and the versions they are read from."""

    def review_contexts(self, registry: str, study_ids: Sequence[str]) -> dict[str, ReviewContext]:
        """What a review of each of ``study_ids`` that is stored reads: every stored version,
        oldest first, with the changes into each; its open findings; when its rules are next
        due. One transaction, four queries per 500 records (a page of changed records is read
        together, not four queries each)."""
        found: dict[str, ReviewContext] = {}
        with self._session() as session:
            for start in range(0, len(study_ids), 500):
                records = session.execute(
                    select(
                        RECORDS.c.id,
                        RECORDS.c.registry.label("registry_key"),
                        RECORDS.c.study_id,
                        RECORDS.c.findings_due,
                    ).where(
                        RECORDS.c.registry == registry,
                        RECORDS.c.study_id.in_(study_ids[start : start + 500]),
                    )
                ).all()
                found.update(_review_contexts(session, records))
        return found

    def save_findings(
        self,
        registry: str,
        decided: Mapping[str, FindingUpdate],
        run_id: int | None,
        now: datetime,
    ) -> list[StoredChange]:
        """Open, refresh and resolve the findings of each record of ``decided`` (study id →
        what its review decided), with their change events and notifications, in one
        transaction; remember when each record's date-dependent rules are next due. A
        refreshed finding (``updated``: it still holds, for another reason or with other
        evidence) gets its new summary, detail, severity and source in place and no change
        event: the contract's change kinds are a closed vocabulary. Returns the change
        events, record by record in ``decided``'s order. A value the database cannot hold
        raises ``StoreRefused`` (nothing written)."""
        try:
            with self._session() as session:
                return _save_findings(session, registry, decided, run_id, now)
        except StoreError as exc:
            raise refusal(exc) from exc.__cause__

    def status_since(
        self, registry: str, study_ids: Sequence[str]
    ) -> dict[str, tuple[datetime, list[tuple[str, str]]]]:
        """For each stored record of ``study_ids``: when it was first seen, and its versions'
        (day, status) newest first — the day the registry posted the version, else the day
        trialwatch fetched it. The trials' findings read how long a status has stood."""
        found: dict[str, tuple[datetime, list[tuple[str, str]]]] = {}
        records, versions = RECORDS.c, VERSIONS.c
        with self._session() as session:
            for start in range(0, len(study_ids), 500):
                rows = session.execute(
                    select(
                        records.study_id,
                        records.first_seen_at,
                        versions.last_update_posted,
                        versions.fetched_at,
                        versions.snapshot,
                    )
                    .join(VERSIONS, versions.record_id == records.id)
                    .where(
                        records.registry == registry,
                        records.study_id.in_(study_ids[start : start + 500]),
                    )
                    .order_by(records.study_id, versions.seq.desc())
                )
                for study_id, first_seen, posted, fetched, snapshot in rows:
                    status = json.loads(snapshot).get("overall_status", "")
                    day = posted or fetched.date().isoformat()
                    found.setdefault(study_id, (first_seen, []))[1].append((day, status))
        return found

    def due_for_findings(self, registry: str, today: str) -> list[str]:
        """Records whose date-dependent rules are due for a look on ``today`` (yyyy-MM-dd)."""
        # The registry and the order are applied here, not in SQL: with either there, SQLite's
        # planner reads every record (by the (registry, study_id) index, or in id order: 30–200
        # ms at 100,000, each cycle) instead of the few whose findings_due has come.
        with self._session() as session:
            rows = session.execute(
                select(RecordRow.id, RecordRow.study_id, RecordRow.registry_key).where(
                    RecordRow.findings_due.is_not(None), RecordRow.findings_due <= today
                )
            )
            return [study_id for _, study_id, key in sorted(rows) if key == registry]

    def list_findings(
        self,
        *,
        only_open: bool = False,
        study_id: str | None = None,
        rule: str | None = None,
        registry: str | None = None,
    ) -> list[FindingInfo]:
        # Core columns, not ORM pairs: a store's tens of thousands of findings read in a
        # fraction of the time (what a one-shot `findings` waits for)
        query = select(
            *FINDINGS.c, RECORDS.c.registry.label("registry_key"), RECORDS.c.study_id
        ).join(RECORDS, RECORDS.c.id == FINDINGS.c.record_id)
        if only_open:
            query = query.where(FINDINGS.c.state == "open")
        if study_id:
            query = query.where(RECORDS.c.study_id == study_id)
        if registry:
            query = query.where(RECORDS.c.registry == registry)
        if rule:
            query = query.where(FINDINGS.c.rule == rule)
        query = query.order_by(RECORDS.c.study_id, FINDINGS.c.id)
        with self._session() as session:
            return [_finding_info(row, row) for row in session.execute(query)]


def _save_findings(
    session: Session,
    registry: str,
    decided: Mapping[str, FindingUpdate],
    run_id: int | None,
    now: datetime,
) -> list[StoredChange]:
    """What ``save_findings`` writes, with Core statements: a page's reviews (a first load
    opens findings for most of its records) in a few statements, not several a record."""
    connection = session.connection()
    records = {
        row.study_id: row
        for row in connection.execute(
            select(
                RECORDS.c.id,
                RECORDS.c.study_id,
                RECORDS.c.latest_seq,
                RECORDS.c.latest_registry_version,
            ).where(RECORDS.c.registry == registry, RECORDS.c.study_id.in_(list(decided)))
        )
    }
    kept = {study_id: d for study_id, d in decided.items() if study_id in records}
    if not kept:
        return []
    by_record = {records[study_id].id: d for study_id, d in kept.items()}
    _remember_due(connection, by_record, now)
    for record_id, d in by_record.items():
        if d.resolved:
            connection.execute(
                update(FINDINGS)
                .where(
                    FINDINGS.c.record_id == record_id,
                    FINDINGS.c.state == "open",
                    FINDINGS.c.rule.in_(d.resolved),
                )
                .values(state="resolved", resolved_at=now)
            )
    _refresh(connection, by_record)
    opened = [
        _finding_values(record_id, f, now, d.historical)
        for record_id, d in by_record.items()
        for f in d.opened
    ]
    if opened:
        connection.execute(insert(FINDINGS), opened)
    events = [
        Events(records[study_id], d.changes, d.historical, d.routes)
        for study_id, d in kept.items()
        if d.changes
    ]
    return [change for changes in attach_events(session, events, now, run_id) for change in changes]


def _refresh(connection: Any, decided: Mapping[int, FindingUpdate]) -> None:
    """The open findings that still hold, with their new text and evidence (one statement)."""
    refreshed = [
        {
            "rid": record_id,
            "rule_name": f.rule,
            "new_summary": storable(f.summary),
            "new_detail": storable(f.detail),
            "new_source": f.source,
            "new_severity": f.severity,
        }
        for record_id, d in decided.items()
        for f in d.updated
    ]
    if refreshed:
        connection.execute(
            update(FINDINGS)
            .where(
                FINDINGS.c.record_id == bindparam("rid"),
                FINDINGS.c.rule == bindparam("rule_name"),
                FINDINGS.c.state == "open",
            )
            .values(
                summary=bindparam("new_summary"),
                detail=bindparam("new_detail"),
                source=bindparam("new_source"),
                severity=bindparam("new_severity"),
            ),
            refreshed,
        )


def _remember_due(connection: Any, decided: Mapping[int, FindingUpdate], now: datetime) -> None:
    """Each record's next review day, and ``now`` as its last change where findings moved."""
    dues = [{"rid": rid, "due": d.due} for rid, d in decided.items() if not d.keep_due]
    if dues:
        connection.execute(
            update(RECORDS)
            .where(RECORDS.c.id == bindparam("rid"))
            .values(findings_due=bindparam("due")),
            dues,
        )
    moved = [{"rid": record_id} for record_id, d in decided.items() if d.changes]
    if moved:
        connection.execute(
            update(RECORDS).where(RECORDS.c.id == bindparam("rid")).values(last_changed_at=now),
            moved,
        )


def _finding_values(
    record_id: int, finding: Finding, now: datetime, historical: bool
) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "rule": finding.rule,
        "state": "open",
        "severity": finding.severity,
        "summary": storable(finding.summary),  # rules quote the raw record's text
        "detail": storable(finding.detail),
        "source": finding.source,
        "opened_at": now,
        "resolved_at": None,
        "historical": historical,
    }


def _finding_info(row: FindingRow | Row[Any], record: RecordRow | Row[Any]) -> FindingInfo:
    return FindingInfo(
        registry=record.registry_key,
        study_id=record.study_id,
        rule=row.rule,
        state=row.state,  # type: ignore[arg-type]
        opened_at=row.opened_at,
        resolved_at=row.resolved_at,
        severity=row.severity,  # type: ignore[arg-type]
        summary=row.summary,
        detail=row.detail or {},
        source=row.source,
        historical=row.historical,
    )


def _review_contexts(
    session: Session, records: Sequence[Row[Any]]
) -> Iterator[tuple[str, ReviewContext]]:
    """Read with Core statements: the ORM's compile step and mapped objects for a page's
    versions, changes and findings cost a one-shot sync ~15 ms more."""
    by_id = {record.id: record for record in records}
    ids = list(by_id)
    columns = VERSIONS.c
    # the columns the rules read, not the snapshots (a version's is ~10 KB of JSON)
    versions = session.execute(
        select(
            columns.record_id,
            columns.id,
            columns.registry_version,
            columns.seq,
            columns.last_update_posted,
            columns.raw_gz,
        )
        .where(columns.record_id.in_(ids))
        .order_by(columns.record_id, columns.seq)
    ).all()
    changes: dict[int, list[StoredChange]] = {}
    for row in session.execute(
        select(CHANGES).where(CHANGES.c.record_id.in_(ids)).order_by(CHANGES.c.id)
    ):
        if row.to_version_id is not None:
            stored = _stored_change(row, by_id[row.record_id])
            changes.setdefault(row.to_version_id, []).append(stored)
    chains: dict[int, list[StoredVersion]] = {record_id: [] for record_id in ids}
    for v in versions:
        chains[v.record_id].append(
            StoredVersion(
                _version_number(v.registry_version, v.seq),
                v.last_update_posted,
                raw_json(v.raw_gz),
                changes.get(v.id, []),
            )
        )
    # by the records alone: with the state too, SQLite's planner (no statistics) picks the
    # state index and reads every open finding of the store, ~25 ms at 100,000
    open_findings: dict[int, dict[str, FindingInfo]] = {record_id: {} for record_id in ids}
    for f in session.execute(
        select(FINDINGS).where(FINDINGS.c.record_id.in_(ids)).order_by(FINDINGS.c.id)
    ):
        if f.state == "open":
            open_findings[f.record_id][f.rule] = _finding_info(f, by_id[f.record_id])
    for record_id, record in by_id.items():
        context = ReviewContext(chains[record_id], open_findings[record_id], record.findings_due)
        yield record.study_id, context
