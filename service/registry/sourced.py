"""A registry without a version history (EUCTR, CTIS, ISRCTN) seen through the ``Registry``
protocol the sync cycle speaks: one record a request, no probe, no history, no saved
searches, and its change signal (``signal``) in their place.

What the signal carried (ISRCTN answers its ``lastEdited GE`` query with the records) is
handed out by ``iter_batches`` without another request; a record the registry said it does
not have is not asked for twice in one cycle.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from service.errors import RecordNotFound, RegistryError
from service.registry.base import Batch, HistoryEntry, Hits, Listing
from service.registry.catalog import record_meta
from service.registry.source import RecordSource, Signal


class SourceRegistry:
    """``Registry`` over a ``RecordSource`` (see the module docstring)."""

    searchable = False  # saved searches are ClinicalTrials.gov queries

    def __init__(self, source: RecordSource) -> None:
        self.source = source
        self.registry = source.registry
        self._carried: dict[str, dict[str, Any]] = {}
        self._missing: set[str] = set()

    @property
    def requests(self) -> int:
        return self.source.requests

    def signal(self, since: datetime) -> Signal:
        signal = self.source.signal(since)
        self._carried = dict(signal.records)
        self._missing.clear()
        return signal

    def iter_batches(self, study_ids: Sequence[str]) -> Iterator[Batch]:
        for study_id in study_ids:
            carried = self._carried.pop(study_id, None)
            if carried is not None:
                yield Batch([study_id], [carried])
                continue
            try:
                yield Batch([study_id], [self.source.fetch(study_id)])
            except RecordNotFound:
                self._missing.add(study_id)  # asked for alone next, as a 404 is
                yield Batch([study_id], [])
            except RegistryError as exc:
                yield Batch([study_id], [], exc)

    def fetch_study(self, study_id: str) -> dict[str, Any]:
        if study_id in self._missing:
            self._missing.discard(study_id)
            raise RecordNotFound(f"{study_id}: not found in the registry")
        return self.source.fetch(study_id)

    def probe(self, study_ids: Sequence[str]) -> Iterator[Batch]:
        return self.iter_batches(study_ids)

    def batch_size(self) -> int:
        return 1

    def returned_id(self, study: dict[str, Any]) -> str | None:
        try:
            return record_meta(self.registry, study).study_id
        except RegistryError:
            return None

    def alias_ids(self, study: dict[str, Any]) -> list[str]:
        return []

    def posted_date(self, study: dict[str, Any]) -> str | None:
        try:
            return record_meta(self.registry, study).last_update_posted or None
        except RegistryError:
            return None

    def data_timestamp(self) -> str:
        raise RegistryError(f"{self.registry} keeps no data timestamp")

    def changed_since(self, day: str) -> Listing:
        raise RegistryError(f"{self.registry}: ask its change signal instead")

    def matching_ids(self, params: dict[str, str], *, limit: int) -> Hits:
        raise RegistryError(f"saved searches are not kept for {self.registry}")

    def search(self, params: dict[str, str], *, limit: int = 100) -> list[dict[str, Any]]:
        return []

    def history(self, study_id: str) -> list[HistoryEntry]:
        return []

    def history_version(self, study_id: str, version: int) -> dict[str, Any]:
        raise RegistryError(f"{self.registry} keeps no past versions")
