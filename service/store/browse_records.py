"""The watch list a page at a time, for the web app: filters, orders, keyset pagination, a
bounded count, and the open findings of one page's records.

A page is ``size + 1`` rows of an index range after the previous page's last row, never an
OFFSET and never the whole list in Python, so the 2,000th page of 100,000 records costs what the
first does. Each order walks an index: ``id`` the watches' unique (registry, study_id),
``changed`` and ``status`` the records' (last_changed_at, study_id) and (overall_status,
study_id) of migration 0009.

Orders by a record's column come in two parts: the records that have a value, in that order,
then the rest (never changed, or never synced: no record yet) by id. A key says which part it
is in: its ``value`` is None in the second. Filters apply to both parts alike.

A lifecycle filter (the registry's status mapped to one vocabulary for every registry, kept on
the record row of its latest version) is a condition on that column: it has no index of its
own, so a count under it reads the records (an inner join, as the status filter's).

A record page's trial (``records_linked_to``) is walked a step at a time from the record: the
records it names by their keys, those naming it by ``record_links`` (indexed by the id named),
never every record's links (``watched_links``, which the CLI's ``trialwatch trials`` reads whole).

The text filter ignores case and accents both ways ("sjogren" finds "Sjögren", "chéwing"
finds "Chewing"): the typed text and the titles are folded alike (``fold_accents``: NFD, the
combining marks dropped), in SQL on PostgreSQL and, on SQLite, by a Python function registered
on the connection; only titles that are not ASCII pay for it.

Tags (with ``seed:ID`` and ``query:NAME``, the tags that seed loading and saved searches give)
are a JSON list per watch: a ``LIKE`` on its text skips the rows that cannot hold the tag
cheaply, and the dialect's JSON function then checks the tag is a whole element.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    Select,
    String,
    and_,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy import text as sql_text

from service.errors import StoreError
from service.models import WatchInfo
from service.store.base import StoreBase
from service.store.records import _watch_info
from service.store.tables import RECORD_LINKS, FindingRow, RecordRow, WatchRow

log = logging.getLogger("service.store")

WatchSort = Literal["id", "changed", "-changed", "status"]
WATCH_SORTS: tuple[WatchSort, ...] = ("id", "changed", "-changed", "status")
COUNT_LIMIT = 10_000  # a count stops here: "more than 10,000" is all a reader needs
# Up to this many matches a page gathers them first and sorts them; more, and walking the
# order's index meets a match every few rows (2 % of 100,000: one in 50).
FEW_MATCHES = 2_000
ANY_FINDING = "any"
# The tables the pages filter and join: the planner's statistics are kept for these. Rows
# read per index by SQLite's ANALYZE (approximate statistics in milliseconds, at any size).
PLANNED_TABLES = ("watches", "records", "findings", "changes", "record_versions")
SQLITE_ANALYSIS_LIMIT = 1_000


@dataclass(frozen=True)
class WatchFilters:
    """Which watched records a page lists; every filter given must hold."""

    text: str | None = None  # a part of the id or of the title, in any case
    status: str | None = None  # the overall status, as the registry writes it
    tags: tuple[str, ...] = ()  # every one of these tags (``seed:ID``, ``query:NAME`` too)
    finding: str | None = None  # an open finding of this rule, or of any rule ("any")
    lifecycles: tuple[str, ...] = ()  # the latest version's lifecycle is one of these


@dataclass(frozen=True)
class WatchKey:
    """A row's place in an order: its sort value (None in the second part of an order by a
    record's column, and for the ``id`` order), registry and study id."""

    value: datetime | str | None
    registry: str
    study_id: str


@dataclass(frozen=True)
class WatchPage:
    watches: tuple[WatchInfo, ...]
    next_key: WatchKey | None  # where the next page starts after; None on the last page
    count: int  # how many the filters keep, counted no further than COUNT_LIMIT + 1
    # the registry's last update of each record listed (yyyy-mm-dd, by (registry, study id)):
    # its latest version's posting date, where the registry gives one
    updated: dict[tuple[str, str], str] = field(default_factory=dict)
    # where the previous page ends before (its first row's key); None on the first page
    first_key: WatchKey | None = None


@dataclass(frozen=True)
class _Part:
    """One index-ordered part of an order: the rows it holds and the columns it sorts by."""

    columns: tuple[Any, ...]
    descending: bool
    inner: bool  # only watches with a record (lets the planner start from the records' index)
    where: tuple[ColumnElement[bool], ...]
    key_attribute: str | None = None  # the record's attribute a key carries as its value


