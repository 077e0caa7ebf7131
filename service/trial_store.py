"""The trials among the watched records, read from the store: grouped from each record's
links first (three columns a record), so only the snapshots of records registered more than
once — or asked for — are read."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from service.models import Snapshot
from service.store import Store
from service.trials import Key, Trial, by_registry, connected, containing, group, members

log = logging.getLogger(__name__)

# A trial has a few registrations (a registry each, a country's or two): records by the
# hundred naming one id name something else (a programme, a grant, a shared protocol number).
# Such a group is left out of the review of every trial, which would otherwise read and
# compare every one of its records each cycle (a whole registry's 50,000 naming one id: hours).
MAX_REVIEWED_REGISTRATIONS = 200


def load_trials(store: Store, keys: Iterable[Key] = (), *, min_stored: int = 1) -> list[Trial]:
    """The trials with a registration among ``keys``; without keys, every trial with more than
    one registration. ``min_stored``: only trials with at least that many stored
    registrations (2: those whose registrations can disagree)."""
    wanted = set(keys)
    # A trial with two stored registrations or more is made of records that name one another:
    # without keys asked for, the records that name nothing and that nothing names (most of a
    # whole registry) are not read (the trials' review runs every cycle).
    whole = wanted or min_stored < 2
    links = store.watched_links() if whole else store.linked_watched_links()
    shown: list[list[Key]] = []
    for keys_of_trial in connected(links):
        stored = [key for key in keys_of_trial if key in links]
        if len(stored) < min_stored:
            continue
        if not wanted and len(stored) > MAX_REVIEWED_REGISTRATIONS:
            log.warning(
                "%d stored records name one another (through %s …): not one trial's "
                "registrations, left out of the trials' review",
                len(stored),
                ", ".join(":".join(key) for key in keys_of_trial[:3]),
            )
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
