"""The daemon as it runs in production: a real `trialwatch run` process against the emulator,
with /healthz and /metrics, scheduled syncs and deliveries, and a clean SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from notify_servers import free_port, wait_until

from service.errors import ConfigError, StoreError
from service.health import CycleResult, HealthCheck, SyncState
from service.scheduler import retry_delay, retry_first, sync_interval
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
    def __init__(
        self, process: subprocess.Popen[bytes], port: int, log: Path, emulator: Emulator
    ) -> None:
        self.process, self.port, self.log, self.emulator = process, port, log, emulator

    def health(self) -> tuple[int, dict[str, object]]:
        return self.probe("/healthz")

    def ready(self) -> tuple[int, dict[str, object]]:
        return self.probe("/readyz")

    def probe(self, path: str) -> tuple[int, dict[str, object]]:
        status, body = get(self.port, path)
        return status, json.loads(body) if body else {}

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # what every thread is doing (the daemon dumps its stacks on SIGUSR1), so that a
            # daemon that will not stop says where it hangs
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(2)
            self.process.kill()
            tail = self.log.read_text(errors="replace")[-6000:]
            raise AssertionError(f"the daemon did not stop 30 s after SIGTERM:\n{tail}") from None


@pytest.fixture
def start_daemon(
    tmp_path: Path, emulator_factory: Callable[..., Emulator], sqlite_url: str
) -> Iterator[Callable[..., Daemon]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(
        *,
        registry_down: bool = False,
        database_url: str = sqlite_url,
        every: int = 1,
        retry_seconds: float | None = None,
        watch: bool = True,
        ctgov: str = "",
    ) -> Daemon:
        emulator = emulator_factory([TESTS_DATA / "records"])
        if registry_down:
            emulator.fault("503", count=-1)
        config = tmp_path / "daemon.toml"
        config.write_text(
            f'[ctgov]\napi_url = "{emulator.api_url}"\nhistory_url = "{emulator.history_url}"\n'
            "requests_per_second = 50.0\nhistory_gap_seconds = 0\n"
            f"max_attempts = 1\n{ctgov}[schedule]\nsync_every_seconds = {every}\n"
            "deliver_every_seconds = 1\n"
        )
        env = {
            **os.environ,
            "TRIALWATCH_CONFIG": str(config),
            "TRIALWATCH_DATABASE_URL": database_url,
        }
        if retry_seconds is not None:
            env["TRIALWATCH_SYNC_RETRY_SECONDS"] = str(retry_seconds)
        ids = ["NCT00763412", "NCT00973089"] if watch else []
        subprocess.run(
            [sys.executable, "-m", "service", "watch", "add", *ids] if watch else
            [sys.executable, "-m", "service", "init"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )  # fmt: skip
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
        return Daemon(process, port, log, emulator)

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
    # the store knows of a success a moment before the daemon's own record of its cycle
    wait_until(lambda: daemon.ready()[1].get("last_sync"), timeout=30, what="a cycle recorded")
    wait_until(lambda: daemon.ready()[0] == 200, timeout=30, what="/readyz after a sync")
    _, ready = daemon.ready()
    assert ready["status"] == "ok" and ready["last_success_at"]
    assert ready["last_sync"]["outcome"] == "ok"  # type: ignore[index]
    assert ready["next_sync_at"]
    status, metrics = get(daemon.port, "/metrics")
    text = metrics.decode()
    assert status == 200
    assert 'trialwatch_sync_runs_total{outcome="ok"}' in text
    assert 'trialwatch_changes_total{kind="record_added"} 2.0' in text
    assert 'trialwatch_registry_requests_total{status="200"}' in text
    assert "trialwatch_watched_records 2.0" in text
    assert "trialwatch_outbox_pending 0.0" in text
    daemon.process.send_signal(signal.SIGUSR1)  # what a stuck daemon is doing, and it goes on
    # the main thread, in the scheduler's loop
    wait_until(lambda: "service/scheduler.py\", line" in daemon.log.read_text(), timeout=10,
               what="the threads' stacks in the log")  # fmt: skip
    assert "most recent call first" in daemon.log.read_text()
    assert daemon.health()[0] == 200
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert "trialwatch daemon started: sync every 1 s" in log
    assert "SIGTERM received" in log


def test_a_registry_that_is_down_leaves_the_daemon_alive_but_not_ready_and_it_recovers(
    start_daemon: Callable[..., Daemon],
) -> None:
    # an hourly schedule: only the retry (1 s here, 1 min by default) can make it ready soon
    daemon = start_daemon(registry_down=True, every=3600, retry_seconds=1)
    wait_until(lambda: daemon.ready()[0] == 503 and daemon.ready()[1].get("last_sync"),
               timeout=30, what="/readyz to report the failed cycle")  # fmt: skip
    live, alive = daemon.health()
    status, ready = daemon.ready()
    assert (live, alive["status"]) == (200, "ok")  # alive: restarting would not help
    assert (status, ready["status"]) == (503, "failing")
    assert ready["last_sync"]["outcome"] == "failed"  # type: ignore[index]
    assert "503" in str(ready["last_sync"]["error"])  # type: ignore[index]
    assert "failed" in str(ready["detail"]) and "no sync has finished" not in json.dumps(ready)
    assert ready["last_success_at"] is None
    next_at = datetime.fromisoformat(str(ready["next_sync_at"]))
    assert next_at - datetime.now(UTC) < timedelta(minutes=5)  # a retry, not the next hour
    assert healthcheck(daemon.port).returncode == 0
    not_ready = healthcheck(daemon.port, "--ready")
    assert not_ready.returncode == 1 and '"status": "failing"' in not_ready.stdout
    daemon.emulator.clear_faults()
    wait_until(
        lambda: daemon.ready()[0] == 200, timeout=30, what="ready after the registry is back"
    )
    # the store knows of the success a moment before the daemon's own record of its cycle
    wait_until(lambda: daemon.ready()[1]["last_sync"]["outcome"] == "ok",  # type: ignore[index]
               timeout=30, what="the daemon's record of the good cycle")  # fmt: skip
    _, metrics = get(daemon.port, "/metrics")
    assert b'trialwatch_sync_runs_total{outcome="failed"}' in metrics
    assert daemon.stop() == 0
    assert "retrying in 1 s" in daemon.log.read_text()


def test_a_sqlite_store_deleted_under_the_daemon_is_a_failure_not_a_success(
    start_daemon: Callable[..., Daemon], sqlite_url: str
) -> None:
    daemon = start_daemon()
    wait_until(lambda: daemon.ready()[0] == 200, timeout=30, what="a first sync")
    folder = Path(sqlite_url.removeprefix("sqlite:///")).parent
    shutil.rmtree(folder)
    wait_until(lambda: daemon.health()[0] == 503, timeout=30, what="/healthz to answer 503")
    _, body = daemon.health()
    assert body["status"] == "failing" and "gone" in str(body["detail"])
    wait_until(lambda: "sync failed: store" in daemon.log.read_text(), timeout=30,
               what="the next sync to fail loudly")  # fmt: skip
    assert daemon.ready()[0] == 503
    assert daemon.stop() == 0


def test_the_daemon_works_the_backfill_queue_between_cycles(
    start_daemon: Callable[..., Daemon], sqlite_url: str
) -> None:
    # cycles spend no time on history: the queue is left to the daemon's own job
    ctgov = "history_budget_seconds = 0\nhistory_backfill_every_seconds = 1\n"
    daemon = start_daemon(every=3600, ctgov=ctgov)
    env = {**os.environ, "TRIALWATCH_CONFIG": "", "TRIALWATCH_DATABASE_URL": sqlite_url}

    def states() -> set[str]:
        listed = subprocess.run(
            [sys.executable, "-m", "service", "watch", "list", "--json"],
            env=env, cwd=ROOT, capture_output=True, check=True,
        )  # fmt: skip
        return {w["backfill"] for w in json.loads(listed.stdout)}

    wait_until(lambda: states() == {"done"}, timeout=30, what="the backfill queue worked")
    assert "backfill: 2 records done" in daemon.log.read_text()
    assert daemon.stop() == 0


def test_a_daemon_with_nothing_to_watch_says_how_to_add_something(
    start_daemon: Callable[..., Daemon],
) -> None:
    daemon = start_daemon(watch=False)
    wait_until(lambda: "nothing is watched" in daemon.log.read_text(), timeout=30,
               what="the hint in the log")  # fmt: skip
    log = daemon.log.read_text()
    assert "trialwatch watch add" in log and "trialwatch seeds load" in log
    assert daemon.stop() == 0


def test_postgresql_gone_answers_503_on_every_probe_without_a_traceback(
    start_daemon: Callable[..., Daemon], postgres_url: str
) -> None:
    daemon = start_daemon(database_url=postgres_url)
    wait_until(lambda: daemon.ready()[0] == 200, timeout=30, what="a first sync")
    drop_database(postgres_url)
    for path in ("/healthz", "/readyz", "/metrics"):
        wait_until(lambda p=path: get(daemon.port, p)[0] == 503, timeout=30,
                   what=f"{path} to answer 503")  # fmt: skip
    _, body = daemon.health()
    assert "store" in str(body["detail"])
    wait_until(lambda: "sync failed: store" in daemon.log.read_text(), timeout=30,
               what="the sync (and its lock) to fail as a store error")  # fmt: skip
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log.read_text()


def healthcheck(port: int, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "healthcheck", "--port", str(port), *options],
        cwd=ROOT, capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("TRIALWATCH_")},
    )  # fmt: skip


def drop_database(url: str) -> None:
    from dbs import _admin_connection
    from sqlalchemy.engine import make_url

    with _admin_connection() as admin:
        admin.execute(f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)')


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Probes:
    """A HealthCheck over a fake clock, store and scheduler."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.state = SyncState()
        self.success: datetime | None = None
        self.store_error: Exception | None = None
        self.running = True
        self.check = HealthCheck(
            state=self.state,
            last_success=lambda: self.success,
            store_check=self.store_check,
            scheduler_running=lambda: self.running,
            next_sync_at=lambda: T0 + timedelta(days=1),
            tolerance=timedelta(hours=2),
            clock=self.clock,
        )

    def store_check(self) -> None:
        if self.store_error is not None:
            raise self.store_error

    def cycle(self, outcome: str, error: str | None = None) -> None:
        self.state.record(CycleResult(self.clock.now, outcome, checked=2, error=error))
        if outcome != "failed":
            self.success = self.clock.now