_BY_ID = (WatchRow.registry_key, WatchRow.study_id)


def _parts(sort: WatchSort) -> tuple[_Part, ...]:
    """An order as its parts, first to last."""
    if sort == "id":
        return (_Part(_BY_ID, False, False, ()),)
    if sort == "status":
        columns = (RecordRow.overall_status, RecordRow.study_id, RecordRow.registry_key)
        synced = _Part(columns, False, True, (), "overall_status")
        return (synced, _Part(_BY_ID, False, False, (RecordRow.id.is_(None),)))
    columns = (RecordRow.last_changed_at, RecordRow.study_id, RecordRow.registry_key)
    has_changed = (RecordRow.last_changed_at.is_not(None),)
    changed = _Part(columns, sort == "-changed", True, has_changed, "last_changed_at")
    never = or_(RecordRow.id.is_(None), RecordRow.last_changed_at.is_(None))
    return (changed, _Part(_BY_ID, False, False, (never,)))


class RecordBrowser(StoreBase):
    """The watch list, filtered, ordered and a page at a time."""

    def browse_watches(
        self,
        filters: WatchFilters,
        sort: WatchSort,
        after: WatchKey | None,
        size: int,
        *,
        backwards: bool = False,
    ) -> WatchPage:
        """Up to ``size`` watched records after ``after`` (None: from the first) in ``sort``
        order, how many the filters keep (up to ``COUNT_LIMIT + 1``), and the next page's key.
        ``backwards``: the ``size`` records just before ``after`` instead (a previous page),
        walked in the reverse order and returned in the order's own.

        The count also picks the plan. Up to ``FEW_MATCHES`` matches are gathered first and
        sorted as a set (a few milliseconds), because walking an index in order for a rare
        match would read most of the table; more matches than that, and the walk meets one
        every few rows, so it stops after ``size + 1`` of them."""
        parts = _parts(sort)
        start = _first_part(parts, after)
        if backwards:  # the parts from the key's back to the first, each walked in reverse
            parts = tuple(replace(p, descending=not p.descending) for p in parts[start::-1])
            start = 0
        found: list[tuple[WatchRow, RecordRow | None, WatchKey]] = []
        with self._session() as session:
            if filters.text and self.engine.dialect.name == "sqlite":
                # per connection and cheap: SQLite has no function that drops accents
                raw = session.connection().connection.driver_connection
                raw.create_function(_FOLD_FUNCTION, 1, fold_accents, deterministic=True)
            count = session.scalar(self._count_query(filters)) or 0
            few = filters != WatchFilters() and count <= FEW_MATCHES
            for index in range(start, len(parts) if count else 0):
                key = after if index == start else None
                query = self._part_query(parts[index], filters, key, few=few)
                rows = session.execute(query.limit(size + 1 - len(found)))
                found += [(w, r, _key(parts[index], w, r)) for w, r in rows]
                if len(found) > size:
                    break
        more = len(found) > size
        shown = found[:size][::-1] if backwards else found[:size]
        if backwards:  # from a later page: a next page follows; a previous one if more
            next_key = shown[-1][2] if shown else None
            first_key = shown[0][2] if more and shown else None
        else:
            next_key = shown[-1][2] if more else None
            first_key = shown[0][2] if after is not None and shown else None
        updated = {
            (w.registry_key, w.study_id): r.last_update_posted
            for w, r, _ in shown
            if r is not None and r.last_update_posted
        }
        watches = tuple(_watch_info(w, r) for w, r, _ in shown)
        return WatchPage(watches, next_key, count, updated, first_key)

    def refresh_planner_statistics(self) -> None:
        """Give the query planner fresh statistics of the tables the pages read (SQLite's
        ``ANALYZE`` under an analysis limit, PostgreSQL's ``ANALYZE``): after a bulk load,
        and when the web app starts. A store that refuses (read-only, busy) is logged and
        left as it is: the filters are written to be fast without statistics too."""
        postgres = self.engine.dialect.name == "postgresql"
        try:
            with self._session() as session:
                if not postgres:
                    session.execute(sql_text(f"PRAGMA analysis_limit={SQLITE_ANALYSIS_LIMIT}"))
                for table in PLANNED_TABLES:
                    session.execute(sql_text(f"ANALYZE {table}"))
        except StoreError as exc:
            log.warning("store: planner statistics not refreshed: %s", exc)

    def find_watch(self, registry: str, study_id: str) -> WatchInfo | None:
        """One watched record as ``watch list`` shows it; None when it is not watched."""
        query = _joined(select(WatchRow, RecordRow), inner=False).where(
            WatchRow.registry_key == registry, WatchRow.study_id == study_id
        )
        with self._session() as session:
            row = session.execute(query).first()
        return None if row is None else _watch_info(row[0], row[1])

    def records_linked_to(
        self, keys: Sequence[tuple[str, str]], *, naming: bool = True
    ) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """The watched records with a version that are one of ``keys`` or whose latest version
        names one, each with the registrations it names: ``watched_links()`` for one step of a
        walk through a trial's registrations (a record page's trial), not for every record.

        The records that are one of ``keys`` are found by their keys (the unique index); those
        naming one through ``record_links`` (the links the database keeps a row each,
        indexed by the id named: an index lookup, where a ``LIKE`` on every record's JSON took
        a pass over 600,000 rows a step), then checked here on the parsed links. ``naming``
        False: only the records that are one of ``keys``."""
        if not keys:
            return {}
        wanted = set(keys)
        # by registry, each an IN list of ids: a row-value IN list, (registry, study_id) IN
        # (VALUES …), is a scan of every record in SQLite, where this is an index lookup
        by_registry: dict[str, list[str]] = {}
        for registry, study_id in sorted(wanted):
            by_registry.setdefault(registry, []).append(study_id)
        conditions = [
            and_(RecordRow.registry_key == registry, RecordRow.study_id.in_(ids))
            for registry, ids in by_registry.items()
        ]
        if naming:
            naming_ids = select(RECORD_LINKS.c.record_id).where(
                RECORD_LINKS.c.study_id.in_(sorted({study_id for _, study_id in wanted}))
            )
            conditions.append(RecordRow.id.in_(naming_ids))
        # a query per condition, not one OR of them: SQLite's planner may read every record
        # for an OR of indexed conditions (0.35 s at 600,000); each alone is an index lookup
        columns = select(RecordRow.registry_key, RecordRow.study_id, RecordRow.links)
        queries = [
            _joined(columns, inner=True).where(RecordRow.latest_seq > 0, condition)
            for condition in conditions
        ]
        found: dict[tuple[str, str], list[tuple[str, str]]] = {}
        with self._session() as session:
            rows = (row for query in queries for row in session.execute(query))
            for registry, study_id, links in rows:
                ids = [(link["registry"], link["study_id"]) for link in links or ()]
                if (registry, study_id) in wanted or wanted.intersection(ids):
                    found[(registry, study_id)] = ids
        return found

    def open_finding_rules(
        self, registry: str, study_ids: Sequence[str]
    ) -> dict[str, tuple[str, ...]]:
        """The rules of the open findings of these records (one page's), by study id."""
        if not study_ids:
            return {}
        # Every finding of these records, the closed ones dropped here: asked for the open
        # ones, SQLite walks the state index through every open finding of the store instead
        # of the record index through these records' few.
        query = (
            select(RecordRow.study_id, FindingRow.rule, FindingRow.state)
            .join(FindingRow, FindingRow.record_id == RecordRow.id)
            .where(RecordRow.registry_key == registry, RecordRow.study_id.in_(list(study_ids)))
            .order_by(RecordRow.study_id, FindingRow.rule)
        )
        rules: dict[str, list[str]] = {}
        with self._session() as session:
            for study_id, rule, state in session.execute(query):
                if state == "open":
                    rules.setdefault(study_id, []).append(rule)
        return {study_id: tuple(dict.fromkeys(found)) for study_id, found in rules.items()}

    # ---- the queries of a page -----------------------------------------------------------

    def _count_query(self, filters: WatchFilters) -> Select[Any]:
        matching = self._matching(filters).limit(COUNT_LIMIT + 1).subquery()
        return select(func.count()).select_from(matching)

    def _matching(self, filters: WatchFilters) -> Select[Any]:
        """The ids of the watches the filters keep. A filter on the record's columns leaves
        out the watches without one: an inner join, which the planner may start from the
        records (their status index) instead of every watch."""
        if filters.finding:
            return self._matching_by_finding(filters)
        synced = filters.status is not None or bool(filters.lifecycles)
        query = _joined(select(WatchRow.id), inner=synced)
        return query.where(*self._conditions(filters))

    def _matching_by_finding(self, filters: WatchFilters) -> Select[Any]:
        """The same, written so that the records with an open finding drive, whatever the
        planner knows: their ids (a few percent of the store) are gathered first, each is
        joined to its record by primary key and to its watch by its unique key, and every
        other filter is tested on the row at hand. Asked as IN beside the text's own search,
        a planner without statistics (a fresh store, a bulk import not yet analysed) may
        instead test each title against every open finding: seconds at 20,000 records."""
        opened = _open_finding_records(filters.finding or ANY_FINDING).subquery("opened")
        query = (
            select(WatchRow.id)
            .select_from(opened)
            .join(RecordRow, RecordRow.id == opened.c.record_id)
            .join(WatchRow, _same_study())
        )
        others = replace(filters, finding=None)
        return query.where(*self._conditions(others, walking=True))

    def _part_query(
        self, part: _Part, filters: WatchFilters, after: WatchKey | None, *, few: bool
    ) -> Select[Any]:
        """One part of a page, in its order, from ``after`` on (no limit yet)."""
        query = select(WatchRow, RecordRow)
        if few:
            # MATERIALIZED: gathered once, then joined; without it a planner may fold the set
            # back into the index walk this plan is there to avoid
            matching = self._matching(filters).cte("matching").prefix_with("MATERIALIZED")
            query = query.select_from(matching).join(WatchRow, WatchRow.id == matching.c.id)
            query = _joined(query, inner=part.inner, base=False)
        else:
            conditions = self._conditions(filters, walking=True)
            query = _joined(query, inner=part.inner).where(*conditions)
        query = query.where(*part.where)
        if after is not None:
            query = query.where(_after(part, after))
        return query.order_by(*[c.desc() if part.descending else c.asc() for c in part.columns])

    def _conditions(
        self, filters: WatchFilters, *, walking: bool = False
    ) -> list[ColumnElement[bool]]:
        """The filters as conditions. ``walking``: for a walk along an index that stops at the
        page's last row, where a condition on the row at hand costs least."""
        clauses: list[ColumnElement[bool]] = []
        if filters.text:
            pattern = f"%{_like_escaped(fold_accents(filters.text))}%"
            if walking:
                mentions = or_(self._like(WatchRow.study_id, pattern), self._like_title(pattern))
            else:
                mentions = self._mentions(pattern)
            clauses.append(mentions)
        if filters.status is not None:
            clauses.append(RecordRow.overall_status == filters.status)
        if filters.lifecycles:
            clauses.append(RecordRow.lifecycle.in_(filters.lifecycles))
        clauses += [self._has_tag(tag) for tag in filters.tags]
        if filters.finding:
            clauses.append(RecordRow.id.in_(_open_finding_records(filters.finding)))
        return clauses

    def _mentions(self, pattern: str) -> ColumnElement[bool]:
        """The id or the title is ``LIKE pattern``, in any case. Each is searched in its own
        table (a scan of the titles alone costs a third of one joined to the watches) and the
        watch's key must be among what they found."""
        by_id = select(WatchRow.registry_key, WatchRow.study_id).where(
            self._like(WatchRow.study_id, pattern)
        )
        by_title = select(RecordRow.registry_key, RecordRow.study_id).where(
            self._like_title(pattern)
        )
        found = union_all(by_id, by_title)
        return tuple_(WatchRow.registry_key, WatchRow.study_id).in_(select(found.subquery()))

    def _like(self, column: Any, pattern: str) -> ColumnElement[bool]:
        if self.engine.dialect.name == "postgresql":
            return column.ilike(pattern, escape="\\")  # type: ignore[no-any-return]
        # SQLite's LIKE already ignores the case of ASCII letters (ilike's lower() would too,
        # no further, at twice the cost)
        return column.like(pattern, escape="\\")  # type: ignore[no-any-return]

    def _like_title(self, pattern: str) -> ColumnElement[bool]:
        """The title is ``LIKE pattern`` (an accent-folded one), its accents folded too: a
        search for "sjogren" finds "Sjögren" and one for "sjögren" finds "Sjogren"."""
        title = RecordRow.title
        # Most titles are ASCII (as many characters as bytes): the plain match answers for
        # them, and only the others pay for the fold.
        if self.engine.dialect.name == "postgresql":
            accented = func.octet_length(title) != func.char_length(title)
            decomposed = func.normalize(title, literal_column("NFD"))
            bare = func.regexp_replace(decomposed, _MARKS, "", "g")
            folded = func.translate(bare, *_UNDECOMPOSED)
            return or_(
                title.ilike(pattern, escape="\\"),
                and_(accented, folded.ilike(pattern, escape="\\")),
            )
        accented = func.length(title) != func.length(cast(title, LargeBinary))
        fold = getattr(func, _FOLD_FUNCTION)
        return or_(
            title.like(pattern, escape="\\"),
            and_(accented, fold(title).like(pattern, escape="\\")),
        )

    def _has_tag(self, tag: str) -> ColumnElement[bool]:
        # The column holds json.dumps of the list, so a watch with the tag holds json.dumps of
        # the tag in its text: the LIKE is a cheap necessary condition, the JSON function's
        # elements the exact one (a tag "a" must not match a tag "a b" nor '["a"]' in another).
        text = cast(WatchRow.tags, String)
        contains = text.like(f"%{_like_escaped(json.dumps(tag))}%", escape="\\")
        function = (
            func.json_array_elements_text
            if self.engine.dialect.name == "postgresql"
            else func.json_each
        )
        elements = function(WatchRow.tags).table_valued("value").alias("tag_element")
        return and_(contains, exists().select_from(elements).where(elements.c.value == tag))


