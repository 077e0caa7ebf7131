"""The seed's own registration and its related registrations, told apart. Pure.

A pilot leads to a larger trial, a case report to a trial of the same treatment: the same
sponsor or centre registers it later, on the same intervention and condition. Such a record
is worth following, but it is **not** the study the document reports, and comparing the
document with it would report every difference between two trials as a discrepancy. So a
candidate is *related* (``split``) when all of these hold:

1. it shares a sponsor or a centre with the seed (its sponsors, the organisations its record
   names, or its sites against the seed's sponsor, affiliations and funders);
2. it registers one of the seed's interventions (synonyms count) and one of its conditions;
3. it was registered after the seed's own study began (the own registration's start), or in
   the publication year or the two years before it (a trial planned while the paper was
   being written). Without an own registration, a record registered after the publication
   was registered after the study began too (a study begins before it is published). The
   registration date is the registry's (first submitted, first entered in EudraCT, the
   ISRCTN number assigned); a record that gives none is dated by its start ("started …");
4. it cannot be the seed's own registration: that one is known (a confident link or the
   confident leader of the ranking) and this is another trial; or it started after the
   publication; or the seed is a case report, which reports no registered trial of its own.

Each related candidate carries the reasons for all four. Everything else stays a candidate
for the seed's own registration, ranked again without the related ones, which are no rivals
of the own registration: a confident own registration is never hidden by its follow-up.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from service.seeds.evidence import (
    Candidate,
    Ranked,
    rank,
    record_organisations,
    registered_conditions,
    registered_drugs,
    same_org,
    same_trial,
    seed_organisations,
)
from service.seeds.model import Seed

__all__ = ["RELATED_YEARS", "Related", "Split", "related_reasons", "split"]

RELATED_YEARS = 2  # registered in the publication year or this many years before it
_DAY = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")

Key = tuple[str, str]  # (registry, study id)


@dataclass(frozen=True)
class Related:
    """A related registration: the ranked candidate and why it is related."""

    ranked: Ranked
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "registry": self.ranked.candidate.registry,
            "study_id": self.ranked.candidate.study_id,
            "score": round(self.ranked.score, 3),
            "confident": False,  # a related registration is followed only once accepted
            "reasons": list(self.reasons),
            "relation": "related",
        }


@dataclass(frozen=True)
class Split:
    own: list[Ranked] = field(default_factory=list)  # the own registration's candidates
    related: list[Related] = field(default_factory=list)


def split(
    seed: Seed,
    ranked: Sequence[Ranked],
    *,
    own_ids: Collection[Key] = (),
    own_start: str = "",
    related_ids: Collection[Key] = (),
) -> Split:
    """Own-registration candidates and related registrations of ``ranked``.

    ``own_ids``: the seed's own registrations already linked (confident or accepted);
    ``own_start``: the start date of that registration, when known; ``related_ids``:
    registrations a person accepted as related."""
    # a case report's best match is its centre's trial more often than its own: it is
    # weighed as related first, and only what is not related can be the case's own
    leader = ranked[0] if ranked and ranked[0].confident and seed.kind != "case_report" else None
    if leader is not None and _key(leader) in related_ids:
        leader = None  # a person said it is related: it is not the seed's own
    first = _split_once(seed, ranked, own_ids, own_start, related_ids, leader)
    own = rank(seed, [r.candidate for r in first.own])
    if own_ids or leader is not None or not own or not own[0].confident:
        return Split(own, first.related)
    # set apart, the related trials no longer crowd the own registration: it leads clearly
    # now, and what is related is decided again against its start
    second = _split_once(seed, ranked, own_ids, own_start, related_ids, own[0])
    return Split(rank(seed, [r.candidate for r in second.own]), second.related)


def _split_once(
    seed: Seed,
    ranked: Sequence[Ranked],
    own_ids: Collection[Key],
    own_start: str,
    related_ids: Collection[Key],
    leader: Ranked | None,
) -> Split:
    owners = [r for r in ranked if _key(r) in own_ids]
    if not own_ids and leader is not None:
        owners = [leader]
    start = own_start or (owners[0].candidate.snapshot.start_date.date if owners else "")
    named = ", ".join(r.candidate.study_id for r in owners) or ", ".join(i for _, i in own_ids)
    found = Split()
    owned = {_key(o) for o in owners} | set(own_ids)
    for item in ranked:
        if _key(item) in owned:
            found.own.append(item)
        elif any(same_trial(o.candidate, item.candidate) for o in owners):
            found.own.append(item)  # the own registration in another registry
        elif _key(item) in related_ids:
            accepted = ("accepted by a person as a related registration",)
            found.related.append(Related(item, accepted))
        else:
            why = _not_own(seed, item.candidate, named)
            reasons = related_reasons(seed, item.candidate, start) if why else None
            if reasons:
                found.related.append(Related(item, (*reasons, why)))
            else:
                found.own.append(item)
    return found


def related_reasons(seed: Seed, candidate: Candidate, own_start: str = "") -> tuple[str, ...]:
    """Why ``candidate`` is a later trial of the seed's sponsor or centre on its intervention
    and condition (rules 1–3); () when one of them does not hold."""
    snap = candidate.snapshot
    who = _shared_organisation(seed, candidate)
    drugs = registered_drugs(seed, snap)
    conditions = registered_conditions(seed, snap)
    when = _when(seed, candidate, own_start)
    if not (who and drugs and conditions and when):
        return ()
    return (who, f"same drug {', '.join(drugs)}", f"same condition {conditions[0]}", when)


def _shared_organisation(seed: Seed, candidate: Candidate) -> str:
    for theirs, kind in record_organisations(candidate):
        if any(same_org(mine, theirs) for mine in seed_organisations(seed)):
            return f"same {kind} {theirs}"
    return ""


def _when(seed: Seed, candidate: Candidate, own_start: str) -> str:
    snap = candidate.snapshot
    day, word = (candidate.registered, "registered")
    if not _DAY.match(day):
        day, word = (snap.start_date.date, "started")
    if not _DAY.match(day):
        return ""
    shown, published = day[:7], seed.citation.year
    if own_start and _DAY.match(own_start) and _padded(day) > _padded(own_start):
        return f"{word} {shown}, after the seed's study began {own_start[:7]}"
    if published is None:
        return ""
    year = int(day[:4])
    if published - RELATED_YEARS <= year <= published:
        return f"{word} {shown}, in the two years before the publication ({published})"
    if not own_start and year > published:
        return f"{word} {shown}, after the publication ({published}), so after the study began"
    return ""


def _not_own(seed: Seed, candidate: Candidate, own: str) -> str:
    """Why ``candidate`` cannot be the seed's own registration (rule 4), "" when it can."""
    if own:
        return f"not the seed's own registration ({own} is)"
    started = candidate.snapshot.start_date.date
    published = seed.citation.year
    if published is not None and _DAY.match(started) and int(started[:4]) > published:
        return f"not the seed's own registration: it started after the publication ({started[:7]})"
    if seed.kind == "case_report":
        return "not the seed's own registration: a case report reports no registered trial"
    return ""


def _padded(day: str) -> str:
    """``2019-06`` → ``2019-06-01``: partial dates compared as their first day."""
    match = _DAY.match(day)
    assert match is not None
    year, month, dom = match.groups()
    return f"{year}-{month or '01'}-{dom or '01'}"


def _key(item: Ranked) -> Key:
    return (item.candidate.registry, item.candidate.study_id)
