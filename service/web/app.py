"""``create_app``: the routes of the web app, its error pages and its middleware.

Each page family (``records``, ``trials``, ``changes``, ``findings``, ``seeds``, ``outbox``,
``feeds``) lists its own routes in ``ROUTES``; this module only puts them together. Errors a
reader can cause answer with one line naming what is wrong: a bad parameter 400, an unknown
record 404, a store that does not answer 503 (a read past the statement timeout too). HTML
pages answer in the layout, ``/api/…`` (and ``….json``) as JSON.

Pages run on ``PAGE_WORKERS`` threads of their own, reading through the reader's store (its
own pool, as large); the probes run on threads of theirs and read the App's store. So a crowd
of slow pages queues for its workers while ``/healthz`` and ``/readyz`` still answer.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from functools import cache, partial
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from service.errors import InputError, StoreError, TrialwatchError
from service.web import changes, feeds, findings, outbox, records, seeds, trials
from service.web.pages import Reader, html_page, json_answer, public_message
from service.web.security import FailedAttempts, HostCheck, SecurityHeaders, TokenGate

if TYPE_CHECKING:
    from service.app import App
    from service.store import Store
    from service.web.health import HealthCheck

log = logging.getLogger("trialwatch.web")

PAGE_WORKERS = 8  # pages at work at once (more wait their turn); the reader's pool is as large
PROBE_WORKERS = 4  # /healthz and /readyz at once, apart from the pages

# The style sheets, served from the package: the web app's own and the report's (the record
# page draws the report's charts and tables).
STYLESHEETS = {
    "web.css": ("web", "static", "web.css"),
    "report.css": ("report", "report.css"),
}


def create_app(
    app: App,
    *,
    token: str | None = None,
    health: HealthCheck | None = None,
    reader: Store | None = None,
    site_url: str | None = None,
    hosts: Iterable[str] | None = None,
    failures: FailedAttempts | None = None,
) -> Starlette:
    """The web app over ``app``'s store. ``token``: asked of every request but the probes
    (None: none is asked). ``health``: the daemon's probes; without it (``serve``) they say
    whether the store answers. ``reader``: the store pages read through (None: the App's).
    ``site_url``: where absolute links point (None: the request's own address, in-process).
    ``hosts``: the only host names answered, any port (None: any). ``failures``: the token
    gate's count of failed attempts (None: a fresh one on the monotonic clock)."""
    from service.web.health import health_routes, standalone_health

    probes = health or standalone_health(app)
    store = reader or app.store
    pages, probing = CapacityLimiter(PAGE_WORKERS), CapacityLimiter(PROBE_WORKERS)
    page_routes: list[BaseRoute] = [
        *records.ROUTES,
        *trials.ROUTES,
        *changes.ROUTES,
        *findings.ROUTES,
        *seeds.ROUTES,
        *outbox.ROUTES,
        *feeds.ROUTES,
        Route("/static/{name}", stylesheet),
    ]
    # /metrics runs on the page workers: its gauges are read through the pages' store too
    exposition = partial(app.metrics.exposition, store.gauges)
    probe_routes, metrics_routes = health_routes(probes, exposition, redacted=token is not None)
    routes = [
        *(_on_threads(route, pages) for route in [*page_routes, *metrics_routes]),
        *(_on_threads(route, probing) for route in probe_routes),
    ]
    web = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(HostCheck, allowed=hosts),
            Middleware(TokenGate, token=token, failures=failures),
        ],
        exception_handlers={
            HTTPException: http_error,
            TrialwatchError: trialwatch_error,
        },
    )
    # A path with a trailing slash is no page (404), never a redirect: Starlette's would build
    # its Location from the request's Host and echo its query, a ?token= included.
    web.router.redirect_slashes = False
    web.state.tw = Reader(store, app.settings, app.clock)
    web.state.health = probes  # every page's banner says what /readyz says
    web.state.site_url = site_url
    return web


def _on_threads(route: BaseRoute, limiter: CapacityLimiter) -> BaseRoute:
    """``route`` with its (blocking) endpoint run on ``limiter``'s threads instead of the
    threads every endpoint shares, so that one kind of work cannot queue another."""
    if not isinstance(route, Route) or inspect.iscoroutinefunction(route.endpoint):
        return route
    blocking: Callable[[Request], Any] = route.endpoint

    async def endpoint(request: Request) -> Any:
        return await anyio.to_thread.run_sync(blocking, request, limiter=limiter)

    return Route(route.path, endpoint, methods=route.methods, name=route.name)


def stylesheet(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STYLESHEETS:
        raise HTTPException(404, f"no style sheet {name!r}")
    return Response(
        _stylesheet_text(name),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@cache
def _stylesheet_text(name: str) -> str:
    """A style sheet, read from the package once per process (they change only on upgrade)."""
    return files("service.templates").joinpath(*STYLESHEETS[name]).read_text(encoding="utf-8")


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path.endswith(".json")


def error_answer(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    if _wants_json(request):
        answer = json_answer({"error": message, "status": status}, status=status)
    elif request.url.path.endswith(".atom") or request.url.path.startswith("/static/"):
        answer = PlainTextResponse(f"{status}: {message}\n", status_code=status)
    else:
        answer = html_page(request, "error.html", title=f"{status}", status=status, message=message)
    answer.headers.update(headers or {})
    return answer


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.status_code != 404 or exc.detail != "Not Found" else "no such page"
    if exc.status_code == 405:  # every page is read-only: say which methods it answers
        detail = "this page is read-only: only GET and HEAD are answered"
    return error_answer(request, exc.status_code, str(detail), dict(exc.headers or {}))


async def trialwatch_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TrialwatchError)
    if isinstance(exc, InputError):
        return error_answer(request, 400, exc.message)
    status = 503 if isinstance(exc, StoreError) else 500
    log.error("%s %s: %s", request.method, request.url.path, exc.message)
    return error_answer(request, status, public_message(exc))
