"""What a person reads: tables that keep the titles at 80 columns, and changes found by backfill
told apart from news, in `sync` and `changes` (the real CLI against the registry emulator, on
SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from rich.cells import cell_len

from service.diff import humanise

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


# ---- tables at 80 columns and on a pipe --------------------------------------------------------

TITLES = {i: title_of(study(RECORDS / f"{i}.json")) for i in IDS[:3]} | {
    IDS[3]: title_of(study(DEMO / "v0.json"))
}
WORD_END = re.compile(r"[ ,;:\-]")  # what may follow a title cut at a word boundary


def row(output: str, study_id: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith(study_id + " ")]
    return line


def blocks(output: str) -> dict[str, list[str]]:
    """Each row of a table by its first cell: its first line and the lines under it."""
    found: dict[str, list[str]] = {}
    lines = output.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("─"))
    for line in lines[rule + 1 :]:
        if not line.strip():
            continue
        if line.startswith(" ") and found:
            found[list(found)[-1]].append(line)
        else:
            found[line.split()[0]] = [line]
    return found


def assert_cut_at_a_word(line: str, title: str) -> None:
    """The title is in ``line`` whole, or its start up to a word's end, then "…"."""
    if title in line:
        return
    cut = max((k for k in range(1, len(title)) if title[:k] + "…" in line), default=0)
    assert cut >= 8, (line, title)  # its start readable
    assert WORD_END.match(title[cut]), (title[:cut], line)  # never inside a word


def assert_words_whole(block: list[str], words: str) -> None:
    tokens = " ".join(block).split()
    assert all(word in tokens for word in words.split()), (block, words)


def test_watch_list_at_80_columns_keeps_ids_status_words_and_the_title_start(
    registry: Emulator, database_url: str, tmp_path: Path
) -> None:
    """COLUMNS says the width (a terminal's, or `watch`'s): rows fit it, the tags move under
    the title to leave it room, ids and dates whole, statuses wrapped between words."""
    run = runner(registry, database_url, tmp_path, COLUMNS="80")
    run("watch", "add", *IDS, "--tag", "cf", "--tag", "pulmonary")
    assert run("sync").exit_code == 0
    listed = run("watch", "list")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].rstrip() == "4 watched records"
    assert max(cell_len(line.rstrip()) for line in lines) <= 80
    headers = " ".join(lines[1 : next(i for i, x in enumerate(lines) if x.startswith("─"))])
    assert all(header in headers for header in ("study", "status", "title", "last"))
    rows = blocks(listed.stdout)
    assert sorted(rows) == sorted(IDS)  # every id whole, first in its row
    statuses = {w["study_id"]: w["overall_status"] for w in run("watch", "list", "--json").json()}
    for study_id, title in TITLES.items():
        block = rows[study_id]
        assert_cut_at_a_word(block[0], title)
        assert "tags: cf, pulmonary" in "\n".join(block)  # moved under the title, whole
        assert_words_whole(block, humanise(statuses[study_id]))
        assert re.search(r"\d{4}-\d\d-\d\d( \d\d:\d\d)?$", block[0].rstrip()), block


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
    assert listed.splitlines()[0].rstrip() == "5 seed studies"
    assert max(cell_len(line.rstrip()) for line in listed.splitlines()) <= 80
    rows = blocks(listed)
    for item in run("seeds", "list", "--json").json():
        block = rows[item["seed"]]  # the id whole, at the start of its row
        assert_cut_at_a_word(block[0], item["title"])
        assert_words_whole(block, item["kind"].replace("_", " "))
        for link in item["links"]:  # moved under the title, the id whole
            assert link["study_id"] in " ".join(block).split(), block


# The real records of ../shared/reference: long titles, statuses of three words, a record
# naming its EU registration (the "same trial" column).
REFERENCE_IDS = [
    "NCT00763412", "NCT00973089", "NCT02210780", "NCT02513394", "NCT02552212", "NCT03418623",
    "NCT03475563", "NCT03630471", "NCT04207047", "NCT04267848", "NCT05594173", "NCT06171568",
]  # fmt: skip
LINKED = {"NCT02513394": "2014-005181-30", "NCT02552212": "2015-001894-41"}


