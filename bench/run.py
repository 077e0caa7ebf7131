"""``make bench``: trialwatch against a naive poller and urlwatch on an emulated registry.

What runs, on one emulated registry (``bench/emulator.py`` serving ``bench/generate.py``'s
records, in its own process):

1. **Peers, side by side** on the first ``--peers`` studies (default 2,000): trialwatch (a real
   ``trialwatch sync --json`` process, SQLite store in a temp dir, ``[ctgov] history = false``,
   ``requests_per_second = 100``), the naive poller (``bench/naive.py``: one request per
   study, ``deepdiff``) and urlwatch (``/api/v2/studies/{id}`` URLs, ``--cache`` in a temp
   dir). Each does (a) a first load, (b) a steady cycle with nothing changed, (c) a cycle
   after 1% of the studies got a new version.
2. **Scale**: trialwatch alone on all ``N`` studies (``--full``: 100,000), same three cycles.
3. **Diff engine**: ``bench/diff_speed.py`` (synthetic 40-site records), and ``diff`` against
   ``deepdiff`` on pairs of generated records and their next versions, one core each.

Per cycle: registry requests (as the tool counts them and as the emulator saw them), wall
time, peak RSS of the tool's process (``os.wait4``), records/s. It prints a table and writes
its section of ``bench/results.md`` (quick and full runs keep separate sections).

    .venv/bin/python bench/run.py [--n 2000 | --full] [--peers 2000] [--profile]

urlwatch and deepdiff live in ``bench/.venv-tools`` (``make bench`` creates it); without it
the peers are skipped and the report says so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import generate  # noqa: E402  (a sibling script, importable once bench/ is on the path)

QUICK_N = 2_000
FULL_N = 100_000
PEERS_N = 2_000
CHANGED_SHARE = 0.01
REGISTRY_EXTRA = 0.2  # the registry holds 20% more records than the watch list
DAY_CHANGES_SHARE = 0.01  # registry-wide changes a day, per watched study: 1,000 at 100,000
NEW_REGISTRATIONS_SHARE = 0.01  # of a day's changes, new records (half match a saved search)
# Saved searches made from generate.py's vocabulary: ~520 and ~640 matches in 120,000 records
SEARCHES = (
    ("sickle-olaparib", {"cond": "Sickle Cell Disease", "intr": "Olaparib"}),
    ("cf-epilepsy", {"cond": "Cystic Fibrosis AND Epilepsy"}),
)
REPEAT = 5
PEER_LATENCY_MS = 100.0  # a conservative round trip to a remote HTTPS API
CACHE = BENCH / ".cache"
TOOLS_VENV = BENCH / ".venv-tools"
PROFILES = BENCH / ".profiles"
RESULTS = BENCH / "results.md"
VENV_BIN = Path(sys.executable).parent
# trialwatch as a user installs it (`make bench` builds it: `pip install .`, not editable): its
# modules compiled at install and none of the test extras, which a development venv has (a
# venv with PYTHONDONTWRITEBYTECODE=1 recompiles every module of an editable install on each
# run, and selenium's trio would load with httpx). Without it, the development venv's.
INSTALL_VENV = BENCH / ".venv-trialwatch"
TRIALWATCH_BIN = (
    INSTALL_VENV / "bin" if (INSTALL_VENV / "bin" / "trialwatch").exists() else VENV_BIN
)
WATCH_CHUNK = 5_000  # ids per `watch add` (argv stays far below the kernel's limit)
COMMAND_TIMEOUT = 3_600.0
DIFF_PAIRS = 2_000
DEEPDIFF_PAIRS = 200  # deepdiff takes ~70 ms a pair: 200 pairs already give a stable rate


# ---- measuring a process ------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One finished process: wall time, peak RSS, exit code and output, CPU time."""

    wall: float
    rss_mb: float
    returncode: int
    stdout: str
    stderr: str
    cpu: float = 0.0  # user + system seconds of the process


# With two cores or more, the emulator runs on the first and every measured tool on the
# second (``--no-pin``: anywhere): a tool then never shares its core with the registry that
# answers it, and both tools of a comparison get the same idle core.
EMULATOR_CPUS: set[int] | None = None
TOOL_CPUS: set[int] | None = None


def pin_cores(enabled: bool) -> str:
    """Split the cores as above; returns how, for the report."""
    global EMULATOR_CPUS, TOOL_CPUS
    cores = sorted(os.sched_getaffinity(0))
    if not enabled or len(cores) < 2:
        EMULATOR_CPUS = TOOL_CPUS = None
        return "not pinned"
    EMULATOR_CPUS, TOOL_CPUS = {cores[0]}, {cores[1]}
    return f"emulator on core {cores[0]}, each measured tool on core {cores[1]}"


def _pinned(cpus: set[int] | None) -> Any:
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def run_measured(
    cmd: Sequence[str | Path], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run ``cmd`` to the end; its peak RSS comes from ``wait4`` on that very child, so neither
    the emulator nor this process is counted."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdout=out,
            stderr=err,
            env=env,
            cwd=cwd,
            preexec_fn=_pinned(TOOL_CPUS),
        )
        killer = threading.Timer(COMMAND_TIMEOUT, proc.kill)
        killer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Measured(
            wall=wall,
            rss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            cpu=usage.ru_utime + usage.ru_stime,
        )


@dataclass(frozen=True)
class Row:
    """One cycle of one tool."""

    tool: str
    watched: int
    cycle: str
    requests: int | None  # as the tool itself counts them (None: it does not say)
    emulator_requests: int
    wall: float
    rss_mb: float
    outcome: str
    cycle_seconds: float | None = None  # the cycle alone, start-up excluded (trialwatch)
    latency_ms: float = 0.0  # the emulator's delay a request during this cycle
    runs: int = 1  # this is the median of that many runs
    found: tuple[int, int] | None = None  # watched records changed: (found, published)
    cpu: float = 0.0  # user + system seconds of the process
    wall_range: tuple[float, float] | None = None  # fastest and slowest of the runs

    @property
    def records_per_second(self) -> float:
        return self.watched / self.wall if self.wall else 0.0


# ---- the emulator -------------------------------------------------------------------------------


