"""``registrations_disagree``: two registrations of one trial that say different things.

The rule's edges on the pure function; then end to end over real HTTP, on SQLite and
PostgreSQL: the EUCTR record 2021-002179-21 (the register's real text download) and a
ClinicalTrials.gov registration of the same trial, made from the real record NCT00973089 with
the EUCTR record's own facts (its status, planned enrollment, primary end points), each
disagreement kind opening and resolving as the registries edit their records.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import twconfig
from ctgov_emulator import Emulator
from eu_registries_emulator import EuEmulator
from test_registries_sync import EUCTR, FAST, NCT, ctgov_record, ended, euctr_country

from service.app import App
from service.findings.disagree import RULE, registrations_disagree, status_since
from service.models import LinkedId, Outcome, Snapshot, StudyDate
from service.settings import load_settings
from service.trials import group

COUNTRIES = ("ES", "GR", "PL", "PT", "HU", "FR")
TODAY = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)


# ---- the rule, pure -------------------------------------------------------------------------


def snap(registry: str, study_id: str, **fields: Any) -> Snapshot:
    return Snapshot(registry=registry, study_id=study_id, **fields)


def pair(ctgov: dict[str, Any], euctr: dict[str, Any]) -> list[Snapshot]:
    link = (LinkedId("euctr", "2021-002179-21", "ids"),)
    return [
        snap("ctgov", "NCT00973089", linked=link, **ctgov),
        snap("euctr", "2021-002179-21", **euctr),
    ]


def test_status_since_is_the_first_day_of_the_current_lifecycles_run() -> None:
    history = [
        ("2026-03-01", "COMPLETED"),
        ("2026-02-01", "COMPLETED"),
        ("2026-01-01", "RECRUITING"),
    ]
    lifecycle = {"COMPLETED": "completed", "RECRUITING": "recruiting"}.__getitem__
    assert status_since(history, lifecycle) == date(2026, 2, 1)
    assert status_since([], lifecycle) is None


@pytest.mark.parametrize(("days", "holds"), [(60, False), (61, True)])
def test_lifecycles_apart_hold_only_past_disagree_days(days: int, holds: bool) -> None:
    (trial,) = group(pair({"lifecycle": "completed"}, {"lifecycle": "recruiting"}))
    since = {
        ("ctgov", "NCT00973089"): date(2026, 1, 1),
        ("euctr", "2021-002179-21"): date(2025, 1, 1),
    }
    finding = registrations_disagree(trial, since, date(2026, 1, 1) + timedelta(days=days), 60)
    assert (finding is not None) == holds
    if finding is not None:
        assert finding.severity == "high" and finding.detail["kinds"] == ["lifecycle"]
        assert "NCT00973089 says completed, 2021-002179-21 still recruiting" in finding.summary


def test_a_lifecycle_of_unknown_age_is_not_yet_apart() -> None:
    (trial,) = group(pair({"lifecycle": "completed"}, {"lifecycle": "recruiting"}))
    assert registrations_disagree(trial, {}, date(2030, 1, 1), 60) is None


@pytest.mark.parametrize(
    ("ctgov", "euctr", "kinds"),
    [
        ({"enrollment_count": 660, "enrollment_type": "ESTIMATED"}, {"enrollment_count": 600}, []),
        ({"enrollment_count": 661, "enrollment_type": "ESTIMATED"}, {"enrollment_count": 600}, []),
        (
            {"enrollment_count": 700, "enrollment_type": "ESTIMATED"},
            {"enrollment_count": 600},
            ["enrollment"],
        ),
        # an ACTUAL count is compared with the other's actual, not its plan
        ({"enrollment_count": 100, "enrollment_type": "ACTUAL"}, {"enrollment_count": 600}, []),
        (
            {"enrollment_count": 100, "enrollment_type": "ACTUAL"},
            {"enrollment_count": 600, "enrollment_actual": 580},
            ["enrollment_actual"],
        ),
        (
            {"completion_date": StudyDate(date="2024-12-31")},
            {"completion_date": StudyDate(date="2024-10-02")},
            [],
        ),
        (
            {"completion_date": StudyDate(date="2024-12-31")},
            {"completion_date": StudyDate(date="2024-10-01")},
            ["completion_date"],
        ),
    ],
)
def test_counts_and_dates_apart_open_at_once_past_their_thresholds(
    ctgov: dict[str, Any], euctr: dict[str, Any], kinds: list[str]
) -> None:
    (trial,) = group(pair(ctgov, euctr))
    finding = registrations_disagree(trial, {}, date(2026, 1, 1), 60)
    assert (finding.detail["kinds"] if finding else []) == kinds


def test_primary_outcomes_pair_as_the_diff_pairs_them_and_name_what_is_missing() -> None:
    text = Outcome(
        measure="The study has two following primary endpoints: • Absolute change from baseline "
        "in ADCS-ADL score at week 24 and • Absolute change from baseline in ADAS-Cog score"
    )
    adl = "Absolute Change From Baseline in ADCS-ADL Score"
    same = [Outcome(measure=adl, time_frame="Week 24")]
    other = [*same, Outcome(measure="Change in Mini-Mental State Examination total score")]
    (agree,) = group(pair({"primary_outcomes": same}, {"primary_outcomes": [text]}))
    assert registrations_disagree(agree, {}, date(2026, 1, 1), 60) is None
    (apart,) = group(pair({"primary_outcomes": other}, {"primary_outcomes": [text]}))
    finding = registrations_disagree(apart, {}, date(2026, 1, 1), 60)
    assert finding is not None and finding.detail["kinds"] == ["primary_outcomes"]
    assert "'Change in Mini-Mental State Examination total score' of NCT00973089" in finding.summary


# ---- end to end -----------------------------------------------------------------------------

ADL = "Absolute Change From Baseline in Alzheimer's Disease Cooperative Study-ADL (ADCS-ADL) Score"
COG = "Absolute Change From Baseline in ADAS-Cog Score"


def twin(edit: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
    """NCT00973089, made the ClinicalTrials.gov registration of EUCTR 2021-002179-21 (what
    its EUCTR record says: recruiting, 600 planned, two primary end points at week 24)."""
    study = copy.deepcopy(ctgov_record())
    section = study["protocolSection"]
    section["statusModule"]["overallStatus"] = "RECRUITING"
    section["designModule"]["enrollmentInfo"] = {"count": 600, "type": "ESTIMATED"}
    section["outcomesModule"]["primaryOutcomes"] = [
        {"measure": ADL, "timeFrame": "Baseline, Week 24"},
        {"measure": COG, "timeFrame": "Baseline, Week 24"},
    ]
    edit(study)
    return study


def enrollment(count: int) -> Callable[[dict[str, Any]], None]:
    def edit(study: dict[str, Any]) -> None:
        study["protocolSection"]["designModule"]["enrollmentInfo"]["count"] = count

    return edit


def mmse_instead_of_adas_cog(study: dict[str, Any]) -> None:
    outcomes = study["protocolSection"]["outcomesModule"]["primaryOutcomes"]
    outcomes[1] = {"measure": "Change in Mini-Mental State Examination total score"}


def completed(study: dict[str, Any]) -> None:
    study["protocolSection"]["statusModule"]["overallStatus"] = "COMPLETED"


class Trial:
    """The two registrations, their registries, and trialwatch on a clock of its own."""

    def __init__(self, ctgov: Emulator, eu: EuEmulator, environ: dict[str, str]) -> None:
        self.ctgov, self.eu, self.now = ctgov, eu, TODAY
        self.app = App(load_settings(environ=environ), clock=lambda: self.now)
        self.posted = TODAY.date() - timedelta(days=30)
        self.publish(twin())
        twconfig.runner(environ)("watch", "add", NCT, EUCTR)

    def publish(self, study: dict[str, Any]) -> None:
        """A new version of the ClinicalTrials.gov record, posted a day after the last (in
        the weeks before today)."""
        self.posted += timedelta(days=1)
        self.ctgov.publish(study, date=self.posted.isoformat())

    def sync(self, days: int = 0) -> set[tuple[str, str]]:
        self.now = TODAY + timedelta(days=days)
        report = self.app.sync()
        assert report.failed == 0, report.errors
        return {(c.kind, c.study_id) for c in report.changes if c.field == f"finding:{RULE}"}

    def open_kinds(self) -> list[str]:
        (finding,) = self.app.store.list_findings(only_open=True, rule=RULE) or [None]
        return finding.detail["kinds"] if finding else []


@pytest.fixture
def trial(
    emulator_factory: Callable[..., Emulator],
    eu_emulator: EuEmulator,
    database_url: str,
    tmp_path: Path,
) -> Iterator[Trial]:
    ctgov = emulator_factory()
    config = (
        twconfig.table("[ctgov]", history=False, incremental=False, **FAST)
        + "".join(twconfig.table(f"[{key}]", **FAST) for key in ("euctr", "ctis", "isrctn"))
        + twconfig.table("[findings]", enabled=True)
    )
    environ = twconfig.environment(
        tmp_path,
        config,
        database_url,
        TRIALWATCH_CTGOV_API_URL=ctgov.api_url,
        TRIALWATCH_CTGOV_HISTORY_URL=ctgov.history_url,
        **eu_emulator.environment(),
    )
    made = Trial(ctgov, eu_emulator, environ)
    yield made
    made.app.close()


def test_each_disagreement_kind_opens_and_resolves_on_the_trials_first_registration(
    trial: Trial,
) -> None:
    assert trial.sync() == set()  # the two registrations agree
    trial.publish(twin(enrollment(400)))
    assert trial.sync() == {("finding_opened", NCT)}
    assert trial.open_kinds() == ["enrollment"]
    (finding,) = trial.app.store.list_findings(only_open=True, rule=RULE)
    assert (finding.registry, finding.severity) == ("ctgov", "medium")
    values = finding.detail["disagreements"][0]["values"]
    assert {(v["registry"], v["value"]) for v in values} == {("ctgov", 400), ("euctr", 600)}
    assert "WHO ICTRP" in finding.source

    # the same kind apart, another figure: the finding says the new one, and is not told again
    trial.publish(twin(enrollment(350)))
    assert trial.sync() == set()
    (finding,) = trial.app.store.list_findings(only_open=True, rule=RULE)
    values = finding.detail["disagreements"][0]["values"]
    assert {(v["registry"], v["value"]) for v in values} == {("ctgov", 350), ("euctr", 600)}
    assert "enrollment 350 in NCT00973089" in finding.summary

    # also an end point the EUCTR record does not name: the finding says what is apart now
    trial.publish(twin(lambda s: (enrollment(400)(s), mmse_instead_of_adas_cog(s))))
    assert trial.sync() == {("finding_opened", NCT), ("finding_resolved", NCT)}
    assert trial.open_kinds() == ["enrollment", "primary_outcomes"]
    assert trial.sync() == set()  # nothing moved: nothing told again

    trial.publish(twin())
    assert trial.sync() == {("finding_resolved", NCT)}
    assert trial.open_kinds() == []


def test_lifecycles_apart_open_past_disagree_days_and_resolve_when_the_other_registry_ends(
    trial: Trial,
) -> None:
    trial.sync()
    trial.publish(twin(completed))
    assert trial.sync(days=1) == set()  # a registry's lag of weeks is not news
    assert trial.sync(days=60) == set()
    assert trial.sync(days=61) == {("finding_opened", NCT)}
    assert trial.open_kinds() == ["lifecycle"]
    day = (TODAY + timedelta(days=62)).date().isoformat()  # (the register's day, on our clock)
    for country in COUNTRIES:  # the trial's end reaches the EU register, country by country
        trial.eu.publish("euctr", ended(euctr_country(country)), day)
    assert trial.sync(days=62) == {("finding_resolved", NCT)}


def test_a_disagreement_found_with_a_record_just_watched_is_historical(trial: Trial) -> None:
    trial.publish(twin(enrollment(400)))
    assert trial.sync() == {("finding_opened", NCT)}
    (finding,) = trial.app.store.list_findings(only_open=True, rule=RULE)
    assert finding.historical
    assert json.loads(json.dumps(finding.to_json()))["rule"] == RULE


def test_the_record_rules_never_resolve_the_trials_finding(trial: Trial) -> None:
    trial.sync()
    trial.publish(twin(enrollment(400)))
    trial.sync()
    trial.publish(twin(lambda s: (enrollment(400)(s), completed(s))))
    # the record's own rules review it (a new version): the trials' finding stands, untold
    assert trial.sync() == set()
    assert trial.open_kinds() == ["enrollment"]


def test_the_trials_finding_travels_in_the_message_of_the_change_that_opened_it(
    emulator_factory: Callable[..., Emulator],
    eu_emulator: EuEmulator,
    webhook_receiver: Any,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The trials' review runs after every registry's cycle; the registry's run stays under
    way until it is done, so the finding goes out with the enrollment change, as one webhook."""
    ctgov = emulator_factory()
    config = (
        twconfig.table("[ctgov]", history=False, incremental=False, **FAST)
        + "".join(twconfig.table(f"[{key}]", **FAST) for key in ("euctr", "ctis", "isrctn"))
        + twconfig.table("[findings]", enabled=True)
        + twconfig.table("[delivery]", retry_initial_seconds=0, lease_seconds=1)
        + twconfig.webhook(webhook_receiver.url)
        + twconfig.subscription("hook")
    )
    environ = twconfig.environment(
        tmp_path,
        config,
        database_url,
        TRIALWATCH_CTGOV_API_URL=ctgov.api_url,
        TRIALWATCH_CTGOV_HISTORY_URL=ctgov.history_url,
        **eu_emulator.environment(),
    )
    for name in ("TEST_HOOK_SECRET",):  # the App in this process reads secrets from os.environ
        monkeypatch.setenv(name, environ[name])
    trial = Trial(ctgov, eu_emulator, environ)
    try:
        trial.sync()
        trial.app.deliver()  # on the trial's clock
        webhook_receiver.requests.clear()
        trial.publish(twin(enrollment(400)))
        assert trial.sync(days=1) == {("finding_opened", NCT)}  # a day after the first
        assert trial.app.deliver().sent == 1
        [hook] = webhook_receiver.requests
        kinds = [c["kind"] for c in json.loads(hook.body)["changes"]]
        assert "enrollment_changed" in kinds and "finding_opened" in kinds
    finally:
        trial.app.close()


def test_a_cycle_that_raises_leaves_its_runs_failed_not_finished_by_the_next(
    trial: Trial, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runs stay under way until the trials' review: a cycle that raises after one
    registry's run (here the next registry's monitor breaks) marks them failed, and the next
    cycle does not finish them as if they had gone through."""
    from sqlalchemy import text

    eu = trial.app.monitor_for("euctr")

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("a bug in the EUCTR cycle")

    monkeypatch.setattr(eu, "sync", broken)
    with pytest.raises(RuntimeError):
        trial.app.sync()
    monkeypatch.undo()
    trial.sync(days=1)
    with trial.app.store.engine.connect() as db:
        runs = db.execute(text("SELECT registry, status FROM sync_runs ORDER BY id")).all()
    assert [tuple(r) for r in runs] == [("ctgov", "failed"), ("ctgov", "ok"), ("euctr", "ok")]
