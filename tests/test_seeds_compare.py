"""Publication vs registry: the discrepancies `seeds compare` reports, and the change events a
registry update that introduces one becomes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.models import Outcome, Snapshot, StudyDate
from service.registry.ctgov_normalise import normalise
from service.seeds.compare import compare, coverage, seed_discrepancy_changes
from service.seeds.files import parse_seed
from service.seeds.model import ReportedOutcome, Seed

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "tests" / "data" / "demo" / "NCT05605665"


def seed_file(name: str) -> Seed:
    path = ROOT / "seeds" / f"{name}.toml"
    return parse_seed(path.read_text(), path.name)


@pytest.fixture
def page_seed() -> Seed:
    return seed_file("il2-rapamycin-ss-nct05605665")


@pytest.fixture
def completed() -> Snapshot:
    return normalise(json.loads((DEMO / "v1.json").read_text()))


@pytest.fixture
def recruiting() -> Snapshot:
    return normalise(json.loads((DEMO / "v0.json").read_text()))


def fields(found: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(d.field, d.severity) for d in found]


def paper(**changes: object) -> Seed:
    base = Seed(
        id="a-paper",
        title="A paper",
        citation={"year": 2024},
        enrollment={"count": 30, "type": "ACTUAL"},
        outcomes=[ReportedOutcome(measure="Proportion of Treg cells in peripheral blood")],
    )
    return Seed.model_validate({**base.model_dump(), **changes})


# ---- the registry page seed against the two registry versions ------------------------------------


def test_the_page_against_the_completed_record_flags_estimate_and_phase(
    page_seed: Seed, completed: Snapshot
) -> None:
    found = compare(page_seed, completed)
    assert fields(found) == [("enrollment_type", "medium"), ("phase", "medium")]
    assert found[0].summary == (
        "Enrollment is still an estimate in the registry although the study is completed"
    )
    assert found[1].summary == "Phase: the document says Phase 1, the registry Phase 1/Phase 2"
    assert found[1].to_json() == {
        "seed": "il2-rapamycin-ss-nct05605665",
        "registry": "ctgov",
        "study_id": "NCT05605665",
        "field": "phase",
        "publication": ["PHASE1"],
        "registry_value": ["PHASE1", "PHASE2"],
        "severity": "medium",
        "summary": "Phase: the document says Phase 1, the registry Phase 1/Phase 2",
    }


def test_the_page_against_the_recruiting_record_flags_status_and_phase(
    page_seed: Seed, recruiting: Snapshot
) -> None:
    found = compare(page_seed, recruiting)
    assert fields(found) == [("phase", "medium"), ("status", "medium")]
    assert found[1].summary == "Status: the page says Completed, the registry Recruiting"


def test_the_pages_outcomes_match_the_registered_ones(page_seed: Seed, completed: Snapshot) -> None:
    assert not [d for d in compare(page_seed, completed) if "outcome" in d.field]


# ---- enrollment ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reported", "registered", "severity"),
    [(5, 6, "low"), (24, 30, "medium"), (11, 87, "high"), (30, 30, None)],
)
def test_enrollment_differences_are_graded_by_size(
    completed: Snapshot, reported: int, registered: int, severity: str | None
) -> None:
    snap = completed.model_copy(
        update={"enrollment_count": registered, "enrollment_type": "ACTUAL"}
    )
    found = [d for d in compare(paper(enrollment={"count": reported, "type": "ACTUAL"}), snap)]
    assert [(d.field, d.severity) for d in found if d.field == "enrollment"] == (
        [("enrollment", severity)] if severity else []
    )


def test_a_published_paper_against_an_estimated_count_flags_the_estimate(
    completed: Snapshot,
) -> None:
    snap = completed.model_copy(update={"overall_status": "ACTIVE_NOT_RECRUITING"})
    found = {d.field: d for d in compare(paper(), snap)}
    assert found["enrollment_type"].summary == (
        "Enrollment is still an estimate in the registry although results are published"
    )
    assert found["status"].summary == (
        "Results are published but the registry still says Active, not recruiting"
    )


# ---- outcomes ------------------------------------------------------------------------------------


def test_a_primary_outcome_registered_as_secondary_is_high(completed: Snapshot) -> None:
    seed = paper(outcomes=[ReportedOutcome(measure="ESSDAI")])
    found = [d for d in compare(seed, completed) if d.field == "primary_outcome"]
    assert [(d.severity, d.publication, d.registry_value) for d in found] == [
        ("high", "ESSDAI", "ESSDAI [potential score 0 - 123]")
    ]
    assert "registered as a secondary outcome" in found[0].summary


def test_a_primary_outcome_not_registered_at_all_is_medium(completed: Snapshot) -> None:
    seed = paper(outcomes=[ReportedOutcome(measure="Salivary flow rate")])
    found = {d.field: d for d in compare(seed, completed)}
    assert found["primary_outcome"].severity == "medium"
    assert found["primary_outcome"].summary == (
        "Primary outcome “Salivary flow rate” of the document is not registered"
    )
    # and the registered primary is then missing from the paper's primaries
    assert found["registered_primary"].registry_value == (
        "Proportion of Treg cells in peripheral blood"
    )


def test_a_reworded_primary_outcome_still_matches(completed: Snapshot) -> None:
    seed = paper(outcomes=[ReportedOutcome(measure="Proportion of Treg cells in the blood")])
    assert not [d for d in compare(seed, completed) if "primary" in d.field]


def test_a_document_that_names_no_primary_outcome_is_not_compared_on_outcomes(
    completed: Snapshot,
) -> None:
    seed = paper(outcomes=[ReportedOutcome(type="other", measure="Cytokines")])
    assert not [d for d in compare(seed, completed) if "primary" in d.field]


# ---- dates ---------------------------------------------------------------------------------------


def test_a_registered_start_after_the_publication_is_high(completed: Snapshot) -> None:
    found = {d.field: d for d in compare(paper(citation={"year": 2021}), completed)}
    assert found["start_date"].severity == "high"
    assert found["start_date"].summary == (
        "Registered start 2022-11-05 is after the publication (2021)"
    )
    assert found["primary_completion"].severity == "medium"


def test_a_registry_page_is_not_compared_on_dates(page_seed: Seed, completed: Snapshot) -> None:
    late = completed.model_copy(update={"start_date": StudyDate(date="2099-01", type="ESTIMATED")})
    assert "start_date" not in {d.field for d in compare(page_seed, late)}


# ---- after a sync: new discrepancies become change events ----------------------------------------


def test_a_registry_update_that_moves_the_primary_outcome_is_a_seed_change(
    completed: Snapshot,
) -> None:
    seed = paper(enrollment={"count": 30, "type": "ESTIMATED"})
    treg = completed.primary_outcomes[0]
    moved = completed.model_copy(
        update={
            "primary_outcomes": (Outcome(measure="ESSDAI", time_frame="week 12"),),
            "secondary_outcomes": (*completed.secondary_outcomes, treg),
        }
    )
    changes = seed_discrepancy_changes(seed, completed, moved)
    assert [(c.kind, c.field, c.severity) for c in changes] == [
        ("field_changed", "seed:a-paper:primary_outcome", "high"),
        ("field_changed", "seed:a-paper:registered_primary", "medium"),
    ]
    first = changes[0]
    assert (first.registry, first.study_id) == ("ctgov", "NCT05605665")
    assert first.old == ["Proportion of Treg cells in peripheral blood"]
    assert first.new == "Proportion of Treg cells in peripheral blood"
    assert first.summary.startswith("Seed a-paper: Primary outcome “Proportion of Treg cells")


def test_a_discrepancy_that_was_already_there_is_not_reported_again(
    page_seed: Seed, completed: Snapshot
) -> None:
    later = completed.model_copy(update={"enrollment_count": 31})
    changes = seed_discrepancy_changes(page_seed, completed, later)
    # the phase and estimate discrepancies persist; only the new size difference is news
    assert [(c.field, c.old, c.new) for c in changes] == [
        ("seed:il2-rapamycin-ss-nct05605665:enrollment", 30, 31)
    ]


def test_nothing_changes_when_the_registry_does_not(page_seed: Seed, completed: Snapshot) -> None:
    assert seed_discrepancy_changes(page_seed, completed, completed) == []


def test_on_a_first_sighting_every_discrepancy_is_new(page_seed: Seed, completed: Snapshot) -> None:
    changes = seed_discrepancy_changes(page_seed, None, completed)
    assert [c.field for c in changes] == [
        "seed:il2-rapamycin-ss-nct05605665:enrollment_type",
        "seed:il2-rapamycin-ss-nct05605665:phase",
    ]
    assert all(c.old is None and c.to_json()["kind"] == "field_changed" for c in changes)


# ---- what could be compared ----------------------------------------------------------------------


def test_coverage_names_every_fact_one_side_does_not_give(completed: Snapshot) -> None:
    # the paper gives no phase; the registry record (here) gives no enrollment count
    silent = completed.model_copy(update={"enrollment_count": None})
    checked, unchecked = coverage(paper(), silent)
    assert checked == ("enrollment type", "primary outcomes", "status", "dates")
    assert unchecked == (
        "enrollment (the registry record gives none)",
        "phase (the document gives none)",
    )
    assert not [d for d in compare(paper(), silent) if d.field in {"enrollment", "phase"}]


def test_coverage_of_a_page_leaves_dates_out_and_checks_the_rest(
    page_seed: Seed, completed: Snapshot
) -> None:
    assert coverage(page_seed, completed) == (
        ("enrollment", "enrollment type", "primary outcomes", "phase", "status"),
        (),
    )


def test_a_document_with_nothing_comparable_checks_nothing(completed: Snapshot) -> None:
    bare = Seed(id="bare-seed", title="A bare seed")
    checked, unchecked = coverage(bare, completed)
    assert "enrollment (the document gives no size)" in unchecked
    assert "primary outcomes (the document names none as primary)" in unchecked
    assert "dates (the document's publication year is not known)" in unchecked
    assert checked == ("enrollment type", "status")  # the record's own facts: still checked


def test_a_discrepancy_whose_field_kept_its_value_is_no_event(
    page_seed: Seed, recruiting: Snapshot, completed: Snapshot
) -> None:
    # v0 → v1 of the demo record: the status became COMPLETED while the enrollment stayed an
    # estimate; the estimate is now a discrepancy, but "ESTIMATED → ESTIMATED" is no change
    assert recruiting.enrollment_type == completed.enrollment_type == "ESTIMATED"
    changes = seed_discrepancy_changes(page_seed, recruiting, completed)
    assert all(c.old != c.new for c in changes)
    assert not any(c.field.endswith(":enrollment_type") for c in changes)
