"""A record's page (``/studies/{ID}``): the report's charts, facts, findings and seed table,
every stored version with the registry's compare links, every change with its visual diff and
an anchor the feeds link to; bad and unknown ids; escaping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from service.app import build_app
from service.models import Change, Snapshot
from service.settings import load_settings
from service.store import NewVersion, Store
from service.web.app import create_app
from web.conftest import DEMO_STUDY, MARKUP_STUDY, SEED_FILE, STATUS_STUDY, WebStore


def soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def stored_changes(web_store: WebStore, study_id: str) -> list[dict[str, Any]]:
    output = web_store.run("changes", "--study", study_id, "--json").output
    return json.loads(output)  # type: ignore[no-any-return]


def test_the_status_change_shows_with_its_diff_and_anchor(
    client: TestClient, web_store: WebStore
) -> None:
    answer = client.get(f"/studies/{STATUS_STUDY}")
    assert answer.status_code == 200
    page = soup(answer.text)
    change = next(
        c for c in stored_changes(web_store, STATUS_STUDY) if c["kind"] == "status_changed"
    )
    assert change["new"] == "RECRUITING"
    row = page.select_one(f"table.changes tr#change-{change['id']}")
    assert row is not None, "every change is anchored by its stored id"
    assert change["summary"] in row.get_text()
    assert row.select_one("ins.ins").get_text() == "Recruiting"
    assert row.select_one("del.del").get_text() == "Not yet recruiting"
    assert row.select_one("a.anchor")["href"] == f"#change-{change['id']}"
    facts = page.select_one("dl.facts").get_text()
    assert "Recruiting" in facts
    band = page.select("svg.chart rect[data-status]")
    assert {r["data-status"] for r in band} >= {"RECRUITING"}


def test_every_change_of_a_record_is_on_its_page_newest_first(
    client: TestClient, web_store: WebStore
) -> None:
    page = soup(client.get(f"/studies/{DEMO_STUDY}").text)
    shown = [
        int(row["id"].removeprefix("change-")) for row in page.select("table.changes tbody tr")
    ]
    stored = [c["id"] for c in stored_changes(web_store, DEMO_STUDY)]
    assert shown == stored[::-1]
    assert all(page.select_one(f"#change-{i}") for i in stored)


def test_the_demo_record_shows_its_four_versions_and_compare_links(client: TestClient) -> None:
    page = soup(client.get(f"/studies/{DEMO_STUDY}").text)
    rows = page.select("table.versions tbody tr")
    assert [r.select_one("td").get_text() for r in rows] == ["v3", "v2", "v1", "v0"]
    assert [r.select_one("td[data-label=Posted]").get_text() for r in rows] == [
        "2024-01-10",
        "2023-09-15",
        "2023-03-01",
        "2022-11-08",
    ]
    links = [a["href"] for a in page.select("table.versions a")]
    assert links == [
        f"https://clinicaltrials.gov/study/{DEMO_STUDY}?tab=history&a=2&b=3",
        f"https://clinicaltrials.gov/study/{DEMO_STUDY}?tab=history&a=1&b=2",
        f"https://clinicaltrials.gov/study/{DEMO_STUDY}?tab=history&a=0&b=1",
    ]
    assert rows[-1].select_one("td[data-label='On the registry']").get_text() == "–"
    enrollment = [r.select_one("td[data-label=Enrollment]").get_text() for r in rows]
    assert enrollment == ["30 (estimated)", "45 (estimated)", "45 (estimated)", "30 (estimated)"]
    assert rows[0].select_one("span.swatch")  # the status, with the report's colour


def test_the_report_parts_are_drawn(client: TestClient) -> None:
    page = soup(client.get(f"/studies/{DEMO_STUDY}").text)
    charts = page.select("figure svg.chart.size-wide")
    assert len(charts) == 3  # status band, enrollment, dates
    narrow = page.select("figure svg.chart.size-narrow")  # each drawn for a phone too
    assert [c["aria-label"] for c in narrow] == [c["aria-label"] for c in charts]
    assert all(c["viewbox"].startswith("0 0 360 ") for c in narrow)
    assert {c["aria-label"] for c in charts} == {
        "Overall status over time",
        "Enrollment by version",
        "Start and completion dates by version",
    }
    assert page.select_one("dl.facts")
    assert "week 24" in page.select_one("table.outcomes").get_text()
    findings = page.select_one("#findings + .table-wrap table.findings").get_text()
    assert "Primary outcome changed after the start" in findings  # the rule in words
    seed = page.select_one("div.seed")
    assert seed is not None and f"Seed {SEED_FILE.stem}" in seed.get_text()
    assert "Publication reports" in seed.select_one("table").get_text()
    assert page.select_one("p.watch a.chip")["href"] == f"/?seed={SEED_FILE.stem}"


def test_changes_are_shown_as_visual_diffs(client: TestClient, web_store: WebStore) -> None:
    page = soup(client.get(f"/studies/{DEMO_STUDY}").text)
    changes = {c["id"]: c for c in stored_changes(web_store, DEMO_STUDY)}
    enrollment = next(i for i, c in changes.items() if c["kind"] == "enrollment_changed")
    row = page.select_one(f"#change-{enrollment}")
    old, new = changes[enrollment]["old"], changes[enrollment]["new"]
    assert (row.select_one("del.del").get_text(), row.select_one("ins.ins").get_text()) == (
        str(old),
        str(new),
    )
    # a text reworded is a word diff: removed and added words among the words kept
    words = page.select("div.word-diff")
    assert words and any(w.select("del.del") and w.select("ins.ins") for w in words)
    assert not page.select("[style*=background]:not(.swatch)")  # classes, not the email's styles


def test_the_page_head_names_the_records_feed(client: TestClient) -> None:
    page = soup(client.get(f"/studies/{DEMO_STUDY}").text)
    feed = page.select_one('head link[rel=alternate][type="application/atom+xml"]')["href"]
    assert feed == f"/feeds/changes.atom?study={DEMO_STUDY}"
    assert page.select_one("p.links a[href^='/feeds/']")["href"] == feed


@pytest.mark.parametrize("bad", ["NCT123", "bad", "NCT0560566X", "%3Cscript%3E", "NCT%EF%BC%90"])
def test_a_bad_id_is_a_one_line_400(client: TestClient, bad: str) -> None:
    answer = client.get(f"/studies/{bad}")
    assert answer.status_code == 400
    error = soup(answer.text).select_one("p.error").get_text()
    assert "is not a" in error and "NCT05605665" in error and "\n" not in error
    assert "<script" not in answer.text.lower()


def test_an_id_is_normalised_and_an_unknown_one_is_404(client: TestClient) -> None:
    assert client.get(f"/studies/{DEMO_STUDY.lower()}").status_code == 200
    missing = client.get("/studies/NCT99999999")
    assert missing.status_code == 404
    assert "NCT99999999 is not watched" in soup(missing.text).select_one("p.error").get_text()


def test_registry_text_is_escaped_and_no_page_has_a_script(
    client: TestClient, web_store: WebStore
) -> None:
    answer = client.get(f"/studies/{MARKUP_STUDY}")
    assert answer.status_code == 200
    assert "&lt;script&gt;" in answer.text
    assert soup(answer.text).select_one("h1").get_text().startswith("<script>")
    assert "content-security-policy" in answer.headers
    assert "script-src" not in answer.headers["content-security-policy"]
    for study_id in web_store.watched:
        page = client.get(f"/studies/{study_id}")
        assert page.status_code == 200, study_id
        assert "<script" not in page.text.lower(), study_id


# ---- records without versions, or no longer watched --------------------------------------


@pytest.fixture
def odd_store(tmp_path: Path) -> Iterator[TestClient]:
    """NCT20000001 watched, never synced; NCT20000002 stored (a version whose raw record the
    normaliser refuses), then no longer watched."""
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    store = Store.open(url)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    store.add_watches("ctgov", ["NCT20000001", "NCT20000002"], ["team"], now)
    snapshot = Snapshot(study_id="NCT20000002", brief_title="Gone", overall_status="WITHDRAWN")
    added = Change(
        study_id="NCT20000002", kind="record_added", field="", severity="low", summary="Added"
    )
    store.save_version(
        NewVersion(
            registry="ctgov",
            snapshot=snapshot,
            raw={"protocolSection": {}},
            registry_version=None,
            last_update_posted="2026-02-27",
            fetched_at=now,
        ),
        [added],
        None,
    )
    store.remove_watches("ctgov", ["NCT20000002"])
    store.close()
    config = tmp_path / "trialwatch.toml"
    config.write_text("")
    app = build_app(load_settings(config, {"TRIALWATCH_DATABASE_URL": url}))
    try:
        with TestClient(create_app(app), client=("127.0.0.1", 1234)) as client:
            yield client
    finally:
        app.close()


def test_a_record_never_synced_has_a_page_that_says_so(odd_store: TestClient) -> None:
    page = soup(odd_store.get("/studies/NCT20000001").text)
    assert "No stored versions yet" in page.select_one("p.empty").get_text()
    assert page.select_one("p.watch a.chip").get_text() == "team"


def test_a_record_no_longer_watched_still_shows_its_history(odd_store: TestClient) -> None:
    answer = odd_store.get("/studies/NCT20000002")
    assert answer.status_code == 200
    page = soup(answer.text)
    assert "No longer watched" in page.select_one("p.watch").get_text()
    # its raw record does not normalise: the report's headline facts, titled by its id
    assert page.select_one("h1").get_text() == "NCT20000002"
    assert "Withdrawn" in page.select_one("dl.facts").get_text()
    rows = page.select("table.versions tbody tr")
    assert [r.select_one("td").get_text().strip() for r in rows] == ["v1 store"]
    assert not page.select("table.versions a")  # no registry number: nothing to compare
    assert page.select("table.changes tbody tr")
