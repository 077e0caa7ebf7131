"""One record never stops a cycle (issue 29, item 3).

A hostile or broken record is that record's failure (``internal`` in the sync report's
``errors``), never the page's or the cycle's: NUL characters in its text (PostgreSQL refuses
them), a value the database refuses, a findings rule that raises on its data, dates at the
calendar's ends (0001-01-01, 9999-12-31). Every other record of the page is stored with its
findings, and `report` and the record page draw the far dates. End to end through
`trialwatch sync` against the registry emulator on SQLite and PostgreSQL, on real records
(tests/data/findings, from the reference set) edited as an attacker would; pure tests for the
normaliser's NUL strip and the clamped date arithmetic.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import twconfig
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from starlette.testclient import TestClient

from service.app import build_app
from service.diff import diff
from service.findings import rules
from service.findings.rules import Thresholds, VersionFacts, add_years, evaluate, next_review, shift
from service.models import Snapshot, StudyDate
from service.registry.ctgov_facts import trial_facts
from service.registry.ctgov_normalise import normalise
from service.report import StudyData, VersionPoint, render_report
from service.report import display as report_module
from service.settings import load_settings
from service.store import Store
from service.text import storable
from service.web.app import create_app

# three real records: an applicable trial (results rules), one recruiting (dates, staleness),
# one with results posted
OVERDUE, RECRUITING, POSTED = "NCT03418623", "NCT04267848", "NCT00763412"


def real(study_id: str) -> dict[str, Any]:
    return json.loads((TESTS_DATA / "findings" / f"{study_id}.json").read_text())  # type: ignore[no-any-return]


def edited(record: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copied = copy.deepcopy(record)
    edit(copied["protocolSection"])
    return copied


def nul_laden(protocol: dict[str, Any]) -> None:
    """NUL characters wherever a registry's text goes: tracked fields, the reason a trial
    stopped that a finding quotes, a field nothing tracks."""
    protocol["identificationModule"]["briefTitle"] += "\x00 (NUL)"
    protocol["identificationModule"]["organization"]["fullName"] += "\x00raw"
    protocol["conditionsModule"]["conditions"][0] += "\x00"
    protocol["outcomesModule"]["primaryOutcomes"][0]["measure"] += "\x00"
    protocol["statusModule"]["overallStatus"] = "TERMINATED"
    protocol["statusModule"]["whyStopped"] = "Slow accrual\x00 of patients"


def nul_reworded(protocol: dict[str, Any]) -> None:
    nul_laden(protocol)
    protocol["identificationModule"]["briefTitle"] += " reworded\x00"
    protocol["outcomesModule"]["primaryOutcomes"][0]["measure"] += " at week 12\x00"


def far_dates(protocol: dict[str, Any]) -> None:
    """Dates at both ends of the calendar: start 0001-01-01, completion 9999-12-31, status
    verified in December 9999 (results deadline and staleness days land past year 9999)."""
    status = protocol["statusModule"]
    status["startDateStruct"] = {"date": "0001-01-01", "type": "ACTUAL"}
    status["primaryCompletionDateStruct"] = {"date": "9999-12-31", "type": "ESTIMATED"}
    status["completionDateStruct"] = {"date": "9999-12-31", "type": "ESTIMATED"}
    status["statusVerifiedDate"] = "9999-12"


def far_dates_swapped(protocol: dict[str, Any]) -> None:
    far_dates(protocol)
    status = protocol["statusModule"]
    status["startDateStruct"] = {"date": "9999-12-31", "type": "ESTIMATED"}
    status["completionDateStruct"] = {"date": "0001-01-01", "type": "ACTUAL"}


@pytest.fixture
def registry(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory()


@pytest.fixture
def environment(registry: Emulator, database_url: str, tmp_path: Path) -> dict[str, str]:
    config = twconfig.ctgov(registry.api_url, registry.history_url) + twconfig.table(
        "[findings]", enabled=True
    )
    return twconfig.environment(tmp_path, config, database_url)


@pytest.fixture
def trialwatch(environment: dict[str, str]) -> twconfig.Run:
    run = twconfig.runner(environment)
    assert run("watch", "add", OVERDUE, RECRUITING, POSTED).exit_code == 0
    return run


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    yield opened
    opened.close()


def sync(trialwatch: twconfig.Run) -> dict[str, Any]:
    """A cycle's report; the command fails (exit 1) when a record did."""
    result = trialwatch("sync", "--json")
    report = result.json()
    assert result.exit_code == (1 if report["failed"] else 0), result.output
    return report  # type: ignore[no-any-return]


def listed(trialwatch: twconfig.Run, *args: str) -> list[dict[str, Any]]:
    result = trialwatch(*args, "--json")
    assert result.exit_code == 0, result.output
    return result.json()  # type: ignore[no-any-return]


