"""Keeps each record's findings true: evaluates the rules when a record gets new versions and,
for the rules that depend on the date, on the day a verdict can change — then opens and
resolves findings, each a change event (``finding_opened`` / ``finding_resolved``, field
``finding:RULE``) notified like any change.

Findings found on a first sighting or by a history backfill are stored as historical and not
notified (a new watch list must not send an alert per old finding).

A finding that still holds but says something else now (another reason: ``status_stale``
because the completion date passed rather than the verification; other evidence: a new
deadline, other figures) is refreshed in place: its summary, detail, severity and source
become the rule's new ones, its opening day and historical mark stay. That is not notified:
the contract's change kinds are a closed vocabulary (a new kind is a contract change), so there
is no ``finding_updated`` event; the pages, the feed's next entries and ``trialwatch findings``
show the new text. Day counts ("N days ago") are not stored: they are worked out from the
detail's dates when a finding is shown (``service.findings.words``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from service.errors import StoreError, StoreRefused
from service.findings.disagree import RULE as DISAGREE_RULE
from service.findings.eu_rules import EuVersion, eu_facts
from service.findings.eu_rules import evaluate as eu_evaluate
from service.findings.eu_rules import next_review as eu_next_review
from service.findings.rules import Finding, Thresholds, VersionFacts, evaluate, next_review, shift
from service.findings.stored import FindingInfo
from service.models import Change, Route, StoredChange
from service.problems import Problem
from service.registry.catalog import normalise
from service.registry.ctgov_facts import trial_facts
from service.settings import FindingsSettings
from service.store import FindingUpdate, NewVersion, Store
from service.text import storable

log = logging.getLogger(__name__)

Router = Callable[[str, list[Change], bool], list[Route]]  # study, changes, historical


@dataclass(frozen=True)
class RuleSet:
    """A registry's transparency rules: how a stored version is read, what holds, and when a
    verdict can next change without the record changing."""

    version: Callable[[int, str, dict[str, Any], tuple[Change, ...]], Any]
    evaluate: Callable[[Sequence[Any], date, Thresholds], dict[str, Finding]]
    next_review: Callable[[Any, date, Thresholds], date | None]


def rule_set(registry: str) -> RuleSet | None:
    """ClinicalTrials.gov's rules (FDAAA and the rest); the EU results rules for EUCTR and
    CTIS; None for a registry without rules (ISRCTN: the UK requires no results posting)."""
    if registry == "ctgov":
        return RuleSet(
            lambda n, posted, raw, changes: VersionFacts(n, posted, trial_facts(raw), changes),
            evaluate,
            next_review,
        )
    if registry in ("euctr", "ctis"):
        return RuleSet(
            lambda n, posted, raw, _changes: EuVersion(
                n, posted, eu_facts(normalise(registry, raw), raw)
            ),
            eu_evaluate,
            eu_next_review,
        )
    return None


@dataclass
class Reviewed:
    """What reviewing some records' findings did: the change events stored, and the records
    whose review failed (an ``internal`` error each), each alone: the others are stored as
    reviewed."""

    changes: list[StoredChange] = field(default_factory=list)
    failed: list[Problem] = field(default_factory=list)

    def by_study(self) -> dict[str, list[StoredChange]]:
        found: dict[str, list[StoredChange]] = {}
        for change in self.changes:
            found.setdefault(change.study_id, []).append(change)
        return found


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
        self.rules = rule_set(registry)
        self.enabled = settings.enabled and self.rules is not None
        self.thresholds = Thresholds(**settings.model_dump(exclude={"enabled", "disagree_days"}))
        self.registry = registry
        self.clock = clock
        self.router = router

    def review_first(self, versions: Sequence[NewVersion], run_id: int | None) -> Reviewed:
        """Records just seen for the first time (a page of them): each one's one version,
        from memory, what holds saved in one transaction. Cheap when nothing holds; but in
        the benchmark's first load three records in four open a finding, and saving each in
        a transaction of its own took 40% of the load's time."""
        if not self.enabled:
            return Reviewed()
        reviewed = Reviewed()
        decided: dict[str, FindingUpdate] = {}
        for version in versions:
            study_id = version.snapshot.study_id
            number = version.registry_version if version.registry_version is not None else 1
            with self._one(study_id, reviewed):
                chain = [self._rules.version(number, version.last_update_posted, version.raw, ())]
                decision = self._decide(study_id, chain, {}, historical=True)
                if decision is not None:
                    decided[study_id] = decision
        self._save(decided, run_id, reviewed)
        return reviewed

    def review(
        self, study_id: str, run_id: int | None, *, historical: bool = False
    ) -> list[StoredChange]:
        """Evaluate every rule on the record's stored versions; open and resolve (a review
        that fails is logged, and the record is looked at again the next day)."""
        return self.review_many({study_id: historical}, run_id).changes

    def review_many(self, historical: Mapping[str, bool], run_id: int | None) -> Reviewed:
        """``review`` each record of ``historical`` (study id → whether what it finds is
        historical), in that order, their stored versions read together."""
        if not self.enabled or not historical:
            return Reviewed()
        contexts = self.store.review_contexts(self.registry, list(historical))
        reviewed = Reviewed()
        decided: dict[str, FindingUpdate] = {}
        for study_id, past in historical.items():
            context = contexts.get(study_id)
            if context is None or not context.versions:
                continue
            with self._one(study_id, reviewed):
                chain = [
                    self._rules.version(v.number, v.posted, v.raw, tuple(v.changes))
                    for v in context.versions
                ]
                decision = self._decide(
                    study_id, chain, context.open, historical=past, stored_due=context.due
                )
                if decision is not None:
                    decided[study_id] = decision
        self._save(decided, run_id, reviewed)
        return reviewed

    def review_due(self, run_id: int | None, study_ids: Sequence[str] | None = None) -> Reviewed:
        """The records whose date-dependent rules are due today (the record need not change:
        results become overdue while the registry stays silent)."""
        if not self.enabled:
            return Reviewed()
        due = self.store.due_for_findings(self.registry, self._today().isoformat())
        wanted = set(study_ids) if study_ids is not None else None
        return self.review_many(
            {study_id: False for study_id in due if wanted is None or study_id in wanted}, run_id
        )

    def _decide(
        self,
        study_id: str,
        chain: list[Any],
        known: dict[str, FindingInfo],
        *,
        historical: bool,
        stored_due: str | None = None,
    ) -> FindingUpdate | None:
        """What the rules decide for the record's versions ``chain``, given its open findings
        ``known``: None when the findings and when they are next due stand."""
        today = self._today()
        holding = self._rules.evaluate(chain, today, self.thresholds)
        opened = [f for rule, f in holding.items() if rule not in known]
        updated = [f for rule, f in holding.items() if rule in known and moved(known[rule], f)]
        # (a finding of the trials' rule is the TrialsKeeper's to resolve, not this record's)
        resolved = [known[r] for r in known if r not in holding and r != DISAGREE_RULE]
        next_due = self._rules.next_review(chain[-1].facts, today, self.thresholds)
        due = next_due.isoformat() if next_due else None
        if not opened and not resolved and not updated and due == stored_due:
            return None
        changes = [opened_change(study_id, self.registry, f) for f in opened]
        changes += [resolved_change(study_id, self.registry, f) for f in resolved]
        return FindingUpdate(
            opened=opened,
            resolved=[f.rule for f in resolved],
            changes=changes,
            routes=self.router(study_id, changes, historical) if changes else [],
            historical=historical,
            due=due,
            updated=updated,
        )

    def _save(
        self, decided: dict[str, FindingUpdate], run_id: int | None, reviewed: Reviewed
    ) -> None:
        """Store what reviews decided, in one transaction; should that fail, each record
        alone (one record's bad value fails that record only; a store that is down fails the
        first again, and that ends the cycle). The change events go to ``reviewed``, in
        order; records whose review failed are looked at again the next day."""
        if decided:
            try:
                reviewed.changes += self._store_decided(decided, run_id)
            except Exception:
                log.exception(
                    "saving %d records' findings together failed; one by one", len(decided)
                )
                for study_id, decision in decided.items():
                    with self._one(study_id, reviewed):
                        reviewed.changes += self._store_decided({study_id: decision}, run_id)
        self._retry_tomorrow([p.study_id for p in reviewed.failed])

    def _store_decided(
        self, decided: Mapping[str, FindingUpdate], run_id: int | None
    ) -> list[StoredChange]:
        stored = self.store.save_findings(self.registry, decided, run_id, self.clock())
        for change in stored:
            log.info("%s: %s", change.study_id, change.summary)
        return stored

    @contextmanager
    def _one(self, study_id: str, reviewed: Reviewed) -> Iterator[None]:
        """One record's part of a review: its failure is its own (kept in ``reviewed``),
        unless the store itself fails (down, locked, full), which ends the review."""
        try:
            yield
        except StoreError as exc:
            if not isinstance(exc, StoreRefused):
                raise
            message = f"{study_id}: findings not stored: {exc}"
            reviewed.failed.append(Problem.error(study_id, message, "internal"))
        except Exception as exc:  # a rule's bug on one record's data must not stop the others
            log.exception("findings review of %s failed", study_id)
            message = f"{study_id}: findings review failed: {exc}"
            reviewed.failed.append(Problem.error(study_id, message, "internal"))

    def _retry_tomorrow(self, failed: Sequence[str]) -> None:
        """Records whose review failed are due again the next day (their stored findings
        stand meanwhile): a fault that passes is mended without the record changing."""
        if not failed:
            return
        tomorrow = shift(self._today(), 1).isoformat()
        retry = FindingUpdate((), (), (), (), historical=False, due=tomorrow)
        try:
            self.store.save_findings(
                self.registry, dict.fromkeys(failed, retry), None, self.clock()
            )
        except StoreRefused as exc:
            log.warning("could not mark %d records for a new findings review: %s", len(failed), exc)

    @property
    def _rules(self) -> RuleSet:
        assert self.rules is not None  # (a keeper without rules is disabled)
        return self.rules

    def _today(self) -> date:
        return self.clock().date()


def moved(stored: FindingInfo, finding: Finding) -> bool:
    """Whether an open finding's rule now says something else of it (its text, evidence,
    severity or source), as the store would keep it."""
    return (
        storable(finding.summary) != stored.summary
        or _as_stored(finding.detail) != stored.detail
        or finding.severity != stored.severity
        or finding.source != stored.source
    )


def _as_stored(detail: dict[str, Any]) -> Any:
    """``detail`` as it comes back from the store's JSON column (tuples as lists …)."""
    return json.loads(json.dumps(storable(detail)))


def opened_change(study_id: str, registry: str, finding: Finding) -> Change:
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


def resolved_change(study_id: str, registry: str, finding: FindingInfo) -> Change:
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
