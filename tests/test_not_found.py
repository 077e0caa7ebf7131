"""A watched id the registry never had (ClinicalTrials.gov answers 404): reported once, as
``not_found`` with what to do, then asked for again only every ``not_found_retry_days`` and
kept out of the exit status; watched again once the registry serves it. The real CLI against
the registry emulator, on SQLite and PostgreSQL, with a real record beside it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator

from service.app import build_app
from service.settings import load_settings

REAL = "NCT00973089"  # a real record, served all along
TYPO = "NCT00973098"  # its id mistyped: the registry never had it
HINT = f"`trialwatch watch remove {TYPO}`"


def real_record() -> dict[str, Any]:
    data = json.loads((TESTS_DATA / "records" / f"{REAL}.json").read_text())
    return data.get("study", data)  # type: ignore[no-any-return]


Setup = tuple[Emulator, dict[str, str]]


def setup(
    emulator_factory: Callable[..., Emulator], database_url: str, tmp_path: Path, **keys: Any
) -> Setup:
    registry = emulator_factory()
    registry.publish(real_record(), date="2024-01-10")
    config = twconfig.ctgov(registry.api_url, registry.history_url, history=False, **keys)
    return registry, twconfig.environment(tmp_path, config, database_url)


@pytest.fixture
def watched(emulator_factory: Callable[..., Emulator], database_url: str, tmp_path: Path) -> Setup:
    registry, env = setup(emulator_factory, database_url, tmp_path)
    assert twconfig.runner(env)("watch", "add", REAL, TYPO).exit_code == 0
    return registry, env


ALONE = "/api/v2/studies/{id}"  # one record asked for by id: the only way a 404 is known


def alone(registry: Emulator) -> int:
    """How many records were asked for one by one so far (the real record is settled by the
    probe, a batch request: only the missing id is ever asked for alone)."""
    return registry.requests_by_path.get(ALONE, 0)


def test_reported_once_with_a_hint_then_left_out_of_the_exit_status(watched: Setup) -> None:
    registry, env = watched
    run = twconfig.runner(env)
    first = run("sync", "--json")
    assert first.exit_code == 1  # the first report is a failure: someone has to look
    [error] = first.json()["errors"]
    assert error["study_id"] == TYPO and error["reason"] == "not_found"
    assert HINT in error["error"] and "asked again every 7 days" in error["error"]

    before = alone(registry)
    second = run("sync", "--json")
    assert second.exit_code == 0, second.output  # not again: nothing new to say
    document = second.json()
    assert document["errors"] == [] and document["failed"] == 0
    assert alone(registry) == before  # not asked, let alone retried
    human = run("sync")
    assert human.exit_code == 0 and TYPO not in human.output

    listed = run("watch", "list")
    row, hint = [line for line in listed.stdout.splitlines() if line.startswith(TYPO)]
    assert row.split()[1:3] == ["not", "found"]
    assert hint == f"{TYPO}: not found in the registry; {HINT} stops watching it"
    states = {w["study_id"]: w["state"] for w in run("watch", "list", "--json").json()}
    assert states == {REAL: "active", TYPO: "not found"}


def test_asked_again_after_the_retry_days_as_a_warning(watched: Setup) -> None:
    registry, env = watched
    assert twconfig.runner(env)("sync").exit_code == 1
    settings = load_settings(Path(env["TRIALWATCH_CONFIG"]), env)
    for days, asked in ((6, False), (7, True), (8, False), (14, True)):
        moment = datetime.now(UTC) + timedelta(days=days)
        app = build_app(settings, clock=lambda moment=moment: moment)
        before = alone(registry)
        try:
            report = app.sync()
        finally:
            app.close()
        assert (alone(registry) > before) is asked, days
        assert report.failed == 0 and report.errors == []
        warnings = [w for w in report.warnings if w["study_id"] == TYPO]
        if asked:  # asked again: still missing, said as a warning, not a failure
            [warning] = warnings
            assert warning["reason"] == "not_found" and "still not found" in warning["warning"]
        else:
            assert warnings == []


def test_an_id_named_on_the_command_line_is_asked_for_at_once(watched: Setup) -> None:
    registry, env = watched
    run = twconfig.runner(env)
    assert run("sync").exit_code == 1
    before = alone(registry)
    named = run("sync", TYPO, "--json")
    assert named.exit_code == 0, named.output
    assert alone(registry) > before
    [warning] = named.json()["warnings"]
    assert warning["reason"] == "not_found" and HINT in warning["warning"]


def test_a_record_published_later_is_watched_as_any_other(watched: Setup) -> None:
    registry, env = watched
    run = twconfig.runner(env)
    assert run("sync").exit_code == 1
    late = real_record()
    late["protocolSection"]["identificationModule"]["nctId"] = TYPO
    registry.publish(late, date="2024-02-01")
    found = run("sync", TYPO, "--json")  # (a whole-list sync would wait out the 7 days)
    assert found.exit_code == 0 and found.json()["new"] == 1
    states = {w["study_id"]: w["state"] for w in run("watch", "list", "--json").json()}
    assert states[TYPO] == "active"
    assert "not found" not in run("watch", "list").stdout


def test_every_cycle_when_the_setting_says_so(
    emulator_factory: Callable[..., Emulator], database_url: str, tmp_path: Path
) -> None:
    registry, env = setup(emulator_factory, database_url, tmp_path, not_found_retry_days=0)
    run = twconfig.runner(env)
    assert run("watch", "add", REAL, TYPO).exit_code == 0
    assert run("sync").exit_code == 1
    before = alone(registry)
    again = run("sync", "--json")
    assert again.exit_code == 0
    assert alone(registry) > before
    assert [w["reason"] for w in again.json()["warnings"]] == ["not_found"]


# ---- an EU registry: the EU Clinical Trials Register's real records ------------------------------

EUCTR = "2021-002179-21"  # a real record the EU emulator serves
EU_TYPO = "2099-000001-01"  # a EudraCT number it never had


def test_an_eu_registry_id_it_never_had_is_reported_once(
    eu_emulator: Any, emulator_factory: Callable[..., Emulator], database_url: str, tmp_path: Path
) -> None:
    ctgov = emulator_factory()
    fast = {"requests_per_second": 100.0, "retry_initial_seconds": 0.0, "retry_max_seconds": 0.0}
    config = twconfig.table("[ctgov]", history=False, incremental=False, **fast) + "".join(
        twconfig.table(f"[{key}]", **fast) for key in ("euctr", "ctis", "isrctn")
    )
    env = twconfig.environment(tmp_path, config, database_url)
    env |= {
        "TRIALWATCH_CTGOV_API_URL": ctgov.api_url,
        "TRIALWATCH_CTGOV_HISTORY_URL": ctgov.history_url,
        **eu_emulator.environment(),
    }
    run = twconfig.runner(env)
    assert run("watch", "add", EUCTR, EU_TYPO).exit_code == 0
    first = run("sync", "--json")
    assert first.exit_code == 1
    [error] = first.json()["errors"]
    assert (error["study_id"], error["reason"]) == (EU_TYPO, "not_found")
    assert f"`trialwatch watch remove {EU_TYPO}`" in error["error"]
    eu_emulator.reset_stats()
    second = run("sync", "--json")
    assert second.exit_code == 0, second.output
    assert second.json()["errors"] == []
    assert not any(EU_TYPO in path for path in eu_emulator.stats()["paths"])  # not asked
