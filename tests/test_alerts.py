"""Operational alerts reach the admin channel (a real SMTP server): the registry failing N
cycles in a row (once, at the Nth), records that no longer parse, dead letters."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from notify_servers import Reply, SmtpServer, WebhookReceiver

RECORD = TESTS_DATA / "records" / "NCT00973089.json"


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory([TESTS_DATA / "records"])


@pytest.fixture
def trialwatch(
    registry: Emulator,
    smtp_server: SmtpServer,
    webhook_receiver: WebhookReceiver,
    database_url: str,
    tmp_path: Path,
) -> twconfig.Run:
    config = (
        twconfig.ctgov(registry.api_url, registry.history_url, max_attempts=1)
        + twconfig.table("[alerts]", channel="admin", registry_unreachable_cycles=2)
        + twconfig.email(
            smtp_server.host, smtp_server.port, "admin", recipients=["ops@example.org"]
        )
        + twconfig.webhook(webhook_receiver.url)
        + twconfig.subscription("hook", kinds=["record_added"])
    )
    run = twconfig.runner(twconfig.environment(tmp_path, config, database_url))
    run("watch", "add", "NCT00973089", "NCT03475563")
    return run


def subjects(smtp_server: SmtpServer) -> list[str]:
    return [mail.message["Subject"] for mail in smtp_server.received]


def test_an_unreachable_registry_is_alerted_once_at_the_nth_failed_cycle(
    trialwatch: twconfig.Run, registry: Emulator, smtp_server: SmtpServer
) -> None:
    registry.fault("503", count=-1)
    for _ in range(4):
        assert trialwatch("sync").exit_code == 1
    assert subjects(smtp_server) == [
        "trialwatch alert: the registry ctgov failed 2 sync cycles in a row"
    ]
    registry.clear_faults()
    assert trialwatch("sync").exit_code == 0
    registry.fault("503", count=-1)
    trialwatch("sync")
    trialwatch("sync")
    assert len(subjects(smtp_server)) == 2  # a new run of failures is a new alert


def test_a_record_that_no_longer_parses_is_alerted_as_schema_drift(
    trialwatch: twconfig.Run, registry: Emulator, smtp_server: SmtpServer
) -> None:
    drifted = copy.deepcopy(json.loads(RECORD.read_text()))
    drifted["protocolSection"]["designModule"]["enrollmentInfo"] = {"count": "thirty"}
    registry.publish(drifted, date="2026-11-20")
    assert trialwatch("sync").exit_code == 1
    [mail] = smtp_server.received
    assert "format may have changed" in mail.message["Subject"]
    body = mail.message.get_body(preferencelist=("plain",))
    assert body is not None and "enrollmentInfo.count" in body.get_content()


def test_dead_letters_are_alerted(
    trialwatch: twconfig.Run, webhook_receiver: WebhookReceiver, smtp_server: SmtpServer
) -> None:
    trialwatch("sync")
    webhook_receiver.reply(Reply(410), Reply(410))
    assert trialwatch("notify").exit_code == 1
    [mail] = smtp_server.received
    assert mail.message["Subject"] == "trialwatch alert: 2 notification(s) went to the dead letters"
    assert mail.rcpt_tos == ["ops@example.org"]
