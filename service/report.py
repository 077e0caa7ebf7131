"""``trialwatch report``: one self-contained HTML page of the stored history of some records.

Two halves:

* ``load_studies(store, registry, ids)`` reads what the page needs from the store: every stored
  version (oldest first) with its snapshot (re-normalised from the stored raw record), the
  change events, and the seed studies that follow the record with their comparison.
* ``render_report(studies, generated_at=…)`` is pure: data in, one HTML string out. No I/O and
  no clock (the caller passes the time), so a test can render any shape of history.

Per study the page shows a status band over time, enrollment by version (ESTIMATED hollow,
ACTUAL filled), start/primary completion/completion dates by version and how far they moved,
the outcome measure changes, the seed publications' facts beside the registry's, and every
change event. Charts are inline SVG whose size is bounded whatever the number of versions:
points shrink and axis labels thin out, so a record with hundreds of versions stays readable.

The page fetches nothing: inline CSS and SVG only, no script, font, image or stylesheet from
anywhere, and a Content-Security-Policy meta tag that forbids every fetch and every script, so
even a mistake cannot make a reader's browser run or load anything. Registry and seed text is
untrusted: every piece of it reaches the page through ``_esc`` (``html.escape``).
"""

from __future__ import annotations

import html
import itertools
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from service.diff import humanise
from service.errors import RecordInvalid
from service.findings.stored import FindingInfo
from service.models import Outcome, Snapshot, StoredChange, StudyDate, VersionInfo
from service.notify.render import compare_url, study_url
from service.registry.normalise import normalise
from service.seeds.compare import compare
from service.seeds.model import CONFIDENT, Seed

if TYPE_CHECKING:
    from service.store import SeedLinkData, Store, StoredSeed

__all__ = [
    "SeedFacts",
    "StudyData",
    "VersionPoint",
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

    @property
    def title(self) -> str:
        return self.latest.title if self.latest else self.study_id


# ---- loading (the only part that touches the store) ------------------------------------------


def load_studies(store: Store, registry: str, study_ids: Iterable[str]) -> list[StudyData]:
    return [load_study(store, registry, study_id) for study_id in study_ids]


def load_study(store: Store, registry: str, study_id: str) -> StudyData:
    infos = store.list_versions(registry, study_id)
    snapshots = [_stored_snapshot(store, registry, study_id, info.seq) for info in infos]
    latest = next((s for s in reversed(snapshots) if s is not None), None)
    changes = [c for c in store.list_changes(study_id=study_id) if c.registry == registry]
    return StudyData(
        registry=registry,
        study_id=study_id,
        versions=tuple(version_point(i, s) for i, s in zip(infos, snapshots, strict=True)),
        changes=tuple(changes),
        latest=latest,
        seeds=tuple(_linked_seeds(store, registry, study_id, latest)),
        findings=tuple(store.list_findings(study_id=study_id, registry=registry)),
    )


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
    )


def _stored_snapshot(store: Store, registry: str, study_id: str, seq: int) -> Snapshot | None:
    # The store keeps the raw record of every version; normalising it again gives the fields
    # the timeline lacks (dates). A version the normaliser now refuses still has its headline.
    raw = store.raw_record(registry, study_id, seq)
    if raw is None:
        return None
    try:
        return normalise(raw)
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


def render_report(
    studies: Sequence[StudyData], *, generated_at: datetime, title: str = REPORT_TITLE
) -> str:
    """The whole report as one HTML document (pure: same input, same bytes)."""
    as_of = generated_at.date()
    body = [
        _masthead(title, studies, generated_at),
        _contents(studies),
        *(_study_section(study, as_of) for study in studies),
        _footer(),
    ]
    return "\n".join([_head(title), '<body><main class="report">', *body, "</main></body></html>"])


