"""The CTIS public API, asked politely: one record (``GET /retrieve/<ctNumber>``) and the change
signal (``POST /search`` sorted by ``lastUpdated``, newest first).

CTIS sits behind Azure's web firewall, which answers 403 as well as 429 to bursts
(rfhb/ctrdata#55): both are retried (``PoliteHttp(retry_forbidden=True)``). ``GET /search``
is refused with 403 whatever the pace; the search is a POST.

``/retrieve`` leaves out what only a search row carries (``lastUpdated``,
``totalNumberEnrolled``, ``resultsFirstReceived``, ``startDateEU`` …: ctrdata merges the row
over the record for the same reason); the record a fetch returns has them merged in, from the
row the last change signal gave for it, else from one search for its number. The row's
``ctStatus`` (the public status code) is never merged: the record's own is the application's.

The search answers at most 10,000 rows a query (rfhb/ctrdata#59): the signal pages back from
the newest update until it passes ``since``, and when the cap stops it first it says so
(``Signal.warning``) and tells from when it covers (``Signal.covers_from``), never truncating
in silence.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from service.errors import RecordInvalid, RecordNotFound, UnsafeDocument
from service.registry.ctis.fields import parse_id
from service.registry.polite import Answer, PoliteHttp, build_polite_client
from service.registry.source import Signal
from service.safeload import load_json
from service.settings import CtisSettings

__all__ = ["SEARCH_CAP", "CtisClient", "build_client"]

SEARCH_CAP = 10_000  # rows CTIS answers a query at most (pagination.totalRecords stops there)
# what a search row adds to a /retrieve record (never its ctStatus: the public code there)
ROW_FIELDS = (
    "lastUpdated",
    "lastPublicationUpdate",
    "totalNumberEnrolled",
    "resultsFirstReceived",
    "startDateEU",
    "endDateEU",
    "trialPhase",
    "trialCountries",
    "decisionDateOverall",
)


@dataclass(frozen=True)
class _Page:
    """One page of search rows and what the pagination says of the rest."""

    rows: list[dict[str, Any]]
    more: bool  # the registry has a next page
    capped: bool  # the query matched more than the registry will list (showWarning)


class CtisClient:
    """A ``RecordSource`` for CTIS. ``requests`` counts every HTTP request, retries included."""

    registry = "ctis"

    def __init__(self, http: PoliteHttp, settings: CtisSettings) -> None:
        self._http = http
        self._api = settings.api_url.rstrip("/")
        self._page_size = settings.page_size
        self._rows: dict[str, dict[str, Any]] = {}  # the last signal's rows, by number

    @property
    def requests(self) -> int:
        return self._http.requests

    def fetch(self, study_id: str) -> dict[str, Any]:
        """The ``/retrieve`` record of an EU CT number, as CTIS serves it."""
        number = parse_id(study_id)
        if number is None:
            raise RecordNotFound(f"not found in CTIS: {study_id!r} is not an EU CT number")
        what = f"retrieve/{number}"
        answer = self._http.request("GET", f"{self._api}/retrieve/{quote(number)}", expect="json")
        record = _json(answer, what)
        if not isinstance(record, dict):
            raise RecordInvalid(f"CTIS answered {what} with {_kind(record)}, not a trial record")
        served = record.get("ctNumber")
        if served != number:
            raise RecordInvalid(
                f"CTIS answered {what} with the record of {served!r}, not of {number}"
            )
        row = self._rows.pop(number, None) or self._row_of(number)
        extra = {k: row[k] for k in ROW_FIELDS if k in row and k not in record} if row else {}
        return {**record, **extra}

    def _row_of(self, number: str) -> dict[str, Any] | None:
        """The search row of one trial (one request), None when the search does not list it."""
        page = self._search_page(1, 1, {"number": number}, "lastUpdated")
        return next((r for r in page.rows if r.get("ctNumber") == number), None)

    def signal(self, since: datetime) -> Signal:
        """The trials updated on or after ``since``'s day (UTC), each with the day CTIS last
        updated it (``lastUpdated`` has a day's precision). Pages on while the last row of a
        page is still on or after that day, so a quiet cycle costs one request.

        CTIS's days are (presumably) Brussels days, never behind UTC: an update stamped the day
        before ``since``'s UTC day happened before ``since``. A record is stamped with the later
        of ``lastUpdated`` and ``lastPublicationUpdate``: an update is made public the night
        after it (the reference records: 19/08 → published 20/08 at 03:46), and a fetch in
        between saw the old record. Rows whose days cannot be read are no signal at all
        (``RecordInvalid``: the cycle then fetches every record)."""
        since_day = _utc_day(since)
        stamps: dict[str, str] = {}
        self._rows.clear()
        oldest: date | None = None
        page_number = 1
        while True:
            page = self._search_page(page_number, self._page_size, {}, "lastUpdated")
            days = [(row, _row_day(row)) for row in page.rows]
            dated = [day for _row, day in days if day is not None]
            unreadable = [r for r, d in days if d is None and str(r.get("lastUpdated") or "")]
            if unreadable and not dated:  # the day's format changed: no signal at all
                raise RecordInvalid(
                    f"CTIS search page {page_number}: no row's lastUpdated reads as a day "
                    f"(e.g. {unreadable[0].get('lastUpdated')!r})"
                )
            for row, day in days:
                number = parse_id(str(row.get("ctNumber") or ""))
                if number and day is not None and day >= since_day:
                    published = _row_day(row, "lastPublicationUpdate") or day
                    stamp = max(day, published).isoformat()
                    stamps[number] = max(stamps.get(number, ""), stamp)
                    self._rows[number] = row
            if not dated or dated[-1] < since_day:
                return Signal(stamps=stamps, precision="day")
            oldest = min(dated) if oldest is None else min(oldest, *dated)
            if page.more and page_number * self._page_size < SEARCH_CAP:
                page_number += 1
                continue
            if not page.capped:
                return Signal(stamps=stamps, precision="day")
            return _capped_signal(stamps, since_day, oldest)

    def search(
        self, criteria: dict[str, Any], limit: int = 100, *, sort: str = "lastUpdated"
    ) -> list[dict[str, Any]]:
        """The ``/search`` rows (``ctNumber``, ``ctTitle``, ``ctStatus`` = the public status
        code, ``sponsor`` …) of trials matching ``criteria`` (``{"containAll": "…"}``,
        ``{"number": "…"}``, ``{"medicalCondition": "…"}``), newest first, at most ``limit``
        (and never past the registry's 10,000)."""
        rows: list[dict[str, Any]] = []
        limit = min(limit, SEARCH_CAP)
        size = max(1, min(self._page_size, limit))
        page_number = 1
        while len(rows) < limit:
            page = self._search_page(page_number, size, criteria, sort)
            rows.extend(page.rows)
            if not page.rows or not page.more or page_number * size >= SEARCH_CAP:
                break
            page_number += 1
        return rows[:limit]

    def _search_page(self, page: int, size: int, criteria: dict[str, Any], sort: str) -> _Page:
        body = {
            "pagination": {"page": page, "size": size},
            "searchCriteria": criteria,
            "sort": {"property": sort, "direction": "DESC"},
        }
        answer = self._http.request("POST", f"{self._api}/search", expect="json", json=body)
        found = _json(answer, "search")
        what = f"CTIS search page {page}"
        if not isinstance(found, dict):
            raise RecordInvalid(f"{what}: expected an object, got {_kind(found)}")
        rows = found.get("data")
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise RecordInvalid(f"{what}: data: expected a list of trial rows")
        pagination = found.get("pagination")
        pagination = pagination if isinstance(pagination, dict) else {}
        total = pagination.get("totalRecords")
        more = pagination.get("nextPage")
        if not isinstance(more, bool):  # not said: a full page may have a next one
            more = len(rows) >= size
        capped = found.get("showWarning") is True or (
            isinstance(total, int) and not isinstance(total, bool) and total >= SEARCH_CAP
        )
        return _Page(rows=rows, more=more, capped=capped)


def build_client(
    settings: CtisSettings,
    *,
    observe: Callable[[str], None] = lambda _answer: None,
    stop: threading.Event | None = None,
    http: httpx.Client | None = None,
) -> CtisClient:
    """A CTIS client on ``settings`` (``http``: an HTTP client of the caller's, for tests)."""
    client = http if http is not None else build_polite_client(settings, accept="application/json")
    polite = PoliteHttp(
        client, settings, name="CTIS", retry_forbidden=True, observe=observe, stop=stop
    )
    return CtisClient(polite, settings)


def _capped_signal(stamps: dict[str, str], since_day: date, oldest: date) -> Signal:
    """The cap stopped the signal at ``oldest``, whose own rows may be cut short: it speaks
    for the days after it, and the monitor fetches whatever it last fetched before then."""
    covers = oldest + timedelta(days=1)
    warning = (
        f"CTIS lists at most {SEARCH_CAP:,} trials a query: its search by last update reached "
        f"back to {oldest.isoformat()} only, not to {since_day.isoformat()}; trials last "
        f"fetched before {covers.isoformat()} are fetched again"
    )
    return Signal(
        stamps=stamps,
        precision="day",
        covers_from=datetime.combine(covers, time(0), tzinfo=UTC),
        warning=warning,
    )


def _json(answer: Answer, what: str) -> Any:
    try:
        return load_json(answer.body)
    except UnsafeDocument as exc:
        raise RecordInvalid(f"CTIS answer to {what} refused: {exc}") from None
    except ValueError:
        raise RecordInvalid(f"CTIS sent a body that is not JSON ({what})") from None


def _row_day(row: dict[str, Any], key: str = "lastUpdated") -> date | None:
    """A search row's ``lastUpdated`` or another day of it (dd/mm/yyyy; yyyy-mm-dd before the
    relaunch)."""
    value = row.get(key)
    if not isinstance(value, str):
        return None
    text = value.strip()
    for form in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, form).date()
        except ValueError:
            continue
    return None


def _utc_day(moment: datetime) -> date:
    if moment.tzinfo is None:  # a naive time is UTC, as the service keeps them
        return moment.date()
    return moment.astimezone(UTC).date()


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"
