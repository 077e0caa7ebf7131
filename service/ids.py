"""Registry identifiers: parse, validate and normalise what users type.

Only ClinicalTrials.gov records can be watched today; identifiers of other registries are
recognised by ``service.seeds`` for linking.
"""

from __future__ import annotations

import re

from service.errors import InputError

NCT_PATTERN = re.compile(r"NCT\d{8}")


def parse_nct(text: str) -> str:
    """``nct05605665`` → ``NCT05605665``; anything else is an ``InputError`` naming it."""
    candidate = text.strip().upper()
    if not NCT_PATTERN.fullmatch(candidate):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise InputError(
            f"{shown!r} is not a ClinicalTrials.gov id (NCT followed by 8 digits, e.g. NCT05605665)"
        )
    return candidate


def parse_ncts(texts: list[str] | tuple[str, ...]) -> list[str]:
    """Validate every id before any is used (a bad one writes nothing); keep order, drop repeats."""
    return list(dict.fromkeys(parse_nct(text) for text in texts))
