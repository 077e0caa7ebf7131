"""``/changes``: every stored change, newest first, filtered by GET parameters and paged by
keyset; compared against what ``trialwatch changes --json`` prints for the same store.

The keyset and the record-level filters (tags in a JSON column) are also run on a small store
built through the Store API, once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from service.app import build_app
from service.models import SEVERITIES, Change, Route, Snapshot, StoredChange
from service.settings import load_settings
from service.store import ChangeFilter, NewVersion, Store
from service.web.app import create_app
from service.web.pages import encode_cursor
from web.conftest import DEMO_STUDY, MARKUP, MARKUP_STUDY, STATUS_STUDY, TAG, WebStore

SEED = "il2-rapamycin-ss-nct05605665"

# ---- what the CLI says -------------------------------------------------------------------------


def cli_json(web_store: WebStore, *args: str) -> Any:
    result = web_store.run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def tags_of(web_store: WebStore) -> dict[str, set[str]]:
    return {w["study_id"]: set(w["tags"]) for w in cli_json(web_store, "watch", "list")}


def expected_ids(web_store: WebStore, keep: Callable[[dict[str, Any]], bool]) -> list[int]:
    """The ids of the CLI's changes that ``keep`` keeps, newest first."""
    return sorted((c["id"] for c in cli_json(web_store, "changes") if keep(c)), reverse=True)


def api_ids(client: TestClient, query: str) -> list[int]:
    answer = client.get(f"/api/changes?size=500&all=yes&{query}")
    assert answer.status_code == 200, answer.text
    return [c["id"] for c in answer.json()]


def page_ids(client: TestClient, query: str) -> list[int]:
    """The change ids a page of /changes shows, by the anchors it links to."""
    answer = client.get(f"/changes?size=500&all=yes&{query}")
    assert answer.status_code == 200, answer.text
    soup = BeautifulSoup(answer.text, "html.parser")
    links = [a["href"] for a in soup.select("li.change-entry .change-head a")]
    return [int(str(href).rsplit("#change-", 1)[1]) for href in links]


# ---- the page --------------------------------------------------------------------------------


def test_the_page_lists_the_status_change_with_its_diff_and_links(
    client: TestClient, web_store: WebStore
) -> None:
    status = next(
        c
        for c in cli_json(web_store, "changes")
        if c["kind"] == "status_changed" and c["study_id"] == STATUS_STUDY
    )
    answer = client.get("/changes")
    assert answer.status_code == 200
    soup = BeautifulSoup(answer.text, "html.parser")
    anchor = soup.find("a", href=f"/studies/{STATUS_STUDY}#change-{status['id']}")
    assert anchor is not None and anchor.text == STATUS_STUDY
    entry = anchor.find_parent("li")
    assert entry is not None
    text = entry.get_text(" ", strip=True)
    assert "Overall status: Not yet recruiting → Recruiting" in text
    assert entry.select_one(".pill.sev-medium") is not None
    assert entry.select_one("del.del").text == "Not yet recruiting"
    assert entry.select_one("ins.ins").text == "Recruiting"
    hrefs = [str(a["href"]) for a in entry.select("a")]
    assert any(h.endswith(f"{STATUS_STUDY}?tab=history&a=0&b=1") for h in hrefs)  # compare
    assert entry.select_one("time")["datetime"] == status["detected_at"]
    assert "versions 0 → 1" in text
    # the feed of these changes, in the head and on the page
    assert soup.select_one('link[rel=alternate][type="application/atom+xml"]')["href"] == (
        "/feeds/changes.atom"
    )
    assert soup.select_one("a.feed[href='/feeds/changes.atom']") is not None
    assert not soup.select("script")


