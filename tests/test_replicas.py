"""Daemons on one PostgreSQL store, one of them SIGKILLed mid-work: every change is recorded
once and every notification delivered, a repeat only under the same event id; the
notifications the killed one had claimed are delivered by another within seconds, not after
the claims' lease."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from notify_servers import Reply, WebhookReceiver, wait_until
from sqlalchemy import create_engine, text

from service.store import database_url as driver_url

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = json.loads((TESTS_DATA / "records" / "NCT00973089.json").read_text())
STUDIES = [f"NCT9{n:07d}" for n in range(1, 41)]


def study(study_id: str, status: str) -> dict[str, Any]:
    record = copy.deepcopy(TEMPLATE)
    record["protocolSection"]["identificationModule"]["nctId"] = study_id
    record["protocolSection"]["statusModule"]["overallStatus"] = status
    return record


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    engine = create_engine(driver_url(url))
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def test_replicas_lose_and_repeat_nothing_when_one_is_killed(
    postgres_url: str,
    emulator_factory: Callable[..., Emulator],
    webhook_receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    registry = emulator_factory(latency=0.05)
    for study_id in STUDIES:
        registry.publish(study(study_id, "RECRUITING"), date="2026-11-01")
    config = (
        twconfig.ctgov(
            registry.api_url, registry.history_url, requests_per_second=50.0, page_size=10
        )
        + twconfig.table("[schedule]", sync_every_seconds=1, deliver_every_seconds=1)
        + twconfig.table("[delivery]", lease_seconds=2, retry_initial_seconds=0)
        + twconfig.webhook(webhook_receiver.url)
        + twconfig.subscription("hook")
    )
    env = {**os.environ, **twconfig.environment(tmp_path, config, postgres_url)}
    trialwatch = [sys.executable, "-m", "service"]
    subprocess.run(
        [*trialwatch, "watch", "add", *STUDIES], env=env, cwd=ROOT, check=True, capture_output=True
    )
    daemons = [
        subprocess.Popen(
            [*trialwatch, "run"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"replica-{n}.log").open("wb"),
        )
        for n in range(3)
    ]
    try:
        wait_until(
            lambda: rows(postgres_url, "SELECT count(*) FROM records")[0][0] == len(STUDIES),
            timeout=60,
            what="the first sync",
        )
        for study_id in STUDIES:
            registry.publish(study(study_id, "COMPLETED"), date="2026-11-20")
        wait_until(
            lambda: len(webhook_receiver.requests) >= 5, timeout=60, what="deliveries to start"
        )
        daemons[0].send_signal(signal.SIGKILL)  # mid-work: syncing, delivering or both
        daemons[0].wait(timeout=10)
        for study_id in STUDIES[:10]:
            registry.publish(study(study_id, "TERMINATED"), date="2026-11-21")
        expected_events = len(STUDIES) + 10

        def all_delivered() -> bool:
            events = {r.headers["trialwatch-event-id"] for r in webhook_receiver.requests}
            return len(events) >= expected_events

        wait_until(all_delivered, timeout=90, what="every notification to be delivered")
        wait_until(
            lambda: (
                rows(postgres_url, "SELECT count(*) FROM outbox WHERE status <> 'sent'")[0][0] == 0
            ),
            timeout=30,
            what="the outbox to drain",
        )
    finally:
        for daemon in daemons[1:]:
            daemon.send_signal(signal.SIGTERM)
        exits = [daemon.wait(timeout=30) for daemon in daemons[1:]]
    assert exits == [0, 0]
    changes = rows(
        postgres_url,
        "SELECT r.study_id, c.kind, c.to_version FROM changes c "
        "JOIN records r ON r.id = c.record_id WHERE c.kind = 'status_changed'",
    )
    per_change = Counter(changes)
    assert max(per_change.values()) == 1, "a change was recorded twice"
    assert len(changes) == expected_events
    outbox_events = {e for (e,) in rows(postgres_url, "SELECT event_id FROM outbox")}
    delivered = Counter(r.headers["trialwatch-event-id"] for r in webhook_receiver.requests)
    assert set(delivered) == outbox_events  # nothing lost, nothing invented
    assert all(r.signature_valid for r in webhook_receiver.requests)
    payloads = [json.loads(r.body) for r in webhook_receiver.requests]
    by_event: dict[str, str] = {}
    for payload in payloads:  # a repeat carries the same event id AND the same content
        body = json.dumps(payload["changes"], sort_keys=True)
        assert by_event.setdefault(payload["id"], body) == body


def test_a_killed_replicas_claims_are_delivered_by_another_within_seconds(
    postgres_url: str,
    emulator_factory: Callable[..., Emulator],
    webhook_receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    """The lease is 300 s: only the claims dying with their process let the survivor in."""
    registry = emulator_factory()
    studies = STUDIES[:5]
    for study_id in studies:
        registry.publish(study(study_id, "RECRUITING"), date="2026-11-01")
    config = (
        twconfig.ctgov(registry.api_url, registry.history_url, page_size=10)
        + twconfig.table("[schedule]", sync_every_seconds=1, deliver_every_seconds=1)
        + twconfig.table("[delivery]", lease_seconds=300, retry_initial_seconds=0)
        + twconfig.table(  # a send that outlives the test: only the kill ends it
            "[[channels]]",
            name="hook",
            type="webhook",
            url=webhook_receiver.url,
            secret_env=twconfig.HOOK_SECRET_ENV,
            allow_private_network=True,
            timeout_seconds=60,
        )
        + twconfig.subscription("hook")
    )
    env = {**os.environ, **twconfig.environment(tmp_path, config, postgres_url)}
    trialwatch = [sys.executable, "-m", "service"]
    subprocess.run(
        [*trialwatch, "watch", "add", *studies], env=env, cwd=ROOT, check=True, capture_output=True
    )
    # The holder runs alone until it hangs on its first delivery (so that delivery is its
    # claim), holding the claims of its batch; the survivor starts only then.
    holder = replica(trialwatch, env, tmp_path / "holder.log")
    survivor: subprocess.Popen[bytes] | None = None
    try:
        wait_until(
            lambda: rows(postgres_url, "SELECT count(*) FROM records")[0][0] == len(studies),
            timeout=30,
            what="the first sync",
        )
        webhook_receiver.reply(Reply(hang=True))  # the first delivery never gets an answer
        for study_id in studies:
            registry.publish(study(study_id, "TERMINATED"), date="2026-11-20")
        wait_until(lambda: webhook_receiver.requests, timeout=30, what="a first delivery")
        hung = webhook_receiver.requests[0].headers["trialwatch-event-id"]
        survivor = replica(trialwatch, env, tmp_path / "survivor.log")
        wait_until(
            lambda: "daemon started" in (tmp_path / "survivor.log").read_text(),
            timeout=30,
            what="the survivor to start",
        )
        held = rows(postgres_url, "SELECT count(*) FROM outbox WHERE lease_until IS NOT NULL")
        holder.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        holder.wait(timeout=10)

        def hung_event_delivered_again() -> bool:
            events = [r.headers["trialwatch-event-id"] for r in webhook_receiver.requests]
            return events.count(hung) == 2 and len(set(events)) == len(studies)

        try:
            wait_until(hung_event_delivered_again, timeout=20, what="the survivor to take over")
        except pytest.fail.Exception:
            pytest.fail(f"no takeover of {hung}: {explain(postgres_url, webhook_receiver)}")
        takeover = time.monotonic() - killed_at
    finally:
        holder.kill()
        if survivor is not None:
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(timeout=30) == 0
    assert held[0][0] >= 1  # the holder was killed holding claims, among them the hung one
    assert takeover < 10, f"taken over after {takeover:.1f} s"  # the lease would be 300 s
    assert rows(postgres_url, "SELECT status, count(*) FROM outbox GROUP BY status") == [
        ("sent", len(studies))
    ]
    assert all(r.signature_valid for r in webhook_receiver.requests)
    repeats = Counter(r.headers["trialwatch-event-id"] for r in webhook_receiver.requests)
    assert repeats == Counter({**dict.fromkeys(repeats, 1), hung: 2})  # one repeat, same id


def replica(trialwatch: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*trialwatch, "run"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("wb")
    )


def explain(url: str, receiver: WebhookReceiver) -> str:
    """What a failed takeover leaves behind: the outbox, the worker locks, the deliveries."""
    outbox = rows(url, "SELECT id, event_id, status, claimed_by, lease_until FROM outbox")
    locks = rows(url, "SELECT pid, objid FROM pg_locks WHERE locktype = 'advisory'")
    events = [r.headers["trialwatch-event-id"] for r in receiver.requests]
    return f"outbox {outbox}; advisory locks {locks}; delivered {events}"
