"""Operational alerts to the admin channel: the registry unreachable for N consecutive cycles,
records that no longer parse (the registry's schema drifted), deliveries dead-lettered.

Alerts are sent at once and at most once per occurrence (the Nth failed cycle, not every one
after it); a failure to send one is logged, never raised: alerts must not break the work they
report on.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from service.clock import Clock, utcnow
from service.errors import DeliveryError
from service.settings import AlertSettings
from service.store import Store

if TYPE_CHECKING:  # the message models are loaded when an alert is raised, not on every sync
    from service.monitor import SyncReport
    from service.notify.base import Sender
    from service.notify.render import Alert
    from service.outbox import DeliveryReport

log = logging.getLogger("trialwatch.alerts")
DETAILS_SHOWN = 20


class Alerter:
    def __init__(
        self, store: Store, sender: Sender | None, settings: AlertSettings, clock: Clock = utcnow
    ) -> None:
        self.store = store
        self.sender = sender
        self.settings = settings
        self.clock = clock

    def after_sync(self, report: SyncReport) -> list[Alert]:
        drift = self._drift(report)
        alerts = self._unreachable(report) + ([drift] if drift is not None else [])
        for alert in alerts:
            self.send(alert)
        return alerts

    def after_delivery(self, report: DeliveryReport) -> list[Alert]:
        dead = [o for o in report.outcomes if o["outcome"] == "dead"]
        if not dead:
            return []
        alert = _alert(
            kind="dead_letters",
            summary=f"{len(dead)} notification(s) went to the dead letters",
            details=_cut(
                [f"{o['channel']}: {', '.join(o['studies'])}: {o['error']}" for o in dead]
                + ["See `trialwatch outbox --dead`; `trialwatch outbox replay ID…` resends."]
            ),
        )
        self.send(alert)
        return [alert]

    def _unreachable(self, report: SyncReport) -> list[Alert]:
        """An alert for each registry whose last N cycles all failed as a whole, at the Nth
        (each registry's cycles are its own: one registry down is said while the others
        sync, and two down at once are both said)."""
        needed = self.settings.registry_unreachable_cycles
        alerts = []
        for registry in report.registries or ("ctgov",):
            statuses = self.store.recent_run_statuses(needed + 1, registry)
            if statuses[:needed] != ["failed"] * needed or statuses[needed:] == ["failed"]:
                continue  # not yet N failures in a row, or already alerted at the Nth
            alerts.append(
                _alert(
                    kind="registry_unreachable",
                    summary=f"the registry {registry} failed {needed} sync cycles in a row",
                    details=["No study could be fetched; trialwatch keeps trying on its schedule."],
                )
            )
        return alerts

    def _drift(self, report: SyncReport) -> Alert | None:
        drift = [p for p in report.problems if p.reason == "invalid"]
        # the records that failed first, then the warnings (a past version, a saved search)
        invalid = [p.message for p in sorted(drift, key=lambda p: not p.is_error)]
        if not invalid:
            return None
        return _alert(
            kind="schema_drift",
            summary=f"{len(invalid)} record(s) unreadable: the registry's format may have changed",
            details=_cut(invalid),
        )

    def send(self, alert: Alert) -> None:
        log.warning("alert: %s", alert.summary)
        if self.sender is None:
            return
        from service.notify.render import Message

        message = Message(
            event_id=str(uuid.uuid4()),
            created_at=self.clock(),
            kind="alert",
            studies=[],
            alert=alert,
        )
        try:
            self.sender.send(message)
        except DeliveryError as exc:
            log.error("the alert could not be sent to %s: %s", self.sender.name, exc)


def _alert(*, kind: str, summary: str, details: list[str]) -> Alert:
    from service.notify.render import Alert

    return Alert(kind=kind, summary=summary, details=details)


def _cut(details: list[str]) -> list[str]:
    if len(details) <= DETAILS_SHOWN:
        return details
    return [*details[:DETAILS_SHOWN], f"… and {len(details) - DETAILS_SHOWN} more"]