def test_the_page_is_newest_first_and_marks_historical_changes(
    client: TestClient, web_store: WebStore
) -> None:
    every = cli_json(web_store, "changes")
    assert page_ids(client, "") == sorted((c["id"] for c in every), reverse=True)[:500]
    historical = next(c for c in every if c["historical"])
    soup = BeautifulSoup(client.get("/changes?size=500&all=yes").text, "html.parser")
    link = soup.find("a", href=f"/studies/{historical['study_id']}#change-{historical['id']}")
    assert link is not None
    assert "history" in link.find_parent("li").get_text(" ")


def test_first_sightings_and_history_are_left_out_unless_asked_for(
    client: TestClient, web_store: WebStore
) -> None:
    every = cli_json(web_store, "changes")
    quiet = [c["id"] for c in every if c["kind"] != "record_added" and not c["historical"]]
    assert any(c["kind"] == "record_added" for c in every) and any(c["historical"] for c in every)
    # as notifications leave them out: the page and the feed (the JSON twin with all=no; by
    # default it lists every change, as `changes --json` does)
    assert api_ids_default(client, "all=no") == sorted(quiet, reverse=True)
    assert api_ids_default(client, "") == sorted((c["id"] for c in every), reverse=True)
    page = client.get("/changes?size=500")
    listed = BeautifulSoup(page.text, "html.parser").select_one("ol.change-list").get_text()
    assert "Now watching" not in listed
    shown = BeautifulSoup(page.text, "html.parser").select_one("p.count")
    assert "without first sightings and history" in shown.text
    assert shown.select_one("a")["href"] == "/changes?all=yes&size=500"
    feed = client.get("/feeds/changes.atom")
    assert "Now watching" not in feed.text and feed.text.count("<entry>") == min(len(quiet), 50)
    # the filter brings them back; asking for the kind shows first sightings too
    assert api_ids_default(client, "all=yes") == sorted((c["id"] for c in every), reverse=True)
    added = [c["id"] for c in every if c["kind"] == "record_added"]
    assert api_ids_default(client, "kind=record_added&all=no") == sorted(added, reverse=True)
    assert "Now watching" in client.get("/feeds/changes.atom?all=yes").text
    form = BeautifulSoup(client.get("/changes?all=yes").text, "html.parser")
    assert form.select_one("input[type=checkbox][name=all]").has_attr("checked")


def api_ids_default(client: TestClient, query: str) -> list[int]:
    answer = client.get(f"/api/changes?size=500&{query}")
    assert answer.status_code == 200, answer.text
    return [c["id"] for c in answer.json()]


def test_the_form_uses_the_same_selectors_as_the_list(client: TestClient) -> None:
    forms = [
        BeautifulSoup(client.get(path).text, "html.parser").select_one("form.filters")
        for path in ("/", "/changes")
    ]
    for name in ("tag", "seed"):
        assert all(form.select_one(f"input[name={name}]") is not None for form in forms)
    # a saved search is picked from the list of saved searches on both pages
    assert all(form.select_one("select[name=query]") is not None for form in forms)


def test_the_form_keeps_the_filters_and_the_feed_link_follows_them(client: TestClient) -> None:
    answer = client.get("/changes?kind=status_changed&study=nct06171568&min_severity=medium")
    soup = BeautifulSoup(answer.text, "html.parser")
    form = soup.select_one("form.filters")
    assert form["method"] == "get" and form["action"] == "/changes"
    assert form.select_one("input[name=study]")["value"] == STATUS_STUDY  # normalised
    assert form.select_one("select[name=kind] option[selected]")["value"] == "status_changed"
    assert form.select_one("select[name=min_severity] option[selected]")["value"] == "medium"
    feed = "/feeds/changes.atom?kind=status_changed&min_severity=medium&study=NCT06171568"
    assert soup.select_one('link[type="application/atom+xml"]')["href"] == feed
    assert soup.select_one("a.feed")["href"] == feed


# ---- the filters -------------------------------------------------------------------------------


