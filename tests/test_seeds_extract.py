"""`seeds import`'s extraction: raw document text → a draft seed, on the five seed documents
and on the phrase shapes the issue names."""

from __future__ import annotations

import json
import re
import textwrap
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.seeds.extract import extract
from service.seeds.files import parse_seed, seed_toml
from service.seeds.model import ReportedOutcome, Seed

DOCUMENTS = Path(__file__).parent / "data" / "seeds"


def draft_of(name: str):  # type: ignore[no-untyped-def]
    return extract((DOCUMENTS / name).read_text(encoding="utf-8"), name=name)


# ---- the five seed documents ---------------------------------------------------------------------


def test_the_leflunomide_paper_gives_its_size_phase_pilot_and_place() -> None:
    seed = draft_of("000_leflunomide_pss.txt").seed
    assert seed.kind == "paper"
    assert seed.title.startswith("Clinical efficacy of leflunomide in primary Sjögren's syndrome")
    assert (seed.enrollment.count, seed.enrollment.type) == (13, "ACTUAL")
    assert seed.enrollment.phrase == "13 primary SS patients"
    assert seed.design.phases == ("PHASE2",)
    assert seed.design.pilot and "pilot" in seed.design.words
    assert seed.conditions == ("Sjögren's syndrome",)
    assert [(i.name, i.duration) for i in seed.interventions] == [("leflunomide", "24 weeks")]
    assert seed.sponsor.affiliations == ("UMC Utrecht",)
    assert (seed.sponsor.cities, seed.sponsor.countries) == (("Utrecht",), ("Netherlands",))
    assert seed.sponsor.funders == ("Dutch Arthritis Association",)
    assert seed.links == ()


def test_the_baricitinib_letter_gives_we_enrolled_11_patients() -> None:
    seed = draft_of("001_baricitinib_ss.txt").seed
    assert seed.title == "Pilot study of baricitinib for active Sjogren’s syndrome"
    assert (seed.enrollment.count, seed.enrollment.phrase) == (11, "11 patients")
    assert seed.conditions == ("Sjögren's syndrome",)
    assert [i.name for i in seed.interventions] == ["baricitinib"]
    assert seed.design.pilot and seed.design.phases == ()
    assert "Peking Union Medical College Hospital (PUMCH)" in seed.sponsor.affiliations
    assert seed.sponsor.countries == ("China",)
    # "…, Wuhu, Anhui, China": Anhui is the province, Wuhu the city
    assert seed.sponsor.cities == ("Beijing", "Wuhu")


def test_the_lenalidomide_abstract_gives_five_subjects_open_label() -> None:
    seed = draft_of("002_lenalidomide_cle.txt").seed
    assert (seed.enrollment.count, seed.enrollment.phrase) == (5, "Five subjects")
    assert seed.design.masking == "NONE" and "open label" in seed.design.words
    # the title also mentions a systemic lupus flare: an outcome, not the condition studied
    assert seed.conditions == ("cutaneous lupus erythematosus",)
    # thalidomide is named only as the drug lenalidomide derives from
    assert [i.name for i in seed.interventions] == ["lenalidomide"]
    assert seed.sponsor.funders == ("National Institutes of Health",)


def test_the_il2_letter_is_a_case_report_of_one_patient() -> None:
    seed = draft_of("003_low_dose_il2_sle.txt").seed
    assert seed.kind == "case_report"
    assert (seed.enrollment.count, seed.enrollment.phrase) == (1, "one patient")
    assert seed.conditions == ("systemic lupus erythematosus",)
    (il2,) = seed.interventions
    assert (il2.name, il2.dose) == ("interleukin-2", "low dose")
    assert "aldesleukin" in il2.other_names
    assert seed.sponsor.countries == ("Germany",) and seed.sponsor.cities == ("Berlin",)
    assert "parallel" not in seed.design.words  # "in parallel with" is not a design


