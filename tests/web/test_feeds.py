"""``/feeds/changes.atom``: valid Atom (feedparser and a structural check), one entry per change
with an id minted from the stored change id, the same bytes while nothing changes, 304s for
readers that say what they have, and every registry text escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from starlette.testclient import TestClient

from service.models import StoredChange
from service.store import Store
from service.web.app import create_app
from service.web.feeds import entry_id
from web.conftest import MARKUP_STUDY, STATUS_STUDY, TAG, WebStore
from web.test_changes_page import (
    SEED,
    STUDIES,
    T0,
    add_version,
    cli_json,
    fill,
    small_client,
    status_change,
)

A = "{http://www.w3.org/2005/Atom}"
FEED = "/feeds/changes.atom"
URN_UUID = re.compile(
    r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)
CHANGE_ANCHOR = re.compile(r"#change-(\d+)$")


def atom(body: bytes) -> ET.Element:
    return ET.fromstring(body)


def check_structure(root: ET.Element) -> None:
    """What RFC 4287 requires of a feed and its entries (and what readers rely on)."""
    assert root.tag == A + "feed"
    for name in ("id", "title", "updated"):
        assert (root.findtext(A + name) or "").strip(), f"feed without {name}"
    assert root.find(A + "author/" + A + "name") is not None
    links = {link.get("rel"): link.get("href") for link in root.findall(A + "link")}
    assert links["self"] and "token" not in links["self"]
    updated = [e.findtext(A + "updated") or "" for e in root.findall(A + "entry")]
    if updated:  # the feed's updated is its newest entry's, never "now"
        newest = max(datetime.fromisoformat(u) for u in updated)
        assert datetime.fromisoformat(root.findtext(A + "updated") or "") == newest
    ids = []
    for entry in root.findall(A + "entry"):
        ids.append(entry.findtext(A + "id") or "")
        assert URN_UUID.match(ids[-1])  # a name-based UUID (version 5), as a URN
        assert (entry.findtext(A + "title") or "").strip()
        assert datetime.fromisoformat(entry.findtext(A + "updated") or "").tzinfo is not None
        assert entry.findtext(A + "published") == entry.findtext(A + "updated")
        rels = [link.get("rel") for link in entry.findall(A + "link")]
        assert rels.count("alternate") == 1 and all(r in ("alternate", "related") for r in rels)
        assert entry.find(A + "content").get("type") == "html"
    assert len(ids) == len(set(ids))


def entry_ids(root: ET.Element) -> list[int]:
    """The stored change ids of the feed's entries (from their links to the record page)."""
    return [change_id(e) for e in root.findall(A + "entry")]


def change_id(entry: ET.Element) -> int:
    alternate = next(x for x in entry.findall(A + "link") if x.get("rel") == "alternate")
    return int(CHANGE_ANCHOR.search(alternate.get("href") or "").group(1))  # type: ignore[union-attr]


# ---- the populated store -------------------------------------------------------------------


def test_the_feed_of_one_record_has_its_status_change(
    client: TestClient, web_store: WebStore
) -> None:
    answer = client.get(f"{FEED}?study={STATUS_STUDY}")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(answer.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    status = next(
        c
        for c in cli_json(web_store, "changes")
        if c["kind"] == "status_changed" and c["study_id"] == STATUS_STUDY
    )
    store = Store.open(web_store.database_url)
    try:
        store_id = store.store_id()
    finally:
        store.close()
    entry = next(e for e in parsed.entries if e.id == entry_id(store_id, status["id"]))
    assert entry.title == f"{STATUS_STUDY}: Overall status: Not yet recruiting → Recruiting"
    links = {link.rel: link.href for link in entry.links}
    assert links["alternate"] == f"http://testserver/studies/{STATUS_STUDY}#change-{status['id']}"
    assert links["related"].endswith(f"/study/{STATUS_STUDY}")  # the registry's record
    assert entry.author == "trialwatch"
    assert datetime.fromisoformat(entry.updated) == datetime.fromisoformat(status["detected_at"])
    content = entry.content[0]
    assert content.type == "text/html" and "<ins" in content.value and "Recruiting" in content.value
    check_structure(atom(answer.content))


def test_the_shared_checks_feed_assertions_hold(client: TestClient) -> None:
    """What /work/shared/checks/web-e2e asks of ``/feeds/changes.atom?study=NCT06171568``."""
    root = ET.fromstring(client.get(f"{FEED}?study={STATUS_STUDY}").content)
    assert root.tag == A + "feed" and root.find(A + "id") is not None
    assert root.find(A + "updated") is not None
    entries = root.findall(A + "entry")
    assert entries
    assert all(e.find(A + "id") is not None and e.find(A + "updated") is not None for e in entries)
    assert any("ecruit" in (e.findtext(A + "title") or "") for e in entries)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "kind=status_changed",
        "min_severity=high",
        f"tag={TAG}",
        f"seed={SEED}",
        "query=no-such-search",
        f"study={MARKUP_STUDY}&kind=record_added",
    ],
)
def test_the_feed_has_the_newest_50_changes_its_filters_select(
    client: TestClient, query: str
) -> None:
    answer = client.get(f"{FEED}?{query}")
    assert answer.status_code == 200
    assert not feedparser.parse(answer.content).bozo
    root = atom(answer.content)
    check_structure(root)
    listed = [c["id"] for c in client.get(f"/api/changes?size=50&all=no&{query}").json()]
    assert entry_ids(root) == listed  # the same filters as /changes, newest first


