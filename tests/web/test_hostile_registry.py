"""Registry text that carries markup and ``javascript:`` URLs, on every page, feed entry and
the report: shown as text, never a tag, an event handler or a link a click would run.

A real record (NCT00763412) is published by the registry emulator with hostile text in its
titles, summary, sponsor, conditions and outcome measure, synced by the real CLI, then edited
(the outcome and the status change), so that the diffs of the changes carry it too.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from ctgov_emulator import Emulator
from starlette.testclient import TestClient

from service.app import build_app
from service.settings import load_settings
from service.web.app import create_app
from web.conftest import FINDINGS, WebStore, _config, load

STUDY = "NCT00763412"
JS = "javascript:alert(document.domain)"
HOSTILE = {
    "title": f'<a href="{JS}">click</a><script>alert(1)</script>',
    "official": f"[a link]({JS}) <iframe src={JS}></iframe>",
    "summary": f'<img src=x onerror="alert(2)"> {JS} <svg onload=alert(3)>',
    "sponsor": f'<a href="{JS}" onclick="alert(4)">Sponsor</a>',
    "condition": f"<b onmouseover=alert(5)>Obesity</b> {JS}",
    "measure": f'BMI <a href="{JS}">see</a> <object data="{JS}"></object>',
}
DANGEROUS_TAGS = ("script", "img", "iframe", "object", "embed", "svg:not(.chart)", "form")
URL_ATTRIBUTES = ("href", "src", "action", "formaction", "data", "xlink:href")


def hostile(study: dict[str, Any], status: str = "COMPLETED", measure: str = "") -> dict[str, Any]:
    copied = copy.deepcopy(study)
    ps = copied["protocolSection"]
    ps["identificationModule"]["briefTitle"] = HOSTILE["title"]
    ps["identificationModule"]["officialTitle"] = HOSTILE["official"]
    ps["descriptionModule"]["briefSummary"] = HOSTILE["summary"]
    ps["sponsorCollaboratorsModule"]["leadSponsor"]["name"] = HOSTILE["sponsor"]
    ps["conditionsModule"]["conditions"] = [HOSTILE["condition"]]
    ps["outcomesModule"]["primaryOutcomes"][0]["measure"] = measure or HOSTILE["measure"]
    ps["statusModule"]["overallStatus"] = status
    return copied


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStore]:
    root = tmp_path_factory.mktemp("hostile")
    registry = Emulator.start()
    try:
        env = {
            "TRIALWATCH_CONFIG": str(_config(root / "trialwatch.toml")),
            "TRIALWATCH_DATABASE_URL": f"sqlite:///{root / 'tw.db'}",
            "TRIALWATCH_CTGOV_API_URL": registry.api_url,
            "TRIALWATCH_CTGOV_HISTORY_URL": registry.history_url,
            "TW_TEST_HOOK_SECRET": "web-test-secret",
        }
        store = WebStore(env["TRIALWATCH_DATABASE_URL"], Path(env["TRIALWATCH_CONFIG"]), env, ())
        real = load(FINDINGS / f"{STUDY}.json")
        registry.publish(hostile(real), date="2017-06-05")
        assert store.run("watch", "add", STUDY).exit_code == 0
        assert store.run("sync").exit_code == 0
        edited = hostile(real, "TERMINATED", f"Weight <a href='{JS}'>now</a> {JS}")
        registry.publish(edited, date="2018-01-10")
        assert store.run("sync").exit_code == 0
        report = root / "report.html"
        assert store.run("report", "--out", str(report)).exit_code == 0
        yield store
    finally:
        registry.stop()


@pytest.fixture(scope="module")
def hostile_client(hostile_store: WebStore) -> Iterator[TestClient]:
    app = build_app(load_settings(hostile_store.config, hostile_store.env))
    try:
        with TestClient(create_app(app), client=("127.0.0.1", 1234)) as client:
            yield client
    finally:
        app.close()


def problems(markup: str) -> list[str]:
    """Every tag, handler or URL in ``markup`` that registry text could have put there."""
    soup = BeautifulSoup(markup, "html.parser")
    ours = set(soup.select("form.filters, link[rel=icon]"))  # the layout's own, never data
    found = [f"<{t.name}>" for t in soup.select(", ".join(DANGEROUS_TAGS)) if t not in ours]
    for tag in soup.find_all(True):
        if tag in ours:
            continue
        for name, value in tag.attrs.items():
            text = " ".join(value) if isinstance(value, list) else str(value)
            if name.lower().startswith("on"):
                found.append(f"{tag.name} {name}")
            scheme = "".join(text.split()).lower()
            if name.lower() in URL_ATTRIBUTES and scheme.startswith(("javascript:", "data:")):
                found.append(f"{tag.name} {name}={text}")
    return found


PAGES = (
    "/",
    f"/?q={STUDY}",
    f"/studies/{STUDY}",
    f"/trials/{STUDY}",
    "/changes?all=yes",
    f"/changes?study={STUDY}&all=yes",
    "/findings",
    "/seeds",
    "/outbox",
)


def test_hostile_registry_text_is_text_on_every_page(hostile_client: TestClient) -> None:
    shown = ""
    for path in PAGES:
        answer = hostile_client.get(path)
        assert answer.status_code in (200, 404), (path, answer.status_code)
        assert problems(answer.text) == [], path
        shown += BeautifulSoup(answer.text, "html.parser").get_text(" ")
    # the text itself reached the pages, as text (the normaliser folds the markup away)
    assert "click" in shown and JS in shown


def test_hostile_registry_text_is_text_in_every_feed_entry(hostile_client: TestClient) -> None:
    for path in ("/feeds/changes.atom?all=yes", f"/feeds/changes.atom?study={STUDY}&all=yes"):
        answer = hostile_client.get(path)
        assert answer.status_code == 200, path
        feed = ET.fromstring(answer.content)
        atom = "{http://www.w3.org/2005/Atom}"
        entries = feed.findall(f"{atom}entry")
        assert entries, path
        for entry in entries:
            for link in entry.findall(f"{atom}link"):
                assert not link.get("href", "").lower().startswith("javascript:")
            content = entry.find(f"{atom}content")
            if content is not None and content.text:
                assert problems(content.text) == [], content.text[:300]
            title = entry.find(f"{atom}title")
            assert title is not None and "<script" not in (title.get("type") or "")


def test_hostile_registry_text_is_text_in_the_report(hostile_store: WebStore) -> None:
    report = Path(hostile_store.config).parent / "report.html"
    text = report.read_text()
    assert problems(text) == []
    assert JS in BeautifulSoup(text, "html.parser").get_text(" ")
