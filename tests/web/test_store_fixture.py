"""The populated store behind the web tests holds what they rely on: if the fixture drifts,
this fails first, with a plain message, instead of every page test at once."""

from __future__ import annotations

from typing import Any

from web.conftest import DEMO_STUDY, MARKUP_STUDY, STATUS_STUDY, WebStore


def test_the_store_holds_versions_changes_findings_seeds_and_notifications(
    web_store: WebStore, web_app: Any
) -> None:
    store = web_app.store
    assert {DEMO_STUDY, STATUS_STUDY, MARKUP_STUDY} <= set(web_store.watched)
    assert len(store.list_versions("ctgov", DEMO_STUDY)) == 4
    kinds = {c.kind for c in store.list_changes()}
    assert {"status_changed", "enrollment_changed", "outcome_modified", "date_changed"} <= kinds
    assert {f.rule for f in store.list_findings(only_open=True)} >= {"results_overdue"}
    assert [s.seed_id for s in store.seeds_linked_to("ctgov", DEMO_STUDY)]
    assert store.list_outbox()
