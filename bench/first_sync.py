"""A first sync of many new watches with history on, behind a proxy with a request-line cap.

Starts an emulator (the tests' own by default, or the acceptance checks' one with
``--emulator ../shared/checks/ctgov_emulator.py``) with ``--max-url-bytes``, publishes N
records made from a real one (each with ``--versions`` past versions), and runs, with the
default politeness settings (1 request a second, 1 s between history requests):

1. ``trialwatch sync`` of N new watches: wall time, requests, stored records, backfill queue;
2. a steady ``sync``: requests (the done-when: ≤ ceil(N / batch) + 1).

    .venv/bin/python bench/first_sync.py [--studies 2000] [--versions 3] [--max-url-bytes 8192]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "tests" / "data" / "records" / "NCT00763412.json"
STATUSES = ["NOT_YET_RECRUITING", "RECRUITING", "ACTIVE_NOT_RECRUITING", "COMPLETED"]


def main() -> int:
    args = _arguments()
    with tempfile.TemporaryDirectory() as work:
        port_file = Path(work) / "port"
        emulator = subprocess.Popen(
            [
                sys.executable,
                str(args.emulator),
                "--port-file",
                str(port_file),
                "--max-url-bytes",
                str(args.max_url_bytes),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = _wait_for_port(port_file)
            ids = _publish(port, args.studies, args.versions)
            env = _environment(work, port)
            _trialwatch(env, "watch", "add", *ids)
            first = _timed_sync(env)
            before = _v2_requests(port)
            steady = _timed_sync(env)
            steady["v2_requests"] = _v2_requests(port) - before
            watches = json.loads(_trialwatch(env, "watch", "list", "--json"))
        finally:
            emulator.terminate()
            emulator.wait()
    stored = sum(1 for w in watches if w["versions"] >= 1)
    print(f"first sync of {args.studies} new watches (history on, {args.versions} versions each)")
    print(f"  wall {first['wall']:.1f} s, {first['requests']} requests, {stored} records stored")
    print(f"  backfill queue after it: {first.get('backfill')}")
    print(
        f"steady sync: {steady['requests']} requests ({steady['v2_requests']} to API v2, the "
        f"rest the backfill queue's history requests), wall {steady['wall']:.1f} s"
    )
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--max-url-bytes", type=int, default=8192)
    parser.add_argument("--emulator", type=Path, default=ROOT / "tests" / "ctgov_emulator.py")
    return parser.parse_args()


def _wait_for_port(path: Path) -> int:
    for _ in range(100):
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.1)
    raise SystemExit("the emulator did not start")


def _publish(port: int, studies: int, versions: int) -> list[str]:
    template = json.loads(TEMPLATE.read_text())
    ids = [f"NCT6{n:07d}" for n in range(1, studies + 1)]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/_emu", timeout=30) as emu:
        for study_id in ids:
            for n in range(versions):
                record = copy.deepcopy(template)
                protocol = record["protocolSection"]
                protocol["identificationModule"]["nctId"] = study_id
                protocol["statusModule"]["overallStatus"] = STATUSES[n % len(STATUSES)]
                emu.post("/publish", json={"study": record, "date": f"2020-0{n + 1}-15"})
    return ids


def _v2_requests(port: int) -> int:
    stats = httpx.get(f"http://127.0.0.1:{port}/_emu/stats", timeout=10).json()
    return sum(n for path, n in stats["by_path"].items() if path.startswith("/api/v2"))


def _environment(work: str, port: int) -> dict[str, str]:
    config = Path(work) / "trialwatch.toml"  # every setting at its default
    config.write_text("")
    return {
        **os.environ,
        "TRIALWATCH_CONFIG": str(config),
        "TRIALWATCH_DATABASE_URL": f"sqlite:///{work}/tw.db",
        "TRIALWATCH_CTGOV_API_URL": f"http://127.0.0.1:{port}/api/v2",
        "TRIALWATCH_CTGOV_HISTORY_URL": f"http://127.0.0.1:{port}/api/int",
    }


def _trialwatch(env: dict[str, str], *args: str) -> str:
    binary = Path(sys.executable).parent / "trialwatch"
    done = subprocess.run([str(binary), *args], env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"trialwatch {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def _timed_sync(env: dict[str, str]) -> dict[str, Any]:
    started = time.monotonic()
    report: dict[str, Any] = json.loads(_trialwatch(env, "sync", "--json"))
    report["wall"] = time.monotonic() - started
    return report


if __name__ == "__main__":
    sys.exit(main())
