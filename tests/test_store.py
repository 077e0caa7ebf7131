"""The store, on SQLite and on the real PostgreSQL: migrations, watches, versions, changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from service.errors import StoreConflict, StoreError
from service.migrate import HEAD, current_revision, head_revision, stored_revision
from service.models import Change, Route, Snapshot
from service.store import Base, FirstSighting, NewVersion, NextVersion, Store, database_url

T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


def snapshot(status: str = "RECRUITING", count: int = 30) -> Snapshot:
    return Snapshot(
        study_id="NCT05605665",
        brief_title="Low-dose IL-2 and rapamycin",
        overall_status=status,
        enrollment_count=count,
        enrollment_type="ESTIMATED",
    )


def version(snap: Snapshot, at: datetime = T0, registry_version: int | None = None) -> NewVersion:
    return NewVersion(
        registry="ctgov",
        snapshot=snap,
        raw={"protocolSection": {"statusModule": {"overallStatus": snap.overall_status}}},
        registry_version=registry_version,
        last_update_posted="2026-11-19",
        fetched_at=at,
    )


def status_change(old: str, new: str) -> Change:
    return Change(
        study_id="NCT05605665",
        kind="status_changed",
        field="protocolSection.statusModule.overallStatus",
        old=old,
        new=new,
        severity="medium",
        summary=f"Overall status: {old} → {new}",
    )


@pytest.fixture
def store(database_url: str) -> Store:
    opened = Store.open(database_url)
    yield opened
    opened.close()


def test_migrations_build_exactly_the_schema_the_code_uses(store: Store) -> None:
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    assert current_revision(store.engine) == head_revision(store.engine)


def test_opening_an_existing_store_again_changes_nothing(database_url: str) -> None:
    first = Store.open(database_url)
    first.add_watches("ctgov", ["NCT05605665"], [], T0)
    first.close()
    again = Store.open(database_url)
    assert again.watched_ids("ctgov") == ["NCT05605665"]
    again.close()


def test_adding_a_watch_twice_keeps_one_and_merges_tags(store: Store) -> None:
    assert store.add_watches("ctgov", ["NCT05605665", "NCT03418623"], ["sjogren"], T0) == [
        "NCT05605665",
        "NCT03418623",
    ]
    assert store.add_watches("ctgov", ["NCT05605665"], ["il2"], T0) == []
    watches = {w.study_id: w for w in store.list_watches()}
    assert set(watches) == {"NCT03418623", "NCT05605665"}
    assert watches["NCT05605665"].tags == ("il2", "sjogren")
    assert watches["NCT05605665"].state == "never synced"
    assert watches["NCT05605665"].added_at == T0


def test_removing_a_watch_keeps_the_stored_history(store: Store) -> None:
    store.add_watches("ctgov", ["NCT05605665"], [], T0)
    store.save_version(version(snapshot()), [], None)
    assert store.remove_watches("ctgov", ["NCT05605665"]) == ["NCT05605665"]
    assert store.watched_ids("ctgov") == []
    assert len(store.list_versions("ctgov", "NCT05605665")) == 1


def test_a_version_and_its_changes_are_numbered_and_linked(store: Store) -> None:
    run = store.start_run(T0)
    store.save_version(version(snapshot()), [], run)
    later = T0 + timedelta(days=1)
    stored = store.save_version(
        version(snapshot("COMPLETED"), later), [status_change("RECRUITING", "COMPLETED")], run
    )
    assert [(c.kind, c.from_version, c.to_version) for c in stored] == [("status_changed", 1, 2)]
    assert stored[0].detected_at == later
    versions = store.list_versions("ctgov", "NCT05605665")
    assert [(v.version, v.overall_status) for v in versions] == [
        (1, "RECRUITING"),
        (2, "COMPLETED"),
    ]
    assert versions[1].changes == ("Overall status: RECRUITING → COMPLETED",)
    state = store.record_states("ctgov", ["NCT05605665", "NCT00000001"])
    assert list(state) == ["NCT05605665"]
    assert state["NCT05605665"].content_hash == snapshot("COMPLETED").content_hash()
    assert store.latest_snapshot("ctgov", "NCT05605665") == snapshot("COMPLETED")


def test_registry_version_numbers_are_used_where_known(store: Store) -> None:
    store.save_version(version(snapshot(), registry_version=4), [], None)
    stored = store.save_version(
        version(snapshot("COMPLETED"), registry_version=5),
        [status_change("RECRUITING", "COMPLETED")],
        None,
    )
    assert (stored[0].from_version, stored[0].to_version) == (4, 5)


def test_changes_filter_by_study_kind_and_time(store: Store) -> None:
    store.save_version(version(snapshot()), [], None)
    store.save_version(
        version(snapshot("COMPLETED"), T0 + timedelta(days=2)),
        [status_change("RECRUITING", "COMPLETED")],
        None,
    )
    assert len(store.list_changes()) == 1
    assert store.list_changes(kind="enrollment_changed") == []
    assert store.list_changes(study_id="NCT00000001") == []
    assert store.list_changes(since=T0 + timedelta(days=3)) == []
    assert store.list_changes(since=T0 + timedelta(days=1))[0].new == "COMPLETED"


def test_an_unavailable_record_is_flagged_once(store: Store) -> None:
    store.save_version(version(snapshot()), [], None)
    gone = Change(
        study_id="NCT05605665",
        kind="record_unavailable",
        field="protocolSection.identificationModule.nctId",
        old="NCT05605665",
        severity="high",
        summary="gone",
    )
    first = store.mark_unavailable("ctgov", "NCT05605665", gone, T0, None)
    assert first is not None and first.from_version == 1
    assert store.mark_unavailable("ctgov", "NCT05605665", gone, T0, None) is None
    assert store.record_states("ctgov", ["NCT05605665"])["NCT05605665"].state == "unavailable"


def test_a_failed_write_leaves_neither_version_nor_changes(store: Store) -> None:
    store.save_version(version(snapshot()), [], None)
    before = store.count_rows()
    # a change without a field breaks a NOT NULL column, after the version row was written
    broken = status_change("RECRUITING", "COMPLETED").model_copy(update={"field": None})
    with pytest.raises(StoreError):
        store.save_version(
            version(snapshot("COMPLETED")), [status_change("RECRUITING", "COMPLETED"), broken], None
        )
    assert store.count_rows() == before
    assert store.latest_snapshot("ctgov", "NCT05605665") == snapshot()


def test_the_raw_record_is_kept_compressed_and_comes_back_whole(store: Store) -> None:
    store.save_version(version(snapshot()), [], None)
    raw = store.raw_record("ctgov", "NCT05605665", 1)
    assert raw == {"protocolSection": {"statusModule": {"overallStatus": "RECRUITING"}}}


def test_sync_runs_are_recorded(store: Store) -> None:
    run = store.start_run(T0)
    store.finish_run(
        run,
        {
            "checked": 2,
            "new": 1,
            "changed": 0,
            "unchanged": 0,
            "failed": 1,
            "requests": 1,
            "errors": [{"study_id": "NCT00000001", "error": "not found"}],
        },
        T0,
    )
    assert store.count_rows()["sync_runs"] == 1


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    assert database_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_an_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="store postgresql"):
        Store.open("postgresql://nobody@127.0.0.1:1/none")


def test_the_head_constant_names_the_newest_migration(store: Store) -> None:
    assert HEAD == head_revision(store.engine) == stored_revision(store.engine)


# ---- versions are idempotent; sync runs never stay running; the store is checked ------------


def test_a_registry_version_already_stored_is_a_conflict_and_writes_nothing(store: Store) -> None:
    store.save_version(version(snapshot(), registry_version=4), [], None)
    before = store.count_rows()
    with pytest.raises(StoreConflict, match="version 4 is already stored"):
        store.save_version(
            version(snapshot(), T0 + timedelta(hours=1), registry_version=4),
            [status_change("RECRUITING", "RECRUITING")],
            None,
        )
    assert store.count_rows() == before
    assert [v.version for v in store.list_versions("ctgov", "NCT05605665")] == [4]


def test_a_version_without_a_number_is_not_stored_twice_either(store: Store) -> None:
    store.save_version(version(snapshot()), [], None)
    with pytest.raises(StoreConflict):
        store.save_version(version(snapshot(), T0 + timedelta(hours=1)), [], None)
    store.save_version(version(snapshot("COMPLETED")), [], None)  # new content is stored
    assert len(store.list_versions("ctgov", "NCT05605665")) == 2


def test_the_database_refuses_a_second_copy_of_a_registry_version(store: Store) -> None:
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from service.store import VersionRow

    store.save_version(version(snapshot(), registry_version=4), [], None)
    record_id = store.record_states("ctgov", ["NCT05605665"])["NCT05605665"].record_id
    row = {
        "record_id": record_id, "seq": 2, "registry_version": 4, "content_hash": "x",
        "snapshot": "{}", "raw_gz": b"", "last_update_posted": "", "fetched_at": T0,
    }  # fmt: skip
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(insert(VersionRow), row)


def test_first_sightings_stored_by_another_process_meanwhile_are_a_conflict(store: Store) -> None:
    sighting = FirstSighting(version(snapshot(), registry_version=0), [])
    store.save_first_versions([sighting], None)
    with pytest.raises(StoreConflict, match="another process stored some of them"):
        store.save_first_versions([sighting], None)
    assert store.count_rows()["record_versions"] == 1


def test_a_page_of_next_versions_is_stored_as_each_alone_would_be(store: Store) -> None:
    """``save_next_versions`` (a page's changed records in one transaction) numbers, links,
    notifies and advances each record as ``save_version`` does for one: a numbered record,
    and one without registry numbers whose new content brings no change to tell."""
    other = snapshot().model_copy(update={"study_id": "NCT00000002"})
    store.add_watches("ctgov", ["NCT05605665", "NCT00000002"], [], T0)
    store.save_version(version(snapshot(), registry_version=4), [], None)
    store.save_version(version(other), [], None)
    states = store.record_states("ctgov", ["NCT05605665", "NCT00000002"])
    later = T0 + timedelta(days=1)
    moved = version(snapshot("COMPLETED"), later, registry_version=5)
    quiet = version(other.model_copy(update={"brief_title": "Retitled"}), later)
    route = Route(channel="mail", mode="immediate", change_indexes=(0,), due_at=later)
    completed = [status_change("RECRUITING", "COMPLETED")]
    steps = [
        NextVersion(moved, states["NCT05605665"].latest_seq, completed, [route]),
        NextVersion(quiet, states["NCT00000002"].latest_seq, []),
    ]
    stored = store.save_next_versions("ctgov", steps, store.start_run(later))
    assert [[(c.kind, c.from_version, c.to_version, c.detected_at) for c in s] for s in stored] == [
        [("status_changed", 4, 5, later)],
        [],
    ]
    numbered = store.list_versions("ctgov", "NCT05605665")
    assert [(v.version, v.changes) for v in numbered] == [
        (4, ()),
        (5, ("Overall status: RECRUITING → COMPLETED",)),
    ]
    assert [v.version for v in store.list_versions("ctgov", "NCT00000002")] == [1, 2]
    assert store.raw_record("ctgov", "NCT05605665", 2) == moved.raw
    after = store.record_states("ctgov", ["NCT05605665", "NCT00000002"])
    assert (after["NCT05605665"].latest_version, after["NCT05605665"].content_hash) == (
        5,
        snapshot("COMPLETED").content_hash(),
    )
    assert (after["NCT00000002"].latest_seq, after["NCT00000002"].latest_registry_version) == (
        2,
        None,
    )
    assert store.latest_snapshot("ctgov", "NCT00000002") == quiet.snapshot
    watches = {w.study_id: w for w in store.list_watches()}
    assert (watches["NCT05605665"].title, watches["NCT05605665"].overall_status) == (
        "Low-dose IL-2 and rapamycin",
        "COMPLETED",
    )
    assert watches["NCT05605665"].last_changed_at == later
    assert watches["NCT00000002"].last_changed_at is None  # new content, but no change to tell
    assert watches["NCT00000002"].title == "Retitled"
    assert [(o["study_id"], o["changes"]) for o in store.list_outbox()] == [("NCT05605665", 1)]


def test_next_versions_another_process_stored_meanwhile_are_a_conflict_writing_nothing(
    store: Store,
) -> None:
    """A page whose record moved on since the cycle read it (another sync stored a version),
    or that brings a registry version stored already: nothing of the page is written, and the
    caller stores its records one by one."""
    other = snapshot().model_copy(update={"study_id": "NCT00000002"})
    store.save_version(version(snapshot(), registry_version=4), [], None)
    store.save_version(version(other, registry_version=1), [], None)
    states = store.record_states("ctgov", ["NCT05605665", "NCT00000002"])
    later = T0 + timedelta(days=1)
    fine = NextVersion(
        version(other.model_copy(update={"overall_status": "COMPLETED"}), later, 2), 1, []
    )
    moved_on = NextVersion(
        version(snapshot("COMPLETED"), later, 5), states["NCT05605665"].latest_seq, []
    )
    store.save_version(moved_on.version, [], None)  # the other sync's write
    before = store.count_rows()
    with pytest.raises(StoreConflict, match=r"some of them meanwhile \(NCT05605665 has a newer"):
        store.save_next_versions("ctgov", [fine, moved_on], None)
    assert store.count_rows() == before
    again = NextVersion(moved_on.version, 2, [])  # follows the latest, but version 5 is stored
    with pytest.raises(StoreConflict, match="NCT05605665: version 5 is stored already"):
        store.save_next_versions("ctgov", [fine, again], None)
    assert store.count_rows() == before
    assert store.save_next_versions("ctgov", [fine], None) == [[]]
    assert [v.version for v in store.list_versions("ctgov", "NCT00000002")] == [1, 2]


def test_a_sync_run_whose_cycle_raised_does_not_stay_running(store: Store) -> None:
    run = store.start_run(T0)
    store.abandon_runs("cycle aborted: store went away", T0 + timedelta(minutes=1))
    assert store.recent_run_statuses(5) == ["failed"]
    store.finish_run(store.start_run(T0), {**EMPTY_REPORT}, T0)
    assert store.recent_run_statuses(5) == ["ok", "failed"]
    assert run not in store._run_presences()  # nothing held for it any more


def test_a_run_left_open_is_closed_when_the_next_one_starts(store: Store) -> None:
    store.start_run(T0)  # its cycle raised, and nobody abandoned it
    store.finish_run(store.start_run(T0), {**EMPTY_REPORT}, T0)
    assert store.recent_run_statuses(5) == ["ok", "failed"]


def test_a_deleted_or_replaced_sqlite_file_fails_the_store_check(tmp_path: Path) -> None:
    path = tmp_path / "store" / "tw.db"
    store = Store.open(f"sqlite:///{path}")
    store.check()
    path.unlink()
    with pytest.raises(StoreError, match="is gone"):
        store.check()
    other = Store.open(f"sqlite:///{path}")  # a new file at the same place
    with pytest.raises(StoreError, match="was replaced"):
        store.check()
    other.close()
    store.close()


def test_the_sync_lock_of_a_database_that_is_gone_is_a_store_error() -> None:
    from service.store import create_store_engine

    store = Store(create_store_engine("postgresql://nobody@127.0.0.1:1/none"))
    with pytest.raises(StoreError, match="store postgresql"), store.sync_lock():
        pass


def test_migration_0005_removes_duplicate_versions_keeping_the_first(database_url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    from service.migrate import alembic_config
    from service.store import create_store_engine

    engine = create_store_engine(database_url)
    command.upgrade(alembic_config(engine), "0004")
    with engine.begin() as db:
        db.execute(text(
            "INSERT INTO records (id, registry, study_id, title, overall_status, state, "
            "content_hash, latest_seq, latest_registry_version, last_update_posted, "
            "first_seen_at) VALUES (1, 'ctgov', 'NCT05605665', '', '', 'active', 'h3', 4, 3, "
            "'', :t)"
        ), {"t": T0})  # fmt: skip
        for version_id, seq, number, content in [(1, 1, 1, "h1"), (2, 2, 2, "h2"),
                                                 (3, 3, 2, "h2"), (4, 4, 3, "h3")]:  # fmt: skip
            db.execute(text(
                "INSERT INTO record_versions (id, record_id, seq, registry_version, "
                "content_hash, snapshot, raw_gz, last_update_posted, fetched_at) "
                "VALUES (:id, 1, :seq, :n, :h, '{}', :raw, '', :t)"
            ), dict(id=version_id, seq=seq, n=number, h=content, raw=b"", t=T0))  # fmt: skip
        for change_id, into in [(1, 2), (2, 3), (3, 4)]:
            db.execute(text(
                "INSERT INTO changes (id, record_id, to_version_id, kind, field, severity, "
                "summary, historical, detected_at) VALUES (:id, 1, :v, 'status_changed', "
                "'protocolSection.statusModule.overallStatus', 'medium', 's', false, :t)"
            ), {"id": change_id, "v": into, "t": T0})  # fmt: skip
    command.upgrade(alembic_config(engine), "head")
    with engine.connect() as db:
        versions = db.execute(
            text("SELECT id, seq, registry_version FROM record_versions ORDER BY seq")
        ).all()
        changes = db.execute(text("SELECT id, to_version_id FROM changes ORDER BY id")).all()
        latest = db.execute(text("SELECT latest_seq FROM records")).scalar()
    engine.dispose()
    assert [tuple(v) for v in versions] == [(1, 1, 1), (2, 2, 2), (4, 3, 3)]
    assert [tuple(c) for c in changes] == [(1, 2), (3, 4)]  # the copy's repeat went
    assert latest == 3


def test_migration_0011_makes_stored_eu_records_due_for_their_results_rules(
    database_url: str,
) -> None:
    from alembic import command
    from sqlalchemy import text

    from service.migrate import alembic_config
    from service.store import create_store_engine

    engine = create_store_engine(database_url)
    command.upgrade(alembic_config(engine), "0010")
    with engine.begin() as db:
        for record_id, registry, study_id, seq, due in [
            (1, "euctr", "2021-002179-21", 1, None),  # stored: due at once
            (2, "ctis", "2023-505613-24-00", 1, None),
            (3, "ctis", "2024-510663-34-00", 0, None),  # never fetched: nothing to review
            (4, "ctgov", "NCT05605665", 1, None),  # its rules ran all along
            (5, "euctr", "2016-004489-24", 1, "2030-01-01"),  # (cannot happen: kept)
        ]:
            db.execute(text(
                "INSERT INTO records (id, registry, study_id, title, overall_status, state, "
                "content_hash, latest_seq, last_update_posted, first_seen_at, findings_due) "
                "VALUES (:id, :r, :s, '', '', 'active', 'h', :seq, '', :t, :due)"
            ), dict(id=record_id, r=registry, s=study_id, seq=seq, t=T0, due=due))  # fmt: skip
    command.upgrade(alembic_config(engine), "head")
    with engine.connect() as db:
        due = dict(db.execute(text("SELECT id, findings_due FROM records")).tuples().all())
    engine.dispose()
    assert due == {1: "2000-01-01", 2: "2000-01-01", 3: None, 4: None, 5: "2030-01-01"}


EMPTY_REPORT = {
    "checked": 0, "new": 0, "changed": 0, "unchanged": 0, "failed": 0, "requests": 0,
    "errors": [],
}  # fmt: skip


def test_a_broken_write_is_an_error_not_a_conflict(store: Store) -> None:
    store.save_version(version(snapshot()), [], None)
    broken = status_change("RECRUITING", "COMPLETED").model_copy(update={"field": None})
    with pytest.raises(StoreError) as raised:
        store.save_version(version(snapshot("COMPLETED")), [broken], None)
    assert not isinstance(raised.value, StoreConflict)  # a bug must not pass for a race


def test_the_latest_snapshots_of_many_records_are_each_ones_newest(store: Store) -> None:
    """Read together (a page of a sync at once), they are what ``latest_snapshot`` reads alone:
    the newest version of each record that has one, across the 500-id chunks of the read."""
    ids = [f"NCT0{n:07d}" for n in range(1, 603)]
    for n, study_id in enumerate(ids[:600]):
        first = snapshot(count=n).model_copy(update={"study_id": study_id})
        store.save_version(version(first, registry_version=1), [], None)
        if n % 3 == 0:  # a third moved on: their newest is the second version
            moved = first.model_copy(update={"overall_status": "COMPLETED"})
            store.save_version(version(moved, T0 + timedelta(days=1), registry_version=2), [], None)
    found = store.latest_snapshots("ctgov", ids)
    assert set(found) == set(ids[:600])  # the last two were never stored
    assert found == {i: store.latest_snapshot("ctgov", i) for i in ids[:600]}
    assert (
        found[ids[0]].overall_status == "COMPLETED" and found[ids[1]].overall_status == "RECRUITING"
    )


def test_a_large_page_of_first_sightings_links_each_row_to_its_own_record(store: Store) -> None:
    """Stored with one executemany statement a table (on PostgreSQL multi-row VALUES in
    pages of 1,000), each version and change still belongs to its record: the ids the
    inserts return are matched to the rows in order."""
    ids = [f"NCT{n:08d}" for n in range(1, 2501)]
    sightings = []
    for n, study_id in enumerate(ids):
        snap = snapshot(count=n).model_copy(update={"study_id": study_id})
        added = status_change("", "RECRUITING").model_copy(
            update={"study_id": study_id, "kind": "record_added", "summary": f"added {study_id}"}
        )
        sightings.append(FirstSighting(version(snap, registry_version=n + 1), [added]))
    stored = store.save_first_versions(sightings, None)
    assert [changes[0].study_id for changes in stored] == ids
    assert [changes[0].to_version for changes in stored] == list(range(1, 2501))
    for n in (0, 1, 1234, 2184, 2185, 2499):
        [only] = store.list_versions("ctgov", ids[n])
        assert (only.version, only.enrollment_count, only.changes) == (
            n + 1,
            n,
            (f"added {ids[n]}",),
        )
    states = store.record_states("ctgov", ids)
    assert [states[i].latest_registry_version for i in ids] == list(range(1, 2501))


def test_migration_0014_keeps_the_feed_entry_ids_readers_already_have(database_url: str) -> None:
    """The feeds' entry ids became the store's own (urn:uuid:) with 0014: the changes stored
    before keep their old tag: ids, so a feed reader never sees one of them twice."""
    from alembic import command
    from sqlalchemy import text

    from service.migrate import alembic_config
    from service.store import create_store_engine
    from service.web.feeds import entry_id

    engine = create_store_engine(database_url)
    command.upgrade(alembic_config(engine), "0013")
    with engine.begin() as db:
        db.execute(text(
            "INSERT INTO records (id, registry, study_id, title, overall_status, state, "
            "content_hash, latest_seq, last_update_posted, first_seen_at) "
            "VALUES (1, 'ctgov', 'NCT05605665', '', '', 'active', 'h2', 2, '', :t)"
        ), {"t": T0})  # fmt: skip
        for version_id in (1, 2):
            db.execute(text(
                "INSERT INTO record_versions (id, record_id, seq, content_hash, snapshot, "
                "raw_gz, last_update_posted, fetched_at) "
                "VALUES (:id, 1, :id, :h, '{}', :raw, '', :t)"
            ), dict(id=version_id, h=f"h{version_id}", raw=b"", t=T0))  # fmt: skip
        for change_id in (1, 2, 3):
            db.execute(text(
                "INSERT INTO changes (id, record_id, to_version_id, kind, field, severity, "
                "summary, historical, detected_at) VALUES (:id, 1, 2, 'status_changed', "
                "'protocolSection.statusModule.overallStatus', 'medium', 's', false, :t)"
            ), {"id": change_id, "t": T0})  # fmt: skip
    command.upgrade(alembic_config(engine), "head")
    engine.dispose()
    store = Store.open(database_url)
    try:
        upto, store_id = store.legacy_entry_ids_upto(), store.store_id()
    finally:
        store.close()
    assert upto == 3
    assert entry_id(store_id, 3, upto) == "tag:trialwatch,2026:change/3"  # as readers have it
    assert entry_id(store_id, 4, upto).startswith("urn:uuid:")  # a change stored after
