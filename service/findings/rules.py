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
PHASES = ("EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA")  # the API v2's values
# the FDAAA TrialsTracker's covered intervention types (``is_covered_intervention``)
COVERED_INTERVENTIONS = frozenset(
    {
        "DRUG",
        "DEVICE",
        "BIOLOGICAL",
        "GENETIC",
        "RADIATION",
        "COMBINATION_PRODUCT",
        "DIAGNOSTIC_TEST",
    }
)
ICMJE_EFFECTIVE = date(2005, 7, 1)  # ICMJE: trials starting from here registered before enrolling
ACCRUAL_WORDS = re.compile(r"accru|enrol|recruit|participant|patients? (?:were|was) not", re.I)

SOURCES = {
    "results_overdue": (
        "FDAAA 801 (42 U.S.C. 282(j)) and 42 CFR 11.44: results within 1 year of primary "
        "completion, 3 years with a certificate of delay; deadlines as the FDAAA "
        "TrialsTracker computes them (ACTs and pACTs, month-only dates at the month's end, "
        "overdue after 30 days' grace, submissions in quality control count)"
    ),
    "results_due_soon": "FDAAA 801 / 42 CFR 11.44 (as results_overdue): the due date is near",
    "results_reported_late": (
        "FDAAA 801 / 42 CFR 11.44 (as results_overdue): results submitted after the due date; "
        "the FDAAA TrialsTracker's 'reported late'"
    ),
    "primary_outcome_changed_after_start": (
        "Outcome switching: CONSORT 2010 item 6b; COMPare (Goldacre et al., Trials 2019); "
        "registry-history studies found major primary-outcome changes in ~23% of trials"
    ),
    "retroactive_start_date": (
        "ICMJE prospective-registration policy (2005): a start date moved later so that a "
        "retrospectively registered trial looks prospective"
    ),
    "retrospective_registration": (
        "ICMJE (trials starting from 2005-07-01): registration before the first participant "
        "is enrolled (FDAAA 801 allows 21 days after); informational"
    ),
    "enrollment_shortfall": (
        "Unsuccessful accrual: interventional phase 2-3 trials completed below 85% of the "
        "anticipated enrollment, or terminated for accrual (Carlisle et al., Clinical Trials 2015)"
    ),
    "status_stale": (
        "ClinicalTrials.gov shows 'Unknown status' when an active record's status has not "
        "been verified in 2 years; 42 CFR 11.64 asks for status updates within 30 days; the "
        "FDAAA TrialsTracker's date/status discrepancy"
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
    shortfall_phases: tuple[str, ...] = ("PHASE2", "PHASE3")  # () = any phase


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


# ---- results_overdue / results_due_soon / results_reported_late -----------------------------


def results_overdue(
    chain: Sequence[VersionFacts], today: date, limits: Thresholds
) -> Finding | None:
    due = _results_due(chain[-1].facts, limits)
    if due is None or due.submitted is not None or today <= due.overdue_after:
        return None
    return Finding(
        "results_overdue",
        "high",
        f"Results overdue under FDAAA 801: due {due.due_date.isoformat()} ({due.basis()}), "
        + ("the submission was cancelled" if due.cancelled else "not submitted"),
        due.detail(),
    )


def results_due_soon(
    chain: Sequence[VersionFacts], today: date, limits: Thresholds
) -> Finding | None:
    due = _results_due(chain[-1].facts, limits)
    if due is None or due.submitted is not None:
        return None
    if not (shift(due.due_date, -limits.due_soon_days) <= today <= due.due_date):
        return None
    return Finding(
        "results_due_soon",
        "low",
        f"Results due under FDAAA 801 by {due.due_date.isoformat()} ({due.basis()})",
        due.detail(),
    )


def results_reported_late(
    chain: Sequence[VersionFacts], today: date, limits: Thresholds
) -> Finding | None:
    """The TrialsTracker's "reported late": results (or a submission in quality control that
    was not cancelled) came after the due date; it says so once the trial is due (its grace
    ended), as it does."""
    due = _results_due(chain[-1].facts, limits)
    if due is None or due.submitted is None or today <= due.overdue_after:
        return None
    if due.submitted.latest <= due.due_date:
        return None
    return Finding(
        "results_reported_late",
        "low",
        f"Results submitted {due.submitted.text}, after they were due under FDAAA 801 on "
        f"{due.due_date.isoformat()} ({due.basis()})",
        due.detail(),
    )


@dataclass(frozen=True)
class _Due:
    """An applicable trial's results due date, as the FDAAA TrialsTracker computes it."""

    applicable: str  # ACT | pACT
    completion: PartialDate
    completion_field: str
    due_date: date  # completion (at the month's end if month-only) + 1 year, 3 with a certificate
    overdue_after: date  # due_date + the grace days
    delay_certificate: PartialDate | None
    submitted: PartialDate | None  # results first submitted, else an uncancelled QA submission
    submitted_from: str  # resultsFirstSubmitDate | submissionTracking | ""
    cancelled: bool
    years: int

    def basis(self) -> str:
        which = (
            "primary completion" if self.completion_field.startswith("primary") else ("completion")
        )
        plus = f"{self.years} year" + ("s" if self.years != 1 else "")
        text = f"{which} {self.completion.text} + {plus}"
        if self.delay_certificate is not None:
            text += f", certificate of delay {self.delay_certificate.text}"
        return text

    def detail(self) -> dict[str, Any]:
        return {
            "applicable": self.applicable,
            "completion_field": self.completion_field,
            "completion_date": self.completion.text,
            "completion_type": self.completion.kind,
            "completion_read_as": self.completion.latest.isoformat(),
            "due_date": self.due_date.isoformat(),
            "overdue_after": self.overdue_after.isoformat(),
            "certificate_of_delay": self.delay_certificate.text if self.delay_certificate else None,
            "results_submitted": self.submitted.text if self.submitted else None,
            "results_submitted_from": self.submitted_from or None,
            "submission_cancelled": self.cancelled,
        }


def _results_due(facts: TrialFacts, limits: Thresholds) -> _Due | None:
    """The results due date of an ACT or pACT (None for any other record)."""
    applicable = _applicable(facts)
    if applicable is None:
        return None
    completion, which = facts.primary_completion, "primary_completion_date"
    if completion is None:
        completion, which = facts.completion, "completion_date"
    if completion is None:  # _applicable() needs one; kept for the type checker
        return None
    certificate = facts.delay_certificate_submitted
    years = limits.delay_certificate_years if certificate else limits.results_years
    due = add_years(completion.latest, years)
    submitted, source = facts.results_first_submitted, "resultsFirstSubmitDate"
    if submitted is None:
        submitted, source = facts.results_pending_submitted, "submissionTracking"
    return _Due(
        applicable=applicable,
        completion=completion,
        completion_field=which,
        due_date=due,
        overdue_after=shift(due, limits.results_grace_days),
        delay_certificate=certificate,
        submitted=submitted,
        submitted_from=source if submitted is not None else "",
        cancelled=submitted is None and facts.results_submission_cancelled,
        years=years,
    )


def _applicable(facts: TrialFacts) -> str | None:
    """ "ACT", "pACT" or None, as the FDAAA TrialsTracker's converter decides it
    (ebmdatalab/clinicaltrials-act-converter ``convert_data.py``): interventional, a covered
    phase (any but phase 1 or early phase 1 alone; none is not covered), not device
    feasibility, not withdrawn; dates at the month's end. ACT: an FDA-regulated drug or
    device, started on or after 2017-01-18. pACT: started before, completing on or after it,
    and either FDA-regulated by the flags (no location test) or, without flags, a covered
    intervention type and a site in the US or a US territory."""
    if facts.study_type != "INTERVENTIONAL" or not facts.phases:
        return None
    if set(facts.phases) <= PHASE1_ONLY:
        return None
    if facts.primary_purpose == "DEVICE_FEASIBILITY" or facts.overall_status == "WITHDRAWN":
        return None
    if facts.start is None:
        return None
    flagged = bool(facts.fda_regulated_drug or facts.fda_regulated_device)
    if facts.start.latest >= FDAAA_EFFECTIVE:
        return "ACT" if flagged else None
    completion = facts.primary_completion or facts.completion
    if completion is None or completion.latest < FDAAA_EFFECTIVE:
        return None
    if flagged:
        return "pACT"
    unflagged = facts.fda_regulated_drug is None and facts.fda_regulated_device is None
    covered = any(kind in COVERED_INTERVENTIONS for kind in facts.intervention_types)
    return "pACT" if unflagged and covered and facts.has_us_site else None


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


# ---- dates, era by era -----------------------------------------------------------------------


def actual_start(version: VersionFacts) -> PartialDate | None:
    """The version's start date if it is actual: typed ACTUAL, or without a type (records from
    before the registry typed its dates) in a version posted after that date."""
    start = version.facts.start
    if start is None or start.kind == "ESTIMATED":
        return None
    if start.kind == "ACTUAL":
        return start
    posted = version.posted or (
        version.facts.last_update_posted.text if version.facts.last_update_posted else ""
    )
    if posted and _valid_day(posted) and date.fromisoformat(posted) > start.latest:
        return PartialDate(start.text, "ACTUAL")
    return None


def earliest_actual_start(chain: Sequence[VersionFacts]) -> PartialDate | None:
    """The earliest actual start any version recorded: a later edit of the start date does not
    move the day the trial started."""
    starts = [start for v in chain if (start := actual_start(v)) is not None]
    return min(starts, key=lambda s: (s.earliest, s.latest)) if starts else None


def _valid_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


# ---- primary_outcome_changed_after_start ----------------------------------------------------

MAJOR_OUTCOME_KINDS = frozenset({"outcome_added", "outcome_removed", "outcome_reclassified"})


def primary_outcome_changed_after_start(
    chain: Sequence[VersionFacts], today: date, limits: Thresholds
) -> Finding | None:
    start = earliest_actual_start(chain)
    if start is None:
        return None
    steps = []
    for before, after in itertools.pairwise(chain):
        if not after.posted or not _valid_day(after.posted):
            continue
        if date.fromisoformat(after.posted) <= start.latest:
            continue
        primary = [c for c in after.changes if _touches_primary(c) and _grade(c) != "editorial"]
        if primary:
            steps.append(_outcome_step(before, after, primary, start))
    if not steps:
        return None
    major = [s for s in steps if s["major"]]
    first = major[0] if major else steps[0]
    more = len(steps) - 1
    if major:
        change = first["major_changes"][0]
        summary = (
            f"Primary outcome changed after the trial started ({start.text}): {change} "
            f"(version {first['from_version']} → {first['to_version']}, posted {first['posted']})"
        )
    else:
        summary = (
            f"Primary outcome reworded after the trial started ({start.text}): version "
            f"{first['from_version']} → {first['to_version']}, posted {first['posted']}"
        )
    if more:
        summary += f" (and {more} more change(s))"
    return Finding(
        "primary_outcome_changed_after_start",
        "high" if major else "medium",
        summary,
        {"start_date": start.text, "grade": "major" if major else "reworded", "steps": steps},
    )


def _grade(change: Change) -> str:
    """The event's grade (``service.diff``, "Grades"); an event stored before grading is read
    by its kind: added, removed or moved major, reworded minor."""
    if change.grade is not None:
        return change.grade
    return "major" if change.kind in MAJOR_OUTCOME_KINDS else "minor"


def _touches_primary(change: Change) -> bool:
    if change.kind == "outcome_reclassified":
        return "primary" in (change.old, change.new)
    return change.kind.startswith("outcome_") and change.outcome_type == "primary"


def _outcome_step(
    before: VersionFacts, after: VersionFacts, changes: list[Change], start: PartialDate
) -> dict[str, Any]:
    major = [c.summary for c in changes if _grade(c) == "major"]
    return {
        "from_version": before.version,
        "to_version": after.version,
        "posted": after.posted,
        "start_date": start.text,
        "major": bool(major),
        "major_changes": major,
        "before": list(before.facts.primary_outcomes),
        "after": list(after.facts.primary_outcomes),
        "changes": [c.summary for c in changes],
    }


# ---- retroactive_start_date / retrospective_registration -----------------------------------


def retrospective_registration(
    chain: Sequence[VersionFacts], today: date, limits: Thresholds
) -> Finding | None:
    facts = chain[-1].facts
    start = earliest_actual_start(chain)
    if facts.study_type != "INTERVENTIONAL" or start is None:
        return None
    if start.latest < ICMJE_EFFECTIVE:  # a month-only start read at its month's end
        return None
    late = _registration_delay(start, facts.first_submitted, limits)
    if late is None or facts.first_submitted is None:
        return None
    return Finding(
        "retrospective_registration",
        "low",
        f"Registered after the trial started (first submitted {facts.first_submitted.text}, "
        f"started {start.text})",
        {
            "first_submitted": facts.first_submitted.text,
            "start_date": start.text,
            "start_now": facts.start.text if facts.start else None,
            "start_precision": start.precision,
            "days_late": late,
        },
    )


def retroactive_start_date(
    chain: Sequence[VersionFacts], today: date, limits: Thresholds
) -> Finding | None:
    latest = chain[-1]
    if _registration_delay(actual_start(latest), latest.facts.first_submitted, limits) is not None:
        return None  # the record itself looks retrospective now: nothing is hidden
    for before, after in itertools.pairwise(chain):
        old, new = actual_start(before), after.facts.start
        if old is None or new is None or new.earliest <= old.earliest:
            continue
        if _registration_delay(old, before.facts.first_submitted, limits) is not None:
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
                    "start_now": latest.facts.start.text if latest.facts.start else None,
                    "first_submitted": (
                        after.facts.first_submitted.text if after.facts.first_submitted else None
                    ),
                },
            )
    return None


