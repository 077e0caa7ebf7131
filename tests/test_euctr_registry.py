"""The EU Clinical Trials Register: its text download read (every country record of the real
download of 2022-002568-62 and 2021-002179-21), one snapshot per trial, edits as the register
makes them, the client against the EU registries emulator (faults included), its feed, the
ids people type, and TLS through a shipped intermediate certificate.

Every input is the real download of ``tests/data/reference/euctr/`` or that text edited the way
the register edits a record (a country's status, a planned number, an end point's words)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TESTS_DATA

from service.errors import RecordInvalid, RecordNotFound, RegistryError
from service.models import Snapshot
from service.registry.euctr import tls as euctr_tls
from service.registry.euctr.client import EuctrClient, build_client, feed_stamps
from service.registry.euctr.fields import INFO, ctrdata_key, lifecycle, parse_id, trial_lifecycle
from service.registry.euctr.normalise import normalise, record_meta
from service.registry.euctr.text import (
    HEADER_START,
    NotADownload,
    parse_download,
    parse_summary,
    split_blocks,
)
from service.settings import EuctrSettings

DOWNLOAD = TESTS_DATA / "reference" / "euctr" / "ctrdata_test_error_trials_euctr.txt"
AB = "2021-002179-21"  # masitinib in Alzheimer's disease: FR ES GR PL PL PT HU
AVB = "2022-002568-62"  # AVB-101 in FTD-GRN: ES SE SE
FULL = "/euctr/ctr-search/rest/download/full"


def download() -> str:
    return DOWNLOAD.read_text(encoding="utf-8")


def raw(number: str, text: str | None = None) -> dict[str, Any]:
    return {"eudract_number": number, "text": download() if text is None else text}


def block(text: str, number: str, country: str) -> str:
    """The (last) record of ``number`` in ``country``, as the register wrote it."""
    _header, blocks = split_blocks(text)
    link = f"/trial/{number}/{country}/"
    return [b for b in blocks if link in b][-1]


def edit(text: str, number: str, country: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced by ``new`` in one country record (it must be there)."""
    record = block(text, number, country)
    assert old in record, old
    return text.replace(record, record.replace(old, new))


