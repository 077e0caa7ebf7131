"""The Atom feed of changes: ``/feeds/changes.atom``, with the filters of ``/changes`` as query
parameters (``study``, ``tag``, ``seed``, ``query``, ``min_severity``, ``kind``, and also
``severity`` and ``since``), read by the same ``change_query()``.

What feed readers rely on (and what changedetection.io's users asked for):

- one entry per stored change, the newest 50 (a reader polls one document; paged feeds lose
  entries), newest first;
- an entry's id is minted from the store's id (a UUID made once per store, ``Store.store_id``)
  and the stored change id alone: ``urn:uuid:`` of the name-based UUID (RFC 9562, version 5)
  of ``change/ID`` in the store's namespace; never from a title or a URL, so it never changes,
  a new change is a new entry, and two installations (whose change ids both start at 1) never
  mint the same id, as RFC 4287 requires of ids that feed aggregators merge;
- ``published`` and ``updated`` are when the change was detected; the feed's ``updated`` is its
  newest entry's (the epoch for an empty feed), never "now", so an unchanged feed is the same
  bytes at every poll, with the same ``ETag``; ``If-None-Match`` and ``If-Modified-Since``
  get a 304;
- each entry links (``alternate``) to the change on its record's page and (``related``) to
  the registry's record; its content is the change's visual diff as HTML (escaped by feedgen);
- the feed's id and ``self`` link are its canonical filters, without the ``token`` a reader
  may carry (``?token=`` is how readers without headers authenticate): a token never ends up
  in a document that readers share or cache.

Nothing depends on who reads the feed or whether anyone looked at a page.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension
from feedgen.feed import FeedGenerator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.templates import render
from service.web.changes import ChangeItem, ChangeQuery, change_item, change_query
from service.web.pages import site_url, tw

__all__ = ["ENTRIES", "ROUTES", "entry_id", "feed_id"]

ENTRIES = 50
FEED_PATH = "/feeds/changes.atom"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MEDIA_TYPE = "application/atom+xml; charset=utf-8"
# What XML 1.0 cannot carry (C0 controls but tab, newline and return; lone surrogates; the two
# non-characters): lxml refuses such a string outright, so registry text is stripped of them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


LEGACY_PREFIX = "tag:trialwatch,2026:change/"


def entry_id(store_id: uuid.UUID, change_id: int, legacy_upto: int = 0) -> str:
    """The change's entry id: the same in every poll and process, unique to this store. A
    change stored before the store had an id keeps the id readers already have."""
    if change_id <= legacy_upto:
        return f"{LEGACY_PREFIX}{change_id}"
    return uuid.uuid5(store_id, f"change/{change_id}").urn


def feed_id(store_id: uuid.UUID, query: ChangeQuery) -> str:
    """The same filters give the same id, whatever their order in the URL or the token."""
    canonical = query.query_string()
    return uuid.uuid5(store_id, "changes" + (f"?{canonical}" if canonical else "")).urn


def xml_text(text: str) -> str:
    return _NOT_XML.sub("", text)


def _aware(moment: datetime) -> datetime:
    # SQLite hands datetimes back naive; the store writes them in UTC
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _title(query: ChangeQuery) -> str:
    if not query.parameters:
        return "trialwatch: changes"
    return "trialwatch: changes (" + ", ".join(f"{k} {v}" for k, v in query.parameters) + ")"


def _base(request: Request) -> str:
    return site_url(request)  # the configured address: a request's Host is the client's word


def atom_document(request: Request, query: ChangeQuery, items: Sequence[ChangeItem]) -> bytes:
    """The feed's bytes: the same items always give the same bytes."""
    base = _base(request)
    store = tw(request).store
    ids = (store.store_id(), store.legacy_entry_ids_upto())
    store_id = ids[0]
    feed = FeedGenerator()
    feed.id(feed_id(store_id, query))
    feed.title(xml_text(_title(query)))
    feed.updated(_updated(items))
    feed.author(name="trialwatch")
    feed.generator("trialwatch")
    self_url = base + query.at(FEED_PATH)  # base_url carries any root path already
    feed.link(href=xml_text(self_url), rel="self", type="application/atom+xml")
    feed.link(href=xml_text(base + query.at("/changes")), rel="alternate", type="text/html")
    for item in items:
        _add_entry(feed, base, ids, item)
    return feed.atom_str(pretty=True)  # type: ignore[no-any-return]


class _LinkRelations(BaseEntryExtension):  # type: ignore[misc]
    """feedgen 1.0.0 writes an entry's links with their ``href`` only, dropping ``rel`` and
    ``type`` (lkiesow/python-feedgen#135), which would make the registry's page a second
    ``alternate``; this puts them back on the elements feedgen made, in the order given.
    Harmless once feedgen writes them itself: it sets the same values."""

    def __init__(self) -> None:
        self.relations: list[tuple[str, str]] = []

    def extend_atom(self, entry: Any) -> Any:
        for element, (rel, media_type) in zip(entry.findall("link"), self.relations, strict=False):
            element.attrib["rel"] = rel
            element.attrib["type"] = media_type
        return entry


def _link(entry: FeedEntry, href: str, rel: str) -> None:
    entry.link(href=xml_text(href), rel=rel, type="text/html")
    entry.link_relations.relations.append((rel, "text/html"))


def _add_entry(
    feed: FeedGenerator, base: str, ids: tuple[uuid.UUID, int], item: ChangeItem
) -> None:
    change = item.change
    detected = _aware(change.detected_at)
    page_url = base + item.page_url
    entry = feed.add_entry(order="append")  # feedgen prepends by default
    entry.register_extension("link_relations", _LinkRelations, atom=True, rss=False)
    entry.id(entry_id(ids[0], change.id, ids[1]))
    entry.title(xml_text(f"{change.study_id}: {change.summary}"))
    entry.published(detected)
    entry.updated(detected)
    entry.author(name="trialwatch")
    _link(entry, page_url, "alternate")
    if item.registry_url:
        _link(entry, item.registry_url, "related")
    entry.category(term=change.kind)
    entry.category(term=f"severity:{change.severity}")
    content = render("web/_changes_feed_entry.html", item=item, page_url=page_url)
    entry.content(xml_text(content), type="html")


def _updated(items: Sequence[ChangeItem]) -> datetime:
    return max((_aware(i.change.detected_at) for i in items), default=EPOCH)


def _not_modified(request: Request, etag: str, updated: datetime) -> bool:
    """Whether the reader's copy is this one (RFC 9110: If-None-Match, when sent, decides;
    If-Modified-Since only without it)."""
    given = request.headers.get("if-none-match")
    if given is not None:
        tags = {t.strip().removeprefix("W/") for t in given.split(",")}
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        seen = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False  # a date we cannot read: send the feed
    if seen.tzinfo is None:
        return False
    return updated.replace(microsecond=0) <= seen


def changes_feed(request: Request) -> Response:
    query = change_query(request)
    rows = tw(request).store.browse_changes(query.filters, limit=ENTRIES, newest_first=True)
    items = [change_item(row) for row in rows]
    body = atom_document(request, query, items)
    updated = _updated(items)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Last-Modified": format_datetime(updated, usegmt=True)}
    if _not_modified(request, etag, updated):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=MEDIA_TYPE, headers=headers)


ROUTES: list[Route] = [Route(FEED_PATH, changes_feed, methods=["GET"])]
