"""Tests of service.diff: which changes two snapshots of one record give, and how they read."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.diff import (
    MEASURE_GATE,
    OUTCOME_PAIR_THRESHOLD,
    TRACKED_FIELDS,
    diff,
    humanise,
    outcome_similarity,
    pair_outcomes,
)
from service.errors import InputError
from service.models import (
    Arm,
    Change,
    Eligibility,
    Intervention,
    Location,
    Outcome,
    Snapshot,
    StudyDate,
)
from service.registry.ctgov_fields import FIELD_PATHS
from service.registry.ctgov_normalise import normalise
from service.text import cosmetic_key, unlisted

OUTCOMES = "protocolSection.outcomesModule."


def outcome(measure: str, time_frame: str = "Week 12", description: str = "") -> Outcome:
    return Outcome(measure=measure, time_frame=time_frame, description=description)


TREG = outcome("Proportion of Treg cells in peripheral blood", description="Flow cytometry")
PATIENT_VAS = outcome("Patient's global disease activity VAS")
ADVERSE = outcome("Rate of participants with adverse effects")
ESSDAI = outcome("ESSDAI", description="EULAR Sjogren's syndrome disease activity index (0-123)")
PHYSICIAN_VAS = outcome("Physician's global disease activity VAS (0-10)")

BASE = Snapshot(
    study_id="NCT05605665",
    org_study_id="2022PHB248",
    brief_title="Low-dose Interleukin-2 and Rapamycin on sjögren's Syndrome",
    official_title="Therapeutic Effect of Low Dose IL-2 Combined With Rapamycin in sjögren's",
    overall_status="RECRUITING",
    study_type="INTERVENTIONAL",
    phases=("PHASE1", "PHASE2"),
    allocation="RANDOMIZED",
    intervention_model="PARALLEL",
    primary_purpose="TREATMENT",
    masking="NONE",
    enrollment_count=30,
    enrollment_type="ESTIMATED",
    start_date=StudyDate(date="2022-11-05", type="ACTUAL"),
    primary_completion_date=StudyDate(date="2023-11-01", type="ESTIMATED"),
    completion_date=StudyDate(date="2023-12-01", type="ESTIMATED"),
    conditions=("Sicca", "Sjogren's Syndrome"),
    keywords=("IL-2", "rapamycin"),
    interventions=(
        Intervention(type="DRUG", name="Interleukin-2", description="1 MIU every other day"),
        Intervention(type="DRUG", name="Rapamycin", description="0.5 ml daily"),
    ),
    arms=(
        Arm(label="IL-2", type="EXPERIMENTAL", interventions=("Drug: Interleukin-2",)),
        Arm(label="Rapamycin", type="EXPERIMENTAL", interventions=("Drug: Rapamycin",)),
    ),
    primary_outcomes=(TREG,),
    secondary_outcomes=(PATIENT_VAS, ADVERSE, ESSDAI, PHYSICIAN_VAS),
    lead_sponsor="Peking University People's Hospital",
    brief_summary="Low-dose IL-2 and rapamycin in primary Sjögren's syndrome.",
    detailed_description="",
    eligibility=Eligibility(
        criteria="2002 classification criteria; ESSDAI >= 4",
        sex="ALL",
        minimum_age="18 Years",
        maximum_age="70 Years",
        healthy_volunteers=False,
    ),
    locations=(Location(facility="Peking University People's Hospital", city="Beijing"),),
)


def snapshot(**changes: Any) -> Snapshot:
    """The base record with some fields replaced."""
    return BASE.model_copy(update=changes)


def only_change(**changes: Any) -> Change:
    """The single change that replacing these fields of the base record gives."""
    found = diff(BASE, snapshot(**changes))
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------- whole diffs


def test_identical_snapshots_give_no_changes() -> None:
    assert diff(BASE, BASE) == []
    assert diff(BASE, Snapshot.model_validate(BASE.model_dump())) == []


def test_snapshots_of_different_records_are_refused() -> None:
    with pytest.raises(InputError, match="different records"):
        diff(BASE, snapshot(study_id="NCT00000001"))


def test_every_snapshot_field_is_either_tracked_or_an_identity_or_an_outcome_list() -> None:
    handled = set(TRACKED_FIELDS) | {"registry", "study_id"}
    handled |= {"primary_outcomes", "secondary_outcomes", "other_outcomes"}
    handled |= {"countries", "lifecycle", "linked"}  # per-country changes; derived ones
    assert handled == set(Snapshot.model_fields)


def test_status_change_matches_the_contract_example_exactly() -> None:
    change = only_change(overall_status="COMPLETED")
    assert change.to_json() == {
        "registry": "ctgov",
        "study_id": "NCT05605665",
        "kind": "status_changed",
        "field": "protocolSection.statusModule.overallStatus",
        "old": "RECRUITING",
        "new": "COMPLETED",
        "severity": "medium",
        "summary": "Overall status: Recruiting → Completed",
    }


def test_changes_come_in_table_order_then_outcomes_and_are_deterministic() -> None:
    new = snapshot(
        has_results=True,
        primary_outcomes=(),
        overall_status="COMPLETED",
        brief_title="Another title",
    )
    kinds = [c.kind for c in diff(BASE, new)]
    assert kinds == ["field_changed", "status_changed", "results_posted", "outcome_removed"]
    assert diff(BASE, new) == diff(BASE, new)


def test_every_change_of_a_large_edit_is_json_serialisable() -> None:
    new = snapshot(
        overall_status="TERMINATED",
        why_stopped="Funding",
        enrollment_count=None,
        phases=(),
        start_date=StudyDate(),
        interventions=(),
        arms=BASE.arms[:1],
        eligibility=Eligibility(),
        locations=(Location(country="China"),),
        primary_outcomes=(outcome("Something else entirely"),),
        other_outcomes=(TREG,),
        has_results=True,
        results_first_posted="2024-01-03",
    )
    changes = diff(BASE, new)
    assert len(changes) > 10
    for change in changes:
        assert json.loads(json.dumps(change.to_json())) == change.to_json()


# --------------------------------------------------------------------------- status


@pytest.mark.parametrize("status", ["TERMINATED", "WITHDRAWN", "SUSPENDED"])
def test_a_stopped_status_is_high_severity(status: str) -> None:
    assert only_change(overall_status=status).severity == "high"


@pytest.mark.parametrize("status", ["COMPLETED", "ACTIVE_NOT_RECRUITING", "UNKNOWN"])
def test_other_status_changes_are_medium_severity(status: str) -> None:
    assert only_change(overall_status=status).severity == "medium"


def test_status_summary_humanises_compound_enum_values() -> None:
    change = only_change(overall_status="ACTIVE_NOT_RECRUITING")
    assert change.summary == "Overall status: Recruiting → Active, not recruiting"


# --------------------------------------------------------------------------- enrollment


def test_enrollment_change_is_reported_with_counts() -> None:
    change = only_change(enrollment_count=28)
    assert (change.kind, change.field) == (
        "enrollment_changed",
        "protocolSection.designModule.enrollmentInfo.count",
    )
    assert (change.old, change.new, change.severity) == (30, 28, "medium")
    assert change.summary == "Enrollment: 30 → 28"


@pytest.mark.parametrize(
    ("old", "new", "severity"),
    [
        (30, 15, "high"),
        (30, 45, "high"),
        (30, 16, "medium"),
        (100, 149, "medium"),
        (0, 10, "high"),
        (None, 30, "medium"),
        (30, None, "medium"),
    ],
)
def test_enrollment_severity_is_high_from_a_fifty_percent_move(
    old: int | None, new: int | None, severity: str
) -> None:
    change = diff(snapshot(enrollment_count=old), snapshot(enrollment_count=new))[0]
    assert change.severity == severity


def test_missing_enrollment_reads_as_none() -> None:
    assert only_change(enrollment_count=None).summary == "Enrollment: 30 → none"


def test_enrollment_type_change_is_reported() -> None:
    change = only_change(enrollment_type="ACTUAL")
    assert change.kind == "enrollment_type_changed"
    assert change.field == "protocolSection.designModule.enrollmentInfo.type"
    assert (change.old, change.new, change.severity) == ("ESTIMATED", "ACTUAL", "medium")
    assert change.summary == "Enrollment type: Estimated → Actual"


# --------------------------------------------------------------------------- dates


def test_primary_completion_date_change_is_medium_with_date_and_type() -> None:
    change = only_change(primary_completion_date=StudyDate(date="2024-05-01", type="ESTIMATED"))
    assert change.kind == "date_changed"
    assert change.field == "protocolSection.statusModule.primaryCompletionDateStruct"
    assert change.old == {"date": "2023-11-01", "type": "ESTIMATED"}
    assert change.new == {"date": "2024-05-01", "type": "ESTIMATED"}
    assert change.severity == "medium"
    assert change.summary == (
        "Primary completion date: 2023-11-01 (estimated) → 2024-05-01 (estimated)"
    )


def test_a_date_type_change_alone_is_a_date_change() -> None:
    change = only_change(completion_date=StudyDate(date="2023-12-01", type="ACTUAL"))
    assert change.field == "protocolSection.statusModule.completionDateStruct"
    assert change.summary == "Completion date: 2023-12-01 (estimated) → 2023-12-01 (actual)"
    assert change.severity == "low"


@pytest.mark.parametrize(
    ("new_date", "severity"),
    [
        ("2024-06-01", "low"),
        ("2024-12-01", "low"),
        ("2024-12-02", "medium"),
        ("2025", "medium"),
        ("2022-11", "medium"),
        ("2023-01", "low"),
        ("", "low"),
    ],
)
def test_completion_date_is_low_unless_it_moves_more_than_a_year(
    new_date: str, severity: str
) -> None:
    change = only_change(completion_date=StudyDate(date=new_date, type="ESTIMATED"))
    assert change.severity == severity


def test_start_date_slip_of_more_than_a_year_is_medium() -> None:
    change = only_change(start_date=StudyDate(date="2024-01", type="ESTIMATED"))
    assert (change.field, change.severity) == (
        "protocolSection.statusModule.startDateStruct",
        "medium",
    )
    assert change.summary == "Start date: 2022-11-05 (actual) → 2024-01 (estimated)"


def test_a_date_without_type_or_value_reads_plainly() -> None:
    change = diff(snapshot(start_date=StudyDate()), snapshot(start_date=StudyDate(date="2023")))
    assert change[0].summary == "Start date: none → 2023"


# --------------------------------------------------------------------------- phases and results


def test_phase_change_lists_humanised_phases() -> None:
    change = only_change(phases=("PHASE1",))
    assert (change.kind, change.field) == ("phase_changed", "protocolSection.designModule.phases")
    assert (change.old, change.new, change.severity) == (["PHASE1", "PHASE2"], ["PHASE1"], "medium")
    assert change.summary == "Phase: Phase 1, Phase 2 → Phase 1"


def test_phase_order_is_not_a_change() -> None:
    assert diff(BASE, snapshot(phases=("PHASE2", "PHASE1"))) == []


def test_results_appearing_is_results_posted_and_high() -> None:
    change = only_change(has_results=True)
    assert (change.kind, change.field, change.severity) == ("results_posted", "hasResults", "high")
    assert (change.old, change.new, change.summary) == (False, True, "Results posted")


def test_results_disappearing_is_a_medium_field_change() -> None:
    change = diff(snapshot(has_results=True), BASE)[0]
    assert (change.kind, change.field, change.severity) == ("field_changed", "hasResults", "medium")
    assert change.summary == "Results no longer posted"


# --------------------------------------------------------------------------- field_changed

FIELD_CASES: list[tuple[str, Any, str, str]] = [
    ("org_study_id", "X-1", "protocolSection.identificationModule.orgStudyIdInfo.id", "low"),
    (
        "secondary_ids",
        ("2015-001",),
        "protocolSection.identificationModule.secondaryIdInfos",
        "low",
    ),
    ("brief_title", "New", "protocolSection.identificationModule.briefTitle", "low"),
    ("official_title", "New", "protocolSection.identificationModule.officialTitle", "low"),
    ("acronym", "LIRA", "protocolSection.identificationModule.acronym", "low"),
    ("last_known_status", "RECRUITING", "protocolSection.statusModule.lastKnownStatus", "low"),
    ("why_stopped", "Funding", "protocolSection.statusModule.whyStopped", "medium"),
    (
        "results_first_posted",
        "2024-01-03",
        "protocolSection.statusModule.resultsFirstPostDateStruct.date",
        "low",
    ),
    (
        "lead_sponsor",
        "UCB",
        "protocolSection.sponsorCollaboratorsModule.leadSponsor.name",
        "medium",
    ),
    ("collaborators", ("UCB",), "protocolSection.sponsorCollaboratorsModule.collaborators", "low"),
    ("brief_summary", "New", "protocolSection.descriptionModule.briefSummary", "low"),
    (
        "detailed_description",
        "New",
        "protocolSection.descriptionModule.detailedDescription",
        "low",
    ),
    ("conditions", ("Sicca",), "protocolSection.conditionsModule.conditions", "medium"),
    ("keywords", (), "protocolSection.conditionsModule.keywords", "low"),
    ("study_type", "OBSERVATIONAL", "protocolSection.designModule.studyType", "medium"),
    ("allocation", "NA", "protocolSection.designModule.designInfo.allocation", "medium"),
    (
        "intervention_model",
        "CROSSOVER",
        "protocolSection.designModule.designInfo.interventionModel",
        "medium",
    ),
    (
        "primary_purpose",
        "PREVENTION",
        "protocolSection.designModule.designInfo.primaryPurpose",
        "medium",
    ),
    ("masking", "DOUBLE", "protocolSection.designModule.designInfo.maskingInfo.masking", "medium"),
    ("arms", (), "protocolSection.armsInterventionsModule.armGroups", "medium"),
    ("interventions", (), "protocolSection.armsInterventionsModule.interventions", "medium"),
    ("eligibility", Eligibility(sex="FEMALE"), "protocolSection.eligibilityModule", "medium"),
    ("locations", (), "protocolSection.contactsLocationsModule.locations", "low"),
]


def test_the_field_cases_cover_every_field_changed_field() -> None:
    plain = {n for n, s in TRACKED_FIELDS.items() if s.kind == "field_changed"}
    assert {case[0] for case in FIELD_CASES} == plain


@pytest.mark.parametrize(("name", "value", "path", "severity"), FIELD_CASES)
def test_other_tracked_fields_are_field_changes_at_their_registry_path(
    name: str, value: Any, path: str, severity: str
) -> None:
    change = only_change(**{name: value})
    assert (change.kind, change.field, change.severity) == ("field_changed", path, severity)
    assert change.outcome_type is None
    json.dumps(change.to_json())


def test_title_change_summary_names_the_field_only() -> None:
    assert only_change(brief_title="IL-2 and rapamycin").summary == "Brief title changed"
    assert only_change(official_title="x").summary == "Official title changed"


def test_condition_summary_lists_added_and_removed_terms() -> None:
    change = only_change(conditions=("Sjogren's Syndrome", "Sjogren's Syndrome, Primary"))
    assert change.summary == "Conditions: +Sjogren's Syndrome, Primary, −Sicca"
    assert change.old == ["Sicca", "Sjogren's Syndrome"]


def test_long_lists_are_cut_in_the_summary() -> None:
    change = only_change(keywords=tuple(f"k{i}" for i in range(10)))
    assert change.summary == "Keywords: +k0, +k1, +k2, +k3, +k4, +k5 and 6 more"


def test_location_summary_counts_added_removed_and_changed_sites() -> None:
    beijing = BASE.locations[0]
    new_locations = (
        beijing.model_copy(update={"status": "COMPLETED"}),
        Location(facility="Site 2", city="Shanghai", country="China"),
        Location(facility="Site 3", city="Xi'an", country="China"),
    )
    change = only_change(locations=new_locations)
    assert change.summary == "Locations: 2 added, 1 changed"
    assert change.new[1] == {"facility": "Site 2", "city": "Shanghai", "country": "China"}
    change = diff(snapshot(locations=new_locations), snapshot(locations=new_locations[1:2]))[0]
    assert change.summary == "Locations: 2 removed"


def test_a_location_change_carries_only_the_sites_that_differ() -> None:
    sites = tuple(Location(facility=f"Site {i}", city="Beijing") for i in range(50))
    closed = sites[7].model_copy(update={"status": "COMPLETED"})
    change = diff(snapshot(locations=sites), snapshot(locations=(*sites[:7], closed, *sites[8:])))
    assert [(c.field, c.old, c.new) for c in change] == [
        (
            "protocolSection.contactsLocationsModule.locations",
            [{"facility": "Site 7", "city": "Beijing"}],
            [{"facility": "Site 7", "city": "Beijing", "status": "COMPLETED"}],
        )
    ]
    assert change[0].summary == "Locations: 1 changed"


def test_location_order_is_not_a_change() -> None:
    sites = tuple(Location(facility=f"Site {i}", city="Beijing") for i in range(5))
    assert diff(snapshot(locations=sites), snapshot(locations=sites[::-1])) == []


def test_intervention_summary_names_added_removed_and_changed_items() -> None:
    il2 = BASE.interventions[0]
    new = (
        il2.model_copy(update={"description": "1 MIU twice a week"}),
        Intervention(type="DRUG", name="Placebo"),
    )
    change = only_change(interventions=new)
    assert change.summary == (
        "Interventions: +Placebo; −Rapamycin; "
        'Interleukin-2: description "1 MIU every other day" → "1 MIU twice a week"'
    )
    assert change.new[1] == {"type": "DRUG", "name": "Placebo"}


def test_arm_summary_names_arms_by_label() -> None:
    change = only_change(arms=(*BASE.arms, Arm(label="IL-2 + Rapamycin", type="EXPERIMENTAL")))
    assert change.summary == "Arms: +IL-2 + Rapamycin"


def test_inner_order_of_arm_interventions_is_not_a_change() -> None:
    old = (Arm(label="Both", interventions=("Drug: A", "Drug: B")),)
    new = (Arm(label="Both", interventions=("Drug: B", "Drug: A")),)
    assert diff(snapshot(arms=old), snapshot(arms=new)) == []


def test_eligibility_summary_names_the_parts_that_changed() -> None:
    new = BASE.eligibility.model_copy(update={"maximum_age": "75 Years", "criteria": "ESSDAI>=5"})
    change = only_change(eligibility=new)
    assert change.summary == (
        'Eligibility: criteria "2002 classification criteria; ESSDAI >= 4" → "ESSDAI>=5"; '
        'maximum age "70 Years" → "75 Years"'
    )
    assert change.new["maximum_age"] == "75 Years"
    assert change.old["healthy_volunteers"] is False


def test_why_stopped_summary_quotes_the_reason() -> None:
    change = only_change(why_stopped="Sponsor decision")
    assert change.summary == 'Why stopped: none → "Sponsor decision"'


def test_design_enum_summaries_are_humanised() -> None:
    assert only_change(masking="DOUBLE").summary == "Masking: None (open label) → Double"
    change = only_change(allocation="NON_RANDOMIZED")
    assert change.summary == "Allocation: Randomized → Non-randomized"


def test_long_values_are_clipped_in_summaries() -> None:
    change = only_change(why_stopped="x" * 300)
    assert len(change.summary) < 110
    assert change.summary.endswith('…"')
    assert change.new == "x" * 300


@pytest.mark.parametrize(
    ("value", "human"),
    [
        ("RECRUITING", "Recruiting"),
        ("NOT_YET_RECRUITING", "Not yet recruiting"),
        ("ACTIVE_NOT_RECRUITING", "Active, not recruiting"),
        ("PHASE1", "Phase 1"),
        ("EARLY_PHASE1", "Early Phase 1"),
        ("NA", "Not applicable"),
        ("ESTIMATED", "Estimated"),
        ("", ""),
        ("Already human", "Already human"),
    ],
)
def test_humanise_turns_registry_enums_into_words(value: str, human: str) -> None:
    assert humanise(value) == human


# --------------------------------------------------------------------------- outcomes


def test_a_reworded_primary_outcome_is_modified_minor_and_medium() -> None:
    reworded = outcome(
        "Proportion of Treg cells in peripheral blood (per protocol population)",
        description="Flow cytometry",
    )
    change = only_change(primary_outcomes=(reworded,))
    assert change.kind == "outcome_modified"
    assert change.field == OUTCOMES + "primaryOutcomes[0]"
    # detail added to the definition: the same outcome measured differently (minor → medium)
    assert (change.outcome_type, change.grade, change.severity) == ("primary", "minor", "medium")
    assert change.old == {
        "measure": TREG.measure,
        "time_frame": "Week 12",
        "description": "Flow cytometry",
    }
    assert change.new["measure"] == reworded.measure
    assert change.summary == (
        'Primary outcome 1 reworded: "Proportion of Treg cells in peripheral blood" → '
        '"Proportion of Treg cells in peripheral blood (per protocol population)"'
    )


def test_overall_survival_with_a_qualifier_pairs_with_overall_survival() -> None:
    old = snapshot(primary_outcomes=(outcome("Overall survival", "5 years"),))
    new = snapshot(
        primary_outcomes=(outcome("Overall survival (per protocol population)", "5 years"),)
    )
    assert [c.kind for c in diff(old, new)] == ["outcome_modified"]


def test_genuinely_different_outcomes_are_removed_and_added() -> None:
    old = snapshot(secondary_outcomes=(outcome("Number of adverse events", "Week 24"),))
    new = snapshot(secondary_outcomes=(outcome("Change in HbA1c from baseline", "Week 24"),))
    changes = diff(old, new)
    assert [(c.kind, c.severity) for c in changes] == [
        ("outcome_added", "medium"),
        ("outcome_removed", "medium"),
    ]
    assert changes[0].summary == 'Secondary outcome added: "Change in HbA1c from baseline"'
    assert changes[1].summary == 'Secondary outcome removed: "Number of adverse events"'


def test_a_time_frame_change_is_an_outcome_modification() -> None:
    moved = ESSDAI.model_copy(update={"time_frame": "Week 24"})
    change = only_change(secondary_outcomes=(PATIENT_VAS, ADVERSE, moved, PHYSICIAN_VAS))
    assert (change.kind, change.field, change.severity) == (
        "outcome_modified",
        OUTCOMES + "secondaryOutcomes[2]",
        "medium",
    )
    assert change.summary == 'Secondary outcome 3 time frame changed: "Week 12" → "Week 24"'


def test_a_description_change_is_an_outcome_modification() -> None:
    edited = ESSDAI.model_copy(update={"description": "ESSDAI, range 0 to 123"})
    change = only_change(secondary_outcomes=(PATIENT_VAS, ADVERSE, edited, PHYSICIAN_VAS))
    assert change.kind == "outcome_modified"
    assert change.summary == (
        "Secondary outcome 3 description changed: "
        '"EULAR Sjogren\'s syndrome disease activity index (0-123)" → "ESSDAI, range 0 to 123"'
    )


def test_a_reworded_outcome_with_a_new_time_frame_says_both() -> None:
    edited = outcome("Overall survival in all randomised participants", "Week 24")
    old = snapshot(primary_outcomes=(outcome("Overall survival"),))
    change = diff(old, snapshot(primary_outcomes=(edited,)))[0]
    assert change.summary.startswith("Primary outcome 1 reworded (time frame also changed): ")


def test_an_outcome_moved_from_primary_to_secondary_is_only_reclassified() -> None:
    new = snapshot(primary_outcomes=(), secondary_outcomes=(*BASE.secondary_outcomes, TREG))
    change = diff(BASE, new)
    assert len(change) == 1
    assert change[0].kind == "outcome_reclassified"
    assert change[0].field == OUTCOMES + "secondaryOutcomes[4]"
    assert (change[0].old, change[0].new) == ("primary", "secondary")
    assert (change[0].outcome_type, change[0].severity) == ("secondary", "high")
    assert change[0].summary == (
        'Outcome moved from primary to secondary: "Proportion of Treg cells in peripheral blood"'
    )


def test_an_outcome_moved_between_secondary_and_other_is_medium() -> None:
    new = snapshot(secondary_outcomes=BASE.secondary_outcomes[1:], other_outcomes=(PATIENT_VAS,))
    change = diff(BASE, new)
    assert [(c.kind, c.field, c.severity) for c in change] == [
        ("outcome_reclassified", OUTCOMES + "otherOutcomes[0]", "medium")
    ]


def test_an_outcome_moved_and_reworded_is_one_reclassification_saying_the_rewording() -> None:
    moved = ESSDAI.model_copy(update={"measure": "ESSDAI total score"})
    new = snapshot(
        primary_outcomes=(TREG, moved),
        secondary_outcomes=(PATIENT_VAS, ADVERSE, PHYSICIAN_VAS),
    )
    changes = diff(BASE, new)
    assert [(c.kind, c.field, c.old_field, c.severity) for c in changes] == [
        (
            "outcome_reclassified",
            OUTCOMES + "primaryOutcomes[1]",
            OUTCOMES + "secondaryOutcomes[2]",
            "high",
        ),
    ]
    assert changes[0].summary == (
        'Outcome moved from secondary to primary: "ESSDAI total score" '
        '(reworded: "ESSDAI" → "ESSDAI total score")'
    )


def test_swapping_the_order_of_outcomes_is_not_a_change() -> None:
    new = snapshot(secondary_outcomes=BASE.secondary_outcomes[::-1])
    assert diff(BASE, new) == []


def test_a_removed_outcome_is_named_by_its_old_index() -> None:
    change = only_change(secondary_outcomes=(PATIENT_VAS, ESSDAI, PHYSICIAN_VAS))
    assert (change.kind, change.field) == ("outcome_removed", OUTCOMES + "secondaryOutcomes[1]")
    assert (change.old, change.new) == (
        {"measure": ADVERSE.measure, "time_frame": "Week 12", "description": ""},
        None,
    )


def test_an_added_outcome_is_named_by_its_new_index() -> None:
    extra = outcome("Salivary flow rate")
    change = only_change(secondary_outcomes=(extra, *BASE.secondary_outcomes))
    assert (change.kind, change.field) == ("outcome_added", OUTCOMES + "secondaryOutcomes[0]")
    assert change.old is None


def test_a_modified_outcome_is_named_by_its_new_index() -> None:
    reworded = PHYSICIAN_VAS.model_copy(update={"measure": "Physician global VAS (0-10)"})
    new = snapshot(secondary_outcomes=(reworded, PATIENT_VAS, ADVERSE, ESSDAI))
    change = diff(BASE, new)
    assert [(c.kind, c.field) for c in change] == [
        ("outcome_modified", OUTCOMES + "secondaryOutcomes[0]")
    ]


def test_duplicate_identical_outcomes_pair_one_to_one() -> None:
    twice = snapshot(secondary_outcomes=(ESSDAI, ESSDAI))
    once = snapshot(secondary_outcomes=(ESSDAI,))
    assert diff(twice, twice) == []
    removed = diff(twice, once)
    assert [(c.kind, c.field) for c in removed] == [
        ("outcome_removed", OUTCOMES + "secondaryOutcomes[1]")
    ]
    added = diff(once, twice)
    assert [(c.kind, c.field) for c in added] == [
        ("outcome_added", OUTCOMES + "secondaryOutcomes[1]")
    ]


def test_an_identical_outcome_in_the_same_list_wins_over_one_in_another_list() -> None:
    old = snapshot(primary_outcomes=(ESSDAI,), secondary_outcomes=(ESSDAI,))
    new = snapshot(primary_outcomes=(), secondary_outcomes=(ESSDAI,))
    change = diff(old, new)
    assert [(c.kind, c.field) for c in change] == [
        ("outcome_removed", OUTCOMES + "primaryOutcomes[0]")
    ]


def test_two_reworded_outcomes_pair_with_their_own_originals() -> None:
    old = snapshot(
        secondary_outcomes=(outcome("Overall survival"), outcome("Progression-free survival"))
    )
    new = snapshot(
        secondary_outcomes=(
            outcome("Progression-free survival (investigator assessed)"),
            outcome("Overall survival (per protocol)"),
        )
    )
    changes = diff(old, new)
    assert [(c.kind, c.old["measure"], c.new["measure"]) for c in changes] == [
        (
            "outcome_modified",
            "Progression-free survival",
            "Progression-free survival (investigator assessed)",
        ),
        ("outcome_modified", "Overall survival", "Overall survival (per protocol)"),
    ]


def test_a_shared_time_frame_and_description_does_not_pair_different_measures() -> None:
    shared = "Assessed at the week 24 visit by the site investigator"
    a = outcome("Number of adverse events", "Week 24", shared)
    b = outcome("Change in HbA1c from baseline", "Week 24", shared)
    assert outcome_similarity(a, b) == 0.0
    assert pair_outcomes([("primary", a)], [("primary", b)]) == {}


def test_outcome_similarity_is_one_for_equal_and_passes_the_threshold_for_rewordings() -> None:
    assert outcome_similarity(TREG, TREG) == pytest.approx(1.0)
    reworded = outcome("Overall survival (per protocol population)")
    assert outcome_similarity(outcome("Overall survival"), reworded) >= OUTCOME_PAIR_THRESHOLD
    assert 0 < MEASURE_GATE < OUTCOME_PAIR_THRESHOLD


def test_pair_outcomes_returns_new_positions_mapped_to_old_ones() -> None:
    old = [("primary", TREG), ("secondary", ESSDAI)]
    new = [("primary", ESSDAI), ("secondary", outcome("Salivary flow"))]
    assert pair_outcomes(old, new) == {0: 1}


def test_secondary_outcome_added_is_medium_and_primary_removed_is_high() -> None:
    added = only_change(secondary_outcomes=(*BASE.secondary_outcomes, outcome("Salivary flow")))
    assert (added.kind, added.severity, added.outcome_type) == (
        "outcome_added",
        "medium",
        "secondary",
    )
    removed = only_change(primary_outcomes=())
    assert (removed.kind, removed.severity, removed.outcome_type) == (
        "outcome_removed",
        "high",
        "primary",
    )
    assert removed.summary == (
        'Primary outcome removed: "Proportion of Treg cells in peripheral blood"'
    )


def test_long_outcome_measures_are_clipped_in_summaries() -> None:
    long = outcome("Very long measure " * 20)
    change = only_change(other_outcomes=(long,))
    assert change.summary.startswith('Other outcome added: "Very long measure')
    assert change.summary.endswith('…"')
    assert len(change.summary) < 110
    assert change.new["measure"] == long.measure


# --------------------------------------------------------------------------- properties

_words = st.text(alphabet="abcdefgh ", min_size=0, max_size=12)
_enum = st.sampled_from(["", "RECRUITING", "COMPLETED", "TERMINATED", "UNKNOWN", "ACTUAL"])
_names = st.lists(_words, max_size=4).map(tuple)
_outcomes = st.lists(
    st.builds(Outcome, measure=_words, time_frame=_words, description=_words), max_size=4
).map(tuple)
_dates = st.builds(
    StudyDate, date=st.sampled_from(["", "2020", "2021-05", "2023-01-31"]), type=_enum
)

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "org_study_id": _words,
    "secondary_ids": _names,
    "brief_title": _words,
    "official_title": _words,
    "acronym": _words,
    "overall_status": _enum,
    "last_known_status": _enum,
    "why_stopped": _words,
    "study_type": _enum,
    "phases": st.lists(st.sampled_from(["NA", "PHASE1", "PHASE2", "PHASE3"]), max_size=2).map(
        tuple
    ),
    "allocation": _enum,
    "intervention_model": _enum,
    "primary_purpose": _enum,
    "masking": _enum,
    "enrollment_count": st.none() | st.integers(min_value=0, max_value=1000),
    "enrollment_type": _enum,
    "start_date": _dates,
    "primary_completion_date": _dates,
    "completion_date": _dates,
    "conditions": _names,
    "keywords": _names,
    "interventions": st.lists(
        st.builds(Intervention, type=_enum, name=_words, other_names=_names), max_size=3
    ).map(tuple),
    "arms": st.lists(st.builds(Arm, label=_words, interventions=_names), max_size=3).map(tuple),
    "primary_outcomes": _outcomes,
    "secondary_outcomes": _outcomes,
    "other_outcomes": _outcomes,
    "lead_sponsor": _words,
    "collaborators": _names,
    "brief_summary": _words,
    "detailed_description": _words,
    "eligibility": st.builds(
        Eligibility, criteria=_words, sex=_enum, healthy_volunteers=st.none() | st.booleans()
    ),
    "locations": st.lists(
        st.builds(Location, facility=_words, city=_words, status=_enum), max_size=4
    ).map(tuple),
    "has_results": st.booleans(),
    "results_first_posted": st.sampled_from(["", "2024-01-03"]),
    # what registries beyond ClinicalTrials.gov fill (their own tests vary them)
    "countries": st.just(()),
    "enrollment_actual": st.just(None),
    "lifecycle": st.sampled_from(["", "recruiting", "completed"]),
    "linked": st.just(()),
}
UNORDERED = [name for name, spec in TRACKED_FIELDS.items() if spec.unordered]
OUTCOME_LISTS = ["primary_outcomes", "secondary_outcomes", "other_outcomes"]
snapshots = st.fixed_dictionaries(FIELD_VALUES).map(
    lambda fields: Snapshot(study_id="NCT05605665", **fields)
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_property_strategies_cover_every_field() -> None:
    assert set(FIELD_VALUES) | {"registry", "study_id"} == set(Snapshot.model_fields)


@PROPERTY
@given(snapshots)
def test_a_snapshot_never_differs_from_itself(snap: Snapshot) -> None:
    assert diff(snap, snap) == []
    assert diff(snap, Snapshot.model_validate_json(snap.model_dump_json())) == []


@PROPERTY
@given(snapshots, st.randoms(use_true_random=False))
def test_reordering_unordered_lists_and_outcome_lists_is_never_a_change(
    snap: Snapshot, rnd: Any
) -> None:
    shuffled = {}
    for name in UNORDERED + OUTCOME_LISTS:
        items = list(getattr(snap, name))
        rnd.shuffle(items)
        shuffled[name] = tuple(items)
    assert diff(snap, snap.model_copy(update=shuffled)) == []


@PROPERTY
@given(snapshots, st.sampled_from(sorted(FIELD_VALUES)), st.data())
def test_changing_one_field_names_exactly_that_field(
    snap: Snapshot, name: str, data: st.DataObject
) -> None:
    value = data.draw(FIELD_VALUES[name])
    changed = snap.model_copy(update={name: value})
    changes = diff(snap, changed)
    if name in OUTCOME_LISTS:
        kind = name.removesuffix("_outcomes")
        assert all(c.field.startswith(f"{OUTCOMES}{kind}Outcomes[") for c in changes)
        assert all(
            c.kind in {"outcome_added", "outcome_removed", "outcome_modified"} for c in changes
        )
    else:
        same = name not in FIELD_PATHS or _equivalent(name, getattr(snap, name), value)
        expect = [] if same else [name]
        assert [c.field for c in changes] == [FIELD_PATHS[n] for n in expect]
    for change in changes:
        json.dumps(change.to_json())


def _equivalent(name: str, old: Any, new: Any) -> bool:
    """Whether two values of a field are the same content (unordered lists as multisets)."""
    if old == new:
        return True
    if isinstance(old, str) and isinstance(new, str) and unlisted(old) == unlisted(new):
        return True  # list markup and spacing alone are never reported (a real text is folded)
    if not TRACKED_FIELDS[name].unordered:
        return False

    def key(item: Any) -> str:
        if isinstance(item, Arm | Intervention):
            data = item.model_dump()
            return json.dumps({k: sorted(v) if isinstance(v, list) else v for k, v in data.items()})
        return repr(item)

    return sorted(map(key, old)) == sorted(map(key, new))


@PROPERTY
@given(snapshots, st.sampled_from(OUTCOME_LISTS), _outcomes)
def test_a_changed_outcome_list_always_reports_something_when_its_content_changed(
    snap: Snapshot, name: str, value: tuple[Outcome, ...]
) -> None:
    changes = diff(snap, snap.model_copy(update={name: value}))

    def key(item: Outcome) -> tuple[str, str, str]:
        # Case, spacing and number words alone are cosmetic in outcome text (the contract).
        return (
            cosmetic_key(item.measure),
            cosmetic_key(item.time_frame),
            cosmetic_key(item.description),
        )

    same_content = sorted(map(key, getattr(snap, name))) == sorted(map(key, value))
    assert (changes == []) == same_content


# --------------------------------------------------------------------------- real records

# Byte-for-byte copies of the real records in ../shared/reference/ctgov (see its SOURCES.md).
RECORDS = Path(__file__).resolve().parent / "data" / "diff"


def _load(name: str) -> dict[str, Any]:
    return json.loads((RECORDS / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _normalise(raw: dict[str, Any]) -> Snapshot:
    return normalise(raw)


def test_a_real_record_and_its_next_data_refresh_give_no_changes() -> None:
    old = _normalise(_load("NCT02552212.json"))
    new = _normalise(_load("NCT02552212_versionHolder-2024-01-03.json"))
    assert diff(old, new) == []


def test_cosmetic_edits_of_a_real_record_give_no_changes() -> None:
    raw = _load("NCT02552212.json")
    edited = copy.deepcopy(raw)
    protocol = edited["protocolSection"]
    protocol["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2024-02-01"
    protocol["statusModule"]["statusVerifiedDate"] = "2024-01"
    edited["derivedSection"]["miscInfoModule"]["versionHolder"] = "2024-02-01"
    protocol["identificationModule"]["briefTitle"] += "  "
    plasma = protocol["outcomesModule"]["primaryOutcomes"][2]
    plasma["measure"] = f"<p>{plasma['measure']}</p>"
    plasma["timeFrame"] = plasma["timeFrame"].replace(" ", "\u00a0")
    for module, key in [
        ("conditionsModule", "conditions"),
        ("conditionsModule", "keywords"),
        ("contactsLocationsModule", "locations"),
        ("outcomesModule", "secondaryOutcomes"),
        ("outcomesModule", "primaryOutcomes"),
    ]:
        protocol[module][key].reverse()
    assert diff(_normalise(raw), _normalise(edited)) == []


def test_realistic_edits_of_a_real_record_are_reported_field_by_field() -> None:
    raw = _load("NCT02552212.json")
    edited = copy.deepcopy(raw)
    protocol = edited["protocolSection"]
    protocol["statusModule"]["overallStatus"] = "TERMINATED"
    protocol["statusModule"]["whyStopped"] = "Sponsor decision"
    protocol["designModule"]["enrollmentInfo"]["count"] = 150
    protocol["conditionsModule"]["conditions"].append("Spondyloarthritis")
    del protocol["contactsLocationsModule"]["locations"][0]
    outcomes = protocol["outcomesModule"]
    outcomes["secondaryOutcomes"].append(outcomes["primaryOutcomes"].pop(1))
    week4 = outcomes["secondaryOutcomes"][10]
    assert week4["measure"] == "Change From Baseline in ASQoL at Week 4"
    week4["measure"] += " (Observed Cases)"

    changes = diff(_normalise(raw), _normalise(edited))

    status = "protocolSection.statusModule."
    assert [(c.kind, c.field, c.severity) for c in changes] == [
        ("status_changed", status + "overallStatus", "high"),
        ("field_changed", status + "whyStopped", "medium"),
        ("field_changed", "protocolSection.conditionsModule.conditions", "medium"),
        ("enrollment_changed", "protocolSection.designModule.enrollmentInfo.count", "high"),
        ("field_changed", "protocolSection.contactsLocationsModule.locations", "low"),
        ("outcome_modified", OUTCOMES + "secondaryOutcomes[10]", "medium"),
        ("outcome_reclassified", OUTCOMES + "secondaryOutcomes[20]", "high"),
    ]
    summaries = [c.summary for c in changes]
    assert summaries[2] == "Conditions: +Spondyloarthritis"
    assert summaries[3] == "Enrollment: 317 → 150"
    assert summaries[4] == "Locations: 1 removed"
    assert summaries[5] == (
        'Secondary outcome 11 reworded: "Change From Baseline in ASQoL at Week 4" → '
        '"Change From Baseline in ASQoL at Week 4 (Observed Cases)"'
    )
    assert summaries[6].startswith("Outcome moved from primary to secondary: ")


def test_new_time_frames_on_a_series_of_real_outcomes_pair_each_with_its_own_week() -> None:
    raw = _load("NCT02552212.json")
    edited = copy.deepcopy(raw)
    for item in edited["protocolSection"]["outcomesModule"]["primaryOutcomes"]:
        item["timeFrame"] += " (±3 days)"
    changes = diff(_normalise(raw), _normalise(edited))
    assert len(changes) == 11
    for index, change in enumerate(changes):
        assert change.kind == "outcome_modified"
        assert change.field == f"{OUTCOMES}primaryOutcomes[{index}]"
        assert change.old["measure"] == change.new["measure"]
        assert "time frame changed" in change.summary
