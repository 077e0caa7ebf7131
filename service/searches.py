"""Saved searches: "tell me about every trial of this condition or intervention", as the
registry's own subscriptions are, refreshed at each cycle.

A search is registry query parameters (``query.cond``, ``query.intr``, ``query.term``,
``query.spons``, ``filter.advanced``). At the start of a cycle over the whole watch list, each
search whose registry data moved since its last refresh is asked for the ids it matches; a
record that newly matches is watched with the tag ``query:NAME`` (so the same cycle fetches it)
and gives ``query_matched``; one that matched and no longer does gives ``query_unmatched``
(and stays watched). A quiet registry (its data timestamp unmoved) costs nothing extra. A
search matching more than ``[ctgov] max_query_matches`` records is refused when it is saved,
and skipped with a warning should it grow past that later. The ids the registry actually
returns count, not only its ``totalCount``; a listing that would not end (a page token given
twice, an empty page naming a next one, more pages than the count allows) is ``invalid``:
refused when saving (exit 1, one line), a warning for that search alone in a sync.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from service.errors import InputError, RegistryError
from service.models import Change, Route, StoredChange
from service.problems import Problem, registry_reason
from service.registry.base import Registry
from service.store import SearchInfo, Store

log = logging.getLogger(__name__)

NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?", re.ASCII)
CRITERIA = {  # option → registry parameter
    "cond": "query.cond",
    "intr": "query.intr",
    "term": "query.term",
    "spons": "query.spons",
    "advanced": "filter.advanced",
}

Router = Callable[[str, list[Change]], list[Route]]


@dataclass
class Refresh:
    """What the searches found at the start of a cycle, by search name."""

    entered: dict[str, list[str]] = field(default_factory=dict)
    left: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)  # a search not refreshed: why


def search_params(criteria: dict[str, str | None]) -> dict[str, str]:
    """The registry parameters of a search's criteria; an empty search is bad input."""
    params = {CRITERIA[k]: v.strip() for k, v in criteria.items() if v and v.strip()}
    if not params:
        raise InputError(
            "a saved search needs at least one of --cond, --intr, --term, --spons, --advanced"
        )
    return params


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise InputError(
            f"{name!r} is not a search name (lowercase letters, digits and hyphens, e.g. lung-il2)"
        )
    return name


class SavedSearches:
    def __init__(
        self,
        store: Store,
        client: Registry,
        *,
        clock: Callable[[], datetime],
        max_matches: int,
        router: Router = lambda _study, _changes: [],
    ) -> None:
        self.store = store
        self.client = client
        self.registry = client.registry
        self.clock = clock
        self.max_matches = max_matches
        self.router = router

    def add(self, name: str, params: dict[str, str]) -> int:
        """Save a search after asking the registry how many records it matches now."""
        check_name(name)
        if any(s.name == name for s in self.store.list_searches()):
            raise InputError(f"a saved search named {name!r} exists already")
        hits = self.client.matching_ids(params, limit=self.max_matches)
        if hits.total > self.max_matches:
            raise InputError(
                f"search {name!r} matches {hits.total:,} records, more than [ctgov] "
                f"max_query_matches ({self.max_matches:,}): narrow it down"
            )
        self.store.add_search(self.registry, name, params, self.clock())
        return hits.total

    def refresh(self, registry_stamp: Callable[[], str | None]) -> Refresh:
        """Bring every search up to date; new matches are watched (tag ``query:NAME``).
        ``registry_stamp`` (the registry's data timestamp) is asked only if there are any."""
        found = Refresh()
        searches = self.store.list_searches(self.registry)
        stamp = registry_stamp() if searches else None
        for search in searches:
            if stamp is not None and search.refreshed_stamp == stamp:
                continue  # the registry's data did not move since this search last looked
            try:
                self._refresh_one(search, stamp, found)
            except RegistryError as exc:  # that search's problem: the others are refreshed
                warning = f"saved search {search.name!r} not refreshed: {exc}"
                log.warning("%s", warning)
                found.warnings.append(Problem.warning("", warning, registry_reason(exc)))
        return found

    def _refresh_one(self, search: SearchInfo, stamp: str | None, found: Refresh) -> None:
        hits = self.client.matching_ids(search.params, limit=self.max_matches)
        if hits.total > self.max_matches:
            warning = (
                f"saved search {search.name!r} now matches {hits.total:,} records, more than "
                f"max_query_matches ({self.max_matches:,}): not refreshed"
            )
            found.warnings.append(Problem.warning("", warning, "too_broad"))
            return
        before, now_ids = set(search.matches), set(hits.ids)
        entered = sorted(now_ids - before)
        left = sorted(before - now_ids)
        now = self.clock()
        if entered:
            self.store.add_watches(self.registry, entered, [f"query:{search.name}"], now)
        self.store.set_search_matches(search.name, entered, left, now, stamp)
        if entered:
            found.entered[search.name] = entered
        if left:
            found.left[search.name] = left

    def events(self, found: Refresh, run_id: int | None) -> list[StoredChange]:
        """``query_matched`` / ``query_unmatched`` for the records now stored."""
        stored: list[StoredChange] = []
        for name, ids in found.entered.items():
            for study_id in ids:
                stored += self._event(study_id, _matched(self.registry, name, study_id), run_id)
        for name, ids in found.left.items():
            for study_id in ids:
                stored += self._event(study_id, _unmatched(self.registry, name, study_id), run_id)
        return stored

    def _event(self, study_id: str, change: Change, run_id: int | None) -> list[StoredChange]:
        routes = self.router(study_id, [change])
        saved = self.store.save_events(
            self.registry, study_id, [change], routes, run_id, self.clock()
        )
        if not saved:  # not stored (its fetch failed): said in the cycle's errors already
            log.info("%s: %s not recorded, the record is not stored", study_id, change.kind)
        return saved


def _matched(registry: str, name: str, study_id: str) -> Change:
    return Change(
        registry=registry,
        study_id=study_id,
        kind="query_matched",
        field=f"query:{name}",
        old=None,
        new=study_id,
        severity="medium",
        summary=f"Now matches saved search {name!r}",
    )


def _unmatched(registry: str, name: str, study_id: str) -> Change:
    return Change(
        registry=registry,
        study_id=study_id,
        kind="query_unmatched",
        field=f"query:{name}",
        old=study_id,
        new=None,
        severity="low",
        summary=f"No longer matches saved search {name!r} (still watched)",
    )
