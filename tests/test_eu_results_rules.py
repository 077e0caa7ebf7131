"""The EU results rules (``findings.eu_rules``) on real records edited at each edge of the rule.

EUCTR: the register's real text download of 2021-002179-21 (masitinib, phase 3, seven country
records) and 2022-002568-62 (AVB-101, phase 1/2, E.7.1 "Yes" in every record), the countries
ended the way the register shows it (section P's status and its date of the global end of the
trial), as the EU Trials Tracker reads them. CTIS: the real record of 2023-505613-24-00 (BE,
GR, PL; a paediatric investigation plan) and the pre-relaunch record of 2022-500244-37-00 (DE),
the member states ended the way CTIS records it (public status 8 and an end-of-trial event)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from conftest import TESTS_DATA

from service.findings.eu_rules import (
    CTR_SOURCE,
    TRACKER_SOURCE,
    EuFacts,
    EuVersion,
    eu_facts,
    evaluate,
    next_review,
)
from service.findings.rules import SOURCES, Finding, Thresholds
from service.registry.ctis.normalise import normalise as ctis_normalise
from service.registry.euctr.normalise import normalise as euctr_normalise
from service.registry.euctr.text import parse_record, split_blocks

DOWNLOAD = TESTS_DATA / "reference" / "euctr" / "ctrdata_test_error_trials_euctr.txt"
CTIS = TESTS_DATA / "reference" / "ctis"
AB = "2021-002179-21"  # masitinib: FR ES GR PL PL PT HU, phase 3, no PIP
AVB = "2022-002568-62"  # AVB-101: ES SE SE, E.7.1 phase I "Yes" (and II), no PIP
MSD = "2023-505613-24-00"  # CTIS, post-relaunch: Belgium, Greece, Poland; PIP EMEA-000468-PIP02-12
KINARUS = "2022-500244-37-00"  # CTIS before the relaunch: Germany

# AB ended: the latest global end date is Spain's, Portugal gives none, Greece ended early
AB_ENDS = {
    "ES": ("Completed", "2023-10-01"),
    "FR": ("Completed", "2023-06-30"),
    "GR": ("Prematurely Ended", "2023-05-15"),
    "HU": ("Completed", "2023-09-01"),
    "PL": ("Completed", "2023-08-20"),
    "PT": ("Completed", None),
}
AB_DEADLINE = date(2024, 10, 29)  # 2023-10-01 + 1 year + 28 days
ONGOING = "P. End of Trial Status: Ongoing"


# --------------------------------------------------------------------------- EUCTR helpers


def download() -> str:
    return DOWNLOAD.read_text(encoding="utf-8")


def edit_records(text: str, number: str, edit: Callable[[str, str], str]) -> str:
    """``text`` with every country record of ``number`` edited: ``edit(country, block)``."""
    header, blocks = split_blocks(text)
    edited = []
    for block in blocks:
        record = parse_record(block)
        edited.append(edit(record.country, block) if record.eudract_number == number else block)
    return header + "".join(edited)


def replaced(block: str, old: str, new: str) -> str:
    assert old in block, old
    return block.replace(old, new)


def ended(text: str, number: str, ends: dict[str, tuple[str, str | None]]) -> str:
    """The countries of ``ends`` ended as the register shows it: the summary's status and
    section P's, and P's date of the global end of the trial when given."""

    def edit(country: str, block: str) -> str:
        if country not in ends:
            return block
        status, day = ends[country]
        block = replaced(block, "\nTrial Status: Ongoing", f"\nTrial Status: {status}")
        given = f"\nP. Date of the global end of the trial: {day}" if day else ""
        return replaced(block, ONGOING, f"P. End of Trial Status: {status}{given}")

    return edit_records(text, number, edit)


def in_country(country: str, old: str, new: str) -> Callable[[str, str], str]:
    return lambda code, block: replaced(block, old, new) if code == country else block


def ab_ended() -> str:
    return ended(download(), AB, AB_ENDS)


def avb_ended() -> str:
    return ended(download(), AVB, {"ES": ("Completed", "2023-10-01"), "SE": ("Completed", None)})


def euctr_facts(number: str, text: str) -> EuFacts:
    raw = {"eudract_number": number, "text": text}
    return eu_facts(euctr_normalise(raw), raw)


def found(facts: EuFacts, today: date) -> dict[str, Finding]:
    return evaluate([EuVersion(1, "", facts)], today)


# --------------------------------------------------------------------------- EUCTR: the Tracker


def test_ended_in_every_country_the_latest_global_end_counts() -> None:
    facts = euctr_facts(AB, ab_ended())
    assert [(c.country, c.status, c.ended, c.end_date) for c in facts.countries] == [
        ("ES", "Completed", True, "2023-10-01"),
        ("FR", "Completed", True, "2023-06-30"),
        ("GR", "Prematurely Ended", True, "2023-05-15"),
        ("HU", "Completed", True, "2023-09-01"),
        ("PL", "Completed", True, "2023-08-20"),
        ("PT", "Completed", True, ""),
    ]
    assert facts.ended_everywhere and facts.end_date == "2023-10-01"
    assert (facts.phase1, facts.pip, facts.exempt) == (False, False, False)
    assert facts.results_posted is None  # the text download says nothing of results

    overdue = found(facts, date(2024, 10, 30))["results_overdue"]
    assert overdue.detail["deadline"] == "2024-10-29"
    assert overdue.detail["end_date"] == "2023-10-01"
    assert overdue.detail["grace_days"] == 28
    assert "latest of the country records" in overdue.detail["end_date_source"]
    assert "ES, FR, GR, HU, PL, PT" in overdue.summary and "1 days ago" in overdue.summary
    assert overdue.source == TRACKER_SOURCE and "euctr-tracker-code" in overdue.source
    # the record cannot say whether results were posted: medium, and the summary says so
    assert overdue.severity == "medium" and "does not show results" in overdue.summary


@pytest.mark.parametrize(
    ("today", "rules"),
    [
        (date(2024, 9, 28), set()),  # 31 days before the deadline
        (date(2024, 9, 29), {"results_due_soon"}),  # 30 days before it
        (date(2024, 9, 30), {"results_due_soon"}),  # the end + 1 year − 1 day
        (date(2024, 10, 1), {"results_due_soon"}),  # the end + 1 year: the 28 days' grace
        (AB_DEADLINE, {"results_due_soon"}),  # the end + 1 year + 28 days: the last day
        (date(2024, 10, 30), {"results_overdue"}),  # the day after
        (date(2030, 1, 1), {"results_overdue"}),
    ],
)
def test_due_a_year_and_28_days_after_the_latest_end(today: date, rules: set[str]) -> None:
    assert set(found(euctr_facts(AB, ab_ended()), today)) == rules


def test_one_country_still_ongoing_keeps_the_trial_from_being_due() -> None:
    ends = {code: end for code, end in AB_ENDS.items() if code != "HU"}
    facts = euctr_facts(AB, ended(download(), AB, ends))
    assert not facts.ended_everywhere
    assert [c.country for c in facts.countries if not c.ended] == ["HU"]
    assert found(facts, date(2030, 1, 1)) == {}
    assert next_review(facts, date(2024, 1, 1)) is None


@pytest.mark.parametrize(
    ("status", "ends"),
    [
        ("Prematurely Ended", True),
        ("Completed", True),
        ("Temporarily Halted", False),
        ("Restarted", False),
        ("Suspended by CA", False),
        ("GB - no longer in EU/EEA", False),  # the Tracker has not implemented ignoring these
    ],
)
def test_only_completed_and_prematurely_ended_are_ends(status: str, ends: bool) -> None:
    facts = euctr_facts(AB, ended(download(), AB, {**AB_ENDS, "HU": (status, "2023-01-01")}))
    assert facts.ended_everywhere is ends
    assert ("results_overdue" in found(facts, date(2030, 1, 1))) is ends


def test_a_third_country_record_without_a_status_keeps_the_trial_from_being_due() -> None:
    """A record of the trial's sites outside the EU/EEA shows no end-of-trial status (the
    Tracker: "partly outside EU"): the trial is never due."""
    text = ab_ended()
    _header, blocks = split_blocks(text)
    portugal = next(b for b in blocks if f"/trial/{AB}/PT/" in b)
    third = portugal.replace(f"/trial/{AB}/PT/", f"/trial/{AB}/3rd/")
    third = replaced(third, "P. End of Trial Status: Completed\n", "")
    facts = euctr_facts(AB, text + third)
    third_country = next(c for c in facts.countries if c.country == "3RD")
    assert (third_country.status, third_country.ended) == ("", False)
    assert found(facts, date(2030, 1, 1)) == {}


def test_ended_everywhere_without_a_global_end_date_is_not_due() -> None:
    facts = euctr_facts(AB, ended(download(), AB, {c: (s, None) for c, (s, _d) in AB_ENDS.items()}))
    assert facts.ended_everywhere and facts.end_date == ""
    assert found(facts, date(2030, 1, 1)) == {}
    assert next_review(facts, date(2024, 1, 1)) is None


def test_the_trackers_29_february() -> None:
    """The Tracker's cutoff is the day − relativedelta(years=1) − 28 days: on 29 February 2024
    the cutoff is 31 January 2023, so a trial that ended that day is due from 1 March only."""
    ends = {
        code: (status, "2023-01-31" if day else None) for code, (status, day) in AB_ENDS.items()
    }
    facts = euctr_facts(AB, ended(download(), AB, ends))
    assert "results_overdue" not in found(facts, date(2024, 2, 29))
    assert found(facts, date(2024, 3, 1))["results_overdue"].detail["deadline"] == "2024-02-29"


# --------------------------------------------------------------------------- EUCTR: exemption


def test_a_phase_1_trial_outside_a_paediatric_plan_is_exempt() -> None:
    facts = euctr_facts(AVB, avb_ended())
    assert facts.ended_everywhere and facts.phase1 and not facts.pip and facts.exempt
    assert facts.phases == ("Phase 1", "Phase 2")  # a phase 1/2 trial: E.7.1 "Yes" counts
    assert found(facts, date(2030, 1, 1)) == {}
    assert next_review(facts, date(2024, 1, 1)) is None


def test_a_phase_1_trial_in_a_paediatric_plan_is_not_exempt() -> None:
    # the Spanish record's A.7 reads "JSON_ERROR_HERE" (ctrdata's error test): not a yes
    text = edit_records(
        avb_ended(),
        AVB,
        in_country(
            "ES",
            "A.7 Trial is part of a Paediatric Investigation Plan: JSON_ERROR_HERE",
            "A.7 Trial is part of a Paediatric Investigation Plan: Yes",
        ),
    )
    facts = euctr_facts(AVB, text)
    assert facts.phase1 and facts.pip and not facts.exempt
    overdue = found(facts, date(2024, 10, 30))["results_overdue"]
    assert overdue.detail["paediatric_investigation_plan"] is True
    assert overdue.detail["deadline"] == "2024-10-29"


def test_phase_1_in_only_some_country_records_is_not_exempt() -> None:
    # Sweden is listed twice; its later record (the one that stands) says phase I "No"
    _header, blocks = split_blocks(avb_ended())
    last_sweden = [b for b in blocks if f"/trial/{AVB}/SE/" in b][-1]
    edited = replaced(
        last_sweden,
        "E.7.1 Human pharmacology (Phase I): Yes",
        "E.7.1 Human pharmacology (Phase I): No",
    )
    facts = euctr_facts(AVB, avb_ended().replace(last_sweden, edited))
    assert not facts.phase1 and not facts.exempt
    assert "results_overdue" in found(facts, date(2024, 10, 30))


# --------------------------------------------------------------------------- EUCTR: results


def with_results_line(words: str, countries: set[str] | None = None) -> str:
    def edit(country: str, block: str) -> str:
        if countries is not None and country not in countries:
            return block
        return replaced(block, "\nLink: ", f"\nTrial results: {words}\nLink: ")

    return edit_records(ab_ended(), AB, edit)


def test_results_shown_on_every_country_record_clear_it() -> None:
    facts = euctr_facts(AB, with_results_line("View results"))
    assert facts.results_posted is True
    assert found(facts, date(2030, 1, 1)) == {}
    assert next_review(facts, date(2024, 1, 1)) is None


def test_results_shown_on_one_country_record_only_do_not() -> None:
    """The Tracker's has_results: every country record shows results."""
    facts = euctr_facts(AB, with_results_line("View results", {"ES"}))
    assert facts.results_posted is False
    overdue = found(facts, date(2030, 1, 1))["results_overdue"]
    assert overdue.severity == "high" and "no results on the register" in overdue.summary


