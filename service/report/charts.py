"""The report's charts: the overall status over time, enrollment by version (ESTIMATED hollow,
ACTUAL filled) and start/primary completion/completion dates by version.

Charts are inline SVG whose size is bounded whatever the number of versions: points shrink and
axis labels thin out, so a record with hundreds of versions stays readable. A chart is shapes
(``service.svg``), never markup: ``templates/svg.html`` draws them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from service.diff import humanise
from service.findings.rules import shift
from service.models import StudyDate
from service.report.load import VersionPoint
from service.svg import Chart, Circle, Line, Path, Rect, Shape, Text
from service.templates import number

__all__ = [
    "CHART_WIDTH",
    "CHART_WIDTHS",
    "DATE_SERIES",
    "NARROW_WIDTH",
    "STATUS_COLOURS",
    "Figure",
    "Key",
    "dates_chart",
    "dates_drawing",
    "enrollment_chart",
    "partial_date",
    "series",
    "status_band",
    "status_colour",
    "status_words",
]

CHART_WIDTH = 960  # SVG user units; the page scales charts to its column width
# A phone's column (about 370 px) would shrink a 960-wide chart's 12-unit labels to 5 px: each
# chart is also drawn this wide, and the style sheet shows one or the other by the width.
NARROW_WIDTH = 360
CHART_WIDTHS = (CHART_WIDTH, NARROW_WIDTH)

TimeScale = Callable[[date], float]  # a date to a position on a chart
CountScale = Callable[[float], float]  # an enrollment count to a height on a chart


@dataclass(frozen=True)
class Key:
    """One legend entry: a mark (swatch, filled, hollow, dash, cross, or none) and its words."""

    mark: str
    text: str
    colour: str = ""


@dataclass(frozen=True)
class Figure:
    chart: Chart  # drawn CHART_WIDTH wide
    keys: list[Key]
    caption: str = ""
    narrow: Chart | None = None  # the same, drawn NARROW_WIDTH wide (phones)

    @property
    def charts(self) -> tuple[Chart, ...]:
        """Every drawing of it, widest first."""
        return (self.chart,) if self.narrow is None else (self.chart, self.narrow)


# ---- time helpers ---------------------------------------------------------------------------

_TICK_STEPS = (1, 2, 3, 6, 12, 24, 60, 120, 240, 600, 1200, 2400, 6000, 12000)  # months
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PARTIAL_DATE = re.compile(r"(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?")


def partial_date(text: str) -> date | None:
    """``2023``, ``2023-11`` or ``2023-11-05`` as the first day it can mean; None if not a date.

    Registries give dates to the year or month; the first day keeps the order of dates given
    to different precisions sensible ("2023" before "2023-11") and slips are read in months.
    """
    match = _PARTIAL_DATE.fullmatch(text.strip())
    if not match:
        return None
    year, month, day = match.groups()
    try:
        return date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return None


def _version_days(versions: Sequence[VersionPoint], fallback: date) -> list[date]:
    """The versions' dates, never going backwards (a fetched-at date can precede a posted one)."""
    days: list[date] = []
    for version in versions:
        day = partial_date(version.date) or (days[-1] if days else fallback)
        days.append(max(day, days[-1]) if days else day)
    return days


def _time_ticks(lo: date, hi: date, max_ticks: int) -> tuple[list[date], int]:
    """Month-aligned ticks between ``lo`` and ``hi``, the finest step that fits; (ticks, step)."""
    months = (hi.year - lo.year) * 12 + hi.month - lo.month
    for step in _TICK_STEPS:
        if months // step > max_ticks + 1:  # too many for sure: not made (0001–9999 would be
            continue  # 120,000 monthly ticks)
        ticks = _ticks_every(lo, hi, step)
        if len(ticks) <= max_ticks:
            return ticks, step
    return [], _TICK_STEPS[-1]