def test_ready_only_after_a_success_and_not_after_a_wholly_failed_cycle() -> None:
    probes = Probes()
    code, body = probes.check.readiness()
    assert (code, body["status"]) == (503, "starting")
    assert probes.check.liveness()[0] == 200
    probes.clock.now = T0 + timedelta(minutes=1)
    probes.cycle("failed", "every study failed (registry): 503")
    code, body = probes.check.readiness()
    assert (code, body["status"]) == (503, "failing")
    assert "no sync has" not in json.dumps(body) and "503" in str(body["detail"])
    assert body["last_sync"]["outcome"] == "failed" and body["failed_cycles_in_a_row"] == 1
    assert probes.check.liveness()[0] == 200  # a registry down is not a dead daemon
    probes.clock.now = T0 + timedelta(minutes=2)
    probes.cycle("partial")
    assert probes.check.readiness()[:1] == (200,)
    probes.clock.now = T0 + timedelta(minutes=3)
    probes.cycle("failed", "every study failed (registry): timeout")
    assert probes.check.readiness()[0] == 503  # the latest cycle failed as a whole


def test_ready_turns_stale_two_intervals_after_the_last_success() -> None:
    probes = Probes()
    probes.cycle("ok")
    probes.clock.now = T0 + timedelta(hours=2)
    assert probes.check.readiness()[0] == 200
    probes.clock.now = T0 + timedelta(hours=2, seconds=1)
    code, body = probes.check.readiness()
    assert (code, body["status"]) == (503, "stale")
    assert body["detail"] == "no successful sync for 7201 s (> 7200 s)"


