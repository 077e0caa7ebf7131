"""The watch list (``/``) and its JSON twin (``/api/studies``): what each row shows, the filters,
the orders, keyset pagination (every record exactly once, whatever the page size), bad
parameters as one-line 400s, and escaping.

Two stores: the populated one of ``conftest.py`` (real records, synced by the CLI), and a small
one built here through the Store API, on SQLite and on PostgreSQL, whose records tie on their
last change, lack one, or were never synced, and whose tags look alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from bs4 import BeautifulSoup
from conftest import TESTS_DATA
from starlette.testclient import TestClient

from service.app import build_app
from service.findings.words import rule_words
from service.models import Change, Snapshot
from service.registry.ctgov_normalise import normalise
from service.settings import load_settings
from service.store import NewVersion, Store
from service.store import browse_records as browse
from service.web.app import create_app
from service.web.pages import encode_cursor
from service.web.records import ago
from web.conftest import DEMO_STUDY, MARKUP_STUDY, SEED_FILE, STATUS_STUDY, TAG, WebStore

PAGE_GUARD = 200  # pages a walk may take before the test calls it a loop


def soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def listed(html: str) -> list[str]:
    """The record ids of a list page, in the page's order."""
    rows = soup(html).select("table.records tbody tr")
    return [row.select_one("td a").get_text() for row in rows]


def cli_watches(web_store: WebStore) -> list[dict[str, Any]]:
    return json.loads(web_store.run("watch", "list", "--json").output)  # type: ignore[no-any-return]


def walk_html(client: TestClient, url: str) -> tuple[list[str], int]:
    """Every id a list shows from ``url`` on, following its next links; (ids, pages)."""
    ids: list[str] = []
    for pages in range(1, PAGE_GUARD + 1):
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        ids += listed(answer.text)
        link = soup(answer.text).select_one("a[rel=next]")
        if link is None:
            return ids, pages
        url = str(link["href"])
    raise AssertionError(f"no last page after {PAGE_GUARD} pages: the cursor loops")


def walk_json(client: TestClient, url: str) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    for pages in range(1, PAGE_GUARD + 1):
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        items += answer.json()
        link = answer.headers.get("link")
        if link is None:
            return items, pages
        assert link.endswith('>; rel="next"')
        url = link[1 : link.index(">")]
    raise AssertionError(f"no last page after {PAGE_GUARD} pages: the cursor loops")


# ---- the populated store ----------------------------------------------------------------


def test_the_list_shows_every_watched_record_with_its_status_title_and_change(
    client: TestClient, web_store: WebStore
) -> None:
    answer = client.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert sorted(listed(answer.text)) == sorted(web_store.watched)
    page = soup(answer.text)
    assert page.select_one("p.count").get_text().startswith(f"{len(web_store.watched)} records")
    rows = {row.select_one("td a").get_text(): row for row in page.select("table.records tr")[1:]}
    status = rows[STATUS_STUDY].select_one("td[data-label=Status]")
    assert status.get_text() == "Recruiting" and status.select_one("span.swatch")
    titles = {w["study_id"]: w["title"] for w in cli_watches(web_store)}
    since = {w["study_id"]: w["added_at"][:10] for w in cli_watches(web_store)}
    updated = registry_updates(web_store)
    for study_id, row in rows.items():
        assert row.select_one("td.title").get_text() == titles[study_id]
        assert row.select_one("a")["href"] == f"/studies/{study_id}"
        # the registry's last update of the record, not the day trialwatch first saw it;
        # since when it is watched apart
        cell = row.select_one("td[data-label='Last change']")
        assert cell.get_text().startswith(updated[study_id]) and cell.select_one("span.ago")
        assert cell.select_one("span.since").get_text() == f"watched since {since[study_id]}"
    assert updated[DEMO_STUDY] == "2024-01-10"  # as the registry posted its latest version
    assert rows[DEMO_STUDY].select_one("td[data-label=Seeds] a.chip")["href"] == (
        f"/?seed={SEED_FILE.stem}"
    )
    tagged = rows[next(i for i in web_store.watched if TAG in _tags(web_store, i))]
    assert tagged.select_one("td[data-label=Tags]").get_text() == TAG