def edit_all(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def changed_fields(old: Snapshot, new: Snapshot) -> set[str]:
    before, after = old.model_dump(), new.model_dump()
    return {name for name in before if before[name] != after[name]}


# --------------------------------------------------------------------------- the text download


def test_every_country_record_of_both_trials_is_read() -> None:
    records = parse_download(download()).records
    assert [(r.eudract_number, r.country) for r in records] == [
        (AVB, "ES"), (AVB, "SE"), (AVB, "SE"),
        (AB, "FR"), (AB, "ES"), (AB, "GR"), (AB, "PL"), (AB, "PL"), (AB, "PT"), (AB, "HU"),
    ]  # fmt: skip
    for record in records:
        assert record.sections == ("A", "B", "D", "E", "F", "G", "N", "P")
        assert record.value("A.2 EudraCT number") == record.eudract_number
        assert record.value("P. End of Trial Status") == "Ongoing"
        assert record.value("Trial Status") == "Ongoing"
        assert record.text.startswith("Summary\nEudraCT Number: " + record.eudract_number)
    assert "".join(r.text for r in records) == download()[len(split_blocks(download())[0]) :]


def test_summary_lines_and_the_competent_authority_are_read() -> None:
    fr = parse_download(download()).records[3]
    assert fr.value("Sponsor's Protocol Code Number") == "AB21004"
    assert fr.value("National Competent Authority") == "France - ANSM"
    assert fr.value("Date on which this record was first entered in the EudraCT database") == (
        "2022-03-10"
    )
    assert fr.value("N. Date of Competent Authority Decision") == "2022-10-07"
    # a label with a colon of its own, and one that asks a question
    assert fr.values("N. Ethics Committee Opinion: Reason(s) for unfavourable opinion") == ("",)
    assert fr.values("D.8.1 Is a Placebo used in this Trial?") == ("Yes", "Yes")
    assert fr.value("B.3.1 and B.3.2 Status of the sponsor") == "Commercial"  # tab in label


def test_continuation_lines_belong_to_the_value_above() -> None:
    fr = parse_download(download()).records[3]
    primary = fr.value("E.5.1 Primary end point(s)")
    assert primary.splitlines() == [
        "The study has two following primary endpoints:",
        "•\tAbsolute change from baseline in ADCS-ADL score at week 24",
        "and",
        "•\tAbsolute change from baseline in ADAS-Cog score at week 24",
    ]
    assert fr.value("E.5.1.1 Timepoint(s) of evaluation of this end point") == "week 24"
    regions = fr.value(
        "E.8.6.3 If E.8.6.1 or E.8.6.2 are Yes, specify the regions in which trial sites are "
        "planned"
    ).splitlines()
    assert regions[0] == "Argentina" and regions[-1] == "United Kingdom" and len(regions) == 31
    inclusion = fr.value("E.3 Principal inclusion criteria")
    assert "\n\n2.\tPatient with ADCS-ADL score" in inclusion  # blank lines inside kept
    assert inclusion.endswith("Patient card will be provided at baseline visit.")
    assert fr.value("D.3.7 Routes of administration for this IMP") == "Oral use"


def test_translations_are_dropped_with_their_continuation_lines() -> None:
    es = parse_download(download()).records[4]
    assert es.country == "ES"
    assert es.value("A.3 Full title of the trial").startswith("A multicenter, randomized")
    assert es.value("E.1.1 Medical condition(s) being investigated") == "Alzheimer's disease"
    primary = es.value("E.5.1 Primary end point(s)")
    assert "ADAS-Cog score at week 24" in primary and "Criterios" not in primary
    for record in parse_download(download()).records:
        assert not [label for label in record.fields if label.endswith(("(es)", "(el)", "(pl)"))]
        assert not any("Estudio" in v for values in record.fields.values() for v in values)


def test_repeated_labels_keep_every_value_in_order() -> None:
    fr = parse_download(download()).records[3]
    assert fr.values("D.IMP") == ("1", "2")
    assert fr.values("D.3.10.3 Concentration number") == ("100", "200")
    assert fr.values("E.1.2 Term") == (
        "Alzheimer's disease (incl subtypes)",
        "Alzheimer's disease",
        "Early onset Alzheimer's disease",
    )
    two_sponsors = edit(
        download(), AB, "FR", "B.1.3.4\tCountry: France\n",
        "B.1.3.4\tCountry: France\nSponsor 2\nB.1.1 Name of Sponsor: Assistance Publique - "
        "Hôpitaux de Paris\nB.1.3.4\tCountry: France\n",
    )  # fmt: skip
    fr = block_record(two_sponsors, AB, "FR")
    assert fr.values("Sponsor") == ("1", "2")
    assert fr.values("B.1.1 Name of Sponsor") == (
        "AB Science",
        "Assistance Publique - Hôpitaux de Paris",
    )


def block_record(text: str, number: str, country: str) -> Any:
    return next(
        r for r in reversed(parse_download(text).records)
        if (r.eudract_number, r.country) == (number, country)
    )  # fmt: skip


def test_json_error_here_is_a_value_not_a_crash() -> None:
    records = parse_download(download()).records
    assert records[0].value("A.7 Trial is part of a Paediatric Investigation Plan") == (
        "JSON_ERROR_HERE"
    )
    assert records[3].value("A.8 EMA Decision number of Paediatric Investigation Plan") == (
        "JSON_ERROR_HERE"
    )
    assert normalise(raw(AVB)).study_id == AVB


def test_a_criterion_that_looks_like_an_item_of_section_p_stays_text() -> None:
    text = edit(
        download(), AB, "FR", "3. Patients with substance-induced dementia at screening visit;",
        "3. Patients with substance-induced dementia at screening visit;\n"
        "P. aeruginosa colonisation at screening: excluded",
    )  # fmt: skip
    fr = block_record(text, AB, "FR")
    assert "P. aeruginosa colonisation" in fr.value("E.4 Principal exclusion criteria")
    assert "P. aeruginosa colonisation at screening" not in fr.fields


def test_a_third_country_record_gets_its_code_from_the_link() -> None:
    text = edit(download(), AB, "HU", "/trial/2021-002179-21/HU/", "/trial/2021-002179-21/3rd/")
    assert parse_download(text).records[-1].country == "3RD"


def test_the_header_alone_is_a_download_without_records() -> None:
    header, _blocks = split_blocks(download())
    assert header.startswith(HEADER_START)
    assert parse_download(header).records == ()


@pytest.mark.parametrize(
    ("body", "incomplete"),
    [
        ("", True),
        ("   \n", True),
        ("<html><body>Service unavailable</body></html>", True),
        ("<!DOCTYPE html>\n<html><head><title>Request Rejected</title></head></html>", True),
        ("Internal error, please try later\n", False),
    ],
)
def test_a_body_that_is_not_the_download_is_told_apart(body: str, incomplete: bool) -> None:
    with pytest.raises(NotADownload) as caught:
        parse_download(body)
    assert caught.value.incomplete is incomplete


def test_a_download_cut_short_is_told_apart() -> None:
    text = download()
    cut_mid_line = text[: len(text) // 2]
    cut_at_a_line_end = text[: text.index("E.5 End points", text.index(f"/{AB}/HU/"))]
    header = split_blocks(text)[0]
    cut_in_a_summary = text[: text.index("Trial Status", text.index(f"/{AB}/FR/") - 300)]
    for body in (cut_mid_line, cut_at_a_line_end, header + "Summary\nEudraCT Number: 2021-0"):
        with pytest.raises(NotADownload, match=r"cut short|country link|text but no") as caught:
            parse_download(body)
        assert caught.value.incomplete
    with pytest.raises(NotADownload) as caught:
        parse_download(cut_in_a_summary)
    assert caught.value.incomplete


def test_the_summary_download_gives_each_countrys_status() -> None:
    text = (
        "Trials with a EudraCT protocol (2)\n\n"
        "EudraCT Number:          2015-001314-10\nSponsor Protocol Number: EFC14280\n"
        "Sponsor Name:            SANOFI-AVENTIS RECHERCHE ET DEVELOPPEMENT\n"
        "Full Title:              A Randomized, Double-blind, 52-week, Placebo Controlled "
        "Efficacy and Safety Study of Dupilumab\nStart Date:              2016-11-29\n"
        "Medical condition:       Bilateral nasal polyposis\n"
        "Disease:                 Version: 19.0, SOC Term: 10038738\n"
        "Population Age:          Adults, Elderly\nGender:                  Male, Female\n"
        "Trial protocol:          SE(Completed) PT(Completed) ES(Completed) BE(Completed) "
        "GB(GB - no longer in EU/EEA) Outside EU/EEA(Completed)\n"
        "Trial results:           View results\n"
        "Link:                    https://www.clinicaltrialsregister.eu/ctr-search/search?"
        "query=eudract_number:2015-001314-10\n\n"
        "EudraCT Number: 2021-002179-21\nSponsor Name: AB Science\n"
        "Trial protocol: FR(Ongoing) ES(Ongoing)\n"
    )
    page = parse_summary(text)
    assert page.total == 2
    first, second = page.hits
    assert first.eudract_number == "2015-001314-10"
    assert first.sponsor == "SANOFI-AVENTIS RECHERCHE ET DEVELOPPEMENT"
    assert first.title.endswith("Study of Dupilumab")
    assert first.conditions == "Bilateral nasal polyposis"
    assert first.results == "View results"
    assert first.statuses == {
        "SE": "Completed", "PT": "Completed", "ES": "Completed", "BE": "Completed",
        "GB": "GB - no longer in EU/EEA", "3RD": "Completed",
    }  # fmt: skip
    assert second.statuses == {"FR": "Ongoing", "ES": "Ongoing"}
    with pytest.raises(NotADownload):
        parse_summary("<html><body>Service unavailable</body></html>")


# --------------------------------------------------------------------------- the snapshot


def test_the_masitinib_trial_as_one_snapshot() -> None:
    snap = normalise(raw(AB))
    assert (snap.registry, snap.study_id) == ("euctr", AB)
    assert [(c.country, c.name, c.status, c.enrollment) for c in snap.countries] == [
        ("ES", "Spain", "Ongoing", 50), ("FR", "France", "Ongoing", 30),
        ("GR", "Greece", "Ongoing", 50), ("HU", "Hungary", "Ongoing", 30),
        ("PL", "Poland", "Ongoing", 50), ("PT", "Portugal", "Ongoing", 50),
    ]  # fmt: skip
    assert (snap.overall_status, snap.lifecycle) == ("Ongoing", "recruiting")
    assert snap.enrollment_count == 600  # F.4.2.2 of the Spanish record (ctrdata prefers ES)
    assert snap.official_title.startswith("A multicenter, randomized, double-blind")
    assert snap.brief_title.startswith("A phase 3 study to evaluate the safety")
    assert snap.acronym == "Alzheimer"
    assert snap.org_study_id == "AB21004"
    assert snap.secondary_ids == ()  # no record of this download names an NCT (no A.5 line)
    assert (snap.lead_sponsor, snap.collaborators) == ("ABScience", ())
    assert snap.conditions == ("Alzheimer's disease",)
    assert snap.phases == ("Phase 3",)
    (primary,) = snap.primary_outcomes
    assert primary.measure.startswith("The study has two following primary endpoints: • Absolute")
    assert primary.measure.endswith("ADAS-Cog score at week 24")
    assert primary.time_frame == "week 24"
    (secondary,) = snap.secondary_outcomes  # one field, one outcome: not split at its bullets
    assert secondary.measure.startswith("The key secondary endpoint consists of:")
    assert "Time to severe dementia (MMSE<10) The secondary endpoints" in secondary.measure
    assert secondary.time_frame == "week 24, week 48"
    # per country the later of authorisation and ethics opinion, the earliest of those (HU)
    assert snap.start_date.model_dump() == {"date": "2022-09-22", "type": ""}
    assert snap.completion_date.date == ""
    assert snap.has_results is False
    meta = record_meta(raw(AB))
    assert (meta.study_id, meta.registry_version, meta.last_update_posted) == (AB, None, "")


def test_the_gene_therapy_trial_as_one_snapshot() -> None:
    snap = normalise(raw(AVB))
    # Sweden is listed twice: the later record (9 in the whole trial, 2 in Sweden) stands
    assert [(c.country, c.status, c.enrollment) for c in snap.countries] == [
        ("ES", "Ongoing", 5),
        ("SE", "Ongoing", 2),
    ]
    assert snap.enrollment_count == 15  # the Spanish record's whole-trial number
    assert snap.phases == ("Phase 1", "Phase 2")
    assert snap.lead_sponsor == "AviadoBio Ltd"
    assert snap.conditions == ("Frontotemporal Dementia With Progranulin Mutations (FTD-GRN)",)
    assert snap.primary_outcomes[0].time_frame == "26 weeks and 5 years"
    assert snap.start_date.date == "2023-05-18"
    assert snap.lifecycle == "recruiting"


def test_a_country_ending_the_trial_changes_its_status_and_the_global_end_date_only() -> None:
    before = normalise(raw(AB))
    text = edit(download(), AB, "FR", "\nTrial Status: Ongoing", "\nTrial Status: Completed")
    text = edit(
        text, AB, "FR", "P. End of Trial Status: Ongoing",
        "P. End of Trial Status: Completed\nP. Date of the global end of the trial: 2025-06-30",
    )  # fmt: skip
    after = normalise(raw(AB, text))
    assert changed_fields(before, after) == {"countries", "overall_status", "completion_date"}
    assert {c.country: c.status for c in after.countries}["FR"] == "Completed"
    assert after.overall_status == "Completed in FR; Ongoing in ES, GR, HU, PL, PT"
    assert after.completion_date.model_dump() == {"date": "2025-06-30", "type": "ACTUAL"}
    assert after.lifecycle == "recruiting"  # still ongoing in five countries


def test_a_new_planned_number_changes_the_enrollment_only() -> None:
    before = normalise(raw(AB))
    text = edit_all(
        download(),
        "F.4.2.2 In the whole clinical trial: 600",
        "F.4.2.2 In the whole clinical trial: 550",
    )
    after = normalise(raw(AB, text))
    assert changed_fields(before, after) == {"enrollment_count"}
    assert after.enrollment_count == 550


def test_a_reworded_end_point_changes_the_primary_outcome_only() -> None:
    before = normalise(raw(AB))
    text = edit_all(
        download(),
        "Absolute change from baseline in ADAS-Cog score at week 24",
        "Absolute change from baseline in ADAS-Cog-13 score at week 24",
    )
    after = normalise(raw(AB, text))
    assert changed_fields(before, after) == {"primary_outcomes"}
    assert after.primary_outcomes[0].measure.endswith("ADAS-Cog-13 score at week 24")
    assert after.primary_outcomes[0].time_frame == "week 24"


def test_identifiers_of_every_country_record_are_kept_placeholders_dropped() -> None:
    text = edit(
        download(), AB, "FR", "A.4.1 Sponsor's protocol code number: AB21004\n",
        "A.4.1 Sponsor's protocol code number: AB21004\n"
        "A.5.1 ISRCTN (International Standard Randomised Controlled Trial) number: Nil known\n"
        "A.5.2 US NCT (ClinicalTrials.gov registry) number: NCT05564169\n"
        "A.5.4 Other Identifiers:\nIND 110011\nN/A\n",
    )  # fmt: skip
    text = edit(
        text, AB, "PT", "A.4.1 Sponsor's protocol code number: AB21004\n",
        "A.4.1 Sponsor's protocol code number: AB21004\n"
        "A.5.3 WHO Universal Trial Reference Number (UTRN): U1111-1272-2514\n",
    )  # fmt: skip
    assert normalise(raw(AB, text)).secondary_ids == (
        "IND 110011",
        "NCT05564169",
        "U1111-1272-2514",
    )


def test_the_preferred_country_speaks_for_the_trial() -> None:
    text = download()
    without_spain = text.replace(block(text, AB, "ES"), "")
    snap = normalise(raw(AB, without_spain))
    assert snap.lead_sponsor == "AB Science"  # France's record now (BE, ES, DE, FR …)
    assert [c.country for c in snap.countries] == ["FR", "GR", "HU", "PL", "PT"]
    only_gb_and_hu = text
    for country in ("ES", "FR", "GR", "PT"):
        only_gb_and_hu = only_gb_and_hu.replace(block(text, AB, country), "")
    only_gb_and_hu = only_gb_and_hu.replace(
        "/trial/2021-002179-21/PL/", "/trial/2021-002179-21/GB/"
    )
    only_gb_and_hu = edit(only_gb_and_hu, AB, "HU", "B.1.1 Name of Sponsor: AB Science",
                          "B.1.1 Name of Sponsor: AB Science SA")  # fmt: skip
    snap = normalise(raw(AB, only_gb_and_hu))
    assert [c.country for c in snap.countries] == ["GB", "HU"]
    assert snap.lead_sponsor == "AB Science SA"  # Hungary before the frozen GB record


def test_planned_enrollment_falls_back_to_the_eea_then_the_member_states() -> None:
    spain = f"/{AB}/ES/"
    junk = edit(download(), AB, "ES", "F.4.2.2 In the whole clinical trial: 600",
                "F.4.2.2 In the whole clinical trial: JSON_ERROR_HERE")  # fmt: skip
    assert normalise(raw(AB, junk)).enrollment_count == 550  # ES's F.4.2.1
    none = edit(junk, AB, "ES", "F.4.2.1 In the EEA: 550\n", "")
    none = edit(none, AB, "ES", "F.4.2.2 In the whole clinical trial: JSON_ERROR_HERE\n", "")
    assert spain in none
    # F.1's age-band counts are never added (F.1.1 is their subtotal, rfhb/ctrdata#62)
    assert normalise(raw(AB, none)).enrollment_count == 50 + 30 + 50 + 30 + 50 + 50


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["Ongoing", "Ongoing"], "recruiting"),
        (["Completed", "Restarted"], "recruiting"),
        (["Completed", "Temporarily Halted"], "suspended"),
        (["Suspended by CA", "Prematurely Ended"], "suspended"),
        (["Completed", "Completed", "GB - no longer in EU/EEA"], "completed"),
        (["Completed", "Prematurely Ended"], "completed"),
        (["Prematurely Ended", "Prematurely Ended"], "terminated"),
        (["Not Authorised", "Prohibited by CA"], "withdrawn"),
        (["Completed", "Not Authorised"], "completed"),
        (["Trial now transitioned", "Completed"], "unknown"),
        (["GB - no longer in EU/EEA"], "unknown"),
        ([""], "unknown"),
    ],
)
def test_the_lifecycle_of_a_trial_from_its_countries(statuses: list[str], expected: str) -> None:
    assert trial_lifecycle(statuses) == expected