def rules_found(trialwatch: twconfig.Run, study_id: str) -> set[str]:
    """The rules of the record's open findings."""
    return {f["rule"] for f in listed(trialwatch, "findings", "--open", "--study", study_id)}


def has_nul(value: Any) -> bool:
    return "\x00" in json.dumps(value, ensure_ascii=False)


# ---- NUL text, end to end -------------------------------------------------------------------


def test_nul_text_is_stored_without_nul_and_the_raw_record_keeps_it(
    trialwatch: twconfig.Run, registry: Emulator, store: Store
) -> None:
    registry.publish(edited(real(OVERDUE), nul_laden))
    registry.publish(real(RECRUITING))
    registry.publish(real(POSTED))

    first = sync(trialwatch)
    assert (first["new"], first["failed"], first["errors"]) == (3, 0, [])
    [record] = [r for r in listed(trialwatch, "watch", "list") if r["study_id"] == OVERDUE]
    assert record["title"].endswith(" (NUL)") and not has_nul(record)
    # the record as the registry sent it, NUL and all, survives the store
    raw = store.raw_record("ctgov", OVERDUE, 1)
    assert raw is not None
    organization = raw["protocolSection"]["identificationModule"]["organization"]["fullName"]
    assert organization.endswith("\x00raw")
    assert raw["protocolSection"]["statusModule"]["whyStopped"] == "Slow accrual\x00 of patients"
    # a finding quoting the raw text (why the trial stopped) is stored without NUL
    shortfall = [f for f in listed(trialwatch, "findings") if f["rule"] == "enrollment_shortfall"]
    assert [f["study_id"] for f in shortfall] == [OVERDUE]
    assert "Slow accrual of patients" in shortfall[0]["summary"] and not has_nul(shortfall)

    registry.publish(edited(real(OVERDUE), nul_reworded))
    second = sync(trialwatch)
    assert (second["changed"], second["failed"], second["errors"]) == (1, 0, [])
    changes = listed(trialwatch, "changes", "--study", OVERDUE)
    kinds = {c["kind"] for c in changes}
    assert {"field_changed", "outcome_modified"} <= kinds, kinds
    title = next(c for c in changes if c["field"].endswith("briefTitle"))
    assert title["new"].endswith("(NUL) reworded")
    assert not has_nul(changes)
    assert not has_nul(listed(trialwatch, "findings"))


# ---- a record the store refuses, or whose findings review raises -----------------------------


@pytest.fixture
def refused_snapshot(monkeypatch: pytest.MonkeyPatch) -> str:
    """RECRUITING's stored form is one the database refuses (NULL in a NOT NULL column: an
    IntegrityError on SQLite and PostgreSQL), through the one seam both the page's
    transaction and the one-by-one retry use."""
    serialise = Snapshot.model_dump_json

    def refused(self: Snapshot, **options: Any) -> Any:
        if self.study_id == RECRUITING and not options:  # the stored form, not the hash
            return None
        return serialise(self, **options)

    monkeypatch.setattr(Snapshot, "model_dump_json", refused)
    return RECRUITING


def test_a_record_the_store_refuses_fails_alone_and_the_page_keeps_its_findings(
    trialwatch: twconfig.Run, registry: Emulator, refused_snapshot: str
) -> None:
    for study_id in (OVERDUE, RECRUITING, POSTED):
        registry.publish(real(study_id))
    first = sync(trialwatch)
    assert (first["new"], first["failed"]) == (2, 1)
    [error] = first["errors"]
    assert error["study_id"] == refused_snapshot and error["reason"] == "internal"
    assert "\n" not in error["error"]
    stored = {r["study_id"]: r for r in listed(trialwatch, "watch", "list")}
    assert stored[OVERDUE]["versions"] == stored[POSTED]["versions"] == 1
    assert not stored[refused_snapshot].get("versions")
    assert "results_overdue" in rules_found(trialwatch, OVERDUE)

    # a page of changed records: stored together, then one by one; the same record fails
    registry.publish(edited(real(OVERDUE), lambda p: far_dates(p)))
    registry.publish(edited(real(RECRUITING), lambda p: far_dates(p)))
    second = sync(trialwatch)
    assert [(e["study_id"], e["reason"]) for e in second["errors"]] == [
        (refused_snapshot, "internal")
    ]
    assert second["changed"] == 1
    after = {r["study_id"]: r for r in listed(trialwatch, "watch", "list")}
    assert after[OVERDUE]["versions"] == 2
    # its new completion date (9999-12-31) puts the results deadline at the calendar's end
    assert "results_overdue" not in rules_found(trialwatch, OVERDUE)