def test_no_results_available_is_overdue_with_high_severity() -> None:
    facts = euctr_facts(AB, with_results_line("(No results available)"))
    assert facts.results_posted is False
    overdue = found(facts, date(2024, 10, 30))["results_overdue"]
    assert overdue.severity == "high" and overdue.detail["results_posted"] is False


def test_next_review_is_the_first_day_due_soon_then_the_first_day_overdue() -> None:
    facts = euctr_facts(AB, ab_ended())
    assert next_review(facts, date(2024, 1, 1)) == date(2024, 9, 29)
    assert next_review(facts, date(2024, 9, 29)) == date(2024, 10, 30)  # the deadline's next day
    assert next_review(facts, AB_DEADLINE) == date(2024, 10, 30)
    assert next_review(facts, date(2024, 10, 30)) is None  # overdue: no day changes that
    assert next_review(facts, date(2024, 1, 1), Thresholds(due_soon_days=0)) == date(2024, 10, 29)


# --------------------------------------------------------------------------- CTIS helpers

Json = dict[str, Any]
MSD_ENDS = {"Belgium": "2025-03-31", "Greece": "2025-06-30", "Poland": "2025-05-15"}
MSD_DEADLINE = date(2026, 6, 30)  # 2025-06-30 + 1 year


def ctis_record(number: str) -> Json:
    (path,) = CTIS.glob(f"CTIS_{number}*.json")
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def msd_ended(
    ends: dict[str, str | None] | None = None,
    *,
    status: dict[str, int] | None = None,
    kind: str = "END_OF_TRIAL",
) -> Json:
    """The MSD trial ended in each member state of ``ends`` as CTIS records it: its public
    status 8 ("Ended") and an end-of-trial event (with its date, when one is given)."""
    record = copy.deepcopy(ctis_record(MSD))
    ends = MSD_ENDS if ends is None else ends
    status = status or {}
    for state in record["authorizedApplication"]["memberStatesConcerned"]:
        name = state["mscName"]
        state["mscPublicStatusCode"] = status.get(name, 8 if name in ends else 4)
    for per_state in record["events"]["trialEvents"]:
        day = ends.get(per_state["mscName"])
        if per_state["mscName"] in ends:
            event: Json = {"notificationType": kind}
            if day:
                event["date"] = day
            per_state["events"].append(event)
    if all(name in ends for name in MSD_ENDS):
        record["ctPublicStatusCode"] = record["ctStatus"] = 8
    return record


