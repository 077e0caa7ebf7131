"""Every registry version, not only the ones a poll happens to see.

A record can change several times between two syncs, and a change can be reverted before
anyone looks. ClinicalTrials.gov keeps every version behind its (undocumented) history API, so:

- **backfill**: a record seen for the first time gets all its past versions, fetched from a
  queue after its current version was stored (``service.backfill``);
- **gap filling**: a record that changed since the last sync is stored with every version
  published in between, so each step is diffed and reported on its own.

The history API is treated as unreliable: any failure or shape drift falls back to the API v2
record alone and is returned as a warning, never raised. Its answers are checked like live
ones: a past version that is a record of another study (its ``nctId`` neither the watched id,
nor the id or an alias of the record the watched id is served as, nor listing the watched id
among its aliases) is refused as drift (``invalid``), and none of that history is stored.

Dates that go backwards (version n+1 posted before version n) or into the future (after
today, a day of tolerance for time zones) are a warning (``dates``), not a refusal: the
versions are still stored in the registry's numbering, which is their order, each with the
posted date its own record carries; the current API v2 record is then placed among them by
content (it is the newest version if their contents agree), never by those dates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from itertools import pairwise

from service.errors import RecordInvalid, RegistryError, RegistryUnavailable, RequestAbandoned
from service.problems import Problem, registry_reason
from service.registry.base import HistoryEntry, Registry
from service.registry.ctgov_normalise import normalise, record_meta
from service.store import NewVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Versions:
    """Versions to store, oldest first, ending with the current one; ``problem`` (a warning)
    when the history API could not be used and only the current version is there, or when
    its dates cannot be trusted (reason ``dates``: the versions are all there)."""

    versions: list[NewVersion]
    problem: Problem | None = None
    transient: bool = False  # the history API was unreachable: worth another try later
    # how many of ``versions`` were already posted when the current record was fetched: a
    # version published while a (slow) first sync was under way is news, not the past
    past: int = 1
    # the registry number found for the stored version gap filling went on from, when it was
    # stored without one (see ``HistoryFetcher.gap``)
    anchored: int | None = None
    # the history request was abandoned (trialwatch is stopping): store nothing, so that the
    # next cycle fills the gap (the current version alone would skip the versions between)
    abandoned: bool = False

    @property
    def complete(self) -> bool:
        """Whether every version is there (no problem, or one about the history's dates)."""
        return self.problem is None or self.problem.reason == "dates"


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
            known = after if isinstance(after, int) else after.number
            looked_at = [e for e in entries if known is None or e.version >= known]
            problem = dates_problem(looked_at, self.clock().date())
            place = _Placing(study_id, self._own_ids(study_id, current), by_date=problem is None)
            number = after if isinstance(after, int) else self._anchor(place, entries, after)
            if number is None:  # the stored version is not in the list: compare with it alone
                return self._with_dates(Versions([current]), place, problem)
            newer = [e for e in entries if e.version > number]
            # no newer entry: the history API lags behind API v2
            found = self._fetch(place, newer, current, upto_current) if newer else None
            found = found or Versions([current])
            if isinstance(after, StoredAnchor) and after.number is None:
                found = replace(found, anchored=number)
            return self._with_dates(found, place, problem)
        except RegistryError as exc:
            warning = f"{study_id}: history unavailable, compared with the last version only: {exc}"
            log.warning("%s", warning)
            # drift (invalid) or unreachable (registry): the current version alone is compared
            problem = Problem.warning(study_id, warning, registry_reason(exc))
            return Versions(
                [current],
                problem,
                transient=isinstance(exc, RegistryUnavailable),
                abandoned=isinstance(exc, RequestAbandoned),
            )

    def _own_ids(self, study_id: str, current: NewVersion) -> frozenset[str]:
        """The ids a past version of ``study_id`` may carry: the watched id, and the id and
        aliases of its current record (stored under the watched id once checked)."""
        served = self.client.returned_id(current.raw)
        return frozenset({study_id, *self.client.alias_ids(current.raw), *filter(None, [served])})

    @staticmethod
    def _with_dates(found: Versions, place: _Placing, problem: str | None) -> Versions:
        if problem is None or found.problem is not None:
            return found
        warning = (
            f"{place.study_id}: history dates out of order ({problem}); versions kept in the "
            "registry's numbering, the current record placed by content"
        )
        log.warning("%s", warning)
        return replace(found, problem=Problem.warning(place.study_id, warning, "dates"))

    def _fetch(
        self, place: _Placing, newer: list[HistoryEntry], current: NewVersion, upto_current: bool
    ) -> Versions:
        """Fetch the ``newer`` versions, placing ``current`` (the API v2 record) among them:
        by its posted date, else by content. The history list and API v2 may each be ahead."""
        at = self._place(place, newer, current.last_update_posted, current.snapshot.content_hash())
        if at is None:  # API v2 is ahead of the history list
            versions = [self._version(place, e) for e in newer] + [current]
            return Versions(versions, past=len(versions))
        if upto_current:
            newer = newer[: at + 1]
        versions = [
            replace(current, registry_version=e.version) if i == at else self._version(place, e)
            for i, e in enumerate(newer)
        ]
        return Versions(versions, past=at + 1)

    def _anchor(
        self, place: _Placing, entries: list[HistoryEntry], stored: StoredAnchor
    ) -> int | None:
        """The registry number of the newest stored version. A version stored before its
        record's past was backfilled (the queue is long after a first load, or the process
        stopped in between) has none yet: it is placed in the list as backfill would place
        it, or every version published since would be lost to a diff with it alone."""
        if stored.number is not None:
            return stored.number
        if not entries or not stored.posted:  # no date: any place would be a guess
            return None
        at = self._place(place, entries, stored.posted, stored.content_hash)
        return None if at is None else entries[at].version

    def _place(
        self, place: _Placing, newer: list[HistoryEntry], posted: str, content_hash: str
    ) -> int | None:
        """The index in ``newer`` of the version posted on ``posted`` with ``content_hash``,
        or None if it is newer than the list. Dates that cannot be trusted are not used."""
        if place.by_date:
            same_day = [i for i, e in enumerate(newer) if e.date == posted]
            if same_day:
                return same_day[-1]
            if posted and posted < newer[-1].date:
                earlier = [i for i, e in enumerate(newer) if e.date < posted]
                return earlier[-1] if earlier else 0
        newest = self._version(place, newer[-1])  # no dates to go by: compare content
        if newest.snapshot.content_hash() == content_hash:
            return len(newer) - 1
        return None

    def _version(self, place: _Placing, entry: HistoryEntry) -> NewVersion:
        """One past version; ``RecordInvalid`` when it is a record of another study."""
        study_id = place.study_id
        wrapper = self.client.history_version(study_id, entry.version)
        snapshot = normalise(wrapper)
        if snapshot.study_id not in place.own_ids and study_id not in self.client.alias_ids(
            wrapper["study"]
        ):
            raise RecordInvalid(
                f"{study_id}: history version {entry.version} is a record of "
                f"{snapshot.study_id}, not of {study_id} or its aliases; its history not stored"
            )
        if snapshot.study_id != study_id:  # an alias's: kept under the watched id
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


@dataclass(frozen=True)
class _Placing:
    """How the versions of one record are fetched and placed: the ids its past versions may
    carry, and whether the history's dates can be used to place the current record."""

    study_id: str
    own_ids: frozenset[str]
    by_date: bool = True


# a version posted "tomorrow" is a time zone away, not the future
DATE_TOLERANCE = timedelta(days=1)


def dates_problem(entries: list[HistoryEntry], today: date) -> str | None:
    """What is wrong with the dates of a version list (oldest first), or None: a date that is
    not yyyy-MM-dd, a version posted before the one it follows, one posted in the future."""
    days: list[date] = []
    for entry in entries:
        try:
            days.append(date.fromisoformat(entry.date))
        except ValueError:
            return f"version {entry.version} has no date ({entry.date[:20]!r})"
    for (before, day), (after, next_day) in pairwise(zip(entries, days, strict=True)):
        if next_day < day:
            return (
                f"version {after.version} dated {after.date}, "
                f"before version {before.version} ({before.date})"
            )
    latest = today + DATE_TOLERANCE
    future = next((e for e, day in zip(entries, days, strict=True) if day > latest), None)
    if future is not None:
        return f"version {future.version} dated {future.date}, after today ({today.isoformat()})"
    return None
