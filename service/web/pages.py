"""What every page shares: the App behind a request, rendering a template, JSON answers with a
``Link: rel="next"`` header, opaque pagination cursors, and reading query parameters.

Pagination is by keyset (Datasette's way): a page asks for ``size + 1`` rows after the cursor,
and the cursor is the last row's sort key, never an OFFSET, so page 2,000 of 100,000 records
costs what page 1 does. A previous page is ``before=`` a page's first row's key: the same
walk, the other way. Cursors are opaque to readers (base64 of a JSON list).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from service.errors import InputError, StoreError, StoreTimeout, TrialwatchError
from service.searches import NAME as SEARCH_NAME
from service.templates import render
from service.text import storable
from service.urls import mask_urls

if TYPE_CHECKING:
    from service.clock import Clock
    from service.health import HealthCheck
    from service.settings import Settings
    from service.store import Store

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_PARAMETER_LENGTH = 200

NAVIGATION = (
    ("/", "Records"),
    ("/changes", "Changes"),
    ("/findings", "Findings"),
    ("/seeds", "Seeds"),
    ("/outbox", "Outbox"),
)


@dataclass(frozen=True)
class Reader:
    """What a page reads: the store (the web app's own engine, its statements under the
    statement timeout), the settings and the clock of the App it serves."""

    store: Store
    settings: Settings
    clock: Clock


def tw(request: Request) -> Reader:
    """What this web app's pages read (its store, settings and clock)."""
    return request.app.state.tw  # type: ignore[no-any-return]


def site_url(request: Request) -> str:
    """Where absolute links point: the server's configured address (``[web] public_url``, or
    the bound one), never the ``Host`` a request names; in-process (tests), the request's."""
    configured: str | None = getattr(request.app.state, "site_url", None)
    return configured or str(request.base_url).rstrip("/")


def html_page(
    request: Request, template: str, *, title: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """``template`` (under ``templates/web/``) rendered in the layout, with the navigation."""
    body = render(
        f"web/{template}",
        title=title,
        navigation=NAVIGATION,
        here=request.url.path,
        banner=banner(request),
        feed_url=context.pop("feed_url", "/feeds/changes.atom"),
        **context,
    )
    return HTMLResponse(body, status_code=status)


def banner(request: Request) -> str:
    """One line for the top of every page when ``/readyz`` would answer 503 (the last cycle
    failed as a whole, the store does not answer, no sync has succeeded, or none lately):
    when, and why. "" when ready. A browser's reader would otherwise see a failing daemon's
    last good pages and take them for today's."""
    health: HealthCheck | None = getattr(request.app.state, "health", None)
    if health is None:
        return ""
    code, body = health.readiness()
    if code == 200:
        return ""
    last = body.get("last_sync") or {}
    when = last.get("at") if body.get("status") == "failing" and last.get("at") else None
    moment = datetime.fromisoformat(when) if when else health.clock()
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if (body.get("checks") or {}).get("store", "ok") != "ok":
        detail = STORE_UNAVAILABLE  # its error names the store's file or URL: the log has it
    else:  # a cycle's error may quote the store's address too, or a URL with credentials
        words = " ".join(str(body.get("detail") or "not ready").split())
        detail = mask_urls(_STORE_ADDRESS.sub("the store", words))
    state = _STATE_WORDS.get(str(body.get("status")), "Not ready")
    return f"{state} ({stamp}): {detail}"


_STORE_ADDRESS = re.compile(r"\bstore (?:sqlite|postgresql)\S*?(?=:?(?:\s|$))")
_STATE_WORDS = {
    "failing": "Failing",
    "starting": "Not synced yet",
    "stale": "Out of date",
}


def json_answer(document: Any, *, next_url: str | None = None, status: int = 200) -> Response:
    """A JSON document (the CLI's ``--json`` shapes); the next page, if any, in ``Link``."""
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str)
    headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


STORE_UNAVAILABLE = "the store did not answer: try again later"


