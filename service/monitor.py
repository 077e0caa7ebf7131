"""One sync cycle of one registry: settle → fetch → store → review (``service.cycle``), with a
verdict per study kept in one tally, from which the report's counts are derived.

A version and its changes are committed together (a page of records at a time), so an
interrupted cycle keeps what it finished. New records' past versions are queued and fetched
at the end of the cycle within ``[ctgov] history_budget_seconds`` (``service.backfill``): a
first sync never waits on the slow history API. Saved searches are refreshed first, so that
the records they newly match are fetched in the same cycle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from service.backfill import BackfillRound, BackfillWorker
from service.clock import Clock, utcnow
from service.cycle.context import Cycle, Routes
from service.cycle.fetch import Page, failed_request, in_batches, one_by_one
from service.cycle.result import LazyArray, SyncReport
from service.cycle.review import review_due, review_stored
from service.cycle.settle import RegistryStamp, settle
from service.cycle.store import Stored, renumbered, store_page
from service.cycle.tally import Tally
from service.findings.keeper import FindingsKeeper
from service.history import HistoryFetcher
from service.models import Change, Route, Snapshot
from service.registry.base import Registry
from service.searches import Refresh, SavedSearches
from service.settings import CtgovSettings, FindingsSettings, SourceSettings, Subscription
from service.store import NotFound, Store
from service.subscriptions import route
from service.text import storable

__all__ = ["LazyArray", "Monitor", "SyncReport"]


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
        self._unfinished: list[tuple[Cycle, SyncReport]] = []
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
            router=self.event_routes,
        )
        self.searches = SavedSearches(
            store,
            client,
            clock=clock,
            max_matches=self.settings.max_query_matches,
            router=lambda study_id, changes: self.event_routes(study_id, changes, False),
        )
        self.backfiller = BackfillWorker(
            store,
            self.history,
            clock=clock,
            router=self.event_routes,
            extra_changes=extra_changes,
            findings=self.findings,
        )

    def event_routes(self, study_id: str, changes: list[Change], historical: bool) -> list[Route]:
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
        finish: bool = True,
    ) -> SyncReport:
        """One cycle. ``should_stop`` is asked between studies; when it says yes, the cycle
        ends there, keeping every study it finished. ``finish=False``: the run stays
        ``running`` (its messages held) until ``finish_runs()``, so that what the caller adds
        after it (the trials' findings) travels in the same messages."""
        requests_before = self.client.requests
        watched = self.store.watched_ids(self.registry)
        ids = list(study_ids) if study_ids is not None else watched
        # a cycle over some ids only is no base for the next incremental one
        explicit = set(ids) != set(watched)
        started = self.clock()  # what a change signal is next read against
        tally = Tally(progress)
        stamp = RegistryStamp(self.client, self.settings.incremental)
        searched = Refresh()
        if not explicit and not dry_run and self._searchable:
            searched, ids = self._refresh_searches(stamp, ids)
            tally.note(searched.warnings)
        not_found = {
            study_id: seen
            for (_, study_id), seen in self.store.not_found_watches(self.registry).items()
        }
        if not explicit:  # an id named on the command line is asked for whatever the wait
            ids = [i for i in ids if not self._resting(not_found.get(i), started)]
        cycle = self._cycle(ids, started, explicit=explicit, dry_run=dry_run, stop=should_stop)
        cycle = dataclasses.replace(cycle, not_found=not_found)
        settled = settle(cycle, stamp)
        tally.give(dict.fromkeys(settled.unchanged, "unchanged"))
        tally.note(settled.problems)
        kept = Stored(checked=list(settled.unchanged))
        self._store_pages(cycle, in_batches(cycle, settled.fetch), settled.fetch, tally, kept)
        alone = [i for i in cycle.ids if i not in tally]  # no batch returned them
        self._store_pages(cycle, one_by_one(cycle, alone), alone, tally, kept)
        self._mark(cycle, tally, kept)
        changes = kept.changes
        backfill: dict[str, int] = {}
        if not dry_run:
            changes, backfill = self._after(cycle, changes, tally, searched)
        report = SyncReport(
            **tally.counts(),
            requests=self.client.requests - requests_before,
            changes=changes,
            problems=tally.problems,
            backfill=backfill,
            cycle=stamp.cycle() | settled.cycle,
            registry=self.registry,
        )
        if finish:
            self._finish_run(cycle, report)
        else:
            self._unfinished.append((cycle, report))
        return report

    @property
    def running_run(self) -> int | None:
        """The run of this registry's latest unfinished cycle (``sync(finish=False)``)."""
        return next((c.run_id for c, _ in reversed(self._unfinished) if c.run_id), None)

    def drop_runs(self) -> None:
        """Forget the runs ``sync(finish=False)`` left running (the cycle was abandoned)."""
        self._unfinished.clear()

    def finish_runs(self) -> None:
        """Finish the runs ``sync(finish=False)`` left running."""
        while self._unfinished:
            cycle, report = self._unfinished.pop(0)
            self._finish_run(cycle, report)

    def _resting(self, not_found: NotFound | None, now: datetime) -> bool:
        """Whether an id the registry said it never had waits this cycle out: it is asked
        again only ``not_found_retry_days`` (calendar days) after it was last asked."""
        days = self.settings.not_found_retry_days
        if not_found is None or days == 0:
            return False
        return (now.date() - not_found.checked_at.date()).days < days

    @property
    def _searchable(self) -> bool:
        return getattr(self.client, "searchable", True)  # saved searches: ClinicalTrials.gov's

    def _refresh_searches(self, stamp: RegistryStamp, ids: list[str]) -> tuple[Refresh, list[str]]:
        """Saved searches first: the records they newly match are fetched in this cycle."""
        searched = self.searches.refresh(stamp)
        if searched.entered:
            ids = self.store.watched_ids(self.registry)
        return searched, ids

    def _cycle(
        self,
        ids: list[str],
        started: datetime,
        *,
        explicit: bool,
        dry_run: bool,
        stop: Callable[[], bool],
    ) -> Cycle:
        """What the phases of this cycle share: the stored state of its records, read once,
        and its sync_runs row (none on a dry run)."""
        states = self.store.record_states(self.registry, ids)
        run_id = None if dry_run else self.store.start_run(self.clock(), self.registry)
        routes = Routes(
            self.store,
            self.registry,
            self.subscriptions,
            notify_backfill=self.settings.notify_backfill,
            ids=ids,
        )
        return Cycle(
            store=self.store,
            client=self.client,
            settings=self.settings,
            clock=self.clock,
            history=self.history,
            findings=self.findings,
            extra_changes=self.extra_changes,
            routes=routes,
            ids=ids,
            states=states,
            started=started,
            explicit=explicit,
            dry_run=dry_run,
            run_id=run_id,
            should_stop=stop,
        )

    @staticmethod
    def _store_pages(
        cycle: Cycle, pages: Iterator[Page], asked: list[str], tally: Tally, kept: Stored
    ) -> None:
        """Store each page fetched and review what it stored, until the pages end, the
        registry is down (every id ``asked`` not done yet fails with it) or a stop."""
        for page in pages:
            if page.error is not None:
                tally.note(failed_request([i for i in page.failed if i not in tally], page.error))
                if page.down:
                    tally.note(failed_request([i for i in asked if i not in tally], page.error))
                    return
                continue
            stored = store_page(cycle, page, done=tally)
            tally.give(stored.verdicts)
            tally.note(stored.problems)
            reviewed = review_stored(cycle, stored.to_review, tally.counted)
            tally.note(reviewed.problems)
            kept.add(stored, reviewed.changes)
            if stored.stopped:
                return

    def _mark(self, cycle: Cycle, tally: Tally, kept: Stored) -> None:
        """What the next cycle settles against: when each record was fetched whole (not one
        that failed after its fetch: its change is still to be seen), and checked."""
        if cycle.dry_run:
            return
        if kept.fetched and hasattr(self.client, "signal"):
            seen = [i for i in kept.fetched if tally.counted(i)]
            self.store.mark_fetched(self.registry, seen, cycle.started)
        if kept.checked:
            self.store.mark_checked(self.registry, kept.checked, self.clock(), kept.moved_dates)
        self._mark_not_found(cycle, tally, kept)

    def _mark_not_found(self, cycle: Cycle, tally: Tally, kept: Stored) -> None:
        """When each id the registry does not have was asked for (and first reported); the
        ids it serves again are no longer reported."""
        missing = [p.study_id for p in tally.problems if p.reason == "not_found"]
        self.store.mark_not_found(self.registry, missing, self.clock())
        found = [i for i in kept.fetched if i in cycle.not_found]
        self.store.clear_not_found(self.registry, found)

    def _after(
        self, cycle: Cycle, changes: list[Change], tally: Tally, searched: Refresh
    ) -> tuple[list[Change], dict[str, int]]:
        """What follows the records' own changes: past versions of queued records within the
        cycle's history budget (and the backfill queue's counts), the findings due today,
        the saved searches' events."""
        backfill: dict[str, int] = {}
        if self.settings.history and self.settings.history_backfill:
            changes, backfill = self._backfill(cycle, changes, tally)
        due = review_due(cycle, tally.counted)
        tally.note(due.problems)
        changes = changes + due.changes
        if self._searchable:
            changes += self.searches.events(searched, cycle.run_id)
        return changes, backfill

    def _backfill(
        self, cycle: Cycle, changes: list[Change], tally: Tally
    ) -> tuple[list[Change], dict[str, int]]:
        ids = cycle.ids if cycle.explicit else None
        done = self.backfiller.work(
            self.settings.history_budget_seconds,
            run_id=cycle.run_id,
            study_ids=ids,
            should_stop=cycle.should_stop,
        )
        tally.note(done.warnings)
        pending = self.store.backfill_counts(self.registry)["pending"]
        counts = {"done": done.done, "failed": done.failed, "pending": pending}
        return renumbered(self.store, changes, done.studies) + done.changes, counts

    def _finish_run(self, cycle: Cycle, report: SyncReport) -> None:
        if cycle.run_id is None:
            return
        # errors quote what failed, which can be a record's text
        summary = storable(report.to_json(changes=False))
        # cut short by a stop: its failures are the stop's, not the registry's
        summary["interrupted"] = cycle.should_stop()
        self.store.finish_run(cycle.run_id, summary, self.clock())
