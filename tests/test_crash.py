"""Crash consistency, short: `scripts/crash_loop.py` SIGKILLs sync and notify processes at
random moments, then checks every version stored once, every change recorded once, every
notification delivered, and repeats only under the same event id (the long run is by hand:
`python scripts/crash_loop.py --kills 50`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from crash_loop import run


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", [7])
def test_killed_syncs_and_notifiers_lose_and_double_nothing(database_url: str, seed: int) -> None:
    outcome = run(kills=8, studies=6, database_url=database_url, seed=seed)
    assert outcome.problems == []
    assert outcome.versions_stored == outcome.published
    assert outcome.kills + outcome.finished_before_kill == 8
