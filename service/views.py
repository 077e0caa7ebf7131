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
import os
import re
import sys
import textwrap
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

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


def console(*, err: bool = False, width: int | None = None) -> Console:
    """A console for one print: it reads COLUMNS (and whether it writes to a terminal) now.
    ``width`` overrides both (a table laid out wider than the terminal stays whole: the
    terminal wraps its lines, rich does not cut its ids)."""
    return _safe_console_type()(stderr=err, highlight=False, soft_wrap=False, width=width)


def layout_width() -> int | None:
    """The width stdout is laid out for: COLUMNS when set (a person's choice, or `watch`'s),
    else the terminal's; None when stdout is a pipe or a file: then every row is one line and
    nothing is cut or wrapped, so that the output can be grepped and cut (rich would take the
    width of whatever terminal stdin or stderr is, and hard-wrap the pipe to it)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if not sys.stdout.isatty():
        return None
    return console().width


def __getattr__(name: str) -> Any:
    # ``stderr``: progress bars (no registry text in them) draw on it; made on first use and
    # kept for the life of the process
    if name == "stderr":
        globals()["stderr"] = made = console(err=True)
        return made
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def show(renderable: RenderableType) -> None:
    """Print a table or styled text built by this module on stdout: fitted to the terminal,
    or, on a pipe, a line per row or item, never wrapped (``layout_width``)."""
    width = layout_width()
    if width is None and isinstance(renderable, FittedTable):
        _write_lines(renderable.plain_lines())
        return
    needed = renderable.width if isinstance(renderable, FittedTable) else 0
    if width is None:
        out = _safe_console_type()(highlight=False, soft_wrap=True, width=80)
    else:
        out = console(width=max(width, needed))
    out.print(renderable)


def _write_lines(lines: Iterable[str]) -> None:
    """Lines on stdout as they come, a chunk at a time, each terminal-safe (a backstop: they
    are built from ``one_line`` strings)."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(terminal_safe(line, newlines=False))
        if len(chunk) >= 1000:
            sys.stdout.write("\n".join(chunk) + "\n")
            chunk = []
    if chunk:
        sys.stdout.write("\n".join(chunk) + "\n")
    sys.stdout.flush()


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


# ---- words ---------------------------------------------------------------------------------------


def plural(count: int, noun: str, many: str | None = None) -> str:
    """ "1 seed study", "5 seed studies", "0 changes": the count and its noun agreeing."""
    if count == 1:
        return f"{count:,} {noun}"
    if many is None:
        many = (
            noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"
        )
    return f"{count:,} {many}"


def clip(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells, cut at a word boundary and ended with "…" (mid-word
    only when its first word alone is wider). The one cut of the terminal's text."""
    from rich.cells import cell_len, set_cell_size

    if cell_len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    room = set_cell_size(text, width - 1)
    cut = room.rstrip()
    if not text[len(room) : len(room) + 1].isspace():  # the cut falls inside a word
        head = cut.rsplit(" ", 1)[0].rstrip() if " " in cut else ""
        cut = head if cell_len(head) >= width // 3 else cut  # a long first word: cut in it
    return cut.rstrip(" ,;:-") + "…"


# ---- tables that fit -----------------------------------------------------------------------------

MIN_TITLE_WIDTH = 12  # below this a title says nothing; the other columns give way first
GAP = 2  # between two columns: one space of padding and one of the (invisible) divider


@dataclass(frozen=True)
class Column:
    header: str
    justify: JustifyMethod = "left"
    # the one column that takes the width left: each line cut at a word with "…" (wrapped at
    # its words instead if it also ``wrap``s)
    title: bool = False
    # may wrap at its spaces, never inside a word, to leave the title room (on a terminal)
    wrap: bool = False
    # a list (tags, links: one item a line of its cell): abbreviated to its first item and a
    # count when room is short, then moved to a line of its own under the title
    aside: bool = False


@dataclass(frozen=True)
class FittedTable:
    """A table laid out for a width (None: for a pipe). ``show`` draws it with rich on a
    terminal, at least ``width`` wide (a terminal too narrow for even the ids wraps the lines,
    rich never cuts an id), and writes it as plain padded lines on a pipe (a 100,000-record
    watch list in seconds, not the minutes rich takes to draw it)."""

    caption: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[Text]]
    widths: Sequence[int]

    @property
    def width(self) -> int:
        return sum(self.widths) + GAP * (len(self.columns) - 1)

    def __rich__(self) -> Table:
        from rich import box
        from rich.table import Table

        table = Table(
            title=one_line(self.caption),
            title_justify="left",
            box=box.SIMPLE_HEAD,  # a rule under the headers, no vertical lines
            show_edge=False,
            pad_edge=False,
            collapse_padding=True,
        )
        for column, column_width in zip(self.columns, self.widths, strict=True):
            table.add_column(
                column.header,
                justify=column.justify,
                width=column_width,
                no_wrap=not column.wrap,
                overflow="ellipsis" if column.title else "fold",
            )
        for row in self.rows:
            table.add_row(*row)
        return table

    def plain_lines(self) -> Iterator[str]:
        """The table as text: caption, headers, a rule, then each row's lines, the cells
        padded to their column's width (trailing spaces dropped)."""
        yield one_line(self.caption)
        yield self._line([c.header for c in self.columns])
        yield "─" * self.width
        for row in self.rows:
            cells = [cell.plain.split("\n") for cell in row]
            for n in range(max(len(lines) for lines in cells)):
                yield self._line([lines[n] if n < len(lines) else "" for lines in cells])

    def _line(self, texts: Sequence[str]) -> str:
        from rich.cells import cell_len

        padded = []
        for column, width, text in zip(self.columns, self.widths, texts, strict=True):
            space = " " * max(0, width - cell_len(text))
            padded.append(space + text if column.justify == "right" else text + space)
        return (" " * GAP).join(padded).rstrip()


