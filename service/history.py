"""Every registry version, not only the ones a poll happens to see.

A record can change several times between two syncs, and a change can be reverted before
anyone looks. ClinicalTrials.gov keeps every version behind its (undocumented) history API, so:

- **backfill**: a record seen for the first time gets all its past versions, fetched from a
  queue after its current version was stored (``service.backfill``);
- **gap filling**: a record that changed since the last sync is stored with every version
  published in between, so each step is diffed and reported on its own.

The history API is treated as unreliable: any failure or shape drift falls back to the API v2
record alone and is returned as a warning, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from service.errors import RecordInvalid, RegistryError, RegistryUnavailable
from service.registry.base import HistoryEntry, Registry
from service.registry.ctgov_normalise import normalise, record_meta
from service.store import NewVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Versions:
    """Versions to store, oldest first, ending with the current one; ``warning`` when the
    history API could not be used and only the current version is there."""

    versions: list[NewVersion]
    warning: str | None = None
    drifted: bool = False  # the history API answered, but not in the shape it had
    transient: bool = False  # the history API was unreachable: worth another try later
    # how many of ``versions`` were already posted when the current record was fetched: a
    # version published while a (slow) first sync was under way is news, not the past
    past: int = 1
    # the registry number found for the stored version gap filling went on from, when it was
    # stored without one (see ``HistoryFetcher.gap``)
    anchored: int | None = None


@dataclass(frozen=True)
class StoredAnchor:
    """The newest stored version of a record, which gap filling goes on from."""

    number: int | None  # its registry number, once known
    posted: str  # its last-update-posted date, yyyy-MM-dd ("" when unknown)
    content_hash: str


class HistoryFetcher:
    def __init__(self, client: Registry, clock: Callable[[], datetime]) -> None:
        self.client = client
        self.clock = clock

    def backfill(self, study_id: str, current: NewVersion) -> Versions:
        """The versions of a record up to ``current`` (its earliest stored one), which ends
        the list with its registry number set; versions newer than it are left to gap
        filling. ``past`` counts the versions, ``current`` included."""
        return self._versions_after(study_id, -1, current, upto_current=True)

    def gap(self, study_id: str, stored: StoredAnchor, current: NewVersion) -> Versions:
        """The versions published since the newest stored one, ``stored``; when that was
        stored without its registry number, the number found for it is ``anchored``."""
        return self._versions_after(study_id, stored, current)

    def _versions_after(
        self,
        study_id: str,
        after: int | StoredAnchor,
        current: NewVersion,
        *,
        upto_current: bool = False,
    ) -> Versions:
        try:
            entries = self.client.history(study_id)
            number = after if isinstance(after, int) else self._anchor(study_id, entries, after)
            if number is None:  # the stored version is not in the list: compare with it alone
                return Versions([current])
            newer = [e for e in entries if e.version > number]
            # no newer entry: the history API lags behind API v2
            found = self._fetch(study_id, newer, current, upto_current) if newer else None
            found = found or Versions([current])
            if isinstance(after, StoredAnchor) and after.number is None:
                found = replace(found, anchored=number)
            return found
        except RegistryError as exc:
            warning = f"{study_id}: history unavailable, compared with the last version only: {exc}"
            log.warning("%s", warning)
            return Versions(
                [current],
                warning,
                drifted=isinstance(exc, RecordInvalid),
                transient=isinstance(exc, RegistryUnavailable),
            )

    def _fetch(
        self, study_id: str, newer: list[HistoryEntry], current: NewVersion, upto_current: bool
    ) -> Versions:
        """Fetch the ``newer`` versions, placing ``current`` (the API v2 record) among them:
        by its posted date, else by content. The history list and API v2 may each be ahead."""
        place = self._place(
            study_id, newer, current.last_update_posted, current.snapshot.content_hash()
        )
        if place is None:  # API v2 is ahead of the history list
            versions = [self._version(study_id, e) for e in newer] + [current]
            return Versions(versions, past=len(versions))
        if upto_current:
            newer = newer[: place + 1]
        versions = [
            replace(current, registry_version=e.version)
            if i == place
            else self._version(study_id, e)
            for i, e in enumerate(newer)
        ]
        return Versions(versions, past=place + 1)

    def _anchor(
        self, study_id: str, entries: list[HistoryEntry], stored: StoredAnchor
    ) -> int | None:
        """The registry number of the newest stored version. A version stored before its
        record's past was backfilled (the queue is long after a first load, or the process
        stopped in between) has none yet: it is placed in the list as backfill would place
        it, or every version published since would be lost to a diff with it alone."""
        if stored.number is not None:
            return stored.number
        if not entries or not stored.posted:  # no date: any place would be a guess
            return None
        place = self._place(study_id, entries, stored.posted, stored.content_hash)
        return None if place is None else entries[place].version

    def _place(
        self, study_id: str, newer: list[HistoryEntry], posted: str, content_hash: str
    ) -> int | None:
        """The index in ``newer`` of the version posted on ``posted`` with ``content_hash``,
        or None if it is newer than the list."""
        same_day = [i for i, e in enumerate(newer) if e.date == posted]
        if same_day:
            return same_day[-1]
        if posted and posted < newer[-1].date:
            earlier = [i for i, e in enumerate(newer) if e.date < posted]
            return earlier[-1] if earlier else 0
        newest = self._version(study_id, newer[-1])  # no dates to go by: compare content
        if newest.snapshot.content_hash() == content_hash:
            return len(newer) - 1
        return None

    def _version(self, study_id: str, entry: HistoryEntry) -> NewVersion:
        wrapper = self.client.history_version(study_id, entry.version)
        snapshot = normalise(wrapper)
        if snapshot.study_id != study_id:
            snapshot = snapshot.model_copy(update={"study_id": study_id})
        meta = record_meta(wrapper)
        return NewVersion(
            registry=self.client.registry,
            snapshot=snapshot,
            raw=wrapper["study"],
            registry_version=entry.version,
            last_update_posted=meta.last_update_posted or entry.date,
            fetched_at=self.clock(),
        )