def test_the_registry_page_gives_its_id_status_design_arms_doses_and_outcomes() -> None:
    draft = draft_of("004_nct05605665_page.txt")
    seed = draft.seed
    assert seed.kind == "registry_page" and seed.status == "COMPLETED"
    assert [(x.registry, x.id, x.confidence, x.source) for x in seed.links] == [
        ("ctgov", "NCT05605665", 1.0, "document")
    ]
    assert (seed.enrollment.count, seed.enrollment.type) == (30, "ESTIMATED")
    assert seed.enrollment.phrase == "Target Recruitment 30"
    assert seed.design.phases == ("PHASE1",)
    assert (seed.design.allocation, seed.design.masking, seed.design.model) == (
        "RANDOMIZED",
        "NONE",
        "PARALLEL",
    )
    assert seed.design.words == ("randomized", "open label", "parallel")
    assert seed.conditions == ("Sjögren's syndrome",)
    assert seed.sponsor.lead == "Peking University People's Hospital"
    assert {a.label: a.interventions for a in seed.design.arms} == {
        "Low-dose interleukin-2 and rapamycin": ("rapamycin", "low-dose interleukin-2"),
        "Low-dose interleukin-2": ("low-dose interleukin-2",),
        "Rapamycin": ("rapamycin",),
    }
    doses = {i.name: (i.dose, i.route, i.duration) for i in seed.interventions}
    assert doses == {
        "rapamycin": ("0.5 ml once per day", "", "12 weeks"),
        "low-dose interleukin-2": ("One million IU twice a week", "subcutaneous", "12 weeks"),
    }
    assert seed.outcomes[0] == ReportedOutcome(
        type="primary",
        measure="Proportion of Treg cells in peripheral blood",
        time_frame="week 12",
        description=(
            "Proportion of Treg cells in peripheral blood will be detected by flowcytometry"
        ),
    )
    assert [(o.type, o.measure, o.time_frame) for o in seed.outcomes[1:]] == [
        ("secondary", "Patient's Global Disease Activity VAS, (potential score 0 - 80)", "week 12"),
        (
            "secondary",
            "Rate of Participants with adverse effects associated with experimental drugs",
            "week 12",
        ),
        ("secondary", "ESSDAI [potential score 0 - 123]", "week 12"),
        (
            "secondary",
            "Physician's Global Disease Activity VAS, (potential score 0 - 10)",
            "week 12",
        ),
    ]
    assert draft.missing == ()


@pytest.mark.parametrize("path", sorted(DOCUMENTS.glob("*.txt")), ids=lambda p: p.stem)
def test_every_draft_is_a_valid_seed_file(path: Path) -> None:
    draft = extract(path.read_text(encoding="utf-8"), name=path.name)
    assert parse_seed(seed_toml(draft.seed), path.name) == draft.seed
    assert draft.seed.missing == draft.missing


@pytest.mark.parametrize("path", sorted(DOCUMENTS.glob("00[0-3]_*.txt")), ids=lambda p: p.stem)
def test_a_paper_without_a_citation_line_lists_the_citation_as_missing(path: Path) -> None:
    missing = draft_of(path.name).missing
    assert {"citation.year", "citation.journal", "citation.doi", "links"} <= set(missing)


# ---- ids, places and silence ---------------------------------------------------------------------


def slug_words(title: str) -> set[str]:
    letters = unicodedata.normalize("NFKD", title).casefold()
    plain = "".join(ch for ch in letters if not unicodedata.combining(ch))
    return set(re.findall(r"[a-z0-9]+", plain))


@pytest.mark.parametrize("path", sorted(DOCUMENTS.glob("*.txt")), ids=lambda p: p.stem)
def test_a_draft_id_is_cut_between_words_never_inside_one(path: Path) -> None:
    seed = draft_of(path.name).seed
    assert len(seed.id) <= 60
    assert set(seed.id.split("-")) <= slug_words(seed.title), seed.id


def test_the_long_titles_give_ids_of_whole_words() -> None:
    # "… cutaneous lupus erythematosus" used to end in "…-lupus-er"; "… syndrome is associated"
    # in "…-syndrome-is"
    ids = {
        name: draft_of(name).seed.id
        for name in ("000_leflunomide_pss.txt", "002_lenalidomide_cle.txt")
    }
    assert ids == {
        "000_leflunomide_pss.txt": "clinical-efficacy-leflunomide-primary-sjogren-syndrome",
        "002_lenalidomide_cle.txt": "lenalidomide-therapy-treatment-refractory-cutaneous-lupus",
    }
    one_word = extract("Supercalifragilistic" * 5 + " in a very long title indeed", name="x").seed
    assert len(one_word.id) == 60  # a single word longer than an id is the one cut


def variant(name: str, old: str, new: str) -> str:
    text = (DOCUMENTS / name).read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("old", "new", "cities", "countries"),
    [
        ("Wuhu, Anhui, China", "Hefei, Anhui Province, China", ("Beijing", "Hefei"), ("China",)),
        ("Wuhu, Anhui, China", "Anhui, China", ("Beijing",), ("China",)),
        (
            "Wuhu, Anhui, China",
            "University of Pennsylvania, Philadelphia, PA 19104, USA",
            ("Beijing", "Philadelphia"),
            ("China", "United States"),
        ),
        (
            "Wuhu, Anhui, China",
            "Toronto, Ontario, Canada",
            ("Beijing", "Toronto"),
            ("China", "Canada"),
        ),
        (
            "Wuhu, Anhui, China",
            "Utrecht 3584 CX, The Netherlands",
            ("Beijing", "Utrecht"),
            ("China", "Netherlands"),
        ),
    ],
)
def test_a_province_or_state_is_never_taken_for_the_city(
    old: str, new: str, cities: tuple[str, ...], countries: tuple[str, ...]
) -> None:
    text = variant("001_baricitinib_ss.txt", old, new)
    sponsor = extract(text).seed.sponsor
    assert (sponsor.cities, sponsor.countries) == (cities, countries)


