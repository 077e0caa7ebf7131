"""Faults a registry and a database really produce, against real servers: each gets the right
retry or a clear error, and the store stays consistent."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from notify_servers import free_port

IDS = ["NCT00763412", "NCT00973089", "NCT03475563"]


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory([TESTS_DATA / "records"])


@pytest.fixture
def trialwatch(registry: Emulator, sqlite_url: str, tmp_path: Path) -> twconfig.Run:
    ctgov = twconfig.ctgov(
        registry.api_url,
        registry.history_url,
        history=False,
        timeout_seconds=0.5,
        retry_initial_seconds=0.01,
        max_attempts=3,
    )
    run = twconfig.runner(twconfig.environment(tmp_path, ctgov, sqlite_url))
    run("watch", "add", *IDS)
    return run


def report(result: twconfig.Ran) -> dict[str, Any]:
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_a_403_is_not_retried_and_fails_the_cycle_clearly(
    trialwatch: twconfig.Run, registry: Emulator
) -> None:
    registry.fault("403", count=-1)
    result = trialwatch("sync", "--json")
    assert result.exit_code == 1
    sync = report(result)
    assert sync["requests"] == 1 and sync["failed"] == 3
    assert "registry refused the request: 403 Forbidden" in sync["errors"][0]["error"]
    # each record failed, in one line of the log (not a line per watched record)
    [line] = [line for line in result.stderr.splitlines() if "403" in line]
    assert "not checked: NCT00763412, NCT00973089, NCT03475563" in line
    assert json.loads(trialwatch("changes", "--json").stdout) == []


def test_a_slow_answer_times_out_and_is_retried(
    trialwatch: twconfig.Run, registry: Emulator
) -> None:
    registry.fault("slow", count=1, seconds=2)
    started = time.monotonic()
    result = trialwatch("sync", "--json")
    assert result.exit_code == 0, result.stderr
    assert report(result)["new"] == 3 and report(result)["requests"] == 2
    assert time.monotonic() - started < 2  # the client gave up on the slow answer


def test_a_registry_that_never_answers_in_time_is_named(
    trialwatch: twconfig.Run, registry: Emulator
) -> None:
    registry.fault("slow", count=-1, seconds=2)
    result = trialwatch("sync")
    assert result.exit_code == 1
    assert "registry timed out" in result.stderr
    registry.clear_faults()


def test_a_locked_sqlite_store_is_waited_for(trialwatch: twconfig.Run, sqlite_url: str) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, timeout=5, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process writing: the store is locked

    def release() -> None:
        time.sleep(1.0)
        holder.rollback()

    threading.Thread(target=release).start()
    result = trialwatch("sync", "--json")
    assert result.exit_code == 0, result.stderr
    assert report(result)["new"] == 3
    holder.close()


def test_an_unreachable_registry_fails_the_list_after_one_requests_retries(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Nothing listens where the registry should be: the first batch's retries tell so, and
    the other batches fail with it, unasked (each waiting out the same retries would make a
    list of 10,000 fail after most of an hour)."""
    where = f"http://127.0.0.1:{free_port()}"
    ctgov = twconfig.ctgov(
        f"{where}/api/v2",
        f"{where}/api/int",
        history=False,
        max_url_bytes=512,  # a few dozen ids a batch: several batches
        retry_initial_seconds=0.01,
        max_attempts=3,
    )
    run = twconfig.runner(twconfig.environment(tmp_path, ctgov, sqlite_url))
    watched = [f"NCT{n:08d}" for n in range(1, 121)]
    assert run("watch", "add", *watched).exit_code == 0
    result = run("sync", "--json")
    assert result.exit_code == 1
    sync = report(result)
    assert (sync["checked"], sync["failed"], sync["requests"]) == (120, 120, 3)
    assert {e["reason"] for e in sync["errors"]} == {"registry"}
    assert all("registry unreachable" in e["error"] for e in sync["errors"])