def _esc(value: Any) -> str:
    """Text (registry and seed text included) made safe for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'"

_CSS = """
:root { --ink: #1f2933; --muted: #5f6b7a; --rule: #d9dee4; --soft: #f4f6f8; --accent: #1f4e8c; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; background: #fff; color: var(--ink);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
    "Liberation Sans", "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1060px; margin: 0 auto; padding: 36px 44px 72px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.masthead { border-bottom: 3px solid var(--ink); padding-bottom: 14px; margin-bottom: 22px; }
.masthead .kicker { font-size: 12px; letter-spacing: .12em; text-transform: uppercase;
  color: var(--muted); margin: 0; }
h1 { font-size: 28px; line-height: 1.2; margin: 2px 0 6px; letter-spacing: -.01em; }
h2 { font-size: 21px; line-height: 1.3; margin: 2px 0 4px; }
h3 { font-size: 12px; letter-spacing: .08em; text-transform: uppercase; color: var(--muted);
  margin: 30px 0 10px; padding-bottom: 5px; border-bottom: 1px solid var(--rule); }
.meta { color: var(--muted); margin: 0; font-size: 13px; }
.study { border-top: 2px solid var(--ink); margin-top: 44px; padding-top: 22px; }
.study-id { font: 600 13px/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, monospace;
  color: var(--muted); letter-spacing: .03em; margin: 0; }
.official { color: var(--muted); margin: 0 0 6px; font-size: 13px; }
.links { margin: 4px 0 0; font-size: 13px; }
.links > * + *::before { content: "·"; color: var(--muted); padding: 0 8px; }
.links span { color: var(--muted); }
.facts { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 12px 24px;
  margin: 18px 0 0; padding: 14px 18px; background: var(--soft); border-radius: 6px; }
.facts div { min-width: 0; }
.facts dt { font-size: 11px; letter-spacing: .06em; text-transform: uppercase;
  color: var(--muted); }
.facts dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
.facts dd small { font-weight: 400; color: var(--muted); }
figure { margin: 0; }
figure + table { margin-top: 14px; }
svg.chart { display: block; width: 100%; height: auto; overflow: visible; }
svg.chart text { font-size: 12px; fill: var(--muted); }
svg.chart .label { fill: var(--ink); font-weight: 600; }
svg.chart .band-label { font-size: 12px; font-weight: 600; }
svg.chart .grid { stroke: #e6e9ed; stroke-width: 1; }
svg.chart .axis { stroke: #9aa5b1; stroke-width: 1; }
figcaption, .caption { font-size: 12px; color: var(--muted); margin: 6px 0 0; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 12px; color: var(--muted);
  margin: 8px 0 0; padding: 0; list-style: none; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px;
  vertical-align: -2px; margin-right: 6px; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  vertical-align: -1px; margin-right: 6px; border: 2px solid #1f4e8c; }
.dot.filled { background: #1f4e8c; }
.dot.hollow { background: #fff; }
.dash { display: inline-block; width: 22px; border-top: 2px dashed #1f4e8c;
  vertical-align: 3px; margin-right: 6px; }
.line { display: inline-block; width: 22px; border-top: 3px solid; vertical-align: 3px;
  margin-right: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th { text-align: left; white-space: nowrap; font-size: 11px; letter-spacing: .05em;
  text-transform: uppercase; color: var(--muted); font-weight: 600; padding: 6px 8px;
  border-bottom: 1.5px solid var(--ink); }
td { padding: 6px 8px; border-bottom: 1px solid var(--rule); vertical-align: top; }
tr.group-start td { border-top: 1px solid #b8c0c9; }
td.nowrap, th.nowrap { white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 12px; }
.muted { color: var(--muted); }
.small { font-size: 12px; }
.pill { display: inline-block; padding: 0 8px; border-radius: 9px; font-size: 11px;
  font-weight: 600; line-height: 18px; white-space: nowrap; }
.sev-high { background: #fde3e1; color: #9b1c1c; }
.sev-medium { background: #fdf0d3; color: #84450a; }
.sev-low { background: #e8ecf0; color: #3e4c59; }
.tag { font-size: 11px; color: var(--muted); border: 1px solid var(--rule); border-radius: 3px;
  padding: 0 4px; margin-left: 6px; white-space: nowrap; }
.est { font-size: 11px; color: var(--muted); margin-left: 4px; }
.moved { font-weight: 600; }
.slip { font-size: 11px; font-weight: 600; margin-left: 6px; white-space: nowrap; }
.slip.later { color: #9b1c1c; }
.slip.earlier { color: #1d6b3a; }
.outcome-measure { font-weight: 600; }
.outcome-detail { color: var(--muted); font-size: 12px; }
.empty { color: var(--muted); font-style: italic; margin: 4px 0; }
.summary-list { margin: 0 0 10px; padding-left: 18px; }
.seed { border: 1px solid var(--rule); border-radius: 6px; padding: 12px 16px;
  margin: 0 0 14px; }
.seed h4 { margin: 0; font-size: 15px; }
.seed p { margin: 2px 0 8px; }
.seed ul { margin: 0; padding-left: 18px; }
.seed ul.discrepancies { padding-left: 0; }
.seed td { width: 40%; }
.seed td:first-child { width: 20%; color: var(--muted); }
.discrepancies { list-style: none; padding: 0; margin: 10px 0 0; }
.discrepancies li { margin: 4px 0; }
.contents td:first-child { white-space: nowrap; }
footer { margin-top: 56px; padding-top: 10px; border-top: 1px solid var(--rule);
  font-size: 12px; color: var(--muted); }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  main { max-width: none; padding: 0; }
  .study { break-before: page; border-top: none; margin-top: 0; padding-top: 0; }
  h3, thead { break-after: avoid; }
  figure, tr, .seed, .facts { break-inside: avoid; }
  a { color: inherit; }
}
"""


def _head(title: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="trialwatch">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>"
    )


def _masthead(title: str, studies: Sequence[StudyData], generated_at: datetime) -> str:
    versions = sum(len(s.versions) for s in studies)
    changes = sum(len(s.changes) for s in studies)
    stamp = generated_at.strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<header class="masthead"><p class="kicker">trialwatch report</p>'
        f"<h1>{_esc(title)}</h1>"
        f'<p class="meta">Generated {_esc(stamp)} · {_plural(len(studies), "record")} · '
        f"{_plural(versions, 'stored version')} · {_plural(changes, 'change')}. "
        "Every version trialwatch stored, oldest first, dated when the registry posted it "
        "(or, failing that, when trialwatch fetched it).</p></header>"
    )


def _contents(studies: Sequence[StudyData]) -> str:
    if not studies:
        return '<p class="empty">No records to report: nothing is watched yet.</p>'
    rows = "".join(_contents_row(s) for s in studies)
    return (
        '<table class="contents"><thead><tr><th>Record</th><th>Title</th><th>Status now</th>'
        '<th class="num">Versions</th><th class="num">Changes</th><th>Last version</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _contents_row(study: StudyData) -> str:
    last = study.versions[-1] if study.versions else None
    status = _status_words(last.status) if last else "not synced yet"
    return (
        f'<tr><td class="mono"><a href="#{_esc(_anchor(study))}">{_esc(study.study_id)}</a></td>'
        f"<td>{_esc(study.title)}</td><td>{_esc(status)}</td>"
        f'<td class="num">{len(study.versions)}</td><td class="num">{len(study.changes)}</td>'
        f'<td class="nowrap">{_esc(last.date) if last else "–"}</td></tr>'
    )


def _footer() -> str:
    return (
        "<footer>Made by trialwatch from its own store of ClinicalTrials.gov record versions. "
        "Registry text is shown as the registry wrote it. This page loads nothing from the "
        "network.</footer>"
    )


def _anchor(study: StudyData) -> str:
    return f"study-{study.registry}-{study.study_id}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _status_words(status: str) -> str:
    return humanise(status) if status else "Not given"


# ---- one study ------------------------------------------------------------------------------


def _study_section(study: StudyData, as_of: date) -> str:
    parts = [
        f'<section class="study" id="{_esc(_anchor(study))}">',
        _study_header(study),
    ]
    if not study.versions:
        parts.append(
            '<p class="empty">No stored versions yet: run <code>trialwatch sync</code>.</p>'
        )
        return "\n".join([*parts, "</section>"])
    parts += [
        _facts(study),
        _block("Status over time", status_band(study.versions, as_of)),
        _block("Enrollment by version", enrollment_chart(study.versions)),
        _block("Start and completion dates by version", _dates_block(study.versions)),
        _block("Outcome measure changes", outcome_table(study)),
    ]
    if study.findings:
        parts.append(_block("Transparency findings", findings_table(study)))
    if study.seeds:
        parts.append(_block("Publication versus registry", _seeds_block(study)))
    parts += [_block("All changes", change_table(study)), "</section>"]
    return "\n".join(parts)


def _block(title: str, content: str) -> str:
    return f"<h3>{_esc(title)}</h3>\n{content}"


def _study_header(study: StudyData) -> str:
    latest = study.latest
    official = latest.official_title if latest else ""
    head = f'<p class="study-id">{_esc(study.study_id)}</p><h2>{_esc(study.title)}</h2>'
    if official and official != study.title:
        head += f'<p class="official">{_esc(official)}</p>'
    links = [f"<span>Lead sponsor: {_esc(latest.lead_sponsor)}</span>"] if latest else []
    page = study_url(study.registry, study.study_id)
    if page:
        links.append(f'<a href="{_esc(page)}">ClinicalTrials.gov record</a>')
        links.append(f'<a href="{_esc(page)}?tab=history">Registry version history</a>')
    return head + (f'<p class="links">{"".join(links)}</p>' if links else "")


def _facts(study: StudyData) -> str:
    first, last = study.versions[0], study.versions[-1]
    high = sum(1 for c in study.changes if c.severity == "high")
    phases = _phases(study.latest.phases) if study.latest else "–"
    facts = [
        ("Status now", _esc(_status_words(last.status))),
        ("Enrollment", _enrollment_html(last.enrollment_count, last.enrollment_type)),
        ("Phase", _esc(phases)),
        (
            "Versions stored",
            f"{len(study.versions)} <small>{_esc(first.date)} → {_esc(last.date)}</small>",
        ),
        ("Start", _study_date_html(last.start)),
        ("Primary completion", _study_date_html(last.primary_completion)),
        ("Completion", _study_date_html(last.completion)),
        ("Changes stored", f"{len(study.changes)} <small>{high} high severity</small>"),
    ]
    cells = "".join(f"<div><dt>{_esc(k)}</dt><dd>{v}</dd></div>" for k, v in facts)
    return f'<dl class="facts">{cells}</dl>'


def _phases(phases: Sequence[str]) -> str:
    return ", ".join(humanise(p) for p in phases) if phases else "Not given"


def _enrollment_html(count: int | None, kind: str) -> str:
    if count is None:
        return '<span class="muted">Not given</span>'
    kind_html = f" <small>{_esc(humanise(kind).lower())}</small>" if kind else ""
    return f"{count:,}{kind_html}"


def _study_date_html(value: StudyDate) -> str:
    if not value.date:
        return '<span class="muted">Not given</span>'
    return _esc(value.date) + _est(value.type)


def _est(kind: str) -> str:
    # ESTIMATED dates are plans: marked so that a reader never takes one for a fact.
    return '<span class="est">est.</span>' if kind == "ESTIMATED" else ""


# ---- time helpers ---------------------------------------------------------------------------

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
    for step in (1, 2, 3, 6, 12, 24, 60, 120, 240, 600):
        ticks = _ticks_every(lo, hi, step)
        if len(ticks) <= max_ticks:
            return ticks, step
    return [], 600


def _ticks_every(lo: date, hi: date, months: int) -> list[date]:
    index = lo.year * 12 + lo.month - 1 + (1 if lo.day > 1 else 0)
    index = -(-index // months) * months
    ticks: list[date] = []
    while True:
        tick = date(index // 12, index % 12 + 1, 1)
        if tick > hi:
            return ticks
        ticks.append(tick)
        index += months


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


# ---- SVG helpers ----------------------------------------------------------------------------


def _svg(width: int, height: int, label: str, body: Iterable[str]) -> str:
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{_esc(label)}">'
        + "".join(body)
        + "</svg>"
    )


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, text: str, *, anchor: str = "middle", cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}"{klass}>{_esc(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, attrs: str) -> str:
    return f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" {attrs}/>'


def _marker(x: float, y: float, radius: float, colour: str, kind: str, tip: str) -> str:
    """A point: filled for ACTUAL, hollow for ESTIMATED (or no type given)."""
    fill = colour if kind == "ACTUAL" else "#fff"
    return (
        f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{_num(radius)}" fill="{fill}" '
        f'stroke="{colour}" stroke-width="{_num(max(1.2, radius / 2.2))}" '
        f'data-type="{_esc(kind or "NONE")}"><title>{_esc(tip)}</title></circle>'
    )


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


def _version_labels(axis: _VersionAxis, versions: Sequence[VersionPoint], y: float) -> list[str]:
    parts: list[str] = []
    for i in axis.labelled():
        x = axis.x(i)
        parts.append(_line(x, y - 10, x, y - 6, 'class="axis"'))
        parts.append(_text(x, y + 5, f"v{versions[i].version}", cls="label"))
        parts.append(_text(x, y + 20, versions[i].date))
    return parts


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


def _status_colour(status: str) -> str:
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


def status_band(versions: Sequence[VersionPoint], as_of: date) -> str:
    """The overall status over time: one coloured run per status spell, to the report date."""
    width, height, left, right = CHART_WIDTH, 100, 8, 8
    top, band = 10, 38
    days = _version_days(versions, as_of)
    end = max(days[-1], as_of)
    lo, hi = days[0], max(end, days[0] + timedelta(days=1))
    span = (hi - lo).days

    def x(day: date) -> float:
        return left + (width - left - right) * (day - lo).days / span

    spells = _spells(versions, days, end)
    # markers of very short spells go on top, so that no neighbour hides them
    spells.sort(key=lambda s: x(s.end) - x(s.start) < _SLIVER)
    parts = [_spell_rect(s, x, top, band) for s in spells]
    # a tick per version under the band: several versions on one day show as one tick
    for day in sorted(set(days)):
        parts.append(_line(x(day), top + band + 3, x(day), top + band + 10, 'stroke="#1f2933"'))
    ticks, step = _time_ticks(lo, hi, max_ticks=10)
    for tick in ticks:
        parts.append(_line(x(tick), top + band + 14, x(tick), top + band + 19, 'class="axis"'))
        parts.append(_text(x(tick), top + band + 33, _tick_label(tick, step)))
    if not ticks:
        parts.append(_text(left, top + band + 33, lo.isoformat(), anchor="start"))
        parts.append(_text(width - right, top + band + 33, hi.isoformat(), anchor="end"))
    svg = _svg(width, height, "Overall status over time", parts)
    caption = (
        f"Each version is a tick under the band. The latest status runs to the report date "
        f"({as_of.isoformat()})."
    )
    return (
        f"<figure>{svg}{_status_legend(versions)}<figcaption>{_esc(caption)}</figcaption></figure>"
    )


_SLIVER = 3.0  # px: a spell narrower than this is drawn as a marker


def _spell_rect(spell: _Spell, x: TimeScale, top: float, band: float) -> str:
    x0, x1 = x(spell.start), x(spell.end)
    words = _status_words(spell.status)
    versions = f"v{spell.first}" if spell.first == spell.last else f"v{spell.first}–v{spell.last}"
    tip = f"{words}: {spell.start.isoformat()} to {spell.end.isoformat()} ({versions})"
    fill = _status_colour(spell.status)
    if x1 - x0 < _SLIVER:
        # A status that lasted days (a change reverted before anyone looked) would vanish at
        # this scale: it gets a marker that stands out of the band instead.
        return (
            f'<rect x="{_num(x0 - 1)}" y="{top - 5}" width="{_SLIVER + 1}" height="{band + 10}" '
            f'fill="{fill}" stroke="#1f2933" stroke-width="1" data-status="{_esc(spell.status)}">'
            f"<title>{_esc(tip)}</title></rect>"
        )
    rect = (
        f'<rect x="{_num(x0)}" y="{top}" width="{_num(x1 - x0)}" height="{band}" fill="{fill}" '
        f'stroke="#fff" stroke-width="1" data-status="{_esc(spell.status)}">'
        f"<title>{_esc(tip)}</title></rect>"
    )
    if x1 - x0 < len(words) * 7.2 + 12:
        return rect
    ink = "#1f2933" if spell.status in _LIGHT or spell.status not in STATUS_COLOURS else "#fff"
    label = (
        f'<text x="{_num(x0 + 8)}" y="{_num(top + band / 2 + 4)}" text-anchor="start" '
        f'class="band-label" style="fill:{ink}">{_esc(words)}</text>'
    )
    return rect + label


def _status_legend(versions: Sequence[VersionPoint]) -> str:
    seen = list(dict.fromkeys(v.status for v in versions))
    items = "".join(
        f'<li><span class="swatch" style="background:{_status_colour(s)}"></span>'
        f"{_esc(_status_words(s))}</li>"
        for s in seen
    )
    return f'<ul class="legend">{items}</ul>'


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


def enrollment_chart(versions: Sequence[VersionPoint]) -> str:
    """Enrollment as a step line over versions; ACTUAL points filled, ESTIMATED hollow."""
    counts = [v.enrollment_count for v in versions]
    known = [c for c in counts if c is not None]
    if not known:
        return '<p class="empty">No version gives an enrollment count.</p>'
    width, height, left, right, top, bottom = CHART_WIDTH, 236, 64, 24, 26, 50
    plot_h = height - top - bottom
    axis = _VersionAxis(left, width - left - right, len(versions))
    y_max, y_step = _nice_max(max(known) * 1.08)

    def y(count: float) -> float:
        return top + plot_h * (1 - count / y_max)

    parts: list[str] = []
    for k in range(round(y_max / y_step) + 1):
        value = k * y_step
        parts.append(_line(left, y(value), width - right, y(value), 'class="grid"'))
        parts.append(_text(left - 8, y(value) + 4, f"{value:,.0f}", anchor="end"))
    parts += _enrollment_steps(versions, axis, y)
    parts += _enrollment_points(versions, axis, y)
    parts += _enrollment_values(versions, axis, y)
    parts += _version_labels(axis, versions, height - bottom + 18)
    svg = _svg(width, height, "Enrollment by version", parts)
    return f"<figure>{svg}{_enrollment_legend(versions)}</figure>"


def _enrollment_steps(
    versions: Sequence[VersionPoint], axis: _VersionAxis, y: CountScale
) -> list[str]:
    parts: list[str] = []
    for i in range(len(versions) - 1):
        a, b = versions[i], versions[i + 1]
        if a.enrollment_count is None or b.enrollment_count is None:
            continue
        x0, x1, y0, y1 = axis.x(i), axis.x(i + 1), y(a.enrollment_count), y(b.enrollment_count)
        # a dashed run is a planned (ESTIMATED) figure; solid is an ACTUAL count
        dash = ' stroke-dasharray="5 4"' if a.enrollment_type != "ACTUAL" else ""
        colour = f'stroke="{_ENROLLMENT_COLOUR}" stroke-width="2"'
        parts.append(_line(x0, y0, x1, y0, colour + dash))
        if y0 != y1:
            parts.append(_line(x1, y0, x1, y1, f'stroke="{_ENROLLMENT_COLOUR}" stroke-width="1"'))
    return parts


def _enrollment_points(
    versions: Sequence[VersionPoint], axis: _VersionAxis, y: CountScale
) -> list[str]:
    parts: list[str] = []
    for i, v in enumerate(versions):
        if v.enrollment_count is None:
            tip = f"v{v.version} ({v.date}): no enrollment given"
            parts.append(
                f'<path d="M{_num(axis.x(i) - 3)} {_num(y(0) - 3)}l6 6m0 -6l-6 6" '
                f'stroke="#9aa5b1" stroke-width="1.5"><title>{_esc(tip)}</title></path>'
            )
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
        parts.append(point)
    return parts


def _enrollment_values(
    versions: Sequence[VersionPoint], axis: _VersionAxis, y: CountScale
) -> list[str]:
    """Figures written beside the points where the count changed, as many as fit."""
    parts: list[str] = []
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
        parts.append(_text(axis.x(i), y(count) + dy, f"{count:,}", cls="label"))
    return parts


def _point_legend(types: set[str], actual: str, estimated: str) -> list[str]:
    """Legend items of the filled and hollow points that a chart actually shows."""
    items = []
    if "ACTUAL" in types:
        items.append(f'<li><span class="dot filled"></span>{_esc(actual)}</li>')
    untyped = bool(types - {"ACTUAL", "ESTIMATED"})  # older records often give no type
    hollow = {
        (True, False): estimated,
        (True, True): f"{estimated}, or type not given",
        (False, True): "Type not given",
    }.get(("ESTIMATED" in types, untyped))
    if hollow:
        items.append(f'<li><span class="dot hollow"></span>{_esc(hollow)}</li>')
    return items


def _enrollment_legend(versions: Sequence[VersionPoint]) -> str:
    types = {v.enrollment_type for v in versions if v.enrollment_count is not None}
    items = _point_legend(types, "Actual count", "Estimated (planned) count")
    if types - {"ACTUAL"}:
        items.append('<li><span class="dash"></span>while the count is not actual</li>')
    if any(v.enrollment_count is None for v in versions):
        items.append('<li><span class="muted">×</span>&nbsp;no count in that version</li>')
    return f'<ul class="legend">{"".join(items)}</ul>'


# ---- dates ----------------------------------------------------------------------------------

DATE_SERIES: tuple[tuple[str, str, str], ...] = (
    ("start", "Start", "#0f766e"),
    ("primary_completion", "Primary completion", "#c2410c"),
    ("completion", "Completion", "#4338ca"),
)


def _series(versions: Sequence[VersionPoint], name: str) -> list[StudyDate]:
    return [getattr(v, name) for v in versions]


def _dates_block(versions: Sequence[VersionPoint]) -> str:
    if not any(partial_date(getattr(v, n).date) for v in versions for n, _, _ in DATE_SERIES):
        return '<p class="empty">No version gives a start or completion date.</p>'
    return "\n".join([_slip_summary(versions), dates_chart(versions), dates_table(versions)])


def _slip_summary(versions: Sequence[VersionPoint]) -> str:
    items = []
    for name, label, colour in DATE_SERIES:
        values = [d for d in _series(versions, name) if partial_date(d.date)]
        if not values:
            continue
        first, last = values[0], values[-1]
        moves = sum(1 for a, b in itertools.pairwise(values) if a.date != b.date)
        head = f'<span class="line" style="border-color:{colour}"></span><b>{_esc(label)}</b>: '
        if not moves:
            items.append(f"<li>{head}{_esc(first.date)}{_est(first.type)}, never moved</li>")
            continue
        shift = (partial_date(last.date) - partial_date(first.date)).days  # type: ignore[operator]
        slip = _slip_html(shift)
        items.append(
            f"<li>{head}{_esc(first.date)}{_est(first.type)} → {_esc(last.date)}{_est(last.type)}"
            f"{slip} <span class='muted'>({_plural(moves, 'move')})</span></li>"
        )
    return f'<ul class="legend summary-list">{"".join(items)}</ul>'


def _slip_html(days: int) -> str:
    if days == 0:
        return ' <span class="slip">same date</span>'
    kind = "later" if days > 0 else "earlier"
    return f'<span class="slip {kind}">{_esc(_span_words(days))}</span>'


def dates_chart(versions: Sequence[VersionPoint]) -> str:
    """Start, primary completion and completion as step lines over versions (time upwards)."""
    width, height, left, right, top, bottom = CHART_WIDTH, 270, 78, 180, 16, 50
    plot_h = height - top - bottom
    axis = _VersionAxis(left, width - left - right, len(versions))
    parsed = [
        d for v in versions for n, _, _ in DATE_SERIES if (d := partial_date(getattr(v, n).date))
    ]
    lo, hi = min(parsed), max(parsed)
    pad = max(30, (hi - lo).days // 12)
    lo, hi = lo - timedelta(days=pad), hi + timedelta(days=pad)

    def y(day: date) -> float:
        return top + plot_h * (1 - (day - lo).days / (hi - lo).days)

    parts: list[str] = []
    ticks, step = _time_ticks(lo, hi, max_ticks=7)
    for tick in ticks:
        parts.append(_line(left, y(tick), width - right, y(tick), 'class="grid"'))
        parts.append(_text(left - 8, y(tick) + 4, _tick_label(tick, step), anchor="end"))
    ends: list[tuple[float, str, str]] = []
    for name, label, colour in DATE_SERIES:
        drawn, end = _date_series(versions, name, label, colour, axis, y)
        parts += drawn
        if end is not None:
            ends.append((end, label, colour))
    parts += _series_labels(ends, width - right + 10, top, top + plot_h)
    parts += _version_labels(axis, versions, height - bottom + 18)
    svg = _svg(width, height, "Start and completion dates by version", parts)
    types = {getattr(v, n).type for v in versions for n, _, _ in DATE_SERIES if getattr(v, n).date}
    items = _point_legend(types, "Actual date", "Estimated (anticipated) date")
    items.append("<li>A line that climbs is a date that slipped later.</li>")
    return f'<figure>{svg}<ul class="legend">{"".join(items)}</ul></figure>'


def _date_series(
    versions: Sequence[VersionPoint],
    name: str,
    label: str,
    colour: str,
    axis: _VersionAxis,
    y: TimeScale,
) -> tuple[list[str], float | None]:
    """One date's step line and points; also where its last point is (for the end label)."""
    values = _series(versions, name)
    days = [partial_date(v.date) for v in values]
    parts: list[str] = []
    stroke = f'stroke="{colour}" stroke-width="2"'
    for i in range(len(values) - 1):
        a, b = days[i], days[i + 1]
        if a is None or b is None:
            continue
        dash = ' stroke-dasharray="5 4"' if values[i].type != "ACTUAL" else ""
        parts.append(_line(axis.x(i), y(a), axis.x(i + 1), y(a), stroke + dash))
        if a != b:
            parts.append(_line(axis.x(i + 1), y(a), axis.x(i + 1), y(b), stroke))
    end: float | None = None
    for i, (value, day) in enumerate(zip(values, days, strict=True)):
        if day is None:
            continue
        kind = humanise(value.type).lower() if value.type else "type not given"
        tip = f"{label}, v{versions[i].version}: {value.date} ({kind})"
        parts.append(_marker(axis.x(i), y(day), axis.radius(), colour, value.type, tip))
        end = y(day)
    return parts, end


def _series_labels(ends: list[tuple[float, str, str]], x: float, lo: float, hi: float) -> list[str]:
    """Labels at the right of each line, pushed apart where the lines end close together."""
    placed: list[tuple[float, str, str]] = []
    for end, label, colour in sorted(ends):
        y = max(end, placed[-1][0] + 15) if placed else end
        placed.append((min(y, hi), label, colour))
    return [
        f'<text x="{_num(x)}" y="{_num(max(lo + 8, y) + 4)}" text-anchor="start" '
        f'style="fill:{colour};font-weight:600">{_esc(label)}</text>'
        for y, label, colour in placed
    ]


def dates_table(versions: Sequence[VersionPoint]) -> str:
    """The versions in which a date (or its actual/estimated type) moved, and by how much."""
    rows: list[str] = []
    previous: VersionPoint | None = None
    for v in versions:
        if previous is not None and all(
            getattr(previous, n) == getattr(v, n) for n, _, _ in DATE_SERIES
        ):
            continue
        cells = "".join(
            _date_cell(getattr(previous, n, None), getattr(v, n)) for n, _, _ in DATE_SERIES
        )
        rows.append(
            f'<tr><td class="nowrap">v{v.version}</td><td class="nowrap">{_esc(v.date)}</td>'
            f"{cells}</tr>"
        )
        previous = v
    head = "".join(f"<th>{_esc(label)}</th>" for _, label, _ in DATE_SERIES)
    return (
        '<table class="dates"><thead><tr><th class="nowrap">Version</th><th>Posted</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="caption">Only the versions in which one of these dates changed.</p>'
    )


def _date_cell(before: StudyDate | None, after: StudyDate) -> str:
    if not after.date:
        return '<td class="muted">–</td>'
    text = _esc(after.date) + _est(after.type)
    if before is None or before == after:
        return f"<td>{text}</td>"
    old, new = partial_date(before.date), partial_date(after.date)
    slip = _slip_html((new - old).days) if old and new and old != new else ""
    return f'<td class="moved">{text}{slip}</td>'


# ---- outcomes -------------------------------------------------------------------------------

_OUTCOME_VERBS = {
    "outcome_added": "Added",
    "outcome_removed": "Removed",
    "outcome_modified": "Changed",
    "outcome_reclassified": "Moved",
}


def outcome_table(study: StudyData) -> str:
    changes = [c for c in study.changes if c.kind in _OUTCOME_VERBS]
    if not changes:
        return '<p class="empty">No outcome measure changed in the stored versions.</p>'
    dates = _version_dates(study)
    rows = "".join(_outcome_row(study, c, dates) for c in changes)
    return (
        '<table class="outcomes"><thead><tr><th class="nowrap">Version</th><th>Posted</th>'
        "<th>Outcome</th><th>Change</th><th>Before</th><th>After</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def findings_table(study: StudyData) -> str:
    """What the transparency rules found: open ones first, each with its evidence's source."""
    ordered = sorted(study.findings, key=lambda f: (f.state != "open", f.opened_at))
    rows = "".join(
        f'<tr><td class="nowrap">{_esc(f.rule.replace("_", " "))}</td>'
        f"<td>{_esc(f.state)} {_severity_pill(f.severity)}</td>"
        f'<td class="nowrap">{_esc(f.opened_at.date().isoformat())}'
        + (f" – {_esc(f.resolved_at.date().isoformat())}" if f.resolved_at else "")
        + f'</td><td>{_esc(f.summary)}<div class="outcome-detail">{_esc(f.source)}</div></td></tr>'
        for f in ordered
    )
    return (
        '<table class="findings"><thead><tr><th>Finding</th><th>State</th><th>When</th>'
        f"<th>What and why</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _version_dates(study: StudyData) -> dict[int, str]:
    return {v.version: v.date for v in study.versions}


def _posted(dates: dict[int, str], version: int | None) -> str:
    return dates.get(version, "–") if version is not None else "–"


def _outcome_row(study: StudyData, change: StoredChange, dates: dict[int, str]) -> str:
    verb = _OUTCOME_VERBS[change.kind]
    if change.kind == "outcome_reclassified":
        kind = f"{change.old} → {change.new}"
        before = f'<span class="muted">{_esc(str(change.old).capitalize())} outcome</span>'
        after = f"{_esc(change.summary)}"
    else:
        kind = change.outcome_type or ""
        before, after = _outcome_html(change.old), _outcome_html(change.new)
    return (
        f'<tr><td class="nowrap">{_version_html(study, change)}</td>'
        f'<td class="nowrap">{_esc(_posted(dates, change.to_version))}</td>'
        f"<td>{_esc(kind.capitalize())}</td>"
        f"<td>{_esc(verb)} {_severity_pill(change.severity)}</td>"
        f"<td>{before}</td><td>{after}</td></tr>"
    )


def _outcome_html(value: Any) -> str:
    if not value:
        return '<span class="muted">–</span>'
    if not isinstance(value, dict):
        return _esc(value)
    outcome = Outcome(
        measure=str(value.get("measure", "")),
        time_frame=str(value.get("time_frame", "")),
        description=str(value.get("description", "")),
    )
    parts = [f'<div class="outcome-measure">{_esc(outcome.measure)}</div>']
    if outcome.time_frame:
        parts.append(f'<div class="outcome-detail">Time frame: {_esc(outcome.time_frame)}</div>')
    if outcome.description:
        parts.append(f'<div class="outcome-detail">{_esc(_clip(outcome.description, 280))}</div>')
    return "".join(parts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# ---- changes --------------------------------------------------------------------------------


def _severity_pill(severity: str) -> str:
    return f'<span class="pill sev-{_esc(severity)}">{_esc(severity)}</span>'


def _version_html(study: StudyData, change: StoredChange) -> str:
    """``v2 → v3``, linked to the registry's side-by-side view when both are its versions."""
    to = change.to_version
    if change.from_version is None:
        return f"v{to}" if to is not None else "–"
    text = f"v{change.from_version} → v{to}" if to is not None else f"after v{change.from_version}"
    registry_versions = {v.version for v in study.versions if v.registry_version is not None}
    if {change.from_version, to} <= registry_versions:
        url = compare_url(study.registry, study.study_id, change.from_version, to)
        if url:
            return (
                f'<a href="{_esc(url)}" title="Compare the two versions on the registry">'
                f"{_esc(text)}</a>"
            )
    return _esc(text)


def change_table(study: StudyData) -> str:
    if not study.changes:
        return '<p class="empty">No changes stored.</p>'
    dates = _version_dates(study)
    rows: list[str] = []
    group: tuple[int | None, int | None] | None = None
    for change in study.changes:
        key = (change.from_version, change.to_version)
        first = key != group
        group = key
        rows.append(_change_row(study, change, dates, first=first))
    return (
        '<table class="changes"><thead><tr><th class="nowrap">Version</th><th>Posted</th>'
        "<th>Severity</th><th>What changed</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _change_row(
    study: StudyData, change: StoredChange, dates: dict[int, str], *, first: bool
) -> str:
    version = _version_html(study, change) if first else ""
    posted = _esc(_posted(dates, change.to_version)) if first else ""
    tags = f'<span class="tag">{_esc(change.kind)}</span>'
    if change.historical:
        tags += '<span class="tag" title="found when the record was first watched">history</span>'
    return (
        f'<tr class="{"group-start" if first else ""}"><td class="nowrap">{version}</td>'
        f'<td class="nowrap">{posted}</td><td>{_severity_pill(change.severity)}</td>'
        f"<td>{_esc(change.summary)}{tags}</td></tr>"
    )


# ---- seeds ----------------------------------------------------------------------------------


def _seeds_block(study: StudyData) -> str:
    latest = study.versions[-1]
    registry_outcomes = study.latest.primary_outcomes if study.latest else ()
    registry_phases = study.latest.phases if study.latest else ()
    return "\n".join(
        _seed_html(seed, latest, registry_outcomes, registry_phases) for seed in study.seeds
    )


def _seed_html(
    seed: SeedFacts,
    latest: VersionPoint,
    registry_outcomes: Sequence[Outcome],
    registry_phases: Sequence[str],
) -> str:
    rows = [
        (
            "Enrollment",
            _enrollment_html(seed.enrollment_count, seed.enrollment_type)
            + (
                f'<div class="outcome-detail">“{_esc(seed.enrollment_phrase)}”</div>'
                if seed.enrollment_phrase
                else ""
            ),
            _enrollment_html(latest.enrollment_count, latest.enrollment_type),
        ),
        (
            "Primary outcomes",
            _list_html(seed.primary_outcomes, "none reported as primary"),
            _list_html([o.measure for o in registry_outcomes], "none registered"),
        ),
        ("Phase", _esc(_phases(seed.phases)), _esc(_phases(registry_phases))),
    ]
    if seed.status:
        rows.append(
            ("Status", _esc(_status_words(seed.status)), _esc(_status_words(latest.status)))
        )
    body = "".join(f"<tr><td>{_esc(k)}</td><td>{a}</td><td>{b}</td></tr>" for k, a, b in rows)
    found = "".join(
        f"<li>{_severity_pill(sev)} {_esc(summary)}</li>" for sev, summary in seed.discrepancies
    )
    verdict = (
        f'<ul class="discrepancies">{found}</ul>'
        if found
        else '<p class="empty">No discrepancy between the publication and the registry.</p>'
    )
    meta = " · ".join(_esc(p) for p in (seed.citation, seed.link) if p)
    return (
        f'<div class="seed"><h4>{_esc(seed.title)}</h4>'
        f'<p class="small muted">Seed {_esc(seed.seed_id)}{" · " + meta if meta else ""}</p>'
        "<table><thead><tr><th></th><th>Publication reports</th>"
        f"<th>Registry, latest version (v{latest.version})</th></tr></thead>"
        f"<tbody>{body}</tbody></table>{verdict}</div>"
    )


def _list_html(items: Sequence[str], empty: str) -> str:
    if not items:
        return f'<span class="muted">{_esc(empty)}</span>'
    return "<ul>" + "".join(f"<li>{_esc(i)}</li>" for i in items) + "</ul>"
