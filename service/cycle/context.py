"""What the phases of one sync cycle share and only read (``Cycle``), and where its changes
are notified (``Routes``). A cycle's state is not here: it is what the phases return."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from service.clock import Clock
from service.findings.keeper import FindingsKeeper
from service.history import HistoryFetcher
from service.models import Change, Route, Snapshot
from service.registry.base import Registry
from service.settings import CtgovSettings, SourceSettings, Subscription
from service.store import NotFound, RecordState, Store
from service.subscriptions import route


class Routes:
    """Where a cycle's changes are to be notified. The watch list's tags (for subscriptions
    that select by tag) are read once, when the cycle first routes a change: a quiet cycle
    never does."""

    def __init__(
        self,
        store: Store,
        registry: str,
        subscriptions: Sequence[Subscription],
        *,
        notify_backfill: bool,
        ids: Sequence[str],
    ) -> None:
        self._store, self._registry, self._ids = store, registry, ids
        self._subscriptions = subscriptions
        self._notify_backfill = notify_backfill
        self._tags: dict[str, tuple[str, ...]] | None = None

    def __call__(self, changes: list[Change], historical: list[bool], now: datetime) -> list[Route]:
        """Where ``changes`` go; those found by backfill (``historical``) only when the
        settings ask for it."""
        if not changes:
            return []
        routes = route(self._subscriptions, changes, self._watch_tags(changes[0].study_id), now)
        if self._notify_backfill or not any(historical):
            return routes
        kept = []
        for r in routes:
            indexes = tuple(i for i in r.change_indexes if not historical[i])
            if indexes:
                kept.append(r.model_copy(update={"change_indexes": indexes}))
        return kept

    def _watch_tags(self, study_id: str) -> tuple[str, ...]:
        if not self._subscriptions:
            return ()
        if self._tags is None:
            self._tags = self._store.watch_tags(self._registry, self._ids)
        return self._tags.get(study_id, ())


@dataclass(frozen=True)
class Cycle:
    """One cycle's settings, services and starting point (see the module docstring)."""

    store: Store
    client: Registry
    settings: CtgovSettings | SourceSettings
    clock: Clock
    history: HistoryFetcher
    findings: FindingsKeeper
    # changes a new version causes beyond its own fields (the seeds that follow the record)
    extra_changes: Callable[[Snapshot, Snapshot], list[Change]]
    routes: Routes
    ids: list[str]  # the studies of this cycle, in watch-list order
    states: Mapping[str, RecordState]  # what is stored of them, read as the cycle began
    started: datetime
    explicit: bool  # asked for some ids only: no base for the next incremental cycle
    dry_run: bool
    run_id: int | None  # its sync_runs row (none on a dry run)
    should_stop: Callable[[], bool]  # asked between studies: yes ends the cycle there
    # the ids the registry said it never had, reported already (not again: a warning)
    not_found: Mapping[str, NotFound] = field(default_factory=dict)

    @property
    def registry(self) -> str:
        return self.client.registry

    @property
    def backfills(self) -> bool:
        """Whether a new record's past versions are queued for the history backfill."""
        return self.settings.history and self.settings.history_backfill

    def watched_id(self, raw: dict[str, Any], watched: Collection[str]) -> str | None:
        """The watched id a returned record answers for: its own, one of its aliases, or the
        one we know it is served for (a probe's answer carries no aliases). ``filter.ids``
        also matches aliases, so a watched id can come back as a record with another id."""
        study_id = self.client.returned_id(raw)
        if study_id in watched:
            return study_id
        alias = next((a for a in self.client.alias_ids(raw) if a in watched), None)
        served_for = self._served_as.get(study_id or "")
        if alias is None and served_for in watched:
            alias = served_for
        return alias

    @cached_property
    def _served_as(self) -> dict[str, str]:
        """The id an aliased record is served under → the watched id it is stored under."""
        return {s.served_id: i for i, s in self.states.items() if s.served_id}