@pytest.fixture
def exploding_rule(monkeypatch: pytest.MonkeyPatch) -> str:
    """A rule registered for the test that raises on one record's data (a rule's bug)."""
    marker = "[explode]"

    def explodes(chain: Sequence[VersionFacts], today: date, limits: Thresholds) -> None:
        if marker in chain[-1].facts.why_stopped:
            raise RuntimeError(f"this rule cannot read {marker}")

    monkeypatch.setattr(rules, "RULES", (*rules.RULES, explodes))
    return marker


def stopped(reason: str) -> Callable[[dict[str, Any]], None]:
    def edit(protocol: dict[str, Any]) -> None:
        protocol["statusModule"]["overallStatus"] = "TERMINATED"
        protocol["statusModule"]["whyStopped"] = reason

    return edit


def test_a_record_whose_findings_review_raises_fails_alone(
    trialwatch: twconfig.Run, registry: Emulator, store: Store, exploding_rule: str
) -> None:
    registry.publish(real(OVERDUE))
    registry.publish(edited(real(RECRUITING), stopped(f"Poor accrual {exploding_rule}")))
    registry.publish(edited(real(POSTED), stopped("Slow accrual")))
    first = sync(trialwatch)  # three new records: their findings reviewed together
    assert [(e["study_id"], e["reason"]) for e in first["errors"]] == [(RECRUITING, "internal")]
    assert "findings review failed" in first["errors"][0]["error"]
    assert (first["new"], first["failed"]) == (2, 1)
    assert "results_overdue" in rules_found(trialwatch, OVERDUE)
    # the page's findings stored (its accrual stop is no shortfall: a phase N/A trial is
    # outside `shortfall_phases`; its registration after the start is one)
    assert rules_found(trialwatch, POSTED) == {"retrospective_registration"}
    assert rules_found(trialwatch, RECRUITING) == set()
    assert {r["study_id"] for r in listed(trialwatch, "watch", "list") if r.get("versions")} == {
        OVERDUE,
        RECRUITING,
        POSTED,
    }  # its version is stored: only its findings failed, and they are due again tomorrow
    tomorrow = datetime.now(UTC).date() + timedelta(1)  # read after the sync: no midnight race
    assert RECRUITING in store.due_for_findings("ctgov", tomorrow.isoformat())

    # a page of changed records (reviewed together from the store): the same
    registry.publish(edited(real(OVERDUE), stopped("Slow accrual")))
    registry.publish(edited(real(RECRUITING), stopped(f"Still {exploding_rule}")))
    second = sync(trialwatch)
    assert [(e["study_id"], e["reason"]) for e in second["errors"]] == [(RECRUITING, "internal")]
    assert "enrollment_shortfall" in rules_found(trialwatch, OVERDUE)


# ---- far dates: sync, findings, report, the record page ---------------------------------------


