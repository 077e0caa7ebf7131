#!/usr/bin/env python3
"""Crash consistency: SIGKILL `trialwatch sync` and `trialwatch notify` at random moments,
then let them finish, and check that nothing was lost or doubled.

    python scripts/crash_loop.py [--kills 50] [--studies 20] [--database-url URL] [--seed N]

Each round the registry emulator publishes new versions of some studies; a sync or notify
process starts and is killed after a random delay (or finishes first). At the end, sync and
notify run to completion and the script checks:
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
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from ctgov_emulator import Emulator  # noqa: E402

SECRET = b"crash-loop-secret"
TEMPLATE = json.loads((ROOT / "tests" / "data" / "records" / "NCT00973089.json").read_text())
STATUSES = ["RECRUITING", "ACTIVE_NOT_RECRUITING", "SUSPENDED", "COMPLETED", "TERMINATED"]


@dataclass
class Receiver:
    """A webhook receiver that records every delivery and checks its signature."""

    deliveries: list[tuple[str, bytes, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> tuple[ThreadingHTTPServer, str]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                event_id = self.headers.get("Trialwatch-Event-Id", "")
                valid = _valid(self.headers.get("Trialwatch-Signature", ""), body)
                with receiver.lock:
                    receiver.deliveries.append((event_id, body, valid))
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
    problems: list[str] = field(default_factory=list)


def run(kills: int, studies: int, database_url: str | None, seed: int) -> Outcome:
    rng = random.Random(seed)
    outcome = Outcome()
    receiver = Receiver()
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
        env = _environment(tmp, emu, hook_url, database_url)
        _tw(env, "watch", "add", *ids)
        for _ in range(kills):
            for study_id in rng.sample(ids, k=max(1, studies // 4)):
                publish(study_id)
            command = rng.choice(["sync", "notify"])
            process = subprocess.Popen(
                [sys.executable, "-m", "service", command],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.3, 2.5))  # python start-up alone takes ~0.5 s
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                outcome.kills += 1
            else:
                outcome.finished_before_kill += 1
            process.wait()
        _settle(env)
        _check(outcome, env, receiver, ids)
    server.shutdown()
    return outcome


def _environment(
    tmp: str, emu: Emulator, hook_url: str, database_url: str | None
) -> dict[str, str]:
    config = Path(tmp) / "crash.toml"
    config.write_text(
        f"""
[ctgov]
api_url = "{emu.api_url}"
history_url = "{emu.history_url}"
requests_per_second = 100.0
history_gap_seconds = 0
page_size = 5

[delivery]
lease_seconds = 1
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
    args = parser.parse_args()
    started = time.monotonic()
    outcome = run(args.kills, args.studies, args.database_url, args.seed)
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
