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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from service.findings.disagree import RULE, anchor, registrations_disagree, status_since
from service.findings.keeper import opened_change, resolved_change
from service.findings.rules import Finding
from service.findings.stored import FindingInfo
from service.models import Change, Route, StoredChange
from service.registry.catalog import registry_info
from service.settings import FindingsSettings
from service.store import FindingUpdate, Store
from service.trial_store import load_trials
from service.trials import Key, Trial

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

    def review(self, cycle_started: datetime) -> list[StoredChange]:
        """Open, replace and resolve the trials' findings; the change events stored.
        ``cycle_started``: records first seen since are new to the watch list."""
        if not self.enabled:
            return []
        holding = self._holding(load_trials(self.store, min_stored=2), cycle_started)
        known = {
            (f.registry, f.study_id): f for f in self.store.list_findings(only_open=True, rule=RULE)
        }
        decisions = _Decisions()
        for key, now in holding.items():
            was = known.get(key)
            if was is None or was.detail.get("kinds") != now.finding.detail["kinds"]:
                decisions.add(key, self._update(key, now, was))
        for key, was in known.items():
            if key not in holding:
                decisions.add(key, self._update(key, None, was))
        stored: list[StoredChange] = []
        for registry, decided in decisions.by_registry.items():
            stored += self.store.save_findings(registry, decided, None, self.clock())
        for change in stored:
            log.info("%s: %s", change.study_id, change.summary)
        return stored

    def _holding(self, trials: list[Trial], cycle_started: datetime) -> dict[Key, _Holding]:
        """The trials' findings that hold now, by the registration each is kept on. The
        versions' history is read only for trials whose registrations disagree at all (most
        agree: a cycle over many linked records must not parse every version of each)."""
        trials = [trial for trial in trials if trial.disagreements]
        keys = [(r.registry, r.study_id) for t in trials for r in t.registrations if r.snapshot]
        histories = self._histories(keys)
        today = self.clock().date()
        holding: dict[Key, _Holding] = {}
        for trial in trials:
            members = [(r.registry, r.study_id) for r in trial.registrations if r.snapshot]
            since = {k: d for k in members if (d := self._since(k, histories)) is not None}
            finding = registrations_disagree(trial, since, today, self.disagree_days)
            where = anchor(trial)
            if finding is None or where is None:
                continue
            new = any(histories[k][0] >= cycle_started for k in members if k in histories)
            holding[where] = _Holding(finding, historical=new)
        return holding

    def _histories(self, keys: list[Key]) -> dict[Key, tuple[datetime, list[tuple[str, str]]]]:
        by_registry: dict[str, list[str]] = {}
        for registry, study_id in keys:
            by_registry.setdefault(registry, []).append(study_id)
        return {
            (registry, study_id): history
            for registry, ids in by_registry.items()
            for study_id, history in self.store.status_since(registry, ids).items()
        }

    @staticmethod
    def _since(
        key: Key, histories: dict[Key, tuple[datetime, list[tuple[str, str]]]]
    ) -> date | None:
        if key not in histories:
            return None
        return status_since(histories[key][1], registry_info(key[0]).lifecycle)

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
