"""How the CLI shows things to a person: lines and tables on stdout, JSON documents for ``--json``.

Everything printed goes through this module, and every string it prints goes through
``terminal_safe``: registry text is untrusted, and an ESC sequence in a title (OSC 52 writes the
clipboard, CSI clears the screen) or a bidi override in a status must reach the terminal as
visible text, never as a command. ``echo`` prints lines, ``show`` rich renderables (built here
from already safe strings; the console escapes whatever slipped through, as a backstop), and
``print_json`` JSON documents (same values, only \\u-escaped). No other module writes to stdout
or stderr (tests/test_views_architecture.py).
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import click

from service.diff import humanise
from service.findings.stored import FindingInfo
from service.models import Change, StoredChange, VersionInfo, WatchInfo

if TYPE_CHECKING:
    # rich is imported where a table or styled text is drawn: a one-shot `sync --json` (the
    # command a cron job runs) prints JSON only and need not pay for it at start-up
    from rich.console import Console, JustifyMethod, RenderableType
    from rich.table import Table
    from rich.text import Text

    from service.monitor import SyncReport
    from service.trials import Registration, Trial

SEVERITY_STYLE = {"low": "dim", "medium": "yellow", "high": "bold red"}
HISTORY_MARK = "(history)"  # a change found by backfill: an old registry version, not news

# ---- the one terminal-safe text path -------------------------------------------------------------

# Everything but printable ASCII is a suspect; the few that are unsafe are decided per character.
_SUSPECT = re.compile(r"[^\n -~]")
_SUSPECT_OR_NEWLINE = re.compile(r"[^ -~]")
# Unicode categories that do something other than show a glyph: controls (C0, DEL, C1), format
# characters (bidi embeddings, overrides and isolates, zero-width and invisible characters, tag
# characters), lone surrogates (they cannot even be encoded), line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Format characters that scripts need to join or not join letters (Persian, Indic, emoji): they
# cannot reorder or hide text.
_JOINERS = frozenset("\u200c\u200d")


def unsafe_char(ch: str) -> bool:
    """True if ``ch`` would act on a terminal (or hide, reorder, spoof text) instead of showing."""
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES and ch not in _JOINERS


def terminal_safe(text: str, *, newlines: bool = True) -> str:
    """``text`` with every unsafe character visibly escaped as Python writes it (``\\x1b``,
    ``\\u202e``); newlines are kept where ``newlines`` (the layout's own), else escaped too."""
    pattern = _SUSPECT if newlines else _SUSPECT_OR_NEWLINE
    return pattern.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    ch = match.group()
    return repr(ch)[1:-1] if unsafe_char(ch) else ch


def one_line(value: object) -> str:
    """A value shown inside a line or a table cell: safe, and its newlines escaped too (a
    registry value must not start a line of its own that looks like trialwatch's)."""
    return terminal_safe("" if value is None else str(value), newlines=False)


def echo(line: str = "", *, err: bool = False) -> None:
    """Print one line, terminal-safe: a newline inside ``line`` is escaped, so no value can
    print a line of its own (print several lines with several calls)."""
    click.echo(one_line(line), err=err)


@cache
def _safe_console_type() -> type[Console]:
    from rich.console import Console, ConsoleOptions
    from rich.segment import Segment

    class SafeConsole(Console):
        """A rich console that escapes unsafe characters in whatever text it renders: a
        backstop for the renderables below, which are built from ``one_line`` strings."""

        def render(
            self, renderable: RenderableType, options: ConsoleOptions | None = None
        ) -> Iterable[Segment]:
            for segment in super().render(renderable, options):
                if segment.control:  # rich's own cursor and style codes
                    yield segment
                else:
                    yield Segment(terminal_safe(segment.text), segment.style, segment.control)

    return SafeConsole


def console(*, err: bool = False) -> Console:
    """A console for one print: it reads COLUMNS (and whether it writes to a terminal) now."""
    return _safe_console_type()(stderr=err, highlight=False, soft_wrap=False)


def __getattr__(name: str) -> Any:
    # ``stderr``: progress bars (no registry text in them) draw on it; made on first use and
    # kept for the life of the process
    if name == "stderr":
        globals()["stderr"] = made = console(err=True)
        return made
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def show(renderable: RenderableType) -> None:
    """Print a table or styled text built by this module on stdout."""
    console().print(renderable)


def print_json(document: Any) -> None:
    """One JSON document on stdout and nothing else (logs and progress go to stderr).

    The values are exact; characters that would act on a terminal are written as JSON
    ``\\u`` escapes (which parse back to the same characters).
    """
    # Written as it is encoded (the same text as json.dumps), never whole: a first sync's
    # report of 100,000 changes is ~50 MB of text, twice over with the escaping.
    chunks: list[str] = []
    size = 0
    for chunk in json.JSONEncoder(ensure_ascii=False, indent=2).iterencode(document):
        chunks.append(chunk)
        size += len(chunk)
        if size >= 1 << 16:
            sys.stdout.write(_SUSPECT.sub(_json_escaped, "".join(chunks)))
            chunks, size = [], 0
    sys.stdout.write(_SUSPECT.sub(_json_escaped, "".join(chunks)) + "\n")
    sys.stdout.flush()


def _json_escaped(match: re.Match[str]) -> str:
    ch = match.group()
    if not unsafe_char(ch):
        return ch
    data = ch.encode("utf-16-le", "surrogatepass")  # astral characters: a surrogate pair
    units = [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]
    return "".join(f"\\u{unit:04x}" for unit in units)


# ---- tables that fit -----------------------------------------------------------------------------

MIN_TITLE_WIDTH = 12  # below this a title says nothing; the other columns give way first


@dataclass(frozen=True)
class Column:
    header: str
    justify: JustifyMethod = "left"
    title: bool = False  # the one column that takes the remaining width (ellipsis when cut)
    wrap: bool = False  # may wrap down to its longest word to leave the title room


def fitted_table(
    caption: str, columns: Sequence[Column], rows: Sequence[Sequence[Text]], width: int
) -> Table:
    """A table for ``width`` terminal columns: every column as wide as its content, except the
    title column, which gets the remaining width and is cut with an ellipsis, never dropped.

    rich, left to itself, shrinks a long title to "…" and drops the last columns on a narrow
    terminal; so the widths are computed here and given to rich as fixed.
    """
    from rich import box
    from rich.table import Table

    widths = _fit(columns, rows, width)
    table = Table(
        title=one_line(caption),
        title_justify="left",
        box=box.SIMPLE_HEAD,  # a rule under the headers, no vertical lines
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for column, column_width in zip(columns, widths, strict=True):
        table.add_column(
            column.header,
            justify=column.justify,
            width=column_width,
            no_wrap=not column.wrap,
            overflow="ellipsis" if column.title else "fold",
        )
    for row in rows:
        table.add_row(*row)
    return table


def _cells(index: int, column: Column, rows: Sequence[Sequence[Text]]) -> list[str]:
    return [column.header, *(line for row in rows for line in row[index].plain.split("\n"))]


def _natural(cells: list[str]) -> int:
    from rich.cells import cell_len

    return max(cell_len(cell) for cell in cells)


def _narrowest(cells: list[str]) -> int:
    from rich.cells import cell_len

    return max(cell_len(word) for cell in cells for word in cell.split() or [""])


def _two_lines(cells: list[str]) -> int:
    """The narrowest width at which every cell wraps into at most two lines."""
    return max(_two_line_width(cell) for cell in cells)


def _two_line_width(cell: str) -> int:
    from rich.cells import cell_len

    words = cell.split()
    splits = [(" ".join(words[:k]), " ".join(words[k:])) for k in range(1, len(words))]
    return min((max(cell_len(a), cell_len(b)) for a, b in splits), default=cell_len(cell))


def _fit(columns: Sequence[Column], rows: Sequence[Sequence[Text]], width: int) -> list[int]:
    """Column widths for ``width``: the others as wide as their content, then the title.

    When the title would be cut, wrapping columns give way: first down to two lines a cell
    (until the title has a third of the width), then down to their longest word (until it has
    MIN_TITLE_WIDTH).
    """
    cells = [_cells(i, c, rows) for i, c in enumerate(columns)]
    natural = [_natural(c) for c in cells]
    widths = [0 if c.title else n for c, n in zip(columns, natural, strict=True)]
    title = next((i for i, c in enumerate(columns) if c.title), None)
    if title is None:
        return widths
    # Between two columns: one space of padding and one of the (invisible) divider.
    budget = width - 2 * (len(columns) - 1)
    passes = (
        (_two_lines, min(natural[title], max(MIN_TITLE_WIDTH, budget // 3))),
        (_narrowest, min(natural[title], MIN_TITLE_WIDTH)),
    )
    for floor_of, wanted in passes:
        floors = [
            floor_of(c) if col.wrap else w for c, col, w in zip(cells, columns, widths, strict=True)
        ]
        _shrink(widths, floors, budget - wanted)
    floor = min(natural[title], MIN_TITLE_WIDTH)
    widths[title] = max(floor, min(natural[title], budget - sum(widths)))
    return widths


def _shrink(widths: list[int], floors: list[int], total: int) -> None:
    """Narrow the widest column above its floor, one cell at a time, down to ``total``."""
    while sum(widths) > total:
        above = [i for i, w in enumerate(widths) if w > floors[i]]
        if not above:
            return
        widths[max(above, key=lambda i: widths[i])] -= 1


# ---- watch list ----------------------------------------------------------------------------------


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


HISTORY_COLUMN = Column("history", wrap=True)  # the backfill of past versions
WATCH_COLUMNS = (
    Column("study"),
    Column("registry"),
    Column("status", wrap=True),
    Column("title", title=True),
    Column("same trial", wrap=True),
    Column("tags", wrap=True),
    Column("versions", justify="right"),
    HISTORY_COLUMN,
    Column("last checked"),
)


def watches_table(watches: Sequence[WatchInfo], width: int | None = None) -> Table:
    rows = [_watch_row(w) for w in watches]
    caption = f"{len(watches)} watched record(s)"
    columns = list(WATCH_COLUMNS)
    # columns shown only when they say something: the history while a backfill is under way
    # or failed, the registry when there is more than one, the trial when a record is
    # registered twice
    idle = {
        HISTORY_COLUMN.header: not any(w.backfill in ("pending", "failed") for w in watches),
        "registry": len({w.registry for w in watches}) <= 1,
        "same trial": not any(w.trial or w.linked for w in watches),
    }
    for name, unused in idle.items():
        if unused:
            at = [c.header for c in columns].index(name)
            del columns[at]
            rows = [row[:at] + row[at + 1 :] for row in rows]
    return fitted_table(caption, columns, rows, width or console().width)


def _watch_row(w: WatchInfo) -> list[Text]:
    from rich.text import Text

    status = Text(one_line(humanise(w.overall_status) if w.overall_status else w.state))
    if w.state == "unavailable":
        status = Text("unavailable", style="red")
    # an alias: the registry serves the record under another id now
    study = one_line(w.study_id) + (f" (now {one_line(w.served_id)})" if w.served_id else "")
    return [
        Text(study),
        Text(w.registry),
        status,
        Text(one_line(w.title)),
        # the other registrations of its trial (those it names, and those naming it)
        Text(one_line(", ".join(link.study_id for link in w.trial or w.linked))),
        Text(one_line(", ".join(w.tags))),
        Text(str(w.versions)),
        Text(_backfill_state(w.backfill)),
        Text(when(w.last_checked_at)),
    ]


def _backfill_state(state: str | None) -> str:
    """The past versions of a record: still to fetch, fetched, or not to be had."""
    return {"pending": "pending", "done": "complete", "failed": "unavailable"}.get(state or "", "—")


# ---- findings -----------------------------------------------------------------------------------

FINDING_COLUMNS = (
    Column("study"),
    Column("rule", wrap=True),
    Column("state"),
    Column("since"),
    Column("summary", title=True),
)


def findings_table(
    found: Sequence[FindingInfo], width: int | None = None, today: date | None = None
) -> Table:
    """The findings, each summary followed by its evidence in words (one ``Label: value``
    line each, outcome steps as was → now) and, while open, its deadline counted from
    ``today``."""
    from rich.text import Text

    rows = [
        [
            Text(one_line(f.study_id)),
            Text(one_line(f.rule.replace("_", " "))),
            Text(f.state, style="red" if f.state == "open" and f.severity == "high" else ""),
            Text(when(f.opened_at if f.state == "open" else f.resolved_at)),
            Text("\n".join(_finding_lines(f, today))),
        ]
        for f in found
    ]
    opened = sum(1 for f in found if f.state == "open")
    caption = f"{len(found)} finding(s), {opened} open"
    return fitted_table(caption, FINDING_COLUMNS, rows, width or console().width)


def _finding_lines(finding: FindingInfo, today: date | None) -> list[str]:
    from service.findings.words import finding_words

    words = finding_words(finding.detail, None if finding.state == "resolved" else today)
    head = one_line(finding.summary) + (f" ({words.when})" if words.when else "")
    lines = [head] + [f"  {one_line(row.label)}: {one_line(row.text)}" for row in words.rows]
    for step in words.steps:
        lines.append(f"  {one_line(step.title)}")
        lines += [
            f"    {one_line(before) or '–'} → {one_line(after) or '–'}"
            for before, after in step.pairs
        ]
    return lines


# ---- seeds --------------------------------------------------------------------------------------

SEED_COLUMNS = (
    Column("seed"),
    Column("kind", wrap=True),
    Column("year"),
    Column("title", title=True),
    Column("links", wrap=True),
)


def seeds_table(listed: Sequence[dict[str, Any]], width: int | None = None) -> Table:
    """``seeds list``: one row per seed (``service.seeds.service.list_seeds`` items)."""
    rows = [_seed_row(item) for item in listed]
    caption = f"{len(listed)} seed stud(ies)"
    return fitted_table(caption, SEED_COLUMNS, rows, width or console().width)


def _seed_row(item: dict[str, Any]) -> list[Text]:
    from rich.text import Text

    links = "\n".join(
        one_line(f"{x['study_id']} {x['confidence']:.2f} {x['source']}")
        + (" related" if x.get("relation") == "related" else "")
        + (" (watched)" if x["watched"] else "")
        for x in item["links"]
    )
    return [
        Text(one_line(item["seed"])),
        Text(one_line(item["kind"].replace("_", " "))),
        Text(str(item["year"] or "—")),
        Text(one_line(item["title"])),
        Text(links or "—"),
    ]


# ---- trials ----------------------------------------------------------------------------------


def trials_lines(trials: Sequence[Trial]) -> Text:
    """Each trial: its registrations side by side (a line each), then where they disagree."""
    from rich.text import Text

    out = Text(f"{len(trials)} trial(s) registered more than once\n", style="bold")
    for trial in trials:
        out.append("\n")
        for registration in trial.registrations:
            out.append(_registration_line(registration))
        for disagreement in trial.disagreements:
            out.append("  disagree: ", style="bold red")
            out.append(f"{one_line(disagreement.summary)}\n")
    out.rstrip()
    return out


def _registration_line(registration: Registration) -> Text:
    from rich.text import Text

    line = Text(f"{registration.registry:<7} ", style="dim")
    line.append(one_line(registration.study_id), style="bold cyan")
    snap = registration.snapshot
    if snap is None:
        return line + Text(f"  (not watched; named by {registration.source})\n", style="dim")
    enrollment = f"{snap.enrollment_count:,}" if snap.enrollment_count is not None else "—"
    facts = [
        one_line(snap.overall_status or "—"),
        snap.lifecycle.replace("_", " ") or "—",
        f"enrollment {enrollment}",
        f"completion {snap.completion_date.date or '—'}",
    ]
    return line + Text("  " + " · ".join(facts) + "\n")


# ---- changes and versions ------------------------------------------------------------------------


def changes_lines(changes: Sequence[Change], title: str) -> Text:
    """Changes grouped by study and version step: one line each, readable at any width. Steps
    found by backfill (versions the registry published before the first sync) say so."""
    from rich.text import Text

    out = Text(f"{one_line(title)}\n", style="bold")
    heading = None
    for c in changes:
        step, historical = _step(c), _historical(c)
        if (c.study_id, step, historical) != heading:
            heading = (c.study_id, step, historical)
            out.append(one_line(c.study_id), style="bold cyan")
            out.append(f"  {step}" if step else "", style="dim")
            out.append(f"  {HISTORY_MARK}" if historical else "", style="magenta")
            out.append("\n")
        out.append(f"  {c.severity:<6} ", style=SEVERITY_STYLE[c.severity])
        out.append(f"{one_line(c.summary)}\n")
    out.rstrip()
    return out


def historical_count(changes: Sequence[Change]) -> int:
    return sum(1 for c in changes if _historical(c))


def sync_summary(report: SyncReport, *, dry_run: bool) -> list[str]:
    """The last lines of a human ``sync``: counts, and how many changes are history, not news."""
    counts = (
        f"{'dry run: ' if dry_run else ''}{report.checked} checked: {report.new} new, "
        f"{report.changed} changed, {report.unchanged} unchanged, {report.failed} failed; "
        f"{report.requests} registry request(s)"
    )
    historical = historical_count(report.changes)
    if not historical:
        return [counts]
    return [
        counts,
        f"{historical} of the {len(report.changes)} change(s) are marked {HISTORY_MARK}: "
        "steps between versions the registry published before the record was first synced "
        "(found by backfill), not changes made now",
    ]


def versions_lines(study_id: str, versions: Sequence[VersionInfo]) -> Text:
    from rich.text import Text

    out = Text(f"{one_line(study_id)}: {len(versions)} stored version(s)\n", style="bold")
    for v in versions:
        enrollment = (
            f"{v.enrollment_count} {v.enrollment_type.lower()}".strip()
            if v.enrollment_count is not None
            else "—"
        )
        status = humanise(v.overall_status) if v.overall_status else "—"
        out.append(f"v{v.version}", style="bold cyan")
        out.append(
            one_line(
                f"  posted {v.last_update_posted or '—'}, fetched {when(v.fetched_at)}: "
                f"{status}; enrollment {enrollment}"
            )
            + "\n"
        )
        for summary in v.changes:
            out.append(f"    {one_line(summary)}\n")
    out.rstrip()
    return out


def _historical(change: Change) -> bool:
    return isinstance(change, StoredChange) and change.historical


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
