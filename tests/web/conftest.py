"""A store built the way users build theirs, for the web app's tests: real ClinicalTrials.gov
records served by the registry emulator, synced by the real CLI.

- NCT05605665 (the demo record) in four versions: enrollment, dates and an outcome edited,
  with its seed study (a publication naming it) linked;
- the findings records (``tests/data/findings``), tagged ``transparency``, whose rules open
  findings (results overdue, retrospective registration, a stale status);
- NCT06171568, whose overall status then changes to RECRUITING (a ``status_changed``);
- a copy of NCT00763412 whose title carries markup, to prove every page escapes it;
- a webhook channel and subscription, so that the outbox holds notifications.

Built once per module (syncing takes a few seconds); the tests only read it.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from starlette.testclient import TestClient

from service.app import build_app
from service.cli import cli
from service.seeds.service import load_seeds
from service.settings import load_settings
from service.store import Store
from service.web.app import create_app

DEMO = TESTS_DATA / "demo" / "NCT05605665"
FINDINGS = TESTS_DATA / "findings"
DIFF = TESTS_DATA / "diff"
SEED_FILE = Path(__file__).resolve().parents[2] / "seeds" / "il2-rapamycin-ss-nct05605665.toml"
MARKUP = '<script>alert("tw")</script><img src=x onerror=alert(1)>'
MARKUP_STUDY = "NCT00763412"
STATUS_STUDY = "NCT06171568"
DEMO_STUDY = "NCT05605665"
TAG = "transparency"


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    return data.get("study", data)


def edited(study: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copied = copy.deepcopy(study)
    edit(copied["protocolSection"])
    return copied


@dataclass(frozen=True)
class WebStore:
    """A populated store and how to open it."""

    database_url: str
    config: Path
    env: dict[str, str]
    watched: tuple[str, ...]

    def run(self, *args: str) -> Any:
        return CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=False)


def _config(path: Path) -> Path:
    path.write_text(
        "[ctgov]\nrequests_per_second = 100.0\ntimeout_seconds = 5\nhistory_gap_seconds = 0\n"
        "incremental = false\n\n"
        '[[channels]]\nname = "hook"\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
        'secret_env = "TW_TEST_HOOK_SECRET"\n\n'
        '[[subscriptions]]\nchannel = "hook"\nstudies = ["*"]\n'
    )
    return path


@pytest.fixture(scope="module")
def web_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStore]:
    root = tmp_path_factory.mktemp("web")
    registry = Emulator.start()
    try:
        yield _populate(root, registry)
    finally:
        registry.stop()


def _populate(root: Path, registry: Emulator) -> WebStore:
    database_url = f"sqlite:///{root / 'tw.db'}"
    env = {
        "TRIALWATCH_CONFIG": str(_config(root / "trialwatch.toml")),
        "TRIALWATCH_DATABASE_URL": database_url,
        "TRIALWATCH_CTGOV_API_URL": registry.api_url,
        "TRIALWATCH_CTGOV_HISTORY_URL": registry.history_url,
        "TW_TEST_HOOK_SECRET": "web-test-secret",
    }
    v0 = load(DEMO / "v0.json")
    registry.publish(v0, date="2022-11-08")
    status = load(DIFF / f"{STATUS_STUDY}.json")
    registry.publish(status)
    markup = load(FINDINGS / f"{MARKUP_STUDY}.json")
    markup["protocolSection"]["identificationModule"]["briefTitle"] = MARKUP
    registry.publish(markup)
    tagged = [p.stem for p in sorted(FINDINGS.glob("NCT*.json")) if p.stem != MARKUP_STUDY]
    for study_id in tagged:
        registry.publish(load(FINDINGS / f"{study_id}.json"))
    store = WebStore(database_url, Path(env["TRIALWATCH_CONFIG"]), env, ())
    assert store.run("watch", "add", DEMO_STUDY, STATUS_STUDY, MARKUP_STUDY).exit_code == 0
    assert store.run("watch", "add", "--tag", TAG, *tagged).exit_code == 0
    assert store.run("sync").exit_code == 0

    def bigger(ps: dict[str, Any]) -> None:
        ps["designModule"]["enrollmentInfo"] = {"count": 45, "type": "ESTIMATED"}

    def later(ps: dict[str, Any]) -> None:
        bigger(ps)
        ps["statusModule"]["primaryCompletionDateStruct"] = {"date": "2024-06", "type": "ESTIMATED"}
        ps["outcomesModule"]["primaryOutcomes"][0]["timeFrame"] = "week 24"

    def recruiting(ps: dict[str, Any]) -> None:
        ps["statusModule"]["overallStatus"] = "RECRUITING"

    registry.publish(edited(v0, bigger), date="2023-03-01")
    registry.publish(edited(v0, later), date="2023-09-15")
    registry.publish(load(DEMO / "v1.json"), date="2024-01-10")
    registry.publish(edited(status, recruiting), date=datetime.now(UTC).date().isoformat())
    assert store.run("sync").exit_code == 0
    seeds = root / "seeds"
    seeds.mkdir()
    shutil.copy(SEED_FILE, seeds)
    opened = Store.open(database_url)
    try:
        load_seeds(opened, seeds, datetime.now(UTC))
        watched = tuple(opened.watched_ids("ctgov"))
    finally:
        opened.close()
    return WebStore(database_url, store.config, env, watched)


@pytest.fixture
def web_app(web_store: WebStore) -> Iterator[Any]:
    """The trialwatch App over the populated store (closed after the test)."""
    app = build_app(load_settings(web_store.config, web_store.env))
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def client(web_app: Any) -> Iterator[TestClient]:
    """The web app in-process, asked from loopback, no token."""
    with TestClient(create_app(web_app), client=("127.0.0.1", 1234)) as test_client:
        yield test_client