def test_the_lifecycle_reads_the_derived_status_text_and_single_words() -> None:
    assert lifecycle("Completed in FR; Ongoing in ES, GR, HU, PL, PT") == "recruiting"
    assert lifecycle("Completed in 3RD, FR; Prematurely Ended in ES") == "completed"
    assert lifecycle("Prematurely Ended") == "terminated"
    assert lifecycle("Temporarily Halted") == "suspended"
    assert INFO.lifecycle("Ongoing") == "recruiting"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (["not", "a", "record"], "expected an EUCTR record"),
        ({"text": "x"}, "eudract_number: expected a EudraCT number"),
        ({"eudract_number": "2021-002179-2", "text": "x"}, "eudract_number"),
        ({"eudract_number": AB, "text": None}, "text: expected the register's text"),
        ({"eudract_number": AB, "text": "<html><body>busy</body></html>"}, "text: a markup page"),
        ({"eudract_number": "2014-003140-12"}, "text: expected"),
    ],
)
def test_a_record_that_is_not_one_is_refused_naming_what(record: Any, message: str) -> None:
    with pytest.raises(RecordInvalid, match=message):
        normalise(record)


def test_a_download_without_that_trial_is_refused() -> None:
    with pytest.raises(RecordInvalid, match="text: no country record of 2014-003140-12"):
        normalise(raw("2014-003140-12"))
    header = split_blocks(download())[0]
    with pytest.raises(RecordInvalid, match="no country record"):
        normalise(raw(AB, header))


