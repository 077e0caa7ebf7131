"""Several `trialwatch sync` processes at once on one store (two people, or a person and the
daemon): every one ends with its JSON report, no version is stored twice and no sync run is
left `running`. Real processes, the real emulator, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from sqlalchemy import text

from service.store import create_store_engine

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ["NCT00763412", "NCT00973089", "NCT03475563"]
SYNCS = 3


def syncs_at_once(env: dict[str, str], count: int) -> list[subprocess.CompletedProcess[str]]:
    command = [sys.executable, "-m", "service", "sync", "--json"]
    running = [
        subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]  # fmt: skip
    done = []
    for process in running:
        stdout, stderr = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return done


def store_facts(url: str) -> tuple[list[tuple[int, int | None, str]], list[str]]:
    engine = create_store_engine(url)
    with engine.connect() as db:
        versions = [
            (row[0], row[1], row[2])
            for row in db.execute(
                text("SELECT record_id, registry_version, content_hash FROM record_versions")
            )
        ]
        statuses = [row[0] for row in db.execute(text("SELECT status FROM sync_runs"))]
    engine.dispose()
    return versions, statuses


@pytest.mark.timeout(300)
def test_concurrent_syncs_never_crash_duplicate_or_leave_a_run_running(
    tmp_path: Path, emulator_factory: Callable[..., Emulator], database_url: str
) -> None:
    emulator = emulator_factory([TESTS_DATA / "records"])
    config = tmp_path / "tw.toml"
    config.write_text(
        f'[ctgov]\napi_url = "{emulator.api_url}"\nhistory_url = "{emulator.history_url}"\n'
        "requests_per_second = 100.0\nhistory_gap_seconds = 0\n"
    )
    env = {**os.environ, "TRIALWATCH_CONFIG": str(config), "TRIALWATCH_DATABASE_URL": database_url}
    subprocess.run([sys.executable, "-m", "service", "watch", "add", *STUDIES],
                   env=env, cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    for round_ in range(2):
        if round_:  # the registry publishes a new version of one of them
            study = emulator.current(STUDIES[0])
            assert study is not None
            study["protocolSection"]["statusModule"]["overallStatus"] = "TERMINATED"
            emulator.publish(study, date="2026-11-26")
        for finished in syncs_at_once(env, SYNCS):
            assert finished.returncode == 0, finished.stderr
            report = json.loads(finished.stdout)  # one JSON report each, also for the losers
            assert report["failed"] == 0 and report["checked"] == len(STUDIES)
            conflicts = [w for w in report["warnings"] if w["reason"] == "conflict"]
            assert all("another" in w["warning"] for w in conflicts)
            assert "Traceback" not in finished.stderr
        versions, statuses = store_facts(database_url)
        numbered = [(record, number) for record, number, _ in versions if number is not None]
        assert len(numbered) == len(set(numbered)), "a registry version stored twice"
        assert len(versions) == len(set(versions)), "the same version stored twice"
        assert "running" not in statuses
    changes = subprocess.run(
        [sys.executable, "-m", "service", "changes", "--kind", "status_changed", "--json"],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert [c["new"] for c in json.loads(changes.stdout)] == ["TERMINATED"]  # found once
