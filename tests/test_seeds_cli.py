"""End to end: `trialwatch seeds …` through the CLI runner, against the registry emulator over
real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator

from service.app import App
from service.cli_seeds import _compare_summary, _comparison_lines
from service.registry.ctgov_normalise import normalise
from service.seeds.service import CompareReport, Comparison, discrepancy_changes
from service.settings import load_settings
from service.store import Store

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
DOCUMENTS = TESTS_DATA / "seeds"
DEMO = TESTS_DATA / "demo" / "NCT05605665"
PAGE_SEED = "il2-rapamycin-ss-nct05605665"


Trialwatch = twconfig.Run


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    emulator = emulator_factory([TESTS_DATA / "search"])
    emulator.publish(json.loads((DEMO / "v1.json").read_text()), date="2024-01-10")
    return emulator


FAST = "requests_per_second = 100.0\nretry_initial_seconds = 0.01\n"


@pytest.fixture
def trialwatch(
    registry: Emulator, eu_emulator: Any, database_url: str, tmp_path: Path
) -> Trialwatch:
    # `seeds link` searches EUCTR, CTIS and ISRCTN too: the EU emulator stands in for them
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


def watches(trialwatch: Trialwatch) -> dict[str, list[str]]:
    return {w["study_id"]: w["tags"] for w in trialwatch("watch", "list", "--json").json()}


# ---- load and list -------------------------------------------------------------------------------


def test_loading_the_seeds_stores_five_studies_and_watches_nct05605665(
    trialwatch: Trialwatch, registry: Emulator
) -> None:
    registry.reset_stats()
    result = trialwatch("seeds", "load", str(SEEDS))
    assert result.exit_code == 0, result.stderr
    assert f"{PAGE_SEED}: added; watching NCT05605665" in result.stdout
    assert "5 seed studies: 5 added, 0 updated, 0 unchanged" in result.stdout
    assert watches(trialwatch) == {"NCT05605665": [f"seed:{PAGE_SEED}"]}
    assert registry.requests == 0  # loading never searches
    listed = trialwatch("seeds", "list", "--json").json()
    assert len(listed) == 5
    page = next(item for item in listed if item["seed"] == PAGE_SEED)
    assert page["links"] == [
        {
            "registry": "ctgov",
            "study_id": "NCT05605665",
            "confidence": 1.0,
            "source": "document",
            "confident": True,
            "watched": True,
            "reasons": ["the page's registration number"],
            "relation": "own",
        }
    ]


def test_loading_again_updates_and_adds_nothing_twice(
    trialwatch: Trialwatch, tmp_path: Path
) -> None:
    directory = tmp_path / "seeds"
    shutil.copytree(SEEDS, directory)
    trialwatch("seeds", "load", str(directory))
    page = directory / f"{PAGE_SEED}.toml"
    page.write_text(page.read_text().replace('status = "COMPLETED"', 'status = "RECRUITING"'))
    result = trialwatch("seeds", "load", str(directory), "--json")
    assert result.exit_code == 0, result.stderr
    verdicts = {item["seed"]: item["result"] for item in result.json()}
    assert verdicts[PAGE_SEED] == "updated"
    assert sorted(set(verdicts.values())) == ["unchanged", "updated"]
    assert len(trialwatch("seeds", "list", "--json").json()) == 5
    assert list(watches(trialwatch)) == ["NCT05605665"]


def test_a_link_to_a_registry_trialwatch_cannot_fetch_is_stored_but_not_watched(
    trialwatch: Trialwatch, tmp_path: Path
) -> None:
    directory = tmp_path / "seeds"
    directory.mkdir()
    (directory / "x.toml").write_text(
        'id = "il2-sle"\ntitle = "Low-dose IL-2 in SLE"\n'
        '[[links]]\nregistry = "drks"\nid = "DRKS00012345"\nconfidence = 1.0\n'
        'source = "document"\n'
    )
    result = trialwatch("seeds", "load", str(directory))
    assert result.exit_code == 0, result.stderr
    assert "not watched: drks:DRKS00012345 (stored; trialwatch cannot fetch" in result.stdout
    (listed,) = trialwatch("seeds", "list", "--json").json()
    assert [(x["study_id"], x["watched"]) for x in listed["links"]] == [("DRKS00012345", False)]
    assert watches(trialwatch) == {}


def test_a_confident_link_to_an_eu_registration_is_watched_there(
    trialwatch: Trialwatch, tmp_path: Path
) -> None:
    directory = tmp_path / "seeds"
    directory.mkdir()
    (directory / "x.toml").write_text(
        'id = "repurpss"\ntitle = "Leflunomide and hydroxychloroquine in pSS"\n'
        '[[links]]\nregistry = "euctr"\nid = "2014-003140-12"\nconfidence = 1.0\n'
        'source = "document"\n'
    )
    assert trialwatch("seeds", "load", str(directory)).exit_code == 0
    (watch,) = trialwatch("watch", "list", "--json").json()
    assert (watch["registry"], watch["study_id"], watch["tags"]) == (
        "euctr",
        "2014-003140-12",
        ["seed:repurpss"],
    )


def test_one_bad_file_stops_the_load_with_nothing_written(
    trialwatch: Trialwatch, tmp_path: Path
) -> None:
    directory = tmp_path / "seeds"
    shutil.copytree(SEEDS, directory)
    (directory / "zz-bad.toml").write_text(
        'id = "zz-bad"\ntitle = "T"\n[design]\nphases = ["PHASE7"]\n'
    )
    result = trialwatch("seeds", "load", str(directory))
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"trialwatch: error: {directory / 'zz-bad.toml'}: design.phases[0]:"
    )
    assert result.stderr.count("\n") == 1
    assert trialwatch("seeds", "list", "--json").json() == []
    assert watches(trialwatch) == {}


def test_listing_an_empty_store_prints_an_empty_array(trialwatch: Trialwatch) -> None:
    result = trialwatch("seeds", "list", "--json")
    assert (result.exit_code, result.json()) == (0, [])


# ---- import --------------------------------------------------------------------------------------


def test_importing_the_five_documents_drafts_loadable_seed_files(
    trialwatch: Trialwatch, tmp_path: Path
) -> None:
    documents = sorted(str(p) for p in DOCUMENTS.glob("*.txt"))
    printed = trialwatch("seeds", "import", *documents)
    assert printed.exit_code == 0, printed.stderr
    assert printed.stdout.count("# Draft seed from") == 5
    assert 'phrase = "Target Recruitment 30"' in printed.stdout
    assert not list(tmp_path.glob("drafts/*"))

    written = trialwatch("seeds", "import", *documents, "--into", str(tmp_path / "drafts"))
    assert written.exit_code == 0, written.stderr
    assert len(list((tmp_path / "drafts").glob("*.toml"))) == 5
    assert "(not found: outcomes, links, citation.year" in written.stdout
    loaded = trialwatch("seeds", "load", str(tmp_path / "drafts"))
    assert loaded.exit_code == 0, loaded.stderr
    assert "watching NCT05605665" in loaded.stdout
    # a draft that still lists what it lacks is loaded, with one line saying it is unchecked
    warnings = loaded.stderr.strip().splitlines()
    assert len(warnings) == 4  # the registry page's draft lacks nothing
    assert all(w.startswith("warning: ") and "still a draft (missing: " in w for w in warnings)
    assert any("missing: design.phases, outcomes, links" in w for w in warnings)
    assert all(w.endswith("then delete its `missing` list") for w in warnings)


def test_importing_never_overwrites_a_seed_file_without_force(
    trialwatch: Trialwatch, tmp_path: Path
) -> None:
    document = str(DOCUMENTS / "004_nct05605665_page.txt")
    into = tmp_path / "drafts"
    assert trialwatch("seeds", "import", document, "--into", str(into)).exit_code == 0
    (target,) = into.glob("*.toml")
    target.write_text("# edited by a person\n" + target.read_text())
    again = trialwatch("seeds", "import", document, "--into", str(into))
    assert again.exit_code == 2
    assert "already exists (use --force to overwrite it)" in again.stderr
    assert target.read_text().startswith("# edited by a person")
    forced = trialwatch("seeds", "import", document, "--into", str(into), "--force")
    assert forced.exit_code == 0
    assert target.read_text().startswith("# Draft seed from")


def test_importing_a_missing_document_is_bad_input(trialwatch: Trialwatch, tmp_path: Path) -> None:
    result = trialwatch("seeds", "import", str(tmp_path / "nope.txt"))
    assert result.exit_code == 2
    assert "nope.txt: no such file" in result.stderr


# ---- link ----------------------------------------------------------------------------------------


def test_linking_ranks_the_right_registrations_first_and_watches_the_confident_ones(
    trialwatch: Trialwatch,
) -> None:
    trialwatch("seeds", "load", str(SEEDS))
    result = trialwatch("seeds", "link", "--json")
    assert result.exit_code == 0, result.stderr
    by_seed = {item["seed"]: item["candidates"] for item in result.json()}
    assert len(by_seed) == 5
    top = {
        seed: (c[0]["study_id"], c[0]["confident"]) if c else None for seed, c in by_seed.items()
    }
    assert top["baricitinib-ss-pilot-bai-2022"] == ("NCT04916756", True)
    assert top["lenalidomide-cle-braunstein-2012"] == ("NCT00633945", True)
    assert top[PAGE_SEED] == ("NCT05605665", True)
    assert by_seed[PAGE_SEED][0]["reasons"][0] == "identifier written in the document"
    for honest in ("leflunomide-pss-bikker-2012", "low-dose-il2-sle-case-humrich-2015"):
        assert not any(c["confident"] for c in by_seed[honest]), honest
    assert set(watches(trialwatch)) == {"NCT04916756", "NCT00633945", "NCT05605665"}
    sources = {
        item["seed"]: [(x["study_id"], x["source"]) for x in item["links"]]
        for item in trialwatch("seeds", "list", "--json").json()
    }
    assert sources["baricitinib-ss-pilot-bai-2022"] == [("NCT04916756", "search")]


def test_linking_again_does_not_search_for_seeds_already_linked(
    trialwatch: Trialwatch, registry: Emulator
) -> None:
    trialwatch("seeds", "load", str(SEEDS))
    registry.reset_stats()
    result = trialwatch("seeds", "link", PAGE_SEED)
    assert result.exit_code == 0, result.stderr
    assert "NCT05605665  1.00  confident" in result.stdout
    assert registry.requests == 0


def test_a_person_accepts_a_registration_and_it_is_watched(trialwatch: Trialwatch) -> None:
    trialwatch("seeds", "load", str(SEEDS))
    seed = "leflunomide-pss-bikker-2012"
    # the same drug, condition and hospital, but it started four years after the paper
    refused = trialwatch("seeds", "link", seed, "--accept", "nct09900015")
    assert refused.exit_code == 2
    assert refused.stderr.strip().splitlines() == [
        "trialwatch: error: NCT09900015 is ruled out as the registration of "
        f"{seed}: it started after the publication (2016 > 2012) "
        "(accept it anyway with --force)"
    ]
    assert "NCT09900015" not in watches(trialwatch)
    result = trialwatch("seeds", "link", seed, "--accept", "nct09900015", "--force", "--json")
    assert result.exit_code == 0, result.stderr
    assert "note: fetched NCT09900015" in result.stderr
    assert result.json() == [
        {
            "seed": seed,
            "candidates": [
                {
                    "registry": "ctgov",
                    "study_id": "NCT09900015",
                    "score": 1.0,
                    "confident": True,
                    "reasons": ["accepted by a person"],
                    "relation": "own",
                }
            ],
        }
    ]
    assert watches(trialwatch)["NCT09900015"] == [f"seed:{seed}"]
    (listed,) = [x for x in trialwatch("seeds", "list", "--json").json() if x["seed"] == seed]
    assert [(x["study_id"], x["source"], x["watched"]) for x in listed["links"]] == [
        ("NCT09900015", "person", True)
    ]


def test_accepting_what_nothing_rules_out_needs_no_force_and_compare_can_follow(
    trialwatch: Trialwatch,
) -> None:
    trialwatch("seeds", "load", str(SEEDS))
    seed = "baricitinib-ss-pilot-bai-2022"
    result = trialwatch("seeds", "link", seed, "--accept", "NCT04916756")
    assert result.exit_code == 0, result.stderr
    assert "fetched NCT04916756" in result.stdout
    compared = trialwatch("seeds", "compare", seed)
    assert compared.exit_code == 0, compared.stderr
    assert "not compared" not in compared.stdout.splitlines()[0]
    # a later trial of the same team started after the paper by nature: related needs no force
    later = trialwatch(
        "seeds", "link", "leflunomide-pss-bikker-2012", "--accept", "NCT09900015", "--related"
    )
    assert later.exit_code == 0, later.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--accept", "NCT09900015"), "--accept needs exactly one SEED"),
        (("leflunomide-pss-bikker-2012", "--accept", "NCT123"), "'NCT123' is not a registry"),
        (("no-such-seed",), "no seed study no-such-seed"),
    ],
)
def test_bad_link_arguments_are_bad_input(
    trialwatch: Trialwatch, args: tuple[str, ...], message: str
) -> None:
    trialwatch("seeds", "load", str(SEEDS))
    result = trialwatch("seeds", "link", *args)
    assert result.exit_code == 2
    assert message in result.stderr


# ---- compare -------------------------------------------------------------------------------------


def test_compare_reports_the_enrollment_and_phase_discrepancies_after_a_sync(
    trialwatch: Trialwatch,
) -> None:
    trialwatch("seeds", "load", str(SEEDS))
    linked = trialwatch("seeds", "link")
    # what linking started watching is fetched at once: compare can follow
    assert "fetched NCT00633945" in linked.stdout and "fetched NCT04916756" in linked.stdout
    before = trialwatch("seeds", "compare", "--json")
    assert {d["study_id"] for d in before.json()} == {"NCT00633945"}
    # the page's registration was watched by `seeds load`, which fetches nothing
    assert f"{PAGE_SEED}: NCT05605665 has not been synced yet" in before.stderr
    assert trialwatch("sync").exit_code == 0
    result = trialwatch("seeds", "compare", "--json")
    assert result.exit_code == 0, result.stderr
    found = sorted((d["seed"], d["study_id"], d["field"], d["severity"]) for d in result.json())
    assert found == [
        (PAGE_SEED, "NCT05605665", "enrollment_type", "medium"),
        (PAGE_SEED, "NCT05605665", "phase", "medium"),
        ("lenalidomide-cle-braunstein-2012", "NCT00633945", "enrollment", "low"),
        ("lenalidomide-cle-braunstein-2012", "NCT00633945", "enrollment_type", "medium"),
    ]
    assert "no confident registration of its own" in result.stderr
    one = trialwatch("seeds", "compare", PAGE_SEED)
    assert "Phase: the document says Phase 1, the registry Phase 1/Phase 2" in one.stdout


def test_a_registry_update_that_opens_a_discrepancy_becomes_a_seed_change(
    trialwatch: Trialwatch, database_url: str
) -> None:
    trialwatch("seeds", "load", str(SEEDS))
    trialwatch("sync")
    old = normalise(json.loads((DEMO / "v1.json").read_text()))
    new = old.model_copy(update={"overall_status": "TERMINATED", "enrollment_count": 12})
    store = Store.open(database_url)
    try:
        changes = discrepancy_changes(store, old, new)
    finally:
        store.close()
    assert [(c.kind, c.field, c.severity) for c in changes] == [
        ("field_changed", f"seed:{PAGE_SEED}:enrollment", "high"),
        ("field_changed", f"seed:{PAGE_SEED}:status", "medium"),
    ]
    assert changes[0].summary == (
        f"Seed {PAGE_SEED}: Enrollment: the document targets 30, the registry says 12 (estimated)"
    )


def test_a_long_running_process_sees_seeds_loaded_between_its_cycles(
    trialwatch: Trialwatch, registry: Emulator, database_url: str, tmp_path: Path
) -> None:
    """The daemon reads which records have seeds once a cycle: seeds loaded while it runs
    count from its next cycle."""
    environ = {
        "TRIALWATCH_CONFIG": str(tmp_path / "trialwatch.toml"),
        "TRIALWATCH_DATABASE_URL": database_url,
        "TRIALWATCH_CTGOV_API_URL": registry.api_url,
        "TRIALWATCH_CTGOV_HISTORY_URL": registry.history_url,
    }
    app = App(load_settings(environ=environ))
    try:
        trialwatch("watch", "add", "NCT05605665")
        app.sync()
        study = json.loads((DEMO / "v1.json").read_text())
        study["protocolSection"]["statusModule"]["overallStatus"] = "SUSPENDED"
        registry.publish(study, date="2024-02-10")
        assert "seed:" not in str([c.field for c in app.sync().changes])  # no seed yet
        trialwatch("seeds", "load", str(SEEDS))  # another process, while the daemon runs
        study["protocolSection"]["designModule"]["enrollmentInfo"]["count"] = 12
        registry.publish(study, date="2024-03-10")
        report = app.sync()
    finally:
        app.store.close()
    fields = [c.field for c in report.changes]
    assert f"seed:{PAGE_SEED}:enrollment" in fields


def test_compare_names_what_it_could_not_compare_instead_of_no_discrepancies(
    trialwatch: Trialwatch,
) -> None:
    trialwatch("seeds", "load", str(SEEDS))
    before = trialwatch("seeds", "compare")
    assert before.exit_code == 0, before.stderr
    assert "no discrepancies" not in before.stdout  # nothing was compared: nothing to claim
    lines = before.stdout.splitlines()
    assert (
        f"{PAGE_SEED} ↔ NCT05605665: not compared: NCT05605665 has not been synced yet: nothing "
        "stored to compare with (run `trialwatch sync`)"
    ) in lines
    assert any(
        line.startswith(
            "leflunomide-pss-bikker-2012: not compared: no confident registration of its own"
        )
        for line in lines
    )
    assert lines[-1] == (
        "nothing could be compared: none of the 5 seed(s) has a confident registration that "
        "has been synced (see above)"
    )

    trialwatch("seeds", "link")
    trialwatch("sync")
    after = trialwatch("seeds", "compare").stdout.splitlines()
    clean = "baricitinib-ss-pilot-bai-2022 ↔ NCT04916756: no discrepancies"
    (head,) = [line for line in after if line.startswith(clean)]
    assert head == f"{clean} (compared: enrollment, enrollment type, status, dates)"
    # what "no discrepancies" does not cover, and why, follows it
    following = after[after.index(head) + 1 : after.index(head) + 3]
    assert following == [
        "  not compared: primary outcomes (the document names none as primary)",
        "  not compared: phase (the document gives none)",
    ]
    assert after[-1] == "4 discrepancies in 3 comparison(s); 2 could not be compared (see above)"


def test_an_imported_draft_keeps_the_documents_path_as_given(
    trialwatch: Trialwatch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    papers = tmp_path / "work" / "papers"
    papers.mkdir(parents=True)
    shutil.copy(DOCUMENTS / "003_low_dose_il2_sle.txt", papers / "il2.txt")
    monkeypatch.chdir(tmp_path / "work")
    outside = tmp_path / "il2-elsewhere.txt"
    shutil.copy(DOCUMENTS / "003_low_dose_il2_sle.txt", outside)
    documents = {
        "papers/il2.txt": "papers/il2.txt",  # relative: as given
        str(papers / "il2.txt"): "papers/il2.txt",  # absolute inside the working directory
        str(outside): str(outside),  # absolute elsewhere: as given
    }
    for given, expected in documents.items():
        printed = trialwatch("seeds", "import", given)
        assert printed.exit_code == 0, printed.stderr
        assert f'document = "{expected}"' in printed.stdout
        assert printed.stdout.startswith(f"# Draft seed from {expected}, ")
        assert "pilot" not in printed.stdout  # the letter never says pilot either way


def test_a_seed_that_states_little_says_what_it_could_not_compare(
    trialwatch: Trialwatch, tmp_path: Path
) -> None:
    directory = tmp_path / "seeds"
    directory.mkdir()
    (directory / "bare.toml").write_text(
        'id = "bare-page"\ntitle = "A registry page saved without its tables"\n'
        'kind = "registry_page"\n[[links]]\nregistry = "ctgov"\nid = "NCT05605665"\n'
        'confidence = 1.0\nsource = "document"\n'
    )
    assert trialwatch("seeds", "load", str(directory)).exit_code == 0
    assert trialwatch("sync").exit_code == 0
    result = trialwatch("seeds", "compare", "bare-page")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "bare-page ↔ NCT05605665: 1 discrepancy (compared: enrollment type)",
        "  medium  Enrollment is still an estimate in the registry although the study is completed",
        "  not compared: enrollment (the document gives no size)",
        "  not compared: primary outcomes (the document names none as primary)",
        "  not compared: phase (the document gives none)",
        "  not compared: status (the document gives none)",
        "1 discrepancy in 1 comparison(s)",
    ]


def test_a_comparison_with_no_fact_on_both_sides_claims_nothing() -> None:
    nothing = Comparison("bare-page", "NCT05605665", unchecked=("phase (the document gives none)",))
    assert _comparison_lines(nothing) == [
        "bare-page ↔ NCT05605665: not compared: no fact is given by both the document and the "
        "record",
        "  not compared: phase (the document gives none)",
    ]
    assert _compare_summary(CompareReport([nothing])) == (
        "nothing could be compared: none of the 1 seed(s) has a confident registration that has "
        "been synced (see above)"
    )


def test_a_registry_that_fails_half_way_leaves_the_seeds_before_it_shown_and_linked(
    trialwatch: Trialwatch, registry: Emulator, eu_emulator: Any
) -> None:
    trialwatch("seeds", "load", str(SEEDS))
    accepted = "leflunomide-pss-bikker-2012"
    trialwatch("seeds", "link", accepted, "--accept", "NCT09900015", "--force")
    registry.fault("503", count=-1)  # from now on the registries refuse every request
    eu_emulator.fault("/", "503", count=1000)
    searched = "low-dose-il2-sle-case-humrich-2015"  # no confident link: needs a search
    result = trialwatch("seeds", "link", PAGE_SEED, accepted, searched)
    assert result.exit_code == 1
    # the two seeds decided without a search are printed before the failure …
    heads = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert heads == [f"{PAGE_SEED}:", f"{accepted}:"]
    assert "NCT05605665  1.00  confident" in result.stdout
    assert "NCT09900015  1.00  confident" in result.stdout
    # … and the search that could not be made is one line on stderr
    assert result.stderr.strip().splitlines()[-1].startswith("trialwatch: error: registry")


def test_a_document_name_cannot_write_keys_into_its_draft(
    trialwatch: Trialwatch, tmp_path: Path
) -> None:
    hostile = tmp_path / 'paper\nid = "injected"\n[x.txt'
    shutil.copy(DOCUMENTS / "003_low_dose_il2_sle.txt", hostile)
    into = tmp_path / "drafts"
    result = trialwatch("seeds", "import", str(hostile), "--into", str(into))
    assert result.exit_code == 0, result.stderr
    (draft,) = into.glob("*.toml")
    seed = tomllib.loads(draft.read_text())
    assert seed["id"] == "rapid-induction-clinical-remission-low-dose-interleukin"
    assert seed["document"] == str(hostile)  # the name, exactly, as a TOML string
    assert "x" not in seed
