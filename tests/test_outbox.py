"""The outbox on SQLite and PostgreSQL: queued with the changes, claimed, sent once, retried,
dead-lettered, replayed, taken over after a worker dies, and digests grouped.

The sender here is a recorder standing in for a channel (the real SMTP and webhook senders are
tested against real servers in test_notify_*.py and end to end in test_notify_e2e.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.errors import DeliveryError
from service.models import Change, Route, Snapshot
from service.notify.render import Message
from service.outbox import Dispatcher
from service.settings import DeliverySettings
from service.store import NewVersion, Store

T0 = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordingSender:
    """Records what it is asked to send; fails as told."""

    name = "mail"

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.failures: list[DeliveryError] = []

    def send(self, message: Message) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)


@pytest.fixture
def store(database_url: str) -> Store:
    opened = Store.open(database_url)
    yield opened
    opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


def dispatcher(
    store: Store, sender: RecordingSender, clock: Clock, worker: str = "w1"
) -> Dispatcher:
    settings = DeliverySettings(
        max_attempts=3, retry_initial_seconds=10, retry_max_seconds=100, lease_seconds=60
    )
    return Dispatcher(
        store, {"mail": sender}, settings, clock=clock, worker=worker, jitter=lambda: 1.0
    )


def status_change(study_id: str, new: str) -> Change:
    return Change(
        study_id=study_id,
        kind="status_changed",
        field="protocolSection.statusModule.overallStatus",
        old="RECRUITING",
        new=new,
        severity="medium",
        summary=f"Overall status: Recruiting → {new.title()}",
    )


def save(
    store: Store,
    study_id: str,
    status: str,
    at: datetime,
    mode: str = "immediate",
    due: datetime | None = None,
) -> None:
    snapshot = Snapshot(study_id=study_id, brief_title=f"Trial {study_id}", overall_status=status)
    version = NewVersion("ctgov", snapshot, {}, None, "", at)
    changes = [status_change(study_id, status)]
    route = Route(channel="mail", mode=mode, change_indexes=(0,), due_at=due or at)  # type: ignore[arg-type]
    store.save_version(version, changes, None, [route])


def test_a_stored_change_is_delivered_once(
    store: Store, sender: RecordingSender, clock: Clock
) -> None:
    save(store, "NCT05605665", "COMPLETED", T0)
    report = dispatcher(store, sender, clock).deliver_due()
    assert (report.sent, report.failed) == (1, 0)
    [message] = sender.sent
    assert message.kind == "study.changed"
    assert [(s.study_id, s.title) for s in message.studies] == [
        ("NCT05605665", "Trial NCT05605665")
    ]
    assert [c.kind for c in message.studies[0].changes] == ["status_changed"]
    assert dispatcher(store, sender, clock).deliver_due().sent == 0
    assert store.list_outbox() == []


def test_a_retryable_failure_waits_its_backoff_and_keeps_the_event_id(
    store: Store, sender: RecordingSender, clock: Clock
) -> None:
    save(store, "NCT05605665", "COMPLETED", T0)
    sender.failures.append(DeliveryError("webhook answered 500", retryable=True))
    first = dispatcher(store, sender, clock).deliver_due()
    assert (first.sent, first.retrying) == (0, 1)
    [pending] = store.list_outbox()
    assert pending["attempts"] == 1 and pending["last_error"] == "webhook answered 500"
    assert dispatcher(store, sender, clock).deliver_due().sent == 0  # not due yet
    clock.advance(10)
    assert dispatcher(store, sender, clock).deliver_due().sent == 1
    assert sender.sent[0].event_id == first.outcomes[0]["event_id"]


def test_backoff_doubles_up_to_the_cap(store: Store, sender: RecordingSender, clock: Clock) -> None:
    waits = [dispatcher(store, sender, clock).backoff(n) for n in range(1, 6)]
    assert waits == [10, 20, 40, 80, 100]


def test_a_permanent_failure_goes_to_the_dead_letters_and_can_be_replayed(
    store: Store, sender: RecordingSender, clock: Clock
) -> None:
    save(store, "NCT05605665", "COMPLETED", T0)
    sender.failures.append(DeliveryError("webhook answered 410 Gone", retryable=False))
    report = dispatcher(store, sender, clock).deliver_due()
    assert report.dead == 1
    [dead] = store.list_outbox(dead=True)
    assert dead["last_error"] == "webhook answered 410 Gone"
    assert store.replay([dead["id"], 999], clock()) == [999]  # all or nothing
    assert store.list_outbox(dead=True) != []
    assert store.replay([dead["id"]], clock()) == []
    assert dispatcher(store, sender, clock).deliver_due().sent == 1
    assert sender.sent[0].event_id == report.outcomes[0]["event_id"]


def test_retries_stop_after_max_attempts(
    store: Store, sender: RecordingSender, clock: Clock
) -> None:
    save(store, "NCT05605665", "COMPLETED", T0)
    sender.failures.extend(DeliveryError("smtp down", retryable=True) for _ in range(3))
    outcomes = []
    for _ in range(3):
        outcomes.append(dispatcher(store, sender, clock).deliver_due().outcomes[0]["outcome"])
        clock.advance(1000)
    assert outcomes == ["retrying", "retrying", "dead"]
    assert store.list_outbox(dead=True)[0]["attempts"] == 3


def test_a_claim_of_a_dead_worker_is_taken_over_after_its_lease(
    store: Store, sender: RecordingSender, clock: Clock
) -> None:
    save(store, "NCT05605665", "COMPLETED", T0)
    [claimed] = store.claim_due(clock(), "dead-worker", clock() + timedelta(seconds=60), 10)
    assert dispatcher(store, sender, clock, worker="w2").deliver_due().sent == 0  # leased
    clock.advance(61)
    assert dispatcher(store, sender, clock, worker="w2").deliver_due().sent == 1
    assert sender.sent[0].event_id == claimed.event_id
    # the dead worker's late "sent" cannot settle a claim it no longer holds
    store.mark_retry(claimed.outbox_ids, "dead-worker", "late", clock())
    assert store.list_outbox() == []


def test_two_workers_never_claim_the_same_notification(store: Store, clock: Clock) -> None:
    for n in range(5):
        save(store, f"NCT0000000{n}", "COMPLETED", T0)
    lease = clock() + timedelta(seconds=60)
    first = store.claim_due(clock(), "a", lease, 3)
    second = store.claim_due(clock(), "b", lease, 10)
    ids_a = {i for d in first for i in d.outbox_ids}
    ids_b = {i for d in second for i in d.outbox_ids}
    assert len(ids_a) == 3 and len(ids_b) == 2 and not ids_a & ids_b


def test_a_digest_sends_the_studies_due_together_as_one_message(
    store: Store, sender: RecordingSender, clock: Clock
) -> None:
    due = T0 + timedelta(hours=2)
    save(store, "NCT00000001", "COMPLETED", T0, mode="digest", due=due)
    save(store, "NCT00000002", "TERMINATED", T0, mode="digest", due=due)
    assert dispatcher(store, sender, clock).deliver_due().sent == 0
    clock.advance(2 * 3600)
    sender.failures.append(DeliveryError("smtp 451", retryable=True))
    failed = dispatcher(store, sender, clock).deliver_due()
    clock.advance(3600)
    save(store, "NCT00000003", "COMPLETED", T0, mode="digest", due=due)  # joins late
    report = dispatcher(store, sender, clock).deliver_due()
    assert report.sent == 2
    retried, straggler = sender.sent
    assert retried.kind == "digest"
    assert retried.event_id == failed.outcomes[0]["event_id"]
    assert [s.study_id for s in retried.studies] == ["NCT00000001", "NCT00000002"]
    assert [s.study_id for s in straggler.studies] == ["NCT00000003"]
    assert straggler.event_id != retried.event_id


def test_a_channel_removed_from_the_settings_dead_letters_its_queue(
    store: Store, clock: Clock
) -> None:
    save(store, "NCT05605665", "COMPLETED", T0)
    settings = DeliverySettings()
    report = Dispatcher(store, {}, settings, clock=clock, worker="w").deliver_due()
    assert report.dead == 1
    assert "not configured" in store.list_outbox(dead=True)[0]["last_error"]