def public_message(exc: TrialwatchError) -> str:
    """What a web client is told of an error: a store's error names its URL or file (logged,
    for the operator), so a client gets a line without it; a timeout names only the setting."""
    if isinstance(exc, StoreError) and not isinstance(exc, StoreTimeout):
        return STORE_UNAVAILABLE
    return exc.message


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSOR = "cursor: not a cursor from this site (follow the page's next link)"
CURSORS = ("cursor", "before")  # a page's place: after a row, or before one
MAX_CURSOR_INTEGER = 2**63 - 1


def decode_cursor(text: str | None, arity: int) -> list[Any] | None:
    """The sort key a cursor carries, or None for the first page; a cursor that was not made
    here is a one-line ``InputError`` (400)."""
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InputError(BAD_CURSOR) from None
    ok = isinstance(values, list) and len(values) == arity
    if not ok or not all(_cursor_value(v) for v in values):
        raise InputError(BAD_CURSOR)
    return values


def _cursor_value(value: Any) -> bool:
    """A value a cursor of this site can hold: text, null, or a row id (0 … 2⁶³−1: a larger
    integer is no row's and would overflow the database's integer)."""
    if value is None:
        return True
    if isinstance(value, str):
        return storable(value) == value  # no NUL, no lone surrogate: no row holds one
    return type(value) is int and 0 <= value <= MAX_CURSOR_INTEGER


def parameter(request: Request, name: str) -> str | None:
    """A query parameter, trimmed; None when absent or empty. Over-long values are refused, and
    so are NUL and lone surrogate characters (no stored text holds one, and PostgreSQL refuses
    them in a query's parameters)."""
    value = request.query_params.get(name)
    if value is None or not value.strip():
        return None
    if len(value) > MAX_PARAMETER_LENGTH:
        raise InputError(f"{name}: longer than {MAX_PARAMETER_LENGTH} characters")
    if storable(value) != value:
        raise InputError(f"{name}: holds a NUL or an unpaired surrogate character")
    return value.strip()


def choice(request: Request, name: str, choices: Sequence[str]) -> str | None:
    """A parameter that must be one of ``choices``."""
    value = parameter(request, name)
    if value is not None and value not in choices:
        raise InputError(f"{name}: {value!r} is not one of {', '.join(choices)}")
    return value


def selectors(request: Request) -> tuple[str | None, str | None, str | None]:
    """``tag``, ``seed`` and ``query`` (a saved search's name, checked), as given."""
    search = parameter(request, "query")
    if search is not None and not SEARCH_NAME.fullmatch(search):
        raise InputError(
            f"query: {search!r} is not a saved search name (lowercase letters, digits and "
            "hyphens, e.g. lung-il2)"
        )
    return parameter(request, "tag"), parameter(request, "seed"), search


def search_names(request: Request, chosen: str) -> list[str]:
    """The saved searches' names, for a selector's list (the one asked for, even if gone)."""
    names = [s.name for s in tw(request).store.list_searches()]
    return [*names, chosen] if chosen and chosen not in names else names


def selector_tags(tag: str | None, seed: str | None, search: str | None) -> tuple[str, ...]:
    """The watch tags the selectors stand for: seeds and saved searches tag what they bring
    in (``seed:ID``, ``query:NAME``), so all three filter by tag."""
    named = (tag, f"seed:{seed}" if seed else None, f"query:{search}" if search else None)
    return tuple(t for t in named if t)


def page_size(request: Request) -> int:
    value = parameter(request, "size")
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_PAGE_SIZE:
        raise InputError(f"size: {value!r} is not a number from 1 to {MAX_PAGE_SIZE}")
    return int(value)


def url_with(request: Request, **changes: str | int | None) -> str:
    """This page's path and query with ``changes`` applied (None removes a parameter).
    Changing anything but the cursors (``cursor``: after a row; ``before``: before one, the
    previous page) starts again from the first page."""
    query = dict(request.query_params)
    if set(changes) - set(CURSORS):
        for name in CURSORS:
            query.pop(name, None)
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = str(value)
    encoded = urlencode(sorted(query.items()))
    return request.url.path + (f"?{encoded}" if encoded else "")
