"""The watched records: the list (``/``, and its JSON twin ``/api/studies``) and a record's page
(``/studies/{ID}``).

The list: one ``records_data()`` for both formats. Filters are GET parameters (``q`` a part
of the id or title, ``status``, ``lifecycle`` the latest version's lifecycle in any registry
(one of ``LIFECYCLES``, or the groups ``ended`` and ``going``), ``tag``, ``seed``, ``query``
a saved search's name, ``finding`` a rule or ``any``), ``sort`` one of ``id`` (the default,
the order of ``watch list``), ``-changed`` (last change, newest first), ``changed`` (oldest
first) or ``status``; records never changed (or never synced) come last in the orders by
change and status. Pages are by keyset (``cursor``, ``size``): the store reads one index range
per page, and the count stops at 10,000. The JSON body is ``watch list --json``'s items for
the page; the next page is in the ``Link`` header.

A record's page is the report's section for it (``service.report``: facts, charts, outcome
changes, findings, the seed's publication-vs-registry table) with every stored version, and
every change with its visual diff (the email's diff of the two values, drawn with classes)
and an anchor ``#change-ID`` that feeds link to. A record registered more than once shows its
other registrations side by side (``service.web.trials``: the table of ``/trials/{ID}``). A
record with more than ``VERSIONS_PER_PAGE`` versions is shown that many at a time, newest
first (``?before=N``: those stored before the store's sequence N, whatever their numbers),
its charts and changes those of the versions shown: each version's record is read and
normalised again for its dates, so thousands at once would take seconds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.errors import InputError
from service.findings.rules import RULE_NAMES
from service.findings.words import rule_words
from service.models import LIFECYCLES, StoredChange, WatchInfo
from service.notify.render import change_detail, compare_url
from service.registry.catalog import parse_watch_id
from service.report import (
    STATUS_COLOURS,
    StudyData,
    VersionLink,
    VersionPoint,
    VersionWindow,
    load_study,
    status_colour,
    status_words,
    study_view,
)
from service.store import (
    ANY_FINDING,
    COUNT_LIMIT,
    WATCH_SORTS,
    Store,
    WatchFilters,
    WatchKey,
    WatchPage,
    WatchSort,
)
from service.trials import ENDED, GOING
from service.web.findings import rule_choices
from service.web.pages import (
    BAD_CURSOR,
    MAX_CURSOR_INTEGER,
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
from service.web.trials import TrialView, page_trials, trial_of, trial_view

DEFAULT_SORT: WatchSort = "id"
SORT_LABELS: dict[str, str] = {
    "id": "Record id",
    # trialwatch's last change found (an index walks it); the column shows the registry's
    # last update, which for a record watched today can be years earlier
    "-changed": "Change found, newest first",
    "changed": "Change found, oldest first",
    "status": "Status",
}
FILTERS = ("q", "status", "lifecycle", "tag", "seed", "query", "finding")
# the lifecycle filter: one lifecycle, or a group of them (service.trials' ENDED and GOING)
LIFECYCLE_GROUPS: dict[str, tuple[str, ...]] = {
    "ended": tuple(life for life in LIFECYCLES if life in ENDED),
    "going": tuple(life for life in LIFECYCLES if life in GOING),
}
LIFECYCLE_CHOICES: tuple[str, ...] = (*LIFECYCLE_GROUPS, *LIFECYCLES)
STATUS_VALUE = re.compile(r"[A-Z][A-Z_]{0,39}", re.ASCII)  # how the registry writes statuses
VERSIONS_PER_PAGE = 100  # a record's versions shown at once


# ---- the list -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedRecord:
    """One row of the list: the watch as ``watch list`` has it, and what the page adds."""

    watch: WatchInfo
    status: str  # in words
    colour: str  # the report's colour of that status
    changed: str  # the registry's last update (yyyy-mm-dd), else trialwatch's last change
    changed_ago: str  # "3 days ago"
    watched_since: str  # yyyy-mm-dd: when it was added to the watch list
    findings: tuple[str, ...]  # rules of its open findings

    @property
    def finding_words(self) -> list[str]:
        return [rule_words(rule) for rule in self.findings]

    tags: tuple[str, ...]  # plain tags (seed and saved-search tags are shown apart)
    seeds: tuple[str, ...]
    searches: tuple[str, ...]


@dataclass(frozen=True)
class RecordsData:
    """What the list shows, for the HTML page and the JSON twin alike."""

    page: WatchPage
    records: list[ListedRecord]
    values: dict[str, str]  # the filters, sort and size as given (for the form)
    sort: WatchSort
    count: str  # "1,234 records", "more than 10,000 records"
    next_url: str | None
    previous_url: str | None  # the page before, when on a later one
    first_url: str | None  # back to the first page, when on a later one
    sort_urls: dict[str, str]
    json_url: str
    feed_url: str
    statuses: list[tuple[str, str]]  # (value, words) for the status filter
    lifecycles: list[tuple[str, str]]  # (value, words) for the lifecycle filter
    searches: list[str]  # saved searches' names for their filter
    rules: list[tuple[str, str]] = field(default_factory=rule_choices)  # (code, words)
    sort_labels: dict[str, str] = field(default_factory=lambda: dict(SORT_LABELS))

    @property
    def filtered(self) -> bool:
        return any(self.values[name] for name in FILTERS)


def records_data(request: Request) -> RecordsData:
    """The page of watched records a request asks for."""
    values = {name: parameter(request, name) or "" for name in (*FILTERS, "sort", "size")}
    filters = _filters(request)
    sort: WatchSort = choice(request, "sort", WATCH_SORTS) or DEFAULT_SORT  # type: ignore[assignment]
    after = _key(decode_cursor(parameter(request, "cursor"), 4), sort)
    before = _key(decode_cursor(parameter(request, "before"), 4), sort)
    if after is not None and before is not None:
        raise InputError("before: a page is either after a cursor or before one, not both")
    app = tw(request)
    page = app.store.browse_watches(
        filters, sort, before or after, page_size(request), backwards=before is not None
    )
    now = app.clock()
    findings = _open_findings(request, page)
    records = [
        _listed(w, findings.get((w.registry, w.study_id), ()), page.updated, now)
        for w in page.watches
    ]
    cursor = encode_cursor(_cursor(sort, page.next_key)) if page.next_key else None
    back = encode_cursor(_cursor(sort, page.first_key)) if page.first_key else None
    return RecordsData(
        page=page,
        records=records,
        values=values,
        sort=sort,
        count=_count_words(page.count),
        next_url=url_with(request, cursor=cursor, before=None) if cursor else None,
        previous_url=url_with(request, before=back, cursor=None) if back else None,
        first_url=url_with(request, cursor=None, before=None) if back else None,
        sort_urls={name: url_with(request, sort=name) for name in WATCH_SORTS},
        json_url=_twin(request, "/api/studies"),
        feed_url=_feed_url(request),
        statuses=_statuses(filters.status),
        lifecycles=_lifecycle_options(),
        searches=search_names(request, values["query"]),
    )


def _filters(request: Request) -> WatchFilters:
    status = parameter(request, "status")
    if status is not None and not STATUS_VALUE.fullmatch(status):
        raise InputError(f"status: {status!r} is not a registry status (e.g. RECRUITING)")
    lifecycle = choice(request, "lifecycle", LIFECYCLE_CHOICES)
    return WatchFilters(
        text=parameter(request, "q"),
        status=status,
        lifecycles=LIFECYCLE_GROUPS.get(lifecycle, (lifecycle,)) if lifecycle else (),
        tags=selector_tags(*selectors(request)),
        finding=choice(request, "finding", (ANY_FINDING, *RULE_NAMES)),
    )


def _cursor(sort: WatchSort, key: WatchKey) -> list[str | None]:
    value = key.value.isoformat() if isinstance(key.value, datetime) else key.value
    return [sort, value, key.registry, key.study_id]


def _key(values: list[Any] | None, sort: WatchSort) -> WatchKey | None:
    """The key a cursor carries. A cursor of another order, or one whose value is not of the
    order's kind, was not made by this page: a one-line 400 rather than a wrong page."""
    if values is None:
        return None
    made_for, value, registry, study_id = values
    if made_for != sort or not isinstance(registry, str) or not isinstance(study_id, str):
        raise InputError(BAD_CURSOR)
    if value is None or (sort == "status" and isinstance(value, str)):
        return WatchKey(value, registry, study_id)
    if sort == "status":
        raise InputError(BAD_CURSOR)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise InputError(BAD_CURSOR) from None
    if moment.tzinfo is None:
        raise InputError(BAD_CURSOR)
    return WatchKey(moment, registry, study_id)


