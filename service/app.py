"""``build_app(settings)``: the only place that constructs the engine, clients and services.

Parts are built (and their modules imported) on first use, so a command that needs no store
opens none, one that needs no registry opens no connection, and one that only reads the store
does not import httpx, the monitor or the notifiers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from service.clock import Clock, utcnow
from service.errors import ConfigError, StoreError
from service.settings import Settings
from service.store import Store

if TYPE_CHECKING:  # the parts below are imported when first built: a command that only
    # reads the store (watch list, changes, history) pays for none of them
    import httpx

    from service.alerts import Alerter
    from service.backfill import BackfillRound
    from service.metrics import Metrics
    from service.models import Change, Snapshot, StoredChange
    from service.monitor import Monitor, SyncReport
    from service.notify.base import Sender
    from service.outbox import DeliveryReport, Dispatcher
    from service.registry.ctgov import CtgovClient
    from service.registry.source import RecordSource

log = logging.getLogger("trialwatch")

LINKED = "linked"  # the tag of records watched with their trial's every registration
FOLLOW_ROUNDS = 3  # a trial's registrations found through others, at most this far apart

NOTHING_WATCHED = (
    "nothing is watched, so there is nothing to sync: add records with "
    "`trialwatch watch add NCT…`, a saved search with `trialwatch watch query add NAME --cond …`, "
    "or load the seed studies with `trialwatch seeds load`"
)


class App:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        http: httpx.Client | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._http = http
        # set when the process is to stop (the daemon's SIGTERM): registry requests and
        # deliveries in flight are abandoned at once, and no new ones start
        self.stopping = threading.Event()
        self._subscriptions_checked = False
        # the records some seed links to, by registry: read once a cycle (or backfill round)
        self._seeded: dict[str, set[str]] = {}
        self._monitors: dict[str, Monitor] = {}  # of the registries beyond ClinicalTrials.gov
        self._sources: dict[str, RecordSource] = {}

    @cached_property
    def store(self) -> Store:
        return Store.open(self.settings.database.url)

    @cached_property
    def http(self) -> httpx.Client:
        from service.registry.ctgov import build_http_client

        return self._http or build_http_client(self.settings.ctgov)

    @cached_property
    def metrics(self) -> Metrics:
        from service.metrics import Metrics

        return Metrics()

    @cached_property
    def ctgov(self) -> CtgovClient:
        from service.registry.ctgov import CtgovClient

        return CtgovClient(
            self.http, self.settings.ctgov, observe=self._count_request, stop=self.stopping
        )

    def _count_request(self, answer: str) -> None:
        # Counted where metrics are kept: a process that exposes them (the daemon's health
        # server, the web app) makes them before it works; a one-shot command has no reader
        # for them and need not load prometheus_client.
        if "metrics" in self.__dict__:
            self.metrics.registry_requests.labels(answer).inc()

    @cached_property
    def monitor(self) -> Monitor:
        from service.monitor import Monitor

        return Monitor(
            self.store,
            self.ctgov,
            clock=self.clock,
            subscriptions=self.settings.subscriptions,
            settings=self.settings.ctgov,
            extra_changes=self._seed_discrepancies,
            findings=self.settings.findings,
        )

    def monitor_for(self, registry: str) -> Monitor:
        """The monitor of one registry (ClinicalTrials.gov's is ``monitor``)."""
        if registry == "ctgov":
            return self.monitor
        if registry not in self._monitors:
            from service.monitor import Monitor
            from service.registry.sourced import SourceRegistry

            self._monitors[registry] = Monitor(
                self.store,
                SourceRegistry(self.source(registry)),
                clock=self.clock,
                subscriptions=self.settings.subscriptions,
                settings=getattr(self.settings, registry),
                extra_changes=self._seed_discrepancies,
                # (EUCTR and CTIS have their results rules; ISRCTN none: it keeps itself off)
                findings=self.settings.findings,
            )
        return self._monitors[registry]

    def source(self, registry: str) -> RecordSource:
        """The client of a registry without history (EUCTR, CTIS, ISRCTN), built once."""
        if registry not in self._sources:
            import importlib

            client = importlib.import_module(f"service.registry.{registry}.client")
            self._sources[registry] = client.build_client(
                getattr(self.settings, registry), observe=self._count_request, stop=self.stopping
            )
        return self._sources[registry]

    def _seed_discrepancies(self, old: Snapshot | None, new: Snapshot) -> list[Change]:
        """The seed discrepancies a new version introduced (most records have no seed: which
        have is read once a cycle, and the seed tools are loaded only for those)."""
        if new.registry not in self._seeded:
            self._seeded[new.registry] = self.store.seed_linked_ids(new.registry)
        if new.study_id not in self._seeded[new.registry]:
            return []
        linked = self.store.seeds_linked_to(new.registry, new.study_id)
        from service.seeds.service import linked_discrepancy_changes

        return linked_discrepancy_changes(linked, old, new)

    @cached_property
    def notify_http(self) -> httpx.Client:
        # webhooks get their own client: no registry User-Agent, no redirects followed
        from service.notify.webhook import build_webhook_client

        return build_webhook_client()

    @cached_property
    def senders(self) -> dict[str, Sender]:
        from service.notify.base import build_sender

        return {
            c.name: build_sender(c, self.notify_http, stop=self.stopping)
            for c in self.settings.channels
        }

    @cached_property
    def dispatcher(self) -> Dispatcher:
        from service.outbox import Dispatcher

        return Dispatcher(
            self.store, self.senders, self.settings.delivery, clock=self.clock, stop=self.stopping
        )

    @cached_property
    def alerter(self) -> Alerter:
        channel = self.settings.alerts.channel
        sender = self.senders.get(channel) if channel else None
        from service.alerts import Alerter

        return Alerter(self.store, sender, self.settings.alerts, clock=self.clock)

    def sync(
        self, targets: Mapping[str, Sequence[str]] | None = None, **options: Any
    ) -> SyncReport:
        """One sync cycle of every registry with watched records (or of ``targets``: registry
        → ids), then the operational alerts it calls for (not on a dry run).

        The store is checked before and after: a SQLite file deleted under a running process
        would otherwise take the cycle's versions and changes with it, silently. A cycle that
        raises leaves no sync run ``running``."""
        from service.monitor import SyncReport
        from service.registry.catalog import WATCHED

        self.store.check()
        self._seeded.clear()  # seeds loaded since the last cycle link records too
        registries = [r for r in WATCHED if r in targets] if targets is not None else [
            r for r in WATCHED if r == "ctgov" or self.store.watch_count(r)
        ]  # fmt: skip
        # (a saved search may bring records in)
        idle = targets is None and not any(self.store.watch_count(r) for r in registries)
        if idle and not self.store.list_searches("ctgov"):
            log.warning("%s", NOTHING_WATCHED)
        reports = []
        started = self.clock()
        progress = options.pop("progress", None)
        should_stop = options.get("should_stop", lambda: False)
        for registry in registries:
            if reports and should_stop():
                break
            ids = None if targets is None else list(targets[registry])
            done = sum(r.checked for r in reports)
            step = (lambda n, before=done: progress(before + n)) if progress else None
            with self._aborting():
                monitor = self.monitor_for(registry)
                reports.append(monitor.sync(ids, progress=step, finish=False, **options))
        if targets is None and not options.get("dry_run"):
            with self._aborting():
                reports += self._sync_followed(options)
        report = SyncReport.merged(reports)
        monitors = [self.monitor_for(r) for r in dict.fromkeys(r.registry for r in reports)]
        with self._aborting():
            if not options.get("dry_run") and reports:
                runs = {m.registry: m.running_run for m in monitors}
                report.changes += self._review_trials(started, report, runs)
            # the runs end after the trials' review: until then their messages are held, so
            # the finding a change opens there travels with the change
            for monitor in monitors:
                monitor.finish_runs()
        self.store.check()
        if not options.get("dry_run"):
            self.alerter.after_sync(report)
        return report

    @contextmanager
    def _aborting(self) -> Iterator[None]:
        """A part of a cycle: should it raise, no sync run is left ``running``."""
        try:
            yield
        except BaseException as exc:
            self.store.abandon_runs(f"cycle aborted: {exc}", self.clock())
            built = [self.__dict__.get("monitor"), *self._monitors.values()]  # none built here
            for monitor in filter(None, built):
                monitor.drop_runs()  # abandoned: a later cycle must not finish them
            raise

    def follow_links(self) -> dict[str, list[str]]:
        """Watch the registrations of every trial a record watched with ``--linked`` (the tag
        ``linked``) belongs to, tagged so too: registry → the ids newly watched."""
        from service.registry.catalog import WATCHED
        from service.trial_store import trial_members

        followed = self.store.tagged_watches(LINKED)
        if not followed:
            return {}
        members = trial_members(self.store)
        wanted: dict[str, set[str]] = {}
        for key in followed:
            for registry, study_id in members.get(key, ()):
                if registry in WATCHED:
                    wanted.setdefault(registry, set()).add(study_id)
        added: dict[str, list[str]] = {}
        for registry, ids in wanted.items():
            new = self.store.add_watches(registry, sorted(ids), [LINKED], self.clock())
            if new:
                added[registry] = list(new)
        return added

    def _sync_followed(self, options: Mapping[str, Any]) -> list[SyncReport]:
        """The registrations a cycle's records revealed of trials watched with ``--linked``,
        fetched in the same cycle (they may name more: a few rounds)."""
        reports = []
        for _ in range(FOLLOW_ROUNDS):
            added = self.follow_links()
            for registry, ids in added.items():
                log.info("watching %d more registration(s) in %s", len(ids), registry)
                reports.append(self.monitor_for(registry).sync(ids, finish=False, **options))
            if not added:
                break
        return reports

    def _review_trials(
        self, started: datetime, report: SyncReport, runs: Mapping[str, int | None]
    ) -> list[StoredChange]:
        """The trials' finding (registrations that disagree), after every registry's cycle.
        A bug in it is a warning of the cycle (each record's own work is stored already); a store
        that fails ends the cycle as any store write does."""
        from service.findings.trials_keeper import TrialsKeeper

        keeper = TrialsKeeper(
            self.store,
            self.settings.findings,
            clock=self.clock,
            router=lambda registry, study_id, changes, historical: self.monitor_for(
                registry
            ).event_routes(study_id, changes, historical),
        )
        try:
            return keeper.review(started, runs)
        except StoreError:
            raise  # the store itself failing ends the cycle, as any of its writes would
        except Exception as exc:
            log.exception("the trials' findings review failed")
            from service.problems import Problem

            message = f"trials: findings review failed: {exc}"
            report.problems.append(Problem.warning("trials", message, "internal"))
            return []

    def work_backfills(
        self, budget_seconds: float, should_stop: Callable[[], bool]
    ) -> BackfillRound:
        """A round of the backfill queue between cycles (the daemon's)."""
        self._seeded.clear()
        return self.monitor.work_backfills(budget_seconds, should_stop)

    def deliver(self) -> DeliveryReport:
        """One delivery round, then an alert if anything went to the dead letters."""
        self.check_subscriptions()
        report = self.dispatcher.deliver_due()
        self.alerter.after_delivery(report)
        return report

    def check_subscriptions(self) -> None:
        """Refuse subscriptions that name seeds or tags the store does not know (a typo would
        otherwise route nothing, silently). Checked once per process."""
        if self._subscriptions_checked or not self.settings.subscriptions:
            return
        seeds = {seed.seed_id for seed in self.store.list_seeds()}
        tags = {tag for watch in self.store.list_watches() for tag in watch.tags}
        searches = {search.name for search in self.store.list_searches()}
        from service.subscriptions import unknown_selectors

        problems = unknown_selectors(self.settings.subscriptions, seeds, tags, searches)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ConfigError(problems[0] + more)
        self._subscriptions_checked = True

    def close(self) -> None:
        if "http" in self.__dict__ and self._http is None:
            self.http.close()
        if "notify_http" in self.__dict__:
            self.notify_http.close()
        if "store" in self.__dict__:
            self.store.close()


def build_app(settings: Settings, *, clock: Clock = utcnow) -> App:
    return App(settings, clock=clock)
