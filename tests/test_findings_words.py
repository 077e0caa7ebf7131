"""A finding's detail in words (service/findings/words.py): labels and values a person reads,
outcome steps as before/after pairs, and day counts made when shown, never stored."""

from __future__ import annotations

from datetime import date

from service.findings.words import days_phrase, enum_words, finding_words, value_words

OVERDUE = {  # as results_overdue stores it (service/findings/rules.py)
    "completion_field": "primary_completion_date",
    "completion_date": "2020-03-13",
    "completion_type": "ACTUAL",
    "deadline": "2021-04-12",
    "certificate_of_delay": None,
}


def rows(detail: dict, today: date | None = None) -> dict[str, str]:
    return {row.label: row.text for row in finding_words(detail, today).rows}


def test_a_results_deadline_reads_as_labelled_words() -> None:
    assert rows(OVERDUE) == {
        "Primary completion": "2020-03-13 (actual)",
        "Results due": "2021-04-12",
        "Certificate of delay": "none",
    }
    shown = " ".join(f"{k} {v}" for k, v in rows(OVERDUE).items())
    assert "primary_completion_date" not in shown and "ACTUAL" not in shown


def test_the_days_are_counted_from_the_day_shown() -> None:
    assert days_phrase(OVERDUE, date(2021, 5, 12)) == "due 2021-04-12, 30 days ago"
    assert days_phrase(OVERDUE, date(2021, 4, 11)) == "due 2021-04-12, in 1 day"
    assert days_phrase(OVERDUE, date(2021, 4, 12)) == "due 2021-04-12, today"
    assert days_phrase(OVERDUE, date(2024, 4, 12)) == "due 2021-04-12, 1,096 days ago"
    assert rows(OVERDUE, date(2021, 5, 12))["Results due"] == "2021-04-12 (30 days ago)"
    assert finding_words(OVERDUE, date(2021, 5, 12)).when == "due 2021-04-12, 30 days ago"


def test_without_a_day_or_a_deadline_there_is_no_count() -> None:
    assert days_phrase(OVERDUE, None) == ""
    assert days_phrase({"status_verified": "2023-04"}, date(2026, 1, 1)) == ""
    assert days_phrase({"deadline": "2021-04"}, date(2026, 1, 1)) == ""  # not a day
    assert days_phrase({"due_date": "2026-02-01"}, date(2026, 1, 1)) == "due 2026-02-01, in 31 days"


def test_registry_enums_read_as_lower_case_words() -> None:
    stale = rows({"status": "NOT_YET_RECRUITING", "status_verified": "2023-04"})
    assert stale == {"Status": "not yet recruiting", "Status last verified": "2023-04"}
    assert enum_words("ACTIVE_NOT_RECRUITING") == "active, not recruiting"
    assert enum_words("PHASE2") == "phase 2"
    assert value_words(True) == "yes" and value_words(None) == "none"
    assert value_words(1210, "anticipated") == "1,210"


def test_a_shortfall_and_a_retroactive_start() -> None:
    short = {"status": "COMPLETED", "actual": 500, "anticipated": 1210}
    assert rows(short) == {
        "Status": "completed",
        "Actual enrollment": "500",
        "Anticipated enrollment": "1,210",
    }
    moved = {
        "from_version": 2,
        "to_version": 4,
        "old_start": "2018-01",
        "new_start": "2018-05",
        "first_submitted": "2018-03-01",
    }
    assert rows(moved) == {
        "Versions": "2 → 4",
        "Start before": "2018-01",
        "Start now": "2018-05",
        "First submitted": "2018-03-01",
    }
    assert rows({"days_late": 45})["Registered after the start"] == "45 days"


def test_outcome_steps_pair_what_changed_and_leave_out_what_did_not() -> None:
    detail = {
        "steps": [
            {
                "from_version": 3,
                "to_version": 5,
                "posted": "2021-02-01",
                "start_date": "2020-06-16",
                "before": ["Overall survival", "Progression-free survival"],
                "after": ["Overall survival", "Progression-free survival (adjudicated)", "QoL"],
                "changes": ["Primary outcome reworded"],
            }
        ]
    }
    words = finding_words(detail)
    assert words.rows == ()
    [step] = words.steps
    assert step.title == "Version 3 → 5, posted 2021-02-01 (after the start, 2020-06-16)"
    assert step.pairs == (
        ("Progression-free survival", "Progression-free survival (adjudicated)"),
        ("", "QoL"),
    )
    assert step.changes == ("Primary outcome reworded",) and step.unchanged == 1


def test_eu_and_cross_registry_details() -> None:
    eu = rows(
        {
            "rule": "EU Trials Tracker",
            "registry": "euctr",
            "countries": [
                {"country": "DE", "status": "Completed", "ended": True, "end_date": "2019-01-01"},
                {"country": "FR", "status": "Prematurely Ended", "ended": True, "end_date": None},
            ],
            "results_years": 1,
            "grace_days": 28,
            "phase1": False,
            "results_posted": None,
        }
    )
    assert eu["Registry"] == "EU Clinical Trials Register"
    assert eu["Countries"] == "DE: completed, ended 2019-01-01; FR: prematurely ended"
    assert eu["Grace"] == "28 days" and eu["Phase 1 trial"] == "no"
    assert "Results posted" not in eu  # not known: not shown as a fact
    apart = rows(
        {
            "kinds": ["lifecycle", "enrollment"],
            "disagreements": [{"field": "lifecycle", "values": [], "summary": "a ≠ b"}],
            "registrations": [
                {
                    "registry": "ctgov",
                    "study_id": "NCT01",
                    "stored": True,
                    "overall_status": "RECRUITING",
                    "status_since": "2020-01-01",
                },
                {"registry": "euctr", "study_id": "2014-1", "stored": False, "named_by": "x"},
            ],
        }
    )
    assert apart["Disagree on"] == "lifecycle, enrollment"
    assert apart["Disagreements"] == "a ≠ b"
    assert apart["Registrations"] == (
        "ClinicalTrials.gov NCT01: recruiting, since 2020-01-01; "
        "EU Clinical Trials Register 2014-1: named by x, not watched"
    )


def test_an_unknown_key_still_shows_in_words() -> None:
    assert rows({"new_thing_count": 3, "NEW_FLAG": "SOME_VALUE"}) == {
        "New thing count": "3",
        "NEW FLAG": "some value",
    }
    assert finding_words(None) == finding_words({})


def test_where_results_were_found_submitted_is_said_in_words() -> None:
    words = finding_words({"results_submitted_from": "resultsFirstSubmitDate"})
    said = " ".join(f"{row.label}: {row.text}" for row in words.rows)
    assert "the date results were first submitted" in said
    assert "resultsFirstSubmitDate" not in said
