"""``trialwatch report``: one self-contained HTML page of the stored history of some records.

Four modules, each importing only the ones before it:

* ``load``: a record's stored versions, snapshots, changes, findings and seeds, from the store.
* ``charts``: the SVG charts (status band, enrollment, dates), as shapes.
* ``view``: the view of one record, which the report and the web app's record page both show.
* ``display``: ``render_report``, the whole page as one HTML string.

This module re-exports what the CLI, the web app and the tests use.
"""

from __future__ import annotations

from service.report.charts import STATUS_COLOURS, partial_date, status_colour, status_words
from service.report.display import render_report
from service.report.load import (
    SeedFacts,
    StudyData,
    VersionPoint,
    VersionWindow,
    load_studies,
    load_study,
)
from service.report.view import VersionLink, study_view

__all__ = [
    "STATUS_COLOURS",
    "SeedFacts",
    "StudyData",
    "VersionLink",
    "VersionPoint",
    "VersionWindow",
    "load_studies",
    "load_study",
    "partial_date",
    "render_report",
    "status_colour",
    "status_words",
    "study_view",
]
