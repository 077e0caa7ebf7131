"""One trial, every registration: the registrations that name one another, grouped, and where
their latest versions disagree.

A link counts both ways (an EUCTR record naming an NCT number links that NCT record too), so
a trial is a connected group of registrations: the records trialwatch stores, and the ids they
name that it does not (shown by id alone). Pure: the caller hands in each stored record's
latest snapshot.

Disagreements: lifecycles apart (one ended while another is still recruiting or active),
planned or actual enrollment more than 10% apart, completion dates more than 90 days apart,
primary outcomes that do not pair (the diff's own pairing; cosmetic differences ignored).
The ``registrations_disagree`` finding (``service.findings.disagree``) opens on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

from service.diff import unpaired_outcomes
from service.models import LinkedId, Snapshot, WatchInfo
from service.registry.catalog import registry_info

Key = tuple[str, str]  # (registry, study id)

ENDED = frozenset({"completed", "terminated", "withdrawn"})
GOING = frozenset({"not_yet_recruiting", "recruiting", "active_not_recruiting", "suspended"})
ENROLLMENT_APART = 0.10  # planned enrollment more than 10% apart (of the larger)
COMPLETION_DAYS_APART = 90


@dataclass(frozen=True)
class Registration:
    """One registration of a trial: a stored record's latest facts, or an id only named."""

    registry: str
    study_id: str
    snapshot: Snapshot | None = None  # None: named by a stored record, not stored itself
    source: str = ""  # for an id only named: which record named it

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"registry": self.registry, "study_id": self.study_id}
        snap = self.snapshot
        if snap is None:
            return data | {"stored": False, "named_by": self.source}
        return data | {
            "stored": True,
            "overall_status": snap.overall_status,
            "lifecycle": snap.lifecycle,
            "enrollment": snap.enrollment_count,
            "enrollment_actual": snap.enrollment_actual,
            "start_date": snap.start_date.date,
            "completion_date": snap.completion_date.date,
            "primary_outcomes": [o.measure for o in snap.primary_outcomes],
            "title": snap.title,
        }


@dataclass(frozen=True)
class Disagreement:
    """Two registrations of one trial that say different things of ``field``."""

    field: str  # lifecycle | enrollment | enrollment_actual | completion_date | primary_outcomes
    values: tuple[tuple[Key, Any], ...]
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "values": [{"registry": r, "study_id": i, "value": v} for (r, i), v in self.values],
            "summary": self.summary,
        }


@dataclass
class Trial:
    """A connected group of registrations, in a stable order (registry, then id)."""

    registrations: list[Registration] = field(default_factory=list)

    @cached_property
    def disagreements(self) -> list[Disagreement]:
        stored = [r for r in self.registrations if r.snapshot is not None]
        found = [_lifecycles(stored), *_enrollments(stored), _completions(stored)]
        found.append(_primary_outcomes(stored))
        return [d for d in found if d is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "registrations": [r.to_json() for r in self.registrations],
            "disagreements": [d.to_json() for d in self.disagreements],
        }


def group(snapshots: Iterable[Snapshot]) -> list[Trial]:
    """The trials the stored records make: every record with the records and ids it names,
    and those that name it, in one group. Groups ordered by their first registration."""
    stored = {(s.registry, s.study_id): s for s in snapshots}
    named_by: dict[Key, str] = {}
    for key, snapshot in stored.items():
        for link in snapshot.linked:
            named_by.setdefault((link.registry, link.study_id), f"{key[0]}:{key[1]}")
    links = {key: [(n.registry, n.study_id) for n in s.linked] for key, s in stored.items()}
    trials = [
        Trial([Registration(k[0], k[1], stored.get(k), named_by.get(k, "")) for k in keys])
        for keys in connected(links)
    ]
    return sorted(trials, key=lambda t: (t.registrations[0].registry, t.registrations[0].study_id))


def connected(links: Mapping[Key, Iterable[Key]]) -> list[list[Key]]:
    """The connected groups of registrations that ``links`` (each record → the ids it names)
    make, a link counting both ways; each group sorted."""
    parent: dict[Key, Key] = {}

    def root(key: Key) -> Key:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for key, named in links.items():
        root(key)
        for other in named:
            parent[root(other)] = root(key)
    members: dict[Key, list[Key]] = {}
    for key in sorted(parent):
        members.setdefault(root(key), []).append(key)
    return list(members.values())


def members(links: Mapping[Key, Iterable[Key]]) -> dict[Key, list[Key]]:
    """Each record of ``links`` registered more than once: the other registrations of its
    trial (connected by links either way, through any record), named or stored."""
    found: dict[Key, list[Key]] = {}
    for keys in connected(links):
        for key in keys:
            if key in links and len(keys) > 1:
                found[key] = [k for k in keys if k != key]
    return found


def with_trials(watches: Sequence[WatchInfo], trials: Mapping[Key, list[Key]]) -> list[WatchInfo]:
    """``watches`` with their ``trial`` filled from ``trials`` (``members``)."""
    return [
        w.model_copy(
            update={"trial": tuple(LinkedId(*k) for k in trials.get((w.registry, w.study_id), ()))}
        )
        for w in watches
    ]


