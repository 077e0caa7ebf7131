"""Tests of service.registry.ctgov_normalise: real ClinicalTrials.gov records → Snapshot.

Concrete values come from the real records copied byte-for-byte into ``tests/data/records/``.
The full reference set in ``../shared/reference/ctgov/`` is used when it exists (it does in the
project workspace, not in a user's clone).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import RecordInvalid
from service.models import Location, Outcome, RecordMeta, Snapshot, StudyDate
from service.registry.ctgov_normalise import (
    ENROLLMENT_COUNT_PATH,
    STUDY_ID_PATH,
    normalise,
    record_meta,
    unwrap,
)

RECORDS = Path(__file__).resolve().parent / "data" / "records"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ctgov"
NO_REFERENCE = "no ../shared/reference/ctgov next to the repository (a clone has only tests/data)"

WITHDRAWN = "NCT00973089.json"
UNKNOWN_OBSERVATIONAL = "NCT03475563.json"
WITH_RESULTS = "NCT00763412.json"
HISTORY_V0 = "NCT04280705_history_v0.json"


def load(name: str) -> Any:
    return json.loads((RECORDS / name).read_text(encoding="utf-8"))


def reference_files() -> list[Any]:
    if not REFERENCE.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_REFERENCE), id="missing")]
    files = sorted(REFERENCE.glob("*.json")) + sorted(REFERENCE.glob("history/*.json"))
    return [pytest.param(path, id=path.relative_to(REFERENCE).as_posix()) for path in files]


def bundled_files() -> list[Path]:
    return sorted(RECORDS.glob("*.json"))


def minimal(**protocol: Any) -> dict[str, Any]:
    return {"protocolSection": {"identificationModule": {"nctId": "NCT01234567"}, **protocol}}


# --- every real record normalises ------------------------------------------------------------


@pytest.mark.parametrize("path", reference_files())
def test_every_reference_record_normalises(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    snapshot = normalise(raw)
    assert snapshot.study_id == path.name[:11]
    assert len(snapshot.content_hash()) == 64
    assert record_meta(raw).study_id == snapshot.study_id


@pytest.mark.parametrize("path", bundled_files(), ids=lambda path: path.name)
def test_every_bundled_record_normalises(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert normalise(raw).study_id == path.name[:11]


@pytest.mark.parametrize("path", bundled_files(), ids=lambda path: path.name)
def test_bundled_records_are_byte_for_byte_copies_of_the_reference(path: Path) -> None:
    if not REFERENCE.is_dir():
        pytest.skip(NO_REFERENCE)
    originals = list(REFERENCE.glob(path.name)) + list(REFERENCE.glob(f"history/{path.name}"))
    assert [original.read_bytes() for original in originals] == [path.read_bytes()]


def test_normalising_leaves_the_raw_record_untouched() -> None:
    raw = load(WITH_RESULTS)
    before = copy.deepcopy(raw)
    normalise(raw)
    record_meta(raw)
    assert raw == before


# --- concrete values from real records --------------------------------------------------------


def test_a_withdrawn_study_has_enrollment_zero_and_says_why() -> None:
    snapshot = normalise(load(WITHDRAWN))
    assert snapshot.study_id == "NCT00973089"
    assert snapshot.overall_status == "WITHDRAWN"
    assert snapshot.enrollment_count == 0
    assert snapshot.enrollment_type == "ACTUAL"
    assert snapshot.why_stopped == (
        "recruiting or enrolling participants has halted prematurely and will not resume"
    )
    assert snapshot.start_date == StudyDate(date="2010-05", type="")
    assert snapshot.primary_completion_date == StudyDate(date="2015-03", type="ACTUAL")
    assert snapshot.keywords == ("Alternative treatment", "Caries, Dental", "Primary tooth")


def test_an_unknown_status_study_keeps_its_last_known_status() -> None:
    snapshot = normalise(load(UNKNOWN_OBSERVATIONAL))
    assert snapshot.overall_status == "UNKNOWN"
    assert snapshot.last_known_status == "RECRUITING"
    assert snapshot.enrollment_count == 100
    assert snapshot.enrollment_type == "ESTIMATED"


def test_an_observational_study_has_no_phases_or_interventional_design() -> None:
    snapshot = normalise(load(UNKNOWN_OBSERVATIONAL))
    assert snapshot.study_type == "OBSERVATIONAL"
    assert snapshot.phases == ()
    assert (snapshot.allocation, snapshot.intervention_model, snapshot.masking) == ("", "", "")
    assert snapshot.acronym == "BIOSS"
    assert snapshot.lead_sponsor == "Hospital Universitari Vall d'Hebron Research Institute"


def test_locations_keep_facility_city_country_and_status_in_sorted_order() -> None:
    snapshot = normalise(load(UNKNOWN_OBSERVATIONAL))
    assert (
        Location(
            facility="Hospital Universitario de León",
            city="León",
            country="Spain",
            status="RECRUITING",
        )
        in snapshot.locations
    )
    assert list(snapshot.locations) == sorted(
        snapshot.locations, key=lambda loc: (loc.country, loc.state, loc.city, loc.facility)
    )


def test_an_interventional_record_maps_ids_design_sponsors_and_results() -> None:
    snapshot = normalise(load(WITH_RESULTS))
    assert snapshot.study_id == "NCT00763412"
    assert snapshot.org_study_id == "05-1109"
    assert snapshot.secondary_ids == ("P60DK020579",)
    assert snapshot.phases == ("NA",)
    assert (snapshot.allocation, snapshot.intervention_model) == ("RANDOMIZED", "PARALLEL")
    assert (snapshot.primary_purpose, snapshot.masking) == ("OTHER", "QUADRUPLE")
    assert (snapshot.enrollment_count, snapshot.enrollment_type) == (31, "ACTUAL")
    assert snapshot.lead_sponsor == "Arbelaez, Ana Maria"
    assert snapshot.collaborators == (
        "National Institute of Diabetes and Digestive and Kidney Diseases (NIDDK)",
        "National Institutes of Health (NIH)",
        "Novo Nordisk A/S",
        "Washington University School of Medicine",
    )
    assert snapshot.has_results is True
    assert snapshot.results_first_posted == "2017-06-05"


def test_outcomes_keep_the_registry_order() -> None:
    snapshot = normalise(load(WITH_RESULTS))
    assert [outcome.measure for outcome in snapshot.primary_outcomes] == [
        "BMI",
        "Body Composition",
        "CRP",
    ]
    assert snapshot.primary_outcomes[1] == Outcome(
        measure="Body Composition",
        description="Reporting % of Fat and Lean body mass",
        time_frame="2 year/end of study",
    )


def test_arm_labels_keep_their_numbers() -> None:
    labels = [arm.label for arm in normalise(load(WITH_RESULTS)).arms]
    assert labels == ["1 Placebo", "2. repaglinide"]


def test_eligibility_criteria_lose_markdown_bullets_and_escapes() -> None:
    eligibility = normalise(load(WITH_RESULTS)).eligibility
    assert eligibility.criteria.startswith(
        "Inclusion Criteria: Male or females 12 -24 years old Diagnosis of Cystic Fibrosis"
    )
    assert "fasting blood glucose <126 mg/dl and 2 hour: 140 - 199 mg/dl or >200 mg/dl." in (
        eligibility.criteria
    )
    assert "\\" not in eligibility.criteria and "* " not in eligibility.criteria
    assert eligibility.sex == "ALL"
    assert eligibility.healthy_volunteers is False


def test_the_history_wrapper_gives_the_study_id_and_version() -> None:
    raw = load(HISTORY_V0)
    assert record_meta(raw) == RecordMeta(
        study_id="NCT04280705", registry_version=0, last_update_posted="2020-02-21"
    )
    assert normalise(raw) == normalise(raw["study"])
    assert normalise(raw).enrollment_count == 394


def test_html_in_an_old_version_is_folded_to_plain_text() -> None:
    criteria = normalise(load(HISTORY_V0)).eligibility.criteria
    assert criteria.startswith("Inclusion Criteria: Subject (or legally authorized")
    assert "Male or non-pregnant female adult >/=18 years of age" in criteria
    assert "(evidence of rales/crackles on exam) AND SpO2 </= 94% on room air, OR" in criteria
    assert "<li>" not in criteria and "&" not in criteria


# The v0 criteria as the current site writes them: Markdown lists and backslash escapes.
ACTT1_CRITERIA_MARKDOWN = """Inclusion Criteria:

