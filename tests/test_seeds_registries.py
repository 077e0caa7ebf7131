"""Seeds across registries: `seeds link` searches EUCTR, CTIS and ISRCTN beside
ClinicalTrials.gov and ranks every hit together; related registrations (a later trial of the
seed's sponsor or centre) are listed apart, with reasons, and never as the seed's own;
`--accept` records either kind; `seeds compare` reads an EU record; a registry that does not
answer is one line and the others still count.

Everything over real HTTP, against the two emulators (``ctgov_emulator`` with the linking
records of tests/data/search, ``eu_registries_emulator`` with the real EU records of
tests/data/reference). The seeds describe those real records: the MINT pilot of milrinone in
persistent pulmonary hypertension of the newborn (ISRCTN12949496), the phase 3 trial of
masitinib in Alzheimer's disease (EudraCT 2021-002179-21), intravenous zanamivir in infants
with influenza (EU CT 2024-510663-34-00). The one record made for these tests is MINT's
follow-up (``follow_up_xml``): the real MINT record edited as the registry would hold a new
trial of the same centres, under an illustrative number.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import EU_REFERENCE, TESTS_DATA
from ctgov_emulator import Emulator
from eu_registries_emulator import xml_of

from service.errors import RegistryUnavailable
from service.models import Intervention, Location, Snapshot, StudyDate
from service.registry.catalog import normalise
from service.registry.ctis.search import build_search as ctis_search
from service.registry.euctr.search import build_search as euctr_search
from service.registry.isrctn.search import build_search as isrctn_search
from service.registry.isrctn.search import query_of
from service.seeds.evidence import Candidate, rank
from service.seeds.extract import extract
from service.seeds.files import parse_seed
from service.seeds.phases import phase_codes
from service.seeds.related import related_reasons, split
from service.settings import CtisSettings, EuctrSettings, IsrctnSettings

Trialwatch = twconfig.Run

MINT = "ISRCTN12949496"
FOLLOW_UP = "ISRCTN00949496"  # illustrative: MINT's follow-up is made for these tests
MASITINIB = "2021-002179-21"
ZANAMIVIR = "2024-510663-34-00"
FAST = "requests_per_second = 100.0\nretry_initial_seconds = 0.01\n"
QUICK: dict[str, Any] = {"requests_per_second": 100, "max_attempts": 2, "retry_initial_seconds": 0}

MINT_SEED = """id = "milrinone-pphn-pilot"
title = "Milrinone in neonates with persistent pulmonary hypertension of the newborn: \
a randomised pilot trial"
kind = "paper"
conditions = ["persistent pulmonary hypertension of the newborn"]

[citation]
year = 2022
pmid = "36385642"

[design]
phases = ["PHASE3"]
allocation = "RANDOMIZED"
masking = "DOUBLE"
placebo = true
pilot = true

[enrollment]
count = 9
type = "ACTUAL"

[sponsor]
affiliations = ["The Rotunda Hospital", "Cork University Maternity Hospital"]
cities = ["Dublin", "Cork"]
countries = ["Ireland"]

[[interventions]]
name = "milrinone"

[[outcomes]]
type = "primary"
measure = "Time on iNO therapy"
"""

MASITINIB_SEED = """id = "masitinib-alzheimer-phase3"
title = "Masitinib as add-on therapy in patients with mild to moderate Alzheimer's disease"
kind = "paper"
conditions = ["Alzheimer's disease"]

[citation]
year = 2024

[design]
phases = ["PHASE3"]
allocation = "RANDOMIZED"
masking = "DOUBLE"
placebo = true

[enrollment]
count = 600
type = "ESTIMATED"

[sponsor]
lead = "AB Science"
countries = ["France", "Spain"]

[[interventions]]
name = "masitinib"
"""

ZANAMIVIR_SEED = """id = "zanamivir-iv-infants"
title = "Intravenous zanamivir in neonates and infants with complicated influenza"
kind = "paper"
conditions = ["influenza"]

[citation]
year = 2025

[design]
phases = ["PHASE2"]

