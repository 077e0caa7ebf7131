#!/usr/bin/env python3
"""Crash consistency: SIGKILL `trialwatch sync` and `trialwatch notify` at random moments,
then let them finish, and check that nothing was lost or doubled.

    python scripts/crash_loop.py [--kills 50] [--studies 20] [--database-url URL] [--seed N]
    python scripts/crash_loop.py --workers 2 --database-url postgresql://…/EMPTY_DB

Each round the registry emulator publishes new versions of some studies; a sync or notify
process starts and is killed after a random delay (or finishes first). With `--workers N`
(PostgreSQL only) N daemons (`trialwatch run`) share the store instead, and each round one of
them is killed (one holding claims, if any does) and replaced; the lease is 600 s, so the
claims of a killed daemon are delivered within the run only because a claim dies with its
process: the script measures how long until another daemon took them (the takeover), and a
takeover slower than 10 s is a problem. At the end, sync and notify run to completion and the
script checks:
- every published version is stored exactly once (history gap filling recovers the versions a
  killed sync missed), and no change is recorded twice;
- every queued notification was delivered (the outbox is empty of pending and dead rows);
- a notification delivered twice carried the same event id and the same content.
It prints its figures and exits 1 when a check fails. `tests/test_crash.py` runs a short one.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import hmac
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from ctgov_emulator import Emulator  # noqa: E402
from sqlalchemy import Engine, create_engine, text  # noqa: E402

from service.store import database_url as driver_url  # noqa: E402

SECRET = b"crash-loop-secret"
TAKEOVER_LIMIT = 10.0  # seconds; the lease in replica mode is 600

TEMPLATE = json.loads((ROOT / "tests" / "data" / "records" / "NCT00973089.json").read_text())
STATUSES = ["RECRUITING", "ACTIVE_NOT_RECRUITING", "SUSPENDED", "COMPLETED", "TERMINATED"]


@dataclass
class Receiver:
    """A webhook receiver that records every delivery and checks its signature."""

    deliveries: list[tuple[str, bytes, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay: float = 0.0  # seconds before answering: a slow receiver keeps claims held longer

    def start(self) -> tuple[ThreadingHTTPServer, str]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                event_id = self.headers.get("Trialwatch-Event-Id", "")
                valid = _valid(self.headers.get("Trialwatch-Signature", ""), body)
                with receiver.lock:
                    receiver.deliveries.append((event_id, body, valid))
                time.sleep(receiver.delay)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


def _valid(header: str, body: bytes) -> bool:
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    expected = hmac.new(SECRET, f"{fields.get('t', '')}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), fields.get("v1", ""))


def study(study_id: str, status: str, count: int) -> dict[str, Any]:
    record = copy.deepcopy(TEMPLATE)
    record["protocolSection"]["identificationModule"]["nctId"] = study_id
    record["protocolSection"]["statusModule"]["overallStatus"] = status
    record["protocolSection"]["designModule"]["enrollmentInfo"] = {"count": count, "type": "ACTUAL"}
    return record


@dataclass
class Outcome:
    kills: int = 0
    finished_before_kill: int = 0
    published: int = 0
    versions_stored: int = 0
    changes: int = 0
    duplicate_changes: int = 0
    notifications: int = 0
    deliveries: int = 0
    repeats: int = 0
    takeovers: list[float] = field(default_factory=list)  # seconds, one per kill of a holder
    problems: list[str] = field(default_factory=list)


def run(
    kills: int,
    studies: int,
    database_url: str | None,
    seed: int,
    workers: int = 1,
    hunt: float = 0.75,
) -> Outcome:
    """The loop; with ``workers`` > 1, ``hunt`` is the share of kills aimed at a daemon
    holding claims (the others fall at a random moment)."""
    if workers > 1 and not (database_url or "").startswith("postgres"):
        raise SystemExit("--workers needs a PostgreSQL --database-url (SQLite has one writer)")
    rng = random.Random(seed)
    outcome = Outcome()
    receiver = Receiver(delay=0.2 if workers > 1 else 0.0)
    server, hook_url = receiver.start()
    with tempfile.TemporaryDirectory(prefix="trialwatch-crash-") as tmp, Emulator.start() as emu:
        ids = [f"NCT8{n:07d}" for n in range(1, studies + 1)]
        day = [0]

        def publish(study_id: str) -> None:
            day[0] += 1
            date = time.strftime("%Y-%m-%d", time.gmtime(1_600_000_000 + day[0] * 86_400))
            emu.publish(study(study_id, rng.choice(STATUSES), rng.randint(10, 500)), date=date)
            outcome.published += 1

        for study_id in ids:
            publish(study_id)
        env = _environment(tmp, emu, hook_url, database_url, replicas=workers > 1)
        _tw(env, "watch", "add", *ids)
        rounds = Rounds(kills, ids, publish, env, rng, outcome, Path(tmp), hunt)
        if workers > 1:
            _replica_rounds(rounds, workers)
        else:
            _process_rounds(rounds)
        _settle(env)
        _check(outcome, env, receiver, ids)
    server.shutdown()
    return outcome


@dataclass
class Rounds:
    """What every round needs: how many, the studies, publishing, the environment, chance."""

    kills: int
    ids: list[str]
    publish: Callable[[str], None]
    env: dict[str, str]
    rng: random.Random
    outcome: Outcome
    logs: Path  # where the daemons write their logs
    hunt: float  # the share of kills aimed at a daemon holding claims
    daemon_logs: dict[int, Path] = field(default_factory=dict)  # by pid


def _process_rounds(rounds: Rounds) -> None:
    """Each round, a `sync` or `notify` process killed at a random moment (if still running)."""
    rng, outcome = rounds.rng, rounds.outcome
    for _ in range(rounds.kills):
        for study_id in rng.sample(rounds.ids, k=max(1, len(rounds.ids) // 4)):
            rounds.publish(study_id)
        process = _start(rounds.env, rng.choice(["sync", "notify"]))
        time.sleep(rng.uniform(0.3, 2.5))  # python start-up alone takes ~0.5 s
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            outcome.kills += 1
        else:
            outcome.finished_before_kill += 1
        process.wait()


def _replica_rounds(rounds: Rounds, workers: int) -> None:
    """``workers`` daemons on one PostgreSQL store; each round one is killed (one holding
    claims when one does) and replaced, and the takeover of its claims is timed."""
    rng, outcome = rounds.rng, rounds.outcome
    engine = create_engine(driver_url(rounds.env["TRIALWATCH_DATABASE_URL"]))
    _tw(rounds.env, "sync")  # first sightings are not notified: the rounds' versions will be
    daemons = [_daemon(rounds) for _ in range(workers)]
    try:
        for _ in range(rounds.kills):
            for study_id in rng.sample(rounds.ids, k=max(1, len(rounds.ids) // 2)):
                rounds.publish(study_id)
            hunt = rng.random() < rounds.hunt
            until = time.monotonic() + (5.0 if hunt else rng.uniform(0.3, 2.5))
            victim = _victim(engine, daemons, until, hunt) or rng.choice(daemons)
            victim.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            victim.wait()
            outcome.kills += 1
            held = _claims(engine, f"%:{victim.pid}:%")
            daemons[daemons.index(victim)] = _daemon(rounds)
            if held:
                _time_takeover(engine, held, killed_at, outcome)
    finally:
        _stop(daemons, rounds)
        engine.dispose()


def _start(env: dict[str, str], command: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "service", command],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb") if log else subprocess.DEVNULL,
    )


def _daemon(rounds: Rounds) -> subprocess.Popen[bytes]:
    log = rounds.logs / f"daemon-{len(list(rounds.logs.glob('daemon-*.log')))}.log"
    process = _start(rounds.env, "run", log)
    rounds.daemon_logs[process.pid] = log
    return process


def _claims(engine: Engine, worker_like: str) -> dict[int, str]:
    """The notifications claimed now by the workers ``worker_like`` matches: {id: worker}.
    A claim is held while its lease is set; settling a claim clears it."""
    with engine.connect() as connection:
        return dict(
            connection.execute(
                text(
                    "SELECT id, claimed_by FROM outbox WHERE status = 'pending'"
                    " AND lease_until IS NOT NULL AND claimed_by LIKE :worker"
                ),
                {"worker": worker_like},
            ).all()
        )


def _victim(
    engine: Engine, daemons: list[subprocess.Popen[bytes]], until: float, hunt: bool
) -> subprocess.Popen[bytes] | None:
    """The daemon to kill at ``until``: when hunting, the first seen holding claims before
    then (worker ids are ``host:pid:token``); None leaves the choice to chance."""
    while time.monotonic() < until:
        if hunt:
            pids = {int(worker.split(":")[-2]) for worker in _claims(engine, "%").values()}
            holder = next((d for d in daemons if d.pid in pids), None)
            if holder is not None:
                return holder
        time.sleep(0.02)
    return None


def _time_takeover(
    engine: Engine, held: dict[int, str], killed_at: float, outcome: Outcome
) -> None:
    """Wait until no claim of the killed worker is held by it any more: each was taken by
    another worker (and maybe settled) long before the 600 s lease."""
    worker = next(iter(held.values()))
    while _claims(engine, worker) and time.monotonic() - killed_at < 3 * TAKEOVER_LIMIT:
        time.sleep(0.05)
    seconds = time.monotonic() - killed_at
    outcome.takeovers.append(round(seconds, 2))
    if seconds > TAKEOVER_LIMIT:
        outcome.problems.append(f"{len(held)} claim(s) of a killed daemon held for {seconds:.0f} s")


def _stop(daemons: list[subprocess.Popen[bytes]], rounds: Rounds) -> None:
    """SIGTERM each daemon once it handles signals (it logs that it started; a replacement
    may still be importing), and expect exit 0."""
    outcome = rounds.outcome
    for daemon in daemons:
        log = rounds.daemon_logs[daemon.pid]
        deadline = time.monotonic() + 30
        while "daemon started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        daemon.send_signal(signal.SIGTERM)
    for daemon in daemons:
        try:
            code = daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.send_signal(signal.SIGUSR1)  # its threads' stacks, into its log
            time.sleep(1)
            daemon.kill()
            code = daemon.wait()
        if code != 0:
            tail = rounds.daemon_logs[daemon.pid].read_text(errors="replace")[-6000:]
            outcome.problems.append(f"daemon {daemon.pid} exited {code} after SIGTERM:\n{tail}")


def _environment(
    tmp: str, emu: Emulator, hook_url: str, database_url: str | None, *, replicas: bool
) -> dict[str, str]:
    # Daemons: frequent rounds, and a lease no run waits out (only a claim dying with its
    # process hands it over); one-shot processes: a short lease, as before.
    lease, schedule = (
        (600, "[schedule]\nsync_every_seconds = 1\ndeliver_every_seconds = 1\n")
        if replicas
        else (1, "")
    )
    config = Path(tmp) / "crash.toml"
    config.write_text(
        f"""
