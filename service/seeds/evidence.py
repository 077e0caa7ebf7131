"""How well a registry record fits a seed study: evidence, a score from 0 to 1, and reasons.

Pure functions. Seven kinds of evidence, each worth a share of the score:

==========  ======  ==================================================================
evidence    weight  full marks when
==========  ======  ==================================================================
drug        0.25    every intervention of the seed is registered (synonyms and brand
                    names count); ×0.8 when the record adds other drugs
condition   0.15    a condition of the seed is registered (synonyms count)
place       0.15    a sponsor, collaborator or site matches an affiliation or funder
                    (1.0); else a city (0.8) or a country (0.6); no shared country 0
design      0.10    phase, allocation, masking, model, placebo and "pilot" agree
                    (the mean of those both sides state)
size        0.15    registered enrollment within 80% of the reported size; falls to 0
                    at a ratio of 0.3
dates       0.10    the record started before the publication year and ended within
                    four years before it
title       0.10    the titles share their distinctive words (Jaccard and overlap)
==========  ======  ==================================================================

Evidence one side does not give (a paper without a phase, a record without dates) counts
half: it is neither for nor against, so a seed that says little can never reach a confident
score on a drug and a condition alone.

A candidate is ``confident`` only when its score is at least ``CONFIDENT`` (0.8), it is ahead
of the runner-up by at least ``MARGIN`` (0.15), and nothing rules it out: every seed drug
registered, the condition registered, no country conflict, and not started after the
publication. "No confident match" is the honest answer whenever that does not hold.

Candidates come from every registry. One trial registered twice (ClinicalTrials.gov and
EUCTR, EUCTR and CTIS after a transition) is one study, not a rival: a candidate whose record
names the leader's registration, or is named by it (``same_trial``), is never the runner-up.
Registries write phases in words (``Phase III``): both sides are read as codes
(``service.seeds.phases``). A record that gives an actual enrollment beside its target (CTIS,
ISRCTN) is held to the reported size by the actual one, and an EUCTR record's countries
count as its sites' countries.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.diff import humanise
from service.models import Snapshot
from service.seeds.model import CONFIDENT, Seed
from service.seeds.phases import phase_codes
from service.seeds.synonyms import aliases, base_name, fold, mentions, word_set

__all__ = [
    "MARGIN",
    "WEIGHTS",
    "Candidate",
    "Evidence",
    "Ranked",
    "drug_names",
    "rank",
    "record_organisations",
    "registered_conditions",
    "registered_drugs",
    "ruled_out",
    "same_org",
    "same_trial",
    "score",
    "seed_organisations",
]

WEIGHTS: dict[str, float] = {
    "drug": 0.25,
    "condition": 0.15,
    "place": 0.15,
    "design": 0.10,
    "size": 0.15,
    "dates": 0.10,
    "title": 0.10,
}
MARGIN = 0.15
UNKNOWN = 0.5  # the value of evidence one side does not give


@dataclass(frozen=True)
class Candidate:
    """A registry record found by a search, with the facts the snapshot does not keep."""

    snapshot: Snapshot
    organisations: tuple[str, ...] = ()  # organisation, responsible party, officials
    text: str = ""  # brief summary and detailed description
    registered: str = ""  # when the record was registered (yyyy-mm-dd), "" when not known

    @property
    def registry(self) -> str:
        return self.snapshot.registry

    @property
    def study_id(self) -> str:
        return self.snapshot.study_id


@dataclass(frozen=True)
class Evidence:
    value: float | None  # None: one side does not say
    reason: str
    veto: str = ""  # why this candidate cannot be confident, if it cannot


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    score: float
    confident: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, object]:
        return {
            "registry": self.candidate.registry,
            "study_id": self.candidate.study_id,
            "score": round(self.score, 3),
            "confident": self.confident,
            "reasons": list(self.reasons),
        }


def score(seed: Seed, candidate: Candidate) -> tuple[float, list[Evidence]]:
    """The weighted score of one candidate and the evidence behind it, in ``WEIGHTS`` order."""
    evidence = [
        _drug(seed, candidate.snapshot),
        _condition(seed, candidate.snapshot),
        _place(seed, candidate),
        _design(seed, candidate),
        _size(seed, candidate.snapshot),
        _dates(seed, candidate.snapshot),
        _title(seed, candidate.snapshot),
    ]
    total = sum(
        weight * (UNKNOWN if e.value is None else e.value)
        for weight, e in zip(WEIGHTS.values(), evidence, strict=True)
    )
    return total, evidence


def rank(seed: Seed, candidates: Sequence[Candidate]) -> list[Ranked]:
    """Candidates best first, each with its score, reasons and ``confident`` verdict."""
    scored = sorted(
        ((candidate, *score(seed, candidate)) for candidate in candidates),
        key=lambda item: (-item[1], item[0].registry, item[0].study_id),
    )
    leader = scored[0][0] if scored else None
    # the leader's own registration in another registry is the same study, not a rival
    rivals = [total for c, total, _ in scored[1:] if not (leader and same_trial(leader, c))]
    ranked: list[Ranked] = []
    for position, (candidate, total, evidence) in enumerate(scored):
        runner_up = rivals[0] if position == 0 and rivals else None
        verdict = _verdict(total, evidence, runner_up, first=position == 0)
        reasons = [e.reason for e in evidence if e.reason]
        if position and leader is not None and same_trial(leader, candidate):
            reasons.append(f"the same trial as {leader.study_id} (one record names the other)")
        ranked.append(
            Ranked(candidate, total, verdict is None, tuple([*reasons, verdict or "confident"]))
        )
    return ranked


def ruled_out(seed: Seed, candidate: Candidate) -> str:
    """Why ``candidate`` cannot be the seed's own registration whatever its score (a drug the
    document names is not among its interventions, it started after the publication), or
    "" when nothing rules it out."""
    _, evidence = score(seed, candidate)
    return next((e.veto for e in evidence if e.veto), "")


def same_trial(a: Candidate, b: Candidate) -> bool:
    """Whether one record names the other's registration (its secondary ids, as
    ``Snapshot.linked`` reads them): one trial in two registries."""
    return _names(a.snapshot, b.snapshot) or _names(b.snapshot, a.snapshot)


def _names(snap: Snapshot, other: Snapshot) -> bool:
    if any((x.registry, x.study_id) == (other.registry, other.study_id) for x in snap.linked):
        return True
    wanted = other.study_id.casefold()
    return any(wanted == i.strip().casefold() for i in snap.secondary_ids)


def _verdict(
    total: float, evidence: list[Evidence], runner_up: float | None, *, first: bool
) -> str | None:
    """None when the candidate is confident, else why not."""
    vetoes = [e.veto for e in evidence if e.veto]
    if vetoes:
        return f"not confident: {vetoes[0]}"
    if total < CONFIDENT:
        return f"not confident: score {total:.2f} is below {CONFIDENT}"
    if not first:
        return "not confident: another candidate ranks higher"
    if runner_up is not None and total - runner_up < MARGIN:
        return f"not confident: the runner-up is within {MARGIN} ({runner_up:.2f})"
    return None


# ---- drug and condition --------------------------------------------------------------------------

_NOT_A_DRUG = re.compile(r"(?i)placebo|saline|standard (?:of )?care|usual care|vehicle")


def registered_drugs(seed: Seed, snap: Snapshot) -> list[str]:
    """The seed's interventions the record registers (synonyms and brand names count)."""
    registered = _intervention_text(snap)
    names = [base_name(i.name) for i in seed.interventions]
    return [n for n in names if mentions([n, *_other_names(seed, n)], registered)]