def by_registry(keys: Iterable[Key]) -> dict[str, list[str]]:
    """``keys`` as registry → study ids, each once, in their order."""
    found: dict[str, list[str]] = {}
    for registry, study_id in dict.fromkeys(keys):
        found.setdefault(registry, []).append(study_id)
    return found


def containing(trials: Sequence[Trial], keys: Iterable[Key]) -> list[Trial]:
    """The trials with any of ``keys`` among their registrations."""
    wanted = set(keys)
    return [t for t in trials if any((r.registry, r.study_id) in wanted for r in t.registrations)]


def _key(registration: Registration) -> Key:
    return registration.registry, registration.study_id


def _lifecycles(stored: list[Registration]) -> Disagreement | None:
    said = [(r, r.snapshot.lifecycle) for r in stored if r.snapshot and r.snapshot.lifecycle]
    # (an id only named has no snapshot: nothing to say of it)
    ended = [(r, life) for r, life in said if life in ENDED]
    going = [(r, life) for r, life in said if life in GOING]
    if not ended or not going:
        return None
    values = tuple((_key(r), life) for r, life in ended + going)
    (first, was), (other, now) = ended[0], going[0]
    summary = (
        f"{first.study_id} says {was.replace('_', ' ')}, "
        f"{other.study_id} still {now.replace('_', ' ')}"
    )
    return Disagreement("lifecycle", values, summary)


def _enrollments(stored: list[Registration]) -> list[Disagreement]:
    """Planned enrollment compared with planned, actual with actual (a ClinicalTrials.gov
    count is planned while ESTIMATED, actual once ACTUAL; the EU registries keep both)."""
    planned = [(r, n) for r in stored if (n := _planned(r)) is not None]
    actual = [(r, n) for r in stored if (n := _actual(r)) is not None]
    found = [_counts_apart("enrollment", "enrollment", planned)]
    found.append(_counts_apart("enrollment_actual", "actual enrollment", actual))
    return [d for d in found if d is not None]


def _planned(registration: Registration) -> int | None:
    snap = registration.snapshot
    if snap is None or snap.enrollment_type.upper() == "ACTUAL":
        return None
    return snap.enrollment_count or None


def _actual(registration: Registration) -> int | None:
    snap = registration.snapshot
    if snap is None:
        return None
    if snap.enrollment_type.upper() == "ACTUAL":
        return snap.enrollment_count or None
    return snap.enrollment_actual or None


def _counts_apart(
    field_name: str, label: str, counts: list[tuple[Registration, int]]
) -> Disagreement | None:
    if len(counts) < 2:
        return None
    low, high = min(counts, key=lambda c: c[1]), max(counts, key=lambda c: c[1])
    if high[1] - low[1] <= ENROLLMENT_APART * high[1]:
        return None
    values = tuple((_key(r), n) for r, n in counts)
    summary = f"{label} {low[1]:,} in {low[0].study_id}, {high[1]:,} in {high[0].study_id}"
    return Disagreement(field_name, values, summary)


def _primary_outcomes(stored: list[Registration]) -> Disagreement | None:
    """The first two registrations (in order) whose primary outcomes do not pair."""
    said = [r for r in stored if r.snapshot is not None and r.snapshot.primary_outcomes]
    for i, first in enumerate(said):
        for other in said[i + 1 :]:
            apart = _outcomes_apart(first, other)
            if apart is not None:
                values = tuple(
                    (_key(r), [o.measure for o in r.snapshot.primary_outcomes])  # type: ignore[union-attr]
                    for r in said
                )
                return Disagreement("primary_outcomes", values, apart)
    return None


def _outcomes_apart(a: Registration, b: Registration) -> str | None:
    assert a.snapshot is not None and b.snapshot is not None
    a_text = registry_info(a.registry).outcomes_as_text
    b_text = registry_info(b.registry).outcomes_as_text
    if a_text and b_text:
        return None  # two free texts (EUCTR's, ISRCTN's) word the same end points too apart
    only_a, only_b = unpaired_outcomes(
        a.snapshot.primary_outcomes, b.snapshot.primary_outcomes, a_text=a_text, b_text=b_text
    )
    if not only_a and not only_b:
        return None
    (missing, has, lacks) = (only_a[0], a, b) if only_a else (only_b[0], b, a)
    return (
        f"primary outcome {_clip(missing.measure)!r} of {has.study_id} "
        f"is not among {lacks.study_id}'s"
    )


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _completions(stored: list[Registration]) -> Disagreement | None:
    known: list[tuple[Registration, date]] = []
    for registration in stored:
        snapshot = registration.snapshot
        day = snapshot.completion_date.first_day() if snapshot is not None else None
        if day is not None:
            known.append((registration, day))
    if len(known) < 2:
        return None
    early, late = min(known, key=lambda c: c[1]), max(known, key=lambda c: c[1])
    if (late[1] - early[1]).days <= COMPLETION_DAYS_APART:
        return None
    values = tuple((_key(r), d.isoformat()) for r, d in known)
    summary = f"completion {early[1]} in {early[0].study_id}, {late[1]} in {late[0].study_id}"
    return Disagreement("completion_date", values, summary)
