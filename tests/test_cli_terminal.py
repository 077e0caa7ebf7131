"""Registry text never drives the terminal: real records whose title, status and outcome carry
ESC/OSC/CSI sequences and bidi overrides, through every listing command, on SQLite and
PostgreSQL. Human output shows them escaped (visibly); ``--json`` keeps the exact values."""

from __future__ import annotations

import copy
import json
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator

RECORDS = TESTS_DATA / "records"
TITLED = "NCT00973089"  # its title gets the clipboard write and a bidi override
CHANGED = "NCT03475563"  # its next version: an outcome with screen-clearing CSI sequences
REFUSED = "NCT00763412"  # a status that is no status: refused, and the refusal quotes it

OSC52 = "\x1b]52;c;cm0gLXJmIH4K\x07"  # "set the clipboard to `rm -rf ~`"
CLEAR = "\x1b[2J\x1b[H"
BIDI = "\u202egnp.exe\u202c"
EVIL_TITLE = f"Deep Carious Lesions {OSC52}{BIDI} trial"
EVIL_OUTCOME = f"Successful angioplasty{CLEAR}\u2066hidden\u2069\u0085next"
SHOWN_OUTCOME = r"\x1b[2J\x1b[H\u2066hidden\u2069"  # (NEL is whitespace: folded)

# Characters that act on a terminal (or reorder and hide text) instead of showing a glyph.
ACTING = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def acting_characters(text: str) -> list[str]:
    return [ch for ch in text if ch != "\n" and unicodedata.category(ch) in ACTING]


def assert_terminal_safe(ran: twconfig.Ran) -> None:
    assert acting_characters(ran.stdout) == [], ran.stdout
    assert acting_characters(ran.stderr) == [], ran.stderr


def strings(value: Any) -> list[str]:
    """Every string inside a parsed JSON document."""
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [text for item in items for text in strings(item)]


def record(study_id: str) -> dict[str, Any]:
    data = json.loads((RECORDS / f"{study_id}.json").read_text())
    return data.get("study", data)  # type: ignore[no-any-return]


def titled() -> dict[str, Any]:
    study = copy.deepcopy(record(TITLED))
    study["protocolSection"]["identificationModule"]["briefTitle"] = EVIL_TITLE
    return study


def changed() -> dict[str, Any]:
    study = copy.deepcopy(record(CHANGED))
    study["protocolSection"]["outcomesModule"]["primaryOutcomes"][0]["measure"] = EVIL_OUTCOME
    return study


def refused() -> dict[str, Any]:
    study = copy.deepcopy(record(REFUSED))
    study["protocolSection"]["statusModule"]["overallStatus"] = f"RECRUITING{CLEAR}"
    return study


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    emulator = emulator_factory()
    emulator.publish(titled(), date="2024-01-10")
    emulator.publish(record(CHANGED), date="2024-01-10")
    emulator.publish(refused(), date="2024-01-10")
    return emulator


@pytest.fixture
def trialwatch(registry: Emulator, database_url: str, tmp_path: Path) -> twconfig.Run:
    config = twconfig.ctgov(registry.api_url, registry.history_url, history=False)
    # wide enough for whole titles: what a table cuts off cannot be checked for escapes
    return twconfig.runner(twconfig.environment(tmp_path, config, database_url, COLUMNS="250"))


@pytest.fixture
def synced(trialwatch: twconfig.Run, registry: Emulator) -> twconfig.Run:
    """Three records watched and synced twice: the first sync stores the hostile title and
    refuses the hostile status (quoting it); the second stores the hostile outcome."""
    assert trialwatch("watch", "add", TITLED, CHANGED, REFUSED).exit_code == 0
    first = trialwatch("sync")
    assert first.exit_code == 1, first.output  # the status is refused, the others stored
    assert_terminal_safe(first)
    assert r"\x1b]52;c;cm0gLXJmIH4K\x07\u202egnp.exe\u202c" in first.stdout  # shown, not obeyed
    assert r"RECRUITING\x1b[2J" in first.stderr
    registry.publish(changed(), date="2024-02-10")
    second = trialwatch("sync", CHANGED)
    assert second.exit_code == 0, second.output
    assert_terminal_safe(second)
    assert SHOWN_OUTCOME in second.stdout
    return trialwatch