# --------------------------------------------------------------------- the registry-aware diff


def diff_of(text: str) -> list[Any]:
    from service.diff import diff

    return [change.to_json() for change in diff(normalise(raw(AB)), normalise(raw(AB, text)))]


def test_diff_a_country_completing_is_its_status_change() -> None:
    text = edit(
        download(), AB, "FR", "P. End of Trial Status: Ongoing",
        "P. End of Trial Status: Completed\nP. Date of the global end of the trial: 2025-06-30",
    )  # fmt: skip
    changes = {c["kind"]: c for c in diff_of(text)}
    assert set(changes) == {"status_changed", "date_changed"}
    status = changes["status_changed"]
    assert status["field"] == "countries.FR.end_of_trial_status"
    assert (status["old"], status["new"]) == ("Ongoing", "Completed")
    assert status["summary"] == "France: Ongoing → Completed"
    assert changes["date_changed"]["field"] == "p_date_of_the_global_end_of_the_trial"


def test_diff_a_new_planned_number_is_an_enrollment_change() -> None:
    text = edit_all(
        download(), "In the whole clinical trial: 600", "In the whole clinical trial: 550"
    )
    (change,) = diff_of(text)
    assert change["kind"] == "enrollment_changed"
    assert change["field"] == "f422_in_the_whole_clinical_trial"
    assert (change["old"], change["new"]) == (600, 550)
    one_country = edit(download(), AB, "FR", "F.4.1 In the member state: 30",
                       "F.4.1 In the member state: 40")  # fmt: skip
    (change,) = diff_of(one_country)
    assert (change["kind"], change["field"]) == (
        "enrollment_changed",
        "countries.FR.f41_in_the_member_state",
    )


