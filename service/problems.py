"""A per-record problem of a sync cycle: an error (that record failed this cycle) or a
warning (it went through with something to say, or the problem is no one record's: a saved
search, the change signal).

One type for every part of the cycle that has such a thing to hand on (settling, fetching,
storing, gap filling, the backfill round, the saved searches' refresh, the findings review),
so that the report's ``errors`` and ``warnings`` are built in one place, in the shape the
contract prints: ``{"study_id", "error", "reason"}`` and ``{"study_id", "warning", "reason"}``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from service.errors import RecordInvalid, RegistryError

Kind = Literal["error", "warning"]
# registry: unreachable or refusing; invalid: an answer or a record that does not parse
# (schema drift), or a record of another study; not_found: the registry never had it;
# internal: a bug, or the store refusing one record's data; conflict: another process stored
# that version first; signal: what a change signal could not say; dates: a version history
# whose dates go backwards or into the future (its versions kept); too_broad: a saved search
# grown past max_query_matches
Reason = Literal[
    "registry", "invalid", "not_found", "internal", "conflict", "signal", "dates", "too_broad"
]


@dataclass(frozen=True)
class Problem:
    """One problem: whose (``""`` when no one record's), what, why, and how bad."""

    study_id: str
    message: str
    reason: Reason
    kind: Kind = "error"

    @classmethod
    def error(cls, study_id: str, message: str, reason: Reason) -> Problem:
        return cls(study_id, message, reason, "error")

    @classmethod
    def warning(cls, study_id: str, message: str, reason: Reason) -> Problem:
        return cls(study_id, message, reason, "warning")

    @property
    def is_error(self) -> bool:
        return self.kind == "error"

    def as_warning(self) -> Problem:
        """The same problem for a record it cannot fail (one not checked this cycle)."""
        return replace(self, kind="warning")

    def to_json(self) -> dict[str, str]:
        """The contract's shape (key order included: ``sync --json`` prints it as is)."""
        return {"study_id": self.study_id, self.kind: self.message, "reason": self.reason}


def registry_reason(exc: RegistryError) -> Reason:
    """An answer that does not parse is ``invalid`` (drift: the alerts count those); any other
    registry failure is ``registry``."""
    return "invalid" if isinstance(exc, RecordInvalid) else "registry"
