"""A CTIS ``/retrieve`` record → ``Snapshot``: the tracked fields, folded and ordered.

Pure functions: no I/O, no clock. ``normalise`` and ``record_meta`` raise nothing but
``RecordInvalid``, whose message names the path of the offending value
(``authorizedApplication.authorizedPartsII[1].recruitmentSubjectCount: expected a number …``).

Two shapes are read:

* the portal's format since its relaunch on 2024-06-17: Part I, the parts II and the member
  states under ``authorizedApplication``, the public status in ``ctPublicStatusCode``;
* the format before it ("CTIS1", as ctrdata stored records then): ``authorizedPartI``,
  ``authorizedPartsII``, ``memberStatesConcerned`` and ``applications`` at the top level, the
  old portal's status words in ``ctStatus``. Their paths differ from ``fields.FIELD_PATHS``;
  such records are history only (the API no longer serves them).

The status trap: in a ``/retrieve`` record ``ctStatus`` is the *application's* status
("Authorised" for a trial whose public status is "Ongoing, recruiting"); the trial's status is
the public code ``ctPublicStatusCode``. ``ctStatus`` is read only where it is the public code
(an integer: a ``/search`` row merged over the record, as ctrdata stores them) and the record
has no ``ctPublicStatusCode``, or in a CTIS1 record, where it held the old portal's status.

``end_facts`` reads, beside the snapshot (and changing none of its values), what the results
rule of Regulation (EU) No 536/2014 Art. 37(4) needs and the snapshot lacks
(``findings.eu_rules``): each member state's notified end of the trial (or early termination)
with its date, the end of the trial in the EU, its global end, and the paediatric investigation
plans Part I names. It is lenient where ``normalise`` is strict: a value of an unexpected shape
there is a fact not given, not an invalid record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from service.errors import RecordInvalid
from service.models import CountryRecord, Outcome, RecordMeta, Snapshot, StudyDate
from service.registry.ctis import fields
from service.registry.shape import (
    MAX_INT,
    at_path,
    child_list,
    child_object,
    child_objects,
    describe,
    invalid,
    sorted_set,
    whole_number,
)
from service.text import fold_text

__all__ = ["EndFacts", "MemberStateEnd", "end_facts", "normalise", "record_meta"]

Json = dict[str, Any]
T = TypeVar("T")

_DAY_FIRST = re.compile(r"(\d{2})/(\d{2})/(\d{4})", re.ASCII)  # 28/04/2021
_ISO_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ][0-9:.]*Z?)?", re.ASCII)  # 2024-04-15T…
_LEGACY_COUNTRY_STATUS = re.compile(r"([A-Z]{2}):\s*(.*?)\s*(?=,\s*[A-Z]{2}:|$)", re.ASCII)
# What sponsors type where they have no other registration: not an identifier.
_PLACEHOLDERS = frozenset(
    {
        "-", "--", "0", "n/a", "na", "n.a.", "nil", "nil known", "none", "not applicable",
        "not available", "not known", "unknown", "pending", "tbd", "tba",
        "nct00000000", "nct12345678", "nct11111111", "nct99999999", "nct87654321",
    }
)  # fmt: skip


# --- public API -------------------------------------------------------------------------------


def normalise(raw: object) -> Snapshot:
    """Return the tracked content of a CTIS record (either shape) as a ``Snapshot``."""
    record = _record(raw)
    code = _public_code(record)
    overall_status = _overall_status(record, code)
    return Snapshot(
        registry="ctis",
        study_id=record.study_id,
        **_identification(record),
        overall_status=overall_status,
        lifecycle=_lifecycle(record, code, overall_status),
        phases=_phases(record),
        **_enrollment(record),
        **_dates(record),
        conditions=_conditions(record),
        **_outcomes(record),
        **_sponsors(record),
        **_results(record),
        countries=_countries(record),
    )


def record_meta(raw: object) -> RecordMeta:
    """The record's id and the day CTIS last updated it (``lastUpdated``, dd/mm/yyyy, as
    yyyy-mm-dd; a record without it, as ``/retrieve`` may serve it, gives its ``publishDate``)."""
    record = _record(raw)
    updated = _day(record.raw.get("lastUpdated"), fields.LAST_UPDATED_PATH)
    if not updated:
        updated = _day(record.raw.get("publishDate"), "publishDate")
    return RecordMeta(study_id=record.study_id, last_update_posted=updated)


@dataclass(frozen=True)
class MemberStateEnd:
    """One member state's notification that the trial ended there (or ended early)."""

    country: str  # the member state's code ("BE"), as ``Snapshot.countries`` has it
    kind: str  # the notification type as ``WORDS_LIKE_THIS`` (END_OF_TRIAL, EARLY_TERMINATION)
    date: str  # yyyy-mm-dd; "" when the notification gives no date that can be read