def test_diff_a_reworded_end_point_is_a_modified_primary_outcome() -> None:
    text = edit_all(download(), "ADAS-Cog score at week 24", "ADAS-Cog-13 score at week 24")
    (change,) = diff_of(text)
    assert change["kind"] == "outcome_modified"
    assert change["outcome_type"] == "primary"
    assert change["field"] == "e51_primary_end_points[0]"


# --------------------------------------------------------------------------- ids and fields


@pytest.mark.parametrize(
    "typed",
    [
        "2014-003140-12", "EUCTR2014-003140-12", "2014-003140-12-NL", "2014-003140-12-3RD",
        "2014-003140-12-3rd", "euctr2014-003140-12-nl", " 2014-003140-12 ",
        "EUCTR2014-003140-12-GB",
    ],
)  # fmt: skip
def test_accepted_forms_give_the_bare_number(typed: str) -> None:
    assert parse_id(typed) == "2014-003140-12"
    assert INFO.parse_id(typed) == "2014-003140-12"


@pytest.mark.parametrize(
    "typed",
    [
        "2021-002179-2", "2014-003140-123", "2014-03140-12", "2023-505613-24-00",
        "CTIS2023-505613-24-00", "2014-003140-12-XX", "2014-003140-12-", "EUCTR 2014-003140-12",
        "EU2014-003140-12", "2014_003140_12", "NCT05605665", "２０１４-003140-12", "",
    ],
)  # fmt: skip
def test_other_forms_are_refused(typed: str) -> None:
    assert parse_id(typed) is None


