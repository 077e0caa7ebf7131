"""The outbox on SQLite and PostgreSQL: queued with the changes, claimed, sent once, retried,
dead-lettered, replayed, taken over after a worker hangs (its lease) or dies (on PostgreSQL at
once: a claim lasts as long as its worker's connection), and digests grouped.

The sender here is a recorder standing in for a channel (the real SMTP and webhook senders are
tested against real servers in test_notify_*.py and end to end in test_notify_e2e.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from service.errors import DeliveryError, StoreError
from service.models import Change, Route, Snapshot
from service.notify.render import Message
from service.outbox import Dispatcher, worker_name
from service.settings import DeliverySettings
from service.store import WORKER_LOCK, NewVersion, Store

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


class BuggySender(RecordingSender):
    """A sender with a bug that one message's content sets off (not a DeliveryError)."""

    def send(self, message: Message) -> None:
        if message.studies[0].study_id == "NCT00000001":
            raise KeyError("brief_title")
        super().send(message)


def test_a_bug_with_one_message_is_that_deliverys_failure_and_the_round_goes_on(
    store: Store, clock: Clock
) -> None:
    buggy = BuggySender()
    for study_id in ("NCT00000001", "NCT00000002"):
        save(store, study_id, "COMPLETED", T0)
    report = dispatcher(store, buggy, clock).deliver_due()
    assert (report.sent, report.retrying, report.dead) == (1, 1, 0)
    assert [m.studies[0].study_id for m in buggy.sent] == ["NCT00000002"]
    [pending] = store.list_outbox()
    assert pending["study_id"] == "NCT00000001" and pending["attempts"] == 1
    assert pending["last_error"] == "internal error: KeyError: 'brief_title'"


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


def test_a_claim_of_a_hung_worker_is_taken_over_after_its_lease(
    store: Store, sender: RecordingSender, clock: Clock
) -> None:
    # "dead-worker" claims through this very store, so on PostgreSQL its process is alive
    # (hung, as far as the others can tell): only the lease frees the claim
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


# ---- PostgreSQL: a claim lasts as long as the process that made it ------------------------


@pytest.fixture
def pg_stores(postgres_url: str) -> Iterator[tuple[Store, Store]]:
    """Two stores on one PostgreSQL database, standing in for two replicas."""
    first, second = Store.open(postgres_url), Store.open(postgres_url, migrate=False)
    yield first, second
    first.close()
    second.close()


def terminate_worker(store: Store, worker: str) -> int:
    """Kill, server side, the connection holding ``worker``'s presence lock (what the server
    sees when the worker's process dies); returns how many it ended."""
    with store.engine.connect() as connection:
        return int(
            connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND objsubid = 2 AND classid = :cls"
                    " AND objid::int4 = hashtext(:worker)"
                ),
                {"cls": WORKER_LOCK, "worker": worker},
            )
        )


def wait_gone(store: Store, worker: str) -> None:
    deadline = time.monotonic() + 5
    while terminate_worker(store, worker) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_postgres_a_claim_of_a_worker_whose_process_died_is_taken_over_at_once(
    pg_stores: tuple[Store, Store], sender: RecordingSender, clock: Clock
) -> None:
    replica, survivor = pg_stores
    save(replica, "NCT05605665", "COMPLETED", T0)
    [claimed] = replica.claim_due(clock(), "killed", clock() + timedelta(seconds=300), 10)
    assert dispatcher(survivor, sender, clock, worker="w2").deliver_due().sent == 0  # alive
    assert terminate_worker(replica, "killed") == 1
    wait_gone(replica, "killed")
    report = dispatcher(survivor, sender, clock, worker="w2").deliver_due()  # no clock advance
    assert report.sent == 1
    assert sender.sent[0].event_id == claimed.event_id  # a repeat keeps its event id
    assert survivor.list_outbox() == []


def test_postgres_a_worker_that_lost_its_connection_claims_again_under_a_new_lock(
    pg_stores: tuple[Store, Store], clock: Clock
) -> None:
    replica, other = pg_stores
    save(replica, "NCT05605665", "COMPLETED", T0)
    lease = clock() + timedelta(seconds=300)
    [first] = replica.claim_due(clock(), "w1", lease, 10)
    wait_gone(replica, "w1")  # a network cut: to the others, w1 is gone
    [taken] = other.claim_due(clock(), "w2", lease, 10)
    assert taken.event_id == first.event_id
    save(replica, "NCT00000002", "COMPLETED", T0)
    [fresh] = replica.claim_due(clock(), "w1", lease, 10)  # reconnects, locks again
    assert [s.study_id for s in fresh.studies] == ["NCT00000002"]
    assert other.claim_due(clock(), "w2", lease, 10) == []  # w1 is back: its claim holds
    replica.mark_sent(first.outbox_ids, "w1", clock())  # too late: w2 holds that claim now
    assert [row["study_id"] for row in other.list_outbox()] == ["NCT05605665", "NCT00000002"]


