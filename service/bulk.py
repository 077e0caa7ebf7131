"""A whole-registry baseline from ClinicalTrials.gov's bulk download (a zip of one JSON file
per study): 600,000 studies in constant memory, on every core, resumable.

Worker processes each open the zip and turn a chunk of members into the rows the store keeps
(decoding, normalising, hashing, compressing the raw record: nearly all the work); the main
process is the one writer, a transaction per ``BATCH`` records. Chunks are handed out a few at a
time and their rows taken back in order, so memory holds only the chunks in flight, whatever
the size of the registry.

A run that is stopped (Ctrl-C, killed, the machine down) leaves whole batches stored; the next
run skips the members whose study is stored already without reading them (its file is named by
its NCT id in the registry's download) and stores each study once: nothing is stored twice.

Imported records are stored as their first version with no change events (a baseline is not
news); the next sync then probes their last-update dates and fetches only what moved since
the download was made.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import stat
import threading
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from service.clock import Clock
from service.errors import InputError, RecordInvalid, UnsafeDocument
from service.registry.ctgov_normalise import normalise, record_meta
from service.safeload import MIB, load_json, read_stream_bounded
from service.store import BaselineRows, NewVersion, Store, baseline_rows, save_baseline, stored_ids

BATCH = 1000  # records stored per transaction
CHUNK = 250  # members a worker decodes per task: big enough to amortise the hand-over
IN_FLIGHT_PER_WORKER = 3  # chunks queued a worker: keeps it busy, bounds the memory
MEMBER_MAX_BYTES = 64 * MIB  # one study's JSON; the largest with results is a few MiB
REGISTRY = "ctgov"


@dataclass
class BulkReport:
    read: int = 0
    stored: int = 0
    already_stored: int = 0
    not_watched: int = 0
    invalid: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "stored": self.stored,
            "already_stored": self.already_stored,
            "not_watched": self.not_watched,
            "invalid": self.invalid,
        }


@dataclass(frozen=True)
class BulkProgress:
    """Where an import is: members read of the zip's ``total``, and how fast."""

    read: int
    total: int
    stored: int
    elapsed: float  # seconds since the import started
    skipped: int = 0  # members skipped unread at the start: stored by an earlier run

    @property
    def rate(self) -> float:
        """Members read a second so far (those skipped unread are not a rate)."""
        return (self.read - self.skipped) / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (``None`` before there is a rate)."""
        if self.rate <= 0:
            return None
        return (self.total - self.read) / self.rate


@dataclass(frozen=True)
class Decoded:
    """One member, as a worker hands it to the writer: the rows to store (``None`` for a
    study not watched), or why it could not be read."""

    name: str
    study_id: str = ""
    rows: BaselineRows | None = None
    problem: str = ""


Progress = Callable[[BulkProgress], None]


def import_bulk(
    store: Store,
    path: os.PathLike[str] | str,
    *,
    clock: Clock,
    watch_all: bool = False,
    progress: Progress = lambda _progress: None,
    workers: int | None = None,
    chunk: int = CHUNK,
    batch: int = BATCH,
) -> BulkReport:
    """Store a baseline of the watched studies in ``path`` (every study with ``watch_all``,
    which also watches them), decoding on ``workers`` processes (default: one a core; 1
    decodes in this process). ``progress`` is called every ``chunk`` members and at the end;
    an exception it raises (KeyboardInterrupt) stops the import, and what was stored stays
    stored."""
    members = _members(path)
    report = BulkReport()
    watched = set(store.watched_ids(REGISTRY))
    skip = stored_ids(store, REGISTRY)
    if watch_all:
        skip &= watched  # stored, and watched already: nothing left to do for these
    job = _Job(str(path), None if watch_all else frozenset(watched), clock())
    writer = _Writer(store, report, watch_all, job.now, batch)
    started, total = time.monotonic(), len(members)
    todo: list[zipfile.ZipInfo] = []
    for info in members:
        if PurePosixPath(info.filename).stem in skip:
            report.read += 1
            report.already_stored += 1
        else:
            todo.append(info)
    del skip, members
    skipped, shown = report.read, report.read
    count = workers if workers is not None else (os.cpu_count() or 1)
    for decoded in _decode_all(job, todo, count, chunk):
        writer.take(decoded)
        if report.read - shown >= chunk:
            shown = report.read
            progress(BulkProgress(shown, total, report.stored, time.monotonic() - started, skipped))
    writer.flush()
    if report.read != shown or not todo:  # where it ended, unless just said
        progress(
            BulkProgress(report.read, total, report.stored, time.monotonic() - started, skipped)
        )
    if report.stored:
        # thousands of rows at once: without fresh statistics a planner keeps the plans it
        # chose for the store before the import (the pages' filters are fast either way)
        store.refresh_planner_statistics()
    return report


# ---- reading the zip ---------------------------------------------------------------------------


def _members(path: os.PathLike[str] | str) -> list[zipfile.ZipInfo]:
    """The study files in the zip, in its order: its directory, read once, here (600,000
    entries take ~300 MB as ``ZipInfo`` objects; the workers get theirs a chunk at a time)."""
    with _open(path) as archive:
        return [
            info
            for info in archive.infolist()
            if not info.is_dir() and info.filename.endswith(".json")
        ]


def _open(path: os.PathLike[str] | str) -> zipfile.ZipFile:
    try:
        # /dev/zero would be scanned for a zip directory forever, a FIFO block the open
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise InputError(f"{path}: not a regular file")
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a zip file ({exc})") from None


@dataclass(frozen=True)
class _Job:
    """What a worker needs: the zip, which studies to keep (``None``: all), the import's time."""

    path: str
    watched: frozenset[str] | None
    now: datetime


