"""The store's seed tables, on SQLite and PostgreSQL: idempotent saves, file links reconciled,
a person's choice kept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from service.errors import StoreError
from service.store import SeedData, SeedLinkData, Store

T0 = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


def seed(seed_id: str = "a-seed", *links: SeedLinkData, document: str = '{"v": 1}') -> SeedData:
    return SeedData(
        seed_id=seed_id,
        title="A study",
        kind="paper",
        document=document,
        content_hash=str(hash(document)),
        source=f"seeds/{seed_id}.toml",
        links=links,
    )


def link(study_id: str, confidence: float = 1.0, source: str = "document") -> SeedLinkData:
    return SeedLinkData("ctgov", study_id, confidence, source, (), from_file=True)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    yield opened
    opened.close()


def links_of(store: Store, seed_id: str = "a-seed") -> list[tuple[str, float, str, bool]]:
    (stored,) = store.list_seeds([seed_id])
    return [(x.study_id, x.confidence, x.source, x.from_file) for x in stored.links]


def test_saving_the_same_seed_twice_adds_it_once(store: Store) -> None:
    assert store.save_seeds([seed("a-seed", link("NCT05605665"))], T0) == {"a-seed": "added"}
    assert store.save_seeds([seed("a-seed", link("NCT05605665"))], T1) == {"a-seed": "unchanged"}
    (stored,) = store.list_seeds()
    assert (stored.seed_id, stored.created_at, stored.updated_at) == ("a-seed", T0, T0)
    assert links_of(store) == [("NCT05605665", 1.0, "document", True)]


def test_a_changed_file_updates_the_seed_and_replaces_its_own_links(store: Store) -> None:
    store.save_seeds([seed("a-seed", link("NCT00000001"), link("NCT00000002", 0.5))], T0)
    verdicts = store.save_seeds([seed("a-seed", link("NCT00000002", 0.9), document='{"v": 2}')], T1)
    assert verdicts == {"a-seed": "updated"}
    assert links_of(store) == [("NCT00000002", 0.9, "document", True)]
    assert store.list_seeds()[0].document == '{"v": 2}'


def test_a_persons_choice_survives_reloading_the_file(store: Store) -> None:
    store.save_seeds([seed("a-seed")], T0)
    person = SeedLinkData("ctgov", "NCT00000003", 1.0, "person")
    assert store.add_seed_link("a-seed", person, T0)
    weaker = SeedLinkData("ctgov", "NCT00000003", 0.4, "search", from_file=True)
    store.save_seeds([seed("a-seed", weaker)], T1)
    store.save_seeds([seed("a-seed")], T1)  # the file no longer names it: a person's link stays
    assert links_of(store) == [("NCT00000003", 1.0, "person", False)]


def test_a_search_hit_does_not_overwrite_a_documents_identifier(store: Store) -> None:
    store.save_seeds([seed("a-seed", link("NCT00000001"))], T0)
    hit = SeedLinkData("ctgov", "NCT00000001", 0.85, "search", ("found",))
    assert not store.add_seed_link("a-seed", hit, T1)
    assert links_of(store) == [("NCT00000001", 1.0, "document", True)]


def test_a_link_to_an_unknown_seed_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="no seed study 'nope'"):
        store.add_seed_link("nope", link("NCT00000001"), T0)


def test_seeds_are_found_by_the_records_they_link_to(store: Store) -> None:
    store.save_seeds(
        [
            seed("b-seed", link("NCT00000001")),
            seed("a-seed", link("NCT00000001"), link("NCT00000002")),
        ],
        T0,
    )
    assert [s.seed_id for s in store.seeds_linked_to("ctgov", "NCT00000001")] == [
        "a-seed",
        "b-seed",
    ]
    assert [s.seed_id for s in store.seeds_linked_to("ctgov", "NCT00000002")] == ["a-seed"]
    assert store.seeds_linked_to("ctgov", "NCT00000009") == []


def test_links_are_listed_strongest_first(store: Store) -> None:
    store.save_seeds([seed("a-seed", link("NCT00000001", 0.5), link("NCT00000002", 0.9))], T0)
    assert [x[0] for x in links_of(store)] == ["NCT00000002", "NCT00000001"]
