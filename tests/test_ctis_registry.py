"""EU CTIS: the normaliser on every real record (both formats and a raw trimmed ``/retrieve``),
edits made the way the registry makes them, bad records, ids, the client against the EU
registries emulator (faults, request counts, the change signal) and against a small server of
this file that answers as CTIS does past its 10,000-row cap, and the diff of edited records."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.diff import diff
from service.errors import RecordInvalid, RecordNotFound, RegistryUnavailable
from service.models import LIFECYCLES, CountryRecord, Snapshot, StudyDate
from service.registry.ctis import fields
from service.registry.ctis.client import SEARCH_CAP, CtisClient, build_client
from service.registry.ctis.normalise import normalise, record_meta
from service.settings import CtisSettings

REFERENCE = Path(__file__).parent / "data" / "reference" / "ctis"
RECORD_FILES = sorted(REFERENCE.glob("CTIS_*.json"))
MSD = "2023-505613-24-00"  # post-relaunch, transitioned from EudraCT 2019-003842-34
GSK = "2024-510663-34-00"  # post-relaunch, transitioned from EudraCT 2019-001588-63
KINARUS = "2022-500244-37-00"  # before the relaunch ("CTIS1")
ROESSINGH = "2023-508143-51-01"  # before the relaunch, a resubmission (-01)
TRIMMED = "2025-523333-26-00"  # a raw /retrieve answer, trimmed
PRIMARY = fields.OUTCOME_PATHS["primary"]

Json = dict[str, Any]


def load(number: str) -> Json:
    (path,) = REFERENCE.glob(f"CTIS_{number}*.json")
    record: Json = json.loads(path.read_text(encoding="utf-8"))
    return record


def as_retrieved(number: str) -> Json:
    """The record as ``/retrieve`` serves it: ``ctStatus`` is the application's status text
    (the reference copies carry the search row's integer code there)."""
    record = load(number)
    record.pop("ctrname", None)
    record.pop("record_last_import", None)
    if isinstance(record.get("ctStatus"), int):
        record["ctStatus"] = "Authorised"
    return record


def end_points(record: Json) -> Json:
    information = record["authorizedApplication"]["authorizedPartI"]["trialDetails"]
    endpoint: Json = information["trialInformation"]["endPoint"]
    return endpoint


def changed_fields(old: Snapshot, new: Snapshot) -> set[str]:
    before, after = old.model_dump(), new.model_dump()
    return {name for name in before if before[name] != after[name]}


# --------------------------------------------------------------------------- the normaliser


@pytest.mark.parametrize("path", RECORD_FILES, ids=lambda p: p.stem)
def test_every_real_record_normalises(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    snap = normalise(raw)
    assert snap.registry == "ctis"
    assert snap.study_id == raw["ctNumber"] and path.stem.startswith(f"CTIS_{snap.study_id}")
    assert snap.overall_status and snap.lifecycle in LIFECYCLES
    assert snap.brief_title or snap.official_title or path.stem.endswith("trimmed")
    assert snap.primary_outcomes and snap.lead_sponsor and snap.enrollment_count
    assert [c.country for c in snap.countries] == sorted(c.country for c in snap.countries)
    assert record_meta(raw).study_id == snap.study_id
    assert normalise(copy.deepcopy(raw)) == snap  # pure: the same record, the same snapshot


def test_a_post_relaunch_record_read_in_full() -> None:
    snap = normalise(as_retrieved(MSD))
    assert snap.overall_status == "Ongoing, recruiting" and snap.lifecycle == "recruiting"
    assert snap.org_study_id == "MK-5592-127" == snap.acronym
    assert snap.brief_title.startswith("Posaconazole (MK-5592) IV and oral in children")
    assert snap.official_title.startswith("A Phase 2, Open-Label, Single-Arm")
    assert snap.phases == ("Therapeutic exploratory (Phase II)",)
    assert snap.conditions == ("Fungal infection",)
    assert snap.lead_sponsor == "Merck Sharp & Dohme LLC" and snap.collaborators == ()
    # planned: Belgium 6 + Poland 3 + Greece 4 in the EEA, 19 in the rest of the world
    assert snap.enrollment_count == 32 and snap.enrollment_actual == 13
    assert snap.countries == (
        CountryRecord(country="BE", name="Belgium", status="Ongoing, recruiting", enrollment=6),
        CountryRecord(country="GR", name="Greece", status="Ongoing, recruiting", enrollment=4),
        CountryRecord(country="PL", name="Poland", status="Ongoing, recruiting", enrollment=3),
    )
    assert snap.start_date == StudyDate(date="2021-04-28", type="ACTUAL")  # startDateEU
    assert snap.completion_date == StudyDate(date="2025-09-22", type="ESTIMATED")
    assert snap.has_results is False and snap.results_first_posted == ""
    assert len(snap.primary_outcomes) == 14 and len(snap.secondary_outcomes) > 5
    assert snap.primary_outcomes[0].measure.startswith("Average concentration (Cavg)")
    assert all(o.time_frame == "" for o in snap.primary_outcomes)  # CTIS has no time points
    assert record_meta(as_retrieved(MSD)).last_update_posted == "2025-08-19"


def test_the_records_name_their_other_registrations() -> None:
    # the IND numbers are kept as written: raw strings, not parsed ids
    assert normalise(load(MSD)).secondary_ids == (
        "2019-003842-34",
        "75,061; 125,097",
        "NCT04665037",
    )
    assert normalise(load(GSK)).secondary_ids == ("2019-001588-63", "NCT04494412")
    assert normalise(load(ROESSINGH)).secondary_ids == ("2021-004994-30",)  # eudraCtInfo


def test_placeholders_are_no_registration() -> None:
    record = load(GSK)
    identifiers = record["authorizedApplication"]["authorizedPartI"]["trialDetails"][
        "clinicalTrialIdentifiers"
    ]
    identifiers["secondaryIdentifyingNumbers"]["additionalRegistries"] = [
        {"number": "Nil known", "otherRegistryName": "ISRCTN"},
        {"number": "N/A", "otherRegistryName": "WHO"},
        {"number": " - ", "otherRegistryName": "Other"},
        {"number": "ISRCTN12345678", "otherRegistryName": "ISRCTN"},
    ]
    identifiers["secondaryIdentifyingNumbers"]["nctNumber"]["number"] = "NCT00000000"
    assert normalise(record).secondary_ids == ("2019-001588-63", "ISRCTN12345678")


def test_a_record_of_the_format_before_the_relaunch() -> None:
    snap = normalise(load(KINARUS))
    assert snap.overall_status == "Authorised, not started"  # the old portal's words
    assert snap.lifecycle == "not_yet_recruiting"
    assert snap.countries == (
        CountryRecord(
            country="DE", name="Germany", status="Authorised, not started", enrollment=150
        ),
    )
    assert snap.enrollment_count == 440  # 150 in Germany + 290 outside the EEA
    # the old portal's totalNumberEnrolled ("150") was the planned EEA count, not an actual
    assert snap.enrollment_actual is None
    assert snap.start_date == StudyDate(date="2022-06-01", type="ESTIMATED")
    assert snap.org_study_id == "KIN001-204" and snap.secondary_ids == ()
    assert record_meta(load(KINARUS)).last_update_posted == "2022-08-03"
    assert normalise(load(ROESSINGH)).phases == ("Therapeutic use (Phase IV)",)


def test_a_raw_trimmed_retrieve_record() -> None:
    raw = load(TRIMMED)
    assert raw["ctStatus"] == "Under evaluation"  # the application's status text
    snap = normalise(raw)
    assert snap.overall_status == "Under evaluation" and snap.lifecycle == "not_yet_recruiting"
    assert snap.enrollment_count == 85 and snap.enrollment_actual is None
    assert snap.phases == ("Therapeutic confirmatory (Phase III)",)
    assert snap.conditions == ("Graves' Disease (GD)",) and snap.lead_sponsor == "Argenx"
    assert [o.measure[:2] for o in snap.secondary_outcomes] == ["1.", "2.", "3."]
    assert snap.countries == () and snap.start_date == StudyDate()
    # no lastUpdated in a /retrieve answer: the day it was published
    assert record_meta(raw).last_update_posted == "2026-08-08"


# --------------------------------------------------------------------------- the status


def test_the_status_is_the_public_code_never_the_applications_status() -> None:
    record = as_retrieved(MSD)
    record["ctPublicStatusCode"] = 8
    assert record["ctStatus"] == "Authorised"
    snap = normalise(record)
    assert snap.overall_status == "Ended" and snap.lifecycle == "completed"


def test_an_integer_ctstatus_is_the_public_code_only_where_no_code_is_given() -> None:
    record = load(MSD)
    record["ctStatus"] = 5  # a search row merged over the record
    assert normalise(record).overall_status == "Ongoing, recruiting"  # ctPublicStatusCode 4
    del record["ctPublicStatusCode"]
    snap = normalise(record)
    assert (snap.overall_status, snap.lifecycle) == (
        "Ongoing, recruitment ended",
        "active_not_recruiting",
    )
    record["ctStatus"] = "Authorised"  # the application's status: no public status at all
    snap = normalise(record)
    assert (snap.overall_status, snap.lifecycle) == ("", "unknown")


@pytest.mark.parametrize(
    ("code", "label", "lifecycle"),
    [
        (1, "Under evaluation", "not_yet_recruiting"),
        (2, "Authorised, recruitment pending", "not_yet_recruiting"),
        (3, "Authorised, recruiting", "recruiting"),
        (4, "Ongoing, recruiting", "recruiting"),
        (5, "Ongoing, recruitment ended", "active_not_recruiting"),
        (6, "Temporarily halted", "suspended"),
        (7, "Suspended", "suspended"),
        (8, "Ended", "completed"),
        (9, "Expired", "withdrawn"),
        (10, "Revoked", "terminated"),
        (11, "Not authorised", "withdrawn"),
        (12, "Cancelled", "withdrawn"),
        (13, "Public status 13", "unknown"),  # a code the portal adds later: said, not guessed
    ],
)
def test_each_public_status_code(code: int, label: str, lifecycle: str) -> None:
    record = as_retrieved(GSK)
    record["ctPublicStatusCode"] = code
    snap = normalise(record)
    assert (snap.overall_status, snap.lifecycle) == (label, lifecycle)
    assert fields.lifecycle(label) == lifecycle  # the words alone say the same


def early_termination(record: Json, states: int) -> Json:
    for per_state in record["events"]["trialEvents"][:states]:
        per_state["events"].append({"notificationType": "EARLY_TERMINATION", "date": "2025-06-01"})
    return record


def test_ended_early_in_every_member_state_is_terminated() -> None:
    record = as_retrieved(MSD)
    record["ctPublicStatusCode"] = 8
    assert normalise(early_termination(copy.deepcopy(record), 3)).lifecycle == "terminated"
    # one member state of three stopping early does not end the trial early
    assert normalise(early_termination(record, 1)).lifecycle == "completed"


# --------------------------------------------------------------------------- enrollment, end points


def test_planned_and_actual_enrollment_are_apart() -> None:
    old = as_retrieved(MSD)
    enrolled = copy.deepcopy(old)
    enrolled["totalNumberEnrolled"] = "21"
    assert changed_fields(normalise(old), normalise(enrolled)) == {"enrollment_actual"}
    abroad = copy.deepcopy(old)
    abroad["authorizedApplication"]["authorizedPartI"]["rowSubjectCount"] = 40
    snap = normalise(abroad)
    assert changed_fields(normalise(old), snap) == {"enrollment_count"}
    assert snap.enrollment_count == 53


def test_end_points_keep_the_registrys_numbering() -> None:
    record = as_retrieved(GSK)
    primary = end_points(record)["primaryEndPoints"]
    primary.reverse()  # the array's order is not the registry's: its numbers are
    assert [o.measure for o in normalise(record).primary_outcomes] == [
        "Area under the serum concentration-time curve (AUC)",
        "Maximum serum concentration (Cmax)",
        "Clearance (CL)",
        "Terminal half-life (t1/2)",
    ]


def test_results_are_summary_results_submitted() -> None:
    record = as_retrieved(MSD)
    record["results"] = {
        "summaryResults": [
            {"status": "Submitted", "isFinalResult": True, "submissionDate": "2025-12-06"},
            {"status": "Submitted", "isFinalResult": False, "submissionDate": "2025-07-01"},
        ]
    }
    snap = normalise(record)
    assert snap.has_results is True and snap.results_first_posted == "2025-07-01"


def test_the_end_of_the_trial_actual_once_it_ended() -> None:
    record = as_retrieved(MSD)
    record["endDateEU"] = "30/06/2025"
    assert normalise(record).completion_date == StudyDate(date="2025-06-30", type="ACTUAL")
    record["authorizedApplication"]["trialGlobalEnd"] = {"globalEndDate": "2025-08-31"}
    assert normalise(record).completion_date == StudyDate(date="2025-08-31", type="ACTUAL")


# --------------------------------------------------------------------------- edits


def edit_status(record: Json) -> None:
    record["ctPublicStatusCode"] = 8


def edit_end_point(record: Json) -> None:
    end_points(record)["primaryEndPoints"][0]["endPoint"] = (
        "Average plasma concentration (Cavg) over 24 hours of single-dose IV POS (Panel A)"
    )


def edit_member_state(record: Json) -> None:
    record["authorizedApplication"]["memberStatesConcerned"][0]["mscPublicStatusCode"] = 5


def edit_planned_count(record: Json) -> None:
    record["authorizedApplication"]["authorizedPartsII"][0]["recruitmentSubjectCount"] = 10


def edit_housekeeping(record: Json) -> None:
    # what changes on every publication without changing the trial
    record["lastUpdated"] = "01/10/2025"
    record["publishDate"] = "2025-10-02T03:40:00.1"
    record["documents"] = []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (edit_status, {"overall_status", "lifecycle"}),
        (edit_end_point, {"primary_outcomes"}),
        (edit_member_state, {"countries"}),
        (edit_planned_count, {"countries", "enrollment_count"}),
        (edit_housekeeping, set()),
    ],
)
def test_an_edit_changes_exactly_its_fields(
    edit: Callable[[Json], None], expected: set[str]
) -> None:
    old = as_retrieved(MSD)
    new = copy.deepcopy(old)
    edit(new)
    assert changed_fields(normalise(old), normalise(new)) == expected