def _since(web_store: WebStore) -> str:
    """A time between two detections (the middle change's), so the filter cuts somewhere."""
    times = sorted(c["detected_at"] for c in cli_json(web_store, "changes"))
    return times[len(times) // 2]


FILTERS: list[tuple[str, Callable[[dict[str, Any], dict[str, set[str]]], bool]]] = [
    ("kind=status_changed", lambda c, t: c["kind"] == "status_changed"),
    (
        "kind=date_changed&study=NCT05605665",
        lambda c, t: c["kind"] == "date_changed" and c["study_id"] == DEMO_STUDY,
    ),
    ("min_severity=medium", lambda c, t: c["severity"] in ("medium", "high")),
    ("min_severity=high", lambda c, t: c["severity"] == "high"),
    ("severity=low", lambda c, t: c["severity"] == "low"),
    ("severity=low&min_severity=medium", lambda c, t: False),
    ("study=nct05605665", lambda c, t: c["study_id"] == DEMO_STUDY),
    (f"tag={TAG}", lambda c, t: TAG in t.get(c["study_id"], set())),
    (f"seed={SEED}", lambda c, t: f"seed:{SEED}" in t.get(c["study_id"], set())),
    (
        f"tag={TAG}&min_severity=high",
        lambda c, t: TAG in t.get(c["study_id"], set()) and c["severity"] == "high",
    ),
    ("tag=transparenc", lambda c, t: False),  # a tag is matched whole, never a part of one
    ("query=no-such-search", lambda c, t: False),
    ("study=NCT99999999", lambda c, t: False),
]


@pytest.mark.parametrize(("query", "keep"), FILTERS, ids=[q for q, _ in FILTERS])
def test_every_filter_shows_exactly_the_changes_it_names(
    client: TestClient,
    web_store: WebStore,
    query: str,
    keep: Callable[[dict[str, Any], dict[str, set[str]]], bool],
) -> None:
    tags = tags_of(web_store)
    wanted = expected_ids(web_store, lambda c: keep(c, tags))
    assert api_ids(client, query) == wanted
    assert page_ids(client, query) == wanted


def test_since_shows_the_changes_detected_at_or_after_it(
    client: TestClient, web_store: WebStore
) -> None:
    since = _since(web_store)
    moment = datetime.fromisoformat(since)
    wanted = expected_ids(web_store, lambda c: datetime.fromisoformat(c["detected_at"]) >= moment)
    assert 0 < len(wanted) < len(cli_json(web_store, "changes"))
    assert api_ids(client, "since=" + since.replace("+", "%2B")) == wanted
    day = moment.date()  # a date is midnight UTC: everything from that day on
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    assert api_ids(client, f"since={day.isoformat()}") == expected_ids(
        web_store, lambda c: datetime.fromisoformat(c["detected_at"]) >= midnight
    )


def test_the_seed_and_tag_filters_select_the_records_their_tags_name(
    client: TestClient, web_store: WebStore
) -> None:
    seeded = {c["study_id"] for c in client.get(f"/api/changes?seed={SEED}&all=yes").json()}
    assert seeded == {DEMO_STUDY}
    tagged = {c["study_id"] for c in client.get(f"/api/changes?tag={TAG}&size=500&all=yes").json()}
    assert tagged and not tagged & {DEMO_STUDY, STATUS_STUDY, MARKUP_STUDY}


# ---- pagination --------------------------------------------------------------------------------


def walk(client: TestClient, url: str, next_of: Callable[[Any], str | None]) -> list[list[int]]:
    """Every page from ``url`` on, following next links, with a loop guard."""
    pages: list[list[int]] = []
    while url:
        assert len(pages) < 100, "the next links do not end"
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        pages.append(_ids_on(answer, as_json=url.startswith("/api/")))
        url = next_of(answer) or ""
    return pages


def _ids_on(answer: Any, *, as_json: bool) -> list[int]:
    """The change ids of a JSON page, or those an HTML page anchors to."""
    if as_json:
        return [c["id"] for c in answer.json()]
    links = BeautifulSoup(answer.text, "html.parser").select(".change-head a")
    return [int(str(a["href"]).rsplit("-", 1)[1]) for a in links]


def _link_next(answer: Any) -> str | None:
    return answer.links.get("next", {}).get("url")


def _page_next(answer: Any) -> str | None:
    found = BeautifulSoup(answer.text, "html.parser").select_one("nav.pages a[rel=next]")
    return str(found["href"]) if found else None


@pytest.mark.parametrize("start", ["/api/changes?size=3&all=yes", "/changes?size=3&all=yes"])
def test_pages_of_three_walk_every_change_once_newest_first(
    client: TestClient, web_store: WebStore, start: str
) -> None:
    pages = walk(client, start, _link_next if start.startswith("/api/") else _page_next)
    seen = [i for page in pages for i in page]
    every = sorted((c["id"] for c in cli_json(web_store, "changes")), reverse=True)
    assert seen == every  # each once, in order
    assert all(len(page) == 3 for page in pages[:-1]) and 1 <= len(pages[-1]) <= 3


def test_pages_walk_oldest_first_and_keep_their_filters(
    client: TestClient, web_store: WebStore
) -> None:
    pages = walk(client, "/api/changes?size=2&order=oldest&study=NCT05605665&all=yes", _link_next)
    seen = [i for page in pages for i in page]
    assert seen == sorted(expected_ids(web_store, lambda c: c["study_id"] == DEMO_STUDY))


def test_the_next_page_link_is_a_keyset_cursor_not_an_offset(client: TestClient) -> None:
    answer = client.get("/api/changes?size=2")
    last = answer.json()[-1]["id"]
    assert f"cursor={encode_cursor([last])}" in answer.links["next"]["url"]
    assert "offset" not in answer.links["next"]["url"]


def test_a_first_page_link_appears_past_the_first_page(client: TestClient) -> None:
    first = client.get("/changes?size=2")
    later = client.get(_page_next(first) or "")
    soup = BeautifulSoup(later.text, "html.parser")
    assert any(a.text == "first page" and a["href"] == "/changes?size=2" for a in soup.select("a"))


# ---- bad input -----------------------------------------------------------------------------


BAD = [
    ("cursor=garbage!", "cursor"),
    ("cursor=" + encode_cursor(["x"]), "cursor"),
    ("cursor=" + encode_cursor([1, 2]), "cursor"),
    ("kind=status_change", "kind"),
    ("min_severity=huge", "min_severity"),
    ("severity=HIGH", "severity"),
    ("since=yesterday", "since"),
    ("since=9999-01-01", "since"),
    ("study=NCT123", "study"),
    ("query=Not_A_Name", "query"),
    ("size=0", "size"),
    ("order=sideways", "order"),
    ("tag=" + "x" * 201, "tag"),
]


@pytest.mark.parametrize(("query", "name"), BAD, ids=[n + ":" + q[:20] for q, n in BAD])
def test_a_bad_parameter_is_a_400_with_one_line_naming_it(
    client: TestClient, query: str, name: str
) -> None:
    page = client.get(f"/changes?{query}")
    assert page.status_code == 400
    message = BeautifulSoup(page.text, "html.parser").select_one("p.error").text
    assert message.startswith(f"{name}:") and "\n" not in message
    api = client.get(f"/api/changes?{query}")
    assert api.status_code == 400 and api.json() == {"error": message, "status": 400}
    if name in ("cursor", "size", "order"):
        return  # the feed is one document, the newest changes: it reads no paging
    feed = client.get(f"/feeds/changes.atom?{query}")
    assert feed.status_code == 400 and feed.text == f"400: {message}\n"


# ---- escaping ----------------------------------------------------------------------------------


def test_markup_in_a_title_is_shown_as_text(client: TestClient, web_store: WebStore) -> None:
    title = next(
        w["title"] for w in cli_json(web_store, "watch", "list") if w["study_id"] == MARKUP_STUDY
    )
    assert "<script>" in title  # as stored (the normaliser folds the rest of MARKUP away)
    answer = client.get(f"/changes?study={MARKUP_STUDY}&all=yes")
    assert answer.status_code == 200
    assert "<script>" not in answer.text and MARKUP not in answer.text
    assert "&lt;script&gt;" in answer.text
    soup = BeautifulSoup(answer.text, "html.parser")
    assert not soup.select("script") and not soup.select("img")
    assert soup.select_one(".change-title").text == title


# ---- the keyset on SQLite and PostgreSQL, through the Store API -------------------------------


T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def snapshot(study_id: str, title: str, status: str) -> Snapshot:
    return Snapshot(study_id=study_id, brief_title=title, overall_status=status)


def add_version(
    store: Store,
    study_id: str,
    number: int,
    changes: Sequence[Change],
    *,
    title: str = "A trial",
    when: datetime = T0,
    routes: Sequence[Route] = (),
) -> list[StoredChange]:
    """Store version ``number`` of a record (a new status each time) with ``changes``."""
    version = NewVersion(
        registry="ctgov",
        snapshot=snapshot(study_id, title, f"STATUS_{number}"),
        raw={},
        registry_version=number,
        last_update_posted="",
        fetched_at=when,
    )
    return store.save_version(version, changes, None, routes)


def status_change(
    study_id: str, number: int, severity: str = "medium", summary: str = ""
) -> Change:
    return Change(
        study_id=study_id,
        kind="status_changed",
        field="protocolSection.statusModule.overallStatus",
        old=f"STATUS_{number - 1}",
        new=f"STATUS_{number}",
        severity=severity,  # type: ignore[arg-type]
        summary=summary or f"Overall status: {number - 1} → {number}",
    )


STUDIES = ("NCT10000001", "NCT10000002", "NCT10000003")
ODD_TAG = 'we"ird %_tag\\'  # JSON escapes and LIKE wildcards: matched whole, as written


def fill(store: Store, versions: int = 4) -> list[StoredChange]:
    """Three records, ``versions`` versions each, interleaved; tags on two of them."""
    store.add_watches("ctgov", list(STUDIES), [], T0)
    store.add_watches("ctgov", [STUDIES[0]], ["alpha", ODD_TAG], T0)
    store.add_watches("ctgov", [STUDIES[1]], ["alpha-beta", "seed:s1"], T0)
    stored: list[StoredChange] = []
    for number in range(versions):
        for i, study in enumerate(STUDIES):
            when = T0 + timedelta(hours=number * 3 + i)
            changes = [status_change(study, number, SEVERITIES[(number + i) % 3])] if number else []
            stored += add_version(store, study, number, changes, when=when)
    return stored


@pytest.fixture
def small_store(database_url: str) -> Iterator[Store]:
    store = Store.open(database_url)
    try:
        yield store
    finally:
        store.close()


def _walk_store(store: Store, filters: ChangeFilter, size: int, newest: bool) -> list[int]:
    seen: list[int] = []
    after = None
    for _ in range(100):
        rows = store.browse_changes(filters, after_id=after, limit=size + 1, newest_first=newest)
        seen += [r.change.id for r in rows[:size]]
        if len(rows) <= size:
            return seen
        after = rows[size - 1].change.id
    raise AssertionError("the keyset does not end")


def test_the_keyset_walks_every_change_once_on_both_databases(small_store: Store) -> None:
    stored = fill(small_store)
    ids = sorted(c.id for c in stored)
    assert len(ids) == 9
    assert _walk_store(small_store, ChangeFilter(), 2, newest=True) == ids[::-1]
    assert _walk_store(small_store, ChangeFilter(), 4, newest=False) == ids
    first = small_store.browse_changes(ChangeFilter(), limit=1)[0]
    assert first.title == "A trial" and first.registry_versions


def test_record_filters_run_in_the_database_on_both(small_store: Store) -> None:
    stored = fill(small_store)

    def ids(**filters: Any) -> list[int]:
        return _walk_store(small_store, ChangeFilter(**filters), 2, newest=True)

    def of(*studies: str) -> list[int]:
        return sorted((c.id for c in stored if c.study_id in studies), reverse=True)

    assert ids(tags=("alpha",)) == of(STUDIES[0])  # not "alpha-beta"
    assert ids(tags=(ODD_TAG,)) == of(STUDIES[0])
    assert ids(tags=("seed:s1",)) == of(STUDIES[1])
    assert ids(tags=("alpha", "seed:s1")) == []  # every tag must hold
    assert ids(tags=("%",)) == [] and ids(tags=("alph",)) == []
    assert ids(study_id=STUDIES[2]) == of(STUDIES[2])
    assert ids(study_id=STUDIES[2], tags=("alpha",)) == []
    high = sorted((c.id for c in stored if c.severity == "high"), reverse=True)
    assert ids(severities=("high",)) == high
    assert ids(severities=()) == [] and ids(kinds=()) == []
    later = [c.id for c in stored if c.detected_at >= T0 + timedelta(hours=6)]
    assert ids(since=T0 + timedelta(hours=6)) == sorted(later, reverse=True)
    assert ids(kinds=("status_changed",), study_id=STUDIES[0]) == of(STUDIES[0])
    assert ids(kinds=("record_added",)) == []


def small_client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    """The web app over another store (a config file of its own, no channels)."""
    config = tmp_path / "small.toml"
    config.write_text("")
    app = build_app(load_settings(config, {"TRIALWATCH_DATABASE_URL": database_url}))
    try:
        with TestClient(create_app(app), client=("127.0.0.1", 1234)) as client:
            yield client
    finally:
        app.close()


def test_the_page_and_api_agree_with_the_store_on_both_databases(
    small_store: Store, database_url: str, tmp_path: Path
) -> None:
    stored = fill(small_store)
    for client in small_client(tmp_path, database_url):
        pages = walk(client, "/api/changes?size=4&tag=alpha", _link_next)
        assert [i for p in pages for i in p] == sorted(
            (c.id for c in stored if c.study_id == STUDIES[0]), reverse=True
        )
        assert [c["id"] for c in client.get("/api/changes?size=50").json()] == sorted(
            (c.id for c in stored), reverse=True
        )


def _page_previous(answer: Any) -> str | None:
    found = BeautifulSoup(answer.text, "html.parser").select_one("nav.pages a[rel=prev]")
    return str(found["href"]) if found else None


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_previous_links_walk_back_through_the_same_pages(client: TestClient, order: str) -> None:
    forward = walk(client, f"/changes?size=3&all=yes&order={order}", _page_next)
    assert len(forward) > 2
    # from the last page back to the first by the previous links: the same pages, reversed
    last = "/changes?size=3&all=yes&order=" + order
    for _ in range(len(forward) - 1):
        last = _page_next(client.get(last)) or ""
    assert _page_previous(client.get(f"/changes?size=3&all=yes&order={order}")) is None
    backward = walk(client, last, _page_previous)
    assert backward == forward[::-1]


def test_previous_links_walk_back_through_the_findings(client: TestClient) -> None:
    def ids(answer: Any) -> list[str]:
        soup = BeautifulSoup(answer.text, "html.parser")
        return [li.get_text(" ", strip=True)[:120] for li in soup.select("li.finding-entry")]

    pages, url = [], "/findings?size=2"
    while url:
        answer = client.get(url)
        pages.append(ids(answer))
        url = _page_next(answer) or ""
    assert len(pages) > 2
    back: list[list[str]] = []
    url = _page_previous(answer) or ""
    while url:
        answer = client.get(url)
        back.append(ids(answer))
        url = _page_previous(answer) or ""
    assert back == pages[:-1][::-1]