[enrollment]
count = 11
type = "ACTUAL"

[sponsor]
lead = "GlaxoSmithKline Research & Development"
countries = ["Spain", "Italy"]

[[interventions]]
name = "zanamivir"
"""

SEEDS = {
    "milrinone-pphn-pilot": MINT_SEED,
    "masitinib-alzheimer-phase3": MASITINIB_SEED,
    "zanamivir-iv-infants": ZANAMIVIR_SEED,
}


def follow_up_xml() -> str:
    """MINT's follow-up: the real MINT record as the registry would hold the definitive
    trial of the same centres (new number, titles, dates and size; the pilot's EudraCT
    number and stop dropped), its number assigned on 15 March 2021."""
    record = json.loads((EU_REFERENCE / "isrctn" / "ISRCTN_12949496.json").read_text())
    record = {k: v for k, v in record.items() if k not in ("ctrname", "record_last_import")}
    record["isrctn"] = FOLLOW_UP.removeprefix("ISRCTN")
    record["trialDescription"].update(
        title="Milrinone for babies with high blood pressure in the lungs: the main trial",
        scientificTitle="Milrinone in neonates with persistent pulmonary hypertension of the "
        "newborn: a multicentre randomised placebo-controlled trial",
        acronym="MINT-2",
    )
    record["externalRefs"] = {"doi": "", "eudraCTNumber": "Nil known"}
    design = record["trialDesign"]
    design["studyDesign"] = "Multicentre randomized double-blind placebo-controlled trial"
    design["overallEndDate"] = "2024-12-31T00:00:00.000Z"
    for key in ("overallStatusOverride", "reasonAbandoned"):
        design.pop(key)
    record["participants"].update(
        recruitmentStart="2021-06-01T00:00:00.000Z",
        recruitmentEnd="2024-06-30T00:00:00.000Z",
        recruitmentStatusOverride="",
        targetEnrolment="120",
        totalFinalEnrolment="",
    )
    xml = ET.tostring(xml_of("trial", record), encoding="unicode")
    digits = record["isrctn"]
    assigned = f'<isrctn dateAssigned="2021-03-15T09:30:00.000Z">{digits}</isrctn>'
    return xml.replace(f"<isrctn>{digits}</isrctn>", assigned)


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory([TESTS_DATA / "search"])


@pytest.fixture
def trialwatch(
    registry: Emulator, eu_emulator: Any, database_url: str, tmp_path: Path
) -> Trialwatch:
    config = tmp_path / "trialwatch.toml"
    config.write_text("".join(f"[{key}]\n{FAST}" for key in ("ctgov", "euctr", "ctis", "isrctn")))
    env = {
        "TRIALWATCH_CONFIG": str(config),
        "TRIALWATCH_DATABASE_URL": database_url,
        "TRIALWATCH_CTGOV_API_URL": registry.api_url,
        "TRIALWATCH_CTGOV_HISTORY_URL": registry.history_url,
        **eu_emulator.environment(),
    }
    return twconfig.runner(env)


@pytest.fixture
def seeds_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "seeds"
    directory.mkdir()
    for seed_id, text in SEEDS.items():
        (directory / f"{seed_id}.toml").write_text(text)
    return directory


def linked(trialwatch: Trialwatch, *args: str) -> dict[str, dict[str, Any]]:
    result = trialwatch("seeds", "link", *args, "--json")
    assert result.exit_code == 0, result.output
    return {item["seed"]: item for item in result.json()}


def watches(trialwatch: Trialwatch) -> dict[tuple[str, str], list[str]]:
    listed = trialwatch("watch", "list", "--json").json()
    return {(w["registry"], w["study_id"]): w["tags"] for w in listed}


# ---- found in the registry that holds it ---------------------------------------------------------


def test_seeds_registered_only_in_euctr_ctis_or_isrctn_are_found_and_ranked_first(
    trialwatch: Trialwatch, seeds_dir: Path
) -> None:
    assert trialwatch("seeds", "load", str(seeds_dir)).exit_code == 0
    found = linked(trialwatch)
    expected = {
        "milrinone-pphn-pilot": ("isrctn", MINT),
        "masitinib-alzheimer-phase3": ("euctr", MASITINIB),
        "zanamivir-iv-infants": ("ctis", ZANAMIVIR),
    }
    for seed, (registry_key, study_id) in expected.items():
        top = found[seed]["candidates"][0]
        assert (top["registry"], top["study_id"], top["relation"]) == (
            registry_key,
            study_id,
            "own",
        ), seed
        assert top["confident"] is True, top["reasons"]
        assert "notes" not in found[seed]  # every registry answered
    # the evidence came from the whole records, not from search rows
    masitinib = found["masitinib-alzheimer-phase3"]["candidates"][0]["reasons"]
    assert "drug: masitinib registered" in masitinib
    assert "design: Phase 3 as reported, allocation randomized, masking double, placebo arm" in (
        masitinib
    )
    zanamivir = found["zanamivir-iv-infants"]["candidates"][0]["reasons"]
    assert "enrollment: 11 reported, 11 registered (actual)" in zanamivir
    # a confident registration is watched in its own registry
    assert watches(trialwatch) == {
        ("isrctn", MINT): ["seed:milrinone-pphn-pilot"],
        ("euctr", MASITINIB): ["seed:masitinib-alzheimer-phase3"],
        ("ctis", ZANAMIVIR): ["seed:zanamivir-iv-infants"],
    }
    listed = {x["seed"]: x["links"] for x in trialwatch("seeds", "list", "--json").json()}
    assert [
        (x["registry"], x["source"], x["relation"]) for x in listed["zanamivir-iv-infants"]
    ] == [("ctis", "search", "own")]


# ---- related registrations -----------------------------------------------------------------------


def test_a_follow_up_trial_of_the_same_centre_is_related_with_reasons_never_own(
    trialwatch: Trialwatch, seeds_dir: Path, eu_emulator: Any
) -> None:
    eu_emulator.publish("isrctn", follow_up_xml(), "2024-01-10")
    trialwatch("seeds", "load", str(seeds_dir))
    (item,) = linked(trialwatch, "milrinone-pphn-pilot").values()
    relations = [(c["study_id"], c["relation"]) for c in item["candidates"]]
    assert relations[0] == (MINT, "own") and item["candidates"][0]["confident"] is True
    assert (FOLLOW_UP, "related") in relations
    assert (FOLLOW_UP, "own") not in relations
    (related,) = [c for c in item["candidates"] if c["relation"] == "related"]
    assert related["registry"] == "isrctn" and related["confident"] is False
    assert related["reasons"] == [
        "same centre The Rotunda Hospital",
        "same drug milrinone",
        "same condition persistent pulmonary hypertension of the newborn",
        "registered 2021-03, after the seed's study began 2015-11",
        f"not the seed's own registration ({MINT} is)",
    ]
    # the own registration is recorded and watched; the related one only once accepted
    assert list(watches(trialwatch)) == [("isrctn", MINT)]
    shown = trialwatch("seeds", "link", "milrinone-pphn-pilot", "--again").stdout.splitlines()
    header = "  related registrations (later trials of the same sponsor or centre):"
    assert shown[1] == f"  {MINT}  0.99  confident  isrctn"
    assert shown[shown.index(header) + 1].startswith(f"  {FOLLOW_UP}  ")
    assert shown[shown.index(header) + 1].endswith("  related  isrctn")


def test_accept_records_the_own_and_a_related_registration(
    trialwatch: Trialwatch, seeds_dir: Path, eu_emulator: Any
) -> None:
    eu_emulator.publish("isrctn", follow_up_xml(), "2024-01-10")
    trialwatch("seeds", "load", str(seeds_dir))
    seed = "masitinib-alzheimer-phase3"
    own = linked(trialwatch, seed, "--accept", f"EUCTR{MASITINIB}-FR")[seed]
    assert own["candidates"] == [
        {
            "registry": "euctr",
            "study_id": MASITINIB,
            "score": 1.0,
            "confident": True,
            "reasons": ["accepted by a person"],
            "relation": "own",
        }
    ]
    pilot = "milrinone-pphn-pilot"
    linked(trialwatch, pilot, "--accept", MINT)
    related = linked(trialwatch, pilot, "--accept", FOLLOW_UP.lower(), "--related")[pilot]
    assert [(c["study_id"], c["relation"]) for c in related["candidates"]] == [
        (FOLLOW_UP, "related")
    ]
    assert watches(trialwatch) == {
        ("euctr", MASITINIB): [f"seed:{seed}"],
        ("isrctn", MINT): [f"seed:{pilot}"],
        ("isrctn", FOLLOW_UP): [f"seed:{pilot}"],
    }
    listed = {x["seed"]: x["links"] for x in trialwatch("seeds", "list", "--json").json()}
    assert [(x["study_id"], x["relation"], x["watched"]) for x in listed[pilot]] == [
        (MINT, "own", True),
        (FOLLOW_UP, "related", True),
    ]
    assert listed[pilot][1]["reasons"][0].startswith("a related registration")
    # linking again searches nothing: the seed has its own registration; both are shown
    again = linked(trialwatch, pilot)[pilot]["candidates"]
    assert [(c["study_id"], c["relation"]) for c in again] == [
        (MINT, "own"),
        (FOLLOW_UP, "related"),
    ]


def test_related_without_accept_is_bad_input(trialwatch: Trialwatch, seeds_dir: Path) -> None:
    trialwatch("seeds", "load", str(seeds_dir))
    result = trialwatch("seeds", "link", "milrinone-pphn-pilot", "--related")
    assert result.exit_code == 2
    assert "--related goes with --accept ID" in result.stderr


# ---- compare -------------------------------------------------------------------------------------


def test_compare_reads_the_linked_isrctn_record_and_never_the_related_one(
    trialwatch: Trialwatch, seeds_dir: Path, eu_emulator: Any
) -> None:
    eu_emulator.publish("isrctn", follow_up_xml(), "2024-01-10")
    trialwatch("seeds", "load", str(seeds_dir))
    pilot = "milrinone-pphn-pilot"
    linked(trialwatch, pilot)
    linked(trialwatch, pilot, "--accept", FOLLOW_UP, "--related")
    assert trialwatch("sync").exit_code == 0
    result = trialwatch("seeds", "compare", pilot)
    assert result.exit_code == 0, result.output
    # Phase III is the seed's PHASE3, 9 is the actual enrollment, "Time on iNO therapy" is
    # in the registry's end point text; the registry keeps no enrollment type
    assert result.stdout.splitlines() == [
        f"{pilot} ↔ {MINT}: no discrepancies (compared: enrollment, primary outcomes, phase, "
        "status, dates)",
        "  not compared: enrollment type (the registry record gives none)",
        "0 discrepancies in 1 comparison(s)",
    ]
    assert FOLLOW_UP not in result.stdout  # a later trial is not the study the paper reports
    (seeds_dir / f"{pilot}.toml").write_text(MINT_SEED.replace('"PHASE3"', '"PHASE2"'))
    trialwatch("seeds", "load", str(seeds_dir))
    found = trialwatch("seeds", "compare", pilot, "--json").json()
    assert [(d["study_id"], d["field"], d["summary"]) for d in found] == [
        (MINT, "phase", "Phase: the document says Phase 2, the registry Phase 3")
    ]
    assert found[0]["registry"] == "isrctn" and found[0]["registry_value"] == ["Phase III"]


def test_compare_reads_an_accepted_euctr_record(trialwatch: Trialwatch, seeds_dir: Path) -> None:
    trialwatch("seeds", "load", str(seeds_dir))
    seed = "masitinib-alzheimer-phase3"
    linked(trialwatch, seed, "--accept", MASITINIB)
    assert trialwatch("sync").exit_code == 0
    found = trialwatch("seeds", "compare", seed, "--json").json()
    # the size and the phase agree; the trial is ongoing though a paper reports it
    assert [(d["registry"], d["study_id"], d["field"]) for d in found] == [
        ("euctr", MASITINIB, "status")
    ]
    assert found[0]["summary"] == "Results are published but the registry still says Ongoing"


# ---- a registry down -----------------------------------------------------------------------------


def test_a_registry_that_does_not_answer_is_one_line_and_the_others_still_count(
    trialwatch: Trialwatch, seeds_dir: Path, eu_emulator: Any
) -> None:
    trialwatch("seeds", "load", str(seeds_dir))
    eu_emulator.fault("/euctr/", "503", count=1000)
    eu_emulator.reset_stats()
    result = trialwatch("seeds", "link", "milrinone-pphn-pilot", "masitinib-alzheimer-phase3")
    assert result.exit_code == 0, result.output
    by_seed: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        if not line.startswith(" "):
            by_seed[line.rstrip(":")] = []
        else:
            by_seed[list(by_seed)[-1]].append(line)
    assert list(by_seed) == ["masitinib-alzheimer-phase3", "milrinone-pphn-pilot"]  # id order
    # the masitinib trial is only in EUCTR: nothing found, and the reason is one line
    masitinib = by_seed["masitinib-alzheimer-phase3"]
    assert masitinib[0] == "  no candidate registrations found: no confident match"
    (note,) = [line for line in masitinib if line.startswith("  note: ")]
    assert note.startswith("  note: EUCTR: did not answer (EUCTR answered 503 (")
    assert note.endswith("); the other registries' candidates still count")
    # ISRCTN still answers for MINT; EUCTR is not asked again in this run
    mint = by_seed["milrinone-pphn-pilot"]
    assert mint[0] == f"  {MINT}  0.99  confident  isrctn"
    (note,) = [line for line in mint if line.startswith("  note: ")]
    assert note.startswith("  note: EUCTR: not asked (it did not answer for an earlier seed: ")
    assert eu_emulator.stats()["by_registry"]["euctr"] == 2  # two tries, then never again
    assert ("isrctn", MINT) in watches(trialwatch)
    as_json = trialwatch("seeds", "link", "masitinib-alzheimer-phase3", "--json")
    (item,) = as_json.json()
    assert item["candidates"] == [] and len(item["notes"]) == 1
    assert as_json.stderr.startswith("note: EUCTR: did not answer")


def test_when_no_registry_answers_the_link_fails_with_one_line(
    trialwatch: Trialwatch, seeds_dir: Path, registry: Emulator, eu_emulator: Any
) -> None:
    trialwatch("seeds", "load", str(seeds_dir))
    registry.fault("503", count=-1)
    eu_emulator.fault("/", "503", count=1000)
    result = trialwatch("seeds", "link", "zanamivir-iv-infants")
    assert result.exit_code == 1
    assert result.stderr.startswith("trialwatch: error: registry answered 503")
    assert result.stderr.count("\n") == 1


# ---- a seed file names a registration in any registry --------------------------------------------


def test_a_document_naming_eu_registrations_links_them_with_confidence() -> None:
    text = (
        "Milrinone in persistent pulmonary hypertension of the newborn: a pilot trial\n"
        f"Trial registration: {MINT}. EudraCT number 2014-002988-16.\n"
        f"The definitive trial is registered in CTIS (EU CT number: {ZANAMIVIR}).\n"
    )
    links = {(x.registry, x.id): x.confidence for x in extract(text, name="mint.txt").seed.links}
    assert links == {
        ("isrctn", MINT): 1.0,
        ("euctr", "2014-002988-16"): 1.0,
        ("ctis", ZANAMIVIR): 1.0,
    }


def test_a_seed_file_naming_ctis_and_isrctn_ids_watches_them_there(
    trialwatch: Trialwatch, tmp_path: Path
) -> None:
    directory = tmp_path / "named"
    directory.mkdir()
    (directory / "x.toml").write_text(
        'id = "named-eu"\ntitle = "Zanamivir and milrinone"\n'
        f'[[links]]\nregistry = "ctis"\nid = "{ZANAMIVIR}"\nconfidence = 1.0\n'
        'source = "document"\n'
        f'[[links]]\nregistry = "isrctn"\nid = "{MINT.lower()}"\nconfidence = 1.0\n'
        'source = "document"\n'
    )
    assert trialwatch("seeds", "load", str(directory)).exit_code == 0
    assert watches(trialwatch) == {
        ("ctis", ZANAMIVIR): ["seed:named-eu"],
        ("isrctn", MINT): ["seed:named-eu"],
    }


# ---- each registry's search ----------------------------------------------------------------------


def test_the_euctr_search_gives_summary_rows_and_the_full_record_on_fetch(eu_emulator: Any) -> None:
    search = euctr_search(EuctrSettings(url=eu_emulator.url("euctr"), requests_per_second=100))
    (hit,) = search.search(condition="Alzheimer disease", drug="masitinib")
    assert (hit.snapshot.study_id, hit.whole) == (MASITINIB, False)
    assert hit.snapshot.lead_sponsor == "ABScience" and hit.snapshot.countries
    whole = search.fetch(MASITINIB)
    assert whole.whole and whole.registered == "2022-03-10"  # first entered in EudraCT
    assert [i.name for i in whole.snapshot.interventions] == ["Masitinib mesilate", "Placebo"]
    assert set(whole.organisations) == {"AB Science", "ABScience"}
    assert search.search(drug="zzyzxumab") == []


def test_the_ctis_search_reads_products_and_sites_of_the_record(eu_emulator: Any) -> None:
    search = ctis_search(CtisSettings(api_url=eu_emulator.url("ctis"), requests_per_second=100))
    (hit,) = search.search(drug="zanamivir", condition="influenza")
    assert (hit.snapshot.study_id, hit.whole) == (ZANAMIVIR, False)
    whole = search.fetch(ZANAMIVIR)
    assert whole.registered == "2024-03-04"  # the first application's submission
    assert [i.name for i in whole.snapshot.interventions] == ["Zanamivir"]
    assert Location(facility="Hospital Universitario La Paz", city="Madrid", country="Spain") in (
        whole.snapshot.locations
    )


def test_the_isrctn_search_answers_whole_records(eu_emulator: Any) -> None:
    assert query_of(["milrinone", "pulmonary hypertension", ""]) == (
        'milrinone AND "pulmonary hypertension"'
    )
    search = isrctn_search(
        IsrctnSettings(api_url=eu_emulator.url("isrctn"), requests_per_second=100)
    )
    (hit,) = search.search(drug="milrinone", condition="pulmonary hypertension")
    assert hit.whole and hit.snapshot.study_id == MINT
    assert hit.snapshot.interventions[0] == Intervention(type="Drug", name="Milrinone")
    assert hit.snapshot.locations[0].facility == "The Rotunda Hospital"
    assert search.fetch(MINT).snapshot.study_id == MINT


@pytest.mark.parametrize("registry_key", ["euctr", "ctis", "isrctn"])
def test_a_search_that_keeps_failing_is_one_line_registry_unavailable(
    eu_emulator: Any, registry_key: str
) -> None:
    builders = {
        "euctr": lambda: euctr_search(EuctrSettings(url=eu_emulator.url("euctr"), **QUICK)),
        "ctis": lambda: ctis_search(CtisSettings(api_url=eu_emulator.url("ctis"), **QUICK)),
        "isrctn": lambda: isrctn_search(IsrctnSettings(api_url=eu_emulator.url("isrctn"), **QUICK)),
    }
    eu_emulator.fault("/", "500", count=1000)
    with pytest.raises(RegistryUnavailable) as caught:
        builders[registry_key]().search(drug="milrinone")
    assert "500" in str(caught.value) and "\n" not in str(caught.value)


# ---- the rules, on the real records --------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "codes"),
    [
        ("Phase 3", {"PHASE3"}),
        ("Phase III", {"PHASE3"}),
        ("Phase II/III", {"PHASE2", "PHASE3"}),
        ("Therapeutic exploratory (Phase II)", {"PHASE2"}),
        ("Human pharmacology (Phase I)- First administration to humans", {"PHASE1"}),
        ("PHASE1", {"PHASE1"}),
        ("Not Applicable", {"NA"}),
        ("Other", set()),
    ],
)
def test_every_registrys_phase_words_read_as_codes(written: str, codes: set[str]) -> None:
    assert phase_codes([written]) == codes


def ctis_candidate(number: str = "2023-505613-24-00") -> Candidate:
    raw = json.loads((EU_REFERENCE / "ctis" / f"CTIS_{number}.json").read_text())
    return Candidate(normalise("ctis", raw))


POSACONAZOLE_SEED = parse_seed(
    """id = "posaconazole-infants"
