"""Transparency rules: what a record's versions mean, not only that they changed.

Pure: ``evaluate(chain, today, thresholds)`` reads a record's stored versions (oldest first,
each with the facts of its raw record and the outcome changes that led into it) and returns the
findings that hold now, by rule. The caller compares them with the findings it stored to open
and resolve them. Each rule is defined in the README with its source.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from service.models import Change, Severity
from service.registry.ctgov_facts import PartialDate, TrialFacts

FDAAA_EFFECTIVE = date(2017, 1, 18)  # the Final Rule (42 CFR Part 11) applies from here
ACTIVE_STATUSES = frozenset(
    {"NOT_YET_RECRUITING", "RECRUITING", "ENROLLING_BY_INVITATION", "ACTIVE_NOT_RECRUITING"}
)
PHASE1_ONLY = frozenset({"EARLY_PHASE1", "PHASE1"})
ACCRUAL_WORDS = re.compile(r"accru|enrol|recruit|participant|patients? (?:were|was) not", re.I)

SOURCES = {
    "results_overdue": (
        "FDAAA 801 (42 U.S.C. 282(j)) and 42 CFR 11.44: results within 1 year of primary "
        "completion, 3 years with a certificate of delay; deadlines as the FDAAA "
        "TrialsTracker computes them (+30 days' grace, month-only dates at the month's end)"
    ),
    "results_due_soon": "FDAAA 801 / 42 CFR 11.44 (as results_overdue): the deadline is near",
    "primary_outcome_changed_after_start": (
        "Outcome switching: CONSORT 2010 item 6b; COMPare (Goldacre et al., Trials 2019); "
        "registry-history studies found major primary-outcome changes in ~23% of trials"
    ),
    "retroactive_start_date": (
        "ICMJE prospective-registration policy (2005): a start date moved later so that a "
        "retrospectively registered trial looks prospective"
    ),
    "retrospective_registration": (
        "ICMJE: registration before the first participant is enrolled (FDAAA 801 allows 21 "
        "days after); informational"
    ),
    "enrollment_shortfall": (
        "Unsuccessful accrual: below 85% of the anticipated enrollment (Carlisle et al., "
        "Clinical Trials 2015)"
    ),
    "status_stale": (
        "ClinicalTrials.gov shows 'Unknown status' when an active record's status has not "
        "been verified in 2 years; 42 CFR 11.64 asks for status updates within 30 days"
    ),
}


@dataclass(frozen=True)
class Thresholds:
    """The ``[findings]`` settings."""

    results_grace_days: int = 30
    results_years: int = 1
    delay_certificate_years: int = 3
    due_soon_days: int = 30
    shortfall_ratio: float = 0.85
    stale_verified_days: int = 730
    stale_completion_days: int = 365
    retrospective_grace_days: int = 0


@dataclass(frozen=True)
class VersionFacts:
    """One stored version of a record, as the rules read it."""

    version: int  # the registry's number, else the store's sequence
    posted: str  # the day it was posted (yyyy-MM-dd), "" if unknown
    facts: TrialFacts
    changes: tuple[Change, ...] = ()  # the changes that led into it (outcome rules read them)


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)
    cited: str = ""  # the finding's own source, where its rule has more than one (EU rules)

    @property
    def source(self) -> str:
        return self.cited or SOURCES[self.rule]


Rule = Callable[[Sequence[VersionFacts], date, Thresholds], Finding | None]


def evaluate(
    chain: Sequence[VersionFacts], today: date, thresholds: Thresholds | None = None
) -> dict[str, Finding]:
    """The findings that hold for a record now, by rule (``chain``: oldest version first)."""
    if not chain:
        return {}
    limits = thresholds or Thresholds()
    found = (rule(chain, today, limits) for rule in RULES)
    return {finding.rule: finding for finding in found if finding is not None}


# ---- results_overdue / results_due_soon ---------------------------------------------------


def results_overdue(
    chain: Sequence[VersionFacts], today: date, limits: Thresholds
) -> Finding | None:
    due = _results_deadline(chain[-1].facts, limits)
    if due is None or today <= due.deadline:
        return None
    return Finding(
        "results_overdue",
        "high",
        f"Results overdue under FDAAA 801: due {due.deadline.isoformat()}, "
        f"{(today - due.deadline).days} days ago, and not submitted",
        due.detail(),
    )


def results_due_soon(
    chain: Sequence[VersionFacts], today: date, limits: Thresholds
) -> Finding | None:
    due = _results_deadline(chain[-1].facts, limits)
    if due is None or not (shift(due.deadline, -limits.due_soon_days) <= today):
        return None
    if today > due.deadline:
        return None
    return Finding(
        "results_due_soon",
        "low",
        f"Results due under FDAAA 801 by {due.deadline.isoformat()} "
        f"({(due.deadline - today).days} days left)",
        due.detail(),
    )


@dataclass(frozen=True)
class _Deadline:
    completion: PartialDate
    completion_field: str
    deadline: date
    delay_certificate: PartialDate | None

    def detail(self) -> dict[str, Any]:
        return {
            "completion_field": self.completion_field,
            "completion_date": self.completion.text,
            "completion_type": self.completion.kind,
            "deadline": self.deadline.isoformat(),
            "certificate_of_delay": self.delay_certificate.text if self.delay_certificate else None,
        }


def _results_deadline(facts: TrialFacts, limits: Thresholds) -> _Deadline | None:
    """The results deadline of an applicable trial whose results are not submitted."""
    if facts.results_first_submitted is not None or not _applicable(facts):
        return None
    completion, which = facts.primary_completion, "primary_completion_date"
    if completion is None:
        completion, which = facts.completion, "completion_date"
    if completion is None:
        return None
    years = (
        limits.delay_certificate_years
        if facts.delay_certificate_submitted
        else limits.results_years
    )
    deadline = shift(add_years(completion.latest, years), limits.results_grace_days)
    return _Deadline(completion, which, deadline, facts.delay_certificate_submitted)


def _applicable(facts: TrialFacts) -> bool:
    """An applicable clinical trial as the FDAAA TrialsTracker decides it from the record."""
    if facts.study_type != "INTERVENTIONAL":
        return False
    if not (facts.fda_regulated_drug or facts.fda_regulated_device):
        return False
    if facts.phases and set(facts.phases) <= PHASE1_ONLY:
        return False
    if facts.primary_purpose == "DEVICE_FEASIBILITY" or facts.overall_status == "WITHDRAWN":
        return False
    if facts.start is None:
        return False
    if facts.start.earliest >= FDAAA_EFFECTIVE:
        return True
    completion = facts.primary_completion or facts.completion
    return facts.has_us_site and completion is not None and completion.latest >= FDAAA_EFFECTIVE


def add_years(day: date, years: int) -> date:
    """The same day ``years`` later (28 February for a 29th), within the calendar: a record
    can say 9999-12-31, and its deadline is then the calendar's last day, not an error."""
    year = day.year + years
    if year > date.max.year:
        return date.max
    if year < date.min.year:
        return date.min
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February
        return day.replace(year=year, day=28)


