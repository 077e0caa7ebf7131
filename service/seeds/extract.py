"""Raw document text → a draft seed: what a person would copy out of a paper or registry page.

Pure: text in, ``Draft`` out, no I/O. The readers are small pattern matchers, each for one
fact, tuned on the shapes real documents use:

* identifiers (every registry format of ``service.ids``); a number in a registration context
  ("Registration Number", "registered", "ClinicalTrials.gov") or on a registry page is the
  document's own registration (confidence 1.0), any other mention is only a lead (0.5);
* sample size: "13 primary SS patients", "We enrolled 11 patients", "Five subjects", "one
  patient", "Target Recruitment 30" — a phrase near an enrolment verb beats an earlier bare one;
* phase ("phase II pilot", "Phase 1", "phase I/II"), design words (randomized, open label,
  double-blind, placebo, parallel, crossover, pilot, case report, …) and the registry enums
  they imply, status;
* conditions and interventions from the synonym table and drug-name shapes (‑mab, ‑nib,
  ‑mide, …), the title first (a paper's title names what it studied; its introduction also
  names what it did not);
* arms, doses and outcome tables of registry pages (``registry_page``), affiliations, cities,
  countries and funders of papers, and citation facts (DOI, PMID, "Ann Rheum Dis. 2012").

A document with nothing extractable still gives a valid draft; ``Draft.missing`` (also written
into the seed's ``missing`` list) says what a person has to add.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from service.ids import find_registry_ids
from service.seeds.extract_design import design_of, status_of
from service.seeds.extract_sponsor import sponsor_of
from service.seeds.extract_treatment import conditions_of, interventions_of, paper_outcomes
from service.seeds.model import (
    Citation,
    Enrollment,
    RegistryLink,
    ReportedOutcome,
    Seed,
)
from service.seeds.registry_page import Page, read_page
from service.text import fold_text

__all__ = ["Draft", "extract"]


@dataclass(frozen=True)
class Draft:
    seed: Seed
    missing: tuple[str, ...]


def extract(text: str, *, name: str = "", source: str = "") -> Draft:
    """A draft seed from the text of one document; ``name`` (its file name) titles a draft
    whose text has no recognisable title; ``source`` (the path as given, default ``name``)
    is where the seed says its document is."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n"))
    page = read_page(text)
    title = _title(page.header if page else text.splitlines())
    kind, enrollment = _kind_and_enrollment(text, page)
    design = design_of(text, title, page, kind)
    seed = Seed(
        id=_seed_id(title or name),
        title=title or f"Untitled document {name}".strip(),
        kind=kind,
        status=status_of(page),
        document=source or name,
        citation=_citation(text),
        conditions=conditions_of(title, text, page),
        interventions=interventions_of(title, text, page),
        design=design,
        enrollment=enrollment,
        outcomes=tuple(map(_clean_outcome, page.outcomes())) if page else paper_outcomes(text),
        sponsor=sponsor_of(text, page),
        links=_links(text, page),
    )
    missing = _missing(seed)
    return Draft(seed.model_copy(update={"missing": missing}), missing)


# ---- title and id --------------------------------------------------------------------------------

