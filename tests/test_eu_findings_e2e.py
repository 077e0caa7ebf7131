"""The EU results rules in a sync, over real HTTP, on SQLite and PostgreSQL: the EUCTR record
2021-002179-21 (the register's real text download) ended in every country over a year ago,
and the CTIS record 2023-505613-24-00 ended in its three member states; their
``results_overdue`` opened, and the EUCTR one resolved when the register's summary shows the
trial's results (the one more request a trial ended everywhere costs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import twconfig
from eu_registries_emulator import EuEmulator
from test_eu_results_rules import AB, MSD, ab_ended, msd_ended

TODAY = "2026-12-01"  # any day well past both deadlines (2024-10-29 and 2026-06-30)
FAST = {"requests_per_second": 100.0, "retry_initial_seconds": 0.0, "max_attempts": 2}


@pytest.fixture
def trialwatch(eu_emulator: EuEmulator, database_url: str, tmp_path: Path) -> twconfig.Run:
    config = "".join(twconfig.table(f"[{key}]", **FAST) for key in ("euctr", "ctis", "isrctn"))
    config += twconfig.table("[findings]", enabled=True)
    return twconfig.runner(
        twconfig.environment(
            tmp_path,
            config,
            database_url,
            **eu_emulator.environment(),
        )
    )


def findings(trialwatch: twconfig.Run, *args: str) -> dict[tuple[str, str], dict[str, Any]]:
    listed = trialwatch("findings", "--json", *args).json()
    return {(f["registry"], f["rule"]): f for f in listed}


def test_eu_results_overdue_opens_in_a_sync_and_resolves_when_results_are_shown(
    trialwatch: twconfig.Run, eu_emulator: EuEmulator
) -> None:
    eu_emulator.publish("euctr", ab_ended(), TODAY)
    eu_emulator.publish("ctis", msd_ended(), TODAY)
    assert trialwatch("watch", "add", AB, MSD).exit_code == 0
    eu_emulator.reset_stats()
    report = trialwatch("sync", "--json").json()
    assert report["failed"] == 0, report["errors"]
    # a trial ended everywhere: its download, and its summary for the results
    assert any("/rest/download/summary" in path for path in eu_emulator.stats()["paths"])

    found = findings(trialwatch, "--open")
    euctr, ctis = found[("euctr", "results_overdue")], found[("ctis", "results_overdue")]
    assert euctr["study_id"] == AB and euctr["severity"] == "high"  # the register says: none
    assert euctr["detail"]["deadline"] == "2024-10-29"
    assert "EU Trials Tracker" in euctr["source"]
    assert ctis["study_id"] == MSD and ctis["detail"]["deadline"] == "2026-06-30"
    assert "536/2014" in ctis["source"]
    assert euctr["historical"] and ctis["historical"]  # found on a first sighting

    eu_emulator.post_results(AB)
    eu_emulator.publish("euctr", ab_ended(), None)  # the register names the trial again today
    report = trialwatch("sync", "--json").json()
    kinds = {(c["registry"], c["kind"], c["field"]) for c in report["changes"]}
    assert ("euctr", "finding_resolved", "finding:results_overdue") in kinds
    assert ("euctr", "results_posted", "trial_results") in kinds
    assert ("euctr", "results_overdue") not in findings(trialwatch, "--open")
