"""One trial, every registration, on the web: ``/trials/{ID}`` for an id of any registry
trialwatch watches (its JSON twin ``/api/trials/{ID}``, also ``/trials/{ID}.json``), and the
part of a record's page that shows its other registrations.

The trial is the one ``trialwatch trials`` shows (``service.trial_store``): the watched
records that name one another (a link counts both ways) and the ids they name that are not
stored; walked here from the id asked for rather than grouped from every record
(``trial_of``). Its registrations stand side by side, one column each, the id asked for
first; the facts compared across registries (status, lifecycle, planned and actual
enrollment, dates, primary outcomes) are rows, and where the registrations disagree
(``Trial.disagreements``) the cells of the registrations named are marked with a class and a
text mark, and the disagreements are listed above the table.

An id that is no registry's form is a 400 naming the forms; an id no stored record is or
names, a 404. The JSON is ``Trial.to_json()`` (one of ``trialwatch trials --json``'s items).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.models import Snapshot, StudyDate, WatchInfo
from service.registry.catalog import parse_watch_id, registry_info, study_url
from service.report import status_colour, status_words
from service.store import Store
from service.trial_store import snapshots
from service.trials import Key, Registration, Trial, containing, group, members, with_trials
from service.web.pages import html_page, json_answer, tw

# The rows of the table, each a fact compared across the registrations, and the field of
# ``Trial.disagreements`` that marks its cells (a field no row shows is listed, not marked).
ROWS = (
    ("title", "Title", ""),
    ("status", "Status (registry's words)", ""),
    ("lifecycle", "Lifecycle", "lifecycle"),
    ("planned", "Planned enrollment", "enrollment"),
    ("actual", "Actual enrollment", "enrollment_actual"),
    ("start", "Start date", ""),
    ("completion", "Completion date", "completion_date"),
    ("outcomes", "Primary outcomes", "primary_outcomes"),
)
DISAGREEMENT_ROWS = {field: row for row, _, field in ROWS if field}
DISAGREEMENT_LABELS = {field: label for _, label, field in ROWS if field}
MAX_TRIAL_RECORDS = 200  # a trial's walk stops once it has found this many records
DATE_KINDS = {"ACTUAL": "actual", "ESTIMATED": "anticipated"}


@dataclass(frozen=True)
class Column:
    """One registration, as the head of its column."""

    registry: str  # the registry's key ("ctis")
    registry_name: str  # as people name it ("EU CTIS")
    study_id: str
    url: str  # its page here when stored, else the registry's public page
    stored: bool  # a stored record (its latest version is compared)
    watched: bool  # watched (a record only named may be watched, not yet synced)
    named_by: str  # for one not stored: the record that names it ("ctis:2023-505613-24-00")
    registry_url: str  # the registry's public page of it
    asked: bool  # the id the page was asked for


@dataclass(frozen=True)
class Cell:
    """One registration's value of a row: ``text``, or ``items`` (a list), or nothing."""

    text: str = ""
    items: tuple[str, ...] = ()
    colour: str = ""  # a status swatch's colour (with the words: never colour alone)
    link: str = ""  # where the value links (a lifecycle: the list filtered by it)
    differs: bool = False  # a registration a disagreement names, on its field's row
    known: bool = True  # False: a registration not stored (nothing to show)


@dataclass(frozen=True)
class FactRow:
    key: str
    label: str
    cells: tuple[Cell, ...]

    @property
    def differs(self) -> bool:
        return any(cell.differs for cell in self.cells)


@dataclass(frozen=True)
class DisagreementItem:
    field: str
    label: str  # "Lifecycle"
    summary: str  # Trial.disagreements' words
    row: str  # the row whose cells it marks


@dataclass(frozen=True)
class TrialView:
    """What the trial table shows: its columns, its rows, and where the registrations
    disagree."""

    trial: Trial
    columns: tuple[Column, ...]
    rows: tuple[FactRow, ...]
    disagreements: tuple[DisagreementItem, ...]
    url: str  # /trials/{the id asked for}
    json_url: str

    @property
    def stored(self) -> int:
        return sum(1 for column in self.columns if column.stored)


def trial_of(store: Store, key: Key) -> Trial | None:
    """The trial with ``key`` among its registrations (stored, or named by a stored record);
    None when no watched record is it or names it.

    ``trial_store.load_trials`` groups every watched record's links (300 ms at 100,000
    records): too slow for every record page. So the trial is walked from ``key`` instead, a
    step a query (the records the ids at hand are, or are named by), and grouped as
    ``load_trials`` groups: ``group`` over the latest snapshots of the records found."""
    found = containing(group(snapshots(store, trial_links(store, [key]))), [key])
    return found[0] if found else None


def trial_links(store: Store, keys: Sequence[Key]) -> dict[Key, list[Key]]:
    """The watched records of the trials of ``keys``, each with the registrations it names:
    the records ``keys`` are (by their keys), then the records the ids at hand are or are
    named by, a pass over the records a step, until no new id turns up (one pass for most
    trials), or until ``MAX_TRIAL_RECORDS`` records are found (the rest is left out)."""
    links = store.records_linked_to(keys, naming=False)
    frontier = {*keys, *(named for ids in links.values() for named in ids)}
    seen: set[Key] = set()
    while frontier and len(links) < MAX_TRIAL_RECORDS:
        seen |= frontier
        found = store.records_linked_to(sorted(frontier))
        links.update(found)
        frontier = {k for record, ids in found.items() for k in (record, *ids)} - seen
    return links


