"""Secrets come from the environment and go nowhere else: not into debug logs, error
messages, sync or notify output, or the store — even when authentication fails."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import twconfig
from click.testing import CliRunner
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from notify_servers import WEBHOOK_SECRET, SmtpServer, WebhookReceiver, password_authenticator

from service.cli import cli

SMTP_PASSWORD = "smtp-pa55word-never-logged"
HOOK_SECRET = WEBHOOK_SECRET.decode()  # the test receiver verifies with it
DB_PASSWORD = "db-pa55word-never-logged"


@pytest.mark.parametrize("smtp_accepts", [True, False], ids=["auth-ok", "auth-refused"])
def test_secrets_never_reach_logs_output_or_the_store(
    emulator_factory: Callable[..., Emulator],
    smtp_factory: Callable[..., SmtpServer],
    webhook_receiver: WebhookReceiver,
    tmp_path: Path,
    smtp_accepts: bool,
) -> None:
    registry = emulator_factory()
    record = json.loads((TESTS_DATA / "demo" / "NCT05605665" / "v0.json").read_text())
    registry.publish(record, date="2022-11-08")
    expected = SMTP_PASSWORD if smtp_accepts else "another-password"
    smtp = smtp_factory(
        authenticator=password_authenticator("trialwatch", expected), auth_require_tls=False
    )
    config = (
        twconfig.ctgov(registry.api_url, registry.history_url)
        + twconfig.email(
            smtp.host, smtp.port, username="trialwatch", password_env="TEST_SMTP_PASSWORD"
        )
        + twconfig.webhook(webhook_receiver.url)
        + twconfig.subscription("mail", kinds=["record_added"])
        + twconfig.subscription("hook", kinds=["record_added"])
    )
    database = tmp_path / "store.db"
    env = twconfig.environment(
        tmp_path, config, f"sqlite:///{database}", TEST_SMTP_PASSWORD=SMTP_PASSWORD
    )
    outputs = []
    for args in (
        ["watch", "add", "NCT05605665"],
        ["sync"],
        ["notify", "--json"],
        ["outbox", "--dead"],
    ):
        result = CliRunner().invoke(cli, ["-vv", *args], env=env, catch_exceptions=False)
        outputs.append(result.stdout + result.stderr)
    text = "\n".join(outputs)
    assert ("sent" in text) and ('"sent": 2' in text if smtp_accepts else '"dead": 1' in text)
    for secret in (SMTP_PASSWORD, HOOK_SECRET):
        assert secret not in text
        assert secret.encode() not in database.read_bytes()
    assert webhook_receiver.requests and all(r.signature_valid for r in webhook_receiver.requests)


def test_a_database_password_is_masked_in_every_error(tmp_path: Path) -> None:
    url = f"postgresql://trialwatch:{DB_PASSWORD}@127.0.0.1:1/none"
    for args in (["-vv", "watch", "list"], ["-vv", "sync"], ["init"]):
        result = CliRunner().invoke(cli, args, env={"TRIALWATCH_DATABASE_URL": url})
        assert result.exit_code != 0
        assert DB_PASSWORD not in result.stdout + result.stderr