def registry_updates(web_store: WebStore) -> dict[str, str]:
    """Each record's latest version's posting day, as the store keeps it."""
    store = Store.open(web_store.database_url)
    try:
        return {
            i: store.list_versions("ctgov", i)[-1].last_update_posted for i in web_store.watched
        }
    finally:
        store.close()


def _tags(web_store: WebStore, study_id: str) -> list[str]:
    return next(w["tags"] for w in cli_watches(web_store) if w["study_id"] == study_id)


def test_open_findings_are_counted_for_each_record(client: TestClient, web_store: WebStore) -> None:
    findings = json.loads(web_store.run("findings", "--open", "--json").output)
    expected: dict[str, set[str]] = {}
    for f in findings:
        expected.setdefault(f["study_id"], set()).add(f["rule"])
    page = soup(client.get("/").text)
    for row in page.select("table.records tbody tr"):
        study_id = row.select_one("td a").get_text()
        cell = row.select_one("td[data-label='Open findings']")
        assert cell.get_text() == str(len(expected.get(study_id, ())))
        if study_id in expected:
            rules = {r.strip() for r in cell.select_one("a")["title"].split(",")}
            assert rules == {rule_words(rule) for rule in expected[study_id]}  # in words


def expected_ids(web_store: WebStore, keep: Callable[[dict[str, Any]], bool]) -> list[str]:
    return sorted(w["study_id"] for w in cli_watches(web_store) if keep(w))


def open_rules(web_store: WebStore) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for f in json.loads(web_store.run("findings", "--open", "--json").output):
        found.setdefault(f["study_id"], set()).add(f["rule"])
    return found


def test_each_filter_keeps_exactly_the_records_it_names(
    client: TestClient, web_store: WebStore
) -> None:
    rules = open_rules(web_store)
    seed = SEED_FILE.stem
    title_part = "lariboisi"  # NCT06171568's title, in another case

    def mentions(text: str) -> Callable[[dict[str, Any]], bool]:
        return lambda w: text in (w["study_id"] + " " + w["title"]).lower()

    found = [  # each of these keeps some records, and not all
        ("status=RECRUITING", lambda w: w["overall_status"] == "RECRUITING"),
        ("status=COMPLETED", lambda w: w["overall_status"] == "COMPLETED"),
        (f"tag={TAG}", lambda w: TAG in w["tags"]),
        (f"seed={seed}", lambda w: f"seed:{seed}" in w["tags"]),
        ("q=nct0560", mentions("nct0560")),
        (f"q={title_part.upper()}", mentions(title_part)),
        ("q=script", mentions("script")),
        ("finding=any", lambda w: w["study_id"] in rules),
        ("finding=results_overdue", lambda w: "results_overdue" in rules.get(w["study_id"], ())),
    ]
    for query, keep in found:
        assert 0 < len(expected_ids(web_store, keep)) < len(web_store.watched), query
    cases: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
        *found,
        ("q=%25", mentions("%")),
        ("finding=enrollment_shortfall", lambda w: False),
        (
            f"tag={TAG}&finding=results_overdue&status=COMPLETED",
            lambda w: (
                TAG in w["tags"]
                and "results_overdue" in rules.get(w["study_id"], ())
                and w["overall_status"] == "COMPLETED"
            ),
        ),
        ("query=nothing-saved", lambda w: False),
        ("tag=transparenc", lambda w: False),  # a tag is matched whole
    ]
    for query, keep in cases:
        wanted = expected_ids(web_store, keep)
        shown = sorted(listed(client.get(f"/?{query}").text))
        assert shown == wanted, query
        api = client.get(f"/api/studies?{query}").json()
        assert sorted(item["study_id"] for item in api) == wanted, query
        count = soup(client.get(f"/?{query}").text).select_one("p.count").get_text()
        assert count.startswith(f"{len(wanted)} record"), query