def _registration_delay(
    start: PartialDate | None, submitted: PartialDate | None, limits: Thresholds
) -> int | None:
    """Days from the (actual) start to the first submission, past the grace; None if none.
    A month-only start is compared at month precision (read at its last day)."""
    if start is None or submitted is None:
        return None
    late = (submitted.earliest - start.latest).days
    return late if late > limits.retrospective_grace_days else None


# ---- enrollment_shortfall ------------------------------------------------------------------


def enrollment_shortfall(
    chain: Sequence[VersionFacts], today: date, limits: Thresholds
) -> Finding | None:
    """Completed below the ratio of the anticipated figure; or terminated with a reason about
    accrual (kept in this rule, told apart by ``detail["reason"]``)."""
    facts = chain[-1].facts
    if facts.study_type != "INTERVENTIONAL" or facts.overall_status not in (
        "COMPLETED",
        "TERMINATED",
    ):
        return None
    if limits.shortfall_phases and not set(facts.phases) & set(limits.shortfall_phases):
        return None
    planned = _last_anticipated(chain)
    actual = facts.enrollment_count if facts.enrollment_type == "ACTUAL" else None
    detail: dict[str, Any] = {
        "status": facts.overall_status,
        "phases": list(facts.phases),
        "actual": actual,
        "anticipated": planned,
        "ratio": limits.shortfall_ratio,
    }
    if (
        facts.overall_status == "COMPLETED"
        and actual is not None
        and planned
        and actual < limits.shortfall_ratio * planned
    ):
        return Finding(
            "enrollment_shortfall",
            "medium",
            f"Completed with {actual} of {planned} anticipated participants "
            f"({actual / planned:.0%})",
            {**detail, "reason": "completed_below_ratio"},
        )
    if facts.overall_status == "TERMINATED" and ACCRUAL_WORDS.search(facts.why_stopped):
        return Finding(
            "enrollment_shortfall",
            "medium",
            f"Terminated for accrual: {facts.why_stopped}",
            {**detail, "reason": "terminated_for_accrual", "why_stopped": facts.why_stopped},
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
    if facts.overall_status not in (*ACTIVE_STATUSES, "UNKNOWN"):
        return None
    verified, completion = facts.status_verified, facts.completion
    reasons = []
    if facts.overall_status == "UNKNOWN":
        reasons.append("registry_unknown_status")
    if verified is not None and (today - verified.latest).days > limits.stale_verified_days:
        reasons.append("not_verified")
    if completion is not None and (today - completion.latest).days > limits.stale_completion_days:
        reasons.append("completion_passed")
    if not reasons:
        return None
    said = facts.overall_status.replace("_", " ").lower()
    if reasons[0] == "registry_unknown_status":
        summary = "Status unknown: the registry shows 'Unknown status'" + (
            f" (last verified {verified.text})" if verified else ""
        )
    elif reasons[0] == "not_verified" and verified is not None:
        summary = f"Status {said} not verified since {verified.text}"
    else:
        summary = (
            f"Completion date {completion.text if completion else '?'} passed over a year ago, "
            f"status still {said}"
        )
    return Finding(
        "status_stale",
        "medium",
        summary,
        {
            "status": facts.overall_status,
            "reasons": reasons,
            "status_verified": verified.text if verified else None,
            "completion_date": completion.text if completion else None,
            "verified_stale_after": (
                shift(verified.latest, limits.stale_verified_days).isoformat() if verified else None
            ),
            "completion_stale_after": (
                shift(completion.latest, limits.stale_completion_days).isoformat()
                if completion
                else None
            ),
        },
    )


RULES: tuple[Rule, ...] = (
    results_overdue,
    results_due_soon,
    results_reported_late,
    primary_outcome_changed_after_start,
    retroactive_start_date,
    retrospective_registration,
    enrollment_shortfall,
    status_stale,
)
# and the trials' rule, kept across registrations (service.findings.disagree)
RULE_NAMES = (*(rule.__name__ for rule in RULES), "registrations_disagree")
DATE_DEPENDENT = frozenset(
    {"results_overdue", "results_due_soon", "results_reported_late", "status_stale"}
)


def next_review(facts: TrialFacts, today: date, limits: Thresholds | None = None) -> date | None:
    """The first day after ``today`` on which a date-dependent rule may change its verdict for
    a record whose latest version has ``facts`` (None: no date will change anything). A cycle
    re-evaluates only the records whose day has come, not the whole watch list."""
    limits = limits or Thresholds()
    days: list[date] = []
    due = _results_due(facts, limits)
    if due is not None:
        if due.submitted is None:
            days += [shift(due.due_date, -limits.due_soon_days), shift(due.due_date, 1)]
        days.append(shift(due.overdue_after, 1))
    if facts.overall_status in (*ACTIVE_STATUSES, "UNKNOWN"):
        if facts.status_verified is not None:
            days.append(shift(facts.status_verified.latest, limits.stale_verified_days + 1))
        if facts.completion is not None:
            days.append(shift(facts.completion.latest, limits.stale_completion_days + 1))
    future = [day for day in days if day > today]
    return min(future) if future else None
