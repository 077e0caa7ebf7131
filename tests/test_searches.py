"""Saved searches on real records (tests/data/findings): records entering a search are watched
and reported, records leaving it are reported and stay watched, a quiet registry costs no
search request, and a search too broad to follow is refused."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from notify_servers import WebhookReceiver

LUNG = "NCT04267848"  # non-small cell lung cancer
TODAY = date.today().isoformat()


def real(study_id: str) -> dict[str, Any]:
    return json.loads((TESTS_DATA / "findings" / f"{study_id}.json").read_text())  # type: ignore[no-any-return]


def new_lung_trial() -> dict[str, Any]:
    record = copy.deepcopy(real("NCT02513394"))
    record["protocolSection"]["identificationModule"]["nctId"] = "NCT09912345"
    record["protocolSection"]["conditionsModule"]["conditions"] = ["Non-Small Cell Lung Cancer"]
    return record


def healthy_volunteers() -> dict[str, Any]:
    record = real(LUNG)
    record["protocolSection"]["conditionsModule"] = {"conditions": ["Healthy Volunteers"]}
    identification = record["protocolSection"]["identificationModule"]
    identification["briefTitle"] = identification["officialTitle"] = "A study in volunteers"
    return record


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory([TESTS_DATA / "findings"])


@pytest.fixture
def trialwatch(
    registry: Emulator, webhook_receiver: WebhookReceiver, database_url: str, tmp_path: Path
) -> twconfig.Run:
    config = (
        twconfig.ctgov(registry.api_url, registry.history_url, history=False, incremental=True)
        + twconfig.webhook(webhook_receiver.url)
        + twconfig.subscription("hook", studies=["query:lung"])
    )
    return twconfig.runner(twconfig.environment(tmp_path, config, database_url))


def json_of(trialwatch: twconfig.Run, *args: str) -> Any:
    result = trialwatch(*args, "--json")
    assert result.exit_code in (0, 1), result.stderr
    return json.loads(result.stdout)


def events(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (c["study_id"], c["kind"], c["field"])
        for c in report["changes"]
        if c["kind"].startswith("query_")
    }


def test_records_enter_and_leave_a_saved_search(
    trialwatch: twconfig.Run, registry: Emulator, webhook_receiver: WebhookReceiver
) -> None:
    added = json_of(trialwatch, "watch", "query", "add", "lung", "--cond", "lung cancer")
    assert added == {"name": "lung", "params": {"query.cond": "lung cancer"}, "matches": 1}
    first = json_of(trialwatch, "sync")
    assert events(first) == {(LUNG, "query_matched", "query:lung")}
    assert first["new"] == 1
    [watch] = json_of(trialwatch, "watch", "list")
    assert (watch["study_id"], watch["tags"]) == (LUNG, ["query:lung"])

    registry.publish(new_lung_trial(), date=TODAY)
    registry.publish(healthy_volunteers(), date=TODAY)
    second = json_of(trialwatch, "sync")
    assert events(second) == {
        ("NCT09912345", "query_matched", "query:lung"),
        (LUNG, "query_unmatched", "query:lung"),
    }
    assert {w["study_id"] for w in json_of(trialwatch, "watch", "list")} == {LUNG, "NCT09912345"}
    [search] = json_of(trialwatch, "watch", "query", "list")
    assert (search["name"], search["study_ids"]) == ("lung", ["NCT09912345"])

    assert trialwatch("notify").exit_code == 0
    notified = {
        (c["study_id"], c["kind"])
        for request in webhook_receiver.requests
        for c in json.loads(request.body)["changes"]
        if c["kind"].startswith("query_")
    }
    assert notified == {
        (LUNG, "query_matched"),
        ("NCT09912345", "query_matched"),
        (LUNG, "query_unmatched"),
    }


def test_a_quiet_registry_costs_no_search_request(
    trialwatch: twconfig.Run, registry: Emulator
) -> None:
    trialwatch("watch", "query", "add", "lung", "--cond", "lung cancer")
    json_of(trialwatch, "sync")
    registry.reset_stats()
    quiet = json_of(trialwatch, "sync")
    # /version (unmoved: the search is not asked again) and the one-request probe of the
    # one watched record (with so few, a probe says more than the timestamp for the same)
    assert (quiet["cycle"]["mode"], quiet["requests"]) == ("probe", 2)
    assert registry.requests_by_path == {"/api/v2/version": 1, "/api/v2/studies": 1}


def test_removing_a_search_keeps_its_records_watched(trialwatch: twconfig.Run) -> None:
    trialwatch("watch", "query", "add", "lung", "--cond", "lung cancer")
    trialwatch("sync")
    assert trialwatch("watch", "query", "remove", "lung").exit_code == 0
    assert json_of(trialwatch, "watch", "query", "list") == []
    assert [w["study_id"] for w in json_of(trialwatch, "watch", "list")] == [LUNG]
    gone = trialwatch("watch", "query", "remove", "lung")
    assert gone.exit_code == 2 and "no saved search named 'lung'" in gone.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Lung", "--cond", "x"], "'Lung' is not a search name"),
        (["lung_cancer", "--cond", "x"], "is not a search name"),
        (["lung"], "needs at least one of --cond"),
        (["lung", "--cond", "   "], "needs at least one of --cond"),
    ],
)
def test_bad_searches_are_one_line_exit_2(
    trialwatch: twconfig.Run, args: list[str], message: str
) -> None:
    result = trialwatch("watch", "query", "add", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_search_broader_than_the_cap_is_refused_with_its_count(
    registry: Emulator, database_url: str, tmp_path: Path
) -> None:
    config = twconfig.ctgov(registry.api_url, registry.history_url, max_query_matches=2)
    run = twconfig.runner(twconfig.environment(tmp_path, config, database_url))
    result = run(
        "watch",
        "query",
        "add",
        "everything",
        "--advanced",
        "AREA[OverallStatus]COMPLETED OR AREA[OverallStatus]RECRUITING"
        " OR AREA[OverallStatus]ACTIVE_NOT_RECRUITING",
    )
    assert result.exit_code == 2
    assert "matches 5 records, more than [ctgov] max_query_matches (2)" in result.stderr
    assert run("watch", "query", "list", "--json").stdout.strip() == "[]"
    again = run("watch", "query", "add", "lung", "--cond", "lung cancer")
    assert again.exit_code == 0
    duplicate = run("watch", "query", "add", "lung", "--cond", "lung")
    assert duplicate.exit_code == 2 and "exists already" in duplicate.stderr


def test_a_subscription_naming_an_unknown_search_is_refused(
    registry: Emulator, webhook_receiver: WebhookReceiver, database_url: str, tmp_path: Path
) -> None:
    config = (
        twconfig.ctgov(registry.api_url, registry.history_url)
        + twconfig.webhook(webhook_receiver.url)
        + twconfig.subscription("hook", studies=["query:lnug"])
    )
    run = twconfig.runner(twconfig.environment(tmp_path, config, database_url))
    result = run("notify")
    assert result.exit_code == 2 and "no saved search 'lnug'" in result.stderr


def test_the_report_groups_its_contents_by_saved_search(
    trialwatch: twconfig.Run, tmp_path: Path
) -> None:
    trialwatch("watch", "query", "add", "lung", "--cond", "lung cancer")
    trialwatch("watch", "add", "NCT03418623")
    trialwatch("sync")
    out = tmp_path / "report.html"
    assert trialwatch("report", "--out", str(out)).exit_code == 0
    page = out.read_text()
    searched, rest = page.index("Saved search “lung”"), page.index("Not from a saved search")
    assert searched < page.index(f'href="#study-ctgov-{LUNG}"') < rest
    assert rest < page.index('href="#study-ctgov-NCT03418623"')
