"""Routing changes to channels: study selectors, kinds, severity, modes, never twice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.models import Change, Severity
from service.settings import Subscription
from service.subscriptions import matches, next_digest, route

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def change(kind: str = "status_changed", severity: Severity = "medium") -> Change:
    return Change(
        study_id="NCT05605665",
        kind=kind,  # type: ignore[arg-type]
        field="protocolSection.statusModule.overallStatus",
        severity=severity,
        summary="s",
    )


def sub(**values: object) -> Subscription:
    return Subscription.model_validate({"channel": "mail", **values})


@pytest.mark.parametrize(
    ("studies", "tags", "selected"),
    [
        (["*"], (), True),
        (["NCT05605665"], (), True),
        (["nct05605665"], (), True),
        (["NCT00000001"], (), False),
        (["tag:sjogren"], ("sjogren",), True),
        (["tag:sjogren"], ("lupus",), False),
        (["seed:il2-rapamycin"], ("seed:il2-rapamycin",), True),
        (["seed:other"], ("seed:il2-rapamycin",), False),
    ],
)
def test_studies_are_selected_by_id_tag_or_seed(
    studies: list[str], tags: tuple[str, ...], selected: bool
) -> None:
    assert matches(sub(studies=studies), change(), tags) is selected


def test_a_star_selects_every_kind_but_first_sightings() -> None:
    assert matches(sub(), change("outcome_added"), ())
    assert not matches(sub(), change("record_added", "low"), ())
    assert matches(sub(kinds=["record_added"]), change("record_added", "low"), ())


def test_a_minimum_severity_filters_lower_ones() -> None:
    high_only = sub(min_severity="high")
    assert not matches(high_only, change(severity="medium"), ())
    assert matches(high_only, change(severity="high"), ())


def test_a_change_reaches_a_channel_once_even_through_two_subscriptions() -> None:
    subs = [sub(), sub(kinds=["status_changed"]), sub(channel="hook")]
    routes = route(subs, [change(), change("enrollment_changed")], (), NOW)
    assert [(r.channel, r.mode, r.change_indexes, r.due_at) for r in routes] == [
        ("hook", "immediate", (0, 1), NOW),
        ("mail", "immediate", (0, 1), NOW),
    ]


def test_a_digest_is_due_at_the_next_cron_time_and_never_repeats_an_immediate() -> None:
    digest = sub(mode="digest", digest_cron="0 8 * * 1")
    assert next_digest(digest, NOW) == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    only_digest = route([digest], [change()], (), NOW)
    assert [(r.mode, r.due_at) for r in only_digest] == [
        ("digest", datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    ]
    both = route(
        [digest, sub(kinds=["status_changed"])], [change(), change("phase_changed")], (), NOW
    )
    assert [(r.mode, r.change_indexes) for r in both] == [("digest", (1,)), ("immediate", (0,))]


def test_nothing_is_routed_when_no_subscription_matches() -> None:
    assert route([sub(studies=["NCT00000001"])], [change()], (), NOW) == []
