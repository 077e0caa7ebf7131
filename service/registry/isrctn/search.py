"""Searching ISRCTN for seed linking.

ISRCTN's query API (``GET {api_url}/query/format/default?q=…&limit=N``) answers a search with
the records themselves, so every hit is *whole*: no second request is needed to weigh it.
The terms are joined with ``AND`` (the query is Lucene-like: plain words may be OR-ed) and a
term of several words is quoted as a phrase.

Each record is normalised by the catalog's normaliser (its status computed for today, as a
fetch does) and given what ranking needs beyond the snapshot:

- its interventions (the drug names of each ``interventions/intervention``, else its type),
  and a placebo where the interventions or the design say one is given;
- allocation and masking as the design's words say them ("randomised", "double-blind");
- its trial centres (name, city, country) as locations: "same centre" is read there;
- its sponsors' and funders' organisations;
- its registration date: ``isrctn@dateAssigned``, the day the number was assigned.

The search asks through a ``PoliteHttp`` of its own (pace, retries, deadline, size cap), on
the same settings as the record client.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from lxml.etree import _Element as Element

from service.errors import RecordInvalid, RecordNotFound
from service.models import Intervention, Location, Snapshot
from service.registry.catalog import normalise
from service.registry.isrctn.client import QUERY_PATH
from service.registry.isrctn.fields import INFO, parse_id
from service.registry.isrctn.xml import TrialXml, parse_full_trial, parse_query_answer
from service.registry.polite import PoliteHttp, build_polite_client
from service.settings import IsrctnSettings

__all__ = ["Hit", "IsrctnSearch", "build_search", "hit_of_trial", "query_of"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_NOT_GIVEN = frozenset({"", "-", "n/a", "na", "nil known", "none", "not applicable"})
_PLACEBO = re.compile(r"(?i)\bplacebo\b")
_RANDOMISED = re.compile(r"(?i)\brandomi[sz]ed\b")
_BLIND = re.compile(r"(?i)\b(single|double|triple|quadruple)[- ]blind")
_OPEN = re.compile(r"(?i)\bopen(?:[- ]label)?\b")


@dataclass(frozen=True)
class Hit:
    """One trial a search found: a snapshot for ranking, the organisations it names beyond
    its sponsors, its registration date (``yyyy-mm-dd``, "" when unknown) and ``whole``
    (always: the query answers with full records)."""

    snapshot: Snapshot
    organisations: tuple[str, ...] = ()
    registered: str = ""
    whole: bool = True


class IsrctnSearch:
    """ISRCTN's query API, as seed linking asks it."""

    registry = INFO.key
    name = "ISRCTN"

    def __init__(
        self, http: PoliteHttp, api_url: str, *, clock: Clock = lambda: datetime.now(UTC)
    ) -> None:
        self._http = http
        self._url = api_url.rstrip("/") + QUERY_PATH
        self._clock = clock

    @property
    def requests(self) -> int:
        return self._http.requests

    def search(
        self, *, condition: str = "", drug: str = "", sponsor: str = "", limit: int = 20
    ) -> list[Hit]:
        """Records holding every term given, each read whole (one that is not a usable record
        is left out, and logged: the others still count)."""
        q = query_of([drug, condition, sponsor])
        hits: list[Hit] = []
        for trial in self._ask(q, limit) if q else ():
            try:
                hits.append(hit_of_trial(trial, self._today()))
            except RecordInvalid as exc:
                log.warning("ISRCTN search: %s left out (%s)", trial.isrctn or "a record", exc)
        return hits

    def fetch(self, study_id: str) -> Hit:
        """One record by its id (the registry finds a record by its 8 digits)."""
        canonical = parse_id(study_id)
        trials = self._ask(canonical.removeprefix("ISRCTN"), 1) if canonical else []
        if not trials or trials[0].isrctn != canonical:
            raise RecordNotFound(f"not found in ISRCTN: {study_id}")
        return hit_of_trial(trials[0], self._today())

    def _ask(self, q: str, limit: int) -> tuple[TrialXml, ...]:
        params = {"q": q, "limit": str(max(1, limit))}
        answer = self._http.request("GET", self._url, expect="xml", params=params)
        return parse_query_answer(answer.body, f"ISRCTN search ({self._url})").trials

    def _today(self) -> str:
        return self._clock().astimezone(UTC).date().isoformat()