[ctgov]
api_url = "{emu.api_url}"
history_url = "{emu.history_url}"
requests_per_second = 100.0
history_gap_seconds = 0
page_size = 5
# versions here are posted on made-up past days, which a changed-since listing (keyed on
# posting dates, as the registry's are: today) would not return: every cycle probes
incremental = false

{schedule}
[delivery]
lease_seconds = {lease}
retry_initial_seconds = 0

[[channels]]
name = "hook"
type = "webhook"
url = "{hook_url}"
secret_env = "CRASH_HOOK_SECRET"
allow_private_network = true

[[subscriptions]]
channel = "hook"
"""
    )
    return {
        **os.environ,
        "TRIALWATCH_CONFIG": str(config),
        "TRIALWATCH_DATABASE_URL": database_url or f"sqlite:///{tmp}/crash.db",
        "CRASH_HOOK_SECRET": SECRET.decode(),
    }


def _tw(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args], env=env, cwd=ROOT, capture_output=True, text=True
    )


def _settle(env: dict[str, str]) -> None:
    """Sync until a clean cycle, then deliver until the outbox is empty (leases run out)."""
    for _ in range(10):
        if _tw(env, "sync").returncode == 0:
            break
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _tw(env, "notify")
        if json.loads(_tw(env, "outbox", "--json").stdout or "[]") == []:
            return
        time.sleep(0.5)


def _check(outcome: Outcome, env: dict[str, str], receiver: Receiver, ids: list[str]) -> None:
    for study_id in ids:
        versions = json.loads(_tw(env, "history", study_id, "--json").stdout)
        outcome.versions_stored += len(versions)
        numbers = [v["version"] for v in versions]
        if numbers != list(range(len(numbers))):
            outcome.problems.append(f"{study_id}: stored versions {numbers}")
    if outcome.versions_stored != outcome.published:
        outcome.problems.append(
            f"{outcome.published} versions published, {outcome.versions_stored} stored"
        )
    changes = json.loads(_tw(env, "changes", "--json").stdout)
    keys = Counter((c["study_id"], c["to_version"], c["kind"], c["field"]) for c in changes)
    outcome.changes = len(changes)
    outcome.duplicate_changes = sum(n - 1 for n in keys.values())
    if outcome.duplicate_changes:
        outcome.problems.append(f"{outcome.duplicate_changes} change(s) recorded twice")
    for dead in json.loads(_tw(env, "outbox", "--dead", "--json").stdout or "[]"):
        outcome.problems.append(f"dead letter: {dead}")
    _check_deliveries(outcome, receiver, changes)


def _check_deliveries(outcome: Outcome, receiver: Receiver, changes: list[dict[str, Any]]) -> None:
    # backfilled history and first sightings are stored, not notified
    notified = {c["id"] for c in changes if c["kind"] != "record_added" and not c["historical"]}
    bodies: dict[str, bytes] = {}
    delivered_changes: set[int] = set()
    for event_id, body, valid in receiver.deliveries:
        if not valid:
            outcome.problems.append(f"event {event_id}: bad signature")
        payload = json.loads(body)
        if event_id in bodies:
            outcome.repeats += 1
            if json.loads(bodies[event_id])["changes"] != payload["changes"]:
                outcome.problems.append(f"event {event_id} repeated with other content")
        bodies[event_id] = body
        delivered_changes.update(c["id"] for c in payload["changes"])
    outcome.notifications = len(bodies)
    outcome.deliveries = len(receiver.deliveries)
    missing = notified - delivered_changes
    if missing:
        outcome.problems.append(f"{len(missing)} change(s) never delivered")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument(
        "--workers", type=int, default=1, help="daemons sharing a PostgreSQL store (default 1)"
    )
    args = parser.parse_args()
    started = time.monotonic()
    outcome = run(args.kills, args.studies, args.database_url, args.seed, args.workers)
    print(f"seed {args.seed}: {time.monotonic() - started:.0f} s")
    for name, value in vars(outcome).items():
        if name != "problems":
            print(f"  {name:22} {value}")
    for problem in outcome.problems:
        print(f"  PROBLEM: {problem}")
    print(
        "crash loop: " + ("ok" if not outcome.problems else f"{len(outcome.problems)} problem(s)")
    )
    sys.exit(1 if outcome.problems else 0)


if __name__ == "__main__":
    main()
