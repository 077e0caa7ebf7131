"""Seed files on disk: read and validate ``seeds/*.toml``, write drafts.

Everything is validated before anything is used, so one bad file stops a load with nothing
written. A problem is one ``InputError`` line naming the file and the key:
``seeds/x.toml: design.phases[0]: Input should be 'EARLY_PHASE1', 'PHASE1', …``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from service.errors import InputError, UnsafeDocument
from service.safeload import load_toml, read_bounded
from service.seeds import toml
from service.seeds.model import Seed

__all__ = ["SeedFile", "load_seed_dir", "load_seed_file", "parse_seed", "seed_toml"]


@dataclass(frozen=True)
class SeedFile:
    path: Path
    seed: Seed


def load_seed_dir(directory: Path) -> list[SeedFile]:
    """Every ``*.toml`` in ``directory`` (sorted by name), all validated, ids unique."""
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory of seed files")
    files = [load_seed_file(path) for path in sorted(directory.glob("*.toml"))]
    if not files:
        raise InputError(f"{directory}: no seed files (*.toml) found")
    first_seen: dict[str, Path] = {}
    for item in files:
        if item.seed.id in first_seen:
            raise InputError(
                f"{item.path}: id: {item.seed.id!r} is already the id of {first_seen[item.seed.id]}"
            )
        first_seen[item.seed.id] = item.path
    return files


SEED_MAX_BYTES = 1024 * 1024  # a seed file is a few KiB of TOML


def load_seed_file(path: Path) -> SeedFile:
    try:
        text = read_bounded(path, SEED_MAX_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnsafeDocument as exc:  # over-size, or a FIFO/device named *.toml
        raise InputError(f"{path}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from None
    return SeedFile(path, parse_seed(text, str(path)))


def parse_seed(text: str, name: str) -> Seed:
    """A seed from TOML text; ``name`` is what error messages call the file."""
    try:
        data = load_toml(text)
    except UnsafeDocument as exc:  # nested too deeply for the parser or the validation
        raise InputError(f"{name}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{name}: not valid TOML ({exc})") from None
    try:
        return Seed.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{name}: {_one_line(exc)}") from None


def seed_toml(seed: Seed, *, comments: Sequence[str] = ()) -> str:
    """The seed as a TOML file (empty values left out)."""
    return toml.dumps(seed.model_dump(mode="json"), comments=comments)


def _one_line(exc: ValidationError) -> str:
    error = exc.errors()[0]
    key = _key(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif error["type"] == "string_pattern_mismatch" and key == "id":
        message = f"{error['input']!r} is not a seed id (lowercase letters, digits, hyphens; 3-64)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{key or 'file'}: {message}{more}"


def _key(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
