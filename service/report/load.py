"""A record's stored history as the report draws it: the only part of the report that reads
the store.

``load_studies(store, targets)`` reads what the page needs from the store: every stored
version (oldest first) with its snapshot (re-normalised from the stored raw record), the change
events, and the seed studies that follow the record with their comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from service.errors import RecordInvalid
from service.findings.stored import FindingInfo
from service.models import Snapshot, StoredChange, StudyDate, VersionInfo
from service.registry.catalog import normalise
from service.seeds.compare import compare
from service.seeds.model import CONFIDENT, Seed

if TYPE_CHECKING:
    from service.store import SeedLinkData, Store, StoredSeed

__all__ = [
    "NO_DATE",
    "SeedFacts",
    "StudyData",
    "VersionPoint",
    "VersionWindow",
    "load_studies",
    "load_study",
    "version_point",
]

log = logging.getLogger(__name__)

NO_DATE = StudyDate()

# ---- data in --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionPoint:
    """What the charts need of one stored version."""

    version: int  # the registry's version number where known, else the store's sequence
    date: str  # yyyy-mm-dd: when the registry posted it, else when trialwatch fetched it
    registry_version: int | None = None
    status: str = ""
    enrollment_count: int | None = None
    enrollment_type: str = ""
    start: StudyDate = NO_DATE
    primary_completion: StudyDate = NO_DATE
    completion: StudyDate = NO_DATE
    seq: int = 0  # the store's sequence: its order of versions (numbers can repeat)


@dataclass(frozen=True)
class VersionWindow:
    """Some of a record's stored versions, in the store's order: at most ``size``, the newest
    of those stored before sequence ``before`` (None: the newest)."""

    size: int
    before: int | None = None

    def of(self, stored: Sequence[VersionInfo]) -> list[VersionInfo]:
        earlier = [info for info in stored if self.before is None or info.seq < self.before]
        return earlier[-self.size :] if self.size > 0 else []


@dataclass(frozen=True)
class SeedFacts:
    """A seed publication that follows a record: what it reports, and how it differs."""

    seed_id: str
    title: str
    citation: str = ""
    link: str = ""  # how the seed is linked to the record, in words
    enrollment_count: int | None = None
    enrollment_type: str = ""
    enrollment_phrase: str = ""
    primary_outcomes: tuple[str, ...] = ()
    phases: tuple[str, ...] = ()
    status: str = ""
    discrepancies: tuple[tuple[str, str], ...] = ()  # (severity, summary)


@dataclass(frozen=True)
class StudyData:
    """Everything the page shows of one record."""

    registry: str
    study_id: str
    versions: tuple[VersionPoint, ...] = ()  # oldest first
    changes: tuple[StoredChange, ...] = ()  # oldest first
    latest: Snapshot | None = None
    seeds: tuple[SeedFacts, ...] = ()
    findings: tuple[FindingInfo, ...] = ()  # open and resolved, oldest first
    searches: tuple[str, ...] = ()  # the saved searches that brought it in (query:NAME tags)
    stored_versions: int = 0  # how many are stored (more than ``versions`` in a window)
    older_versions: int = 0  # stored ones older than the first of ``versions`` (a window)

    @property
    def title(self) -> str:
        return self.latest.title if self.latest else self.study_id


# ---- loading (the only part that touches the store) ------------------------------------------


def load_studies(store: Store, targets: Iterable[tuple[str, str]]) -> list[StudyData]:
    """The records ``targets`` names, each a ``(registry, study id)``."""
    return [load_study(store, registry, study_id) for registry, study_id in targets]


def load_study(
    store: Store, registry: str, study_id: str, window: VersionWindow | None = None
) -> StudyData:
    """A record as the report draws it: every stored version and change, or only the
    versions of ``window`` and the changes that led to them (the web's record page)."""
    stored = store.list_versions(registry, study_id)
    infos = stored if window is None else window.of(stored)
    snapshots = [_stored_snapshot(store, registry, study_id, info.seq) for info in infos]
    latest = next((s for s in reversed(snapshots) if s is not None), None)
    if stored and (not infos or infos[-1] is not stored[-1]):
        latest = _stored_snapshot(store, registry, study_id, stored[-1].seq)  # the newest
    if len(infos) == len(stored):  # every version: every change too
        changes = [c for c in store.list_changes(study_id=study_id) if c.registry == registry]
    else:
        shown = (infos[0].seq, infos[-1].seq) if infos else (0, -1)
        changes = store.changes_to_versions(registry, study_id, *shown)
    return StudyData(
        registry=registry,
        study_id=study_id,
        versions=tuple(version_point(i, s) for i, s in zip(infos, snapshots, strict=True)),
        changes=tuple(changes),
        latest=latest,
        seeds=tuple(_linked_seeds(store, registry, study_id, latest)),
        findings=tuple(store.list_findings(study_id=study_id, registry=registry)),
        searches=_searches(store.watch_tags(registry, [study_id]).get(study_id, ())),
        stored_versions=len(stored),
        older_versions=sum(1 for info in stored if infos and info.seq < infos[0].seq),
    )


def _searches(tags: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(tag.removeprefix("query:") for tag in tags if tag.startswith("query:")))


def version_point(info: VersionInfo, snapshot: Snapshot | None) -> VersionPoint:
    """A version's headline facts; its dates come from the snapshot when there is one."""
    return VersionPoint(
        version=info.version,
        date=info.last_update_posted or info.fetched_at.date().isoformat(),
        registry_version=info.registry_version,
        status=info.overall_status,
        enrollment_count=info.enrollment_count,
        enrollment_type=info.enrollment_type,
        start=snapshot.start_date if snapshot else NO_DATE,
        primary_completion=snapshot.primary_completion_date if snapshot else NO_DATE,
        completion=snapshot.completion_date if snapshot else NO_DATE,
        seq=info.seq,
    )


def _stored_snapshot(store: Store, registry: str, study_id: str, seq: int) -> Snapshot | None:
    # The store keeps the raw record of every version; normalising it again gives the fields
    # the timeline lacks (dates). A version the normaliser now refuses still has its headline.
    raw = store.raw_record(registry, study_id, seq)
    if raw is None:
        return None
    try:
        return normalise(registry, raw)
    except RecordInvalid as exc:
        log.warning("%s version %s: not shown in full (%s)", study_id, seq, exc)
        return None


def _linked_seeds(
    store: Store, registry: str, study_id: str, latest: Snapshot | None
) -> list[SeedFacts]:
    """The seeds that follow this record (a confident or accepted link), compared with it."""
    facts: list[SeedFacts] = []
    for stored in store.seeds_linked_to(registry, study_id):
        link = next(
            (x for x in stored.links if (x.registry, x.study_id) == (registry, study_id)), None
        )
        if link is None or not _followed(link):
            continue
        try:
            seed = Seed.model_validate_json(stored.document)
        except ValidationError as exc:
            log.warning("seed %s: not shown (%s)", stored.seed_id, str(exc).splitlines()[0])
            continue
        facts.append(_seed_facts(seed, stored, link, latest))
    return facts


def _followed(link: SeedLinkData) -> bool:
    # The same rule as ``seeds compare``: an unconfirmed search hit is a candidate, not a link;
    # a related registration (a later trial of the same sponsor) is another trial's record.
    if link.relation == "related":
        return False
    return link.source == "person" or link.confidence >= CONFIDENT


def _seed_facts(
    seed: Seed, stored: StoredSeed, link: SeedLinkData, latest: Snapshot | None
) -> SeedFacts:
    found = compare(seed, latest) if latest else []
    return SeedFacts(
        seed_id=stored.seed_id,
        title=seed.title,
        citation=_citation(seed),
        link=_link_words(link),
        enrollment_count=seed.enrollment.count,
        enrollment_type=seed.enrollment.type,
        enrollment_phrase=seed.enrollment.phrase,
        primary_outcomes=tuple(o.measure for o in seed.outcomes_of("primary")),
        phases=seed.design.phases,
        status=seed.status,
        discrepancies=tuple((d.severity, d.summary) for d in found),
    )


def _citation(seed: Seed) -> str:
    cite = seed.citation
    head = ", ".join(p for p in (cite.first_author, cite.journal) if p)
    parts = [f"{head} {cite.year}" if cite.year else head]
    parts += [f"doi:{cite.doi}" if cite.doi else "", f"PMID {cite.pmid}" if cite.pmid else ""]
    return "; ".join(p.strip() for p in parts if p.strip())


def _link_words(link: SeedLinkData) -> str:
    if link.source == "document":
        return "registration named in the document"
    if link.source == "person":
        return "link accepted by a reviewer"
    return f"registry search match (confidence {link.confidence:.2f})"