def registered_conditions(seed: Seed, snap: Snapshot) -> list[str]:
    """The seed's conditions the record registers (synonyms count)."""
    registered = " | ".join(
        [*snap.conditions, *snap.keywords, snap.brief_title, snap.official_title]
    )
    return [c for c in seed.conditions if mentions([c], registered)]


def _drug(seed: Seed, snap: Snapshot) -> Evidence:
    names = [base_name(i.name) for i in seed.interventions]
    if not names:
        return Evidence(None, "drug: the seed names no intervention")
    found = registered_drugs(seed, snap)
    missing = [n for n in names if n not in found]
    value = len(found) / len(names)
    extra = [
        i.name
        for i in snap.interventions
        if not _NOT_A_DRUG.search(i.name)
        and not any(mentions([n, *_other_names(seed, n)], _one(i)) for n in names)
    ]
    if extra:
        value *= 0.8
    parts = []
    if found:
        parts.append(f"{', '.join(found)} registered")
    if missing:
        parts.append(f"{', '.join(missing)} not registered")
    if extra:
        parts.append(f"record adds {', '.join(extra[:3])}")
    veto = f"{', '.join(missing)} not among its interventions" if missing else ""
    return Evidence(value, "drug: " + "; ".join(parts), veto)


def _other_names(seed: Seed, name: str) -> tuple[str, ...]:
    for item in seed.interventions:
        if base_name(item.name) == name:
            return item.other_names
    return ()


def _intervention_text(snap: Snapshot) -> str:
    parts = [_one(i) for i in snap.interventions]
    parts += [arm.label for arm in snap.arms]
    parts += [snap.brief_title, snap.official_title]
    return " | ".join(parts)


def _one(intervention: object) -> str:
    name = getattr(intervention, "name", "")
    others = getattr(intervention, "other_names", ())
    return " | ".join([name, *others])


