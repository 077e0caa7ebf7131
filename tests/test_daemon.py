"""The daemon as it runs in production: a real `trialwatch run` process against the emulator,
with /healthz and /metrics, scheduled syncs and deliveries, and a clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from notify_servers import free_port, wait_until

from service.health import HealthCheck
from service.scheduler import sync_interval
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


class Daemon:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    def health(self) -> tuple[int, dict[str, object]]:
        status, body = get(self.port, "/healthz")
        return status, json.loads(body) if body else {}


@pytest.fixture
def start_daemon(
    tmp_path: Path, emulator_factory: Callable[..., Emulator], sqlite_url: str
) -> Iterator[Callable[..., Daemon]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*, registry_down: bool = False, database_url: str = sqlite_url) -> Daemon:
        emulator = emulator_factory([TESTS_DATA / "records"])
        if registry_down:
            emulator.fault("503", count=-1)
        config = tmp_path / "daemon.toml"
        config.write_text(
            f'[ctgov]\napi_url = "{emulator.api_url}"\nhistory_url = "{emulator.history_url}"\n'
            "requests_per_second = 50.0\nhistory_gap_seconds = 0\n"
            "max_attempts = 1\n[schedule]\nsync_every_seconds = 1\ndeliver_every_seconds = 1\n"
        )
        env = {
            **os.environ,
            "TRIALWATCH_CONFIG": str(config),
            "TRIALWATCH_DATABASE_URL": database_url,
        }
        subprocess.run(
            [sys.executable, "-m", "service", "watch", "add", "NCT00763412", "NCT00973089"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        port = free_port()
        log = tmp_path / f"daemon-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "service", "run", "--health-port", str(port)],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return Daemon(process, port, log)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_the_daemon_syncs_on_schedule_serves_health_and_metrics_and_stops_on_sigterm(
    start_daemon: Callable[..., Daemon],
) -> None:
    daemon = start_daemon()
    wait_until(lambda: daemon.health()[0] == 200, timeout=30, what="/healthz to answer 200")
    wait_until(lambda: daemon.health()[1].get("status") == "ok", timeout=30, what="a sync")
    status, metrics = get(daemon.port, "/metrics")
    text = metrics.decode()
    assert status == 200
    assert 'trialwatch_sync_runs_total{outcome="ok"}' in text
    assert 'trialwatch_changes_total{kind="record_added"} 2.0' in text
    assert 'trialwatch_registry_requests_total{status="200"}' in text
    assert "trialwatch_watched_records 2.0" in text
    assert "trialwatch_outbox_pending 0.0" in text
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=30) == 0
    log = daemon.log.read_text()
    assert "trialwatch daemon started: sync every 1 s" in log
    assert "SIGTERM received" in log


def test_health_turns_503_when_syncs_keep_failing(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(registry_down=True)
    wait_until(lambda: daemon.health()[0] == 503, timeout=30, what="/healthz to answer 503")
    _, body = daemon.health()
    assert body["status"] == "failing" and "no successful sync" in str(body["detail"])
    _, metrics = get(daemon.port, "/metrics")
    assert b'trialwatch_registry_requests_total{status="503"}' in metrics
    daemon.process.send_signal(signal.SIGINT)
    assert daemon.process.wait(timeout=30) == 0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_health_says_starting_then_ok_then_failing() -> None:
    clock = Clock()
    last: list[datetime | None] = [None]
    check = HealthCheck(lambda: last[0], timedelta(hours=2), clock)
    assert check.verdict()[0] == 200 and check.verdict()[1]["status"] == "starting"
    last[0] = T0 + timedelta(minutes=5)
    clock.now = T0 + timedelta(hours=1)
    assert check.verdict()[1]["status"] == "ok"
    clock.now = T0 + timedelta(hours=3)
    code, body = check.verdict()
    assert (code, body["status"]) == (503, "failing")
    assert body["detail"] == "no successful sync for 10500 s"


def test_a_daemon_that_never_succeeds_fails_after_the_tolerance() -> None:
    clock = Clock()
    check = HealthCheck(lambda: None, timedelta(hours=2), clock)
    clock.now = T0 + timedelta(hours=2, seconds=1)
    assert check.verdict()[0] == 503


@pytest.mark.parametrize(
    ("schedule", "interval"),
    [
        ({"sync_every_seconds": 600}, timedelta(minutes=10)),
        ({"sync": "0 6 * * *"}, timedelta(days=1)),
        ({"sync": "0 */6 * * *"}, timedelta(hours=6)),
        ({"sync": "0 7 * * 1"}, timedelta(days=7)),
    ],
)
def test_the_health_tolerance_follows_the_schedule(
    schedule: dict[str, object], interval: timedelta
) -> None:
    class FakeApp:
        settings = Settings.model_validate({"schedule": schedule})

    assert sync_interval(FakeApp(), T0) == interval  # type: ignore[arg-type]