def ctis_facts(record: Json) -> EuFacts:
    return eu_facts(ctis_normalise(record), record)


# --------------------------------------------------------------------------- CTIS: Art. 37(4)


def test_ctis_ended_in_all_member_states_is_due_a_year_after_the_last_end() -> None:
    facts = ctis_facts(msd_ended())
    assert [(c.country, c.status, c.ended, c.end_date) for c in facts.countries] == [
        ("BE", "Ended", True, "2025-03-31"),
        ("GR", "Ended", True, "2025-06-30"),
        ("PL", "Ended", True, "2025-05-15"),
    ]
    assert facts.end_date == "2025-06-30" and "notifications" in facts.end_date_source
    assert facts.pip and not facts.exempt and facts.results_posted is False
    overdue = found(facts, date(2026, 7, 1))["results_overdue"]
    assert overdue.severity == "high" and overdue.source == CTR_SOURCE
    assert "Art. 37(4)" in overdue.source and "Art. 37(4)" in overdue.summary
    assert overdue.detail["deadline"] == "2026-06-30" and overdue.detail["grace_days"] == 0
    assert "BE, GR, PL" in overdue.summary and "2025-06-30" in overdue.summary


@pytest.mark.parametrize(
    ("today", "rules"),
    [
        (date(2026, 5, 30), set()),
        (date(2026, 5, 31), {"results_due_soon"}),  # 30 days before the deadline
        (MSD_DEADLINE, {"results_due_soon"}),  # the end + 1 year: the last day
        (date(2026, 7, 1), {"results_overdue"}),  # the day after
    ],
)
def test_ctis_the_day_before_and_after_the_deadline(today: date, rules: set[str]) -> None:
    assert set(found(ctis_facts(msd_ended()), today)) == rules


