"""The types that flow through the pipeline: normalised snapshots and change events.

A ``Snapshot`` holds only the fields trialwatch tracks, already folded so that cosmetic churn
(markup, entities, whitespace, the order of unordered lists) cannot make two snapshots differ.
Two snapshots with the same ``content_hash()`` are the same for every purpose of the service.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Severity = Literal["low", "medium", "high"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high")

OutcomeType = Literal["primary", "secondary", "other"]
# How much an outcome change alters what is measured (least first); see ``service.diff``.
OutcomeGrade = Literal["editorial", "minor", "major"]
OUTCOME_GRADES: tuple[OutcomeGrade, ...] = ("editorial", "minor", "major")
OUTCOME_TYPES: tuple[OutcomeType, ...] = ("primary", "secondary", "other")

ChangeKind = Literal[
    "record_added",
    "record_unavailable",
    "status_changed",
    "enrollment_changed",
    "enrollment_type_changed",
    "outcome_added",
    "outcome_removed",
    "outcome_modified",
    "outcome_reclassified",
    "date_changed",
    "phase_changed",
    "results_posted",
    "field_changed",
    "finding_opened",
    "finding_resolved",
    "query_matched",
    "query_unmatched",
]
CHANGE_KINDS: tuple[str, ...] = ChangeKind.__args__  # type: ignore[attr-defined]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StudyDate(Frozen):
    """A registry date as given (``yyyy``, ``yyyy-MM`` or ``yyyy-MM-dd``) and its type."""

    date: str = ""
    type: str = ""  # ACTUAL | ESTIMATED | "" when the registry gives none

    def first_day(self) -> date | None:
        """The first day the date covers (``2024-03`` → 1 March 2024); None when it is none."""
        parts = self.date.split("-")
        try:
            numbers = [int(p) for p in parts] + [1] * (3 - len(parts))
            return date(numbers[0], numbers[1], numbers[2])
        except (ValueError, IndexError):
            return None


class Outcome(Frozen):
    measure: str
    description: str = ""
    time_frame: str = ""


class Intervention(Frozen):
    type: str = ""
    name: str = ""
    description: str = ""
    other_names: tuple[str, ...] = ()  # sorted


class Arm(Frozen):
    label: str = ""
    type: str = ""
    description: str = ""
    interventions: tuple[str, ...] = ()  # sorted


class Location(Frozen):
    facility: str = ""
    city: str = ""
    state: str = ""
    country: str = ""
    status: str = ""


class Eligibility(Frozen):
    criteria: str = ""
    sex: str = ""
    minimum_age: str = ""
    maximum_age: str = ""
    healthy_volunteers: bool | None = None


class CountryRecord(Frozen):
    """One country's record of a trial registered country by country (EUCTR: one record per
    member state, each with its own status and planned enrollment)."""

    country: str  # the registry's code: "FR", "3RD" (outside the EU/EEA)
    name: str = ""  # "France"
    status: str = ""  # the registry's own status text for that country
    enrollment: int | None = None  # planned in that country


class LinkedId(Frozen):
    """A registration a record names: another registry's record of (perhaps) the same trial."""

    registry: str
    study_id: str
    source: str = ""  # the record's path to the id ("…secondaryIdInfos", "a5_identifiers")

    def __init__(self, registry: str, study_id: str, source: str = "", **data: Any) -> None:
        super().__init__(registry=registry, study_id=study_id, source=source, **data)


Lifecycle = Literal[
    "not_yet_recruiting",
    "recruiting",
    "active_not_recruiting",
    "completed",
    "terminated",
    "suspended",
    "withdrawn",
    "unknown",
]
LIFECYCLES: tuple[str, ...] = Lifecycle.__args__  # type: ignore[attr-defined]

# Snapshot fields that registries beyond ClinicalTrials.gov fill: left out of the content hash
# while empty, so a ClinicalTrials.gov snapshot stored before they existed keeps its hash.
REGISTRY_FIELDS: tuple[str, ...] = ("countries", "enrollment_actual")
# Derived from the tracked fields, never diffed or hashed (the registry's status words mapped
# to one vocabulary for comparisons across registries).
DERIVED_FIELDS: tuple[str, ...] = ("lifecycle", "linked")

# Snapshot fields added after snapshots were first stored: None in a snapshot read back from
# before then. The normaliser always fills them (with "" when the record has none).
LATE_FIELDS: tuple[str, ...] = ("brief_summary", "detailed_description")