# --------------------------------------------------------------------------- bad records


def with_change(change: Callable[[Json], None]) -> Json:
    record = as_retrieved(MSD)
    change(record)
    return record


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "expected a CTIS record"),
        ({"nctId": "NCT04665037"}, "ctNumber: missing"),
        (
            {"ctNumber": "2019-003842-34", "authorizedApplication": {}},
            "ctNumber: expected an EU CT",
        ),
        ({"ctNumber": MSD}, "authorizedApplication: missing"),
        (
            {"ctNumber": MSD, "authorizedApplication": []},
            "authorizedApplication: expected an object",
        ),
        (
            with_change(
                lambda r: r["authorizedApplication"]["authorizedPartsII"][1].update(
                    recruitmentSubjectCount="many"
                )
            ),
            "authorizedApplication.authorizedPartsII[1].recruitmentSubjectCount: expected a number",
        ),
        (with_change(lambda r: r.update(startDateEU="31/02/2021")), "startDateEU: expected a date"),
        (
            with_change(lambda r: end_points(r).update(primaryEndPoints={"endPoint": "x"})),
            f"{PRIMARY}: expected a list",
        ),
        (with_change(lambda r: r.update(ctPublicStatusCode="ended")), "ctPublicStatusCode:"),
        (with_change(lambda r: r.update(lastUpdated="yesterday")), "lastUpdated: expected a date"),
    ],
)
def test_a_record_that_is_not_one_is_refused_with_its_path(raw: object, message: str) -> None:
    with pytest.raises(RecordInvalid) as caught:
        normalise(raw)
        record_meta(raw)
    assert str(caught.value).startswith(message)