def fitted_table(
    caption: str, columns: Sequence[Column], rows: Sequence[Sequence[Text]], width: int | None
) -> FittedTable:
    """A table for ``width`` terminal columns, or for a pipe (``None``: every cell whole, a
    line a row). On a terminal every column is as wide as its content, ids and dates whole,
    and the title takes the width left, cut at a word with "…"; when it would be cut short,
    the asides (tags, links) are abbreviated, else moved under the title, and then wrapping
    columns (a status, a date and its time) wrap at their spaces, never inside a word.
    """
    if width is None:
        rows = [_joined(columns, row) for row in rows]
        widths = [_natural(_cells(i, c, rows)) for i, c in enumerate(columns)]
        return FittedTable(caption, columns, rows, widths)
    columns, rows, widths, moved = _fit(columns, rows, width)
    rows = [_clipped(columns, row, widths, moved) for row in rows]
    return FittedTable(caption, columns, rows, widths)


def _cells(index: int, column: Column, rows: Sequence[Sequence[Text]]) -> list[str]:
    """The distinct lines of a column (a status or a date is measured once, not per row)."""
    lines = (line for row in rows for line in row[index].plain.split("\n"))
    return list(dict.fromkeys((column.header, *lines)))


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


def _items(cell: Text) -> list[str]:
    return [item for item in cell.plain.split("\n") if item]


def _joined(columns: Sequence[Column], row: Sequence[Text]) -> list[Text]:
    """A row for a pipe: each aside's items on one line."""
    from rich.text import Text

    return [
        Text(", ".join(_items(cell))) if c.aside else cell
        for c, cell in zip(columns, row, strict=True)
    ]


def _abbreviated(columns: Sequence[Column], row: Sequence[Text]) -> list[Text]:
    """Each aside as its first item and how many more ("oncology +2")."""
    from rich.text import Text

    def short(cell: Text) -> Text:
        items = _items(cell)
        return Text(items[0] + (f" +{len(items) - 1}" if len(items) > 1 else "") if items else "")

    return [short(cell) if c.aside else cell for c, cell in zip(columns, row, strict=True)]


def _moved(columns: Sequence[Column], row: Sequence[Text]) -> list[Text]:
    """The asides as lines of their own under the title ("tags: a, b"), out of their columns."""
    title = next(i for i, c in enumerate(columns) if c.title)
    extra = [
        f"{c.header}: {', '.join(_items(cell))}"
        for c, cell in zip(columns, row, strict=True)
        if c.aside and _items(cell)
    ]
    cells = list(row)
    if extra:
        cells[title] = cells[title].copy()
        cells[title].append("\n" + "\n".join(extra))
    return [cell for c, cell in zip(columns, cells, strict=True) if not c.aside]


