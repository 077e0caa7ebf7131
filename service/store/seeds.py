"""Seed studies (the documents trialwatch starts from) and their links to registry records.

The store keeps each seed as the JSON of its validated file; ``service.seeds`` owns the model.

A link is the seed's own registration (``relation`` "own") or a related registration (a later
trial of the same sponsor or centre: "related"). The relation is kept in the link's
``reasons`` JSON: a list of reasons for an own link (every link stored before relations
existed is one), ``{"relation": "related", "reasons": [...]}`` for a related one. So the
schema, and every reader of it, stays as it was; only this module reads the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import StoreError
from service.store.base import StoreBase
from service.store.tables import SeedLinkRow, SeedRow

# Who may overwrite a link: a person's choice outranks a document's identifier, which outranks a
# search hit. A file reloaded with a weaker claim never undoes a stronger one.
LINK_AUTHORITY = {"search": 1, "document": 2, "person": 3}


@dataclass(frozen=True)
class SeedLinkData:
    """A seed's link to a registry record, as stored."""

    registry: str
    study_id: str
    confidence: float
    source: str  # document | search | person
    reasons: tuple[str, ...] = ()
    from_file: bool = False  # written in the seed file (reloading the file may remove it)
    relation: str = "own"  # own | related (a later trial of the same sponsor or centre)


@dataclass(frozen=True)
class SeedData:
    """A validated seed file to store: its id, headline facts, JSON and the links it names."""

    seed_id: str
    title: str
    kind: str
    document: str
    content_hash: str
    source: str
    links: tuple[SeedLinkData, ...] = ()


@dataclass(frozen=True)
class StoredSeed:
    """A stored seed with every link it has, strongest first."""

    seed_id: str
    title: str
    kind: str
    document: str
    source: str
    created_at: datetime
    updated_at: datetime
    links: tuple[SeedLinkData, ...] = ()


class SeedStore(StoreBase):
    """Seed studies and their links."""

    def save_seeds(self, seeds: Sequence[SeedData], now: datetime) -> dict[str, str]:
        """Store seed studies and the links their files name, all or none.

        Returns ``{seed_id: "added" | "updated" | "unchanged"}``. Links a file no longer names
        are dropped; links recorded by commands (search hits, a person's choice) are kept.
        """
        with self._session() as session:
            return {seed.seed_id: _save_seed(session, seed, now) for seed in seeds}

    def add_seed_link(self, seed_id: str, link: SeedLinkData, now: datetime) -> bool:
        """Record a link found by a command; False when a stronger claim already holds it."""
        with self._session() as session:
            row_id = session.scalar(select(SeedRow.id).where(SeedRow.seed_id == seed_id))
            if row_id is None:
                raise StoreError(f"no seed study {seed_id!r} in the store")
            return _upsert_link(session, row_id, link, now)

    def list_seeds(self, seed_ids: Sequence[str] | None = None) -> list[StoredSeed]:
        """Seeds in id order (only ``seed_ids`` when given), each with its links."""
        query = select(SeedRow).order_by(SeedRow.seed_id)
        if seed_ids is not None:
            query = query.where(SeedRow.seed_id.in_(list(seed_ids)))
        with self._session() as session:
            return _stored_seeds(session, session.scalars(query).all())

    def seed_linked_ids(self, registry: str) -> set[str]:
        """The records of ``registry`` some seed links to."""
        query = select(SeedLinkRow.study_id).where(SeedLinkRow.registry_key == registry)
        with self._session() as session:
            return set(session.scalars(query))

    def seeds_linked_to(self, registry: str, study_id: str) -> list[StoredSeed]:
        """The seeds that link to one registry record (for re-comparing them after a sync)."""
        query = (
            select(SeedRow)
            .join(SeedLinkRow, SeedLinkRow.seed_row_id == SeedRow.id)
            .where(SeedLinkRow.registry_key == registry, SeedLinkRow.study_id == study_id)
            .order_by(SeedRow.seed_id)
        )
        with self._session() as session:
            return _stored_seeds(session, session.scalars(query).unique().all())


def _save_seed(session: Session, seed: SeedData, now: datetime) -> str:
    row = session.scalar(select(SeedRow).where(SeedRow.seed_id == seed.seed_id))
    if row is None:
        row = SeedRow(seed_id=seed.seed_id, created_at=now)
        session.add(row)
        verdict = "added"
    else:
        verdict = "unchanged" if row.content_hash == seed.content_hash else "updated"
    if verdict != "unchanged":
        row.title, row.kind, row.document = seed.title, seed.kind, seed.document
        row.content_hash, row.source, row.updated_at = seed.content_hash, seed.source, now
    session.flush()
    _reconcile_file_links(session, row.id, seed.links, now)
    return verdict


