"""How the CLI shows things to a person: rich tables on stdout, JSON documents for ``--json``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from service.diff import humanise
from service.models import Change, StoredChange, VersionInfo, WatchInfo

SEVERITY_STYLE = {"low": "dim", "medium": "yellow", "high": "bold red"}

stdout = Console(highlight=False, soft_wrap=False)
stderr = Console(stderr=True, highlight=False)


def print_json(document: Any) -> None:
    """One JSON document on stdout and nothing else (logs and progress go to stderr)."""
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


def watches_table(watches: Sequence[WatchInfo]) -> Table:
    table = Table(title=f"{len(watches)} watched record(s)", title_justify="left", expand=True)
    table.add_column("study", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("title", ratio=1, overflow="ellipsis", no_wrap=True)
    table.add_column("tags")
    table.add_column("versions", justify="right")
    table.add_column("last checked", no_wrap=True)
    for w in watches:
        status = humanise(w.overall_status) if w.overall_status else w.state
        if w.state == "unavailable":
            status = "[red]unavailable[/red]"
        table.add_row(
            w.study_id,
            status,
            escape(w.title),
            escape(", ".join(w.tags)),
            str(w.versions),
            when(w.last_checked_at),
        )
    return table


def changes_lines(changes: Sequence[Change], title: str) -> Text:
    """Changes grouped by study and version step: one line each, readable at any width."""
    out = Text(f"{title}\n", style="bold")
    heading = None
    for c in changes:
        step = _step(c)
        if (c.study_id, step) != heading:
            heading = (c.study_id, step)
            out.append(f"{c.study_id}", style="bold cyan")
            out.append(f"  {step}\n" if step else "\n", style="dim")
        out.append(f"  {c.severity:<6} ", style=SEVERITY_STYLE[c.severity])
        out.append(f"{c.summary}\n")
    out.rstrip()
    return out


def versions_lines(study_id: str, versions: Sequence[VersionInfo]) -> Text:
    out = Text(f"{study_id}: {len(versions)} stored version(s)\n", style="bold")
    for v in versions:
        enrollment = (
            f"{v.enrollment_count} {v.enrollment_type.lower()}".strip()
            if v.enrollment_count is not None
            else "—"
        )
        status = humanise(v.overall_status) if v.overall_status else "—"
        out.append(f"v{v.version}", style="bold cyan")
        out.append(
            f"  posted {v.last_update_posted or '—'}, fetched {when(v.fetched_at)}: "
            f"{status}; enrollment {enrollment}\n"
        )
        for summary in v.changes:
            out.append(f"    {summary}\n")
    out.rstrip()
    return out


def _step(change: Change) -> str:
    if not isinstance(change, StoredChange):
        return ""
    return f"{_versions(change)}, detected {when(change.detected_at)}"


def _versions(change: StoredChange) -> str:
    if change.from_version is None:
        return f"v{change.to_version}"
    if change.to_version is None:
        return f"after v{change.from_version}"
    return f"v{change.from_version} → v{change.to_version}"
