"""The outbox: notifications written with the changes they carry (``_queue``, called inside
the transactions that store changes), claimed with a lease by delivery workers, then marked.

On PostgreSQL a claim is also void once the session advisory lock of the worker that made it
is gone (``_Presence``), so a killed replica's claims are taken over at the next claim.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Integer,
    column,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service.errors import StoreError
from service.models import Route, StoredChange
from service.store.base import StoreBase, _first_line, log, shown_url
from service.store.rows import _stored_change
from service.store.tables import ChangeRow, OutboxChangeRow, OutboxRow, RecordRow, SyncRunRow


@dataclass(frozen=True)
class StudyDelivery:
    outbox_id: int
    registry: str
    study_id: str
    title: str
    changes: list[StoredChange]


@dataclass(frozen=True)
class Delivery:
    """A claimed message: one study's changes (immediate) or a channel's digest."""

    event_id: str
    channel: str
    mode: str
    group_key: str
    attempts: int
    created_at: datetime
    studies: list[StudyDelivery]

    @property
    def outbox_ids(self) -> list[int]:
        return [s.outbox_id for s in self.studies]


class OutboxStore(StoreBase):
    """Claiming, settling, listing and replaying notifications."""

    def claim_due(
        self, now: datetime, worker: str, lease_until: datetime, limit: int
    ) -> list[Delivery]:
        """Claim due notifications for ``worker`` until ``lease_until``.

        A claim is a conditional UPDATE, so two workers never both win a row; on PostgreSQL
        the candidate rows are also locked with SKIP LOCKED so workers do not wait on each
        other. A claim whose lease ran out (its worker hangs or died) can be claimed again.
        On PostgreSQL a claim is also free as soon as the process that made it is gone: it is
        written on the connection that holds the worker's presence lock (``_Presence``), and
        the server drops that lock with the connection, so nobody waits out the lease of a
        killed replica.
        """
        free = OutboxRow.lease_until.is_(None) | (OutboxRow.lease_until < now)
        if self.engine.dialect.name == "postgresql":
            free |= _claimer_gone()
        claimable = (
            (OutboxRow.status == "pending")
            & (OutboxRow.due_at <= now)
            & free
            # immediate messages wait for their sync to end; a digest goes out at its time
            & ((OutboxRow.mode != "immediate") | ~_sync_in_progress(now))
        )
        with self._claim_session(worker) as session:
            groups = list(
                session.scalars(
                    select(OutboxRow.group_key)
                    .where(claimable)
                    .order_by(OutboxRow.due_at, OutboxRow.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            if not groups:
                return []
            claimed = (
                session.execute(
                    update(OutboxRow)
                    .where(claimable, OutboxRow.group_key.in_(set(groups)))
                    .values(lease_until=lease_until, claimed_by=worker)
                    .returning(OutboxRow.id)
                )
                .scalars()
                .all()
            )
            _name_digests(session, claimed)
            return self._deliveries(session, claimed)

    @contextmanager
    def _claim_session(self, worker: str) -> Iterator[Session]:
        """The unit of work a claim is written in: on PostgreSQL on the connection holding
        ``worker``'s presence lock, so a claim never commits without the lock held (a
        connection that dies mid-claim rolls the claim back); elsewhere an ordinary one."""
        if self.engine.dialect.name != "postgresql":
            with self._session() as session:
                yield session
            return
        presence = self._presence(worker)
        with presence.lock:
            session: Session | None = None
            try:
                session = Session(bind=presence.connection(), expire_on_commit=False)
                yield session
                session.commit()
            except SQLAlchemyError as exc:
                raise StoreError(f"store {shown_url(self.engine)}: {_first_line(exc)}") from exc
            finally:
                if session is not None:
                    session.close()  # rolls back whatever was not committed

    def _presence(self, worker: str) -> _Presence:
        """``worker``'s presence, taken at its first claim and held until the store is closed
        or the process ends. Made on demand, not in ``__init__``: only a store that delivers
        on PostgreSQL needs one."""
        presences: dict[str, _Presence] = self.__dict__.setdefault("_presences", {})
        if worker not in presences:
            if not presences:  # Store.close disposes of the engine: let go of the locks then
                event.listen(self.engine, "engine_disposed", lambda _: _let_go(presences))
            presences[worker] = _Presence(self.engine, worker)
        return presences[worker]

    def _deliveries(self, session: Session, outbox_ids: Sequence[int]) -> list[Delivery]:
        rows = session.execute(
            select(OutboxRow, RecordRow)
            .join(RecordRow, RecordRow.id == OutboxRow.record_id)
            .where(OutboxRow.id.in_(outbox_ids))
            .order_by(OutboxRow.id)
        ).all()
        changes: dict[int, list[StoredChange]] = {}
        for outbox_id, change, record in session.execute(
            select(OutboxChangeRow.outbox_id, ChangeRow, RecordRow)
            .join(ChangeRow, ChangeRow.id == OutboxChangeRow.change_id)
            .join(RecordRow, RecordRow.id == ChangeRow.record_id)
            .where(OutboxChangeRow.outbox_id.in_(outbox_ids))
            .order_by(ChangeRow.id)
        ):
            changes.setdefault(outbox_id, []).append(_stored_change(change, record))
        grouped: dict[str, Delivery] = {}
        for outbox, record in rows:
            assert outbox.event_id is not None  # immediate: at queue time; digest: at claim
            study = StudyDelivery(
                outbox.id,
                record.registry_key,
                record.study_id,
                record.title,
                changes.get(outbox.id, []),
            )
            delivery = grouped.get(outbox.event_id)
            if delivery is None:
                grouped[outbox.event_id] = Delivery(
                    event_id=outbox.event_id,
                    channel=outbox.channel,
                    mode=outbox.mode,
                    group_key=outbox.group_key,
                    attempts=outbox.attempts,
                    created_at=outbox.created_at,
                    studies=[study],
                )
            else:
                delivery.studies.append(study)
        return list(grouped.values())

    def mark_sent(self, outbox_ids: Sequence[int], worker: str, now: datetime) -> None:
        self._settle(outbox_ids, worker, status="sent", sent_at=now, lease_until=None)

    def mark_retry(
        self, outbox_ids: Sequence[int], worker: str, error: str, due_at: datetime
    ) -> None:
        self._settle(
            outbox_ids,
            worker,
            attempts=OutboxRow.attempts + 1,
            last_error=error,
            due_at=due_at,
            lease_until=None,
        )

    def release(self, outbox_ids: Sequence[int], worker: str, due_at: datetime) -> None:
        """Give claims back untried (their channel just failed): due again at ``due_at``,
        with no attempt counted."""
        self._settle(outbox_ids, worker, due_at=due_at, lease_until=None)

    def mark_dead(self, outbox_ids: Sequence[int], worker: str, error: str) -> None:
        self._settle(
            outbox_ids,
            worker,
            status="dead",
            attempts=OutboxRow.attempts + 1,
            last_error=error,
            lease_until=None,
        )

    def _settle(self, outbox_ids: Sequence[int], worker: str, **values: Any) -> None:
        # Only the worker holding the claim may settle it: one whose lease ran out and was
        # taken over must not overwrite the new holder's outcome.
        with self._session() as session:
            session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id.in_(outbox_ids),
                    OutboxRow.claimed_by == worker,
                    OutboxRow.status == "pending",
                )
                .values(**values)
            )

    def list_outbox(self, *, dead: bool = False) -> list[dict[str, Any]]:
        status = "dead" if dead else "pending"
        query = (
            select(OutboxRow, RecordRow.study_id, func.count(OutboxChangeRow.id))
            .join(RecordRow, RecordRow.id == OutboxRow.record_id)
            .outerjoin(OutboxChangeRow, OutboxChangeRow.outbox_id == OutboxRow.id)
            .where(OutboxRow.status == status)
            .group_by(OutboxRow.id, RecordRow.study_id)
            .order_by(OutboxRow.due_at, OutboxRow.id)
        )
        with self._session() as session:
            return [
                {
                    "id": row.id,
                    "event_id": row.event_id,
                    "channel": row.channel,
                    "mode": row.mode,
                    "study_id": study_id,
                    "changes": count,
                    "status": row.status,
                    "attempts": row.attempts,
                    "due_at": row.due_at.isoformat(),
                    "last_error": row.last_error,
                }
                for row, study_id, count in session.execute(query)
            ]

    def replay(self, outbox_ids: Sequence[int], now: datetime) -> list[int]:
        """Put dead (or sent) notifications back in the queue, due now, same event id.

        All or nothing: returns the ids that are not dead or sent, and then changes nothing.
        """
        replayable = OutboxRow.id.in_(outbox_ids) & OutboxRow.status.in_(("dead", "sent"))
        with self._session() as session:
            found = set(session.scalars(select(OutboxRow.id).where(replayable)))
            missing = sorted(set(outbox_ids) - found)
            if not missing:
                session.execute(
                    update(OutboxRow)
                    .where(replayable)
                    .values(
                        status="pending",
                        attempts=0,
                        due_at=now,
                        lease_until=None,
                        claimed_by=None,
                        last_error="",
                    )
                )
        return missing


# How long a message waits for the sync run that queued it to finish, at most, counted from
# its newest change: a run whose process was killed stays ``running`` until the next run marks
# it interrupted.
HOLD_FOR_RUNNING_SYNC = timedelta(hours=1)


def _sync_in_progress(now: datetime) -> ColumnElement[bool]:
    """A message whose changes a sync run still under way stored: that run may yet add to
    it (the finding a change opens is reviewed after the change is stored; a daemon delivers
    while it syncs), so it waits for the run to end, and goes out whole, once. Correlated
    (per pending message, through ``outbox_changes.outbox_id``'s index), never a scan of
    every change ever queued."""
    return (
        select(OutboxChangeRow.id)
        .join(ChangeRow, ChangeRow.id == OutboxChangeRow.change_id)
        .join(SyncRunRow, SyncRunRow.id == ChangeRow.sync_run_id)
        .where(
            OutboxChangeRow.outbox_id == OutboxRow.id,
            SyncRunRow.status == "running",
            ChangeRow.detected_at > now - HOLD_FOR_RUNNING_SYNC,
        )
        .exists()
    )


def _name_digests(session: Session, outbox_ids: Sequence[int]) -> None:
    """Give the digest rows just claimed that have no event id yet one per group."""
    unnamed = session.execute(
        select(OutboxRow.id, OutboxRow.group_key).where(
            OutboxRow.id.in_(outbox_ids), OutboxRow.event_id.is_(None)
        )
    ).all()
    names: dict[str, str] = {}
    for outbox_id, group_key in unnamed:
        event_id = names.setdefault(group_key, str(uuid.uuid4()))
        session.execute(
            update(OutboxRow).where(OutboxRow.id == outbox_id).values(event_id=event_id)
        )


WORKER_LOCK = 0x7477_6B72  # "twkr": the advisory lock class of delivery workers' presence

# The workers alive on this database: two-key advisory locks show in pg_locks with the first
# key as classid, the second as objid (an oid: cast back to the int4 hashtext gave) and
# objsubid 2, so they never meet the one-key sync lock.
_LIVE_WORKERS = (
    text(
        "SELECT objid::int4 AS objid FROM pg_locks"
        " WHERE locktype = 'advisory' AND granted AND objsubid = 2"
        " AND classid = CAST(:worker_lock AS oid)"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    .bindparams(worker_lock=WORKER_LOCK)
    .columns(column("objid", Integer))
)


def _claimer_gone() -> ColumnElement[bool]:
    """A claim whose worker holds no presence lock: the process that made it is gone. The
    key is ``hashtext(worker)``, computed by the server both when locking and here."""
    return func.hashtext(OutboxRow.claimed_by).not_in(_LIVE_WORKERS)


class _Presence:
    """A delivery worker's presence on PostgreSQL: a connection of its own that holds a
    session-level advisory lock keyed by the worker id for as long as the worker lives.

    The server drops the lock with the connection, so the claims of a process that dies
    (SIGKILL, a rescheduled container) are taken over at another worker's next claim instead
    of when their lease runs out; a worker that hangs keeps its lock, and the lease remains
    the fallback. A connection found dead is replaced and the lock taken again; claims made
    under the old one may have been taken over meanwhile, so a send in flight may go out
    twice, under the same event id, as after any takeover.
    """

    def __init__(self, engine: Engine, worker: str) -> None:
        self.engine = engine
        self.worker = worker
        self.lock = threading.Lock()  # one claim at a time on the connection
        self._connection: Connection | None = None

    def connection(self) -> Connection:
        """The connection holding the lock, checked with a round trip (a connection the
        server dropped has dropped the lock too), and replaced if it does not answer."""
        if self._connection is not None and not _answers(self._connection):
            log.warning("delivery worker %s: store connection lost, reconnecting", self.worker)
            self.close()
        if self._connection is None:
            self._connection = self._lock()
        return self._connection

    def _lock(self) -> Connection:
        connection = self.engine.connect()
        try:
            held = connection.scalar(
                text("SELECT pg_try_advisory_lock(:worker_lock, hashtext(:worker))"),
                {"worker_lock": WORKER_LOCK, "worker": self.worker},
            )
            connection.commit()
        except SQLAlchemyError:
            _discard(connection)
            raise
        if not held:
            connection.close()  # no lock taken: the connection may go back to the pool
            raise StoreError(f"delivery worker {self.worker!r} is running in another process")
        return connection

    def close(self) -> None:
        if self._connection is not None:
            _discard(self._connection)
            self._connection = None


def _answers(connection: Connection) -> bool:
    if connection.invalidated or connection.closed:
        return False
    try:
        connection.exec_driver_sql("SELECT 1")
        connection.rollback()
    except SQLAlchemyError:
        return False
    return True


def _discard(connection: Connection) -> None:
    """Close a presence connection for good: invalidated, never back in the pool, where
    another unit of work would inherit its lock and keep a dead worker's claims alive."""
    try:
        connection.invalidate()
        connection.close()
    except SQLAlchemyError as exc:
        log.warning("delivery worker: closing its connection failed (%s)", exc)


def _let_go(presences: dict[str, _Presence]) -> None:
    for presence in presences.values():
        with presence.lock:
            presence.close()
    presences.clear()


def _queue(
    session: Session,
    record_id: int,
    changes: Sequence[ChangeRow],
    routes: Sequence[Route],
    now: datetime,
) -> None:
    """Queue ``changes`` of one record for each route's channel. Changes of a sync that
    already queued a message for this record and channel, not yet handed to a sender, join
    that message (the finding a change opens travels with the change: one message per study,
    sync and channel); otherwise a new one is queued."""
    for route in routes:
        outbox = _joinable(session, record_id, route, changes) or _new_outbox(
            session, record_id, route, now
        )
        session.add_all(
            OutboxChangeRow(outbox_id=outbox.id, change_id=changes[i].id, channel=route.channel)
            for i in route.change_indexes
        )


def _new_outbox(session: Session, record_id: int, route: Route, now: datetime) -> OutboxRow:
    event_id = str(uuid.uuid4()) if route.mode == "immediate" else None
    outbox = OutboxRow(
        event_id=event_id,
        channel=route.channel,
        mode=route.mode,
        group_key=event_id or _digest_key(route),
        record_id=record_id,
        status="pending",
        attempts=0,
        created_at=now,
        due_at=route.due_at,
        last_error="",
    )
    session.add(outbox)
    session.flush()
    return outbox


def _digest_key(route: Route) -> str:
    return f"digest:{route.channel}:{route.due_at.isoformat()}"


def _joinable(
    session: Session, record_id: int, route: Route, changes: Sequence[ChangeRow]
) -> OutboxRow | None:
    """The record's pending message to ``route``'s channel that ``changes`` may join: never
    claimed (no sender has read it, so its event id has carried nothing yet), of the same
    mode (a digest: the same digest) and, immediate, queued by the same sync run. Locked
    (PostgreSQL) so a worker claiming it meanwhile either waits for this transaction or
    finds it claimed, never reads it without the changes joining it."""
    same = (
        (OutboxRow.record_id == record_id)
        & (OutboxRow.channel == route.channel)
        & (OutboxRow.mode == route.mode)
        & (OutboxRow.status == "pending")
        & OutboxRow.claimed_by.is_(None)
        & (OutboxRow.attempts == 0)
    )
    if route.mode == "digest":
        same &= OutboxRow.group_key == _digest_key(route)
    else:
        run_id = _run_of(session, changes)
        if run_id is None:  # not stored by a sync: its own message
            return None
        queued_in = (
            select(OutboxChangeRow.outbox_id)
            .join(ChangeRow, ChangeRow.id == OutboxChangeRow.change_id)
            .where(
                ChangeRow.sync_run_id == run_id,
                ChangeRow.record_id == record_id,
            )
        )
        same &= OutboxRow.id.in_(queued_in)
    return session.scalar(
        # SKIP LOCKED: a message a sender is claiming is not joined (the changes get one of
        # their own) and a sync never waits on a claim that waits on the sync's own rows
        select(OutboxRow)
        .where(same)
        .order_by(OutboxRow.id.desc())
        .limit(1)
        .with_for_update(skip_locked=True)
    )


def _run_of(session: Session, changes: Sequence[ChangeRow]) -> int | None:
    """The sync run ``changes`` were stored by (callers may hand over rows with ids only)."""
    if not changes:
        return None
    return session.scalar(select(ChangeRow.sync_run_id).where(ChangeRow.id == changes[0].id))