def _fit(
    columns: Sequence[Column], rows: Sequence[Sequence[Text]], width: int
) -> tuple[list[Column], list[list[Text]], list[int], tuple[str, ...]]:
    """The columns, rows and widths for ``width`` (see ``fitted_table``), and the headers of
    the asides moved under the title (none if they kept their columns)."""
    shown, cells = list(columns), [_joined(columns, row) for row in rows]
    title = next((i for i, c in enumerate(shown) if c.title), None)
    widths = _widths(shown, cells, width)
    if title is None or _enough(shown, cells, widths, width):
        return shown, cells, widths, ()
    if not any(c.aside for c in shown):
        return shown, cells, _widths(shown, cells, width, squeeze=True), ()
    cells = [_abbreviated(columns, row) for row in rows]
    widths = _widths(shown, cells, width)
    if _enough(shown, cells, widths, width):
        return shown, cells, widths, ()
    # a word of a moved aside (an id) is never cut: the title is at least that wide
    items = [
        i
        for row in rows
        for c, cell in zip(columns, row, strict=True)
        if c.aside
        for i in _items(cell)
    ]
    floor = _narrowest(items) + 2 if items else 0  # (a wrapped line is indented by 2)
    cells = [_moved(columns, row) for row in rows]
    shown = [c for c in columns if not c.aside]
    moved = tuple(f"{c.header}: " for c in columns if c.aside)
    widths = _widths(shown, cells, width, title_floor=floor)
    if not _enough(shown, cells, widths, width):
        widths = _widths(shown, cells, width, squeeze=True, title_floor=floor)
    return shown, cells, widths, moved


def _wanted(column: Column, title: list[str], budget: int) -> int:
    """The width a title should have before the other columns give way: a third of the line
    (all it can have when it wraps: every line of it is read)."""
    if column.wrap:
        return _natural(title)
    return min(_natural(title), max(MIN_TITLE_WIDTH, budget // 3))


def _enough(
    columns: Sequence[Column], rows: Sequence[Sequence[Text]], widths: list[int], width: int
) -> bool:
    title = next(i for i, c in enumerate(columns) if c.title)
    budget = width - GAP * (len(columns) - 1)
    wanted = _wanted(columns[title], _cells(title, columns[title], rows), budget)
    return sum(widths) <= budget and widths[title] >= wanted


def _widths(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Text]],
    width: int,
    *,
    squeeze: bool = False,
    title_floor: int = 0,
) -> list[int]:
    """Column widths for ``width``: the others as wide as their content, the title the rest.

    ``squeeze``: wrapping columns give way when the title would be cut short, first down to
    two lines a cell (until the title has a third of the width), then down to their longest
    word (until it has MIN_TITLE_WIDTH); never inside a word.
    """
    cells = [_cells(i, c, rows) for i, c in enumerate(columns)]
    natural = [_natural(c) for c in cells]
    widths = [0 if c.title else n for c, n in zip(columns, natural, strict=True)]
    title = next((i for i, c in enumerate(columns) if c.title), None)
    if title is None:
        return widths
    budget = width - GAP * (len(columns) - 1)
    if squeeze:
        wanted = _wanted(columns[title], cells[title], budget)
        for floor_of in (_two_lines, _narrowest):  # whole steps: a width between wraps wastes
            _give_way(
                widths,
                [floor_of(c) if col.wrap else 0 for c, col in zip(cells, columns, strict=True)],
                budget - max(wanted, title_floor),
            )
            wanted = min(natural[title], MIN_TITLE_WIDTH)
    floor = max(min(natural[title], MIN_TITLE_WIDTH), title_floor)
    widths[title] = max(floor, min(natural[title], budget - sum(widths)))
    return widths


def _give_way(widths: list[int], floors: list[int], total: int) -> None:
    """Narrow the widest column that can give way to its floor (a wrapping column: the
    width at which it wraps into two lines, or at its longest word), one column at a time,
    until the widths come to ``total``."""
    while sum(widths) > total:
        above = [i for i, w in enumerate(widths) if 0 < floors[i] < w]
        if not above:
            return
        widest = max(above, key=lambda i: widths[i])
        widths[widest] = floors[widest]


def _clipped(
    columns: Sequence[Column], row: Sequence[Text], widths: Sequence[int], moved: tuple[str, ...]
) -> list[Text]:
    """The title's lines cut at a word to its width (rich would cut mid-word); an aside's line
    ``moved`` under it wraps at its spaces instead (dimmed): the ids in it are never cut."""
    return [
        _clip_cell(cell, width, moved, wraps=column.wrap) if column.title else cell
        for column, cell, width in zip(columns, row, widths, strict=True)
    ]