@dataclass(frozen=True)
class EndFacts:
    """The end of a trial as its record tells it, beyond the snapshot (see ``end_facts``)."""

    ends: tuple[MemberStateEnd, ...] = ()  # sorted by member state, then date
    end_date_eu: str = ""  # endDateEU (yyyy-mm-dd): the end of the trial in the EU
    global_end: str = ""  # the global end of the trial (trialGlobalEnd, events.trialGlobalEndDate)
    paediatric_plans: tuple[str, ...] = ()  # the PIP numbers Part I names ("" when unnumbered)


def end_facts(raw: object) -> EndFacts:
    """The end of the trial per member state, in the EU and globally, and the paediatric
    investigation plans, of a CTIS record (either shape); ``RecordInvalid`` only for what is not
    a CTIS record at all."""
    record = _record(raw)
    names = {
        state.key: state.code or fields.member_state_code(state.name) for state in _states(record)
    }
    ends = [
        MemberStateEnd(code, kind, day)
        for code, kind, day in _dated_notifications(record, names)
        if any(end in kind for end in fields.END_NOTIFICATIONS)
    ]
    events = _lenient_object(record.raw.get(fields.EVENTS))
    return EndFacts(
        ends=tuple(sorted(ends, key=lambda end: (end.country, end.date, end.kind))),
        end_date_eu=_lenient_day(record.raw.get(fields.END_DATE_EU_PATH)),
        global_end=_lenient_day(_any_global_end(record))
        or _lenient_day(events.get(fields.GLOBAL_END_EVENT)),
        paediatric_plans=_paediatric_plans(record),
    )


def _states(record: _Record) -> list[_MemberState]:
    try:
        return list(_items(record.application, "memberStatesConcerned", record.at, _MemberState))
    except RecordInvalid:
        return []


