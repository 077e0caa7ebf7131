"""The EU Clinical Trials Register's client: a trial's full text download, the register's
feed of trials updated in the last 7 days, and its summary download (search).

The register has no API (design/registries.md §2.1); these are the text and RSS endpoints its
pages link to, asked through ``PoliteHttp`` (pace, retries on 429/5xx/HTML pages/cut bodies,
deadline, size cap):

- ``GET {url}/ctr-search/rest/download/full?query=<EudraCT>&mode=current_page``: every country
  record of the trial. An unknown number gets the header paragraph alone, with 200:
  ``RecordNotFound``. A download cut short or empty is asked again (up to ``max_attempts``),
  then ``RecordInvalid``; so is one that does not hold the number asked for.
- ``GET {url}/ctr-search/rest/feed/bydates?query=``: RSS of every trial added or updated in
  the last 7 days, one request a cycle. Its items give a day, not a time: the signal's
  precision is "day" and it says nothing of changes before 7 days ago (``covers_from``).
- ``GET {url}/ctr-search/rest/download/summary?query=<words>&mode=current_page&page=N``: the
  search's summary blocks (20 trials a page), each with every country's status.

The feed is read with the standard library's expat, refusing any DTD or entity declaration
(no entity expansion, nothing external fetched): trialwatch has no XML-hardening dependency.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from xml.parsers import expat

import httpx

from service.errors import InputError, RecordInvalid, RecordNotFound
from service.registry.euctr.fields import parse_id
from service.registry.euctr.normalise import (
    EUDRACT_KEY,
    RESULTS_KEY,
    TEXT_KEY,
    ended_everywhere,
)
from service.registry.euctr.text import (
    EUDRACT,
    Download,
    NotADownload,
    SearchPage,
    parse_download,
    parse_summary,
)
from service.registry.euctr.tls import register_tls_context
from service.registry.polite import PoliteHttp, build_polite_client
from service.registry.source import Signal
from service.settings import EuctrSettings

__all__ = ["FEED_DAYS", "EuctrClient", "build_client", "feed_stamps"]

NAME = "EUCTR"
FEED_DAYS = 7  # the feed lists the trials added or updated in the last 7 days
ACCEPT = "text/plain, application/rss+xml;q=0.9, */*;q=0.5"
_FEED_NUMBER = re.compile(r"eudract_number(?::|%3A)(\d{4}-\d{6}-\d{2})", re.ASCII | re.IGNORECASE)
_FEED_FIELDS = frozenset({"title", "link", "guid", "pubdate", "date", "updated", "published"})


class EuctrClient:
    """The register, one polite request at a time (``requests`` counts retries too)."""

    registry = "euctr"

    def __init__(
        self,
        http: PoliteHttp,
        settings: EuctrSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._http = http
        self._settings = settings
        self._base = settings.url.rstrip("/") + "/ctr-search"
        self._clock = clock

    @property
    def requests(self) -> int:
        return self._http.requests

    def fetch(self, study_id: str) -> dict[str, Any]:
        """``{"eudract_number", "text"}``: the trial's download, its country records only."""
        number = parse_id(study_id)
        if number is None:
            raise InputError(f"{study_id!r} is not a EudraCT number")
        download = self._download(number)
        if not download.records:
            raise RecordNotFound(
                f"not found in {NAME}: {number} (the register knows no such trial)"
            )
        records = [r for r in download.records if r.eudract_number == number]
        if not records:
            others = ", ".join(sorted({r.eudract_number for r in download.records})[:3])
            raise RecordInvalid(f"{NAME} download of {number} holds other trials ({others})")
        # the download as the register wrote it, less any other trial's records
        text = download.header + "".join(record.text for record in records)
        raw: dict[str, Any] = {EUDRACT_KEY: number, TEXT_KEY: text}
        if ended_everywhere(raw):  # results are due: the search summary says if they are in
            said = self._trial_results(number)
            if said:
                raw[RESULTS_KEY] = said
        return raw

    def _trial_results(self, number: str) -> str:
        """The search summary's "Trial results" of one trial ("View results", "(No results
        available)"), "" when the summary does not say."""
        hits = self.search(f"eudract_number:{number}").hits
        return next((hit.results for hit in hits if hit.eudract_number == number), "")

    def _download(self, number: str) -> Download:
        """The full download; one cut short (or empty) is asked for again, up to
        ``max_attempts`` times: PoliteHttp retries what the transport shows (status, HTML,
        a body shorter than announced), this what only the text shows."""
        params = {"query": number, "mode": "current_page"}
        attempts = self._settings.max_attempts
        for attempt in range(1, attempts + 1):
            url = f"{self._base}/rest/download/full"
            answer = self._http.request("GET", url, expect="text", params=params)
            try:
                return parse_download(answer.text)
            except NotADownload as exc:
                if not exc.incomplete or attempt == attempts:
                    raise RecordInvalid(f"{NAME} download of {number}: {exc}") from None
        raise AssertionError("unreachable: max_attempts is at least 1")

    def signal(self, since: datetime) -> Signal:
        """One request: every trial the feed names, with the day it was added or updated."""
        del since  # the feed always answers its 7 days; the caller compares the days
        now = self._clock()
        answer = self._http.request(
            "GET", f"{self._base}/rest/feed/bydates", expect="xml", params={"query": ""}
        )
        stamps = feed_stamps(answer.body, today=now.date())
        return Signal(stamps=stamps, precision="day", covers_from=now - timedelta(days=FEED_DAYS))

    def search(self, words: str, page: int = 1) -> SearchPage:
        """One page (20 trials) of the register's search for ``words``, as summary blocks."""
        params = {"query": words, "mode": "current_page", "page": str(max(1, page))}
        answer = self._http.request(
            "GET", f"{self._base}/rest/download/summary", expect="text", params=params
        )
        try:
            return parse_summary(answer.text)
        except NotADownload as exc:
            raise RecordInvalid(f"{NAME} search {words!r} page {page}: {exc}") from None