def shift(day: date, days: int) -> date:
    """``day`` moved by ``days``, within the calendar (dates 0001-01-01 to 9999-12-31)."""
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.max if days > 0 else date.min


# ---- primary_outcome_changed_after_start ----------------------------------------------------


def primary_outcome_changed_after_start(
    chain: Sequence[VersionFacts], today: date, limits: Thresholds
) -> Finding | None:
    steps = []
    for before, after in itertools.pairwise(chain):
        start = after.facts.start
        if start is None or start.kind != "ACTUAL" or not after.posted:
            continue
        if after.posted <= start.latest.isoformat():
            continue
        primary = [c for c in after.changes if _touches_primary(c)]
        if primary:
            steps.append(_outcome_step(before, after, primary))
    if not steps:
        return None
    first = steps[0]
    return Finding(
        "primary_outcome_changed_after_start",
        "high",
        f"Primary outcome changed after the trial started ({first['start_date']}): "
        f"version {first['from_version']} → {first['to_version']}, posted {first['posted']}"
        + (f" (and {len(steps) - 1} more time(s))" if len(steps) > 1 else ""),
        {"steps": steps},
    )


def _touches_primary(change: Change) -> bool:
    if change.kind == "outcome_reclassified":
        return "primary" in (change.old, change.new)
    return change.kind.startswith("outcome_") and change.outcome_type == "primary"


def _outcome_step(
    before: VersionFacts, after: VersionFacts, changes: list[Change]
) -> dict[str, Any]:
    start = after.facts.start
    return {
        "from_version": before.version,
        "to_version": after.version,
        "posted": after.posted,
        "start_date": start.text if start else None,
        "before": list(before.facts.primary_outcomes),
        "after": list(after.facts.primary_outcomes),
        "changes": [c.summary for c in changes],
    }


# ---- retroactive_start_date / retrospective_registration -----------------------------------


def retrospective_registration(
    chain: Sequence[VersionFacts], today: date, limits: Thresholds
) -> Finding | None:
    facts = chain[-1].facts
    late = _registration_delay(facts, limits)
    if late is None:
        return None
    return Finding(
        "retrospective_registration",
        "low",
        f"Registered {late} days after the trial started "
        f"(first submitted {facts.first_submitted.text if facts.first_submitted else '?'}, "
        f"started {facts.start.text if facts.start else '?'})",
        {
            "first_submitted": facts.first_submitted.text if facts.first_submitted else None,
            "start_date": facts.start.text if facts.start else None,
            "days_late": late,
        },
    )


