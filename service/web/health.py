"""``/healthz``, ``/readyz`` and ``/metrics`` on the web app's server: the same verdicts as
the daemon's own health port (``service.health``), so one server can carry all of them. On a
server with a token the probes stay open to anyone, so their bodies leave out what would name
the store's file, database URL or hosts (``service.health.public_body``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.errors import TrialwatchError
from service.health import JSON, PROMETHEUS, CycleResult, HealthCheck, SyncState, public_body
from service.web.pages import public_message

if TYPE_CHECKING:
    from service.app import App
    from service.store import Store


def health_routes(
    health: HealthCheck, metrics: Callable[[], bytes], *, redacted: bool = False
) -> tuple[list[Route], list[Route]]:
    """The probes' routes and the metrics' route. ``redacted`` (a server with a token, whose
    probes anyone may ask): the bodies say what fails, never where (``public_body``)."""
    shown = public_body if redacted else _as_is

    def liveness(_request: Request) -> Response:
        code, body = health.liveness()
        return Response(json.dumps(shown(body)), status_code=code, media_type=JSON)

    def readiness(_request: Request) -> Response:
        code, body = health.readiness()
        return Response(json.dumps(shown(body)), status_code=code, media_type=JSON)

    def exposition(_request: Request) -> Response:
        try:
            return Response(metrics(), media_type=PROMETHEUS)
        except TrialwatchError as exc:  # the store's gauges are read at scrape time
            body = f"# store unavailable: {public_message(exc)}\n"
            return Response(body, status_code=503, media_type=PROMETHEUS)

    probes = [Route("/healthz", liveness), Route("/readyz", readiness)]
    return probes, [Route("/metrics", exposition)]


def _as_is(body: dict[str, Any]) -> dict[str, Any]:
    return body


class StoredSyncState(SyncState):
    """The last cycle as the store recorded it (``trialwatch serve``: the syncs run in other
    processes, a daemon's or a person's ``trialwatch sync``), so that a failed one shows."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    @property
    def last(self) -> CycleResult | None:
        try:
            run = self.store.last_finished_run()
        except TrialwatchError:  # the probes' store check says so, in words of its own
            return None
        if run is None:
            return None
        outcome = run.status  # an interrupted run is never the last (a restart is no failure)
        return CycleResult(run.finished_at, outcome, run.checked, run.failed, run.error)


def standalone_health(app: App) -> HealthCheck:
    """The probes of ``trialwatch serve`` alone: no scheduler runs in this process, so alive
    means the store answers, and ready that the last sync (by any process) succeeded and
    the last finished one did not fail as a whole."""
    from service.scheduler import sync_interval

    return HealthCheck(
        state=StoredSyncState(app.store),
        last_success=app.store.last_sync_success,
        store_check=app.store.check,
        scheduler_running=None,
        next_sync_at=lambda: None,
        tolerance=2 * sync_interval(app, app.clock()),
        clock=app.clock,
    )
