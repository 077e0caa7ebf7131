"""What the registries beyond ClinicalTrials.gov share in the diff and the links: end points
kept as one free text, registrations named in the forms the registries and the WHO portal
write them, ids that look alike."""

from __future__ import annotations

import pytest

from service.diff import diff
from service.links import linked_ids
from service.models import CountryRecord, Outcome, Snapshot
from service.registry.catalog import parse_watch_id


def trial(registry: str, primary: str, secondary: str, **fields: object) -> Snapshot:
    return Snapshot(
        registry=registry,
        study_id="2021-002179-21" if registry == "euctr" else "ISRCTN12949496",
        primary_outcomes=(Outcome(measure=primary),),
        secondary_outcomes=(Outcome(measure=secondary),),
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("registry", ["euctr", "isrctn"])
def test_an_amended_end_point_text_is_modified_never_moved_removed_and_added(
    registry: str,
) -> None:
    # the primary end point now names what the secondary one did, and the secondary text was
    # rewritten: similarity alone would pair the new primary with the old secondary
    old = trial(registry, "ADAS-Cog11 at week 24", "ADCS-ADL and NPI at week 24")
    new = trial(registry, "ADAS-Cog11 and ADCS-ADL at week 24", "NPI at week 52")
    kinds = sorted((c.kind, c.outcome_type) for c in diff(old, new))
    assert kinds == [("outcome_modified", "primary"), ("outcome_modified", "secondary")]


def test_a_country_ending_is_its_own_status_change_and_high_when_stopped() -> None:
    ongoing = CountryRecord(country="FR", name="France", status="Ongoing", enrollment=40)
    old = trial("euctr", "A", "B", countries=(ongoing,))
    ended = ongoing.model_copy(update={"status": "Prematurely Ended", "enrollment": 12})
    (status, enrollment) = diff(old, old.model_copy(update={"countries": (ended,)}))
    assert (status.kind, status.field, status.summary, status.severity) == (
        "status_changed",
        "countries.FR.end_of_trial_status",
        "France: Ongoing → Prematurely Ended",
        "high",
    )
    assert (enrollment.kind, enrollment.field, enrollment.old, enrollment.new) == (
        "enrollment_changed",
        "countries.FR.f41_in_the_member_state",
        40,
        12,
    )


@pytest.mark.parametrize(
    ("named", "found"),
    [
        ("EUCTR2019-003842-34", ("euctr", "2019-003842-34")),
        ("EUCTR2019-003842-34-DE", ("euctr", "2019-003842-34")),
        ("CTIS2023-505613-24-00", ("ctis", "2023-505613-24-00")),
        ("EudraCT: 2019-003842-34", ("euctr", "2019-003842-34")),
        ("NCT04665037", ("ctgov", "NCT04665037")),
    ],
)
def test_links_are_found_in_every_form_the_registries_write(
    named: str, found: tuple[str, str]
) -> None:
    (link,) = linked_ids("isrctn", "ISRCTN12949496", [named], "externalRefs")
    assert (link.registry, link.study_id) == found


@pytest.mark.parametrize("named", ["Nil known", "NCT00000000", "N/A", "2023-505613-24-00"])
def test_placeholders_and_the_records_own_id_are_no_links(named: str) -> None:
    assert linked_ids("ctis", "2023-505613-24-00", [named], "x") == ()


@pytest.mark.parametrize(
    ("typed", "watched"),
    [
        ("2023-505613-24", None),  # a CTIS number cut short is no EudraCT number
        ("2021-002179-21", ("euctr", "2021-002179-21")),
        ("euctr2021-002179-21-3rd", ("euctr", "2021-002179-21")),
        ("ctis2023-505613-24-00", ("ctis", "2023-505613-24-00")),
        ("isrctn12949496", ("isrctn", "ISRCTN12949496")),
    ],
)
def test_ids_are_told_apart(typed: str, watched: tuple[str, str] | None) -> None:
    if watched is None:
        with pytest.raises(Exception, match="is not a"):
            parse_watch_id(typed)
    else:
        assert parse_watch_id(typed) == watched
