"""The report's page: ``render_report(studies, generated_at=…)`` is pure: data in, one HTML
string out (through the templates shipped in the package). No clock (the caller passes the
time), so a test can render any shape of history.

The page fetches nothing: inline CSS and SVG only, no script, font, image or stylesheet from
anywhere, and a Content-Security-Policy meta tag that forbids every fetch and every script, so
even a mistake cannot make a reader's browser run or load anything. Registry and seed text is
untrusted: the report hands the templates (``templates/report/``, ``templates/svg.html``)
plain values and chart shapes, never markup, and their autoescaping escapes every piece of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime

from service.report.load import StudyData
from service.report.view import StudyView, plural, study_view
from service.templates import render as render_template

__all__ = ["REPORT_TITLE", "render_report"]

log = logging.getLogger(__name__)

REPORT_TITLE = "Trial registry history"


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
            plural(len(studies), "record"),
            plural(versions, "stored version"),
            plural(changes, "change"),
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
) -> tuple[list[StudyData], list[StudyView]]:
    """The records that can be drawn, with their views."""
    kept: list[StudyData] = []
    views: list[StudyView] = []
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
    studies: Sequence[StudyData], views: Sequence[StudyView]
) -> list[tuple[str, list[StudyView]]]:
    """The contents grouped by saved search (records of no search last); a record in two
    searches is listed under both. Empty when no record came from a search."""
    if not any(study.searches for study in studies):
        return []
    pairs = list(zip(studies, views, strict=True))
    named = sorted({name for study in studies for name in study.searches})
    groups = [(name, [v for s, v in pairs if name in s.searches]) for name in named]
    rest = [v for s, v in pairs if not s.searches]
    return groups + ([("", rest)] if rest else [])
