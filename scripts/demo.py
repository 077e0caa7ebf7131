#!/usr/bin/env python3
"""`make demo`: the README walk-through, offline, against the project's registry emulator.

Starts the emulator serving the early (recruiting) version of NCT05605665, watches it, syncs,
lets the "registry" publish the later (completed) version, syncs again and shows the changes.
Runs the real `trialwatch` command for every step, on a throw-away SQLite store.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from ctgov_emulator import Emulator  # noqa: E402

DEMO = ROOT / "tests" / "data" / "demo" / "NCT05605665"
TRIALWATCH = [sys.executable, "-m", "service"]


def record(name: str) -> dict[str, object]:
    return json.loads((DEMO / name).read_text())  # type: ignore[no-any-return]


def step(env: dict[str, str], *args: str) -> None:
    print(f"\n$ trialwatch {shlex.join(args)}", flush=True)
    subprocess.run([*TRIALWATCH, *args], env=env, cwd=ROOT, check=False)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="trialwatch-demo-") as tmp, Emulator.start() as emu:
        emu.publish(record("v0.json"), date="2022-11-08")
        env = dict(
            os.environ,
            TRIALWATCH_DATABASE_URL=f"sqlite:///{tmp}/demo.db",
            TRIALWATCH_CTGOV_API_URL=emu.api_url,
            TRIALWATCH_CTGOV_HISTORY_URL=emu.history_url,
            TRIALWATCH_CTGOV_REQUESTS_PER_SECOND="20",
            COLUMNS=os.environ.get("COLUMNS", "100"),
        )
        print(f"registry emulator at {emu.api_url}, serving NCT05605665 as first registered")
        step(env, "watch", "add", "NCT05605665")
        step(env, "sync")
        print("\n# the registry publishes the completed version of the record")
        emu.publish(record("v1.json"), date="2024-01-10")
        step(env, "sync")
        step(env, "changes", "--study", "NCT05605665")
        step(env, "history", "NCT05605665")
        print("\n# nothing new since: one request, nothing reported")
        step(env, "sync", "--json")


if __name__ == "__main__":
    main()
