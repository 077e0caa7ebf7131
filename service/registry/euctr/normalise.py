"""An EUCTR trial (its text download, every country record) → ``Snapshot``.

The raw record is what ``EuctrClient.fetch`` returns and the store keeps:
``{"eudract_number": "2021-002179-21", "text": "<the register's full text download>"}``. The
register shows no versions, so this text is trialwatch's only history of the trial.

One snapshot per trial, built as ctrdata reads the register:

- ``countries``: one ``CountryRecord`` per country record (code from its link, name in English,
  status = ``P. End of Trial Status`` when given, else the summary's ``Trial Status``, planned
  enrollment = ``F.4.1 In the member state``). A country listed twice keeps the later record.
- Trial-level text (titles, sponsor's code, sponsors, conditions, phases, end points, planned
  enrollment) comes from one preferred country record: ctrdata's order BE, ES, DE, FR, IT, NL,
  DK, AT, PL, PT, then the first other by code, 3RD and GB only when nothing else is there.
- ``secondary_ids``: every A.5.x identifier any country record names (trial-wide ids; one
  country often lists the NCT number another leaves out), placeholders dropped.
- ``enrollment_count``: F.4.2.2 (whole trial), else F.4.2.1 (EEA), else the sum of every
  country's F.4.1. The age-band counts of F.1 are not used: F.1.1's count is already the
  subtotal of F.1.1.1–F.1.1.6, and adding them counts twice (rfhb/ctrdata#62).
- ``start_date``: the register has none. The earliest date on which a country could start:
  per country the later of its competent authority's authorisation and its ethics committee's
  opinion, the earliest over the countries (this reproduces the register's own "Start Date"
  of its search results for 2015-001314-10); else the earliest date a record was first
  entered in EudraCT. Its type is "": an authorisation, not a reported start.
- ``completion_date``: the latest ``P. Date of the global end of the trial`` any country
  record gives (one country's record may still lack it), ACTUAL.
- ``overall_status``: the countries' statuses in words ("Ongoing"; "Completed in FR; Ongoing
  in ES, PT"); ``lifecycle`` from them (``fields.trial_lifecycle``).

``country_facts`` reads, beside the snapshot (and changing none of its values), what the EU
Trials Tracker's results rule reads of each country record (``findings.eu_rules``): the end of
trial status of section P alone, its date of the global end of the trial, E.7.1 (phase I), A.7
(part of a paediatric investigation plan) and a summary line on results, where there is one.

Pure: no I/O, no clock. ``normalise``, ``record_meta`` and ``country_facts`` raise nothing but
``RecordInvalid`` naming what is wrong (``text: …``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from service.errors import RecordInvalid
from service.models import CountryRecord, Outcome, RecordMeta, Snapshot, StudyDate
from service.registry.euctr.fields import (
    LAST_RESORT_COUNTRIES,
    PREFERRED_COUNTRIES,
    country_name,
    lifecycle,
    tracker_ended,
)
from service.registry.euctr.text import EUDRACT, CountryText, NotADownload, parse_download
from service.text import fold_text

__all__ = [
    "EUDRACT_KEY",
    "TEXT_KEY",
    "CountryFacts",
    "country_facts",
    "country_records",
    "normalise",
    "overall_status",
    "record_meta",
    "shows_results",
]

EUDRACT_KEY = "eudract_number"  # the raw record's keys
TEXT_KEY = "text"
# the search summary's "Trial results" line of the trial (the download has none), kept when the
# client asked for it: for a trial ended in every country, where results are due
RESULTS_KEY = "trial_results"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_COUNT = re.compile(r"\d{1,12}", re.ASCII)
_MAX_SHOWN = 40
# A.5.x values that name no registration
_PLACEHOLDERS = frozenset(
    {
        "", "-", "--", ".", "0", "n/a", "na", "n.a.", "nil", "nil known", "none", "no",
        "not applicable", "not available", "not known", "unknown", "pending", "tbd",
        "not yet", "not yet assigned", "not yet available", "not registered", "no number",
        "nct00000000", "nct12345678", "nct11111111", "nct99999999", "nct87654321",
    }
)  # fmt: skip
_PHASES = {"E.7.1": "Phase 1", "E.7.2": "Phase 2", "E.7.3": "Phase 3", "E.7.4": "Phase 4"}
_ID_ITEMS = ("A.5.1", "A.5.2", "A.5.3", "A.5.4")

STATUS_LABEL = "P. End of Trial Status"
SUMMARY_STATUS_LABEL = "Trial Status"
GLOBAL_END_LABEL = "P. Date of the global end of the trial"
CA_DECISION_LABEL = "N. Competent Authority Decision"
CA_DATE_LABEL = "N. Date of Competent Authority Decision"
EC_DATE_LABEL = "N. Date of Ethics Committee Opinion"
FIRST_ENTERED_LABEL = "Date on which this record was first entered in the EudraCT database"
RESULTS_LABEL = "Trial results"  # a summary line: "View results" / "(No results available)"
PHASE1_ITEM = "E.7.1"  # "E.7.1 Human pharmacology (Phase I): Yes"
PIP_ITEM = "A.7"  # "A.7 Trial is part of a Paediatric Investigation Plan: Yes"


@dataclass(frozen=True)
class CountryFacts:
    """What the EU Trials Tracker reads of one country record to decide whether results are due
    (its ``get_trials_from_db.py``): the values as the record gives them, none derived."""

    country: str  # "FR", "3RD"
    end_of_trial_status: str  # P. End of Trial Status alone (the summary's status not used)
    global_end: str  # P. Date of the global end of the trial (yyyy-mm-dd), "" if none
    phase1: bool  # E.7.1 Human pharmacology (Phase I): Yes
    pip: bool  # A.7 Trial is part of a Paediatric Investigation Plan: Yes
    results: str | None  # the summary's "Trial results" value; None: the record has no such line


# --- public API -----------------------------------------------------------------------------


def normalise(raw: object) -> Snapshot:
    """The tracked content of one trial (every country record of its download)."""
    number, records = _records(raw)
    countries = _by_country(records)
    lead = _preferred(countries)
    country_list = country_records(countries)
    status = overall_status(country_list)
    sponsors = _texts(lead.values("B.1.1 Name of Sponsor"))
    return Snapshot(
        registry="euctr",
        study_id=number,
        org_study_id=_text(_item(lead, "A.4.1") or lead.value("Sponsor's Protocol Code Number")),
        secondary_ids=_secondary_ids(countries.values()),
        official_title=_text(_item(lead, "A.3")),
        brief_title=_text(_item(lead, "A.3.1")),
        acronym=_text(_item(lead, "A.3.2")),
        overall_status=status,
        lifecycle=lifecycle(status),
        phases=tuple(phase for code, phase in _PHASES.items() if _yes(_item(lead, code))),
        enrollment_count=_enrollment(lead, country_list),
        start_date=_start_date(countries.values()),
        completion_date=_completion_date(countries.values()),
        conditions=_conditions(lead),
        primary_outcomes=_outcomes(lead, "E.5.1", "E.5.1.1"),
        secondary_outcomes=_outcomes(lead, "E.5.2", "E.5.2.1"),
        lead_sponsor=sponsors[0] if sponsors else "",
        collaborators=_sorted_set(sponsors[1:]),
        has_results=_has_results(countries.values()) or shows_results(trial_results(raw) or ""),
        countries=country_list,
    )


def record_meta(raw: object) -> RecordMeta:
    """The register gives no version and no update date: only the trial's number (read
    without parsing the download again: ``normalise`` checks the text holds that trial)."""
    number, _text = _number_and_text(raw)
    return RecordMeta(study_id=number, registry_version=None, last_update_posted="")


def trial_results(raw: object) -> str | None:
    """The search summary's "Trial results" value the client kept in ``raw``; None when it
    did not ask (the trial is not ended everywhere) or the register did not say."""
    said = raw.get(RESULTS_KEY) if isinstance(raw, dict) else None
    return said if isinstance(said, str) and said.strip() else None


def ended_everywhere(raw: object) -> bool:
    """Every country record's P. End of Trial Status is an end (the EU Trials Tracker's)."""
    facts = country_facts(raw)
    return bool(facts) and all(tracker_ended(f.end_of_trial_status) for f in facts)


def country_facts(raw: object) -> tuple[CountryFacts, ...]:
    """The results rule's facts of each country record, sorted by code (a country listed twice
    keeps its later record, as ``normalise`` does)."""
    _number, records = _records(raw)
    return tuple(
        CountryFacts(
            country=code,
            end_of_trial_status=_text(record.value(STATUS_LABEL)),
            global_end=_date(record.value(GLOBAL_END_LABEL)),
            phase1=_yes(_item(record, PHASE1_ITEM)),
            pip=_yes(_item(record, PIP_ITEM)),
            results=_text(record.value(RESULTS_LABEL)) if RESULTS_LABEL in record.fields else None,
        )
        for code, record in sorted(_by_country(records).items())
    )


def country_records(countries: Mapping[str, CountryText]) -> tuple[CountryRecord, ...]:
    """One ``CountryRecord`` per country, sorted by code."""
    return tuple(
        CountryRecord(
            country=code,
            name=country_name(code),
            status=_country_status(record),
            enrollment=_count(record.value("F.4.1 In the member state")),
        )
        for code, record in sorted(countries.items())
    )


def overall_status(countries: Iterable[CountryRecord]) -> str:
    """The countries' statuses in words: ``Ongoing`` when they agree, else each status with
    its countries (``Completed in FR; Ongoing in ES, GR``), statuses in alphabetical order."""
    by_status: dict[str, list[str]] = {}
    for country in countries:
        by_status.setdefault(country.status or "No status", []).append(country.country)
    if len(by_status) == 1:
        return next(iter(by_status))
    return "; ".join(
        f"{status} in {', '.join(sorted(codes))}"
        for status, codes in sorted(by_status.items(), key=lambda item: item[0].casefold())
    )


# --- the raw record -------------------------------------------------------------------------


def _number_and_text(raw: object) -> tuple[str, str]:
    if not isinstance(raw, dict):
        raise RecordInvalid(
            f"expected an EUCTR record {{{EUDRACT_KEY}, {TEXT_KEY}}}, got {_describe(raw)}"
        )
    number = raw.get(EUDRACT_KEY)
    if not isinstance(number, str) or EUDRACT.fullmatch(number.strip()) is None:
        raise RecordInvalid(f"{EUDRACT_KEY}: expected a EudraCT number, got {_describe(number)}")
    text = raw.get(TEXT_KEY)
    if not isinstance(text, str):
        raise RecordInvalid(f"{TEXT_KEY}: expected the register's text, got {_describe(text)}")
    return number.strip(), text


def _records(raw: object) -> tuple[str, tuple[CountryText, ...]]:
    number, text = _number_and_text(raw)
    try:
        download = parse_download(text)
    except NotADownload as exc:
        raise RecordInvalid(f"{TEXT_KEY}: {exc}") from None
    records = tuple(r for r in download.records if r.eudract_number == number)
    if not records:
        raise RecordInvalid(f"{TEXT_KEY}: no country record of {number}")
    return number, records


def _by_country(records: Iterable[CountryText]) -> dict[str, CountryText]:
    # The register lists a country twice when the trial was entered there twice; records come
    # in the order they were entered, so the later one is the current one.
    countries: dict[str, CountryText] = {}
    for record in records:
        countries[record.country] = record
    return countries


def _preferred(countries: Mapping[str, CountryText]) -> CountryText:
    for code in PREFERRED_COUNTRIES:
        if code in countries:
            return countries[code]
    others = sorted(code for code in countries if code not in LAST_RESORT_COUNTRIES)
    for code in (*others, *LAST_RESORT_COUNTRIES):
        if code in countries:
            return countries[code]
    raise AssertionError("a trial without a country record")  # _records makes at least one


# --- fields ---------------------------------------------------------------------------------


def _item(record: CountryText, code: str) -> str:
    """The first value of item ``code`` (``"A.3.1"``), whatever the words of its label."""
    for _label, values in record.starting(code):
        return values[0] if values else ""
    return ""


def _country_status(record: CountryText) -> str:
    return _text(record.value(STATUS_LABEL)) or _text(record.value(SUMMARY_STATUS_LABEL))


def _secondary_ids(records: Iterable[CountryText]) -> tuple[str, ...]:
    found: list[str] = []
    for record in records:
        for code in _ID_ITEMS:
            for _label, values in record.starting(code):
                for value in values:
                    # A.5.4 lists one identifier a line
                    found.extend(_text(line) for line in value.splitlines())
    return _sorted_set(i for i in found if i.casefold() not in _PLACEHOLDERS)


def _conditions(lead: CountryText) -> tuple[str, ...]:
    # some records leave E.1.1 empty and name the condition only in plain words (E.1.1.1)
    condition = _text(_item(lead, "E.1.1")) or _text(_item(lead, "E.1.1.1"))
    return (condition,) if condition else ()


def _outcomes(lead: CountryText, measure: str, time_points: str) -> tuple[Outcome, ...]:
    # One end point field is one outcome: its text, not split (the register numbers them
    # freely: "1-", "•", "Part B: 1 …"; a split would invent outcomes and their order).
    text = _text(_item(lead, measure))
    if not text:
        return ()
    return (Outcome(measure=text, time_frame=_text(_item(lead, time_points))),)


def _enrollment(lead: CountryText, countries: tuple[CountryRecord, ...]) -> int | None:
    for label in ("F.4.2.2 In the whole clinical trial", "F.4.2.1 In the EEA"):
        count = _count(lead.value(label))
        if count is not None:
            return count
    planned = [c.enrollment for c in countries if c.enrollment is not None]
    return sum(planned) if planned else None


def _start_date(records: Iterable[CountryText]) -> StudyDate:
    records = list(records)
    could_start = [_could_start(record) for record in records]
    dates = [day for day in could_start if day]
    if not dates:
        dates = [d for r in records if (d := _date(r.value(FIRST_ENTERED_LABEL)))]
    return StudyDate(date=min(dates), type="") if dates else StudyDate()


def _could_start(record: CountryText) -> str:
    """The day a country could start: both its authority and its ethics committee agreed."""
    decision = record.value(CA_DECISION_LABEL).strip().casefold()
    if decision and not decision.startswith("authorised"):
        return ""  # not authorised, or withdrawn before a decision
    days = [
        d for d in (_date(record.value(CA_DATE_LABEL)), _date(record.value(EC_DATE_LABEL))) if d
    ]
    return max(days) if days else ""


def _completion_date(records: Iterable[CountryText]) -> StudyDate:
    dates = [d for r in records if (d := _date(r.value(GLOBAL_END_LABEL)))]
    return StudyDate(date=max(dates), type="ACTUAL") if dates else StudyDate()


def _has_results(records: Iterable[CountryText]) -> bool:
    # The protocol download says nothing of results; a summary line "Trial results: View
    # results" (the search download's) is the only word on them a text record can carry.
    return any(shows_results(record.value(RESULTS_LABEL)) for record in records)


def shows_results(said: str) -> bool:
    """Whether a "Trial results" value shows results ("View results"; not "(No results
    available)", not blank)."""
    words = said.strip().casefold()
    return bool(words) and "no results" not in words


# --- values ---------------------------------------------------------------------------------


def _text(value: str) -> str:
    return fold_text(value)


def _texts(values: Iterable[str]) -> list[str]:
    return [t for v in values if (t := _text(v)) and t.casefold() != "empty"]


def _yes(value: str) -> bool:
    return value.strip().casefold() == "yes"


def _count(value: str) -> int | None:
    """A planned number of subjects; None for a blank or junk value (the register's text is
    typed by hand: a count it cannot read is not a count, and not a broken trial)."""
    match = _COUNT.fullmatch(value.strip())
    return int(match.group(0)) if match else None


def _date(value: str) -> str:
    text = value.strip()
    return text if _DATE.fullmatch(text) else ""


def _sorted_set(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if v}, key=lambda v: (v.casefold(), v)))


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        shown = value if len(value) <= _MAX_SHOWN else value[: _MAX_SHOWN - 1] + "…"
        return repr(shown)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