def _clip_cell(cell: Text, width: int, asides: tuple[str, ...], *, wraps: bool) -> Text:
    """Each line of a title cut to ``width`` at a word, or (``wraps``) wrapped at its words
    under its own start."""
    from rich.text import Text

    out = Text(style=cell.style)
    for n, line in enumerate(cell.plain.split("\n")):
        if n and asides and line.startswith(asides):
            out.append("\n" + "\n".join(_wrapped(line, width)), style="dim")
        elif wraps:
            out.append(("\n" if n else "") + "\n".join(_wrapped(line, width)))
        else:
            out.append(("\n" if n else "") + clip(line, width))
    return out


def _wrapped(line: str, width: int) -> list[str]:
    """``line`` wrapped at its spaces, its next lines indented two more than its first."""
    indent = " " * (len(line) - len(line.lstrip()) + 2)
    return textwrap.wrap(
        line, width, break_long_words=False, break_on_hyphens=False, subsequent_indent=indent
    ) or [""]


# ---- watch list ----------------------------------------------------------------------------------


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


Width = int | None | Literal["auto"]  # "auto": ``layout_width()``; None: for a pipe

NOT_FOUND = "not found"  # a watched id the registry says it never had

HISTORY_COLUMN = Column("history", wrap=True)  # the backfill of past versions
WATCH_COLUMNS = (
    Column("study"),
    Column("registry"),
    Column("status", wrap=True),
    Column("title", title=True),
    Column("same trial", aside=True),
    Column("tags", aside=True),
    Column("versions", justify="right"),
    HISTORY_COLUMN,
    Column("last checked", wrap=True),  # the date above the time, when room is short
)


def _width(width: Width) -> int | None:
    return layout_width() if width == "auto" else width


def watches_table(watches: Sequence[WatchInfo], width: Width = "auto") -> FittedTable:
    rows = [_watch_row(w) for w in watches]
    caption = plural(len(watches), "watched record")
    columns = list(WATCH_COLUMNS)
    # columns shown only when they say something: the history while a backfill is under way
    # or failed, the registry when there is more than one, the trial when a record is
    # registered twice
    idle = {
        HISTORY_COLUMN.header: not any(w.backfill in ("pending", "failed") for w in watches),
        "registry": len({w.registry for w in watches}) <= 1,
        "same trial": not any(w.trial or w.linked for w in watches),
        "tags": not any(w.tags for w in watches),
    }
    for name, unused in idle.items():
        if unused:
            at = [c.header for c in columns].index(name)
            del columns[at]
            rows = [row[:at] + row[at + 1 :] for row in rows]
    return fitted_table(caption, columns, rows, _width(width))


def not_found_hints(watches: Sequence[WatchInfo]) -> list[str]:
    """Under the watch list: what to do about the ids the registry never had."""
    return [
        f"{one_line(w.study_id)}: not found in the registry; "
        f"`trialwatch watch remove {one_line(w.study_id)}` stops watching it"
        for w in watches
        if w.state == NOT_FOUND
    ]


def _watch_row(w: WatchInfo) -> list[Text]:
    from rich.text import Text

    status = Text(one_line(humanise(w.overall_status) if w.overall_status else w.state))
    if w.state in ("unavailable", NOT_FOUND):
        status = Text(w.state, style="red")
    # an alias: the registry serves the record under another id now
    study = one_line(w.study_id) + (f" (now {one_line(w.served_id)})" if w.served_id else "")
    return [
        Text(study),
        Text(w.registry),
        status,
        Text(one_line(w.title)),
        # the other registrations of its trial (those it names, and those naming it)
        Text("\n".join(one_line(link.study_id) for link in w.trial or w.linked)),
        Text("\n".join(one_line(tag) for tag in w.tags)),
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
    Column("since", wrap=True),
    Column("summary", title=True, wrap=True),  # read whole: wrapped, never cut
)


def findings_table(
    found: Sequence[FindingInfo], width: Width = "auto", today: date | None = None
) -> FittedTable:
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
    caption = f"{plural(len(found), 'finding')}, {opened:,} open"
    return fitted_table(caption, FINDING_COLUMNS, rows, _width(width))


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
    Column("links", aside=True),
)


