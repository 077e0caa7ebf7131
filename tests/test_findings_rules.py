"""The transparency rules on real records (tests/data/records, copied from the reference set),
edited the way the registry edits them."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from conftest import TESTS_DATA

from service.diff import diff
from service.findings.rules import Thresholds, VersionFacts, evaluate
from service.registry.ctgov_facts import PartialDate, trial_facts
from service.registry.ctgov_normalise import normalise

TODAY = date(2026, 11, 27)
Edit = Callable[[dict[str, Any]], None]


def real(study_id: str) -> dict[str, Any]:
    return json.loads((TESTS_DATA / "findings" / f"{study_id}.json").read_text())  # type: ignore[no-any-return]


def edited(record: dict[str, Any], *edits: Edit) -> dict[str, Any]:
    copied = copy.deepcopy(record)
    for edit in edits:
        edit(copied["protocolSection"])
    return copied


def chain(*records: tuple[str, dict[str, Any]]) -> list[VersionFacts]:
    """Versions (posted date, raw record), each with the changes the diff finds into it."""
    versions, previous = [], None
    for number, (posted, raw) in enumerate(records):
        snapshot = normalise(raw)
        changes = tuple(diff(previous, snapshot)) if previous is not None else ()
        versions.append(VersionFacts(number, posted, trial_facts(raw), changes))
        previous = snapshot
    return versions


def rules_now(*records: tuple[str, dict[str, Any]], today: date = TODAY) -> set[str]:
    return set(evaluate(chain(*records), today))


def status(ps: dict[str, Any], **values: Any) -> None:
    ps["statusModule"].update(values)


# ---- results_overdue ------------------------------------------------------------------------


def test_an_fda_regulated_trial_without_results_past_its_deadline_is_overdue() -> None:
    found = evaluate(chain(("2020-10-01", real("NCT03418623"))), TODAY)
    overdue = found["results_overdue"]
    # primary completion 2020-03-13 + 1 year: due 2021-03-13, overdue after 30 days' grace
    assert overdue.detail["due_date"] == "2021-03-13"
    assert overdue.detail["overdue_after"] == "2021-04-12"
    assert overdue.severity == "high" and "FDAAA" in overdue.source
    assert "results_due_soon" not in found


def test_results_submitted_resolve_it() -> None:
    record = edited(real("NCT03418623"), lambda ps: status(ps, resultsFirstSubmitDate="2026-11-18"))
    assert "results_overdue" not in rules_now(("2026-11-20", record))


def test_it_is_not_overdue_a_day_before_the_deadline_and_due_soon_then() -> None:
    record = real("NCT03418623")
    assert "results_overdue" not in rules_now(("x", record), today=date(2021, 4, 12))
    # due soon in the 30 days before the due date (2021-03-13), not before the grace's end
    assert "results_due_soon" in rules_now(("x", record), today=date(2021, 3, 1))
    assert "results_due_soon" not in rules_now(("x", record), today=date(2021, 4, 1))
    assert "results_overdue" in rules_now(("x", record), today=date(2021, 4, 13))


def test_a_certificate_of_delay_moves_the_deadline_to_three_years() -> None:
    record = edited(real("NCT03418623"), lambda ps: status(ps, dispFirstSubmitDate="2021-03-01"))
    found = evaluate(chain(("x", record)), date(2023, 1, 1))
    assert found == {}
    later = evaluate(chain(("x", record)), TODAY)["results_overdue"]
    assert later.detail["due_date"] == "2023-03-13"
    assert later.detail["overdue_after"] == "2023-04-12"


def test_a_month_only_completion_date_counts_from_the_months_end() -> None:
    def month_only(ps: dict[str, Any]) -> None:
        ps["statusModule"]["primaryCompletionDateStruct"] = {"date": "2020-02", "type": "ACTUAL"}

    found = evaluate(chain(("x", edited(real("NCT03418623"), month_only))), TODAY)
    # 2020-02-29 (the month's end) + 1 year = 2021-02-28, overdue after 30 days more
    assert found["results_overdue"].detail["due_date"] == "2021-02-28"
    assert found["results_overdue"].detail["overdue_after"] == "2021-03-30"


@pytest.mark.parametrize(
    ("why", "edit"),
    [
        ("phase 1 only", lambda ps: ps["designModule"].update(phases=["PHASE1"])),
        (
            "not FDA regulated",
            lambda ps: ps["oversightModule"].update(isFdaRegulatedDrug=False),
        ),
        ("withdrawn", lambda ps: status(ps, overallStatus="WITHDRAWN")),
        (
            "device feasibility",
            lambda ps: ps["designModule"]["designInfo"].update(primaryPurpose="DEVICE_FEASIBILITY"),
        ),
        (
            # the TrialsTracker's pACT: with FDA flags no location test; without, a US site
            "started before the rule, no FDA flags, no US site",
            lambda ps: (
                status(ps, startDateStruct={"date": "2016-05", "type": "ACTUAL"}),
                ps["contactsLocationsModule"].update(locations=[]),
                ps["oversightModule"].pop("isFdaRegulatedDrug"),
                ps["oversightModule"].pop("isFdaRegulatedDevice"),
            ),
        ),
        ("observational", lambda ps: ps["designModule"].update(studyType="OBSERVATIONAL")),
    ],
)
def test_trials_the_law_does_not_cover_are_never_overdue(why: str, edit: Edit) -> None:
    assert "results_overdue" not in rules_now(("x", edited(real("NCT03418623"), edit))), why


def test_an_older_trial_with_a_us_site_completing_after_the_rule_is_covered() -> None:
    record = edited(
        real("NCT03418623"),
        lambda ps: status(ps, startDateStruct={"date": "2016-05", "type": "ACTUAL"}),
    )
    assert "results_overdue" in rules_now(("x", record))


def test_records_with_results_or_not_yet_due_are_not_overdue() -> None:
    assert "results_overdue" not in rules_now(("x", real("NCT00763412")))  # results posted
    assert "results_overdue" not in rules_now(("x", real("NCT04267848")))  # due 2027-01-14


# ---- primary_outcome_changed_after_start ----------------------------------------------------


def adjudicated(ps: dict[str, Any]) -> None:
    ps["outcomesModule"]["primaryOutcomes"][0]["measure"] += " (centrally adjudicated)"


def test_a_primary_outcome_reworded_after_the_start_is_found_with_both_wordings() -> None:
    before = real("NCT04267848")  # started 2020-06-16 (ACTUAL)
    found = evaluate(
        chain(("2025-08-01", before), ("2026-01-10", edited(before, adjudicated))), TODAY
    )
    finding = found["primary_outcome_changed_after_start"]
    [step] = finding.detail["steps"]
    assert (step["from_version"], step["to_version"], step["posted"]) == (0, 1, "2026-01-10")
    assert step["after"][0] == step["before"][0] + " (centrally adjudicated)"
    assert finding.severity == "medium"  # reworded only (added/removed/moved: high)


def test_a_primary_outcome_changed_before_the_start_is_not_a_finding() -> None:
    before = edited(
        real("NCT04267848"),
        lambda ps: status(ps, startDateStruct={"date": "2026-06-01", "type": "ESTIMATED"}),
    )
    after = edited(before, adjudicated)
    assert "primary_outcome_changed_after_start" not in rules_now(
        ("2025-08-01", before), ("2026-01-10", after)
    )


def test_a_secondary_outcome_changed_after_the_start_is_not_this_finding() -> None:
    def secondary(ps: dict[str, Any]) -> None:
        ps["outcomesModule"]["secondaryOutcomes"][0]["measure"] += " at day 28"

    before = real("NCT04267848")
    assert "primary_outcome_changed_after_start" not in rules_now(
        ("2025-08-01", before), ("2026-01-10", edited(before, secondary))
    )


# ---- retrospective registration and a start date moved to hide it ---------------------------


def test_a_trial_registered_after_it_started_is_retrospective() -> None:
    found = evaluate(chain(("x", real("NCT04207047"))), TODAY)
    finding = found["retrospective_registration"]
    assert finding.severity == "low" and finding.detail["first_submitted"] == "2019-12-17"
    # observational (ICMJE covers interventional trials): not this finding
    assert "retrospective_registration" not in rules_now(("x", real("NCT05594173")))


def test_a_start_date_moved_after_the_registration_is_retroactive() -> None:
    before = real("NCT04207047")  # started 2018-10-02, first submitted 2019-12-17
    after = edited(
        before, lambda ps: status(ps, startDateStruct={"date": "2020-01-06", "type": "ACTUAL"})
    )
    found = evaluate(chain(("2019-12-20", before), ("2020-02-01", after)), TODAY)
    # the earliest recorded actual start still holds: the move does not hide it
    assert "retroactive_start_date" in found and "retrospective_registration" in found
    assert found["retrospective_registration"].detail["start_date"] == "2018-10-02"
    assert found["retroactive_start_date"].detail["old_start"] == "2018-10-02"


def test_a_start_date_moved_later_on_a_prospective_trial_is_a_plain_slip() -> None:
    before = real("NCT04267848")  # registered 2020-02-12, started 2020-06-16
    after = edited(
        before, lambda ps: status(ps, startDateStruct={"date": "2020-09-01", "type": "ACTUAL"})
    )
    assert "retroactive_start_date" not in rules_now(("a", before), ("b", after))


# ---- enrollment_shortfall -------------------------------------------------------------------


def test_completing_with_fewer_than_85_percent_of_the_anticipated_is_a_shortfall() -> None:
    before = real("NCT04267848")  # 1,210 anticipated
    after = edited(
        before,
        lambda ps: status(ps, overallStatus="COMPLETED"),
        lambda ps: ps["designModule"].update(enrollmentInfo={"count": 500, "type": "ACTUAL"}),
    )
    finding = evaluate(chain(("a", before), ("b", after)), TODAY)["enrollment_shortfall"]
    assert (finding.detail["actual"], finding.detail["anticipated"]) == (500, 1210)


def test_completing_at_90_percent_is_not_a_shortfall() -> None:
    before = real("NCT04267848")
    after = edited(
        before,
        lambda ps: status(ps, overallStatus="COMPLETED"),
        lambda ps: ps["designModule"].update(enrollmentInfo={"count": 1089, "type": "ACTUAL"}),
    )
    assert "enrollment_shortfall" not in rules_now(("a", before), ("b", after))


def test_terminated_for_poor_accrual_is_a_shortfall_without_figures() -> None:
    record = edited(
        real("NCT04267848"),
        lambda ps: status(ps, overallStatus="TERMINATED", whyStopped="Slow accrual"),
    )
    assert "enrollment_shortfall" in rules_now(("a", record))


def test_the_threshold_is_a_setting() -> None:
    before = real("NCT04267848")
    after = edited(
        before,
        lambda ps: status(ps, overallStatus="COMPLETED"),
        lambda ps: ps["designModule"].update(enrollmentInfo={"count": 1089, "type": "ACTUAL"}),
    )
    strict = Thresholds(shortfall_ratio=0.95)
    assert "enrollment_shortfall" in evaluate(chain(("a", before), ("b", after)), TODAY, strict)


# ---- status_stale ---------------------------------------------------------------------------


def test_an_active_status_not_verified_for_two_years_is_stale() -> None:
    finding = evaluate(chain(("x", real("NCT02513394"))), TODAY)["status_stale"]
    assert finding.detail["status_verified"] == "2023-04"


def test_a_recently_verified_active_status_is_not_stale() -> None:
    assert "status_stale" not in rules_now(("x", real("NCT04267848")))  # verified 2025-08


def test_a_completion_date_a_year_past_with_the_status_still_active_is_stale() -> None:
    record = edited(real("NCT04267848"), lambda ps: status(ps, statusVerifiedDate="2026-10"))
    assert "status_stale" in rules_now(("x", record), today=date(2027, 1, 2))


def test_partial_dates_read_at_their_latest_and_earliest_day() -> None:
    assert PartialDate("2020-02").latest == date(2020, 2, 29)
    assert PartialDate("2019").latest == date(2019, 12, 31)
    assert PartialDate("2019-05").earliest == date(2019, 5, 1)


def test_malformed_dates_and_missing_modules_fire_nothing() -> None:
    record = {"protocolSection": {"statusModule": {"startDateStruct": {"date": "2020-13"}}}}
    assert evaluate([VersionFacts(0, "", trial_facts(record))], TODAY) == {}