def retroactive_start_date(
    chain: Sequence[VersionFacts], today: date, limits: Thresholds
) -> Finding | None:
    if _registration_delay(chain[-1].facts, limits) is not None:
        return None  # it looks retrospective now: nothing is hidden
    for before, after in itertools.pairwise(chain):
        old, new = before.facts.start, after.facts.start
        if old is None or new is None or new.earliest <= old.earliest:
            continue
        if _registration_delay(before.facts, limits) is not None:
            return Finding(
                "retroactive_start_date",
                "high",
                f"Start date moved from {old.text} to {new.text} (version {before.version} → "
                f"{after.version}): the trial, registered after it started, now looks "
                "prospectively registered",
                {
                    "from_version": before.version,
                    "to_version": after.version,
                    "old_start": old.text,
                    "new_start": new.text,
                    "first_submitted": (
                        after.facts.first_submitted.text if after.facts.first_submitted else None
                    ),
                },
            )
    return None


def _registration_delay(facts: TrialFacts, limits: Thresholds) -> int | None:
    """Days from the (actual) start to the first submission, past the grace; None if none."""
    start, submitted = facts.start, facts.first_submitted
    if start is None or submitted is None or start.kind != "ACTUAL":
        return None
    # partial dates are read generously: a start in "2018-03" is the month's last day
    late = (submitted.earliest - start.latest).days
    return late if late > limits.retrospective_grace_days else None


# ---- enrollment_shortfall ------------------------------------------------------------------


def enrollment_shortfall(
    chain: Sequence[VersionFacts], today: date, limits: Thresholds
) -> Finding | None:
    facts = chain[-1].facts
    if facts.overall_status not in ("COMPLETED", "TERMINATED"):
        return None
    planned = _last_anticipated(chain)
    actual = facts.enrollment_count if facts.enrollment_type == "ACTUAL" else None
    detail = {"status": facts.overall_status, "actual": actual, "anticipated": planned}
    if actual is not None and planned and actual < limits.shortfall_ratio * planned:
        return Finding(
            "enrollment_shortfall",
            "medium",
            f"{facts.overall_status.title()} with {actual} of {planned} anticipated participants "
            f"({actual / planned:.0%})",
            detail,
        )
    if facts.overall_status == "TERMINATED" and ACCRUAL_WORDS.search(facts.why_stopped):
        return Finding(
            "enrollment_shortfall",
            "medium",
            f"Terminated for accrual: {facts.why_stopped}",
            {**detail, "why_stopped": facts.why_stopped},
        )
    return None


def _last_anticipated(chain: Sequence[VersionFacts]) -> int | None:
    for version in reversed(chain):
        facts = version.facts
        if facts.enrollment_type == "ESTIMATED" and facts.enrollment_count:
            return facts.enrollment_count
    return None


# ---- status_stale --------------------------------------------------------------------------


def status_stale(chain: Sequence[VersionFacts], today: date, limits: Thresholds) -> Finding | None:
    facts = chain[-1].facts
    if facts.overall_status not in ACTIVE_STATUSES:
        return None
    verified = facts.status_verified
    if verified is not None and (today - verified.latest).days > limits.stale_verified_days:
        return Finding(
            "status_stale",
            "medium",
            f"Status {facts.overall_status.replace('_', ' ').lower()} not verified since "
            f"{verified.text}",
            {"status": facts.overall_status, "status_verified": verified.text},
        )
    completion = facts.completion
    if completion is not None and (today - completion.latest).days > limits.stale_completion_days:
        return Finding(
            "status_stale",
            "medium",
            f"Completion date {completion.text} passed over a year ago, status still "
            f"{facts.overall_status.replace('_', ' ').lower()}",
            {"status": facts.overall_status, "completion_date": completion.text},
        )
    return None


RULES: tuple[Rule, ...] = (
    results_overdue,
    results_due_soon,
    primary_outcome_changed_after_start,
    retroactive_start_date,
    retrospective_registration,
    enrollment_shortfall,
    status_stale,
)
# and the trials' rule, kept across registrations (service.findings.disagree)
RULE_NAMES = (*(rule.__name__ for rule in RULES), "registrations_disagree")
DATE_DEPENDENT = frozenset({"results_overdue", "results_due_soon", "status_stale"})


def next_review(facts: TrialFacts, today: date, limits: Thresholds | None = None) -> date | None:
    """The first day after ``today`` on which a date-dependent rule may change its verdict for
    a record whose latest version has ``facts`` (None: no date will change anything). A cycle
    re-evaluates only the records whose day has come, not the whole watch list."""
    limits = limits or Thresholds()
    days: list[date] = []
    due = _results_deadline(facts, limits)
    if due is not None:
        days += [shift(due.deadline, -limits.due_soon_days), shift(due.deadline, 1)]
    if facts.overall_status in ACTIVE_STATUSES:
        if facts.status_verified is not None:
            days.append(shift(facts.status_verified.latest, limits.stale_verified_days + 1))
        if facts.completion is not None:
            days.append(shift(facts.completion.latest, limits.stale_completion_days + 1))
    future = [day for day in days if day > today]
    return min(future) if future else None
