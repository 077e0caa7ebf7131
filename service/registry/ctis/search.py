"""Searching CTIS for seed linking.

CTIS's search (``POST /search``, ``CtisClient.search``) takes structured criteria: the drug
goes in ``containAll`` (anywhere in the trial), the condition in ``medicalCondition`` and the
sponsor in ``sponsor``, so each word is matched where it belongs. A search row carries the
number, titles, sponsor, conditions, phase, the public status code and the EU start: a
*partial* hit (``Hit.whole`` False). The few hits worth weighing in full are fetched
(``CtisSearch.fetch``: ``/retrieve``), normalised by the catalog's normaliser and given what
ranking needs beyond the snapshot:

- the products (active substance first, product names beside it) as interventions: the
  normaliser does not track them, and a paper names the substance;
- the trial sites (organisation, city, country) as locations: "same centre" is read there;
- the registration date: the first submission of the trial's application.

The record's shape changed with the portal's relaunch (``authorizedApplication`` now,
``applications`` and ``authorizedPartI`` at the top before): products and sites are looked for
by their own keys wherever they are, so both shapes read alike.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from service.models import Intervention, Location, Snapshot, StudyDate
from service.registry.catalog import normalise
from service.registry.ctis.client import CtisClient, build_client
from service.registry.ctis.fields import parse_id, status_label
from service.settings import CtisSettings

__all__ = ["CtisSearch", "Hit", "build_search", "hit_of_record", "hit_of_row"]

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_NO_NAME = frozenset({"", "-", "n/a", "na", "not applicable", "none"})
_PLACEBO = re.compile(r"(?i)\bplacebo\b")


@dataclass(frozen=True)
class Hit:
    """One trial a search found: a snapshot for ranking, the organisations it names beyond
    its sponsors, its registration date (``yyyy-mm-dd``, "" when unknown) and whether it was
    read from the full record (``whole``) or from a search row only."""

    snapshot: Snapshot
    organisations: tuple[str, ...] = ()
    registered: str = ""
    whole: bool = False


class CtisSearch:
    """CTIS's search and records, as seed linking asks for them."""

    registry = "ctis"
    name = "CTIS"

    def __init__(self, client: CtisClient) -> None:
        self._client = client

    @property
    def requests(self) -> int:
        return self._client.requests

    def search(
        self, *, condition: str = "", drug: str = "", sponsor: str = "", limit: int = 20
    ) -> list[Hit]:
        """Trials matching every criterion given, newest first, as partial hits."""
        criteria = {
            key: value.strip()
            for key, value in (("containAll", drug), ("medicalCondition", condition))
            if value.strip()
        }
        if sponsor.strip():
            criteria["sponsor"] = sponsor.strip()
        if not criteria:
            return []
        rows = self._client.search(criteria, limit=limit)
        return [hit for row in rows if (hit := hit_of_row(row)) is not None]

    def fetch(self, study_id: str) -> Hit:
        """The trial's ``/retrieve`` record, as a whole hit."""
        return hit_of_record(self._client.fetch(study_id))


def build_search(
    settings: CtisSettings,
    *,
    observe: Callable[[str], None] = lambda _answer: None,
    stop: threading.Event | None = None,
    http: httpx.Client | None = None,
) -> CtisSearch:
    """CTIS's search over its own polite client (``http``: the caller's, for tests)."""
    return CtisSearch(build_client(settings, observe=observe, stop=stop, http=http))


# --- a search row ---------------------------------------------------------------------------------


def hit_of_row(row: dict[str, Any]) -> Hit | None:
    """A search row as a partial hit (None for a row without a readable EU CT number)."""
    number = parse_id(str(row.get("ctNumber") or ""))
    if number is None:
        return None
    sponsors = _split(row.get("sponsor"))
    status = row.get("ctStatus")
    snapshot = Snapshot(
        registry="ctis",
        study_id=number,
        official_title=_str(row.get("ctTitle")),
        acronym=_str(row.get("shortTitle")),
        overall_status=status_label(status) if isinstance(status, int) else "",
        phases=(_str(row.get("trialPhase")),) if _str(row.get("trialPhase")) else (),
        start_date=StudyDate(date=_iso(row.get("startDateEU"))),
        conditions=tuple(_split(row.get("conditions"))),
        lead_sponsor=sponsors[0] if sponsors else "",
        collaborators=tuple(sorted(set(sponsors[1:]))),
        enrollment_actual=_count(row.get("totalNumberEnrolled")),
    )
    # the row's first decision is the closest it gives to a registration date
    return Hit(snapshot, registered=_iso(row.get("decisionDateOverall")), whole=False)


