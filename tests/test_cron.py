"""Cron expressions mean what crontab(5) says, whatever APScheduler 3 numbers weekdays as."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.cron import cron_trigger

SUNDAY = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def next_fire(expression: str) -> datetime:
    fire = cron_trigger(expression).get_next_fire_time(None, SUNDAY)
    assert fire is not None
    return fire


@pytest.mark.parametrize(
    ("expression", "weekday"),
    [
        ("0 8 * * 1", "Monday"),
        ("0 8 * * 0", "Sunday"),
        ("0 8 * * 7", "Sunday"),
        ("0 8 * * 5", "Friday"),
        ("0 8 * * mon", "Monday"),
        ("0 8 * * 2-4", "Tuesday"),
        ("0 8 * * 6,3", "Wednesday"),
        ("0 8 * * 1-5/2", "Monday"),
    ],
)
def test_weekday_numbers_follow_crontab(expression: str, weekday: str) -> None:
    assert next_fire(expression).strftime("%A") == weekday


def test_every_other_field_is_left_as_it_is() -> None:
    assert next_fire("30 6 * * *") == datetime(2026, 11, 23, 6, 30, tzinfo=UTC)
    assert next_fire("0 6 1 * *") == datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize("expression", ["61 25 * * *", "0 6 * *", "0 6 * * 9", "0 6 * * 5-2"])
def test_a_bad_expression_is_a_value_error(expression: str) -> None:
    with pytest.raises(ValueError):
        cron_trigger(expression)
