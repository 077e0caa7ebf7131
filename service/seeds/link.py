"""Find the registration of a seed study: search every registry, then rank what comes back.

A seed whose document names its identifier needs no search: that link is confident as it
stands. Otherwise ``queries`` builds several ClinicalTrials.gov searches, from specific to
broad, so that a record missed by one spelling is caught by another:

1. condition + drug + sponsor (each affiliation, by its distinctive words)
2. condition + drug + city or country
3. condition + drug
4. drug alone (catches a condition the registry spells differently)
5. the title's distinctive words anywhere in the record (``query.term``)

Every condition and drug is searched with its synonyms (``service.seeds.synonyms``:
Sjögren / Sjogren / sicca, generic and brand names), OR-ed.

The registries without ClinicalTrials.gov's query fields (EUCTR's summary search, CTIS's
search, ISRCTN's query: each a ``RegistrySearch``, ``service/registry/<key>/search.py``) get
a few plain searches (``registry_terms``): condition + drug + sponsor, condition + drug, the
drug alone under its name and its first other name. A hit read from a search row or a
summary block only is weighed roughly first; the ``FETCH_TOP`` best of each registry are then
fetched whole, since a row lacks what ranking weighs most (the products, the size).

The registries are asked side by side (one thread each: each keeps its own pace), and their
hits are pooled by (registry, study id) and ranked together by ``service.seeds.evidence``. A
registry that does not answer is a one-line note (``Found.notes``) and the others still
count; only when none answers is that an error (the first registry's).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from service.errors import RecordInvalid, RegistryError, RequestAbandoned
from service.models import Snapshot
from service.registry.ctgov_facts import trial_facts
from service.registry.ctgov_fields import search_hit_texts
from service.registry.ctgov_normalise import normalise
from service.seeds.evidence import Candidate, Ranked, drug_names, rank
from service.seeds.model import Seed
from service.seeds.synonyms import aliases, fold, word_set

__all__ = [
    "CTGOV",
    "FETCH_TOP",
    "Found",
    "RegistryHit",
    "RegistrySearch",
    "Searcher",
    "Terms",
    "candidate_from_study",
    "fetch_candidate",
    "find_candidates",
    "queries",
    "registry_terms",
]

log = logging.getLogger(__name__)

CTGOV = "ctgov"
PER_QUERY = 50  # hits kept from each search: the right record is near the top or absent
PER_REGISTRY_QUERY = 20  # hits of each plain search (one EUCTR page)
FETCH_TOP = 3  # partial hits of each registry fetched whole for the final ranking
MAX_TERMS = 5  # plain searches of each registry at most
_MIN_ALIAS = 4  # shorter names ("RA", "HCQ") match too much in a free-text search


class Searcher(Protocol):
    """What linking needs of ClinicalTrials.gov's client (``CtgovClient`` has it)."""

    def search(self, params: dict[str, str], *, limit: int = 100) -> list[dict[str, Any]]: ...


class RegistryHit(Protocol):
    """One record a ``RegistrySearch`` found (each registry's ``search.Hit``)."""

    @property
    def snapshot(self) -> Snapshot: ...
    @property
    def organisations(self) -> tuple[str, ...]: ...
    @property
    def registered(self) -> str: ...
    @property
    def whole(self) -> bool: ...


class RegistrySearch(Protocol):
    """What linking needs of a registry beyond ClinicalTrials.gov (its ``search`` module)."""

    @property
    def registry(self) -> str: ...
    @property
    def name(self) -> str: ...

    def search(
        self, *, condition: str = "", drug: str = "", sponsor: str = "", limit: int = 20
    ) -> Sequence[RegistryHit]: ...

    def fetch(self, study_id: str) -> RegistryHit: ...


@dataclass(frozen=True)
class Terms:
    """One plain search: every term given must be in the record."""

    condition: str = ""
    drug: str = ""
    sponsor: str = ""


