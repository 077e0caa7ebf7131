"""The upgrade that started tracking the brief summary and detailed description.

Snapshots stored before it have no such fields, so their content hash differs from that of
the same record normalised now. A sync after the upgrade must not report "brief summary added"
for every record: the stored snapshot reads the fields as unknown (None) and the diff says
nothing about them. End to end, over real HTTP against the registry emulator, on SQLite and
PostgreSQL, with a store rewritten to what the version before the upgrade wrote.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from sqlalchemy import update

from service.models import LATE_FIELDS, Snapshot
from service.store import RecordRow, Store, VersionRow

DEMO = TESTS_DATA / "demo" / "NCT05605665"
STUDY = "NCT05605665"


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    return data.get("study", data)  # type: ignore[no-any-return]


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    emulator = emulator_factory([])
    emulator.publish(load(DEMO / "v0.json"), date="2022-11-08")
    return emulator


@pytest.fixture
def trialwatch(registry: Emulator, database_url: str, tmp_path: Path) -> twconfig.Run:
    config = tmp_path / "trialwatch.toml"
    config.write_text(
        "[ctgov]\nrequests_per_second = 100.0\nretry_initial_seconds = 0.01\n"
        "retry_max_seconds = 0.2\nmax_attempts = 3\ntimeout_seconds = 5\nhistory = false\n"
    )
    return twconfig.runner(
        {
            "TRIALWATCH_CONFIG": str(config),
            "TRIALWATCH_DATABASE_URL": database_url,
            "TRIALWATCH_CTGOV_API_URL": registry.api_url,
            "TRIALWATCH_CTGOV_HISTORY_URL": registry.history_url,
        }
    )


def store_as_before_the_upgrade(database_url: str) -> None:
    """Rewrite every stored snapshot (and its hashes) as the version before the upgrade
    wrote them: without the description fields."""
    store = Store.open(database_url)
    try:
        with store.engine.begin() as connection:
            rows = connection.execute(
                VersionRow.__table__.select().with_only_columns(
                    VersionRow.id, VersionRow.record_id, VersionRow.snapshot
                )
            ).all()
            for version_id, record_id, snapshot_json in rows:
                legacy = Snapshot.model_validate_json(snapshot_json).model_dump_json(
                    exclude=set(LATE_FIELDS)
                )
                digest = hashlib.sha256(legacy.encode()).hexdigest()
                connection.execute(
                    update(VersionRow.__table__)
                    .where(VersionRow.id == version_id)
                    .values(snapshot=legacy, content_hash=digest)
                )
                connection.execute(
                    update(RecordRow.__table__)
                    .where(RecordRow.id == record_id)
                    .values(content_hash=digest)
                )
    finally:
        store.close()


def test_a_sync_after_the_upgrade_reports_no_change_for_an_unchanged_record(
    trialwatch: twconfig.Run, registry: Emulator, database_url: str
) -> None:
    assert trialwatch("watch", "add", STUDY).exit_code == 0
    assert trialwatch("sync").exit_code == 0
    store_as_before_the_upgrade(database_url)

    # The same content, published again (so the record is fetched in full, not settled by
    # its unchanged last-update date).
    registry.publish(copy.deepcopy(load(DEMO / "v0.json")), date="2026-11-21")
    report = trialwatch("sync", "--json").json()
    assert (report["changed"], report["failed"], report["changes"]) == (0, 0, [])

    # From then on the description is known, and an edit of it is reported.
    rewritten = copy.deepcopy(load(DEMO / "v0.json"))
    rewritten["protocolSection"]["descriptionModule"]["briefSummary"] = "A rewritten summary."
    registry.publish(rewritten, date="2026-11-22")
    report = trialwatch("sync", "--json").json()
    assert [(c["kind"], c["field"], c["severity"]) for c in report["changes"]] == [
        ("field_changed", "protocolSection.descriptionModule.briefSummary", "low")
    ]