def test_another_replicas_success_after_our_failure_makes_us_ready() -> None:
    probes = Probes()
    probes.cycle("failed", "every study failed")
    probes.success = T0 + timedelta(seconds=30)  # read from the store: any replica's
    probes.clock.now = T0 + timedelta(minutes=1)
    assert probes.check.readiness()[0] == 200


def test_liveness_fails_when_the_store_or_the_scheduler_does_not_answer() -> None:
    probes = Probes()
    probes.cycle("ok")
    probes.store_error = StoreError("store sqlite:///x.db: the database file x.db is gone")
    code, body = probes.check.liveness()
    assert (code, body["status"]) == (503, "failing") and "is gone" in str(body["detail"])
    assert probes.check.readiness()[0] == 503
    probes.store_error = RuntimeError("boom")  # whatever the store raises, an answer
    assert probes.check.liveness()[0] == 503
    probes.store_error, probes.running = None, False
    code, body = probes.check.liveness()
    assert code == 503 and body["checks"] == {"scheduler": "stopped", "store": "ok"}


def test_a_wholly_failed_cycle_is_retried_after_one_minute_doubling_up_to_the_interval() -> None:
    day = timedelta(days=1)
    minute = timedelta(minutes=1)
    delays = [retry_delay(n, minute, day) for n in (1, 2, 3, 4, 11, 12, 1000)]
    assert delays[:5] == [minute, 2 * minute, 4 * minute, 8 * minute, 1024 * minute]
    assert delays[5:] == [day, day]
    assert retry_delay(1, minute, timedelta(seconds=10)) == timedelta(seconds=10)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e99", "soon"])
def test_a_bad_first_retry_delay_is_one_line(value: str) -> None:
    with pytest.raises(ConfigError, match="TRIALWATCH_SYNC_RETRY_SECONDS"):
        retry_first({"TRIALWATCH_SYNC_RETRY_SECONDS": value})
    assert retry_first({}) == timedelta(minutes=1)
    assert retry_first({"TRIALWATCH_SYNC_RETRY_SECONDS": "2.5"}) == timedelta(seconds=2.5)


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


