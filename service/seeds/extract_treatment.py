"""What a document treated and measured: conditions, interventions with doses, and the
outcomes a paper calls primary or secondary.

Pure; part of ``service.seeds.extract``. Names come from the synonym table and from drug-name
shapes (-mab, -nib, -mide, …); the title comes first, because a paper's title names what it
studied while its introduction also names what it did not.
"""

from __future__ import annotations

import re

from service.seeds.extract_design import DURATION
from service.seeds.model import ReportedOutcome, SeedArm, SeedIntervention
from service.seeds.registry_page import Page
from service.seeds.synonyms import (
    CONDITIONS,
    DRUGS,
    aliases,
    canonical,
    find_terms,
    fold,
    word_set,
)
from service.text import fold_text

__all__ = ["conditions_of", "interventions_of", "paper_outcomes"]

_DRUG_SHAPE = re.compile(
    r"\b[A-Za-z][a-z]{3,}(?:mab|tinib|nib|lidomide|flunomide|mide|limus|leukin|cept|mycin|"
    r"quine|trexate|olone|isone|prazole|cillin|statin)\b"
)


def conditions_of(title: str, text: str, page: Page | None) -> tuple[str, ...]:
    """Canonical condition names: a page's Conditions section, else the title's first."""
    if page is not None and page.sections.get("conditions"):
        names = [canonical(line) for line in page.sections["conditions"]]
        return tuple(dict.fromkeys(names))
    # A paper's title names the condition it studied; later ones there are often outcomes
    # ("…and potential risk of a systemic lupus flare").
    # The first the title names wins; the table's name where it knows the condition.
    known = find_terms(title, CONDITIONS)[:1]
    shaped = _title_condition(title)
    if shaped and (not known or shaped[0][1] <= known[0][0]):
        return (shaped[0][2],)
    if known:
        return (known[0][1],)
    return _most_frequent(find_terms(text, CONDITIONS))


# The last word of a condition's name: a disease word, or a suffix that names one (-itis,
# -osis, -oma, -emia, -pathy); the synonym table knows only a few conditions, titles name any.
_CONDITION_HEAD = re.compile(
    r"(?i)^(?:syndrome|disease|disorders?|cancers?|carcinoma|lymphoma|leuka?emia|tumou?rs?|"
    r"diabetes|asthma|lupus|erythematosus|sclerosis|fibrosis|psoriasis|obesity|hypertension|"
    r"insufficiency|failure|infections?|injur(?:y|ies)|dysphagia|depression|schizophrenia|"
    r"[a-z]+itis|[a-z]{3,}osis|[a-z]{3,}oma|[a-z]+a?emia|[a-z]+pathy)$"
)
# Words that end a condition's name on its left: who has it, what is done, how severe it is.
_NOT_CONDITION = word_set(
    "a an and as at by for from in into of on or the to with without versus vs among "
    "patients patient subjects individuals people adults adult children women men participants "
    "volunteers cases study trial treatment therapy effect effects efficacy safety refractory "
    "treatment-refractory active severe moderate mild moderate-to-severe newly diagnosed "
    "established early advanced recurrent"
)
_GENERIC_HEADS = word_set(
    "syndrome disease disorder cancer carcinoma tumor tumour infection failure injury "
    "injurie insufficiency"
)
# words the disease shapes take in that are not diseases
_NOT_HEAD = word_set("diagnosis prognosis academia empathy sympathy diploma aroma stroma")
_TITLE_WORD = re.compile(r"[\w'’-]+|[^\w\s]")


def _title_condition(title: str) -> list[tuple[int, int, str]]:
    """The first condition a title names by shape, with where it starts and ends ("… With
    Atopic Dermatitis (AD)" → "atopic dermatitis"): a disease word and the words before it
    that qualify it, up to a word for people, treatment or severity, or punctuation."""
    matches = list(_TITLE_WORD.finditer(title))
    words = [m.group() for m in matches]
    for end, word in enumerate(words):
        if not _CONDITION_HEAD.match(word) or word.casefold() in _NOT_HEAD:
            continue
        start = end
        while start > 0 and end - start < 4:
            before = words[start - 1]
            if not re.match(r"[\w'’-]", before) or before.casefold() in _NOT_CONDITION:
                break
            start -= 1
        if start == end and word.casefold().rstrip("s") in _GENERIC_HEADS:
            continue  # "a disease", "the syndrome": which one, the title does not say
        name = _as_condition(words[start : end + 1])
        return [(matches[start].start(), matches[end].end(), name)]
    return []


def _as_condition(words: list[str]) -> str:
    """As the title writes it ("Crohn's disease", "IgA nephropathy"), but in lower case when
    every word is capitalised: a title in Title Case says nothing of names."""
    if all(w[:1].isupper() for w in words):
        return " ".join(w.casefold() for w in words)
    return " ".join(words)


def interventions_of(title: str, text: str, page: Page | None) -> tuple[SeedIntervention, ...]:
    """The interventions studied, each with its mentioned synonyms, dose, route and duration."""
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
    duration = next((m.group(1) for c in clauses if (m := DURATION.search(c))), "")
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


def paper_outcomes(text: str) -> tuple[ReportedOutcome, ...]:
    """Outcomes a paper states as its primary or secondary end points."""
    found: list[ReportedOutcome] = []
    # one line each: a document copied from a PDF breaks its lines mid-sentence
    primary = _PRIMARY.search(text)
    if primary:
        found.append(ReportedOutcome(type="primary", measure=fold_text(primary.group(1))))
    secondary = _SECONDARY.search(text)
    if secondary:
        for part in re.split(r",\s*(?:and\s+)?|\s+and\s+", secondary.group(1)):
            if len(fold_text(part)) >= 3:
                found.append(ReportedOutcome(type="secondary", measure=fold_text(part)))
    return tuple(found)
