"""Fetch: the records left once settled, a page at a time, as the registry answers: records
by the watched id they answer for, the ids it does not have, or a request that failed.

Batches first; then, one by one, the watched ids no batch returned (the probe's unseen ones,
a record served under another id: ``fetch_study`` follows the registry's redirect, and a 404
is known only this way).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from service.cycle.context import Cycle
from service.errors import RecordNotFound, RegistryError, RegistryUnavailable
from service.problems import Problem, registry_reason

log = logging.getLogger(__name__)

Raw = dict[str, Any]


@dataclass
class Page:
    """One answer: ``records`` (the watched id each answers for, None for none of them; the
    raw record), ``missing`` (ids the registry does not have), or ``failed`` (the ids of a
    request that failed with ``error``; ``down``: every retry failed, the registry is down)."""

    records: list[tuple[str | None, Raw]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    error: RegistryError | None = None
    down: bool = False


def in_batches(cycle: Cycle, ids: list[str]) -> Iterator[Page]:
    """The full records of ``ids``, a batch a page. After a request every retry of which
    failed, nothing more is asked: each later batch would wait out the same retries (a list
    of 10,000: most of an hour) to fail the same way."""
    wanted = set(ids)
    for batch in cycle.client.iter_batches(ids):
        if batch.error is not None:
            down = isinstance(batch.error, RegistryUnavailable)
            yield Page(failed=batch.requested, error=batch.error, down=down)
            if down:
                return
            continue
        yield Page(records=[(cycle.watched_id(raw, wanted), raw) for raw in batch.studies])


def one_by_one(cycle: Cycle, ids: list[str]) -> Iterator[Page]:
    """Each of ``ids`` alone (until the cycle is to stop)."""
    for study_id in ids:
        if cycle.should_stop():
            return
        try:
            raw = cycle.client.fetch_study(study_id)
        except RecordNotFound:
            yield Page(missing=[study_id])
            continue
        except RegistryError as exc:
            yield Page(failed=[study_id], error=exc)
            continue
        yield Page(records=[(study_id, raw)])


def failed_request(study_ids: list[str], error: RegistryError) -> list[Problem]:
    """A request for ``study_ids`` failed: each of them fails, in one line of the log (a
    registry that is down must not write a line per watched record)."""
    if not study_ids:
        return []
    more = f" and {len(study_ids) - 3:,} more" if len(study_ids) > 3 else ""
    log.warning("%s (not checked: %s%s)", error, ", ".join(study_ids[:3]), more)
    reason = registry_reason(error)
    return [Problem.error(study_id, str(error), reason) for study_id in study_ids]
