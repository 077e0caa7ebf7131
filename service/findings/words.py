"""A finding's detail in words: labelled rows a person reads, for every place a finding is
shown (web pages, the Atom feed, email, ``trialwatch findings``, the HTML report).

Pure: no I/O, no clock. ``finding_words(detail, today)`` turns the detail object a rule stored
(``service/findings/rules.py``, ``eu_rules.py``, ``disagree.py``) into:

- ``rows``: one ``Row(label, lines)`` per detail value worth showing, in the detail's order;
  labels in words ("Primary completion", not ``primary_completion_date``), values in words
  (registry enums lower-cased: ``NOT_YET_RECRUITING`` → "not yet recruiting", ``ACTUAL`` →
  "actual"; booleans "yes"/"no"; lists of objects one line each). Values that say nothing
  (None, "") are left out, except where "none" is the evidence (a certificate of delay).
- ``steps``: the outcome steps of ``primary_outcome_changed_after_start``, each with the primary
  outcomes before and after as ``(before, after)`` pairs ("" where one side has none), the
  unchanged ones left out, for a word diff where it is shown.
- ``when``: how far the finding's deadline is from ``today`` ("due 2021-04-12, 30 days ago",
  "due 2026-05-01, in 12 days", "due today"); "" without a deadline or without ``today`` (a
  resolved finding: its deadline no longer matters). Day counts are never stored as text: a
  finding is stored once and shown on many days, so the count is made here, when shown.

The same detail and day always give the same words; an unknown key is shown with its name in
words and its value as text (a new rule shows, if less well, before this table knows it).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from service.diff import humanise

__all__ = ["FindingWords", "Row", "Step", "days_phrase", "finding_words", "value_words"]

# Keys whose value is the day a finding's obligation falls due, most telling first.
DEADLINE_KEYS = ("deadline", "due_date", "due")

# key → its label; keys read together with another (``completion_type``) are not here
LABELS: dict[str, str] = {
    "deadline": "Results due",
    "due_date": "Results due",
    "overdue_after": "Overdue after",
    "applicable": "Applicable clinical trial",
    "completion_read_as": "Completion read as",
    "results_submitted": "Results submitted",
    "results_submitted_from": "Results submitted (from)",
    "submission_cancelled": "Submission cancelled",
    "grade": "Change",
    "start_now": "Start now",
    "start_precision": "Start date precision",
    "phases": "Phases",
    "ratio": "Shortfall below",
    "reason": "Reason",
    "reasons": "Reasons",
    "verified_stale_after": "Stale if not verified after",
    "completion_stale_after": "Stale past completion after",
    "due": "Due",
    "certificate_of_delay": "Certificate of delay",
    "first_submitted": "First submitted",
    "start_date": "Start",
    "days_late": "Registered after the start",
    "old_start": "Start before",
    "new_start": "Start now",
    "status": "Status",
    "actual": "Actual enrollment",
    "anticipated": "Anticipated enrollment",
    "why_stopped": "Why stopped",
    "status_verified": "Status last verified",
    "completion_date": "Completion",
    "primary_completion_date": "Primary completion",
    "rule": "Counted as",
    "registry": "Registry",
    "countries": "Countries",
    "end_date": "End of trial",
    "end_date_source": "End date from",
    "results_years": "Results within",
    "grace_days": "Grace",
    "phase1": "Phase 1 trial",
    "paediatric_investigation_plan": "Paediatric investigation plan",
    "exempt": "Exempt",
    "results_posted": "Results posted",
    "results_first_posted": "Results first posted",
    "kinds": "Disagree on",
    "disagreements": "Disagreements",
    "registrations": "Registrations",
    "status_since": "Status since",
    "lifecycle": "Lifecycle",
    "overall_status": "Status",
    "enrollment": "Enrollment",
    "enrollment_actual": "Enrollment is actual",
}
# keys whose values are registry enums, shown as lower-case words
ENUM_KEYS = frozenset({"status", "overall_status", "lifecycle", "completion_type", "type"})
# codes a rule stores as its reason, in words
CODES = {
    "registry_unknown_status": "the registry shows 'Unknown status'",
    "not_verified": "status not verified in time",
    "completion_passed": "completion date long past",
    "completed_below_ratio": "completed below the anticipated enrollment",
    "terminated_for_accrual": "terminated for poor accrual",
    "resultsFirstSubmitDate": "the date results were first submitted",
    "submissionTracking": "results submissions under quality control review",
}
CODE_KEYS = frozenset({"reason", "reasons", "grade", "results_submitted_from"})
REGISTRIES = {
    "ctgov": "ClinicalTrials.gov",
    "euctr": "EU Clinical Trials Register",
    "ctis": "CTIS",
    "isrctn": "ISRCTN",
}
# read elsewhere: the versions as one row, the completion's field and type with its date
_FOLDED = frozenset(
    {"from_version", "to_version", "completion_field", "completion_type", "steps", "major"}
)
_KEEP_NONE = frozenset({"certificate_of_delay"})  # "none" is the evidence
_ENUM = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")  # NOT_YET_RECRUITING (ACTUAL: by its key)
_UNITS = {"days_late": "days", "grace_days": "days", "results_years": "year(s)"}


@dataclass(frozen=True)
class Row:
    label: str
    lines: tuple[str, ...]  # one line, or one per item of a list of objects

    @property
    def text(self) -> str:
        return "; ".join(self.lines)


@dataclass(frozen=True)
class Step:
    """One version step in which the primary outcomes changed after the start."""

    title: str  # "Version 3 → 5, posted 2021-02-01 (after the start, 2020-06-16)"
    pairs: tuple[tuple[str, str], ...]  # (before, after): "" where that side has none
    changes: tuple[str, ...]  # the change events' summaries
    unchanged: int  # primary outcomes that stayed as they were


@dataclass(frozen=True)
class FindingWords:
    rows: tuple[Row, ...]
    steps: tuple[Step, ...]
    when: str  # the deadline's distance from today, "" if none or not asked


def finding_words(detail: Mapping[str, Any] | None, today: date | None = None) -> FindingWords:
    """``detail`` as labelled rows, outcome steps, and its deadline seen from ``today``."""
    detail = detail or {}
    rows: list[Row] = []
    if "from_version" in detail or "to_version" in detail:
        rows.append(Row("Versions", (_versions(detail),)))
    for key, value in detail.items():
        if key in _FOLDED or (value in (None, "", []) and key not in _KEEP_NONE):
            continue
        if key == "completion_date" and "completion_field" in detail:
            rows.append(_completion(detail))
            continue
        row = Row(label(key), _lines(key, value))
        if key in DEADLINE_KEYS and (phrase := _distance(value, today)):
            row = Row(row.label, (f"{row.lines[0]} ({phrase})",))
        rows.append(row)
    steps = tuple(_step(s) for s in detail.get("steps") or () if isinstance(s, Mapping))
    return FindingWords(tuple(rows), steps, days_phrase(detail, today))


def days_phrase(detail: Mapping[str, Any] | None, today: date | None) -> str:
    """ "due 2021-04-12, 30 days ago" / "due 2026-05-01, in 12 days" / "due today" for the
    detail's deadline (its first of ``DEADLINE_KEYS`` that is a day); "" without one."""
    if today is None or not detail:
        return ""
    for key in DEADLINE_KEYS:
        day = _day(detail.get(key))
        if day is not None:
            return f"due {day.isoformat()}, {_distance(day.isoformat(), today)}"
    return ""


