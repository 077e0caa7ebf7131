"""Store: a page of fetched records normalised, diffed against what is stored and written, with
a verdict per record.

``new``: first sighting, stored with a ``record_added`` change; ``changed``: a new version
with at least one reportable change (or a record no longer served: ``record_unavailable``);
``unchanged``: the same content hash (no diff work), or a new version whose differences are
all cosmetic; ``failed``: the record does not normalise, is another study's, or could not be
stored (the cycle goes on).

A page's new records are stored in one transaction and its records' next versions in
another (a first load of the whole registry would otherwise be one transaction per study);
should that fail, each record is stored alone, so that one record's bug fails that record
only. A record with several versions since the last sync (gap filling) is stored version by
version at once. The report's changes keep the order the records were found in.

A watched id can come back as a record with another id (``filter.ids`` also matches
``nctIdAliases``): it is stored under the watched id when the watched id is among the
record's aliases (the id it was served under is kept), and refused as ``invalid`` otherwise
— an answer for another study is never stored as a version of the one asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from service.cycle.context import Cycle
from service.cycle.fetch import Page
from service.cycle.tally import Verdict
from service.diff import diff
from service.errors import RecordInvalid, StoreConflict, StoreError, StoreRefused
from service.history import StoredAnchor, Versions
from service.models import Change, Snapshot, StoredChange
from service.problems import Problem, Reason
from service.registry.catalog import normalise, record_meta, registry_info
from service.store import FirstSighting, NewVersion, NextVersion, RecordState, Store

log = logging.getLogger(__name__)

_Write = TypeVar("_Write", FirstSighting, NextVersion)  # a page's write, stored together


@dataclass
class Stored:
    """What storing a page did: each record's verdict and problems (for the tally), the
    changes found (stored, or only found on a dry run), the records whose findings are to be
    reviewed (study id → whether what it finds is historical: a first sighting's past), the
    records fetched whole and normalised (what a change signal is next read against), those
    found the same as stored (only marked checked: ``moved_dates`` when their posted date
    moved), and whether the cycle was told to stop before the page's end."""

    verdicts: dict[str, Verdict] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    to_review: dict[str, bool] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    moved_dates: dict[str, str] = field(default_factory=dict)
    stopped: bool = False

    def add(self, page: Stored, reviewed: Sequence[Change] = ()) -> None:
        """Fold a page (and the changes its review found) into what the cycle stored so far;
        its verdicts and problems are the tally's."""
        self.changes += page.changes
        self.changes += reviewed
        self.fetched += page.fetched
        self.checked += page.checked
        self.moved_dates.update(page.moved_dates)


def store_page(cycle: Cycle, page: Page, done: Container[str]) -> Stored:
    """Store a fetched page: its records (each watched id once, and none ``done`` already
    this cycle) and the ids the registry said it does not have. The cycle's stop is asked
    before each record."""
    writer = _Page(cycle, [study_id for study_id, _ in page.records if study_id is not None])
    out = writer.out
    for study_id, raw in page.records:
        if cycle.should_stop():
            out.stopped = True
            break
        if study_id is not None and study_id not in done and study_id not in out.verdicts:
            writer.record(study_id, raw)
    for study_id in page.missing:
        writer.missing(study_id)
    writer.flush()
    return out


def record_added(snapshot: Snapshot) -> Change:
    return Change(
        registry=snapshot.registry,
        study_id=snapshot.study_id,
        kind="record_added",
        field=registry_info(snapshot.registry).id_path,
        old=None,
        new=snapshot.study_id,
        severity="low",
        summary=f"Now watching: {snapshot.title}",
    )


def record_unavailable(registry: str, study_id: str) -> Change:
    return Change(
        registry=registry,
        study_id=study_id,
        kind="record_unavailable",
        field=registry_info(registry).id_path,
        old=study_id,
        new=None,
        severity="high",
        summary="Record no longer served by the registry (404)",
    )


def renumbered(store: Store, changes: list[Change], study_ids: list[str]) -> list[Change]:
    """``changes`` as stored now: a backfill slots versions in before the stored one, so the
    version numbers of the changes a cycle already reported for those records moved."""
    if not study_ids:
        return changes
    fresh = {c.id: c for study_id in study_ids for c in store.list_changes(study_id=study_id)}
    return [fresh.get(c.id, c) if isinstance(c, StoredChange) else c for c in changes]


def _study(write: FirstSighting | NextVersion) -> str:
    return write.version.snapshot.study_id


class _Page:
    """One page's writes, kept to be stored together (``flush``), and what it did (``out``)."""

    def __init__(self, cycle: Cycle, study_ids: list[str]) -> None:
        self.cycle = cycle
        self.out = Stored()
        self.pending: list[FirstSighting | NextVersion] = []
        # what the page's stored records are diffed against, in one read rather than one a
        # record (the records a cycle fetches are, mostly, the ones that changed)
        self.previous = self._stored_snapshots(study_ids)

    # ---------------------------------------------------------------- a record's verdict

    def record(self, study_id: str, raw: dict[str, Any]) -> None:
        version = self._version(study_id, raw)
        if version is None:
            return
        try:
            self._keep(study_id, version)
        except StoreConflict as exc:
            self._conflict(study_id, str(exc))
        except StoreRefused as exc:  # this record's data, not the store: the cycle goes on
            self._fail(study_id, f"{study_id}: not stored: {exc}", "internal")
        except StoreError:
            raise
        except Exception as exc:  # one study's bug must not stop the cycle
            log.exception("sync of %s failed", study_id)
            self._fail(study_id, f"{study_id}: internal error: {exc}", "internal")

    def _version(self, study_id: str, raw: dict[str, Any]) -> NewVersion | None:
        """The record as a version of the watched study, or None (and its failure)."""
        registry = self.cycle.registry
        try:
            snapshot = normalise(registry, raw)
            meta = record_meta(registry, raw)
        except RecordInvalid as exc:
            self._fail(study_id, f"{study_id}: {exc}", "invalid")
            return None
        self.out.fetched.append(study_id)
        served_id = None
        if snapshot.study_id != study_id:
            if study_id not in self.cycle.client.alias_ids(raw):
                message = (
                    f"{study_id}: the registry answered with {snapshot.study_id}, which does not "
                    f"list {study_id} among its aliases; nothing stored"
                )
                self._fail(study_id, message, "invalid")
                return None
            served_id = snapshot.study_id  # served under its new id: kept under the watched one
            snapshot = snapshot.model_copy(update={"study_id": study_id})
        return NewVersion(
            registry=registry,
            snapshot=snapshot,
            raw=raw,
            registry_version=meta.registry_version,
            last_update_posted=meta.last_update_posted[:10],  # the day (ISRCTN gives a time)
            fetched_at=self.cycle.clock(),
            served_id=served_id,
        )

    def _keep(self, study_id: str, current: NewVersion) -> None:
        state = self.cycle.states.get(study_id)
        if state is None:
            self._first_sighting(current)
            self.out.verdicts[study_id] = "new"
        elif state.content_hash == current.snapshot.content_hash():
            if state.last_update_posted != current.last_update_posted:
                self.out.moved_dates[study_id] = current.last_update_posted
            self.out.checked.append(study_id)
            self.out.verdicts[study_id] = "unchanged"
        elif state.content_hash is None:  # a record row without a version yet
            self._steps([current], None)
            if self.cycle.backfills and not self.cycle.dry_run:
                self.cycle.store.set_backfill(self.cycle.registry, study_id, "pending")
            self.out.verdicts[study_id] = "new"
        else:
            self._next(study_id, state, current)

    def _next(self, study_id: str, state: RecordState, current: NewVersion) -> None:
        """A stored record that moved: its new version, or every version published since the
        stored one (gap filling)."""
        cycle = self.cycle
        found = self._gap(study_id, state, current)
        if found.abandoned:
            # stopping: storing the current version alone would skip the gap's versions
            message = found.problem.message if found.problem else study_id
            self._fail(study_id, message, "registry")
            return
        if found.anchored is not None and not cycle.dry_run:
            cycle.store.number_version(cycle.registry, study_id, state.latest_seq, found.anchored)
        previous = self.previous.pop(study_id, None) or cycle.store.latest_snapshot(
            cycle.registry, study_id
        )
        if len(found.versions) == 1:  # the usual: stored with the rest of its page
            changed = self._keep_next_version(found.versions[0], previous, state.latest_seq)
        else:
            changed = self._steps(found.versions, previous)
        self.out.verdicts[study_id] = "changed" if changed else "unchanged"
        if found.problem is not None:
            self.out.problems.append(found.problem)

    def _gap(self, study_id: str, state: RecordState, current: NewVersion) -> Versions:
        if not self.cycle.settings.history:
            return Versions([current])
        assert state.content_hash is not None  # a stored version to go on from
        stored = StoredAnchor(
            state.latest_registry_version, state.last_update_posted, state.content_hash
        )
        return self.cycle.history.gap(study_id, stored, current)

    def missing(self, study_id: str) -> None:
        """A watched id the registry does not have: ``record_unavailable`` once for a stored
        record, ``not_found`` for one never stored."""
        cycle = self.cycle
        state = cycle.states.get(study_id)
        if state is None or state.content_hash is None:
            self._not_found(study_id)
            return
        if state.state == "unavailable":
            self.out.verdicts[study_id] = "unchanged"
            return
        self.flush()  # keeps the report's changes in the order found
        change = record_unavailable(cycle.registry, study_id)
        stored: Change | None = change
        if not cycle.dry_run:
            now = cycle.clock()
            routes = cycle.routes([change], [False], now)
            stored = cycle.store.mark_unavailable(
                cycle.registry, study_id, change, now, cycle.run_id, routes
            )
        if stored is not None:
            self.out.changes.append(stored)
        self.out.verdicts[study_id] = "changed"

    def _not_found(self, study_id: str) -> None:
        """A watched id never stored that the registry does not have: a failure the first
        time, with what to do; after that a warning (the cycle asks again only every
        ``not_found_retry_days``: a typo is not to fail every sync)."""
        hint = f"`trialwatch watch remove {study_id}` if the id is wrong"
        reported = self.cycle.not_found.get(study_id)
        if reported is None:
            days = self.cycle.settings.not_found_retry_days
            every = f"every {days} day{'s' if days != 1 else ''}" if days else "every cycle"
            message = f"{study_id}: not found in the registry: {hint} (asked again {every})"
            self._fail(study_id, message, "not_found")
            return
        since = reported.reported_at.date().isoformat()
        message = f"{study_id}: still not found in the registry (since {since}): {hint}"
        log.info("%s", message)
        self.out.verdicts[study_id] = "unchanged"
        self.out.problems.append(Problem.warning(study_id, message, "not_found"))

    def _fail(self, study_id: str, message: str, reason: Reason) -> None:
        log.warning("%s", message)
        self.out.verdicts[study_id] = "failed"
        self.out.problems.append(Problem.error(study_id, message, reason))

    def _conflict(self, study_id: str, message: str) -> None:
        """Another process stored this study's version first: nothing new here, nothing lost
        (a warning with reason ``conflict``, not a failure)."""
        log.info("%s", message)
        self.out.verdicts[study_id] = "unchanged"
        self.out.problems.append(Problem.warning(study_id, message, "conflict"))

    # ---------------------------------------------------------------- writes

    def _first_sighting(self, version: NewVersion) -> None:
        """A new record: kept to be stored with the rest of its page in one transaction,
        its past versions queued for the backfill."""
        changes = [record_added(version.snapshot)]
        if self.cycle.dry_run:
            self.out.changes.extend(changes)
            return
        routes = self.cycle.routes(changes, [False], version.fetched_at)
        backfill = self.cycle.backfills
        self.pending.append(FirstSighting(version, changes, routes, [False], backfill=backfill))

    def _keep_next_version(self, version: NewVersion, previous: Snapshot, after: int) -> bool:
        """A stored record's one new version (stored as version ``after``), kept to be stored
        with the rest of its page. True if any change."""
        changes = self._changes(previous, version.snapshot)
        if self.cycle.dry_run:
            self.out.changes.extend(changes)
        else:
            routes = self.cycle.routes(changes, [False] * len(changes), version.fetched_at)
            self.pending.append(NextVersion(version, after, changes, routes))
        return bool(changes)

    def _steps(self, versions: list[NewVersion], previous: Snapshot | None) -> bool:
        """Store ``versions`` in order now, each with its changes from the one before (the
        first from ``previous``; a first sighting ends with ``record_added``). True if any
        change."""
        cycle = self.cycle
        self.flush()  # keeps the report's changes in the order found
        first_sighting = previous is None
        any_change = False
        for i, version in enumerate(versions):
            changes = [] if previous is None else self._changes(previous, version.snapshot)
            if first_sighting and i == len(versions) - 1:
                changes.append(record_added(version.snapshot))
            any_change = any_change or bool(changes)
            previous = version.snapshot
            if cycle.dry_run:
                self.out.changes.extend(changes)
                continue
            flags = [False] * len(changes)  # gap filling's versions are news, not the past
            routes = cycle.routes(changes, flags, version.fetched_at)
            self.out.changes += cycle.store.save_version(
                version, changes, cycle.run_id, routes, flags
            )
        if versions and not cycle.dry_run:
            self.out.to_review[versions[-1].snapshot.study_id] = first_sighting
        return any_change

    def _changes(self, previous: Snapshot, current: Snapshot) -> list[Change]:
        """What changed, and what that means for the seeds that follow the record."""
        return diff(previous, current) + self.cycle.extra_changes(previous, current)

    def flush(self) -> None:
        """Store the writes kept so far: the new records in one transaction, the next
        versions in another; then the findings of the new records, from memory."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        store, registry, run_id = self.cycle.store, self.cycle.registry, self.cycle.run_id
        sightings = [w for w in pending if isinstance(w, FirstSighting)]
        steps = [w for w in pending if isinstance(w, NextVersion)]
        stored = self._together(sightings, lambda ws: store.save_first_versions(ws, run_id))
        stored |= self._together(steps, lambda ws: store.save_next_versions(registry, ws, run_id))
        reviewed = self.cycle.findings.review_first(
            [s.version for s in sightings if _study(s) in stored], run_id
        )
        found = reviewed.by_study()
        for write in pending:
            study_id = _study(write)
            changes = stored.get(study_id)
            if changes is None:  # failed, or another process's: the problems say so
                continue
            if isinstance(write, FirstSighting):
                changes = changes + found.get(study_id, [])
            else:
                self.out.to_review[study_id] = False
            self.out.changes.extend(changes)
        for problem in reviewed.failed:  # records of this page, stored: their failure
            self._fail(problem.study_id, problem.message, problem.reason)

    def _together(
        self,
        writes: Sequence[_Write],
        save_all: Callable[[Sequence[_Write]], list[list[StoredChange]]],
    ) -> dict[str, list[StoredChange]]:
        """``save_all`` of ``writes`` in one transaction: their changes by study. Should that
        fail, each is stored alone: one study's bug then fails that study only, and a record
        another process stored meanwhile gets a conflict warning or a version after theirs (a
        store that is down fails again on the first one, and that ends the cycle). Those that
        fail alone are left out."""
        if not writes:
            return {}
        try:
            stored = save_all(writes)
        except Exception as exc:
            if not isinstance(exc, StoreConflict):  # a conflict is another sync's work, no bug
                log.exception("storing %d records together failed; one by one", len(writes))
            alone = {_study(w): self._alone(w) for w in writes}
            return {study_id: changes for study_id, changes in alone.items() if changes is not None}
        return {_study(w): c for w, c in zip(writes, stored, strict=True)}

    def _alone(self, write: FirstSighting | NextVersion) -> list[StoredChange] | None:
        """``save_version`` of one write kept for the page's transaction, which failed; None
        (and the record's conflict or failure) if this fails too."""
        cycle = self.cycle
        study_id = _study(write)
        try:
            stored = cycle.store.save_version(
                write.version, write.changes, cycle.run_id, write.routes, write.historical
            )
        except StoreConflict as exc:
            self._conflict(study_id, str(exc))
            return None
        except StoreRefused as exc:
            self._fail(study_id, f"{study_id}: not stored: {exc}", "internal")
            return None
        except StoreError:
            raise
        except Exception as exc:
            log.exception("sync of %s failed", study_id)
            self._fail(study_id, f"{study_id}: internal error: {exc}", "internal")
            return None
        if isinstance(write, FirstSighting) and write.backfill:
            cycle.store.set_backfill(cycle.registry, study_id, "pending")
        return stored

    def _stored_snapshots(self, study_ids: list[str]) -> dict[str, Snapshot]:
        states = self.cycle.states
        stored = [i for i in study_ids if (state := states.get(i)) and state.content_hash]
        return self.cycle.store.latest_snapshots(self.cycle.registry, stored) if stored else {}
