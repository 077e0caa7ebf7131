"""The ClinicalTrials.gov client's logic, over httpx.MockTransport (wire tests use the emulator)."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from service.errors import RecordInvalid, RecordNotFound, RegistryError, RegistryUnavailable
from service.registry import ctgov
from service.registry.ctgov import USER_AGENT, CtgovClient, RateLimiter, build_http_client
from service.settings import CtgovSettings

API = "http://registry.test/api/v2"
Handler = Callable[[httpx.Request], httpx.Response]


def study(nct: str) -> dict[str, object]:
    return {"protocolSection": {"identificationModule": {"nctId": nct}}}


class Recorder:
    """Collects requests and the waits the client asked for, instead of sleeping."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def client(self, **overrides: object) -> CtgovClient:
        settings = CtgovSettings(api_url=API, requests_per_second=100, **overrides)
        http = httpx.Client(transport=httpx.MockTransport(self), headers={"User-Agent": USER_AGENT})
        unlimited = RateLimiter(100, sleep=lambda _seconds: None)  # spacing is tested on its own
        return CtgovClient(http, settings, sleep=self.sleeps.append, limiter=unlimited)


def study_id(record: dict[str, object]) -> str:
    return record["protocolSection"]["identificationModule"]["nctId"]  # type: ignore[index]


def params(request: httpx.Request) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(str(request.url)).query).items()}


def serve_ids(request: httpx.Request) -> httpx.Response:
    ids = params(request)["filter.ids"].split(",")
    return httpx.Response(200, json={"studies": [study(i) for i in ids]})


@pytest.fixture(autouse=True)
def _fresh_url_caps() -> None:
    """Caps learned from 414s are kept per host for the process: each test starts without."""
    ctgov.forget_learned_url_caps()


def test_a_batch_fetch_fills_request_lines_up_to_the_cap() -> None:
    recorder = Recorder(serve_ids)
    client = recorder.client()
    ids = [f"NCT{n:08d}" for n in range(1, 2501)]
    returned = [s for batch in client.iter_batches(ids) for s in batch.studies]
    assert len(returned) == 2500
    lines = [len(r.url.raw_path) for r in recorder.requests]
    assert max(lines) <= 6000  # the default [ctgov] max_url_bytes
    sizes = [len(params(r)["filter.ids"].split(",")) for r in recorder.requests]
    assert 400 <= sizes[0] <= 500  # as public clients send (128-500), not 1,000
    assert sizes == [sizes[0]] * (len(sizes) - 1) + [2500 - sizes[0] * (len(sizes) - 1)]
    assert client.requests == len(recorder.requests) == -(-2500 // sizes[0])
    assert all(params(r)["pageSize"] == "1000" for r in recorder.requests)


@pytest.mark.parametrize(
    "refusal", [(414, "URI Too Long"), (431, ""), (400, "Request URL too long")]
)
def test_a_request_line_refused_as_too_long_is_halved_and_remembered(
    refusal: tuple[int, str],
) -> None:
    status, body = refusal

    def proxy(request: httpx.Request) -> httpx.Response:
        if len(request.url.raw_path) > 2500:  # a proxy before the registry with a short limit
            return httpx.Response(status, text=body)
        return serve_ids(request)

    recorder = Recorder(proxy)
    client = recorder.client()
    ids = [f"NCT{n:08d}" for n in range(1, 2001)]
    returned = [s for batch in client.iter_batches(ids) for s in batch.studies]
    assert sorted(study_id(s) for s in returned) == ids  # every study, none twice
    refused = [r for r in recorder.requests if len(r.url.raw_path) > 2500]
    assert len(refused) == 2  # 6000 -> 3000 -> 1500 bytes: two refusals, then it fits
    assert client.url_cap() <= 2500
    recorder.requests.clear()  # the next cycle starts at the size that works
    again = [s for batch in recorder.client().iter_batches(ids) for s in batch.studies]
    assert len(again) == 2000
    size = recorder.client().batch_size()
    assert len(recorder.requests) == -(-2000 // size)


def test_a_400_for_another_reason_is_not_taken_for_length() -> None:
    recorder = Recorder(lambda _r: httpx.Response(400, text="`filter.phase` is unknown parameter"))
    [batch] = list(recorder.client().iter_batches(["NCT00000001", "NCT00000002"]))
    assert isinstance(batch.error, RegistryError)
    assert "unknown parameter" in str(batch.error)
    assert len(recorder.requests) == 1


def test_later_pages_repeat_the_first_pages_parameters() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "pageToken" not in params(request):
            return httpx.Response(
                200, json={"studies": [study("NCT00000001")], "nextPageToken": "abc"}
            )
        return httpx.Response(200, json={"studies": [study("NCT00000002")]})

    recorder = Recorder(handler)
    batches = list(recorder.client().iter_batches(["NCT00000001", "NCT00000002"]))
    assert [len(b.studies) for b in batches] == [1, 1]
    first, second = (params(r) for r in recorder.requests)
    assert second.pop("pageToken") == "abc"
    assert first == second


def test_a_429_waits_as_long_as_retry_after_says() -> None:
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(200, json=study("NCT00000001")),
        ]
    )
    recorder = Recorder(lambda _r: next(answers))
    client = recorder.client()
    assert client.fetch_study("NCT00000001") == study("NCT00000001")
    assert recorder.sleeps == [7.0]
    assert client.requests == 2