def test_a_registry_page_site_named_by_its_province_gives_no_city() -> None:
    text = variant("004_nct05605665_page.txt", "Beijing, Beijing, China", "Anhui, China")
    sponsor = extract(text).seed.sponsor
    assert (sponsor.cities, sponsor.countries) == ((), ("China",))


@pytest.mark.parametrize(
    "name", ["002_lenalidomide_cle.txt", "003_low_dose_il2_sle.txt", "004_nct05605665_page.txt"]
)
def test_a_document_silent_on_pilot_leaves_pilot_unknown(name: str) -> None:
    draft = draft_of(name)
    assert draft.seed.design.pilot is None
    assert "pilot" not in seed_toml(draft.seed)  # the draft claims nothing either way


def test_removing_the_word_pilot_from_a_pilot_leaves_it_unknown_not_false() -> None:
    text = variant("000_leflunomide_pss.txt", "phase II pilot study", "phase II study")
    design = extract(text).seed.design
    assert design.pilot is None and design.phases == ("PHASE2",)


@pytest.mark.parametrize(
    ("original", "earlier"),
    [
        ("In previous studies, we have", "In a previous pilot study, we have"),
        ("two independent clinical studies showed", "two independent pilot studies showed"),
        ("In previous studies, we have", "Following an earlier pilot (Humrich et al.), we have"),
    ],
)
def test_a_document_that_mentions_an_earlier_pilot_is_not_a_pilot(
    original: str, earlier: str
) -> None:
    """The IL-2 case report, made to cite an earlier pilot: the report is no pilot itself."""
    text = variant("003_low_dose_il2_sle.txt", original, earlier)
    assert earlier in text
    design = extract(text).seed.design
    assert design.pilot is None and "pilot" not in design.words


def test_this_pilot_is_a_pilot_even_beside_an_earlier_one() -> None:
    text = variant(
        "003_low_dose_il2_sle.txt",
        "In previous studies, we have",
        "In this pilot study, after a previous pilot study, we have",
    )
    assert extract(text).seed.design.pilot is True


REFERENCE = Path("/work/shared/reference/ctgov")


@pytest.mark.parametrize("study_id", ["NCT02210780", "NCT03418623", "NCT00763412"])
def test_the_condition_a_title_names_is_found_though_no_synonym_table_knows_it(
    study_id: str,
) -> None:
    """A paper-like text from a real record: its title, then its summary. The condition is
    the one the title names (atopic dermatitis, alcohol use disorder, cystic fibrosis)."""
    record = json.loads((REFERENCE / f"{study_id}.json").read_text())
    protocol = record["protocolSection"]
    title = protocol["identificationModule"]["briefTitle"]
    text = f"{title}\n\n{protocol['descriptionModule']['briefSummary']}"
    (condition,) = extract(text).seed.conditions
    assert condition.casefold() in title.casefold()
    registered = [c.casefold() for c in protocol["conditionsModule"]["conditions"]]
    assert any(condition.casefold() in c for c in registered), (condition, registered)


def test_a_title_in_sentence_case_keeps_its_names() -> None:
    text = variant(
        "002_lenalidomide_cle.txt",
        "treatment-refractory cutaneous lupus erythematosus",
        "treatment-refractory Behçet's disease",
    )
    assert extract(text).seed.conditions == ("Behçet's disease",)


def test_outcome_measures_of_a_hard_wrapped_document_are_one_line_each() -> None:
    """A paper copied from a PDF breaks its lines anywhere, inside an endpoint too."""
    text = textwrap.fill(
        (DOCUMENTS / "001_baricitinib_ss.txt").read_text(encoding="utf-8")
        + " The primary endpoint was the change in ESSDAI at week 12. Secondary endpoints "
        "included ESSPRI, unstimulated salivary flow rate and serum IgG.",
        width=60,
    )
    outcomes = [(o.type, o.measure) for o in extract(text).seed.outcomes]
    assert outcomes == [
        ("primary", "change in ESSDAI at week 12"),
        ("secondary", "ESSPRI"),
        ("secondary", "unstimulated salivary flow rate"),
        ("secondary", "serum IgG"),
    ]


def test_the_registry_pages_outcomes_are_one_line_each() -> None:
    seed = draft_of("004_nct05605665_page.txt").seed
    assert seed.outcomes
    for outcome in seed.outcomes:
        for value in (outcome.measure, outcome.time_frame, outcome.description):
            assert "\n" not in value and value == value.strip()


# ---- nothing to extract --------------------------------------------------------------------------


