"""Every stored change: the page ``/changes`` and its JSON twin ``/api/changes``.

One ``changes_data()`` serves both, and the Atom feed (``service.web.feeds``) reads its filters
with the same ``change_query()``. Filters are GET parameters:

- ``study`` (a registry id), ``kind`` (one of the change kinds), ``min_severity`` or
  ``severity`` (low, medium, high: at least / exactly), ``since`` (an ISO date or time, read
  as ``trialwatch changes --since`` reads it: UTC unless it says otherwise);
- ``tag`` (a watch tag), ``seed`` (a seed study's id: the records watched for it, tagged
  ``seed:ID``), ``query`` (a saved search's name: the records it brought in, ``query:NAME``);
- ``all=yes``: also first sightings ("Now watching …") and historical changes (found in a
  record's past when it was first watched), which the page and the feed leave out by default
  as notifications leave them out (asking for ``kind=record_added`` shows first sightings
  too); ``/api/changes`` lists every change, as ``trialwatch changes --json`` does, unless
  ``all=no``.

Order: newest first (by the stored change id, which only grows), or oldest first with
``order=oldest``. Pages are by keyset (``cursor``, ``size``): the next page is the ``next``
link of the page and the ``Link: <…>; rel="next"`` header of the JSON; the previous one is
``before=`` the page's first change, read backwards (``rel="prev"``). The JSON body is a
top-level array of changes exactly as ``trialwatch changes --json`` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.clock import parse_since
from service.errors import InputError
from service.models import CHANGE_KINDS, SEVERITIES, StoredChange, severity_rank
from service.notify.render import change_detail, compare_url, study_url
from service.registry.catalog import parse_watch_id
from service.store import BrowsedChange, ChangeFilter
from service.web.pages import (
    BAD_CURSOR,
    choice,
    decode_cursor,
    encode_cursor,
    html_page,
    json_answer,
    page_size,
    parameter,
    search_names,
    selector_tags,
    selectors,
    tw,
    url_with,
)

__all__ = [
    "FILTER_NAMES",
    "ROUTES",
    "ChangeItem",
    "ChangeQuery",
    "change_item",
    "change_query",
    "record_change_url",
    "study_parameter",
]

ORDERS = ("newest", "oldest")
# The filters, in the order the form shows them; the feed takes the same.
FILTER_NAMES = (
    "study",
    "kind",
    "min_severity",
    "severity",
    "since",
    "tag",
    "seed",
    "query",
    "all",
)
# ``all=yes`` brings back what is left out by default, as notifications leave it out: first
# sightings ("Now watching …") and the changes found in a record's past when watching began
ALL_CHOICES = ("yes", "no")


@dataclass(frozen=True)
class ChangeQuery:
    """The filters a request asked for: as the store takes them, and as canonical parameters
    (normalised values, sorted, without the cursor or a token) for links and feed ids."""

    filters: ChangeFilter
    parameters: tuple[tuple[str, str], ...]

    @property
    def form(self) -> dict[str, str]:
        """Every filter's value for the form ("" where not set)."""
        given = dict(self.parameters)
        return {name: given.get(name, "") for name in FILTER_NAMES}

    def query_string(self) -> str:
        return urlencode(self.parameters)

    def at(self, path: str) -> str:
        """``path`` with these filters."""
        query = self.query_string()
        return path + (f"?{query}" if query else "")


@dataclass(frozen=True)
class ChangeItem:
    """One change as the page and the feed show it."""

    change: StoredChange
    title: str
    page_url: str  # the change on its record's page (relative)
    registry_url: str | None
    compare_url: str | None  # the registry's side-by-side view of the two versions
    detail: Any  # the visual diff (service.notify.render's diff node), None for none
    detected: str  # 2026-11-27 05:39 UTC
    detected_iso: str
    versions: str  # "versions 2 → 3", "version 3" or ""


@dataclass(frozen=True)
class ChangesData:
    query: ChangeQuery
    items: list[ChangeItem]
    newest_first: bool
    next_url: str | None
    previous_url: str | None  # the page before this one, when this is not the first
    first_url: str | None  # back to the first page, when this is not it
    feed_url: str
    api_url: str
    all_url: str  # the same with first sightings and history


# ---- reading the filters ----------------------------------------------------------------------


def change_query(request: Request, *, quiet: bool = True) -> ChangeQuery:
    """The change filters of a request; a bad one is a one-line ``InputError`` (400).
    ``quiet``: first sightings and history left out unless ``all=yes`` (the page and the
    feed, as notifications); the JSON API lists every change, as ``changes --json`` does."""
    study = study_parameter(request)
    kind = choice(request, "kind", CHANGE_KINDS)
    at_least = choice(request, "min_severity", SEVERITIES)
    exactly = choice(request, "severity", SEVERITIES)
    since_text = parameter(request, "since")
    since = parse_since(since_text, tw(request).clock(), "since:")
    tag, seed, search = selectors(request)
    tags = selector_tags(tag, seed, search)
    everything = choice(request, "all", ALL_CHOICES)
    filters = ChangeFilter(
        study_id=study,
        kinds=(kind,) if kind else None,
        severities=_severities(at_least, exactly),
        since=since,
        tags=tags,
        quiet=everything == "no" or (quiet and everything is None),
    )
    given = {
        "study": study,
        "kind": kind,
        "min_severity": at_least,
        "severity": exactly,
        "since": since_text,
        "tag": tag,
        "seed": seed,
        "query": search,
        "all": everything,
    }
    parameters = tuple(sorted((k, v) for k, v in given.items() if v))
    return ChangeQuery(filters, parameters)