# --------------------------------------------------------------------------- ids and paths


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("2023-505613-24-00", MSD),
        (" ctis2023-505613-24-00 ", MSD),
        ("CTIS2023-505613-24-00", MSD),
        ("2023-508143-51-01", ROESSINGH),
        ("2023-505613-24-0", None),  # no resubmission suffix
        ("2019-003842-34", None),  # a EudraCT number
        ("2019-003842-34-00", None),  # a EudraCT number with a suffix is no CT number
        ("NCT04665037", None),
        ("2023-505613-24-00-DE", None),
        ("２023-505613-24-00", None),
    ],
)
def test_an_eu_ct_number_is_parsed_strictly(typed: str, canonical: str | None) -> None:
    assert fields.parse_id(typed) == canonical


def test_the_registry_as_the_service_knows_it() -> None:
    info = fields.INFO
    assert (info.key, info.name) == ("ctis", "EU CTIS")
    assert "2023-505613-24-00" in info.id_forms
    assert info.study_url(MSD) == f"https://euclinicaltrials.eu/ctis-public/view/{MSD}"
    assert info.paths["overall_status"] == "ctPublicStatusCode"
    assert info.paths["enrollment_actual"] == "totalNumberEnrolled"
    assert info.outcome_paths["primary"] == (
        "authorizedApplication.authorizedPartI.trialDetails.trialInformation.endPoint"
        ".primaryEndPoints"
    )
    assert info.countries_path == "authorizedApplication.memberStatesConcerned"
    assert info.labels["overall_status"] == "Trial status"