def test_ctis_one_member_state_not_ended_keeps_it_from_being_due() -> None:
    record = msd_ended({"Belgium": "2025-03-31", "Greece": "2025-06-30"})
    facts = ctis_facts(record)
    assert [(c.country, c.ended) for c in facts.countries] == [
        ("BE", True), ("GR", True), ("PL", False),
    ]  # fmt: skip
    assert found(facts, date(2030, 1, 1)) == {}
    assert next_review(facts, date(2026, 1, 1)) is None


def test_ctis_an_early_termination_is_an_end() -> None:
    facts = ctis_facts(msd_ended(kind="EARLY_TERMINATION"))
    assert facts.ended_everywhere and facts.end_date == "2025-06-30"
    assert "results_overdue" in found(facts, date(2026, 7, 1))


def test_ctis_without_every_dated_end_the_end_in_the_eu_counts() -> None:
    record = msd_ended({"Belgium": "2025-03-31", "Greece": None, "Poland": "2025-05-15"})
    assert ctis_facts(record).end_date == ""  # no day for Greece: the end is not known
    assert found(ctis_facts(record), date(2030, 1, 1)) == {}
    record["endDateEU"] = "30/06/2025"
    facts = ctis_facts(record)
    assert facts.end_date == "2025-06-30" and "endDateEU" in facts.end_date_source
    assert found(facts, date(2026, 7, 1))["results_overdue"].detail["deadline"] == "2026-06-30"