def _joined(query: Select[Any], *, inner: bool, base: bool = True) -> Select[Any]:
    """``query`` over watches and their records: every watch (an outer join), or only the
    synced ones (inner: the planner may then start from the records' index). ``base`` False:
    the query already starts from the watches."""
    on = _same_study()
    if not base:
        return query.join(RecordRow, on) if inner else query.outerjoin(RecordRow, on)
    if inner:
        return query.select_from(RecordRow).join(WatchRow, on)
    return query.select_from(WatchRow).outerjoin(RecordRow, on)


def _same_study() -> ColumnElement[bool]:
    return (RecordRow.registry_key == WatchRow.registry_key) & (
        RecordRow.study_id == WatchRow.study_id
    )


def _open_finding_records(rule: str) -> Select[Any]:
    """The ids of the records with an open finding of ``rule`` (or any), each once. Gathered
    once (IN, a join), never a correlated EXISTS: that had SQLite read every open finding
    again for each record (it picks the state index)."""
    found = select(FindingRow.record_id).where(FindingRow.state == "open")
    if rule != ANY_FINDING:
        found = found.where(FindingRow.rule == rule)
    return found.distinct()


def _first_part(parts: Sequence[_Part], after: WatchKey | None) -> int:
    """The part a page starts in: the key's (a key without a value is in the last part)."""
    if after is None or after.value is not None or len(parts) == 1:
        return 0
    return len(parts) - 1


