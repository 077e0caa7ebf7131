"""A whole-registry baseline from ClinicalTrials.gov's bulk download (a zip of one JSON file
per study), read one member at a time so memory does not grow with the registry.

Imported records are stored as their first version with no change events (a baseline is not
news); the next sync then probes their last-update dates and fetches only what moved since
the download was made.
"""

from __future__ import annotations

import json
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.clock import Clock
from service.errors import InputError, RecordInvalid, UnsafeDocument
from service.registry.ctgov_normalise import normalise, record_meta
from service.safeload import MIB, load_json, read_stream_bounded
from service.store import FirstSighting, NewVersion, Store

BATCH = 1000  # records stored per transaction
MEMBER_MAX_BYTES = 64 * MIB  # one study's JSON; the largest with results is a few MiB


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


def import_bulk(
    store: Store,
    path: Path,
    *,
    clock: Clock,
    watch_all: bool = False,
    progress: Callable[[int], None] = lambda _read: None,
) -> BulkReport:
    """Store a baseline of the watched studies in ``path`` (every study with ``watch_all``,
    which also watches them)."""
    report = BulkReport()
    watched = set(store.watched_ids("ctgov"))
    pending: list[FirstSighting] = []
    for name, raw, problem in _members(path):
        report.read += 1
        progress(report.read)
        if problem:
            report.invalid.append({"file": name, "error": problem})
            continue
        try:
            snapshot, meta = normalise(raw), record_meta(raw)
        except RecordInvalid as exc:
            report.invalid.append({"file": name, "error": str(exc)})
            continue
        if not watch_all and snapshot.study_id not in watched:
            report.not_watched += 1
            continue
        version = NewVersion("ctgov", snapshot, raw, None, meta.last_update_posted, clock())
        pending.append(FirstSighting(version, []))
        if len(pending) >= BATCH:
            _flush(store, pending, report, watch_all, clock)
    _flush(store, pending, report, watch_all, clock)
    if report.stored:
        # thousands of rows at once: without fresh statistics a planner keeps the plans it
        # chose for the store before the import (the pages' filters are fast either way)
        store.refresh_planner_statistics()
    return report


def _members(path: Path) -> Iterator[tuple[str, Any, str]]:
    """(name, parsed JSON, "") per study file, or (name, None, why) for one that cannot be
    read: too large, too deeply nested, corrupt, not JSON. One bad member never stops the
    import, and none is read past ``MEMBER_MAX_BYTES``."""
    try:
        # /dev/zero would be scanned for a zip directory forever, a FIFO block the open
        if not stat.S_ISREG(path.stat().st_mode):
            raise InputError(f"{path}: not a regular file")
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a zip file ({exc})") from None
    with archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            try:
                yield info.filename, _read_member(archive, info), ""
            except UnsafeDocument as exc:
                yield info.filename, None, str(exc)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield info.filename, None, f"not JSON ({exc})"
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                yield info.filename, None, f"corrupt in the archive ({exc})"


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Any:
    # The declared size is checked first (a 600 MiB member is skipped unread), and the read
    # itself is capped too, because a crafted archive can declare less than it inflates to.
    if info.file_size > MEMBER_MAX_BYTES:
        raise UnsafeDocument(f"larger than {MEMBER_MAX_BYTES // MIB} MiB (one study is a few)")
    with archive.open(info) as member:
        return load_json(read_stream_bounded(member, MEMBER_MAX_BYTES))


def _flush(
    store: Store, pending: list[FirstSighting], report: BulkReport, watch_all: bool, clock: Clock
) -> None:
    if not pending:
        return
    ids = [s.version.snapshot.study_id for s in pending]
    known = store.record_states("ctgov", ids)
    fresh = [s for s in pending if s.version.snapshot.study_id not in known]
    fresh = list({s.version.snapshot.study_id: s for s in fresh}.values())  # one per study
    if watch_all:
        store.add_watches("ctgov", ids, [], clock())
    store.save_first_versions(fresh, None)
    report.stored += len(fresh)
    report.already_stored += len(pending) - len(fresh)
    pending.clear()
