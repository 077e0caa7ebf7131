"""Transparency findings through sync, the store, `trialwatch findings` and notifications,
on real records (tests/data/findings, from the reference set) edited as the registry edits."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from notify_servers import WebhookReceiver

from service.monitor import Monitor
from service.registry.ctgov import CtgovClient
from service.settings import CtgovSettings, FindingsSettings, Subscription
from service.store import Store

OVERDUE, SWITCHED, POSTED = "NCT03418623", "NCT04267848", "NCT00763412"
Edit = Callable[[dict[str, Any]], None]


def real(study_id: str) -> dict[str, Any]:
    return json.loads((TESTS_DATA / "findings" / f"{study_id}.json").read_text())  # type: ignore[no-any-return]


def edited(record: dict[str, Any], *edits: Edit) -> dict[str, Any]:
    copied = copy.deepcopy(record)
    for edit in edits:
        edit(copied)
    return copied


def results_submitted(record: dict[str, Any]) -> None:
    record["protocolSection"]["statusModule"]["resultsFirstSubmitDate"] = "2026-11-18"
    record["hasResults"] = True


def adjudicated(record: dict[str, Any]) -> None:
    record["protocolSection"]["outcomesModule"]["primaryOutcomes"][0]["measure"] += (
        " (centrally adjudicated)"
    )


def completed_short(record: dict[str, Any]) -> None:
    record["protocolSection"]["statusModule"]["overallStatus"] = "COMPLETED"
    record["protocolSection"]["designModule"]["enrollmentInfo"] = {"count": 500, "type": "ACTUAL"}


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    emulator = emulator_factory()
    for study_id in (OVERDUE, SWITCHED, POSTED):
        emulator.publish(real(study_id))
    return emulator


@pytest.fixture
def trialwatch(
    registry: Emulator, webhook_receiver: WebhookReceiver, database_url: str, tmp_path: Path
) -> twconfig.Run:
    config = (
        twconfig.ctgov(registry.api_url, registry.history_url)
        + twconfig.table("[findings]", enabled=True)
        + twconfig.webhook(webhook_receiver.url)
        + twconfig.subscription("hook", kinds=["finding_opened", "finding_resolved"])
    )
    run = twconfig.runner(twconfig.environment(tmp_path, config, database_url))
    assert run("watch", "add", OVERDUE, SWITCHED, POSTED).exit_code == 0
    return run


def findings(trialwatch: twconfig.Run, *args: str) -> list[dict[str, Any]]:
    result = trialwatch("findings", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def states(found: list[dict[str, Any]], study_id: str, rule: str) -> list[str]:
    return [f["state"] for f in found if f["study_id"] == study_id and f["rule"] == rule]


def test_findings_open_and_resolve_as_the_records_change(
    trialwatch: twconfig.Run, registry: Emulator, webhook_receiver: WebhookReceiver
) -> None:
    assert trialwatch("sync").exit_code == 0
    first = findings(trialwatch)
    assert states(first, OVERDUE, "results_overdue") == ["open"]
    [overdue] = [f for f in first if f["rule"] == "results_overdue"]
    assert overdue["detail"]["due_date"] == "2021-03-13" and "FDAAA" in overdue["source"]
    assert overdue["detail"]["overdue_after"] == "2021-04-12"
    assert overdue["historical"] is True  # found on first sight: stored, not alerted
    assert trialwatch("notify").exit_code == 0
    assert webhook_receiver.requests == []

    registry.publish(edited(real(OVERDUE), results_submitted), date="2026-11-20")
    registry.publish(edited(real(SWITCHED), adjudicated), date="2026-01-10")
    assert trialwatch("sync").exit_code == 0
    registry.publish(edited(real(SWITCHED), adjudicated, completed_short), date="2026-11-21")
    assert trialwatch("sync").exit_code == 0

    after = findings(trialwatch)
    assert states(after, OVERDUE, "results_overdue") == ["resolved"]
    assert states(after, SWITCHED, "primary_outcome_changed_after_start") == ["open"]
    assert states(after, SWITCHED, "enrollment_shortfall") == ["open"]
    for study_id in (SWITCHED, POSTED):
        assert states(after, study_id, "results_overdue") == []
    # primary completion 2025-12-15 (estimated): due 2026-12-15, so due soon on first sight
    assert [f["rule"] for f in findings(trialwatch, "--open", "--study", SWITCHED)] == [
        "results_due_soon",
        "primary_outcome_changed_after_start",
        "enrollment_shortfall",
    ]

    changes = json.loads(trialwatch("changes", "--json").stdout)
    events = {(c["study_id"], c["kind"], c["field"]) for c in changes}
    assert (OVERDUE, "finding_opened", "finding:results_overdue") in events
    assert (OVERDUE, "finding_resolved", "finding:results_overdue") in events
    assert trialwatch("notify").exit_code == 0
    notified = {
        (c["study_id"], c["kind"], c["field"])
        for request in webhook_receiver.requests
        for c in json.loads(request.body)["changes"]
    }
    assert notified == {
        (OVERDUE, "finding_resolved", "finding:results_overdue"),
        # results submitted 2026-11-18, after the due date 2021-03-13: the Tracker's "late"
        (OVERDUE, "finding_opened", "finding:results_reported_late"),
        (SWITCHED, "finding_opened", "finding:primary_outcome_changed_after_start"),
        (SWITCHED, "finding_opened", "finding:enrollment_shortfall"),
    }


def test_the_human_listing_and_a_bad_rule(trialwatch: twconfig.Run) -> None:
    trialwatch("sync")
    listing = trialwatch("findings", "--open")
    assert listing.exit_code == 0 and OVERDUE in listing.stdout
    assert "results overdue" in listing.stdout
    bad = trialwatch("findings", "--rule", "overdue")
    assert bad.exit_code == 2 and "--rule 'overdue'" in bad.stderr


def test_subscriptions_can_name_the_rules_they_want(
    registry: Emulator, webhook_receiver: WebhookReceiver, database_url: str, tmp_path: Path
) -> None:
    config = (
        twconfig.ctgov(registry.api_url, registry.history_url, history=False)
        + twconfig.table("[findings]", enabled=True)
        + twconfig.webhook(webhook_receiver.url)
        + twconfig.subscription("hook", kinds=["*"], findings=["enrollment_shortfall"])
    )
    run = twconfig.runner(twconfig.environment(tmp_path, config, database_url))
    run("watch", "add", OVERDUE, SWITCHED)
    run("sync")
    registry.publish(edited(real(OVERDUE), results_submitted), date="2026-11-20")
    registry.publish(edited(real(SWITCHED), completed_short), date="2026-11-21")
    run("sync")
    run("notify")
    kinds = {
        (c["kind"], c["field"])
        for request in webhook_receiver.requests
        for c in json.loads(request.body)["changes"]
        if c["kind"].startswith("finding_")
    }
    assert kinds == {("finding_opened", "finding:enrollment_shortfall")}
    unknown = twconfig.subscription("hook", findings=["overdue"])
    path = tmp_path / "trialwatch.toml"
    path.write_text(path.read_text() + unknown)
    result = run("sync")
    assert result.exit_code == 2 and "unknown finding rule 'overdue'" in result.stderr


def test_results_become_overdue_on_the_day_without_the_record_changing(
    registry: Emulator, database_url: str
) -> None:
    # primary completion 2020-03-13: due 2021-03-13 (due soon from 30 days before it),
    # overdue after the TrialsTracker's 30 days' grace, from 2021-04-13
    days = iter(["2021-03-13", "2021-03-14", "2021-04-12", "2021-04-13", "2021-04-14"])
    today = [datetime(2021, 3, 1, 6, tzinfo=UTC)]
    store = Store.open(database_url)
    store.add_watches("ctgov", [OVERDUE], [], today[0])
    settings = CtgovSettings(
        api_url=registry.api_url, history_url=registry.history_url, history=False
    )
    with httpx.Client() as http:
        monitor = Monitor(
            store,
            CtgovClient(http, settings),
            clock=lambda: today[0],
            settings=settings,
            subscriptions=[Subscription(channel="hook")],
            findings=FindingsSettings(),
        )
        monitor.sync()
        assert [f.rule for f in store.list_findings(only_open=True)] == ["results_due_soon"]
        registry.reset_stats()
        seen = []
        for day in days:
            today[0] = datetime.fromisoformat(day).replace(hour=6, tzinfo=UTC)
            report = monitor.sync()
            seen.append({(c.kind, c.field) for c in report.changes})
    assert seen == [
        set(),
        {("finding_resolved", "finding:results_due_soon")},
        set(),
        {("finding_opened", "finding:results_overdue")},
        set(),
    ]
    assert registry.requests == 5  # one probe a cycle: the date, not the registry, moved
    store.close()


def test_the_report_shows_each_records_findings_with_their_source(
    trialwatch: twconfig.Run, tmp_path: Path
) -> None:
    trialwatch("sync")
    out = tmp_path / "report.html"
    assert trialwatch("report", OVERDUE, "--out", str(out)).exit_code == 0
    page = out.read_text()
    assert "Transparency findings" in page and "results overdue" in page.lower()
    assert "FDAAA 801" in page and "2021-03-13" in page
