"""Row ↔ model conversions the families share: a change's columns and its stored form, the
version number a version shows, finding a record's row, and telling a database that refused
one record's data from one that failed."""

from __future__ import annotations

import functools
import json
import threading
import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session

from service.errors import StoreError, StoreRefused
from service.models import Change, Snapshot, StoredChange
from service.store.tables import ChangeRow, RecordRow
from service.text import storable


def _record(session: Session, registry: str, study_id: str) -> RecordRow | None:
    return session.scalar(
        select(RecordRow).where(RecordRow.registry_key == registry, RecordRow.study_id == study_id)
    )


def _version_number(registry_version: int | None, seq: int) -> int:
    return registry_version if registry_version is not None else seq


def _change_values(
    change: Change,
    record_id: int,
    run_id: int | None,
    to_version_id: int | None,
    from_version: int | None,
    to_version: int | None,
    now: datetime,
    historical: bool = False,
) -> dict[str, Any]:
    """The columns of a change row (for an ORM row, or a multi-row insert)."""
    change = storable_change(change)
    return {
        "record_id": record_id,
        "sync_run_id": run_id,
        "to_version_id": to_version_id,
        "from_version": from_version,
        "to_version": to_version,
        "kind": change.kind,
        "field": change.field,
        "old": change.old,
        "new": change.new,
        "severity": change.severity,
        "summary": change.summary,
        "outcome_type": change.outcome_type,
        "old_field": change.old_field,
        "grade": change.grade,
        "historical": historical,
        "detected_at": now,
    }


def _stored_change(row: ChangeRow | Row[Any], record: RecordRow | Row[Any]) -> StoredChange:
    """A change row as the event it stores: an ORM row, or a Core row of the table's columns
    (its record's with ``registry`` read as ``registry_key``)."""
    return StoredChange.trusted(  # the store's own row: checked when it was written
        id=row.id,
        registry=record.registry_key,
        study_id=record.study_id,
        kind=row.kind,
        field=row.field,
        old=row.old,
        new=row.new,
        severity=row.severity,
        summary=row.summary,
        outcome_type=row.outcome_type,
        old_field=row.old_field,
        grade=row.grade,
        detected_at=row.detected_at,
        from_version=row.from_version,
        to_version=row.to_version,
        historical=row.historical,
    )


# Raw records are stored as zstd frames with a dictionary trained on registry records
# (bench/generate.py --zstd-dict): on records of shapes it was not trained on, 21% smaller than
# zlib level 6 and compressed 3-4 times as fast (bench/results.md, "Issue 26"). Rows written
# before are zlib streams: the first bytes tell them apart (a zstd frame starts with its magic
# number, a zlib stream with 0x78), so both stay readable. A retrained dictionary goes in a new
# file beside this one: frames name the dictionary they need, and the old one must stay.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
RAW_DICTIONARY = Path(__file__).with_name("raw.zstdict")  # the one new rows are written with
ZSTD_LEVEL = 3  # levels 6-9 save ~10% more for 4-6 times the time
_codecs = threading.local()  # zstd (de)compressor objects must not be shared by threads


def _raw_gz(raw: dict[str, Any] | PackedRaw) -> bytes:
    """A raw record's stored form (``PackedRaw``: compressed already, by a worker process)."""
    if isinstance(raw, PackedRaw):
        return raw.blob
    return pack_raw(raw)


def pack_raw(raw: dict[str, Any]) -> bytes:
    # Compact separators: a fifth fewer bytes to compress, and the same JSON read back.
    text = json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    return _compressor().compress(text)


def raw_json(blob: bytes) -> dict[str, Any]:
    """The raw record a stored blob holds: a zstd frame, or a zlib stream of an older row."""
    if blob[:4] != ZSTD_MAGIC:
        return json.loads(zlib.decompress(blob))  # type: ignore[no-any-return]
    return json.loads(_decompressor().decompress(blob))  # type: ignore[no-any-return]