def seeds_table(listed: Sequence[dict[str, Any]], width: Width = "auto") -> FittedTable:
    """``seeds list``: one row per seed (``service.seeds.service.list_seeds`` items)."""
    rows = [_seed_row(item) for item in listed]
    caption = plural(len(listed), "seed study")
    return fitted_table(caption, SEED_COLUMNS, rows, _width(width))


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
        Text(links),
    ]


# ---- trials ----------------------------------------------------------------------------------


def trials_lines(trials: Sequence[Trial]) -> Text:
    """Each trial: its registrations side by side (a line each), then where they disagree."""
    from rich.text import Text

    heading = f"{plural(len(trials), 'trial')} registered more than once\n"
    out = Text(heading, style="bold")
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


CHANGE_INDENT = 9  # "  medium " before a change's summary


def changes_lines(changes: Sequence[Change], title: str, width: Width = "auto") -> Text:
    """Changes grouped by study and version step: one line each, readable at any width (on
    a terminal a long summary wraps at its spaces under itself; on a pipe it stays one line).
    Steps found by backfill (versions the registry published before the first sync) say so."""
    from rich.text import Text

    room = _width(width)
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
        # an outcome event's grade leads its summary: "major: Primary outcome added: …"
        summary = f"{c.grade}: {c.summary}" if c.grade else c.summary
        out.append(_hanging(one_line(summary), room, CHANGE_INDENT) + "\n")
    out.rstrip()
    return out


def _hanging(text: str, width: int | None, indent: int) -> str:
    """``text`` wrapped at its spaces to ``width`` after ``indent`` columns, its next lines
    indented as much (no wrapping for a pipe, or a terminal too narrow to wrap into)."""
    if width is None or width - indent < 20:
        return text
    lines = textwrap.wrap(text, width - indent, break_long_words=False, break_on_hyphens=False)
    return ("\n" + " " * indent).join(lines)


def historical_count(changes: Sequence[Change]) -> int:
    return sum(1 for c in changes if _historical(c))


def sync_summary(report: SyncReport, *, dry_run: bool) -> list[str]:
    """The last lines of a human ``sync``: counts, the registry requests and how the watch
    list was settled, and which changes are history, not news."""
    counts = (
        f"{'dry run: ' if dry_run else ''}{report.checked:,} checked: {report.new:,} new, "
        f"{report.changed:,} changed, {report.unchanged:,} unchanged, {report.failed:,} failed; "
        f"{_requests(report)}"
    )
    note = historical_note(report.changes)
    return [counts, note] if note else [counts]


def _requests(report: SyncReport) -> str:
    """ "1 request (probe)", "3 requests (ctgov 1, probe; euctr 2, signal)": the registry
    requests of the cycle and how each registry's watch list was settled."""
    total = plural(report.requests, "registry request")
    registries = report.cycle.get("registries")
    if isinstance(registries, dict) and len(registries) > 1:
        parts = [
            f"{name} {cycle.get('requests', 0):,}"
            + (f", {cycle['mode']}" if "mode" in cycle else "")
            for name, cycle in registries.items()
        ]
        return f"{total} ({'; '.join(parts)})"
    mode = report.cycle.get("mode")
    return f"{total} ({mode})" if isinstance(mode, str) else total


def historical_note(changes: Sequence[Change]) -> str:
    """What the changes marked (history) are: steps between versions the registry published
    before the record was first synced (found by backfill), and findings raised on first
    sight of a record (about its past); neither was made now, neither is notified."""
    historical = [c for c in changes if _historical(c)]
    if not historical:
        return ""
    findings = sum(1 for c in historical if c.kind.startswith("finding_"))
    steps = len(historical) - findings
    parts = []
    if steps:
        parts.append(
            f"{plural(steps, 'change')} between versions the registry published before the "
            "record was first synced (found by backfill)"
        )
    if findings:
        parts.append(
            f"{plural(findings, 'finding')} raised on first sight of a record (about its past)"
        )
    return (
        f"{len(historical):,} of the {plural(len(changes), 'change')} "
        f"{'is' if len(historical) == 1 else 'are'} marked {HISTORY_MARK}, not made now: "
        + "; ".join(parts)
    )


def versions_lines(study_id: str, versions: Sequence[VersionInfo]) -> Text:
    from rich.text import Text

    out = Text(f"{one_line(study_id)}: {plural(len(versions), 'stored version')}\n", style="bold")
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