def test_the_registry_as_the_service_knows_it() -> None:
    assert (INFO.key, INFO.name) == ("euctr", "EU Clinical Trials Register")
    assert "EUCTR2014-003140-12" in INFO.id_forms and "-3RD" in INFO.id_forms
    assert INFO.study_url(AB) == (
        "https://www.clinicaltrialsregister.eu/ctr-search/search?query=2021-002179-21"
    )
    assert "overall_status" not in INFO.paths  # derived from the countries, reported per country
    assert INFO.countries_path == "countries"
    assert dict(INFO.country_keys) == {
        "status": "end_of_trial_status",
        "enrollment": "f41_in_the_member_state",
    }
    # the paths are ctrdata's keys of the register's labels
    assert INFO.paths["enrollment_count"] == ctrdata_key("F.4.2.2 In the whole clinical trial")
    assert INFO.outcome_paths["primary"] == ctrdata_key("E.5.1 Primary end point(s)")
    assert INFO.paths["completion_date"] == ctrdata_key("P. Date of the global end of the trial")
    assert INFO.paths["lead_sponsor"] == "b1_sponsor." + ctrdata_key("B.1.1 Name of Sponsor")
    assert INFO.labels["enrollment_count"] == "Planned enrollment"


# --------------------------------------------------------------------------- the client


def fast_settings(url: str, **extra: Any) -> EuctrSettings:
    values: dict[str, Any] = {
        "url": url,
        "requests_per_second": 100,
        "retry_initial_seconds": 0,
        "retry_max_seconds": 0,
        "max_attempts": 3,
        "deadline_seconds": 20,
        "timeout_seconds": 10,
    }
    return EuctrSettings(**(values | extra))


@pytest.fixture
def client(eu_emulator: Any) -> EuctrClient:
    eu_emulator.reset_stats()
    return build_client(fast_settings(eu_emulator.url("euctr")))


def euctr_requests(eu_emulator: Any) -> int:
    return int(eu_emulator.stats()["by_registry"].get("euctr", 0))


def test_fetch_is_the_whole_download_of_the_trial(client: EuctrClient, eu_emulator: Any) -> None:
    record = client.fetch(AB)
    assert record["eudract_number"] == AB
    assert record["text"].startswith(HEADER_START)
    snap = normalise(record)
    assert [c.country for c in snap.countries] == ["ES", "FR", "GR", "HU", "PL", "PT"]
    assert snap.enrollment_count == 600
    assert client.requests == euctr_requests(eu_emulator) == 1
    assert client.fetch("euctr2021-002179-21-fr")["eudract_number"] == AB


def test_an_unknown_number_is_not_found(client: EuctrClient, eu_emulator: Any) -> None:
    with pytest.raises(RecordNotFound, match="2014-003140-12"):
        client.fetch("2014-003140-12")
    assert client.requests == euctr_requests(eu_emulator) == 1  # the header alone: no retry


@pytest.mark.parametrize("kind", ["html", "500", "429", "truncated"])
def test_passing_faults_are_retried_then_the_trial_is_read(
    client: EuctrClient, eu_emulator: Any, kind: str
) -> None:
    eu_emulator.fault(FULL, kind, count=2)
    assert normalise(client.fetch(AB)).study_id == AB
    assert client.requests == euctr_requests(eu_emulator) == 3


