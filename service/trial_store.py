"""The trials among the watched records, read from the store: grouped from each record's
links first (three columns a record), so only the snapshots of records registered more than
once — or asked for — are read."""

from __future__ import annotations

from collections.abc import Iterable

from service.models import Snapshot
from service.store import Store
from service.trials import Key, Trial, connected, containing, group


def load_trials(store: Store, keys: Iterable[Key] = (), *, min_stored: int = 1) -> list[Trial]:
    """The trials with a registration among ``keys``; without keys, every trial with more than
    one registration. ``min_stored``: only trials with at least that many stored
    registrations (2: those whose registrations can disagree)."""
    wanted = set(keys)
    links = store.watched_links()
    shown: list[list[Key]] = []
    for members in connected(links):
        stored = [key for key in members if key in links]
        if len(stored) < min_stored:
            continue
        if wanted and not wanted.intersection(members):
            continue
        if wanted or len(members) > 1:
            shown.append(stored)
    trials = group(_snapshots(store, [key for members in shown for key in members]))
    return containing(trials, wanted) if wanted else [t for t in trials if len(t.registrations) > 1]


def trial_members(store: Store) -> dict[Key, list[Key]]:
    """Each watched record's trial: the other registrations connected to it by links (either
    way, through any record), named or stored; only records registered more than once."""
    members: dict[Key, list[Key]] = {}
    links = store.watched_links()
    for group_keys in connected(links):
        for key in group_keys:
            if key in links and len(group_keys) > 1:
                members[key] = [k for k in group_keys if k != key]
    return members


def _snapshots(store: Store, keys: list[Key]) -> list[Snapshot]:
    by_registry: dict[str, list[str]] = {}
    for registry, study_id in keys:
        by_registry.setdefault(registry, []).append(study_id)
    return [
        snapshot
        for registry, study_ids in sorted(by_registry.items())
        for snapshot in store.latest_snapshots(registry, study_ids).values()
    ]