def resolve(record: Json, path: str) -> object:
    node: object = record
    for key in path.replace("[]", "").split("."):
        if isinstance(node, list):
            node = node[0]
        assert isinstance(node, dict), path
        node = node[key]
    return node


def test_the_paths_are_the_records_own() -> None:
    record = load(MSD)
    absent = {"endDateEU", "results.summaryResults", "results.summaryResults.submissionDate"}
    for name, path in {**fields.FIELD_PATHS, **fields.OUTCOME_PATHS}.items():
        if path not in absent:
            assert resolve(record, path) is not None, name


# --------------------------------------------------------------------------- the client


def settings(url: str, **overrides: Any) -> CtisSettings:
    fast: dict[str, Any] = {
        "requests_per_second": 100,
        "retry_initial_seconds": 0,
        "retry_max_seconds": 0,
        "max_attempts": 4,
    }
    return CtisSettings(api_url=url, **{**fast, **overrides})


@pytest.fixture
def ctis(eu_emulator: Any) -> Iterator[CtisClient]:
    client = build_client(settings(eu_emulator.url("ctis")))
    yield client


def test_fetch_serves_the_retrieve_record_with_its_search_row(
    ctis: CtisClient, eu_emulator: Any
) -> None:
    record = ctis.fetch(MSD)
    assert record["ctNumber"] == MSD and record["ctStatus"] == "Authorised"
    assert normalise(record).overall_status == "Ongoing, recruiting"
    # what only a search row carries is asked for with one search for its number
    assert ctis.requests == 2 and eu_emulator.stats()["paths"] == [
        f"/ctis-public-api/retrieve/{MSD}",
        "/ctis-public-api/search",
    ]
    assert ctis.fetch(f"CTIS{GSK}")["ctNumber"] == GSK


