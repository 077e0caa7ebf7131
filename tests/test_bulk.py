"""`trialwatch import-bulk`: a baseline from the registry's bulk zip, then cheap syncs."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator

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