def _condition(seed: Seed, snap: Snapshot) -> Evidence:
    if not seed.conditions:
        return Evidence(None, "condition: the seed names none")
    found = registered_conditions(seed, snap)
    if found:
        return Evidence(1.0, f"condition: {found[0]} registered")
    shown = ", ".join(snap.conditions[:3]) or "none"
    return Evidence(
        0.0,
        f"condition: {seed.conditions[0]} not registered ({shown})",
        f"{seed.conditions[0]} is not its condition",
    )


# ---- place ---------------------------------------------------------------------------------------

# Words every institution name has; matching on them would pair any two hospitals.
_GENERIC_ORG_WORDS = word_set(
    "a academic affiliated and center centre clinic clinical college de department der di "
    "division faculty first for foundation general health hospital hospitals institute "
    "international key laboratory medical medicine ministry national of people research school "
    "science sciences second state the third universitair universitat universite university "
    "universitatsmedizin und"
)


def _org_tokens(name: str) -> frozenset[str]:
    name = re.sub(r"\([^)]*\)", " ", name)  # "(PUMCH)" is an abbreviation of the words before
    return frozenset(t for t in fold(name) if t not in _GENERIC_ORG_WORDS and not t.isdigit())


def same_org(a: str, b: str) -> bool:
    """Whether two organisation names name one organisation (by their distinctive words)."""
    ta, tb = _org_tokens(a), _org_tokens(b)
    if not ta or not tb:
        return False
    common = len(ta & tb)
    return common >= min(2, len(ta), len(tb)) and common / min(len(ta), len(tb)) >= 0.67


def seed_organisations(seed: Seed) -> list[str]:
    """The seed's sponsor, affiliations and funders."""
    return [o for o in (seed.sponsor.lead, *seed.sponsor.affiliations, *seed.sponsor.funders) if o]


def record_organisations(candidate: Candidate) -> list[tuple[str, str]]:
    """``(organisation, "sponsor" | "centre")`` of every organisation a record names: its
    sponsors and the organisations its search hit adds, then its sites."""
    snap = candidate.snapshot
    sponsors = [(o, "sponsor") for o in (snap.lead_sponsor, *snap.collaborators) if o]
    sponsors += [(o, "sponsor") for o in candidate.organisations if o]
    return [*sponsors, *((s.facility, "centre") for s in snap.locations if s.facility)]


def _place(seed: Seed, candidate: Candidate) -> Evidence:
    snap = candidate.snapshot
    seed_orgs = seed_organisations(seed)
    record_orgs = [name for name, _kind in record_organisations(candidate)]
    for mine in seed_orgs:
        for theirs in record_orgs:
            if same_org(mine, theirs):
                return Evidence(1.0, f"place: {theirs} matches {mine}")
    cities = {fold(c) for c in seed.sponsor.cities}
    for site in snap.locations:
        if site.city and fold(site.city) in cities:
            return Evidence(0.8, f"place: a site in {site.city}")
    countries = set(seed.sponsor.countries)
    registered = {site.country for site in snap.locations if site.country}
    # EUCTR has no sites but a record per country; "3RD" (outside the EU/EEA) names none
    registered |= {c.name for c in snap.countries if c.name and c.country != _THIRD_COUNTRIES}
    if countries and registered & countries:
        return Evidence(0.6, f"place: a site in {sorted(registered & countries)[0]}")
    if any(c.country == _THIRD_COUNTRIES for c in snap.countries):
        return Evidence(None, "place: no matching sponsor; countries outside the EU/EEA unnamed")
    if countries and registered:
        sites, wanted = ", ".join(sorted(registered)[:3]), ", ".join(sorted(countries))
        return Evidence(0.0, f"place: sites in {sites}, not {wanted}", "its sites are elsewhere")
    if not (seed_orgs or countries):
        return Evidence(None, "place: the seed names no affiliation or country")
    return Evidence(None, "place: no matching sponsor or site")


_THIRD_COUNTRIES = "3RD"  # EUCTR's country record of the trial outside the EU/EEA


# ---- design --------------------------------------------------------------------------------------

_BLINDED = frozenset({"SINGLE", "DOUBLE", "TRIPLE", "QUADRUPLE"})
_PILOT = re.compile(r"(?i)\bpilot\b")