def test_a_record_without_the_search_rows_fields_gets_them_never_the_rows_status(
    ctis: CtisClient, eu_emulator: Any
) -> None:
    bare = as_retrieved(MSD)
    for key in ("lastUpdated", "lastPublicationUpdate", "totalNumberEnrolled"):
        bare.pop(key, None)
    eu_emulator.publish("ctis", bare, "2025-10-02")  # the row says 02/10/2025
    record = ctis.fetch(MSD)
    assert record["lastUpdated"] == "02/10/2025" and record["ctStatus"] == "Authorised"
    assert record_meta(record).last_update_posted == "2025-10-02"


def test_a_record_the_signal_named_is_fetched_with_its_row_in_one_request(
    ctis: CtisClient, eu_emulator: Any
) -> None:
    today = date.today()
    eu_emulator.publish("ctis", as_retrieved(MSD), today.isoformat())
    ctis.signal(datetime.combine(today, datetime.min.time(), tzinfo=UTC))
    ctis.fetch(MSD)
    assert ctis.requests == 2  # the signal and the record: the row came with the signal


def test_a_number_ctis_does_not_have_is_not_found(ctis: CtisClient, eu_emulator: Any) -> None:
    with pytest.raises(RecordNotFound):
        ctis.fetch("2023-599999-99-00")
    eu_emulator.gone("ctis", GSK)
    with pytest.raises(RecordNotFound):
        ctis.fetch(GSK)
    assert ctis.requests == 2  # a 404 is an answer: not retried


