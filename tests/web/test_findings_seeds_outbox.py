"""``/findings``, ``/seeds`` and ``/outbox``: what the CLI lists, as pages, read-only."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from service.app import build_app
from service.models import Route
from service.settings import load_settings
from service.store import Store
from service.web.app import create_app
from service.web.pages import encode_cursor
from web.conftest import DEMO_STUDY, STATUS_STUDY, WebStore
from web.test_changes_page import STUDIES, T0, add_version, cli_json, small_client, status_change

OVERDUE_STUDY = "NCT03418623"


def soup_of(client: TestClient, url: str) -> BeautifulSoup:
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    return BeautifulSoup(answer.text, "html.parser")


# ---- findings ------------------------------------------------------------------------------


def test_the_findings_page_shows_results_overdue_with_its_evidence(
    client: TestClient, web_store: WebStore
) -> None:
    expected = next(
        f
        for f in cli_json(web_store, "findings", "--study", OVERDUE_STUDY)
        if f["rule"] == "results_overdue"
    )
    soup = soup_of(client, "/findings")
    entries = [
        li
        for li in soup.select("li.finding-entry")
        if li.select_one(f"a[href='/studies/{OVERDUE_STUDY}#findings']")
        and li.select_one(".rule").text == "Results overdue"  # the rule in words
    ]
    assert len(entries) == 1
    assert entries[0].select_one(".rule")["title"] == "results_overdue"  # the code stays near
    text = entries[0].get_text(" ", strip=True)
    title = next(
        w["title"] for w in cli_json(web_store, "watch", "list") if w["study_id"] == OVERDUE_STUDY
    )
    assert entries[0].select_one(".change-title").text == title  # which study, in words
    assert expected["summary"] in text
    assert expected["source"] in text  # the rule's citation
    detail = expected["detail"]
    assert (detail.get("due_date") or detail["deadline"]) in text
    # the evidence in words: labels and values, not the rule's keys and the registry's enums
    assert "Primary completion" in text and "(actual)" in text
    assert "primary_completion_date" not in text and "ACTUAL" not in text
    assert "opened" in text and "open" in entries[0].select_one(".finding-state").text
    assert entries[0].select_one(".pill.sev-high") is not None


def test_open_findings_come_first(client: TestClient, web_store: WebStore) -> None:
    every = cli_json(web_store, "findings")
    assert {f["state"] for f in every} == {"open", "resolved"}
    states = [
        li.select_one(".finding-state").text
        for li in soup_of(client, "/findings?size=500").select("li.finding-entry")
    ]
    assert len(states) == len(every)
    assert states == sorted(states)  # "open" < "resolved"


def _key(finding: dict[str, Any]) -> tuple[str, str, str]:
    return finding["study_id"], finding["rule"], finding["opened_at"]


@pytest.mark.parametrize(
    ("query", "flags"),
    [
        ("", ()),
        ("open=1", ("--open",)),
        ("state=open", ("--open",)),
        ("rule=results_overdue", ("--rule", "results_overdue")),
        (f"study={DEMO_STUDY.lower()}", ("--study", DEMO_STUDY)),
        ("rule=status_stale&open=1", ("--rule", "status_stale", "--open")),
    ],
)
def test_api_findings_are_what_the_cli_lists(
    client: TestClient, web_store: WebStore, query: str, flags: tuple[str, ...]
) -> None:
    answer = client.get(f"/api/findings?size=500&{query}")
    assert answer.status_code == 200
    listed = answer.json()
    expected = cli_json(web_store, "findings", *flags)
    assert sorted(listed, key=_key) == sorted(expected, key=_key)


def test_resolved_findings_are_what_the_cli_lists_without_the_open_ones(
    client: TestClient, web_store: WebStore
) -> None:
    resolved = client.get("/api/findings?state=resolved&size=500").json()
    expected = [f for f in cli_json(web_store, "findings") if f["state"] == "resolved"]
    assert resolved and sorted(resolved, key=_key) == sorted(expected, key=_key)


def test_findings_pages_walk_every_finding_once(client: TestClient, web_store: WebStore) -> None:
    seen: list[dict[str, Any]] = []
    url = "/api/findings?size=2"
    for _ in range(100):
        answer = client.get(url)
        seen += answer.json()
        url = answer.links.get("next", {}).get("url", "")
        if not url:
            break
    else:
        pytest.fail("the next links do not end")
    assert sorted(seen, key=_key) == sorted(cli_json(web_store, "findings"), key=_key)
    assert len({_key(f) for f in seen}) == len(seen)


@pytest.mark.parametrize(
    "query",
    [
        "rule=no_such_rule",
        "state=closed",
        "open=yes",
        "open=1&state=resolved",
        "study=x",
        "cursor=" + encode_cursor(["open", "x"]),
        "cursor=" + encode_cursor(["shut", 3]),
        "cursor=!!",
    ],
)
def test_bad_finding_filters_are_a_400(client: TestClient, query: str) -> None:
    page = client.get(f"/findings?{query}")
    assert page.status_code == 400
    message = BeautifulSoup(page.text, "html.parser").select_one("p.error").text
    assert "\n" not in message
    assert client.get(f"/api/findings?{query}").json() == {"error": message, "status": 400}


# ---- seeds ---------------------------------------------------------------------------------


def test_the_seeds_page_shows_the_seed_and_its_link_with_evidence(
    client: TestClient, web_store: WebStore
) -> None:
    (seed,) = cli_json(web_store, "seeds", "list")
    (link,) = seed["links"]
    soup = soup_of(client, "/seeds")
    section = soup.select_one(f"section#seed-{seed['seed']}")
    assert section is not None
    assert section.select_one("h2").text == seed["title"]
    text = section.get_text(" ", strip=True)
    assert seed["seed"] in text and seed["source"] in text
    item = section.select_one(f"ul.seed-links a[href='/studies/{DEMO_STUDY}']").find_parent("li")
    evidence = item.get_text(" ", strip=True)
    assert "score 1.00" in evidence and "confident" in evidence and "watched" in evidence
    assert "identifier written in the document" in evidence
    assert all(reason in evidence for reason in link["reasons"])
    # and what seeds compare finds between the publication and the record
    assert section.select_one(f".comparison a[href='/studies/{DEMO_STUDY}#seeds']") is not None
    discrepancies = section.select("ul.discrepancies li")
    assert discrepancies and all(li.select_one(".pill") for li in discrepancies)


def test_api_seeds_is_what_seeds_list_prints(client: TestClient, web_store: WebStore) -> None:
    assert client.get("/api/seeds").json() == cli_json(web_store, "seeds", "list")


# ---- outbox --------------------------------------------------------------------------------


def test_the_outbox_page_shows_the_pending_notifications(
    client: TestClient, web_store: WebStore
) -> None:
    pending = cli_json(web_store, "outbox")
    assert pending
    soup = soup_of(client, "/outbox")
    assert soup.select_one("h2#pending small").text == str(len(pending))
    rows = soup.select("h2#pending + div table tbody tr")
    assert [int(r.select_one("td").text) for r in rows] == [p["id"] for p in pending]
    first = rows[0].get_text(" ", strip=True)
    assert pending[0]["channel"] in first and pending[0]["study_id"] in first
    assert rows[0].select_one(f"a[href='/studies/{pending[0]['study_id']}']") is not None
    assert {p["study_id"] for p in pending} >= {STATUS_STUDY}
    assert soup.select_one("h2#dead small").text == "0"
    assert not soup.select("form[method=post]") and not soup.select("button")


def test_api_outbox_is_what_the_cli_prints(client: TestClient, web_store: WebStore) -> None:
    assert client.get("/api/outbox").json() == cli_json(web_store, "outbox")
    assert client.get("/api/outbox?dead=1").json() == cli_json(web_store, "outbox", "--dead")
    assert client.get("/api/outbox?dead=maybe").status_code == 400


def test_dead_letters_show_with_their_errors_masked(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'dead.db'}"
    store = Store.open(url)
    try:
        route = Route(channel="hook", mode="immediate", change_indexes=(0,), due_at=T0)
        add_version(store, STUDIES[0], 1, [status_change(STUDIES[0], 1)], routes=[route])
        add_version(store, STUDIES[1], 1, [status_change(STUDIES[1], 1)], routes=[route])
        claimed = store.claim_due(T0, "worker-1", T0 + timedelta(minutes=5), 1)
        outbox_id = claimed[0].studies[0].outbox_id
        error = "HTTP 410 from https://hooks.example.org/in?token=s3cret-value <b>gone</b>"
        store.mark_dead([outbox_id], "worker-1", error)
        for client in small_client(tmp_path, url):
            soup = soup_of(client, "/outbox")
            assert soup.select_one("h2#pending small").text == "1"
            assert soup.select_one("h2#dead small").text == "1"
            dead = soup.select_one("h2#dead + div table tbody tr")
            shown = dead.select_one("td.error-text").text
            assert "s3cret-value" not in shown and "hooks.example.org" in shown
            assert "<b>gone</b>" in shown and not dead.select("b")  # escaped, not markup
            only_dead = soup_of(client, "/outbox?dead=1")
            assert only_dead.select_one("h2#pending") is None
            assert [r["id"] for r in client.get("/api/outbox?dead=1").json()] == [outbox_id]
    finally:
        store.close()


def test_the_outbox_says_when_no_channel_is_configured(web_store: WebStore, tmp_path: Path) -> None:
    """An empty outbox reads as "all sent"; without a channel nothing is ever queued, and
    the page says so (and how to add one)."""
    with_channel = soup_of_app(web_store, web_store.config)
    assert with_channel.select_one("p.notice") is None
    bare = tmp_path / "trialwatch.toml"
    bare.write_text("")
    notice = soup_of_app(web_store, bare).select_one("p.notice").get_text()
    assert notice.startswith("No channel is configured") and "[[channels]]" in notice


def soup_of_app(web_store: WebStore, config: Path) -> BeautifulSoup:
    app = build_app(load_settings(config, {**web_store.env, "TRIALWATCH_CONFIG": str(config)}))
    try:
        with TestClient(create_app(app), client=("127.0.0.1", 1234)) as client:
            return BeautifulSoup(client.get("/outbox").text, "html.parser")
    finally:
        app.close()
