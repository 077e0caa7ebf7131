"""Print the wall time of short ``trialwatch`` commands: what a person waits for at the prompt.

Each command runs N times as a fresh process (the median is printed, with the fastest and
slowest), in a temporary directory with its own SQLite store, so no config file of the
checkout is read:

- ``--version`` and ``--help``: click alone, no settings, no store (target 0.15 s);
- ``watch list --json`` on an empty store (created first by ``trialwatch init``);
- ``diff OLD.json NEW.json`` of one real record (``tests/data/records/NCT00763412.json``)
  against a copy with its status, enrollment and completion date edited (target 0.3 s).

A bare ``python -c pass`` is timed too: no command can start faster than the interpreter.

    .venv/bin/python bench/startup.py [--runs 21]

Measured by hand, not in the test suite: wall time depends on the machine and its load.
``tests/test_startup_imports.py`` guards the cause instead (what importing the CLI loads).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "tests" / "data" / "records" / "NCT00763412.json"


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    target: float | None  # seconds, from issue 13; None: no target, shown for reference


def trialwatch_command() -> list[str]:
    """The installed console script beside this interpreter, else ``python -m service``."""
    script = Path(sys.executable).with_name("trialwatch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "service"]


def write_edited_pair(folder: Path) -> tuple[Path, Path]:
    """The real record and a next version of it with reportable changes."""
    old = json.loads(RECORD.read_text(encoding="utf-8"))
    new = copy.deepcopy(old)
    status = new["protocolSection"]["statusModule"]
    status["overallStatus"] = "TERMINATED"
    status["completionDateStruct"] = {"date": "2013-06", "type": "ACTUAL"}
    new["protocolSection"]["designModule"]["enrollmentInfo"]["count"] = 29
    old_path, new_path = folder / "old.json", folder / "new.json"
    old_path.write_text(json.dumps(old), encoding="utf-8")
    new_path.write_text(json.dumps(new), encoding="utf-8")
    return old_path, new_path


def cases(folder: Path) -> list[Case]:
    tw = trialwatch_command()
    old, new = write_edited_pair(folder)
    return [
        Case("python -c pass", [sys.executable, "-c", "pass"], None),
        Case("trialwatch --version", [*tw, "--version"], 0.15),
        Case("trialwatch --help", [*tw, "--help"], 0.15),
        Case("trialwatch watch list --json", [*tw, "watch", "list", "--json"], None),
        Case("trialwatch diff OLD NEW (1 study)", [*tw, "diff", str(old), str(new)], 0.3),
    ]


def environment(folder: Path) -> dict[str, str]:
    """The caller's environment without trialwatch settings, and a store of our own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALWATCH_")}
    env["TRIALWATCH_DATABASE_URL"] = f"sqlite:///{folder / 'bench.db'}"
    env["COLUMNS"] = "100"  # a fixed width: the same output whether or not on a terminal
    return env


def run_once(argv: list[str], folder: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr}")
    return elapsed


def measure(case: Case, runs: int, folder: Path, env: dict[str, str]) -> list[float]:
    run_once(case.argv, folder, env)  # warm the file cache and __pycache__ first
    return [run_once(case.argv, folder, env) for _ in range(runs)]


def verdict(median: float, target: float | None) -> str:
    if target is None:
        return ""
    return f"≤ {target:.2f} s: {'yes' if median <= target else 'NO'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=21, help="runs per command (default 21)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trialwatch-startup-") as tmp:
        folder = Path(tmp)
        env = environment(folder)
        run_once([*trialwatch_command(), "init"], folder, env)  # the empty store
        load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
        print(f"wall time of one process, {args.runs} runs each (seconds; load average {load})")
        print(f"{'command':<36} {'median':>7} {'min':>7} {'max':>7}  target")
        for case in cases(folder):
            times = measure(case, args.runs, folder, env)
            median = statistics.median(times)
            print(
                f"{case.name:<36} {median:7.3f} {min(times):7.3f} {max(times):7.3f}  "
                + verdict(median, case.target)
            )


if __name__ == "__main__":
    main()
