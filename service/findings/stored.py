"""A finding as the store keeps it, in the contract's JSON shape (``trialwatch findings``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from service.models import Frozen, Severity


class FindingInfo(Frozen):
    registry: str
    study_id: str
    rule: str
    state: Literal["open", "resolved"]
    opened_at: datetime
    resolved_at: datetime | None = None
    severity: Severity
    summary: str
    detail: dict[str, Any] = Field(default_factory=dict)
    source: str
    historical: bool = False  # opened by a backfill or a first sighting: not notified

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
