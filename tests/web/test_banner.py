"""A banner on every page while ``/readyz`` would answer 503: the daemon's (or a person's)
last sync failed as a whole, or the store does not answer. One line: when, and why.

The store is the web tests' one (real records synced by the CLI), then synced once more
against a registry that does not answer, as a daemon's cycle fails when the network is down.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from service.app import build_app
from service.settings import load_settings
from service.web.app import create_app
from web.conftest import DEMO_STUDY, WebStore

PAGES = ("/", "/changes", "/findings", "/seeds", "/outbox", f"/studies/{DEMO_STUDY}", "/nowhere")
ONE_LINE = re.compile(
    r"Failing \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\): the last sync failed as a whole: .+"
)


@contextmanager
def served(web_store: WebStore, env: dict[str, str]) -> Iterator[TestClient]:
    app = build_app(load_settings(web_store.config, env))
    try:
        with TestClient(create_app(app), client=("127.0.0.1", 1234)) as client:
            yield client
    finally:
        app.close()


@pytest.fixture
def failed(web_store: WebStore) -> Iterator[tuple[WebStore, dict[str, str]]]:
    """The store after a sync that reached no registry (a closed port)."""
    down = {
        **web_store.env,
        "TRIALWATCH_CTGOV_API_URL": "http://127.0.0.1:9/api/v2",
        "TRIALWATCH_CTGOV_HISTORY_URL": "http://127.0.0.1:9/api/int",
    }
    outcome = WebStore(web_store.database_url, web_store.config, down, web_store.watched).run(
        "sync"
    )
    assert outcome.exit_code != 0
    yield web_store, down


def banner_of(client: TestClient, path: str) -> Any:
    return BeautifulSoup(client.get(path).text, "html.parser").select_one("p.banner")


def test_every_page_says_the_last_sync_failed_with_when_and_why(
    failed: tuple[WebStore, dict[str, str]],
) -> None:
    web_store, env = failed
    with served(web_store, env) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "failing"
        for path in PAGES:
            banner = banner_of(client, path)
            assert banner is not None, path
            text = banner.get_text()
            assert ONE_LINE.fullmatch(text) and "\n" not in text, (path, text)
            assert banner["role"] == "alert" and banner.select_one("a")["href"] == "/readyz"
        # the JSON twins and the feed are data: no banner in them
        assert "banner" not in client.get("/api/changes").text


def test_a_sync_that_succeeds_again_takes_the_banner_away(
    failed: tuple[WebStore, dict[str, str]],
) -> None:
    web_store, _ = failed
    assert web_store.run("sync").exit_code == 0  # the registry answers again
    with served(web_store, web_store.env) as client:
        assert client.get("/readyz").status_code == 200
        for path in PAGES:
            assert banner_of(client, path) is None, path


def _stored_run(web_store: WebStore, registry: str, status: str) -> None:
    """A sync run row as another process's cycle leaves it, finished a minute ago."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from service.store import create_store_engine

    engine = create_store_engine(web_store.database_url)
    moment = datetime.now(UTC) - timedelta(minutes=1)
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO sync_runs (registry, started_at, finished_at, status, checked, new, "
                "changed, unchanged, failed, requests, errors) "
                "VALUES (:r, :t, :t, :s, 1, 0, 0, 1, 0, 1, '[]')"
            ),
            {"r": registry, "t": moment, "s": status},
        )
    engine.dispose()


def test_a_sync_cut_short_by_a_restart_is_no_failure(web_store: WebStore) -> None:
    assert web_store.run("sync").exit_code == 0
    _stored_run(web_store, "ctgov", "interrupted")  # SIGTERM mid-cycle: the daemon restarts
    with served(web_store, web_store.env) as client:
        assert client.get("/readyz").status_code == 200
        assert banner_of(client, "/") is None


def test_one_registry_down_while_another_answers_is_no_failure_of_the_cycle(
    web_store: WebStore,
) -> None:
    down = {
        **web_store.env,
        "TRIALWATCH_CTGOV_API_URL": "http://127.0.0.1:9/api/v2",
        "TRIALWATCH_CTGOV_HISTORY_URL": "http://127.0.0.1:9/api/int",
    }
    _stored_run(web_store, "euctr", "ok")  # this cycle's EU registry answered
    failing = WebStore(web_store.database_url, web_store.config, down, web_store.watched)
    assert failing.run("sync").exit_code != 0  # ClinicalTrials.gov did not
    with served(web_store, down) as client:
        assert client.get("/readyz").json()["status"] != "failing"
        assert banner_of(client, "/") is None
    assert web_store.run("sync").exit_code == 0