def _after(part: _Part, key: WatchKey) -> ColumnElement[bool]:
    """Rows after ``key`` in the part's order: a row-value comparison, which both SQLite and
    PostgreSQL answer from the index the order walks."""
    keyed = part.key_attribute is not None
    values = (key.value, key.study_id, key.registry) if keyed else (key.registry, key.study_id)
    typed = [literal(v, c.type) for c, v in zip(part.columns, values, strict=True)]
    row = tuple_(*part.columns)
    return row < tuple_(*typed) if part.descending else row > tuple_(*typed)


def _key(part: _Part, watch: WatchRow, record: RecordRow | None) -> WatchKey:
    if part.key_attribute is None or record is None:
        return WatchKey(None, watch.registry_key, watch.study_id)
    return WatchKey(getattr(record, part.key_attribute), watch.registry_key, watch.study_id)


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# Letters with no decomposition into a base letter and a mark, folded one for one as well
_UNDECOMPOSED = ("øØłŁđĐħĦı", "oOlLdDhHi")
_MARKS = "[\u0300-\u036f]"  # the combining diacritical marks an NFD decomposition gives
_STRIP_MARKS = re.compile(_MARKS)
_SPECIAL = str.maketrans(*_UNDECOMPOSED)
_FOLD_FUNCTION = "tw_fold_accents"


def fold_accents(text: str | None) -> str | None:
    """``text`` without its accents ("Sjögren": "Sjogren", "Łódź": "Lodz"): decomposed (NFD),
    its combining marks dropped, the few letters that do not decompose folded one for one.
    PostgreSQL folds titles the same way in SQL (``_like_title``)."""
    if text is None or text.isascii():
        return text
    return _STRIP_MARKS.sub("", unicodedata.normalize("NFD", text)).translate(_SPECIAL)