def _design(seed: Seed, candidate: Candidate) -> Evidence:
    snap, design = candidate.snapshot, seed.design
    checks: list[tuple[float, str]] = []
    if design.phases and phase_codes(snap.phases):  # "Other" names no phase
        checks.append(_phase_check(design.phases, snap.phases))
    if design.allocation and snap.allocation:
        same = design.allocation == snap.allocation or (
            design.allocation != "RANDOMIZED" and snap.allocation != "RANDOMIZED"
        )
        checks.append((1.0 if same else 0.0, f"allocation {humanise(snap.allocation).lower()}"))
    if design.masking and snap.masking:
        checks.append(_masking_check(design.masking, snap.masking))
    if design.model and snap.intervention_model:
        same = design.model == snap.intervention_model
        checks.append((1.0 if same else 0.0, f"model {humanise(snap.intervention_model).lower()}"))
    if design.placebo is not None:
        has_placebo = any("placebo" in f"{i.name} {i.type}".casefold() for i in snap.interventions)
        checks.append((1.0 if has_placebo == design.placebo else 0.0, _placebo_note(has_placebo)))
    if design.pilot:
        text = candidate.text or snap.brief_summary or ""
        said = _PILOT.search(" ".join([snap.brief_title, snap.official_title, text]))
        checks.append((1.0 if said else 0.5, "called a pilot" if said else "not called a pilot"))
    if not checks:
        return Evidence(None, "design: nothing to compare")
    value = sum(v for v, _ in checks) / len(checks)
    return Evidence(value, "design: " + ", ".join(note for _, note in checks))


def _phase_check(mine: Sequence[str], registered: Sequence[str]) -> tuple[float, str]:
    theirs = phase_codes(registered)
    shown = "/".join(humanise(p) for p in sorted(theirs)) or "/".join(registered)
    if set(mine) == theirs:
        return 1.0, f"{shown} as reported"
    if set(mine) & theirs:
        return 0.7, f"{shown} (reported {'/'.join(humanise(p) for p in mine)})"
    return 0.0, f"{shown}, not {'/'.join(humanise(p) for p in mine)}"


def _masking_check(mine: str, theirs: str) -> tuple[float, str]:
    if mine == theirs:
        return 1.0, f"masking {humanise(theirs).lower()}"
    if mine in _BLINDED and theirs in _BLINDED:
        return 0.7, f"masking {humanise(theirs).lower()}"
    return 0.0, f"masking {humanise(theirs).lower()}, not {humanise(mine).lower()}"


def _placebo_note(has_placebo: bool) -> str:
    return "placebo arm" if has_placebo else "no placebo arm"


# ---- size, dates, title --------------------------------------------------------------------------


def _size(seed: Seed, snap: Snapshot) -> Evidence:
    reported, registered = seed.enrollment.count, snap.enrollment_count
    kind = f" ({snap.enrollment_type.lower()})" if snap.enrollment_type else ""
    if seed.enrollment.type == "ACTUAL" and snap.enrollment_actual is not None:
        registered, kind = snap.enrollment_actual, " (actual)"  # like with like
    if reported is None or registered is None:
        return Evidence(None, "")
    note = f"enrollment: {reported} reported, {registered} registered{kind}"
    if max(reported, registered) == 0:
        return Evidence(1.0, note)
    ratio = min(reported, registered) / max(reported, registered)
    return Evidence(min(1.0, max(0.0, (ratio - 0.3) / 0.5)), note)


def _year(date: str) -> int | None:
    return int(date[:4]) if re.match(r"^\d{4}", date) else None


def _dates(seed: Seed, snap: Snapshot) -> Evidence:
    published = seed.citation.year
    start = _year(snap.start_date.date)
    end = _year(snap.primary_completion_date.date) or _year(snap.completion_date.date)
    if published is None or (start is None and end is None):
        return Evidence(None, "")
    note = (
        f"dates: started {snap.start_date.date or '?'}, ended {end or '?'}, published {published}"
    )
    if start is not None and start > published:
        return Evidence(0.0, note, f"it started after the publication ({start} > {published})")
    if end is not None and end > published:
        return Evidence(0.4, note + " (before the registered end)")
    gap = published - (end if end is not None else start or published)
    value = 1.0 if gap <= 4 else 0.6 if gap <= 8 else 0.3
    return Evidence(value, note)


# Words every trial title has; they say nothing about which trial it is.
_TITLE_STOPWORDS = word_set(
    "a an and as at by evaluate evaluating evaluation effect effects efficacy explore for from "
    "in into is of on or patient patients safety study studies subject subjects the therapy to "
    "treat treating treatment trial use versus vs with"
)


def _title_tokens(title: str) -> frozenset[str]:
    return frozenset(t for t in fold(title) if t not in _TITLE_STOPWORDS and len(t) > 1)


def _title(seed: Seed, snap: Snapshot) -> Evidence:
    mine = _title_tokens(seed.title)
    best = 0.0
    for title in (snap.brief_title, snap.official_title, snap.acronym):
        theirs = _title_tokens(title)
        if mine and theirs:
            common = len(mine & theirs)
            best = max(
                best, 0.5 * (common / len(mine | theirs) + common / min(len(mine), len(theirs)))
            )
    return Evidence(best, f"title: {best:.2f} similar")


def drug_names(seed: Seed) -> list[tuple[str, ...]]:
    """Each seed intervention with every name it goes by (for building searches)."""
    return [tuple(dict.fromkeys([*aliases(i.name), *i.other_names])) for i in seed.interventions]
