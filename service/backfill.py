"""The history backfill queue: past versions of newly watched records, fetched after the fact.

A first sync of a long watch list must not wait on the record-history API, which wants one
request at a time and a pause between them (2,000 new records with five versions each would
hold the first cycle for hours). So a new record is stored at once with its current version
and queued (``records.backfill = 'pending'``); this worker then fetches its past versions
within a time budget, at the end of each cycle and between cycles in the daemon, and slots
them in before the stored version as historical changes. A record the history API cannot
serve right now stays queued (and the round ends: the API is struggling); one it answers in a
shape we do not know, or with a past version of another study, is marked failed with an
``invalid`` warning, as gap filling does; one whose dates go backwards or into the future is
backfilled (see ``service.history``) with a ``dates`` warning.

The budget holds during a request too: every request of a round ends by the budget's end
(``deadline.no_later_than``), so a history answer that is slow to come cannot hold the cycle
past it; the record it was for stays queued, as if the round had not reached it.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from service.deadline import limit_passed, no_later_than
from service.diff import diff
from service.findings.keeper import FindingsKeeper, Router
from service.history import HistoryFetcher, Versions
from service.models import Change, Snapshot
from service.problems import Problem
from service.store import NewVersion, Store

log = logging.getLogger(__name__)

RETRY_AFTER = timedelta(minutes=15)  # a record whose history API answer failed waits this long
BUDGET_SPENT = "the history backfill budget ran out"


@dataclass
class BackfillRound:
    """What one round of the queue did."""

    done: int = 0
    failed: int = 0
    studies: list[str] = field(default_factory=list)  # the records backfilled
    changes: list[Change] = field(default_factory=list)
    # what a sync report says of the round: records left failed, odd history dates
    warnings: list[Problem] = field(default_factory=list)


class BackfillWorker:
    """Works the backfill queue of one registry within a time budget."""

    def __init__(
        self,
        store: Store,
        history: HistoryFetcher,
        *,
        clock: Callable[[], datetime],
        router: Router = lambda _study, _changes, _historical: [],
        extra_changes: Callable[[Snapshot, Snapshot], list[Change]] = lambda _old, _new: [],
        timer: Callable[[], float] = time.monotonic,
        findings: FindingsKeeper | None = None,
    ) -> None:
        self.store = store
        self.history = history
        self.registry = history.client.registry
        self.clock = clock
        self.router = router  # backfilled changes are historical: routed only when asked
        self.extra_changes = extra_changes
        self.timer = timer
        self.findings = findings  # re-evaluated once the past is in (historical findings)

    def work(
        self,
        budget_seconds: float,
        *,
        run_id: int | None = None,
        study_ids: Sequence[str] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> BackfillRound:
        """Backfill queued records, oldest first, until the queue is empty or the budget is
        spent (a record started is finished). ``study_ids`` limits the round to those."""
        deadline = self.timer() + budget_seconds
        result = BackfillRound()
        # a request in flight when the budget runs out ends there (its deadline is the earlier
        # of its own and the budget's end)
        with no_later_than(time.monotonic() + budget_seconds, BUDGET_SPENT):
            for study_id in self.store.pending_backfills(self.registry, self.clock(), study_ids):
                if self.timer() >= deadline or should_stop():
                    break
                if not self._one(study_id, run_id, result):
                    break
        return result

    def _one(self, study_id: str, run_id: int | None, result: BackfillRound) -> bool:
        """Backfill one record; False when the history API is unreachable (end the round)."""
        current = self.store.first_version(self.registry, study_id)
        if current is None:  # queued, but no version stored (removed meanwhile)
            self.store.set_backfill(self.registry, study_id, "done")
            return True
        found = self.history.backfill(study_id, current)
        if not found.complete:
            return self._failed(study_id, found, result)
        if found.problem is not None:  # odd dates: the versions are stored, and the report says so
            result.warnings.append(found.problem)
        past = found.versions[: found.past][:-1]
        placed = found.versions[found.past - 1]
        steps = self._steps(past, current)
        routes = [self.router(study_id, changes, True) if changes else [] for changes in steps]
        stored = self.store.save_backfill(
            self.registry,
            study_id,
            past,
            placed.registry_version,
            steps,
            routes,
            run_id,
            self.clock(),
        )
        result.changes.extend(stored)
        if self.findings is not None and past:
            result.changes.extend(self.findings.review(study_id, run_id, historical=True))
        result.done += 1
        result.studies.append(study_id)
        log.info("backfilled %s: %d past versions, %d changes", study_id, len(past), len(stored))
        return True

    def _failed(self, study_id: str, found: Versions, result: BackfillRound) -> bool:
        if found.abandoned or (found.transient and limit_passed()):  # not the record's failure
            log.info("%s: backfill left queued (the round's budget ran out, or a stop)", study_id)
            return False
        assert found.problem is not None  # not complete: the history API's problem
        result.warnings.append(found.problem)
        if found.transient:
            later = self.clock() + RETRY_AFTER
            self.store.set_backfill(self.registry, study_id, "pending", after=later)
            return False
        self.store.set_backfill(self.registry, study_id, "failed", error=found.problem.message)
        result.failed += 1
        return True

    def _steps(self, past: list[NewVersion], current: NewVersion) -> list[list[Change]]:
        """The changes leading into each past version (none into the first) and from the
        last past version into the stored one."""
        steps: list[list[Change]] = [[]] if past else []
        chain = [*past, current]
        for before, after in itertools.pairwise(chain):
            changes = diff(before.snapshot, after.snapshot)
            changes += self.extra_changes(before.snapshot, after.snapshot)
            steps.append(changes)
        return steps if past else [[]]
