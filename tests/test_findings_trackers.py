"""The rules agree with the trackers on real records (tests/data/findings, copied from the
reference set) edited as the registry would have them. Beside each case: the verdict of the
tracker or rule it follows, and where that verdict comes from.

FDAAA TrialsTracker: ebmdatalab/clinicaltrials-act-converter@99723271 ``ctconvert/convert_data.py``
(ACT / pACT flags, ``results_due``, ``str_to_date``) and ebmdatalab/clinicaltrials-act-tracker@
8d795720 ``clinicaltrials/frontend/trial_computer.py`` (``qa_start_dates``, ``get_days_late``,
``get_status``) and ``models.py`` (``calculated_due_date``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from conftest import TESTS_DATA

from service.diff import diff
from service.findings.rules import Thresholds, VersionFacts, evaluate, next_review
from service.registry.ctgov_facts import trial_facts
from service.registry.ctgov_normalise import normalise
from service.settings import FindingsSettings

TODAY = date(2026, 11, 27)
Edit = Callable[[dict[str, Any]], None]
OVERDUE = "NCT03418623"  # FDA-regulated drug, US site, started 2018-03-08, PCD 2020-03-13
SWITCHED = "NCT04267848"  # phase 3, started 2020-06-16 (ACTUAL), 1,210 anticipated
UNTYPED = "NCT02513394"  # start "2015-08" without a type, first submitted 2015-07-29
OLD = "NCT00763412"  # start "2006-11" without a type, first submitted 2008-09-29


def real(study_id: str) -> dict[str, Any]:
    return json.loads((TESTS_DATA / "findings" / f"{study_id}.json").read_text())  # type: ignore[no-any-return]


def edited(record: dict[str, Any], *edits: Edit) -> dict[str, Any]:
    copied = copy.deepcopy(record)
    for edit in edits:
        edit(copied)
    return copied


def chain(*records: tuple[str, dict[str, Any]]) -> list[VersionFacts]:
    versions, previous = [], None
    for number, (posted, raw) in enumerate(records):
        snapshot = normalise(raw)
        changes = tuple(diff(previous, snapshot)) if previous is not None else ()
        versions.append(VersionFacts(number, posted, trial_facts(raw), changes))
        previous = snapshot
    return versions


def found(*records: tuple[str, dict[str, Any]], today: date = TODAY, **limits: Any) -> dict:  # type: ignore[type-arg]
    return evaluate(chain(*records), today, Thresholds(**limits))


def status(**values: Any) -> Edit:
    return lambda r: r["protocolSection"]["statusModule"].update(values)


def design(**values: Any) -> Edit:
    return lambda r: r["protocolSection"]["designModule"].update(values)


def no_fda_flags(r: dict[str, Any]) -> None:
    r["protocolSection"]["oversightModule"].pop("isFdaRegulatedDrug", None)
    r["protocolSection"]["oversightModule"].pop("isFdaRegulatedDevice", None)


def sites(*countries: str) -> Edit:
    def edit(r: dict[str, Any]) -> None:
        r["protocolSection"]["contactsLocationsModule"]["locations"] = [
            {"facility": "Site", "city": "City", "country": c} for c in countries
        ]

    return edit


def interventions(*kinds: str) -> Edit:
    def edit(r: dict[str, Any]) -> None:
        module = r["protocolSection"]["armsInterventionsModule"]
        for intervention, kind in zip(module["interventions"], kinds, strict=False):
            intervention["type"] = kind
        module["interventions"] = module["interventions"][: len(kinds)]

    return edit


def submissions(*infos: dict[str, Any]) -> Edit:
    def edit(r: dict[str, Any]) -> None:
        misc = r.setdefault("derivedSection", {}).setdefault("miscInfoModule", {})
        misc["submissionTracking"] = {"submissionInfos": list(infos)}

    return edit


def start(text: str, kind: str | None = "ACTUAL") -> Edit:
    struct = {"date": text} | ({"type": kind} if kind else {})
    return status(startDateStruct=struct)


def primary_outcomes(edit: Callable[[dict[str, Any]], None]) -> Edit:
    return lambda r: edit(r["protocolSection"]["outcomesModule"])


# ---- 1. dates era by era ---------------------------------------------------------------------


def reworded(outcomes: dict[str, Any]) -> None:
    outcomes["primaryOutcomes"][0]["measure"] += " at 5 years"


@pytest.mark.parametrize(
    ("posted", "holds"),
    [
        # "2015-08" without a type in a version posted in 2023: the start had happened (actual)
        pytest.param("2023-06-15", True, id="untyped-start-posted-after-it-is-actual"),
        # the same date in a version posted before it: a plan, not a start
        pytest.param("2015-07-30", False, id="untyped-start-posted-before-it-is-not"),
    ],
)
def test_an_untyped_start_date_is_actual_in_a_version_posted_after_it(
    posted: str, holds: bool
) -> None:
    before = real(UNTYPED)
    after = edited(before, primary_outcomes(reworded))
    result = found(("2015-07-29", before), (posted, after))
    assert ("primary_outcome_changed_after_start" in result) is holds


def test_the_earliest_recorded_actual_start_holds_when_a_later_version_moves_it() -> None:
    # started 2020-06-16 (ACTUAL); a later version moves the start to 2026 and rewords the
    # primary outcome in one edit: the outcome still changed after the trial started
    before = real(SWITCHED)
    after = edited(before, start("2026-06-01"), primary_outcomes(reworded))
    finding = found(("2025-08-01", before), ("2026-01-10", after))[
        "primary_outcome_changed_after_start"
    ]
    assert finding.detail["start_date"] == "2020-06-16"


def test_an_untyped_start_on_an_old_record_reads_its_own_last_update_posting() -> None:
    # NCT00763412: start "2006-11" (no type), last update posted 2017-06-05, first submitted
    # 2008-09-29: ICMJE retrospective (started after 2005-07-01, registered after the start)
    finding = found(("", real(OLD)))["retrospective_registration"]
    assert (finding.detail["start_date"], finding.detail["first_submitted"]) == (
        "2006-11",
        "2008-09-29",
    )


# ---- 2. results_overdue as the FDAAA TrialsTracker computes it --------------------------------


@pytest.mark.parametrize(
    ("edits", "verdict"),
    [
        # convert_data.py act_flag: FDA flag, covered phase, start >= 2017-01-18
        pytest.param((), "ACT", id="act"),
        # new_pact_flag: flags say regulated, started before, completing after: no location test
        pytest.param((start("2016-05"), sites("Canada")), "pACT", id="pact-flags-no-location"),
        # old_pact_flag: no flags, covered intervention, a US-territory site (has_us_loc)
        pytest.param(
            (start("2016-05"), no_fda_flags, sites("Puerto Rico")), "pACT", id="pact-territory"
        ),
        pytest.param(
            (start("2016-05"), no_fda_flags, sites("Guam")), "pACT", id="pact-territory-guam"
        ),
        # old_pact_flag: no flags and no US location: not covered
        pytest.param((start("2016-05"), no_fda_flags, sites("Canada")), None, id="pact-no-us"),
        # old_pact_flag: no flags, a US site but no covered intervention type
        pytest.param(
            (start("2016-05"), no_fda_flags, interventions("BEHAVIORAL")),
            None,
            id="pact-not-covered-intervention",
        ),
        # is_covered_phase: no phase is not covered (nor phase 1 alone)
        pytest.param((design(phases=[]),), None, id="no-phase"),
        pytest.param((design(phases=["PHASE1"]),), None, id="phase-1"),
        pytest.param((design(phases=["NA"]),), "ACT", id="phase-na-covered"),
        # str_to_date: a month-only start is its month's last day: "2017-01" is 2017-01-31,
        # not before 2017-01-18, so without flags it is no pACT (and no ACT either)
        pytest.param((start("2017-01"), no_fda_flags), None, id="month-only-start-at-month-end"),
        pytest.param((start("2017-01"),), "ACT", id="month-only-start-act"),
    ],
)
def test_which_trials_the_tracker_covers(edits: tuple[Edit, ...], verdict: str | None) -> None:
    result = found(("", edited(real(OVERDUE), *edits)))
    if verdict is None:
        assert "results_overdue" not in result
    else:
        assert result["results_overdue"].detail["applicable"] == verdict


def test_due_date_is_completion_plus_a_year_and_overdue_after_the_grace() -> None:
    # models.calculated_due_date: completion + 1 year; convert_data.results_due: today >
    # completion + 1 year + 30 days; trial_computer.get_status: ONGOING in the grace
    record = real(OVERDUE)  # primary completion 2020-03-13
    assert set(found(("", record), today=date(2021, 2, 10))) == set()
    assert "results_due_soon" in found(("", record), today=date(2021, 2, 11))
    assert "results_due_soon" in found(("", record), today=date(2021, 3, 13))
    in_grace = found(("", record), today=date(2021, 3, 20))
    assert "results_due_soon" not in in_grace and "results_overdue" not in in_grace
    assert "results_overdue" not in found(("", record), today=date(2021, 4, 12))
    overdue = found(("", record), today=date(2021, 4, 13))["results_overdue"]
    assert overdue.detail["due_date"] == "2021-03-13"
    assert overdue.detail["overdue_after"] == "2021-04-12"
    assert overdue.summary == (
        "Results overdue under FDAAA 801: due 2021-03-13 "
        "(primary completion 2020-03-13 + 1 year), not submitted"
    )
    assert next_review(trial_facts(record), date(2021, 3, 20)) == date(2021, 4, 13)


def test_a_month_only_completion_is_read_at_the_months_end() -> None:
    # str_to_date: "2020-02" is 2020-02-29; + 1 year (relativedelta) = 2021-02-28
    record = edited(real(OVERDUE), status(primaryCompletionDateStruct={"date": "2020-02"}))
    assert found(("", record))["results_overdue"].detail["due_date"] == "2021-02-28"


def test_a_certificate_of_delay_gives_three_years() -> None:
    # models.calculated_due_date: has_exemption → completion + 3 years
    record = edited(real(OVERDUE), status(dispFirstSubmitDate="2021-03-01"))
    finding = found(("", record))["results_overdue"]
    assert (finding.detail["due_date"], finding.detail["certificate_of_delay"]) == (
        "2023-03-13",
        "2021-03-01",
    )
    assert "certificate of delay 2021-03-01" in finding.summary


@pytest.mark.parametrize(
    ("infos", "overdue"),
    [
        # trial_computer.get_status: "We count uncancelled submissions as reported"
        pytest.param([{"releaseDate": "2021-02-01", "resetDate": "2021-03-01"}], False, id="in-qa"),
        # a cancelled (unreleased) latest submission: STATUS_OVERDUE_CANCELLED
        pytest.param(
            [{"releaseDate": "2021-02-01", "unreleaseDate": "2021-02-10"}], True, id="cancelled"
        ),
        pytest.param(
            [{"releaseDate": "2021-02-01", "unreleaseDateUnknown": True}],
            True,
            id="cancelled-date-unknown",
        ),
        # qa_start_dates: a submission after the cancellation restarts the clock
        pytest.param(
            [
                {"releaseDate": "2021-02-01", "unreleaseDate": "2021-02-10"},
                {"releaseDate": "2021-02-20"},
            ],
            False,
            id="resubmitted",
        ),
    ],
)
def test_results_in_quality_control_count_as_submitted_unless_cancelled(
    infos: list[dict[str, Any]], overdue: bool
) -> None:
    result = found(("", edited(real(OVERDUE), submissions(*infos))))
    assert ("results_overdue" in result) is overdue
    if overdue:
        assert result["results_overdue"].detail["submission_cancelled"] is True
        assert "submission was cancelled" in result["results_overdue"].summary


@pytest.mark.parametrize(
    ("edit", "late"),
    [
        # get_status: has_results and days_late (reported - due date, no grace) → REPORTED_LATE
        pytest.param(status(resultsFirstSubmitDate="2021-03-20"), True, id="results-after-due"),
        pytest.param(status(resultsFirstSubmitDate="2021-03-13"), False, id="results-on-due"),
        pytest.param(
            submissions({"releaseDate": "2022-01-05"}), True, id="qa-submission-after-due"
        ),
    ],
)
def test_results_after_the_due_date_are_reported_late(edit: Edit, late: bool) -> None:
    result = found(("", edited(real(OVERDUE), edit)))
    assert "results_overdue" not in result
    assert ("results_reported_late" in result) is late
    if late:
        assert result["results_reported_late"].severity == "low"


def test_no_summary_counts_days() -> None:
    # the days are rendered at show time from the dates in detail
    records = [
        ("", real(OVERDUE)),
        ("", edited(real(OVERDUE), status(resultsFirstSubmitDate="2021-06-01"))),
        ("", real(UNTYPED)),
        ("", real(OLD)),
        ("", real("NCT04207047")),
    ]
    for today in (TODAY, date(2021, 3, 1)):
        for record in records:
            for finding in found(record, today=today).values():
                assert not re.search(r"\d+ days?\b", finding.summary), finding.summary


# ---- 3. registration, shortfall and stale status --------------------------------------------


@pytest.mark.parametrize(
    ("edits", "retrospective"),
    [
        # ICMJE policy: trials starting on or after 2005-07-01
        pytest.param((start("2005-06"),), False, id="started-before-icmje"),
        pytest.param((start("2005-07"),), True, id="started-in-icmje-month"),
        pytest.param((design(studyType="OBSERVATIONAL"),), False, id="observational"),
    ],
)
def test_retrospective_registration_is_icmje_interventional(
    edits: tuple[Edit, ...], retrospective: bool
) -> None:
    result = found(("", edited(real(OLD), *edits)))  # first submitted 2008-09-29
    assert ("retrospective_registration" in result) is retrospective


@pytest.mark.parametrize(
    ("submitted", "retrospective"),
    [
        # start "2015-08" at month precision: a submission within August is not after it
        pytest.param("2015-08-20", False, id="same-month"),
        pytest.param("2015-09-01", True, id="next-month"),
    ],
)
def test_a_month_only_start_is_compared_at_month_precision(
    submitted: str, retrospective: bool
) -> None:
    record = edited(real(UNTYPED), status(studyFirstSubmitDate=submitted))
    assert ("retrospective_registration" in found(("2023-06-15", record))) is retrospective


def shortfall(*edits: Edit, **limits: Any) -> Any:
    before = real(SWITCHED)  # 1,210 anticipated, phase 3
    after = edited(before, *edits)
    return found(("a", before), ("b", after), **limits).get("enrollment_shortfall")


COMPLETED_500 = (
    status(overallStatus="COMPLETED"),
    design(enrollmentInfo={"count": 500, "type": "ACTUAL"}),
)


@pytest.mark.parametrize(
    ("edits", "reason"),
    [
        # Carlisle et al. 2015: interventional phase 2-3, completed below 85%
        pytest.param(COMPLETED_500, "completed_below_ratio", id="phase3-completed-short"),
        pytest.param((*COMPLETED_500, design(phases=["PHASE1"])), None, id="phase1"),
        pytest.param((*COMPLETED_500, design(phases=["NA"])), None, id="no-phase"),
        pytest.param((*COMPLETED_500, design(studyType="OBSERVATIONAL")), None, id="observ"),
        # terminated short without an accrual reason: stopped early, not a failed accrual
        pytest.param(
            (
                status(overallStatus="TERMINATED", whyStopped="Sponsor decision"),
                design(enrollmentInfo={"count": 500, "type": "ACTUAL"}),
            ),
            None,
            id="terminated-not-accrual",
        ),
        # terminated for accrual: reported apart (same rule, reason terminated_for_accrual)
        pytest.param(
            (status(overallStatus="TERMINATED", whyStopped="Slow accrual"),),
            "terminated_for_accrual",
            id="terminated-for-accrual",
        ),
    ],
)
def test_enrollment_shortfall_follows_carlisle(edits: tuple[Edit, ...], reason: str | None) -> None:
    finding = shortfall(*edits)
    assert (finding.detail["reason"] if finding else None) == reason


def test_shortfall_phases_are_a_setting() -> None:
    assert shortfall(*COMPLETED_500, design(phases=["NA"]), shortfall_phases=()) is not None
    assert FindingsSettings().shortfall_phases == ("PHASE2", "PHASE3")
    with pytest.raises(ValueError, match="PHASE5"):
        FindingsSettings(shortfall_phases=("PHASE2", "PHASE5"))


def test_a_record_the_registry_calls_unknown_is_stale() -> None:
    # NCT04207047: overallStatus UNKNOWN (ClinicalTrials.gov's own verdict), verified 2019-12
    finding = found(("", real("NCT04207047")))["status_stale"]
    assert finding.detail["reasons"][0] == "registry_unknown_status"
    assert "not_verified" in finding.detail["reasons"]
    assert finding.summary.startswith("Status unknown")


def test_stale_status_detail_says_which_reason_holds_now() -> None:
    record = edited(real(SWITCHED), status(statusVerifiedDate="2026-10"))
    finding = found(("", record), today=date(2027, 1, 2))["status_stale"]
    assert finding.detail["reasons"] == ["completion_passed"]  # verified recently
    assert finding.detail["completion_date"] == "2025-12-15"


# ---- 4. primary_outcome_changed_after_start graded ------------------------------------------


def added(outcomes: dict[str, Any]) -> None:
    outcomes["primaryOutcomes"].append({"measure": "Overall survival", "timeFrame": "5 years"})


def removed(outcomes: dict[str, Any]) -> None:
    outcomes["primaryOutcomes"].append(outcomes["secondaryOutcomes"].pop(0))
    outcomes["primaryOutcomes"].pop(0)


def moved(outcomes: dict[str, Any]) -> None:
    outcomes["secondaryOutcomes"].insert(0, outcomes["primaryOutcomes"][0])
    outcomes["primaryOutcomes"][:] = [outcomes["secondaryOutcomes"].pop(1)]


def cosmetic(outcomes: dict[str, Any]) -> None:
    outcomes["primaryOutcomes"][0]["measure"] = outcomes["primaryOutcomes"][0]["measure"].upper()


@pytest.mark.parametrize(
    ("edit", "severity", "named"),
    [
        # COMPare / registry-history studies: added, removed or moved primary outcomes are
        # major discrepancies; rewording is minor; cosmetic edits are no event at all
        pytest.param(added, "high", "Primary outcome added", id="added"),
        pytest.param(removed, "high", "outcome", id="removed-or-moved"),
        pytest.param(moved, "high", "Outcome moved from", id="moved"),
        pytest.param(reworded, "medium", "reworded", id="reworded"),
        pytest.param(cosmetic, None, None, id="cosmetic"),
    ],
)
def test_outcome_changes_are_graded(
    edit: Callable[[dict[str, Any]], None], severity: str | None, named: str | None
) -> None:
    before = real(SWITCHED)
    after = edited(before, primary_outcomes(edit))
    finding = found(("2025-08-01", before), ("2026-01-10", after)).get(
        "primary_outcome_changed_after_start"
    )
    if severity is None:
        assert finding is None
        return
    assert finding.severity == severity
    assert named in finding.summary
    assert finding.detail["grade"] == ("major" if severity == "high" else "reworded")


def test_the_summary_names_the_first_major_change_after_a_rewording() -> None:
    v0 = real(SWITCHED)
    v1 = edited(v0, primary_outcomes(reworded))
    v2 = edited(v1, primary_outcomes(added))
    finding = found(("2025-08-01", v0), ("2025-10-01", v1), ("2026-01-10", v2))[
        "primary_outcome_changed_after_start"
    ]
    assert finding.severity == "high"
    assert 'Primary outcome added: "Overall survival"' in finding.summary
    assert "version 1 → 2" in finding.summary and "1 more" in finding.summary
