"""Keeps each record's findings true: evaluates the rules when a record gets new versions and,
for the rules that depend on the date, on the day a verdict can change — then opens and
resolves findings, each a change event (``finding_opened`` / ``finding_resolved``, field
``finding:RULE``) notified like any change.

Findings found on a first sighting or by a history backfill are stored as historical and not
notified (a new watch list must not send an alert per old finding).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime

from service.findings.rules import Finding, Thresholds, VersionFacts, evaluate, next_review
from service.findings.stored import FindingInfo
from service.models import Change, Route, StoredChange
from service.registry.ctgov_facts import trial_facts
from service.settings import FindingsSettings
from service.store import FindingUpdate, NewVersion, Store

log = logging.getLogger(__name__)

Router = Callable[[str, list[Change], bool], list[Route]]  # study, changes, historical


class FindingsKeeper:
    def __init__(
        self,
        store: Store,
        settings: FindingsSettings,
        *,
        registry: str,
        clock: Callable[[], datetime],
        router: Router = lambda _study, _changes, _historical: [],
    ) -> None:
        self.store = store
        self.enabled = settings.enabled
        self.thresholds = Thresholds(**settings.model_dump(exclude={"enabled"}))
        self.registry = registry
        self.clock = clock
        self.router = router

    def review_first(
        self, versions: Sequence[NewVersion], run_id: int | None
    ) -> dict[str, list[StoredChange]]:
        """Records just seen for the first time (a page of them): each one's one version,
        from memory, what holds saved in one transaction. Returns the change events by
        study. Cheap when nothing holds; but in the benchmark's first load three records in
        four open a finding, and saving each in a transaction of its own took 40% of the
        load's time."""
        if not self.enabled:
            return {}
        decided: dict[str, FindingUpdate] = {}
        for version in versions:
            number = version.registry_version if version.registry_version is not None else 1
            chain = [VersionFacts(number, version.last_update_posted, trial_facts(version.raw))]
            study_id = version.snapshot.study_id
            decision = self._decide(study_id, chain, {}, historical=True)
            if decision is not None:
                decided[study_id] = decision
        found: dict[str, list[StoredChange]] = {}
        for change in self._save(decided, run_id):
            found.setdefault(change.study_id, []).append(change)
        return found

    def review(
        self, study_id: str, run_id: int | None, *, historical: bool = False
    ) -> list[StoredChange]:
        """Evaluate every rule on the record's stored versions; open and resolve."""
        return self.review_many({study_id: historical}, run_id)

    def review_many(self, historical: Mapping[str, bool], run_id: int | None) -> list[StoredChange]:
        """``review`` each record of ``historical`` (study id → whether what it finds is
        historical), in that order, their stored versions read together."""
        if not self.enabled or not historical:
            return []
        contexts = self.store.review_contexts(self.registry, list(historical))
        decided: dict[str, FindingUpdate] = {}
        for study_id, past in historical.items():
            context = contexts.get(study_id)
            if context is None or not context.versions:
                continue
            chain = [
                VersionFacts(v.number, v.posted, trial_facts(v.raw), tuple(v.changes))
                for v in context.versions
            ]
            decision = self._decide(
                study_id, chain, context.open, historical=past, stored_due=context.due
            )
            if decision is not None:
                decided[study_id] = decision
        return self._save(decided, run_id)

    def review_due(
        self, run_id: int | None, study_ids: Sequence[str] | None = None
    ) -> list[StoredChange]:
        """The records whose date-dependent rules are due today (the record need not change:
        results become overdue while the registry stays silent)."""
        if not self.enabled:
            return []
        due = self.store.due_for_findings(self.registry, self._today().isoformat())
        wanted = set(study_ids) if study_ids is not None else None
        return self.review_many(
            {study_id: False for study_id in due if wanted is None or study_id in wanted}, run_id
        )

    def _decide(
        self,
        study_id: str,
        chain: list[VersionFacts],
        known: dict[str, FindingInfo],
        *,
        historical: bool,
        stored_due: str | None = None,
    ) -> FindingUpdate | None:
        """What the rules decide for the record's versions ``chain``, given its open findings
        ``known``: None when the findings and when they are next due stand."""
        today = self._today()
        holding = evaluate(chain, today, self.thresholds)
        opened = [f for rule, f in holding.items() if rule not in known]
        resolved = [known[rule] for rule in known if rule not in holding]
        next_due = next_review(chain[-1].facts, today, self.thresholds)
        due = next_due.isoformat() if next_due else None
        if not opened and not resolved and due == stored_due:
            return None
        changes = [_opened(study_id, self.registry, f) for f in opened]
        changes += [_resolved(study_id, self.registry, f) for f in resolved]
        return FindingUpdate(
            opened=opened,
            resolved=[f.rule for f in resolved],
            changes=changes,
            routes=self.router(study_id, changes, historical) if changes else [],
            historical=historical,
            due=due,
        )

    def _save(self, decided: dict[str, FindingUpdate], run_id: int | None) -> list[StoredChange]:
        """Store what reviews decided, in one transaction; the change events, in order."""
        if not decided:
            return []
        stored = self.store.save_findings(self.registry, decided, run_id, self.clock())
        for change in stored:
            log.info("%s: %s", change.study_id, change.summary)
        return stored

    def _today(self) -> date:
        return self.clock().date()


def _opened(study_id: str, registry: str, finding: Finding) -> Change:
    return Change(
        registry=registry,
        study_id=study_id,
        kind="finding_opened",
        field=f"finding:{finding.rule}",
        old=None,
        new=finding.detail,
        severity=finding.severity,
        summary=f"Finding: {finding.summary}",
    )


def _resolved(study_id: str, registry: str, finding: FindingInfo) -> Change:
    return Change(
        registry=registry,
        study_id=study_id,
        kind="finding_resolved",
        field=f"finding:{finding.rule}",
        old=finding.detail,
        new=None,
        severity=finding.severity,
        summary=f"Finding resolved ({finding.rule.replace('_', ' ')}): {finding.summary}",
    )