@pytest.mark.parametrize(
    "args",
    [
        ("changes",),
        ("changes", "--study", CHANGED),
        ("history", TITLED),
        ("history", CHANGED),
        ("watch", "list"),
    ],
    ids=" ".join,
)
def test_every_listing_escapes_what_the_registry_wrote(
    synced: twconfig.Run, args: tuple[str, ...]
) -> None:
    ran = synced(*args)
    assert ran.exit_code == 0, ran.output
    assert_terminal_safe(ran)
    assert "\\x1b" in ran.stdout or "\\u202e" in ran.stdout, ran.stdout


def test_a_changed_outcome_is_listed_escaped(synced: twconfig.Run) -> None:
    ran = synced("changes", "--study", CHANGED)
    (line,) = [line for line in ran.stdout.splitlines() if SHOWN_OUTCOME in line]
    assert "Primary outcome 1 reworded" in line  # on the change's own line, escaped


def test_json_keeps_the_exact_values_and_escapes_them_as_json(synced: twconfig.Run) -> None:
    ran = synced("watch", "list", "--json")
    assert ran.exit_code == 0
    assert acting_characters(ran.stdout) == []  # \u escapes on the wire …
    titles = {w["study_id"]: w["title"] for w in ran.json()}
    assert titles[TITLED] == EVIL_TITLE  # … the very same string once parsed
    changes = synced("changes", "--json").json()
    assert any(EVIL_TITLE in c["summary"] for c in changes)


@pytest.fixture
def offline(sqlite_url: str) -> twconfig.Run:
    return twconfig.runner({"TRIALWATCH_DATABASE_URL": sqlite_url, "TRIALWATCH_CONFIG": ""})


def test_an_offline_diff_escapes_the_records_text(offline: twconfig.Run, tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(record(CHANGED)))
    new.write_text(json.dumps(changed()))
    ran = offline("diff", str(old), str(new))
    assert_terminal_safe(ran)
    assert SHOWN_OUTCOME in ran.stdout
    exact = offline("diff", str(old), str(new), "--json")
    assert exact.exit_code == 0
    assert acting_characters(exact.stdout) == []
    exact_text = f"{CLEAR}\u2066hidden\u2069"  # the very characters, once parsed
    assert any(exact_text in text for text in strings(exact.json()))


SEED = f'''id = "hostile-seed"
title = "A seed titled {json.dumps(EVIL_TITLE)[1:-1]}"
[[outcomes]]
type = "primary"
measure = "Caries progression at 12 months"
[[links]]
registry = "ctgov"
id = "{TITLED}"
confidence = 1.0
source = "document"
'''


def test_seed_listings_escape_seed_and_registry_text(synced: twconfig.Run, tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "hostile.toml").write_text(SEED)
    loaded = synced("seeds", "load", str(tmp_path / "seeds"))
    assert loaded.exit_code == 0, loaded.output
    for args in (("seeds", "list"), ("seeds", "compare"), ("seeds", "link", "hostile-seed")):
        ran = synced(*args)
        assert ran.exit_code == 0, (args, ran.output)
        assert_terminal_safe(ran)
    listed = synced("seeds", "list")
    assert "\\x1b]52" in listed.stdout
    compared = synced("seeds", "compare")
    assert "Registered primary outcome" in compared.stdout  # names the registry's outcome


def test_an_error_line_escapes_what_it_quotes(offline: twconfig.Run, tmp_path: Path) -> None:
    path = tmp_path / f"x{CLEAR}.json"
    ran = offline("diff", str(path), str(path))
    assert ran.exit_code == 2
    assert_terminal_safe(ran)
    assert ran.stderr.count("\n") == 1
    assert "\\x1b[2J" in ran.stderr
