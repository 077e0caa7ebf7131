"""Prometheus metrics of one trialwatch process (a registry of its own, not the global one).

Counters are fed by the daemon's jobs; the outbox depth and last-success gauges are read at
scrape time so that they are true whichever replica did the work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.models import CHANGE_KINDS


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._gauges: Callable[[], dict[str, float]] | None = None
        self.sync_runs = Counter(
            "trialwatch_sync_runs", "Sync cycles by outcome.", ["outcome"], registry=self.registry
        )
        self.sync_duration = Histogram(
            "trialwatch_sync_duration_seconds",
            "Wall time of sync cycles.",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
            registry=self.registry,
        )
        self.changes = Counter(
            "trialwatch_changes", "Change events found, by kind.", ["kind"], registry=self.registry
        )
        self.registry_requests = Counter(
            "trialwatch_registry_requests",
            "HTTP requests to the registry, by answer (status code, or 'error' for no answer).",
            ["status"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "trialwatch_deliveries",
            "Notification deliveries by outcome (sent, retrying, dead).",
            ["outcome"],
            registry=self.registry,
        )
        self.cycle_requests = Counter(
            "trialwatch_cycle_requests",
            "Registry requests of sync cycles, by how the watch list was settled (quiet: the "
            "registry's data did not move; listing: its changes since the last cycle; probe: "
            "every watched id).",
            ["mode"],
            registry=self.registry,
        )
        for mode in ("quiet", "listing", "probe"):
            self.cycle_requests.labels(mode)
        for kind in CHANGE_KINDS:
            self.changes.labels(kind)
        for outcome in ("sent", "retrying", "dead"):
            self.deliveries.labels(outcome)
        for outcome in ("ok", "partial", "failed"):
            self.sync_runs.labels(outcome)

    def watch_gauges(self, read: Callable[[], dict[str, float]]) -> None:
        """Gauges computed at scrape time by ``read`` (name → value, help in the name)."""
        self._gauges = read

    def exposition(self, gauges: Callable[[], dict[str, float]] | None = None) -> bytes:
        """The counters, and the gauges read now by ``gauges`` (the web app's pages read
        them through a store of their own, under its statement timeout), else by the
        watched reader."""
        counted = generate_latest(self.registry)
        read = gauges or self._gauges
        if read is None:
            return counted
        gauged = CollectorRegistry()
        gauged.register(_ReadAtScrape(read))
        return counted + generate_latest(gauged)


class _ReadAtScrape(Collector):
    HELP: ClassVar[dict[str, str]] = {
        "trialwatch_outbox_pending": "Notifications waiting to be delivered.",
        "trialwatch_outbox_dead": "Notifications in the dead letters.",
        "trialwatch_last_sync_success_timestamp_seconds": "When a sync cycle last succeeded.",
        "trialwatch_watched_records": "Records on the watch list.",
        "trialwatch_backfill_pending": "Records whose past versions are still to be fetched.",
        "trialwatch_backfill_failed": "Records whose past versions the history API could not give.",
    }

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, value in self.read().items():
            yield GaugeMetricFamily(name, self.HELP.get(name, name), value=value)
