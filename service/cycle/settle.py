"""Settle: which stored records did not move, found as cheaply as the registry allows, so that
only the others are fetched whole.

ClinicalTrials.gov: nothing at all when its data did not change since the last cycle
(``quiet``), its changed-since listing when that is shorter than probing every watched id
(``listing``), else the probe (last-update dates, a batch of ids a request). The weekly full
probe (``full_probe_every``) is the safety net.

A registry without history (EUCTR, CTIS, ISRCTN): its change signal, asked once, settles
every stored record it does not name as changed since that record's last fetch. Fetched
anyway: records never fetched, those due for the weekly refetch (``full_refetch_days``), and
those fetched before what the signal covers (EUCTR's feed: 7 days). A signal of a day's
precision naming a record for the day of its last fetch cannot say whether the change came
before or after that fetch: the record is fetched again. The signal is asked from the start of
that registry's last good cycle (less a day), not from the oldest fetch: that cycle's signal
already vouched for everything before it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from service.cycle.context import Cycle
from service.cycle.fetch import failed_request
from service.errors import RegistryError
from service.problems import Problem
from service.registry.base import Registry
from service.registry.source import Signal
from service.settings import CtgovSettings

log = logging.getLogger(__name__)

LISTING_PAGE = 1000  # records a page of the changed-since listing
# a time-precise change signal names an edit stamped this long before our fetch too: the
# registry's clock and ours may disagree by that much
SIGNAL_SKEW = timedelta(minutes=5)
# the last good cycle's signal is asked again from a day before it: a registry that stamps
# by day (EUCTR, CTIS) cannot say where in that day its change fell
SIGNAL_OVERLAP = timedelta(days=1)


@dataclass
class Settled:
    """What settling found: the stored records settled unchanged without a fetch, the ids to
    fetch in batches, the stored ids the probe did not return (asked for one by one: a 404
    is ``record_unavailable``), how (``cycle``: mode, since) and its problems (the probe's
    failed requests fail their records; the change signal's warnings)."""

    unchanged: list[str] = field(default_factory=list)
    fetch: list[str] = field(default_factory=list)
    alone: list[str] = field(default_factory=list)
    cycle: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


class RegistryStamp:
    """The registry's data timestamp, asked at most once a cycle (the saved searches and the
    settling both go by it); None when it would not say, or the registry keeps none."""

    def __init__(self, client: Registry, ask: bool) -> None:
        self._client = client
        self._ask = ask  # [ctgov] incremental
        self._stamp: str | None = None

    def __call__(self) -> str | None:
        if self._ask:
            self._ask = False
            try:
                self._stamp = self._client.data_timestamp()
            except RegistryError as exc:
                log.info("registry data timestamp unavailable (%s): probing every id", exc)
        return self._stamp

    def cycle(self) -> dict[str, str]:
        """The report's ``cycle.registry_timestamp``, once known (the next cycle's base)."""
        return {} if self._stamp is None else {"registry_timestamp": self._stamp}


def settle(cycle: Cycle, stamp: RegistryStamp) -> Settled:
    """Settle what the registry says did not move (see the module docstring)."""
    settings = cycle.settings
    if isinstance(settings, CtgovSettings) and settings.probe:
        settled = _unmoved(cycle, settings, stamp)
    elif hasattr(cycle.client, "signal") and not cycle.explicit:
        settled = _by_signal(cycle)
    else:
        settled = Settled()
    done = {*settled.unchanged, *settled.alone, *(p.study_id for p in settled.problems)}
    settled.fetch = [i for i in cycle.ids if i not in done]
    return settled


def _unmoved(cycle: Cycle, settings: CtgovSettings, stamp: RegistryStamp) -> Settled:
    known = {
        study_id: state.last_update_posted
        for study_id, state in cycle.states.items()
        if state.content_hash and state.last_update_posted and state.state == "active"
    }
    settled = _incremental(cycle, settings, stamp, known)
    if settled is not None:
        return settled
    settled = _probe(cycle, known)
    if not cycle.explicit:
        settled.cycle["mode"] = "probe"
    return settled


def _incremental(
    cycle: Cycle, settings: CtgovSettings, stamp: RegistryStamp, known: dict[str, str]
) -> Settled | None:
    """Settle ``known`` from the registry's data timestamp or changed-since listing; None
    when the probe must do it (no base cycle, the weekly full probe is due, the listing is
    longer than the probe, or the registry would not say)."""
    if cycle.explicit or not settings.incremental:
        return None
    batch = max(1, cycle.client.batch_size())
    if len(cycle.ids) <= batch:
        return None  # one probe request: as cheap as asking, and it says more
    current = stamp()  # kept with this cycle even when it probes: the next one's base
    probes = -(-len(known) // batch)
    if current is None or probes <= 1:
        return None
    mark = cycle.store.last_cycle_mark(cycle.registry)
    if mark is None or mark.cycles_since_probe + 1 >= settings.full_probe_every:
        return None
    if current == mark.registry_timestamp:
        return Settled(unchanged=_all_but(cycle, known, set()), cycle={"mode": "quiet"})
    overlap = timedelta(days=settings.listing_overlap_days)
    since = (mark.started_at.date() - overlap).isoformat()
    moved = _listed_moves(cycle, known, since, probes)
    if moved is None:
        return None
    return Settled(
        unchanged=_all_but(cycle, known, moved), cycle={"mode": "listing", "since": since}
    )


def _all_but(cycle: Cycle, known: dict[str, str], moved: set[str]) -> list[str]:
    return [i for i in cycle.ids if i in known and i not in moved]


def _listed_moves(cycle: Cycle, known: dict[str, str], since: str, probes: int) -> set[str] | None:
    """The known records the registry lists as posted since ``since`` with another date;
    None when probing (``probes`` requests) is cheaper or the listing fails."""
    client = cycle.client
    try:
        listing = client.changed_since(since)
        pages = -(-listing.total // LISTING_PAGE)
        if pages - 1 > probes:  # the first page is spent either way
            log.info("%d records changed since %s: probing is cheaper", listing.total, since)
            return None
        moved = set()
        for page in listing.pages:
            for raw in page:
                study_id = cycle.watched_id(raw, known)
                if study_id is not None and client.posted_date(raw) != known[study_id]:
                    moved.add(study_id)
    except RegistryError as exc:
        log.warning("changed-since listing failed (%s): probing every watched id", exc)
        return None
    return moved


def _probe(cycle: Cycle, known: dict[str, str]) -> Settled:
    """Ask for the last-update dates of the records already stored (a batch of ids a
    request, a few bytes per study) and settle those whose date has not moved. The stored
    ids the registry did not return are asked for alone, not in a batch that would not
    return them either."""
    probed = [i for i in cycle.ids if i in known]
    settled = Settled()
    done: set[str] = set()
    returned: set[str] = set()
    for batch in cycle.client.probe(probed):
        if batch.error is not None:
            failing = [i for i in batch.requested if i not in done]
            settled.problems += failed_request(failing, batch.error)
            done.update(failing)
            continue
        for raw in batch.studies:
            study_id = cycle.watched_id(raw, known)
            returned.add(study_id or "")
            if study_id is None or study_id in done:
                continue
            if cycle.client.posted_date(raw) == known.get(study_id):
                settled.unchanged.append(study_id)
                done.add(study_id)
    settled.alone = [i for i in probed if i not in returned and i not in done]
    return settled


def _by_signal(cycle: Cycle) -> Settled:
    """Settle by the registry's change signal (see the module docstring)."""
    days = getattr(cycle.settings, "full_refetch_days", 7)
    due = cycle.started - timedelta(days=days)
    known = {
        study_id: state.fetched_at
        for study_id, state in cycle.states.items()
        if state.content_hash and state.state == "active"
        and state.fetched_at is not None and state.fetched_at > due
    }  # fmt: skip
    if not known:
        return Settled()
    try:
        signal: Signal = cycle.client.signal(_signal_since(cycle, known))  # type: ignore[attr-defined]
    except RegistryError as exc:
        log.warning("%s change signal failed (%s): fetching every record", cycle.registry, exc)
        warning = f"change signal unavailable: {exc}; every record fetched"
        return Settled(problems=[Problem.warning("", warning, "registry")])
    settled = Settled(cycle={"mode": "signal"})
    if signal.warning:
        log.warning("%s: %s", cycle.registry, signal.warning)
        settled.problems.append(Problem.warning("", signal.warning, "signal"))
    for study_id, fetched_at in known.items():
        covered = signal.covers_from is None or fetched_at >= signal.covers_from
        if covered and not _moved(signal, study_id, fetched_at):
            settled.unchanged.append(study_id)
    return settled


def _signal_since(cycle: Cycle, known: dict[str, datetime]) -> datetime:
    """Since when to ask the signal: the oldest fetch of the records it is to settle, but no
    earlier than the start of this registry's last good cycle (less a day for registries that
    stamp by day and publish overnight): that cycle's signal already vouched for everything
    before it, so a quiet week costs one short answer a day, not the whole week again."""
    oldest = min(known.values())
    mark = cycle.store.last_cycle_mark(cycle.registry)
    if mark is None or mark.started_at <= oldest:
        return oldest
    return max(oldest, mark.started_at - SIGNAL_OVERLAP)


def _moved(signal: Signal, study_id: str, fetched_at: datetime) -> bool:
    """Whether ``signal`` names a change to a record fetched at ``fetched_at`` that the fetch
    may not have seen (see the module docstring)."""
    stamp = signal.stamps.get(study_id)
    if stamp is None:
        return False
    if signal.precision == "day":
        return stamp[:10] >= fetched_at.date().isoformat()
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return True  # a stamp we cannot read: fetch rather than miss a change
    if when.tzinfo is None:
        when = when.replace(tzinfo=fetched_at.tzinfo)
    return when >= fetched_at - SIGNAL_SKEW
