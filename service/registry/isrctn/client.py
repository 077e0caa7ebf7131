"""The ISRCTN client: one record (``fetch``) and what changed (``signal``), from the registry's
keyless XML query API (``GET {api_url}/query/format/default?q=…&limit=N``), through
``PoliteHttp`` (pace, retries on 429/5xx/HTML pages/cut bodies, deadline, size cap).

``fetch("ISRCTN12949496")`` asks ``q=12949496&limit=1`` (the registry finds a record by its
8 digits) and returns ``{"isrctn", "xml", "as_of"}``: the record's ``<fullTrial>`` XML and
the day it was fetched, from the client's clock, because ISRCTN keeps no status and the
normaliser computes it for that day. ``totalCount="0"`` is ``RecordNotFound``; an answer
holding another trial is ``RecordInvalid``.

``signal(since)`` asks ``q=lastEdited GE 2026-01-01T00:00:00.000Z`` once, with a limit of
``signal_limit`` records: the answer carries the records themselves, so the stamps (id →
``trial@lastUpdated``, to the millisecond) come with the full records, which the monitor
need not fetch again. The API has no paging: when more records changed than came back, the
time window is halved (``lastEdited GE a AND lastEdited LT b``) until each half fits, at most
``max_signal_requests`` requests; what still does not fit is said in the signal's warning.
The limit is kept well under ``max_response_mib`` (a record is 10–30 KB of XML), since an
answer over the cap is refused whole.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from service.errors import RecordInvalid, RecordNotFound
from service.registry.isrctn.fields import INFO, parse_id
from service.registry.isrctn.xml import QueryAnswer, TrialXml, parse_query_answer
from service.registry.polite import PoliteHttp, build_polite_client
from service.registry.source import Signal
from service.settings import IsrctnSettings

QUERY_PATH = "/query/format/default"
SIGNAL_LIMIT = 2000  # records an answer of the change signal: ~40 MB at 20 KB a record
MAX_SIGNAL_REQUESTS = 16  # halvings of the window before the signal gives up and says so
_SMALLEST_WINDOW = timedelta(seconds=1)  # the query's times are whole seconds

Clock = Callable[[], datetime]
_Window = tuple[datetime, datetime | None]  # [start, end); an open end: None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class IsrctnClient:
    """``RecordSource`` for ISRCTN (see the module docstring). ``requests`` counts every HTTP
    request, retries included."""

    registry = INFO.key

    def __init__(
        self,
        http: PoliteHttp,
        api_url: str,
        *,
        clock: Clock = _utc_now,
        signal_limit: int = SIGNAL_LIMIT,
        max_signal_requests: int = MAX_SIGNAL_REQUESTS,
    ) -> None:
        self._http = http
        self._url = api_url.rstrip("/") + QUERY_PATH
        self._clock = clock
        self._signal_limit = signal_limit
        self._budget = max_signal_requests

    @property
    def requests(self) -> int:
        return self._http.requests

    def fetch(self, study_id: str) -> dict[str, Any]:
        """The record as the store keeps it: ``{"isrctn", "xml", "as_of"}``."""
        canonical = parse_id(study_id)
        if canonical is None:
            raise RecordNotFound(f"{study_id!r} is not an ISRCTN id ({INFO.id_forms})")
        answer = self._query(canonical.removeprefix("ISRCTN"), limit=1)
        if answer.total_count == 0 or not answer.trials:
            raise RecordNotFound(f"not found in ISRCTN: {canonical}")
        trial = answer.trials[0]
        if trial.isrctn != canonical:
            named = trial.isrctn or "a record without an ISRCTN number"
            raise RecordInvalid(f"ISRCTN answered {named} when asked for {canonical}")
        return _raw(trial, self._today())

    def signal(self, since: datetime) -> Signal:
        """What changed since ``since`` (UTC; a naive time is taken as UTC), with the records."""
        start = _utc(since).replace(microsecond=0)
        found = _Found(now=max(_utc(self._clock()), start + _SMALLEST_WINDOW), today=self._today())
        windows: deque[_Window] = deque([(start, None)])
        while windows:
            window = windows.popleft()
            answer = self._ask(found, window)
            if answer is None:
                continue
            halves = _halves(window, found.now)
            # every window still queued is a request promised: halves only within the budget
            if halves and found.asked + len(windows) + 2 <= self._budget:
                windows.extend(halves)
            else:
                found.take(answer)
                found.overflowed(window)
                found.warnings.append(_overflow(window, answer))
        return Signal(
            stamps=found.stamps,
            precision="time",
            covers_from=found.blind_until,
            records=found.records,
            warning="; ".join(found.warnings),
        )

    def _ask(self, found: _Found, window: _Window) -> QueryAnswer | None:
        """Ask the records edited in ``window``; None when more changed than came back (the
        records that did are of no use: which of the window's they are is not said)."""
        start, end = window
        q = f"lastEdited GE {_stamp(start)}"
        if end is not None:
            q += f" AND lastEdited LT {_stamp(end)}"
        found.asked += 1
        answer = self._query(q, limit=self._signal_limit)
        if answer.total_count <= len(answer.trials):
            found.take(answer)
            return None
        return answer

    def _today(self) -> str:
        return _utc(self._clock()).date().isoformat()

    def _query(self, q: str, *, limit: int) -> QueryAnswer:
        answer = self._http.request(
            "GET", self._url, expect="xml", params={"q": q, "limit": str(limit)}
        )
        return parse_query_answer(answer.body, f"ISRCTN answer ({self._url})")


@dataclass
class _Found:
    """What one change signal has found so far (records by id, their stamps, warnings) and
    how many requests it has made."""

    now: datetime  # the open window's end, for halving it
    today: str  # the records' as_of
    asked: int = 0
    stamps: dict[str, str] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # the end of the latest window too full to read: the signal says nothing of the records
    # fetched before it (the monitor fetches them)
    blind_until: datetime | None = None

    def overflowed(self, window: tuple[datetime, datetime | None]) -> None:
        end = window[1] or self.now
        self.blind_until = end if self.blind_until is None else max(self.blind_until, end)

    def take(self, answer: QueryAnswer) -> None:
        for trial in answer.trials:
            if not trial.isrctn:
                self.warnings.append("ISRCTN: a changed record without an ISRCTN number")
                continue
            # a record without its time: stamped now, so it counts as changed after any fetch
            self.stamps[trial.isrctn] = trial.last_updated or _stamp(self.now)
            self.records[trial.isrctn] = _raw(trial, self.today)


def _raw(trial: TrialXml, today: str) -> dict[str, Any]:
    """A record as the store keeps it (what the normaliser reads)."""
    return {"isrctn": trial.isrctn, "xml": trial.xml, "as_of": today}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _stamp(moment: datetime) -> str:
    """The query's time form: ``2026-01-01T00:00:00.000Z`` (whole seconds, UTC)."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _halves(window: _Window, now: datetime) -> list[_Window]:
    """``window`` cut in two at its middle second (an open end counts as ``now``); none when
    it is a second long already (the query's times are whole seconds)."""
    start, end = window
    middle = (start + ((end or now) - start) / 2).replace(microsecond=0)
    return [(start, middle), (middle, end)] if middle > start else []


def _overflow(window: _Window, answer: QueryAnswer) -> str:
    start, end = window
    until = f" to {_stamp(end)}" if end else ""
    return (
        f"ISRCTN: {answer.total_count} records changed from {_stamp(start)}{until} but "
        f"{len(answer.trials)} came back (the API has no paging); every record last fetched "
        f"before {_stamp(end) if end else 'now'} is fetched"
    )


def build_client(
    settings: IsrctnSettings,
    *,
    observe: Callable[[str], None] = lambda _answer: None,
    stop: threading.Event | None = None,
    http: httpx.Client | None = None,
    clock: Clock | None = None,
) -> IsrctnClient:
    """The ISRCTN client for ``settings`` (``http``: an HTTP client of the caller's, for
    tests; ``clock``: what "today" is for the records' ``as_of``)."""
    polite = PoliteHttp(
        http or build_polite_client(settings, accept="application/xml"),
        settings,
        name="ISRCTN",
        observe=observe,
        stop=stop,
    )
    return IsrctnClient(polite, settings.api_url, clock=clock or _utc_now)