def test_ctis_a_summary_of_results_submitted_clears_it() -> None:
    record = msd_ended()
    record["results"] = {"summaryResults": [{"id": 1, "submissionDate": "2026-07-15"}]}
    facts = ctis_facts(record)
    assert facts.results_posted is True and facts.results_date == "2026-07-15"
    assert found(facts, date(2026, 7, 20)) == {}  # late, but submitted
    assert next_review(facts, date(2026, 1, 1)) is None
    record = msd_ended()
    record["resultsFirstReceived"] = "Yes"  # the search row's word
    assert found(ctis_facts(record), date(2026, 7, 20)) == {}


def test_ctis_knows_no_phase_1_exemption() -> None:
    record = msd_ended()
    information = record["authorizedApplication"]["authorizedPartI"]["trialDetails"]
    information["trialInformation"]["trialCategory"]["trialPhase"] = "1"
    information["scientificAdviceAndPip"]["paediatricInvestigationPlan"] = []
    record.pop("trialPhase")  # the search row's words (phase II) would speak for the record
    facts = ctis_facts(record)
    assert facts.phase1 and not facts.pip and not facts.exempt
    assert "results_overdue" in found(facts, date(2026, 7, 1))


def test_ctis_a_pre_relaunch_record_ended_by_its_notification() -> None:
    record = copy.deepcopy(ctis_record(KINARUS))
    record["trialCountries"] = "DE:Ended"
    record["mscTrialNotificationsInfoList"][0]["mscNotificationsListInfo"] = [
        {"notificationType": "End of trial", "date": "2024-01-15"}
    ]
    facts = ctis_facts(record)
    assert [(c.country, c.ended, c.end_date) for c in facts.countries] == [
        ("DE", True, "2024-01-15")
    ]
    assert "results_overdue" not in found(facts, date(2025, 1, 15))
    assert "results_overdue" in found(facts, date(2025, 1, 16))


def test_ctis_next_review_is_the_first_day_due_soon_then_the_first_day_overdue() -> None:
    facts = ctis_facts(msd_ended())
    assert next_review(facts, date(2025, 7, 1)) == date(2026, 5, 31)
    assert next_review(facts, date(2026, 5, 31)) == date(2026, 7, 1)
    assert next_review(facts, date(2026, 7, 1)) is None


def test_a_running_trial_has_no_finding_and_no_day() -> None:
    for facts in (euctr_facts(AB, download()), ctis_facts(ctis_record(MSD))):
        assert not facts.ended_everywhere
        assert found(facts, date(2030, 1, 1)) == {}
        assert next_review(facts, date(2024, 1, 1)) is None
    assert evaluate([], date(2030, 1, 1)) == {}


# --------------------------------------------------------------------------- the finding's source


def test_a_finding_cites_its_own_source_else_its_rules() -> None:
    assert Finding("results_overdue", "high", "x").source == SOURCES["results_overdue"]
    assert Finding("results_overdue", "high", "x", cited="Art. 37(4)").source == "Art. 37(4)"