def label(key: str) -> str:
    """A detail key as a label: the table's words, else the key in words."""
    if key in LABELS:
        return LABELS[key]
    words = key.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def value_words(value: Any, key: str = "") -> str:
    """One value in words: enums lower-cased, booleans yes/no, lists joined, objects as
    ``label: value`` pairs."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "ratio" and isinstance(value, float) and 0 < value < 1:
        return f"{value:.0%} of the anticipated"
    if isinstance(value, int | float):
        unit = _UNITS.get(key)
        return f"{value:,}" + (f" {unit}" if unit else "")
    if isinstance(value, str):
        if key == "registry":
            return REGISTRIES.get(value, value)
        if key in CODE_KEYS:
            return CODES.get(value, value.replace("_", " "))
        if key in ENUM_KEYS or _ENUM.fullmatch(value):
            return enum_words(value)
        return value
    if isinstance(value, Sequence):
        return ", ".join(value_words(v, key) for v in value)
    if isinstance(value, Mapping):
        return _object(value)
    return str(value)


def enum_words(value: str) -> str:
    """A registry enum in lower-case words: ``NOT_YET_RECRUITING`` → "not yet recruiting",
    ``PHASE2`` → "phase 2", ``primary_completion_date`` → "primary completion date"."""
    if value.islower() and "_" in value:
        return value.replace("_", " ")
    words = humanise(value)
    return words.lower() if words != value else value.replace("_", " ").lower()


# Each rule's name as a reader says it (the codes stay in URLs, JSON and the CLI's filters).
RULE_WORDS: dict[str, str] = {
    "results_overdue": "Results overdue",
    "results_due_soon": "Results due soon",
    "results_reported_late": "Results reported late",
    "primary_outcome_changed_after_start": "Primary outcome changed after the start",
    "retroactive_start_date": "Start date moved back after the start",
    "retrospective_registration": "Registered after the start",
    "enrollment_shortfall": "Enrollment short of the plan",
    "status_stale": "Status not kept up to date",
    "registrations_disagree": "Registrations of one trial disagree",
}


def rule_words(rule: str) -> str:
    """A rule in words; a rule this table does not know yet, its code in words."""
    return RULE_WORDS.get(rule) or rule.replace("_", " ").capitalize()


# ---- the pieces -------------------------------------------------------------------------------


def _versions(detail: Mapping[str, Any]) -> str:
    before, after = detail.get("from_version"), detail.get("to_version")
    if before is None or after is None:
        return str(after if before is None else before)
    return f"{before} → {after}"


def _completion(detail: Mapping[str, Any]) -> Row:
    """The date a results deadline counts from: "Primary completion: 2020-03-13 (actual)"."""
    field = str(detail.get("completion_field") or "completion_date")
    kind = detail.get("completion_type")
    text = str(detail["completion_date"])
    if kind:
        text += f" ({enum_words(str(kind))})"
    return Row(label(field), (text,))


def _lines(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
        return tuple(_item(key, v) for v in value)
    return (value_words(value, key),)


def _item(key: str, value: Any) -> str:
    """One object of a list: a country record, a disagreement, a registration."""
    if not isinstance(value, Mapping):
        return value_words(value, key)
    if key == "countries":
        status = value_words(value.get("status"), "status") if value.get("status") else "no status"
        end = f", ended {value['end_date']}" if value.get("end_date") else ""
        return f"{value.get('country', '?')}: {status}{end}"
    if key == "disagreements" and value.get("summary"):
        return str(value["summary"])
    if key == "registrations":
        name = f"{REGISTRIES.get(value.get('registry', ''), value.get('registry', ''))} "
        name += str(value.get("study_id", ""))
        if not value.get("stored", True):
            return f"{name}: named by {value.get('named_by') or 'another record'}, not watched"
        said = (
            [value_words(value.get("overall_status"), "status")]
            if value.get("overall_status")
            else []
        )
        if value.get("status_since"):
            said.append(f"since {value['status_since']}")
        return name + (f": {', '.join(said)}" if said else "")
    return _object(value)


def _object(value: Mapping[str, Any]) -> str:
    return "; ".join(
        f"{label(str(k))}: {value_words(v, str(k))}"
        for k, v in value.items()
        if v not in (None, "")
    )


def _step(step: Mapping[str, Any]) -> Step:
    title = f"Version {_versions(step)}"
    if step.get("posted"):
        title += f", posted {step['posted']}"
    if step.get("start_date"):
        title += f" (after the start, {step['start_date']})"
    before = [str(o) for o in step.get("before") or ()]
    after = [str(o) for o in step.get("after") or ()]
    kept = [o for o in before if o in after]
    gone = [o for o in before if o not in kept]
    came = [o for o in after if o not in kept]
    pairs = tuple((a or "", b or "") for a, b in itertools.zip_longest(gone, came))
    changes = [str(c) for c in step.get("major_changes") or step.get("changes") or ()]
    return Step(title, pairs, tuple(changes), len(kept))


def _day(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _distance(value: Any, today: date | None) -> str:
    """ "30 days ago", "in 12 days", "today" from ``today`` to the day ``value``."""
    day = _day(value)
    if day is None or today is None:
        return ""
    days = (day - today).days
    if days == 0:
        return "today"
    count = f"{abs(days):,} day{'' if abs(days) == 1 else 's'}"
    return f"in {count}" if days > 0 else f"{count} ago"
