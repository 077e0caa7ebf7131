"""``trialwatch report``: one self-contained HTML page of the stored history of some records.

Two halves:

* ``load_studies(store, registry, ids)`` reads what the page needs from the store: every stored
  version (oldest first) with its snapshot (re-normalised from the stored raw record), the
  change events, and the seed studies that follow the record with their comparison.
* ``render_report(studies, generated_at=…)`` is pure: data in, one HTML string out (through the
  templates shipped in the package). No clock (the caller passes the time), so a test can
  render any shape of history.

Per study the page shows a status band over time, enrollment by version (ESTIMATED hollow,
ACTUAL filled), start/primary completion/completion dates by version and how far they moved,
the outcome measure changes, the seed publications' facts beside the registry's, and every
change event. Charts are inline SVG whose size is bounded whatever the number of versions:
points shrink and axis labels thin out, so a record with hundreds of versions stays readable.

The page fetches nothing: inline CSS and SVG only, no script, font, image or stylesheet from
anywhere, and a Content-Security-Policy meta tag that forbids every fetch and every script, so
even a mistake cannot make a reader's browser run or load anything. Registry and seed text is
untrusted: this module hands the templates (``templates/report/``, ``templates/svg.html``)
plain values and chart shapes, never markup, and their autoescaping escapes every piece of it.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from service.diff import humanise
from service.errors import RecordInvalid
from service.findings.rules import shift
from service.findings.stored import FindingInfo
from service.models import Outcome, Snapshot, StoredChange, StudyDate, VersionInfo
from service.notify.render import compare_url, study_url
from service.registry.catalog import normalise
from service.seeds.compare import compare
from service.seeds.model import CONFIDENT, Seed
from service.svg import Chart, Circle, Line, Path, Rect, Shape, Text
from service.templates import number
from service.templates import render as render_template

if TYPE_CHECKING:
    from service.store import SeedLinkData, Store, StoredSeed

__all__ = [
    "SeedFacts",
    "StudyData",
    "VersionPoint",
    "VersionWindow",
    "load_studies",
    "load_study",
    "partial_date",
    "render_report",
    "version_point",
]

log = logging.getLogger(__name__)

REPORT_TITLE = "Trial registry history"
CHART_WIDTH = 960  # SVG user units; the page scales charts to its column width
NO_DATE = StudyDate()

TimeScale = Callable[[date], float]  # a date to a position on a chart
CountScale = Callable[[float], float]  # an enrollment count to a height on a chart

# ---- data in --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionPoint:
    """What the charts need of one stored version."""

    version: int  # the registry's version number where known, else the store's sequence
    date: str  # yyyy-mm-dd: when the registry posted it, else when trialwatch fetched it
    registry_version: int | None = None
    status: str = ""
    enrollment_count: int | None = None
    enrollment_type: str = ""
    start: StudyDate = NO_DATE
    primary_completion: StudyDate = NO_DATE
    completion: StudyDate = NO_DATE
    seq: int = 0  # the store's sequence: its order of versions (numbers can repeat)


@dataclass(frozen=True)
class VersionWindow:
    """Some of a record's stored versions, in the store's order: at most ``size``, the newest
    of those stored before sequence ``before`` (None: the newest)."""

    size: int
    before: int | None = None

    def of(self, stored: Sequence[VersionInfo]) -> list[VersionInfo]:
        earlier = [info for info in stored if self.before is None or info.seq < self.before]
        return earlier[-self.size :] if self.size > 0 else []


@dataclass(frozen=True)
class SeedFacts:
    """A seed publication that follows a record: what it reports, and how it differs."""

    seed_id: str
    title: str
    citation: str = ""
    link: str = ""  # how the seed is linked to the record, in words
    enrollment_count: int | None = None
    enrollment_type: str = ""
    enrollment_phrase: str = ""
    primary_outcomes: tuple[str, ...] = ()
    phases: tuple[str, ...] = ()
    status: str = ""
    discrepancies: tuple[tuple[str, str], ...] = ()  # (severity, summary)


@dataclass(frozen=True)
class StudyData:
    """Everything the page shows of one record."""

    registry: str
    study_id: str
    versions: tuple[VersionPoint, ...] = ()  # oldest first
    changes: tuple[StoredChange, ...] = ()  # oldest first
    latest: Snapshot | None = None
    seeds: tuple[SeedFacts, ...] = ()
    findings: tuple[FindingInfo, ...] = ()  # open and resolved, oldest first
    searches: tuple[str, ...] = ()  # the saved searches that brought it in (query:NAME tags)
    stored_versions: int = 0  # how many are stored (more than ``versions`` in a window)
    older_versions: int = 0  # stored ones older than the first of ``versions`` (a window)

    @property
    def title(self) -> str:
        return self.latest.title if self.latest else self.study_id


# ---- loading (the only part that touches the store) ------------------------------------------


def load_studies(store: Store, targets: Iterable[tuple[str, str]]) -> list[StudyData]:
    """The records ``targets`` names, each a ``(registry, study id)``."""
    return [load_study(store, registry, study_id) for registry, study_id in targets]


def load_study(
    store: Store, registry: str, study_id: str, window: VersionWindow | None = None
) -> StudyData:
    """A record as the report draws it: every stored version and change, or only the
    versions of ``window`` and the changes that led to them (the web's record page)."""
    stored = store.list_versions(registry, study_id)
    infos = stored if window is None else window.of(stored)
    snapshots = [_stored_snapshot(store, registry, study_id, info.seq) for info in infos]
    latest = next((s for s in reversed(snapshots) if s is not None), None)
    if stored and (not infos or infos[-1] is not stored[-1]):
        latest = _stored_snapshot(store, registry, study_id, stored[-1].seq)  # the newest
    if len(infos) == len(stored):  # every version: every change too
        changes = [c for c in store.list_changes(study_id=study_id) if c.registry == registry]
    else:
        shown = (infos[0].seq, infos[-1].seq) if infos else (0, -1)
        changes = store.changes_to_versions(registry, study_id, *shown)
    return StudyData(
        registry=registry,
        study_id=study_id,
        versions=tuple(version_point(i, s) for i, s in zip(infos, snapshots, strict=True)),
        changes=tuple(changes),
        latest=latest,
        seeds=tuple(_linked_seeds(store, registry, study_id, latest)),
        findings=tuple(store.list_findings(study_id=study_id, registry=registry)),
        searches=_searches(store.watch_tags(registry, [study_id]).get(study_id, ())),
        stored_versions=len(stored),
        older_versions=sum(1 for info in stored if infos and info.seq < infos[0].seq),
    )


def _searches(tags: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(tag.removeprefix("query:") for tag in tags if tag.startswith("query:")))


def version_point(info: VersionInfo, snapshot: Snapshot | None) -> VersionPoint:
    """A version's headline facts; its dates come from the snapshot when there is one."""
    return VersionPoint(
        version=info.version,
        date=info.last_update_posted or info.fetched_at.date().isoformat(),
        registry_version=info.registry_version,
        status=info.overall_status,
        enrollment_count=info.enrollment_count,
        enrollment_type=info.enrollment_type,
        start=snapshot.start_date if snapshot else NO_DATE,
        primary_completion=snapshot.primary_completion_date if snapshot else NO_DATE,
        completion=snapshot.completion_date if snapshot else NO_DATE,
        seq=info.seq,
    )


def _stored_snapshot(store: Store, registry: str, study_id: str, seq: int) -> Snapshot | None:
    # The store keeps the raw record of every version; normalising it again gives the fields
    # the timeline lacks (dates). A version the normaliser now refuses still has its headline.
    raw = store.raw_record(registry, study_id, seq)
    if raw is None:
        return None
    try:
        return normalise(registry, raw)
    except RecordInvalid as exc:
        log.warning("%s version %s: not shown in full (%s)", study_id, seq, exc)
        return None


def _linked_seeds(
    store: Store, registry: str, study_id: str, latest: Snapshot | None
) -> list[SeedFacts]:
    """The seeds that follow this record (a confident or accepted link), compared with it."""
    facts: list[SeedFacts] = []
    for stored in store.seeds_linked_to(registry, study_id):
        link = next(
            (x for x in stored.links if (x.registry, x.study_id) == (registry, study_id)), None
        )
        if link is None or not _followed(link):
            continue
        try:
            seed = Seed.model_validate_json(stored.document)
        except ValidationError as exc:
            log.warning("seed %s: not shown (%s)", stored.seed_id, str(exc).splitlines()[0])
            continue
        facts.append(_seed_facts(seed, stored, link, latest))
    return facts


def _followed(link: SeedLinkData) -> bool:
    # The same rule as ``seeds compare``: an unconfirmed search hit is a candidate, not a link.
    return link.source == "person" or link.confidence >= CONFIDENT


def _seed_facts(
    seed: Seed, stored: StoredSeed, link: SeedLinkData, latest: Snapshot | None
) -> SeedFacts:
    found = compare(seed, latest) if latest else []
    return SeedFacts(
        seed_id=stored.seed_id,
        title=seed.title,
        citation=_citation(seed),
        link=_link_words(link),
        enrollment_count=seed.enrollment.count,
        enrollment_type=seed.enrollment.type,
        enrollment_phrase=seed.enrollment.phrase,
        primary_outcomes=tuple(o.measure for o in seed.outcomes_of("primary")),
        phases=seed.design.phases,
        status=seed.status,
        discrepancies=tuple((d.severity, d.summary) for d in found),
    )


def _citation(seed: Seed) -> str:
    cite = seed.citation
    head = ", ".join(p for p in (cite.first_author, cite.journal) if p)
    parts = [f"{head} {cite.year}" if cite.year else head]
    parts += [f"doi:{cite.doi}" if cite.doi else "", f"PMID {cite.pmid}" if cite.pmid else ""]
    return "; ".join(p.strip() for p in parts if p.strip())


def _link_words(link: SeedLinkData) -> str:
    if link.source == "document":
        return "registration named in the document"
    if link.source == "person":
        return "link accepted by a reviewer"
    return f"registry search match (confidence {link.confidence:.2f})"


# ---- the page -------------------------------------------------------------------------------
#
# The page is ``templates/report/page.html``. This half of the module works out what it shows:
# a view of each study (plain values, chart shapes from ``service.svg``), never markup, so the
# templates' autoescaping is the one place any registry or seed text is escaped.


def render_report(
    studies: Sequence[StudyData],
    *,
    generated_at: datetime,
    title: str = REPORT_TITLE,
    failed: Callable[[str, Exception], None] | None = None,
) -> str:
    """The whole report as one HTML document (pure: same input, same bytes). A record that
    cannot be drawn (a bug on its data) is left out and handed to ``failed`` (study id, what
    went wrong) when given, so the others are still drawn; without ``failed`` it raises."""
    as_of = generated_at.date()
    studies, views = _drawn(studies, as_of, failed)
    versions = sum(len(s.versions) for s in studies)
    changes = sum(len(s.changes) for s in studies)
    counts = " · ".join(
        [
            _plural(len(studies), "record"),
            _plural(versions, "stored version"),
            _plural(changes, "change"),
        ]
    )
    return render_template(
        "report/page.html",
        title=title,
        stamp=generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        counts=counts,
        studies=views,
        groups=_groups(studies, views),
    )


def _drawn(
    studies: Sequence[StudyData],
    as_of: date,
    failed: Callable[[str, Exception], None] | None,
) -> tuple[list[StudyData], list[_StudyView]]:
    """The records that can be drawn, with their views."""
    kept: list[StudyData] = []
    views: list[_StudyView] = []
    for study in studies:
        try:
            view = study_view(study, as_of)
        except Exception as exc:
            if failed is None:
                raise
            log.exception("report: %s cannot be drawn", study.study_id)
            failed(study.study_id, exc)
            continue
        kept.append(study)
        views.append(view)
    return kept, views


def _groups(
    studies: Sequence[StudyData], views: Sequence[_StudyView]
) -> list[tuple[str, list[_StudyView]]]:
    """The contents grouped by saved search (records of no search last); a record in two
    searches is listed under both. Empty when no record came from a search."""
    if not any(study.searches for study in studies):
        return []
    pairs = list(zip(studies, views, strict=True))
    named = sorted({name for study in studies for name in study.searches})
    groups = [(name, [v for s, v in pairs if name in s.searches]) for name in named]
    rest = [v for s, v in pairs if not s.searches]
    return groups + ([("", rest)] if rest else [])


@dataclass(frozen=True)
class _Enrollment:
    count: str | None  # formatted ("1,234"); None when not given
    kind: str = ""  # "estimated", "actual"


@dataclass(frozen=True)
class _Facts:
    status: str
    enrollment: _Enrollment
    phases: str
    version_count: int
    first_date: str
    last_date: str
    start: StudyDate
    primary_completion: StudyDate
    completion: StudyDate
    change_count: int
    high: int


@dataclass(frozen=True)
class _Key:
    """One legend entry: a mark (swatch, filled, hollow, dash, cross, or none) and its words."""

    mark: str
    text: str
    colour: str = ""


@dataclass(frozen=True)
class _Figure:
    chart: Chart
    keys: list[_Key]
    caption: str = ""


@dataclass(frozen=True)
class _Slip:
    days: int
    words: str
    direction: str  # later | earlier


@dataclass(frozen=True)
class _SlipLine:
    """One date's line of the slip summary; ``last`` is None when it never moved."""

    label: str
    colour: str
    first: StudyDate
    last: StudyDate | None = None
    slip: _Slip | None = None
    moves: str = ""


@dataclass(frozen=True)
class _DateCell:
    date: StudyDate
    moved: bool = False
    slip: _Slip | None = None


@dataclass(frozen=True)
class _DateRow:
    version: int
    date: str
    cells: list[_DateCell]


@dataclass(frozen=True)
class _Dates:
    summary: list[_SlipLine]
    chart: Chart
    keys: list[_Key]
    labels: list[str]
    rows: list[_DateRow]


@dataclass(frozen=True)
class VersionLink:
    text: str
    url: str | None = None


@dataclass(frozen=True)
class _OutcomeCell:
    kind: str  # none | muted | text | outcome
    text: str = ""
    time_frame: str = ""
    description: str = ""


@dataclass(frozen=True)
class _OutcomeRow:
    version: VersionLink
    posted: str
    kind: str
    verb: str
    severity: str
    before: _OutcomeCell
    after: _OutcomeCell


@dataclass(frozen=True)
class _FindingRow:
    rule: str
    state: str
    severity: str
    opened: str
    resolved: str
    summary: str
    source: str


@dataclass(frozen=True)
class _ChangeRow:
    change: StoredChange
    version: VersionLink
    posted: str
    first: bool  # the first change of its pair of versions: the row that names them


@dataclass(frozen=True)
class _SeedCell:
    kind: str  # text | enrollment | list
    text: str = ""  # the text; the enrollment's phrase; a list's words when empty
    enrollment: _Enrollment | None = None
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class _SeedView:
    seed_id: str
    title: str
    meta: str
    latest_version: int
    rows: list[tuple[str, _SeedCell, _SeedCell]]
    discrepancies: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _StudyView:
    anchor: str
    study_id: str
    title: str
    status_now: str
    version_count: int
    change_count: int
    last_date: str
    official: str = ""
    sponsor: str | None = None
    page_url: str | None = None
    has_versions: bool = False
    facts: _Facts | None = None
    band: _Figure | None = None
    enrollment: _Figure | None = None
    dates: _Dates | None = None
    outcomes: list[_OutcomeRow] = field(default_factory=list)
    findings: list[_FindingRow] = field(default_factory=list)
    seeds: list[_SeedView] = field(default_factory=list)
    changes: list[_ChangeRow] = field(default_factory=list)


def _anchor(study: StudyData) -> str:
    return f"study-{study.registry}-{study.study_id}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def status_words(status: str) -> str:
    return humanise(status) if status else "Not given"


# ---- one study ------------------------------------------------------------------------------


def study_view(study: StudyData, as_of: date) -> _StudyView:
    latest = study.latest
    last = study.versions[-1] if study.versions else None
    official = latest.official_title if latest else ""
    head = _StudyView(
        anchor=_anchor(study),
        study_id=study.study_id,
        title=study.title,
        status_now=status_words(last.status) if last else "not synced yet",
        version_count=len(study.versions),
        change_count=len(study.changes),
        last_date=last.date if last else "–",
        official=official if official and official != study.title else "",
        sponsor=latest.lead_sponsor if latest else None,
        page_url=study_url(study.registry, study.study_id),
    )
    if not study.versions:
        return head
    return replace(
        head,
        has_versions=True,
        facts=_facts(study),
        band=status_band(study.versions, as_of),
        enrollment=enrollment_chart(study.versions),
        dates=_dates_block(study.versions),
        outcomes=outcome_rows(study),
        findings=finding_rows(study),
        seeds=_seed_views(study),
        changes=change_rows(study),
    )


def _facts(study: StudyData) -> _Facts:
    first, last = study.versions[0], study.versions[-1]
    return _Facts(
        status=status_words(last.status),
        enrollment=_enrollment(last.enrollment_count, last.enrollment_type),
        phases=_phases(study.latest.phases) if study.latest else "–",
        version_count=len(study.versions),
        first_date=first.date,
        last_date=last.date,
        start=last.start,
        primary_completion=last.primary_completion,
        completion=last.completion,
        change_count=len(study.changes),
        high=sum(1 for c in study.changes if c.severity == "high"),
    )


def _phases(phases: Sequence[str]) -> str:
    return ", ".join(humanise(p) for p in phases) if phases else "Not given"


def _enrollment(count: int | None, kind: str) -> _Enrollment:
    if count is None:
        return _Enrollment(None)
    return _Enrollment(f"{count:,}", humanise(kind).lower() if kind else "")


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


def _span_words(days: int) -> str:
    """A slip as a person says it: ``+12 days``, ``−7 months``, ``+2.5 years``."""
    sign = "+" if days > 0 else "−"
    size = abs(days)
    if size < 60:
        amount = _plural(size, "day")
    elif size < 730:
        amount = _plural(round(size / 30.44), "month")
    else:
        amount = f"{size / 365.25:.1f} years"
    return f"{sign}{amount}"


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


def status_band(versions: Sequence[VersionPoint], as_of: date) -> _Figure:
    """The overall status over time: one coloured run per status spell, to the report date."""
    width, height, left, right = CHART_WIDTH, 100, 8, 8
    top, band = 10, 38
    days = _version_days(versions, as_of)
    end = max(days[-1], as_of)
    lo, hi = _span(days[0], end, 1)
    span = (hi - lo).days

    def x(day: date) -> float:
        return left + (width - left - right) * (day - lo).days / span

    spells = _spells(versions, days, end)
    # markers of very short spells go on top, so that no neighbour hides them
    spells.sort(key=lambda s: x(s.end) - x(s.start) < _SLIVER)
    shapes: list[Shape] = [shape for s in spells for shape in _spell_shapes(s, x, top, band)]
    # a tick per version under the band: several versions on one day show as one tick
    for day in sorted(set(days)):
        shapes.append(Line(x(day), top + band + 3, x(day), top + band + 10, stroke="#1f2933"))
    ticks, step = _time_ticks(lo, hi, max_ticks=10)
    for tick in ticks:
        shapes.append(Line(x(tick), top + band + 14, x(tick), top + band + 19, cls="axis"))
        shapes.append(Text(x(tick), top + band + 33, _tick_label(tick, step)))
    if not ticks:
        shapes.append(Text(left, top + band + 33, lo.isoformat(), anchor="start"))
        shapes.append(Text(width - right, top + band + 33, hi.isoformat(), anchor="end"))
    caption = (
        f"Each version is a tick under the band. The latest status runs to the report date "
        f"({as_of.isoformat()})."
    )
    chart = Chart(width, height, "Overall status over time", tuple(shapes))
    return _Figure(chart, _status_legend(versions), caption)


_SLIVER = 3.0  # px: a spell narrower than this is drawn as a marker


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
    if x1 - x0 < len(words) * 7.2 + 12:
        return [rect]
    ink = "#1f2933" if spell.status in _LIGHT or spell.status not in STATUS_COLOURS else "#fff"
    label = Text(
        x0 + 8, top + band / 2 + 4, words, anchor="start", cls="band-label", style=f"fill:{ink}"
    )
    return [rect, label]


def _status_legend(versions: Sequence[VersionPoint]) -> list[_Key]:
    seen = dict.fromkeys(v.status for v in versions)
    return [_Key("swatch", status_words(s), status_colour(s)) for s in seen]


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


def enrollment_chart(versions: Sequence[VersionPoint]) -> _Figure | None:
    """Enrollment as a step line over versions; ACTUAL points filled, ESTIMATED hollow.
    None when no version gives a count (the page says so instead of drawing an empty chart)."""
    counts = [v.enrollment_count for v in versions]
    known = [c for c in counts if c is not None]
    if not known:
        return None
    width, height, left, right, top, bottom = CHART_WIDTH, 236, 64, 24, 26, 50
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
    chart = Chart(width, height, "Enrollment by version", tuple(shapes))
    return _Figure(chart, _enrollment_legend(versions))


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


def _point_legend(types: set[str], actual: str, estimated: str) -> list[_Key]:
    """Legend keys of the filled and hollow points that a chart actually shows."""
    keys = []
    if "ACTUAL" in types:
        keys.append(_Key("filled", actual))
    untyped = bool(types - {"ACTUAL", "ESTIMATED"})  # older records often give no type
    hollow = {
        (True, False): estimated,
        (True, True): f"{estimated}, or type not given",
        (False, True): "Type not given",
    }.get(("ESTIMATED" in types, untyped))
    if hollow:
        keys.append(_Key("hollow", hollow))
    return keys


def _enrollment_legend(versions: Sequence[VersionPoint]) -> list[_Key]:
    types = {v.enrollment_type for v in versions if v.enrollment_count is not None}
    keys = _point_legend(types, "Actual count", "Estimated (planned) count")
    if types - {"ACTUAL"}:
        keys.append(_Key("dash", "while the count is not actual"))
    if any(v.enrollment_count is None for v in versions):
        keys.append(_Key("cross", "no count in that version"))
    return keys


# ---- dates ----------------------------------------------------------------------------------

DATE_SERIES: tuple[tuple[str, str, str], ...] = (
    ("start", "Start", "#0f766e"),
    ("primary_completion", "Primary completion", "#c2410c"),
    ("completion", "Completion", "#4338ca"),
)


def _series(versions: Sequence[VersionPoint], name: str) -> list[StudyDate]:
    return [getattr(v, name) for v in versions]


def _dates_block(versions: Sequence[VersionPoint]) -> _Dates | None:
    if not any(partial_date(getattr(v, n).date) for v in versions for n, _, _ in DATE_SERIES):
        return None
    chart, keys = dates_chart(versions)
    return _Dates(
        summary=_slip_summary(versions),
        chart=chart,
        keys=keys,
        labels=[label for _, label, _ in DATE_SERIES],
        rows=dates_table(versions),
    )


def _slip_summary(versions: Sequence[VersionPoint]) -> list[_SlipLine]:
    lines = []
    for name, label, colour in DATE_SERIES:
        values = [d for d in _series(versions, name) if partial_date(d.date)]
        if not values:
            continue
        first, last = values[0], values[-1]
        moves = sum(1 for a, b in itertools.pairwise(values) if a.date != b.date)
        if not moves:
            lines.append(_SlipLine(label, colour, first))
            continue
        shift = (partial_date(last.date) - partial_date(first.date)).days  # type: ignore[operator]
        lines.append(_SlipLine(label, colour, first, last, _slip(shift), _plural(moves, "move")))
    return lines


def _slip(days: int) -> _Slip:
    return _Slip(days, _span_words(days) if days else "", "later" if days > 0 else "earlier")


def dates_chart(versions: Sequence[VersionPoint]) -> tuple[Chart, list[_Key]]:
    """Start, primary completion and completion as step lines over versions (time upwards)."""
    width, height, left, right, top, bottom = CHART_WIDTH, 270, 78, 180, 16, 50
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
    for name, label, colour in DATE_SERIES:
        drawn, end = _date_series(versions, name, label, colour, axis, y)
        shapes += drawn
        if end is not None:
            ends.append((end, label, colour))
    shapes += _series_labels(ends, width - right + 10, top, top + plot_h)
    shapes += _version_labels(axis, versions, height - bottom + 18)
    chart = Chart(width, height, "Start and completion dates by version", tuple(shapes))
    types = {getattr(v, n).type for v in versions for n, _, _ in DATE_SERIES if getattr(v, n).date}
    keys = _point_legend(types, "Actual date", "Estimated (anticipated) date")
    keys.append(_Key("", "A line that climbs is a date that slipped later."))
    return chart, keys


def _date_series(
    versions: Sequence[VersionPoint],
    name: str,
    label: str,
    colour: str,
    axis: _VersionAxis,
    y: TimeScale,
) -> tuple[list[Shape], float | None]:
    """One date's step line and points; also where its last point is (for the end label)."""
    values = _series(versions, name)
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


def dates_table(versions: Sequence[VersionPoint]) -> list[_DateRow]:
    """The versions in which a date (or its actual/estimated type) moved, and by how much."""
    rows: list[_DateRow] = []
    previous: VersionPoint | None = None
    for v in versions:
        if previous is not None and all(
            getattr(previous, n) == getattr(v, n) for n, _, _ in DATE_SERIES
        ):
            continue
        cells = [_date_cell(getattr(previous, n, None), getattr(v, n)) for n, _, _ in DATE_SERIES]
        rows.append(_DateRow(v.version, v.date, cells))
        previous = v
    return rows


def _date_cell(before: StudyDate | None, after: StudyDate) -> _DateCell:
    if not after.date or before is None or before == after:
        return _DateCell(after)
    old, new = partial_date(before.date), partial_date(after.date)
    slip = _slip((new - old).days) if old and new and old != new else None
    return _DateCell(after, moved=True, slip=slip)


# ---- outcomes -------------------------------------------------------------------------------

_OUTCOME_VERBS = {
    "outcome_added": "Added",
    "outcome_removed": "Removed",
    "outcome_modified": "Changed",
    "outcome_reclassified": "Moved",
}


def outcome_rows(study: StudyData) -> list[_OutcomeRow]:
    dates = _version_dates(study)
    return [_outcome_row(study, c, dates) for c in study.changes if c.kind in _OUTCOME_VERBS]


def finding_rows(study: StudyData) -> list[_FindingRow]:
    """What the transparency rules found: open ones first, each with its evidence's source."""
    ordered = sorted(study.findings, key=lambda f: (f.state != "open", f.opened_at))
    return [
        _FindingRow(
            rule=f.rule.replace("_", " "),
            state=f.state,
            severity=f.severity,
            opened=f.opened_at.date().isoformat(),
            resolved=f.resolved_at.date().isoformat() if f.resolved_at else "",
            summary=f.summary,
            source=f.source,
        )
        for f in ordered
    ]


def _version_dates(study: StudyData) -> dict[int, str]:
    return {v.version: v.date for v in study.versions}


def _posted(dates: dict[int, str], version: int | None) -> str:
    return dates.get(version, "–") if version is not None else "–"


def _outcome_row(study: StudyData, change: StoredChange, dates: dict[int, str]) -> _OutcomeRow:
    if change.kind == "outcome_reclassified":
        kind = f"{change.old} → {change.new}"
        before = _OutcomeCell("muted", f"{str(change.old).capitalize()} outcome")
        after = _OutcomeCell("text", change.summary)
    else:
        kind = change.outcome_type or ""
        before, after = _outcome_cell(change.old), _outcome_cell(change.new)
    return _OutcomeRow(
        version=_version_link(study, change),
        posted=_posted(dates, change.to_version),
        kind=kind.capitalize(),
        verb=_OUTCOME_VERBS[change.kind],
        severity=change.severity,
        before=before,
        after=after,
    )


def _outcome_cell(value: Any) -> _OutcomeCell:
    if not value:
        return _OutcomeCell("none")
    if not isinstance(value, dict):
        return _OutcomeCell("text", str(value))
    outcome = Outcome(
        measure=str(value.get("measure", "")),
        time_frame=str(value.get("time_frame", "")),
        description=str(value.get("description", "")),
    )
    return _OutcomeCell(
        "outcome", outcome.measure, outcome.time_frame, _clip(outcome.description, 280)
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# ---- changes --------------------------------------------------------------------------------


def _version_link(study: StudyData, change: StoredChange) -> VersionLink:
    """``v2 → v3``, linked to the registry's side-by-side view when both are its versions."""
    to = change.to_version
    if change.from_version is None:
        return VersionLink(f"v{to}" if to is not None else "–")
    text = f"v{change.from_version} → v{to}" if to is not None else f"after v{change.from_version}"
    registry_versions = {v.version for v in study.versions if v.registry_version is not None}
    if {change.from_version, to} <= registry_versions:
        return VersionLink(
            text, compare_url(study.registry, study.study_id, change.from_version, to)
        )
    return VersionLink(text)


def change_rows(study: StudyData) -> list[_ChangeRow]:
    """Every change; the first of each pair of versions names the versions and the date."""
    dates = _version_dates(study)
    rows: list[_ChangeRow] = []
    group: tuple[int | None, int | None] | None = None
    for change in study.changes:
        key = (change.from_version, change.to_version)
        first = key != group
        group = key
        posted = _posted(dates, change.to_version)
        rows.append(_ChangeRow(change, _version_link(study, change), posted, first))
    return rows


# ---- seeds ----------------------------------------------------------------------------------


def _seed_views(study: StudyData) -> list[_SeedView]:
    latest = study.versions[-1]
    registry_outcomes = study.latest.primary_outcomes if study.latest else ()
    registry_phases = study.latest.phases if study.latest else ()
    return [_seed_view(seed, latest, registry_outcomes, registry_phases) for seed in study.seeds]


def _seed_view(
    seed: SeedFacts,
    latest: VersionPoint,
    registry_outcomes: Sequence[Outcome],
    registry_phases: Sequence[str],
) -> _SeedView:
    rows = [
        (
            "Enrollment",
            _SeedCell(
                "enrollment",
                seed.enrollment_phrase,
                _enrollment(seed.enrollment_count, seed.enrollment_type),
            ),
            _SeedCell(
                "enrollment", "", _enrollment(latest.enrollment_count, latest.enrollment_type)
            ),
        ),
        (
            "Primary outcomes",
            _SeedCell("list", "none reported as primary", items=seed.primary_outcomes),
            _SeedCell("list", "none registered", items=tuple(o.measure for o in registry_outcomes)),
        ),
        (
            "Phase",
            _SeedCell("text", _phases(seed.phases)),
            _SeedCell("text", _phases(registry_phases)),
        ),
    ]
    if seed.status:
        rows.append(
            (
                "Status",
                _SeedCell("text", status_words(seed.status)),
                _SeedCell("text", status_words(latest.status)),
            )
        )
    return _SeedView(
        seed_id=seed.seed_id,
        title=seed.title,
        meta=" · ".join(p for p in (seed.citation, seed.link) if p),
        latest_version=latest.version,
        rows=rows,
        discrepancies=seed.discrepancies,
    )
