"""`trialwatch import-bulk`: a baseline from the registry's bulk zip, then cheap syncs."""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from sqlalchemy import text as sql_text

from service.bulk import BulkProgress, import_bulk
from service.store import Store
from service.store.rows import ZSTD_MAGIC

RECORDS = sorted((TESTS_DATA / "records").glob("NCT0*.json"))


@pytest.fixture
def bulk_zip(tmp_path: Path) -> Path:
    path = tmp_path / "ctg-studies.json.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for record in RECORDS:
            archive.writestr(f"ctg-studies/{record.name}", record.read_text())
        archive.writestr("ctg-studies/NCT09999998.json", "{not json")
    return path


@pytest.fixture
def trialwatch(
    emulator_factory: Callable[..., Emulator], sqlite_url: str, tmp_path: Path
) -> twconfig.Run:
    registry = emulator_factory([TESTS_DATA / "records"])
    ctgov = twconfig.ctgov(registry.api_url, registry.history_url, history=False)
    return twconfig.runner(twconfig.environment(tmp_path, ctgov, sqlite_url))


def test_the_watched_studies_of_a_bulk_zip_become_the_baseline(
    trialwatch: twconfig.Run, bulk_zip: Path
) -> None:
    trialwatch("watch", "add", "NCT00763412", "NCT03475563")
    result = trialwatch("import-bulk", str(bulk_zip), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["read"], report["stored"], report["not_watched"]) == (len(RECORDS) + 1, 2, 2)
    assert report["invalid"][0]["file"] == "ctg-studies/NCT09999998.json"
    assert json.loads(trialwatch("changes", "--json").stdout) == []  # a baseline is not news
    sync = json.loads(trialwatch("sync", "--json").stdout)
    assert (sync["unchanged"], sync["new"], sync["requests"]) == (2, 0, 1)  # one probe page
    again = json.loads(trialwatch("import-bulk", str(bulk_zip), "--json").stdout)
    assert (again["stored"], again["already_stored"]) == (0, 2)


def test_import_all_watches_every_study(trialwatch: twconfig.Run, bulk_zip: Path) -> None:
    report = json.loads(trialwatch("import-bulk", str(bulk_zip), "--all", "--json").stdout)
    assert report["stored"] == len(RECORDS)
    assert len(json.loads(trialwatch("watch", "list", "--json").stdout)) == len(RECORDS)