class Emulator:
    """``bench/emulator.py`` in its own process, so that serving costs this process nothing."""

    def __init__(self, data_dir: Path, workdir: Path, latency_ms: float) -> None:
        port_file = workdir / "emulator.port"
        cmd = [sys.executable, str(BENCH / "emulator.py"), "--data", str(data_dir)]
        cmd += ["--port-file", str(port_file), "--latency-ms", str(latency_ms)]
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, preexec_fn=_pinned(EMULATOR_CPUS)
        )
        deadline = time.monotonic() + 120
        while not port_file.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the bench emulator did not start")
            time.sleep(0.05)
        self.base_url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        self.api_url = f"{self.base_url}/api/v2"
        self._http = httpx.Client(timeout=120)

    def reset_stats(self) -> None:
        self._http.post(f"{self.base_url}/_emu/reset_stats").raise_for_status()

    def set_latency(self, milliseconds: float) -> None:
        body = {"seconds": milliseconds / 1000}
        self._http.post(f"{self.base_url}/_emu/latency", json=body).raise_for_status()

    def requests(self) -> int:
        stats = self._http.get(f"{self.base_url}/_emu/stats").json()
        return int(stats["requests"])

    def studies(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The current versions of ``ids`` (1,000 a request; call before ``reset_stats``)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), 1000):
            params = {"filter.ids": ",".join(ids[start : start + 1000]), "pageSize": "1000"}
            response = self._http.get(f"{self.api_url}/studies", params=params)
            found.extend(response.raise_for_status().json()["studies"])
        return found

    def publish(self, study: dict[str, Any]) -> None:
        """A new version, dated the day after the current one (so a probe sees it move)."""
        self._http.post(f"{self.base_url}/_emu/publish", json={"study": study}).raise_for_status()

    def kinds(self) -> dict[str, int]:
        """API requests by kind since ``reset_stats`` (version, listing, search, ids, study)."""
        return dict(self._http.get(f"{self.base_url}/_emu/kinds").raise_for_status().json())

    def posted(self, ids: Sequence[str]) -> dict[str, str]:
        """The current last-update date of ``ids`` (call after reading the stats)."""
        found: dict[str, str] = {}
        for start in range(0, len(ids), 1000):
            params = {
                "filter.ids": ",".join(ids[start : start + 1000]),
                "fields": "NCTId,LastUpdatePostDate",
                "pageSize": "1000",
            }
            page = self._http.get(f"{self.api_url}/studies", params=params).raise_for_status()
            for study in page.json()["studies"]:
                ps = study["protocolSection"]
                date = ps["statusModule"]["lastUpdatePostDateStruct"]["date"]
                found[ps["identificationModule"]["nctId"]] = date
        return found

    def peak_rss_mb(self) -> float:
        """The emulator's own peak RSS so far (Linux /proc), to show it stays lean."""
        for line in Path(f"/proc/{self._proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self._http.close()
        self._proc.send_signal(signal.SIGTERM)
        self._proc.wait(timeout=30)


def publish_changes(emulator: Emulator, ids: Sequence[str], share: float, seed: int) -> int:
    """Give ``share`` of ``ids`` (at least one) a new version; returns how many."""
    rnd = random.Random(seed)
    chosen = sorted(rnd.sample(list(ids), max(1, math.ceil(len(ids) * share))))
    for study in emulator.studies(chosen):
        emulator.publish(generate.mutate(study, rnd))
    return len(chosen)


# ---- the tools ----------------------------------------------------------------------------------


class Tool(Protocol):
    name: str

    def cycle(self, label: str) -> Row: ...


class Trialwatch:
    """A trialwatch install of its own: config, SQLite store, the watch list."""

    name = "trialwatch"

    def __init__(
        self, workdir: Path, emulator: Emulator, ids: Sequence[str], profile: bool
    ) -> None:
        self.workdir = workdir
        self.emulator = emulator
        self.ids = list(ids)
        self.profile = profile
        workdir.mkdir(parents=True)
        self.config = workdir / "trialwatch.toml"
        self.config.write_text(_trialwatch_config(workdir, emulator.api_url))
        # TRIALWATCH_* variables would override the config file (say, a real database URL)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALWATCH_")}
        self.last_report: dict[str, Any] = {}
        self._cli("init")
        for start in range(0, len(self.ids), WATCH_CHUNK):
            self._cli("watch", "add", *self.ids[start : start + WATCH_CHUNK])

    def _cli(self, *args: str) -> Measured:
        done = run_measured(self._command(*args), env=self.env, cwd=self.workdir)
        if done.returncode != 0:
            raise SystemExit(f"trialwatch {args[0]} failed: {done.stderr.strip()[-2000:]}")
        return done

    def add_search(self, name: str, criteria: dict[str, str]) -> Measured:
        """``trialwatch watch query add NAME --cond … --json``."""
        options = [item for key, value in criteria.items() for item in (f"--{key}", value)]
        return self._cli("watch", "query", "add", name, *options, "--json")

    def stored_posted(self, ids: Sequence[str]) -> dict[str, str]:
        """The last-update date the store has for each of ``ids`` (those it has)."""
        found: dict[str, str] = {}
        with closing(sqlite3.connect(self.workdir / "trialwatch.db")) as db:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                found.update(
                    db.execute(
                        "SELECT study_id, last_update_posted FROM records "
                        f"WHERE study_id IN ({marks})",
                        chunk,
                    ).fetchall()
                )
        return found

    def _command(self, *args: str) -> list[str | Path]:
        return [TRIALWATCH_BIN / "trialwatch", "--config", self.config, *args]

    def cycle(self, label: str) -> Row:
        self.emulator.reset_stats()
        command = self._command("sync", "--json")
        if self.profile:
            PROFILES.mkdir(exist_ok=True)
            name = f"trialwatch-{len(self.ids)}-{label.replace(' ', '-').replace('%', 'pc')}"
            report = PROFILES / f"{name}.txt"
            command = [VENV_BIN / "pyinstrument", "-r", "text", "-o", report, *command]
        done = run_measured(command, env=self.env, cwd=self.workdir)
        if done.returncode not in (0, 1):
            raise SystemExit(f"trialwatch sync failed: {done.stderr.strip()[-2000:]}")
        report = json.loads(done.stdout) if not self.profile else _profiled_report(done)
        self.last_report = report
        outcome = ", ".join(
            f"{report[k]} {k}" for k in ("new", "changed", "unchanged", "failed") if report[k]
        )
        mode = report.get("cycle", {}).get("mode")
        outcome += f" ({mode})" if mode else ""  # quiet, listing or probe: what the cycle did
        return Row(
            self.name,
            len(self.ids),
            label,
            int(report["requests"]),
            self.emulator.requests(),
            done.wall,
            done.rss_mb,
            outcome,
            self._last_cycle_seconds(),
            cpu=done.cpu,
        )

    def _last_cycle_seconds(self) -> float | None:
        """How long the cycle itself took, from the store's ``sync_runs`` row: the process
        wall time less start-up (imports, store migration check), i.e. what a cycle costs
        the daemon (``trialwatch run``), which starts once."""
        with closing(sqlite3.connect(self.workdir / "trialwatch.db")) as db:
            row = db.execute(
                "SELECT started_at, finished_at FROM sync_runs ORDER BY id DESC LIMIT 1"
            ).fetchone()
        if row is None or row[1] is None:
            return None
        started, finished = (datetime.fromisoformat(value) for value in row)
        return (finished - started).total_seconds()


def _profiled_report(done: Measured) -> dict[str, Any]:
    # pyinstrument prints its own lines after the program's JSON document
    document, _end = json.JSONDecoder().raw_decode(done.stdout.lstrip())
    return dict(document)


def _trialwatch_config(workdir: Path, api_url: str) -> str:
    return f"""\
[database]
url = "sqlite:///{workdir / "trialwatch.db"}"

[ctgov]
api_url = "{api_url}"
history_url = "{api_url.removesuffix("/v2")}/int"
requests_per_second = 100.0  # the emulator is local: the politeness limit is not measured
timeout_seconds = 300.0
max_attempts = 2
history = false              # whole-registry benchmark: no record-history backfill
incremental = true           # (the default) a quiet registry costs /version, a busy one its listing
# The weekly safety net (a full probe every 7th cycle by default) would fall on arbitrary rows
# of a benchmark whose cycles come minutes apart; the first load shows what a probe costs.
full_probe_every = 1000
"""


class Naive:
    """``bench/naive.py``: one request per study, deepdiff on what changed."""

    name = "naive + deepdiff"

    def __init__(self, workdir: Path, emulator: Emulator, ids: Sequence[str]) -> None:
        workdir.mkdir(parents=True)
        self.emulator = emulator
        self.watched = len(ids)
        self.ids_file = workdir / "ids.txt"
        self.ids_file.write_text("\n".join(ids) + "\n")
        self.state = workdir / "copies.sqlite"

    def cycle(self, label: str) -> Row:
        self.emulator.reset_stats()
        python = TOOLS_VENV / "bin" / "python"
        command = [python, BENCH / "naive.py", "--api", self.emulator.api_url]
        done = run_measured([*command, "--ids", self.ids_file, "--state", self.state])
        if done.returncode != 0:
            raise SystemExit(f"the naive poller failed: {done.stderr.strip()[-2000:]}")
        report = json.loads(done.stdout)
        outcome = ", ".join(
            f"{report[k]} {k}" for k in ("new", "changed", "unchanged", "failed") if report[k]
        )
        return Row(
            self.name,
            self.watched,
            label,
            int(report["requests"]),
            self.emulator.requests(),
            done.wall,
            done.rss_mb,
            outcome,
            cpu=done.cpu,
        )


class Urlwatch:
    """urlwatch with one job per study URL and its cache in a temp dir."""

    name = "urlwatch"
    SUMMARY = re.compile(r"^\d+\. (NEW|CHANGED|ERROR): ", re.MULTILINE)

    def __init__(self, workdir: Path, emulator: Emulator, ids: Sequence[str]) -> None:
        workdir.mkdir(parents=True)
        self.workdir = workdir
        self.emulator = emulator
        self.watched = len(ids)
        jobs = (f"name: {i}\nurl: {emulator.api_url}/studies/{i}\n" for i in ids)
        (workdir / "urls.yaml").write_text("---\n".join(jobs))

    def cycle(self, label: str) -> Row:
        self.emulator.reset_stats()
        files = {"urls": "urls.yaml", "config": "urlwatch.yaml", "hooks": "hooks.py"}
        command: list[str | Path] = [TOOLS_VENV / "bin" / "urlwatch"]
        for option, name in files.items():
            command += [f"--{option}", self.workdir / name]
        command += ["--cache", self.workdir / "cache.db"]
        done = run_measured(command, cwd=self.workdir)
        if done.returncode != 0:
            raise SystemExit(f"urlwatch failed: {done.stderr.strip()[-2000:]}")
        kinds = [m.group(1).lower() for m in self.SUMMARY.finditer(done.stdout)]
        counts = {k: kinds.count(k) for k in ("new", "changed", "error")}
        counts["unchanged"] = self.watched - len(kinds)
        outcome = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        requests = self.emulator.requests()
        return Row(
            self.name,
            self.watched,
            label,
            None,
            requests,
            done.wall,
            done.rss_mb,
            outcome,
            cpu=done.cpu,
        )


# ---- the incremental cycle and saved searches ---------------------------------------------------


@dataclass(frozen=True)
class Day:
    """One day of registry-wide changes: updates anywhere in the registry, and new records."""

    updated: list[str]  # existing records given a new version
    registered: list[str]  # new records (not in the dataset)
    matching: list[str]  # the new records made to match the first saved search


def publish_day(
    emulator: Emulator,
    registry_ids: Sequence[str],
    first_new: int,
    count: int,
    seed: int,
    templates: Sequence[generate.Template],
) -> Day:
    """``count`` changes posted today across the whole registry (watched or not): new
    versions of existing records, and ``NEW_REGISTRATIONS_SHARE`` of them new records, every
    other one matching the first saved search (what its refresh should bring in)."""
    rnd = random.Random(seed)
    registered_count = max(2, round(count * NEW_REGISTRATIONS_SHARE))
    updated = sorted(rnd.sample(list(registry_ids), count - registered_count))
    for study in emulator.studies(updated):
        emulator.publish(generate.mutate(study, rnd))
    registered, matching = [], []
    criteria = SEARCHES[0][1]
    for index in range(first_new, first_new + registered_count):
        study = generate.make_study(index, templates, seed)
        ps = study["protocolSection"]
        if len(registered) % 2 == 0:  # a new trial the saved search should bring in
            ps["conditionsModule"]["conditions"] = [criteria["cond"]]
            ps["conditionsModule"]["keywords"] = []
            module = ps.setdefault("armsInterventionsModule", {})
            module["interventions"] = [{"type": "DRUG", "name": criteria["intr"]}]
            matching.append(generate.nct_id(index))
        emulator.publish(study)
        registered.append(generate.nct_id(index))
    return Day(updated, registered, matching)


def incremental_rows(
    tool: Trialwatch,
    emulator: Emulator,
    watched: Sequence[str],
    registry_ids: Sequence[str],
    seed: int,
    templates: Sequence[generate.Template],
) -> list[Row]:
    """After the three cycles: a day of registry-wide changes (the incremental cycle), a
    quiet day, then saved searches: added, their first refresh, a quiet day, a busy day."""
    day_changes = max(20, round(len(watched) * DAY_CHANGES_SHARE))
    watched_set = set(watched)
    first_new = len(registry_ids)
    rows: list[Row] = []

    def day(label: str, attempt: int) -> Row:
        nonlocal first_new
        published = publish_day(
            emulator, registry_ids, first_new, day_changes, seed * 1000 + attempt, templates
        )
        first_new += len(published.registered)
        now_watched = set(watched_set) | set(tool.ids)
        moved = [i for i in published.updated if i in now_watched]
        print(
            f"  published {day_changes:,} registry-wide changes ({len(moved):,} of watched "
            f"records, {len(published.registered)} new records)",
            flush=True,
        )
        row = tool.cycle(label)
        kinds = emulator.kinds()
        served = emulator.posted(moved)
        stored = tool.stored_posted(moved)
        found = sum(1 for i in moved if stored.get(i) == served.get(i))
        note = f"; {found:,} of {len(moved):,} watched changes found"
        matched = _matched(tool.last_report)
        if matched:
            note += f", {matched} new search matches of {len(published.matching)} published"
        return replace(row, outcome=row.outcome + note + _kinds(kinds), found=(found, len(moved)))

    def quiet(label: str) -> Row:
        row = tool.cycle(label)
        return replace(row, outcome=row.outcome + _kinds(emulator.kinds()))

    for label, make in (
        (f"registry day: {day_changes:,} changes", lambda: day("", 0)),
        ("quiet day", lambda: quiet("")),
    ):
        rows.append(replace(make(), cycle=label))
        print(f"  {_line(rows[-1])}", flush=True)
    emulator.reset_stats()
    started = time.perf_counter()
    added = [tool.add_search(name, criteria) for name, criteria in SEARCHES]
    wall = time.perf_counter() - started
    matches = [json.loads(done.stdout).get("matches", "?") for done in added]
    rows.append(
        Row(
            tool.name,
            len(tool.ids),
            f"{len(SEARCHES)} saved searches added",
            None,
            emulator.requests(),
            wall,
            max(done.rss_mb for done in added),
            "matching "
            + ", ".join(f"{n}" for n in matches)
            + " records (`watch query add`)"
            + _kinds(emulator.kinds()),
            cpu=sum(done.cpu for done in added),
        )
    )
    print(f"  {_line(rows[-1])}", flush=True)
    before = len(tool.ids)
    tool.ids = _watched_now(tool)
    first = quiet("")
    brought = _watched_now(tool)
    tool.ids = brought
    first = replace(
        first,
        cycle="searches: first refresh",
        outcome=first.outcome + f"; {len(brought) - before:,} records newly watched",
    )
    rows.append(first)
    print(f"  {_line(rows[-1])}", flush=True)
    rows.append(replace(quiet(""), cycle="searches: quiet day"))
    print(f"  {_line(rows[-1])}", flush=True)
    rows.append(replace(day("", 1), cycle=f"searches: day of {day_changes:,} changes"))
    print(f"  {_line(rows[-1])}", flush=True)
    tool.ids = _watched_now(tool)
    return rows


def _watched_now(tool: Trialwatch) -> list[str]:
    with closing(sqlite3.connect(tool.workdir / "trialwatch.db")) as db:
        return [row[0] for row in db.execute("SELECT study_id FROM watches ORDER BY study_id")]


def _matched(report: dict[str, Any]) -> int:
    return sum(1 for change in report.get("changes", []) if change["kind"] == "query_matched")


def _kinds(kinds: dict[str, int]) -> str:
    order = ("version", "listing", "search", "ids", "study")
    shown = ", ".join(f"{kinds[k]} {k}" for k in order if kinds.get(k))
    return f" [{shown}]" if shown else ""


# ---- diff engine speed --------------------------------------------------------------------------


def diff_speed(data_dir: Path, workdir: Path, have_tools: bool) -> dict[str, Any]:
    """Pairs/s on one core: bench/diff_speed.py's workloads, and trialwatch's ``diff`` and
    ``deepdiff`` on generated records paired with their next versions."""
    from service.diff import diff
    from service.registry.ctgov_normalise import normalise

    figures: dict[str, Any] = {"synthetic": _synthetic_diff_speed()}
    rnd = random.Random(7)
    raw_pairs = []
    with (data_dir / "studies.jsonl").open("rb") as studies:
        for line, _ in zip(studies, range(DIFF_PAIRS), strict=False):
            old = json.loads(line)
            raw_pairs.append((old, generate.mutate(old, rnd)))
    pairs = [(normalise(old), normalise(new)) for old, new in raw_pairs]
    start = time.perf_counter()
    changes = sum(len(diff(old, new)) for old, new in pairs)
    seconds = time.perf_counter() - start
    figures["trialwatch"] = {
        "pairs": len(pairs),
        "pairs_per_second": len(pairs) / seconds,
        "changes_per_pair": changes / len(pairs),
    }
    if have_tools:
        pairs_file = workdir / "pairs.jsonl"
        with pairs_file.open("w") as out:
            for old, new in raw_pairs[:DEEPDIFF_PAIRS]:
                out.write(json.dumps([old, new]) + "\n")
        python = TOOLS_VENV / "bin" / "python"
        done = run_measured([python, BENCH / "naive.py", "--diff-speed", pairs_file])
        figures["deepdiff"] = json.loads(done.stdout)
    return figures


def _synthetic_diff_speed() -> dict[str, float]:
    done = run_measured([sys.executable, BENCH / "diff_speed.py", "3000"], cwd=ROOT)
    rates = {}
    for line in done.stdout.splitlines():
        name, _, rest = line.partition(":")
        rates[name.strip()] = float(rest.split("pairs/s")[0].replace(",", ""))
    return rates


# ---- orchestration ------------------------------------------------------------------------------


CYCLES = ("first load", "steady", "1% changed")


def run_group(
    tools: Sequence[Tool],
    emulator: Emulator,
    ids: Sequence[str],
    seed: int,
    latency_ms: float,
    repeat: int,
) -> list[Row]:
    """The three cycles for every tool in ``tools``, on the same registry state each time,
    with the emulator answering after ``latency_ms``. The steady and 1% cycles run ``repeat``
    times (each 1% cycle after a fresh 1% of new versions) and keep the median by wall time:
    on a 2-core machine one run can be off by half a second."""
    emulator.set_latency(latency_ms)
    rows: list[Row] = []
    for label in CYCLES:
        runs: dict[str, list[Row]] = {tool.name: [] for tool in tools}
        for attempt in range(1 if label == "first load" else repeat):
            if label == "1% changed":
                changed = publish_changes(emulator, ids, CHANGED_SHARE, seed * 100 + attempt)
                print(f"  published new versions of {changed} of {len(ids)} studies", flush=True)
            for tool in tools:
                row = replace(tool.cycle(label), latency_ms=latency_ms)
                print(f"  {_line(row)}", flush=True)
                runs[tool.name].append(row)
        rows += [_median(found) for found in runs.values()]
    return rows


def _median(rows: list[Row]) -> Row:
    """The run with the median wall time (the lower middle one of an even count)."""
    ranked = sorted(rows, key=lambda row: row.wall)
    spread = (ranked[0].wall, ranked[-1].wall)
    return replace(ranked[(len(ranked) - 1) // 2], runs=len(rows), wall_range=spread)


def _line(row: Row) -> str:
    return (
        f"{row.tool:>17} {row.watched:>7,} {row.latency_ms:>4g} ms {row.cycle:<11} "
        f"requests {_n(row.requests):>6} "
        f"(emulator {row.emulator_requests:>6,}) {row.wall:8.2f} s (cycle {_s(row.cycle_seconds)}) "
        f"{row.rss_mb:7.1f} MB "
        f"{row.records_per_second:>9,.0f} rec/s  {row.outcome}"
    )


def _wall(row: Row) -> str:
    """The wall time, with the fastest and slowest run when it is a median."""
    if row.wall_range is None or row.runs == 1:
        return f"{row.wall:.2f}"
    return f"{row.wall:.2f} ({row.wall_range[0]:.2f}–{row.wall_range[1]:.2f})"


def _n(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _cycle_name(row: Row) -> str:
    return row.cycle if row.runs == 1 else f"{row.cycle} (median of {row.runs})"


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.registry:
        return registry_main(args)
    count = FULL_N if args.full else args.n
    peers = min(args.peers, count)
    templates = generate.load_templates(args.templates or generate.DEFAULT_TEMPLATES)
    registry = registry_size(count)
    data_dir = CACHE / f"dataset-{registry}-seed{args.seed}"
    print(f"dataset: {registry:,} studies ({count:,} watched) in {data_dir}", flush=True)
    started = time.perf_counter()
    generate.ensure_dataset(registry, data_dir, templates, args.seed)
    print(f"  ready in {time.perf_counter() - started:.1f} s", flush=True)
    registry_ids = [generate.nct_id(i) for i in range(registry)]
    ids = registry_ids[:count]
    have_tools = (TOOLS_VENV / "bin" / "urlwatch").exists() and not args.no_peers
    if not have_tools and not args.no_peers:
        print(f"  no {TOOLS_VENV}: peers skipped (`make bench` installs urlwatch, deepdiff)")
    args.pinning = pin_cores(not args.no_pin)
    print(f"  cores: {args.pinning}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="trialwatch-bench-"))
    emulator = Emulator(data_dir, workdir, args.latency_ms)
    try:
        rows, scale = _run_all(args, emulator, workdir, ids, peers, have_tools)
        print(f"incremental cycle and saved searches on {len(ids):,} studies", flush=True)
        emulator.set_latency(args.latency_ms)
        rows += incremental_rows(scale, emulator, ids, registry_ids, args.seed + 3, templates)
        print("diff engine speed (one core) ...", flush=True)
        speed = diff_speed(data_dir, workdir, have_tools)
        speed["emulator_rss_mb"] = emulator.peak_rss_mb()
    finally:
        emulator.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report = render(args, rows, speed, count, peers, have_tools)
    print("\n" + report)
    if args.profile:
        print(f"profiles in {PROFILES}; results.md not written (profiling distorts the figures)")
    else:
        write_section("full" if args.full else "quick", report)
        print(f"written to {RESULTS}")
    return 0


def _run_all(
    args: argparse.Namespace,
    emulator: Emulator,
    workdir: Path,
    ids: list[str],
    peers: int,
    have_tools: bool,
) -> tuple[list[Row], Trialwatch]:
    peer_ids = ids[:peers]
    print(f"peers on {peers:,} studies, {args.latency_ms:g} ms a request", flush=True)
    scale = Trialwatch(workdir / "tw-peers", emulator, peer_ids, args.profile)
    tools: list[Tool] = [scale]
    if have_tools:
        tools.append(Naive(workdir / "naive", emulator, peer_ids))
        tools.append(Urlwatch(workdir / "urlwatch", emulator, peer_ids))
    rows = run_group(tools, emulator, peer_ids, args.seed, args.latency_ms, args.repeat)
    if have_tools and args.peer_latency_ms > 0:
        # The naive poller sits this one out: one request at a time, it would take
        # peers x latency a cycle (200 s for 2,000 at 100 ms) and show nothing new.
        print(f"peers on {peers:,} studies, {args.peer_latency_ms:g} ms a request", flush=True)
        tools = [
            Trialwatch(workdir / "tw-peers-latency", emulator, peer_ids, args.profile),
            Urlwatch(workdir / "urlwatch-latency", emulator, peer_ids),
        ]
        rows += run_group(
            tools, emulator, peer_ids, args.seed + 2, args.peer_latency_ms, args.repeat
        )
    if len(ids) > peers:
        print(f"trialwatch on {len(ids):,} studies", flush=True)
        scale = Trialwatch(workdir / "tw-scale", emulator, ids, args.profile)
        rows += run_group([scale], emulator, ids, args.seed + 1, args.latency_ms, args.repeat)
    return rows, scale  # the incremental cycle and saved searches go on with ``scale``


def registry_size(watched: int) -> int:
    """The registry the watch list is part of: ``REGISTRY_EXTRA`` more records."""
    return watched + round(watched * REGISTRY_EXTRA)


# ---- --registry: the whole registry on one machine (issue 26) ----------------------------------
#
# One function a row. The baseline (this part) builds the 600,000-record bulk zip once
# (``generate.ensure_bulk_zip``, kept in ``--registry-data``) and times ``trialwatch import-bulk
# --all`` into a fresh store, once on SQLite and once on PostgreSQL; the SQLite store is kept
# in ``--registry-data`` (``baseline.db``) for the registry-day, quiet-day and page-time rows.

REGISTRY_N = 600_000
REGISTRY_DATA = CACHE / "registry"
REFERENCE_CTGOV = ROOT.parent / "shared" / "reference" / "ctgov"
REGISTRY_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/bench600k"
BASELINE_TARGETS = (15 * 60.0, 1024.0, 10.0)  # wall s, peak RSS MB (all processes), SQLite GB
RSS_SAMPLE_SECONDS = 0.5


def registry_templates(extra: Sequence[Path] | None) -> list[generate.Template]:
    """The real shapes the registry is made of: tests/data/records, the reference records of
    ../shared where the checkout has them, and ``--templates``."""
    dirs = [*generate.DEFAULT_TEMPLATES, *([REFERENCE_CTGOV] if REFERENCE_CTGOV.is_dir() else [])]
    return generate.load_templates([*dirs, *(extra or [])])


@dataclass(frozen=True)
class BaselineRow:
    """``trialwatch import-bulk --all`` of the whole registry into an empty store."""

    database: str
    studies: int
    stored: int
    wall: float
    cpu: float  # user + system seconds of the command and its worker processes
    rss_mb: float  # the peak of the command's processes together, sampled
    main_rss_mb: float  # the main (writer) process alone, from wait4
    store_bytes: int
    zip_bytes: int
    load: float = 0.0  # the mean 1-minute load average while it ran (other jobs included)


def registry_zip(args: argparse.Namespace) -> Path:
    """The bulk download of ``--registry-n`` studies, generated once into ``--registry-data``."""
    templates = registry_templates(args.templates)
    started = time.perf_counter()
    print(f"bulk zip: {args.registry_n:,} studies in {args.registry_data}", flush=True)
    generate.ensure_bulk_zip(args.registry_n, args.registry_data, templates, args.seed)
    print(f"  ready in {time.perf_counter() - started:.1f} s", flush=True)
    return args.registry_data / "registry.zip"


def baseline_row(database: str, url: str, zip_path: Path, workdir: Path) -> BaselineRow:
    """Time ``trialwatch import-bulk ZIP --all --json`` into the empty store at ``url``."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "trialwatch.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALWATCH_")}
    command = [TRIALWATCH_BIN / "trialwatch", "--config", config, "import-bulk", zip_path]
    print(f"baseline on {database}: import-bulk --all ...", flush=True)
    done, tree_rss, load = _measured_tree([*command, "--all", "--json"], env, workdir)
    if done.returncode != 0:
        raise SystemExit(f"import-bulk failed: {done.stderr.strip()[-2000:]}")
    report = json.loads(done.stdout)
    row = BaselineRow(
        database,
        int(report["read"]),
        int(report["stored"]),
        done.wall,
        done.cpu,
        max(tree_rss, done.rss_mb),
        done.rss_mb,
        store_bytes(url),
        zip_path.stat().st_size,
        load,
    )
    print(
        f"  {row.stored:,} stored in {row.wall:.0f} s, CPU {row.cpu:.0f} s, {row.rss_mb:.0f} MB, "
        f"{row.store_bytes / 1e9:.2f} GB",
        flush=True,
    )
    return row


def _measured_tree(
    command: Sequence[str | Path], env: dict[str, str], cwd: Path
) -> tuple[Measured, float, float]:
    """``run_measured`` (its CPU time counts the worker processes it waited for), the peak
    RSS of the command and its worker processes together, sampled from /proc (wait4's peak is
    the largest single process's, not their sum), and the machine's mean load meanwhile."""
    peak = [0.0]
    loads: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(RSS_SAMPLE_SECONDS):
            peak[0] = max(peak[0], _tree_rss_mb(os.getpid()) - _own_rss_mb())
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        done = run_measured(command, env=env, cwd=cwd)
    finally:
        stop.set()
        sampler.join()
    return done, peak[0], sum(loads) / len(loads) if loads else 0.0


def _tree_rss_mb(root: int) -> float:
    """The resident memory of ``root`` and every process under it, in MB."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue  # it ended meanwhile
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return sum(_rss_mb(pid) for pid in tree)


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _own_rss_mb() -> float:
    return _rss_mb(os.getpid())


def store_bytes(url: str) -> int:
    """The store's size on disk: SQLite's file (and its WAL), PostgreSQL's database."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        parts = [path, path.with_name(path.name + "-wal")]
        return sum(p.stat().st_size for p in parts if p.exists())
    import psycopg  # the bench's PostgreSQL rows need the postgres extra

    with psycopg.connect(_libpq(url)) as connection:
        row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def fresh_postgres(url: str) -> None:
    """Drop and create the database of ``url`` (an import into an empty store is measured)."""
    import psycopg

    base, name = _libpq(url).rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def baseline_rows(
    args: argparse.Namespace, zip_path: Path, done: Callable[[list[BaselineRow]], None]
) -> list[BaselineRow]:
    """The baseline on SQLite (the store kept as ``baseline.db``) and on PostgreSQL; ``done``
    is told the rows so far after each (an hour's run keeps what it measured if stopped)."""
    rows: list[BaselineRow] = []
    store = args.registry_data / "baseline.db"
    for leftover in (store, store.with_name("baseline.db-wal"), store.with_name("baseline.db-shm")):
        leftover.unlink(missing_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="trialwatch-registry-"))
    try:
        rows.append(baseline_row("SQLite", f"sqlite:///{store}", zip_path, workdir / "sqlite"))
        (args.registry_data / "baseline.json").write_text(
            json.dumps({"store": str(store), "zip": str(zip_path), "studies": rows[0].stored})
        )
        done(rows)
        if args.registry_postgres:
            fresh_postgres(args.registry_postgres)
            rows.append(
                baseline_row("PostgreSQL", args.registry_postgres, zip_path, workdir / "pg")
            )
            done(rows)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


BASELINE_ROWS = "baseline-rows.json"  # the baseline's figures, for --registry-reuse


def _baseline_done(args: argparse.Namespace, rows: Sequence[BaselineRow]) -> None:
    (args.registry_data / BASELINE_ROWS).write_text(
        json.dumps([asdict(row) for row in rows], indent=2) + "\n"
    )
    write_registry(args, rows, [])


def load_baseline(data_dir: Path) -> list[BaselineRow]:
    """The baseline rows a previous run measured (``--registry-reuse``)."""
    path = data_dir / BASELINE_ROWS
    if not path.exists() or not (data_dir / "baseline.db").exists():
        raise SystemExit(f"--registry-reuse: no baseline in {data_dir} (run --registry first)")
    return [BaselineRow(**row) for row in json.loads(path.read_text())]


def baseline_lines(rows: Sequence[BaselineRow]) -> list[str]:
    """The baseline's table and its targets, as markdown lines."""
    wall_target, rss_target, sqlite_gb = BASELINE_TARGETS
    lines = [
        "| store | studies | stored | wall s | CPU s | CPU s / cores | machine load "
        "| peak RSS MB (all processes) | writer RSS MB | store on disk GB | studies/s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    cores = os.cpu_count() or 1
    for row in rows:
        lines.append(
            f"| {row.database} | {row.studies:,} | {row.stored:,} | {row.wall:,.0f} "
            f"| {row.cpu:,.0f} | {row.cpu / cores:,.0f} | {row.load:.1f} | {row.rss_mb:,.0f} "
            f"| {row.main_rss_mb:,.0f} | {row.store_bytes / 1e9:.2f} "
            f"| {row.studies / row.wall:,.0f} |"
        )
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for row in rows:
        lines.append(
            f"| baseline ({row.database}): ≤ {wall_target / 60:.0f} min wall "
            f"| {row.wall / 60:.1f} min | {_yes(row.wall <= wall_target)} |"
        )
        lines.append(
            f"| baseline ({row.database}): peak RSS ≤ 1 GB | {row.rss_mb:,.0f} MB "
            f"| {_yes(row.rss_mb <= rss_target)} |"
        )
        if row.database == "SQLite":
            lines.append(
                f"| baseline (SQLite): store ≤ {sqlite_gb:.0f} GB | {row.store_bytes / 1e9:.2f} GB "
                f"| {_yes(row.store_bytes <= sqlite_gb * 1e9)} |"
            )
    return lines


def registry_main(args: argparse.Namespace) -> int:
    """``--registry``: the whole-registry rows, written to their section of results.md."""
    args.registry_data.mkdir(parents=True, exist_ok=True)
    zip_path = registry_zip(args)
    # the baseline's rows are written as soon as they are measured (an hour's run keeps them
    # if what follows fails or is stopped), then again with the rows that follow
    if args.registry_reuse:
        rows = load_baseline(args.registry_data)
        print(f"baseline: reused ({BASELINE_ROWS} and baseline.db)", flush=True)
    else:
        rows = baseline_rows(args, zip_path, lambda rows: _baseline_done(args, rows))
    following = [
        "### A registry day, a quiet day (every study watched; `sync --json` processes)",
        "",
        *registry_day_lines(registry_day_rows(args)),
        "",
        f"### Pages and API at {args.registry_n:,} records (`bench/web_pages.py`)",
        "",
        *page_time_lines(args),
        "### One-shot commands on 2,000 watched (`bench/startup.py`)",
        "",
        *startup_lines(),
        "",
    ]
    write_registry(args, rows, following)
    return 0


def write_registry(
    args: argparse.Namespace, rows: Sequence[BaselineRow], following: Sequence[str]
) -> None:
    """Print the whole-registry section (the baseline, then ``following``: the markdown of
    the rows measured on it) and write it to results.md."""
    lines = [
        f"## Whole registry: {args.registry_n:,} studies ({_now()})",
        "",
        f"Machine: {_machine()}. Not pinned: the import uses every "
        "core (worker processes decode, normalise and compress; the main process writes).",
        f"Command: `.venv/bin/python bench/run.py {_registry_shown(args)}`. The bulk zip "
        f"({rows[0].zip_bytes / 1e9:.1f} GB, {args.registry_n:,} `NCT….json` members) is "
        "generated from the real record shapes (`bench/generate.py --zip`); each baseline is "
        "`trialwatch import-bulk registry.zip --all --json` into an empty store. *CPU s* counts "
        "the worker processes; *CPU s / cores* is the wall time the import would take with "
        "every core its own; *machine load*: the mean 1-minute load average while it ran "
        "(above the core count, other jobs shared the machine); *peak RSS* is the command's "
        f"processes together, sampled every {RSS_SAMPLE_SECONDS:g} s.",
        "",
        "### Baseline: `import-bulk` of the whole registry",
        "",
        *baseline_lines(rows),
        "",
        *following,
    ]
    report = "\n".join(lines)
    print("\n" + report)
    write_section("registry", report)
    print(f"written to {RESULTS}")


# ---- --registry: a day, a quiet day, page times and start-up at that scale (helper "scale") -----
#
# On a copy of the SQLite baseline (``baseline.db``: every study of the registry watched), with
# the bench emulator serving the same registry (``--registry-data``/dataset, the same studies
# as the zip): the first sync after the baseline (no cycle before it: the full probe, ~1,400
# requests of 430 ids), a registry day (one study in ``REGISTRY_DAY_SHARE`` changed, posted
# across the registry, found through the changed-since listing) and a quiet day (1 request).
# Then the web app's pages on a store of 600,000 records (``bench/web_pages.py``, SQLite and
# PostgreSQL) and the one-shot commands on 2,000 watched (``bench/startup.py``).

REGISTRY_DAY_SHARE = 120  # a registry day changes one study in this many: 5,000 of 600,000
REGISTRY_DAY_TARGETS = (180.0, 5.0)  # seconds: a registry day, a quiet day (issue 26)
PAGE_TARGET_MS = 200.0
WEB_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/tw_bench_web600k"


class BaselineTrialwatch(Trialwatch):
    """``Trialwatch`` on a store that already watches the whole registry (the baseline's
    copy): no ``init`` or ``watch add``; its cycles as ``Trialwatch.cycle`` times them."""

    def __init__(self, workdir: Path, emulator: Emulator, ids: Sequence[str]) -> None:
        self.workdir = workdir
        self.emulator = emulator
        self.ids = list(ids)
        self.profile = False
        self.config = workdir / "trialwatch.toml"
        self.config.write_text(_trialwatch_config(workdir, emulator.api_url))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALWATCH_")}
        self.last_report = {}


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite store (its WAL included), page by page."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst, pages=65_536)


def registry_day_rows(args: argparse.Namespace) -> list[Row]:
    """The first sync after the baseline (the full probe), a registry day, a quiet day."""
    baseline = args.registry_data / "baseline.db"
    if not baseline.exists():
        print(f"no {baseline}: the registry day is skipped", flush=True)
        return []
    templates = registry_templates(args.templates)
    data_dir = args.registry_data / "dataset"
    print(f"registry dataset for the emulator: {data_dir}", flush=True)
    generate.ensure_dataset(args.registry_n, data_dir, templates, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="trialwatch-registry-day-"))
    started = time.perf_counter()
    copy_store(baseline, workdir / "trialwatch.db")
    print(f"  baseline copied in {time.perf_counter() - started:.0f} s", flush=True)
    emulator = Emulator(data_dir, workdir, 0.0)
    registry_ids = [generate.nct_id(i) for i in range(args.registry_n)]
    tool = BaselineTrialwatch(workdir, emulator, registry_ids)
    try:
        rows = [_registry_cycle(tool, emulator, "first sync after the baseline (full probe)")]
        changes = max(20, args.registry_n // REGISTRY_DAY_SHARE)
        day = publish_day(emulator, registry_ids, args.registry_n, changes, args.seed, templates)
        rows.append(_registry_day(tool, emulator, day))
        rows.append(_registry_cycle(tool, emulator, "quiet day"))
    finally:
        emulator.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def _registry_cycle(tool: Trialwatch, emulator: Emulator, label: str) -> Row:
    print(f"  {label} ...", flush=True)
    row = tool.cycle(label)
    row = replace(row, outcome=row.outcome + _kinds(emulator.kinds()))
    print(f"  {_line(row)}", flush=True)
    return row


def _registry_day(tool: Trialwatch, emulator: Emulator, day: Day) -> Row:
    """The day's cycle, and how many of the watched records that moved the store now has at
    their new date (all of them: the whole registry is watched, new records aside)."""
    label = f"registry day: {len(day.updated) + len(day.registered):,} changes"
    row = _registry_cycle(tool, emulator, label)
    served = emulator.posted(day.updated)
    stored = tool.stored_posted(day.updated)
    found = sum(1 for i in day.updated if stored.get(i) == served.get(i))
    note = f"; {found:,} of {len(day.updated):,} watched changes found"
    return replace(row, outcome=row.outcome + note, found=(found, len(day.updated)))


def registry_day_lines(rows: Sequence[Row]) -> list[str]:
    """The cycles' table and their targets, as markdown lines."""
    if not rows:
        return ["Not run: no baseline store (`baseline.db`)."]
    lines = [
        "| cycle | watched | requests (emulator) | wall s | of which the cycle s | CPU s "
        "| peak RSS MB | outcome |",
        "|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    lines += [
        f"| {r.cycle} | {r.watched:,} | {r.emulator_requests:,} | {r.wall:.1f} "
        f"| {_s(r.cycle_seconds)} | {r.cpu:.1f} | {r.rss_mb:.0f} | {r.outcome} |"
        for r in rows
    ]
    day_target, quiet_target = REGISTRY_DAY_TARGETS
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for row in rows:
        if row.found is not None:
            found, published = row.found
            lines.append(
                f"| registry day ≤ {day_target / 60:.0f} min, every watched change found "
                f"| {row.wall:.1f} s, {found:,} of {published:,} "
                f"| {_yes(row.wall <= day_target and found == published)} |"
            )
        elif row.cycle == "quiet day":
            lines.append(
                f"| quiet day ≤ {quiet_target:g} s, 1 request | {row.wall:.1f} s, "
                f"{row.emulator_requests} | "
                f"{_yes(row.wall <= quiet_target and row.emulator_requests == 1)} |"
            )
    return lines


def page_time_lines(args: argparse.Namespace) -> list[str]:
    """``bench/web_pages.py`` at ``--registry-n`` records, on SQLite and on PostgreSQL: its
    table as it prints it, and whether every page's p95 is within the target."""
    lines = []
    stores = [("SQLite", ["--db", str(args.registry_data / "web.db")])]
    if args.registry_postgres:
        stores.append(("PostgreSQL", ["--postgres", WEB_POSTGRES]))
    for name, where in stores:
        print(f"page times on {name} ...", flush=True)
        command = [sys.executable, BENCH / "web_pages.py", "--n", str(args.registry_n), *where]
        done = run_measured(command, cwd=ROOT)
        if done.returncode != 0:
            lines += [f"{name}: web_pages.py failed: {done.stderr.strip()[-500:]}", ""]
            continue
        table = [line for line in done.stdout.splitlines() if not line.startswith("built")]
        worst = max(_p95s(table), default=0.0)
        lines += [
            f"{name}:",
            "",
            "```",
            *table,
            "```",
            "",
            f"Worst p95: {worst:.0f} ms (target ≤ {PAGE_TARGET_MS:.0f} ms: "
            f"{_yes(worst <= PAGE_TARGET_MS)}).",
            "",
        ]
    return lines


def _p95s(table: Sequence[str]) -> list[float]:
    found = []
    for line in table:
        match = re.search(r"\s(\d{3})\s+([\d.]+)\s+([\d.]+)\s+[\d,]+\s", line)
        if match and match.group(1) == "200":
            found.append(float(match.group(3)))
    return found


def startup_lines() -> list[str]:
    """``bench/startup.py`` (the one-shot commands on 2,000 watched), as it prints it."""
    python = TRIALWATCH_BIN / "python"
    print("one-shot start-up ...", flush=True)
    done = run_measured([python, BENCH / "startup.py", "--runs", "11"], cwd=ROOT)
    if done.returncode != 0:
        return [f"startup.py failed: {done.stderr.strip()[-500:]}"]
    return ["```", *done.stdout.splitlines(), "```"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _registry_shown(args: argparse.Namespace) -> str:
    shown = ["--registry"]
    if args.registry_n != REGISTRY_N:
        shown.append(f"--registry-n {args.registry_n}")
    if args.registry_reuse:
        shown.append("--registry-reuse")
    if args.registry_postgres != REGISTRY_POSTGRES:
        shown.append(f"--registry-postgres '{args.registry_postgres}'")
    return " ".join(shown)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark trialwatch against its peers.")
    parser.add_argument("--n", type=int, default=QUICK_N, help="studies watched (default 2000)")
    parser.add_argument("--full", action="store_true", help=f"{FULL_N:,} studies")
    parser.add_argument("--peers", type=int, default=PEERS_N, help="studies for the peers")
    parser.add_argument("--no-peers", action="store_true", help="trialwatch only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--repeat", type=int, default=REPEAT, help="runs of the steady and 1%% cycles (median)"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="emulator delay a request")
    parser.add_argument(
        "--peer-latency-ms",
        type=float,
        default=PEER_LATENCY_MS,
        help="trialwatch and urlwatch again with this delay a request (0: skip)",
    )
    parser.add_argument("--templates", type=Path, action="append", help="records to vary")
    parser.add_argument("--profile", action="store_true", help="pyinstrument each sync")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin the emulator and the tools to cores"
    )
    parser.add_argument(
        "--registry", action="store_true", help="the whole registry (bench/README.md)"
    )
    parser.add_argument("--registry-n", type=int, default=REGISTRY_N, help="its studies")
    parser.add_argument(
        "--registry-reuse",
        action="store_true",
        help="keep the baseline store and figures of the last --registry run",
    )
    parser.add_argument(
        "--registry-data", type=Path, default=REGISTRY_DATA, help="where its zip and store stay"
    )
    parser.add_argument(
        "--registry-postgres",
        default=REGISTRY_POSTGRES,
        help="the PostgreSQL database the baseline is also timed on (dropped first; '' skips)",
    )
    return parser.parse_args(argv)


# ---- the report ---------------------------------------------------------------------------------


def render(
    args: argparse.Namespace,
    rows: list[Row],
    speed: dict[str, Any],
    count: int,
    peers: int,
    have_tools: bool,
) -> str:
    """The markdown section: machine, settings, the table, the diff speeds, the targets."""
    lines = [
        f"## {'Full' if args.full else 'Quick'} run: {count:,} studies "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {_machine()}. Cores: {getattr(args, 'pinning', 'not pinned')}.",
        f"Command: `.venv/bin/python bench/run.py {' '.join(argv_shown(args))}`. "
        "trialwatch with `history = false`, `requests_per_second = 100`, SQLite; each cycle "
        "is a fresh `trialwatch sync --json` process: *wall s* includes Python start-up and "
        "the store's migration check, *of which the cycle* is the cycle "
        "alone (its `sync_runs` row), what the daemon pays. trialwatch runs from "
        f"{_install_shown()}. *latency ms*: the emulator's delay "
        "a request (the naive poller, one request at a time, skips the run with latency). "
        f"The registry holds {registry_size(count):,} records, the watch list its first "
        f"{count:,}; *wall s* of a median also gives the fastest and slowest run; *CPU s*: "
        "user + system time of the process.",
        "",
        "| tool | watched | latency ms | cycle | requests (tool) | requests (emulator) "
        "| wall s | of which the cycle s | CPU s | peak RSS MB | records/s | outcome |",
        "|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.tool} | {row.watched:,} | {row.latency_ms:g} | {_cycle_name(row)} "
            f"| {_n(row.requests)} "
            f"| {row.emulator_requests:,} | {_wall(row)} | {_s(row.cycle_seconds)} "
            f"| {row.cpu:.2f} | {row.rss_mb:.0f} "
            f"| {row.records_per_second:,.0f} | {row.outcome} |"
        )
    lines += [
        "",
        f"The emulator's peak RSS, serving {count:,} studies: {speed['emulator_rss_mb']:.0f} MB.",
    ]
    if args.no_peers:
        lines += ["", "Peers not run (`--no-peers`): trialwatch alone."]
    elif not have_tools:
        lines += ["", "Peers skipped: no `bench/.venv-tools` (run `make bench`)."]
    lines += ["", *_speed_lines(speed), "", *_target_lines(rows, speed, count, peers)]
    return "\n".join(lines) + "\n"


def argv_shown(args: argparse.Namespace) -> list[str]:
    shown = ["--full"] if args.full else [f"--n {args.n}"]
    if args.peers != PEERS_N:
        shown.append(f"--peers {args.peers}")
    if args.latency_ms:
        shown.append(f"--latency-ms {args.latency_ms:g}")
    if args.no_peers:
        shown.append("--no-peers")
    if args.repeat != REPEAT:
        shown.append(f"--repeat {args.repeat}")
    if args.peer_latency_ms != PEER_LATENCY_MS:
        shown.append(f"--peer-latency-ms {args.peer_latency_ms:g}")
    return shown


def _install_shown() -> str:
    if TRIALWATCH_BIN == VENV_BIN:
        return f"the development venv ({VENV_BIN.parent.name}: no {INSTALL_VENV.name}, see README)"
    return f"`bench/{INSTALL_VENV.name}`, a `pip install .` of this checkout"


def _machine() -> str:
    memory = "?"
    with Path("/proc/meminfo").open() as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024**2:.1f} GB RAM"
    cpu = platform.processor() or platform.machine()
    with Path("/proc/cpuinfo").open() as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, trialwatch at {_commit()}"
    )


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "service"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "an unknown commit"
    return f"{head}{' + uncommitted changes in service/' if dirty else ''}"


def _speed_lines(speed: dict[str, Any]) -> list[str]:
    synthetic = speed["synthetic"]
    ours = speed["trialwatch"]
    lines = [
        "Diff engine, one core (pairs/s): "
        + ", ".join(f"{name} {rate:,.0f}" for name, rate in synthetic.items())
        + " (`bench/diff_speed.py`, synthetic 40-site records); "
        f"{ours['pairs_per_second']:,.0f} on {ours['pairs']:,} generated records paired with "
        f"their next version ({ours['changes_per_pair']:.2f} changes a pair, normalising not "
        "timed)"
    ]
    if "deepdiff" in speed:
        theirs = speed["deepdiff"]
        lines[0] += (
            f"; deepdiff on the raw JSON of the first {theirs['pairs']} of those pairs: "
            f"{theirs['pairs_per_second']:,.1f}."
        )
    else:
        lines[0] += "."
    return lines


def _target_lines(rows: list[Row], speed: dict[str, Any], count: int, peers: int) -> list[str]:
    lines = ["| target | measured | met |", "|---|---|---|"]

    def find(tool: str, watched: int, cycle: str, latency: float = 0.0) -> Row | None:
        key = (tool, watched, cycle, latency)
        return next((r for r in rows if (r.tool, r.watched, r.cycle, r.latency_ms) == key), None)

    base = rows[0].latency_ms if rows else 0.0
    steady = find("trialwatch", count, "steady", base)
    changed = find("trialwatch", count, "1% changed", base)
    scale_note = "" if count >= FULL_N else f" (at W = {count:,}; the target is for 100,000)"
    if steady is not None:
        budget = math.ceil(count / 1000) + 1
        lines.append(
            f"| steady cycle ≤ ceil(W/1000)+1 = {budget} requests{scale_note} "
            f"| {steady.emulator_requests} | {_yes(steady.emulator_requests <= budget)} |"
        )
    if changed is not None:
        lines.append(
            f"| 1% changed: ≤ 60 s wall{scale_note} | {changed.wall:.1f} s "
            f"| {_yes(changed.wall <= 60)} |"
        )
        lines.append(
            f"| 1% changed: peak RSS ≤ 500 MB{scale_note} | {changed.rss_mb:.0f} MB "
            f"| {_yes(changed.rss_mb <= 500)} |"
        )
    first = find("trialwatch", count, "first load", base)
    if first is not None:
        lines.append(
            f"| first load: peak RSS ≤ 500 MB{scale_note} | {first.rss_mb:.0f} MB "
            f"| {_yes(first.rss_mb <= 500)} |"
        )
    lines += _incremental_targets(rows, scale_note)
    latencies = sorted({r.latency_ms for r in rows if r.tool == "urlwatch"})
    for latency in latencies:
        for cycle in ("steady", "1% changed"):
            ours = find("trialwatch", peers, cycle, latency)
            theirs = find("urlwatch", peers, cycle, latency)
            if ours is not None and theirs is not None:
                lines += _versus_urlwatch(ours, theirs)
    typical = speed["synthetic"].get("typical", 0.0)
    lines.append(
        f"| diff engine ≥ 2,000 pairs/s/core | {typical:,.0f} (typical), "
        f"{speed['trialwatch']['pairs_per_second']:,.0f} (generated pairs) "
        f"| {_yes(min(typical, speed['trialwatch']['pairs_per_second']) >= 2000)} |"
    )
    return lines


def _incremental_targets(rows: list[Row], scale_note: str) -> list[str]:
    """The incremental cycle finds every watched change, within 60 s and 500 MB; a quiet
    registry costs one request, with saved searches too."""
    lines = []
    for row in rows:
        if row.found is not None:
            found, published = row.found
            lines.append(
                f"| {row.cycle}: every watched change found{scale_note} | {found:,} of "
                f"{published:,} ({row.emulator_requests} requests, {row.wall:.1f} s wall, "
                f"{row.rss_mb:.0f} MB) | {_yes(found == published)} |"
            )
            lines.append(
                f"| {row.cycle}: ≤ 60 s wall and ≤ 500 MB{scale_note} | {row.wall:.1f} s, "
                f"{row.rss_mb:.0f} MB | {_yes(row.wall <= 60 and row.rss_mb <= 500)} |"
            )
        elif row.tool == "trialwatch" and row.cycle in ("quiet day", "searches: quiet day"):
            lines.append(
                f"| {row.cycle}: 1 request | {row.emulator_requests} "
                f"| {_yes(row.emulator_requests == 1)} |"
            )
    return lines


def _versus_urlwatch(ours: Row, theirs: Row) -> list[str]:
    """The two urlwatch targets for one cycle; wall time also against the cycle alone."""
    where = f"vs urlwatch on {ours.watched:,}, {ours.latency_ms:g} ms a request ({ours.cycle})"
    fewer = theirs.emulator_requests / max(1, ours.emulator_requests)
    faster = theirs.wall / ours.wall
    alone = (
        f"; {theirs.wall / ours.cycle_seconds:,.0f}× the cycle alone" if ours.cycle_seconds else ""
    )
    return [
        f"| {where}: ≥ 50× fewer requests | {fewer:,.0f}× ({theirs.emulator_requests:,} vs "
        f"{ours.emulator_requests:,}) | {_yes(fewer >= 50)} |",
        f"| {where}: ≥ 10× less wall time | {faster:,.1f}× ({theirs.wall:.2f} s vs "
        f"{ours.wall:.2f} s{_worst(ours, theirs)}{alone}; CPU time "
        f"{theirs.cpu / max(ours.cpu, 1e-9):,.1f}×) | {_yes(faster >= 10)} |",
    ]


def _worst(ours: Row, theirs: Row) -> str:
    """The ratio of urlwatch's fastest run to trialwatch's slowest: the least it could be."""
    if ours.wall_range is None or theirs.wall_range is None:
        return ""
    least = theirs.wall_range[0] / ours.wall_range[1]
    return f", medians of {ours.runs}; at worst {least:,.1f}×, fastest vs slowest run"


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def write_section(kind: str, report: str) -> None:
    """Replace this run kind's section of results.md, keeping the other one."""
    start, end = f"<!-- bench:{kind} -->", f"<!-- /bench:{kind} -->"
    block = f"{start}\n{report}{end}"
    text = RESULTS.read_text() if RESULTS.exists() else _RESULTS_HEAD
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text)


_RESULTS_HEAD = """\
# Benchmark results

Written by `make bench` (`bench/run.py`, quick run) and `make bench BENCH_ARGS=--full`
(100,000 studies); each run replaces its own section below and keeps the rest. See
[`README.md`](README.md) for what is measured and how.
"""


if __name__ == "__main__":
    sys.exit(main())
