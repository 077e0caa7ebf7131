"""Every registry version: backfill on first sight, gap filling between syncs, each step
notified once, politeness towards the history API, and a fallback when it fails or drifts."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from notify_servers import WebhookReceiver, wait_until

from service.app import build_app
from service.history import HistoryFetcher, StoredAnchor
from service.registry.ctgov import CtgovClient
from service.registry.ctgov_normalise import normalise, record_meta
from service.settings import CtgovSettings, load_settings
from service.store import NewVersion

STUDY = "NCT00763412"
T_FETCH = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
BASE = json.loads((TESTS_DATA / "records" / f"{STUDY}.json").read_text())
Edit = Callable[[dict[str, Any]], None]


def version(*edits: Edit) -> dict[str, Any]:
    record = copy.deepcopy(BASE)
    for edit in edits:
        edit(record["protocolSection"])
    return record


def status(value: str) -> Edit:
    return lambda ps: ps["statusModule"].update(overallStatus=value)


def enrollment(count: int, kind: str) -> Edit:
    return lambda ps: ps["designModule"].update(enrollmentInfo={"count": count, "type": kind})


def slip(ps: dict[str, Any]) -> None:
    ps["statusModule"]["primaryCompletionDateStruct"] = {"date": "2014-02", "type": "ESTIMATED"}


def demote_outcome(ps: dict[str, Any]) -> None:
    outcomes = ps["outcomesModule"]
    outcomes["secondaryOutcomes"].append(outcomes["primaryOutcomes"].pop(2))


# the versions before trialwatch first looks, each one step further than the last
PAST: list[list[Edit]] = [
    [status("RECRUITING"), enrollment(40, "ESTIMATED")],
    [status("RECRUITING"), enrollment(36, "ESTIMATED")],
    [status("RECRUITING"), enrollment(36, "ESTIMATED"), slip],
    [status("RECRUITING"), enrollment(36, "ESTIMATED"), slip, demote_outcome],
    [status("ACTIVE_NOT_RECRUITING"), enrollment(36, "ESTIMATED"), slip, demote_outcome],
]
# three versions published between two syncs
LATER: list[list[Edit]] = [
    [*PAST[-1], enrollment(31, "ESTIMATED")],
    [*PAST[-1], enrollment(31, "ACTUAL")],
    [*PAST[-1], enrollment(31, "ACTUAL"), status("COMPLETED")],
]


# the steps gap filling records for LATER
LATER_STEPS = [
    (4, 5, "enrollment_changed"),
    (5, 6, "enrollment_type_changed"),
    (6, 7, "status_changed"),
]


def steps_of(report: dict[str, Any]) -> list[tuple[int, int, str]]:
    return [(c["from_version"], c["to_version"], c["kind"]) for c in report["changes"]]


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    emulator = emulator_factory(history_gap=0.05)  # refuses history requests closer than this
    for n, edits in enumerate(PAST):
        emulator.publish(version(*edits), date=f"2012-0{n + 1}-15")
    return emulator


@pytest.fixture
def trialwatch(
    registry: Emulator, webhook_receiver: WebhookReceiver, database_url: str, tmp_path: Path
) -> twconfig.Run:
    ctgov = twconfig.ctgov(
        registry.api_url,
        registry.history_url,
        history_gap_seconds=0.06,  # just over the emulator's: it refuses closer requests
        retry_initial_seconds=0.05,
        max_attempts=2,
    )
    config = ctgov + twconfig.webhook(webhook_receiver.url) + twconfig.subscription("hook")
    run = twconfig.runner(twconfig.environment(tmp_path, config, database_url))
    run("watch", "add", STUDY)
    return run


def sync(trialwatch: twconfig.Run) -> dict[str, Any]:
    result = trialwatch("sync", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_a_first_sighting_backfills_every_past_version(
    trialwatch: twconfig.Run, registry: Emulator, webhook_receiver: WebhookReceiver
) -> None:
    registry.reset_stats()
    report = sync(trialwatch)
    assert report["new"] == 1
    # one batch, the version list, and versions 0-3 (the batch's record is version 4)
    assert report["requests"] == registry.requests == 1 + 1 + 4
    versions = json.loads(trialwatch("history", STUDY, "--json").stdout)
    assert [(v["version"], v["overall_status"]) for v in versions] == [
        (0, "RECRUITING"),
        (1, "RECRUITING"),
        (2, "RECRUITING"),
        (3, "RECRUITING"),
        (4, "ACTIVE_NOT_RECRUITING"),
    ]
    changes = json.loads(trialwatch("changes", "--json").stdout)
    steps = [(c["from_version"], c["to_version"], c["kind"], c["historical"]) for c in changes]
    # the record is live first (record_added), then its past is slotted in before it
    assert steps == [
        (None, 4, "record_added", False),
        (0, 1, "enrollment_changed", True),
        (1, 2, "date_changed", True),
        (2, 3, "outcome_reclassified", True),
        (3, 4, "status_changed", True),
    ]
    trialwatch("notify")
    assert webhook_receiver.requests == []  # the past is stored, not alerted


def test_history_requests_keep_the_quiet_gap_after_each_slow_answer(
    trialwatch: twconfig.Run, registry: Emulator
) -> None:
    """The history API counts its quiet gap from the end of the last request: a slow answer
    must not eat into it (a gap counted from request starts is refused, and costs a retry)."""
    registry.fault("slow", count=-1, path_prefix="/api/int", seconds=0.1)
    registry.reset_stats()
    report = sync(trialwatch)
    assert registry.stats.snapshot()["history_refused"] == 0
    assert report["requests"] == registry.requests == 1 + 1 + 4


def test_versions_published_between_syncs_are_each_recorded_and_notified_once(
    trialwatch: twconfig.Run, registry: Emulator, webhook_receiver: WebhookReceiver
) -> None:
    sync(trialwatch)
    for n, edits in enumerate(LATER):
        registry.publish(version(*edits), date=f"2013-0{n + 1}-15")
    registry.reset_stats()
    report = sync(trialwatch)
    assert report["changed"] == 1
    # the probe, the record in full, the version list, versions 5 and 6
    assert report["requests"] == 1 + 1 + 1 + 2
    assert steps_of(report) == LATER_STEPS
    assert not any(c["historical"] for c in report["changes"])
    assert trialwatch("notify").exit_code == 0
    payloads = [json.loads(r.body) for r in webhook_receiver.requests]
    # one message per study and sync, each step in it once, in order
    assert [[(c["from_version"], c["to_version"]) for c in p["changes"]] for p in payloads] == [
        [(4, 5), (5, 6), (6, 7)],
    ]
    sync(trialwatch)
    trialwatch("notify")
    assert len(webhook_receiver.requests) == 1


@pytest.mark.parametrize("setting", ["history_budget_seconds = 0", "history_backfill = false"])
def test_versions_published_before_the_past_was_backfilled_are_each_recorded(
    trialwatch: twconfig.Run, registry: Emulator, tmp_path: Path, setting: str
) -> None:
    """The first version of a record has no registry number until its past is backfilled:
    the queue is long after a first load, or the process stopped in between. The versions
    published meanwhile are still each recorded, found by placing that version in the list."""
    config = tmp_path / "trialwatch.toml"
    ordinary = config.read_text()
    config.write_text(ordinary.replace("[ctgov]", f"[ctgov]\n{setting}"))
    sync(trialwatch)
    for n, edits in enumerate(LATER):
        registry.publish(version(*edits), date=f"2013-0{n + 1}-15")
    report = sync(trialwatch)
    # the stored version is found to be version 4 (the alerts' history links need it)
    assert steps_of(report) == LATER_STEPS
    config.write_text(ordinary)
    sync(trialwatch)  # the backfill, when it is allowed to run
    versions = json.loads(trialwatch("history", STUDY, "--json").stdout)
    numbers = [v["version"] for v in versions]
    assert numbers == (list(range(8)) if "budget" in setting else [4, 5, 6, 7])
    assert [v["overall_status"] for v in versions][-2:] == ["ACTIVE_NOT_RECRUITING", "COMPLETED"]


def test_an_old_version_in_html_markup_is_not_a_change(
    trialwatch: twconfig.Run, registry: Emulator
) -> None:
    sync(trialwatch)

    def html_markup(ps: dict[str, Any]) -> None:
        outcome = ps["outcomesModule"]["secondaryOutcomes"][0]
        outcome["description"] = f"<p>{outcome.get('description', '')}</p>"

    registry.publish(version(*PAST[-1], html_markup), date="2013-05-01")
    registry.publish(version(*PAST[-1], status("COMPLETED")), date="2013-06-01")
    report = sync(trialwatch)
    assert [(c["from_version"], c["to_version"], c["kind"]) for c in report["changes"]] == [
        (5, 6, "status_changed")
    ]
    assert len(json.loads(trialwatch("history", STUDY, "--json").stdout)) == 7


@pytest.mark.parametrize("fault", ["500", "drift", "html"])
def test_sync_works_from_api_v2_alone_when_the_history_api_fails(
    trialwatch: twconfig.Run, registry: Emulator, fault: str
) -> None:
    sync(trialwatch)
    for n, edits in enumerate(LATER):
        registry.publish(version(*edits), date=f"2013-0{n + 1}-15")
    registry.fault(fault, count=-1, path_prefix="/api/int")
    report = sync(trialwatch)
    assert (report["changed"], report["failed"]) == (1, 0)
    kinds = {c["kind"] for c in report["changes"]}
    assert kinds == {"enrollment_changed", "enrollment_type_changed", "status_changed"}
    [warning] = report["warnings"]
    assert warning["study_id"] == STUDY and "history unavailable" in warning["warning"]
    assert warning["reason"] == ("invalid" if fault in ("drift", "html") else "registry")


def test_history_can_be_turned_off(
    trialwatch: twconfig.Run, registry: Emulator, tmp_path: Path
) -> None:
    config = tmp_path / "trialwatch.toml"
    config.write_text(config.read_text().replace("[ctgov]", "[ctgov]\nhistory = false"))
    registry.reset_stats()
    report = sync(trialwatch)
    assert report["requests"] == registry.requests == 1
    assert len(json.loads(trialwatch("history", STUDY, "--json").stdout)) == 1


def test_a_version_published_during_a_first_sync_is_news_not_history(
    emulator_factory: Callable[..., Emulator],
) -> None:
    registry = emulator_factory()
    registry.publish(version(*PAST[0]), date="2012-01-15")
    stale = registry.current(STUDY)  # what the batch page returned
    assert stale is not None
    registry.publish(version(*PAST[1]), date="2012-02-15")  # then the registry moved on
    settings = CtgovSettings(
        api_url=registry.api_url, history_url=registry.history_url, history_gap_seconds=0
    )
    with httpx.Client() as http:
        fetcher = HistoryFetcher(CtgovClient(http, settings), clock=lambda: T_FETCH)
        current = NewVersion(
            "ctgov", normalise(stale), stale, None, record_meta(stale).last_update_posted, T_FETCH
        )
        found = fetcher.backfill(STUDY, current)
        # the backfill ends at the stored version: version 1 is left to gap filling, as news
        assert [v.registry_version for v in found.versions] == [0]
        assert found.past == 1
        assert found.versions[0].snapshot == current.snapshot
        fresh = registry.current(STUDY)  # the next sync's record
        assert fresh is not None
        later = NewVersion(
            "ctgov", normalise(fresh), fresh, None, record_meta(fresh).last_update_posted, T_FETCH
        )
        stored = found.versions[0]
        anchor = StoredAnchor(
            stored.registry_version, stored.last_update_posted, stored.snapshot.content_hash()
        )
        news = fetcher.gap(STUDY, anchor, later)
    assert [v.registry_version for v in news.versions] == [1]
    assert news.versions[0].snapshot.enrollment_count == 36


def test_a_stop_during_gap_filling_stores_nothing_and_the_next_cycle_fills_the_gap(
    trialwatch: twconfig.Run, registry: Emulator, database_url: str, tmp_path: Path
) -> None:
    """SIGTERM while the version list is being fetched: storing the current version alone
    would skip the versions between for good, so the record is left as it was (a `registry`
    failure of this cycle) and the next cycle fills the gap."""
    sync(trialwatch)
    for n, edits in enumerate(LATER):
        registry.publish(version(*edits), date=f"2013-0{n + 1}-15")
    registry.fault("slow", count=1, path_prefix="/api/int", seconds=60)
    environ = {"TRIALWATCH_DATABASE_URL": database_url}
    app = build_app(load_settings(tmp_path / "trialwatch.toml", environ))
    reports: list[Any] = []
    cycle = threading.Thread(target=lambda: reports.append(app.sync()))
    try:
        cycle.start()
        wait_until(
            lambda: registry.stats.snapshot()["history_in_flight"] == 1,
            timeout=30,
            what="the history request in flight",
        )
        app.stopping.set()
        cycle.join(timeout=30)
    finally:
        registry.clear_faults()
        app.close()
    [report] = reports
    assert (report.changed, report.failed, report.changes) == (0, 1, [])
    [error] = report.errors
    assert error["reason"] == "registry" and "stopping" in error["error"]
    versions = json.loads(trialwatch("history", STUDY, "--json").stdout)
    assert [v["version"] for v in versions] == [0, 1, 2, 3, 4]  # nothing stored
    after = sync(trialwatch)
    assert steps_of(after) == LATER_STEPS
