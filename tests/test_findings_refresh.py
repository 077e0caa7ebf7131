"""A finding that stays true stays current: when its rule still holds with another summary
or detail, the stored finding is refreshed in place (SQLite and PostgreSQL), without a change
event (the contract's kinds are closed); its day counts are worked out when it is shown."""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import twconfig
from bs4 import BeautifulSoup
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from starlette.testclient import TestClient

from service import views
from service.app import build_app
from service.models import StoredChange
from service.monitor import Monitor
from service.notify.render import Message, StudyChanges, render
from service.registry.ctgov import CtgovClient
from service.settings import CtgovSettings, FindingsSettings, Subscription, load_settings
from service.store import Store
from service.web.app import create_app

SWITCHED = "NCT04267848"  # 1,210 anticipated: completed with fewer is a shortfall


def real(study_id: str) -> dict[str, Any]:
    return json.loads((TESTS_DATA / "findings" / f"{study_id}.json").read_text())  # type: ignore[no-any-return]


def completed_with(count: int) -> dict[str, Any]:
    record = copy.deepcopy(real(SWITCHED))
    ps = record["protocolSection"]
    ps["statusModule"]["overallStatus"] = "COMPLETED"
    ps["designModule"]["enrollmentInfo"] = {"count": count, "type": "ACTUAL"}
    return record


class Watch:
    def __init__(self, registry: Emulator, store: Store, http: httpx.Client) -> None:
        self.today = datetime(2026, 1, 5, 6, tzinfo=UTC)
        settings = CtgovSettings(
            api_url=registry.api_url, history_url=registry.history_url, history=False
        )
        self.store = store
        self.monitor = Monitor(
            store,
            CtgovClient(http, settings),
            clock=lambda: self.today,
            settings=settings,
            subscriptions=[Subscription(channel="hook")],
            findings=FindingsSettings(),
        )

    def sync(self, day: str) -> set[tuple[str, str]]:
        self.today = datetime.fromisoformat(day).replace(hour=6, tzinfo=UTC)
        return {(c.kind, c.field) for c in self.monitor.sync().changes}

    def shortfall(self) -> Any:
        [found] = [f for f in self.store.list_findings() if f.rule == "enrollment_shortfall"]
        return found


@pytest.fixture
def watch(
    emulator_factory: Callable[..., Emulator], database_url: str
) -> Iterator[tuple[Emulator, Watch]]:
    registry = emulator_factory()
    registry.publish(real(SWITCHED), date="2025-12-01")
    store = Store.open(database_url)
    store.add_watches("ctgov", [SWITCHED], [], datetime(2026, 1, 1, tzinfo=UTC))
    with httpx.Client() as http:
        yield registry, Watch(registry, store, http)
    store.close()


def test_a_finding_that_still_holds_with_other_figures_is_refreshed_in_place(
    watch: tuple[Emulator, Watch],
) -> None:
    registry, tw = watch
    tw.sync("2026-01-05")
    registry.publish(completed_with(500), date="2026-02-01")
    assert ("finding_opened", "finding:enrollment_shortfall") in tw.sync("2026-02-02")
    first = tw.shortfall()
    assert first.detail["actual"] == 500 and "500 of 1210" in first.summary

    registry.publish(completed_with(400), date="2026-03-01")
    events = tw.sync("2026-03-02")
    assert not {kind for kind, field in events if field == "finding:enrollment_shortfall"}
    now = tw.shortfall()
    assert now.state == "open" and now.detail["actual"] == 400
    assert "400 of 1210" in now.summary and "500" not in now.summary
    assert now.opened_at == first.opened_at  # the same finding, not a new one
    assert len(tw.store.list_findings(rule="enrollment_shortfall")) == 1
    # and a finding_opened event from before still carries the evidence of its day
    opened = [c for c in tw.store.list_changes() if c.kind == "finding_opened"]
    assert opened and opened[0].new["actual"] == 500  # type: ignore[index]


def test_a_review_that_finds_the_same_finding_writes_nothing(
    watch: tuple[Emulator, Watch],
) -> None:
    registry, tw = watch
    tw.sync("2026-01-05")
    registry.publish(completed_with(500), date="2026-02-01")
    tw.sync("2026-02-02")
    before = tw.shortfall()
    retitled = completed_with(500)
    retitled["protocolSection"]["identificationModule"]["briefTitle"] += " (retitled)"
    registry.publish(retitled, date="2026-03-01")
    assert ("field_changed", "finding:enrollment_shortfall") not in tw.sync("2026-03-02")
    assert tw.shortfall() == before


# ---- shown: the days counted on the day shown, the evidence in words ----------------------

OVERDUE, STALE = "NCT03418623", "NCT02513394"  # results overdue; ACTIVE_NOT_RECRUITING, stale
RAW = re.compile(r"\b[A-Z]+(?:_[A-Z]+)+\b|primary_completion_date|\bACTUAL\b|\bESTIMATED\b")