def build_client(
    settings: EuctrSettings,
    *,
    observe: Callable[[str], None] = lambda _answer: None,
    stop: threading.Event | None = None,
    http: httpx.Client | None = None,
) -> EuctrClient:
    """The register's client; over https with the register's own trust (``tls``)."""
    if http is None:
        verify = register_tls_context() if settings.url.lower().startswith("https:") else None
        http = build_polite_client(settings, accept=ACCEPT, verify=verify)
    polite = PoliteHttp(http, settings, name=NAME, observe=observe, stop=stop)
    return EuctrClient(polite, settings)


# --- the feed -------------------------------------------------------------------------------


class _Refused(Exception):
    """A feed that declares a DTD or entities: not read."""


def feed_stamps(body: bytes, *, today: date) -> dict[str, str]:
    """EudraCT number → the latest day (``yyyy-mm-dd``) the feed gives it. An item without a
    readable date is stamped ``today``: it changed in the last 7 days, maybe today."""
    stamps: dict[str, str] = {}
    for item in _feed_items(body):
        number = _item_number(item)
        if number is None:
            continue
        day = _item_day(item) or today.isoformat()
        stamps[number] = max(day, stamps.get(number, ""))
    return stamps


def _feed_items(body: bytes) -> list[dict[str, str]]:
    items: list[dict[str, str]] = []
    path: list[str] = []
    current: dict[str, str] | None = None
    text: list[str] = []
    root: list[str] = []

    def refuse(*_args: object) -> Any:  # expat's handlers differ in what they return
        raise _Refused

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal current
        local = name.rsplit(":", 1)[-1].lower()
        if not path:
            root.append(local)
        path.append(local)
        if local in ("item", "entry"):
            current = {}
        elif current is not None and local == "link" and attributes.get("href"):
            current["link"] = attributes["href"]  # Atom's <link href="…"/>
        text.clear()

    def end(name: str) -> None:
        nonlocal current
        local = path.pop()
        if local in ("item", "entry") and current is not None:
            items.append(current)
            current = None
        elif current is not None and local in _FEED_FIELDS:
            current.setdefault(local, "".join(text).strip())
        text.clear()

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(body, True)
    except _Refused:
        raise RecordInvalid(f"{NAME} feed declares a DTD or entities: not read") from None
    except expat.ExpatError as exc:
        raise RecordInvalid(f"{NAME} feed is not XML ({exc})") from None
    if root[:1] not in (["rss"], ["feed"], ["rdf"]):
        raise RecordInvalid(f"{NAME} feed is not RSS (root element {root[:1] or 'none'})")
    return items


def _item_number(item: dict[str, str]) -> str | None:
    for key in ("link", "guid", "title"):
        value = item.get(key, "")
        match = _FEED_NUMBER.search(value) or EUDRACT.search(value)
        if match:
            return match.group(1) if match.re is _FEED_NUMBER else match.group(0)
    return None


def _item_day(item: dict[str, str]) -> str:
    """The item's day as the register wrote it (its own time zone: the day it says)."""
    for key in ("pubdate", "date", "updated", "published"):
        value = item.get(key, "")
        if not value:
            continue
        try:
            return parsedate_to_datetime(value).date().isoformat()
        except (TypeError, ValueError, IndexError):
            pass
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date().isoformat()
        except ValueError:
            continue
    return ""