def test_the_orders(client: TestClient, web_store: WebStore) -> None:
    watches = cli_watches(web_store)
    by_id = sorted(w["study_id"] for w in watches)
    assert listed(client.get("/").text) == by_id  # the default: watch list's order
    assert listed(client.get("/?sort=id").text) == by_id
    newest = sorted(watches, key=lambda w: (w["last_changed_at"], w["study_id"]), reverse=True)
    assert listed(client.get("/?sort=-changed").text) == [w["study_id"] for w in newest]
    oldest = sorted(watches, key=lambda w: (w["last_changed_at"], w["study_id"]))
    assert listed(client.get("/?sort=changed").text) == [w["study_id"] for w in oldest]
    by_status = sorted(watches, key=lambda w: (w["overall_status"], w["study_id"]))
    assert listed(client.get("/?sort=status").text) == [w["study_id"] for w in by_status]


@pytest.mark.parametrize("sort", ["id", "-changed", "changed", "status"])
def test_two_at_a_time_every_record_is_listed_exactly_once(
    client: TestClient, web_store: WebStore, sort: str
) -> None:
    whole = listed(client.get(f"/?sort={sort}&size=500").text)
    ids, pages = walk_html(client, f"/?sort={sort}&size=2")
    assert ids == whole and sorted(ids) == sorted(web_store.watched)
    assert pages == -(-len(whole) // 2)
    items, json_pages = walk_json(client, f"/api/studies?sort={sort}&size=2")
    assert [i["study_id"] for i in items] == whole and json_pages == pages


def test_a_later_page_links_back_to_the_first_and_keeps_the_filters(client: TestClient) -> None:
    first = soup(client.get(f"/?tag={TAG}&size=1&sort=-changed").text)
    following = str(first.select_one("a[rel=next]")["href"])
    query = parse_qs(urlsplit(following).query)
    assert query["tag"] == [TAG] and query["size"] == ["1"] and query["sort"] == ["-changed"]
    second = soup(client.get(following).text)
    back = parse_qs(urlsplit(str(second.select_one("p.count a")["href"])).query)
    assert "cursor" not in back and back["tag"] == [TAG]
    # sorting again starts from the first page: the cursor belongs to the old order
    sort_link = second.select_one("table.records th a")["href"]
    assert "cursor" not in parse_qs(urlsplit(str(sort_link)).query)


def test_the_json_twin_is_watch_list_json(client: TestClient, web_store: WebStore) -> None:
    answer = client.get("/api/studies?size=500")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == cli_watches(web_store)
    assert "link" not in answer.headers
    first = client.get("/api/studies?size=3")
    assert first.json() == cli_watches(web_store)[:3]
    assert first.headers["link"].startswith("</api/studies?cursor=")


def test_the_page_names_its_json_twin_and_feed(client: TestClient) -> None:
    page = soup(client.get(f"/?tag={TAG}&status=COMPLETED").text)
    twin = page.select_one('link[rel=alternate][type="application/json"]')["href"]
    assert urlsplit(str(twin)).path == "/api/studies"
    assert parse_qs(urlsplit(str(twin)).query) == {"tag": [TAG], "status": ["COMPLETED"]}
    feed = page.select_one('link[rel=alternate][type="application/atom+xml"]')["href"]
    assert feed == f"/feeds/changes.atom?tag={TAG}"


BAD_CURSOR = "cursor: not a cursor from this site (follow the page's next link)"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("cursor=garbage!", BAD_CURSOR),
        (f"cursor={encode_cursor([1, 2, 3])}", BAD_CURSOR),
        (f"cursor={encode_cursor(['id', None, 'ctgov', 5])}", BAD_CURSOR),
        (f"sort=-changed&cursor={encode_cursor(['id', None, 'ctgov', 'NCT1'])}", BAD_CURSOR),
        (f"sort=status&cursor={encode_cursor(['status', 'X', 'ctgov'])}", BAD_CURSOR),
        (f"sort=status&cursor={encode_cursor(['status', 5, 'ctgov', 'N'])}", BAD_CURSOR),
        (f"sort=changed&cursor={encode_cursor(['changed', 'soon', 'ctgov', 'NCT1'])}", BAD_CURSOR),
        (
            f"sort=changed&cursor={encode_cursor(['changed', '2026-01-01', 'ctgov', 'N'])}",
            BAD_CURSOR,
        ),
        ("sort=newest", "sort: 'newest' is not one of id, changed, -changed, status"),
        ("size=0", "size: '0' is not a number from 1 to 500"),
        ("size=501", "size: '501' is not a number from 1 to 500"),
        ("status=recruiting", "status: 'recruiting' is not a registry status"),
        ("finding=late", "finding: 'late' is not one of any, results_overdue"),
        ("q=" + "x" * 201, "q: longer than 200 characters"),
    ],
)
def test_a_bad_parameter_is_a_one_line_400(client: TestClient, query: str, message: str) -> None:
    page = client.get(f"/?{query}")
    assert page.status_code == 400
    error = soup(page.text).select_one("p.error").get_text()
    assert error.startswith(message) and "\n" not in error
    assert "Traceback" not in page.text
    api = client.get(f"/api/studies?{query}")
    assert api.status_code == 400
    assert api.json()["error"].startswith(message) and api.json()["status"] == 400


