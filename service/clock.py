"""The one place that reads the wall clock, so tests can pass their own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from service.errors import InputError

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_since(text: str | None, now: datetime, name: str = "--since") -> datetime | None:
    """A ``since`` bound (``changes --since``, the web app's ``since``): an ISO date or time,
    UTC unless it names a zone, and not past tomorrow; a mistake is one ``InputError`` line
    naming the option ``name``."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except ValueError:
        raise InputError(f"{name} {text!r} is not an ISO date or time (e.g. 2026-11-01)") from None
    except OverflowError:  # 0001-01-01T00:00+05:00 is before the first representable instant
        raise InputError(f"{name} {text!r} is out of range") from None
    # Nothing is detected in the future; a date past tomorrow (any time zone) is a mistake,
    # and near year 9999 the store cannot even compare it.
    if value > now + timedelta(days=1):
        raise InputError(f"{name} {text!r} is in the future (no change is detected after now)")
    return value