@dataclass(frozen=True)
class Found:
    """The ranked candidates of one seed, the searches that found them, a line for each
    registry that did not answer (or was not asked) and, by registry, why it failed."""

    ranked: list[Ranked]
    searches: int
    notes: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Asked:
    candidates: list[Candidate]
    searches: int


def find_candidates(
    seed: Seed,
    client: Searcher | None,
    registries: Sequence[RegistrySearch] = (),
    *,
    skip: Mapping[str, str] | None = None,
) -> Found:
    """Search every registry for ``seed`` and rank every record found, best first.

    ``client``: ClinicalTrials.gov's (None: not asked); ``skip``: registries not to ask
    (registry → why: they failed for an earlier seed of the same run)."""
    skip = skip or {}
    jobs: dict[str, Callable[[], _Asked]] = {}
    names: dict[str, str] = {CTGOV: "ClinicalTrials.gov"}
    if client is not None and CTGOV not in skip:
        jobs[CTGOV] = lambda: _ctgov_candidates(seed, client)
    for registry in registries:
        names[registry.registry] = registry.name
        if registry.registry not in skip:
            jobs[registry.registry] = _registry_job(seed, registry)
    answers, failures = _run(jobs)
    if jobs and not answers:
        raise next(iter(failures.values()))  # nothing answered: the first registry's error
    pool: dict[tuple[str, str], Candidate] = {}
    for asked in answers.values():
        for candidate in asked.candidates:
            pool.setdefault((candidate.registry, candidate.study_id), candidate)
    notes = [f"{names.get(key, key)}: not asked ({why})" for key, why in skip.items()]
    notes += [_failure_note(names.get(key, key), exc) for key, exc in failures.items()]
    return Found(
        rank(seed, list(pool.values())),
        sum(asked.searches for asked in answers.values()),
        tuple(notes),
        {key: f"it did not answer for an earlier seed: {exc}" for key, exc in failures.items()},
    )


def _failure_note(name: str, exc: RegistryError) -> str:
    said = " ".join(str(exc).split())  # one line, whatever the registry sent
    return f"{name}: did not answer ({said}); the other registries' candidates still count"


def _run(
    jobs: Mapping[str, Callable[[], _Asked]],
) -> tuple[dict[str, _Asked], dict[str, RegistryError]]:
    """Each job's answer, or its registry's error; the jobs side by side when several."""
    answers: dict[str, _Asked] = {}
    failures: dict[str, RegistryError] = {}
    if len(jobs) <= 1:
        outcomes = {key: _attempt(job) for key, job in jobs.items()}
    else:
        with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="seed-link") as pool:
            futures = {key: pool.submit(_attempt, job) for key, job in jobs.items()}
            outcomes = {key: future.result() for key, future in futures.items()}
    for key, outcome in outcomes.items():
        if isinstance(outcome, RegistryError):
            failures[key] = outcome
        else:
            answers[key] = outcome
    return answers, failures


def _attempt(job: Callable[[], _Asked]) -> _Asked | RegistryError:
    try:
        return job()
    except RequestAbandoned:
        raise  # trialwatch is stopping: nothing to report, nothing to go on with
    except RegistryError as exc:
        return exc


# ---- ClinicalTrials.gov --------------------------------------------------------------------------


def _ctgov_candidates(seed: Seed, client: Searcher) -> _Asked:
    pool: dict[str, Candidate] = {}
    shapes = queries(seed)
    for params in shapes:
        for study in client.search(params, limit=PER_QUERY):
            candidate = candidate_from_study(study)
            if candidate is not None:
                pool.setdefault(candidate.study_id, candidate)
    return _Asked(list(pool.values()), len(shapes))


def queries(seed: Seed) -> list[dict[str, str]]:
    """The ClinicalTrials.gov searches for ``seed``, specific first, without repeats."""
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
    return " OR ".join(_quoted(n) for n in _usable(names))


