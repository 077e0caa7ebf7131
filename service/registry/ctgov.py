"""ClinicalTrials.gov API v2 client over an injected ``httpx.Client``.

Polite by construction: every request waits for the rate limiter, and transient failures
(429, 5xx, timeouts, connection errors, an HTML maintenance page or a cut-off body) are retried
with exponential backoff and jitter, honouring ``Retry-After``. httpx errors are translated into
``RegistryError`` here, where they enter, so nothing above this module sees httpx.

Every request has a wall-clock deadline for the whole exchange (``[ctgov] deadline_seconds``:
connect, headers and body, however slowly the server sends them; ``service.deadline``), made
no later than an enclosing budget's end (the history backfill's), and is abandoned at once
when the stop event is set (the daemon's SIGTERM): each is a retryable ``RegistryUnavailable``
naming the endpoint, and neither a retry nor a backoff wait outlives the budget or the stop.

Watched records are fetched in batches (``filter.ids``): as many ids as fit in a request
line of ``[ctgov] max_url_bytes`` (~430 ids in 6 KB; public clients send 128–500, and a proxy
before the registry may refuse longer lines with 414/431). A refusal halves the line for that
host, remembered for the life of the process, so a steady cycle costs ceil(W / batch) requests
plus at most one refused per halving.

The record-history API is undocumented and answers in two forms: ``/studies/{id}?history=true``
(the record with ``{"history": {"changes": […]}}``, as cthist reads it) and
``/studies/{id}/history`` (``{"changes": […]}``). The first is tried first; a 404 or an unknown
shape on one form sends the client to the other before anything is called drift, and the form
that worked is asked first from then on.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    wait_exponential_jitter,
)

from service.deadline import Deadline, DeadlineExceeded, limit_passed, within_limit
from service.deadline_http import guard_client, stream_within
from service.errors import (
    RecordInvalid,
    RecordNotFound,
    RegistryError,
    RegistryUnavailable,
    RequestAbandoned,
    UnsafeDocument,
)
from service.registry.base import Batch, HistoryEntry, Hits, Listing
from service.registry.polite import RETRYABLE_STATUS, USER_AGENT, RateLimiter, retry_after
from service.registry.tls import registry_tls_context
from service.safeload import load_json
from service.settings import CtgovSettings

NCT_ID = re.compile(r"NCT\d{8}", re.ASCII)  # \d alone matches any Unicode digit
_POSTED_DATE = re.compile(r"\d{4}-\d{2}(?:-\d{2})?", re.ASCII)
PROBE_FIELDS = "NCTId,LastUpdatePostDate"  # a cheap "what changed?" page


class _BadBody(RecordInvalid):
    """A body that may be a passing fault (maintenance page, cut connection): retried."""


class RequestTooLong(RegistryError):
    """The registry (or a proxy before it) refused the request line as too long (414/431)."""


# request-line caps learned per host (414/431 seen): kept for the life of the process
_LEARNED_URL_CAPS: dict[str, int] = {}
_LENGTH_WORDS = ("too long", "too large", "uri", "url", "length", "header")


class CtgovClient:
    """Fetches v2 study records. ``requests`` counts every HTTP request made, retries included."""

    registry = "ctgov"

    def __init__(
        self,
        http: httpx.Client,
        settings: CtgovSettings,
        *,
        sleep: Callable[[float], None] | None = None,
        limiter: RateLimiter | None = None,
        observe: Callable[[str], None] = lambda _answer: None,
        stop: threading.Event | None = None,
    ) -> None:
        self._http = http
        self._observe = observe  # told each answer's status code, or "error" (metrics)
        self._settings = settings
        # set when the process is to stop: requests in flight are abandoned, none are started,
        # and waits (pace, backoff) end at once
        self._stop = stop or threading.Event()
        sleep = sleep or self._pause
        self._sleep = sleep
        self._limiter = limiter or RateLimiter(settings.requests_per_second, sleep=sleep)
        # the history API answers 429 to concurrent or quick requests: its own, slower pace
        history_rate = 1.0 / max(settings.history_gap_seconds, 1.0 / settings.requests_per_second)
        self._history_limiter = (
            limiter
            if limiter is not None
            else RateLimiter(history_rate, sleep=sleep, quiet_after=True)
        )
        self._backoff = wait_exponential_jitter(
            multiplier=settings.retry_initial_seconds,
            max=settings.retry_max_seconds,
            jitter=settings.retry_initial_seconds,
        )
        self.requests = 0
        self._history_forms = ["query", "path"]  # the version-list forms, preferred first

    # ---- public --------------------------------------------------------------------------

    def data_timestamp(self) -> str:
        """When the registry's data were last refreshed (``/version``): unmoved, nothing
        changed since."""
        answer = self._get_json(f"{self._settings.api_url}/version", {})
        value = answer.get("dataTimestamp") if isinstance(answer, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise RecordInvalid("registry /version answer has no dataTimestamp")
        return value.strip()

    def changed_since(self, day: str) -> Listing:
        """Every record (registry-wide) last posted on or after ``day`` (yyyy-MM-dd): ids and
        posted dates only, 1,000 a page. ``total`` comes with the first page (``countTotal``),
        so a caller can weigh the rest of the listing against probing its own ids."""
        criteria = {"filter.advanced": f"AREA[LastUpdatePostDate]RANGE[{day},MAX]"}
        return self._counted_listing(criteria, PROBE_FIELDS)

    def matching_ids(self, params: dict[str, str], *, limit: int) -> Hits:
        """The ids of every record matching a search (``query.cond`` …); none when there are
        more than ``limit`` (``total`` says how many), so a broad search costs one request.
        The ids actually returned count too: a registry that counts fewer than it sends is
        stopped once they pass ``limit`` (``total`` is then how many came), at most a page
        later."""
        listing = self._counted_listing(params, "NCTId")
        if listing.total > limit:
            return Hits(listing.total, ())
        found: dict[str, None] = {}
        for page in listing.pages:
            found.update(dict.fromkeys(i for i in map(returned_id, page) if i))
            if len(found) > limit:
                return Hits(len(found), ())
        return Hits(max(listing.total, len(found)), tuple(found))

    def _counted_listing(self, criteria: dict[str, str], fields: str) -> Listing:
        """The records matching ``criteria``, ``fields`` of each, 1,000 a page; the first page
        is fetched now for its ``totalCount``, the rest as the pages are read."""
        params = {
            **criteria,
            "fields": fields,
            "countTotal": "true",
            "pageSize": "1000",
            "format": "json",
        }
        url = f"{self._settings.api_url}/studies"
        first = self._get_json(url, params)
        studies, token = _studies_page(first)
        total = first.get("totalCount") if isinstance(first, dict) else None
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise RecordInvalid("registry answer has no totalCount: the API's shape has changed")
        guard = _PageGuard(_describe(url), int(params["pageSize"]), total=total)
        guard.check(studies, token)
        return Listing(total, self._listing_pages(url, params, studies, token, guard))

    def _listing_pages(
        self,
        url: str,
        params: dict[str, str],
        first: list[dict[str, Any]],
        token: str | None,
        guard: _PageGuard,
    ) -> Iterator[list[dict[str, Any]]]:
        """The pages of a listing whose first page (checked by ``guard``) is ``first``."""
        yield first
        while token:  # later pages repeat the first page's parameters, as the API wants
            studies, token = _studies_page(self._get_json(url, dict(params, pageToken=token)))
            guard.check(studies, token)
            yield studies

    def probe(self, study_ids: Sequence[str]) -> Iterator[Batch]:
        """Only the id and last-update date of each record: a few bytes a study."""
        return self.iter_batches(study_ids, fields=PROBE_FIELDS)

    @staticmethod
    def returned_id(study: dict[str, Any]) -> str | None:
        return returned_id(study)

    @staticmethod
    def alias_ids(study: dict[str, Any]) -> list[str]:
        return alias_ids(study)

    @staticmethod
    def posted_date(study: dict[str, Any]) -> str | None:
        return posted_date(study)

    def fetch_study(self, study_id: str) -> dict[str, Any]:
        """One record. ``RecordNotFound`` when the registry does not serve it."""
        data = self._get_json(f"{self._settings.api_url}/studies/{study_id}", {})
        if not isinstance(data, dict) or "protocolSection" not in data:
            raise RecordInvalid(f"{study_id}: the registry's answer is not a study record")
        return data

    def iter_batches(
        self, study_ids: Sequence[str], *, fields: str | None = None
    ) -> Iterator[Batch]:
        """The records of ``study_ids``, one ``Batch`` per page, as the pages arrive
        (``fields`` asks for only those pieces of each record, e.g. ``PROBE_FIELDS``).

        A page that fails after retries comes back with ``error`` set and the ids it covered,
        so one bad page fails its studies and not the cycle. A request line refused as too
        long is split in two and retried, and the host's cap halved for later batches.
        """
        pending = list(study_ids)
        while pending:
            chunk = pending[: self.batch_size(fields)]
            try:
                yield from self._fetch_chunk(chunk, fields)
            except RequestTooLong as exc:
                if len(chunk) == 1:
                    yield Batch(requested=chunk, error=exc)
                else:
                    self._halve_url_cap(chunk, fields)
                    continue
            pending = pending[len(chunk) :]

    def batch_size(self, fields: str | None = None) -> int:
        """How many ids one ``filter.ids`` request carries: as many as fit in the host's cap
        on the request line, at most ``page_size`` (the registry's page)."""
        base = len(self._request_line({**self._batch_params(fields), "filter.ids": ""}))
        per_id = len(quote("NCT00000000,", safe=""))
        fitting = (self.url_cap() - base) // per_id
        return max(1, min(self._settings.page_size, fitting))

    def url_cap(self) -> int:
        """The longest request line sent to the registry's host, in bytes."""
        configured = self._settings.max_url_bytes
        return min(configured, _LEARNED_URL_CAPS.get(self._host, configured))

    def _halve_url_cap(self, chunk: list[str], fields: str | None) -> None:
        line = self._request_line({**self._batch_params(fields), "filter.ids": ",".join(chunk)})
        _LEARNED_URL_CAPS[self._host] = max(256, min(self.url_cap(), len(line)) // 2)

    @property
    def _host(self) -> str:
        return urlsplit(self._settings.api_url).netloc

    def _request_line(self, params: dict[str, str]) -> str:
        url = self._http.build_request("GET", f"{self._settings.api_url}/studies", params=params)
        return url.url.raw_path.decode("ascii")

    def _batch_params(self, fields: str | None) -> dict[str, str]:
        params = {"pageSize": str(self._settings.page_size), "format": "json"}
        if fields:
            params["fields"] = fields
        return params

    def search(self, params: dict[str, str], *, limit: int = 100) -> list[dict[str, Any]]:
        """Studies matching a search (``query.cond``, ``query.intr``, ``query.term``, …), up to
        ``limit``, following ``nextPageToken`` with the first page's parameters."""
        found: list[dict[str, Any]] = []
        page_size = min(limit, self._settings.page_size)
        query = {**params, "pageSize": str(page_size), "format": "json"}
        url = f"{self._settings.api_url}/studies"
        guard = _PageGuard(_describe(url), page_size)
        token: str | None = None
        while len(found) < limit:
            page = self._get_json(url, dict(query, pageToken=token) if token else query)
            studies, token = _studies_page(page)
            guard.check(studies, token)
            found.extend(studies)
            if not token:
                break
        return found[:limit]

    def history(self, study_id: str) -> list[HistoryEntry]:
        """A record's versions, oldest first (the undocumented history API: its shape is
        checked, and drift is ``RecordInvalid``). Both list forms are tried, the one that
        last worked first; the error of the preferred form is raised if neither answers."""
        first_error: RegistryError | None = None
        for form in list(self._history_forms):
            try:
                entries = _history_entries(study_id, self._history_list(study_id, form))
            except (RecordNotFound, RecordInvalid) as exc:
                first_error = first_error or exc
                continue
            if form != self._history_forms[0]:
                self._history_forms.reverse()
            return entries
        assert first_error is not None
        raise first_error

    def _history_list(self, study_id: str, form: str) -> Any:
        base = f"{self._settings.history_url}/studies/{study_id}"
        if form == "query":
            return self._get_json(base, {"history": "true"}, self._history_limiter)
        return self._get_json(f"{base}/history", {}, self._history_limiter)

    def history_version(self, study_id: str, version: int) -> dict[str, Any]:
        """Version ``version`` of a record: ``{"studyVersion": n, "study": {…}}``."""
        data = self._get_json(
            f"{self._settings.history_url}/studies/{study_id}/history/{version}",
            {},
            self._history_limiter,
        )
        if (
            not isinstance(data, dict)
            or data.get("studyVersion") != version
            or not isinstance(data.get("study"), dict)
        ):
            raise RecordInvalid(
                f"{study_id}: history API answer for version {version} has an unexpected shape"
            )
        return data

    # ---- internals -----------------------------------------------------------------------

    def _fetch_chunk(self, chunk: list[str], fields: str | None) -> Iterator[Batch]:
        params = {**self._batch_params(fields), "filter.ids": ",".join(chunk)}
        url = f"{self._settings.api_url}/studies"
        # every page but the last holds a record, one an id asked for at most
        guard = _PageGuard(_describe(url), self._settings.page_size, max_pages=len(chunk) + 1)
        token: str | None = None
        while True:
            page_params = dict(params, pageToken=token) if token else params
            try:
                page = self._get_json(url, page_params)
                studies, token = _studies_page(page)
                guard.check(studies, token)
            except RequestTooLong:
                raise
            except RegistryError as exc:
                yield Batch(requested=chunk, error=exc)
                return
            yield Batch(requested=chunk, studies=studies)
            if not token:
                return

    def _get_json(
        self, url: str, params: dict[str, str], limiter: RateLimiter | None = None
    ) -> Any:
        retrying = Retrying(
            retry=retry_if_exception_type((RegistryUnavailable, _BadBody)),
            stop=stop_any(stop_after_attempt(self._settings.max_attempts), self._futile),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(self._get_once, url, params, limiter or self._limiter)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            wait = min(retry_after, self._settings.retry_max_seconds)
        else:
            wait = self._backoff(state)
        return within_limit(wait)  # never past an enclosing budget

    def _futile(self, _state: RetryCallState) -> bool:
        """No retry once the process is stopping or the enclosing budget is spent."""
        return self._stop.is_set() or limit_passed()

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop ends the wait

    def _get_once(self, url: str, params: dict[str, str], limiter: RateLimiter) -> Any:
        limiter.acquire()  # its wait ends at once on a stop
        # the whole exchange (connect, headers, body) ends by then, however the server paces it
        deadline = Deadline.after(self._settings.deadline_seconds, stop=self._stop)
        if deadline.expired():  # stopping, or the budget is spent: no request at all
            raise _cut_short(url, deadline)
        self.requests += 1
        try:
            response = self._read_capped(url, params, deadline)
        except DeadlineExceeded as exc:
            self._observe("error")
            raise _cut_short(url, exc.deadline) from None
        except httpx.TimeoutException as exc:
            self._observe("error")
            raise RegistryUnavailable(f"registry timed out ({_describe(url)})") from exc
        except httpx.TransportError as exc:
            self._observe("error")
            raise RegistryUnavailable(
                f"registry unreachable ({_describe(url)}: {exc or type(exc).__name__})"
            ) from exc
        finally:
            limiter.answered()
        self._observe(str(response.status_code))
        return _decode(response)

    def _read_capped(self, url: str, params: dict[str, str], deadline: Deadline) -> httpx.Response:
        """GET, refusing a body larger than ``max_response_mib``: a registry (or something
        posing as it) must not be able to exhaust the memory of the process. The exchange
        ends at ``deadline`` (``DeadlineExceeded``): the guarded sockets of
        ``build_http_client`` enforce it inside every read, and the body is also checked
        between chunks (for a client without them)."""
        cap = self._settings.max_response_mib * 1024 * 1024
        with stream_within(
            self._http, "GET", url, deadline, timeout=self._http.timeout, params=params
        ) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise _TooLarge(url, cap)
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                deadline.check()
                size += len(chunk)
                if size > cap:
                    raise _TooLarge(url, cap)
                chunks.append(chunk)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=b"".join(chunks),
            request=response.request,
        )


class _TooLarge(RecordInvalid):
    def __init__(self, url: str, cap: int) -> None:
        super().__init__(
            f"registry answer larger than {cap // (1024 * 1024)} MiB refused ({_describe(url)}); "
            "raise [ctgov] max_response_mib if this is expected"
        )


def _describe(url: str) -> str:
    return url.split("?", 1)[0]


def _cut_short(url: str, deadline: Deadline) -> RegistryUnavailable:
    """A request that outlived its deadline (or was abandoned): retryable, one line."""
    error = RequestAbandoned if deadline.stopping() else RegistryUnavailable
    return error(f"registry request {deadline.reason()} ({_describe(url)})")


def _decode(response: httpx.Response) -> Any:
    status = response.status_code
    where = _describe(str(response.request.url))
    if status == 404:
        raise RecordNotFound(_plain(response) or f"not found: {where}")
    if status in (414, 431) or (status == 400 and _blames_length(response)):
        raise RequestTooLong(f"registry refused a request line as too long: {status} ({where})")
    if status in RETRYABLE_STATUS:
        raise RegistryUnavailable(
            f"registry answered {status} {response.reason_phrase} ({where})",
            retry_after=retry_after(response.headers),
        )
    if status >= 400:
        detail = _plain(response)
        raise RegistryError(
            f"registry refused the request: {status} {response.reason_phrase} ({where})"
            + (f": {detail}" if detail else "")
        )
    content_type = response.headers.get("content-type", "")
    body = response.content
    if "html" in content_type or body.lstrip()[:1] == b"<":
        raise _BadBody(f"registry sent an HTML page instead of JSON ({where}, status {status})")
    try:
        return load_json(body)  # depth-checked: a too-deep answer fails its page, not the cycle
    except UnsafeDocument as exc:
        raise RecordInvalid(f"registry sent JSON {exc} ({where})") from None
    except json.JSONDecodeError as exc:
        raise _BadBody(f"registry sent truncated or invalid JSON ({where}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise _BadBody(f"registry sent a body that is not UTF-8 text ({where})") from None


def forget_learned_url_caps() -> None:
    """Start again from ``[ctgov] max_url_bytes`` for every host (tests; a changed proxy)."""
    _LEARNED_URL_CAPS.clear()


def _blames_length(response: httpx.Response) -> bool:
    detail = _plain(response).lower()
    return any(word in detail for word in _LENGTH_WORDS) and "unknown parameter" not in detail


def _plain(response: httpx.Response) -> str:
    text = response.text.strip()
    if not text or text.startswith("<"):
        return ""
    return text.splitlines()[0][:200]


def _studies_page(page: Any) -> tuple[list[dict[str, Any]], str | None]:
    if not isinstance(page, dict) or not isinstance(page.get("studies"), list):
        raise RecordInvalid("registry answer has no 'studies' list: the API's shape has changed")
    token = page.get("nextPageToken")
    if token is not None and not isinstance(token, str):
        raise RecordInvalid("registry answer has a nextPageToken that is not text")
    studies = [s for s in page["studies"] if isinstance(s, dict)]
    return studies, token or None


class _PageGuard:
    """Checks a paginated listing page by page, so that a hostile or broken registry cannot
    keep it going for ever: a ``nextPageToken`` given before, an empty page that still has a
    next one, a page longer than the ``pageSize`` asked for, or more pages than the listing
    can have (``total // page_size + 1``; ``max_pages`` without a total) each end the
    listing with a one-line ``RecordInvalid`` naming the endpoint."""

    def __init__(
        self,
        endpoint: str,
        page_size: int,
        *,
        total: int | None = None,
        max_pages: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.page_size = page_size
        self.max_pages = total // page_size + 1 if total is not None else max_pages
        self.total = total
        self.pages = 0
        self.tokens: set[str] = set()

    def check(self, studies: list[dict[str, Any]], token: str | None) -> None:
        """Check one more page, its ``studies`` and the ``token`` of the next (None: last)."""
        self.pages += 1
        if len(studies) > self.page_size:
            raise self._refused(
                f"page {self.pages} holds {len(studies)} records (pageSize {self.page_size})"
            )
        if self.max_pages is not None and self.pages > self.max_pages:
            counted = f"totalCount {self.total}" if self.total is not None else "the ids asked for"
            raise self._refused(
                f"page {self.pages} is more than {counted} allows ({self.max_pages})"
            )
        if token is None:
            return
        if not studies:
            raise self._refused(f"page {self.pages} is empty but names a next page")
        if token in self.tokens:
            raise self._refused(f"page {self.pages} repeats an earlier nextPageToken")
        self.tokens.add(token)

    def _refused(self, what: str) -> RecordInvalid:
        return RecordInvalid(f"registry listing {self.endpoint} refused: {what}")


def _history_entries(study_id: str, data: Any) -> list[HistoryEntry]:
    changes = _changes_list(data)
    if changes is None:
        raise RecordInvalid(f"{study_id}: history API answer has no 'changes' list")
    entries = []
    for item in changes:
        version = item.get("version") if isinstance(item, dict) else None
        date = item.get("date") if isinstance(item, dict) else None
        if not isinstance(version, int) or isinstance(version, bool) or not isinstance(date, str):
            raise RecordInvalid(
                f"{study_id}: history API entry {str(item)[:80]!r} lacks a version number or date"
            )
        status = item.get("status")
        entries.append(HistoryEntry(version, date, status if isinstance(status, str) else ""))
    entries.sort(key=lambda e: e.version)
    if [e.version for e in entries] != list(range(len(entries))):
        raise RecordInvalid(f"{study_id}: history API versions are not numbered 0, 1, 2, …")
    return entries


def _changes_list(data: Any) -> list[Any] | None:
    """The version list of either form: ``{"changes": […]}`` or the record with
    ``{"history": {"changes": […]}}``."""
    if not isinstance(data, dict):
        return None
    holder = data.get("history") if "changes" not in data else data
    changes = holder.get("changes") if isinstance(holder, dict) else None
    return changes if isinstance(changes, list) else None


def alias_ids(study: dict[str, Any]) -> list[str]:
    """The other ids a returned record answers to (``nctIdAliases``), upper-cased."""
    try:
        aliases = study["protocolSection"]["identificationModule"]["nctIdAliases"]
    except (KeyError, TypeError):
        return []
    if not isinstance(aliases, list):
        return []
    return [a.strip().upper() for a in aliases if isinstance(a, str)]


def posted_date(study: dict[str, Any]) -> str | None:
    """The last-update-posted date a (probed) study carries, if any."""
    try:
        value = study["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"]
    except (KeyError, TypeError):
        return None
    # a malformed date reads as "moved": the record is fetched, and refused alone as invalid
    return value if isinstance(value, str) and _POSTED_DATE.fullmatch(value) else None


def returned_id(study: dict[str, Any]) -> str | None:
    """The NCT id a returned study carries, if it carries a well-formed one."""
    try:
        value = study["protocolSection"]["identificationModule"]["nctId"]
    except (KeyError, TypeError):
        return None
    if not isinstance(value, str):
        return None
    value = value.strip().upper()
    return value if NCT_ID.fullmatch(value) else None


def build_http_client(settings: CtgovSettings) -> httpx.Client:
    """The registry's client; its sockets obey each request's deadline (``deadline_http``)."""
    client = httpx.Client(
        verify=registry_tls_context(),
        timeout=httpx.Timeout(
            settings.timeout_seconds, connect=min(10.0, settings.timeout_seconds)
        ),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        follow_redirects=True,
        max_redirects=5,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )
    return guard_client(client)