def test_the_feed_id_and_self_link_are_the_canonical_filters(client: TestClient) -> None:
    one = atom(client.get(f"{FEED}?study=nct06171568&kind=status_changed").content)
    two = atom(client.get(f"{FEED}?kind=status_changed&study=NCT06171568&size=3").content)
    assert one.findtext(A + "id") == two.findtext(A + "id")
    assert URN_UUID.match(one.findtext(A + "id") or "")
    self_link = next(x.get("href") for x in one.findall(A + "link") if x.get("rel") == "self")
    assert self_link == "http://testserver/feeds/changes.atom?kind=status_changed&study=NCT06171568"
    every = atom(client.get(FEED).content)
    assert URN_UUID.match(every.findtext(A + "id") or "")
    assert every.findtext(A + "id") != one.findtext(A + "id")


def test_a_token_never_reaches_the_feed(web_app: Any) -> None:
    token = "feed-reader-token-123"
    client = TestClient(create_app(web_app, token=token))  # "testserver": not loopback
    assert client.get(FEED).status_code == 401
    answer = client.get(f"{FEED}?token={token}&study={STATUS_STUDY}")
    assert answer.status_code == 200
    assert token not in answer.text
    check_structure(atom(answer.content))


def test_an_unchanged_feed_is_the_same_bytes_and_readers_get_304(client: TestClient) -> None:
    first = client.get(FEED)
    second = client.get(FEED)
    assert first.content == second.content
    etag = first.headers["etag"]
    assert etag == second.headers["etag"] and etag.startswith('"')
    assert client.get(FEED, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(FEED, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert client.get(FEED, headers={"If-None-Match": '"other"'}).status_code == 200
    modified = first.headers["last-modified"]
    unchanged = client.get(FEED, headers={"If-Modified-Since": modified})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    earlier = format_datetime(
        datetime.strptime(modified, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
        - timedelta(seconds=1),
        usegmt=True,
    )
    assert client.get(FEED, headers={"If-Modified-Since": earlier}).status_code == 200
    assert client.get(FEED, headers={"If-Modified-Since": "not a date"}).status_code == 200
    # If-None-Match decides when both are sent (RFC 9110)
    both = {"If-None-Match": '"other"', "If-Modified-Since": modified}
    assert client.get(FEED, headers=both).status_code == 200


def test_markup_is_escaped_in_titles_and_content(client: TestClient) -> None:
    answer = client.get(f"{FEED}?study={MARKUP_STUDY}&all=yes")  # its first sighting too
    assert b"<script" not in answer.content  # only ever as &lt;script in the XML
    root = atom(answer.content)
    # the entry that carries the record's title (its findings' entries come after it)
    (entry,) = [
        e for e in root.findall(A + "entry") if "<script>" in (e.findtext(A + "title") or "")
    ]
    html = entry.findtext(A + "content") or ""  # the HTML a reader renders
    assert "<script" not in html and "&lt;script&gt;" in html
    parsed = feedparser.parse(answer.content)
    assert not parsed.bozo
    assert all("<script" not in e.content[0].value for e in parsed.entries)


def test_an_empty_feed_is_valid_and_dated_by_no_clock(client: TestClient) -> None:
    answer = client.get(f"{FEED}?query=no-such-search")
    root = atom(answer.content)
    assert root.findall(A + "entry") == []
    assert root.findtext(A + "updated") == "1970-01-01T00:00:00+00:00"
    assert answer.headers["last-modified"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert client.get(f"{FEED}?query=no-such-search").content == answer.content
    assert not feedparser.parse(answer.content).bozo


# ---- a store that changes ------------------------------------------------------------------


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[Store, TestClient]]:
    url = f"sqlite:///{tmp_path / 'small.db'}"
    store = Store.open(url)
    try:
        for client in small_client(tmp_path, url):
            yield store, client
    finally:
        store.close()


def test_a_new_change_adds_an_entry_and_keeps_the_old_ids(
    small: tuple[Store, TestClient],
) -> None:
    store, client = small
    fill(store)
    before = client.get(FEED)
    old = atom(before.content)
    titles = {e.findtext(A + "id"): e.findtext(A + "title") for e in old.findall(A + "entry")}
    assert client.get(FEED).content == before.content
    new = add_version(
        store, STUDIES[0], 9, [status_change(STUDIES[0], 9)], when=T0 + timedelta(days=2)
    )
    after = client.get(FEED, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
    root = atom(after.content)
    check_structure(root)
    assert entry_ids(root) == [new[0].id, *entry_ids(old)]
    assert all(
        titles[e.findtext(A + "id")] == e.findtext(A + "title")
        for e in root.findall(A + "entry")[1:]
    )
    assert root.findtext(A + "updated") == (T0 + timedelta(days=2)).isoformat()


def test_the_feed_holds_the_newest_50(small: tuple[Store, TestClient]) -> None:
    store, client = small
    stored: list[StoredChange] = []
    for number in range(1, 61):
        stored += add_version(store, STUDIES[0], number, [status_change(STUDIES[0], number)])
    root = atom(client.get(FEED).content)
    assert entry_ids(root) == sorted((c.id for c in stored), reverse=True)[:50]


def test_control_characters_are_stripped(small: tuple[Store, TestClient]) -> None:
    store, client = small
    odd = "Status\x01 now\x0b \x1fRecruiting\ufffe"
    add_version(
        store, STUDIES[0], 1, [status_change(STUDIES[0], 1, summary=odd)], title="T\x02itle"
    )
    answer = client.get(FEED)
    assert answer.status_code == 200
    assert not feedparser.parse(answer.content).bozo
    entry = atom(answer.content).find(A + "entry")
    assert entry is not None
    assert entry.findtext(A + "title") == f"{STUDIES[0]}: Status now Recruiting"
    assert "Title" in (entry.findtext(A + "content") or "")


def feed_ids(client: TestClient) -> dict[int, str]:
    """Each entry's id, by the stored change it is."""
    root = atom(client.get(FEED).content)
    return {change_id(e): e.findtext(A + "id") or "" for e in root.findall(A + "entry")}


def test_entry_ids_are_stable_for_a_store_and_differ_between_installations(
    tmp_path: Path,
) -> None:
    """Two installations number their changes alike (1, 2, …): a reader or aggregator that
    follows both must still see two entries, and a store's ids never change, also after a
    restart (a new process, the store opened again)."""
    seen: list[dict[int, str]] = []
    for name in ("one", "two"):
        url = f"sqlite:///{tmp_path / name / 'store.db'}"
        store = Store.open(url)
        try:
            fill(store)
            for client in small_client(tmp_path / name, url):
                seen.append(feed_ids(client))
        finally:
            store.close()
        for client in small_client(tmp_path / name, url):  # a restart: the same ids
            assert feed_ids(client) == seen[-1]
    one, two = seen
    assert one.keys() == two.keys() and len(one) > 1  # the same change ids in both stores
    assert not set(one.values()) & set(two.values())  # never the same entry id
    reopened = Store.open(f"sqlite:///{tmp_path / 'one' / 'store.db'}")
    try:
        assert all(entry_id(reopened.store_id(), c) == i for c, i in one.items())
    finally:
        reopened.close()