def test_a_cursor_of_another_order_is_refused_not_misread(client: TestClient) -> None:
    link = client.get("/api/studies?size=1&sort=-changed").headers["link"]
    cursor = parse_qs(urlsplit(link[1 : link.index(">")]).query)["cursor"][0]
    assert client.get(f"/api/studies?size=1&sort=-changed&cursor={cursor}").status_code == 200
    assert client.get(f"/api/studies?size=1&sort=status&cursor={cursor}").status_code == 400


def test_registry_text_is_escaped_and_no_page_has_a_script(
    client: TestClient, web_store: WebStore
) -> None:
    title = next(w["title"] for w in cli_watches(web_store) if w["study_id"] == MARKUP_STUDY)
    assert "<script>" in title  # the fixture's markup reached the store as text
    for path in ("/", "/?sort=-changed", f"/?q={MARKUP_STUDY}", "/?size=0"):
        answer = client.get(path)
        assert "<script" not in answer.text.lower(), path
        assert "content-security-policy" in answer.headers
    page = client.get(f"/?q={MARKUP_STUDY}").text
    assert "&lt;script&gt;" in page
    assert soup(page).select_one("td.title").get_text() == title
    # a filter value is registry-free but user text: escaped where the form shows it again
    echoed = client.get('/?q="><b>x').text
    assert 'value="&quot;&gt;&lt;b&gt;x"' in echoed and "<b>x" not in echoed


def test_nothing_here_writes(client: TestClient) -> None:
    for path in ("/", "/api/studies", f"/studies/{DEMO_STUDY}"):
        assert client.post(path).status_code == 405


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (5, "just now"),
        (-5, "just now"),
        (-3600, "in the future"),
        (90, "1 minute ago"),
        (7200, "2 hours ago"),
        (86_400 * 3, "3 days ago"),
        (86_400 * 65, "2 months ago"),
        (86_400 * 800, "2 years ago"),
    ],
)
def test_last_change_is_also_said_in_words(seconds: int, words: str) -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert ago(now - timedelta(seconds=seconds), now) == words


# ---- a store built here: ties, gaps, look-alike tags; SQLite and PostgreSQL --------------

