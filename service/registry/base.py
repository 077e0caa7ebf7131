"""What trialwatch needs of a registry: the seam between the pipeline and one registry's API.

The monitor, the history fetcher, the backfill queue and seed linking depend on this protocol
only; ``service.registry.ctgov`` is its first implementation (ClinicalTrials.gov API v2 and its
record-history API). A second registry (EU CTIS, ISRCTN) is a second implementation plus its
normaliser; the store already keys everything by ``(registry, study_id)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from service.errors import RegistryError


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of a record's version list (the history API)."""

    version: int
    date: str  # the day that version was posted, yyyy-MM-dd
    status: str = ""


@dataclass
class Batch:
    """One page of a batch fetch: the ids asked for and the records the registry returned."""

    requested: list[str]
    studies: list[dict[str, Any]] = field(default_factory=list)
    error: RegistryError | None = None


@dataclass
class Listing:
    """The records changed since a day, registry-wide: ``total`` of them, a page at a time
    (the first page already fetched)."""

    total: int
    pages: Iterator[list[dict[str, Any]]]


@dataclass(frozen=True)
class Hits:
    """The records matching a search: ``total`` of them, their ids (none past a limit)."""

    total: int
    ids: tuple[str, ...]


class Registry(Protocol):
    """A registry client. ``requests`` counts every HTTP request made, retries included."""

    registry: str  # the key the store files its records under ("ctgov")
    requests: int

    def iter_batches(self, study_ids: Sequence[str]) -> Iterator[Batch]:
        """The full records of ``study_ids``, a page at a time; a failed page has ``error``."""
        ...

    def probe(self, study_ids: Sequence[str]) -> Iterator[Batch]:
        """The same, but only what tells whether a record moved (id, last update date)."""
        ...

    def data_timestamp(self) -> str:
        """When the registry's data last changed (an unmoved one: nothing to look at)."""
        ...

    def changed_since(self, day: str) -> Listing:
        """Every record last posted on or after ``day``: ids and posted dates."""
        ...

    def matching_ids(self, params: dict[str, str], *, limit: int) -> Hits:
        """The ids of the records matching a search, unless more than ``limit``."""
        ...

    def batch_size(self) -> int:
        """How many ids one probe request carries."""
        ...

    def fetch_study(self, study_id: str) -> dict[str, Any]:
        """One record alone (follows the registry's redirect for an old id)."""
        ...

    def history(self, study_id: str) -> list[HistoryEntry]:
        """A record's versions, oldest first."""
        ...

    def history_version(self, study_id: str, version: int) -> dict[str, Any]:
        """One past version of a record, as the history API wraps it."""
        ...

    def search(self, params: dict[str, str], *, limit: int = 100) -> list[dict[str, Any]]:
        """Records matching a search, up to ``limit``."""
        ...

    def returned_id(self, study: dict[str, Any]) -> str | None:
        """The id a returned record carries, if well formed."""
        ...

    def alias_ids(self, study: dict[str, Any]) -> list[str]:
        """The other ids a returned record answers to."""
        ...

    def posted_date(self, study: dict[str, Any]) -> str | None:
        """The day a returned (or probed) record was last posted."""
        ...