WALK_PAGE = 50  # records whose trials are walked together (a walk stops at MAX_TRIAL_RECORDS)


def page_trials(store: Store, watches: Sequence[WatchInfo]) -> list[WatchInfo]:
    """``watches`` with their ``trial`` filled as ``watch list`` fills it (the other
    registrations of each record's trial): walked from these records, ``WALK_PAGE`` at a
    time. A walk step is index lookups (``record_links``), so a page of 500 costs ten short
    walks; reading every record's links instead took 7 s at 600,000 records."""
    keys = [(w.registry, w.study_id) for w in watches]
    links: dict[Key, list[Key]] = {}
    for start in range(0, len(keys), WALK_PAGE):
        links.update(trial_links(store, keys[start : start + WALK_PAGE]))
    return with_trials(watches, members(links))


def trial_view(store: Store, trial: Trial, asked: Key) -> TrialView:
    """``trial`` as its table: the registration ``asked`` for first, then the trial's order."""
    ordered = sorted(trial.registrations, key=lambda r: _key(r) != asked)
    differing = {
        (DISAGREEMENT_ROWS[d.field], key)
        for d in trial.disagreements
        if d.field in DISAGREEMENT_ROWS
        for key, _ in d.values
    }
    columns = tuple(_column(store, r, asked) for r in ordered)
    rows = tuple(
        FactRow(
            row,
            label,
            tuple(replace(_cell(row, r), differs=(row, _key(r)) in differing) for r in ordered),
        )
        for row, label, _ in ROWS
    )
    items = tuple(
        DisagreementItem(
            d.field,
            DISAGREEMENT_LABELS.get(d.field, d.field.replace("_", " ").capitalize()),
            d.summary,
            DISAGREEMENT_ROWS.get(d.field, ""),
        )
        for d in trial.disagreements
    )
    return TrialView(
        trial=trial,
        columns=columns,
        rows=rows,
        disagreements=items,
        url=f"/trials/{quote(asked[1], safe='')}",
        json_url=f"/api/trials/{quote(asked[1], safe='')}",
    )


def _key(registration: Registration) -> Key:
    return registration.registry, registration.study_id


def _column(store: Store, registration: Registration, asked: Key) -> Column:
    registry, study_id = _key(registration)
    public = study_url(registry, study_id)
    stored = registration.snapshot is not None
    # an id only named may still be watched (added, not synced yet): its page here says so
    watched = stored or store.find_watch(registry, study_id) is not None
    return Column(
        registry=registry,
        registry_name=registry_info(registry).name,
        study_id=study_id,
        url=f"/studies/{quote(study_id, safe='')}" if watched else public,
        stored=stored,
        watched=watched,
        named_by=registration.source.partition(":")[2] if not stored else "",
        registry_url=public,
        asked=_key(registration) == asked,
    )


def _cell(row: str, registration: Registration) -> Cell:
    snap = registration.snapshot
    if snap is None:
        return Cell(known=False)
    if row == "title":
        return Cell(snap.title)
    if row == "status":
        status = snap.overall_status
        return Cell(status_words(status), colour=status_colour(status))
    if row == "lifecycle":
        life = snap.lifecycle
        words = life.replace("_", " ") if life else ""
        return Cell(words, link=f"/?lifecycle={life}" if life else "")
    if row in ("planned", "actual"):
        return Cell(_enrollment(snap, actual=row == "actual"))
    if row == "start":
        return Cell(_date(snap.start_date))
    if row == "completion":
        return Cell(_date(snap.completion_date))
    return Cell(items=tuple(o.measure for o in snap.primary_outcomes))


def _enrollment(snap: Snapshot, *, actual: bool) -> str:
    """The planned or the actual enrollment, as ``service.trials`` compares them: the EU
    registries keep both; a ClinicalTrials.gov count is planned while ESTIMATED, actual once
    ACTUAL."""
    counted_actual = snap.enrollment_type.upper() == "ACTUAL"
    if actual:
        count = snap.enrollment_count if counted_actual else snap.enrollment_actual
    else:
        count = None if counted_actual else snap.enrollment_count
    return "" if count is None else f"{count:,}"


def _date(day: StudyDate) -> str:
    if not day.date:
        return ""
    kind = DATE_KINDS.get(day.type, "")
    return day.date + (f" ({kind})" if kind else "")


# ---- the pages ------------------------------------------------------------------------------


def _asked(request: Request) -> tuple[Key, Trial]:
    """The id in the path (400 when no registry's form) and its trial (404 when none)."""
    key = parse_watch_id(request.path_params["trial_id"])
    trial = trial_of(tw(request).store, key)
    if trial is None:
        raise HTTPException(
            404,
            f"{key[1]}: no stored record is this registration or names it "
            "(trialwatch watch add, then trialwatch sync)",
        )
    return key, trial


def trial_page(request: Request) -> Response:
    key, trial = _asked(request)
    view = trial_view(tw(request).store, trial, key)
    return html_page(request, "trial.html", title=f"{key[1]} · every registration", view=view)


def trial_api(request: Request) -> Response:
    _, trial = _asked(request)
    return json_answer(trial.to_json())


ROUTES: list[Route] = [
    Route("/trials/{trial_id}.json", trial_api, methods=["GET"]),
    Route("/trials/{trial_id}", trial_page, methods=["GET"]),
    Route("/api/trials/{trial_id}", trial_api, methods=["GET"]),
]
