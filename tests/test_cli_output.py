"""What a person reads: tables that keep the titles at 80 columns, and changes found by backfill
told apart from news, in `sync` and `changes` (the real CLI against the registry emulator, on
SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
import json
import os
import pty
import select
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from rich.cells import cell_len

RECORDS = TESTS_DATA / "records"
DEMO = TESTS_DATA / "demo" / "NCT05605665"
SEEDS = Path(__file__).resolve().parents[1] / "seeds"
IDS = ["NCT00763412", "NCT00973089", "NCT03475563", "NCT05605665"]


def study(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    return data.get("study", data)  # type: ignore[no-any-return]


def title_of(record: dict[str, Any]) -> str:
    return record["protocolSection"]["identificationModule"]["briefTitle"]  # type: ignore[no-any-return]


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    emulator = emulator_factory([RECORDS])
    emulator.publish(study(DEMO / "v0.json"), date="2022-11-08")
    return emulator


def runner(registry: Emulator, database_url: str, tmp_path: Path, **env: str) -> twconfig.Run:
    config = twconfig.ctgov(registry.api_url, registry.history_url, history=False)
    return twconfig.runner(twconfig.environment(tmp_path, config, database_url, **env))


# ---- tables at 80 columns ------------------------------------------------------------------------

TITLES = {i: title_of(study(RECORDS / f"{i}.json")) for i in IDS[:3]} | {
    IDS[3]: title_of(study(DEMO / "v0.json"))
}


def row(output: str, study_id: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith(study_id)]
    return line


def test_watch_list_at_80_columns_keeps_every_column_and_a_cut_title(
    registry: Emulator, database_url: str, tmp_path: Path
) -> None:
    run = runner(registry, database_url, tmp_path, COLUMNS="80")
    run("watch", "add", *IDS, "--tag", "cf")
    assert run("sync").exit_code == 0
    listed = run("watch", "list")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert max(cell_len(line.rstrip()) for line in lines) <= 80
    assert all(header in lines[1] for header in ("title", "tags", "versions", "last checked"))
    for study_id, title in TITLES.items():
        line = row(listed.stdout, study_id)
        assert title[:15] in line, line  # the title is there, its start readable …
        assert "…" in line and title not in line, line  # … and cut with an ellipsis
        assert line.rstrip().endswith(tuple("0123456789")), line  # last checked: a time
        assert " cf " in line, line


def test_watch_list_on_a_wide_terminal_shows_whole_titles(
    registry: Emulator, database_url: str, tmp_path: Path
) -> None:
    run = runner(registry, database_url, tmp_path, COLUMNS="250")
    run("watch", "add", *IDS)
    run("sync")
    listed = run("watch", "list").stdout
    for study_id, title in TITLES.items():
        assert title in row(listed, study_id)


def test_seeds_list_at_80_columns_shows_whole_seed_ids_and_title_starts(
    registry: Emulator, database_url: str, tmp_path: Path
) -> None:
    run = runner(registry, database_url, tmp_path, COLUMNS="80")
    assert run("seeds", "load", str(SEEDS)).exit_code == 0
    listed = run("seeds", "list").stdout
    assert max(cell_len(line.rstrip()) for line in listed.splitlines()) <= 80
    for item in run("seeds", "list", "--json").json():
        line = row(listed, item["seed"])  # the id whole, at the start of its row
        assert item["title"][:10] in line, line


# ---- history is not news -------------------------------------------------------------------------

HISTORIC = "NCT00763412"
Backfilled = tuple[Emulator, twconfig.Run]


def edited(status: str, enrollment: int) -> dict[str, Any]:
    record = copy.deepcopy(study(RECORDS / f"{HISTORIC}.json"))
    record["protocolSection"]["statusModule"]["overallStatus"] = status
    record["protocolSection"]["designModule"]["enrollmentInfo"] = {
        "count": enrollment,
        "type": "ESTIMATED",
    }
    return record


@pytest.fixture
def backfilled(
    emulator_factory: Callable[..., Emulator], database_url: str, tmp_path: Path
) -> Backfilled:
    """A record with three registry versions before trialwatch first looks at it."""
    emulator = emulator_factory()
    emulator.publish(edited("RECRUITING", 40), date="2012-01-15")
    emulator.publish(edited("RECRUITING", 36), date="2012-02-15")
    emulator.publish(edited("ACTIVE_NOT_RECRUITING", 36), date="2012-03-15")
    config = twconfig.ctgov(emulator.api_url, emulator.history_url)
    run = twconfig.runner(twconfig.environment(tmp_path, config, database_url))
    run("watch", "add", HISTORIC)
    return emulator, run


def marked(output: str) -> list[str]:
    """The step headings of a change listing, each with its marker if any."""
    return [line for line in output.splitlines() if line.startswith(HISTORIC)]


def step(heading: str) -> str:
    """ "NCT…  v0 → v1, detected …  (history)" → "v0 → v1" """
    return heading.split("  ")[1].split(",")[0]


def test_sync_after_a_backfill_marks_the_old_steps_and_counts_them(backfilled: Backfilled) -> None:
    emulator, run = backfilled
    synced = run("sync")
    assert synced.exit_code == 0, synced.output
    headings = marked(synced.stdout)
    assert len(headings) == 3
    assert not headings[0].endswith("(history)")  # the first sighting is news
    assert [step(h) for h in headings[1:]] == ["v0 → v1", "v1 → v2"]
    assert all(h.endswith("(history)") for h in headings[1:])
    assert "2 of the 3 change(s) are marked (history)" in synced.stdout
    assert "found by backfill" in synced.stdout
    assert [c["historical"] for c in run("changes", "--json").json()] == [False, True, True]

    listed = marked(run("changes").stdout)
    assert [step(h) for h in listed if h.endswith("(history)")] == ["v0 → v1", "v1 → v2"]
    assert len(listed) == 3

    emulator.publish(edited("COMPLETED", 36), date="2024-01-10")
    news = run("sync")
    assert news.exit_code == 0, news.output
    assert "Overall status: Active, not recruiting → Completed" in news.stdout
    assert "(history)" not in news.stdout  # a change made now is not history
    assert "are marked" not in news.stdout
    latest = marked(run("changes").stdout)[-1]
    assert step(latest) == "v2 → v3" and not latest.endswith("(history)")


def test_a_lazy_array_prints_as_the_list_it_stands_for(capsys: pytest.CaptureFixture[str]) -> None:
    from service import views
    from service.monitor import LazyArray

    made: list[int] = []

    def convert(item: int) -> dict[str, int]:
        made.append(item)
        return {"n": item}

    document = {"changes": LazyArray([1, 2, 3], convert), "none": LazyArray([], convert)}
    assert made == []  # nothing is made before it is written
    views.print_json(document)
    assert json.loads(capsys.readouterr().out) == {
        "changes": [{"n": 1}, {"n": 2}, {"n": 3}],
        "none": [],
    }
    assert made == [1, 2, 3]


def test_sync_on_a_terminal_draws_a_progress_bar_and_json_output_none(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    """A person running `sync` on a terminal sees how far it got; a script asking for JSON
    gets the document only, even on a terminal. (stderr is a real pseudo-terminal here.)"""
    template = study(RECORDS / "NCT00973089.json")
    registry = emulator_factory()
    ids = [f"NCT6{n:07d}" for n in range(25)]  # more than the bar's threshold
    for study_id in ids:
        clone = copy.deepcopy(template)
        clone["protocolSection"]["identificationModule"]["nctId"] = study_id
        registry.publish(clone)
    config = twconfig.ctgov(registry.api_url, registry.history_url, history=False)
    env = twconfig.environment(tmp_path, config, f"sqlite:///{tmp_path / 'tw.db'}")
    trialwatch = twconfig.runner(env)
    assert trialwatch("watch", "add", *ids).exit_code == 0

    def on_a_terminal(*args: str) -> tuple[int, str, str]:
        controller, terminal = pty.openpty()
        done = subprocess.run(
            [Path(sys.executable).parent / "trialwatch", *args],
            env={**os.environ, **env, "COLUMNS": "100"},
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=120,
            check=False,
        )
        os.close(terminal)
        drawn = b""
        while select.select([controller], [], [], 0.5)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            drawn += chunk
        os.close(controller)
        return done.returncode, done.stdout.decode(), drawn.decode(errors="replace")

    code, out, drawn = on_a_terminal("sync")
    assert code == 0, drawn
    assert "syncing" in drawn and f"{len(ids)}/{len(ids)}" in drawn
    assert f"{len(ids)} checked: {len(ids)} new" in out
    code, out, drawn = on_a_terminal("sync", "--json")
    assert code == 0 and json.loads(out)["unchanged"] == len(ids)
    assert "syncing" not in drawn
