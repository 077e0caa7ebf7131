"""Find the registration of a seed study: search the registry, then rank what comes back.

A seed whose document names its identifier needs no search: that link is confident as it
stands. Otherwise ``queries`` builds several ClinicalTrials.gov searches, from specific to
broad, so that a record missed by one spelling is caught by another:

1. condition + drug + sponsor (each affiliation, by its distinctive words)
2. condition + drug + city or country
3. condition + drug
4. drug alone (catches a condition the registry spells differently)
5. the title's distinctive words anywhere in the record (``query.term``)

Every condition and drug is searched with its synonyms (``service.seeds.synonyms``:
Sjögren / Sjogren / sicca, generic and brand names), OR-ed. Hits are pooled, normalised and
ranked by ``service.seeds.evidence``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from service.errors import RecordInvalid
from service.registry.ctgov_fields import search_hit_texts
from service.registry.ctgov_normalise import normalise
from service.seeds.evidence import Candidate, Ranked, drug_names, rank
from service.seeds.model import Seed
from service.seeds.synonyms import aliases, fold, word_set

__all__ = ["Searcher", "candidate_from_study", "find_candidates", "queries"]

log = logging.getLogger(__name__)

PER_QUERY = 50  # hits kept from each search: the right record is near the top or absent
_MIN_ALIAS = 4  # shorter names ("RA", "HCQ") match too much in a free-text search


class Searcher(Protocol):
    """What linking needs of a registry client (``CtgovClient`` has it)."""

    def search(self, params: dict[str, str], *, limit: int = 100) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Found:
    """The ranked candidates of one seed and the searches that found them."""

    ranked: list[Ranked]
    searches: int


def find_candidates(seed: Seed, client: Searcher) -> Found:
    """Search the registry for ``seed`` and rank every record found, best first."""
    pool: dict[str, Candidate] = {}
    shapes = queries(seed)
    for params in shapes:
        for study in client.search(params, limit=PER_QUERY):
            candidate = candidate_from_study(study)
            if candidate is not None:
                pool.setdefault(candidate.study_id, candidate)
    return Found(rank(seed, list(pool.values())), len(shapes))


def queries(seed: Seed) -> list[dict[str, str]]:
    """The searches for ``seed``, specific first, without repeats."""
    condition = _any_of(aliases(seed.conditions[0])) if seed.conditions else ""
    drugs = " AND ".join(f"({_any_of(names)})" for names in drug_names(seed) if names)
    any_drug = " OR ".join(_any_of(names) for names in drug_names(seed) if names)
    both = {"query.cond": condition, "query.intr": drugs} if condition and drugs else {}
    shapes: list[dict[str, str]] = []
    if both:
        for org in _organisations(seed)[:2]:
            shapes.append({**both, "query.spons": org})
        for place in [*seed.sponsor.cities[:1], *seed.sponsor.countries[:1]]:
            shapes.append({**both, "query.locn": place})
        shapes.append(both)
    if any_drug:
        shapes.append({"query.intr": any_drug})
    elif condition:
        shapes.append({"query.cond": condition})
    words = _title_words(seed.title)
    if words:
        shapes.append({"query.term": words})
    return list({tuple(sorted(s.items())): s for s in shapes if all(s.values())}.values())


def _any_of(names: Sequence[str]) -> str:
    usable = [n for n in dict.fromkeys(names) if len(n) >= _MIN_ALIAS] or list(names)
    return " OR ".join(_quoted(n) for n in usable)


def _quoted(name: str) -> str:
    clean = name.replace('"', " ").strip()
    return f'"{clean}"' if re.search(r"[\s\-/']", clean) else clean


def _organisations(seed: Seed) -> list[str]:
    names = [seed.sponsor.lead, *seed.sponsor.affiliations]
    out: list[str] = []
    for name in names:
        words = [w for w in re.sub(r"\([^)]*\)", " ", name).split() if fold(w)]
        distinctive = [w for w in words if fold(w)[0] not in _ORG_FILLER]
        if distinctive:
            out.append(" ".join(distinctive[:4]))
    return list(dict.fromkeys(out))


_ORG_FILLER = word_set(
    "of the and for department division hospital university medical college center centre"
)
_TITLE_FILLER = word_set(
    "a an and as at by for from in is of on or the to with study trial pilot patient therapy "
    "treatment clinical efficacy safety effect"
)


def _title_words(title: str) -> str:
    words = [w for w in re.findall(r"[^\W_][\w'’-]*", title) if fold(w) and len(w) > 3]
    distinctive = [w for w in words if fold(w)[0] not in _TITLE_FILLER]
    return " ".join(distinctive[:4])


def candidate_from_study(study: dict[str, Any]) -> Candidate | None:
    """A search hit as a candidate; None for a record that does not normalise."""
    try:
        snapshot = normalise(study)
    except RecordInvalid as exc:
        log.warning("skipping a search hit that is not a usable record: %s", exc)
        return None
    organisations, text = search_hit_texts(study)
    return Candidate(snapshot=snapshot, organisations=tuple(organisations), text=text)