def _decode_all(
    job: _Job, members: list[zipfile.ZipInfo], workers: int, chunk: int
) -> Iterator[Decoded]:
    """Every one of ``members``, decoded, in order."""
    chunks = [members[i : i + chunk] for i in range(0, len(members), chunk)]
    if workers <= 1 or len(chunks) <= 1:
        with _open(job.path) as archive:
            for part in chunks:
                yield from (_decode(archive, job, info) for info in part)
        return
    yield from _decode_parallel(job, chunks, workers)


def _decode_parallel(
    job: _Job, chunks: list[list[zipfile.ZipInfo]], workers: int
) -> Iterator[Decoded]:
    # spawn, not fork: the parent may hold threads (a web server, a test's emulator) whose
    # locks a forked child would inherit held
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, context, initializer=_start_worker, initargs=(job,))
    in_flight: deque[Future[list[Decoded]]] = deque()
    pending = iter(chunks)
    try:
        for part in pending:
            in_flight.append(pool.submit(_decode_chunk, part))
            if len(in_flight) >= workers * IN_FLIGHT_PER_WORKER:
                break
        while in_flight:
            done = in_flight.popleft().result()
            part = next(pending, None)
            if part is not None:
                in_flight.append(pool.submit(_decode_chunk, part))
            yield from done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_worker: dict[str, Any] = {}  # a worker process's open zip and job
PARENT_CHECK_SECONDS = 1.0


class _MemberReader(zipfile.ZipFile):
    """The zip, open to read the members it is given (``open(info)``, every check of
    ``ZipFile.open`` included) without reading its directory again: the main process did,
    and 600,000 entries would cost each worker ~300 MB."""

    def _RealGetContents(self) -> None:  # zipfile's name: reads the directory
        pass


def _start_worker(job: _Job) -> None:
    # Ctrl-C reaches the whole process group: the main process stops the import; a worker
    # stopped mid-chunk would only break the pool under it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker["job"], _worker["archive"] = job, _MemberReader(job.path)
    parent = os.getppid()
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this worker when its import is killed: a pool's workers otherwise wait for work
    forever, each still holding its memory."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def _decode_chunk(members: Sequence[zipfile.ZipInfo]) -> list[Decoded]:
    archive, job = _worker["archive"], _worker["job"]
    return [_decode(archive, job, info) for info in members]


def _decode(archive: zipfile.ZipFile, job: _Job, info: zipfile.ZipInfo) -> Decoded:
    """One member as the rows to store. One bad member never stops the import, and none is
    read past ``MEMBER_MAX_BYTES``."""
    name = info.filename
    try:
        raw = _read_member(archive, info)
        snapshot, meta = normalise(raw), record_meta(raw)
    except UnsafeDocument as exc:
        return Decoded(name, problem=str(exc))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return Decoded(name, problem=f"not JSON ({exc})")
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        return Decoded(name, problem=f"corrupt in the archive ({exc})")
    except RecordInvalid as exc:
        return Decoded(name, problem=str(exc))
    if job.watched is not None and snapshot.study_id not in job.watched:
        return Decoded(name, snapshot.study_id)
    version = NewVersion(REGISTRY, snapshot, raw, None, meta.last_update_posted, job.now)
    # hashed, serialised and compressed here, on this core: the writer only writes
    return Decoded(name, snapshot.study_id, baseline_rows(version))


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Any:
    # The declared size is checked first (a 600 MiB member is skipped unread), and the read
    # itself is capped too, because a crafted archive can declare less than it inflates to.
    if info.file_size > MEMBER_MAX_BYTES:
        raise UnsafeDocument(f"larger than {MEMBER_MAX_BYTES // MIB} MiB (one study is a few)")
    with archive.open(info) as member:
        return load_json(read_stream_bounded(member, MEMBER_MAX_BYTES))


# ---- the one writer ----------------------------------------------------------------------------


class _Writer:
    """Stores decoded members a batch per transaction, each study once."""

    def __init__(
        self, store: Store, report: BulkReport, watch_all: bool, now: datetime, batch: int
    ) -> None:
        self.store, self.report, self.watch_all, self.now = store, report, watch_all, now
        self.batch = batch
        self.pending: list[Decoded] = []

    def take(self, decoded: Decoded) -> None:
        self.report.read += 1
        if decoded.problem:
            self.report.invalid.append({"file": decoded.name, "error": decoded.problem})
        elif decoded.rows is None:
            self.report.not_watched += 1
        else:
            self.pending.append(decoded)
            if len(self.pending) >= self.batch:
                self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        ids = [d.study_id for d in self.pending]
        known = self.store.record_states(REGISTRY, ids)
        fresh = list({d.study_id: d for d in self.pending if d.study_id not in known}.values())
        if self.watch_all:
            self.store.add_watches(REGISTRY, ids, [], self.now)
        save_baseline(self.store, [d.rows for d in fresh if d.rows is not None])
        self.report.stored += len(fresh)
        self.report.already_stored += len(self.pending) - len(fresh)
        self.pending.clear()
