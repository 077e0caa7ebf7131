"""ClinicalTrials.gov v2 study JSON → ``Snapshot``: the tracked fields, folded and ordered.

Pure functions: no I/O, no clock. Input is whatever the registry (or a user's file) handed us,
so nothing about its shape is trusted. Missing modules and keys are normal (observational and
withdrawn studies, old history versions) and give defaults; a value of the wrong type is either
coerced when that is unambiguous (``"30"`` → 30) or rejected, and an enum field (statuses,
phases, study type, date and enrollment types, design, sex, arm and intervention types) must
hold one of the API's allowed values (its own spelling, or the same words in another case or
with spaces, ``Active, not recruiting``). The single promise to callers:
``unwrap``, ``normalise`` and ``record_meta`` raise nothing but ``RecordInvalid``, whose message
names the dotted path of the offending value, e.g.
``protocolSection.designModule.enrollmentInfo.count: expected a number, got 'abc'``.

Error paths are relative to the study object, also inside a history wrapper, so they match the
``field`` paths of change events.

Every text value is folded (``service.text.fold_text``), which also drops NUL characters: a
snapshot is stored as text, and PostgreSQL holds no NUL in text or JSON (the raw record, kept
compressed as bytes, keeps them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from service.errors import RecordInvalid
from service.links import linked_ids
from service.models import (
    Arm,
    Eligibility,
    Intervention,
    Location,
    Outcome,
    RecordMeta,
    Snapshot,
    StudyDate,
)
from service.registry.ctgov_fields import FIELD_PATHS, lifecycle
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
from service.text import fold_list_text, fold_text

__all__ = [
    "ENROLLMENT_COUNT_PATH",
    "LAST_UPDATE_POSTED_PATH",
    "STUDY_ID_PATH",
    "normalise",
    "record_meta",
    "unwrap",
]

PROTOCOL = "protocolSection"
IDENTIFICATION = f"{PROTOCOL}.identificationModule"
STATUS = f"{PROTOCOL}.statusModule"
DESIGN = f"{PROTOCOL}.designModule"
CONDITIONS = f"{PROTOCOL}.conditionsModule"
ARMS_INTERVENTIONS = f"{PROTOCOL}.armsInterventionsModule"
OUTCOMES = f"{PROTOCOL}.outcomesModule"
SPONSORS = f"{PROTOCOL}.sponsorCollaboratorsModule"
DESCRIPTION = f"{PROTOCOL}.descriptionModule"
ELIGIBILITY = f"{PROTOCOL}.eligibilityModule"
CONTACTS_LOCATIONS = f"{PROTOCOL}.contactsLocationsModule"

STUDY_ID_PATH = f"{IDENTIFICATION}.nctId"
ENROLLMENT_COUNT_PATH = f"{DESIGN}.enrollmentInfo.count"
LAST_UPDATE_POSTED_PATH = f"{STATUS}.lastUpdatePostDateStruct.date"

_NCT_ID = re.compile(r"NCT\d{8}", re.IGNORECASE | re.ASCII)
# Whole numbers as text; a trailing ".0" is harmless, but "1,000" is not (decimal comma?).
_POSTED_DATE = re.compile(r"\d{4}-\d{2}(?:-\d{2})?", re.ASCII)  # the registry's date forms
_TRUE_TEXT = frozenset({"true", "yes"})
_FALSE_TEXT = frozenset({"false", "no"})

Json = dict[str, Any]
T = TypeVar("T")


# --- public API -----------------------------------------------------------------------------


def unwrap(raw: object) -> tuple[Json, int | None]:
    """Return ``(study, studyVersion)`` from a bare v2 study or a history-API wrapper.

    The version is ``None`` for a bare study (the v2 API does not say which version it serves).
    """
    if not isinstance(raw, dict):
        raise RecordInvalid(
            "expected a study object or a history wrapper {studyVersion, study}, "
            f"got {describe(raw)}"
        )
    if PROTOCOL in raw:
        return raw, None
    if "study" in raw:
        study = raw["study"]
        if not isinstance(study, dict):
            raise invalid("study", "an object", study)
        return study, whole_number(raw.get("studyVersion"), "studyVersion")
    keys = ", ".join(describe(key) for key in sorted(map(str, raw))[:6]) or "none"
    raise RecordInvalid(
        f"expected a study (with {PROTOCOL}) or a history wrapper {{studyVersion, study}}, "
        f"got an object with keys: {keys}"
    )


SECONDARY_IDS = FIELD_PATHS["secondary_ids"]


def normalise(raw: object) -> Snapshot:
    """Return the tracked content of a bare v2 study or history wrapper as a ``Snapshot``."""
    study, _version = unwrap(raw)
    protocol = child_object(study, PROTOCOL, "")
    snapshot = Snapshot(
        study_id=_study_id(study),
        **_identification(child_object(protocol, "identificationModule", PROTOCOL)),
        **_status(child_object(protocol, "statusModule", PROTOCOL)),
        **_design(child_object(protocol, "designModule", PROTOCOL)),
        **_conditions(child_object(protocol, "conditionsModule", PROTOCOL)),
        **_arms_interventions(child_object(protocol, "armsInterventionsModule", PROTOCOL)),
        **_outcomes(child_object(protocol, "outcomesModule", PROTOCOL)),
        **_sponsors(child_object(protocol, "sponsorCollaboratorsModule", PROTOCOL)),
        **_description(child_object(protocol, "descriptionModule", PROTOCOL)),
        eligibility=_eligibility(child_object(protocol, "eligibilityModule", PROTOCOL)),
        locations=_locations(child_object(protocol, "contactsLocationsModule", PROTOCOL)),
        has_results=bool(_boolean(study, "hasResults", "")),
    )
    linked = linked_ids("ctgov", snapshot.study_id, snapshot.secondary_ids, SECONDARY_IDS)
    return snapshot.model_copy(update={"linked": linked}) if linked else snapshot


def record_meta(raw: object) -> RecordMeta:
    """Return the untracked facts of a record: its id, history version and last update date."""
    study, version = unwrap(raw)
    status = child_object(child_object(study, PROTOCOL, ""), "statusModule", PROTOCOL)
    last_update = child_object(status, "lastUpdatePostDateStruct", STATUS)
    where = f"{STATUS}.lastUpdatePostDateStruct"
    posted = _text(last_update, "date", where)
    # stored as a short date column and compared across a page: anything else fails this
    # record here, not the statement that marks the whole page checked
    if posted and _POSTED_DATE.fullmatch(posted) is None:
        raise invalid(f"{where}.date", "a date (yyyy-MM-dd)", posted)
    return RecordMeta(
        study_id=_study_id(study),
        registry_version=version,
        last_update_posted=posted,
    )


# --- modules ----------------------------------------------------------------------------------


def _study_id(study: Json) -> str:
    protocol = child_object(study, PROTOCOL, "")
    identification = child_object(protocol, "identificationModule", PROTOCOL)
    value = identification.get("nctId")
    if value is None:
        raise RecordInvalid(f"{STUDY_ID_PATH}: missing; a record needs its NCT number")
    if not isinstance(value, str):
        raise invalid(STUDY_ID_PATH, "a string", value)
    study_id = value.strip()
    if _NCT_ID.fullmatch(study_id) is None:
        raise invalid(STUDY_ID_PATH, "an NCT number (NCT + 8 digits)", value)
    return study_id.upper()


def _identification(module: Json) -> dict[str, Any]:
    where = IDENTIFICATION
    secondary = _items(module, "secondaryIdInfos", where, lambda info, at: _text(info, "id", at))
    return {
        "org_study_id": _text(
            child_object(module, "orgStudyIdInfo", where), "id", f"{where}.orgStudyIdInfo"
        ),
        "secondary_ids": sorted_set(secondary),
        "brief_title": _text(module, "briefTitle", where),
        "official_title": _text(module, "officialTitle", where),
        "acronym": _text(module, "acronym", where),
    }


def _status(module: Json) -> dict[str, Any]:
    where = STATUS
    results_posted = child_object(module, "resultsFirstPostDateStruct", where)
    overall_status = _enum(module, "overallStatus", where, STATUSES)
    return {
        "overall_status": overall_status,
        "lifecycle": lifecycle(overall_status),
        "last_known_status": _enum(module, "lastKnownStatus", where, STATUSES),
        "why_stopped": _text(module, "whyStopped", where),
        "start_date": _date(module, "startDateStruct", where),
        "primary_completion_date": _date(module, "primaryCompletionDateStruct", where),
        "completion_date": _date(module, "completionDateStruct", where),
        "results_first_posted": _text(
            results_posted, "date", f"{where}.resultsFirstPostDateStruct"
        ),
    }


def _design(module: Json) -> dict[str, Any]:
    where = DESIGN
    design_info = child_object(module, "designInfo", where)
    info_at = f"{where}.designInfo"
    masking = child_object(design_info, "maskingInfo", info_at)
    enrollment = child_object(module, "enrollmentInfo", where)
    enrollment_at = f"{where}.enrollmentInfo"
    return {
        "study_type": _enum(module, "studyType", where, STUDY_TYPES),
        "phases": sorted_set(_enums(module, "phases", where, PHASES)),
        "allocation": _enum(design_info, "allocation", info_at, ALLOCATIONS),
        # Observational studies put their model (COHORT, CASE_CONTROL …) here too.
        "intervention_model": _enum(design_info, "interventionModel", info_at, MODELS),
        "primary_purpose": _enum(design_info, "primaryPurpose", info_at, PURPOSES),
        "masking": _enum(masking, "masking", f"{info_at}.maskingInfo", MASKINGS),
        "enrollment_count": whole_number(enrollment.get("count"), f"{enrollment_at}.count"),
        "enrollment_type": _enum(enrollment, "type", enrollment_at, DATE_TYPES),
    }


def _conditions(module: Json) -> dict[str, Any]:
    return {
        "conditions": sorted_set(_texts(module, "conditions", CONDITIONS)),
        "keywords": sorted_set(_texts(module, "keywords", CONDITIONS)),
    }


def _arms_interventions(module: Json) -> dict[str, Any]:
    interventions = _items(module, "interventions", ARMS_INTERVENTIONS, _intervention)
    arms = _items(module, "armGroups", ARMS_INTERVENTIONS, _arm)
    return {
        "interventions": tuple(sorted(interventions, key=_intervention_key)),
        "arms": tuple(sorted(arms, key=_arm_key)),
    }


def _intervention(item: Json, at: str) -> Intervention:
    return Intervention(
        type=_enum(item, "type", at, INTERVENTION_TYPES),
        name=_text(item, "name", at),
        description=_text(item, "description", at),
        other_names=sorted_set(_texts(item, "otherNames", at)),
    )


def _arm(item: Json, at: str) -> Arm:
    return Arm(
        label=_text(item, "label", at),
        type=_enum(item, "type", at, ARM_TYPES),
        description=_text(item, "description", at),
        interventions=sorted_set(_texts(item, "interventionNames", at)),
    )


def _intervention_key(item: Intervention) -> tuple[str, str, str, tuple[str, ...]]:
    return (item.type, item.name, item.description, item.other_names)


def _arm_key(item: Arm) -> tuple[str, str, str, tuple[str, ...]]:
    return (item.label, item.type, item.description, item.interventions)


def _outcomes(module: Json) -> dict[str, Any]:
    # Registry order is kept: change events name an outcome by its index in the registry list.
    return {
        "primary_outcomes": tuple(_items(module, "primaryOutcomes", OUTCOMES, _outcome)),
        "secondary_outcomes": tuple(_items(module, "secondaryOutcomes", OUTCOMES, _outcome)),
        "other_outcomes": tuple(_items(module, "otherOutcomes", OUTCOMES, _outcome)),
    }


def _outcome(item: Json, at: str) -> Outcome:
    # a list inside an outcome keeps its items apart: each may be an end point of its own
    return Outcome(
        measure=_list_text(item, "measure", at),
        description=_list_text(item, "description", at),
        time_frame=_text(item, "timeFrame", at),
    )


def _sponsors(module: Json) -> dict[str, Any]:
    where = SPONSORS
    collaborators = _items(module, "collaborators", where, lambda item, at: _text(item, "name", at))
    return {
        "lead_sponsor": _text(
            child_object(module, "leadSponsor", where), "name", f"{where}.leadSponsor"
        ),
        "collaborators": sorted_set(collaborators),
    }


def _description(module: Json) -> dict[str, str]:
    return {
        "brief_summary": _text(module, "briefSummary", DESCRIPTION),
        "detailed_description": _text(module, "detailedDescription", DESCRIPTION),
    }


def _eligibility(module: Json) -> Eligibility:
    where = ELIGIBILITY
    return Eligibility(
        criteria=_text(module, "eligibilityCriteria", where),
        sex=_enum(module, "sex", where, SEXES),
        minimum_age=_text(module, "minimumAge", where),
        maximum_age=_text(module, "maximumAge", where),
        healthy_volunteers=_boolean(module, "healthyVolunteers", where),
    )


def _locations(module: Json) -> tuple[Location, ...]:
    # Contacts are ignored on purpose: names and phone numbers churn without changing the trial.
    locations = _items(module, "locations", CONTACTS_LOCATIONS, _location)
    return tuple(sorted(locations, key=_location_key))


def _location(item: Json, at: str) -> Location:
    return Location(
        facility=_text(item, "facility", at),
        city=_text(item, "city", at),
        state=_text(item, "state", at),
        country=_text(item, "country", at),
        status=_enum(item, "status", at, STATUSES),
    )


def _location_key(item: Location) -> tuple[str, str, str, str, str]:
    return (item.country, item.state, item.city, item.facility, item.status)


def _date(module: Json, key: str, where: str) -> StudyDate:
    struct = child_object(module, key, where)
    at = at_path(where, key)
    return StudyDate(date=_text(struct, "date", at), type=_enum(struct, "type", at, DATE_TYPES))


# --- enums ------------------------------------------------------------------------------------
# The allowed values of ClinicalTrials.gov API v2 (ctg-oas-v2.yaml, 2.0.5). A value outside them
# is a record we do not understand: storing it would report a "change" to a word nobody
# defined, so it is refused (RecordInvalid naming the field and the value).

# fmt: off
STATUSES = frozenset((
    "ACTIVE_NOT_RECRUITING", "COMPLETED", "ENROLLING_BY_INVITATION", "NOT_YET_RECRUITING",
    "RECRUITING", "SUSPENDED", "TERMINATED", "WITHDRAWN", "AVAILABLE", "NO_LONGER_AVAILABLE",
    "TEMPORARILY_NOT_AVAILABLE", "APPROVED_FOR_MARKETING", "WITHHELD", "UNKNOWN",
))
STUDY_TYPES = frozenset(("EXPANDED_ACCESS", "INTERVENTIONAL", "OBSERVATIONAL"))
PHASES = frozenset(("NA", "EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4"))
DATE_TYPES = frozenset(("ACTUAL", "ESTIMATED"))  # also EnrollmentType
ALLOCATIONS = frozenset(("RANDOMIZED", "NON_RANDOMIZED", "NA"))
MODELS = frozenset((
    "SINGLE_GROUP", "PARALLEL", "CROSSOVER", "FACTORIAL", "SEQUENTIAL",
    # ObservationalModel, in case a record carries it here
    "COHORT", "CASE_CONTROL", "CASE_ONLY", "CASE_CROSSOVER", "ECOLOGIC_OR_COMMUNITY",
    "FAMILY_BASED", "DEFINED_POPULATION", "NATURAL_HISTORY", "OTHER",
))
PURPOSES = frozenset((
    "TREATMENT", "PREVENTION", "DIAGNOSTIC", "ECT", "SUPPORTIVE_CARE", "SCREENING",
    "HEALTH_SERVICES_RESEARCH", "BASIC_SCIENCE", "DEVICE_FEASIBILITY", "OTHER",
))
MASKINGS = frozenset(("NONE", "SINGLE", "DOUBLE", "TRIPLE", "QUADRUPLE"))
SEXES = frozenset(("FEMALE", "MALE", "ALL"))
ARM_TYPES = frozenset((
    "EXPERIMENTAL", "ACTIVE_COMPARATOR", "PLACEBO_COMPARATOR", "SHAM_COMPARATOR",
    "NO_INTERVENTION", "OTHER",
))
INTERVENTION_TYPES = frozenset((
    "BEHAVIORAL", "BIOLOGICAL", "COMBINATION_PRODUCT", "DEVICE", "DIAGNOSTIC_TEST",
    "DIETARY_SUPPLEMENT", "DRUG", "GENETIC", "PROCEDURE", "RADIATION", "OTHER",
))
# fmt: on
# The classic format's words for the same values, as old history versions may still carry
# them ("Anticipated" was renamed ESTIMATED).
_ENUM_ALIASES = {"ANTICIPATED": "ESTIMATED"}
_ENUM_SEPARATORS = re.compile(r"[\s,/-]+")


def _enum(parent: Json, key: str, where: str, allowed: frozenset[str]) -> str:
    """An enum value: "" when absent, else one of ``allowed`` (spelling and case folded:
    ``"Not yet recruiting"`` is ``NOT_YET_RECRUITING``)."""
    return _enum_value(_text(parent, key, where), at_path(where, key), allowed)


def _enums(parent: Json, key: str, where: str, allowed: frozenset[str]) -> Iterator[str]:
    at = at_path(where, key)
    for index, value in enumerate(_texts(parent, key, where)):
        yield _enum_value(value, f"{at}[{index}]", allowed)


def _enum_value(text: str, path: str, allowed: frozenset[str]) -> str:
    if not text or text in allowed:  # the registry's own spelling: one set lookup
        return text
    value = _ENUM_SEPARATORS.sub("_", text.strip()).upper()
    value = _ENUM_ALIASES.get(value, value)
    if value in allowed:
        return value
    shown = ", ".join(sorted(allowed))
    raise RecordInvalid(f"{path}: {describe(text)} is not one of the allowed values ({shown})")


# --- typed readers: each returns a default for a missing key and raises for a wrong type -------


def _items(parent: Json, key: str, where: str, read: Callable[[Json, str], T]) -> Iterator[T]:
    """Read each object of a list with ``read(item, item_path)``; null entries are skipped."""
    for item, item_at in child_objects(parent, key, where):
        yield read(item, item_at)


def _text(parent: Json, key: str, where: str) -> str:
    value = parent.get(key)
    if value.__class__ is str:  # the common case, kept to one call: this runs per text field
        return fold_text(value)
    return _fold(value, where, key)


def _list_text(parent: Json, key: str, where: str) -> str:
    value = parent.get(key)
    return fold_list_text(value) if value.__class__ is str else _fold(value, where, key)


def _texts(parent: Json, key: str, where: str) -> Iterator[str]:
    at = at_path(where, key)
    for index, item in enumerate(child_list(parent, key, where)):
        yield _fold(item, at, index)


def _fold(value: object, where: str, key: str | int) -> str:
    if isinstance(value, str):
        return fold_text(value)
    if value is None:
        return ""
    # An id or code that arrives as a JSON number is unambiguous as text; a bool or float is not.
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT:
        return str(value)
    path = f"{where}[{key}]" if isinstance(key, int) else at_path(where, key)
    raise invalid(path, "a string", value)


def _boolean(parent: Json, key: str, where: str) -> bool | None:
    value = parent.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().casefold()
        if word in _TRUE_TEXT:
            return True
        if word in _FALSE_TEXT:
            return False
    raise invalid(at_path(where, key), "true or false", value)


def _text_order(value: str) -> tuple[str, str]:
    return (value.casefold(), value)
