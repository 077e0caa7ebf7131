"""The daemon: APScheduler 3 ``BlockingScheduler`` running sync cycles and deliveries until
SIGTERM/SIGINT.

Jobs are rebuilt from settings at every start, with explicit ids, ``max_instances=1`` and
``coalesce=True`` (a cycle that overruns its slot is not run twice). A signal asks the cycle
in hand to stop after the study it is on; that study is committed and the daemon exits 0.
The signal also sets the app's stop event, which every registry request and delivery in
flight watches (``service.deadline``): one that hangs is abandoned within a fraction of a
second rather than at its deadline, so the daemon stops within seconds whatever the
servers do. An abandoned request fails its studies like any registry failure, the cycle ends
there, and its run is finished, not left ``running``.
On PostgreSQL several daemons can share one store: a sync cycle runs on one replica at a time
(an advisory lock) and deliveries are claimed row by row, so every replica can deliver.

A cycle that fails as a whole (the registry unreachable, the store gone) is retried after
1 minute, then 2, 4, … up to the schedule's interval, rather than at the next scheduled time
(a daily cron would otherwise leave the watch list unchecked for a day).
``TRIALWATCH_SYNC_RETRY_SECONDS`` sets the first delay (tests, impatient operators).
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from service.app import App
from service.cron import cron_trigger
from service.errors import ConfigError, TrialwatchError
from service.health import CycleResult, HealthCheck, HealthServer, SyncState
from service.monitor import SyncReport
from service.store import run_status

if TYPE_CHECKING:
    from service.web.server import WebServer

log = logging.getLogger("trialwatch.daemon")

RETRY_ENV = "TRIALWATCH_SYNC_RETRY_SECONDS"
RETRY_FIRST = timedelta(minutes=1)
RETRY_JOB = "sync-retry"


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


def retry_delay(failures: int, first: timedelta, interval: timedelta) -> timedelta:
    """The wait before retrying after ``failures`` wholly failed cycles in a row: ``first``,
    doubling, never beyond the schedule's ``interval``."""
    doublings = min(max(failures - 1, 0), 40)  # 2**40 minutes is past any interval
    return min(first * 2**doublings, interval)


def retry_first(environ: Mapping[str, str]) -> timedelta:
    """The first retry delay: ``TRIALWATCH_SYNC_RETRY_SECONDS`` (0.1 s to 1 day), else 60 s."""
    value = environ.get(RETRY_ENV, "").strip()
    if not value:
        return RETRY_FIRST
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0.1 <= seconds <= 86_400:  # NaN fails this too
        raise ConfigError(f"{RETRY_ENV}={value!r}: not a number of seconds from 0.1 to 86400")
    return timedelta(seconds=seconds)


def failure_summary(report: SyncReport) -> str:
    """One line saying why every study of a cycle failed (the first reason, and how many)."""
    errors = [p for p in report.problems if p.is_error]
    if not errors:
        return "every study failed"
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"every study failed ({first.reason}): {first.message}{more}"


