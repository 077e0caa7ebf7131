"""Write seed documents as TOML (the standard library reads TOML but does not write it).

Only what seed files need: strings, integers, floats, booleans, arrays of those, tables and
arrays of tables. ``None`` and empty values are left out, so a file shows what is known.
Output reads back with ``tomllib`` to the same data (tested).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dumps"]

_INLINE_LIMIT = 90  # an array longer than this is written one item a line
_BARE_KEY = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def dumps(data: Mapping[str, Any], *, comments: Sequence[str] = ()) -> str:
    """``data`` as a TOML document, after ``comments`` (one ``#`` line each)."""
    lines = [f"# {line}".rstrip() for line in comments]
    if lines:
        lines.append("")
    _table(data, [], lines)
    return "\n".join(lines).strip("\n") + "\n"


def _table(data: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, Sequence[Mapping[str, Any]]]] = []
    for key, value in data.items():
        if _empty(value):
            continue
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif _is_table_array(value):
            arrays.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables:
        lines.extend(["", f"[{_dotted([*path, key])}]"])
        _table(value, [*path, key], lines)
    for key, items in arrays:
        for item in items:
            lines.extend(["", f"[[{_dotted([*path, key])}]]"])
            _table(item, [*path, key], lines)


def _empty(value: Any) -> bool:
    if value is None or value == "" or value == [] or value == ():
        return True
    return isinstance(value, Mapping) and all(_empty(v) for v in value.values())


def _is_table_array(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(item, Mapping) for item in value)
    )


def _key(key: str) -> str:
    return key if key and set(key) <= _BARE_KEY else _string(key)


def _dotted(path: list[str]) -> str:
    return ".".join(_key(part) for part in path)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML cannot hold {value!r} here")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        items = [_value(item) for item in value if item is not None]
        inline = "[" + ", ".join(items) + "]"
        if len(inline) <= _INLINE_LIMIT:
            return inline
        return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _string(text: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes; DEL is the one control
    # character JSON leaves raw and TOML refuses.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