_BOILERPLATE = re.compile(
    r"^(?:article text|download pdf|extended report|journal article|research support|add |"
    r"statistics from|request permissions|medpath|view full text|full text|abstract|"
    r"correspondence|original article|letter|concise report|brief report)",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*\d+\.\s")


def _title(lines: list[str]) -> str:
    for raw in lines[:40]:
        line = raw.strip()
        words = line.split()
        if len(words) < 5 or _BOILERPLATE.match(line) or _LIST_ITEM.match(raw):
            continue
        if line.isupper() or line.endswith(","):
            continue
        return line.rstrip(".")
    return ""


_SLUG_STOP = frozenset(
    (
        "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "its", "of",
        "on", "or", "that", "the", "their", "to", "was", "were", "with",
    )
)  # fmt: skip
_SLUG_WORDS = 7
_SLUG_LENGTH = 60  # seed ids may have 64 characters


def _seed_id(title: str) -> str:
    """A slug of the title's first words, cut between words, never inside one."""
    plain = unicodedata.normalize("NFKD", title)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()
    words = [w for w in re.findall(r"[a-z0-9]+", plain) if w not in _SLUG_STOP and w != "s"]
    slug = words[0][:_SLUG_LENGTH] if words else ""  # one word longer than an id: cut it
    for word in words[1:_SLUG_WORDS]:
        if len(slug) + 1 + len(word) > _SLUG_LENGTH:
            break
        slug = f"{slug}-{word}"
    return slug if len(slug) >= 3 else "draft-seed"


# ---- size and kind -------------------------------------------------------------------------------

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90, "hundred": 100,
}  # fmt: skip
_NUMBER = r"(\d{1,5}|" + "|".join(_NUMBER_WORDS) + ")"
_PEOPLE = (
    r"(?:patients?|subjects?|participants?|individuals?|volunteers?|cases|women|men|adults|"
    r"children)"
)
_SIZE = re.compile(
    rf"(?i)(?<![\w.,-]){_NUMBER}\s+(?:[A-Za-z][\w'’-]*\s+){{0,3}}?{_PEOPLE}\b(?![-\w])"
)
_ENROLMENT_CUE = re.compile(
    r"(?i)(?:enrol+(?:ed|ing)?|recruit(?:ed|ing)?|includ(?:ed|ing)|randomi[sz]ed|treated|"
    r"received)\s*$"
)
_WEAK_CUE = re.compile(r"(?i)\b(?:from|in|of|among)\s*$")
_ENROLMENT_AFTER = re.compile(
    r"(?i)^\s*(?:\([^)]*\)\s*)?(?:\w+\s+){0,3}?(?:were|was|had\s+been)\s+"
    r"(?:enrol+ed|recruited|included|randomi[sz]ed|treated)"
)
_REGISTRY_SIZE = re.compile(
    r"(?im)^(?:Target Recruitment|Target sample size|Enrollment(?: \((?:Estimated|Actual)\))?)"
    r"\s*:?\s*\n?\s*(\d{1,6})\b"
)


@dataclass(frozen=True)
class _Size:
    count: int
    phrase: str
    cue: int  # 2: next to an enrolment verb, 1: "from/in/of N patients", 0: none


def _kind_and_enrollment(text: str, page: Page | None) -> tuple[str, Enrollment]:
    if page is not None:
        registered = _REGISTRY_SIZE.search(text)
        if registered:
            actual = "actual" in registered.group(0).casefold()
            phrase = " ".join(registered.group(0).split())
            return "registry_page", Enrollment(
                count=int(registered.group(1)),
                type="ACTUAL" if actual else "ESTIMATED",
                phrase=phrase,
            )
        return "registry_page", Enrollment()
    size = _sample_size(text)
    case_report = re.search(r"(?i)\bcase report\b", text) is not None
    kind = "case_report" if case_report or (size is not None and size.count == 1) else "paper"
    if size is None:
        return kind, Enrollment()
    return kind, Enrollment(count=size.count, type="ACTUAL", phrase=size.phrase)


def _sample_size(text: str) -> _Size | None:
    sizes = [s for s in map(lambda m: _size(m, text), _SIZE.finditer(text)) if s is not None]
    # The best-cued phrase wins; among equals, the first (methods come before results).
    return max(sizes, key=lambda s: s.cue, default=None)


def _size(match: re.Match[str], text: str) -> _Size | None:
    word = match.group(1).casefold()
    count = _NUMBER_WORDS.get(word) if not word.isdigit() else int(word)
    if count is None or count > 100_000:
        return None
    before = text[max(0, match.start() - 30) : match.start()]
    after = text[match.end() : match.end() + 60]
    if _ENROLMENT_CUE.search(before) or _ENROLMENT_AFTER.match(after):
        cue = 2
    else:
        cue = 1 if _WEAK_CUE.search(before) else 0
    return _Size(count, " ".join(match.group(0).split()), cue)