def _open_findings(request: Request, page: WatchPage) -> dict[tuple[str, str], tuple[str, ...]]:
    """The open findings' rules of this page's records only (one query per registry)."""
    store = tw(request).store
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    for registry in sorted({w.registry for w in page.watches}):
        ids = [w.study_id for w in page.watches if w.registry == registry]
        for study_id, rules in store.open_finding_rules(registry, ids).items():
            found[(registry, study_id)] = rules
    return found


def _listed(
    watch: WatchInfo,
    findings: tuple[str, ...],
    updated: dict[tuple[str, str], str],
    now: datetime,
) -> ListedRecord:
    """A row. Its last change is the registry's last update of the record (the day it posted
    its latest version), not the day trialwatch first saw it: a record watched today may have
    been last updated years ago. Without a posted day, trialwatch's last change stands in."""
    posted = _day(updated.get((watch.registry, watch.study_id), ""))
    changed = posted or watch.last_changed_at
    words = ago(changed, now) if changed else ""
    if posted is not None and now - posted < timedelta(days=1):
        words = "today"  # a day, not a moment: never "5 hours ago"
    return ListedRecord(
        watch=watch,
        status=status_words(watch.overall_status) if watch.state != "never synced" else "",
        colour=status_colour(watch.overall_status),
        changed=changed.date().isoformat() if changed else "",
        changed_ago=words,
        watched_since=watch.added_at.date().isoformat(),
        findings=findings,
        **_tag_kinds(watch.tags),
    )


