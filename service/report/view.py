"""What the page shows of one record: plain values and chart shapes, never markup.

Per study the page shows a status band over time, enrollment by version (ESTIMATED hollow,
ACTUAL filled), start/primary completion/completion dates by version and how far they moved,
the outcome measure changes, the seed publications' facts beside the registry's, and every
change event. ``study_view`` works it out for the report's page (``templates/report/page.html``)
and the web app's record page alike, so the templates' autoescaping is the one place any
registry or seed text is escaped.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from service.diff import humanise
from service.findings.words import finding_words, rule_words
from service.models import Outcome, StoredChange, StudyDate
from service.notify.render import compare_url, finding_detail, study_url
from service.report.charts import (
    DATE_SERIES,
    NARROW_WIDTH,
    Figure,
    Key,
    dates_chart,
    dates_drawing,
    enrollment_chart,
    partial_date,
    series,
    status_band,
    status_words,
)
from service.report.load import SeedFacts, StudyData, VersionPoint
from service.svg import Chart

__all__ = [
    "StudyView",
    "VersionLink",
    "change_rows",
    "dates_table",
    "finding_rows",
    "outcome_rows",
    "plural",
    "study_view",
]


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
    keys: list[Key]
    narrow: Chart  # the chart drawn for a phone's width
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
    when: str = ""  # an open finding's deadline from the report's day, "" if none
    detail: Any = None  # its evidence in words (a diff node of notify.render), or None


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
class StudyView:
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
    band: Figure | None = None
    enrollment: Figure | None = None
    dates: _Dates | None = None
    outcomes: list[_OutcomeRow] = field(default_factory=list)
    findings: list[_FindingRow] = field(default_factory=list)
    seeds: list[_SeedView] = field(default_factory=list)
    changes: list[_ChangeRow] = field(default_factory=list)


def _anchor(study: StudyData) -> str:
    return f"study-{study.registry}-{study.study_id}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# ---- one study ------------------------------------------------------------------------------


def study_view(study: StudyData, as_of: date) -> StudyView:
    latest = study.latest
    last = study.versions[-1] if study.versions else None
    official = latest.official_title if latest else ""
    head = StudyView(
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
        findings=finding_rows(study, as_of),
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


# ---- dates ----------------------------------------------------------------------------------


def _span_words(days: int) -> str:
    """A slip as a person says it: ``+12 days``, ``−7 months``, ``+2.5 years``."""
    sign = "+" if days > 0 else "−"
    size = abs(days)
    if size < 60:
        amount = plural(size, "day")
    elif size < 730:
        amount = plural(round(size / 30.44), "month")
    else:
        amount = f"{size / 365.25:.1f} years"
    return f"{sign}{amount}"


def _dates_block(versions: Sequence[VersionPoint]) -> _Dates | None:
    if not any(partial_date(getattr(v, n).date) for v in versions for n, _, _ in DATE_SERIES):
        return None
    chart, keys = dates_chart(versions)
    return _Dates(
        summary=_slip_summary(versions),
        chart=chart,
        keys=keys,
        narrow=dates_drawing(versions, NARROW_WIDTH),
        labels=[label for _, label, _ in DATE_SERIES],
        rows=dates_table(versions),
    )


def _slip_summary(versions: Sequence[VersionPoint]) -> list[_SlipLine]:
    lines = []
    for name, label, colour in DATE_SERIES:
        values = [d for d in series(versions, name) if partial_date(d.date)]
        if not values:
            continue
        first, last = values[0], values[-1]
        moves = sum(1 for a, b in itertools.pairwise(values) if a.date != b.date)
        if not moves:
            lines.append(_SlipLine(label, colour, first))
            continue
        shift = (partial_date(last.date) - partial_date(first.date)).days  # type: ignore[operator]
        lines.append(_SlipLine(label, colour, first, last, _slip(shift), plural(moves, "move")))
    return lines


def _slip(days: int) -> _Slip:
    return _Slip(days, _span_words(days) if days else "", "later" if days > 0 else "earlier")


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


def finding_rows(study: StudyData, as_of: date | None = None) -> list[_FindingRow]:
    """What the transparency rules found: open ones first, each with its evidence in words
    and its source; an open finding's deadline counted from ``as_of`` (the day shown)."""
    ordered = sorted(study.findings, key=lambda f: (f.state != "open", f.opened_at))
    rows = []
    for f in ordered:
        resolved = f.state == "resolved"
        words = finding_words(f.detail, None if resolved else as_of)
        rows.append(
            _FindingRow(
                rule=rule_words(f.rule),
                state=f.state,
                severity=f.severity,
                opened=f.opened_at.date().isoformat(),
                resolved=f.resolved_at.date().isoformat() if f.resolved_at else "",
                summary=f.summary,
                source=f.source,
                when=words.when,
                detail=finding_detail(words, resolved=resolved),
            )
        )
    return rows


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