class Snapshot(Frozen):
    """The tracked content of one registry record at one moment.

    Text is folded (HTML and Markdown markup removed, entities decoded, Unicode NFC,
    whitespace collapsed). Unordered lists are sorted; the outcome lists keep the registry's
    order because a change names an outcome by its index.
    """

    registry: str = "ctgov"
    study_id: str
    org_study_id: str = ""
    secondary_ids: tuple[str, ...] = ()
    brief_title: str = ""
    official_title: str = ""
    acronym: str = ""
    overall_status: str = ""
    last_known_status: str = ""
    why_stopped: str = ""
    study_type: str = ""
    phases: tuple[str, ...] = ()
    allocation: str = ""
    intervention_model: str = ""
    primary_purpose: str = ""
    masking: str = ""
    enrollment_count: int | None = None
    enrollment_type: str = ""
    start_date: StudyDate = StudyDate()
    primary_completion_date: StudyDate = StudyDate()
    completion_date: StudyDate = StudyDate()
    conditions: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    interventions: tuple[Intervention, ...] = ()
    arms: tuple[Arm, ...] = ()
    primary_outcomes: tuple[Outcome, ...] = ()
    secondary_outcomes: tuple[Outcome, ...] = ()
    other_outcomes: tuple[Outcome, ...] = ()
    lead_sponsor: str = ""
    collaborators: tuple[str, ...] = ()
    # Tracked since schema 2 of the snapshot. None means "not known": a snapshot stored before
    # then has no such key, and the diff must not read that as "added" (see LATE_FIELDS).
    brief_summary: str | None = None
    detailed_description: str | None = None
    eligibility: Eligibility = Eligibility()
    locations: tuple[Location, ...] = ()
    has_results: bool = False
    results_first_posted: str = ""
    # The registries beyond ClinicalTrials.gov (REGISTRY_FIELDS, DERIVED_FIELDS):
    countries: tuple[CountryRecord, ...] = ()  # sorted by code
    # actual enrollment where the registry keeps it beside the planned one (CTIS, ISRCTN)
    enrollment_actual: int | None = None
    lifecycle: str = ""  # one of LIFECYCLES, derived by the registry's normaliser
    linked: tuple[LinkedId, ...] = ()  # the registrations it names (service.links)

    def content_hash(self) -> str:
        # A late field that is not known is left out, so a snapshot stored before the field
        # existed keeps the hash it was stored with; so is a registry field left empty.
        left_out = {name for name in LATE_FIELDS if getattr(self, name) is None}
        left_out |= {name for name in REGISTRY_FIELDS if getattr(self, name) in ((), None)}
        left_out |= set(DERIVED_FIELDS)
        return hashlib.sha256(self.model_dump_json(exclude=left_out).encode()).hexdigest()

    def outcomes(self, outcome_type: OutcomeType) -> tuple[Outcome, ...]:
        return getattr(self, f"{outcome_type}_outcomes")  # type: ignore[no-any-return]

    @property
    def title(self) -> str:
        return self.brief_title or self.official_title or self.study_id


class RecordMeta(Frozen):
    """Facts about a fetched record that are not tracked content (they change on every refresh)."""

    study_id: str
    registry_version: int | None = None  # the history API's studyVersion, when known
    last_update_posted: str = ""


class Change(Frozen):
    """One change event, as the contract's JSON shape."""

    registry: str = "ctgov"
    study_id: str
    kind: ChangeKind
    field: str
    old: Any = None
    new: Any = None
    severity: Severity
    summary: str
    outcome_type: OutcomeType | None = None  # outcome kinds only
    # Outcome kinds: the outcome's position in the old record (``field`` is the new one;
    # for a removed outcome both name the old position, an added one has none).
    old_field: str | None = None
    # Outcome kinds: how much the change alters what the trial measures (``diff`` module
    # docstring, "Grades"); none on other kinds and on outcome events stored before grading.
    grade: OutcomeGrade | None = None

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for optional in ("outcome_type", "old_field", "grade"):
            if data[optional] is None:
                del data[optional]
        return data


class StoredChange(Change):
    """A change event as the store keeps it."""

    id: int
    detected_at: datetime
    from_version: int | None = None
    to_version: int | None = None
    historical: bool = False

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["detected_at"] = self.detected_at.isoformat()
        return data

    @classmethod
    def trusted(cls, **values: Any) -> StoredChange:
        """A change event from values the store has checked already (its own rows, or
        changes validated when they were made), every field given: built without validating
        again and sharing one fields-set, as a frozen model can (a copy gets a set of its
        own). A first load of 100,000 studies keeps some 200,000 of these in its report; a
        set each was half of their memory."""
        return cls.model_construct(_STORED_FIELDS, **values)


_STORED_FIELDS = set(StoredChange.model_fields)


class WatchInfo(Frozen):
    """A watched record and what the store knows of it."""

    registry: str
    study_id: str
    tags: tuple[str, ...] = ()
    added_at: datetime
    title: str = ""
    overall_status: str = ""  # the registry's own status text
    lifecycle: str = ""  # derived from it, the same words for every registry
    linked: tuple[LinkedId, ...] = ()  # the registrations its latest version names
    # the other registrations of its trial: linked either way, through any record
    trial: tuple[LinkedId, ...] = ()
    state: str = "never synced"  # never synced | active | unavailable
    versions: int = 0
    last_checked_at: datetime | None = None
    last_changed_at: datetime | None = None
    served_id: str | None = None  # the registry serves the record under this id (an alias)
    backfill: str | None = None  # past versions: pending | done | failed (None: not wanted)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class VersionInfo(Frozen):
    """One stored version of a record, for timelines."""

    registry: str
    study_id: str
    version: int  # the registry's number where known, else the store's sequence
    registry_version: int | None = None
    seq: int
    fetched_at: datetime
    last_update_posted: str = ""
    overall_status: str = ""
    enrollment_count: int | None = None
    enrollment_type: str = ""
    content_hash: str
    changes: tuple[str, ...] = ()  # summaries of the changes that led to this version

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Route(Frozen):
    """Notify ``channel`` (in ``mode``: immediate | digest, due at ``due_at``) of the changes
    at ``change_indexes`` among the changes of one study being stored."""

    channel: str
    mode: Literal["immediate", "digest"]
    change_indexes: tuple[int, ...]
    due_at: datetime


def severity_rank(severity: Severity) -> int:
    return SEVERITIES.index(severity)
