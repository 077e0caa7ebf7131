"""Transparency findings: the page ``/findings`` and its JSON twin ``/api/findings``.

Open findings first, then resolved ones, newest first within each. Filters are GET parameters:
``rule`` (a rule's code), ``state`` (open or resolved; ``open=1`` is ``state=open``, as
``trialwatch findings --open``), ``study`` (a registry id). Pages are by keyset (``cursor``,
``size``; ``before`` for the previous page); the JSON body is a top-level array of findings
as ``trialwatch findings --json`` prints them, the next page in the ``Link`` header. Each is
shown with its record's title and its rule in words (``service.findings.words.rule_words``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.errors import InputError
from service.findings.rules import RULE_NAMES
from service.findings.stored import FindingInfo
from service.findings.words import finding_words, rule_words
from service.notify.render import finding_detail
from service.store import BrowsedFinding, FindingFilter
from service.web.changes import study_parameter
from service.web.pages import (
    BAD_CURSOR,
    choice,
    decode_cursor,
    encode_cursor,
    html_page,
    json_answer,
    page_size,
    parameter,
    tw,
    url_with,
)

__all__ = ["ROUTES", "rule_choices"]

STATES = ("open", "resolved")


def rule_choices() -> list[tuple[str, str]]:
    """(code, words) of every rule, for a filter's list."""
    return [(rule, rule_words(rule)) for rule in RULE_NAMES]


@dataclass(frozen=True)
class FindingItem:
    finding: FindingInfo
    title: str  # its record's title now
    rule: str  # its rule in words
    record_url: str  # the findings of its record's page
    opened: str
    resolved: str  # "" while open
    when: str  # an open finding's deadline from today ("due 2021-04-12, 30 days ago"), or ""
    detail: Any  # the detail in words: a diff node (notify.render.finding_detail), or None


@dataclass(frozen=True)
class FindingsData:
    form: dict[str, str]
    filtered: bool
    items: list[FindingItem]
    next_url: str | None
    previous_url: str | None
    first_url: str | None
    api_url: str


def _filters(request: Request) -> FindingFilter:
    rule = choice(request, "rule", RULE_NAMES)
    state = choice(request, "state", STATES)
    if choice(request, "open", ("1", "0")) == "1":
        if state == "resolved":
            raise InputError("open: 1 asks for open findings, state: resolved for resolved ones")
        state = "open"
    return FindingFilter(study_id=study_parameter(request), rule=rule, state=state)


def _after(request: Request, name: str = "cursor") -> tuple[str, int] | None:
    values = decode_cursor(parameter(request, name), 2)
    if values is None:
        return None
    state, last = values
    if state not in STATES or not isinstance(last, int) or isinstance(last, bool):
        raise InputError(BAD_CURSOR)
    return state, last


def findings_data(request: Request) -> FindingsData:
    filters = _filters(request)
    after, before = _after(request), _after(request, "before")
    if after is not None and before is not None:
        raise InputError("before: a page is either after a cursor or before one, not both")
    size = page_size(request)
    store = tw(request).store
    if before is None:
        rows = store.browse_findings(filters, after=after, limit=size + 1)
        shown, more_after, more_before = rows[:size], len(rows) > size, after is not None
    else:  # the previous page: read backwards from its first row, shown the right way round
        rows = store.browse_findings(filters, after=before, limit=size + 1, backwards=True)
        shown, more_after, more_before = rows[:size][::-1], True, len(rows) > size
    next_url = _page_url(request, "cursor", shown[-1]) if more_after and shown else None
    previous_url = _page_url(request, "before", shown[0]) if more_before and shown else None
    form = {
        "rule": filters.rule or "",
        "state": filters.state or "",
        "study": filters.study_id or "",
    }
    query = urlencode(sorted((k, v) for k, v in form.items() if v))
    return FindingsData(
        form=form,
        filtered=any(form.values()),
        items=[_item(row.finding, row.title, tw(request).clock().date()) for row in shown],
        next_url=next_url,
        previous_url=previous_url,
        first_url=url_with(request, cursor=None, before=None) if more_before else None,
        api_url="/api/findings" + (f"?{query}" if query else ""),
    )


def _page_url(request: Request, name: str, row: BrowsedFinding) -> str:
    """The page after (``cursor``) or before (``before``) the finding ``row``."""
    other = "before" if name == "cursor" else "cursor"
    key = encode_cursor([row.finding.state, row.id])
    return url_with(request, **{name: key, other: None})


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.strftime("%Y-%m-%d %H:%M UTC")


def _item(finding: FindingInfo, title: str, today: date) -> FindingItem:
    """A finding as the page shows it: its evidence in words, its deadline counted from
    ``today`` while it is open (a resolved finding's deadline no longer matters)."""
    resolved = finding.state == "resolved"
    words = finding_words(finding.detail, None if resolved else today)
    return FindingItem(
        finding=finding,
        title=title,
        rule=rule_words(finding.rule),
        record_url=f"/studies/{quote(finding.study_id, safe='')}#findings",
        opened=_when(finding.opened_at),
        resolved=_when(finding.resolved_at),
        when=words.when,
        detail=finding_detail(words, resolved=resolved),
    )


def findings_page(request: Request) -> Response:
    data = findings_data(request)
    return html_page(
        request, "findings.html", title="Findings", data=data, rules=rule_choices(), states=STATES
    )


def findings_api(request: Request) -> Response:
    data = findings_data(request)
    return json_answer([item.finding.to_json() for item in data.items], next_url=data.next_url)


ROUTES: list[Route] = [
    Route("/findings", findings_page, methods=["GET"]),
    Route("/api/findings", findings_api, methods=["GET"]),
]
