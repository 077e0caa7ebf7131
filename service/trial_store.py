"""The trials among the watched records, read from the store: grouped from each record's
links first (three columns a record), so only the snapshots of records registered more than
once — or asked for — are read."""

from __future__ import annotations

from collections.abc import Iterable

from service.models import Snapshot
from service.store import Store
from service.trials import Key, Trial, by_registry, connected, containing, group, members


def load_trials(store: Store, keys: Iterable[Key] = (), *, min_stored: int = 1) -> list[Trial]:
    """The trials with a registration among ``keys``; without keys, every trial with more than
    one registration. ``min_stored``: only trials with at least that many stored
    registrations (2: those whose registrations can disagree)."""
    wanted = set(keys)
    links = store.watched_links()
    shown: list[list[Key]] = []
    for keys_of_trial in connected(links):
        stored = [key for key in keys_of_trial if key in links]
        if len(stored) < min_stored:
            continue
        if wanted and not wanted.intersection(keys_of_trial):
            continue
        if wanted or len(keys_of_trial) > 1:
            shown.append(stored)
    trials = group(snapshots(store, [key for stored in shown for key in stored]))
    return containing(trials, wanted) if wanted else [t for t in trials if len(t.registrations) > 1]


def trial_members(store: Store) -> dict[Key, list[Key]]:
    """Each watched record's trial: the other registrations connected to it (``members``)."""
    return members(store.watched_links())


def snapshots(store: Store, keys: Iterable[Key]) -> list[Snapshot]:
    """The latest stored snapshot of each record of ``keys`` that has one."""
    return [
        snapshot
        for registry, study_ids in sorted(by_registry(keys).items())
        for snapshot in store.latest_snapshots(registry, study_ids).values()
    ]
