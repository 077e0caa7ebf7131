"""Saved searches: registry queries refreshed every cycle, and the records each matches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from service.errors import StoreConflict
from service.store.base import StoreBase
from service.store.tables import SearchMatchRow, SearchRow


@dataclass(frozen=True)
class SearchInfo:
    name: str
    registry: str
    params: dict[str, str]
    created_at: datetime
    refreshed_at: datetime | None
    refreshed_stamp: str | None
    matches: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "registry": self.registry,
            "params": self.params,
            "created_at": self.created_at.isoformat(),
            "refreshed_at": self.refreshed_at.isoformat() if self.refreshed_at else None,
            "matches": len(self.matches),
            "study_ids": list(self.matches),
        }


class SearchStore(StoreBase):
    """Saved searches and their matches."""

    def add_search(self, registry: str, name: str, params: dict[str, str], now: datetime) -> None:
        with self._session() as session:
            if session.scalar(select(SearchRow.id).where(SearchRow.name == name)) is not None:
                raise StoreConflict(f"a saved search named {name!r} exists already")
            session.add(SearchRow(registry_key=registry, name=name, params=params, created_at=now))

    def remove_search(self, name: str) -> bool:
        """Forget a search (the records it brought in stay watched)."""
        with self._session() as session:
            row = session.scalar(select(SearchRow).where(SearchRow.name == name))
            if row is None:
                return False
            session.execute(delete(SearchMatchRow).where(SearchMatchRow.search_id == row.id))
            session.delete(row)
            return True

    def list_searches(self, registry: str | None = None) -> list[SearchInfo]:
        query = select(SearchRow).order_by(SearchRow.name)
        if registry is not None:
            query = query.where(SearchRow.registry_key == registry)
        with self._session() as session:
            rows = list(session.scalars(query))
            matches: dict[int, list[str]] = {}
            for search_id, study_id in session.execute(
                select(SearchMatchRow.search_id, SearchMatchRow.study_id).order_by(
                    SearchMatchRow.study_id
                )
            ):
                matches.setdefault(search_id, []).append(study_id)
            return [
                SearchInfo(
                    r.name,
                    r.registry_key,
                    dict(r.params),
                    r.created_at,
                    r.refreshed_at,
                    r.refreshed_stamp,
                    tuple(matches.get(r.id, [])),
                )
                for r in rows
            ]

    def set_search_matches(
        self,
        name: str,
        added: Sequence[str],
        removed: Sequence[str],
        now: datetime,
        stamp: str | None,
    ) -> None:
        with self._session() as session:
            row = session.scalar(select(SearchRow).where(SearchRow.name == name))
            if row is None:
                return
            row.refreshed_at, row.refreshed_stamp = now, stamp
            if removed:
                session.execute(
                    delete(SearchMatchRow).where(
                        SearchMatchRow.search_id == row.id,
                        SearchMatchRow.study_id.in_(list(removed)),
                    )
                )
            session.add_all(
                SearchMatchRow(search_id=row.id, study_id=study_id, matched_at=now)
                for study_id in added
            )
