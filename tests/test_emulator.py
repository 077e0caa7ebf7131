"""Tests of the ClinicalTrials.gov emulator itself, over real HTTP with httpx.

The other tests trust the emulator to behave like the registry; these pin down that behaviour:
error bodies, redirects, paging, filters, searches, history, faults and request counts.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ctgov_emulator import Emulator, QueryError, fold, parse_query

TESTS = Path(__file__).parent
DEMO = TESTS / "data" / "demo"
DEMO_ID = "NCT05605665"

EmulatorFactory = Callable[..., Emulator]
with_demo = pytest.mark.parametrize("emulator", [[DEMO]], indirect=True)


# --- helpers ---------------------------------------------------------------------------------


def tiny_study(
    nct: str,
    *,
    status: str = "RECRUITING",
    title: str = "A study",
    conditions: tuple[str, ...] = ("Asthma",),
) -> dict[str, Any]:
    """The smallest record the emulator and a client can work with."""
    return {
        "protocolSection": {
            "identificationModule": {"nctId": nct, "briefTitle": title},
            "statusModule": {"overallStatus": status},
            "conditionsModule": {"conditions": list(conditions)},
            "designModule": {"studyType": "INTERVENTIONAL"},
        },
        "hasResults": False,
    }


def nct(number: int) -> str:
    return f"NCT{number:08d}"


def ids_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [
        s["protocolSection"]["identificationModule"]["nctId"] for s in response.json()["studies"]
    ]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached before the deadline")
        time.sleep(0.005)


def fetch(url: str, **kwargs: Any) -> httpx.Response:
    """GET with a throwaway client; plain HTTP, so skip loading CA certificates (slow)."""
    return httpx.get(url, verify=False, **kwargs)


def demo_version(number: int) -> dict[str, Any]:
    return json.loads((DEMO / DEMO_ID / f"v{number}.json").read_text(encoding="utf-8"))


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.api_url, timeout=5, verify=False) as client:
        yield client


@pytest.fixture
def history(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.history_url, timeout=5, verify=False) as client:
        yield client


# --- one study -------------------------------------------------------------------------------


@with_demo
def test_study_is_served_as_json_with_an_etag(api: httpx.Client) -> None:
    response = api.get(f"/studies/{DEMO_ID}")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["protocolSection"]["identificationModule"]["nctId"] == DEMO_ID
    again = api.get(f"/studies/{DEMO_ID}", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


@with_demo
def test_study_id_is_matched_whatever_its_case(api: httpx.Client) -> None:
    response = api.get("/studies/nct05605665")

    assert response.json()["protocolSection"]["identificationModule"]["nctId"] == DEMO_ID


def test_unknown_study_is_a_plain_text_404(api: httpx.Client) -> None:
    response = api.get("/studies/NCT99999999")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "NCT number NCT99999999 not found"


@pytest.mark.parametrize("bad_id", ["NCT-123", "ABC", "NCT123456789", "NCT00000000"])
def test_malformed_id_is_a_plain_text_400(api: httpx.Client, bad_id: str) -> None:
    response = api.get(f"/studies/{bad_id}")

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert "nctId" in response.text


@with_demo
def test_alias_id_redirects_to_the_real_study(emulator: Emulator, api: httpx.Client) -> None:
    emulator.alias("NCT00000042", DEMO_ID)

    moved = api.get("/studies/NCT00000042", params={"fields": "NCTId"})
    followed = api.get("/studies/NCT00000042", params={"fields": "NCTId"}, follow_redirects=True)

    assert moved.status_code == 301
    assert moved.headers["location"] == f"/api/v2/studies/{DEMO_ID}?fields=NCTId"
    assert followed.json() == {"protocolSection": {"identificationModule": {"nctId": DEMO_ID}}}


def test_aliases_written_in_a_record_redirect(emulator: Emulator, api: httpx.Client) -> None:
    study = tiny_study(nct(7))
    study["protocolSection"]["identificationModule"]["nctIdAliases"] = [nct(6)]
    emulator.publish(study, date="2026-11-20")

    response = api.get(f"/studies/{nct(6)}")

    assert response.status_code == 301
    assert response.headers["location"] == f"/api/v2/studies/{nct(7)}"


@with_demo
def test_gone_study_is_404_everywhere_until_published_again(
    emulator: Emulator, api: httpx.Client, history: httpx.Client
) -> None:
    emulator.gone(DEMO_ID)

    assert api.get(f"/studies/{DEMO_ID}").text == f"NCT number {DEMO_ID} not found"
    assert ids_of(api.get("/studies")) == []
    assert history.get(f"/studies/{DEMO_ID}/history").status_code == 404

    emulator.publish(demo_version(1), date="2026-11-20")
    assert api.get(f"/studies/{DEMO_ID}").status_code == 200


@with_demo
def test_fields_keep_only_the_requested_pieces_in_their_nesting(api: httpx.Client) -> None:
    response = api.get(f"/studies/{DEMO_ID}", params={"fields": "NCTId,LastUpdatePostDate"})

    assert response.json() == {
        "protocolSection": {
            "identificationModule": {"nctId": DEMO_ID},
            "statusModule": {"lastUpdatePostDateStruct": {"date": "2024-01-10"}},
        }
    }


@with_demo
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("OverallStatus", {"protocolSection": {"statusModule": {"overallStatus": "COMPLETED"}}}),
        ("HasResults", {"hasResults": False}),
        (
            "protocolSection.designModule.enrollmentInfo",
            {
                "protocolSection": {
                    "designModule": {"enrollmentInfo": {"count": 30, "type": "ESTIMATED"}}
                }
            },
        ),
        (
            "InterventionName|InterventionType",
            {
                "protocolSection": {
                    "armsInterventionsModule": {
                        "interventions": [
                            {"name": "low-dose interleukin-2", "type": "DRUG"},
                            {"name": "rapamycin", "type": "DRUG"},
                        ]
                    }
                }
            },
        ),
        ("phases", {"protocolSection": {"designModule": {"phases": ["PHASE1", "PHASE2"]}}}),
    ],
)
def test_fields_accept_pieces_dotted_paths_and_key_names(
    api: httpx.Client, fields: str, expected: dict[str, Any]
) -> None:
    assert api.get(f"/studies/{DEMO_ID}", params={"fields": fields}).json() == expected


@with_demo
def test_fields_can_name_whole_modules(api: httpx.Client) -> None:
    study = api.get("/studies", params={"fields": "StatusModule,ProtocolSection"}).json()

    assert set(study["studies"][0]) == {"protocolSection"}
    assert "eligibilityModule" in study["studies"][0]["protocolSection"]


@pytest.mark.parametrize("path", ["/studies", f"/studies/{DEMO_ID}", "/version"])
def test_unknown_parameter_is_a_400(api: httpx.Client, path: str) -> None:
    response = api.get(path, params={"filter.phase": "PHASE2"})

    assert response.status_code == 400
    assert response.text == "`filter.phase` is unknown parameter"


def test_only_json_is_served(api: httpx.Client) -> None:
    assert api.get("/studies", params={"format": "csv"}).status_code == 400


# --- search: paging --------------------------------------------------------------------------


def test_paging_walks_every_study_once(emulator: Emulator, api: httpx.Client) -> None:
    for number in range(1, 26):
        emulator.publish(tiny_study(nct(number)), date="2026-11-20")
    params = {"pageSize": "10", "countTotal": "true", "fields": "NCTId"}

    pages = [api.get("/studies", params=params).json()]
    while "nextPageToken" in pages[-1]:
        token = pages[-1]["nextPageToken"]
        pages.append(api.get("/studies", params={**params, "pageToken": token}).json())

    assert [len(page["studies"]) for page in pages] == [10, 10, 5]
    assert [("totalCount" in page) for page in pages] == [True, False, False]
    assert pages[0]["totalCount"] == 25
    seen = [
        s["protocolSection"]["identificationModule"]["nctId"] for p in pages for s in p["studies"]
    ]
    assert seen == [nct(number) for number in range(1, 26)]


def test_page_token_only_works_with_the_first_page_parameters(
    emulator: Emulator, api: httpx.Client
) -> None:
    for number in range(1, 4):
        emulator.publish(tiny_study(nct(number)), date="2026-11-20")
    first = api.get("/studies", params={"pageSize": "1", "query.cond": "asthma"}).json()
    token = first["nextPageToken"]

    changed = api.get("/studies", params={"pageToken": token, "query.cond": "copd"})
    dropped = api.get("/studies", params={"pageToken": token, "pageSize": "1"})
    resized = api.get(
        "/studies", params={"pageToken": token, "pageSize": "5", "query.cond": "asthma"}
    )

    assert changed.status_code == 400
    assert dropped.status_code == 400
    assert ids_of(resized) == [nct(2), nct(3)]  # pageSize may change between pages


def test_garbage_page_token_is_a_400(api: httpx.Client) -> None:
    assert api.get("/studies", params={"pageToken": "not-a-token"}).status_code == 400


def test_page_size_is_capped_at_1000(emulator: Emulator, api: httpx.Client) -> None:
    for number in range(1, 1002):
        emulator.publish(tiny_study(nct(number)), date="2026-11-20")

    page = api.get("/studies", params={"pageSize": "5000", "fields": "NCTId"}).json()

    assert len(page["studies"]) == 1000
    assert "nextPageToken" in page


@pytest.mark.parametrize(("size", "expected"), [(None, 10), ("0", 10), ("3", 3)])
def test_page_size_defaults_to_10(
    emulator: Emulator, api: httpx.Client, size: str | None, expected: int
) -> None:
    for number in range(1, 13):
        emulator.publish(tiny_study(nct(number)), date="2026-11-20")
    params = {"pageSize": size} if size is not None else {}

    assert len(ids_of(api.get("/studies", params=params))) == expected


@pytest.mark.parametrize("size", ["-1", "ten"])
def test_bad_page_size_is_a_400(api: httpx.Client, size: str) -> None:
    assert api.get("/studies", params={"pageSize": size}).status_code == 400


# --- search: filters -------------------------------------------------------------------------


@pytest.fixture
def three_studies(emulator: Emulator) -> None:
    emulator.publish(tiny_study(nct(1), status="RECRUITING"), date="2026-10-01")
    emulator.publish(tiny_study(nct(2), status="COMPLETED"), date="2026-11-05")
    emulator.publish(tiny_study(nct(3), status="TERMINATED"), date="2026-11-20")


@pytest.mark.usefixtures("three_studies")
@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (f"{nct(1)},{nct(3)}", [nct(1), nct(3)]),
        (f"{nct(3)}|{nct(2)}", [nct(2), nct(3)]),
        (f"{nct(2)}, nct3", [nct(2), nct(3)]),
        (nct(9), []),
    ],
)
def test_ids_filter_takes_commas_and_pipes(
    api: httpx.Client, ids: str, expected: list[str]
) -> None:
    assert ids_of(api.get("/studies", params={"filter.ids": ids})) == expected


@pytest.mark.usefixtures("three_studies")
def test_ids_filter_finds_a_study_by_its_alias(emulator: Emulator, api: httpx.Client) -> None:
    emulator.alias(nct(100), nct(2))

    assert ids_of(api.get("/studies", params={"filter.ids": nct(100)})) == [nct(2)]


def test_ids_filter_rejects_a_malformed_id(api: httpx.Client) -> None:
    response = api.get("/studies", params={"filter.ids": "NCT00000001,XYZ"})

    assert response.status_code == 400
    assert "filter.ids" in response.text


@pytest.mark.usefixtures("three_studies")
@pytest.mark.parametrize(
    ("statuses", "expected"),
    [("COMPLETED", [nct(2)]), ("RECRUITING|TERMINATED", [nct(1), nct(3)])],
)
def test_overall_status_filter(api: httpx.Client, statuses: str, expected: list[str]) -> None:
    assert ids_of(api.get("/studies", params={"filter.overallStatus": statuses})) == expected


def test_unknown_overall_status_is_a_400(api: httpx.Client) -> None:
    assert api.get("/studies", params={"filter.overallStatus": "OPEN"}).status_code == 400


@pytest.mark.usefixtures("three_studies")
@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("AREA[LastUpdatePostDate]RANGE[2026-11-01,MAX]", [nct(2), nct(3)]),
        ("AREA[LastUpdatePostDate]RANGE[MIN,2026-11-05]", [nct(1), nct(2)]),
        ("AREA[LastUpdatePostDate]RANGE[2026-11-06, 2026-11-30]", [nct(3)]),
        ("AREA[OverallStatus]COMPLETED OR AREA[OverallStatus]TERMINATED", [nct(2), nct(3)]),
    ],
)
def test_advanced_filter_selects_by_area_and_range(
    api: httpx.Client, expression: str, expected: list[str]
) -> None:
    assert ids_of(api.get("/studies", params={"filter.advanced": expression})) == expected


@pytest.mark.usefixtures("three_studies")
def test_sort_by_last_update_date_defaults_to_newest_first(api: httpx.Client) -> None:
    newest_first = api.get("/studies", params={"sort": "LastUpdatePostDate"})
    oldest_first = api.get("/studies", params={"sort": "LastUpdatePostDate:asc"})

    assert ids_of(newest_first) == [nct(3), nct(2), nct(1)]
    assert ids_of(oldest_first) == [nct(1), nct(2), nct(3)]


# --- search: queries -------------------------------------------------------------------------


@with_demo
@pytest.mark.parametrize(
    "query", ["Sjögren", "SJOGREN", "sjogrens syndrome", '"Sjögren\'s syndrome"', "sjögren's"]
)
def test_queries_fold_case_accents_and_plurals(api: httpx.Client, query: str) -> None:
    assert ids_of(api.get("/studies", params={"query.cond": query})) == [DEMO_ID]


@with_demo
@pytest.mark.parametrize(
    ("param", "query", "found"),
    [
        ("query.intr", "rapamycin", True),
        ("query.intr", "sirolimus", True),  # through the intervention's MeSH term
        ("query.intr", "Treg", False),
        ("query.outc", "Treg cells", True),
        ("query.outc", "rapamycin", True),  # an outcome description names it
        ("query.spons", "Peking University", True),
        ("query.lead", "people's hospital", True),
        ("query.locn", "Beijing", True),
        ("query.locn", "Paris", False),
        ("query.titles", "interleukin", True),
        ("query.titles", "ESSDAI", False),
        ("query.term", "ESSDAI", True),
        ("query.cond", "flowcytometry", False),
        ("query.id", "NCT05605665", True),
    ],
)
def test_each_query_parameter_searches_its_own_area(
    api: httpx.Client, param: str, query: str, found: bool
) -> None:
    assert ids_of(api.get("/studies", params={param: query})) == ([DEMO_ID] if found else [])


@pytest.fixture
def searchable(emulator: Emulator) -> None:
    emulator.publish(
        tiny_study(nct(1), conditions=("Asthma", "Childhood asthma")), date="2026-11-01"
    )
    emulator.publish(tiny_study(nct(2), conditions=("COPD", "Lung cancer")), date="2026-11-01")
    emulator.publish(tiny_study(nct(3), conditions=("Asthma in adults",)), date="2026-11-01")


@pytest.mark.usefixtures("searchable")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("asthma OR copd", [nct(1), nct(2), nct(3)]),
        ("asthma AND childhood", [nct(1)]),
        ("asthma childhood", [nct(1)]),  # adjacent terms are ANDed
        ("asthma NOT childhood", [nct(3)]),
        ("(childhood OR copd) AND NOT adult", [nct(1), nct(2)]),
        ('"lung cancer"', [nct(2)]),
        ('"cancer lung"', []),
    ],
)
def test_boolean_queries(api: httpx.Client, query: str, expected: list[str]) -> None:
    assert ids_of(api.get("/studies", params={"query.cond": query})) == expected


@pytest.mark.parametrize(
    "query", ["(asthma", "asthma )", "asthma AND", "AREA[StartDate]RANGE[2020]"]
)
def test_unparseable_query_is_a_400(api: httpx.Client, query: str) -> None:
    assert api.get("/studies", params={"query.term": query}).status_code == 400


def test_fold_and_parse_query_units() -> None:
    assert fold("Sjögren's Syndromes") == ("sjogren", "s", "syndrome")
    assert fold("IL-2, 1 million IU") == ("il", "2", "1", "million", "iu")
    with pytest.raises(QueryError):
        parse_query("a OR")


# --- version, publish, history ---------------------------------------------------------------


def test_version_reports_the_api_and_a_moving_data_timestamp(
    emulator: Emulator, api: httpx.Client
) -> None:
    before = api.get("/version").json()
    emulator.publish(tiny_study(nct(1)), date="2026-11-20")
    after = api.get("/version").json()

    assert before["apiVersion"] == "2.0.5"
    assert after["dataTimestamp"] > before["dataTimestamp"]


@with_demo
def test_publish_makes_a_new_current_version(emulator: Emulator, api: httpx.Client) -> None:
    study = demo_version(1)
    study["protocolSection"]["statusModule"]["overallStatus"] = "TERMINATED"

    number = emulator.publish(study, date="2026-11-20")

    status = api.get(f"/studies/{DEMO_ID}").json()["protocolSection"]["statusModule"]
    assert number == 2
    assert status["overallStatus"] == "TERMINATED"
    assert status["lastUpdatePostDateStruct"] == {"date": "2026-11-20", "type": "ACTUAL"}


@with_demo
def test_publish_without_a_date_never_goes_back_in_time(emulator: Emulator) -> None:
    emulator.publish(demo_version(0))  # its own date (2022) is older than version 1's

    served = emulator.current(DEMO_ID)
    assert served is not None
    assert (
        served["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"]
        == "2024-01-11"
    )


def test_publish_rejects_a_study_without_an_id_or_with_a_bad_date(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="nctId"):
        emulator.publish({"protocolSection": {}})
    with pytest.raises(ValueError, match="yyyy-MM-dd"):
        emulator.publish(tiny_study(nct(1)), date="20 Nov 2026")


@with_demo
def test_history_lists_versions_with_the_modules_that_changed(history: httpx.Client) -> None:
    changes = history.get(f"/studies/{DEMO_ID}/history").json()["changes"]

    assert [(c["version"], c["date"], c["status"], c["studyType"]) for c in changes] == [
        (0, "2022-11-08", "RECRUITING", "INTERVENTIONAL"),
        (1, "2024-01-10", "COMPLETED", "INTERVENTIONAL"),
    ]
    assert "Outcome Measures" in changes[0]["moduleLabels"]
    assert changes[1]["moduleLabels"] == [
        "Study Status",
        "Arms and Interventions",
        "Contacts/Locations",
    ]


@with_demo
def test_history_version_carries_the_study_of_that_version(history: httpx.Client) -> None:
    answer = history.get(f"/studies/{DEMO_ID}/history/0").json()

    assert answer["studyVersion"] == 0
    status = answer["study"]["protocolSection"]["statusModule"]
    assert status["overallStatus"] == "RECRUITING"
    assert status["lastUpdatePostDateStruct"] == {"date": "2022-11-08", "type": "ACTUAL"}
    assert "derivedSection" not in answer["study"]  # as in real historic versions


@with_demo
@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/studies/{DEMO_ID}/history/2", 404),
        (f"/studies/{DEMO_ID}/history/latest", 400),
        ("/studies/NCT99999999/history", 404),
        ("/studies/XYZ/history", 400),
    ],
)
def test_history_errors(history: httpx.Client, path: str, status: int) -> None:
    assert history.get(path).status_code == status


@with_demo
def test_overlapping_history_requests_get_429(emulator: Emulator, history: httpx.Client) -> None:
    emulator.fault("slow", seconds=30, path_prefix="/api/int")
    first: list[httpx.Response] = []

    def ask() -> None:
        with httpx.Client(base_url=emulator.history_url, timeout=30, verify=False) as client:
            first.append(client.get(f"/studies/{DEMO_ID}/history"))

    worker = threading.Thread(target=ask)
    worker.start()
    wait_until(lambda: emulator.history_in_flight == 1)
    overlapping = history.get(f"/studies/{DEMO_ID}/history/0")
    emulator.clear_faults()  # lets the slow answer go
    worker.join(timeout=5)

    assert overlapping.status_code == 429
    assert first[0].status_code == 200
    assert history.get(f"/studies/{DEMO_ID}/history/0").status_code == 200


def test_history_wants_a_gap_between_requests(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory([DEMO], history_gap=60)
    url = f"{emulator.history_url}/studies/{DEMO_ID}/history"

    assert fetch(url).status_code == 200
    assert fetch(url).status_code == 429
    assert emulator.stats.snapshot()["history_refused"] == 1


# --- faults ----------------------------------------------------------------------------------


@with_demo
@pytest.mark.parametrize("kind", ["429", "500", "503", "403"])
def test_status_fault_answers_once_then_recovers(
    emulator: Emulator, api: httpx.Client, kind: str
) -> None:
    emulator.fault(kind)

    assert api.get(f"/studies/{DEMO_ID}").status_code == int(kind)
    assert api.get(f"/studies/{DEMO_ID}").status_code == 200


def test_429_fault_can_carry_retry_after(emulator: Emulator, api: httpx.Client) -> None:
    emulator.fault("429", retry_after=7)

    response = api.get("/studies")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


def test_html_fault_serves_a_maintenance_page(emulator: Emulator, api: httpx.Client) -> None:
    emulator.fault("html")

    response = api.get("/studies")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "maintenance" in response.text.lower()


@with_demo
def test_truncated_fault_cuts_the_json(emulator: Emulator, api: httpx.Client) -> None:
    emulator.fault("truncated")

    response = api.get(f"/studies/{DEMO_ID}")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()


@with_demo
@pytest.mark.parametrize(
    ("path", "broken"),
    [
        ("/api/v2/studies", lambda body: body["studies"] == {}),
        (f"/api/v2/studies/{DEMO_ID}", lambda body: body["protocolSection"] == []),
        (f"/api/int/studies/{DEMO_ID}/history", lambda body: isinstance(body["changes"], dict)),
        (f"/api/int/studies/{DEMO_ID}/history/0", lambda body: body["study"] == []),
    ],
)
def test_drift_fault_answers_valid_json_of_the_wrong_shape(
    emulator: Emulator, path: str, broken: Callable[[Any], bool]
) -> None:
    emulator.fault("drift", path_prefix="/api")

    response = fetch(emulator.base_url + path)

    assert response.status_code == 200
    assert broken(response.json())


def test_drift_fault_can_carry_its_own_body(emulator: Emulator, api: httpx.Client) -> None:
    emulator.fault("drift", body={"data": []})

    assert api.get("/studies").json() == {"data": []}


def test_reset_fault_closes_the_connection_without_an_answer(
    emulator: Emulator, api: httpx.Client
) -> None:
    emulator.fault("reset")

    with pytest.raises(httpx.TransportError):
        api.get("/studies")
    assert api.get("/studies").status_code == 200


def test_slow_fault_outlasts_a_client_timeout(emulator: Emulator) -> None:
    emulator.fault("slow", seconds=30)

    with pytest.raises(httpx.ReadTimeout):
        fetch(f"{emulator.api_url}/studies", timeout=0.2)
    emulator.clear_faults()


def test_slow_fault_answers_after_its_delay(emulator: Emulator, api: httpx.Client) -> None:
    emulator.fault("slow", seconds=0.2)

    started = time.monotonic()
    response = api.get("/studies")

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


@with_demo
def test_fault_count_and_path_prefix_limit_a_fault(
    emulator: Emulator, api: httpx.Client, history: httpx.Client
) -> None:
    emulator.fault("500", count=2, path_prefix="/api/int")
    path = f"/studies/{DEMO_ID}/history"

    assert api.get(f"/studies/{DEMO_ID}").status_code == 200
    assert [history.get(path).status_code for _ in range(3)] == [500, 500, 200]


def test_negative_count_faults_until_cleared(emulator: Emulator, api: httpx.Client) -> None:
    emulator.fault("503", count=-1)

    assert [api.get("/studies").status_code for _ in range(3)] == [503, 503, 503]
    emulator.clear_faults()
    assert api.get("/studies").status_code == 200


@pytest.mark.parametrize(("kind", "count"), [("teapot", 1), ("200", 1), ("500", 0)])
def test_bad_fault_is_rejected(emulator: Emulator, kind: str, count: int) -> None:
    with pytest.raises(ValueError):
        emulator.fault(kind, count=count)


# --- statistics and the HTTP control API -----------------------------------------------------


@with_demo
def test_every_api_request_is_counted_by_path(
    emulator: Emulator, api: httpx.Client, history: httpx.Client
) -> None:
    emulator.fault("500")
    api.get(f"/studies/{DEMO_ID}")  # faulted, still counted
    api.get("/studies/NCT99999999")
    api.get("/studies", params={"pageSize": "1"})
    history.get(f"/studies/{DEMO_ID}/history")
    history.get(f"/studies/{DEMO_ID}/history/1")
    fetch(f"{emulator.base_url}/_emu/stats")  # control requests are not counted

    assert emulator.requests == 5
    assert emulator.requests_by_path == {
        "/api/v2/studies/{id}": 2,
        "/api/v2/studies": 1,
        "/api/int/studies/{id}/history": 1,
        "/api/int/studies/{id}/history/{n}": 1,
    }
    emulator.reset_stats()
    assert (emulator.requests, emulator.requests_by_path) == (0, {})


@with_demo
def test_control_api_over_http(emulator: Emulator, api: httpx.Client) -> None:
    control = httpx.Client(base_url=f"{emulator.base_url}/_emu", timeout=5, verify=False)
    study = demo_version(1)
    study["protocolSection"]["statusModule"]["overallStatus"] = "SUSPENDED"

    published = control.post("/publish", json={"study": study, "date": "2026-11-20"})
    control.post("/fault", json={"kind": "429", "count": 1, "retry_after": 3})
    throttled = api.get("/version")
    control.post("/alias", json={"alias": "NCT00000042", "nct": DEMO_ID})
    moved = api.get("/studies/NCT00000042")
    control.post("/fault", json={"kind": "500", "count": -1})
    control.post("/clear_faults")
    control.post("/gone", json={"nct": DEMO_ID})
    gone = api.get(f"/studies/{DEMO_ID}")
    stats = control.get("/stats").json()
    control.post("/reset_stats")

    assert published.json() == {"version": 2, "nct": DEMO_ID}
    assert (throttled.status_code, throttled.headers["retry-after"]) == (429, "3")
    assert moved.status_code == 301
    assert gone.status_code == 404
    assert stats["requests"] == 3
    assert stats["by_path"]["/api/v2/studies/{id}"] == 2
    assert control.get("/stats").json()["requests"] == 0
    assert control.post("/publish", json={"date": "2026-11-20"}).status_code == 400
    assert control.post("/fault", content=b"[1]").status_code == 400
    assert control.post("/nonsense", json={}).status_code == 404
    control.close()


# --- records and the command line ------------------------------------------------------------


def test_records_directory_loads_each_record_folder_as_versions(emulator: Emulator) -> None:
    loaded = emulator.load(DEMO)

    served = emulator.current(DEMO_ID)
    assert (loaded, emulator.version_count(DEMO_ID)) == (2, 2)
    assert served is not None
    assert served["protocolSection"]["statusModule"]["overallStatus"] == "COMPLETED"


def test_missing_records_directory_fails_loudly(emulator: Emulator, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        emulator.load(tmp_path / "nowhere")


def test_reference_records_are_served_as_they_are(
    emulator_factory: EmulatorFactory, reference_dir: Path
) -> None:
    emulator = emulator_factory([reference_dir])
    with httpx.Client(base_url=emulator.api_url, verify=False) as api:
        page = api.get("/studies", params={"pageSize": "100", "countTotal": "true"}).json()
        real = json.loads((reference_dir / "NCT06171568.json").read_text(encoding="utf-8"))
        served = api.get("/studies/NCT06171568").json()

    assert page["totalCount"] == 12
    assert emulator.version_count("NCT02552212") == 2  # the real "no material change" pair
    assert served == real  # files are served as they are, ESTIMATED lastUpdatePostDate included


def test_runs_as_a_script_and_reports_its_port(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [
            sys.executable,
            str(TESTS / "ctgov_emulator.py"),
            "--port",
            "0",
            "--records",
            str(DEMO),
            "--port-file",
            str(port_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed = process.stdout.readline().strip()
        wait_until(port_file.exists)
        base = f"http://127.0.0.1:{printed}"
        version = fetch(f"{base}/api/v2/version")
        study = fetch(f"{base}/api/v2/studies/{DEMO_ID}", params={"fields": "NCTId"})
    finally:
        process.terminate()
        returncode = process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    assert port_file.read_text() == printed
    assert version.json()["apiVersion"] == "2.0.5"
    assert study.json() == {"protocolSection": {"identificationModule": {"nctId": DEMO_ID}}}
    assert returncode == 0


# --- the demo records ------------------------------------------------------------------------


def test_demo_versions_carry_the_documented_facts() -> None:
    early, late = demo_version(0), demo_version(1)

    for version in (early, late):
        ps = version["protocolSection"]
        assert ps["identificationModule"]["nctId"] == DEMO_ID
        assert ps["designModule"]["enrollmentInfo"] == {"count": 30, "type": "ESTIMATED"}
        assert len(ps["armsInterventionsModule"]["armGroups"]) == 3
        assert len(ps["outcomesModule"]["primaryOutcomes"]) == 1
        assert len(ps["outcomesModule"]["secondaryOutcomes"]) == 4
        assert version["hasResults"] is False
        assert version["derivedSection"]["miscInfoModule"]["versionHolder"]
    early_status = early["protocolSection"]["statusModule"]
    late_status = late["protocolSection"]["statusModule"]
    assert early_status["overallStatus"] == "RECRUITING"
    assert early_status["startDateStruct"] == {"date": "2022-11-05", "type": "ACTUAL"}
    assert early_status["primaryCompletionDateStruct"] == {
        "date": "2023-11-01",
        "type": "ESTIMATED",
    }
    assert early_status["completionDateStruct"] == {"date": "2023-12-01", "type": "ESTIMATED"}
    assert early["protocolSection"]["designModule"]["phases"] == ["PHASE1", "PHASE2"]
    assert late_status["overallStatus"] == "COMPLETED"
    assert late_status["primaryCompletionDateStruct"]["type"] == "ACTUAL"
    assert late_status["completionDateStruct"]["type"] == "ACTUAL"
    arms = json.dumps(late["protocolSection"]["armsInterventionsModule"])
    assert "twice a week" in arms
    assert "12 weeks" in arms


def test_publish_never_changes_the_callers_document() -> None:
    study = demo_version(1)
    pristine = copy.deepcopy(study)
    with Emulator.start() as emulator:
        emulator.publish(study, date="2026-11-20")
    assert study == pristine