title = "Posaconazole in infants under 2 years with invasive fungal infection"
conditions = ["fungal infection"]
[citation]
year = 2026
[enrollment]
count = 13
type = "ACTUAL"
[sponsor]
lead = "Merck Sharp & Dohme LLC"
[[interventions]]
name = "posaconazole"
""",
    "posaconazole.toml",
)


def test_one_trial_in_two_registries_is_not_its_own_rival() -> None:
    """CTIS 2023-505613-24-00 names its ClinicalTrials.gov registration NCT04665037: the two
    records are one trial, and the second does not stop the first from being confident."""
    ctis = ctis_candidate()
    ctgov = Candidate(
        ctis.snapshot.model_copy(update={"registry": "ctgov", "study_id": "NCT04665037"})
    )
    first, second = rank(POSACONAZOLE_SEED, [ctis, ctgov])
    assert first.confident
    assert (
        second.reasons[-2]
        == f"the same trial as {first.candidate.study_id} (one record names the other)"
    )
    parts = split(POSACONAZOLE_SEED, [first, second])
    assert [r.candidate.study_id for r in parts.own] == [
        first.candidate.study_id,
        second.candidate.study_id,
    ]
    assert parts.related == []


def test_a_later_trial_is_related_only_with_sponsor_drug_condition_and_date() -> None:
    later = ctis_candidate()
    started = later.snapshot.start_date.date  # 2021-04-28
    assert started == "2021-04-28"
    reasons = related_reasons(POSACONAZOLE_SEED, later, own_start="2019-06-01")
    assert reasons[0] == "same sponsor Merck Sharp & Dohme LLC"
    assert reasons[-1] == "started 2021-04, after the seed's study began 2019-06"
    # registered before the seed's study began and long before its publication: not related
    assert related_reasons(POSACONAZOLE_SEED, later, own_start="2022-01-01") == ()
    # another sponsor: not related
    elsewhere = POSACONAZOLE_SEED.model_copy(
        update={"sponsor": POSACONAZOLE_SEED.sponsor.model_copy(update={"lead": "Pfizer"})}
    )
    assert related_reasons(elsewhere, later, own_start="2019-06-01") == ()
    # another drug: not related
    other_drug = later.snapshot.model_copy(
        update={"official_title": "", "brief_title": "", "interventions": ()}
    )
    assert related_reasons(POSACONAZOLE_SEED, Candidate(other_drug), own_start="2019-06-01") == ()


def test_a_case_report_has_no_registration_of_its_own_so_its_centres_trial_is_related() -> None:
    case = POSACONAZOLE_SEED.model_copy(
        update={
            "kind": "case_report",
            "citation": POSACONAZOLE_SEED.citation.model_copy(update={"year": 2022}),
        }
    )
    trial = Candidate(
        Snapshot(
            registry="isrctn",
            study_id="ISRCTN00000013",
            official_title="Posaconazole prophylaxis in infants with fungal infection",
            conditions=("Fungal infection",),
            interventions=(Intervention(type="Drug", name="Posaconazole"),),
            lead_sponsor="Merck Sharp & Dohme LLC",
            start_date=StudyDate(date="2021-09-01"),
        ),
        registered="2021-05-02",
    )
    parts = split(case, rank(case, [trial]))
    assert parts.own == []
    (related,) = parts.related
    assert related.reasons[-2:] == (
        "registered 2021-05, in the two years before the publication (2022)",
        "not the seed's own registration: a case report reports no registered trial",
    )