@pytest.mark.parametrize("kind", ["403", "429", "500", "html"])
def test_passing_refusals_are_retried(ctis: CtisClient, eu_emulator: Any, kind: str) -> None:
    eu_emulator.fault("/ctis-public-api/retrieve/", kind, count=2)
    assert ctis.fetch(MSD)["ctNumber"] == MSD
    assert ctis.requests == 4  # two refused, the record, its search row


def test_a_refusal_that_lasts_is_said(ctis: CtisClient, eu_emulator: Any) -> None:
    eu_emulator.fault("/ctis-public-api/retrieve/", "403", count=4)  # every attempt
    with pytest.raises(RegistryUnavailable, match="CTIS answered 403"):
        ctis.fetch(MSD)
    eu_emulator.fault("/ctis-public-api/retrieve/", "html", count=4)
    with pytest.raises(RecordInvalid, match="HTML page"):
        ctis.fetch(MSD)
    assert ctis.requests == 8  # max_attempts 4, twice


def test_the_search_is_a_post(eu_emulator: Any) -> None:
    # GET /search is refused by CTIS; the client never uses it
    refused = httpx.get(f"{eu_emulator.url('ctis')}/search", timeout=10)
    assert refused.status_code == 403
    observed: list[str] = []
    client = build_client(settings(eu_emulator.url("ctis")), observe=observed.append)
    rows = client.search({"number": MSD}, limit=10)
    assert [(r["ctNumber"], r["ctStatus"]) for r in rows] == [(MSD, 4)]  # the public code
    assert observed == ["200"] and client.requests == 1
    assert [r["ctNumber"] for r in client.search({"containAll": "zanamivir"})] == [GSK]


def test_a_quiet_cycle_costs_one_request(ctis: CtisClient) -> None:
    signal = ctis.signal(datetime.now(UTC))
    assert signal.stamps == {} and signal.precision == "day"
    assert signal.covers_from is None and signal.warning == ""
    assert ctis.requests == 1


def test_the_signal_names_what_the_registry_published_today(
    ctis: CtisClient, eu_emulator: Any
) -> None:
    today = date.today()
    edited = as_retrieved(MSD)
    edit_status(edited)
    eu_emulator.publish("ctis", edited, today.isoformat())
    signal = ctis.signal(datetime.combine(today, datetime.min.time(), tzinfo=UTC))
    assert signal.stamps == {MSD: today.isoformat()}
    assert ctis.requests == 1
    fetched = ctis.fetch(MSD)
    assert record_meta(fetched).last_update_posted == today.isoformat()
    assert normalise(fetched).overall_status == "Ended"


