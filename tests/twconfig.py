"""Config files and CLI runners for the end-to-end tests: one place that writes the TOML a
test needs (registry at the emulator, channels at the test servers)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from notify_servers import WEBHOOK_SECRET

from service.cli import cli

HOOK_SECRET_ENV = "TEST_HOOK_SECRET"


@dataclass(frozen=True)
class Ran:
    """What one in-process trialwatch command did."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


Run = Callable[..., Ran]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def table(header: str, **keys: Any) -> str:
    lines = [header, *(f"{key} = {toml_value(value)}" for key, value in keys.items())]
    return "\n".join(lines) + "\n\n"


def ctgov(api_url: str, history_url: str, **overrides: Any) -> str:
    """The [ctgov] table for an emulator: fast, and history requests unspaced."""
    # incremental cycles skip a quiet registry and list its changes since the last cycle:
    # the tests of other parts count requests and inject faults per cycle, so they probe
    # (tests/test_incremental.py turns it on)
    keys = {
        "requests_per_second": 100.0,
        "history_gap_seconds": 0,
        "incremental": False,
        **overrides,
    }
    return table("[ctgov]", api_url=api_url, history_url=history_url, **keys)


def webhook(url: str, name: str = "hook") -> str:
    return table(
        "[[channels]]",
        name=name,
        type="webhook",
        url=url,
        secret_env=HOOK_SECRET_ENV,
        allow_private_network=True,
    )


def email(host: str, port: int, name: str = "mail", **keys: Any) -> str:
    keys = {"sender": "trialwatch@example.org", "recipients": ["team@example.org"], **keys}
    return table("[[channels]]", name=name, type="email", smtp_host=host, smtp_port=port, **keys)


def subscription(channel: str, **keys: Any) -> str:
    return table("[[subscriptions]]", channel=channel, **keys)


def environment(tmp_path: Path, config: str, database_url: str, **extra: str) -> dict[str, str]:
    """Write ``config`` and return the environment a trialwatch process needs for it."""
    path = tmp_path / "trialwatch.toml"
    if "[findings]" not in config:
        # transparency findings add their own events to a cycle: the tests of other parts
        # assert exact change lists, so they run without them (tests/test_findings*.py with)
        config += FINDINGS_OFF
    path.write_text(config)
    return {
        "TRIALWATCH_CONFIG": str(path),
        "TRIALWATCH_DATABASE_URL": database_url,
        HOOK_SECRET_ENV: WEBHOOK_SECRET.decode(),
        **extra,
    }


FINDINGS_OFF = "[findings]\nenabled = false\n\n"


def runner(env: dict[str, str]) -> Run:
    """``run(*args)``: trialwatch in-process with ``env``."""

    def run(*args: str) -> Ran:
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        return Ran(result.exit_code, result.stdout, result.stderr)

    return run
