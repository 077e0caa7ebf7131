"""End to end: sync finds changes, `trialwatch notify` delivers one email (real SMTP server)
and one signed webhook (real HTTP receiver) per study and channel; reruns send nothing new;
a failed delivery is retried under the same event id, also after the sender was SIGKILLed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from notify_servers import Reply, SmtpServer, WebhookReceiver, wait_until

DEMO = TESTS_DATA / "demo" / "NCT05605665"
ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> dict[str, Any]:
    return json.loads((DEMO / name).read_text())  # type: ignore[no-any-return]


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    emulator = emulator_factory()
    emulator.publish(load("v0.json"), date="2022-11-08")
    return emulator


@pytest.fixture
def env(
    registry: Emulator,
    smtp_server: SmtpServer,
    webhook_receiver: WebhookReceiver,
    database_url: str,
    tmp_path: Path,
) -> dict[str, str]:
    config = (
        twconfig.ctgov(registry.api_url, registry.history_url)
        + twconfig.table("[delivery]", retry_initial_seconds=0, lease_seconds=1)
        + twconfig.email(smtp_server.host, smtp_server.port)
        + twconfig.webhook(webhook_receiver.url)
        + twconfig.subscription("mail")
        + twconfig.subscription("hook")
    )
    return twconfig.environment(tmp_path, config, database_url)


@pytest.fixture
def trialwatch(env: dict[str, str]) -> twconfig.Run:
    return twconfig.runner(env)


@pytest.fixture
def changed(trialwatch: twconfig.Run, registry: Emulator) -> None:
    """NCT05605665 watched and synced, then completed by the registry and synced again."""
    trialwatch("watch", "add", "NCT05605665")
    trialwatch("sync")
    registry.publish(load("v1.json"), date="2024-01-10")
    assert trialwatch("sync").exit_code == 0


@pytest.mark.usefixtures("changed")
def test_a_change_is_delivered_as_one_email_and_one_signed_webhook(
    trialwatch: twconfig.Run, smtp_server: SmtpServer, webhook_receiver: WebhookReceiver
) -> None:
    result = trialwatch("notify", "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout and json.loads(result.stdout)["sent"] == 2
    [mail] = smtp_server.received
    assert mail.rcpt_tos == ["team@example.org"]
    assert mail.message["Subject"].startswith("NCT05605665: Recruiting → Completed")
    [hook] = webhook_receiver.requests
    assert hook.signature_valid
    payload = json.loads(hook.body)
    assert payload["type"] == "study.changed"
    assert payload["study"]["study_id"] == "NCT05605665"
    assert "status_changed" in {c["kind"] for c in payload["changes"]}
    assert hook.headers["trialwatch-event-id"] == payload["id"]
    assert mail.message["Trialwatch-Event-Id"] != payload["id"]  # one event per channel


@pytest.mark.usefixtures("changed")
def test_rerunning_sync_and_notify_sends_nothing_new(
    trialwatch: twconfig.Run, smtp_server: SmtpServer, webhook_receiver: WebhookReceiver
) -> None:
    trialwatch("notify")
    trialwatch("sync")
    again = trialwatch("notify", "--json")
    assert json.loads(again.stdout) == {"sent": 0, "retrying": 0, "dead": 0, "deliveries": []}
    assert (len(smtp_server.received), len(webhook_receiver.requests)) == (1, 1)


def test_first_sightings_are_not_notified_by_default(
    trialwatch: twconfig.Run, smtp_server: SmtpServer
) -> None:
    trialwatch("watch", "add", "NCT05605665")
    trialwatch("sync")
    assert json.loads(trialwatch("notify", "--json").stdout)["sent"] == 0
    assert smtp_server.received == []


@pytest.mark.usefixtures("changed")
def test_a_webhook_500_is_retried_with_the_same_event_id(
    trialwatch: twconfig.Run, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.reply(Reply(500))
    first = trialwatch("notify")
    assert first.exit_code == 1  # a delivery was put back for a retry
    pending = json.loads(trialwatch("outbox", "--json").stdout)
    assert [(p["channel"], p["attempts"]) for p in pending] == [("hook", 1)]
    assert "500" in pending[0]["last_error"]
    assert trialwatch("notify").exit_code == 0
    failed, delivered = webhook_receiver.requests
    assert failed.headers["trialwatch-event-id"] == delivered.headers["trialwatch-event-id"]
    assert delivered.signature_valid


@pytest.mark.usefixtures("changed")
def test_a_dead_letter_is_listed_and_replayed(
    trialwatch: twconfig.Run, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.reply(Reply(410))
    assert trialwatch("notify").exit_code == 1
    [dead] = json.loads(trialwatch("outbox", "--dead", "--json").stdout)
    assert dead["channel"] == "hook" and "410" in dead["last_error"]
    refused = trialwatch("outbox", "replay", "12345")
    assert refused.exit_code == 2 and "no dead or sent notification with id 12345" in refused.stderr
    assert trialwatch("outbox", "replay", str(dead["id"])).exit_code == 0
    assert trialwatch("notify").exit_code == 0
    assert webhook_receiver.requests[-1].headers["trialwatch-event-id"] == dead["event_id"]


@pytest.mark.usefixtures("changed")
def test_a_notifier_killed_mid_send_is_replaced_and_the_event_id_kept(
    env: dict[str, str],
    trialwatch: twconfig.Run,
    smtp_server: SmtpServer,
    webhook_receiver: WebhookReceiver,
) -> None:
    webhook_receiver.reply(Reply(hang=True))  # the first post is received but never answered
    notifier = subprocess.Popen(
        [sys.executable, "-m", "service", "notify"],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: len(webhook_receiver.requests) == 1, timeout=30, what="the post")
    finally:
        notifier.send_signal(signal.SIGKILL)  # after sending, before marking it sent
        notifier.wait(timeout=10)

    def delivered_again() -> bool:
        trialwatch("notify")  # the dead notifier's lease (1 s) must run out first
        return len(webhook_receiver.requests) == 2

    wait_until(delivered_again, timeout=30, what="the webhook to be delivered again")
    killed, replacement = webhook_receiver.requests
    assert killed.headers["trialwatch-event-id"] == replacement.headers["trialwatch-event-id"]
    assert replacement.signature_valid
    assert len({m.message["Trialwatch-Event-Id"] for m in smtp_server.received}) == 1
    assert json.loads(trialwatch("outbox", "--json").stdout) == []


def test_the_finding_a_change_opens_travels_in_the_changes_message(
    registry: Emulator,
    smtp_server: SmtpServer,
    webhook_receiver: WebhookReceiver,
    database_url: str,
    tmp_path: Path,
) -> None:
    """One sync in which NCT05605665 completes in 2023 and becomes an FDA-regulated drug
    trial, with no results posted, opens a finding (results overdue): the changes and the
    finding go out as one email and one webhook, not two each."""
    config = (
        twconfig.ctgov(registry.api_url, registry.history_url)
        + twconfig.table("[delivery]", retry_initial_seconds=0, lease_seconds=1)
        + twconfig.table("[findings]", enabled=True)
        + twconfig.email(smtp_server.host, smtp_server.port)
        + twconfig.webhook(webhook_receiver.url)
        + twconfig.subscription("mail")
        + twconfig.subscription("hook")
    )
    trialwatch = twconfig.runner(twconfig.environment(tmp_path, config, database_url))
    trialwatch("watch", "add", "NCT05605665")
    trialwatch("sync")
    registry.publish(fda_regulated(load("v1.json")), date="2024-01-10")
    assert trialwatch("sync").exit_code == 0
    result = trialwatch("notify", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sent"] == 2
    [mail] = smtp_server.received
    [hook] = webhook_receiver.requests
    kinds = [c["kind"] for c in json.loads(hook.body)["changes"]]
    assert "status_changed" in kinds and "finding_opened" in kinds
    assert "Finding" in mail.message.get_body(("plain",)).get_content()


def fda_regulated(record: dict[str, Any]) -> dict[str, Any]:
    record["protocolSection"]["oversightModule"]["isFdaRegulatedDrug"] = True
    return record
