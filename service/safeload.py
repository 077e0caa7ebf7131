"""Read untrusted JSON and TOML safely: bounded in size, bounded in nesting depth.

``json`` and ``tomllib`` parse nested arrays and tables recursively, so a document of a few
kilobytes (``[[[[…]]]]`` 100,000 deep) raises ``RecursionError`` — in a sync that killed the
whole cycle. Documents a little less deep parse, but then the recursive code that walks them
(the normaliser, pydantic) fails instead. So every JSON or TOML trialwatch did not write itself
goes through here: files are read up to a byte limit (and only regular files: ``/dev/zero`` or a
FIFO would never end), and a document nested deeper than ``MAX_DEPTH`` is refused.

Every refusal is an ``UnsafeDocument`` with a short reason; callers prefix the document's name
and translate the class where they need to (a registry answer becomes ``RecordInvalid``).
Syntax errors stay what they were (``json.JSONDecodeError``, ``tomllib.TOMLDecodeError``), so
callers keep their own "not JSON" / "not valid TOML" messages.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import IO, Any

from service.errors import UnsafeDocument

__all__ = [
    "MAX_DEPTH",
    "MIB",
    "check_depth",
    "load_json",
    "load_toml",
    "read_bounded",
    "read_stream_bounded",
]

MIB = 1024 * 1024
# Real documents are shallow: a ClinicalTrials.gov record with results is about 12 levels, a
# registry page or history wrapper adds 2, seed files and the config 4.
MAX_DEPTH = 64


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``, refused past ``max_bytes``.

    ``FileNotFoundError`` and other ``OSError`` pass through for the caller's own message.
    The file is opened non-blocking so that a FIFO cannot hang the open, then checked with
    ``fstat`` on the open descriptor (no window between the check and the read).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeDocument("not a regular file")
        if info.st_size > max_bytes:
            raise UnsafeDocument(f"larger than {_size(max_bytes)}")
        return read_stream_bounded(handle, max_bytes)


def read_stream_bounded(stream: IO[bytes], max_bytes: int) -> bytes:
    """At most ``max_bytes`` from ``stream``; one byte more is an ``UnsafeDocument``.

    Declared sizes (a zip member's header, a file growing while read) are not trusted: the
    limit is on what is actually read.
    """
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeDocument(f"larger than {_size(max_bytes)}")
    return data


def load_json(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that refuses a document nested deeper than ``max_depth``."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise UnsafeDocument(_too_deep(max_depth)) from None
    check_depth(value, max_depth)
    return value


def load_toml(text: str, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """``tomllib.loads`` that refuses a document nested deeper than ``max_depth``."""
    try:
        value = tomllib.loads(text)
    except RecursionError:
        raise UnsafeDocument(_too_deep(max_depth)) from None
    check_depth(value, max_depth)
    return value


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``UnsafeDocument`` when ``value`` nests dicts and lists deeper than ``max_depth``.

    Level by level (no recursion, so the check itself cannot overflow the call stack), with
    exact ``type`` tests: parsed JSON and TOML hold only plain dicts and lists, and this runs
    over every registry page (about 7% of the time ``json.loads`` takes for it).
    """
    level: list[Any] = [value] if type(value) is dict or type(value) is list else []
    depth = 1
    while level:
        if depth > max_depth:
            raise UnsafeDocument(_too_deep(max_depth))
        deeper: list[Any] = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                kind = type(child)
                if kind is dict or kind is list:
                    deeper.append(child)
        level = deeper
        depth += 1


def _too_deep(max_depth: int) -> str:
    return f"nested deeper than {max_depth} levels"


def _size(max_bytes: int) -> str:
    if max_bytes >= MIB and max_bytes % MIB == 0:
        return f"{max_bytes // MIB} MiB"
    return f"{max_bytes} bytes"