# --- a full record --------------------------------------------------------------------------------


def hit_of_record(raw: dict[str, Any]) -> Hit:
    """A ``/retrieve`` record as a whole hit (``RecordInvalid`` when it is not one)."""
    snapshot = normalise("ctis", raw)
    extra: dict[str, Any] = {"interventions": _products(raw), "locations": _sites(raw)}
    submitted = [d for v in _values_of(raw, "submissionDate") if (d := _iso(v))]
    return Hit(
        snapshot.model_copy(update={k: v for k, v in extra.items() if v}),
        registered=min(submitted, default=""),
        whole=True,
    )


def _products(raw: dict[str, Any]) -> tuple[Intervention, ...]:
    """Each product once, named by its active substance ("BACLOFEN" → "Baclofen"), its
    product names beside it; a placebo as a placebo."""
    found: dict[str, Intervention] = {}
    for product in _dicts_under(raw, "productDictionaryInfo"):
        substance = _name(product.get("activeSubstanceName"))
        product_name = _name(product.get("prodName"))
        if _PLACEBO.search(product_name) and not substance:
            found.setdefault("placebo", Intervention(type="PLACEBO", name="Placebo"))
            continue
        name = substance.capitalize() if substance.isupper() else substance
        name = name or product_name
        if not name:
            continue
        others = (product_name,) if product_name and product_name != name else ()
        kind = "PLACEBO" if _PLACEBO.search(product_name) else "DRUG"
        key = f"{kind}:{name.casefold()}"
        if key in found:
            merged = tuple(sorted({*found[key].other_names, *others}))
            found[key] = found[key].model_copy(update={"other_names": merged})
        else:
            found[key] = Intervention(type=kind, name=name, other_names=others)
    return tuple(found.values())


def _sites(raw: dict[str, Any]) -> tuple[Location, ...]:
    sites: dict[tuple[str, str, str], Location] = {}
    for site in _dicts_in_lists(raw, "trialSites"):
        info = site.get("organisationAddressInfo")
        info = info if isinstance(info, dict) else {}
        organisation = (
            info.get("organisation") if isinstance(info.get("organisation"), dict) else {}
        )
        address = info.get("address") if isinstance(info.get("address"), dict) else {}
        location = Location(
            facility=_str(organisation.get("name")),
            city=_str(address.get("city")),
            country=_str(address.get("countryName")),
        )
        if location.facility or location.city:
            sites.setdefault((location.facility, location.city, location.country), location)
    return tuple(sorted(sites.values(), key=lambda s: (s.country, s.city, s.facility)))


def _dicts_under(node: Any, key: str) -> Iterator[dict[str, Any]]:
    """Every object found as the value of ``key``, anywhere in ``node``."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and isinstance(value, dict):
                yield value
            yield from _dicts_under(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _dicts_under(item, key)


def _dicts_in_lists(node: Any, key: str) -> Iterator[dict[str, Any]]:
    """Every object of every list found as the value of ``key``, anywhere in ``node``."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and isinstance(value, list):
                yield from (item for item in value if isinstance(item, dict))
            yield from _dicts_in_lists(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _dicts_in_lists(item, key)


def _values_of(node: Any, key: str) -> Iterator[Any]:
    """Every scalar value of ``key``, anywhere in ``node`` (the validation requests for
    information have submission dates of their own, after the application's: the earliest
    is the application's)."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and not isinstance(value, dict | list):
                yield value
            yield from _values_of(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _values_of(item, key)


def _iso(value: Any) -> str:
    """A CTIS day (``dd/mm/yyyy`` in search rows, ISO in records, maybe with a time) as
    ``yyyy-mm-dd``; "" when it is none."""
    text = _str(value)
    if _ISO_DAY.match(text):
        return text[:10]
    try:
        return datetime.strptime(text[:10], "%d/%m/%Y").date().isoformat()
    except ValueError:
        return ""


def _count(value: Any) -> int | None:
    text = _str(value)
    return int(text) if text.isdigit() and text.isascii() and len(text) < 10 else None


def _split(value: Any) -> list[str]:
    """A row's comma-joined list ("Sponsor A, Sponsor A, Sponsor B"), each once, in order."""
    return list(_unique(part.strip() for part in _str(value).split(",")))


def _name(value: Any) -> str:
    text = _str(value)
    return "" if text.casefold() in _NO_NAME else text


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))