class Daemon:
    def __init__(
        self, app: App, *, health_port: int = 0, environ: Mapping[str, str] | None = None
    ) -> None:
        self.app = app
        self.health_port = health_port
        self.environ = os.environ if environ is None else environ
        self.retry_first = retry_first(self.environ)
        # the app's: its registry client and senders abandon what is in flight once it is set
        self.stopping = app.stopping
        self._busy = threading.Lock()
        self.scheduler = BlockingScheduler(timezone=UTC)
        self.state = SyncState()

    def run(self) -> None:
        self.app.check_subscriptions()  # a wrong subscription stops the daemon before it starts
        self._check_ports()
        health = self._health_check()
        server = self._start_health_server(health)
        web = self._start_web(health)
        self._add_jobs()
        threading.Thread(target=self._stop_when_asked, name="stopper", daemon=True).start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        # what every thread is doing, on stderr, for a daemon that seems stuck (C level: it
        # answers even while the main thread waits on a lock)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        self._log_schedule()
        try:
            self.scheduler.start()
            with self._busy:  # wait for the cycle in hand to commit its last study
                log.info("stopped")
        finally:
            if web is not None:
                web.stop()
            if server is not None:
                server.stop()

    def _check_ports(self) -> None:
        """The web app and the probes on one port: each would take it from the other (the
        second bind fails), so that is a wrong setting, named as such, before either starts."""
        web_port = self.app.settings.web.port
        if self.health_port and web_port == self.health_port:
            raise ConfigError(
                f"[web] port and [daemon] health_port (or --health-port) are both {web_port}: "
                "give each its own port, or leave health_port unset (the web app serves "
                "/healthz, /readyz and /metrics too)"
            )

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
        # the planner's statistics drift as the store grows (a first load, saved searches):
        # refreshed daily, so pages and cycles keep their plans in a daemon that runs for months
        self.scheduler.add_job(
            self.app.store.refresh_planner_statistics,
            IntervalTrigger(days=1, timezone=UTC),
            id="planner-statistics",
            name="planner statistics",
            misfire_grace_time=3600,
            **common,
        )
        ctgov = self.app.settings.ctgov
        if ctgov.history and ctgov.history_backfill:
            self.scheduler.add_job(
                self.backfill_job,
                IntervalTrigger(seconds=ctgov.history_backfill_every_seconds, timezone=UTC),
                id="backfill",
                name="backfill",
                misfire_grace_time=60,
                **common,
            )

    def _health_check(self) -> HealthCheck:
        store = self.app.store
        return HealthCheck(
            state=self.state,
            last_success=store.last_sync_success,
            store_check=store.check,
            scheduler_running=lambda: self.scheduler.running and not self.stopping.is_set(),
            next_sync_at=self.next_sync_at,
            tolerance=2 * sync_interval(self.app, self.app.clock()),
            clock=self.app.clock,
        )

    def _start_health_server(self, health: HealthCheck) -> HealthServer | None:
        if not self.health_port:
            return None
        metrics = self.app.metrics
        metrics.watch_gauges(self.app.store.gauges)
        host = self.app.settings.daemon.health_host
        return HealthServer(self.health_port, health, metrics.exposition, host=host).start()

    def _start_web(self, health: HealthCheck) -> WebServer | None:
        """The web app, with the probes and metrics, when ``[web] port`` is set."""
        web = self.app.settings.web
        if web.port is None:
            return None
        from service.web.server import WebServer

        return WebServer(self.app, web.host, web.port, environ=self.environ, health=health).start()

    def next_sync_at(self) -> datetime | None:
        """The next cycle: the scheduled one, or a retry if that comes first."""
        times = [
            job.next_run_time
            for job in (self.scheduler.get_job("sync"), self.scheduler.get_job(RETRY_JOB))
            if job is not None and job.next_run_time is not None
        ]
        return min(times) if times else None

    def sync_job(self) -> None:
        with self._busy:
            if self.stopping.is_set():
                return
            try:
                with self.app.store.sync_lock() as mine:
                    if not mine:
                        log.info("sync: another replica is running a cycle; skipping this one")
                        return
                    self._sync()
            except TrialwatchError as exc:  # the lock itself: the store is gone
                self._failed_wholly(str(exc))

    def _sync(self) -> None:
        metrics = self.app.metrics
        started = time.monotonic()
        try:
            report = self.app.sync(should_stop=self.stopping.is_set)
        except TrialwatchError as exc:
            self._failed_wholly(str(exc))
            return
        except Exception as exc:  # a bug: logged with its traceback, retried like a failure
            log.exception("sync failed")
            self._failed_wholly(f"internal error: {type(exc).__name__}: {exc}")
            return
        if self.stopping.is_set():  # cut short: its failures are the stop's, nothing to retry
            log.info(
                "sync: cut short by the stop (%d checked, %d abandoned)",
                report.checked,
                report.failed,
            )
            return
        metrics.sync_duration.observe(time.monotonic() - started)
        mode = report.cycle.get("mode")
        if mode:
            metrics.cycle_requests.labels(mode).inc(report.requests)
        for change in report.changes:
            metrics.changes.labels(change.kind).inc()
        log.info(
            "sync: %d checked, %d new, %d changed, %d unchanged, %d failed, %d requests (%s)",
            report.checked,
            report.new,
            report.changed,
            report.unchanged,
            report.failed,
            report.requests,
            report.cycle.get("mode") or "given ids",
        )
        outcome = run_status(report.checked, report.failed)
        if outcome == "failed":
            self._failed_wholly(failure_summary(report), report)
            return
        metrics.sync_runs.labels(outcome).inc()
        self.state.record(
            CycleResult(self.app.clock(), outcome, checked=report.checked, failed=report.failed)
        )
        self._cancel_retry()

    def _failed_wholly(self, error: str, report: SyncReport | None = None) -> None:
        """A cycle that failed as a whole: counted, told to the probes, retried with backoff."""
        self.app.metrics.sync_runs.labels("failed").inc()
        log.error("sync failed: %s", error)
        result = CycleResult(
            self.app.clock(),
            "failed",
            checked=report.checked if report else 0,
            failed=report.failed if report else 0,
            error=error,
        )
        failures = self.state.record(result)
        if not self.stopping.is_set():
            self._schedule_retry(failures)

    def _schedule_retry(self, failures: int) -> None:
        now = datetime.now(UTC)
        delay = retry_delay(failures, self.retry_first, sync_interval(self.app, now))
        at = now + delay
        scheduled = self.scheduler.get_job("sync")
        if scheduled is not None and scheduled.next_run_time and scheduled.next_run_time <= at:
            self._cancel_retry()  # the schedule comes first anyway
            return
        self.scheduler.add_job(
            self.sync_job,
            DateTrigger(at, timezone=UTC),
            id=RETRY_JOB,
            name="sync retry",
            misfire_grace_time=3600,
            replace_existing=True,
        )
        log.warning(
            "sync: %d cycle(s) in a row failed as a whole; retrying in %d s, at %s",
            failures,
            round(delay.total_seconds()),
            at.isoformat(timespec="seconds"),
        )

    def _cancel_retry(self) -> None:
        with contextlib.suppress(JobLookupError):  # none was pending
            self.scheduler.remove_job(RETRY_JOB)

    def backfill_job(self) -> None:
        """Between cycles, fetch the past versions of newly watched records (the queue the
        cycles work only within their budget). Skipped while a cycle runs, here or on
        another replica: they share the history API's slow pace."""
        if self.stopping.is_set() or not self._busy.acquire(blocking=False):
            return
        try:
            with self.app.store.sync_lock() as mine:
                if mine:
                    # most of the interval: the queue is the history API's only other user
                    budget = 0.8 * self.app.settings.ctgov.history_backfill_every_seconds
                    done = self.app.work_backfills(budget, self.stopping.is_set)
                    if done.done or done.failed:
                        log.info("backfill: %d records done, %d failed", done.done, done.failed)
        except TrialwatchError as exc:
            log.warning("backfill round failed: %s", exc)
        finally:
            self._busy.release()

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
        # Only the flag, here: the handler runs on the main thread between two bytecodes,
        # which may be inside the scheduler's own job submission, holding the executor's lock
        # that shutting the scheduler down takes too: the daemon would wait for itself for
        # ever. ``_stop_when_asked`` shuts it down from a thread of its own.
        log.info("%s received: finishing the study in hand", signal.Signals(signum).name)
        self.stopping.set()

    def _stop_when_asked(self) -> None:
        self.stopping.wait()
        while True:
            try:
                self.scheduler.shutdown(wait=False)
                return
            except SchedulerNotRunningError:  # asked before it started: once it has
                time.sleep(0.05)

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
