"""One trial, every registration, on the web: ``/trials/{ID}`` (and its JSON), the record
page's "Other registrations of this trial", and the list's lifecycle filter across registries.

The store is built the way users build theirs: the real records of ``tests/data/reference``
(EUCTR, CTIS, ISRCTN) and ``tests/data/records`` (ClinicalTrials.gov) served by the registry
emulators over HTTP and synced by the real CLI. NCT00973089 names its EudraCT number
2021-002179-21 (as tests/test_registries_sync.py has it), carries markup in its title and plans
300 participants where the EUCTR record plans 600; it is withdrawn while the EUCTR record is
still recruiting. CTIS 2023-505613-24-00 names NCT04665037 (watched, but no registry serves
it: not found) and EudraCT 2019-003842-34 (not watched); ISRCTN12949496 names EudraCT
2014-002988-16.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import twconfig
from bs4 import BeautifulSoup, Tag
from conftest import EU_REFERENCE, TESTS_DATA
from ctgov_emulator import Emulator
from eu_registries_emulator import EuEmulator
from starlette.testclient import TestClient

from service.app import build_app
from service.models import Change, LinkedId, Snapshot
from service.settings import load_settings
from service.store import NewVersion, Store
from service.store import browse_records as browse
from service.trial_store import load_trials
from service.web.app import create_app
from service.web.trials import trial_of
from web.conftest import MARKUP

NCT, EUCTR = "NCT00973089", "2021-002179-21"
CTIS, NAMED_NCT, NAMED_EUCTR = "2023-505613-24-00", "NCT04665037", "2019-003842-34"
ISRCTN = "ISRCTN12949496"
ALONE = ("NCT00763412", "NCT03475563")  # ClinicalTrials.gov records naming no registration
EU_WATCHED = (EUCTR, CTIS, "2022-500244-37-00", ISRCTN, "ISRCTN13281214")
FAST = {
    "requests_per_second": 100.0,
    "retry_initial_seconds": 0.0,
    "retry_max_seconds": 0.0,
    "max_attempts": 3,
    "timeout_seconds": 5,
}
ENDED = {"completed", "terminated", "withdrawn"}
GOING = {"not_yet_recruiting", "recruiting", "active_not_recruiting", "suspended"}


def soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def ctgov_study(study_id: str) -> dict[str, Any]:
    study = json.loads((TESTS_DATA / "records" / f"{study_id}.json").read_text())
    return study.get("study", study)  # type: ignore[no-any-return]


def linked_ctgov_record() -> dict[str, Any]:
    """NCT00973089 naming its EU registration, titled with markup, planning 300."""
    study = ctgov_study(NCT)
    protocol = study["protocolSection"]
    protocol["identificationModule"]["secondaryIdInfos"] = [{"id": EUCTR, "type": "EUDRACT_NUMBER"}]
    protocol["identificationModule"]["briefTitle"] = MARKUP
    protocol["designModule"]["enrollmentInfo"] = {"count": 300, "type": "ESTIMATED"}
    return study


@dataclass(frozen=True)
class Registries:
    client: TestClient
    run: twconfig.Run


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    root = tmp_path_factory.mktemp("trials")
    ctgov = Emulator.start()
    eu = EuEmulator.start(EU_REFERENCE)
    try:
        ctgov.publish(linked_ctgov_record(), date="2025-06-01")
        for study_id in ALONE:
            ctgov.publish(ctgov_study(study_id), date="2025-06-01")
        config = root / "trialwatch.toml"
        config.write_text(
            twconfig.table("[ctgov]", history=False, incremental=False, **FAST)
            + "".join(twconfig.table(f"[{key}]", **FAST) for key in ("euctr", "ctis", "isrctn"))
            + twconfig.table("[findings]", enabled=False)
        )
        env = {
            "TRIALWATCH_CONFIG": str(config),
            "TRIALWATCH_DATABASE_URL": f"sqlite:///{root / 'tw.db'}",
            "TRIALWATCH_CTGOV_API_URL": ctgov.api_url,
            "TRIALWATCH_CTGOV_HISTORY_URL": ctgov.history_url,
            **eu.environment(),
        }
        run = twconfig.runner(env)
        added = run("watch", "add", NCT, *ALONE, NAMED_NCT, *EU_WATCHED)
        assert added.exit_code == 0, added.stderr
        report = run("sync", "--json").json()
        # NCT04665037 is watched but no registry here serves it: it is not found
        assert [e["study_id"] for e in report["errors"]] == [NAMED_NCT]
        app = build_app(load_settings(config, env))
        try:
            with TestClient(create_app(app), client=("127.0.0.1", 1234)) as client:
                yield Registries(client, run)
        finally:
            app.close()
    finally:
        ctgov.stop()
        eu.stop()


@pytest.fixture
def client(registries: Registries) -> TestClient:
    return registries.client


def watches(registries: Registries) -> list[dict[str, Any]]:
    return registries.run("watch", "list", "--json").json()  # type: ignore[no-any-return]


def columns(page: BeautifulSoup | Tag) -> list[str]:
    return [th["data-study"] for th in page.select("table.trial thead th.trial-column")]  # type: ignore[misc]


def row(page: BeautifulSoup | Tag, key: str) -> list[Tag]:
    return page.select(f"table.trial tr.row-{key} td")


# ---- /trials/{ID} -------------------------------------------------------------------------


def test_the_trial_page_shows_both_registrations_side_by_side_and_marks_where_they_disagree(
    client: TestClient,
) -> None:
    answer = client.get(f"/trials/{EUCTR}")
    assert answer.status_code == 200
    page = soup(answer.text)
    assert columns(page) == [EUCTR, NCT]  # the id asked for first
    heads = page.select("table.trial thead th.trial-column")
    assert "asked for" in heads[0].get_text()
    assert [h.select_one("a.trial-id")["href"] for h in heads] == [
        f"/studies/{EUCTR}",
        f"/studies/{NCT}",
    ]
    assert [h.select_one(".trial-registry").get_text() for h in heads] == [
        "EU Clinical Trials Register",
        "ClinicalTrials.gov",
    ]
    # the disagreements, listed above the table
    listed = {li["data-field"]: li.get_text() for li in page.select("ul.trial-disagreements li")}
    assert "NCT00973089 says withdrawn, 2021-002179-21 still recruiting" in listed["lifecycle"]
    assert "enrollment 300 in NCT00973089, 600 in 2021-002179-21" in listed["enrollment"]
    # ... and marked in the cells: a class and a text mark, not colour alone
    for key, values in (("lifecycle", ["recruiting", "withdrawn"]), ("planned", ["600", "300"])):
        cells = row(page, key)
        assert all("differs" in cell["class"] for cell in cells), key
        assert [c.get_text().replace("≠ differs", "").strip() for c in cells] == values
        assert all(c.select_one(".differs-mark").get_text() == "≠ differs" for c in cells)
    assert "differs" in page.select_one("tr.row-lifecycle")["class"]
    # a row where they agree, or that is not compared, is not marked
    assert not any("differs" in (c.get("class") or []) for c in row(page, "start"))
    assert [c.get_text() for c in row(page, "start")] == ["2022-09-22", "2010-05"]
    assert [c.get_text() for c in row(page, "status")] == ["Ongoing", "Withdrawn"]
    assert row(page, "lifecycle")[0].select_one("a")["href"] == "/?lifecycle=recruiting"
    outcomes = row(page, "outcomes")[1].select("ol.trial-outcomes li")
    assert [li.get_text() for li in outcomes] == [
        "The success of the alternative treatment of the deep carious lesion."
    ]


@pytest.mark.parametrize("typed", [NCT.lower(), f"EUCTR{EUCTR}-FR", EUCTR])
def test_any_id_form_of_any_registration_finds_the_same_trial(
    client: TestClient, typed: str
) -> None:
    page = soup(client.get(f"/trials/{typed}").text)
    assert sorted(columns(page)) == sorted([EUCTR, NCT])


def test_registrations_not_stored_are_shown_by_id_linked_to_where_they_are(
    client: TestClient,
) -> None:
    for asked in (CTIS, NAMED_NCT, NAMED_EUCTR):  # stored, watched only, only named
        answer = client.get(f"/trials/{asked}")
        assert answer.status_code == 200, asked
        page = soup(answer.text)
        assert sorted(columns(page)) == sorted([CTIS, NAMED_NCT, NAMED_EUCTR]), asked
        assert columns(page)[0] == asked
    heads = {th["data-study"]: th for th in page.select("table.trial thead th.trial-column")}
    named = heads[NAMED_EUCTR]
    assert named.select_one(".not-watched").get_text() == "not watched"
    assert named.select_one("a.trial-id")["href"] == (
        f"https://www.clinicaltrialsregister.eu/ctr-search/search?query={NAMED_EUCTR}"
    )
    assert f"named by {CTIS}" in named.select_one(".trial-named").get_text()
    waiting = heads[NAMED_NCT]
    assert waiting.select_one(".not-synced").get_text() == "watched, not synced yet"
    assert waiting.select_one("a.trial-id")["href"] == f"/studies/{NAMED_NCT}"
    assert heads[CTIS].select_one("a.trial-id")["href"] == f"/studies/{CTIS}"
    # one stored registration: nothing to compare, no cell marked
    assert "Only one of these registrations is stored" in page.select_one(".trial-agree").text
    assert not page.select("table.trial td.differs")
    assert page.select_one("table.trial tr.row-title td.not-stored").get_text() == "–"


def test_the_json_is_the_trial_as_trialwatch_trials_prints_it(
    client: TestClient, registries: Registries
) -> None:
    (expected,) = registries.run("trials", ISRCTN, "--json").json()
    for path in (f"/api/trials/{ISRCTN}", f"/trials/{ISRCTN}.json", "/api/trials/2014-002988-16"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == expected, path
    (linked,) = registries.run("trials", NCT, "--json").json()
    document = client.get(f"/api/trials/{EUCTR}").json()
    assert document == linked
    assert "lifecycle" in {d["field"] for d in document["disagreements"]}
    page = soup(client.get(f"/trials/{ISRCTN}").text)
    assert page.select_one('head link[rel=alternate][type="application/json"]')["href"] == (
        f"/api/trials/{ISRCTN}"
    )


@pytest.mark.parametrize(
    ("bad", "forms"),
    [
        ("bad", ("NCT05605665", "2014-003140-12", "2023-505613-24-00", "ISRCTN12345678")),
        ("NCT123", ("NCT05605665",)),
        ("2023-505613-24-0", ("2023-505613-24-00",)),
        ("%3Cscript%3E", ("NCT05605665", "ISRCTN12345678")),
    ],
)
def test_an_id_of_no_registrys_form_is_a_400_naming_the_forms(
    client: TestClient, bad: str, forms: tuple[str, ...]
) -> None:
    answer = client.get(f"/trials/{bad}")
    assert answer.status_code == 400
    error = soup(answer.text).select_one("p.error").get_text()
    assert "is not a" in error and "\n" not in error
    assert all(form in error for form in forms), error
    assert "<script" not in answer.text.lower()
    api = client.get(f"/api/trials/{bad}")
    assert api.status_code == 400 and all(form in api.json()["error"] for form in forms)
    assert client.get(f"/trials/{bad}.json").json()["status"] == 400


def test_an_id_nothing_stored_is_or_names_is_a_404_that_says_so(client: TestClient) -> None:
    answer = client.get("/trials/NCT99999999")
    assert answer.status_code == 404
    error = soup(answer.text).select_one("p.error").get_text()
    assert error.startswith("NCT99999999: no stored record is this registration or names it")
    api = client.get("/api/trials/ISRCTN99999999")
    assert api.status_code == 404 and api.json()["error"].startswith("ISRCTN99999999: no stored")


def test_registry_text_is_escaped_in_the_trial_table(
    client: TestClient, registries: Registries
) -> None:
    title = next(w["title"] for w in watches(registries) if w["study_id"] == NCT)
    assert title.startswith("<script>")  # the markup reached the store as text
    for path in (f"/trials/{NCT}", f"/studies/{EUCTR}"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert "<script" not in answer.text.lower(), path
        assert "&lt;script&gt;" in answer.text, path
        assert "script-src" not in answer.headers["content-security-policy"]
        page = soup(answer.text)
        (cell,) = [c for c in row(page, "title") if c.get_text() == title]
        assert not cell.select("*")  # text, not elements


def test_nothing_here_writes(client: TestClient) -> None:
    for path in (f"/trials/{NCT}", f"/api/trials/{NCT}", f"/trials/{NCT}.json"):
        assert client.post(path).status_code == 405, path


# ---- the record page ----------------------------------------------------------------------


def test_the_record_page_shows_its_other_registrations_side_by_side(client: TestClient) -> None:
    page = soup(client.get(f"/studies/{NCT}").text)
    section = page.select_one("section.other-registrations")
    assert section is not None
    assert section.select_one("h2").get_text().startswith("Other registrations of this trial")
    assert columns(section) == [NCT, EUCTR]  # this record first
    assert "this record" in section.select_one("th.asked").get_text()
    assert [c.get_text().split()[0] for c in row(section, "lifecycle")] == [
        "withdrawn",
        "recruiting",
    ]
    assert all("differs" in c["class"] for c in row(section, "lifecycle"))
    assert "still recruiting" in section.select_one("ul.trial-disagreements").get_text()
    links = [a["href"] for a in section.select("p.trial-more a")]
    assert links == [f"/trials/{NCT}", f"/api/trials/{NCT}"]
    # a record named by another, and one naming ids not stored, have the section too
    assert columns(soup(client.get(f"/studies/{EUCTR}").text))[0] == EUCTR
    assert len(columns(soup(client.get(f"/studies/{CTIS}").text))) == 3


def test_a_record_registered_once_has_no_such_section(client: TestClient) -> None:
    for study_id in ALONE:
        answer = client.get(f"/studies/{study_id}")
        assert answer.status_code == 200
        assert soup(answer.text).select_one("section.other-registrations") is None
        # its trial page: the record alone, saying so
        alone = soup(client.get(f"/trials/{study_id}").text)
        assert columns(alone) == [study_id]
        assert (
            "No other registration of this trial is known" in alone.select_one(".trial-agree").text
        )


# ---- the list's lifecycle filter ----------------------------------------------------------


def listed(html: str) -> list[str]:
    return [r.select_one("td a").get_text() for r in soup(html).select("table.records tbody tr")]


@pytest.mark.parametrize("plan", ["gathered", "walked"])
@pytest.mark.parametrize(
    ("value", "lifecycles"),
    [
        ("ended", ENDED),
        ("going", GOING),
        ("recruiting", {"recruiting"}),
        ("unknown", {"unknown"}),
        ("suspended", {"suspended"}),
    ],
)
@pytest.mark.parametrize("sort", ["id", "status", "-changed"])
def test_the_lifecycle_filter_keeps_exactly_those_records_across_registries(
    client: TestClient,
    registries: Registries,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    lifecycles: set[str],
    sort: str,
    plan: str,
) -> None:
    if plan == "walked":
        monkeypatch.setattr(browse, "FEW_MATCHES", 0)
    every = watches(registries)
    expected = sorted(w["study_id"] for w in every if w["lifecycle"] in lifecycles)
    items = client.get(f"/api/studies?lifecycle={value}&sort={sort}").json()
    assert sorted(w["study_id"] for w in items) == expected
    html = client.get(f"/?lifecycle={value}&sort={sort}")
    assert html.status_code == 200
    assert sorted(listed(html.text)) == expected
    assert soup(html.text).select_one("select[name=lifecycle] option[selected]")["value"] == value


def test_the_groups_span_the_registries(client: TestClient, registries: Registries) -> None:
    ended = {
        (w["registry"], w["study_id"]) for w in client.get("/api/studies?lifecycle=ended").json()
    }
    going = {
        (w["registry"], w["study_id"]) for w in client.get("/api/studies?lifecycle=going").json()
    }
    assert {registry for registry, _ in ended} == {"ctgov", "isrctn"}
    assert {registry for registry, _ in going} == {"ctis", "euctr"}
    assert ("ctgov", NCT) in ended and ("euctr", EUCTR) in going
    assert not ended & going
    # with the other filters: every one must hold
    both = client.get(f"/api/studies?lifecycle=ended&q={ISRCTN}").json()
    assert [w["study_id"] for w in both] == [ISRCTN]
    assert client.get(f"/api/studies?lifecycle=going&q={ISRCTN}").json() == []
    page = soup(client.get("/?lifecycle=going&q=nothing-matches").text)
    assert "No watched record matches these filters" in page.select_one("p.empty").get_text()


def test_two_at_a_time_the_filtered_list_pages_through_every_match_once(
    client: TestClient, registries: Registries
) -> None:
    expected = sorted(w["study_id"] for w in watches(registries) if w["lifecycle"] in ENDED)
    seen: list[str] = []
    url: str | None = "/api/studies?lifecycle=ended&size=2"
    while url:
        answer = client.get(url)
        seen += [w["study_id"] for w in answer.json()]
        link = answer.headers.get("link")
        url = link[1 : link.index(">")] if link else None
    assert sorted(seen) == expected and len(seen) == len(set(seen))


@pytest.mark.parametrize("value", ["nope", "ENDED", "Recruiting", "ended,going"])
def test_an_unknown_lifecycle_is_a_one_line_400(client: TestClient, value: str) -> None:
    message = f"lifecycle: {value!r} is not one of ended, going, not_yet_recruiting"
    page = client.get(f"/?lifecycle={value}")
    assert page.status_code == 400
    error = soup(page.text).select_one("p.error").get_text()
    assert error.startswith(message) and "\n" not in error
    api = client.get(f"/api/studies?lifecycle={value}")
    assert api.status_code == 400 and api.json()["error"].startswith(message)


def test_the_filter_form_offers_every_lifecycle_and_the_groups(client: TestClient) -> None:
    options = soup(client.get("/").text).select("select[name=lifecycle] option")
    assert [o["value"] for o in options] == [
        "",
        "ended",
        "going",
        "not_yet_recruiting",
        "recruiting",
        "active_not_recruiting",
        "completed",
        "terminated",
        "suspended",
        "withdrawn",
        "unknown",
    ]
    assert options[1].get_text() == "any ended"


def test_the_fixture_holds_what_the_tests_say(registries: Registries) -> None:
    by_id = {w["study_id"]: w for w in watches(registries)}
    assert by_id[NCT]["lifecycle"] == "withdrawn" and by_id[EUCTR]["lifecycle"] == "recruiting"
    assert {(n["registry"], n["study_id"]) for n in by_id[CTIS]["linked"]} == {
        ("ctgov", NAMED_NCT),
        ("euctr", NAMED_EUCTR),
    }
    assert by_id[NAMED_NCT]["state"] == "not found"  # reported once, then asked rarely
    assert {by_id[i]["registry"] for i in by_id} == {"ctgov", "euctr", "ctis", "isrctn"}
    assert Path(EU_REFERENCE / "isrctn" / "ISRCTN_12949496.json").exists()


# ---- a store built through the Store API: the walk and the filter, SQLite and PostgreSQL -----

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
# (registry, id, lifecycle, the registrations it names)
BUILT: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("ctgov", "NCT10000001", "recruiting", (("euctr", "2020-000001-01"),)),
    ("euctr", "2020-000001-01", "completed", ()),
    # two records joined only through an id neither stores
    ("ctis", "2023-500001-01-00", "suspended", (("ctgov", "NCT10000003"),)),
    ("isrctn", "ISRCTN10000004", "terminated", (("ctgov", "NCT10000003"),)),
    # a chain: each names the next
    ("ctgov", "NCT10000010", "active_not_recruiting", (("euctr", "2020-000010-10"),)),
    ("euctr", "2020-000010-10", "withdrawn", (("ctis", "2023-500010-10-00"),)),
    ("ctis", "2023-500010-10-00", "not_yet_recruiting", (("isrctn", "ISRCTN10000010"),)),
    ("ctgov", "NCT10000005", "unknown", ()),
    # names NCT10000001 but is no longer watched: no part of any trial
    ("euctr", "2020-000007-07", "completed", (("ctgov", "NCT10000001"),)),
)
UNWATCHED = ("euctr", "2020-000007-07")


def build_linked(url: str) -> None:
    store = Store.open(url)
    try:
        for registry, study_id, lifecycle, named in BUILT:
            store.add_watches(registry, [study_id], [], T0)
            snapshot = Snapshot(
                registry=registry,
                study_id=study_id,
                brief_title=f"Trial {study_id}",
                lifecycle=lifecycle,
                linked=tuple(LinkedId(r, i, "ids") for r, i in named),
            )
            version = NewVersion(
                registry=registry,
                snapshot=snapshot,
                raw={"id": study_id},
                registry_version=None,
                last_update_posted=T0.date().isoformat(),
                fetched_at=T0,
            )
            added = Change(
                registry=registry,
                study_id=study_id,
                kind="record_added",
                field="",
                severity="low",
                summary="new",
            )
            store.save_version(version, [added], None)
        store.remove_watches(*UNWATCHED[:1], [UNWATCHED[1]])
    finally:
        store.close()


@pytest.fixture
def linked_store(database_url: str, tmp_path: Path) -> Iterator[tuple[Store, TestClient]]:
    build_linked(database_url)
    config = tmp_path / "trialwatch.toml"
    config.write_text("")
    app = build_app(load_settings(config, {"TRIALWATCH_DATABASE_URL": database_url}))
    try:
        with TestClient(create_app(app), client=("127.0.0.1", 1234)) as client:
            yield app.store, client
    finally:
        app.close()


def test_the_walk_from_any_registration_finds_the_trial_trialwatch_trials_groups(
    linked_store: tuple[Store, TestClient],
) -> None:
    store, _ = linked_store
    keys = {(r, i) for r, i, _, _ in BUILT} | {k for *_, named in BUILT for k in named}
    nowhere = ("ctgov", "NCT19999999")
    for key in sorted(keys | {nowhere}):
        walked = trial_of(store, key)
        grouped = load_trials(store, [key])
        if key in (UNWATCHED, nowhere):
            assert walked is None and grouped == [], key
            continue
        assert walked is not None and grouped, key
        assert walked.to_json() == grouped[0].to_json(), key
    chain = trial_of(store, ("isrctn", "ISRCTN10000010"))  # only named, at the chain's end
    assert chain is not None
    assert [r.study_id for r in chain.registrations] == [
        "NCT10000010",
        "2023-500010-10-00",
        "2020-000010-10",
        "ISRCTN10000010",
    ]
    joined = trial_of(store, ("ctis", "2023-500001-01-00"))
    assert joined is not None
    assert {r.study_id for r in joined.registrations} == {
        "NCT10000003",
        "2023-500001-01-00",
        "ISRCTN10000004",
    }
    first = trial_of(store, ("ctgov", "NCT10000001"))
    assert first is not None and UNWATCHED[1] not in {r.study_id for r in first.registrations}


@pytest.mark.parametrize("plan", ["gathered", "walked"])
def test_the_lifecycle_filter_on_sqlite_and_postgresql(
    linked_store: tuple[Store, TestClient], monkeypatch: pytest.MonkeyPatch, plan: str
) -> None:
    _, client = linked_store
    if plan == "walked":
        monkeypatch.setattr(browse, "FEW_MATCHES", 0)
    watched = [(r, i, life) for r, i, life, _ in BUILT if (r, i) != UNWATCHED]
    for value, lifecycles in (("ended", ENDED), ("going", GOING), ("unknown", {"unknown"})):
        expected = sorted(i for _, i, life in watched if life in lifecycles)
        for sort in ("id", "status", "-changed"):
            items = client.get(f"/api/studies?lifecycle={value}&sort={sort}&size=2")
            found = [w["study_id"] for w in items.json()]
            link = items.headers.get("link")
            while link:
                items = client.get(link[1 : link.index(">")])
                found += [w["study_id"] for w in items.json()]
                link = items.headers.get("link")
            assert sorted(found) == expected, (value, sort)
    page = soup(client.get("/trials/NCT10000003").text)
    assert sorted(columns(page)) == ["2023-500001-01-00", "ISRCTN10000004", "NCT10000003"]
