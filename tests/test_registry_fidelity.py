"""The registry as it really answers: both forms of the version list, request lines a proxy
refuses (414), records served under another id (aliases), and a first sync that does not wait
on the slow history API. Every record is a real one (tests/data/records), edited as the
registry edits records."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator

STUDY = "NCT00763412"
BASE = json.loads((TESTS_DATA / "records" / f"{STUDY}.json").read_text())
TEMPLATE = json.loads((TESTS_DATA / "records" / "NCT00973089.json").read_text())
Edit = Callable[[dict[str, Any]], None]


def version(record: dict[str, Any], *edits: Edit) -> dict[str, Any]:
    copied = copy.deepcopy(record)
    for edit in edits:
        edit(copied["protocolSection"])
    return copied


def status(value: str) -> Edit:
    return lambda ps: ps["statusModule"].update(overallStatus=value)


def enrollment(count: int, kind: str) -> Edit:
    return lambda ps: ps["designModule"].update(enrollmentInfo={"count": count, "type": kind})


def renamed(nct: str, aliases: list[str] | None = None) -> Edit:
    def edit(ps: dict[str, Any]) -> None:
        ps["identificationModule"]["nctId"] = nct
        if aliases is not None:
            ps["identificationModule"]["nctIdAliases"] = aliases

    return edit


PAST = [
    [status("RECRUITING"), enrollment(40, "ESTIMATED")],
    [status("RECRUITING"), enrollment(36, "ESTIMATED")],
    [status("ACTIVE_NOT_RECRUITING"), enrollment(36, "ESTIMATED")],
]
LATER = [
    [status("ACTIVE_NOT_RECRUITING"), enrollment(31, "ACTUAL")],
    [status("COMPLETED"), enrollment(31, "ACTUAL")],
]


def cli(registry: Emulator, tmp_path: Path, database_url: str, **ctgov: Any) -> twconfig.Run:
    config = twconfig.ctgov(registry.api_url, registry.history_url, **ctgov)
    return twconfig.runner(twconfig.environment(tmp_path, config, database_url))


def sync_json(trialwatch: twconfig.Run, *ids: str) -> dict[str, Any]:
    result = trialwatch("sync", *ids, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def listed(trialwatch: twconfig.Run, command: str, *args: str) -> list[dict[str, Any]]:
    result = trialwatch(command, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("style", ["query", "path", "both"])
def test_backfill_and_gap_filling_read_either_form_of_the_version_list(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, database_url: str, style: str
) -> None:
    registry = emulator_factory(history_style=style)
    for n, edits in enumerate(PAST):
        registry.publish(version(BASE, *edits), date=f"2012-0{n + 1}-15")
    trialwatch = cli(registry, tmp_path, database_url)
    trialwatch("watch", "add", STUDY)
    first = sync_json(trialwatch)
    assert first["warnings"] == [] and first["backfill"]["pending"] == 0
    versions = listed(trialwatch, "history", STUDY)
    assert [v["version"] for v in versions] == [0, 1, 2]
    for n, edits in enumerate(LATER):
        registry.publish(version(BASE, *edits), date=f"2013-0{n + 1}-15")
    second = sync_json(trialwatch)
    steps = {(c["from_version"], c["to_version"], c["kind"]) for c in second["changes"]}
    assert steps == {
        (2, 3, "enrollment_changed"),
        (2, 3, "enrollment_type_changed"),
        (3, 4, "status_changed"),
    }
    assert second["warnings"] == []


def test_a_version_list_in_neither_known_shape_is_drift_not_a_crash(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, database_url: str
) -> None:
    registry = emulator_factory(history_style="query")
    registry.publish(version(BASE, *PAST[0]), date="2012-01-15")
    # the query form answers, but with a record and no version list at all
    registry.fault("drift", count=-1, path_prefix="/api/int", body={"protocolSection": {}})
    trialwatch = cli(registry, tmp_path, database_url)
    trialwatch("watch", "add", STUDY)
    report = sync_json(trialwatch)
    assert report["new"] == 1 and report["failed"] == 0
    [warning] = report["warnings"]
    assert warning["reason"] == "invalid" and "'changes'" in warning["warning"]
    [watch] = listed(trialwatch, "watch", "list")
    assert watch["backfill"] == "failed"


def test_syncs_succeed_whole_behind_a_proxy_that_refuses_long_request_lines(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, database_url: str
) -> None:
    registry = emulator_factory(max_url_bytes=2048)  # ~140 ids a request line
    ids = [f"NCT9{n:07d}" for n in range(1, 601)]
    for study_id in ids:
        registry.publish(version(TEMPLATE, renamed(study_id)), date="2026-11-01")
    trialwatch = cli(registry, tmp_path, database_url, history=False)
    trialwatch("watch", "add", *ids)
    first = sync_json(trialwatch)
    assert (first["new"], first["failed"]) == (600, 0)
    refused = registry.requests_by_path
    assert first["requests"] <= -(-600 // 130) + 3  # batches that fit, after two refusals
    steady = sync_json(trialwatch)
    assert (steady["unchanged"], steady["failed"]) == (600, 0)
    # a new process starts from the configured cap again: at most one refusal per halving
    assert steady["requests"] <= -(-600 // 130) + 2
    assert sum(refused.values()) >= first["requests"]


def test_steady_cycles_of_2000_stay_within_eight_requests_under_an_8k_proxy(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, database_url: str
) -> None:
    registry = emulator_factory(max_url_bytes=8192)
    ids = [f"NCT8{n:07d}" for n in range(1, 2001)]
    for study_id in ids:
        registry.publish(version(TEMPLATE, renamed(study_id)), date="2026-11-01")
    trialwatch = cli(registry, tmp_path, database_url, history=False)
    trialwatch("watch", "add", *ids)
    assert sync_json(trialwatch)["new"] == 2000
    steady = sync_json(trialwatch)
    assert (steady["unchanged"], steady["failed"]) == (2000, 0)
    assert steady["requests"] <= 8


def test_a_record_served_under_its_new_id_is_kept_under_the_watched_alias(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, database_url: str
) -> None:
    registry = emulator_factory()
    old, new = "NCT00763411", STUDY
    registry.publish(version(BASE, renamed(new, [old]), *PAST[0]), date="2012-01-15")
    registry.alias(old, new)
    trialwatch = cli(registry, tmp_path, database_url, history=False)
    trialwatch("watch", "add", old)
    report = sync_json(trialwatch)
    assert (report["new"], report["failed"]) == (1, 0)
    assert [c["study_id"] for c in report["changes"]] == [old]
    [watch] = listed(trialwatch, "watch", "list")
    assert (watch["study_id"], watch["served_id"]) == (old, new)
    registry.reset_stats()
    assert sync_json(trialwatch)["requests"] == 1  # the probe knows the id it is served under
    registry.publish(version(BASE, renamed(new, [old]), *PAST[2]), date="2012-02-15")
    later = sync_json(trialwatch)
    assert [(c["study_id"], c["kind"]) for c in later["changes"]] == [
        (old, "status_changed"),
        (old, "enrollment_changed"),
    ]


def test_an_answer_for_another_study_is_never_stored_as_the_watched_one(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, database_url: str
) -> None:
    registry = emulator_factory()
    registry.publish(version(BASE, *PAST[0]), date="2012-01-15")
    trialwatch = cli(registry, tmp_path, database_url, history=False)
    trialwatch("watch", "add", STUDY)
    sync_json(trialwatch)
    stranger = version(TEMPLATE, renamed("NCT00973089"))
    stranger["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2026-01-01"
    # the registry (or something before it) answers the watched id with another record: in
    # the probe's batch, then when asked for the watched record alone
    registry.fault("drift", path_prefix="/api/v2/studies", body={"studies": [stranger]})
    registry.fault("drift", path_prefix="/api/v2/studies/", body=stranger)
    result = trialwatch("sync", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["failed"] == 1
    assert report["changes"] == []
    [error] = report["errors"]
    assert error["reason"] == "invalid" and "NCT00973089" in error["error"]
    assert len(listed(trialwatch, "history", STUDY)) == 1  # nothing stored
    registry.clear_faults()
    assert sync_json(trialwatch)["changes"] == []  # and nothing to revert


def test_a_first_sync_stores_every_record_before_any_history_and_resumes_later(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, database_url: str
) -> None:
    registry = emulator_factory()
    ids = [f"NCT7{n:07d}" for n in range(1, 6)]
    for study_id in ids:
        for n, edits in enumerate(PAST):
            registry.publish(version(BASE, renamed(study_id), *edits), date=f"2012-0{n + 1}-15")
    trialwatch = cli(registry, tmp_path, database_url, history_budget_seconds=0)
    trialwatch("watch", "add", *ids)
    registry.reset_stats()
    first = sync_json(trialwatch)
    assert first["new"] == 5 and first["requests"] == 1  # one batch; no history yet
    assert first["backfill"] == {"done": 0, "failed": 0, "pending": 5}
    watches = listed(trialwatch, "watch", "list")
    assert {w["backfill"] for w in watches} == {"pending"}
    config = tmp_path / "trialwatch.toml"
    config.write_text(config.read_text().replace("history_budget_seconds = 0", ""))
    second = sync_json(trialwatch)
    assert second["backfill"] == {"done": 5, "failed": 0, "pending": 0}
    assert all(c["historical"] for c in second["changes"])
    for study_id in ids:
        assert [v["version"] for v in listed(trialwatch, "history", study_id)] == [0, 1, 2]
    changes = listed(trialwatch, "changes", "--study", ids[0])
    steps = [(c["from_version"], c["to_version"], c["kind"]) for c in changes]
    assert steps == [
        (None, 2, "record_added"),
        (0, 1, "enrollment_changed"),
        (1, 2, "status_changed"),
    ]


def test_offline_diff_of_history_wrappers_names_the_versions(tmp_path: Path) -> None:
    wrapper = json.loads((TESTS_DATA / "records" / "NCT04280705_history_v0.json").read_text())
    later = copy.deepcopy(wrapper)
    later["studyVersion"] = 1
    later["study"]["protocolSection"]["statusModule"]["overallStatus"] = "COMPLETED"
    old, new = tmp_path / "v0.json", tmp_path / "v1.json"
    old.write_text(json.dumps(wrapper))
    new.write_text(json.dumps(later))
    run = twconfig.runner({"TRIALWATCH_CONFIG": ""})
    [change] = json.loads(run("diff", str(old), str(new), "--json").stdout)
    assert (change["kind"], change["from_version"], change["to_version"]) == (
        "status_changed",
        0,
        1,
    )
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(later["study"]))
    [plain] = json.loads(run("diff", str(old), str(bare), "--json").stdout)
    assert (plain["from_version"], plain["to_version"]) == (0, None)
