"""Outcome diffs on real records, edited the way registry histories show them edited.

Each test takes a real record (tests/data/records: byte-for-byte copies of public
ClinicalTrials.gov records), makes the edit a sponsor made in a real history (a case or spacing
fix, a time frame filled in, a concept reworded, an outcome moved), and checks the events the
diff gives for it.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.diff import MAX_PAIR_SCORES, diff
from service.models import Change, Outcome, Snapshot
from service.registry.ctgov_normalise import normalise

DATA = Path(__file__).resolve().parent / "data"
FOLDERS = (DATA / "records", DATA / "diff", DATA / "findings")  # real records (data/diff/README.md)
OUTCOMES = "protocolSection.outcomesModule."

Raw = dict[str, Any]


def load(name: str) -> Raw:
    path = next(folder / name for folder in FOLDERS if (folder / name).is_file())
    raw: Raw = json.loads(path.read_text(encoding="utf-8"))
    return raw.get("study", raw)


def outcomes_of(raw: Raw) -> dict[str, list[dict[str, str]]]:
    return raw["protocolSection"]["outcomesModule"]  # type: ignore[no-any-return]


def edited(name: str, edit: Callable[[dict[str, list[dict[str, str]]]], None]) -> list[Change]:
    """The changes from the real record ``name`` to a copy whose outcomes ``edit`` changed."""
    raw = load(name)
    after = copy.deepcopy(raw)
    edit(outcomes_of(after))
    return diff(normalise(raw), normalise(after))


def edited_back(name: str, edit: Callable[[dict[str, list[dict[str, str]]]], None]) -> list[Change]:
    """The changes from an earlier version made by ``edit`` to the real record ``name``."""
    raw = load(name)
    before = copy.deepcopy(raw)
    edit(outcomes_of(before))
    return diff(normalise(before), normalise(raw))


def kinds(changes: list[Change]) -> list[tuple[str, str, str | None]]:
    return [(c.kind, c.field, c.old_field) for c in changes]


# --------------------------------------------------------------------------- cosmetic edits


def test_spacing_inside_a_word_is_no_event() -> None:
    def edit(outcomes: dict[str, list[dict[str, str]]]) -> None:
        fev = outcomes["secondaryOutcomes"][4]
        assert fev["measure"] == "FEV 1"
        fev["measure"] = "FEV1"  # as "VO2max" → "VO2 max", the other way round

    assert edited("NCT00763412.json", edit) == []


def test_spacing_around_a_hyphen_is_no_event() -> None:
    def edit(outcomes: dict[str, list[dict[str, str]]]) -> None:
        for item in outcomes["secondaryOutcomes"]:
            item["timeFrame"] = item["timeFrame"].replace(
                "post-randomization", "post -randomization"
            )
        sf36 = outcomes["primaryOutcomes"][0]
        sf36["description"] = sf36["description"].replace("SDQ", "S DQ", 1)

    assert edited("NCT03630471.json", edit) == []


def test_letter_case_alone_is_no_event_even_for_a_primary_outcome() -> None:
    def edit(outcomes: dict[str, list[dict[str, str]]]) -> None:
        first = outcomes["primaryOutcomes"][0]
        assert first["measure"] == "Successful angioplasty"
        first["measure"] = "Successful Angioplasty"
        for item in outcomes["primaryOutcomes"] + outcomes["secondaryOutcomes"]:
            item["timeFrame"] = item["timeFrame"].replace("days", "Days").replace("year", "Year")

    assert edited("NCT03475563.json", edit) == []


def test_number_words_are_no_event() -> None:
    def edit(outcomes: dict[str, list[dict[str, str]]]) -> None:
        only = outcomes["primaryOutcomes"][0]
        assert only["timeFrame"] == "Half annually for three years"
        only["timeFrame"] = "Half annually for 3 years"

    assert edited("NCT00973089.json", edit) == []


def test_a_cosmetic_edit_beside_a_real_one_reports_only_the_real_one() -> None:
    def edit(outcomes: dict[str, list[dict[str, str]]]) -> None:
        angioplasty = outcomes["primaryOutcomes"][0]
        angioplasty["measure"] = "SUCCESSFUL ANGIOPLASTY"
        angioplasty["timeFrame"] = "2 days"

    changes = edited("NCT03475563.json", edit)
    assert kinds(changes) == [
        ("outcome_modified", OUTCOMES + "primaryOutcomes[0]", OUTCOMES + "primaryOutcomes[0]")
    ]
    assert changes[0].summary == 'Primary outcome 1 time frame changed: "1 day" → "2 days"'


# --------------------------------------------------------------------------- filled in


def test_time_points_moved_out_of_the_measure_into_a_new_time_frame_are_edits() -> None:
    # The earlier version wrote the visit days into each lab measure and left the time frame
    # empty; the registered version (ACTT-1, version 0) has them in the time frame.
    labs = range(8)

    def earlier(outcomes: dict[str, list[dict[str, str]]]) -> None:
        for index in labs:
            item = outcomes["secondaryOutcomes"][index]
            item["measure"] += " on Days 1, 3, 5, 8, 11, 15, 22 and 29"
            item["timeFrame"] = ""

    changes = edited_back("NCT04280705_history_v0.json", earlier)
    assert kinds(changes) == [
        (
            "outcome_modified",
            f"{OUTCOMES}secondaryOutcomes[{i}]",
            f"{OUTCOMES}secondaryOutcomes[{i}]",
        )
        for i in labs
    ]
    for change in changes:
        assert change.old["measure"].startswith(change.new["measure"])
        assert " reworded (time frame also changed): " in change.summary


def test_another_measure_at_the_same_time_points_is_not_an_edit() -> None:
    def earlier(outcomes: dict[str, list[dict[str, str]]]) -> None:
        creatinine = outcomes["secondaryOutcomes"][2]
        assert creatinine["measure"] == "Change from baseline in creatinine"
        creatinine["measure"] += " on Day 1 through Day 29"
        creatinine["timeFrame"] = ""

    def later(outcomes: dict[str, list[dict[str, str]]]) -> None:
        outcomes["secondaryOutcomes"][2]["measure"] = "Change from baseline in serum ferritin"

    raw = load("NCT04280705_history_v0.json")
    before, after = copy.deepcopy(raw), copy.deepcopy(raw)
    earlier(outcomes_of(before))
    later(outcomes_of(after))
    changes = diff(normalise(before), normalise(after))
    assert [c.kind for c in changes] == ["outcome_added", "outcome_removed"]


def test_a_description_filled_in_where_there_was_none_is_an_edit() -> None:
    def edit(outcomes: dict[str, list[dict[str, str]]]) -> None:
        bmi = outcomes["primaryOutcomes"][0]
        assert bmi["measure"] == "BMI" and not bmi.get("description")
        bmi["description"] = "Body mass index, kg/m^2, measured at the end-of-study visit"
        bmi["measure"] = "Body mass index (BMI)"

    changes = edited("NCT00763412.json", edit)
    assert kinds(changes) == [
        ("outcome_modified", OUTCOMES + "primaryOutcomes[0]", OUTCOMES + "primaryOutcomes[0]")
    ]
    assert changes[0].summary == (
        'Primary outcome 1 reworded (description also changed): "BMI" → "Body mass index (BMI)"'
    )


# --------------------------------------------------------------------------- synonyms


def test_mortality_reworded_as_death_of_any_cause_is_one_modification() -> None:
    def edit(outcomes: dict[str, list[dict[str, str]]]) -> None:
        mortality = outcomes["secondaryOutcomes"][21]
        assert mortality["measure"] == "Subject mortality"
        mortality["measure"] = "Death of any cause within 29 days"

    changes = edited("NCT04280705_history_v0.json", edit)
    assert kinds(changes) == [
        ("outcome_modified", OUTCOMES + "secondaryOutcomes[21]", OUTCOMES + "secondaryOutcomes[21]")
    ]
    assert changes[0].summary == (
        'Secondary outcome 22 reworded: "Subject mortality" → "Death of any cause within 29 days"'
    )


def test_safety_of_x_reworded_as_adverse_events_related_to_x_is_one_modification() -> None:
    def earlier(outcomes: dict[str, list[dict[str, str]]]) -> None:
        adverse = outcomes["secondaryOutcomes"][1]
        assert adverse["measure"] == "Incidence of adverse events"
        adverse["measure"] = "Safety of atezolizumab"

    def later(outcomes: dict[str, list[dict[str, str]]]) -> None:
        adverse = outcomes["secondaryOutcomes"][1]
        adverse["measure"] = "Number of patients with adverse events related to atezolizumab"

    raw = load("NCT04267848.json")
    before, after = copy.deepcopy(raw), copy.deepcopy(raw)
    earlier(outcomes_of(before))
    later(outcomes_of(after))
    changes = diff(normalise(before), normalise(after))
    assert kinds(changes) == [
        ("outcome_modified", OUTCOMES + "secondaryOutcomes[1]", OUTCOMES + "secondaryOutcomes[1]")
    ]
    # and the registered wording pairs with the vaguer one as well
    assert [c.kind for c in edited_back("NCT04267848.json", earlier)] == ["outcome_modified"]


def test_qol_spelled_out_and_response_for_remission_pair_as_modifications() -> None:
    def edit(outcomes: dict[str, list[dict[str, str]]]) -> None:
        qol = outcomes["otherOutcomes"][1]
        assert qol["measure"] == "Patient-reported QOL"
        qol["measure"] = "Patient-reported health-related quality of life"

    changes = edited("NCT04267848.json", edit)
    assert kinds(changes) == [
        ("outcome_modified", OUTCOMES + "otherOutcomes[1]", OUTCOMES + "otherOutcomes[1]")
    ]

    def remission(outcomes: dict[str, list[dict[str, str]]]) -> None:
        item = outcomes["secondaryOutcomes"][8]
        assert item["measure"] == "Clinical remission"
        item["measure"] = "Clinical response"

    assert [c.kind for c in edited("NCT03630471.json", remission)] == ["outcome_modified"]


def test_different_concepts_are_still_removed_and_added() -> None:
    def edit(outcomes: dict[str, list[dict[str, str]]]) -> None:
        outcomes["secondaryOutcomes"][21]["measure"] = "Serum ferritin"

    changes = edited("NCT04280705_history_v0.json", edit)
    assert [c.kind for c in changes] == ["outcome_added", "outcome_removed"]


# --------------------------------------------------------------------------- one event each


def test_moved_and_reworded_is_one_reclassification_that_says_the_rewording() -> None:
    def edit(outcomes: dict[str, list[dict[str, str]]]) -> None:
        moved = outcomes["primaryOutcomes"].pop(1)
        assert moved["measure"].endswith(" at Week 12")
        moved["measure"] = moved["measure"].replace(" at Week 12", " in Completers at Week 12")
        outcomes["secondaryOutcomes"].append(moved)

    changes = edited("NCT02552212.json", edit)
    assert kinds(changes) == [
        (
            "outcome_reclassified",
            OUTCOMES + "secondaryOutcomes[20]",
            OUTCOMES + "primaryOutcomes[1]",
        )
    ]
    change = changes[0]
    assert (change.old, change.new, change.severity) == ("primary", "secondary", "high")
    assert "reworded:" in change.summary
    assert change.summary.endswith(
        '(reworded: "…Response at Week 12" → "…Response in Completers at Week 12")'
    )


def test_removed_and_added_outcomes_are_addressable_by_old_and_new_positions() -> None:
    def edit(outcomes: dict[str, list[dict[str, str]]]) -> None:
        primary = outcomes["primaryOutcomes"]
        del primary[2]  # plasma concentration at baseline: gone
        primary.insert(0, {"measure": "Serum C-reactive protein", "timeFrame": "Week 12"})

    changes = edited("NCT02552212.json", edit)
    by_kind = {c.kind: c for c in changes}
    assert set(by_kind) == {"outcome_added", "outcome_removed"}
    added, removed = by_kind["outcome_added"], by_kind["outcome_removed"]
    assert (added.field, added.old_field) == (OUTCOMES + "primaryOutcomes[0]", None)
    assert (removed.field, removed.old_field) == (
        OUTCOMES + "primaryOutcomes[2]",
        OUTCOMES + "primaryOutcomes[2]",
    )
    assert removed.old["measure"] == "Certolizumab Pegol Plasma Concentration at Baseline"
    assert "old_field" not in added.to_json()
    assert removed.to_json()["old_field"] == OUTCOMES + "primaryOutcomes[2]"


def test_an_outcome_that_moved_position_names_both_positions() -> None:
    def edit(outcomes: dict[str, list[dict[str, str]]]) -> None:
        secondary = outcomes["secondaryOutcomes"]
        week4 = secondary.pop(10)
        week4["measure"] += " (Observed Cases)"
        secondary.insert(0, week4)

    changes = edited("NCT02552212.json", edit)
    assert kinds(changes) == [
        ("outcome_modified", OUTCOMES + "secondaryOutcomes[0]", OUTCOMES + "secondaryOutcomes[10]")
    ]


# --------------------------------------------------------------------------- summaries


def test_a_rewording_far_into_a_long_measure_shows_the_differing_words() -> None:
    def edit(outcomes: dict[str, list[dict[str, str]]]) -> None:
        first = outcomes["primaryOutcomes"][0]
        assert len(first["measure"]) > 100
        first["measure"] = first["measure"].replace("Major Improvement", "Clinically Important")

    raw_measure = outcomes_of(load("NCT02552212.json"))["primaryOutcomes"][0]["measure"]
    changes = edited("NCT02552212.json", edit)
    assert [c.kind for c in changes] == ["outcome_modified"]
    summary = changes[0].summary
    assert "Major Improvement" in summary and "Clinically Important" in summary
    before, after = summary.split(": ", 1)[1].split(" → ")
    assert before != after
    assert len(before) <= 82 and len(after) <= 82  # each side still one short line
    assert raw_measure[:30] not in summary  # the unchanged opening is left out


def test_a_changed_arm_says_what_changed() -> None:
    demo = Path(__file__).resolve().parent / "data" / "demo" / "NCT05605665"
    raw = json.loads((demo / "v0.json").read_text(encoding="utf-8"))
    after = copy.deepcopy(raw)
    arms = after["protocolSection"]["armsInterventionsModule"]["armGroups"]
    arms[1]["description"] = "Rapamycin 0.5ml daily for 12 weeks."
    arms[2]["interventionNames"].append("Drug: placebo")
    changes = diff(normalise(raw), normalise(after))
    assert [c.summary for c in changes] == [
        "Arms: Low-dose interleukin-2 and rapamycin: interventions +Drug: placebo; "
        'Rapamycin: description "Rapamycin 0.5ml daily for 4 weeks." → '
        '"Rapamycin 0.5ml daily for 12 weeks."'
    ]


def test_an_eligibility_change_says_what_changed() -> None:
    raw = load("NCT00763412.json")
    after = copy.deepcopy(raw)
    module = after["protocolSection"]["eligibilityModule"]
    module["maximumAge"] = "40 Years"
    module["eligibilityCriteria"] = module["eligibilityCriteria"].replace(
        "exocrine pancreatic insufficiency", "exocrine pancreatic insufficiency (elastase < 200)"
    )
    (change,) = diff(normalise(raw), normalise(after))
    assert change.summary.startswith('Eligibility: criteria "…')
    assert "(elastase < 200)" in change.summary
    assert change.summary.endswith('; maximum age "24 Years" → "40 Years"')


# --------------------------------------------------------------------------- description module


def test_a_rewritten_detailed_description_is_a_low_field_change() -> None:
    raw = load("NCT03630471.json")
    after = copy.deepcopy(raw)
    description = after["protocolSection"]["descriptionModule"]
    description["detailedDescription"] = "The trial was stopped early; see the results."
    description["briefSummary"] += " Recruitment closed in 2021."
    changes = diff(normalise(raw), normalise(after))
    assert [(c.kind, c.field, c.severity) for c in changes] == [
        ("field_changed", "protocolSection.descriptionModule.briefSummary", "low"),
        ("field_changed", "protocolSection.descriptionModule.detailedDescription", "low"),
    ]
    assert "Recruitment closed in 2021." in changes[0].summary
    assert changes[1].new == "The trial was stopped early; see the results."


def _as_stored_before_the_upgrade(snapshot: Snapshot) -> str:
    """The JSON a store written before the description fields (and the fields of registries
    beyond ClinicalTrials.gov) existed holds."""
    later = {"brief_summary", "detailed_description", "countries", "enrollment_actual"}
    return snapshot.model_dump_json(exclude=later | {"lifecycle", "linked"})


def test_a_snapshot_stored_before_the_upgrade_gives_no_events_and_keeps_its_hash() -> None:
    import hashlib

    current = normalise(load("NCT03630471.json"))
    assert current.brief_summary and current.detailed_description
    stored_json = _as_stored_before_the_upgrade(current)
    stored = Snapshot.model_validate_json(stored_json)  # what store.latest_snapshot reads
    assert stored.brief_summary is None and stored.detailed_description is None
    # The hash the old code stored for it is still what the snapshot hashes to ...
    assert stored.content_hash() == hashlib.sha256(stored_json.encode()).hexdigest()
    # ... the next sync's fetch of the unchanged record reports nothing ...
    assert diff(stored, current) == []
    # ... while a real change beside it is still found.
    moved = current.model_copy(update={"enrollment_count": 12})
    assert [c.kind for c in diff(stored, moved)] == ["enrollment_changed"]
    # Once stored with the fields, a change to them is reported.
    rewritten = current.model_copy(update={"brief_summary": "Rewritten."})
    assert [c.field for c in diff(current, rewritten)] == [
        "protocolSection.descriptionModule.briefSummary"
    ]


def test_the_real_no_op_pair_stays_zero_events() -> None:
    old = normalise(load("NCT02552212.json"))
    new = normalise(load("NCT02552212_versionHolder-2024-01-03.json"))
    assert diff(old, new) == []


# --------------------------------------------------------------------------- bounded work


def test_ten_thousand_reworded_outcomes_diff_in_seconds() -> None:
    base = load("NCT02552212.json")
    real = outcomes_of(base)["secondaryOutcomes"]
    many = [
        Outcome(
            measure=f"{real[i % len(real)]['measure']} (cohort {i})",
            time_frame=real[i % len(real)]["timeFrame"],
        )
        for i in range(10_000)
    ]
    reworded = [o.model_copy(update={"measure": o.measure + " per protocol"}) for o in many]
    old = normalise(base).model_copy(update={"secondary_outcomes": tuple(many)})
    new = old.model_copy(update={"secondary_outcomes": tuple(reworded)})
    assert len(many) ** 2 > MAX_PAIR_SCORES  # the coarse pairing is what runs here
    started = time.perf_counter()
    changes = diff(old, new)
    elapsed = time.perf_counter() - started
    assert elapsed < 20, elapsed
    assert len(changes) == 10_000
    assert {c.kind for c in changes} == {"outcome_modified"}
    assert all(c.field == c.old_field for c in changes)
