"""One trial, every registration: records grouped by the registrations they name (both ways),
side by side, and where their latest versions disagree (issue 2/6, first step)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import EU_REFERENCE

from service.models import LinkedId, Snapshot, StudyDate
from service.registry.catalog import normalise
from service.trials import containing, group


def snap(registry: str, study_id: str, *links: tuple[str, str], **fields: object) -> Snapshot:
    linked = tuple(LinkedId(r, i, "ids") for r, i in links)
    return Snapshot(registry=registry, study_id=study_id, linked=linked, **fields)  # type: ignore[arg-type]


def keys(trial: object) -> list[tuple[str, str]]:
    return [(r.registry, r.study_id) for r in trial.registrations]  # type: ignore[attr-defined]


def test_a_link_counts_both_ways_and_groups_connect_through_any_record() -> None:
    ctgov = snap("ctgov", "NCT04665037")  # names nothing
    ctis = snap("ctis", "2023-505613-24-00", ("ctgov", "NCT04665037"), ("euctr", "2019-003842-34"))
    euctr = snap("euctr", "2019-003842-34")
    alone = snap("isrctn", "ISRCTN12949496")
    trials = group([ctgov, ctis, euctr, alone])
    assert [keys(t) for t in trials] == [
        [("ctgov", "NCT04665037"), ("ctis", "2023-505613-24-00"), ("euctr", "2019-003842-34")],
        [("isrctn", "ISRCTN12949496")],
    ]
    assert all(r.snapshot is not None for r in trials[0].registrations)
    (found,) = containing(trials, [("euctr", "2019-003842-34")])
    assert found is trials[0]


def test_an_id_only_named_is_a_registration_known_by_its_id() -> None:
    (trial,) = group([snap("isrctn", "ISRCTN12949496", ("euctr", "2014-002988-16"))])
    named = trial.registrations[0]
    assert (named.registry, named.snapshot, named.source) == (
        "euctr",
        None,
        "isrctn:ISRCTN12949496",
    )
    assert named.to_json() == {
        "registry": "euctr",
        "study_id": "2014-002988-16",
        "stored": False,
        "named_by": "isrctn:ISRCTN12949496",
    }


def test_registrations_that_disagree_say_where() -> None:
    ctgov = snap(
        "ctgov",
        "NCT01",
        ("euctr", "2019-003842-34"),
        lifecycle="completed",
        enrollment_count=600,
        completion_date=StudyDate(date="2024-01-15", type="ACTUAL"),
    )
    euctr = snap(
        "euctr",
        "2019-003842-34",
        lifecycle="recruiting",
        enrollment_count=550,  # within 10%: no disagreement
        completion_date=StudyDate(date="2024-06-30"),
    )
    (trial,) = group([ctgov, euctr])
    said = {d.field: d.summary for d in trial.disagreements}
    assert said == {
        "lifecycle": "NCT01 says completed, 2019-003842-34 still recruiting",
        "completion_date": "completion 2024-01-15 in NCT01, 2024-06-30 in 2019-003842-34",
    }
    bigger = euctr.model_copy(update={"enrollment_count": 400})
    (trial,) = group([ctgov, bigger])
    assert "enrollment 400 in 2019-003842-34, 600 in NCT01" in [
        d.summary for d in trial.disagreements
    ]


def test_the_reference_ctis_records_group_with_the_registrations_they_name() -> None:
    records = [
        normalise("ctis", json.loads(Path(f).read_text()))
        for f in sorted((EU_REFERENCE / "ctis").glob("CTIS_202[34]-5*.json"))
    ]
    found = {tuple(keys(t)) for t in group(records)}
    assert (
        ("ctgov", "NCT04494412"),
        ("ctis", "2024-510663-34-00"),
        ("euctr", "2019-001588-63"),
    ) in found
    assert (
        ("ctgov", "NCT04665037"),
        ("ctis", "2023-505613-24-00"),
        ("euctr", "2019-003842-34"),
    ) in found