def test_far_dates_go_through_sync_findings_report_and_the_record_page(
    trialwatch: twconfig.Run,
    registry: Emulator,
    environment: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry.publish(real(OVERDUE))
    registry.publish(edited(real(RECRUITING), far_dates), date="2024-01-02")
    registry.publish(edited(real(POSTED), far_dates), date="2024-01-02")
    first = sync(trialwatch)
    assert (first["new"], first["failed"], first["errors"]) == (3, 0, [])
    registry.publish(edited(real(RECRUITING), far_dates_swapped), date="2024-02-03")
    second = sync(trialwatch)
    assert (second["changed"], second["failed"], second["errors"]) == (1, 0, [])
    slips = [c for c in second["changes"] if c["kind"] == "date_changed"]
    assert {c["new"]["date"] for c in slips} == {"9999-12-31", "0001-01-01"}
    # completion in year 1 on a recruiting trial: its status is stale
    assert "status_stale" in rules_found(trialwatch, RECRUITING)

    out = tmp_path / "report.html"
    result = trialwatch("report", RECRUITING, POSTED, "--out", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "9999-12-31" in page and "0001-01-01" in page
    assert wide_charts(page, "Start and completion dates by version") == 2

    # a record the report cannot draw (a renderer's bug on its data) is left out, alone
    draw = report_module.study_view

    def breaks_on_posted(study: StudyData, as_of: date) -> Any:
        if study.study_id == POSTED:
            raise RuntimeError("cannot draw this record")
        return draw(study, as_of)

    with monkeypatch.context() as patched:
        patched.setattr(report_module, "study_view", breaks_on_posted)
        partial = trialwatch("report", RECRUITING, POSTED, "--out", str(out))
    assert partial.exit_code == 1
    assert f"{POSTED}: not in the report: internal error: cannot draw this record" in partial.stderr
    assert "report of 1 record(s)" in partial.stdout
    page = out.read_text()
    assert f'id="study-ctgov-{RECRUITING}"' in page and f'id="study-ctgov-{POSTED}"' not in page

    app = build_app(load_settings(environment["TRIALWATCH_CONFIG"], environment))
    try:
        with TestClient(
            create_app(app), base_url="http://127.0.0.1", client=("127.0.0.1", 1234)
        ) as client:
            for study_id in (RECRUITING, POSTED):
                answer = client.get(f"/studies/{study_id}")
                assert answer.status_code == 200, answer.text[-500:]
                assert "9999-12-31" in answer.text
    finally:
        app.close()


# ---- pure: the normaliser's NUL strip, the clamped dates ----------------------------------


def test_the_normaliser_strips_nul_from_every_text() -> None:
    snapshot = normalise(edited(real(OVERDUE), nul_reworded))
    stored = snapshot.model_dump_json()
    assert "\\u0000" not in stored and "\x00" not in stored
    assert snapshot.brief_title.endswith("(NUL) reworded")
    assert snapshot.why_stopped == "Slow accrual of patients"
    assert storable({"a\x00": ["b\x00", "c\ud800", 1, None]}) == {"a": ["b", "c\ufffd", 1, None]}


def test_date_arithmetic_stays_in_the_calendar() -> None:
    assert add_years(date.max, 1) == date.max
    assert add_years(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert add_years(date.min, -1) == date.min
    assert shift(date.max, 30) == date.max and shift(date.min, -1) == date.min
    assert shift(date(2020, 1, 1), 10**10) == date.max  # past what a timedelta can hold
    limits = Thresholds()
    for record in (edited(real(RECRUITING), far_dates), edited(real(OVERDUE), far_dates_swapped)):
        facts = trial_facts(record)
        chain = [VersionFacts(1, "9999-12-31", facts), VersionFacts(2, "0001-01-01", facts)]
        for today in (date.min, date(2026, 1, 1), date.max):
            found = evaluate(chain, today, limits)
            assert "results_overdue" not in found  # the deadline is the calendar's last day
            due = next_review(facts, today, limits)
            assert due is None or today < due <= date.max
    far, swapped = (normalise(edited(real(RECRUITING), e)) for e in (far_dates, far_dates_swapped))
    severities = {c.severity for c in diff(far, swapped) if c.kind == "date_changed"}
    assert severities == {"medium"}


def test_the_report_draws_dates_from_year_1_to_9999() -> None:
    def point(version: int, posted: str, start: str, completion: str) -> VersionPoint:
        return VersionPoint(
            version,
            posted,
            status="RECRUITING",
            start=StudyDate(date=start, type="ACTUAL"),
            primary_completion=StudyDate(date=completion, type="ESTIMATED"),
            completion=StudyDate(date=completion, type="ESTIMATED"),
        )

    histories = [
        (point(1, "0001-01-01", "0001-01-01", "9999-12-31"),),
        (point(1, "9999-12-31", "9999-12-31", "9999-12-31"),),
        (point(1, "0001-01-01", "0001-01-01", "0001-01-01"), point(2, "9999-12-31", "9999", "1")),
    ]
    studies = [StudyData("ctgov", f"NCT0000000{i}", h) for i, h in enumerate(histories)]
    page = render_report(studies, generated_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert wide_charts(page, "Overall status over time") == 3
    assert "0001-01-01" in page and "9999-12-31" in page
    assert not re.search(r'="-?(nan|inf)', page)  # every shape has a place on its chart


# ---- a last-update date that is no date ---------------------------------------------------------


@pytest.mark.parametrize("posted", ["x" * 300, "2024-1-1", "2024-01-01T00:00:00Z", "٢٠٢٤-٠١-٠١"])
def test_a_last_update_date_that_is_no_date_fails_its_record_as_invalid(posted: str) -> None:
    """The date is stored in a short column and compared across a page of unchanged records:
    a malformed one reads as "moved" in the probe (so the record is fetched) and is refused,
    for that record alone, when it is read."""
    from service.errors import RecordInvalid
    from service.registry.ctgov import posted_date
    from service.registry.ctgov_normalise import record_meta

    record = real(OVERDUE)
    record["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = posted
    assert posted_date(record) is None
    with pytest.raises(RecordInvalid, match=r"lastUpdatePostDateStruct\.date: expected a date"):
        record_meta(record)
    record["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2024-01-31"
    assert posted_date(record) == record_meta(record).last_update_posted == "2024-01-31"


def wide_charts(page: str, label: str) -> int:
    """The charts of ``label`` drawn for a wide column (each is drawn for a phone too)."""
    return len(
        re.findall(rf'<svg class="chart size-wide"[^>]*aria-label="{re.escape(label)}"', page)
    )
