"""The daemon: APScheduler 3 ``BlockingScheduler`` running sync cycles and deliveries until
SIGTERM/SIGINT.

Jobs are rebuilt from settings at every start, with explicit ids, ``max_instances=1`` and
``coalesce=True`` (a cycle that overruns its slot is not run twice). A signal asks the cycle
in hand to stop after the study it is on; that study is committed and the daemon exits 0.
On PostgreSQL several daemons can share one store: a sync cycle runs on one replica at a time
(an advisory lock) and deliveries are claimed row by row, so every replica can deliver.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from service.app import App
from service.cron import cron_trigger
from service.errors import TrialwatchError
from service.health import HealthCheck, HealthServer
from service.store import run_status

log = logging.getLogger("trialwatch.daemon")


def sync_trigger(app: App) -> BaseTrigger:
    schedule = app.settings.schedule
    if schedule.sync_every_seconds:
        return IntervalTrigger(seconds=schedule.sync_every_seconds, timezone=UTC)
    return cron_trigger(schedule.sync)


def sync_interval(app: App, now: datetime) -> timedelta:
    """The time between two scheduled cycles (for a cron: between its next two fire times)."""
    schedule = app.settings.schedule
    if schedule.sync_every_seconds:
        return timedelta(seconds=schedule.sync_every_seconds)
    trigger = cron_trigger(schedule.sync)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
    return (second - first) if first and second else timedelta(days=1)


class Daemon:
    def __init__(self, app: App, *, health_port: int = 0) -> None:
        self.app = app
        self.health_port = health_port
        self.stopping = threading.Event()
        self._busy = threading.Lock()
        self.scheduler = BlockingScheduler(timezone=UTC)

    def run(self) -> None:
        server = self._start_health_server()
        self._add_jobs()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self._log_schedule()
        try:
            self.scheduler.start()
            with self._busy:  # wait for the cycle in hand to commit its last study
                log.info("stopped")
        finally:
            if server is not None:
                server.stop()

    def _add_jobs(self) -> None:
        common = {"max_instances": 1, "coalesce": True, "replace_existing": True}
        self.scheduler.add_job(
            self.sync_job,
            sync_trigger(self.app),
            id="sync",
            name="sync",
            misfire_grace_time=3600,
            next_run_time=datetime.now(UTC),  # a first cycle at start, then on schedule
            **common,
        )
        self.scheduler.add_job(
            self.deliver_job,
            IntervalTrigger(seconds=self.app.settings.schedule.deliver_every_seconds, timezone=UTC),
            id="deliver",
            name="deliver",
            misfire_grace_time=60,
            **common,
        )

    def _start_health_server(self) -> HealthServer | None:
        if not self.health_port:
            return None
        store, metrics = self.app.store, self.app.metrics
        tolerance = 2 * sync_interval(self.app, self.app.clock())
        health = HealthCheck(store.last_sync_success, tolerance, self.app.clock)
        metrics.watch_gauges(store.gauges)
        host = self.app.settings.daemon.health_host
        return HealthServer(self.health_port, health, metrics.exposition, host=host).start()

    def sync_job(self) -> None:
        with self._busy:
            if self.stopping.is_set():
                return
            with self.app.store.sync_lock() as mine:
                if not mine:
                    log.info("sync: another replica is running a cycle; skipping this one")
                    return
                self._sync()

    def _sync(self) -> None:
        metrics = self.app.metrics
        started = time.monotonic()
        try:
            report = self.app.sync(should_stop=self.stopping.is_set)
        except TrialwatchError as exc:
            metrics.sync_runs.labels("failed").inc()
            log.error("sync failed: %s", exc)
            return
        metrics.sync_duration.observe(time.monotonic() - started)
        metrics.sync_runs.labels(run_status(report.checked, report.failed)).inc()
        for change in report.changes:
            metrics.changes.labels(change.kind).inc()
        log.info(
            "sync: %d checked, %d new, %d changed, %d unchanged, %d failed, %d requests",
            report.checked,
            report.new,
            report.changed,
            report.unchanged,
            report.failed,
            report.requests,
        )

    def deliver_job(self) -> None:
        if self.stopping.is_set():
            return
        try:
            report = self.app.deliver()
        except TrialwatchError as exc:
            log.error("delivery round failed: %s", exc)
            return
        for outcome in report.outcomes:
            self.app.metrics.deliveries.labels(outcome["outcome"]).inc()
        if report.outcomes:
            log.info(
                "deliver: %d sent, %d to retry, %d dead", report.sent, report.retrying, report.dead
            )

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: finishing the study in hand", signal.Signals(signum).name)
        self.stopping.set()
        self.scheduler.shutdown(wait=False)

    def _log_schedule(self) -> None:
        schedule = self.app.settings.schedule
        every = (
            f"every {schedule.sync_every_seconds} s"
            if schedule.sync_every_seconds
            else f"cron '{schedule.sync}' (UTC)"
        )
        log.info(
            "trialwatch daemon started: sync %s, first cycle now; deliveries every %d s",
            every,
            schedule.deliver_every_seconds,
        )