def _reconcile_file_links(
    session: Session, seed_row_id: int, links: Sequence[SeedLinkData], now: datetime
) -> None:
    existing = {
        (row.registry_key, row.study_id): row
        for row in session.scalars(
            select(SeedLinkRow).where(SeedLinkRow.seed_row_id == seed_row_id)
        )
    }
    named = {(link.registry, link.study_id) for link in links}
    for key, row in existing.items():
        if row.from_file and key not in named:
            session.delete(row)
    for link in links:
        row = existing.get((link.registry, link.study_id))
        if row is None:
            session.add(_seed_link_row(seed_row_id, link, now, from_file=True))
        elif row.from_file or _outranks(link, row):
            _update_link(row, link, now, from_file=True)


def _upsert_link(session: Session, seed_row_id: int, link: SeedLinkData, now: datetime) -> bool:
    row = session.scalar(
        select(SeedLinkRow).where(
            SeedLinkRow.seed_row_id == seed_row_id,
            SeedLinkRow.registry_key == link.registry,
            SeedLinkRow.study_id == link.study_id,
        )
    )
    if row is None:
        session.add(_seed_link_row(seed_row_id, link, now, from_file=False))
        return True
    if not _outranks(link, row):
        return False
    _update_link(row, link, now, from_file=False)
    return True


def _outranks(link: SeedLinkData, row: SeedLinkRow) -> bool:
    return LINK_AUTHORITY.get(link.source, 0) >= LINK_AUTHORITY.get(row.source, 0)


def _seed_link_row(
    seed_row_id: int, link: SeedLinkData, now: datetime, *, from_file: bool
) -> SeedLinkRow:
    return SeedLinkRow(
        seed_row_id=seed_row_id,
        registry_key=link.registry,
        study_id=link.study_id,
        confidence=link.confidence,
        source=link.source,
        from_file=from_file,
        reasons=_reasons_json(link),
        created_at=now,
        updated_at=now,
    )


def _update_link(row: SeedLinkRow, link: SeedLinkData, now: datetime, *, from_file: bool) -> None:
    stored = _reasons_json(link)
    changed = (row.confidence, row.source, row.reasons) != (link.confidence, link.source, stored)
    row.confidence, row.source, row.reasons = link.confidence, link.source, stored
    row.from_file = from_file
    if changed:
        row.updated_at = now


def _reasons_json(link: SeedLinkData) -> Any:
    """The ``reasons`` column of a link: its reasons, with its relation when it is related."""
    if link.relation == "own":
        return list(link.reasons)
    return {"relation": link.relation, "reasons": list(link.reasons)}


def _relation_and_reasons(stored: Any) -> tuple[str, tuple[str, ...]]:
    """(relation, reasons) of a ``reasons`` column as ``_reasons_json`` wrote it."""
    if isinstance(stored, dict):
        relation = stored.get("relation")
        reasons = stored.get("reasons")
        return (
            relation if isinstance(relation, str) and relation else "own",
            tuple(str(r) for r in reasons) if isinstance(reasons, list) else (),
        )
    return "own", tuple(str(r) for r in stored) if isinstance(stored, list) else ()


def _stored_seeds(session: Session, rows: Sequence[SeedRow]) -> list[StoredSeed]:
    links: dict[int, list[SeedLinkData]] = {row.id: [] for row in rows}
    ids = list(links)
    for start in range(0, len(ids), 500):
        for link in session.scalars(
            select(SeedLinkRow)
            .where(SeedLinkRow.seed_row_id.in_(ids[start : start + 500]))
            .order_by(SeedLinkRow.confidence.desc(), SeedLinkRow.registry_key, SeedLinkRow.study_id)
        ):
            relation, reasons = _relation_and_reasons(link.reasons)
            links[link.seed_row_id].append(
                SeedLinkData(
                    registry=link.registry_key,
                    study_id=link.study_id,
                    confidence=link.confidence,
                    source=link.source,
                    reasons=reasons,
                    from_file=link.from_file,
                    relation=relation,
                )
            )
    return [
        StoredSeed(
            seed_id=row.seed_id,
            title=row.title,
            kind=row.kind,
            document=row.document,
            source=row.source,
            created_at=row.created_at,
            updated_at=row.updated_at,
            links=tuple(links[row.id]),
        )
        for row in rows
    ]
