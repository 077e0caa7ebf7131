"""Cron expressions as crontab(5) reads them, for APScheduler 3.

APScheduler 3's ``CronTrigger.from_crontab`` numbers weekdays from Monday = 0, so the standard
``0 8 * * 1`` (Mondays) would fire on Tuesdays; upstream keeps this for compatibility in 3.x
(agronholm/apscheduler#286). Numeric day-of-week fields are rewritten to day names here, with
crontab's numbering: 0 and 7 are Sunday.
"""

from __future__ import annotations

from apscheduler.triggers.cron import CronTrigger

DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_trigger(expression: str, timezone: str = "UTC") -> CronTrigger:
    """A trigger for a five-field crontab expression; ``ValueError`` when it is not one."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    fields[4] = _day_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)


def _day_names(field: str) -> str:
    return ",".join(_part_names(part) for part in field.split(","))


def _part_names(part: str) -> str:
    spec, _, step_text = part.partition("/")
    if not (spec.replace("-", "").isdigit() or (spec == "*" and step_text)):
        return part  # names, "*" and "?" mean the same in both conventions
    step = int(step_text) if step_text else 1
    if spec == "*":
        first, last = 0, 6
    elif "-" in spec:
        first_text, last_text = spec.split("-", 1)
        first, last = int(first_text), int(last_text)
    else:
        first = last = int(spec)
    if not 0 <= first <= last <= 7 or step < 1:
        raise ValueError(f"day of week {part!r} is out of range (0-7, Sunday = 0 or 7)")
    return ",".join(dict.fromkeys(DAY_NAMES[day] for day in range(first, last + 1, step)))