T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
SMALL = 23
STATUSES = ("RECRUITING", "COMPLETED", "TERMINATED", "")


def small_id(i: int) -> str:
    return f"NCT1000{i:04d}"


def small_tags(i: int) -> list[str]:
    tags = []
    if i % 3 == 0:
        tags.append("query:diabetes")
    if i % 4 == 0:
        tags.append("oncology")
    odd = {9: ["seed:s1", "a b"], 11: ["a"], 12: ["100%"], 13: ['["a"]'], 16: ["a_"], 17: ["über"]}
    tags += odd.get(i, [])
    return tags


def build_small(url: str) -> None:
    """23 watches: 4 never synced (i % 7 == 0), 4 synced without a change (i % 5 == 0), the
    rest changed in groups of three at the same moment (ties broken by id); one with two
    versions."""
    store = Store.open(url)
    try:
        for i in range(SMALL):
            store.add_watches("ctgov", [small_id(i)], small_tags(i), T0)
        for i in range(SMALL):
            if i % 7 == 0:
                continue
            snapshot = Snapshot(
                study_id=small_id(i),
                brief_title=f"Trial {i} of IL-2",
                overall_status=STATUSES[i % 4],
            )
            changes = [] if i % 5 == 0 else [_added(small_id(i))]
            store.save_version(_version(snapshot, T0 + timedelta(hours=i // 3)), changes, None)
        later = Snapshot(study_id=small_id(8), brief_title="Trial 8, renamed", overall_status="")
        store.save_version(_version(later, T0 + timedelta(days=30)), [_added(small_id(8))], None)
    finally:
        store.close()


def _version(snapshot: Snapshot, at: datetime) -> NewVersion:
    return NewVersion(
        registry="ctgov",
        snapshot=snapshot,
        raw={"protocolSection": {"identificationModule": {"nctId": snapshot.study_id}}},
        registry_version=None,
        last_update_posted=at.date().isoformat(),
        fetched_at=at,
    )


def _added(study_id: str) -> Change:
    return Change(study_id=study_id, kind="record_added", field="", severity="low", summary="new")


@pytest.fixture
def small(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    build_small(database_url)
    config = tmp_path / "trialwatch.toml"
    config.write_text("")
    app = build_app(load_settings(config, {"TRIALWATCH_DATABASE_URL": database_url}))
    try:
        with TestClient(create_app(app), client=("127.0.0.1", 1234)) as client:
            yield client
    finally:
        app.close()


def small_order(items: list[dict[str, Any]], sort: str) -> list[str]:
    """The order ``sort`` promises, worked out in Python from ``watch list``'s items."""
    synced = [w for w in items if w["state"] != "never synced"]
    rest_of = sorted(w["study_id"] for w in items if w not in synced)
    if sort == "id":
        return sorted(w["study_id"] for w in items)
    if sort == "status":
        ordered = sorted(synced, key=lambda w: (w["overall_status"], w["study_id"]))
        return [w["study_id"] for w in ordered] + rest_of
    changed = [w for w in synced if w["last_changed_at"]]
    ordered = sorted(changed, key=lambda w: (w["last_changed_at"], w["study_id"]))
    ordered = ordered[::-1] if sort == "-changed" else ordered
    never = sorted(w["study_id"] for w in items if w not in changed)
    return [w["study_id"] for w in ordered] + never


@pytest.mark.parametrize("plan", ["gathered", "walked"])
@pytest.mark.parametrize("sort", ["id", "-changed", "changed", "status"])
def test_keyset_pages_walk_every_record_once_in_order_on_sqlite_and_postgresql(
    small: TestClient, sort: str, plan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if plan == "walked":  # what a store of 100,000 does: walk the order's index
        monkeypatch.setattr(browse, "FEW_MATCHES", 0)
    everything = small.get("/api/studies?size=500").json()
    assert len(everything) == SMALL
    wanted = small_order(everything, sort)
    for size in (1, 2, 5, 50):
        items, pages = walk_json(small, f"/api/studies?sort={sort}&size={size}")
        assert [i["study_id"] for i in items] == wanted, size
        assert pages == -(-SMALL // size)  # no empty page after a full one
    ids, _ = walk_html(small, f"/?sort={sort}&size=2")
    assert ids == wanted
    # filtered: the same order, restricted (tags on synced, unsynced and unchanged records)
    tagged = [w["study_id"] for w in everything if "query:diabetes" in w["tags"]]
    items, _ = walk_json(small, f"/api/studies?sort={sort}&size=2&query=diabetes")
    assert [i["study_id"] for i in items] == [i for i in wanted if i in tagged]
    items, _ = walk_json(small, f"/api/studies?sort={sort}&size=3&q=il-2&status=COMPLETED")
    completed = {w["study_id"] for w in everything if w["overall_status"] == "COMPLETED"}
    assert [i["study_id"] for i in items] == [i for i in wanted if i in completed]


@pytest.mark.parametrize("plan", ["gathered", "walked"])
def test_a_tag_is_matched_whole_whatever_it_holds(
    small: TestClient, plan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if plan == "walked":
        monkeypatch.setattr(browse, "FEW_MATCHES", 0)

    def ids(query: str) -> list[str]:
        return [i["study_id"] for i in small.get(f"/api/studies?{query}").json()]

    assert ids("tag=a") == [small_id(11)]
    assert ids("tag=a%20b") == [small_id(9)]
    assert ids("tag=100%25") == [small_id(12)]
    assert ids("tag=%5B%22a%22%5D") == [small_id(13)]  # '["a"]'
    assert ids("tag=a_") == [small_id(16)]
    assert ids("tag=%C3%BCber") == [small_id(17)]  # JSON-escaped in the column: \u00fcber
    assert ids("tag=10") == []
    assert ids("seed=s1") == [small_id(9)]
    assert ids("query=diabetes&tag=oncology") == [small_id(i) for i in (0, 12)]
    assert ids("q=renamed") == [small_id(8)]
    assert ids("q=NCT10000%25") == []  # % is a character, not a wildcard


def test_the_count_stops_at_ten_thousand(
    small: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = soup(small.get("/").text).select_one("p.count").get_text()
    assert count.startswith(f"{SMALL} records")
    monkeypatch.setattr(browse, "COUNT_LIMIT", 10)
    monkeypatch.setattr("service.web.records.COUNT_LIMIT", 10)
    count = soup(small.get("/").text).select_one("p.count").get_text()
    assert count.startswith("more than 10 records")
    assert len(small.get("/api/studies").json()) == SMALL  # the list itself is not cut


def test_never_synced_and_unchanged_records_say_so(small: TestClient) -> None:
    page = soup(small.get("/?size=50").text)
    rows = {r.select_one("td a").get_text(): r for r in page.select("table.records tbody tr")}
    assert rows[small_id(0)].select_one("td[data-label=Status]").get_text() == "never synced"
    # synced, never changed: its last change is the registry's update of its one version
    unchanged = rows[small_id(5)].select_one("td[data-label='Last change']").get_text()
    assert unchanged.startswith(T0.date().isoformat())
    assert unchanged.endswith(f"watched since {T0.date().isoformat()}")
    never = rows[small_id(0)].select_one("td[data-label='Last change']").get_text()
    assert never.startswith("never")
    assert rows[small_id(3)].select_one("td.title").get_text() == "Trial 3 of IL-2"


def test_an_empty_store_lists_nothing_and_says_how_to_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    config = tmp_path / "trialwatch.toml"
    config.write_text("")
    app = build_app(load_settings(config, {"TRIALWATCH_DATABASE_URL": url}))
    try:
        with TestClient(create_app(app), client=("127.0.0.1", 1234)) as client:
            page = client.get("/")
            assert page.status_code == 200 and "trialwatch watch add" in page.text
            assert client.get("/api/studies").json() == []
            filtered = client.get("/?tag=x").text
            assert "No watched record matches these filters" in filtered
    finally:
        app.close()


# ---- accent-insensitive search, on SQLite and PostgreSQL -----------------------------------------

ACCENTED = {  # real records whose titles write an accent, and one that writes none
    DEMO_STUDY: TESTS_DATA / "demo" / DEMO_STUDY / "v1.json",  # "… on sjögren's Syndrome"
    STATUS_STUDY: TESTS_DATA / "diff" / f"{STATUS_STUDY}.json",  # "Lariboisière Cognitive …"
    "NCT05594173": TESTS_DATA / "findings" / "NCT05594173.json",  # "Chewing and Oral …"
}


@pytest.fixture
def accented(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    store = Store.open(database_url)
    try:
        for study_id, path in ACCENTED.items():
            raw = json.loads(path.read_text())
            store.add_watches("ctgov", [study_id], [], T0)
            snapshot = normalise(raw.get("study", raw))
            store.save_version(_version(snapshot, T0), [_added(study_id)], None)
    finally:
        store.close()
    config = tmp_path / "trialwatch.toml"
    config.write_text("")
    app = build_app(load_settings(config, {"TRIALWATCH_DATABASE_URL": database_url}))
    try:
        with TestClient(create_app(app), client=("127.0.0.1", 1234)) as client:
            yield client
    finally:
        app.close()


@pytest.mark.parametrize("plan", ["gathered", "walked"])
def test_a_search_finds_a_title_whatever_its_accents(
    accented: TestClient, plan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if plan == "walked":
        monkeypatch.setattr(browse, "FEW_MATCHES", 0)

    def ids(text: str) -> list[str]:
        return [i["study_id"] for i in accented.get("/api/studies", params={"q": text}).json()]

    assert "sjögren" in normalise_title(DEMO_STUDY)
    for typed in ("sjogren", "Sjögren", "SJOGREN", "SJÖGREN", "sjo\u0308gren"):
        assert ids(typed) == [DEMO_STUDY], typed
    assert ids("lariboisiere") == ids("Lariboisière") == [STATUS_STUDY]
    assert ids("chéwing") == ids("chewing") == ["NCT05594173"]  # the other way round
    assert ids("sjøgren") == [DEMO_STUDY]  # a letter NFKD leaves alone is folded too
    html = accented.get("/", params={"q": "sjogren"}).text
    assert DEMO_STUDY in html and STATUS_STUDY not in html


def normalise_title(study_id: str) -> str:
    raw = json.loads(ACCENTED[study_id].read_text())
    return normalise(raw.get("study", raw)).brief_title


@pytest.mark.parametrize("plan", ["gathered", "walked"])
@pytest.mark.parametrize("sort", ["id", "-changed", "changed", "status"])
def test_previous_links_walk_back_through_the_same_pages(
    small: TestClient, sort: str, plan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if plan == "walked":
        monkeypatch.setattr(browse, "FEW_MATCHES", 0)
    pages: list[list[str]] = []
    url: str | None = f"/?sort={sort}&size=3"
    while url:
        page = soup(small.get(url).text)
        pages.append(listed(str(page)))
        following = page.select_one("a[rel=next]")
        url = str(following["href"]) if following else None
        assert len(pages) < PAGE_GUARD
    assert soup(small.get(f"/?sort={sort}&size=3").text).select_one("a[rel=prev]") is None
    back: list[list[str]] = []
    previous = page.select_one("a[rel=prev]")  # from the last page
    while previous is not None:
        page = soup(small.get(str(previous["href"])).text)
        back.append(listed(str(page)))
        previous = page.select_one("a[rel=prev]")
        assert len(back) < PAGE_GUARD
    assert back == pages[:-1][::-1]  # the same pages, each whole, in reverse