def study_parameter(request: Request) -> str | None:
    """``study``: a registry id, normalised (``nct05605665`` → ``NCT05605665``)."""
    text = parameter(request, "study")
    if text is None:
        return None
    try:
        return parse_watch_id(text)[1]
    except InputError as exc:
        raise InputError(f"study: {exc.message}") from None


def _severities(at_least: str | None, exactly: str | None) -> tuple[str, ...] | None:
    """The severities shown (None: all). Both filters together show what both allow."""
    if at_least is None and exactly is None:
        return None
    allowed = SEVERITIES[severity_rank(at_least) :] if at_least else SEVERITIES  # type: ignore[arg-type]
    return tuple(s for s in allowed if exactly is None or s == exactly)


def _order(request: Request) -> bool:
    """True for newest first (the default)."""
    return choice(request, "order", ORDERS) != "oldest"


def _after(request: Request, name: str = "cursor") -> int | None:
    values = decode_cursor(parameter(request, name), 1)
    if values is None:
        return None
    last = values[0]
    if not isinstance(last, int) or isinstance(last, bool) or last < 0:
        raise InputError(BAD_CURSOR)
    return last


# ---- the data -----------------------------------------------------------------------------------


def changes_data(request: Request, *, quiet: bool = True) -> ChangesData:
    """One page of changes for the filters of ``request``: ``size + 1`` rows after the
    cursor tell whether a next page exists, without counting."""
    query = change_query(request, quiet=quiet)
    newest_first = _order(request)
    after, before = _after(request), _after(request, "before")
    if after is not None and before is not None:
        raise InputError("before: a page is either after a cursor or before one, not both")
    size = page_size(request)
    store = tw(request).store
    if before is None:
        rows = store.browse_changes(
            query.filters, after_id=after, limit=size + 1, newest_first=newest_first
        )
        shown, more_after, more_before = rows[:size], len(rows) > size, after is not None
    else:  # the previous page: read backwards from its first row, shown the right way round
        rows = store.browse_changes(
            query.filters, after_id=before, limit=size + 1, newest_first=not newest_first
        )
        shown, more_after, more_before = rows[:size][::-1], True, len(rows) > size
    return ChangesData(
        query=query,
        items=[change_item(row) for row in shown],
        newest_first=newest_first,
        next_url=_page_url(request, "cursor", shown[-1].change.id)
        if more_after and shown
        else None,
        previous_url=_page_url(request, "before", shown[0].change.id)
        if more_before and shown
        else None,
        first_url=url_with(request, cursor=None, before=None) if more_before else None,
        feed_url=query.at("/feeds/changes.atom"),
        api_url=query.at("/api/changes"),
        all_url=url_with(request, all="yes"),
    )


def _page_url(request: Request, name: str, change_id: int) -> str:
    """The page after (``cursor``) or before (``before``) the change ``change_id``."""
    other = "before" if name == "cursor" else "cursor"
    return url_with(request, **{name: encode_cursor([change_id]), other: None})


def record_change_url(change: StoredChange) -> str:
    """The change on its record's page, where it is anchored as ``change-ID``."""
    return f"/studies/{quote(change.study_id, safe='')}#change-{change.id}"


def change_item(row: BrowsedChange) -> ChangeItem:
    change = row.change
    detected = change.detected_at.astimezone(UTC)
    return ChangeItem(
        change=change,
        title=row.title,
        page_url=record_change_url(change),
        registry_url=study_url(change.registry, change.study_id),
        # only registry numbers name versions on the registry's side-by-side view
        compare_url=(
            compare_url(change.registry, change.study_id, change.from_version, change.to_version)
            if row.registry_versions
            else None
        ),
        detail=change_detail(change),
        detected=detected.strftime("%Y-%m-%d %H:%M UTC"),
        detected_iso=detected.isoformat(),
        versions=_versions(change),
    )


def _versions(change: StoredChange) -> str:
    if change.from_version is not None and change.to_version is not None:
        return f"versions {change.from_version} → {change.to_version}"
    if change.to_version is not None:
        return f"version {change.to_version}"
    return ""


# ---- the answers --------------------------------------------------------------------------------


def changes_page(request: Request) -> Response:
    data = changes_data(request)
    return html_page(
        request,
        "changes.html",
        title="Changes",
        data=data,
        kinds=CHANGE_KINDS,
        severities=SEVERITIES,
        searches=search_names(request, data.query.form["query"]),
        feed_url=data.feed_url,
    )


def changes_api(request: Request) -> Response:
    data = changes_data(request, quiet=False)
    return json_answer([item.change.to_json() for item in data.items], next_url=data.next_url)


ROUTES: list[Route] = [
    Route("/changes", changes_page, methods=["GET"]),
    Route("/api/changes", changes_api, methods=["GET"]),
]