def _clean_outcome(outcome: ReportedOutcome) -> ReportedOutcome:
    return outcome.model_copy(
        update={
            "measure": fold_text(outcome.measure),
            "time_frame": fold_text(outcome.time_frame),
            "description": fold_text(outcome.description),
        }
    )


# ---- citation and links --------------------------------------------------------------------------

_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>,;]+[^\s\"<>,;.)])")
_PMID = re.compile(r"(?i)\bPMID\s*:?\s*(\d{6,9})\b")
_JOURNAL_YEAR = re.compile(
    r"\b((?:[A-Z][a-z]{0,14}\.?\s){1,5}?[A-Z][a-z]{0,14})\.?\s+((?:19|20)\d{2})\s*"
    r"(?:[A-Z][a-z]{2}\s*)?(?:;|\s)\s*\d+\s*(?:\(\d+\))?\s*:\s*[A-Za-z]?\d+"
)


def _citation(text: str) -> Citation:
    doi = _DOI.search(text)
    pmid = _PMID.search(text)
    journal = _JOURNAL_YEAR.search(text)
    return Citation(
        doi=doi.group(1) if doi else "",
        pmid=pmid.group(1) if pmid else "",
        journal=journal.group(1).strip() if journal else "",
        year=int(journal.group(2)) if journal else None,
    )


# what introduces a document's own registration number, in any registry trialwatch knows
# (CTIS: "EU CT number 2023-505613-24-00", "EU CT No."; the WHO portal's "EUCTR…" / "CTIS…")
_REGISTRATION_CUE = re.compile(
    r"(?i)(?:regist\w*|trial\s+(?:number|id\w*)|identifier|clinicaltrials\.gov|eudract|isrctn|"
    r"nct\s+number|eu\s*ct\s*(?:no\b|number)|ctis|euctr)[^.\n]{0,40}$"
)


def _links(text: str, page: Page | None) -> tuple[RegistryLink, ...]:
    links: list[RegistryLink] = []
    for found in find_registry_ids(text):
        own = page is not None and found.study_id in page.text("registration")
        cued = own or _cued(found.study_id, text)
        links.append(
            RegistryLink(
                registry=found.registry,
                id=found.study_id,
                confidence=1.0 if cued else 0.5,
                source="document",
                note=(
                    "the document's registration number"
                    if cued
                    else "named in the document, not as its registration"
                ),
            )
        )
    return tuple(links)


def _cued(study_id: str, text: str) -> bool:
    position = text.find(study_id)
    if position < 0:
        position = text.casefold().find(study_id.casefold()[:6])
    return (
        position >= 0
        and _REGISTRATION_CUE.search(text[max(0, position - 80) : position]) is not None
    )


# ---- what is missing -----------------------------------------------------------------------------


def _missing(seed: Seed) -> tuple[str, ...]:
    checks: list[tuple[str, bool]] = [
        ("conditions", bool(seed.conditions)),
        ("interventions", bool(seed.interventions)),
        ("enrollment.count", seed.enrollment.count is not None),
        ("design.phases", bool(seed.design.phases)),
        ("design.words", bool(seed.design.words)),
        ("outcomes", bool(seed.outcomes)),
        ("links", bool(seed.links)),
    ]
    if seed.kind == "registry_page":
        checks += [("status", bool(seed.status)), ("sponsor.lead", bool(seed.sponsor.lead))]
    else:
        checks += [
            ("citation.year", seed.citation.year is not None),
            ("citation.journal", bool(seed.citation.journal)),
            ("citation.doi", bool(seed.citation.doi)),
            ("sponsor.affiliations", bool(seed.sponsor.affiliations)),
            ("sponsor.countries", bool(seed.sponsor.countries)),
        ]
    if not seed.title or seed.title.startswith("Untitled document"):
        checks.insert(0, ("title", False))
    return tuple(name for name, present in checks if not present)
