"""The facts the transparency rules read, taken from a raw ClinicalTrials.gov v2 record.

Pure and forgiving: the rules read dates and flags the diff deliberately ignores (status
verified date, first submission, results and certificate-of-delay submission dates), so they
come from the raw record, not the normalised snapshot. A missing or malformed value is
``None`` — a rule that needs it does not fire — never an exception.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

_DATE = re.compile(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")
# the FDAAA TrialsTracker's US locations (its converter's ``has_us_loc``); the API v2 spells
# the last one either way
US_COUNTRIES = frozenset(
    {
        "United States",
        "American Samoa",
        "Guam",
        "Northern Mariana Islands",
        "Puerto Rico",
        "Virgin Islands (U.S.)",
        "U.S. Virgin Islands",
    }
)


@dataclass(frozen=True)
class PartialDate:
    """A registry date as written (``yyyy``, ``yyyy-MM`` or ``yyyy-MM-dd``) and its type."""

    text: str
    kind: str = ""  # ACTUAL | ESTIMATED | "" (dates without a type, e.g. submission dates)

    @property
    def latest(self) -> date:
        """The last day the date can mean: month-only dates at the month's end (as the FDAAA
        TrialsTracker reads them), year-only at the year's end."""
        year, month, day = _parts(self.text)
        if month is None:
            return date(year, 12, 31)
        if day is None:
            return date(year, month, calendar.monthrange(year, month)[1])
        return date(year, month, day)

    @property
    def earliest(self) -> date:
        year, month, day = _parts(self.text)
        return date(year, month or 1, day or 1)

    @property
    def precision(self) -> str:
        """``day``, ``month`` or ``year``: how much of the date the registry wrote."""
        _, month, day = _parts(self.text)
        return "day" if day is not None else "month" if month is not None else "year"


@dataclass(frozen=True)
class TrialFacts:
    study_type: str
    phases: tuple[str, ...]
    overall_status: str
    fda_regulated_drug: bool | None
    fda_regulated_device: bool | None
    primary_purpose: str
    has_us_site: bool  # a site in the US or a US territory (the TrialsTracker's list)
    start: PartialDate | None
    primary_completion: PartialDate | None
    completion: PartialDate | None
    first_submitted: PartialDate | None
    results_first_submitted: PartialDate | None
    delay_certificate_submitted: PartialDate | None  # dispFirstSubmitDate
    status_verified: PartialDate | None
    enrollment_count: int | None
    enrollment_type: str
    why_stopped: str
    primary_outcomes: tuple[str, ...]  # the measures, as written
    intervention_types: tuple[str, ...] = ()  # DRUG, DEVICE, BIOLOGICAL, … as written
    # results submitted but not yet posted (``derivedSection.miscInfoModule.submissionTracking``):
    # the first submission since the last cancellation, None if none or the last was cancelled
    results_pending_submitted: PartialDate | None = None
    results_submission_cancelled: bool = False  # the latest submission was cancelled
    last_update_posted: PartialDate | None = None  # lastUpdatePostDateStruct: this version's day


