"""Print the wall time of short ``trialwatch`` commands: what a person waits for at the prompt.

Each command runs N times as a fresh process (the median is printed, with the fastest and
slowest), in a temporary directory with its own SQLite store, so no config file of the
checkout is read:

- ``--version`` and ``--help``: click alone, no settings, no store (target 0.15 s);
- ``watch list --json`` on an empty store (created first by ``trialwatch init``);
- ``diff OLD.json NEW.json`` of one real record (``tests/data/records/NCT00763412.json``)
  against a copy with its status, enrollment and completion date edited (target 0.3 s).

A bare ``python -c pass`` is timed too: no command can start faster than the interpreter.

Then the one-shot commands a cron job or a person runs against a real store (issue 26, target
0.2 s each): 2,000 watched records (``--watched``) generated from the real record shapes
(``bench/generate.py``) and served by ``bench/emulator.py``, stored by a real first ``sync``;
then ``watch list --json``, ``watch list`` (the table), ``changes --json``, ``findings --json``
and a quiet ``sync --json`` (the registry's data did not move: one request, checked).

    .venv/bin/python bench/startup.py [--runs 21] [--watched 2000] [--no-store]

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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RECORD = ROOT / "tests" / "data" / "records" / "NCT00763412.json"
ONE_SHOT_TARGET = 0.2  # seconds: issue 26, one-shot commands on 2,000 watched


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


# ---- one-shot commands on a store of 2,000 watched records ----------------------------------


def store_cases(tw: list[str], config: Path) -> list[Case]:
    """The commands a cron job or a person runs against a real store (``--config``: its own
    settings, SQLite store and the bench emulator)."""
    base = [*tw, "--config", str(config)]
    return [
        Case("watch list --json", [*base, "watch", "list", "--json"], ONE_SHOT_TARGET),
        Case("watch list (table)", [*base, "watch", "list"], ONE_SHOT_TARGET),
        Case("changes --json", [*base, "changes", "--json"], ONE_SHOT_TARGET),
        Case("findings --json", [*base, "findings", "--json"], ONE_SHOT_TARGET),
        Case("sync --json (quiet: 1 request)", [*base, "sync", "--json"], ONE_SHOT_TARGET),
    ]


@dataclass
class StoreSetup:
    """A store of ``watched`` records, synced once from the bench emulator (kept running:
    the quiet sync asks it for its data timestamp)."""

    config: Path
    emulator: Any  # bench/run.py's Emulator
    watched: int


def start_store(folder: Path, watched: int, env: dict[str, str]) -> StoreSetup:
    sys.path.insert(0, str(BENCH))
    import generate
    from run import CACHE, Emulator, _trialwatch_config, registry_size

    templates = generate.load_templates(generate.DEFAULT_TEMPLATES)
    count = registry_size(watched)
    data_dir = CACHE / f"dataset-{count}-seed1"
    generate.ensure_dataset(count, data_dir, templates, 1)
    emulator = Emulator(data_dir, folder, 0.0)
    try:
        config = folder / "trialwatch.toml"
        config.write_text(_trialwatch_config(folder / "store", emulator.api_url))
        (folder / "store").mkdir()
        tw = [*trialwatch_command(), "--config", str(config)]
        ids = [generate.nct_id(i) for i in range(watched)]
        run_once([*tw, "init"], folder, env)
        for start in range(0, watched, 5_000):
            run_once([*tw, "watch", "add", *ids[start : start + 5_000]], folder, env)
        started = time.perf_counter()
        run_once([*tw, "sync", "--json"], folder, env)  # the first load: records, changes, …
    except BaseException:  # (run_once exits on a failed command) no emulator left behind
        emulator.stop()
        raise
    print(f"store of {watched:,} watched records synced in {time.perf_counter() - started:.1f} s")
    return StoreSetup(config, emulator, watched)


def check_quiet(setup: StoreSetup, folder: Path, env: dict[str, str]) -> str:
    """A quiet sync must be what it claims: mode quiet, one request."""
    setup.emulator.reset_stats()
    argv = [*trialwatch_command(), "--config", str(setup.config), "sync", "--json"]
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True)
    report = json.loads(done.stdout)
    mode, requests = report.get("cycle", {}).get("mode"), setup.emulator.requests()
    if mode != "quiet" or requests != 1:
        sys.exit(f"the quiet sync was not quiet: mode {mode}, {requests} requests")
    return f"mode {mode}, {requests} request"


# ---- running and printing -------------------------------------------------------------------


def print_cases(
    title: str, found: list[Case], runs: int, folder: Path, env: dict[str, str]
) -> None:
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"{title}, {runs} runs each (seconds; load average {load})")
    print(f"{'command':<36} {'median':>7} {'min':>7} {'max':>7}  target")
    for case in found:
        times = measure(case, runs, folder, env)
        median = statistics.median(times)
        print(
            f"{case.name:<36} {median:7.3f} {min(times):7.3f} {max(times):7.3f}  "
            + verdict(median, case.target)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=21, help="runs per command (default 21)")
    parser.add_argument("--watched", type=int, default=2_000, help="the store's watched records")
    parser.add_argument("--no-store", action="store_true", help="only the empty-store commands")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trialwatch-startup-") as tmp:
        folder = Path(tmp)
        env = environment(folder)
        run_once([*trialwatch_command(), "init"], folder, env)  # the empty store
        print_cases("wall time of one process", cases(folder), args.runs, folder, env)
    if args.no_store:
        return
    with tempfile.TemporaryDirectory(prefix="trialwatch-startup-") as tmp:
        folder = Path(tmp)
        env = {k: v for k, v in environment(folder).items() if not k.startswith("TRIALWATCH_")}
        setup = start_store(folder, args.watched, env)
        try:
            print(f"quiet sync checked: {check_quiet(setup, folder, env)}")
            title = f"one-shot commands on {setup.watched:,} watched records"
            found = store_cases(trialwatch_command(), setup.config)
            print_cases(title, found, args.runs, folder, env)
            print(f"and after the runs, {check_quiet(setup, folder, env)}")
        finally:
            setup.emulator.stop()


if __name__ == "__main__":
    main()