@pytest.fixture
def reference_store(
    emulator_factory: Callable[..., Emulator], reference_dir: Path, tmp_path: Path
) -> dict[str, str]:
    """The real records watched and synced (with tags), and the environment to list them."""
    registry = emulator_factory([reference_dir])
    config = twconfig.ctgov(registry.api_url, registry.history_url, history=False)
    env = twconfig.environment(tmp_path, config, f"sqlite:///{tmp_path / 'tw.db'}")
    run = twconfig.runner(env)
    assert (
        run("watch", "add", *REFERENCE_IDS, "--tag", "oncology", "--tag", "review").exit_code == 0
    )
    assert run("sync").exit_code == 0
    return env


def trialwatch_on(env: dict[str, str], *args: str, columns: int | None) -> str:
    """stdout of a trialwatch process: on a real terminal ``columns`` wide, or a pipe (None).
    COLUMNS is not set: the width is the terminal's own."""
    clean = {k: v for k, v in {**os.environ, **env}.items() if k not in ("COLUMNS", "LINES")}
    command = [str(Path(sys.executable).parent / "trialwatch"), *args]
    if columns is None:
        done = subprocess.run(command, env=clean, capture_output=True, timeout=120, check=True)
        return done.stdout.decode()
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        command, env={**clean, "TERM": "xterm"}, stdout=terminal, stderr=subprocess.DEVNULL
    )
    os.close(terminal)
    drawn = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the other end closed: all read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(controller)
    assert process.wait(timeout=120) == 0
    return ANSI.sub("", drawn.decode().replace("\r\n", "\n"))


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_watch_list_on_an_80_column_terminal_of_real_records(
    reference_store: dict[str, str],
) -> None:
    drawn = trialwatch_on(reference_store, "watch", "list", columns=80)
    lines = drawn.splitlines()
    assert lines[0].rstrip() == "12 watched records"
    assert max(cell_len(line.rstrip()) for line in lines) <= 80
    rows = blocks(drawn)
    assert sorted(rows) == REFERENCE_IDS  # every id whole, first in its row
    for watch in json.loads(
        trialwatch_on(reference_store, "watch", "list", "--json", columns=None)
    ):
        block = rows[watch["study_id"]]
        assert_cut_at_a_word(block[0], watch["title"])
        assert_words_whole(block, humanise(watch["overall_status"]))
        assert "tags: oncology, review" in "\n".join(line.strip() for line in block)
        linked = LINKED.get(watch["study_id"])
        if linked:
            assert f"same trial: {linked}" in "\n".join(block), block  # the id whole


def test_watch_list_on_a_pipe_is_a_line_a_row_nothing_cut(reference_store: dict[str, str]) -> None:
    """Piped, the list is for grep and cut: one line a record, every value whole, however wide
    the terminal the command runs from."""
    piped = trialwatch_on(reference_store, "watch", "list", columns=None)
    lines = piped.splitlines()
    assert len(lines) == 3 + len(REFERENCE_IDS)  # caption, headers, rule, a line a record
    watches = json.loads(trialwatch_on(reference_store, "watch", "list", "--json", columns=None))
    for watch in watches:
        line = row(piped, watch["study_id"])
        assert watch["title"] in line and "…" not in line
        assert humanise(watch["overall_status"]) in line
        assert "oncology, review" in line
        assert LINKED.get(watch["study_id"], "") in line
    recruiting = [line.split()[0] for line in lines if " Recruiting " in line]
    assert recruiting == [w["study_id"] for w in watches if w["overall_status"] == "RECRUITING"]


def test_changes_on_a_pipe_are_a_line_each_and_wrap_under_themselves_on_a_terminal(
    reference_store: dict[str, str],
) -> None:
    piped = trialwatch_on(reference_store, "changes", columns=None)
    summaries = [line for line in piped.splitlines() if line.startswith("  low ")]
    assert len(summaries) == len(REFERENCE_IDS)  # "Now watching: <whole title>", a line each
    drawn = trialwatch_on(reference_store, "changes", columns=80)
    assert max(cell_len(line.rstrip()) for line in drawn.splitlines()) <= 80
    for line in drawn.splitlines()[1:]:  # a wrapped summary goes on under its own start
        assert line.startswith(("NCT", "  low    ", " " * 9)), line


# ---- words ---------------------------------------------------------------------------------------


