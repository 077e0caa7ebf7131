"""Keeps ``registrations_disagree`` true across registries: after each cycle, every trial with
two stored registrations is looked at (grouped from the records' links, so only the snapshots
of records registered more than once are read), and its finding opened, replaced or resolved
on the trial's first stored registration — a change event notified like any other.

A finding whose kinds change (the registrations now also disagree on enrollment) is resolved
and opened again: the alert says what is apart now. A disagreement first seen with a record
just added to the watch list is historical (not notified), as the record rules' first
sightings are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from service.findings.disagree import RULE, anchor, registrations_disagree, status_since
from service.findings.keeper import moved, opened_change, resolved_change
from service.findings.rules import Finding
from service.findings.stored import FindingInfo
from service.models import Change, Route, StoredChange
from service.registry.catalog import registry_info
from service.settings import FindingsSettings
from service.store import FindingUpdate, Store
from service.trial_store import load_trials
from service.trials import Key, Trial, by_registry

log = logging.getLogger(__name__)

# registry, study id, changes, historical → where they go
Router = Callable[[str, str, list[Change], bool], list[Route]]


@dataclass
class _Holding:
    finding: Finding
    historical: bool


@dataclass
class _Decisions:
    by_registry: dict[str, dict[str, FindingUpdate]] = field(default_factory=dict)

    def add(self, key: Key, update: FindingUpdate) -> None:
        self.by_registry.setdefault(key[0], {})[key[1]] = update


class TrialsKeeper:
    def __init__(
        self,
        store: Store,
        settings: FindingsSettings,
        *,
        clock: Callable[[], datetime],
        router: Router = lambda _registry, _study, _changes, _historical: [],
    ) -> None:
        self.store = store
        self.enabled = settings.enabled
        self.disagree_days = settings.disagree_days
        self.clock = clock
        self.router = router

    def review(
        self, cycle_started: datetime, runs: Mapping[str, int | None] | None = None
    ) -> list[StoredChange]:
        """Open, replace and resolve the trials' findings; the change events stored.
        ``cycle_started``: records first seen since are new to the watch list; ``runs``: each
        registry's sync run still under way, whose messages the findings join."""
        if not self.enabled:
            return []
        known = {
            (f.registry, f.study_id): f for f in self.store.list_findings(only_open=True, rule=RULE)
        }
        holding = self._holding(load_trials(self.store, min_stored=2), known, cycle_started)
        decisions = _Decisions()
        for key, now in holding.items():
            was = known.get(key)
            if was is None or was.detail.get("kinds") != now.finding.detail["kinds"]:
                decisions.add(key, self._update(key, now, was))
            elif moved(was, now.finding):  # the same kinds apart, other values: kept current
                decisions.add(key, _refreshed(now.finding))
        for key, was in known.items():
            if key not in holding:
                decisions.add(key, self._update(key, None, was))
        stored: list[StoredChange] = []
        for registry, decided in decisions.by_registry.items():
            run_id = (runs or {}).get(registry)
            stored += self.store.save_findings(registry, decided, run_id, self.clock())
        for change in stored:
            log.info("%s: %s", change.study_id, change.summary)
        return stored

    def _holding(
        self, trials: list[Trial], known: Mapping[Key, FindingInfo], cycle_started: datetime
    ) -> dict[Key, _Holding]:
        """The trials' findings that hold now, by the registration each is kept on: where it is
        open already while that record is still one of the trial's (a registration joining
        or leaving must not move it), else the trial's first stored registration. The
        versions' history is read only for trials whose lifecycles are apart (the only
        disagreement that waits)."""
        trials = [trial for trial in trials if trial.disagreements]
        today = self.clock().date()
        lifecycles_apart = [
            key
            for trial in trials
            if any(d.field == "lifecycle" for d in trial.disagreements)
            for key in _stored(trial)
        ]
        since = self._since(lifecycles_apart)
        first_seen = self._first_seen([key for trial in trials for key in _stored(trial)])
        holding: dict[Key, _Holding] = {}
        for trial in trials:
            members = _stored(trial)
            finding = registrations_disagree(trial, since, today, self.disagree_days)
            if finding is None or not members:
                continue
            where = next((key for key in members if key in known), anchor(trial) or members[0])
            new = any(first_seen.get(key, cycle_started) >= cycle_started for key in members)
            holding[where] = _Holding(finding, historical=new)
        return holding

    def _since(self, keys: list[Key]) -> dict[Key, date]:
        """The day each record of ``keys`` began saying its current lifecycle."""
        found: dict[Key, date] = {}
        for registry, ids in by_registry(keys).items():
            lifecycle = registry_info(registry).lifecycle
            for study_id, (_, history) in self.store.status_since(registry, ids).items():
                day = status_since(history, lifecycle)
                if day is not None:
                    found[(registry, study_id)] = day
        return found

    def _first_seen(self, keys: list[Key]) -> dict[Key, datetime]:
        return {
            (registry, study_id): seen
            for registry, ids in by_registry(keys).items()
            for study_id, seen in self.store.first_seen(registry, ids).items()
        }

    def _update(self, key: Key, now: _Holding | None, was: FindingInfo | None) -> FindingUpdate:
        registry, study_id = key
        changes = [opened_change(study_id, registry, now.finding)] if now else []
        changes += [resolved_change(study_id, registry, was)] if was else []
        historical = now.historical if now else False
        return FindingUpdate(
            opened=[now.finding] if now else [],
            resolved=[RULE] if was else [],
            changes=changes,
            routes=self.router(registry, study_id, changes, historical),
            historical=historical,
            due=None,
            keep_due=True,
        )


def _stored(trial: Trial) -> list[Key]:
    return [(r.registry, r.study_id) for r in trial.registrations if r.snapshot is not None]


def _refreshed(finding: Finding) -> FindingUpdate:
    """An open finding's new text and evidence, stored in place and not told (as the record
    rules' refreshes)."""
    return FindingUpdate(
        (), (), (), (), historical=False, due=None, keep_due=True, updated=[finding]
    )
