"""Linking seeds to registrations: query shapes, scoring, and ranking over the wire against the
registry emulator loaded with realistic records (tests/data/search, see its README)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import TESTS_DATA
from ctgov_emulator import Emulator

from service.models import Intervention, Location, Snapshot, StudyDate
from service.registry.ctgov import CtgovClient
from service.seeds.evidence import Candidate, rank
from service.seeds.files import parse_seed
from service.seeds.link import find_candidates, queries
from service.seeds.model import Seed
from service.settings import CtgovSettings

ROOT = Path(__file__).resolve().parents[1]
SEARCH = TESTS_DATA / "search"


def seed_file(name: str) -> Seed:
    path = ROOT / "seeds" / f"{name}.toml"
    return parse_seed(path.read_text(), path.name)


@pytest.fixture(scope="module")
def registry() -> Iterator[Emulator]:
    emulator = Emulator.start([SEARCH])
    emulator.publish(json.loads((TESTS_DATA / "demo" / "NCT05605665" / "v1.json").read_text()))
    yield emulator
    emulator.stop()


@pytest.fixture
def client(registry: Emulator) -> Iterator[CtgovClient]:
    settings = CtgovSettings(
        api_url=registry.api_url, requests_per_second=100, retry_initial_seconds=0.01
    )
    with httpx.Client(timeout=5) as http:
        yield CtgovClient(http, settings)


def ranked_ids(seed: Seed, client: CtgovClient) -> list[tuple[str, bool]]:
    return [(r.candidate.study_id, r.confident) for r in find_candidates(seed, client).ranked]


# ---- over the wire -------------------------------------------------------------------------------


def test_the_baricitinib_pilot_is_linked_to_its_registration_with_confidence(
    client: CtgovClient,
) -> None:
    found = ranked_ids(seed_file("baricitinib-ss-pilot-bai-2022"), client)
    assert found[0] == ("NCT04916756", True)
    assert "NCT09900011" in dict(found)  # the same hospital's later randomised trial
    assert [confident for _, confident in found[1:]] == [False] * (len(found) - 1)


def test_the_lenalidomide_paper_is_linked_to_the_pennsylvania_registration(
    client: CtgovClient,
) -> None:
    found = ranked_ids(seed_file("lenalidomide-cle-braunstein-2012"), client)
    assert found[0] == ("NCT00633945", True)
    assert dict(found)["NCT01408199"] is False  # same drug and condition, in Spain


def test_the_leflunomide_paper_has_no_confident_match_and_says_why(client: CtgovClient) -> None:
    result = find_candidates(seed_file("leflunomide-pss-bikker-2012"), client)
    assert [r.confident for r in result.ranked] == [False] * len(result.ranked)
    top = result.ranked[0]
    assert top.candidate.study_id == "NCT09900015"  # same drug, condition and hospital …
    assert "not confident: it started after the publication (2016 > 2012)" in top.reasons


def test_the_il2_case_report_has_no_confident_match(client: CtgovClient) -> None:
    result = find_candidates(seed_file("low-dose-il2-sle-case-humrich-2015"), client)
    assert result.ranked, "the decoys are found"
    assert not any(r.confident for r in result.ranked)
    assert result.ranked[0].candidate.study_id == "NCT09900019"  # same hospital's later trial


def test_a_registry_without_the_study_gives_no_candidates(
    emulator_factory: Callable[..., Emulator],
) -> None:
    empty = emulator_factory()
    settings = CtgovSettings(api_url=empty.api_url, requests_per_second=100)
    with httpx.Client(timeout=5) as http:
        result = find_candidates(
            seed_file("baricitinib-ss-pilot-bai-2022"), CtgovClient(http, settings)
        )
    assert result.ranked == []
    assert empty.requests == result.searches


def test_each_query_shape_costs_one_request(registry: Emulator, client: CtgovClient) -> None:
    registry.reset_stats()
    result = find_candidates(seed_file("lenalidomide-cle-braunstein-2012"), client)
    assert registry.requests == result.searches == client.requests


def test_a_candidate_carries_the_contract_json_shape(client: CtgovClient) -> None:
    top = find_candidates(seed_file("baricitinib-ss-pilot-bai-2022"), client).ranked[0]
    shown = top.to_json()
    assert set(shown) == {"registry", "study_id", "score", "confident", "reasons"}
    assert shown["registry"] == "ctgov" and 0.8 <= shown["score"] <= 1.0
    assert "drug: baricitinib registered" in shown["reasons"]
    assert "enrollment: 11 reported, 11 registered (actual)" in shown["reasons"]


# ---- query shapes --------------------------------------------------------------------------------


def test_queries_go_from_specific_to_broad_with_synonyms() -> None:
    shapes = queries(seed_file("baricitinib-ss-pilot-bai-2022"))
    assert [sorted(s) for s in shapes] == [
        ["query.cond", "query.intr", "query.spons"],
        ["query.cond", "query.intr", "query.spons"],
        ["query.cond", "query.intr", "query.locn"],
        ["query.cond", "query.intr", "query.locn"],
        ["query.cond", "query.intr"],
        ["query.intr"],
        ["query.term"],
    ]
    first = shapes[0]
    assert first["query.spons"] == "Peking Union"
    assert "Sjogren" in first["query.cond"] and "sicca" in first["query.cond"]
    assert first["query.intr"] == "(baricitinib OR Olumiant OR LY3009104 OR INCB028050)"
    assert shapes[2]["query.locn"] == "Beijing" and shapes[3]["query.locn"] == "China"


def test_a_seed_naming_no_drug_is_searched_by_condition_and_title() -> None:
    seed = Seed(id="abc", title="Salivary gland ultrasound in sicca", conditions=["sicca syndrome"])
    shapes = queries(seed)
    assert [sorted(s) for s in shapes] == [["query.cond"], ["query.term"]]
    assert "Sjogren" in shapes[0]["query.cond"]


# ---- scoring rules -------------------------------------------------------------------------------


def snapshot(study_id: str, **fields: object) -> Snapshot:
    base: dict[str, object] = {
        "study_id": study_id,
        "brief_title": "Drug X in disease Y",
        "conditions": ("Disease Y",),
        "interventions": (Intervention(type="DRUG", name="Drug X"),),
        "enrollment_count": 20,
        "enrollment_type": "ACTUAL",
        "start_date": StudyDate(date="2018-01", type="ACTUAL"),
        "primary_completion_date": StudyDate(date="2019-01", type="ACTUAL"),
        "locations": (Location(facility="City Hospital", city="Utrecht", country="Netherlands"),),
    }
    return Snapshot.model_validate({**base, **fields})


def thin_seed(**fields: object) -> Seed:
    return Seed.model_validate(
        {
            "id": "thin",
            "title": "Drug X in disease Y",
            "conditions": ["Disease Y"],
            "interventions": [{"name": "Drug X"}],
            **fields,
        }
    )


def test_a_drug_and_a_condition_alone_are_never_confident() -> None:
    (only,) = rank(thin_seed(), [Candidate(snapshot("NCT00000001"))])
    assert not only.confident
    assert only.reasons[-1].startswith("not confident: score")


def test_strong_evidence_clearly_ahead_is_confident() -> None:
    seed = thin_seed(
        citation={"year": 2020},
        enrollment={"count": 20, "type": "ACTUAL"},
        sponsor={"affiliations": ["City Hospital"], "countries": ["Netherlands"]},
    )
    best, other = rank(
        seed,
        [
            Candidate(snapshot("NCT00000001")),
            Candidate(snapshot("NCT00000002", enrollment_count=200, locations=())),
        ],
    )
    assert (best.candidate.study_id, best.confident, other.confident) == (
        "NCT00000001",
        True,
        False,
    )
    assert best.reasons[-1] == "confident"


def test_two_equally_good_candidates_leave_no_confident_match() -> None:
    seed = thin_seed(
        citation={"year": 2020},
        enrollment={"count": 20, "type": "ACTUAL"},
        sponsor={"affiliations": ["City Hospital"], "countries": ["Netherlands"]},
    )
    ranked = rank(seed, [Candidate(snapshot("NCT00000001")), Candidate(snapshot("NCT00000002"))])
    assert [r.confident for r in ranked] == [False, False]
    assert ranked[0].reasons[-1].startswith("not confident: the runner-up is within 0.15")


def test_a_brand_name_in_the_registry_matches_the_generic_name_in_the_seed() -> None:
    seed = thin_seed(interventions=[{"name": "lenalidomide"}])
    snap = snapshot("NCT00000001", interventions=(Intervention(type="DRUG", name="Revlimid"),))
    (only,) = rank(seed, [Candidate(snap)])
    assert "drug: lenalidomide registered" in only.reasons


def test_a_record_missing_a_seed_drug_cannot_be_confident() -> None:
    seed = thin_seed(
        interventions=[{"name": "Drug X"}, {"name": "rapamycin"}],
        citation={"year": 2020},
        enrollment={"count": 20, "type": "ACTUAL"},
        sponsor={"affiliations": ["City Hospital"]},
    )
    (only,) = rank(seed, [Candidate(snapshot("NCT00000001"))])
    assert only.reasons[-1] == "not confident: rapamycin not among its interventions"
