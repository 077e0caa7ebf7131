"""Crash consistency with replicas, short: `scripts/crash_loop.py --workers 2` runs two daemons
on one PostgreSQL store and SIGKILLs one (here always one seen holding claims) every round,
starting another in its place. The lease is 600 s, so the killed daemons' claims are
delivered only because a claim dies with its process; each takeover must come within 10 s
(the long run is by hand: `python scripts/crash_loop.py --workers 2 --database-url URL`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from crash_loop import TAKEOVER_LIMIT, run


@pytest.mark.timeout(120)
def test_killed_replicas_lose_nothing_and_their_claims_are_taken_over_at_once(
    postgres_url: str,
) -> None:
    outcome = run(kills=2, studies=3, database_url=postgres_url, seed=11, workers=2, hunt=1.0)
    assert outcome.problems == []
    assert outcome.kills == 2
    assert outcome.versions_stored == outcome.published
    assert outcome.takeovers, "no daemon was killed holding claims"
    assert max(outcome.takeovers) < TAKEOVER_LIMIT
