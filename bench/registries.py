"""What a sync cycle costs in each registry without history: EUCTR, CTIS and ISRCTN.

For each registry, ``--n`` (1,000) watched records made from its real reference records
(tests/data/reference/, each a copy under another number), served by the tests' EU emulator
(tests/eu_registries_emulator.py, in this process), and ``trialwatch sync --json`` run as a
user runs it (a fresh process, a SQLite store in a temp dir):

- first load: every record fetched (one request each) and stored;
- quiet cycle: nothing changed: one request for the registry's change signal;
- 1% changed: 1% of the records edited today, as the registry edits them; the signal names
  them and only they are fetched (ISRCTN's signal carries them: no fetch at all).

Prints a table (requests, seconds, changes) and the machine. Run by hand:

    .venv/bin/python bench/registries.py [--n 1000]

ClinicalTrials.gov's row is ``make bench`` (bench/run.py), which runs its own emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import eu_registries_emulator as emu  # noqa: E402

REFERENCE = ROOT / "tests" / "data" / "reference"
TRIALWATCH = ROOT / ".venv" / "bin" / "trialwatch"
OLD_DAY = "2025-01-01"  # when the generated records were last updated: before every cycle
EUCTR_TRIAL = "2021-002179-21"


@dataclass
class Cycle:
    requests: int
    seconds: float
    changes: int
    failed: int


def euctr_records(n: int) -> tuple[list[str], Callable[[int], None]]:
    text = (REFERENCE / "euctr" / "ctrdata_test_error_trials_euctr.txt").read_text()
    blocks = [
        b.strip("\n") + "\n"
        for b in re.split(r"\n(?=Summary\nEudraCT Number:)", "\n" + text)
        if b.strip().startswith("Summary") and emu.euctr_key(b.strip())[0] == EUCTR_TRIAL
    ]
    trial = "\n".join(blocks)
    ids = [f"2030-{i:06d}-{10 + i % 90:02d}" for i in range(n)]
    for number in ids:
        emu.S.add_euctr(trial.replace(EUCTR_TRIAL, number), OLD_DAY)

    def edit(i: int) -> None:
        ended = trial.replace(
            "P. End of Trial Status: Ongoing", "P. End of Trial Status: Completed"
        )
        emu.S.add_euctr(ended.replace(EUCTR_TRIAL, ids[i]), _today())

    return ids, edit


def ctis_records(n: int) -> tuple[list[str], Callable[[int], None]]:
    record = json.loads((REFERENCE / "ctis" / "CTIS_2023-505613-24-00.json").read_text())
    ids = [f"2030-5{i:05d}-10-00" for i in range(n)]
    for number in ids:
        emu.S.add_ctis({**record, "ctNumber": number}, OLD_DAY)

    def edit(i: int) -> None:
        emu.S.add_ctis({**record, "ctNumber": ids[i], "ctPublicStatusCode": 8}, _today())

    return ids, edit


def isrctn_records(n: int) -> tuple[list[str], Callable[[int], None]]:
    trial = json.loads((REFERENCE / "isrctn" / "ISRCTN_12949496.json").read_text())
    trial = {k: v for k, v in trial.items() if k not in ("ctrname", "record_last_import")}
    digits = [f"{30_000_000 + i}" for i in range(n)]

    def xml(number: str, **participants: Any) -> str:
        copy = json.loads(json.dumps(trial))
        copy["isrctn"] = number
        copy["participants"].update(participants)
        element = emu.xml_of("trial", copy)
        element.set("lastUpdated", f"{OLD_DAY}T09:00:00.000Z")
        return ET.tostring(element, encoding="unicode")

    for number in digits:
        emu.S.add_isrctn(xml(number), None)

    def edit(i: int) -> None:
        emu.S.add_isrctn(xml(digits[i], targetEnrolment="31"), _today())

    return [f"ISRCTN{d}" for d in digits], edit


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def run_cycle(env: dict[str, str], eu: emu.EuEmulator) -> Cycle:
    eu.reset_stats()
    started = time.perf_counter()
    done = subprocess.run(
        [str(TRIALWATCH), "sync", "--json"], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"sync failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    report = json.loads(done.stdout)
    return Cycle(eu.stats()["requests"], seconds, len(report["changes"]), report["failed"])


def bench_registry(
    key: str, make: Callable[[int], tuple[list[str], Callable[[int], None]]], n: int
) -> list[tuple[str, Cycle]]:
    eu = emu.EuEmulator.start(REFERENCE / "none")  # no reference records: only ours
    ids, edit = make(n)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "trialwatch.toml"
        config.write_text(f"[{key}]\nrequests_per_second = 100.0\n[findings]\nenabled = false\n")
        env = {
            **os.environ,
            "TRIALWATCH_CONFIG": str(config),
            "TRIALWATCH_DATABASE_URL": f"sqlite:///{tmp}/tw.db",
            "TRIALWATCH_EUCTR_URL": eu.url("euctr"),
            "TRIALWATCH_CTIS_API_URL": eu.url("ctis"),
            "TRIALWATCH_ISRCTN_API_URL": eu.url("isrctn"),
        }
        for start in range(0, n, 500):
            watch = [str(TRIALWATCH), "watch", "add", *ids[start : start + 500]]
            added = subprocess.run(watch, env=env, capture_output=True, text=True, check=False)
            if added.returncode:
                raise SystemExit(f"watch add failed: {added.stderr.strip()[-300:]}")
        rows = [("first load", run_cycle(env, eu)), ("quiet cycle", run_cycle(env, eu))]
        for i in range(0, n, 100):  # 1%
            edit(i)
        rows.append(("1% changed", run_cycle(env, eu)))
    eu.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="watched records a registry")
    args = parser.parse_args()
    if not TRIALWATCH.exists():
        raise SystemExit(f"{TRIALWATCH} not found: `make test` (or `make run`) installs it")
    makers = {"euctr": euctr_records, "ctis": ctis_records, "isrctn": isrctn_records}
    print(
        f"{args.n:,} watched records a registry; {os.cpu_count()} cores; {sys.version.split()[0]}"
    )
    print(
        f"{'registry':8} {'cycle':12} {'requests':>9} {'seconds':>8} {'changes':>8} {'failed':>7}"
    )
    for key, make in makers.items():
        for name, cycle in bench_registry(key, make, args.n):
            print(
                f"{key:8} {name:12} {cycle.requests:9,} {cycle.seconds:8.1f} "
                f"{cycle.changes:8,} {cycle.failed:7,}"
            )


if __name__ == "__main__":
    main()
