"""Review: the findings of the records a page stored (read together: a page of changed records
in a few queries, not a few each), and at the end of a cycle those whose date-dependent rules
are due today (results become overdue while the registry stays silent).

A record whose review fails is that record's failure when the cycle went through it (its
version is stored; its findings are looked at again the next day); a record only due for
its review (not checked this cycle, or failed already) gets a warning, so that ``failed``
stays a part of ``checked``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from service.cycle.context import Cycle
from service.findings.keeper import Reviewed
from service.models import StoredChange
from service.problems import Problem

log = logging.getLogger(__name__)


@dataclass
class Review:
    """The change events a review stored and its problems (errors and warnings, as above)."""

    changes: list[StoredChange] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def review_stored(
    cycle: Cycle, to_review: Mapping[str, bool], counted: Callable[[str], bool]
) -> Review:
    """Review ``to_review`` (study id → whether what it finds is historical); ``counted``
    says whether the cycle went through a record (see the module docstring)."""
    return _review(cycle.findings.review_many(to_review, cycle.run_id), counted)


def review_due(cycle: Cycle, counted: Callable[[str], bool]) -> Review:
    """Review the records due today (of the cycle's ids only, for a cycle over some)."""
    ids = cycle.ids if cycle.explicit else None
    return _review(cycle.findings.review_due(cycle.run_id, ids), counted)


def _review(reviewed: Reviewed, counted: Callable[[str], bool]) -> Review:
    problems = []
    for problem in reviewed.failed:
        log.warning("%s", problem.message)
        problems.append(problem if counted(problem.study_id) else problem.as_warning())
    return Review(reviewed.changes, problems)
