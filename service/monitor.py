"""One sync cycle: fetch → normalise → diff → store, with a verdict per study.

Verdicts: ``new`` (first sighting: stored with a ``record_added`` change), ``changed`` (a new
version with at least one reportable change), ``unchanged`` (same content hash — no diff work —
or a new version whose differences are all cosmetic), ``failed`` (fetch or normalisation
failed; the cycle goes on). A version and its changes are committed together, study by study,
so an interrupted cycle keeps what it finished; records seen for the first time without a
history backfill are committed together a page at a time (a first load of the whole registry
would otherwise be one transaction per study). Their past versions are queued and fetched at
the end of the cycle within ``[ctgov] history_budget_seconds`` (``service.backfill``): a first
sync never waits on the slow history API.

``filter.ids`` also matches ``nctIdAliases``, so a watched id can come back as a record with
another id: it is stored under the watched id when the watched id is among the record's
aliases (the id it was served under is kept), and refused as ``invalid`` otherwise — an answer
for another study is never stored as a version of the one asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from service.backfill import BackfillRound, BackfillWorker
from service.clock import Clock, utcnow
from service.diff import diff
from service.errors import (
    RecordInvalid,
    RecordNotFound,
    RegistryError,
    RegistryUnavailable,
    StoreConflict,
    StoreError,
    StoreRefused,
)
from service.findings.keeper import FindingsKeeper, Reviewed
from service.history import HistoryFetcher, StoredAnchor, Versions
from service.models import Change, Route, Snapshot, StoredChange
from service.registry.base import Registry
from service.registry.catalog import normalise, record_meta, registry_info
from service.registry.source import Signal
from service.searches import Refresh, SavedSearches
from service.settings import CtgovSettings, FindingsSettings, SourceSettings, Subscription
from service.store import FirstSighting, NewVersion, NextVersion, RecordState, Store
from service.subscriptions import route
from service.text import storable

log = logging.getLogger(__name__)

_Write = TypeVar("_Write", FirstSighting, NextVersion)  # a page's write, stored together


def _study(write: FirstSighting | NextVersion) -> str:
    return write.version.snapshot.study_id


LISTING_PAGE = 1000  # records a page of the changed-since listing


@dataclass
class SyncReport:
    checked: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    requests: int = 0
    changes: list[Change] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    # the history API unavailable or drifted: {"study_id", "warning", "reason"}
    warnings: list[dict[str, str]] = field(default_factory=list)
    # the history backfill queue: records backfilled this cycle, failed, still pending
    backfill: dict[str, int] = field(default_factory=dict)
    # how the watch list was settled: {"mode": probe|listing|quiet, "registry_timestamp",
    # "since"} (no mode for a cycle over given ids only)
    cycle: dict[str, str] = field(default_factory=dict)
    registry: str = ""  # whose cycle this was (a merged report: the first one's)

    @classmethod
    def merged(cls, reports: Sequence[SyncReport]) -> SyncReport:
        """One report of the cycles of several registries (the first one's ``cycle`` on top,
        each registry's under ``cycle.registries`` when there are several)."""
        if len(reports) == 1:
            return reports[0]
        merged = cls()
        for report in reports:
            for name in ("checked", "new", "changed", "unchanged", "failed", "requests"):
                setattr(merged, name, getattr(merged, name) + getattr(report, name))
            merged.changes.extend(report.changes)
            merged.errors.extend(report.errors)
            merged.warnings.extend(report.warnings)
            for key, count in report.backfill.items():
                merged.backfill[key] = merged.backfill.get(key, 0) + count
        if reports:
            merged.cycle = dict(reports[0].cycle)
            merged.cycle["registries"] = {  # type: ignore[assignment]
                r.registry: {**r.cycle, "requests": r.requests} for r in reports
            }
        return merged

    def fail(self, study_id: str, message: str, reason: str) -> None:
        """``reason``: registry (unreachable, refused), invalid (the answer or the record does
        not parse: schema drift), not_found, internal."""
        self.failed += 1
        self.errors.append({"study_id": study_id, "error": message, "reason": reason})

    def to_json(self, *, changes: bool = True, lazy: bool = False) -> dict[str, Any]:
        """The ``sync --json`` document; ``changes=False`` leaves the changes out (what the
        store's ``sync_runs`` row keeps: a first load's 100,000 changes as JSON would be
        ~140 MB built for nothing); ``lazy`` makes each change's JSON only as a streaming
        encoder reaches it (``views.print_json``), never all of them at once."""
        document: dict[str, Any] = {
            "checked": self.checked,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "requests": self.requests,
        }
        if changes:
            document["changes"] = (
                LazyArray(self.changes, lambda change: change.to_json())
                if lazy
                else [change.to_json() for change in self.changes]
            )
        return document | {
            "errors": self.errors,
            "warnings": self.warnings,
            "backfill": self.backfill,
            "cycle": {**self.cycle, "requests": self.requests},
        }


class LazyArray(list):  # type: ignore[type-arg]
    """A JSON array whose items are made one at a time as ``json``'s streaming encoder
    (``iterencode``, which walks lists by iteration) reaches them. Empty as a Python list:
    only for documents that are encoded once and then dropped."""

    def __init__(self, items: Sequence[Any], convert: Callable[[Any], Any]) -> None:
        super().__init__()
        self._items, self._convert = items, convert

    def __iter__(self) -> Iterator[Any]:
        return (self._convert(item) for item in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)


# a time-precise change signal names an edit stamped this long before our fetch too: the
# registry's clock and ours may disagree by that much
SIGNAL_SKEW = timedelta(minutes=5)


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


class Monitor:
    """Runs sync cycles for one registry client over one store."""

    def __init__(
        self,
        store: Store,
        client: Registry,
        *,
        clock: Clock = utcnow,
        subscriptions: Sequence[Subscription] = (),
        settings: CtgovSettings | SourceSettings | None = None,
        extra_changes: Callable[[Snapshot, Snapshot], list[Change]] = lambda _old, _new: [],
        findings: FindingsSettings | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.clock = clock
        self.subscriptions = subscriptions
        self.settings = settings or CtgovSettings(history=False)
        self.history = HistoryFetcher(client, clock)
        # changes a new version causes beyond its own fields: publication-vs-registry
        # discrepancies of the seeds that follow the record
        self.extra_changes = extra_changes
        self.registry = client.registry
        self.findings = FindingsKeeper(
            store,
            findings or FindingsSettings(),
            registry=self.registry,
            clock=clock,
            router=self._event_routes,
        )
        self.searches = SavedSearches(
            store,
            client,
            clock=clock,
            max_matches=self.settings.max_query_matches,
            router=lambda study_id, changes: self._event_routes(study_id, changes, False),
        )
        self.backfiller = BackfillWorker(
            store,
            self.history,
            clock=clock,
            router=self._event_routes,
            extra_changes=extra_changes,
            findings=self.findings,
        )

    def _event_routes(self, study_id: str, changes: list[Change], historical: bool) -> list[Route]:
        """Where changes found outside a cycle's own diff go (findings, saved searches,
        backfills): like any change; historical ones only when [ctgov] notify_backfill."""
        if historical and not self.settings.notify_backfill:
            return []
        tags = self.store.watch_tags(self.registry, [study_id]).get(study_id, ())
        return route(self.subscriptions, changes, tags, self.clock())

    def work_backfills(
        self, budget_seconds: float | None = None, should_stop: Callable[[], bool] = lambda: False
    ) -> BackfillRound:
        """Fetch queued past versions (between cycles: the daemon calls this)."""
        budget = self.settings.history_budget_seconds if budget_seconds is None else budget_seconds
        return self.backfiller.work(budget, should_stop=should_stop)

    def sync(
        self,
        study_ids: Sequence[str] | None = None,
        *,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> SyncReport:
        """One cycle. ``should_stop`` is asked between studies; when it says yes, the cycle
        ends there, keeping every study it finished."""
        watched = self.store.watched_ids(self.registry)
        ids = list(study_ids) if study_ids is not None else watched
        cycle = _Cycle(self, ids, dry_run=dry_run, progress=progress, should_stop=should_stop)
        # a cycle over some ids only is no base for the next incremental one
        cycle.explicit = set(ids) != set(watched)
        return cycle.run()


class _Cycle:
    """The state of one sync cycle (kept off ``Monitor`` so cycles never share it)."""

    def __init__(
        self,
        monitor: Monitor,
        ids: list[str],
        *,
        dry_run: bool,
        progress: Callable[[int], None] | None,
        should_stop: Callable[[], bool],
    ) -> None:
        self.m = monitor
        self.should_stop = should_stop
        self.ids = ids
        self.dry_run = dry_run
        self.progress = progress or (lambda _done: None)
        self.report = SyncReport(checked=len(ids), registry=monitor.registry)
        self.states: dict[str, RecordState] = {}
        self._tags: dict[str, tuple[str, ...]] | None = None  # read when first routed
        self.done: set[str] = set()
        self.unchanged: list[str] = []
        self.moved_dates: dict[str, str] = {}  # unchanged content, but a new posted date
        self.pending: list[FirstSighting | NextVersion] = []  # a page's writes, not stored yet
        self.to_review: dict[str, bool] = {}  # stored records whose findings are to review
        self.previous: dict[str, Snapshot] = {}  # a page's stored snapshots, read together
        self.explicit = False  # asked for these ids only (not the whole watch list)
        self.searched = Refresh()  # what the saved searches found at the start
        self._registry_stamp: str | None = None
        self._stamp_asked = False
        self.served_as: dict[str, str] = {}  # the id an aliased record is served under → ours
        self.run_id: int | None = None
        self.verdicts: dict[str, str] = {}  # study id → what the report counted it as
        self.fetched: list[str] = []  # records fetched whole (and normalised) this cycle
        self.started = monitor.clock()

    def run(self) -> SyncReport:
        store, client = self.m.store, self.m.client
        requests_before = client.requests
        searchable = getattr(client, "searchable", True)
        if not self.explicit and not self.dry_run and searchable:
            self._refresh_searches()
        self.states = store.record_states(self.m.registry, self.ids)
        self.served_as = {s.served_id: i for i, s in self.states.items() if s.served_id}
        if not self.dry_run:
            self.run_id = store.start_run(self.m.clock())
        unseen: set[str] = set()
        if self.m.settings.probe:
            unseen = self._settle_unmoved()
        elif hasattr(client, "signal") and not self.explicit:
            self._settle_by_signal()
        self._fetch_batches([i for i in self.ids if i not in self.done and i not in unseen])
        for study_id in self.ids:
            if study_id not in self.done and not self.should_stop():
                self._fetch_one(study_id)
        self._store_pending()
        self._review_stored()
        self.report.checked = len(self.done)
        if self.fetched and not self.dry_run and hasattr(client, "signal"):
            # not one that failed after its fetch: its change is still to be seen
            seen = [i for i in self.fetched if self.verdicts.get(i) not in (None, "failed")]
            store.mark_fetched(self.m.registry, seen, self.started)
        if self.unchanged and not self.dry_run:
            store.mark_checked(self.m.registry, self.unchanged, self.m.clock(), self.moved_dates)
        if not self.dry_run and self._backfills():
            self._work_backfills()
        if not self.dry_run:
            due = self.m.findings.review_due(self.run_id, self.ids if self.explicit else None)
            self.report.changes.extend(due.changes)
            self._review_failed(due)
            if searchable:
                self.report.changes.extend(self.m.searches.events(self.searched, self.run_id))
        self.report.requests = client.requests - requests_before
        if self.run_id is not None:
            # errors quote what failed, which can be a record's text
            summary = storable(self.report.to_json(changes=False))
            # cut short by a stop: its failures are the stop's, not the registry's
            summary["interrupted"] = self.should_stop()
            store.finish_run(self.run_id, summary, self.m.clock())
        return self.report

    def _settle_unmoved(self) -> set[str]:
        """Settle the stored records that did not move, as cheaply as the registry allows:
        nothing at all when its data did not change (``quiet``), its changed-since listing
        when that is shorter than probing every watched id (``listing``), else the probe.
        Returns the ids to ask for one by one."""
        known = {
            study_id: state.last_update_posted
            for study_id, state in self.states.items()
            if state.content_hash and state.last_update_posted and state.state == "active"
        }
        if self._incremental(known):
            return set()
        if not self.explicit:
            self.report.cycle["mode"] = "probe"
        return self._probe(known)

    def _settle_by_signal(self) -> None:
        """A registry without history: ask its change signal once and settle every stored
        record it does not name as changed since the record was last fetched. Fetched anyway:
        records never fetched, those due for the weekly refetch (``full_refetch_days``), and
        those fetched before what the signal covers (EUCTR's feed: 7 days). A signal of a
        day's precision that names a record for the day of its last fetch cannot say whether
        the change came before or after that fetch: the record is fetched again."""
        settings = self.m.settings
        days = getattr(settings, "full_refetch_days", 7)
        due = self.started - timedelta(days=days)
        known = {
            study_id: state.fetched_at
            for study_id, state in self.states.items()
            if state.content_hash and state.state == "active"
            and state.fetched_at is not None and state.fetched_at > due
        }  # fmt: skip
        if not known:
            return
        try:
            signal: Signal = self.m.client.signal(min(known.values()))  # type: ignore[attr-defined]
        except RegistryError as exc:
            log.warning("%s change signal failed (%s): fetching every record", self.m.registry, exc)
            warning = f"change signal unavailable: {exc}; every record fetched"
            self.report.warnings.append({"study_id": "", "warning": warning, "reason": "registry"})
            return
        if signal.warning:
            log.warning("%s: %s", self.m.registry, signal.warning)
            self.report.warnings.append(
                {"study_id": "", "warning": signal.warning, "reason": "signal"}
            )
        self.report.cycle["mode"] = "signal"
        for study_id, fetched_at in known.items():
            covered = signal.covers_from is None or fetched_at >= signal.covers_from
            if study_id in self.done or not covered or _moved(signal, study_id, fetched_at):
                continue
            self.unchanged.append(study_id)
            self._count(study_id, "unchanged")
            self._finish(study_id)

    def _incremental(self, known: dict[str, str]) -> bool:
        """Settle ``known`` from the registry's data timestamp or changed-since listing;
        False when the probe must do it (no base cycle, the weekly full probe is due, the
        listing is longer than the probe, or the registry would not say)."""
        settings, client = self.m.settings, self.m.client
        if self.explicit or not settings.incremental:
            return False
        batch = max(1, client.batch_size())
        if len(self.ids) <= batch:
            return False  # one probe request: as cheap as asking, and it says more
        stamp = self._stamp()  # kept with this cycle even when it probes: the next one's base
        probes = -(-len(known) // batch)
        if stamp is None or probes <= 1:
            return False
        mark = self.m.store.last_cycle_mark()
        if mark is None or mark.cycles_since_probe + 1 >= settings.full_probe_every:
            return False
        if stamp == mark.registry_timestamp:
            self.report.cycle["mode"] = "quiet"
            self._settle_all(known, moved=set())
            return True
        overlap = timedelta(days=settings.listing_overlap_days)
        since = (mark.started_at.date() - overlap).isoformat()
        moved = self._listed_moves(known, since, probes)
        if moved is None:
            return False
        self.report.cycle.update(mode="listing", since=since)
        self._settle_all(known, moved)
        return True

    def _stamp(self) -> str | None:
        """The registry's data timestamp, asked once a cycle (None: it would not say)."""
        if not self._stamp_asked and self.m.settings.incremental:
            self._stamp_asked = True
            try:
                self._registry_stamp = self.m.client.data_timestamp()
                self.report.cycle["registry_timestamp"] = self._registry_stamp
            except RegistryError as exc:
                log.info("registry data timestamp unavailable (%s): probing every id", exc)
        return self._registry_stamp

    def _refresh_searches(self) -> None:
        """Saved searches first: the records they newly match are fetched in this cycle."""
        self.searched = self.m.searches.refresh(self._stamp)
        self.report.warnings.extend(self.searched.warnings)
        if self.searched.entered:
            self.ids = self.m.store.watched_ids(self.m.registry)
            self.report.checked = len(self.ids)

    def _listed_moves(self, known: dict[str, str], since: str, probes: int) -> set[str] | None:
        """The known records the registry lists as posted since ``since`` with another date;
        None when probing (``probes`` requests) is cheaper or the listing fails."""
        client = self.m.client
        try:
            listing = client.changed_since(since)
            pages = -(-listing.total // LISTING_PAGE)
            if pages - 1 > probes:  # the first page is spent either way
                log.info("%d records changed since %s: probing is cheaper", listing.total, since)
                return None
            moved = set()
            for page in listing.pages:
                for raw in page:
                    study_id = self._watched_id(raw, known)
                    if study_id is not None and client.posted_date(raw) != known[study_id]:
                        moved.add(study_id)
        except RegistryError as exc:
            log.warning("changed-since listing failed (%s): probing every watched id", exc)
            return None
        return moved

    def _settle_all(self, known: dict[str, str], moved: set[str]) -> None:
        for study_id in self.ids:
            if study_id in known and study_id not in moved and study_id not in self.done:
                self.unchanged.append(study_id)
                self._count(study_id, "unchanged")
                self._finish(study_id)

    def _probe(self, known: dict[str, str]) -> set[str]:
        """Ask for the last-update dates of the records already stored (a batch of ids a
        request, a few bytes per study) and settle those whose date has not moved. Returns the
        stored ids the registry did not return: they are asked for one by one (a 404 is
        ``record_unavailable``), not in a batch that would not return them either."""
        probed = [i for i in self.ids if i in known]
        returned: set[str] = set()
        for batch in self.m.client.probe(probed):
            if batch.error is not None:
                self._fail_batch(batch.requested, batch.error)
                continue
            for raw in batch.studies:
                study_id = self._watched_id(raw, known)
                returned.add(study_id or "")
                unmoved = study_id in known and self.m.client.posted_date(raw) == known[study_id]
                if unmoved and study_id not in self.done:
                    self.unchanged.append(study_id)
                    self._count(study_id, "unchanged")
                    self._finish(study_id)
        return {i for i in probed if i not in returned and i not in self.done}

    def _work_backfills(self) -> None:
        """Past versions of queued records, within the cycle's history budget."""
        budget = self.m.settings.history_budget_seconds
        ids = self.ids if self.explicit else None
        done = self.m.backfiller.work(
            budget, run_id=self.run_id, study_ids=ids, should_stop=self.should_stop
        )
        self._renumbered(done.studies)
        self.report.changes.extend(done.changes)
        self.report.warnings.extend(done.warnings)
        pending = self.m.store.backfill_counts(self.m.registry)["pending"]
        self.report.backfill = {"done": done.done, "failed": done.failed, "pending": pending}

    def _renumbered(self, study_ids: list[str]) -> None:
        """A backfill slots versions in before the stored one, so the version numbers of the
        changes this cycle already reported for those records (``record_added``) moved."""
        if not study_ids:
            return
        fresh = {
            c.id: c for study_id in study_ids for c in self.m.store.list_changes(study_id=study_id)
        }
        self.report.changes = [
            fresh.get(c.id, c) if isinstance(c, StoredChange) else c for c in self.report.changes
        ]

    def _fail_batch(self, study_ids: list[str], error: RegistryError) -> None:
        """A request for many records failed: each of them fails, in one line of the log (a
        registry that is down must not write a line per watched record)."""
        reason = "invalid" if isinstance(error, RecordInvalid) else "registry"
        failing = [i for i in study_ids if i not in self.done]
        if not failing:
            return
        more = f" and {len(failing) - 3:,} more" if len(failing) > 3 else ""
        log.warning("%s (not checked: %s%s)", error, ", ".join(failing[:3]), more)
        for study_id in failing:
            self.report.fail(study_id, str(error), reason)
            self._finish(study_id)

    def _fetch_batches(self, ids: list[str]) -> None:
        wanted = set(ids)
        for batch in self.m.client.iter_batches(ids):
            if batch.error is not None:
                self._fail_batch(batch.requested, batch.error)
                if isinstance(batch.error, RegistryUnavailable):
                    # every retry of that request failed: the registry is down (or the
                    # process stopping), and each later batch would wait out the same
                    # retries (a list of 10,000: most of an hour) to fail the same way
                    self._fail_batch(ids, batch.error)
                    return
                continue
            page = [(self._watched_id(raw, wanted), raw) for raw in batch.studies]
            self.previous = self._stored_snapshots([i for i, _ in page if i is not None])
            for study_id, raw in page:
                if self.should_stop():
                    self._store_pending()
                    self._review_stored()
                    return
                if study_id is not None and study_id not in self.done:
                    self._process(study_id, raw)
            self._store_pending()
            self._review_stored()

    def _stored_snapshots(self, study_ids: list[str]) -> dict[str, Snapshot]:
        """What a page's stored records are diffed against, in one read rather than one a
        record (the records a cycle fetches are, mostly, the ones that changed)."""
        stored = [i for i in study_ids if (state := self.states.get(i)) and state.content_hash]
        return self.m.store.latest_snapshots(self.m.registry, stored) if stored else {}

    def _fetch_one(self, study_id: str) -> None:
        """A watched id the batch did not return: ask for it alone (follows alias redirects)."""
        try:
            raw = self.m.client.fetch_study(study_id)
        except RecordNotFound:
            self._not_found(study_id)
            return
        except RegistryError as exc:
            reason = "invalid" if isinstance(exc, RecordInvalid) else "registry"
            self._failed(study_id, str(exc), reason)
            return
        self._process(study_id, raw)

    def _not_found(self, study_id: str) -> None:
        state = self.states.get(study_id)
        if state is None or state.content_hash is None:
            self._failed(study_id, f"{study_id}: not found in the registry", "not_found")
            return
        self._finish(study_id)
        if state.state == "unavailable":
            self._count(study_id, "unchanged")
            return
        self._store_pending()  # keeps the report's changes in the order found
        change = record_unavailable(self.m.registry, study_id)
        if self.dry_run:
            stored: Change | None = change
        else:
            now = self.m.clock()
            stored = self.m.store.mark_unavailable(
                self.m.registry,
                study_id,
                change,
                now,
                self.run_id,
                self._routes([change], [False], now),
            )
        if stored is not None:
            self.report.changes.append(stored)
        self._count(study_id, "changed")

    def _process(self, study_id: str, raw: dict[str, Any]) -> None:
        try:
            snapshot = normalise(self.m.registry, raw)
            meta = record_meta(self.m.registry, raw)
        except RecordInvalid as exc:
            self._failed(study_id, f"{study_id}: {exc}", "invalid")
            return
        self.fetched.append(study_id)
        served_id = None
        if snapshot.study_id != study_id:
            if study_id not in self.m.client.alias_ids(raw):
                message = (
                    f"{study_id}: the registry answered with {snapshot.study_id}, which does not "
                    f"list {study_id} among its aliases; nothing stored"
                )
                self._failed(study_id, message, "invalid")
                return
            served_id = snapshot.study_id  # served under its new id: kept under the watched one
            snapshot = snapshot.model_copy(update={"study_id": study_id})
        version = NewVersion(
            registry=self.m.registry,
            snapshot=snapshot,
            raw=raw,
            registry_version=meta.registry_version,
            last_update_posted=meta.last_update_posted[:10],  # the day (ISRCTN gives a time)
            fetched_at=self.m.clock(),
            served_id=served_id,
        )
        try:
            self._store(study_id, version)
        except StoreConflict as exc:
            self._conflict(study_id, str(exc))
        except StoreRefused as exc:  # this record's data, not the store: the cycle goes on
            self._failed(study_id, f"{study_id}: not stored: {exc}", "internal")
        except StoreError:
            raise
        except Exception as exc:  # one study's bug must not stop the cycle
            log.exception("sync of %s failed", study_id)
            self._failed(study_id, f"{study_id}: internal error: {exc}", "internal")

    def _store(self, study_id: str, current: NewVersion) -> None:
        state = self.states.get(study_id)
        if state is not None and state.content_hash == current.snapshot.content_hash():
            if state.last_update_posted != current.last_update_posted:
                self.moved_dates[study_id] = current.last_update_posted
            self.unchanged.append(study_id)
            self._count(study_id, "unchanged")
            self._finish(study_id)
            return
        if state is None:
            self._first_sighting(current)
            self._count(study_id, "new")
            self._finish(study_id)
            return
        if state.content_hash is None:  # a record row without a version yet
            self._store_steps([current], None, past=0)
            if self._backfills() and not self.dry_run:
                self.m.store.set_backfill(self.m.registry, study_id, "pending")
            self._count(study_id, "new")
            found = Versions([current])
        else:
            found = self._gap(study_id, state, current)
            if found.abandoned:  # stopping: storing the current version alone would skip the
                self._failed(study_id, found.warning or study_id, "registry")  # gap's versions
                return
            if found.anchored is not None and not self.dry_run:
                self.m.store.number_version(
                    self.m.registry, study_id, state.latest_seq, found.anchored
                )
            previous = self.previous.pop(study_id, None) or self.m.store.latest_snapshot(
                self.m.registry, study_id
            )
            if len(found.versions) == 1:  # the usual: stored with the rest of its page
                changed = self._keep_next_version(found.versions[0], previous, state.latest_seq)
            else:
                changed = self._store_steps(found.versions, previous, past=0)
            if changed:
                self._count(study_id, "changed")
            else:
                self._count(study_id, "unchanged")
        if found.warning:
            reason = found.reason
            self.report.warnings.append(
                {"study_id": study_id, "warning": found.warning, "reason": reason}
            )
        self._finish(study_id)

    def _backfills(self) -> bool:
        settings = self.m.settings
        return settings.history and settings.history_backfill

    def _first_sighting(self, version: NewVersion) -> None:
        """A new record: kept to be stored with the rest of its page in one transaction
        (``_store_first_sightings``), its past versions queued for the backfill."""
        changes = [record_added(version.snapshot)]
        if self.dry_run:
            self.report.changes.extend(changes)
            return
        routes = self._routes(changes, [False], version.fetched_at)
        sighting = FirstSighting(version, changes, routes, [False], backfill=self._backfills())
        self.pending.append(sighting)

    def _store_pending(self) -> None:
        """Store the page's writes kept so far: its new records in one transaction, its
        records' next versions in another. The report's changes keep the order the records
        were found in."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        store, registry, run_id = self.m.store, self.m.registry, self.run_id
        sightings = [w for w in pending if isinstance(w, FirstSighting)]
        steps = [w for w in pending if isinstance(w, NextVersion)]
        stored = self._together(sightings, lambda ws: store.save_first_versions(ws, run_id))
        stored |= self._together(steps, lambda ws: store.save_next_versions(registry, ws, run_id))
        reviewed = self.m.findings.review_first(
            [s.version for s in sightings if _study(s) in stored], self.run_id
        )
        found = reviewed.by_study()
        for write in pending:
            study_id = _study(write)
            changes = stored.get(study_id)
            if changes is None:  # failed, or another process's: the report says so
                continue
            if isinstance(write, FirstSighting):
                changes = changes + found.get(study_id, [])
            else:
                self.to_review[study_id] = False
            self.report.changes.extend(changes)
        self._review_failed(reviewed)

    def _together(
        self,
        writes: Sequence[_Write],
        save_all: Callable[[Sequence[_Write]], list[list[StoredChange]]],
    ) -> dict[str, list[StoredChange]]:
        """``save_all`` of ``writes`` in one transaction: their changes by study. Should that
        fail, each is stored alone: one study's bug then fails that study only, and a record
        another process stored meanwhile gets a conflict warning or a version after theirs (a
        store that is down fails again on the first one, and that ends the cycle as before).
        Those that fail alone are left out."""
        if not writes:
            return {}
        try:
            stored = save_all(writes)
        except Exception as exc:
            if not isinstance(exc, StoreConflict):  # a conflict is another sync's work, no bug
                log.exception("storing %d records together failed; one by one", len(writes))
            alone = {_study(w): self._store_alone(w) for w in writes}
            return {study_id: changes for study_id, changes in alone.items() if changes is not None}
        return {_study(w): c for w, c in zip(writes, stored, strict=True)}

    def _store_alone(self, write: FirstSighting | NextVersion) -> list[StoredChange] | None:
        """``save_version`` of one write kept for a page's transaction, which failed; None
        (and the study's warning or failure in the report) if this fails too."""
        version = write.version
        study_id = version.snapshot.study_id
        try:
            stored = self.m.store.save_version(
                version, write.changes, self.run_id, write.routes, write.historical
            )
        except StoreConflict as exc:
            self._uncount(study_id)
            self._conflict(study_id, str(exc))
            return None
        except StoreRefused as exc:
            self._uncount(study_id)
            self._failed(study_id, f"{study_id}: not stored: {exc}", "internal")
            return None
        except StoreError:
            raise
        except Exception as exc:
            log.exception("sync of %s failed", study_id)
            self._uncount(study_id)
            self._failed(study_id, f"{study_id}: internal error: {exc}", "internal")
            return None
        if isinstance(write, FirstSighting) and write.backfill:
            self.m.store.set_backfill(self.m.registry, study_id, "pending")
        return stored

    def _count(self, study_id: str, verdict: str) -> None:
        """Count a study as ``new``, ``changed`` or ``unchanged`` (remembered: a study whose
        write or findings review fails later is moved to ``failed``)."""
        setattr(self.report, verdict, getattr(self.report, verdict) + 1)
        self.verdicts[study_id] = verdict

    def _uncount(self, study_id: str) -> None:
        """A study the report counted as new, changed or unchanged that failed after all."""
        verdict = self.verdicts.pop(study_id, None)
        if verdict is not None:
            setattr(self.report, verdict, getattr(self.report, verdict) - 1)

    def _gap(self, study_id: str, state: RecordState, current: NewVersion) -> Versions:
        if not self.m.settings.history:
            return Versions([current])
        assert state.content_hash is not None  # a stored version to go on from
        stored = StoredAnchor(
            state.latest_registry_version, state.last_update_posted, state.content_hash
        )
        return self.m.history.gap(study_id, stored, current)

    def _store_steps(
        self, versions: list[NewVersion], previous: Snapshot | None, *, past: int
    ) -> bool:
        """Store ``versions`` in order, each with its changes from the one before (the first
        from ``previous``; a first sighting ends with ``record_added``). Changes into the
        first ``past`` versions are historical (found by backfill). True if any change."""
        self._store_pending()  # keeps the report's changes in the order found
        first_sighting = previous is None
        any_change = False
        for i, version in enumerate(versions):
            changes = []
            if previous is not None:
                changes = self._changes(previous, version.snapshot)
            flags = [i < past] * len(changes)
            if first_sighting and i == len(versions) - 1:
                changes.append(record_added(version.snapshot))
                flags.append(False)
            any_change = any_change or bool(changes)
            previous = version.snapshot
            if self.dry_run:
                self.report.changes.extend(changes)
                continue
            routes = self._routes(changes, flags, version.fetched_at)
            stored = self.m.store.save_version(version, changes, self.run_id, routes, flags)
            self.report.changes.extend(stored)
        if versions and not self.dry_run:
            self.to_review[versions[-1].snapshot.study_id] = first_sighting
        return any_change

    def _keep_next_version(self, version: NewVersion, previous: Snapshot, after: int) -> bool:
        """A stored record's one new version (stored as version ``after``), kept to be stored
        with the rest of its page (``_store_pending``). True if any change."""
        changes = self._changes(previous, version.snapshot)
        if self.dry_run:
            self.report.changes.extend(changes)
        else:
            routes = self._routes(changes, [False] * len(changes), version.fetched_at)
            self.pending.append(NextVersion(version, after, changes, routes))
        return bool(changes)

    def _changes(self, previous: Snapshot, current: Snapshot) -> list[Change]:
        """What changed, and what that means for the seeds that follow the record."""
        return diff(previous, current) + self.m.extra_changes(previous, current)

    def _review_stored(self) -> None:
        """Review the findings of the records stored since the last review, together (a page
        of changed records is read in a few queries, not a few each)."""
        to_review, self.to_review = self.to_review, {}
        reviewed = self.m.findings.review_many(to_review, self.run_id)
        self.report.changes.extend(reviewed.changes)
        self._review_failed(reviewed)

    def _review_failed(self, reviewed: Reviewed) -> None:
        """Records whose findings review failed: a record this cycle counted is that
        record's failure (its version is stored; its findings are looked at again the next
        day). A record only due for its review (not checked this cycle, or failed already)
        is a warning, so that ``failed`` stays a part of ``checked``."""
        for study_id, message in reviewed.failed.items():
            log.warning("%s", message)
            if study_id in self.verdicts:
                self._uncount(study_id)
                self.report.fail(study_id, message, "internal")
            else:
                warning = {"study_id": study_id, "warning": message, "reason": "internal"}
                self.report.warnings.append(warning)

    def _routes(self, changes: list[Change], historical: list[bool], now: datetime) -> list[Route]:
        """Where ``changes`` are to be notified; changes found by backfill only when the
        settings ask for it."""
        if not changes:
            return []
        tags = self._watch_tags(changes[0].study_id)
        routes = route(self.m.subscriptions, changes, tags, now)
        if self.m.settings.notify_backfill or not any(historical):
            return routes
        kept = []
        for r in routes:
            indexes = tuple(i for i in r.change_indexes if not historical[i])
            if indexes:
                kept.append(r.model_copy(update={"change_indexes": indexes}))
        return kept

    def _watch_tags(self, study_id: str) -> tuple[str, ...]:
        """The tags of a watched record, for subscriptions that select by tag: read for the
        whole watch list when the cycle first routes a change (a quiet cycle never does)."""
        if not self.m.subscriptions:
            return ()
        if self._tags is None:
            self._tags = self.m.store.watch_tags(self.m.registry, self.ids)
        return self._tags.get(study_id, ())

    def _failed(self, study_id: str, message: str, reason: str) -> None:
        log.warning("%s", message)
        self.report.fail(study_id, message, reason)
        self._finish(study_id)

    def _conflict(self, study_id: str, message: str) -> None:
        """Another process stored this study's version first: nothing new here, nothing lost
        (a warning with reason ``conflict``, not a failure)."""
        log.info("%s", message)
        self._count(study_id, "unchanged")
        warning = {"study_id": study_id, "warning": message, "reason": "conflict"}
        self.report.warnings.append(warning)
        self._finish(study_id)

    def _finish(self, study_id: str) -> None:
        self.done.add(study_id)
        self.progress(len(self.done))

    def _watched_id(self, raw: dict[str, Any], watched: Collection[str]) -> str | None:
        """The watched id a returned record answers for: its own, one of its aliases, or the
        one we know it is served for (a probe's answer carries no aliases)."""
        client = self.m.client
        study_id = client.returned_id(raw)
        if study_id in watched:
            return study_id
        alias = next((a for a in client.alias_ids(raw) if a in watched), None)
        served_for = self.served_as.get(study_id or "")
        if alias is None and served_for in watched:
            alias = served_for
        return alias


def _moved(signal: Signal, study_id: str, fetched_at: datetime) -> bool:
    """Whether ``signal`` names a change to a record fetched at ``fetched_at`` that the fetch
    may not have seen (see ``_Cycle._settle_by_signal``)."""
    stamp = signal.stamps.get(study_id)
    if stamp is None:
        return False
    if signal.precision == "day":
        return stamp[:10] >= fetched_at.date().isoformat()
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return True  # a stamp we cannot read: fetch rather than miss a change
    if when.tzinfo is None:
        when = when.replace(tzinfo=fetched_at.tzinfo)
    return when >= fetched_at - SIGNAL_SKEW
