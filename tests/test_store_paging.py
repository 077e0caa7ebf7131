"""The watch list and the change log read page by page, on SQLite and on the real PostgreSQL:
a whole registry's watches (600,000) or changes (a million) are never all in memory, the
pages together are exactly the list read whole, and a reader that stops early (``changes
--limit``) reads no page past the one it stopped in.

Built from the real ClinicalTrials.gov records in ``/work/shared/reference/ctgov``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from service.cycle.store import record_added
from service.diff import diff
from service.registry.ctgov_normalise import normalise
from service.store import NewVersion, Store

REFERENCE = Path("/work/shared/reference/ctgov")
T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


def reference_records() -> list[dict[str, Any]]:
    """The reference studies (one file each: ``NCT########.json``)."""
    files = sorted(p for p in REFERENCE.glob("NCT*.json") if re.fullmatch(r"NCT\d{8}", p.stem))
    return [json.loads(p.read_text(encoding="utf-8")) for p in files]


def new_version(raw: dict[str, Any], at: datetime) -> NewVersion:
    return NewVersion(
        registry="ctgov",
        snapshot=normalise(raw),
        raw=raw,
        registry_version=None,
        last_update_posted=at.date().isoformat(),
        fetched_at=at,
    )


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """The reference studies watched and stored (each with its ``record_added``), one of them
    terminated a day later (its status change), and one more id watched, never synced."""
    opened = Store.open(database_url)
    records = reference_records()
    ids = [normalise(raw).study_id for raw in records]
    opened.add_watches("ctgov", [*ids, "NCT99999999"], (), T0)
    for raw in records:
        first = new_version(raw, T0)
        opened.save_version(first, [record_added(first.snapshot)], None)
    edited = json.loads(json.dumps(records[0]))
    edited["protocolSection"]["statusModule"]["overallStatus"] = "TERMINATED"
    later = new_version(edited, T0 + timedelta(days=1))
    opened.save_version(later, diff(normalise(records[0]), later.snapshot), None)
    yield opened
    opened.close()


class Statements:
    """The SQL statements the store sends while it is in use (an engine event: what the
    database really received)."""

    def __init__(self, store: Store, table: str) -> None:
        self.sent: list[str] = []
        self._table = table
        event.listen(store.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if f"FROM {self._table}" in statement:
            self.sent.append(statement)


def test_the_watch_list_read_in_pages_is_the_whole_list_in_order(store: Store) -> None:
    whole = store.list_watches()
    watched = Statements(store, "watches")
    paged = list(store.iter_watches(page_size=3))
    assert paged == whole
    assert len(whole) == len(reference_records()) + 1
    assert [(w.registry, w.study_id) for w in paged] == sorted(
        (w.registry, w.study_id) for w in whole
    )
    assert paged[-1].study_id == "NCT99999999" and paged[-1].state == "never synced"
    assert all(w.state == "active" and w.versions >= 1 for w in paged[:-1])
    # a query of at most 3 rows a page: ceil(n / 3) pages, and one more when n divides evenly
    assert len(watched.sent) == len(whole) // 3 + 1
    assert all("LIMIT" in statement for statement in watched.sent)


def test_the_change_log_read_in_pages_is_the_whole_log_oldest_first(store: Store) -> None:
    whole = store.list_changes()
    paged = list(store.iter_changes(page_size=2))
    assert paged == whole
    assert [c.id for c in paged] == sorted(c.id for c in paged)
    kinds = [c.kind for c in paged]
    assert kinds.count("record_added") == len(reference_records())
    assert kinds[-1] == "status_changed" and paged[-1].new == "TERMINATED"
    # a filter holds across page boundaries
    terminated = list(store.iter_changes(kind="status_changed", page_size=1))
    assert [(c.study_id, c.new) for c in terminated] == [(paged[-1].study_id, "TERMINATED")]
    # newest first, in pages too (`changes --limit N` reads the newest N and nothing before)
    assert list(store.iter_changes(page_size=2, newest=True)) == whole[::-1]


def test_a_reader_that_stops_early_reads_no_further_page(store: Store) -> None:
    log = Statements(store, "changes")
    first = store.list_changes(limit=2)
    assert first == store.list_changes()[:2]
    log.sent.clear()
    pages = store.iter_changes(page_size=2)
    assert [next(pages), next(pages)] == first
    assert len(log.sent) == 1  # the first page only; the next is asked when read


# ---- who names whom: record_links, kept by the database --------------------------------------

NAMING = "NCT02513394"  # its secondary ids name the EU Clinical Trials Register entry below
NAMED = ("euctr", "2014-005181-30")


def test_the_records_naming_a_registration_are_found_by_the_links_the_database_keeps(
    store: Store,
) -> None:
    assert store.records_linked_to([NAMED]) == {("ctgov", NAMING): [NAMED]}
    [raw] = [r for r in reference_records() if normalise(r).study_id == NAMING]
    unlinked = json.loads(json.dumps(raw))
    del unlinked["protocolSection"]["identificationModule"]["secondaryIdInfos"]
    later = new_version(unlinked, T0 + timedelta(days=2))
    store.save_version(later, diff(normalise(raw), later.snapshot), None)
    assert store.records_linked_to([NAMED]) == {}  # its next version names it no more
    store.save_version(new_version(raw, T0 + timedelta(days=3)), [], None)
    assert store.records_linked_to([NAMED]) == {("ctgov", NAMING): [NAMED]}


def test_a_store_made_before_the_links_table_gets_it_filled_when_upgraded(
    store: Store, database_url: str
) -> None:
    from alembic import command

    from service.migrate import alembic_config, stored_revision

    command.downgrade(alembic_config(store.engine), "0014")
    assert stored_revision(store.engine) == "0014"
    store.close()
    upgraded = Store.open(database_url)
    try:
        assert upgraded.records_linked_to([NAMED]) == {("ctgov", NAMING): [NAMED]}
    finally:
        upgraded.close()


def test_watched_links_name_each_records_registrations_and_every_stored_record(
    store: Store,
) -> None:
    links = store.watched_links()
    stored = {("ctgov", normalise(raw).study_id) for raw in reference_records()}
    assert set(links) == stored  # the watch never synced has no record, so no entry
    assert links[("ctgov", NAMING)] == [NAMED]
    assert links[("ctgov", "NCT02552212")] == [("euctr", "2015-001894-41")]
    assert sum(1 for named in links.values() if named) == 2


def test_a_tag_finds_its_watches_and_not_those_of_a_tag_that_contains_it(store: Store) -> None:
    ids = sorted(normalise(raw).study_id for raw in reference_records())
    store.add_watches("ctgov", ids[:2], ("linked",), T0)
    store.add_watches("ctgov", ids[2:4], ("linked_2", "50%_linked"), T0)
    assert store.tagged_watches("linked") == [("ctgov", i) for i in ids[:2]]
    assert store.tagged_watches("50%_linked") == [("ctgov", i) for i in ids[2:4]]
    assert store.tagged_watches("50%") == []


def test_a_whole_watch_lists_states_are_read_in_one_pass_and_are_those_read_in_batches(
    store: Store,
) -> None:
    from service.store.records import WHOLE_READ

    ids = sorted(normalise(raw).study_id for raw in reference_records())
    few = store.record_states("ctgov", ids)
    unknown = [f"NCT8{n:07d}" for n in range(WHOLE_READ)]  # watched nowhere, stored nowhere
    statements = Statements(store, "records")
    whole = store.record_states("ctgov", [*ids, *unknown])
    assert whole == few and set(whole) == set(ids)
    assert len(statements.sent) == 1


def test_the_trials_review_reads_only_the_records_that_name_or_are_named(store: Store) -> None:
    """What ``load_trials(min_stored=2)`` (the review of trials whose registrations can
    disagree, every cycle) reads: the records linked either way, not the whole store; and the
    trials it finds are the ones a read of every record finds."""
    from service.trial_store import load_trials

    eu_study = NAMED[1]
    store.add_watches("euctr", [eu_study], (), T0)
    store.add_watches("ctgov", [NAMING], (), T0)
    # a record of the EU register under that number, naming nothing itself
    euctr = new_version(reference_records()[0], T0)
    euctr = NewVersion(
        registry="euctr",
        snapshot=euctr.snapshot.model_copy(update={"registry": "euctr", "study_id": eu_study}),
        raw={"eudract_number": eu_study},
        registry_version=None,
        last_update_posted=T0.date().isoformat(),
        fetched_at=T0,
    )
    store.save_version(euctr, [], None)
    linked = store.linked_watched_links()
    assert linked == {
        ("ctgov", NAMING): [NAMED],
        NAMED: [],
        ("ctgov", "NCT02552212"): [("euctr", "2015-001894-41")],
    }
    whole = store.watched_links()
    assert len(whole) == len(reference_records()) + 1 and all(
        whole[k] == v for k, v in linked.items()
    )
    trials = load_trials(store, min_stored=2)
    assert [[(r.registry, r.study_id) for r in t.registrations] for t in trials] == [
        [("ctgov", NAMING), NAMED]
    ]


def test_hundreds_of_records_naming_one_id_are_not_reviewed_as_one_trial(store: Store) -> None:
    """Records by the hundred naming one id (a grant, a programme) are not one trial: the
    review leaves that group out instead of comparing every one of them each cycle, and still
    reviews the real trials."""
    from service.trial_store import MAX_REVIEWED_REGISTRATIONS, load_trials

    [naming] = [r for r in reference_records() if normalise(r).study_id == NAMING]
    copies = [f"NCT7{n:07d}" for n in range(MAX_REVIEWED_REGISTRATIONS)]
    store.add_watches("ctgov", copies, (), T0)
    for study_id in copies:  # the real record under other numbers, naming the same EU entry
        copy = json.loads(json.dumps(naming))
        copy["protocolSection"]["identificationModule"]["nctId"] = study_id
        store.save_version(new_version(copy, T0), [], None)
    other_eu = "2015-001894-41"  # named by NCT02552212 alone: a trial of two stored records
    store.add_watches("euctr", [other_eu], (), T0)
    eu = new_version(reference_records()[0], T0)
    snapshot = eu.snapshot.model_copy(update={"registry": "euctr", "study_id": other_eu})
    store.save_version(
        NewVersion("euctr", snapshot, {"eudract_number": other_eu}, None, "2026-11-20", T0),
        [],
        None,
    )
    trials = load_trials(store, min_stored=2)
    assert [[(r.registry, r.study_id) for r in t.registrations] for t in trials] == [
        [("ctgov", "NCT02552212"), ("euctr", other_eu)]
    ]
    # asked for by a record of the group, it is still shown whole (`trialwatch trials ID`)
    [asked] = load_trials(store, [("ctgov", copies[0])])
    assert len(asked.registrations) == MAX_REVIEWED_REGISTRATIONS + 2