def test_the_signal_pages_back_to_since(eu_emulator: Any) -> None:
    client = build_client(settings(eu_emulator.url("ctis"), page_size=2))
    signal = client.signal(datetime(2025, 9, 1, tzinfo=UTC))
    # stamped the day it was made public (lastPublicationUpdate), the night after its update
    assert signal.stamps == {GSK: "2025-09-16"} and client.requests == 1
    client = build_client(settings(eu_emulator.url("ctis"), page_size=2))
    signal = client.signal(datetime(2020, 1, 1, tzinfo=UTC))
    assert signal.stamps == {
        GSK: "2025-09-16",
        MSD: "2025-08-20",
        ROESSINGH: "2024-05-06",
        KINARUS: "2022-08-03",
    }
    # two full pages, then the page of the record without a date
    assert client.requests == 3 and signal.warning == ""


def test_the_signal_rides_out_a_firewall_refusal(ctis: CtisClient, eu_emulator: Any) -> None:
    eu_emulator.fault("/ctis-public-api/search", "429", count=1)
    eu_emulator.fault("/ctis-public-api/search", "403", count=1)
    assert ctis.signal(datetime(2025, 9, 1, tzinfo=UTC)).stamps == {GSK: "2025-09-16"}
    assert ctis.requests == 3


# --------------------------------------------------------------------------- past the cap


class CappedSearch(BaseHTTPRequestHandler):
    """``POST /search`` as CTIS answers a query matching more than 10,000 trials: 20,000
    updated over the last 40 days, 500 a day, newest first; only the first 10,000 listed."""

    protocol_version = "HTTP/1.1"
    today = date.today()
    matching = 20_000

    def log_message(self, *_args: object) -> None:
        pass

    def do_POST(self) -> None:
        asked = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        page, size = asked["pagination"]["page"], asked["pagination"]["size"]
        total = min(self.matching, SEARCH_CAP)
        first = (page - 1) * size
        rows = [self.row(i) for i in range(first, min(first + size, total))]
        pages = -(-total // size)
        body = json.dumps(
            {
                "showWarning": self.matching >= SEARCH_CAP,
                "pagination": {
                    "totalRecords": total,
                    "currentPage": page,
                    "totalPages": pages,
                    "nextPage": page < pages,
                    "prevPage": page > 1,
                },
                "data": rows,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def row(self, index: int) -> Json:
        day = self.today - timedelta(days=index // 500)
        return {
            "ctNumber": f"2024-5{index:05d}-10-00",
            "ctStatus": 4,
            "lastUpdated": day.strftime("%d/%m/%Y"),
        }


@pytest.fixture
def capped_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), CappedSearch)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ctis-public-api"
    server.shutdown()
    server.server_close()


def test_a_signal_past_the_cap_says_so(capped_url: str) -> None:
    client = build_client(settings(capped_url))
    since = datetime.now(UTC) - timedelta(days=60)
    signal = client.signal(since)
    oldest = CappedSearch.today - timedelta(days=19)  # row 9,999: 500 a day
    assert len(signal.stamps) == SEARCH_CAP and client.requests == SEARCH_CAP // 100
    assert "10,000" in signal.warning and oldest.isoformat() in signal.warning
    # the oldest day seen may be cut short: the signal speaks for the days after it
    assert signal.covers_from == datetime.combine(
        oldest + timedelta(days=1), datetime.min.time(), tzinfo=UTC
    )


def test_a_signal_within_the_cap_is_whole(capped_url: str) -> None:
    client = build_client(settings(capped_url))
    signal = client.signal(datetime.now(UTC) - timedelta(days=2))
    # days 0, 1 and 2: 1,500 rows, then a page reaching day 3 ends it
    assert len(signal.stamps) == 1_500 and client.requests == 16
    assert signal.warning == "" and signal.covers_from is None


# --------------------------------------------------------------------------- odd answers


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> CtisClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return build_client(settings("http://ctis.test/ctis-public-api"), http=http)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(200, json={"ctNumber": GSK}), f"with the record of '{GSK}'"),
        (httpx.Response(200, json=[{"ctNumber": MSD}]), "with a list, not a trial record"),
        (httpx.Response(200, content=b'{"ctNumber": "2023-5'), "not JSON"),
        (httpx.Response(200, content=b""), "not JSON"),
    ],
)
def test_an_answer_that_is_not_the_record_asked_for(answer: httpx.Response, message: str) -> None:
    client = mock_client(lambda _request: answer)
    with pytest.raises(RecordInvalid, match=message):
        client.fetch(MSD)


