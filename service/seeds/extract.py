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
from service.seeds.model import (
    Citation,
    Design,
    Enrollment,
    RegistryLink,
    ReportedOutcome,
    Seed,
    SeedArm,
    SeedIntervention,
    Sponsor,
)
from service.seeds.places import country_of
from service.seeds.registry_page import Page, read_page
from service.seeds.synonyms import CONDITIONS, DRUGS, aliases, canonical, find_terms, fold
from service.text import fold_text

__all__ = ["Draft", "extract"]


@dataclass(frozen=True)
class Draft:
    seed: Seed
    missing: tuple[str, ...]


def extract(text: str, *, name: str = "") -> Draft:
    """A draft seed from the text of one document; ``name`` (its file name) titles a draft
    whose text has no recognisable title."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n"))
    page = read_page(text)
    title = _title(page.header if page else text.splitlines())
    kind, enrollment = _kind_and_enrollment(text, page)
    design = _design(text, title, page, kind)
    seed = Seed(
        id=_seed_id(title or name),
        title=title or f"Untitled document {name}".strip(),
        kind=kind,
        status=_status(page),
        document=name,
        citation=_citation(text),
        conditions=_conditions(title, text, page),
        interventions=_interventions(title, text, page),
        design=design,
        enrollment=enrollment,
        outcomes=tuple(map(_clean_outcome, page.outcomes())) if page else _paper_outcomes(text),
        sponsor=_sponsor(text, page),
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


_SLUG_STOP = frozenset(("a", "an", "and", "by", "for", "in", "of", "on", "the", "to", "with"))


def _seed_id(title: str) -> str:
    plain = unicodedata.normalize("NFKD", title)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()
    words = [w for w in re.findall(r"[a-z0-9]+", plain) if w not in _SLUG_STOP and w != "s"]
    slug = "-".join(words[:7])[:60].strip("-")
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


# ---- design --------------------------------------------------------------------------------------

_PHASE = re.compile(
    r"(?i)\b(early\s+)?phase\s*(IV|I{1,3}|[0-4])(?:\s*(?:/|-|–|and|to)\s*(IV|I{1,3}|[1-4]))?"
    r"(?:\s*[ab])?\b"
)
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4}
_NOT_APPLICABLE = re.compile(r"(?im)^(?:Phase\s*:?\s*)?(?:Not Applicable|N/A)\s*$")

# (pattern, word written into design.words, Design fields it implies)
_DESIGN_WORDS: tuple[tuple[re.Pattern[str], str, dict[str, object]], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), word, implied)
    for pattern, word, implied in (
        (r"\bnon-?randomi[sz]ed\b", "non-randomized", {"allocation": "NON_RANDOMIZED"}),
        (
            r"(?<!non-)(?<!non)\brandomi[sz]ed\b|\brandomly\s+(?:assigned|allocated|divided)",
            "randomized",
            {"allocation": "RANDOMIZED"},
        ),
        (
            r"\bopen[- ]label\b|\bunblinded\b|\bopen(?:\s+clinical)?\s+(?:trial|study)\b",
            "open label",
            {"masking": "NONE"},
        ),
        (r"\bdouble[- ](?:blind(?:ed)?|mask(?:ed)?)\b", "double-blind", {"masking": "DOUBLE"}),
        (r"\bsingle[- ](?:blind(?:ed)?|mask(?:ed)?)\b", "single-blind", {"masking": "SINGLE"}),
        (r"\btriple[- ]blind(?:ed)?\b", "triple-blind", {"masking": "TRIPLE"}),
        (r"\bplacebo\b", "placebo", {"placebo": True}),
        (
            r"\bparallel[- ](?:group|arm|design|assignment)",
            "parallel",
            {"model": "PARALLEL"},
        ),
        (r"\bcross-?over\b", "crossover", {"model": "CROSSOVER"}),
        (r"\bsingle[- ](?:arm|group)\b", "single arm", {"model": "SINGLE_GROUP"}),
        (r"\bpilot\b", "pilot", {"pilot": True}),
        (r"\bcase report\b", "case report", {}),
        (r"\bmulti-?cent(?:er|re)\b", "multicenter", {}),
        (r"\bprospective\b", "prospective", {}),
    )
)
_DURATION = re.compile(r"(?i)\b(?:for|after|over)\s+(\d{1,3}\s+(?:weeks?|months?|days?|years?))\b")


def _design(text: str, title: str, page: Page | None, kind: str) -> Design:
    scope = _design_scope(text, page)
    words: list[str] = []
    fields: dict[str, object] = {}
    for pattern, word, implied in _DESIGN_WORDS:
        if pattern.search(scope) or (
            word == "parallel" and page and page.first("design") == "PARALLEL"
        ):
            words.append(word)
            for key, value in implied.items():
                fields.setdefault(key, value)
    if kind == "case_report" and "case report" not in words:
        fields["model"] = "SINGLE_GROUP"
    if page is not None:
        model = page.first("design").upper().replace(" ", "_")
        if model in {"SINGLE_GROUP", "PARALLEL", "CROSSOVER", "FACTORIAL", "SEQUENTIAL"}:
            fields["model"] = model
    duration = _DURATION.search(scope)
    arms = tuple(page.arms()) if page else ()
    return Design(
        phases=_phases(title, text, page),
        words=tuple(words),
        duration=duration.group(1) if duration else "",
        arms=tuple(_clean_arm(arm) for arm in arms),
        **fields,  # type: ignore[arg-type]
    )


def _design_scope(text: str, page: Page | None) -> str:
    if page is None:
        return text
    # On a registry page the eligibility lists talk about other trials and past treatment.
    keep = ("header", "summary", "description", "design", "study_type", "arms")
    return "\n".join([*page.header, *(line for s in keep for line in page.sections.get(s, []))])


def _clean_outcome(outcome: ReportedOutcome) -> ReportedOutcome:
    return outcome.model_copy(
        update={
            "measure": fold_text(outcome.measure),
            "description": fold_text(outcome.description),
        }
    )


def _clean_arm(arm: SeedArm) -> SeedArm:
    return arm.model_copy(update={"description": fold_text(arm.description)})


def _phases(title: str, text: str, page: Page | None) -> tuple[str, ...]:
    sources = [title, "\n".join(page.header) + "\n" + page.text("phase")] if page else [title]
    sources.append(text)
    for source in sources:
        if page is not None and _NOT_APPLICABLE.search(source):
            return ("NA",)
        match = _PHASE.search(source)
        if match:
            return _phase_values(match)
    return ()


def _phase_values(match: re.Match[str]) -> tuple[str, ...]:
    if match.group(1):
        return ("EARLY_PHASE1",)
    numbers = [_phase_number(g) for g in (match.group(2), match.group(3)) if g]
    return tuple(f"PHASE{n}" for n in dict.fromkeys(n for n in numbers if 1 <= n <= 4))


def _phase_number(token: str) -> int:
    return int(token) if token.isdigit() else _ROMAN[token.casefold()]


_STATUS_WORDS = {
    "not yet recruiting": "NOT_YET_RECRUITING",
    "recruiting": "RECRUITING",
    "enrolling by invitation": "ENROLLING_BY_INVITATION",
    "active, not recruiting": "ACTIVE_NOT_RECRUITING",
    "active not recruiting": "ACTIVE_NOT_RECRUITING",
    "suspended": "SUSPENDED",
    "terminated": "TERMINATED",
    "completed": "COMPLETED",
    "withdrawn": "WITHDRAWN",
    "unknown status": "UNKNOWN",
    "unknown": "UNKNOWN",
}


def _status(page: Page | None) -> str:
    if page is None:
        return ""
    for line in [page.first("status"), *page.header]:
        key = line.strip().casefold().replace("_", " ")
        if key in _STATUS_WORDS:
            return _STATUS_WORDS[key]
    return ""


# ---- conditions and interventions ----------------------------------------------------------------

_DRUG_SHAPE = re.compile(
    r"\b[A-Za-z][a-z]{3,}(?:mab|tinib|nib|lidomide|flunomide|mide|limus|leukin|cept|mycin|"
    r"quine|trexate|olone|isone|prazole|cillin|statin)\b"
)


def _conditions(title: str, text: str, page: Page | None) -> tuple[str, ...]:
    if page is not None and page.sections.get("conditions"):
        names = [canonical(line) for line in page.sections["conditions"]]
        return tuple(dict.fromkeys(names))
    # A paper's title names the condition it studied; later ones there are often outcomes
    # ("…and potential risk of a systemic lupus flare").
    in_title = find_terms(title, CONDITIONS)
    if in_title:
        return (in_title[0][1],)
    return _most_frequent(find_terms(text, CONDITIONS))


def _interventions(title: str, text: str, page: Page | None) -> tuple[SeedIntervention, ...]:
    named: list[str] = []
    if page is not None:
        named = [i for arm in page.arms() for i in arm.interventions]
        named += page.sections.get("interventions", [])
    if not named:
        named = [name for _, name in _drugs(title)]
    if not named:
        named = list(_most_frequent(_drugs(text)))
    unique = list(dict.fromkeys(named))
    arms = page.arms() if page else []
    return tuple(_intervention(name, text, arms) for name in unique)


def _drugs(text: str) -> list[tuple[int, str]]:
    found = find_terms(text, DRUGS)
    seen = {start for start, _ in found}
    for match in _DRUG_SHAPE.finditer(text):
        if match.start() not in seen and not any(
            start <= match.start() < start + len(name) + 12 for start, name in found
        ):
            found.append((match.start(), canonical(match.group().lower())))
    return sorted(found)


def _most_frequent(found: list[tuple[int, str]]) -> tuple[str, ...]:
    if not found:
        return ()
    counts: dict[str, int] = {}
    for _, name in found:
        counts[name] = counts.get(name, 0) + 1
    best = max(counts.values())
    return (next(name for _, name in found if counts[name] == best),)


_DOSE = re.compile(
    r"(?i)\b((?:\d+(?:\.\d+)?|one|two|three|half a)\s*(?:million\s*)?"
    r"(?:IU|MIU|mg|g|µg|mcg|ml|units?)(?:/(?:day|kg|m2|d))?)"
    r"(?:[^.;]*?\b((?:once|twice|three times)(?:\s+(?:a|per)\s+(?:day|week))?|daily|"
    r"every other day|per day|a day|a week|weekly|every \w+ (?:days?|weeks?)|qd|bid|qod)\b)?"
)
_ROUTES = (
    ("subcutaneous", "subcutaneous"),
    ("orally", "oral"),
    ("oral", "oral"),
    ("intravenous", "intravenous"),
    ("topical", "topical"),
)


def _intervention(name: str, text: str, arms: list[SeedArm]) -> SeedIntervention:
    names = aliases(name)
    clauses = _clauses_about(names, text, arms)
    dose = next((d for d in map(_dose_of, clauses) if d), "")
    if not dose and re.search(r"(?i)\blow[- ]dose\b", name + " " + " ".join(clauses)):
        dose = "low dose"
    route = next((r for word, r in _ROUTES for c in clauses if word in c.casefold()), "")
    duration = next((m.group(1) for c in clauses if (m := _DURATION.search(c))), "")
    if not duration:
        weeks_of = re.search(
            rf"(?i)\b(\d{{1,3}}\s+(?:weeks?|months?))\s+of\s+{re.escape(fold_text(name))}", text
        )
        duration = weeks_of.group(1) if weeks_of else ""
    others = [alias for alias in names[1:] if fold(alias) != fold(name) and _mentioned(alias, text)]
    return SeedIntervention(
        name=name,
        other_names=tuple(dict.fromkeys(others)),
        dose=dose,
        route=route,
        duration=duration,
    )


def _mentioned(alias: str, text: str) -> bool:
    return bool(find_terms(text, {alias: ()}))


def _clauses_about(names: tuple[str, ...], text: str, arms: list[SeedArm]) -> list[str]:
    sources = [arm.description for arm in arms] if arms else re.split(r"(?<=[.;])\s+", text)
    clauses: list[str] = []
    for source in sources:
        for clause in re.split(r"(?i);|\band\b(?=\s+[a-z-]+\s+\d)", source):
            if any(find_terms(clause, {n: ()}) for n in names):
                clauses.append(clause.strip())
    return clauses


def _dose_of(clause: str) -> str:
    match = _DOSE.search(clause)
    if match is None:
        return ""
    amount = " ".join(match.group(1).split())
    amount = re.sub(r"(?i)(\d)(ml|mg|iu|g)\b", r"\1 \2", amount)
    return f"{amount} {match.group(2)}".strip() if match.group(2) else amount


# ---- outcomes of papers --------------------------------------------------------------------------

_PRIMARY = re.compile(
    r"(?i)\bprimary\s+(?:end\s?-?points?|outcomes?(?:\s+measures?)?)\s+(?:was|were|is|are)\s+"
    r"(?:the\s+)?([^.;]{4,200})"
)
_SECONDARY = re.compile(
    r"(?i)\bsecondary\s+(?:end\s?-?points?|outcomes?(?:\s+measures?)?)\s+(?:was|were|included|"
    r"include|are|is)\s+(?:the\s+)?([^.]{4,300})"
)


def _paper_outcomes(text: str) -> tuple[ReportedOutcome, ...]:
    found: list[ReportedOutcome] = []
    primary = _PRIMARY.search(text)
    if primary:
        found.append(ReportedOutcome(type="primary", measure=primary.group(1).strip()))
    secondary = _SECONDARY.search(text)
    if secondary:
        for part in re.split(r",\s*(?:and\s+)?|\s+and\s+", secondary.group(1)):
            if len(part.strip()) >= 3:
                found.append(ReportedOutcome(type="secondary", measure=part.strip()))
    return tuple(found)


# ---- sponsor, places, funders --------------------------------------------------------------------

_INSTITUTION = re.compile(
    r"(?i)university|universit|hospital|college|institut|cent(?:er|re)|\bUMC\b|charit|clinic|"
    r"academy|school|medicine|foundation"
)
_SUPERSCRIPT_LEAD = re.compile(r"^\s*(?:\d{1,2}\.\s*)?\d{0,2}\s*")
_FUNDING = re.compile(
    r"(?i)\b(?:financially\s+)?(?:supported|funded)\s+by\s+(?:(?:research\s+)?grants?\s+from\s+|"
    r"an?\s+(?:unrestricted\s+)?grant\s+from\s+)?(?:the\s+)?(.+?)(?:\.(?:\s|$)|$)",
    re.MULTILINE,
)


def _sponsor(text: str, page: Page | None) -> Sponsor:
    if page is not None:
        cities, countries = _places(page.sections.get("locations", []))
        return Sponsor(lead=page.first("sponsor"), cities=cities, countries=countries)
    affiliations: list[str] = []
    cities: list[str] = []
    countries: list[str] = []
    for line in text.splitlines()[:80]:
        found = _affiliation(line)
        if found:
            affiliations.append(found[0])
            cities.append(found[1])
            countries.append(found[2])
    return Sponsor(
        funders=_funders(text),
        affiliations=tuple(dict.fromkeys(a for a in affiliations if a)),
        cities=tuple(dict.fromkeys(c for c in cities if c)),
        countries=tuple(dict.fromkeys(countries)),
    )


def _affiliation(line: str) -> tuple[str, str, str] | None:
    body = _SUPERSCRIPT_LEAD.sub("", line).strip()
    if body.casefold().startswith(("correspondence", "reprint")):
        return None
    parts = [p.strip() for p in re.split(r"[;,]", body) if p.strip()]
    if len(parts) < 3:
        return None
    country = country_of(parts[-1])
    if country is None:
        return None
    institution = next(
        (
            p
            for p in parts[:-1]
            if _INSTITUTION.search(p) and not p.casefold().startswith(("department", "division"))
        ),
        "",
    )
    return institution, parts[-2], country


def _places(lines: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    cities: list[str] = []
    countries: list[str] = []
    for line in lines:
        parts = [p.strip() for p in line.split(",") if p.strip()]
        country = country_of(parts[-1]) if parts else None
        if country is None:
            continue
        countries.append(country)
        if len(parts) >= 2:
            cities.append(parts[0])
    return tuple(dict.fromkeys(cities)), tuple(dict.fromkeys(countries))


# PubMed-style publication types name a funder without a sentence about it.
_NIH_SUPPORT = re.compile(r"(?im)^RESEARCH SUPPORT, N\.I\.H\.")


def _funders(text: str) -> tuple[str, ...]:
    match = _FUNDING.search(text)
    if match is None:
        return ("National Institutes of Health",) if _NIH_SUPPORT.search(text) else ()
    # Grant numbers sit in parentheses between funder names: split there.
    pieces = re.split(r"\([^()]*\)", match.group(1))
    funders = []
    for piece in pieces:
        name = re.sub(r"^[\s,;]*(?:and\s+)?(?:the\s+)?", "", piece).strip(" ,;")
        if len(name) >= 4:
            funders.append(name)
    return tuple(dict.fromkeys(funders))


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


_REGISTRATION_CUE = re.compile(
    r"(?i)(?:regist\w*|trial\s+(?:number|id\w*)|identifier|clinicaltrials\.gov|eudract|isrctn|"
    r"nct\s+number)[^.\n]{0,40}$"
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