def test_a_file_that_is_not_a_zip_is_refused(trialwatch: twconfig.Run, tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_text("nope")
    result = trialwatch("import-bulk", str(tmp_path / "x.zip"))
    assert result.exit_code == 2
    assert "x.zip: not a zip file" in result.stderr


# ---- a whole registry: both cores, resumable, progress, compression -------------------------

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ctgov"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _real_records() -> dict[str, Path]:
    """The real records of tests/data and, where the checkout has them, ../shared/reference,
    by NCT id: one study file each, as in the registry's download."""
    found: dict[str, Path] = {}
    paths = [*RECORDS, *(sorted(REFERENCE.glob("NCT*.json")) if REFERENCE.is_dir() else [])]
    for path in paths:
        nct = re.match(r"NCT\d{8}", path.stem)
        if nct and "versionHolder" not in path.stem:  # a history version, not the study
            found.setdefault(nct.group(), path)
    return dict(sorted(found.items()))


@pytest.fixture
def registry_zip(tmp_path: Path) -> Path:
    path = tmp_path / "ctg-studies.json.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for nct, record in _real_records().items():
            archive.writestr(f"{nct}.json", record.read_bytes())
    return path


def _store(tmp_path: Path, name: str) -> Store:
    return Store.open(f"sqlite:///{tmp_path / name}.db")


def _stored_rows(store: Store) -> list[tuple[Any, ...]]:
    """Every record with its versions, as stored (less the rows' own ids)."""
    with store.engine.connect() as connection:
        rows = connection.execute(
            sql_text(
                "SELECT r.study_id, r.title, r.overall_status, r.lifecycle, r.links, "
                "r.content_hash, r.last_update_posted, r.first_seen_at, v.seq, "
                "v.content_hash, v.snapshot, v.raw_gz, v.last_update_posted, v.fetched_at "
                "FROM records r JOIN record_versions v ON v.record_id = r.id "
                "ORDER BY r.study_id, v.seq"
            )
        )
        return [tuple(row) for row in rows]


def test_a_parallel_import_stores_what_one_process_stores(
    tmp_path: Path, registry_zip: Path
) -> None:
    one, two = _store(tmp_path, "one"), _store(tmp_path, "two")
    alone = import_bulk(one, registry_zip, clock=lambda: T0, watch_all=True, workers=1)
    parallel = import_bulk(
        two, registry_zip, clock=lambda: T0, watch_all=True, workers=2, chunk=2, batch=3
    )
    assert alone.to_json() == parallel.to_json()
    assert parallel.stored == len(_real_records())
    assert _stored_rows(one) == _stored_rows(two)
    assert two.watched_ids("ctgov") == list(_real_records())


def test_an_interrupted_import_goes_on_where_it_stopped_and_stores_nothing_twice(
    tmp_path: Path, registry_zip: Path
) -> None:
    store = _store(tmp_path, "resumed")

    def stop_after_four(at: BulkProgress) -> None:
        if at.read >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_bulk(
            store,
            registry_zip,
            clock=lambda: T0,
            watch_all=True,
            workers=2,
            chunk=2,
            batch=2,
            progress=stop_after_four,
        )
    first = len(_stored_rows(store))
    assert 0 < first < len(_real_records())  # whole batches were kept
    seen: list[BulkProgress] = []
    again = import_bulk(
        store,
        registry_zip,
        clock=lambda: T0,
        watch_all=True,
        workers=2,
        chunk=2,
        progress=seen.append,
    )
    assert (again.already_stored, again.stored) == (first, len(_real_records()) - first)
    assert seen[0].read > first  # the stored members were skipped, not read again
    rows = _stored_rows(store)
    assert len(rows) == len({row[0] for row in rows}) == len(_real_records())  # one version each


def test_progress_gives_the_rate_and_the_time_left(tmp_path: Path, registry_zip: Path) -> None:
    seen: list[BulkProgress] = []
    store = _store(tmp_path, "p")
    import_bulk(
        store, registry_zip, clock=lambda: T0, watch_all=True, chunk=5, progress=seen.append
    )
    total = len(_real_records())
    assert [at.read for at in seen] == sorted({*range(5, total, 5), total})  # a chunk at a time
    assert all(at.total == total and at.rate > 0 for at in seen)
    assert seen[-1].eta == 0 and seen[-1].stored == total
    halfway = BulkProgress(read=150_000, total=600_000, stored=150_000, elapsed=300.0)
    assert (halfway.rate, halfway.eta) == (500.0, 900.0)  # 500 studies/s: 15 minutes left
    resumed = BulkProgress(read=450_000, total=600_000, stored=0, elapsed=300.0, skipped=300_000)
    assert (resumed.rate, resumed.eta) == (500.0, 300.0)  # the skipped were not read


def test_raw_records_stored_with_zlib_and_with_zstd_both_read_back(
    tmp_path: Path, registry_zip: Path
) -> None:
    store = _store(tmp_path, "codecs")
    import_bulk(store, registry_zip, clock=lambda: T0, watch_all=True)
    (old_id, old_path), (new_id, new_path) = list(_real_records().items())[:2]
    old_raw, new_raw = json.loads(old_path.read_text()), json.loads(new_path.read_text())
    with store.engine.begin() as connection:  # a row as releases before zstd wrote it
        old_blob = zlib.compress(json.dumps(old_raw, sort_keys=True).encode(), 6)
        connection.execute(
            sql_text(
                "UPDATE record_versions SET raw_gz = :blob WHERE record_id = "
                "(SELECT id FROM records WHERE study_id = :id)"
            ),
            {"blob": old_blob, "id": old_id},
        )
        new_blob = connection.execute(
            sql_text(
                "SELECT raw_gz FROM record_versions v JOIN records r ON r.id = v.record_id "
                "WHERE r.study_id = :id"
            ),
            {"id": new_id},
        ).scalar_one()
    assert new_blob[:4] == ZSTD_MAGIC and old_blob[:1] == b"\x78"
    assert len(new_blob) < len(zlib.compress(json.dumps(new_raw, sort_keys=True).encode(), 6))
    assert store.raw_record("ctgov", old_id, 1) == old_raw
    assert store.raw_record("ctgov", new_id, 1) == new_raw
