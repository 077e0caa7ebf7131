"""Which channels hear of which changes: subscriptions matched against change events (pure).

A subscription selects studies (``*``, registry ids, ``tag:NAME``, ``seed:ID`` or
``query:NAME`` — the watch tags), kinds (``*`` or a list), outcome grades (``grades``:
``*`` or a list of ``editorial``/``minor``/``major``; it narrows outcome events only, and an
outcome event without a grade — stored before grading — passes) and a minimum severity. ``*`` means
every kind except ``record_added``: a new watch list of 500 trials should not send 500
alerts; name ``record_added`` to be told of first sightings.

A selector naming a seed or a tag the store does not know would route nothing, silently, so
the daemon and ``notify`` refuse it at start (``unknown_selectors``); so does a ``query:NAME``
naming no saved search.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from service.models import Change, Route, severity_rank
from service.settings import Subscription

QUIET_KINDS = frozenset({"record_added"})


def matches(subscription: Subscription, change: Change, tags: Iterable[str]) -> bool:
    return (
        _study_selected(subscription.studies, change.study_id, set(tags))
        and _kind_selected(subscription.kinds, change.kind)
        and _rule_selected(subscription.findings, change)
        and _grade_selected(subscription.grades, change)
        and severity_rank(change.severity) >= severity_rank(subscription.min_severity)
    )


def _rule_selected(rules: Sequence[str], change: Change) -> bool:
    """``findings = [...]`` narrows finding events to those rules; other kinds pass."""
    if "*" in rules or not change.kind.startswith("finding_"):
        return True
    return change.field.removeprefix("finding:") in rules


def _grade_selected(grades: Sequence[str], change: Change) -> bool:
    """``grades = [...]`` narrows outcome events to those grades; other kinds pass."""
    return "*" in grades or change.grade is None or change.grade in grades


def _study_selected(selectors: Sequence[str], study_id: str, tags: set[str]) -> bool:
    for selector in selectors:
        if selector == "*" or selector.upper() == study_id:
            return True
        if selector.startswith("tag:") and selector[4:] in tags:
            return True
        if selector.startswith(("seed:", "query:")) and selector in tags:
            return True
    return False


def unknown_selectors(
    subscriptions: Sequence[Subscription],
    seeds: set[str],
    tags: set[str],
    searches: set[str] | None = None,
) -> list[str]:
    """One line per ``seed:ID``, ``tag:NAME`` or ``query:NAME`` selector that names no stored
    seed, watch tag or saved search, naming the subscription (1-based, as in the config
    file) and the selector. ``searches`` None: saved searches are not checked."""
    problems = []
    for number, subscription in enumerate(subscriptions, start=1):
        where = f"subscription {number} (channel {subscription.channel!r})"
        for selector in subscription.studies:
            if selector.startswith("seed:") and selector[5:] not in seeds:
                problems.append(
                    f"{where}: studies names {selector!r}, but there is no seed "
                    f"{selector[5:]!r} in the store (see `trialwatch seeds list`; "
                    "`trialwatch seeds load` loads seeds/)"
                )
            elif selector.startswith("tag:") and selector[4:] not in tags:
                problems.append(
                    f"{where}: studies names {selector!r}, but no watched record has the tag "
                    f"{selector[4:]!r} (add it: `trialwatch watch add ID… --tag {selector[4:]}`)"
                )
            elif (
                selector.startswith("query:")
                and searches is not None
                and selector[6:] not in searches
            ):
                problems.append(
                    f"{where}: studies names {selector!r}, but there is no saved search "
                    f"{selector[6:]!r} (see `trialwatch watch query list`)"
                )
    return problems


def _kind_selected(kinds: Sequence[str], kind: str) -> bool:
    return kind in kinds or ("*" in kinds and kind not in QUIET_KINDS)


def route(
    subscriptions: Sequence[Subscription],
    changes: Sequence[Change],
    tags: Iterable[str],
    now: datetime,
) -> list[Route]:
    """One route per channel and mode that any of ``changes`` (all of one study) reaches.

    Two subscriptions of one channel that select the same change queue it once.
    """
    tag_set = set(tags)
    chosen: dict[tuple[str, str], tuple[set[int], datetime]] = {}
    for subscription in subscriptions:
        picked = {i for i, c in enumerate(changes) if matches(subscription, c, tag_set)}
        if not picked:
            continue
        due = now if subscription.mode == "immediate" else next_digest(subscription, now)
        key = (subscription.channel, subscription.mode)
        indexes, earliest = chosen.get(key, (set(), due))
        chosen[key] = (indexes | picked, min(earliest, due))
    for (channel, mode), (indexes, due) in list(chosen.items()):
        if mode == "digest" and (channel, "immediate") in chosen:
            # the channel hears of these at once; the digest must not repeat them
            chosen[(channel, mode)] = (indexes - chosen[(channel, "immediate")][0], due)
    return [
        Route(channel=channel, mode=mode, change_indexes=tuple(sorted(indexes)), due_at=due)
        for (channel, mode), (indexes, due) in sorted(chosen.items())
        if indexes
    ]


def next_digest(subscription: Subscription, now: datetime) -> datetime:
    assert subscription.digest_cron is not None  # settings refuse a digest without one
    from service.cron import cron_trigger  # APScheduler: only where digests are kept

    trigger = cron_trigger(subscription.digest_cron)
    fire = trigger.get_next_fire_time(None, now)
    return fire if fire is not None else now
