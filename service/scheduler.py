"""The daemon: APScheduler 3 ``BlockingScheduler`` running sync cycles until SIGTERM/SIGINT.

Jobs are rebuilt from settings at every start, with explicit ids, ``max_instances=1`` and
``coalesce=True`` (a cycle that overruns its slot is not run twice). A signal asks the cycle
in hand to stop after the study it is on; that study is committed and the daemon exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from service.app import App
from service.errors import TrialwatchError

log = logging.getLogger("trialwatch.daemon")


def sync_trigger(app: App) -> BaseTrigger:
    schedule = app.settings.schedule
    if schedule.sync_every_seconds:
        return IntervalTrigger(seconds=schedule.sync_every_seconds, timezone=UTC)
    return CronTrigger.from_crontab(schedule.sync, timezone=UTC)


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        self.stopping = threading.Event()
        self._busy = threading.Lock()
        self.scheduler = BlockingScheduler(timezone=UTC)

    def run(self) -> None:
        self.scheduler.add_job(
            self.sync_job,
            sync_trigger(self.app),
            id="sync",
            name="sync",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
            next_run_time=datetime.now(UTC),  # a first cycle at start, then on schedule
            replace_existing=True,
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self._log_schedule()
        self.scheduler.start()
        with self._busy:  # wait for the cycle in hand to commit its last study
            log.info("stopped")

    def sync_job(self) -> None:
        with self._busy:
            if self.stopping.is_set():
                return
            try:
                report = self.app.monitor.sync(should_stop=self.stopping.is_set)
            except TrialwatchError as exc:
                log.error("sync failed: %s", exc)
                return
            log.info(
                "sync: %d checked, %d new, %d changed, %d unchanged, %d failed, %d requests",
                report.checked,
                report.new,
                report.changed,
                report.unchanged,
                report.failed,
                report.requests,
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
        log.info("trialwatch daemon started: sync %s; first cycle now", every)
