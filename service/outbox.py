"""Deliver due notifications: claim, send, then mark sent, retry later, or dead-letter.

Notifications are written to the outbox in the transaction that stores their changes
(``Store.save_version``), so a change is never stored without its notifications. Delivery is
at least once: a worker that dies between sending and marking leaves a claim that is taken
again, so the message goes out again under the same event id. A claim is a lease (the fallback
for a worker that hangs); on PostgreSQL it also lasts only as long as the process that made it
(see ``Store.claim_due``), so a killed replica's claims are taken over at the next round.

Channels never wait for each other: the deliveries of a claimed batch are sent channel by
channel in parallel (a thread per channel, at most ``MAX_PARALLEL_CHANNELS``), each channel's
in order, each marked by the thread that sent it, as soon as it is sent. Every exchange ends
by its channel's deadline, and a channel whose delivery failed retryably (down, hanging) is not
tried again in that batch: its other claimed deliveries are released untried (no attempt
counted) and become due when the failed one is retried. So a hung channel holds a round up for one
deadline, not one per message, while the others' messages go out at once. Claims and marks
are the store's, unchanged: a delivery is claimed by one worker, sent, then marked once.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from service.clock import Clock, utcnow
from service.errors import DeliveryError
from service.notify.base import Sender
from service.notify.render import Message, StudyChanges
from service.settings import DeliverySettings
from service.store import Delivery, Store

log = logging.getLogger(__name__)

MAX_PARALLEL_CHANNELS = 8  # channels delivered at once (threads), per worker


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    dead: int = 0
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.retrying + self.dead

    def add(self, delivery: Delivery, outcome: str, error: str = "") -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.outcomes.append(
            {
                "event_id": delivery.event_id,
                "channel": delivery.channel,
                "studies": [s.study_id for s in delivery.studies],
                "outcome": outcome,
                "error": error,
            }
        )

    def merge(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.dead += other.dead
        self.outcomes.extend(other.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "retrying": self.retrying,
            "dead": self.dead,
            "deliveries": self.outcomes,
        }


def worker_name() -> str:
    """``host:pid:token``. The token makes it unique across restarts: a container restarted
    under the same hostname and pid must not pass for the process that died, whose claims
    are to be taken over (and must fit ``outbox.claimed_by``, 100 characters)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def message_of(delivery: Delivery) -> Message:
    return Message(
        event_id=delivery.event_id,
        created_at=delivery.created_at,
        kind="study.changed" if delivery.mode == "immediate" else "digest",
        studies=[
            StudyChanges(registry=s.registry, study_id=s.study_id, title=s.title, changes=s.changes)
            for s in delivery.studies
        ],
    )