1. Subject (or legally authorized representative) provides written informed consent prior to \
initiation of any study procedures.
2. Understands and agrees to comply with planned study procedures.
3. Agrees to the collection of oropharyngeal (OP) swabs and venous blood per protocol.
4. Male or non-pregnant female adult \\>/=18 years of age at time of enrollment.
5. Has laboratory-confirmed novel coronavirus (SARS-CoV-2) infection as determined by \
polymerase chain reaction (PCR), or other commercial or public health assay in any specimen \
\\< 72 hours prior to randomization.
6. Illness of any duration, and at least one of the following:

   * Radiographic infiltrates by imaging (chest x-ray, CT scan, etc.), OR
   * Clinical assessment (evidence of rales/crackles on exam) AND SpO2 \\</= 94% on room air, OR
   * Requiring mechanical ventilation and/or supplemental oxygen.
7. Women of childbearing potential must agree to use at least one primary form of \
contraception for the duration of the study (acceptable methods will be determined by the site).

Exclusion Criteria:

1. Alanine transaminase/aspartate transaminase (ALT/AST) \\> 5 times the upper limit of normal.
2. Stage 4 severe chronic kidney disease or requiring dialysis (i.e. estimated glomerular \
filtration rate (eGFR) \\< 30)
3. Pregnancy or breast feeding.
4. Anticipated transfer to another hospital which is not a study site within 72 hours.
5. Allergy to any study medication."""


def test_an_old_html_version_and_its_markdown_rewrite_hash_equal() -> None:
    old = load(HISTORY_V0)
    new = copy.deepcopy(old["study"])
    new["protocolSection"]["eligibilityModule"]["eligibilityCriteria"] = ACTT1_CRITERIA_MARKDOWN
    description = new["protocolSection"]["armsInterventionsModule"]["interventions"][1]
    description["description"] = description["description"].replace("&#x2F;", "/")
    assert normalise(old).content_hash() == normalise(new).content_hash()


def test_a_version_holder_refresh_does_not_change_the_hash() -> None:
    if not REFERENCE.is_dir():
        pytest.skip(NO_REFERENCE)
    before = json.loads((REFERENCE / "NCT02552212.json").read_text(encoding="utf-8"))
    after_path = REFERENCE / "NCT02552212_versionHolder-2024-01-03.json"
    after = json.loads(after_path.read_text(encoding="utf-8"))
    assert before != after
    assert normalise(before).content_hash() == normalise(after).content_hash()


# --- cosmetic churn never changes the hash ---------------------------------------------------


def test_derived_section_and_update_dates_do_not_change_the_hash() -> None:
    raw = load(WITH_RESULTS)
    changed = copy.deepcopy(raw)
    changed["derivedSection"] = {"miscInfoModule": {"versionHolder": "2099-01-01"}}
    status = changed["protocolSection"]["statusModule"]
    status["lastUpdatePostDateStruct"] = {"date": "2099-01-01", "type": "ACTUAL"}
    status["lastUpdateSubmitDate"] = "2099-01-01"
    status["statusVerifiedDate"] = "2099-01"
    assert normalise(raw).content_hash() == normalise(changed).content_hash()
    assert record_meta(changed).last_update_posted == "2099-01-01"


def test_the_order_of_unordered_lists_does_not_change_the_hash() -> None:
    raw = load(UNKNOWN_OBSERVATIONAL)
    shuffled = copy.deepcopy(raw)
    protocol = shuffled["protocolSection"]
    for module, key in [
        ("conditionsModule", "keywords"),
        ("conditionsModule", "conditions"),
        ("contactsLocationsModule", "locations"),
        ("armsInterventionsModule", "interventions"),
        ("armsInterventionsModule", "armGroups"),
    ]:
        protocol[module][key].reverse()
    assert (
        protocol["contactsLocationsModule"]["locations"]
        != (raw["protocolSection"]["contactsLocationsModule"]["locations"])
    )
    assert normalise(raw).content_hash() == normalise(shuffled).content_hash()


def test_the_order_of_outcomes_is_kept_and_changes_the_hash() -> None:
    raw = load(UNKNOWN_OBSERVATIONAL)
    reordered = copy.deepcopy(raw)
    outcomes = reordered["protocolSection"]["outcomesModule"]["secondaryOutcomes"]
    outcomes.reverse()
    before, after = normalise(raw), normalise(reordered)
    assert after.secondary_outcomes == tuple(reversed(before.secondary_outcomes))
    assert before.content_hash() != after.content_hash()


def test_conditions_are_folded_deduplicated_and_sorted() -> None:
    raw = minimal(
        conditionsModule={
            "conditions": ["covid&#x2D;19", " Asthma ", "<p>covid-19</p>", "", None, "asthma"],
        }
    )
    assert normalise(raw).conditions == ("Asthma", "asthma", "covid-19")


# --- defaults and coercion --------------------------------------------------------------------


# The normaliser always knows the description fields: "" is "the record has none", unlike the
# None of a snapshot stored before they were tracked.
EMPTY = Snapshot(
    study_id="NCT01234567", brief_summary="", detailed_description="", lifecycle="unknown"
)


def test_a_record_with_only_an_id_gets_every_default() -> None:
    assert normalise(minimal()) == EMPTY


def test_empty_and_null_modules_are_missing_modules() -> None:
    raw = minimal(statusModule=None, designModule={}, outcomesModule={"primaryOutcomes": None})
    assert normalise(raw) == EMPTY


def test_a_lower_case_id_with_spaces_is_upper_cased() -> None:
    raw = {"protocolSection": {"identificationModule": {"nctId": " nct01234567 "}}}
    assert normalise(raw).study_id == "NCT01234567"


@pytest.mark.parametrize(
    ("count", "expected"), [("30", 30), (" 30 ", 30), ("30.0", 30), (30.0, 30), (0, 0)]
)
def test_an_enrollment_count_that_is_safely_a_number_is_coerced(count: Any, expected: int) -> None:
    raw = minimal(designModule={"enrollmentInfo": {"count": count}})
    assert normalise(raw).enrollment_count == expected


def test_healthy_volunteers_as_text_is_coerced() -> None:
    raw = minimal(eligibilityModule={"healthyVolunteers": "Yes"})
    assert normalise(raw).eligibility.healthy_volunteers is True


def test_a_numeric_org_study_id_is_read_as_text() -> None:
    raw = minimal()
    raw["protocolSection"]["identificationModule"]["orgStudyIdInfo"] = {"id": 12345}
    assert normalise(raw).org_study_id == "12345"


# --- invalid records --------------------------------------------------------------------------

DESIGN = "protocolSection.designModule"


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        (
            {"designModule": {"enrollmentInfo": {"count": "abc"}}},
            f"{ENROLLMENT_COUNT_PATH}: expected a number, got 'abc'",
        ),
        (
            {"designModule": {"enrollmentInfo": {"count": True}}},
            f"{ENROLLMENT_COUNT_PATH}: expected a number, got true",
        ),
        (
            {"designModule": {"enrollmentInfo": {"count": -5}}},
            f"{ENROLLMENT_COUNT_PATH}: expected a whole number from 0 to 2^63-1, got -5",
        ),
        (
            {"designModule": {"enrollmentInfo": {"count": 2.5}}},
            f"{ENROLLMENT_COUNT_PATH}: expected a whole number, got 2.5",
        ),
        (
            {"designModule": {"enrollmentInfo": {"count": [30]}}},
            f"{ENROLLMENT_COUNT_PATH}: expected a number, got a list",
        ),
        ({"designModule": [1]}, f"{DESIGN}: expected an object, got a list"),
        ({"designModule": {"phases": "PHASE2"}}, f"{DESIGN}.phases: expected a list, got 'PHASE2'"),
        ({"designModule": {"phases": [2.0]}}, f"{DESIGN}.phases[0]: expected a string, got 2.0"),
        (
            {"designModule": {"designInfo": {"maskingInfo": {"masking": {"x": 1}}}}},
            f"{DESIGN}.designInfo.maskingInfo.masking: expected a string, got an object",
        ),
        (
            {"contactsLocationsModule": {"locations": [{}, "Paris"]}},
            "protocolSection.contactsLocationsModule.locations[1]: expected an object, got 'Paris'",
        ),
        (
            {"outcomesModule": {"primaryOutcomes": [{"measure": False}]}},
            "protocolSection.outcomesModule.primaryOutcomes[0].measure: expected a string, "
            "got false",
        ),
        (
            {"eligibilityModule": {"healthyVolunteers": "maybe"}},
            "protocolSection.eligibilityModule.healthyVolunteers: expected true or false, "
            "got 'maybe'",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_rejected_naming_its_path(
    protocol: dict[str, Any], message: str
) -> None:
    with pytest.raises(RecordInvalid) as caught:
        normalise(minimal(**protocol))
    assert str(caught.value) == message


def test_a_long_bad_value_is_shortened_in_the_message() -> None:
    raw = minimal(designModule={"enrollmentInfo": {"count": "x" * 500}})
    with pytest.raises(RecordInvalid, match=r"got 'x{39}…'$"):
        normalise(raw)


def test_a_huge_number_is_rejected_without_printing_it() -> None:
    raw = minimal(designModule={"enrollmentInfo": {"count": 10**5000}})
    with pytest.raises(RecordInvalid, match=r"got a number too large to show$"):
        normalise(raw)


def test_a_record_without_an_nct_id_is_invalid() -> None:
    with pytest.raises(RecordInvalid, match=rf"^{STUDY_ID_PATH}: missing"):
        normalise({"protocolSection": {"identificationModule": {"briefTitle": "A trial"}}})


@pytest.mark.parametrize(
    "nct_id", ["NCT123", "NCT0123456789", "ISRCTN12345678", "", "NCT１２３４５６７８"]
)
def test_an_id_that_is_not_an_nct_number_is_invalid(nct_id: str) -> None:
    raw = {"protocolSection": {"identificationModule": {"nctId": nct_id}}}
    with pytest.raises(RecordInvalid, match=rf"^{STUDY_ID_PATH}: expected an NCT number"):
        normalise(raw)


def test_record_meta_also_needs_a_valid_id() -> None:
    with pytest.raises(RecordInvalid, match=rf"^{STUDY_ID_PATH}: expected a string, got 7$"):
        record_meta({"protocolSection": {"identificationModule": {"nctId": 7}}})


# --- unwrap -----------------------------------------------------------------------------------


def test_unwrap_returns_a_bare_study_without_a_version() -> None:
    raw = load(WITHDRAWN)
    study, version = unwrap(raw)
    assert study is raw and version is None


def test_unwrap_returns_the_study_and_version_of_a_history_wrapper() -> None:
    raw = load(HISTORY_V0)
    assert unwrap(raw) == (raw["study"], 0)
    assert unwrap({"studyVersion": "12", "study": raw["study"]})[1] == 12
    assert unwrap({"study": raw["study"]})[1] is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "got null"),
        ([], "got a list"),
        ("<html>busy</html>", "got '<html>busy</html>'"),
        (3, "got 3"),
        (
            {"studies": [], "nextPageToken": "x"},
            "got an object with keys: 'nextPageToken', 'studies'",
        ),
        ({}, "got an object with keys: none"),
        ({"studyVersion": 1, "study": []}, "study: expected an object, got a list"),
        ({"studyVersion": -1, "study": {}}, "studyVersion: expected a whole number"),
        ({"studyVersion": "v1", "study": {}}, "studyVersion: expected a number, got 'v1'"),
    ],
)
def test_unwrap_rejects_anything_but_a_study_or_wrapper(raw: object, message: str) -> None:
    with pytest.raises(RecordInvalid) as caught:
        unwrap(raw)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# --- property: nothing but RecordInvalid escapes ----------------------------------------------

KNOWN_KEYS = [
    "protocolSection", "identificationModule", "nctId", "statusModule", "designModule",
    "enrollmentInfo", "count", "conditionsModule", "conditions", "locations", "outcomesModule",
    "primaryOutcomes", "measure", "study", "studyVersion", "hasResults", "phases", "armGroups",
]  # fmt: skip

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
    | st.sampled_from(["NCT01234567", "nct01234567", "30", "-1", "1e3", "true", "<p>x</p>"])
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copied = copy.copy(value)
    copied[head] = _replaced(value[head], rest, new)
    return copied


_REAL = {name: load(name) for name in (UNKNOWN_OBSERVATIONAL, HISTORY_V0)}


def _normalises_or_is_invalid(raw: object) -> None:
    try:
        snapshot = normalise(raw)
    except RecordInvalid as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        snapshot.content_hash()  # the snapshot must also serialise
    try:
        record_meta(raw)
    except RecordInvalid as exc:
        assert str(exc) and "\n" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_any_json_value_normalises_or_raises_record_invalid(raw: object) -> None:
    _normalises_or_is_invalid(raw)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_any_protocol_section_normalises_or_raises_record_invalid(protocol: object) -> None:
    _normalises_or_is_invalid({"protocolSection": protocol})
    _normalises_or_is_invalid({"studyVersion": 1, "study": {"protocolSection": protocol}})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(_REAL)), st.data())
def test_a_real_record_with_random_values_replaced_normalises_or_raises_record_invalid(
    name: str, data: st.DataObject
) -> None:
    raw = _REAL[name]
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="mutations")):
        path = data.draw(st.sampled_from(_paths(raw)), label="path")
        raw = _replaced(raw, path, data.draw(JSON_VALUES, label="value"))
    _normalises_or_is_invalid(raw)


# --- description ------------------------------------------------------------------------------


def test_brief_summary_and_detailed_description_are_read_and_folded() -> None:
    raw = load(WITH_RESULTS)
    description = raw["protocolSection"]["descriptionModule"]
    snapshot = normalise(raw)
    assert snapshot.brief_summary == " ".join(description["briefSummary"].split())
    assert snapshot.detailed_description.startswith("As people with Cystic Fibrosis (CF) are")
    assert "\n" not in snapshot.detailed_description


def test_a_record_without_a_description_module_has_empty_description_fields() -> None:
    snapshot = normalise(minimal())
    assert (snapshot.brief_summary, snapshot.detailed_description) == ("", "")


# --- enums ------------------------------------------------------------------------------------

ENUM_FIELDS = [
    (("statusModule", "overallStatus"), "protocolSection.statusModule.overallStatus"),
    (("statusModule", "lastKnownStatus"), "protocolSection.statusModule.lastKnownStatus"),
    (
        ("statusModule", "startDateStruct", "type"),
        "protocolSection.statusModule.startDateStruct.type",
    ),
    (
        ("statusModule", "primaryCompletionDateStruct", "type"),
        "protocolSection.statusModule.primaryCompletionDateStruct.type",
    ),
    (("designModule", "studyType"), "protocolSection.designModule.studyType"),
    (("designModule", "phases", 0), "protocolSection.designModule.phases[0]"),
    (
        ("designModule", "enrollmentInfo", "type"),
        "protocolSection.designModule.enrollmentInfo.type",
    ),
    (
        ("designModule", "designInfo", "allocation"),
        "protocolSection.designModule.designInfo.allocation",
    ),
    (
        ("designModule", "designInfo", "maskingInfo", "masking"),
        "protocolSection.designModule.designInfo.maskingInfo.masking",
    ),
    (
        ("designModule", "designInfo", "primaryPurpose"),
        "protocolSection.designModule.designInfo.primaryPurpose",
    ),
    (("eligibilityModule", "sex"), "protocolSection.eligibilityModule.sex"),
    (
        ("armsInterventionsModule", "interventions", 0, "type"),
        "protocolSection.armsInterventionsModule.interventions[0].type",
    ),
    (
        ("armsInterventionsModule", "armGroups", 0, "type"),
        "protocolSection.armsInterventionsModule.armGroups[0].type",
    ),
]


def _set(raw: dict[str, Any], keys: tuple[str | int, ...], value: Any) -> None:
    node: Any = raw["protocolSection"]
    for key in keys[:-1]:
        if isinstance(key, str):
            node = node.setdefault(
                key, {} if not isinstance(keys[keys.index(key) + 1], int) else []
            )
        else:
            while len(node) <= key:
                node.append({})
            node = node[key]
    last = keys[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value


@pytest.mark.parametrize(("keys", "path"), ENUM_FIELDS, ids=[p for _, p in ENUM_FIELDS])
def test_an_unknown_enum_value_is_refused_naming_the_field_and_the_value(
    keys: tuple[str | int, ...], path: str
) -> None:
    raw = copy.deepcopy(load(WITH_RESULTS))
    _set(raw, keys, "BOGUS_VALUE")
    with pytest.raises(RecordInvalid) as caught:
        normalise(raw)
    message = str(caught.value)
    assert message.startswith(f"{path}: 'BOGUS_VALUE' is not one of the allowed values (")


def test_the_message_lists_the_allowed_values() -> None:
    raw = minimal(statusModule={"overallStatus": "RECRUTING"})
    with pytest.raises(RecordInvalid, match=r"'RECRUTING' is not one of the allowed values"):
        normalise(raw)
    raw = minimal(designModule={"enrollmentInfo": {"type": "GUESSED"}})
    with pytest.raises(RecordInvalid) as caught:
        normalise(raw)
    assert str(caught.value) == (
        "protocolSection.designModule.enrollmentInfo.type: 'GUESSED' is not one of the "
        "allowed values (ACTUAL, ESTIMATED)"
    )


def test_an_enum_in_another_spelling_or_the_classic_word_is_read_as_the_v2_value() -> None:
    raw = minimal(
        statusModule={"overallStatus": "Active, not recruiting"},
        designModule={"enrollmentInfo": {"count": 30, "type": "Anticipated"}, "phases": ["phase2"]},
    )
    snapshot = normalise(raw)
    assert snapshot.overall_status == "ACTIVE_NOT_RECRUITING"
    assert snapshot.enrollment_type == "ESTIMATED"
    assert snapshot.phases == ("PHASE2",)


def test_every_enum_value_of_the_bundled_real_records_is_allowed() -> None:
    # The records themselves normalise (above); this names what they hold, so a narrowed
    # allowed list shows up as the value it would refuse.
    seen: set[str] = set()
    for path in bundled_files() + sorted((RECORDS.parent / "diff").glob("*.json")):
        snapshot = normalise(json.loads(path.read_text(encoding="utf-8")))
        seen |= {snapshot.overall_status, snapshot.study_type, snapshot.enrollment_type}
        seen |= set(snapshot.phases) | {site.status for site in snapshot.locations}
    assert {"COMPLETED", "WITHDRAWN", "UNKNOWN", "INTERVENTIONAL", "OBSERVATIONAL"} <= seen
    assert {"ACTUAL", "ESTIMATED", "PHASE3", "NA"} <= seen