def test_postgres_one_worker_id_runs_in_one_process_only(
    pg_stores: tuple[Store, Store], clock: Clock
) -> None:
    first, second = pg_stores
    lease = clock() + timedelta(seconds=300)
    assert first.claim_due(clock(), "same", lease, 10) == []
    with pytest.raises(StoreError, match="'same' is running in another process"):
        second.claim_due(clock(), "same", lease, 10)


def test_worker_names_differ_between_processes_of_one_host() -> None:
    # a restarted container can have the old one's hostname and pid: its claims must not
    # pass for the new process's
    assert worker_name() != worker_name()
    assert len(worker_name()) <= 100


def test_an_in_memory_store_delivers_every_channel_on_one_thread(clock: Clock) -> None:
    """Each thread's connection to an in-memory SQLite store is a database of its own: the
    channels of such a store are delivered one after the other, and every delivery marked."""
    store = Store.open("sqlite://")
    mail, hook = RecordingSender(), RecordingSender()
    try:
        snapshot = Snapshot(study_id="NCT05605665", brief_title="Trial", overall_status="C")
        routes = [
            Route(channel=name, mode="immediate", change_indexes=(0,), due_at=T0)  # type: ignore[arg-type]
            for name in ("mail", "hook")
        ]
        version = NewVersion("ctgov", snapshot, {}, None, "", T0)
        store.save_version(version, [status_change("NCT05605665", "C")], None, routes)
        settings = DeliverySettings(max_attempts=3, lease_seconds=60)
        senders = {"mail": mail, "hook": hook}
        report = Dispatcher(store, senders, settings, clock=clock, worker="w1").deliver_due()
        assert (report.sent, report.failed) == (2, 0)
        assert len(mail.sent) == len(hook.sent) == 1
        assert store.list_outbox() == []
    finally:
        store.close()


FINISHED = {
    "errors": [],
    **dict.fromkeys(("checked", "new", "changed", "unchanged", "failed", "requests"), 0),
}


def test_what_one_sync_queues_for_a_study_goes_out_as_one_message_once_the_sync_ends(
    store: Store, sender: RecordingSender, clock: Clock
) -> None:
    """A daemon delivers while it syncs: what a running sync queued for a study waits for the
    sync's end, and what the same sync adds later (the finding a change opens, another
    version) joins that message instead of going out as a second one."""
    run_id = store.start_run(T0)
    route = Route(channel="mail", mode="immediate", change_indexes=(0,), due_at=T0)
    for status in ("ACTIVE_NOT_RECRUITING", "COMPLETED"):
        snapshot = Snapshot(study_id="NCT05605665", brief_title="A trial", overall_status=status)
        version = NewVersion("ctgov", snapshot, {}, None, "", T0)
        store.save_version(version, [status_change("NCT05605665", status)], run_id, [route])
        assert dispatcher(store, sender, clock).deliver_due().sent == 0  # the sync goes on
    assert len(store.list_outbox()) == 1
    store.finish_run(run_id, FINISHED, T0)
    assert dispatcher(store, sender, clock).deliver_due().sent == 1
    [message] = sender.sent
    assert [c.new for c in message.studies[0].changes] == ["ACTIVE_NOT_RECRUITING", "COMPLETED"]
    # a later sync's changes are a message of their own
    later = store.start_run(T0)
    snapshot = Snapshot(study_id="NCT05605665", brief_title="A trial", overall_status="TERMINATED")
    version = NewVersion("ctgov", snapshot, {}, None, "", T0)
    store.save_version(version, [status_change("NCT05605665", "TERMINATED")], later, [route])
    store.finish_run(later, FINISHED, T0)
    assert dispatcher(store, sender, clock).deliver_due().sent == 1
    assert [len(m.studies[0].changes) for m in sender.sent] == [2, 1]


def test_a_message_of_a_sync_whose_process_died_waits_an_hour_at_most(
    store: Store, sender: RecordingSender, clock: Clock
) -> None:
    run_id = store.start_run(T0)  # never finished: as if its process had been killed
    route = Route(channel="mail", mode="immediate", change_indexes=(0,), due_at=T0)
    snapshot = Snapshot(study_id="NCT05605665", brief_title="A trial", overall_status="COMPLETED")
    version = NewVersion("ctgov", snapshot, {}, None, "", T0)
    store.save_version(version, [status_change("NCT05605665", "COMPLETED")], run_id, [route])
    assert dispatcher(store, sender, clock).deliver_due().sent == 0
    clock.advance(3601)
    assert dispatcher(store, sender, clock).deliver_due().sent == 1