def build_search(
    settings: IsrctnSettings,
    *,
    observe: Callable[[str], None] = lambda _answer: None,
    stop: threading.Event | None = None,
    http: httpx.Client | None = None,
) -> IsrctnSearch:
    """ISRCTN's search over a polite client of its own (``http``: the caller's, for tests)."""
    polite = PoliteHttp(
        http or build_polite_client(settings, accept="application/xml"),
        settings,
        name="ISRCTN",
        observe=observe,
        stop=stop,
    )
    return IsrctnSearch(polite, settings.api_url)


def query_of(terms: Iterable[str]) -> str:
    """The terms as one query: each required, a term of several words as a phrase."""
    cleaned = [" ".join(t.replace('"', " ").split()) for t in terms]
    return " AND ".join(f'"{t}"' if " " in t else t for t in cleaned if t)


# --- a record ---------------------------------------------------------------------------------


def hit_of_trial(trial: TrialXml, today: str) -> Hit:
    """A record of the query's answer as a whole hit (``RecordInvalid`` when it is none)."""
    snapshot = normalise(INFO.key, {"isrctn": trial.isrctn, "xml": trial.xml, "as_of": today})
    full = parse_full_trial(trial.xml, "xml")
    design = " ".join(
        [
            _text(full, "trial/trialDesign/studyDesign"),
            _text(full, "trial/trialDesign/secondaryStudyDesign"),
        ]
    )
    extra: dict[str, Any] = {
        "interventions": _interventions(full, design),
        "locations": _centres(full),
        "allocation": "RANDOMIZED" if _RANDOMISED.search(design) else "",
        "masking": _masking(design),
    }
    return Hit(
        snapshot.model_copy(update={k: v for k, v in extra.items() if v}),
        organisations=_organisations(full),
        registered=_assigned(full),
    )


def _assigned(full: Element) -> str:
    """The day the ISRCTN number was assigned: the record's registration date."""
    number = full.find("trial/isrctn")
    return (number.get("dateAssigned") or "").strip()[:10] if number is not None else ""


def _interventions(full: Element, design: str) -> tuple[Intervention, ...]:
    found: list[Intervention] = []
    placebo = bool(_PLACEBO.search(design))
    for item in full.iterfind("trial/interventions/intervention"):
        kind = _text(item, "interventionType")
        names = [n.strip() for n in _text(item, "drugNames").replace(";", ",").split(",")]
        names = [n for n in names if n.casefold() not in _NOT_GIVEN]
        if names:
            found.append(Intervention(type=kind, name=names[0], other_names=tuple(names[1:])))
        elif kind:
            found.append(Intervention(type=kind, name=kind))
        placebo = placebo or bool(_PLACEBO.search(_text(item, "description")))
    if placebo:
        found.append(Intervention(type="Placebo", name="Placebo"))
    return tuple(found)


def _masking(design: str) -> str:
    """Masking as the design's words give it ("double-blind"; "open" is none)."""
    blind = _BLIND.search(design)
    if blind:
        return blind.group(1).upper()
    return "NONE" if _OPEN.search(design) else ""


def _centres(full: Element) -> tuple[Location, ...]:
    centres = [
        Location(
            facility=_text(centre, "name"),
            city=_text(centre, "city"),
            country=_text(centre, "country"),
        )
        for centre in full.iterfind("trial/participants/trialCentres/trialCentre")
    ]
    return tuple(c for c in dict.fromkeys(centres) if c.facility or c.city)


def _organisations(full: Element) -> tuple[str, ...]:
    names = [_text(block, "organisation") for block in full.iterfind("sponsor")]
    names += [_text(block, "name") for block in full.iterfind("funder")]
    return tuple(dict.fromkeys(n for n in names if n.casefold() not in _NOT_GIVEN))


def _text(parent: Element, path: str) -> str:
    return " ".join((parent.findtext(path) or "").split())
