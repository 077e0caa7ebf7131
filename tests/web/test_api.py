"""The read-only JSON at ``/api/…``: the CLI's ``--json`` shapes, byte for byte where the CLI
prints the same set (``trialwatch changes --json`` is oldest first: ``order=oldest`` gives
exactly that; the default is newest first)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from web.conftest import DEMO_STUDY, STATUS_STUDY, WebStore
from web.test_changes_page import cli_json

ROUTES = (
    "/changes",
    "/api/changes",
    "/findings",
    "/api/findings",
    "/seeds",
    "/api/seeds",
    "/outbox",
    "/api/outbox",
    "/feeds/changes.atom",
)


def test_api_changes_is_the_clis_changes_newest_first(
    client: TestClient, web_store: WebStore
) -> None:
    answer = client.get("/api/changes?size=500")  # every change, as the CLI lists them
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert "link" not in answer.headers  # one page holds them all
    listed = answer.json()
    assert isinstance(listed, list)
    assert listed == list(reversed(cli_json(web_store, "changes")))
    assert any(c["kind"] == "status_changed" for c in client.get("/api/changes").json())


@pytest.mark.parametrize(
    ("query", "flags"),
    [
        ("", ()),
        ("kind=status_changed", ("--kind", "status_changed")),
        (f"study={DEMO_STUDY}", ("--study", DEMO_STUDY)),
        (
            f"study={STATUS_STUDY.lower()}&kind=record_added",
            ("--study", STATUS_STUDY, "--kind", "record_added"),
        ),
        ("since=2000-01-01", ("--since", "2000-01-01")),
    ],
)
def test_order_oldest_is_exactly_what_the_cli_prints(
    client: TestClient, web_store: WebStore, query: str, flags: tuple[str, ...]
) -> None:
    listed = client.get(f"/api/changes?order=oldest&size=500&{query}").json()
    assert listed == cli_json(web_store, "changes", *flags)


def test_the_next_page_is_in_the_link_header(client: TestClient, web_store: WebStore) -> None:
    first = client.get("/api/changes?size=5&all=yes")
    assert len(first.json()) == 5
    following = client.get(first.links["next"]["url"]).json()
    every = list(reversed(cli_json(web_store, "changes")))
    assert first.json() + following == every[:10]


def test_non_ascii_is_sent_as_utf8(client: TestClient) -> None:
    answer = client.get(f"/api/changes?study={STATUS_STUDY}&kind=status_changed")
    assert "→".encode() in answer.content and b"\\u2192" not in answer.content


def test_errors_are_json_naming_the_parameter(client: TestClient) -> None:
    answer = client.get("/api/changes?kind=nope")
    assert answer.status_code == 400
    assert answer.json()["status"] == 400 and answer.json()["error"].startswith("kind: 'nope'")
    assert client.get("/api/findings?rule=nope").json()["error"].startswith("rule: 'nope'")


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_there_is_no_write_endpoint(client: TestClient, path: str, method: str) -> None:
    assert client.request(method, path).status_code == 405
