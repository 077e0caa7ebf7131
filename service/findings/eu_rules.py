"""The results rules of the EU registries: ``results_overdue`` and ``results_due_soon`` for EU
Clinical Trials Register (EUCTR) and EU CTIS trials, under the same names as the
ClinicalTrials.gov rules (``findings.rules``), so that a user filters one way.

Pure: ``eu_facts(snapshot, raw)`` reads what the rules need of a record (its normalised
snapshot, and its raw record for what the snapshot lacks); ``evaluate(chain, today)`` returns
the findings that hold now; ``next_review(facts, today)`` the next day a verdict can change
without the record changing. Each finding names its own source (``Finding.cited``).

EUCTR, as the EU Trials Tracker computes it (ebmdatalab/euctr-tracker-code at a0fee05b,
``euctr/euctr/management/commands/get_trials_from_db.py``, ``update_trials_json.py``):

- every country record of the trial has ended: its end-of-trial status (section P; not the
  summary's status) is "Completed" or "Prematurely Ended". A record with another status or
  none (a third-country record never has one; a GB record frozen since 2021 says "GB - no
  longer in EU/EEA") is a country not ended, and the trial is not due;
- from the latest "Date of the global end of the trial" of the country records (a trial ended
  everywhere with no such date is not due: the Tracker's "completed, no date");
- due when that day is before today − 1 year − 28 days (the Tracker's ``due_date_cutoff``: a
  year to report, and four weeks for the register to publish). The deadline is the last day
  not due (the end + 1 year + 28 days); overdue from the day after;
- exempt: phase I in every country record (E.7.1 "Human pharmacology (Phase I)": Yes, a phase
  I/II trial included) and part of a paediatric investigation plan in none (A.7);
- results posted: every country record shows results (its "Trial results" summary line,
  "View results"). The register's text download has no such line, so a record that says
  nothing of results reads as "not known" (``results_posted`` None): the finding then says so
  and is of medium severity, not high.

CTIS, Regulation (EU) No 536/2014 Art. 37(4): "within one year from the end of a clinical
trial in all Member States concerned, the sponsor shall submit to the EU database a summary of
the results" (one year for every trial, paediatric ones included: the six months of the
paediatric rules are the Commission's guideline 2012/C 302/03 for EudraCT, not Art. 37(4)):

- every member state concerned has ended the trial: its public status is "Ended" (or, with no
  status, it notified its end);
- from the end of the trial in all member states concerned: the latest of the member states'
  end (or early termination) notifications when each gives a date, else the end of the trial in
  the EU, else its global end (no date: no verdict);
- deadline: that day + 1 year (no grace: the law's year); overdue from the day after. No
  exemption: phase I trials report too. Results posted: a summary of results submitted
  (``has_results``, its first submission ``results_first_posted``).

``results_due_soon``: the same trial within ``Thresholds.due_soon_days`` before its deadline.
The ClinicalTrials.gov thresholds ``results_years`` and ``results_grace_days`` (FDAAA's one
year and the FDAAA TrialsTracker's 30 days) are not read: the EU numbers are the law's and the
EU Trials Tracker's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from service.findings.rules import Finding, Thresholds, add_years, shift
from service.models import Severity, Snapshot
from service.registry.ctis import fields as ctis_fields
from service.registry.ctis.normalise import end_facts
from service.registry.euctr import fields as euctr_fields
from service.registry.euctr.normalise import (
    GLOBAL_END_LABEL,
    country_facts,
    shows_results,
    trial_results,
)

__all__ = [
    "CTR_SOURCE",
    "RULE_NAMES",
    "TRACKER_GRACE_DAYS",
    "TRACKER_SOURCE",
    "EuCountry",
    "EuFacts",
    "EuVersion",
    "eu_facts",
    "evaluate",
    "next_review",
]

REGISTRIES = ("euctr", "ctis")
RULE_NAMES = ("results_overdue", "results_due_soon")  # both date-dependent
RESULTS_YEARS = 1  # both: a year (Commission Guideline 2012/C 302/03; CTR Art. 37(4))
TRACKER_GRACE_DAYS = 28  # the EU Trials Tracker's four weeks for the register to publish
TRACKER = "EU Trials Tracker"
CTR = "Regulation (EU) No 536/2014 Art. 37(4)"

TRACKER_SOURCE = (
    "EU Trials Tracker (ebmdatalab/euctr-tracker-code@a0fee05b, get_trials_from_db.py): results "
    "due when every country protocol is Completed or Prematurely Ended and the latest 'Date of "
    "the global end of the trial' is over 1 year + 28 days ago; phase 1 trials outside a "
    "paediatric investigation plan exempt. The year: Commission Guideline 2012/C 302/03 "
    "(results in EudraCT within 12 months of the end of the trial)"
)
CTR_SOURCE = (
    "Regulation (EU) No 536/2014 Art. 37(4): a summary of the results in the EU database within "
    "one year of the end of the trial in all Member States concerned"
)


@dataclass(frozen=True)
class EuCountry:
    """One country's (EUCTR) or member state's (CTIS) part of the trial."""

    country: str  # "FR", "3RD"
    status: str  # the status the rule reads (EUCTR: section P's end-of-trial status)
    ended: bool  # the trial ended there, as the rule counts it
    end_date: str = ""  # yyyy-mm-dd: EUCTR its global end date; CTIS its end notification's


@dataclass(frozen=True)
class EuFacts:
    """What the EU results rules read of a record (``eu_facts``)."""

    registry: str  # "euctr" | "ctis"
    study_id: str
    countries: tuple[EuCountry, ...]
    end_date: str  # the day the rule counts from (yyyy-mm-dd), "" when the record gives none
    end_date_source: str  # where that day comes from, in words
    phase1: bool  # EUCTR: phase I in every country record; CTIS: a phase I trial (told only)
    pip: bool  # part of a paediatric investigation plan (EUCTR: in any country record)
    results_posted: bool | None  # None: the record does not say (EUCTR's text download)
    results_date: str = ""  # yyyy-mm-dd the results were first submitted, when known
    phases: tuple[str, ...] = ()

    @property
    def ended_everywhere(self) -> bool:
        return bool(self.countries) and all(country.ended for country in self.countries)

    @property
    def exempt(self) -> bool:
        """EUCTR: phase I in every country record, in no paediatric investigation plan (the
        Tracker's ``exempt``). CTIS knows no exemption."""
        return self.registry == "euctr" and self.phase1 and not self.pip


@dataclass(frozen=True)
class EuVersion:
    """One stored version of an EU record, as the rules read it (``rules.VersionFacts``)."""

    version: int  # the store's sequence (the EU registries number no versions)
    posted: str  # the day it was posted or fetched (yyyy-MM-dd), "" if unknown
    facts: EuFacts


# --- the facts ----------------------------------------------------------------------------------


def eu_facts(snapshot: Snapshot, raw: dict[str, Any]) -> EuFacts:
    """The rules' facts of an EUCTR or CTIS record: ``snapshot`` is ``normalise(raw)``.
    Raises ``RecordInvalid`` as the normaliser does, ``ValueError`` for another registry."""
    if snapshot.registry == "euctr":
        return _euctr_facts(snapshot, raw)
    if snapshot.registry == "ctis":
        return _ctis_facts(snapshot, raw)
    raise ValueError(f"no EU results rule for registry {snapshot.registry!r}")


def _euctr_results(raw: dict[str, Any], said: list[str | None]) -> bool | None:
    """Whether the trial's results are in: the search summary's word for the whole trial (the
    client asks for it once the trial ended everywhere), else every country record's own
    "Trial results" line; None when nothing says."""
    trial = trial_results(raw)
    if trial is not None:
        return shows_results(trial)
    if all(words is None for words in said):
        return None
    return all(words is not None and shows_results(words) for words in said)


def _euctr_facts(snapshot: Snapshot, raw: dict[str, Any]) -> EuFacts:
    records = country_facts(raw)
    dates = [record.global_end for record in records if _day(record.global_end)]
    posted = _euctr_results(raw, [record.results for record in records])
    return EuFacts(
        registry="euctr",
        study_id=snapshot.study_id,
        countries=tuple(
            EuCountry(
                record.country,
                record.end_of_trial_status,
                euctr_fields.tracker_ended(record.end_of_trial_status),
                record.global_end,
            )
            for record in records
        ),
        end_date=max(dates, default=""),
        end_date_source=f"{GLOBAL_END_LABEL} (the latest of the country records)",
        phase1=bool(records) and all(record.phase1 for record in records),
        pip=any(record.pip for record in records),
        results_posted=posted,
        phases=snapshot.phases,
    )


def _ctis_facts(snapshot: Snapshot, raw: dict[str, Any]) -> EuFacts:
    told = end_facts(raw)
    ends: dict[str, list[str]] = {}
    for end in told.ends:
        ends.setdefault(end.country, []).append(end.date)
    countries = tuple(
        EuCountry(
            state.country,
            state.status,
            ctis_fields.ended(state.status) or (not state.status and state.country in ends),
            max((day for day in ends.get(state.country, ()) if _day(day)), default=""),
        )
        for state in snapshot.countries
    )
    end_date, source = "", ""
    if countries and all(state.end_date for state in countries):
        end_date = max(state.end_date for state in countries)
        source = "the member states' end-of-trial notifications (the latest)"
    elif _day(told.end_date_eu):
        end_date, source = told.end_date_eu, "the end of the trial in the EU (endDateEU)"
    elif _day(told.global_end):
        end_date, source = told.global_end, "the global end of the trial"
    return EuFacts(
        registry="ctis",
        study_id=snapshot.study_id,
        countries=countries,
        end_date=end_date,
        end_date_source=source,
        phase1=bool(snapshot.phases) and all(ctis_fields.is_phase1(p) for p in snapshot.phases),
        pip=bool(told.paediatric_plans),
        results_posted=snapshot.has_results,
        results_date=snapshot.results_first_posted,
        phases=snapshot.phases,
    )


# --- the rules ----------------------------------------------------------------------------------


def evaluate(
    chain: Sequence[EuVersion], today: date, thresholds: Thresholds | None = None
) -> dict[str, Finding]:
    """The results findings that hold for an EU record now, by rule (``chain``: oldest version
    first; the rules read the latest)."""
    if not chain:
        return {}
    limits = thresholds or Thresholds()
    due = _deadline(chain[-1].facts)
    if due is None:
        return {}
    if today > due.deadline:
        finding = _overdue(due, today)
    elif shift(due.deadline, -limits.due_soon_days) <= today:
        finding = _due_soon(due, today)
    else:
        return {}
    return {finding.rule: finding}


def next_review(facts: EuFacts, today: date, thresholds: Thresholds | None = None) -> date | None:
    """The first day after ``today`` on which the verdict may change for a record whose latest
    version has ``facts``: the first day of ``results_due_soon``, then the day after the
    deadline (the first day of ``results_overdue``); None when no day will change it (not
    ended everywhere, no end date, exempt, results posted, or overdue already)."""
    limits = thresholds or Thresholds()
    due = _deadline(facts)
    if due is None:
        return None
    days = [shift(due.deadline, -limits.due_soon_days), shift(due.deadline, 1)]
    future = [day for day in days if day > today]
    return min(future) if future else None


@dataclass(frozen=True)
class _Deadline:
    facts: EuFacts
    end: date
    deadline: date  # the last day results are on time

    @property
    def tracker(self) -> bool:
        return self.facts.registry == "euctr"

    @property
    def cited(self) -> str:
        return TRACKER_SOURCE if self.tracker else CTR_SOURCE

    def countries(self) -> str:
        return ", ".join(country.country for country in self.facts.countries)

    def detail(self) -> dict[str, Any]:
        facts = self.facts
        return {
            "rule": TRACKER if self.tracker else CTR,
            "registry": facts.registry,
            "countries": [
                {
                    "country": c.country,
                    "status": c.status,
                    "ended": c.ended,
                    "end_date": c.end_date or None,
                }
                for c in facts.countries
            ],
            "end_date": facts.end_date,
            "end_date_source": facts.end_date_source,
            "results_years": RESULTS_YEARS,
            "grace_days": TRACKER_GRACE_DAYS if self.tracker else 0,
            "deadline": self.deadline.isoformat(),
            "phase1": facts.phase1,
            "paediatric_investigation_plan": facts.pip,
            "exempt": facts.exempt,
            "results_posted": facts.results_posted,
            "results_first_posted": facts.results_date or None,
        }


def _deadline(facts: EuFacts) -> _Deadline | None:
    """The results deadline of a trial ended everywhere, with an end date, not exempt, whose
    results are not posted; None for any other."""
    if facts.results_posted or facts.exempt or not facts.ended_everywhere:
        return None
    end = _day(facts.end_date)
    if end is None:
        return None
    if facts.registry == "euctr":
        return _Deadline(facts, end, _tracker_deadline(end))
    return _Deadline(facts, end, add_years(end, RESULTS_YEARS))


def _overdue(due: _Deadline, today: date) -> Finding:
    late = (today - due.deadline).days
    facts = due.facts
    if due.tracker:
        known = facts.results_posted is not None
        summary = (
            f"Results overdue as the EU Trials Tracker counts them: ended in every country "
            f"({due.countries()}), latest global end {facts.end_date}; due by "
            f"{due.deadline.isoformat()} (1 year + {TRACKER_GRACE_DAYS} days), {late} days ago, "
            + (
                "and no results on the register"
                if known
                else "and the record does not show results (its text download does not say)"
            )
        )
        severity: Severity = "high" if known else "medium"
    else:
        summary = (
            f"Summary results overdue under {CTR}: the trial ended in all member states "
            f"concerned ({due.countries()}) on {facts.end_date}; due within a year, by "
            f"{due.deadline.isoformat()}, {late} days ago, and none submitted"
        )
        severity = "high"
    return Finding("results_overdue", severity, summary, due.detail(), cited=due.cited)


def _due_soon(due: _Deadline, today: date) -> Finding:
    left = (due.deadline - today).days
    facts = due.facts
    if due.tracker:
        summary = (
            f"Results due as the EU Trials Tracker counts them by {due.deadline.isoformat()} "
            f"({left} days left): ended in every country ({due.countries()}), latest global "
            f"end {facts.end_date}"
        )
    else:
        summary = (
            f"Summary results due under {CTR} by {due.deadline.isoformat()} ({left} days "
            f"left): the trial ended in all member states concerned ({due.countries()}) on "
            f"{facts.end_date}"
        )
    return Finding("results_due_soon", "low", summary, due.detail(), cited=due.cited)


# --- the EU Trials Tracker's dates ----------------------------------------------------------------


def _tracker_due(end: date, day: date) -> bool:
    """Whether the Tracker counts results due on ``day`` for a trial whose latest global end is
    ``end``: ``max_end_date < scrape date − relativedelta(years=1) − 28 days``."""
    return end < shift(_year_before(day), -TRACKER_GRACE_DAYS)


def _tracker_deadline(end: date) -> date:
    """The last day the Tracker does not count results due: ``end`` + 1 year + 28 days, give or
    take the day a 29 February moves (found by trying the days around it)."""
    day = shift(add_years(end, RESULTS_YEARS), TRACKER_GRACE_DAYS)
    while day > date.min and _tracker_due(end, day):
        day = shift(day, -1)
    while day < date.max and not _tracker_due(end, shift(day, 1)):
        day = shift(day, 1)
    return day


def _year_before(day: date) -> date:
    """``day`` − relativedelta(years=1): 29 February gives 28 February."""
    if day.year <= date.min.year:
        return date.min
    try:
        return day.replace(year=day.year - RESULTS_YEARS)
    except ValueError:  # 29 February
        return day.replace(year=day.year - RESULTS_YEARS, day=28)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None