def test_a_register_that_keeps_sending_html_is_one_line_record_invalid(
    client: EuctrClient, eu_emulator: Any
) -> None:
    eu_emulator.fault(FULL, "html", count=10)
    with pytest.raises(RecordInvalid) as caught:
        client.fetch(AB)
    assert "HTML" in str(caught.value) and "\n" not in str(caught.value)
    assert client.requests == euctr_requests(eu_emulator) == 3  # max_attempts


def test_the_feed_names_a_trial_the_register_updated_today(
    client: EuctrClient, eu_emulator: Any
) -> None:
    today = date.today().isoformat()
    edited = edit(
        download(), AB, "FR", "P. End of Trial Status: Ongoing",
        "P. End of Trial Status: Completed\nP. Date of the global end of the trial: 2025-06-30",
    )  # fmt: skip
    eu_emulator.publish("euctr", block(edited, AB, "FR"), today)
    eu_emulator.reset_stats()
    before = datetime.now(UTC)
    signal = client.signal(before - timedelta(days=1))
    assert dict(signal.stamps) == {AB: today}  # the reference trials are older than 7 days
    assert signal.precision == "day"
    assert signal.covers_from is not None
    assert abs(signal.covers_from - (before - timedelta(days=7))) < timedelta(minutes=1)
    assert client.requests == euctr_requests(eu_emulator) == 1
    snap = normalise(client.fetch(AB))
    assert {c.country: c.status for c in snap.countries}["FR"] == "Completed"


def test_the_search_returns_summary_blocks(client: EuctrClient) -> None:
    page = client.search("masitinib Alzheimer")
    assert [hit.eudract_number for hit in page.hits] == [AB]
    (hit,) = page.hits
    assert hit.sponsor == "ABScience"  # the first record's (ES) sponsor
    assert hit.title.startswith("A multicenter, randomized")
    assert hit.statuses == {c: "Ongoing" for c in ("ES", "FR", "GR", "HU", "PL", "PT")}
    assert page.total == 1
    assert client.search("no such words anywhere").hits == ()


def test_feed_items_are_read_without_entities() -> None:
    rss = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>EUCTR</title>'
        b"<item><title>2021-002179-21</title><link>https://www.clinicaltrialsregister.eu/"
        b"ctr-search/search?query=eudract_number:2021-002179-21</link>"
        b"<pubDate>Tue, 14 Oct 2025 00:00:00 +0200</pubDate></item>"
        b"<item><title>2021-002179-21</title><link>x?query=eudract_number:2021-002179-21</link>"
        b"<pubDate>Mon, 13 Oct 2025 09:00:00 GMT</pubDate></item>"
        b"<item><title>A trial</title><link>x?query=eudract_number:2015-001314-10</link></item>"
        b"<item><title>no number here</title></item></channel></rss>"
    )
    stamps = feed_stamps(rss, today=date(2025, 10, 15))
    assert stamps == {AB: "2025-10-14", "2015-001314-10": "2025-10-15"}
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;">]><rss><channel><title>&b;</title></channel></rss>'
    )
    with pytest.raises(RecordInvalid, match="DTD or entities"):
        feed_stamps(bomb, today=date(2025, 10, 15))
    with pytest.raises(RecordInvalid, match="not XML"):
        feed_stamps(b"<rss><channel>", today=date(2025, 10, 15))
    with pytest.raises(RecordInvalid, match="not RSS"):
        feed_stamps(b"<html><body/></html>", today=date(2025, 10, 15))


# A register answering scripted bodies (the emulator cuts bodies only at the transport, which
# httpx sees; these are cut with a consistent length, as a proxy ending the answer early would).


@dataclass
class Scripted:
    url: str
    bodies: list[str]
    served: list[str]


