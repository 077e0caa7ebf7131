"""No request without a deadline (issue 29, item 1), against real hostile sockets on 127.0.0.1.

A server that drips its answer a byte every 0.2 s never trips a per-read timeout; each exchange
must still end at its whole-exchange deadline: registry requests (body and headers dripped),
webhook deliveries and SMTP conversations. The history backfill budget ends a request in
flight; a hung channel does not hold another channel's message; and a daemon whose registry
hangs stops within seconds of SIGTERM, leaving no sync run ``running`` and no partial version.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hostile_servers import DrippingHttp, DrippingSmtp, dripping_http, dripping_smtp, elapsed
from notify_servers import WEBHOOK_SECRET, SmtpServer, make_message, smtp_server, wait_until
from sqlalchemy import create_engine, text

from service.backfill import BackfillWorker
from service.deadline import Deadline, DeadlineExceeded, Watchdog, no_later_than
from service.errors import DeliveryError, RegistryUnavailable
from service.history import HistoryFetcher
from service.models import Change, Route, Snapshot
from service.notify.apprise_sender import AppriseSender
from service.notify.email import EmailSender
from service.notify.webhook import WebhookSender, build_webhook_client
from service.outbox import Dispatcher
from service.registry.ctgov import CtgovClient, build_http_client
from service.settings import (
    AppriseChannel,
    CtgovSettings,
    DeliverySettings,
    EmailChannel,
    Settings,
    WebhookChannel,
)
from service.store import NewVersion, Store

__all__ = ["dripping_http", "dripping_smtp", "smtp_server"]  # fixtures, used by name

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
DRIP = 0.2  # seconds between two bytes: far inside every per-read timeout below
# How late past its deadline an exchange may end on a loaded machine (2 cores, tests in
# parallel): generous, yet far below what a dripped answer would take without the deadline
# (73 bytes of body at DRIP: 14.6 s; a greeting: 6 s)
SLACK = 2.5


def registry_client(
    url: str, stop: threading.Event | None = None, **options: object
) -> CtgovClient:
    settings = CtgovSettings(
        api_url=url,
        history_url=url,
        history_gap_seconds=0,
        requests_per_second=100,
        **{"timeout_seconds": 0.5, "deadline_seconds": 1.0, "max_attempts": 1, **options},
    )
    return CtgovClient(build_http_client(settings), settings, stop=stop)


# ---------------------------------------------------------------------------- registry


@pytest.mark.parametrize("mode", ["body", "headers"])
def test_a_dripped_registry_answer_fails_at_its_deadline(
    dripping_http: type[DrippingHttp], mode: str
) -> None:
    server = dripping_http(mode, DRIP)
    client = registry_client(server.url)
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable) as failure:
        client.data_timestamp()
    took = elapsed(started)
    assert 1.0 <= took < SLACK + 1.0, f"a 1 s deadline ended the exchange after {took:.2f} s"
    message = str(failure.value)
    assert message == (
        f"registry request not finished within its 1 s deadline ({server.url}/version)"
    )
    assert "\n" not in message


def test_each_retry_of_a_dripped_answer_gets_its_own_deadline(
    dripping_http: type[DrippingHttp],
) -> None:
    """The failure is retryable (``registry``): tried ``max_attempts`` times, then raised."""
    server = dripping_http("body", DRIP)
    client = registry_client(server.url, deadline_seconds=0.6, max_attempts=2)
    client._sleep = lambda _seconds: None  # no backoff wait
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match=r"0\.6 s deadline"):
        client.data_timestamp()
    assert client.requests == 2 and server.connections == 2
    assert 1.2 <= elapsed(started) < SLACK + 1.2


def test_a_silent_registry_still_times_out_per_read(dripping_http: type[DrippingHttp]) -> None:
    server = dripping_http("silent")
    client = registry_client(server.url, timeout_seconds=0.3, deadline_seconds=5.0)
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="registry timed out"):
        client.data_timestamp()
    assert elapsed(started) < SLACK + 0.5


def test_the_stop_event_abandons_a_request_in_flight_and_its_retries(
    dripping_http: type[DrippingHttp],
) -> None:
    server = dripping_http("body", DRIP)
    stop = threading.Event()
    client = registry_client(server.url, stop, deadline_seconds=60, max_attempts=5)
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="abandoned: trialwatch is stopping"):
        client.data_timestamp()
    assert elapsed(started) < SLACK + 0.5
    assert client.requests == 1  # no retry once stopping, and no backoff wait either
    with pytest.raises(RegistryUnavailable, match="stopping"):
        client.data_timestamp()  # nothing new starts
    assert client.requests == 1


def test_an_enclosing_limit_ends_a_request_before_its_own_deadline(
    dripping_http: type[DrippingHttp],
) -> None:
    server = dripping_http("body", DRIP)
    client = registry_client(server.url, deadline_seconds=60, max_attempts=5)
    started = time.monotonic()
    with (
        no_later_than(time.monotonic() + 0.8, "the test's budget ran out"),
        pytest.raises(RegistryUnavailable, match="cut short: the test's budget ran out"),
    ):
        client.data_timestamp()
    assert 0.8 <= elapsed(started) < SLACK + 0.8
    assert client.requests == 1  # a retry past the budget would be futile


def study_version(study_id: str) -> NewVersion:
    snapshot = Snapshot(study_id=study_id, brief_title=f"Trial {study_id}", overall_status="X")
    return NewVersion("ctgov", snapshot, {}, None, "", T0)


def test_the_backfill_budget_ends_a_history_request_in_flight(
    dripping_http: type[DrippingHttp], database_url: str
) -> None:
    """A history answer dripped past the budget ends at the budget, not at its 60 s deadline;
    the record stays queued (due now: the budget, not the API, ended it)."""
    server = dripping_http("body", DRIP)
    store = Store.open(database_url)
    try:
        store.save_version(study_version("NCT00000101"), [], None, [])
        store.set_backfill("ctgov", "NCT00000101", "pending")
        client = registry_client(server.url, deadline_seconds=60, timeout_seconds=30)
        worker = BackfillWorker(store, HistoryFetcher(client, lambda: T0), clock=lambda: T0)
        started = time.monotonic()
        round_ = worker.work(1.0)
        took = elapsed(started)
        assert 1.0 <= took < SLACK + 1.0, f"a 1 s budget ended the round after {took:.2f} s"
        assert (round_.done, round_.failed, round_.warnings) == (0, 0, [])
        assert store.pending_backfills("ctgov", T0) == ["NCT00000101"]
        assert server.requests, "the history request was under way"
    finally:
        store.close()


# ---------------------------------------------------------------------------- webhook


def webhook_channel(url: str, **options: object) -> WebhookChannel:
    return WebhookChannel(
        name="hook",
        type="webhook",
        url=url,
        allow_private_network=True,
        **{"timeout_seconds": 0.5, "deadline_seconds": 1.0, **options},
    )


@pytest.mark.parametrize("mode", ["body", "headers"])
def test_a_webhook_receiver_that_drips_its_answer_fails_at_the_deadline(
    dripping_http: type[DrippingHttp], mode: str
) -> None:
    server = dripping_http(mode, DRIP, body=b"ok" * 100)
    environ = {"TRIALWATCH_WEBHOOK_SECRET": WEBHOOK_SECRET.decode()}
    with build_webhook_client() as http:
        sender = WebhookSender(webhook_channel(server.url), http, environ=environ)
        started = time.monotonic()
        with pytest.raises(DeliveryError) as failure:
            sender.send(make_message())
    assert 1.0 <= elapsed(started) < SLACK + 1.0
    assert failure.value.retryable
    assert str(failure.value) == "webhook hook (127.0.0.1): not finished within its 1 s deadline"


# ---------------------------------------------------------------------------- SMTP


def email_channel(port: int, **options: object) -> EmailChannel:
    return EmailChannel(
        name="mail",
        type="email",
        smtp_host="127.0.0.1",
        smtp_port=port,
        recipients=["team@example.org"],
        **{"timeout_seconds": 0.5, "deadline_seconds": 1.0, **options},
    )


def test_an_smtp_server_that_drips_its_greeting_fails_at_the_deadline(
    dripping_smtp: type[DrippingSmtp],
) -> None:
    server = dripping_smtp("greeting", DRIP)
    sender = EmailSender(email_channel(server.port))
    started = time.monotonic()
    with pytest.raises(DeliveryError) as failure:
        sender.send(make_message())
    assert 1.0 <= elapsed(started) < SLACK + 1.0
    assert failure.value.retryable
    assert str(failure.value) == (
        f"email mail (SMTP 127.0.0.1:{server.port}): not finished within its 1 s deadline"
    )


def test_an_smtp_server_that_stalls_after_data_fails_at_the_deadline(
    dripping_smtp: type[DrippingSmtp],
) -> None:
    """The per-read timeout (30 s) would wait far longer: the deadline (1 s) ends it."""
    server = dripping_smtp("after_data")
    sender = EmailSender(email_channel(server.port, timeout_seconds=30))
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="within its 1 s deadline") as failure:
        sender.send(make_message())
    assert 1.0 <= elapsed(started) < SLACK + 1.0
    assert failure.value.retryable
    assert server.messages == 1  # it stalled after the whole message, before its answer


def test_a_stopping_daemon_cuts_an_smtp_conversation_at_once(
    dripping_smtp: type[DrippingSmtp],
) -> None:
    server = dripping_smtp("after_data")
    stop = threading.Event()
    sender = EmailSender(email_channel(server.port, timeout_seconds=30, deadline_seconds=60))
    sender._stop = stop
    threading.Timer(0.4, stop.set).start()
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="abandoned: trialwatch is stopping"):
        sender.send(make_message())
    assert elapsed(started) < SLACK + 0.5


def test_a_watchdog_that_was_not_needed_does_nothing() -> None:
    acted: list[bool] = []
    with Watchdog(Deadline.after(0.2), lambda: acted.append(True)) as watchdog:
        pass
    time.sleep(0.3)
    assert not watchdog.fired and not acted
    with pytest.raises(DeadlineExceeded):
        Deadline.after(0).check()


# ---------------------------------------------------------------------------- outbox


def queue_for(store: Store, study_id: str, channels: list[str]) -> None:
    snapshot = Snapshot(study_id=study_id, brief_title=f"Trial {study_id}", overall_status="C")
    change = Change(
        study_id=study_id,
        kind="status_changed",
        field="protocolSection.statusModule.overallStatus",
        old="RECRUITING",
        new="COMPLETED",
        severity="medium",
        summary="Overall status: Recruiting → Completed",
    )
    routes = [
        Route(channel=name, mode="immediate", change_indexes=(0,), due_at=T0)  # type: ignore[arg-type]
        for name in channels
    ]
    store.save_version(NewVersion("ctgov", snapshot, {}, None, "", T0), [change], None, routes)


def test_a_stop_gives_a_rounds_deliveries_back_without_counting_an_attempt(
    dripping_http: type[DrippingHttp], database_url: str
) -> None:
    """SIGTERM during a delivery round: the delivery in flight is abandoned and, with the
    rest of the round, released untried — no attempt counted, nothing dead-lettered, due
    again at once for the next process."""
    hung = dripping_http("silent")
    store = Store.open(database_url)
    try:
        for study_id in ("NCT00000301", "NCT00000302", "NCT00000303"):
            queue_for(store, study_id, ["hook"])
        environ = {"TRIALWATCH_WEBHOOK_SECRET": WEBHOOK_SECRET.decode()}
        stop = threading.Event()
        with build_webhook_client() as http:
            hook = webhook_channel(hung.url, timeout_seconds=60, deadline_seconds=60)
            sender = WebhookSender(hook, http, environ=environ, stop=stop)
            settings = DeliverySettings(lease_seconds=600, max_attempts=1)
            dispatcher = Dispatcher(
                store, {"hook": sender}, settings, clock=lambda: T0, worker="w1", stop=stop
            )
            threading.Timer(0.3, stop.set).start()
            started = time.monotonic()
            report = dispatcher.deliver_due()
        assert elapsed(started) < SLACK + 0.3
        assert (report.sent, report.retrying, report.dead) == (0, 0, 0)
        pending = store.list_outbox()
        assert [row["attempts"] for row in pending] == [0, 0, 0]
        assert store.list_outbox(dead=True) == []
        assert len(hung.requests) <= 1  # the one in flight; the rest never tried
        # released: another worker claims them at once, not after the lease
        assert len(store.claim_due(T0, "w2", T0, 10)) == 3
    finally:
        store.close()


HUNG = 5.0  # the hung webhook's deadline: the emails have that long to go out meanwhile


def test_a_hung_channel_does_not_hold_another_channels_message(
    dripping_http: type[DrippingHttp], smtp_server: SmtpServer, database_url: str
) -> None:
    """A webhook that never answers (deadline 5 s) and a working SMTP server: the email goes
    out at once; the webhook's deliveries fail at their deadline, once (the other is released
    untried, due when the failed one is retried), and nothing is sent twice."""
    hung = dripping_http("silent")
    store = Store.open(database_url)
    try:
        for study_id in ("NCT00000201", "NCT00000202"):
            queue_for(store, study_id, ["hook", "mail"])
        environ = {"TRIALWATCH_WEBHOOK_SECRET": WEBHOOK_SECRET.decode()}
        http = build_webhook_client()
        hook = webhook_channel(hung.url, timeout_seconds=30, deadline_seconds=HUNG)
        senders = {
            "hook": WebhookSender(hook, http, environ=environ),
            "mail": EmailSender(email_channel(smtp_server.port, timeout_seconds=5)),
        }
        settings = DeliverySettings(lease_seconds=600)
        dispatcher = Dispatcher(store, senders, settings, clock=lambda: T0, worker="w1")
        reports = []
        started = time.monotonic()
        round_ = threading.Thread(target=lambda: reports.append(dispatcher.deliver_due()))
        round_.start()
        # both emails out while the webhook still hangs (its deadline not reached yet)
        wait_until(lambda: len(smtp_server.received) == 2, timeout=HUNG, what="both emails")
        assert round_.is_alive() and elapsed(started) < HUNG
        round_.join(timeout=10)
        round_took = elapsed(started)
        report = reports[0]
        assert HUNG <= round_took < 2 * HUNG  # one deadline, not one per webhook delivery
        assert report.sent == 2 and report.retrying == 1 and report.dead == 0
        retried = [o for o in report.outcomes if o["outcome"] == "retrying"]
        assert f"not finished within its {HUNG:g} s deadline" in retried[0]["error"]
        assert len(hung.requests) == 1  # the second webhook delivery was not tried
        pending = {row["study_id"]: row for row in store.list_outbox() if row["channel"] == "hook"}
        assert sorted(row["attempts"] for row in pending.values()) == [0, 1]
        assert len({row["due_at"] for row in pending.values()}) == 1  # retried together
        # at-least-once, never twice: a second round sends nothing more
        assert dispatcher.deliver_due().sent == 0
        assert len(smtp_server.received) == 2
        http.close()
    finally:
        store.close()


# ---------------------------------------------------------------------------- the daemon


def test_sigterm_stops_a_daemon_whose_registry_hangs_within_seconds(
    dripping_http: type[DrippingHttp], tmp_path: Path, database_url: str
) -> None:
    """The registry drips its answer (deadline 120 s): SIGTERM abandons the request, the
    cycle ends, its run is finished (not ``running``) and no version is half-stored."""
    server = dripping_http("body", 1.0, body=b'{"studies": [' + b" " * 10_000)
    config = tmp_path / "hang.toml"
    config.write_text(
        f'[ctgov]\napi_url = "{server.url}"\nhistory_url = "{server.url}"\n'
        "deadline_seconds = 120\ntimeout_seconds = 60\nrequests_per_second = 50\n"
        "[schedule]\nsync_every_seconds = 3600\ndeliver_every_seconds = 1\n"
    )
    env = {**os.environ, "TRIALWATCH_CONFIG": str(config), "TRIALWATCH_DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "service", "watch", "add", "NCT00763412", "NCT00973089"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "service", "run"], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    try:
        wait_until(lambda: bool(server.requests), timeout=20, what="the first registry request")
        time.sleep(0.3)  # the answer's headers are in and its body drips
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=15)
        took = elapsed(started)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    output = log.read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert took < 10.0, f"the daemon took {took:.2f} s to stop:\n{output[-3000:]}"
    engine = create_engine(Settings(database={"url": database_url}).database.url)
    try:
        with engine.connect() as connection:
            statuses = connection.execute(text("SELECT status FROM sync_runs")).scalars().all()
            versions = connection.execute(text("SELECT count(*) FROM record_versions")).scalar()
    finally:
        engine.dispose()
    assert statuses == ["interrupted"]  # the stop's, not a failed cycle (no alert, no retry)
    assert versions == 0


def test_an_apprise_channel_whose_service_drips_fails_at_the_deadline(
    dripping_http: type[DrippingHttp],
) -> None:
    """apprise cannot be cut short: the sender stops waiting for it at the deadline."""
    apprise = pytest.importorskip("apprise")
    server = dripping_http("body", DRIP, body=b"ok" * 100)
    url = f"json://127.0.0.1:{server.port}/hook"
    channel = AppriseChannel(
        name="chat", type="apprise", urls=[url], allow_private_network=True, deadline_seconds=1.0
    )
    assert apprise.Apprise().add(url)  # apprise loads its plugins once, before the clock starts
    started = time.monotonic()
    with pytest.raises(DeliveryError) as failure:
        AppriseSender(channel).send(make_message())
    assert 1.0 <= elapsed(started) < SLACK + 1.0
    assert failure.value.retryable
    assert str(failure.value) == "apprise chat: not finished within its 1 s deadline"
    assert server.requests, "apprise was talking to the service"
