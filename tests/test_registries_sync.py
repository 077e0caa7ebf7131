"""End to end: the four registries in one store, through the CLI, over real HTTP.

ClinicalTrials.gov from its emulator; EUCTR, CTIS and ISRCTN from theirs, serving the real
records of tests/data/reference/ and publishing them edited the way those registries change a
record (an amendment in every EUCTR country record, one country's end of trial, a CTIS status
code and end point, an ISRCTN target and outcome). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import EU_REFERENCE, TESTS_DATA
from ctgov_emulator import Emulator
from eu_registries_emulator import EuEmulator, euctr_key, xml_of

NCT = "NCT00973089"
EUCTR, CTIS, ISRCTN = "2021-002179-21", "2023-505613-24-00", "ISRCTN12949496"
WATCHED = [NCT, EUCTR, CTIS, ISRCTN]
TODAY = datetime.now(UTC).date().isoformat()
FAST = {
    "requests_per_second": 100.0,
    "retry_initial_seconds": 0.0,
    "retry_max_seconds": 0.0,
    "max_attempts": 3,
    "timeout_seconds": 5,
}


def ctgov_record() -> dict[str, Any]:
    """A ClinicalTrials.gov record that names its EU registration, as many do."""
    study = json.loads((TESTS_DATA / "records" / f"{NCT}.json").read_text())
    study = study.get("study", study)
    ids = study["protocolSection"]["identificationModule"]
    ids["secondaryIdInfos"] = [{"id": EUCTR, "type": "EUDRACT_NUMBER"}]
    return study


@pytest.fixture
def ctgov(emulator_factory: Callable[..., Emulator]) -> Emulator:
    emulator = emulator_factory()
    emulator.publish(ctgov_record(), date="2025-06-01")
    return emulator


@pytest.fixture
def environment(
    ctgov: Emulator, eu_emulator: EuEmulator, database_url: str, tmp_path: Path
) -> dict[str, str]:
    config = tmp_path / "trialwatch.toml"
    config.write_text(
        twconfig.table("[ctgov]", history=False, incremental=False, **FAST)
        + "".join(twconfig.table(f"[{key}]", **FAST) for key in ("euctr", "ctis", "isrctn"))
        + twconfig.table("[findings]", enabled=False)
    )
    return {
        "TRIALWATCH_CONFIG": str(config),
        "TRIALWATCH_DATABASE_URL": database_url,
        "TRIALWATCH_CTGOV_API_URL": ctgov.api_url,
        "TRIALWATCH_CTGOV_HISTORY_URL": ctgov.history_url,
        **eu_emulator.environment(),
    }


@pytest.fixture
def trialwatch(environment: dict[str, str]) -> twconfig.Run:
    return twconfig.runner(environment)


# ---- the registries' own edits, made to their real records --------------------------------


def euctr_country(country: str) -> str:
    text = (EU_REFERENCE / "euctr" / "ctrdata_test_error_trials_euctr.txt").read_text()
    for block in re.split(r"\n(?=Summary\nEudraCT Number:)", "\n" + text):
        block = block.strip("\n")
        if block.startswith("Summary") and euctr_key(block) == (EUCTR, country):
            return block + "\n"
    raise AssertionError(f"no EUCTR record {EUCTR}/{country}")


def amended(text: str) -> str:
    """A substantial amendment as the register shows it in a country record."""
    return text.replace(
        "F.4.2.2 In the whole clinical trial: 600", "F.4.2.2 In the whole clinical trial: 550"
    ).replace(
        "The study has two following primary endpoints:", "The study has one primary endpoint:"
    )


def ended(text: str) -> str:
    return text.replace("P. End of Trial Status: Ongoing", "P. End of Trial Status: Completed")


def ctis_record(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    record = json.loads((EU_REFERENCE / "ctis" / f"CTIS_{CTIS}.json").read_text())
    edit(record)
    return record


def ctis_ended(record: dict[str, Any]) -> None:
    record["ctPublicStatusCode"] = 8
    part1 = record["authorizedApplication"]["authorizedPartI"]
    point = part1["trialDetails"]["trialInformation"]["endPoint"]["primaryEndPoints"][0]
    point["endPoint"] += " and maximum concentration (Cmax)"


def isrctn_xml(edit: Callable[[dict[str, Any]], None]) -> str:
    trial = json.loads((EU_REFERENCE / "isrctn" / "ISRCTN_12949496.json").read_text())
    trial = {k: v for k, v in trial.items() if k not in ("ctrname", "record_last_import")}
    trial["isrctn"] = str(trial["isrctn"]).zfill(8)
    edit(trial)
    return ET.tostring(xml_of("trial", trial), encoding="unicode")


def isrctn_amended(trial: dict[str, Any]) -> None:
    trial["participants"]["targetEnrolment"] = "30"
    trial["trialDescription"]["primaryOutcome"] = "Time on inhaled nitric oxide therapy"


def publish_amendments(eu: EuEmulator) -> None:
    for country in ("ES", "GR", "PL", "PT", "HU"):
        eu.publish("euctr", amended(euctr_country(country)), TODAY)
    eu.publish("euctr", ended(amended(euctr_country("FR"))), TODAY)
    eu.publish("ctis", ctis_record(ctis_ended), TODAY)
    eu.publish("isrctn", isrctn_xml(isrctn_amended), TODAY)


def by_study(changes: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for change in changes:
        found.setdefault((change["registry"], change["study_id"]), []).append(change)
    return found


def synced(trialwatch: twconfig.Run, *args: str) -> dict[str, Any]:
    result = trialwatch("sync", "--json", *args)
    report = result.json()
    assert result.exit_code == (1 if report["failed"] else 0), result.stderr
    return report  # type: ignore[no-any-return]


# ---- the tests ------------------------------------------------------------------------------


def test_one_record_of_each_registry_is_watched_synced_and_linked(
    trialwatch: twconfig.Run, environment: dict[str, str]
) -> None:
    added = trialwatch("watch", "add", "nct00973089", f"EUCTR{EUCTR}-FR", f"ctis{CTIS}", ISRCTN)
    assert added.exit_code == 0, added.stderr
    report = synced(trialwatch)
    assert (report["new"], report["failed"]) == (4, 0), report["errors"]
    assert {(c["registry"], c["kind"]) for c in report["changes"]} == {
        ("ctgov", "record_added"),
        ("euctr", "record_added"),
        ("ctis", "record_added"),
        ("isrctn", "record_added"),
    }
    listed = {
        (w["registry"], w["study_id"]): w for w in trialwatch("watch", "list", "--json").json()
    }
    assert set(listed) == {("ctgov", NCT), ("euctr", EUCTR), ("ctis", CTIS), ("isrctn", ISRCTN)}

    def links(key: tuple[str, str]) -> set[tuple[str, str]]:
        return {(link["registry"], link["study_id"]) for link in listed[key]["linked"]}

    assert links(("ctgov", NCT)) == {("euctr", EUCTR)}
    assert links(("ctis", CTIS)) == {("ctgov", "NCT04665037"), ("euctr", "2019-003842-34")}
    assert ("euctr", "2014-002988-16") in links(("isrctn", ISRCTN))
    # the registry's own status words beside one lifecycle for all
    assert (listed[("ctis", CTIS)]["overall_status"], listed[("ctis", CTIS)]["lifecycle"]) == (
        "Ongoing, recruiting",
        "recruiting",
    )
    assert listed[("isrctn", ISRCTN)]["overall_status"] == "Stopped"
    assert listed[("euctr", EUCTR)]["lifecycle"] == "recruiting"
    # on a terminal: each record's registry and the registrations it names
    table = twconfig.runner({**environment, "COLUMNS": "160"})("watch", "list").stdout
    (isrctn_row,) = [line for line in table.splitlines() if line.startswith(ISRCTN)]
    assert "isrctn" in isrctn_row.split() and "2014-002988-16" in isrctn_row


def test_each_registrys_edits_are_its_changes_in_its_own_paths(
    trialwatch: twconfig.Run, eu_emulator: EuEmulator
) -> None:
    trialwatch("watch", "add", *WATCHED)
    synced(trialwatch)
    publish_amendments(eu_emulator)
    report = synced(trialwatch)
    assert report["failed"] == 0, report["errors"]
    found = by_study(report["changes"])
    assert ("ctgov", NCT) not in found  # nothing published there

    def kinds(key: tuple[str, str]) -> dict[tuple[str, str | None], dict[str, Any]]:
        return {(c["kind"], c.get("outcome_type")): c for c in found[key]}

    euctr = kinds(("euctr", EUCTR))
    status = euctr[("status_changed", None)]
    assert (status["field"], status["summary"]) == (
        "countries.FR.end_of_trial_status",
        "France: Ongoing → Completed",
    )
    enrollment = euctr[("enrollment_changed", None)]
    assert (enrollment["field"], enrollment["old"], enrollment["new"]) == (
        "f422_in_the_whole_clinical_trial",
        600,
        550,
    )
    outcome = euctr[("outcome_modified", "primary")]
    assert outcome["field"] == "e51_primary_end_points[0]" and outcome["severity"] == "high"

    ctis = kinds(("ctis", CTIS))
    assert ctis[("status_changed", None)]["field"] == "ctPublicStatusCode"
    assert ctis[("status_changed", None)]["new"] == "Ended"
    assert ctis[("outcome_modified", "primary")]["field"].endswith("primaryEndPoints[0]")

    isrctn = kinds(("isrctn", ISRCTN))
    assert isrctn[("enrollment_changed", None)]["field"] == "participants.targetEnrolment"
    assert isrctn[("outcome_modified", "primary")]["new"]["measure"] == (
        "Time on inhaled nitric oxide therapy"
    )
    # trialwatch's own snapshots are these registries' history: the store's sequence
    history = trialwatch("history", f"{EUCTR}-3RD", "--json").json()
    assert [v["version"] for v in history] == [1, 2]
    stored = trialwatch("changes", "--study", CTIS, "--json").json()
    assert {
        (c["from_version"], c["to_version"]) for c in stored if c["kind"] != "record_added"
    } == {(1, 2)}


def test_a_quiet_cycle_asks_each_registry_once_and_refetches_only_todays_day_precise_names(
    trialwatch: twconfig.Run, eu_emulator: EuEmulator
) -> None:
    trialwatch("watch", "add", *WATCHED)
    synced(trialwatch)
    publish_amendments(eu_emulator)
    synced(trialwatch)
    eu_emulator.reset_stats()
    report = synced(trialwatch)
    assert (report["changed"], report["failed"]) == (0, 0)
    asked = eu_emulator.stats()["by_registry"]
    # the feed and the search sorted by lastUpdated say only "today", the day each record
    # was last fetched: fetched again; ISRCTN's lastEdited has the time: not fetched again
    assert asked == {"euctr": 2, "ctis": 2, "isrctn": 1}
    assert report["cycle"]["registries"]["isrctn"]["mode"] == "signal"


def test_a_record_the_signal_does_not_name_is_not_fetched(
    trialwatch: twconfig.Run, eu_emulator: EuEmulator
) -> None:
    trialwatch("watch", "add", ISRCTN, CTIS)
    synced(trialwatch)
    eu_emulator.reset_stats()
    report = synced(trialwatch)
    # the reference records were last updated long ago: neither signal names them
    assert eu_emulator.stats()["by_registry"] == {"ctis": 1, "isrctn": 1}
    assert (report["unchanged"], report["requests"]) == (2, 2)


def test_when_a_signal_fails_every_record_of_that_registry_is_fetched(
    trialwatch: twconfig.Run, eu_emulator: EuEmulator
) -> None:
    trialwatch("watch", "add", ISRCTN, CTIS)
    synced(trialwatch)
    eu_emulator.fault("/ctis-public-api/search", "500", count=3)
    eu_emulator.reset_stats()
    report = synced(trialwatch)
    assert report["failed"] == 0
    assert any("change signal unavailable" in w["warning"] for w in report["warnings"])
    paths = eu_emulator.stats()["paths"]
    assert f"/ctis-public-api/retrieve/{CTIS}" in paths


def test_the_ctis_firewalls_refusals_are_waited_out(
    trialwatch: twconfig.Run, eu_emulator: EuEmulator
) -> None:
    trialwatch("watch", "add", CTIS)
    eu_emulator.fault("/ctis-public-api/retrieve", "403", count=2)
    report = synced(trialwatch)
    assert (report["new"], report["failed"]) == (1, 0)


def test_a_record_gone_from_a_registry_is_record_unavailable_and_an_unknown_one_fails(
    trialwatch: twconfig.Run, eu_emulator: EuEmulator
) -> None:
    trialwatch("watch", "add", EUCTR, "2099-000001-01")
    first = synced(trialwatch)
    assert [(e["study_id"], e["reason"]) for e in first["errors"]] == [
        ("2099-000001-01", "not_found")
    ]
    eu_emulator.gone("euctr", EUCTR)
    report = synced(trialwatch, EUCTR)
    (change,) = report["changes"]
    assert (change["registry"], change["kind"], change["severity"]) == (
        "euctr",
        "record_unavailable",
        "high",
    )


def test_an_html_page_for_a_download_fails_that_record_alone(
    trialwatch: twconfig.Run, eu_emulator: EuEmulator
) -> None:
    trialwatch("watch", "add", EUCTR, ISRCTN)
    eu_emulator.fault("/euctr/ctr-search/rest/download/full", "html", count=10)
    report = synced(trialwatch)
    assert (report["new"], report["failed"]) == (1, 1)
    (error,) = report["errors"]
    assert error["study_id"] == EUCTR and "HTML page" in error["error"]
    assert "\n" not in error["error"]


@pytest.mark.parametrize(
    "bad", ["2021-002179-2", "ISRCTN1294949", "2023-505613-24-0", "EUCTR2021-002179-21-XYZW"]
)
def test_a_bad_id_of_any_registry_is_one_line_naming_the_forms(
    trialwatch: twconfig.Run, bad: str
) -> None:
    result = trialwatch("watch", "add", NCT, bad)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    forms = ("2014-003140-12", "2023-505613-24-00", "ISRCTN12345678")
    assert f"{bad!r} is not a" in line and any(form in line for form in forms)
    assert trialwatch("watch", "list", "--json").json() == []


def test_the_record_page_of_each_registry(
    trialwatch: twconfig.Run, tmp_path: Path, eu_emulator: EuEmulator
) -> None:
    trialwatch("watch", "add", CTIS, EUCTR)
    synced(trialwatch)
    publish_amendments(eu_emulator)
    synced(trialwatch)
    out = tmp_path / "report.html"
    assert trialwatch("report", CTIS, EUCTR, "--out", str(out)).exit_code == 0
    page = out.read_text()
    assert "https://euclinicaltrials.eu/ctis-public/view/2023-505613-24-00" in page
    assert "France: Ongoing → Completed" in page


def test_the_web_pages_of_each_registrys_records(
    trialwatch: twconfig.Run, environment: dict[str, str], eu_emulator: EuEmulator
) -> None:
    from starlette.testclient import TestClient

    from service.app import build_app
    from service.settings import load_settings
    from service.web.app import create_app

    trialwatch("watch", "add", CTIS, EUCTR, ISRCTN)
    synced(trialwatch)
    publish_amendments(eu_emulator)
    synced(trialwatch)
    app = build_app(load_settings(environ=environment))
    try:
        with TestClient(create_app(app), client=("127.0.0.1", 1234)) as client:
            ctis = client.get(f"/studies/ctis{CTIS.lower()}")
            euctr = client.get(f"/studies/EUCTR{EUCTR}-FR")
            listed = client.get("/").text
    finally:
        app.close()
    assert ctis.status_code == 200 and "Ended" in ctis.text
    assert f'href="https://euclinicaltrials.eu/ctis-public/view/{CTIS}"' in ctis.text
    assert euctr.status_code == 200 and "France: Ongoing → Completed" in euctr.text
    assert all(study_id in listed for study_id in (CTIS, EUCTR, ISRCTN))


def test_a_quiet_weeks_signal_is_asked_from_the_last_good_cycle_not_the_oldest_fetch(
    trialwatch: twconfig.Run, environment: dict[str, str], eu_emulator: EuEmulator
) -> None:
    from sqlalchemy import text

    from service.store import Store

    trialwatch("watch", "add", ISRCTN)
    synced(trialwatch)
    store = Store.open(environment["TRIALWATCH_DATABASE_URL"])
    six_days_ago = datetime.now(UTC) - timedelta(days=6)
    try:  # fetched six days ago: the weekly refetch is not due yet
        with store.engine.begin() as db:
            db.execute(text("UPDATE records SET fetched_at = :t"), {"t": six_days_ago})
    finally:
        store.close()

    def asked_since() -> str:
        eu_emulator.reset_stats()
        synced(trialwatch)
        (query,) = [p for p in eu_emulator.stats()["paths"] if "lastEdited" in p]
        return re.search(r"GE(?:\+|%20)(\d{4}-\d{2}-\d{2})", query).group(1)  # type: ignore[union-attr]

    assert asked_since() == six_days_ago.date().isoformat()  # no good cycle yet
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert asked_since() == yesterday  # that cycle vouched for the week before it


def test_a_record_watched_again_is_fetched_afresh(
    trialwatch: twconfig.Run, eu_emulator: EuEmulator
) -> None:
    trialwatch("watch", "add", CTIS)
    synced(trialwatch)
    trialwatch("watch", "remove", CTIS)
    trialwatch("watch", "add", CTIS)  # no change signal saw it meanwhile
    eu_emulator.reset_stats()
    synced(trialwatch)
    assert f"/ctis-public-api/retrieve/{CTIS}" in eu_emulator.stats()["paths"]


def test_trials_puts_a_trials_registrations_side_by_side(trialwatch: twconfig.Run) -> None:
    trialwatch("watch", "add", NCT, EUCTR, CTIS)
    synced(trialwatch)
    shown = trialwatch("trials", "--json").json()
    groups = [[(r["registry"], r["study_id"]) for r in t["registrations"]] for t in shown]
    # the ClinicalTrials.gov record names the EUCTR trial; the CTIS record names two unwatched
    assert [("ctgov", NCT), ("euctr", EUCTR)] in groups
    assert [("ctgov", "NCT04665037"), ("ctis", CTIS), ("euctr", "2019-003842-34")] in groups
    (mine,) = trialwatch("trials", EUCTR, "--json").json()
    assert {r["study_id"]: r["stored"] for r in mine["registrations"]} == {NCT: True, EUCTR: True}
    assert "2 trials registered more than once" in trialwatch("trials").stdout


def test_watch_add_linked_follows_the_trial_into_every_registry_in_the_same_cycle(
    trialwatch: twconfig.Run, environment: dict[str, str]
) -> None:
    assert trialwatch("watch", "add", "--linked", NCT).exit_code == 0
    report = synced(trialwatch)  # the record names its EUCTR registration: that is fetched too
    assert (report["new"], report["failed"]) == (2, 0), report["errors"]
    watches = trialwatch("watch", "list", "--json").json()
    listed = {(w["registry"], w["study_id"]): w for w in watches}
    assert set(listed) == {("ctgov", NCT), ("euctr", EUCTR)}
    assert all("linked" in w["tags"] for w in listed.values())
    # each record's trial, both ways: the EUCTR record names nothing, yet is the NCT's twin
    assert [(t["registry"], t["study_id"]) for t in listed[("euctr", EUCTR)]["trial"]] == [
        ("ctgov", NCT)
    ]
    table = twconfig.runner({**environment, "COLUMNS": "160"})("watch", "list").stdout
    (euctr_row,) = [line for line in table.splitlines() if line.startswith(EUCTR)]
    assert NCT in euctr_row
    # a registration removed stays removed: its trial is no longer followed
    removed = trialwatch("watch", "remove", EUCTR)
    assert f"no longer following their trial's links: {NCT}" in removed.stdout
    synced(trialwatch)
    assert [w["study_id"] for w in trialwatch("watch", "list", "--json").json()] == [NCT]
    # known already: a record watched again with --linked brings its trial at once
    added = trialwatch("watch", "add", "--linked", NCT, "--json").json()
    assert {(a["registry"], a["study_id"], a["added"]) for a in added} == {
        ("ctgov", NCT, False),
        ("euctr", EUCTR, True),
    }
