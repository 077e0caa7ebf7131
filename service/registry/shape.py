"""How every registry's normaliser walks a JSON record (each value's path kept for its
errors), what it says of a record that is not one (one wording of ``RecordInvalid``:
``<path>: expected …, got …``, values shown without ever echoing a whole field or a number too
large to print), and how it keeps a set of texts (in one order, so the content hash does not
depend on the registry's)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from service.errors import RecordInvalid

SHOWN_CHARS = 40  # of a text value quoted in an error
MAX_INT = 2**63 - 1  # what any store column holds; a bigger count is garbage, not a study
_WHOLE_NUMBER_TEXT = re.compile(r"([+-]?\d{1,18})(?:\.0*)?", re.ASCII)


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


def whole_number(value: object, path: str) -> int | None:
    """A non-negative whole number from an int, an integral float or numeric text (registries
    send counts all three ways); None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid(path, "a number", value)
    if isinstance(value, str):
        match = _WHOLE_NUMBER_TEXT.fullmatch(value.strip())
        if match is None:
            raise invalid(path, "a number", value)
        number = int(match.group(1))
    elif isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise invalid(path, "a whole number", value)
        number = int(value)
    else:
        number = value
    if not 0 <= number <= MAX_INT:
        raise invalid(path, "a whole number from 0 to 2^63-1", value)
    return number


def at_path(where: str, key: str) -> str:
    """The dotted path of ``key`` under ``where`` (the record's top when ``where`` is "")."""
    return f"{where}.{key}" if where else key


def child_object(parent: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    """``parent[key]`` as an object; a missing or null one is empty."""
    value = parent.get(key)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise invalid(at_path(where, key), "an object", value)


def child_list(parent: Mapping[str, Any], key: str, where: str) -> Sequence[Any]:
    """``parent[key]`` as a list; a missing or null one is empty."""
    value = parent.get(key)
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return value
    raise invalid(at_path(where, key), "a list", value)


def child_objects(
    parent: Mapping[str, Any], key: str, where: str
) -> Iterator[tuple[dict[str, Any], str]]:
    """Each object of the list ``parent[key]`` with its path; null entries are skipped."""
    at = at_path(where, key)
    for index, item in enumerate(child_list(parent, key, where)):
        if item is None:
            continue
        item_at = f"{at}[{index}]"
        if not isinstance(item, dict):
            raise invalid(item_at, "an object", item)
        yield item, item_at