def _usable(names: Sequence[str]) -> list[str]:
    return [n for n in dict.fromkeys(names) if len(n) >= _MIN_ALIAS] or list(names)


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
    """A ClinicalTrials.gov search hit as a candidate; None for a record that does not
    normalise."""
    try:
        snapshot = normalise(study)
    except RecordInvalid as exc:
        log.warning("skipping a search hit that is not a usable record: %s", exc)
        return None
    organisations, text = search_hit_texts(study)
    submitted = trial_facts(study).first_submitted
    return Candidate(
        snapshot=snapshot,
        organisations=tuple(organisations),
        text=text,
        registered=submitted.text if submitted else "",
    )


# ---- the other registries ------------------------------------------------------------------------


def registry_terms(seed: Seed) -> list[Terms]:
    """The plain searches of a registry for ``seed``, specific first, without repeats: each
    term as the registries' own search folds it (no accents, no possessive)."""
    condition = _plain(_usable(aliases(seed.conditions[0]))[0]) if seed.conditions else ""
    names = [_plain(n) for n in _usable(drug_names(seed)[0])] if seed.interventions else []
    organisations = _organisations(seed)
    shapes: list[Terms] = []
    if names and condition:
        if organisations:
            shapes.append(Terms(condition, names[0], _plain(organisations[0])))
        shapes.append(Terms(condition, names[0]))
    shapes += [Terms(drug=name) for name in names[:2]]  # a condition spelled otherwise
    if not names and condition:
        shapes.append(Terms(condition=condition))
    return list(dict.fromkeys(s for s in shapes if s.condition or s.drug))[:MAX_TERMS]


def _plain(term: str) -> str:
    text = unicodedata.normalize("NFKD", term)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"['’]s\b", "", text)
    return " ".join(re.sub(r"[^\w\s-]", " ", text).split())


def _registry_job(seed: Seed, search: RegistrySearch) -> Callable[[], _Asked]:
    return lambda: _registry_candidates(seed, search)


def _registry_candidates(seed: Seed, search: RegistrySearch) -> _Asked:
    hits: dict[str, RegistryHit] = {}
    shapes = registry_terms(seed)
    for terms in shapes:
        for hit in search.search(
            condition=terms.condition,
            drug=terms.drug,
            sponsor=terms.sponsor,
            limit=PER_REGISTRY_QUERY,
        ):
            hits.setdefault(hit.snapshot.study_id, hit)
    partial = [_candidate(hit) for hit in hits.values() if not hit.whole]
    for best in rank(seed, partial)[:FETCH_TOP]:
        whole = _fetched(search, best.candidate.study_id)
        if whole is not None:
            hits[best.candidate.study_id] = whole
    return _Asked([_candidate(hit) for hit in hits.values()], len(shapes))


def _fetched(search: RegistrySearch, study_id: str) -> RegistryHit | None:
    """The whole record of a partial hit; None when it cannot be had (the partial hit still
    counts: one record failing does not take its registry's other hits with it)."""
    try:
        return search.fetch(study_id)
    except RequestAbandoned:
        raise
    except RegistryError as exc:
        log.warning("%s %s: weighed on its search row only (%s)", search.name, study_id, exc)
        return None


def _candidate(hit: RegistryHit) -> Candidate:
    return Candidate(
        snapshot=hit.snapshot,
        organisations=hit.organisations,
        text=hit.snapshot.brief_summary or "",
        registered=hit.registered,
    )


# ---- one record, named by a person ---------------------------------------------------------------


def fetch_candidate(
    registry: str, study_id: str, client: Searcher | None, registries: Sequence[RegistrySearch]
) -> Candidate | None:
    """The record a person names (``seeds link --accept``) as a candidate, to weigh it like
    a search hit; None when its registry has no search here. A registry that does not
    answer raises its ``RegistryError``."""
    if registry == CTGOV:
        if client is None:
            return None
        found = client.search({"filter.ids": study_id}, limit=1)
        return candidate_from_study(found[0]) if found else None
    search = next((s for s in registries if s.registry == registry), None)
    return _candidate(search.fetch(study_id)) if search is not None else None
