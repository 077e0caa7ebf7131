"""Deliver due notifications: claim, send, then mark sent, retry later, or dead-letter.

Notifications are written to the outbox in the transaction that stores their changes
(``Store.save_version``), so a change is never stored without its notifications. Delivery is
at least once: a worker that dies between sending and marking leaves a claim that is taken
again, so the message goes out again under the same event id. A claim is a lease (the fallback
for a worker that hangs); on PostgreSQL it also lasts only as long as the process that made it
(see ``Store.claim_due``), so a killed replica's claims are taken over at the next round.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from service.clock import Clock, utcnow
from service.errors import DeliveryError
from service.notify.base import Sender
from service.notify.render import Message, StudyChanges
from service.settings import DeliverySettings
from service.store import Delivery, Store

log = logging.getLogger(__name__)


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
    ) -> None:
        self.store = store
        self.senders = senders
        self.settings = settings
        self.clock = clock
        self.worker = worker or worker_name()
        self.jitter = jitter

    def deliver_due(self) -> DeliveryReport:
        report = DeliveryReport()
        while True:
            now = self.clock()
            lease = now + timedelta(seconds=self.settings.lease_seconds)
            claimed = self.store.claim_due(now, self.worker, lease, self.settings.batch_size)
            for delivery in claimed:
                self._deliver(delivery, report)
            if len(claimed) < self.settings.batch_size:
                return report

    def _deliver(self, delivery: Delivery, report: DeliveryReport) -> None:
        sender = self.senders.get(delivery.channel)
        if sender is None:
            error = f"channel {delivery.channel!r} is not configured any more"
            self.store.mark_dead(delivery.outbox_ids, self.worker, error)
            report.add(delivery, "dead", error)
            return
        try:
            sender.send(message_of(delivery))
        except DeliveryError as exc:
            self._failed(delivery, exc, report)
            return
        self.store.mark_sent(delivery.outbox_ids, self.worker, self.clock())
        report.add(delivery, "sent")

    def _failed(self, delivery: Delivery, exc: DeliveryError, report: DeliveryReport) -> None:
        attempts = delivery.attempts + 1
        if exc.retryable and attempts < self.settings.max_attempts:
            due = self.clock() + timedelta(seconds=self.backoff(attempts))
            self.store.mark_retry(delivery.outbox_ids, self.worker, str(exc), due)
            log.warning(
                "delivery %s to %s failed, retrying: %s", delivery.event_id, delivery.channel, exc
            )
            report.add(delivery, "retrying", str(exc))
            return
        self.store.mark_dead(delivery.outbox_ids, self.worker, str(exc))
        log.error("delivery %s to %s dead-lettered: %s", delivery.event_id, delivery.channel, exc)
        report.add(delivery, "dead", str(exc))

    def backoff(self, attempts: int) -> float:
        """Exponential from ``retry_initial_seconds``, capped, with jitter (half to full)."""
        base = self.settings.retry_initial_seconds * 2 ** (attempts - 1)
        return min(self.settings.retry_max_seconds, base) * (0.5 + self.jitter() / 2)