def _day(text: str) -> datetime | None:
    """A yyyy-mm-dd day as midnight UTC; None if it is not one."""
    try:
        return datetime.fromisoformat(text[:10]).replace(tzinfo=UTC) if text else None
    except ValueError:
        return None


def _tag_kinds(tags: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """A watch's tags as a page shows them: its own tags, its seeds and its saved searches."""

    def prefixed(prefix: str) -> tuple[str, ...]:
        return tuple(t.removeprefix(prefix) for t in tags if t.startswith(prefix))

    own = tuple(t for t in tags if not t.startswith(("seed:", "query:")))
    return {"tags": own, "seeds": prefixed("seed:"), "searches": prefixed("query:")}


def ago(moment: datetime, now: datetime) -> str:
    """How long before ``now``, as a person says it: "just now", "5 hours ago", "2 years ago"."""
    seconds = (now - moment).total_seconds()
    if seconds < 60:
        return "just now" if seconds > -60 else "in the future"
    for size, unit in ((31_557_600, "year"), (2_629_800, "month"), (86_400, "day")):
        if seconds >= size:
            return _plural(int(seconds // size), unit) + " ago"
    if seconds >= 3_600:
        return _plural(int(seconds // 3_600), "hour") + " ago"
    return _plural(int(seconds // 60), "minute") + " ago"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _count_words(count: int) -> str:
    if count > COUNT_LIMIT:
        return f"more than {COUNT_LIMIT:,} records"
    return _plural(count, "record")


def _twin(request: Request, path: str) -> str:
    """The same query at another path (the page's JSON twin)."""
    query = urlencode(sorted(request.query_params.items()))
    return path + (f"?{query}" if query else "")


def _feed_url(request: Request) -> str:
    """The Atom feed of the changes of the records listed, as far as the feed filters go."""
    wanted = {name: request.query_params.get(name, "") for name in ("tag", "seed", "query")}
    query = urlencode(sorted((k, v) for k, v in wanted.items() if v.strip()))
    return "/feeds/changes.atom" + (f"?{query}" if query else "")


def _statuses(chosen: str | None) -> list[tuple[str, str]]:
    known = list(STATUS_COLOURS)
    if chosen and chosen not in known:
        known.append(chosen)  # a status the registry added since: still shown as chosen
    return [(status, status_words(status)) for status in known]


GROUP_WORDS = {"ended": "ended", "going": "still going"}


def _lifecycle_options() -> list[tuple[str, str]]:
    # (short words: a select is as wide as its longest option, and the form must fit a phone)
    groups = [(name, f"any {GROUP_WORDS.get(name, name)}") for name in LIFECYCLE_GROUPS]
    return [*groups, *((life, life.replace("_", " ")) for life in LIFECYCLES)]


def records_page(request: Request) -> Response:
    data = records_data(request)
    return html_page(
        request, "records.html", title="Watched records", data=data, feed_url=data.feed_url
    )


def records_api(request: Request) -> Response:
    data = records_data(request)
    watches = page_trials(tw(request).store, data.page.watches)
    return json_answer([w.to_json() for w in watches], next_url=data.next_url)


# ---- a record's page ------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRow:
    """One stored version, newest first on the page."""

    version: int
    posted: str
    registry_version: int | None
    status: str
    colour: str
    enrollment: str
    changes: int  # how many changes led to it
    compare: VersionLink | None  # the registry's view of it beside the version before


@dataclass(frozen=True)
class ChangeItem:
    """One change: where it sits, what it says, and its visual diff (None: nothing to draw)."""

    change: StoredChange
    version: VersionLink
    posted: str
    first: bool  # the first of its pair of versions on the page
    detail: Any


@dataclass(frozen=True)
class StudyPage:
    view: Any  # the report's view of the record (service.report)
    watch: WatchInfo | None  # None: no longer watched (its history is still stored)
    versions: list[VersionRow]
    changes: list[ChangeItem]
    tags: tuple[str, ...]
    seeds: tuple[str, ...]
    searches: tuple[str, ...]
    total_versions: int = 0  # stored, all pages together
    older_url: str | None = None  # the versions before these, when there are more
    newest_url: str | None = None  # back to the newest, on a later page
    trial: TrialView | None = None  # its registrations side by side, when there are others


def study_data(request: Request) -> StudyPage:
    registry, study_id = parse_watch_id(request.path_params["study_id"])
    before = _version_before(request)
    app = tw(request)
    watch = app.store.find_watch(registry, study_id)
    study = load_study(app.store, registry, study_id, VersionWindow(VERSIONS_PER_PAGE, before))
    if watch is None and not study.stored_versions:
        raise HTTPException(
            404, f"{study_id} is not watched and nothing of it is stored (trialwatch watch add)"
        )
    tags = watch.tags if watch else ()
    view = study_view(study, app.clock().date())
    # the next page starts below the oldest shown, in the store's order (numbers can repeat)
    older = study.versions[0].seq if study.older_versions else None
    return StudyPage(
        view=view,
        watch=watch,
        versions=version_rows(study),
        changes=change_items(view.changes),
        total_versions=study.stored_versions,
        older_url=url_with(request, before=older) + "#versions" if older else None,
        newest_url=url_with(request, before=None) + "#versions" if before else None,
        trial=_other_registrations(app.store, (registry, study_id)),
        **_tag_kinds(tags),
    )


def _other_registrations(store: Store, key: tuple[str, str]) -> TrialView | None:
    """The record's trial as the table ``/trials/{ID}`` shows, when it has another
    registration (stored, or only named)."""
    trial = trial_of(store, key)
    if trial is None or len(trial.registrations) < 2:
        return None
    return trial_view(store, trial, key)


def _version_before(request: Request) -> int | None:
    value = parameter(request, "before")
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or not 0 < int(value) <= MAX_CURSOR_INTEGER:
        raise InputError(f"before: {value!r} is not a place in the versions (follow the links)")
    return int(value)


def version_rows(study: StudyData) -> list[VersionRow]:
    """Every stored version, newest first, each linked to the registry's comparison with the
    version before it when both are the registry's own versions."""
    led_to: dict[int | None, int] = {}
    for change in study.changes:
        led_to[change.to_version] = led_to.get(change.to_version, 0) + 1
    rows = []
    for before, point in zip((None, *study.versions), study.versions, strict=False):
        rows.append(_version_row(study, before, point, led_to.get(point.version, 0)))
    return rows[::-1]


def _version_row(
    study: StudyData, before: VersionPoint | None, point: VersionPoint, changes: int
) -> VersionRow:
    compare = None
    if before is not None and None not in (before.registry_version, point.registry_version):
        url = compare_url(study.registry, study.study_id, before.version, point.version)
        compare = VersionLink(f"v{before.version} → v{point.version}", url)
    count = point.enrollment_count
    kind = status_words(point.enrollment_type).lower() if point.enrollment_type else ""
    enrollment = "" if count is None else f"{count:,}" + (f" ({kind})" if kind else "")
    return VersionRow(
        version=point.version,
        posted=point.date,
        registry_version=point.registry_version,
        status=status_words(point.status),
        colour=status_colour(point.status),
        enrollment=enrollment,
        changes=changes,
        compare=compare,
    )


def change_items(rows: Sequence[Any]) -> list[ChangeItem]:
    """Every change, newest first: the report's rows (``change_rows``: versions linked to the
    registry's comparison) with the email's visual diff of each."""
    items: list[ChangeItem] = []
    group: tuple[int | None, int | None] | None = None
    for row in reversed(rows):
        key = (row.change.from_version, row.change.to_version)
        detail = change_detail(row.change)
        items.append(ChangeItem(row.change, row.version, row.posted, key != group, detail))
        group = key
    return items


def study_page(request: Request) -> Response:
    data = study_data(request)
    study_id = data.view.study_id
    feed = "/feeds/changes.atom?" + urlencode({"study": study_id})
    return html_page(
        request, "study.html", title=f"{study_id} · {data.view.title}", data=data, feed_url=feed
    )


ROUTES: list[Route] = [
    Route("/", records_page),
    Route("/api/studies", records_api),
    Route("/studies/{study_id}", study_page),
]
