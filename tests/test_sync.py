"""End to end: the CLI against the registry emulator over real HTTP, on SQLite and PostgreSQL
(API v2 alone; the history API is covered by test_history.py).

Watch real records, sync, let the registry publish edited versions, sync again, and assert
the exact change events a user would be alerted to.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator

RECORDS = TESTS_DATA / "records"
DEMO = TESTS_DATA / "demo" / "NCT05605665"
IDS = ["NCT00763412", "NCT00973089", "NCT03475563", "NCT05605665"]


Trialwatch = twconfig.Run


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    return data.get("study", data)


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    emulator = emulator_factory([RECORDS])
    emulator.publish(load(DEMO / "v0.json"), date="2022-11-08")
    return emulator


@pytest.fixture
def trialwatch(registry: Emulator, database_url: str, tmp_path: Path) -> Trialwatch:
    config = tmp_path / "trialwatch.toml"
    config.write_text(
        "[ctgov]\nrequests_per_second = 100.0\nretry_initial_seconds = 0.01\n"
        "retry_max_seconds = 0.2\nmax_attempts = 3\ntimeout_seconds = 5\n"
        "history = false  # API v2 alone here; test_history.py covers the history API\n"
        "incremental = false  # every cycle probes; tests/test_incremental.py covers the rest\n"
        "[findings]\nenabled = false  # tests/test_findings*.py cover them\n"
    )
    env = {
        "TRIALWATCH_CONFIG": str(config),
        "TRIALWATCH_DATABASE_URL": database_url,
        "TRIALWATCH_CTGOV_API_URL": registry.api_url,
        "TRIALWATCH_CTGOV_HISTORY_URL": registry.history_url,
    }

    return twconfig.runner(env)


def edited(study: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copied = copy.deepcopy(study)
    edit(copied["protocolSection"])
    return copied


def kinds(changes: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((c["study_id"], c["kind"], c["field"]) for c in changes)


def test_first_sync_adds_every_watched_record_in_one_request(
    trialwatch: Trialwatch, registry: Emulator
) -> None:
    assert trialwatch("watch", "add", *IDS).exit_code == 0
    registry.reset_stats()
    result = trialwatch("sync", "--json")
    assert result.exit_code == 0, result.stderr
    report = result.json()
    assert (report["checked"], report["new"], report["failed"]) == (4, 4, 0)
    assert report["requests"] == registry.requests == 1
    assert sorted(c["study_id"] for c in report["changes"]) == IDS
    assert {c["kind"] for c in report["changes"]} == {"record_added"}
    listed = trialwatch("watch", "list", "--json").json()
    assert [(w["study_id"], w["state"], w["versions"]) for w in listed] == [
        (i, "active", 1) for i in IDS
    ]


def test_a_new_version_is_reported_field_by_field(
    trialwatch: Trialwatch, registry: Emulator
) -> None:
    trialwatch("watch", "add", *IDS)
    trialwatch("sync")
    diabetes = load(RECORDS / "NCT00763412.json")

    def results_and_outcome_moves(ps: dict[str, Any]) -> None:
        outcomes = ps["outcomesModule"]
        outcomes["secondaryOutcomes"].append(outcomes["primaryOutcomes"].pop(2))
        outcomes["primaryOutcomes"][0]["measure"] += " (per protocol population)"
        ps["statusModule"]["completionDateStruct"] = {"date": "2014-06", "type": "ACTUAL"}

    def completed(ps: dict[str, Any]) -> None:
        ps["statusModule"]["overallStatus"] = "COMPLETED"
        ps["statusModule"]["primaryCompletionDateStruct"] = {"date": "2023-10-31", "type": "ACTUAL"}
        ps["designModule"]["enrollmentInfo"] = {"count": 28, "type": "ACTUAL"}

    registry.publish(edited(diabetes, results_and_outcome_moves), date="2026-11-20")
    registry.publish(edited(load(DEMO / "v0.json"), completed), date="2026-11-20")
    unknown = load(RECORDS / "NCT03475563.json")
    registry.publish(dict(unknown, hasResults=True), date="2026-11-20")

    result = trialwatch("sync", "--json")
    assert result.exit_code == 0, result.stderr
    report = result.json()
    # one probe page for the last-update dates, one page for the three that moved
    assert (report["changed"], report["unchanged"], report["requests"]) == (3, 1, 2)
    by_key = {(c["study_id"], c["kind"], c["field"]): c for c in report["changes"]}
    outcomes = "protocolSection.outcomesModule"
    assert sorted(by_key) == sorted(
        [
            ("NCT00763412", "outcome_modified", f"{outcomes}.primaryOutcomes[0]"),
            ("NCT00763412", "outcome_reclassified", f"{outcomes}.secondaryOutcomes[6]"),
            ("NCT00763412", "date_changed", "protocolSection.statusModule.completionDateStruct"),
            ("NCT03475563", "results_posted", "hasResults"),
            ("NCT05605665", "status_changed", "protocolSection.statusModule.overallStatus"),
            (
                "NCT05605665",
                "date_changed",
                "protocolSection.statusModule.primaryCompletionDateStruct",
            ),
            (
                "NCT05605665",
                "enrollment_changed",
                "protocolSection.designModule.enrollmentInfo.count",
            ),
            (
                "NCT05605665",
                "enrollment_type_changed",
                "protocolSection.designModule.enrollmentInfo.type",
            ),
        ]
    )
    status = by_key[("NCT05605665", "status_changed", "protocolSection.statusModule.overallStatus")]
    assert (status["old"], status["new"], status["severity"]) == (
        "RECRUITING",
        "COMPLETED",
        "medium",
    )
    assert status["summary"] == "Overall status: Recruiting → Completed"
    assert (status["from_version"], status["to_version"]) == (1, 2)
    moved = by_key[("NCT00763412", "outcome_reclassified", f"{outcomes}.secondaryOutcomes[6]")]
    assert (moved["old"], moved["new"], moved["severity"]) == ("primary", "secondary", "high")
    enrollment = by_key[
        ("NCT05605665", "enrollment_changed", "protocolSection.designModule.enrollmentInfo.count")
    ]
    assert (enrollment["old"], enrollment["new"]) == (30, 28)
    stored = trialwatch("changes", "--study", "NCT05605665", "--json").json()
    assert stored[0]["kind"] == "record_added"
    assert len(stored) == 1 + 4


def test_a_resync_with_nothing_new_reports_nothing_and_costs_one_request(
    trialwatch: Trialwatch, registry: Emulator
) -> None:
    trialwatch("watch", "add", *IDS)
    trialwatch("sync")
    registry.reset_stats()
    report = trialwatch("sync", "--json").json()
    assert (report["changed"], report["unchanged"], report["changes"]) == (0, 4, [])
    assert report["requests"] == registry.requests == 1
    assert len(trialwatch("history", "NCT05605665", "--json").json()) == 1


def test_a_republished_record_with_only_cosmetic_edits_is_unchanged(
    trialwatch: Trialwatch, registry: Emulator
) -> None:
    trialwatch("watch", "add", "NCT05605665")
    trialwatch("sync")

    def cosmetic(ps: dict[str, Any]) -> None:
        ps["conditionsModule"]["conditions"].reverse()
        outcome = ps["outcomesModule"]["primaryOutcomes"][0]
        outcome["measure"] = f"<p>{outcome['measure']}</p>"
        ps["statusModule"]["statusVerifiedDate"] = "2026-11"

    registry.publish(edited(load(DEMO / "v0.json"), cosmetic), date="2026-11-21")
    report = trialwatch("sync", "--json").json()
    assert (report["changed"], report["unchanged"], report["changes"]) == (0, 1, [])
    assert report["requests"] == 2  # the probe saw a new date, so the record came in full
    again = trialwatch("sync", "--json").json()
    assert (again["unchanged"], again["requests"]) == (1, 1)  # the new date was remembered


def test_a_known_record_that_disappears_is_reported_once(
    trialwatch: Trialwatch, registry: Emulator
) -> None:
    trialwatch("watch", "add", *IDS)
    trialwatch("sync")
    registry.gone("NCT00973089")
    first = trialwatch("sync", "--json").json()
    assert [(c["study_id"], c["kind"], c["severity"]) for c in first["changes"]] == [
        ("NCT00973089", "record_unavailable", "high")
    ]
    assert first["requests"] == 2  # the probe, then the missing id alone to confirm the 404
    assert trialwatch("sync", "--json").json()["changes"] == []
    state = {w["study_id"]: w["state"] for w in trialwatch("watch", "list", "--json").json()}
    assert state["NCT00973089"] == "unavailable"


def test_a_watched_id_the_registry_never_had_fails_alone(trialwatch: Trialwatch) -> None:
    trialwatch("watch", "add", "NCT05605665", "NCT09999999")
    result = trialwatch("sync", "--json")
    assert result.exit_code == 1
    report = result.json()
    assert (report["new"], report["failed"]) == (1, 1)
    assert report["errors"] == [
        {
            "study_id": "NCT09999999",
            "error": "NCT09999999: not found in the registry: `trialwatch watch remove "
            "NCT09999999` if the id is wrong (asked again every 7 days)",
            "reason": "not_found",
        }
    ]


@pytest.mark.parametrize(
    ("fault", "options"),
    [
        ("429", {"retry_after": 0}),
        ("429", {}),
        ("500", {}),
        ("503", {}),
        ("html", {}),
        ("truncated", {}),
        ("reset", {}),
    ],
)
def test_a_passing_registry_fault_is_retried_and_the_cycle_succeeds(
    trialwatch: Trialwatch, registry: Emulator, fault: str, options: dict[str, Any]
) -> None:
    trialwatch("watch", "add", *IDS)
    registry.reset_stats()
    registry.fault(fault, count=1, **options)
    result = trialwatch("sync", "--json")
    assert result.exit_code == 0, result.stderr
    report = result.json()
    assert (report["new"], report["failed"]) == (4, 0)
    assert report["requests"] == registry.requests == 2


def test_a_registry_that_keeps_failing_fails_the_studies_and_stores_nothing(
    trialwatch: Trialwatch, registry: Emulator
) -> None:
    trialwatch("watch", "add", *IDS)
    registry.fault("503", count=-1)
    result = trialwatch("sync", "--json")
    assert result.exit_code == 1
    report = result.json()
    assert (report["failed"], report["new"], report["requests"]) == (4, 0, 3)
    assert all("registry answered 503" in e["error"] for e in report["errors"])
    assert trialwatch("changes", "--json").json() == []


def test_an_html_page_that_persists_is_named_in_the_error(
    trialwatch: Trialwatch, registry: Emulator
) -> None:
    trialwatch("watch", "add", "NCT05605665")
    registry.fault("html", count=-1)
    result = trialwatch("sync")
    assert result.exit_code == 1
    assert "HTML page instead of JSON" in result.stderr


def test_a_record_that_does_not_parse_fails_alone(
    trialwatch: Trialwatch, registry: Emulator
) -> None:
    trialwatch("watch", "add", *IDS)
    broken = edited(
        load(RECORDS / "NCT00973089.json"),
        lambda ps: ps["designModule"].update(enrollmentInfo={"count": "many"}),
    )
    registry.publish(broken, date="2026-11-20")
    result = trialwatch("sync", "--json")
    assert result.exit_code == 1
    report = result.json()
    assert (report["new"], report["failed"]) == (3, 1)
    assert report["errors"][0]["study_id"] == "NCT00973089"
    assert "enrollmentInfo.count" in report["errors"][0]["error"]


def test_a_dry_run_stores_nothing(trialwatch: Trialwatch) -> None:
    trialwatch("watch", "add", *IDS)
    report = trialwatch("sync", "--dry-run", "--json").json()
    assert report["new"] == 4 and len(report["changes"]) == 4
    assert trialwatch("changes", "--json").json() == []
    assert trialwatch("history", "NCT05605665", "--json").json() == []


def test_sync_of_given_ids_touches_only_those(trialwatch: Trialwatch) -> None:
    trialwatch("watch", "add", *IDS)
    report = trialwatch("sync", "nct05605665", "--json").json()
    assert [c["study_id"] for c in report["changes"]] == ["NCT05605665"]


def test_sync_of_an_id_not_watched_is_refused_with_a_hint(trialwatch: Trialwatch) -> None:
    result = trialwatch("sync", "NCT05605665")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "trialwatch: error: not watched: NCT05605665 "
        "(add it first: trialwatch watch add NCT05605665)"
    )


@pytest.mark.parametrize("bad", ["NCT123", "nct05605665x", "NCT0560566'; DROP TABLE x;--", ""])
def test_a_bad_id_is_one_line_exit_2_and_nothing_is_written(
    trialwatch: Trialwatch, bad: str
) -> None:
    result = trialwatch("watch", "add", "NCT05605665", bad)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    if bad:  # the registry it was meant for, by its prefix
        assert "is not a ClinicalTrials.gov id (NCT followed by 8 digits" in result.stderr
    else:  # nothing to go on: every accepted form
        assert "is not a registry id trialwatch watches" in result.stderr
        assert "NCT05605665" in result.stderr and "ISRCTN12345678" in result.stderr
    assert trialwatch("watch", "list", "--json").json() == []


def test_watch_remove_keeps_history_and_refuses_unknown_ids(trialwatch: Trialwatch) -> None:
    trialwatch("watch", "add", "NCT05605665", "--tag", "sjogren")
    trialwatch("sync")
    refused = trialwatch("watch", "remove", "NCT05605665", "NCT00973089")
    assert refused.exit_code == 2 and "not watched: NCT00973089" in refused.stderr
    assert trialwatch("watch", "remove", "NCT05605665", "--json").json() == ["NCT05605665"]
    assert trialwatch("watch", "list", "--json").json() == []
    assert len(trialwatch("history", "NCT05605665", "--json").json()) == 1


def test_many_watched_studies_cost_one_request_per_full_request_line(
    trialwatch: Trialwatch, registry: Emulator
) -> None:
    template = load(RECORDS / "NCT00973089.json")
    ids = [f"NCT9{n:07d}" for n in range(1, 1201)]
    for study_id in ids:
        registry.publish(
            edited(template, lambda ps, i=study_id: ps["identificationModule"].update(nctId=i)),
            date="2026-11-01",
        )
    trialwatch("watch", "add", *ids)
    registry.reset_stats()
    first = trialwatch("sync", "--json").json()
    # ~430 ids fit the default 6,000-byte request line: three batches for 1,200
    assert (first["new"], first["requests"]) == (1200, 3)
    second = trialwatch("sync", "--json").json()
    assert (second["unchanged"], second["requests"]) == (1200, 3)
    assert registry.requests == 6


def test_the_human_output_names_each_change(trialwatch: Trialwatch, registry: Emulator) -> None:
    trialwatch("watch", "add", "NCT05605665")
    trialwatch("sync")
    registry.publish(load(DEMO / "v1.json"), date="2024-01-10")
    result = trialwatch("sync")
    assert "Overall status: Recruiting → Completed" in result.stdout
    assert "1 checked: 0 new, 1 changed, 0 unchanged, 0 failed; 2 registry requests (probe)" in (
        result.stdout
    )
    history = trialwatch("history", "NCT05605665").stdout
    assert "v1" in history and "v2" in history and "Completed" in history


def three_move_to(trialwatch: Trialwatch, registry: Emulator, status: str) -> list[str]:
    """Watch and sync ``IDS``; then the registry moves the first three to ``status``."""
    trialwatch("watch", "add", *IDS)
    trialwatch("sync")
    moved = IDS[:3]
    for study_id in moved:
        study = registry.current(study_id)
        assert study is not None
        study["protocolSection"]["statusModule"]["overallStatus"] = status
        registry.publish(study, date="2026-11-26")
    return moved


def test_a_record_another_sync_stores_while_its_page_is_written_is_a_conflict_not_a_loss(
    trialwatch: Trialwatch, registry: Emulator, database_url: str, monkeypatch: Any
) -> None:
    """A page's changed records are stored in one transaction. When another process stores a
    version of one of them after this cycle read the store and before that write, the page
    is stored record by record instead: that record's version is the other process's (a
    conflict warning, not a failure), the others are stored, and nothing is stored twice."""
    from service.store import NextVersion, Store

    moved = three_move_to(trialwatch, registry, "TERMINATED")
    together = Store.save_next_versions
    pages: list[list[str]] = []

    def another_sync_first(
        self: Store, registry_key: str, steps: list[NextVersion], run_id: int | None
    ) -> list[Any]:
        pages.append([step.version.snapshot.study_id for step in steps])
        other = Store.open(database_url)
        other.save_version(steps[0].version, steps[0].changes, None)
        other.close()
        return together(self, registry_key, steps, run_id)

    monkeypatch.setattr(Store, "save_next_versions", another_sync_first)
    result = trialwatch("sync", "--json")
    assert result.exit_code == 0, result.stderr
    report = result.json()
    assert [sorted(page) for page in pages] == [moved]  # one page, one attempt together
    raced = pages[0][0]
    assert (report["changed"], report["unchanged"], report["failed"]) == (2, 2, 0)
    assert [(w["study_id"], w["reason"]) for w in report["warnings"]] == [(raced, "conflict")]
    assert sorted(c["study_id"] for c in report["changes"]) == sorted(set(moved) - {raced})
    monkeypatch.undo()
    listed = {w["study_id"]: w["versions"] for w in trialwatch("watch", "list", "--json").json()}
    assert listed == {i: 2 if i in moved else 1 for i in IDS}
    stored = trialwatch("changes", "--kind", "status_changed", "--json").json()
    assert sorted(c["study_id"] for c in stored) == moved  # the raced one by the other process


def test_a_record_that_cannot_be_stored_fails_alone_not_its_page(
    trialwatch: Trialwatch, registry: Emulator, monkeypatch: Any
) -> None:
    """A bug in storing one record of a page (here: its raw JSON cannot be written) fails
    the page's transaction; the page is then stored record by record, and only that record
    fails (reason ``internal``), to be tried again next cycle."""
    import service.store.batches
    import service.store.records
    from service.store.rows import _raw_gz

    moved = three_move_to(trialwatch, registry, "SUSPENDED")
    broken = moved[1]

    def unwritable(raw: dict[str, Any]) -> bytes:
        if raw["protocolSection"]["identificationModule"]["nctId"] == broken:
            raise ValueError("cannot write this one")
        return _raw_gz(raw)

    for module in (service.store.batches, service.store.records):
        monkeypatch.setattr(module, "_raw_gz", unwritable)
    result = trialwatch("sync", "--json")
    assert result.exit_code == 1  # a partial failure
    report = result.json()
    assert (report["changed"], report["unchanged"], report["failed"]) == (2, 1, 1)
    [error] = report["errors"]
    assert (error["study_id"], error["reason"]) == (broken, "internal")
    assert "cannot write this one" in error["error"]
    assert sorted({c["study_id"] for c in report["changes"]}) == sorted(set(moved) - {broken})
    monkeypatch.undo()
    listed = {w["study_id"]: w["versions"] for w in trialwatch("watch", "list", "--json").json()}
    assert listed == {i: 2 if i in moved and i != broken else 1 for i in IDS}
    again = trialwatch("sync", "--json").json()  # the next cycle stores it
    assert (again["changed"], again["failed"]) == (1, 0)