@pytest.fixture
def shown(emulator_factory: Callable[..., Emulator], database_url: str, tmp_path: Path) -> Any:
    registry = emulator_factory()
    for study_id in (OVERDUE, STALE):
        registry.publish(real(study_id))
    config = twconfig.ctgov(registry.api_url, registry.history_url) + twconfig.table(
        "[findings]", enabled=True
    )
    env = twconfig.environment(tmp_path, config, database_url)
    run = twconfig.runner(env)
    assert run("watch", "add", OVERDUE, STALE).exit_code == 0
    assert run("sync").exit_code == 0
    return env


def page_on(env: dict[str, str], day: str, path: str) -> str:
    moment = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
    app = build_app(load_settings(Path(env["TRIALWATCH_CONFIG"]), env), clock=lambda: moment)
    try:
        with TestClient(create_app(app), client=("127.0.0.1", 1234)) as client:
            answer = client.get(path)
            assert answer.status_code == 200
            return answer.text
    finally:
        app.close()


def overdue_finding(env: dict[str, str]) -> Any:
    store = Store.open(env["TRIALWATCH_DATABASE_URL"])
    try:
        [found] = store.list_findings(study_id=OVERDUE, rule="results_overdue")
        return found
    finally:
        store.close()


def test_the_days_since_a_deadline_are_counted_on_the_day_shown(shown: Any) -> None:
    found = overdue_finding(shown)
    due = date.fromisoformat(found.detail.get("due_date") or found.detail["deadline"])
    for day in ("2026-03-01", "2026-09-01"):
        ago = (date.fromisoformat(day) - due).days
        phrase = f"due {due.isoformat()}, {ago:,} days ago"
        assert phrase in page_on(shown, day, "/findings")
        assert f"({ago:,} days ago)" in page_on(shown, day, f"/studies/{OVERDUE}")
        moment = datetime.fromisoformat(day).replace(tzinfo=UTC)
        table = views.findings_table([found], width=400, today=moment.date())
        assert phrase in render_text(table)
    assert overdue_finding(shown) == found  # nothing stored moved: the count is the showing's


def render_text(table: Any) -> str:
    from rich.console import Console

    console = Console(width=400, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def test_pages_and_emails_show_the_evidence_in_words(shown: Any) -> None:
    for path in ("/findings", f"/studies/{STALE}", f"/studies/{OVERDUE}", "/changes"):
        text = BeautifulSoup(page_on(shown, "2026-03-01", path), "html.parser").get_text(" ")
        assert not RAW.findall(text), (path, RAW.findall(text))
    findings_page = page_on(shown, "2026-03-01", "/findings")
    assert "Primary completion" in findings_page and "active, not recruiting" in findings_page
    store = Store.open(shown["TRIALWATCH_DATABASE_URL"])
    try:
        events = [c for c in store.list_changes() if c.kind.startswith("finding_")]
    finally:
        store.close()
    assert {c.study_id for c in events} == {OVERDUE, STALE}
    for study_id in (OVERDUE, STALE):
        message = Message(
            event_id=f"evt-{study_id}",
            created_at=datetime(2026, 3, 1, tzinfo=UTC),
            kind="study.changed",
            studies=[
                StudyChanges(
                    study_id=study_id, changes=[c for c in events if c.study_id == study_id]
                )
            ],
        )
        rendered = render(message)
        html_text = BeautifulSoup(rendered.html, "html.parser").get_text(" ")
        for shown_text in (html_text, rendered.text):
            assert not RAW.findall(shown_text), RAW.findall(shown_text)
        if study_id == STALE:
            assert "Status: active, not recruiting" in rendered.text
            assert "active, not recruiting" in html_text


def test_a_resolved_finding_is_shown_as_resolved_not_struck_through(shown: Any) -> None:
    found = overdue_finding(shown)
    opened = StoredChange.model_validate(
        {
            "id": 1,
            "registry": "ctgov",
            "study_id": OVERDUE,
            "kind": "finding_resolved",
            "field": "finding:results_overdue",
            "old": found.detail,
            "new": None,
            "severity": "high",
            "summary": "Finding resolved (results overdue): …",
            "detected_at": datetime(2026, 3, 1, tzinfo=UTC),
        }
    )
    message = Message(
        event_id="evt-resolved",
        created_at=datetime(2026, 3, 1, tzinfo=UTC),
        kind="study.changed",
        studies=[StudyChanges(study_id=OVERDUE, changes=[opened])],
    )
    rendered = render(message)
    assert "<del" not in rendered.html and "line-through" not in rendered.html
    assert "Resolved:" in rendered.html and "Resolved: the rule no longer holds" in rendered.text
    assert "days ago" not in rendered.text  # a resolved finding's deadline no longer counts