def test_a_sigterm_that_lands_inside_a_job_submission_still_stops_the_daemon(
    tmp_path: Path,
) -> None:
    """The signal handler runs on the main thread between two bytecodes, which is also the
    thread that submits the scheduler's jobs: a SIGTERM landing inside a submission (which
    holds the job executor's lock) must not make the daemon wait for that lock itself. The
    handler only flags the stop; a thread of its own shuts the scheduler down."""
    from service.app import App
    from service.scheduler import Daemon
    from service.settings import load_settings

    environ = {"TRIALWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'tw.db'}"}
    daemon = Daemon(App(load_settings(environ=environ)), environ=environ)
    scheduler = daemon.scheduler
    running = threading.Thread(target=scheduler.start, daemon=True)
    running.start()
    wait_until(lambda: scheduler.running, timeout=10, what="the scheduler to start")
    threading.Thread(target=daemon._stop_when_asked, daemon=True).start()
    submitting = scheduler._executors["default"]._pool._shutdown_lock  # what submit() holds

    def signal_inside_a_submission() -> None:
        with submitting:
            daemon._on_signal(signal.SIGTERM, None)

    handler = threading.Thread(target=signal_inside_a_submission, daemon=True)
    handler.start()
    handler.join(timeout=5)
    assert not handler.is_alive(), "the SIGTERM handler waits for a lock its own thread holds"
    running.join(timeout=10)
    assert not running.is_alive() and not scheduler.running


@pytest.mark.parametrize("registry", ["refusing", "answering 503"])
def test_sigterm_stops_the_daemon_within_5_s_while_it_retries_an_unreachable_registry(
    registry: str,
    tmp_path: Path,
    emulator_factory: Callable[..., Emulator],
    sqlite_url: str,
) -> None:
    """Container runtimes kill 10 s after SIGTERM: a daemon waiting between retries of a
    registry that refuses connections (or answers 503) stops at once, with exit status 0."""
    if registry == "refusing":
        api_url = history_url = f"http://127.0.0.1:{free_port()}/api/v2"
    else:
        emulator = emulator_factory([TESTS_DATA / "records"])
        emulator.fault("503", count=-1)
        api_url, history_url = emulator.api_url, emulator.history_url
    config = tmp_path / "daemon.toml"
    config.write_text(
        f'[ctgov]\napi_url = "{api_url}"\nhistory_url = "{history_url}"\n'
        "requests_per_second = 50.0\nmax_attempts = 10\n"
        "retry_initial_seconds = 30\nretry_max_seconds = 60\n"
        "[schedule]\nsync_every_seconds = 3600\n"
    )
    env = {**os.environ, "TRIALWATCH_CONFIG": str(config), "TRIALWATCH_DATABASE_URL": sqlite_url}
    subprocess.run(
        [sys.executable, "-m", "service", "watch", "add", "NCT00763412"],
        env=env, cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "run"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(lambda: "daemon started" in log.read_text(errors="replace"), timeout=30,
                   what="the daemon to start")  # fmt: skip
        # its first attempt failed at once: the daemon now waits 15-30 s before the next one
        time.sleep(2)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    output = log.read_text(errors="replace")
    assert took < 5.0, f"the daemon took {took:.2f} s to stop:\n{output[-3000:]}"
    assert code == 0, output[-3000:]
    assert "Traceback" not in output


def test_the_daemons_web_app_announces_itself_at_info_not_as_a_warning(
    start_daemon: Callable[..., Daemon],
) -> None:
    web_port = free_port()
    daemon = start_daemon(ctgov=f"[web]\nport = {web_port}\n")
    wait_until(lambda: "daemon started" in daemon.log.read_text(), timeout=30,
               what="the daemon to start")  # fmt: skip
    [line] = [ln for ln in daemon.log.read_text().splitlines() if "web app on" in ln]
    assert f" INFO trialwatch.web: web app on http://127.0.0.1:{web_port}/" in line
    assert daemon.stop() == 0


def test_a_web_port_that_is_the_health_port_is_a_wrong_setting_naming_both(
    tmp_path: Path, sqlite_url: str
) -> None:
    port = free_port()
    config = tmp_path / "clash.toml"
    config.write_text(f"[web]\nport = {port}\n[daemon]\nhealth_port = {port}\n")
    env = {**os.environ, "TRIALWATCH_CONFIG": str(config), "TRIALWATCH_DATABASE_URL": sqlite_url}
    ran = subprocess.run(
        [sys.executable, "-m", "service", "run"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    [line] = [ln for ln in ran.stderr.splitlines() if ln.strip()]
    assert "[web] port" in line and "[daemon] health_port" in line and str(port) in line
    assert "Traceback" not in ran.stderr
