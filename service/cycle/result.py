"""What a sync cycle did (``SyncReport``): the document ``sync --json`` prints and the store's
``sync_runs`` row keeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.models import Change
from service.problems import Problem

COUNTS = ("checked", "new", "changed", "unchanged", "failed")


@dataclass
class SyncReport:
    checked: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    requests: int = 0
    changes: list[Change] = field(default_factory=list)
    # the records that failed (errors) and what else there is to say (warnings), in the order
    # found: per record, the saved searches, the change signal, the history API
    problems: list[Problem] = field(default_factory=list)
    # the history backfill queue: records backfilled this cycle, failed, still pending
    backfill: dict[str, int] = field(default_factory=dict)
    # how the watch list was settled: {"mode": probe|listing|quiet|signal,
    # "registry_timestamp", "since"} (no mode for a cycle over given ids only)
    cycle: dict[str, str] = field(default_factory=dict)
    registry: str = ""  # whose cycle this was (a merged report: the first one's)

    @property
    def registries(self) -> tuple[str, ...]:
        """The registries whose cycles this report holds."""
        nested = self.cycle.get("registries")
        if isinstance(nested, dict):
            return tuple(nested)
        return (self.registry,) if self.registry else ()

    @property
    def errors(self) -> list[dict[str, str]]:
        """The contract's ``errors``: ``{"study_id", "error", "reason"}`` each."""
        return [p.to_json() for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[dict[str, str]]:
        """The contract's ``warnings``: ``{"study_id", "warning", "reason"}`` each."""
        return [p.to_json() for p in self.problems if not p.is_error]

    @classmethod
    def merged(cls, reports: Sequence[SyncReport]) -> SyncReport:
        """One report of the cycles of several registries (the first one's ``cycle`` on top,
        each registry's under ``cycle.registries`` when there are several)."""
        if len(reports) == 1:
            return reports[0]
        merged = cls()
        for report in reports:
            for name in (*COUNTS, "requests"):
                setattr(merged, name, getattr(merged, name) + getattr(report, name))
            merged.changes.extend(report.changes)
            merged.problems.extend(report.problems)
            for key, count in report.backfill.items():
                merged.backfill[key] = merged.backfill.get(key, 0) + count
        if reports:
            merged.cycle = dict(reports[0].cycle)
            merged.cycle["registries"] = {  # type: ignore[assignment]
                r.registry: {**r.cycle, "requests": r.requests} for r in reports
            }
        return merged

    def to_json(self, *, changes: bool = True, lazy: bool = False) -> dict[str, Any]:
        """The ``sync --json`` document; ``changes=False`` leaves the changes out (what the
        store's ``sync_runs`` row keeps: a first load's 100,000 changes as JSON would be
        ~140 MB built for nothing); ``lazy`` makes each change's JSON only as a streaming
        encoder reaches it (``views.print_json``), never all of them at once."""
        document: dict[str, Any] = {name: getattr(self, name) for name in COUNTS}
        document["requests"] = self.requests
        if changes:
            document["changes"] = (
                LazyArray(self.changes, lambda change: change.to_json())
                if lazy
                else [change.to_json() for change in self.changes]
            )
        return document | {
            "errors": self.errors,
            "warnings": self.warnings,
            "backfill": self.backfill,
            "cycle": {**self.cycle, "requests": self.requests},
        }


class LazyArray(list):  # type: ignore[type-arg]
    """A JSON array whose items are made one at a time as ``json``'s streaming encoder
    (``iterencode``, which walks lists by iteration) reaches them. Empty as a Python list:
    only for documents that are encoded once and then dropped."""

    def __init__(self, items: Sequence[Any], convert: Callable[[Any], Any]) -> None:
        super().__init__()
        self._items, self._convert = items, convert

    def __iter__(self) -> Iterator[Any]:
        return (self._convert(item) for item in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)