def test_a_search_answer_without_rows_is_refused() -> None:
    client = mock_client(lambda _request: httpx.Response(200, json={"pagination": {}}))
    with pytest.raises(RecordInvalid, match="data: expected a list"):
        client.signal(datetime.now(UTC))


def test_the_search_asks_as_the_portal_does() -> None:
    asked: list[Json] = []

    def answer(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/ctis-public-api/search")
        asked.append(json.loads(request.content))
        return httpx.Response(200, json={"pagination": {"nextPage": False}, "data": []})

    mock_client(answer).signal(datetime.now(UTC))
    assert asked == [
        {
            "pagination": {"page": 1, "size": 100},
            "searchCriteria": {},
            "sort": {"property": "lastUpdated", "direction": "DESC"},
        }
    ]


# --------------------------------------------------------------------------- the diff


def diffed(edit: Callable[[Json], None]) -> list[Any]:
    old = as_retrieved(MSD)
    new = copy.deepcopy(old)
    edit(new)
    return diff(normalise(old), normalise(new))


def test_diff_a_status_change() -> None:
    (change,) = diffed(edit_status)
    assert (change.kind, change.field) == ("status_changed", "ctPublicStatusCode")
    assert (change.old, change.new, change.registry) == ("Ongoing, recruiting", "Ended", "ctis")


def test_diff_a_reworded_primary_end_point() -> None:
    (change,) = diffed(edit_end_point)
    assert (change.kind, change.outcome_type) == ("outcome_modified", "primary")
    # "(Panel A)" added: detail added to the definition, a minor change (medium)
    assert change.field == f"{PRIMARY}[0]" and (change.grade, change.severity) == (
        "minor",
        "medium",
    )


def test_diff_planned_and_actual_enrollment() -> None:
    changes = diffed(edit_planned_count)
    assert {(c.kind, c.field, c.old, c.new) for c in changes} == {
        (
            "enrollment_changed",
            "authorizedApplication.authorizedPartsII[].recruitmentSubjectCount",
            32,
            36,
        ),
        (
            "enrollment_changed",
            "authorizedApplication.memberStatesConcerned.BE.recruitmentSubjectCount",
            6,
            10,
        ),
    }
    (actual,) = diffed(lambda r: r.update(totalNumberEnrolled="20"))
    assert (actual.kind, actual.field, actual.old, actual.new) == (
        "enrollment_changed",
        "totalNumberEnrolled",
        13,
        20,
    )


def test_diff_a_member_states_status() -> None:
    (change,) = diffed(edit_member_state)
    assert change.kind == "status_changed"
    assert change.field == "authorizedApplication.memberStatesConcerned.PL.mscPublicStatusCode"
    assert change.summary == "Poland: Ongoing, recruiting → Ongoing, recruitment ended"


def test_a_signal_whose_days_do_not_read_is_no_signal(eu_emulator: Any) -> None:
    drifted = as_retrieved(MSD)
    eu_emulator.publish("ctis", drifted, "2025-10-02")
    # the row's day written another way than CTIS writes it today
    for record in eu_emulator_records(eu_emulator):
        record["lastUpdated"] = "2025-10-02T10:00:00"
    client = build_client(settings(eu_emulator.url("ctis")))
    with pytest.raises(RecordInvalid, match="no row's lastUpdated reads as a day"):
        client.signal(datetime(2025, 9, 1, tzinfo=UTC))


def eu_emulator_records(eu_emulator: Any) -> list[dict[str, Any]]:
    import eu_registries_emulator

    return list(eu_registries_emulator.S.ctis.values())