def test_5xx_and_429_without_retry_after_back_off_exponentially_with_jitter() -> None:
    statuses = iter([503, 500, 429, 200])

    def handler(_request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        return httpx.Response(status, json=study("NCT00000001") if status == 200 else None)

    recorder = Recorder(handler)
    client = recorder.client(retry_initial_seconds=1.0)
    client.fetch_study("NCT00000001")
    waits = recorder.sleeps
    assert len(waits) == 3
    assert 1.0 <= waits[0] <= 2.0 and 2.0 <= waits[1] <= 3.0 and 4.0 <= waits[2] <= 5.0
    assert client.requests == 4


def test_retries_stop_after_max_attempts_with_a_clear_error() -> None:
    recorder = Recorder(lambda _r: httpx.Response(503, text="Service Unavailable"))
    client = recorder.client(max_attempts=3)
    with pytest.raises(RegistryUnavailable, match="registry answered 503"):
        client.fetch_study("NCT00000001")
    assert len(recorder.requests) == client.requests == 3


def test_timeouts_and_connection_errors_are_retried() -> None:
    failures: list[Exception] = [
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop(0)
        return httpx.Response(200, json=study("NCT00000001"))

    recorder = Recorder(handler)
    assert recorder.client().fetch_study("NCT00000001") == study("NCT00000001")
    assert len(recorder.requests) == 3


def test_an_unreachable_registry_says_so() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused")

    with pytest.raises(RegistryUnavailable, match="registry unreachable"):
        Recorder(handler).client(max_attempts=2).fetch_study("NCT00000001")


def test_a_404_is_record_not_found_with_the_registrys_words() -> None:
    recorder = Recorder(lambda _r: httpx.Response(404, text="NCT number NCT99999999 not found"))
    with pytest.raises(RecordNotFound, match="NCT number NCT99999999 not found"):
        recorder.client().fetch_study("NCT99999999")
    assert len(recorder.requests) == 1


def test_an_html_page_instead_of_json_is_retried_then_named() -> None:
    page = "<!DOCTYPE html><html><body>Maintenance</body></html>"
    recorder = Recorder(
        lambda _r: httpx.Response(200, text=page, headers={"Content-Type": "text/html"})
    )
    with pytest.raises(RecordInvalid, match="HTML page instead of JSON"):
        recorder.client(max_attempts=2).fetch_study("NCT00000001")
    assert len(recorder.requests) == 2


def test_a_truncated_body_is_record_invalid() -> None:
    body = b'{"studies": [{"protocolSection": {"identificationModule": {"nctId": "NCT0'
    recorder = Recorder(
        lambda _r: httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
    )
    batches = list(recorder.client(max_attempts=1).iter_batches(["NCT00000001"]))
    assert isinstance(batches[0].error, RecordInvalid)
    assert "truncated or invalid JSON" in str(batches[0].error)
    assert batches[0].requested == ["NCT00000001"]


def test_a_drifted_page_shape_is_not_retried() -> None:
    recorder = Recorder(lambda _r: httpx.Response(200, json={"studies": {"oops": 1}}))
    batches = list(recorder.client().iter_batches(["NCT00000001"]))
    assert "shape has changed" in str(batches[0].error)
    assert len(recorder.requests) == 1


def test_a_400_is_refused_without_retry() -> None:
    recorder = Recorder(lambda _r: httpx.Response(400, text="`filter.phase` is unknown parameter"))
    with pytest.raises(RegistryError, match="unknown parameter"):
        recorder.client().fetch_study("NCT00000001")
    assert len(recorder.requests) == 1


def test_requests_name_trialwatch_in_the_user_agent() -> None:
    recorder = Recorder(lambda _r: httpx.Response(200, json=study("NCT00000001")))
    recorder.client().fetch_study("NCT00000001")
    assert recorder.requests[0].headers["User-Agent"].startswith("trialwatch/")
    assert build_http_client(CtgovSettings()).headers["User-Agent"] == USER_AGENT


class FakeTime:
    """A clock that only the limiter's sleeps move (and the test, by hand)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_the_rate_limiter_spaces_request_starts() -> None:
    fake = FakeTime()
    limiter = RateLimiter(2.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(4):
        limiter.acquire()
    assert fake.waits == [0.5, 0.5, 0.5]
    fake.now += 10  # idle fake is not saved up for a burst
    limiter.acquire()
    limiter.acquire()
    assert fake.waits[-1] == 0.5


def test_a_quiet_after_limiter_also_keeps_the_interval_after_each_answer() -> None:
    fake = FakeTime()
    limiter = RateLimiter(2.0, clock=fake.clock, sleep=fake.sleep, quiet_after=True)
    limiter.acquire()
    fake.now += 0.4  # a slow answer
    limiter.answered()
    limiter.acquire()
    assert fake.waits == pytest.approx([0.5])  # from the answer, not 0.1 from the start
    limiter.answered()  # a quick one: the interval from the start still holds
    limiter.acquire()
    assert fake.waits == pytest.approx([0.5, 0.5])


def test_the_page_body_is_json_decoded() -> None:
    payload = {"studies": [study("NCT00000001")]}
    recorder = Recorder(lambda _r: httpx.Response(200, content=json.dumps(payload).encode()))
    batch = next(recorder.client().iter_batches(["NCT00000001"]))
    assert batch.studies == payload["studies"]


def test_a_search_follows_pages_up_to_the_limit() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(params(request).get("pageToken", "0"))
        page = [study(f"NCT{n:08d}") for n in range(offset, offset + 2)]
        return httpx.Response(200, json={"studies": page, "nextPageToken": str(offset + 2)})

    recorder = Recorder(handler)
    found = recorder.client().search({"query.cond": "sjogren"}, limit=5)
    assert len(found) == 5
    assert all(params(r)["query.cond"] == "sjogren" for r in recorder.requests)
    assert len(recorder.requests) == 3


def test_an_oversized_answer_is_refused_without_reading_it_all() -> None:
    body = json.dumps({"studies": [study("NCT00000001")], "pad": "x" * 2_000_000}).encode()
    recorder = Recorder(lambda _r: httpx.Response(200, content=body))
    batch = next(recorder.client(max_response_mib=1).iter_batches(["NCT00000001"]))
    assert "larger than 1 MiB refused" in str(batch.error)
    assert len(recorder.requests) == 1  # not retried: it would be as large again