def test_counts_and_hints_agree_in_number(
    registry: Emulator, database_url: str, tmp_path: Path
) -> None:
    run = runner(registry, database_url, tmp_path)
    one = run("watch", "add", IDS[0])
    assert one.stdout.splitlines()[-1] == "Next: `trialwatch sync` fetches it."
    assert run("sync").stdout.splitlines()[-1] == (
        "1 checked: 1 new, 0 changed, 0 unchanged, 0 failed; 1 registry request (probe)"
    )
    again = run("sync")  # the whole list: settled by a probe, one request
    assert again.stdout.splitlines()[-1].endswith("; 1 registry request (probe)")
    assert run("changes").stdout.startswith("1 change\n")
    assert run("history", IDS[0]).stdout.startswith(f"{IDS[0]}: 1 stored version\n")
    two = run("watch", "add", *IDS[1:3])
    assert two.stdout.splitlines()[-1] == "Next: `trialwatch sync` fetches them."
    assert run("watch", "list").stdout.startswith("3 watched records")


def test_a_title_is_cut_at_a_word_with_an_ellipsis() -> None:
    from service.views import clip, plural

    title = TITLES[IDS[0]]  # "Pilot and Feasibility Study for the Treatment of …"
    assert clip(title, 30) == "Pilot and Feasibility Study…"
    assert clip(title, len(title)) == title
    for width in range(12, len(title)):
        cut = clip(title, width)
        assert cell_len(cut) <= width and cut.endswith("…")
        assert WORD_END.match(title[len(cut) - 1]), cut  # a whole word before the "…"
    assert [plural(n, "seed study") for n in (0, 1, 5)] == [
        "0 seed studies",
        "1 seed study",
        "5 seed studies",
    ]
    assert plural(1_000, "registry request") == "1,000 registry requests"


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
    assert (
        "2 of the 3 changes are marked (history), not made now: 2 changes between versions "
        "the registry published before the record was first synced (found by backfill)"
    ) in synced.stdout.splitlines()
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


def test_changes_limit_keeps_the_most_recent_oldest_first_unless_newest(
    backfilled: Backfilled,
) -> None:
    emulator, run = backfilled
    assert run("sync").exit_code == 0
    emulator.publish(edited("COMPLETED", 36), date="2024-01-10")
    assert run("sync").exit_code == 0
    every = run("changes", "--json").json()
    assert [c["id"] for c in every] == sorted(c["id"] for c in every)  # a log: oldest first
    assert run("changes", "--limit", "2", "--json").json() == every[-2:]  # the 2 most recent
    assert run("changes", "--newest", "--json").json() == every[::-1]
    assert run("changes", "--newest", "--limit", "1", "--json").json() == every[-1:]
    shown = run("changes", "--limit", "1").stdout
    assert shown.startswith("1 change\n") and "Active, not recruiting → Completed" in shown
    assert run("changes", "--newest").stdout.startswith(f"{len(every)} changes, newest first")
    helped = " ".join(run("changes", "--help").stdout.split())
    assert "oldest first" in helped and "--newest" in helped and "N most recent" in helped


def test_a_first_sync_says_which_history_is_backfill_and_which_findings(
    emulator_factory: Callable[..., Emulator], database_url: str, tmp_path: Path
) -> None:
    """With the transparency rules on, a first sight's findings (about the record's past)
    are history too, and the note counts them apart from the backfilled steps."""
    emulator = emulator_factory()
    emulator.publish(edited("RECRUITING", 40), date="2012-01-15")
    emulator.publish(edited("COMPLETED", 36), date="2012-03-15")
    config = twconfig.ctgov(emulator.api_url, emulator.history_url)
    config += twconfig.table("[findings]", enabled=True)
    run = twconfig.runner(twconfig.environment(tmp_path, config, database_url))
    run("watch", "add", HISTORIC)
    synced = run("sync")
    assert synced.exit_code == 0, synced.output
    stored = run("changes", "--json").json()
    findings = [c for c in stored if c["historical"] and c["kind"].startswith("finding_")]
    steps = [c for c in stored if c["historical"] and not c["kind"].startswith("finding_")]
    assert findings and steps  # (the record is completed and never posted results)
    [note] = [line for line in synced.stdout.splitlines() if "marked (history)" in line]
    assert note.startswith(f"{len(findings) + len(steps)} of the {len(stored)} changes are")
    assert f"{len(steps)} change{'s' if len(steps) > 1 else ''} between versions" in note
    finding_words = f"{len(findings)} finding{'s' if len(findings) > 1 else ''}"
    assert f"{finding_words} raised on first sight of a record (about its past)" in note