class PackedRaw(Mapping[str, Any]):
    """A raw record compressed already (``pack_raw``): the bulk import's worker processes
    compress, its one writer stores the bytes as they are. Read as a mapping, it decompresses
    (once) for whoever reads it."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    @functools.cached_property
    def _record(self) -> dict[str, Any]:
        return raw_json(self.blob)

    def __getitem__(self, key: str) -> Any:
        return self._record[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._record)

    def __len__(self) -> int:
        return len(self._record)


@functools.cache
def _dictionaries() -> dict[int, Any]:
    """Every dictionary shipped, by the id a frame names it with."""
    import zstandard  # here, not at the top: one-shot commands that read no raw record skip it

    found = {}
    for path in sorted(RAW_DICTIONARY.parent.glob("*.zstdict")):
        dictionary = zstandard.ZstdCompressionDict(path.read_bytes())
        found[dictionary.dict_id()] = dictionary
    return found


def _compressor() -> Any:
    compressor = getattr(_codecs, "compressor", None)
    if compressor is None:
        import zstandard

        dictionary = zstandard.ZstdCompressionDict(RAW_DICTIONARY.read_bytes())
        current = _dictionaries()[dictionary.dict_id()]
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, dict_data=current)
        _codecs.compressor = compressor
    return compressor


def _decompressor() -> Any:
    decompressor = getattr(_codecs, "decompressor", None)
    if decompressor is None:
        decompressor = _codecs.decompressor = _MultiDictionary()
    return decompressor


class _MultiDictionary:
    """Decompresses a frame with the dictionary it names (one decompressor per dictionary)."""

    def __init__(self) -> None:
        self._by_id: dict[int, Any] = {}

    def decompress(self, blob: bytes) -> bytes:
        import zstandard

        dict_id = zstandard.get_frame_parameters(blob).dict_id
        decompressor = self._by_id.get(dict_id)
        if decompressor is None:
            dictionary = _dictionaries().get(dict_id)
            if dictionary is None and dict_id:
                raise StoreError(f"a raw record needs zstd dictionary {dict_id}, not shipped")
            decompressor = zstandard.ZstdDecompressor(dict_data=dictionary)
            self._by_id[dict_id] = decompressor
        return decompressor.decompress(blob)  # type: ignore[no-any-return]


def storable_change(change: Change) -> Change:
    """``change`` with text every store can hold (no NUL, no lone surrogate): a change's text
    is mostly folded registry text already, but a finding or a seed quotes raw text."""
    old, new, summary = storable(change.old), storable(change.new), storable(change.summary)
    if old == change.old and new == change.new and summary == change.summary:
        return change
    return change.model_copy(update={"old": old, "new": new, "summary": summary})


def refusal(exc: StoreError) -> StoreError:
    """``exc`` as ``StoreRefused`` when the database answered and refused the data written
    (a value out of range or too long, text it cannot encode, a broken constraint that is not
    a race), else ``exc`` itself (down, locked, full: no record's fault)."""
    cause = exc.__cause__
    refused = isinstance(cause, DataError | IntegrityError) or (
        isinstance(cause, StatementError) and not isinstance(cause, DBAPIError)
    )
    if not refused or isinstance(exc, StoreRefused):
        return exc
    return StoreRefused(exc.message)


LISTED_STATUS_CHARS = 40  # records.overall_status: what listings show and filter on


def listed_status(snapshot: Snapshot) -> str:
    """The status a records row lists: the registry's own text, cut to the column (a trial
    whose countries disagree says so at length; its snapshot keeps all of it)."""
    status = snapshot.overall_status
    if len(status) <= LISTED_STATUS_CHARS:
        return status
    return status[: LISTED_STATUS_CHARS - 1].rstrip() + "…"


def links_of(snapshot: Snapshot) -> list[dict[str, str]]:
    return [link.model_dump() for link in snapshot.linked]
