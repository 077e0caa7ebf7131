"""What every registry's normaliser says of a record that is not one, and how it keeps a set
of texts: one wording of ``RecordInvalid`` (``<path>: expected …, got …``), values shown
without ever echoing a whole field or a number too large to print, and unordered lists in one
order (so the content hash does not depend on the registry's order)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from service.errors import RecordInvalid

SHOWN_CHARS = 40  # of a text value quoted in an error
MAX_INT = 2**63 - 1  # larger integers are described, never printed


def invalid(path: str, expected: str, value: object) -> RecordInvalid:
    return RecordInvalid(f"{path}: expected {expected}, got {describe(value)}")


def describe(value: object) -> str:
    """A value as an error quotes it: its kind, or a short repr."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= SHOWN_CHARS else value[: SHOWN_CHARS - 1] + "…"
        return repr(shown)
    if isinstance(value, int) and abs(value) > MAX_INT:
        # repr() of a huge int is slow and, past 4300 digits, raises ValueError.
        return "a number too large to show"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def sorted_set(values: Iterable[str]) -> tuple[str, ...]:
    """The distinct non-empty texts, case-folded order first (lists read naturally), the text
    itself breaking ties (deterministically)."""
    return tuple(sorted({value for value in values if value}, key=lambda v: (v.casefold(), v)))