def test_a_document_with_nothing_extractable_is_still_a_valid_draft_listing_what_is_missing() -> (
    None
):
    draft = extract("Lorem ipsum.\n\nDolor sit amet.", name="notes.txt")
    assert draft.seed.title == "Untitled document notes.txt"
    assert draft.seed.id == "notes-txt"  # named after the file
    assert draft.missing[:4] == ("title", "conditions", "interventions", "enrollment.count")
    assert parse_seed(seed_toml(draft.seed), "x.toml") == draft.seed


def test_an_empty_document_is_a_valid_draft() -> None:
    draft = extract("", name="")
    assert "title" in draft.missing
    assert parse_seed(seed_toml(draft.seed), "x.toml") == draft.seed


# ---- phrase shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("Methods: 13 primary SS patients were studied.", 13),
        ("We enrolled 11 patients (table 1) fulfilling the criteria.", 11),
        ("Five subjects were treated with lenalidomide.", 5),
        ("Here we report the response in one patient with SLE.", 1),
        ("Results in 4 patients were mixed, but 40 participants were randomized in total.", 40),
        ("Twenty-four weeks later 2016 American College criteria applied to 7 women.", 7),
    ],
)
def test_sample_size_phrases(text: str, count: int) -> None:
    assert extract(text).seed.enrollment.count == count


@pytest.mark.parametrize(
    ("text", "phases"),
    [
        ("A phase II pilot study.", ("PHASE2",)),
        ("Phase 1", ("PHASE1",)),
        ("an open phase I/II trial", ("PHASE1", "PHASE2")),
        ("a phase 2a study", ("PHASE2",)),
        ("an early phase 1 study", ("EARLY_PHASE1",)),
        ("the phase in which patients", ()),
    ],
)
def test_phase_phrases(text: str, phases: tuple[str, ...]) -> None:
    assert extract(text).seed.design.phases == phases


def test_design_words_imply_the_registry_enums() -> None:
    text = "A randomised, double-blind, placebo-controlled, cross-over pilot study."
    design = extract(text).seed.design
    assert design.words == ("randomized", "double-blind", "placebo", "crossover", "pilot")
    assert (design.allocation, design.masking, design.model, design.placebo, design.pilot) == (
        "RANDOMIZED",
        "DOUBLE",
        "CROSSOVER",
        True,
        True,
    )


def test_non_randomised_is_not_randomised() -> None:
    design = extract("A non-randomized, single-arm, open-label study.").seed.design
    assert design.words == ("non-randomized", "open label", "single arm")
    assert (design.allocation, design.masking, design.model) == (
        "NON_RANDOMIZED",
        "NONE",
        "SINGLE_GROUP",
    )


def test_a_registration_stated_as_such_is_confident_and_a_mere_mention_is_not() -> None:
    text = "Trial registration: ISRCTN12345678.\nA similar trial (NCT00000102) used another drug."
    links = {x.id: (x.confidence, x.source) for x in extract(text).seed.links}
    assert links == {"ISRCTN12345678": (1.0, "document"), "NCT00000102": (0.5, "document")}


def test_a_journal_citation_line_gives_journal_year_and_doi() -> None:
    text = "Ann Rheum Dis. 2012;71(12):1934-41. doi: 10.1136/annrheumdis-2011-201075. PMID 22890966"
    citation = extract(text).seed.citation
    assert (citation.journal, citation.year) == ("Ann Rheum Dis", 2012)
    assert (citation.doi, citation.pmid) == ("10.1136/annrheumdis-2011-201075", "22890966")


def test_a_stated_primary_endpoint_becomes_a_primary_outcome() -> None:
    text = (
        "The primary endpoint was the change in ESSDAI at week 24. Secondary endpoints "
        "included ESSPRI, salivary flow and IgG."
    )
    outcomes = [(o.type, o.measure) for o in extract(text).seed.outcomes]
    assert outcomes == [
        ("primary", "change in ESSDAI at week 24"),
        ("secondary", "ESSPRI"),
        ("secondary", "salivary flow"),
        ("secondary", "IgG"),
    ]


# ---- any text ------------------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        "Target Recruitment\n",
        "Primary Outcome Measures\n",
        "Arm && Interventions\n",
        "GroupInterventionDescription\n",
        "Conditions\n",
        "Registration Number\n",
        "NCT05605665\n",
        "12 patients were enrolled. ",
        "phase II/III ",
        "randomised, double-blind ",
        "1 Department of Medicine, Example University, Utrecht, The Netherlands\n",
        "supported by the (",
        "**\n",
        "week 12\n",
        "Drugweek 12\n",
        "\n\n",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=40)), max_size=25).map("".join))
def test_any_text_gives_a_valid_draft(text: str) -> None:
    draft = extract(text, name="fuzz.txt")
    assert parse_seed(seed_toml(draft.seed), "x.toml") == Seed.model_validate(
        draft.seed.model_dump()
    )