@pytest.fixture
def scripted() -> Iterator[Callable[[list[str]], Scripted]]:
    servers: list[ThreadingHTTPServer] = []

    def start(bodies: list[str]) -> Scripted:
        script = Scripted("", list(bodies), [])

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = script.bodies.pop(0) if len(script.bodies) > 1 else script.bodies[0]
                script.served.append(self.path)
                data = body.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = _serve(Handler)
        servers.append(server)
        script.url = f"http://127.0.0.1:{server.server_address[1]}"
        return script

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _serve(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_download_cut_short_is_asked_again(scripted: Callable[[list[str]], Scripted]) -> None:
    text = download()
    cut = text[: text.index("E.5 End points", text.index(f"/{AB}/HU/"))]
    register = scripted([cut, text])
    client = build_client(fast_settings(register.url))
    assert [c.country for c in normalise(client.fetch(AB)).countries][-1] == "PT"
    assert client.requests == len(register.served) == 2
    always_cut = scripted([cut])
    client = build_client(fast_settings(always_cut.url))
    with pytest.raises(RecordInvalid, match=f"download of {AB}: a download cut short"):
        client.fetch(AB)
    assert client.requests == 3


def test_a_download_of_other_trials_only_is_invalid(
    scripted: Callable[[list[str]], Scripted],
) -> None:
    text = download()
    header, blocks = split_blocks(text)
    only_avb = header + "".join(b for b in blocks if f"/trial/{AVB}/" in b)
    register = scripted([only_avb])
    client = build_client(fast_settings(register.url))
    with pytest.raises(RecordInvalid, match=f"download of {AB} holds other trials \\({AVB}\\)"):
        client.fetch(AB)
    both = scripted([text])
    record = build_client(fast_settings(both.url)).fetch(AVB)
    assert AB not in record["text"] and record["text"].count("Summary\nEudraCT Number:") == 3


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Chain:
    root: Path
    intermediate: Path
    leaf: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _sign(d: Path, csr: str, issuer: str, extensions: str, out: str) -> None:
    ca = ("-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key", "-CAcreateserial")
    _openssl(
        "x509", "-req", "-in", csr, *ca, "-days", "2", "-extfile", extensions, "-out", out, cwd=d
    )


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    """A root, an intermediate it signed and a leaf for 127.0.0.1 the intermediate signed."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not available to make test certificates")
    d = tmp_path_factory.mktemp("euctr-chain")
    (d / "ca.ext").write_text(
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n"
    )
    (d / "leaf.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n"
    )
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=Test Root", "-keyout", "root.key",
             "-out", "root.pem", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)  # fmt: skip
    _openssl("req", "-new", *ec, "-subj", "/CN=Test Intermediate", "-keyout", "int.key",
             "-out", "int.csr", cwd=d)  # fmt: skip
    _sign(d, "int.csr", "root", "ca.ext", "int.pem")
    _openssl("req", "-new", *ec, "-subj", "/CN=127.0.0.1", "-keyout", "leaf.key",
             "-out", "leaf.csr", cwd=d)  # fmt: skip
    _sign(d, "leaf.csr", "int", "leaf.ext", "leaf.pem")
    return Chain(d / "root.pem", d / "int.pem", d / "leaf.pem", d / "leaf.key")


@pytest.fixture
def incomplete_chain_register(chain: Chain) -> Iterator[str]:
    """An https register that, like clinicaltrialsregister.eu, sends its certificate alone."""
    body = download().encode("utf-8")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(chain.leaf, chain.key)  # the leaf only: the intermediate is not sent
    server = _serve(Handler, tls)
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _get(url: str, context: ssl.SSLContext) -> int:
    with httpx.Client(verify=context, timeout=10) as http:
        return http.get(url + "/ctr-search/rest/download/full?query=x").status_code


def test_the_shipped_intermediate_completes_the_chain(
    chain: Chain, incomplete_chain_register: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(chain.root))  # the root is a trusted system root
    shipped = tmp_path / "certs"
    shipped.mkdir()
    with pytest.raises(httpx.ConnectError, match=r"(?i)certificate"):
        _get(incomplete_chain_register, euctr_tls.register_tls_context(shipped))  # none shipped
    shutil.copy(chain.intermediate, shipped / "test-intermediate.pem")
    context = euctr_tls.register_tls_context(shipped)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert _get(incomplete_chain_register, context) == 200
    assert context.cert_store_stats()["x509_ca"] == 2  # the root and the intermediate


def test_a_shipped_intermediate_is_no_trust_anchor_of_its_own(
    chain: Chain, incomplete_chain_register: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(chain.leaf))  # some other trust store: no test root
    shipped = tmp_path / "certs"
    shipped.mkdir()
    shutil.copy(chain.intermediate, shipped / "test-intermediate.pem")
    with pytest.raises(httpx.ConnectError, match=r"(?i)certificate"):
        _get(incomplete_chain_register, euctr_tls.register_tls_context(shipped))


def test_build_client_trusts_the_shipped_certificates_over_https(
    chain: Chain, incomplete_chain_register: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(chain.root))
    shipped = tmp_path / "certs"
    shipped.mkdir()
    shutil.copy(chain.intermediate, shipped / "test-intermediate.pem")
    monkeypatch.setattr(euctr_tls, "CERTS", shipped)
    client = build_client(fast_settings(incomplete_chain_register, max_attempts=1))
    assert normalise(client.fetch(AB)).study_id == AB
    monkeypatch.setattr(euctr_tls, "CERTS", tmp_path / "none")
    client = build_client(fast_settings(incomplete_chain_register, max_attempts=1))
    with pytest.raises(RegistryError, match=r"(?i)certificate"):
        client.fetch(AB)


def test_the_package_ships_no_invented_certificate() -> None:
    # The register's missing intermediate was not found in any stored public source; only a
    # real copy of it may go in certs/ (then: a PEM whose subject is the issuer of the
    # register's certificate). Until then the context trusts the system roots alone.
    for pem in euctr_tls.shipped_certificates():
        assert pem.startswith("-----BEGIN CERTIFICATE-----")