def _dated_notifications(record: _Record, names: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """(member state code, notification type as ``WORDS_LIKE_THIS``, yyyy-mm-dd or "") of every
    trial event, in either format (``events.trialEvents[].events[]``; before the relaunch,
    ``mscTrialNotificationsInfoList[].mscNotificationsListInfo[]``)."""
    lists = (
        (_lenient_object(record.raw.get(fields.EVENTS)).get("trialEvents"), "events"),
        (record.raw.get("mscTrialNotificationsInfoList"), "mscNotificationsListInfo"),
    )
    for per_states, key in lists:
        for per_state in _lenient_list(per_states):
            if not isinstance(per_state, dict):
                continue
            name = per_state.get("mscName")
            code = (
                fields.member_state_code(name)
                if isinstance(name, str) and name.strip()
                else names.get(str(per_state.get("mscId")), "")
            )
            for event in _lenient_list(per_state.get(key)):
                if isinstance(event, dict) and isinstance(event.get("notificationType"), str):
                    day = next(
                        (d for k in fields.EVENT_DATE_KEYS if (d := _lenient_day(event.get(k)))),
                        "",
                    )
                    yield code, _kind(event["notificationType"]), day


def _any_global_end(record: _Record) -> object:
    # an empty list while the trial runs, an object (or a list of one) once it has ended; the
    # date as globalEndDate (the current format) or endDate (ctrdata's CTIS1 field)
    value = record.application.get("trialGlobalEnd")
    if isinstance(value, list):
        value = next((item for item in value if isinstance(item, dict)), None)
    if not isinstance(value, dict):
        return None
    return value.get("globalEndDate") or value.get("endDate")


def _paediatric_plans(record: _Record) -> tuple[str, ...]:
    part_i = _lenient_object(record.application.get("authorizedPartI"))
    details = _lenient_object(part_i.get("trialDetails"))
    advice = _lenient_object(details.get("scientificAdviceAndPip"))
    plans = []
    for plan in _lenient_list(advice.get("paediatricInvestigationPlan")):
        if isinstance(plan, dict):
            number = plan.get("paediatricInvestigationNumber")
            plans.append(fold_text(number) if isinstance(number, str) else "")
    return tuple(sorted(plans))


def _lenient_object(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _lenient_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _lenient_day(value: object) -> str:
    try:
        return _day(value, "")
    except RecordInvalid:
        return ""


# --- the record and its shape -----------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    """A record checked to be a CTIS record, with where its application lives."""

    raw: Json
    study_id: str
    application: Json  # what holds authorizedPartI, authorizedPartsII, memberStatesConcerned
    at: str  # the application's path ("authorizedApplication"; "" in a CTIS1 record)
    legacy: bool  # a CTIS1 record

    def path(self, key: str) -> str:
        return at_path(self.at, key)

    @property
    def part_i(self) -> Json:
        return child_object(self.application, "authorizedPartI", self.at)

    def part_i_path(self, key: str = "") -> str:
        return at_path(self.path("authorizedPartI"), key)


def _record(raw: object) -> _Record:
    if not isinstance(raw, dict):
        raise RecordInvalid(
            f"expected a CTIS record (an object with ctNumber), got {describe(raw)}"
        )
    value = raw.get("ctNumber")
    if value is None:
        raise RecordInvalid(
            f"{fields.STUDY_ID_PATH}: missing; a CTIS record needs its EU CT number"
        )
    study_id = fields.parse_id(value) if isinstance(value, str) else None
    if study_id is None:
        raise invalid(fields.STUDY_ID_PATH, "an EU CT number (2023-505613-24-00)", value)
    application = raw.get(fields.APPLICATION)
    if isinstance(application, dict):
        return _Record(raw, study_id, application, fields.APPLICATION, False)
    if application is not None:
        raise invalid(fields.APPLICATION, "an object", application)
    if isinstance(raw.get("authorizedPartI"), dict) or isinstance(raw.get("applications"), list):
        return _Record(raw, study_id, raw, "", True)
    if fields.APPLICATION in raw or fields.STATUS_PATH in raw:
        # a trial with nothing authorised yet: its status, and no application to read
        return _Record(raw, study_id, {}, fields.APPLICATION, False)
    raise RecordInvalid(
        f"{fields.APPLICATION}: missing; not a CTIS /retrieve record "
        "(nor one of the format before 2024-06-17, with authorizedPartI at the top)"
    )


# --- identification -----------------------------------------------------------------------------


def _identification(record: _Record) -> dict[str, Any]:
    details = child_object(record.part_i, "trialDetails", record.part_i_path())
    details_at = record.part_i_path("trialDetails")
    identifiers = child_object(details, "clinicalTrialIdentifiers", details_at)
    at = at_path(details_at, "clinicalTrialIdentifiers")
    short_title = _text(identifiers, "shortTitle", at)
    return {
        "brief_title": _text(identifiers, "publicTitle", at),
        "official_title": _text(identifiers, "fullTitle", at) or _text(record.raw, "title", ""),
        # one field, the sponsors' short title: their protocol code, or an acronym
        "acronym": short_title,
        "org_study_id": short_title,
        "secondary_ids": _secondary_ids(record, identifiers, at),
    }


def _secondary_ids(record: _Record, identifiers: Json, at: str) -> tuple[str, ...]:
    """Every other registration the record names, as written: the EudraCT number it was
    transitioned from, the NCT number, additional registries (IND numbers, ISRCTN …)."""
    found = [
        _text(
            child_object(record.application, "eudraCt", record.at),
            "eudraCtCode",
            record.path("eudraCt"),
        ),
        _text(child_object(record.raw, "eudraCtInfo", ""), "eudraCtCode", "eudraCtInfo"),
    ]
    if record.legacy:
        for index, application in enumerate(child_list(record.raw, "applications", "")):
            if isinstance(application, dict):
                info_at = f"applications[{index}].eudraCtInfo"
                found.append(
                    _text(child_object(application, "eudraCtInfo", info_at), "eudraCtCode", info_at)
                )
    numbers = child_object(identifiers, "secondaryIdentifyingNumbers", at)
    found += _registry_numbers(numbers, at_path(at, "secondaryIdentifyingNumbers"))
    return sorted_set(n for n in found if n != record.study_id and not _placeholder(n))


def _registry_numbers(numbers: Json, at: str) -> Iterator[str]:
    # {"nctNumber": {"number"}, "additionalRegistries": [{"number", "otherRegistryName"}], …}:
    # every entry that has a number, whatever registry CTIS adds next
    for key, value in numbers.items():
        entries = value if isinstance(value, list) else [value]
        for index, entry in enumerate(entries):
            if isinstance(entry, dict) and "number" in entry:
                where = f"{at}.{key}[{index}]" if isinstance(value, list) else f"{at}.{key}"
                yield _text(entry, "number", where)


def _placeholder(value: str) -> bool:
    return not value or value.casefold() in _PLACEHOLDERS or not any(c.isalnum() for c in value)


# --- status -------------------------------------------------------------------------------------


def _public_code(record: _Record) -> int | None:
    """The public status code: ``ctPublicStatusCode``; else an integer ``ctStatus`` (a search
    row's code merged over the record). A ``ctStatus`` text is never the public status."""
    code = _whole_number(record.raw.get(fields.STATUS_PATH), fields.STATUS_PATH)
    if code is not None:
        return code
    merged = record.raw.get("ctStatus")
    if isinstance(merged, int) and not isinstance(merged, bool):
        return _whole_number(merged, "ctStatus")
    return None


def _overall_status(record: _Record, code: int | None) -> str:
    if code is not None:
        return fields.status_label(code)
    if record.legacy:  # the old portal's status words ("Authorised, not started")
        return _text(record.raw, "ctStatus", "")
    return ""


def _lifecycle(record: _Record, code: int | None, status: str) -> str:
    if code is not None:
        life = fields.CODE_LIFECYCLES.get(code, "unknown")
    else:
        life = fields.lifecycle(status) if status else "unknown"
    if life == "completed" and _terminated_early(record):
        return "terminated"
    return life


def _terminated_early(record: _Record) -> bool:
    """Ended early, as ctrdata reads it: every member state concerned notified an early
    termination (one member state stopping early does not end the whole trial early)."""
    stopped = {name for name, kind in _notifications(record) if "EARLY_TERMINATION" in kind}
    if not stopped:
        return False
    concerned = len(child_list(record.application, "memberStatesConcerned", record.at))
    return len(stopped) >= max(concerned, 1)


def _notifications(record: _Record) -> Iterator[tuple[str, str]]:
    """(member state, notification type as ``WORDS_LIKE_THIS``) of every trial event."""
    events = child_object(record.raw, "events", "")
    for index, per_state in enumerate(child_list(events, "trialEvents", "events")):
        at = f"events.trialEvents[{index}]"
        if isinstance(per_state, dict):
            state = str(per_state.get("mscId") or per_state.get("mscName") or index)
            for event in _dicts(per_state, "events", at):
                yield state, _kind(_text(event, "notificationType", at))
    # before the relaunch: mscTrialNotificationsInfoList[].mscNotificationsListInfo[]
    for index, per_state in enumerate(child_list(record.raw, "mscTrialNotificationsInfoList", "")):
        at = f"mscTrialNotificationsInfoList[{index}]"
        if isinstance(per_state, dict):
            state = str(per_state.get("mscId") or per_state.get("mscName") or index)
            for event in _dicts(per_state, "mscNotificationsListInfo", at):
                yield state, _kind(_text(event, "notificationType", at))


def _kind(text: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", text.upper())


# --- design -------------------------------------------------------------------------------------


def _trial_information(record: _Record) -> tuple[Json, str]:
    details = child_object(record.part_i, "trialDetails", record.part_i_path())
    at = record.part_i_path("trialDetails")
    return child_object(details, "trialInformation", at), at_path(at, "trialInformation")


def _phases(record: _Record) -> tuple[str, ...]:
    information, at = _trial_information(record)
    category_at = at_path(at, "trialCategory")
    code = _text(child_object(information, "trialCategory", at), "trialPhase", category_at)
    if code in fields.PHASES:
        return (fields.PHASES[code],)
    text = _text(record.raw, "trialPhase", "")  # a search row's words, merged
    if text:
        return (text,)
    return (f"Trial phase code {code}",) if code else ()


def _conditions(record: _Record) -> tuple[str, ...]:
    def condition(item: Json, at: str) -> str:
        return _text(item, "medicalCondition", at)

    found = list(_items(record.part_i, "medicalConditions", record.part_i_path(), condition))
    if not found:
        information, at = _trial_information(record)
        medical = child_object(information, "medicalCondition", at)
        found = list(
            _items(medical, "partIMedicalConditions", at_path(at, "medicalCondition"), condition)
        )
    return sorted_set(iter(found))


def _sponsors(record: _Record) -> dict[str, Any]:
    """The primary sponsor leads; co-sponsors are collaborators."""
    sponsors = list(_items(record.part_i, "sponsors", record.part_i_path(), _sponsor))
    lead = next((name for primary, name in sponsors if primary), "")
    if not lead and sponsors:
        lead = sponsors[0][1]
    others = [name for primary, name in sponsors if name != lead]
    return {"lead_sponsor": lead, "collaborators": sorted_set(iter(others))}


def _sponsor(item: Json, at: str) -> tuple[bool, str]:
    name = _text(child_object(item, "organisation", at), "name", at_path(at, "organisation"))
    return item.get("primary") is True, name


# --- enrollment and member states ----------------------------------------------------------------


def _enrollment(record: _Record) -> dict[str, int | None]:
    """Planned: every member state's part II count plus the rest of the world's
    (``authorizedPartI.rowSubjectCount``). Actual: ``totalNumberEnrolled``, only in the
    current format (the old portal's field of that name held the planned EEA count)."""
    counts = [count for _part, count in _parts_ii(record)]
    row = _whole_number(record.part_i.get("rowSubjectCount"), record.part_i_path("rowSubjectCount"))
    given = [n for n in (*counts, row) if n is not None]
    actual = None
    if not record.legacy:
        actual = _whole_number(record.raw.get("totalNumberEnrolled"), "totalNumberEnrolled")
    return {"enrollment_count": sum(given) if given else None, "enrollment_actual": actual}


def _parts_ii(record: _Record) -> list[tuple[Json, int | None]]:
    """Each part II (one per member state) with its planned count."""

    def read(part: Json, at: str) -> tuple[Json, int | None]:
        count = part.get("recruitmentSubjectCount")
        return part, _whole_number(count, at_path(at, "recruitmentSubjectCount"))

    return list(_items(record.application, "authorizedPartsII", record.at, read))


def _countries(record: _Record) -> tuple[CountryRecord, ...]:
    """One record per member state concerned: its public status and its planned enrollment
    (its part II's count), sorted by code; a state listed twice is kept once."""
    planned = _planned_by_state(record)
    legacy_status = _legacy_country_status(record)
    countries: dict[str, CountryRecord] = {}
    for state in _items(record.application, "memberStatesConcerned", record.at, _MemberState):
        code = state.code or fields.member_state_code(state.name)
        if not code or code in countries:
            continue
        status = fields.status_label(state.status_code) if state.status_code is not None else ""
        if not status and record.legacy:
            status = legacy_status.get(code, "")
        enrollment = planned.get(state.key, planned.get(state.name.casefold(), state.planned))
        countries[code] = CountryRecord(
            country=code, name=state.name, status=status, enrollment=enrollment
        )
    return tuple(countries[code] for code in sorted(countries))


class _MemberState:
    """One entry of ``memberStatesConcerned``, in either format."""

    def __init__(self, item: Json, at: str) -> None:
        self.name = _text(item, "mscName", at) or _text(item, "countryName", at)
        self.key = str(item.get("mscId") or item.get("id") or "")  # what its part II names
        organisation = child_object(item, "organisationInfo", at)
        self.code = _text(organisation, "memberStateCountryCode", at_path(at, "organisationInfo"))
        self.status_code = _whole_number(
            item.get("mscPublicStatusCode"), at_path(at, "mscPublicStatusCode")
        )
        self.planned = _whole_number(
            item.get("recruitmentSubjectCount"), at_path(at, "recruitmentSubjectCount")
        )


def _planned_by_state(record: _Record) -> dict[str, int | None]:
    """Each part II's count under its member state's id and its name (either may be what
    joins it to ``memberStatesConcerned``)."""
    planned: dict[str, int | None] = {}
    for part, count in _parts_ii(record):
        info = part.get("mscInfo") if isinstance(part.get("mscInfo"), dict) else {}
        for key in (part.get("mscId"), info.get("id")):
            if key is not None:
                planned.setdefault(str(key), count)
        for name in (info.get("mscName"), info.get("countryName")):
            if isinstance(name, str) and name:
                planned.setdefault(fold_text(name).casefold(), count)
    return planned


def _legacy_country_status(record: _Record) -> dict[str, str]:
    """The old portal's per-country status: ``trialCountries`` "DE:Authorised, not started"."""
    value = record.raw.get("trialCountries")
    if not isinstance(value, str):
        return {}
    return {code: fold_text(text) for code, text in _LEGACY_COUNTRY_STATUS.findall(value)}


# --- dates and results ---------------------------------------------------------------------------


def _dates(record: _Record) -> dict[str, StudyDate]:
    """Start: the first start of the trial in the EU (``startDateEU``), else the planned
    recruitment start. End: the global end of the trial, else the end in the EU, else the
    planned global end, else the planned end in the EU."""
    information, at = _trial_information(record)
    duration = child_object(information, "trialDuration", at)
    duration_at = at_path(at, "trialDuration")
    start = _first_date(
        (record.raw.get("startDateEU"), "startDateEU", "ACTUAL"),
        (duration.get("estimatedRecruitmentStartDate"),
         at_path(duration_at, "estimatedRecruitmentStartDate"), "ESTIMATED"),
    )  # fmt: skip
    end = _first_date(
        (_global_end(record), record.path("trialGlobalEnd"), "ACTUAL"),
        (child_object(record.raw, "events", "").get("trialGlobalEndDate"),
         "events.trialGlobalEndDate", "ACTUAL"),
        (record.raw.get("endDateEU"), "endDateEU", "ACTUAL"),
        (duration.get("estimatedGlobalEndDate"), at_path(duration_at, "estimatedGlobalEndDate"),
         "ESTIMATED"),
        (duration.get("estimatedEndDate"), at_path(duration_at, "estimatedEndDate"), "ESTIMATED"),
    )  # fmt: skip
    return {"start_date": start, "completion_date": end}


def _global_end(record: _Record) -> object:
    # an empty list while the trial runs, an object (or a list of one) once it has ended
    value = record.application.get("trialGlobalEnd")
    if isinstance(value, list):
        value = next((item for item in value if isinstance(item, dict)), None)
    return value.get("globalEndDate") if isinstance(value, dict) else None


def _first_date(*candidates: tuple[object, str, str]) -> StudyDate:
    for value, path, kind in candidates:
        day = _day(value, path)
        if day:
            return StudyDate(date=day, type=kind)
    return StudyDate()


def _results(record: _Record) -> dict[str, Any]:
    """Results are documents in CTIS: a summary submitted (or the search row's
    ``resultsFirstReceived`` "Yes") means results; the earliest submission is when."""
    results = child_object(record.raw, "results", "")
    days = [
        _day(item.get("submissionDate"), at_path(at, "submissionDate"))
        for item, at in child_objects(results, "summaryResults", "results")
    ]
    received = _text(record.raw, "resultsFirstReceived", "").casefold() == "yes"
    posted = min((day for day in days if day), default="")
    return {"has_results": received or bool(days), "results_first_posted": posted}


# --- outcomes ---------------------------------------------------------------------------------


def _outcomes(record: _Record) -> dict[str, tuple[Outcome, ...]]:
    """End points in the registry's order, by their ``number``. CTIS has no time point field:
    the timing is part of the end point's text."""
    information, at = _trial_information(record)
    end_points = child_object(information, "endPoint", at)
    end_at = at_path(at, "endPoint")
    return {
        "primary_outcomes": _end_points(end_points, "primaryEndPoints", end_at),
        "secondary_outcomes": _end_points(end_points, "secondaryEndPoints", end_at),
    }


def _end_points(parent: Json, key: str, where: str) -> tuple[Outcome, ...]:
    numbered = list(_items(parent, key, where, _end_point))
    numbered.sort(key=lambda item: (item[0] is None, item[0] or 0))  # stable: ties keep order
    return tuple(outcome for _number, outcome in numbered)


def _end_point(item: Json, at: str) -> tuple[int | None, Outcome]:
    number = _whole_number(item.get("number"), at_path(at, "number"))
    return number, Outcome(measure=_text(item, "endPoint", at))


# --- typed readers: each returns a default for a missing key and raises for a wrong type -------


def _items(parent: Json, key: str, where: str, read: Callable[[Json, str], T]) -> Iterator[T]:
    """Read each object of a list with ``read(item, item_path)``; null entries are skipped."""
    for item, at in child_objects(parent, key, where):
        yield read(item, at)


def _dicts(parent: Json, key: str, where: str) -> Iterator[Json]:
    for item, _at_path in child_objects(parent, key, where):
        yield item


def _text(parent: Mapping[str, Any], key: str, where: str) -> str:
    value = parent.get(key)
    if isinstance(value, str):
        return fold_text(value)
    if value is None:
        return ""
    # a code or number that arrives as a JSON number is unambiguous as text
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT:
        return str(value)
    raise invalid(at_path(where, key), "a string", value)


def _whole_number(value: object, path: str) -> int | None:
    """A count as CTIS sends it (``totalNumberEnrolled`` as text); "" is none."""
    if isinstance(value, str) and not value.strip():
        return None
    return whole_number(value, path)


def _day(value: object, path: str) -> str:
    """A CTIS date (``28/04/2021``, ``2024-04-15`` or ``2024-04-15T16:01:16.016``) as
    yyyy-mm-dd; "" when none is given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    if not isinstance(value, str):
        raise invalid(path, "a date (dd/mm/yyyy or yyyy-mm-dd)", value)
    text = value.strip()
    if match := _DAY_FIRST.fullmatch(text):
        day, month, year = match.groups()
    elif match := _ISO_DAY.fullmatch(text):
        year, month, day = match.groups()
    else:
        raise invalid(path, "a date (dd/mm/yyyy or yyyy-mm-dd)", value)
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        raise invalid(path, "a date that exists", value) from None