def trial_facts(raw: dict[str, Any]) -> TrialFacts:
    """The facts of a raw record, bare or wrapped as the history API answers."""
    study = raw.get("study") if isinstance(raw.get("study"), dict) else raw
    protocol = _obj(study, "protocolSection")
    status = _obj(protocol, "statusModule")
    design = _obj(protocol, "designModule")
    oversight = _obj(protocol, "oversightModule")
    enrollment = _obj(design, "enrollmentInfo")
    tracking = _obj(_obj(_obj(study, "derivedSection"), "miscInfoModule"), "submissionTracking")
    pending, cancelled = _pending_submission(tracking)
    return TrialFacts(
        study_type=_str(design, "studyType"),
        phases=tuple(p for p in _list(design, "phases") if isinstance(p, str)),
        overall_status=_str(status, "overallStatus"),
        fda_regulated_drug=_bool(oversight, "isFdaRegulatedDrug"),
        fda_regulated_device=_bool(oversight, "isFdaRegulatedDevice"),
        primary_purpose=_str(_obj(design, "designInfo"), "primaryPurpose"),
        has_us_site=_has_us_site(protocol),
        start=_struct_date(status, "startDateStruct"),
        primary_completion=_struct_date(status, "primaryCompletionDateStruct"),
        completion=_struct_date(status, "completionDateStruct"),
        first_submitted=_plain_date(status, "studyFirstSubmitDate"),
        results_first_submitted=_plain_date(status, "resultsFirstSubmitDate"),
        delay_certificate_submitted=_plain_date(status, "dispFirstSubmitDate"),
        status_verified=_plain_date(status, "statusVerifiedDate"),
        enrollment_count=_int(enrollment, "count"),
        enrollment_type=_str(enrollment, "type"),
        why_stopped=_str(status, "whyStopped"),
        primary_outcomes=tuple(
            _str(o, "measure") for o in _list(_obj(protocol, "outcomesModule"), "primaryOutcomes")
        ),
        intervention_types=tuple(
            _str(i, "type")
            for i in _list(_obj(protocol, "armsInterventionsModule"), "interventions")
            if isinstance(i, dict) and _str(i, "type")
        ),
        results_pending_submitted=pending,
        results_submission_cancelled=cancelled,
        last_update_posted=_struct_date(status, "lastUpdatePostDateStruct"),
    )


def _pending_submission(tracking: dict[str, Any]) -> tuple[PartialDate | None, bool]:
    """Results submitted and in quality control, as the FDAAA TrialsTracker counts them
    (``trial_computer.qa_start_dates``): the earliest submission after the latest cancelled
    one counts as submitted; a cancelled latest submission counts as none."""
    infos = []
    for info in _list(tracking, "submissionInfos"):
        if not isinstance(info, dict) or not _valid_date(_str(info, "releaseDate")):
            continue
        cancelled = bool(_str(info, "unreleaseDate")) or info.get("unreleaseDateUnknown") is True
        infos.append((PartialDate(_str(info, "releaseDate")), cancelled))
    infos.sort(key=lambda item: item[0].earliest)
    restart: PartialDate | None = None
    for submitted, cancelled in reversed(infos):
        if cancelled:
            return restart, restart is None
        restart = submitted
    return restart, False


def _parts(text: str) -> tuple[int, int | None, int | None]:
    match = _DATE.fullmatch(text)
    if match is None:  # _valid_date() keeps such text out of PartialDate
        raise ValueError(f"not a registry date: {text!r}")
    year, month, day = match.groups()
    return int(year), int(month) if month else None, int(day) if day else None


def _valid_date(text: str) -> bool:
    try:
        PartialDate(text).latest  # noqa: B018 (a month 13 or a 30 February is no date)
    except ValueError:
        return False
    return True


def _struct_date(module: dict[str, Any], key: str) -> PartialDate | None:
    struct = _obj(module, key)
    text = _str(struct, "date")
    return PartialDate(text, _str(struct, "type")) if _valid_date(text) else None


def _plain_date(module: dict[str, Any], key: str) -> PartialDate | None:
    text = _str(module, key)
    return PartialDate(text) if _valid_date(text) else None


def _has_us_site(protocol: dict[str, Any]) -> bool:
    locations = _list(_obj(protocol, "contactsLocationsModule"), "locations")
    return any(isinstance(loc, dict) and loc.get("country") in US_COUNTRIES for loc in locations)


def _obj(node: Any, key: str) -> dict[str, Any]:
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, dict) else {}


def _list(node: dict[str, Any], key: str) -> list[Any]:
    value = node.get(key)
    return value if isinstance(value, list) else []


def _str(node: dict[str, Any], key: str) -> str:
    value = node.get(key)
    return value.strip() if isinstance(value, str) else ""


def _bool(node: dict[str, Any], key: str) -> bool | None:
    value = node.get(key)
    return value if isinstance(value, bool) else None


def _int(node: dict[str, Any], key: str) -> int | None:
    value = node.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
