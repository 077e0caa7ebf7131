"""Start-up stays short because the command line loads heavy modules only when a command needs
them: importing ``service.cli``, ``--help`` and ``--version`` load no settings, store, HTTP
client or rich; ``diff`` loads no store, settings or HTTP client; the one-shot reading commands
(``watch list``, ``changes``, ``findings`` with ``--json``) and a sync on a store already at the
newest schema load no migration tool (the schema check is one read of the stored version), no
HTTP client for a command that asks no registry, and no rules, sync cycle or registry client
they do not run.

Checked by what a fresh interpreter holds in ``sys.modules`` afterwards, not by timing (which
depends on the machine; ``bench/startup.py`` measures it). A control run of ``watch list``
shows that the probe does see the store when a command uses it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from ctgov_emulator import Emulator

RECORD = Path(__file__).resolve().parent / "data" / "records" / "NCT00763412.json"

# Each of these alone costs tens to hundreds of milliseconds to import.
HEAVY = {
    "sqlalchemy",
    "httpx",
    "rich",
    "pydantic",
    "apscheduler",
    "service.store",
    "service.app",
    "service.settings",
    "service.views",
    "service.diff",
    "service.report",
}
# A one-shot `sync --json` (what a cron job runs) prints JSON and exits: no tables or progress
# bars, no metrics that nobody scrapes, no scheduler, no seed tools for records no seed follows,
# no notification rendering when no alert fires, no PostgreSQL dialect on SQLite.
NOT_FOR_SYNC = {
    "rich",
    "pygments",
    "prometheus_client",
    "apscheduler",
    "jinja2",
    "service.seeds.service",
    "service.notify.render",
    "sqlalchemy.dialects.postgresql",
    "httpx._main",
    "alembic",  # the store is at the newest schema: one read of its version, no migration tool
    "mako",
}
# What reading the store prints needs the store, its models and click; not these: a store at
# the newest schema is not migrated, no registry is asked, nothing is synced or reviewed, and
# JSON is printed without rich's tables.
NOT_FOR_READING = {
    "alembic",
    "mako",
    "httpx",
    "httpcore",
    "rich",
    "jinja2",
    "apscheduler",
    "prometheus_client",
    "service.monitor",
    "service.cycle",
    "service.registry.ctgov",
    "service.registry.ctgov_normalise",
    "service.findings.rules",
    "service.seeds.service",
    "service.notify.render",
    "sqlalchemy.dialects.postgresql",
}
# What a diff needs (the diff engine, the normaliser, views to print) may load; these not.
NOT_FOR_DIFF = {"sqlalchemy", "httpx", "service.store", "service.app", "service.settings"}

# Runs the CLI in this interpreter and writes the names of the loaded modules to argv[1], as
# the process ends (``cli.main`` ends it without tearing the interpreter down, after the
# ``atexit`` handlers: ``service.quick_exit``).
PROBE = """
import atexit, json, sys
out, args = sys.argv[1], sys.argv[2:]
import service.cli

def write_loaded():
    with open(out, "w") as file:
        # (a None entry marks a module as absent, e.g. httpx's command-line tool: not loaded)
        loaded = sorted(name for name, module in sys.modules.items() if module is not None)
        json.dump({"modules": loaded}, file)

atexit.register(write_loaded)
if args:
    sys.argv = ["trialwatch", *args]
    service.cli.main()
"""


def loaded(tmp_path: Path, *args: str, registry: Emulator | None = None) -> set[str]:
    """Top-level packages and ``service.*`` modules loaded by running ``trialwatch ARGS``."""
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALWATCH_")}
    env["TRIALWATCH_DATABASE_URL"] = f"sqlite:///{tmp_path / 'store.db'}"
    if registry is not None:
        env["TRIALWATCH_CTGOV_API_URL"] = registry.api_url
        env["TRIALWATCH_CTGOV_HISTORY_URL"] = registry.history_url  # never the real one
    ran = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args], cwd=tmp_path, env=env, capture_output=True
    )
    assert ran.returncode == 0, f"trialwatch {' '.join(args)} exited {ran.returncode}: {ran.stderr}"
    names = set(json.loads(out.read_text())["modules"])
    return names | {name.split(".")[0] for name in names}


def test_importing_the_command_line_loads_no_heavy_module(tmp_path: Path) -> None:
    assert loaded(tmp_path) & HEAVY == set()


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_help_and_version_load_no_heavy_module(tmp_path: Path, option: str) -> None:
    assert loaded(tmp_path, option) & HEAVY == set()


def test_a_file_diff_opens_no_store_and_reads_no_settings(tmp_path: Path) -> None:
    new = json.loads(RECORD.read_text(encoding="utf-8"))
    new["protocolSection"]["statusModule"]["overallStatus"] = "TERMINATED"
    (tmp_path / "new.json").write_text(json.dumps(new), encoding="utf-8")
    modules = loaded(tmp_path, "diff", str(RECORD), str(tmp_path / "new.json"))
    assert "service.diff" in modules  # it did diff
    assert modules & NOT_FOR_DIFF == set()


def test_the_probe_sees_the_store_when_a_command_uses_it(tmp_path: Path) -> None:
    """The control: without it, a probe that saw nothing would pass the tests above."""
    modules = loaded(tmp_path, "watch", "list", "--json")
    assert {"sqlalchemy", "service.store", "service.settings"} <= modules


def test_a_one_shot_sync_of_a_changed_record_loads_only_what_it_uses(
    tmp_path: Path, emulator: Emulator
) -> None:
    study = json.loads(RECORD.read_text(encoding="utf-8"))
    study_id = study["protocolSection"]["identificationModule"]["nctId"]
    emulator.publish(study)
    for args in (["init"], ["watch", "add", study_id], ["sync"]):
        loaded(tmp_path, *args, registry=emulator)
    study["protocolSection"]["statusModule"]["overallStatus"] = "TERMINATED"
    emulator.publish(study)
    modules = loaded(tmp_path, "sync", "--json", registry=emulator)
    with closing(sqlite3.connect(tmp_path / "store.db")) as db:
        kinds = {kind for (kind,) in db.execute("SELECT kind FROM changes")}
    assert "status_changed" in kinds  # it fetched, diffed and stored the new version
    assert modules & NOT_FOR_SYNC == set()


@pytest.mark.parametrize(
    ("command", "allowed"),
    [
        (["watch", "list"], set()),
        (["changes"], set()),
        (["findings"], {"service.findings.rules"}),  # it checks --rule against the rules' names
    ],
    ids=["watch list", "changes", "findings"],
)
def test_a_one_shot_read_of_a_store_at_the_newest_schema_loads_only_what_it_prints(
    tmp_path: Path, emulator: Emulator, command: list[str], allowed: set[str]
) -> None:
    study = json.loads(RECORD.read_text(encoding="utf-8"))
    study_id = study["protocolSection"]["identificationModule"]["nctId"]
    emulator.publish(study)
    for args in (["init"], ["watch", "add", study_id], ["sync"]):
        loaded(tmp_path, *args, registry=emulator)
    modules = loaded(tmp_path, *command, "--json", registry=emulator)
    assert {"sqlalchemy", "service.store"} <= modules  # it did read the store
    assert modules & (NOT_FOR_READING - allowed) == set()
