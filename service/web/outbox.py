"""The outbox: the page ``/outbox`` and its JSON twin ``/api/outbox``, read-only.

Pending notifications (due first) and dead letters, each as ``trialwatch outbox --json`` prints
it: channel, record, how many changes it carries, attempts, when it is due and the last error.
``?dead=1`` shows (and answers) the dead letters only, as ``outbox --dead``. Resending is
``trialwatch outbox replay ID``: there is no write endpoint here.

Errors are masked again before they are shown (``service.urls.mask_urls``): the senders mask
them when they record them, and a page that anyone with the token can read must not be the
one place a webhook's ``?token=`` leaks through if a sender ever forgot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.urls import mask_urls
from service.web.pages import choice, html_page, json_answer, tw

__all__ = ["ROUTES"]

SHOWN = 500  # rows per section on the page: the CLI lists them all


def _when(iso: str) -> str:
    """The row's ISO time as the pages show times (UTC, to the minute)."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Section:
    title: str
    dead: bool
    rows: list[dict[str, Any]]
    total: int


def _rows(request: Request, *, dead: bool) -> list[dict[str, Any]]:
    return [
        {**row, "last_error": mask_urls(row["last_error"] or "")}
        for row in tw(request).store.list_outbox(dead=dead)
    ]


def _dead_only(request: Request) -> bool:
    return choice(request, "dead", ("1", "0")) == "1"


def outbox_data(request: Request) -> list[Section]:
    wanted = [True] if _dead_only(request) else [False, True]
    sections = []
    for dead in wanted:
        rows = _rows(request, dead=dead)
        title = "Dead letters" if dead else "Pending"
        shown = [{**row, "due": _when(row["due_at"])} for row in rows[:SHOWN]]
        sections.append(Section(title, dead, shown, len(rows)))
    return sections


def delivery_words(request: Request) -> str:
    """Whether anything can be sent: with no channel (or no subscription) nothing is ever
    queued, and an empty outbox would otherwise look like one where all went out."""
    settings = tw(request).settings
    if not settings.channels:
        return (
            "No channel is configured, so no notification is ever queued: add a [[channels]] "
            "table (email or webhook) and a [[subscriptions]] table to the configuration."
        )
    if not settings.subscriptions:
        names = ", ".join(c.name for c in settings.channels)
        return (
            f"No subscription sends changes to the channel(s) {names}: add a "
            "[[subscriptions]] table to the configuration."
        )
    return ""


def outbox_page(request: Request) -> Response:
    return html_page(
        request,
        "outbox.html",
        title="Outbox",
        sections=outbox_data(request),
        shown=SHOWN,
        delivery=delivery_words(request),
    )


def outbox_api(request: Request) -> Response:
    return json_answer(_rows(request, dead=_dead_only(request)))


ROUTES: list[Route] = [
    Route("/outbox", outbox_page, methods=["GET"]),
    Route("/api/outbox", outbox_api, methods=["GET"]),
]
