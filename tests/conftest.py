"""Shared fixtures: the ClinicalTrials.gov emulator and where the test data lives."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ctgov_emulator import Emulator, PathLike

pytest_plugins = ["dbs", "notify_servers"]  # database_url (SQLite + PostgreSQL); SMTP/webhook

TESTS_DATA = Path(__file__).parent / "data"

EmulatorFactory = Callable[..., Emulator]


@pytest.fixture(autouse=True)
def _output_as_on_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-xdist's workers export COLUMNS=80 and LINES=24, which trialwatch reads as a
    person's chosen width: without them, output is laid out as for a pipe or a file (what
    cron and scripts get), as in a run without workers. Tests of a width set COLUMNS."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture
def emulator_factory() -> Iterator[EmulatorFactory]:
    """Start emulators on demand: ``emulator_factory(records_dirs, **Emulator.start options)``.

    Every emulator started through it is stopped when the test ends.
    """
    started: list[Emulator] = []

    def start(records_dirs: Iterable[PathLike] = (), **options: Any) -> Emulator:
        emulator = Emulator.start(records_dirs, **options)
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(request: pytest.FixtureRequest, emulator_factory: EmulatorFactory) -> Emulator:
    """A running emulator with no records. To load some, parametrize it indirectly:
    ``@pytest.mark.parametrize("emulator", [[TESTS_DATA / "demo"]], indirect=True)``.
    """
    return emulator_factory(getattr(request, "param", ()))


@pytest.fixture
def reference_dir() -> Path:
    """The real ClinicalTrials.gov records in ../shared (absent from a user's clone)."""
    path = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ctgov"
    if not path.is_dir():
        pytest.skip(f"reference records not available at {path}")
    return path


@pytest.fixture
def tests_data() -> Path:
    """``tests/data``: demo records and other test inputs."""
    return TESTS_DATA


EU_REFERENCE = TESTS_DATA / "reference"


@pytest.fixture
def eu_emulator() -> Iterator[Any]:
    """The EUCTR, CTIS and ISRCTN emulator (``eu_registries_emulator.EuEmulator``) serving the
    real records of ``tests/data/reference/``; ``eu_emulator.url("ctis")`` is the base URL its
    settings take."""
    from eu_registries_emulator import EuEmulator

    emulator = EuEmulator.start(EU_REFERENCE)
    yield emulator
    emulator.stop()