class Dispatcher:
    """Sends what the outbox holds through the configured channels' senders."""

    def __init__(
        self,
        store: Store,
        senders: Mapping[str, Sender],
        settings: DeliverySettings,
        *,
        clock: Clock = utcnow,
        worker: str | None = None,
        jitter: Callable[[], float] = random.random,
        stop: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.senders = senders
        self.settings = settings
        self.clock = clock
        self.worker = worker or worker_name()
        self.jitter = jitter
        # set when the process is stopping: what is in hand is given back, not failed
        self.stop = stop or threading.Event()

    def deliver_due(self) -> DeliveryReport:
        report = DeliveryReport()
        while not self.stop.is_set():
            now = self.clock()
            lease = now + timedelta(seconds=self.settings.lease_seconds)
            claimed = self.store.claim_due(now, self.worker, lease, self.settings.batch_size)
            for channel_report in self._deliver_batch(claimed, lease):
                report.merge(channel_report)
            if len(claimed) < self.settings.batch_size:
                break
        return report

    def _deliver_batch(self, claimed: list[Delivery], lease: datetime) -> list[DeliveryReport]:
        """The batch's deliveries, each channel's in a thread of its own."""
        by_channel: dict[str, list[Delivery]] = {}
        for delivery in claimed:
            by_channel.setdefault(delivery.channel, []).append(delivery)
        if len(by_channel) <= 1 or self.store.one_database_per_thread:  # one at a time
            return [self._deliver_channel(d, lease) for d in by_channel.values()]
        workers = min(len(by_channel), MAX_PARALLEL_CHANNELS)
        with ThreadPoolExecutor(workers, thread_name_prefix="deliver") as pool:
            futures = [pool.submit(self._deliver_channel, d, lease) for d in by_channel.values()]
            return [future.result() for future in futures]

    def _deliver_channel(self, deliveries: Sequence[Delivery], lease: datetime) -> DeliveryReport:
        """One channel's deliveries in order, until one fails retryably: the channel is down
        or hangs, so the rest are released untried (no attempt counted against them) to be
        tried again when the failed one is, rather than each waiting out a deadline now. A
        stop gives the rest back at once; claims whose lease ran out meanwhile (a slow
        channel) are left to whoever claims them next, never sent by this worker too."""
        report = DeliveryReport()
        for done, delivery in enumerate(deliveries):
            if self.clock() >= lease:
                log.warning(
                    "deliver: the claims of %d to %s ran out while the channel was slow: "
                    "left to the next round",
                    len(deliveries) - done,
                    delivery.channel,
                )
                break
            if self.stop.is_set():
                self._give_back(deliveries[done:], self.clock(), "trialwatch is stopping")
                break
            retry_at = self._deliver(delivery, report)
            if retry_at is not None:
                self._give_back(deliveries[done + 1 :], retry_at, "it failed just now")
                break
        return report

    def _give_back(self, untried: Sequence[Delivery], due_at: datetime, why: str) -> None:
        """Release claims untried (no attempt counted), due again at ``due_at``."""
        if not untried:
            return
        self.store.release([i for d in untried for i in d.outbox_ids], self.worker, due_at)
        log.info(
            "deliver: %d more to %s wait until %s (%s)",
            len(untried),
            untried[0].channel,
            due_at.isoformat(timespec="seconds"),
            why,
        )

    def _deliver(self, delivery: Delivery, report: DeliveryReport) -> datetime | None:
        """Send and mark one delivery; when it failed and may be tried again, the time its
        channel is next worth trying."""
        sender = self.senders.get(delivery.channel)
        if sender is None:
            error = f"channel {delivery.channel!r} is not configured any more"
            self.store.mark_dead(delivery.outbox_ids, self.worker, error)
            report.add(delivery, "dead", error)
            return None
        try:
            sender.send(message_of(delivery))
        except DeliveryError as exc:
            if self.stop.is_set():  # abandoned, not failed: given back, no attempt counted
                self._give_back([delivery], self.clock(), "trialwatch is stopping")
                return self.clock()
            return self._failed(delivery, exc, report)
        except Exception as exc:  # a bug with this message: not the round's or channel's end
            log.exception("delivery %s to %s failed", delivery.event_id, delivery.channel)
            error = DeliveryError(f"internal error: {type(exc).__name__}: {exc}", retryable=True)
            self._failed(delivery, error, report)
            return None
        self.store.mark_sent(delivery.outbox_ids, self.worker, self.clock())
        report.add(delivery, "sent")
        return None

    def _failed(
        self, delivery: Delivery, exc: DeliveryError, report: DeliveryReport
    ) -> datetime | None:
        """Mark a failed delivery for a retry (returning when) or as dead (None)."""
        attempts = delivery.attempts + 1
        if exc.retryable and attempts < self.settings.max_attempts:
            due = self.clock() + timedelta(seconds=self.backoff(attempts))
            self.store.mark_retry(delivery.outbox_ids, self.worker, str(exc), due)
            log.warning(
                "delivery %s to %s failed, retrying: %s", delivery.event_id, delivery.channel, exc
            )
            report.add(delivery, "retrying", str(exc))
            return due
        self.store.mark_dead(delivery.outbox_ids, self.worker, str(exc))
        log.error("delivery %s to %s dead-lettered: %s", delivery.event_id, delivery.channel, exc)
        report.add(delivery, "dead", str(exc))
        # the channel is down: its other deliveries wait a first backoff, not a deadline each
        return self.clock() + timedelta(seconds=self.backoff(1)) if exc.retryable else None

    def backoff(self, attempts: int) -> float:
        """Exponential from ``retry_initial_seconds``, capped, with jitter (half to full)."""
        base = self.settings.retry_initial_seconds * 2 ** (attempts - 1)
        return min(self.settings.retry_max_seconds, base) * (0.5 + self.jitter() / 2)