def _ticks_every(lo: date, hi: date, months: int) -> list[date]:
    index = lo.year * 12 + lo.month - 1 + (1 if lo.day > 1 else 0)
    index = -(-index // months) * months
    ticks: list[date] = []
    while index // 12 <= date.max.year:  # a record can run to 9999-12-31: ticks stop there
        tick = date(index // 12, index % 12 + 1, 1)
        if tick > hi:
            break
        ticks.append(tick)
        index += months
    return ticks


def _span(lo: date, hi: date, least: int) -> tuple[date, date]:
    """The days from ``lo`` to ``hi``, at least ``least`` days apart and within the calendar:
    a record may give dates from 0001-01-01 to 9999-12-31, and an axis still has a width."""
    hi = max(hi, shift(lo, least))
    return min(lo, shift(hi, -least)), hi


def _tick_label(tick: date, step: int) -> str:
    return str(tick.year) if step >= 12 else f"{_MONTHS[tick.month - 1]} {tick.year}"


# ---- chart helpers --------------------------------------------------------------------------


def _marker(x: float, y: float, radius: float, colour: str, kind: str, tip: str) -> Circle:
    """A point: filled for ACTUAL, hollow for ESTIMATED (or no type given)."""
    fill = colour if kind == "ACTUAL" else "#fff"
    width = max(1.2, radius / 2.2)
    return Circle(x, y, radius, fill, colour, width, kind or "NONE", tip)


_LABEL_GAP = 80  # px between version labels: "2021-06-18" is about 70 wide


@dataclass(frozen=True)
class _VersionAxis:
    """Versions spread evenly across the plot: the x axis of the per-version charts."""

    left: float
    width: float
    count: int

    @property
    def step(self) -> float:
        return self.width / self.count

    def x(self, index: int) -> float:
        return self.left + (index + 0.5) * self.step

    def radius(self) -> float:
        return max(1.6, min(5.0, self.step * 0.3))

    def labelled(self) -> list[int]:
        """Which versions get an axis label: as many as fit, always the first and the last."""
        every = max(1, math.ceil(self.count / max(1, int(self.width // _LABEL_GAP))))
        chosen = list(range(0, self.count, every))
        if chosen[-1] != self.count - 1:
            if (self.count - 1 - chosen[-1]) * self.step < _LABEL_GAP and len(chosen) > 1:
                chosen.pop()
            chosen.append(self.count - 1)
        return chosen


def _version_labels(axis: _VersionAxis, versions: Sequence[VersionPoint], y: float) -> list[Shape]:
    shapes: list[Shape] = []
    for i in axis.labelled():
        x = axis.x(i)
        shapes.append(Line(x, y - 10, x, y - 6, cls="axis"))
        shapes.append(Text(x, y + 5, f"v{versions[i].version}", cls="label"))
        shapes.append(Text(x, y + 20, versions[i].date))
    return shapes


# ---- status band ----------------------------------------------------------------------------

STATUS_COLOURS: dict[str, str] = {
    "NOT_YET_RECRUITING": "#b9d3ea",
    "RECRUITING": "#2f9e5b",
    "ENROLLING_BY_INVITATION": "#8fd0a0",
    "ACTIVE_NOT_RECRUITING": "#3f7fc1",
    "COMPLETED": "#23395d",
    "SUSPENDED": "#f0913a",
    "TERMINATED": "#c62828",
    "WITHDRAWN": "#7b5ea7",
    "UNKNOWN": "#9aa5b1",
    "APPROVED_FOR_MARKETING": "#5e8c31",
    "AVAILABLE": "#7fb24a",
    "NO_LONGER_AVAILABLE": "#8d6e63",
    "TEMPORARILY_NOT_AVAILABLE": "#c7a17a",
    "WITHHELD": "#6d6d6d",
}
_OTHER_STATUS = "#cfd6dd"
_LIGHT = {"NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION", "UNKNOWN", ""}


def status_words(status: str) -> str:
    return humanise(status) if status else "Not given"


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, _OTHER_STATUS)


@dataclass(frozen=True)
class _Spell:
    """A run of consecutive versions with the same status."""

    status: str
    start: date
    end: date
    first: int  # version numbers
    last: int


def _spells(versions: Sequence[VersionPoint], days: Sequence[date], end: date) -> list[_Spell]:
    spells: list[_Spell] = []
    for i, version in enumerate(versions):
        until = days[i + 1] if i + 1 < len(versions) else end
        if spells and spells[-1].status == version.status:
            prev = spells[-1]
            spells[-1] = _Spell(prev.status, prev.start, until, prev.first, version.version)
        else:
            spells.append(_Spell(version.status, days[i], until, version.version, version.version))
    return spells


_NOT_STORED = "#eef1f4"  # the band before the first stored version: its status is not known
_CALLOUT = 7.2  # user units per character of a 12-unit bold label (an estimate, on the safe side)


def status_band(
    versions: Sequence[VersionPoint], as_of: date, *, registered: date | None = None
) -> Figure:
    """The overall status over time: one coloured run per status spell, to the report date.

    The time axis starts at the record's start date or its registration (``registered``)
    when either is before the first stored version: a record first watched years into its
    run shows where that run began (grey, no version stored). The latest version's primary
    completion and completion dates are vertical lines, pushed apart where they fall on the
    same day so that neither hides the other."""
    keys = _status_legend(versions)
    wide, extra = _band(versions, as_of, registered, CHART_WIDTH)
    narrow, _ = _band(versions, as_of, registered, NARROW_WIDTH)
    caption = (
        f"Each version is a tick under the band. The latest status runs to the report date "
        f"({as_of.isoformat()})."
    )
    if any(k.colour == _NOT_STORED for k in extra):
        caption += " Grey: before the first stored version, whose status is not known."
    return Figure(wide, keys + extra, caption, narrow)


def _band(
    versions: Sequence[VersionPoint], as_of: date, registered: date | None, width: int
) -> tuple[Chart, list[Key]]:
    """The band drawn ``width`` wide, and the legend keys of what it adds to the statuses."""
    height, left, right, top, band = 112, 8, 8, 22, 38
    days = _version_days(versions, as_of)
    end = max(days[-1], as_of)
    start = partial_date(versions[-1].start.date)
    begin = min(d for d in (days[0], start, registered) if d is not None)
    lo, hi = _span(begin, end, 1)
    span = (hi - lo).days

    def x(day: date) -> float:
        return left + (width - left - right) * (day - lo).days / span

    shapes: list[Shape] = []
    keys: list[Key] = []
    if days[0] > lo:
        tip = f"No version stored before {days[0].isoformat()}"
        shapes.append(Rect(x(lo), top, x(days[0]) - x(lo), band, _NOT_STORED, "#fff", 1, "", tip))
        keys.append(Key("swatch", "No version stored", _NOT_STORED))
    spells = _spells(versions, days, end)
    # markers of very short spells go on top, so that no neighbour hides them
    ordered = sorted(spells, key=lambda s: x(s.end) - x(s.start) < _SLIVER)
    shapes += [shape for s in ordered for shape in _spell_shapes(s, x, top, band)]
    shapes += _callouts(spells, x, width - right)
    lines, line_keys = _milestones(versions[-1], x, lo, hi, top, band)
    shapes += lines
    keys += line_keys
    # a tick per version under the band: several versions on one day show as one tick
    for day in sorted(set(days)):
        shapes.append(Line(x(day), top + band + 3, x(day), top + band + 10, stroke="#1f2933"))
    ticks, step = _time_ticks(lo, hi, max_ticks=max(3, width // 96))
    for tick in ticks:
        shapes.append(Line(x(tick), top + band + 14, x(tick), top + band + 19, cls="axis"))
        shapes.append(_inside(x(tick), top + band + 33, _tick_label(tick, step), width))
    if not ticks:
        shapes.append(Text(left, top + band + 33, lo.isoformat(), anchor="start"))
        shapes.append(Text(width - right, top + band + 33, hi.isoformat(), anchor="end"))
    return Chart(width, height, "Overall status over time", tuple(shapes)), keys


def _inside(at: float, y: float, label: str, width: float) -> Text:
    """A tick label centred on its tick, unless that would cut it at an edge of the chart
    (a tick at the axis's very start): then it starts, or ends, at the tick."""
    half = len(label) * _GLYPH / 2
    if at - half < 0:
        return Text(at, y, label, anchor="start")
    if at + half > width:
        return Text(at, y, label, anchor="end")
    return Text(at, y, label)


_GLYPH = 6.8  # user units per character of a 12-unit label (an estimate, on the safe side)


_SLIVER = 3.0  # px: a spell narrower than this is drawn as a marker


def _label_fits(spell: _Spell, x: TimeScale) -> bool:
    return x(spell.end) - x(spell.start) >= len(status_words(spell.status)) * _CALLOUT + 12


def _spell_shapes(spell: _Spell, x: TimeScale, top: float, band: float) -> list[Shape]:
    x0, x1 = x(spell.start), x(spell.end)
    words = status_words(spell.status)
    versions = f"v{spell.first}" if spell.first == spell.last else f"v{spell.first}–v{spell.last}"
    tip = f"{words}: {spell.start.isoformat()} to {spell.end.isoformat()} ({versions})"
    fill = status_colour(spell.status)
    if x1 - x0 < _SLIVER:
        # A status that lasted days (a change reverted before anyone looked) would vanish at
        # this scale: it gets a marker that stands out of the band instead.
        marker = Rect(
            x0 - 1, top - 5, _SLIVER + 1, band + 10, fill, "#1f2933", 1, spell.status, tip
        )
        return [marker]
    rect = Rect(x0, top, x1 - x0, band, fill, "#fff", 1, spell.status, tip)
    if not _label_fits(spell, x):
        return [rect]
    ink = "#1f2933" if spell.status in _LIGHT or spell.status not in STATUS_COLOURS else "#fff"
    label = Text(
        x0 + 8, top + band / 2 + 4, words, anchor="start", cls="band-label", style=f"fill:{ink}"
    )
    return [rect, label]


def _callouts(spells: Sequence[_Spell], x: TimeScale, right: float) -> list[Shape]:
    """Labels above the band for spells too short to hold their own (a few days of
    "Terminated" at the end of a long run), the latest first, as many as fit side by side."""
    shapes: list[Shape] = []
    taken: list[tuple[float, float]] = []
    for spell in reversed(spells):
        if _label_fits(spell, x):
            continue
        words = status_words(spell.status)
        size = len(words) * _CALLOUT
        at = x(spell.start)
        x0, anchor = (at, "start") if at + size <= right else (x(spell.end), "end")
        span = (x0, x0 + size) if anchor == "start" else (x0 - size, x0)
        if any(a < span[1] + 6 and span[0] < b + 6 for a, b in taken):
            continue
        taken.append(span)
        shapes.append(Text(x0, 12, words, anchor=anchor, cls="band-label"))
    return shapes


_DODGE = 4.0  # user units between two date lines that fall on (nearly) the same day


def _milestones(
    last: VersionPoint, x: TimeScale, lo: date, hi: date, top: float, band: float
) -> tuple[list[Shape], list[Key]]:
    """The latest version's primary completion and completion as vertical lines (dashed
    while estimated), each a legend key; two on one day are drawn side by side."""
    shapes: list[Shape] = []
    keys: list[Key] = []
    placed: list[float] = []
    for name, label, colour in DATE_SERIES[1:]:
        value: StudyDate = getattr(last, name)
        day = partial_date(value.date)
        if day is None:
            continue
        kind = " (estimated)" if value.type == "ESTIMATED" else ""
        if not lo <= day <= hi:
            keys.append(Key("line", f"{label} {value.date}{kind}: off this axis", colour))
            continue
        at = x(day)
        while any(abs(at - other) < _DODGE for other in placed):
            at += _DODGE
        placed.append(at)
        dash = "4 3" if value.type == "ESTIMATED" else ""
        shapes.append(Line(at, top - 4, at, top + band + 4, stroke=colour, width=2, dash=dash))
        keys.append(Key("line", f"{label} {value.date}{kind}", colour))
    return shapes, keys


def _status_legend(versions: Sequence[VersionPoint]) -> list[Key]:
    seen = dict.fromkeys(v.status for v in versions)
    return [Key("swatch", status_words(s), status_colour(s)) for s in seen]


# ---- enrollment -----------------------------------------------------------------------------

_ENROLLMENT_COLOUR = "#1f4e8c"


def _nice_max(value: float) -> tuple[float, float]:
    """A round axis maximum at or above ``value`` and the tick step to reach it in ≤ 5 steps."""
    if value <= 0:
        return 1.0, 1.0
    raw = value / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return step * math.ceil(value / step), step


def enrollment_chart(versions: Sequence[VersionPoint]) -> Figure | None:
    """Enrollment as a step line over versions; ACTUAL points filled, ESTIMATED hollow.
    None when no version gives a count (the page says so instead of drawing an empty chart)."""
    if all(v.enrollment_count is None for v in versions):
        return None
    keys = _enrollment_legend(versions)
    narrow = _enrollment_drawing(versions, NARROW_WIDTH)
    return Figure(_enrollment_drawing(versions, CHART_WIDTH), keys, narrow=narrow)


def _enrollment_drawing(versions: Sequence[VersionPoint], width: int) -> Chart:
    known = [v.enrollment_count for v in versions if v.enrollment_count is not None]
    height, top, bottom = 236, 26, 50
    left, right = (64, 24) if width > NARROW_WIDTH else (48, 14)
    plot_h = height - top - bottom
    axis = _VersionAxis(left, width - left - right, len(versions))
    y_max, y_step = _nice_max(max(known) * 1.08)

    def y(count: float) -> float:
        return top + plot_h * (1 - count / y_max)

    shapes: list[Shape] = []
    for k in range(round(y_max / y_step) + 1):
        value = k * y_step
        shapes.append(Line(left, y(value), width - right, y(value), cls="grid"))
        shapes.append(Text(left - 8, y(value) + 4, f"{value:,.0f}", anchor="end"))
    shapes += _enrollment_steps(versions, axis, y)
    shapes += _enrollment_points(versions, axis, y)
    shapes += _enrollment_values(versions, axis, y)
    shapes += _version_labels(axis, versions, height - bottom + 18)
    return Chart(width, height, "Enrollment by version", tuple(shapes))


def _enrollment_steps(
    versions: Sequence[VersionPoint], axis: _VersionAxis, y: CountScale
) -> list[Shape]:
    shapes: list[Shape] = []
    for i in range(len(versions) - 1):
        a, b = versions[i], versions[i + 1]
        if a.enrollment_count is None or b.enrollment_count is None:
            continue
        x0, x1, y0, y1 = axis.x(i), axis.x(i + 1), y(a.enrollment_count), y(b.enrollment_count)
        # a dashed run is a planned (ESTIMATED) figure; solid is an ACTUAL count
        dash = "5 4" if a.enrollment_type != "ACTUAL" else ""
        shapes.append(Line(x0, y0, x1, y0, stroke=_ENROLLMENT_COLOUR, width=2, dash=dash))
        if y0 != y1:
            shapes.append(Line(x1, y0, x1, y1, stroke=_ENROLLMENT_COLOUR, width=1))
    return shapes


def _enrollment_points(
    versions: Sequence[VersionPoint], axis: _VersionAxis, y: CountScale
) -> list[Shape]:
    shapes: list[Shape] = []
    for i, v in enumerate(versions):
        if v.enrollment_count is None:
            tip = f"v{v.version} ({v.date}): no enrollment given"
            cross = f"M{number(axis.x(i) - 3)} {number(y(0) - 3)}l6 6m0 -6l-6 6"
            shapes.append(Path(cross, "#9aa5b1", 1.5, tip))
            continue
        kind = humanise(v.enrollment_type).lower() if v.enrollment_type else "type not given"
        tip = f"v{v.version} ({v.date}): {v.enrollment_count:,} ({kind})"
        point = _marker(
            axis.x(i),
            y(v.enrollment_count),
            axis.radius(),
            _ENROLLMENT_COLOUR,
            v.enrollment_type,
            tip,
        )
        shapes.append(point)
    return shapes


def _enrollment_values(
    versions: Sequence[VersionPoint], axis: _VersionAxis, y: CountScale
) -> list[Shape]:
    """Figures written beside the points where the count changed, as many as fit."""
    shapes: list[Shape] = []
    last_x = -1e9
    previous: int | None = None
    for i, v in enumerate(versions):
        count = v.enrollment_count
        if count is None or count == previous or axis.x(i) - last_x < 44:
            previous = count if count is not None else previous
            continue
        # above the point, unless the count fell: then the line comes from above
        dy = 20 if previous is not None and count < previous else -9
        last_x, previous = axis.x(i), count
        shapes.append(Text(axis.x(i), y(count) + dy, f"{count:,}", cls="label"))
    return shapes


def _point_legend(types: set[str], actual: str, estimated: str) -> list[Key]:
    """Legend keys of the filled and hollow points that a chart actually shows."""
    keys = []
    if "ACTUAL" in types:
        keys.append(Key("filled", actual))
    untyped = bool(types - {"ACTUAL", "ESTIMATED"})  # older records often give no type
    hollow = {
        (True, False): estimated,
        (True, True): f"{estimated}, or type not given",
        (False, True): "Type not given",
    }.get(("ESTIMATED" in types, untyped))
    if hollow:
        keys.append(Key("hollow", hollow))
    return keys


def _enrollment_legend(versions: Sequence[VersionPoint]) -> list[Key]:
    types = {v.enrollment_type for v in versions if v.enrollment_count is not None}
    keys = _point_legend(types, "Actual count", "Estimated (planned) count")
    if types - {"ACTUAL"}:
        keys.append(Key("dash", "while the count is not actual"))
    if any(v.enrollment_count is None for v in versions):
        keys.append(Key("cross", "no count in that version"))
    return keys


# ---- dates ----------------------------------------------------------------------------------

DATE_SERIES: tuple[tuple[str, str, str], ...] = (
    ("start", "Start", "#0f766e"),
    ("primary_completion", "Primary completion", "#c2410c"),
    ("completion", "Completion", "#4338ca"),
)


def series(versions: Sequence[VersionPoint], name: str) -> list[StudyDate]:
    return [getattr(v, name) for v in versions]


def dates_chart(versions: Sequence[VersionPoint]) -> tuple[Chart, list[Key]]:
    """Start, primary completion and completion as step lines over versions (time upwards)."""
    types = {getattr(v, n).type for v in versions for n, _, _ in DATE_SERIES if getattr(v, n).date}
    keys = _point_legend(types, "Actual date", "Estimated (anticipated) date")
    keys.append(Key("", "A line that climbs is a date that slipped later."))
    return dates_drawing(versions, CHART_WIDTH), keys


def dates_drawing(versions: Sequence[VersionPoint], width: int) -> Chart:
    """The dates chart ``width`` wide. Narrow, the lines' names are left to the summary above
    the chart (its coloured lines), and the plot takes the width they would have had."""
    height, top, bottom = 270, 16, 50
    left, right = (78, 180) if width > NARROW_WIDTH else (64, 14)
    plot_h = height - top - bottom
    axis = _VersionAxis(left, width - left - right, len(versions))
    parsed = [
        d for v in versions for n, _, _ in DATE_SERIES if (d := partial_date(getattr(v, n).date))
    ]
    lo, hi = min(parsed), max(parsed)
    pad = max(30, (hi - lo).days // 12)
    lo, hi = _span(shift(lo, -pad), shift(hi, pad), 30)

    def y(day: date) -> float:
        return top + plot_h * (1 - (day - lo).days / (hi - lo).days)

    shapes: list[Shape] = []
    ticks, step = _time_ticks(lo, hi, max_ticks=7)
    for tick in ticks:
        shapes.append(Line(left, y(tick), width - right, y(tick), cls="grid"))
        shapes.append(Text(left - 8, y(tick) + 4, _tick_label(tick, step), anchor="end"))
    ends: list[tuple[float, str, str]] = []
    offsets = _dodges(versions)
    for name, label, colour in DATE_SERIES:
        drawn, end = _date_series(versions, name, label, colour, axis, _shifted(y, offsets[name]))
        shapes += drawn
        if end is not None:
            ends.append((end, label, colour))
    if width > NARROW_WIDTH:
        shapes += _series_labels(ends, width - right + 10, top, top + plot_h)
    shapes += _version_labels(axis, versions, height - bottom + 18)
    return Chart(width, height, "Start and completion dates by version", tuple(shapes))


def _dodges(versions: Sequence[VersionPoint]) -> dict[str, float]:
    """A small vertical offset per series, where two of them give the same day in some
    version (a primary completion that is also the completion): each line stays in sight."""
    shared: set[str] = set()
    for v in versions:
        days = [(name, partial_date(getattr(v, name).date)) for name, _, _ in DATE_SERIES]
        for name, day in days:
            if day is not None and sum(1 for _, other in days if other == day) > 1:
                shared.add(name)
    order = [name for name, _, _ in DATE_SERIES if name in shared]
    middle = (len(order) - 1) / 2
    return {
        name: (order.index(name) - middle) * _DODGE if name in shared else 0.0
        for name, _, _ in DATE_SERIES
    }


def _shifted(y: TimeScale, offset: float) -> TimeScale:
    return y if not offset else (lambda day: y(day) + offset)


def _date_series(
    versions: Sequence[VersionPoint],
    name: str,
    label: str,
    colour: str,
    axis: _VersionAxis,
    y: TimeScale,
) -> tuple[list[Shape], float | None]:
    """One date's step line and points; also where its last point is (for the end label)."""
    values = series(versions, name)
    days = [partial_date(v.date) for v in values]
    shapes: list[Shape] = []
    for i in range(len(values) - 1):
        a, b = days[i], days[i + 1]
        if a is None or b is None:
            continue
        dash = "5 4" if values[i].type != "ACTUAL" else ""
        shapes.append(Line(axis.x(i), y(a), axis.x(i + 1), y(a), stroke=colour, width=2, dash=dash))
        if a != b:
            shapes.append(Line(axis.x(i + 1), y(a), axis.x(i + 1), y(b), stroke=colour, width=2))
    end: float | None = None
    for i, (value, day) in enumerate(zip(values, days, strict=True)):
        if day is None:
            continue
        kind = humanise(value.type).lower() if value.type else "type not given"
        tip = f"{label}, v{versions[i].version}: {value.date} ({kind})"
        shapes.append(_marker(axis.x(i), y(day), axis.radius(), colour, value.type, tip))
        end = y(day)
    return shapes, end


def _series_labels(
    ends: list[tuple[float, str, str]], x: float, lo: float, hi: float
) -> list[Shape]:
    """Labels at the right of each line, pushed apart where the lines end close together."""
    placed: list[tuple[float, str, str]] = []
    for end, label, colour in sorted(ends):
        y = max(end, placed[-1][0] + 15) if placed else end
        placed.append((min(y, hi), label, colour))
    return [
        Text(x, max(lo + 8, y) + 4, label, anchor="start", style=f"fill:{colour};font-weight:600")
        for y, label, colour in placed
    ]
