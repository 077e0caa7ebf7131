"""Cycles whose cost follows what the registry changed: a quiet registry costs one request
(`/version`), a busy one its changed-since listing when that is shorter than probing every
watched id, and every Nth cycle probes anyway. Records are clones of a real one, posted today
as the registry posts them."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator

from service.monitor import Monitor
from service.registry.ctgov import CtgovClient
from service.settings import CtgovSettings
from service.store import Store

TEMPLATE = json.loads((TESTS_DATA / "records" / "NCT00973089.json").read_text())
TODAY = date.today().isoformat()
WATCHED = [f"NCT5{n:07d}" for n in range(1, 601)]  # 600: two probe requests' worth
UNWATCHED = [f"NCT4{n:07d}" for n in range(1, 201)]


def record(study_id: str, status: str = "WITHDRAWN") -> dict[str, Any]:
    copied = copy.deepcopy(TEMPLATE)
    copied["protocolSection"]["identificationModule"]["nctId"] = study_id
    copied["protocolSection"]["statusModule"]["overallStatus"] = status
    return copied


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    emulator = emulator_factory()
    for study_id in WATCHED + UNWATCHED:
        emulator.publish(record(study_id), date="2026-01-05")
    return emulator


def runner(registry: Emulator, tmp_path: Path, database_url: str, **ctgov: Any) -> twconfig.Run:
    keys = {"history": False, "incremental": True, **ctgov}
    config = twconfig.ctgov(registry.api_url, registry.history_url, **keys)
    return twconfig.runner(twconfig.environment(tmp_path, config, database_url))


def sync(trialwatch: twconfig.Run, *ids: str) -> dict[str, Any]:
    result = trialwatch("sync", *ids, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def changed(registry: Emulator, ids: list[str]) -> None:
    for study_id in ids:
        registry.publish(record(study_id, "COMPLETED"), date=TODAY)


def test_a_cycle_costs_what_the_registry_changed_not_the_watch_list(
    registry: Emulator, tmp_path: Path, database_url: str
) -> None:
    trialwatch = runner(registry, tmp_path, database_url)
    trialwatch("watch", "add", *WATCHED)
    first = sync(trialwatch)
    assert (first["new"], first["cycle"]["mode"]) == (600, "probe")
    registry.reset_stats()
    quiet = sync(trialwatch)
    assert (quiet["unchanged"], quiet["cycle"]["mode"], quiet["requests"]) == (600, "quiet", 1)
    assert registry.requests_by_path == {"/api/v2/version": 1}

    changed(registry, UNWATCHED[:50] + WATCHED[100:105])
    registry.reset_stats()
    busy = sync(trialwatch)
    assert busy["changed"] == 5 and busy["cycle"]["mode"] == "listing"
    assert {c["study_id"] for c in busy["changes"]} == set(WATCHED[100:105])
    # /version, one page of the listing, the five records in full: probing alone costs 2 + 1
    assert busy["requests"] == registry.requests == 3
    assert busy["cycle"]["since"] <= TODAY
    assert sync(trialwatch)["cycle"]["mode"] == "quiet"


def test_every_nth_cycle_probes_every_watched_id_as_a_safety_net(
    registry: Emulator, tmp_path: Path, database_url: str
) -> None:
    trialwatch = runner(registry, tmp_path, database_url, full_probe_every=3)
    trialwatch("watch", "add", *WATCHED)
    modes = [sync(trialwatch)["cycle"]["mode"] for _ in range(7)]
    assert modes == ["probe", "quiet", "quiet", "probe", "quiet", "quiet", "probe"]


def test_a_listing_longer_than_the_probe_is_not_followed(
    registry: Emulator, tmp_path: Path, database_url: str
) -> None:
    trialwatch = runner(registry, tmp_path, database_url)
    trialwatch("watch", "add", *WATCHED[:450])  # two probe requests
    sync(trialwatch)
    # 3,100 registry-wide changes: three more listing pages, more than the two probes
    for n in range(3100):
        registry.publish(record(f"NCT3{n:07d}"), date=TODAY)
    changed(registry, WATCHED[:2])
    registry.reset_stats()
    report = sync(trialwatch)
    assert (report["changed"], report["cycle"]["mode"]) == (2, "probe")
    # /version, the listing's first page (its count), two probes, one batch in full
    assert report["requests"] == 5


def test_a_missed_cycle_is_covered_by_listing_from_the_last_good_one(
    registry: Emulator, tmp_path: Path, database_url: str
) -> None:
    trialwatch = runner(registry, tmp_path, database_url, max_attempts=1)
    trialwatch("watch", "add", *WATCHED)
    sync(trialwatch)
    changed(registry, WATCHED[:1])
    registry.fault("503", count=-1)
    down = trialwatch("sync", "--json")
    assert down.exit_code == 1
    registry.clear_faults()
    changed(registry, WATCHED[1:2])
    report = sync(trialwatch)
    assert report["cycle"]["mode"] == "listing"
    assert {c["study_id"] for c in report["changes"]} == set(WATCHED[:2])


def test_syncing_given_ids_is_no_base_for_the_next_cycle(
    registry: Emulator, tmp_path: Path, database_url: str
) -> None:
    trialwatch = runner(registry, tmp_path, database_url)
    trialwatch("watch", "add", *WATCHED)
    sync(trialwatch)
    changed(registry, WATCHED[:2])
    some = sync(trialwatch, WATCHED[0])
    assert "mode" not in some["cycle"] and some["changed"] == 1
    # the whole list next: WATCHED[1] changed too, and the registry's data moved since the base
    report = sync(trialwatch)
    assert report["cycle"]["mode"] == "listing"
    assert [c["study_id"] for c in report["changes"]] == [WATCHED[1]]


def test_the_listing_starts_from_the_last_good_cycle_whatever_the_clock_says(
    registry: Emulator, database_url: str
) -> None:
    now = [datetime.now(UTC)]
    store = Store.open(database_url)
    store.add_watches("ctgov", WATCHED, [], now[0])
    settings = CtgovSettings(
        api_url=registry.api_url, history_url=registry.history_url, history=False
    )
    with httpx.Client() as http:
        monitor = Monitor(
            store, CtgovClient(http, settings), clock=lambda: now[0], settings=settings
        )
        base = monitor.sync()
        for jump, study_id in ((timedelta(days=-40), WATCHED[7]), (timedelta(days=30), WATCHED[8])):
            now[0] = datetime.now(UTC) + jump  # the clock jumps back, then forward
            changed(registry, [study_id])
            report = monitor.sync()
            assert report.cycle["mode"] == "listing"
            assert [c.study_id for c in report.changes] == [study_id]
    assert base.cycle["mode"] == "probe"
    store.close()


def test_without_the_registrys_timestamp_the_cycle_probes(
    registry: Emulator, tmp_path: Path, database_url: str
) -> None:
    trialwatch = runner(registry, tmp_path, database_url, max_attempts=1)
    trialwatch("watch", "add", *WATCHED)
    sync(trialwatch)
    registry.fault("500", count=1, path_prefix="/api/v2/version")
    report = sync(trialwatch)
    assert (report["cycle"]["mode"], report["failed"], report["unchanged"]) == ("probe", 0, 600)
