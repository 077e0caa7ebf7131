"""Searching the EU Clinical Trials Register for seed linking.

The register's search is its summary download (``EuctrClient.search``: 20 trials a page). A
summary block carries the EudraCT number, the sponsor, the full title, a start date, the
condition and every country's status: enough to rank a hit roughly, so a block becomes a
*partial* hit (``Hit.whole`` False). The few hits worth weighing in full are fetched
(``EuctrSearch.fetch``: the full text download), normalised by the catalog's normaliser and
given what ranking needs beyond the snapshot, which the normaliser leaves out because the
diff does not track it:

- the products tested (section D: INN, product name, trade name, code) as interventions, and
  a placebo where D.8.1 says one is used, so that "every seed drug is registered" can hold;
- allocation and masking from E.8.1 (randomised; open, single or double blind);
- every sponsor and supporting organisation any country record names (B.1.1, B.4.1): country
  records spell one sponsor differently ("AB Science", "ABScience");
- the day the trial was first entered in EudraCT, its registration date (the earliest any
  country record gives).

The register has no sites: place evidence comes from its sponsors and countries.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from service.errors import RecordInvalid
from service.models import CountryRecord, Intervention, Snapshot, StudyDate
from service.registry.catalog import normalise
from service.registry.euctr.client import EuctrClient, build_client
from service.registry.euctr.fields import country_name
from service.registry.euctr.normalise import (
    FIRST_ENTERED_LABEL,
    TEXT_KEY,
    overall_status,
)
from service.registry.euctr.text import CountryText, NotADownload, SearchHit, parse_download
from service.settings import EuctrSettings

__all__ = ["PAGE", "EuctrSearch", "Hit", "build_search", "hit_of_block", "hit_of_record"]

PAGE = 20  # trials a summary page holds: the register's fixed page size

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_IMP_START = re.compile(r"^D\.IMP:", re.MULTILINE)
# the names one IMP goes by, best first: its INN is what papers write
_IMP_NAMES = (
    "D.3.8 INN - Proposed INN",
    "D.3.1 Product name",
    "D.2.1.1.1 Trade name",
    "D.3.2 Product code",
)
_NO_NAME = frozenset({"", "-", "n/a", "na", "not applicable", "none", "placebo"})
_PLACEBO = "D.8.1 Is a Placebo used in this Trial?"
_MASKING = (  # E.8.1.x label → masking, the strongest a record says yes to wins
    ("E.8.1.4 Double blind", "DOUBLE"),
    ("E.8.1.3 Single blind", "SINGLE"),
    ("E.8.1.2 Open", "NONE"),
)


@dataclass(frozen=True)
class Hit:
    """One trial a search found: a snapshot for ranking, the organisations it names beyond
    its sponsors, its registration date (``yyyy-mm-dd``, "" when unknown) and whether it was
    read from the full record (``whole``) or from a summary block only."""

    snapshot: Snapshot
    organisations: tuple[str, ...] = ()
    registered: str = ""
    whole: bool = False


class EuctrSearch:
    """The register's search and full downloads, as seed linking asks for them."""

    registry = "euctr"
    name = "EUCTR"

    def __init__(self, client: EuctrClient) -> None:
        self._client = client

    @property
    def requests(self) -> int:
        return self._client.requests

    def search(
        self, *, condition: str = "", drug: str = "", sponsor: str = "", limit: int = PAGE
    ) -> list[Hit]:
        """Trials whose text holds every word given (the register's search is on all words),
        as partial hits; one summary page a ``PAGE`` of ``limit``."""
        words = " ".join(w for w in (drug, condition, sponsor) if w.strip())
        if not words:
            return []
        hits: list[Hit] = []
        for page in range(1, max(1, -(-limit // PAGE)) + 1):
            found = self._client.search(words, page)
            hits.extend(hit_of_block(block) for block in found.hits)
            if len(found.hits) < PAGE:
                break
        return hits[:limit]

    def fetch(self, study_id: str) -> Hit:
        """The trial's full download, as a whole hit (``RecordNotFound`` when it is gone)."""
        return hit_of_record(self._client.fetch(study_id))


def build_search(
    settings: EuctrSettings,
    *,
    observe: Callable[[str], None] = lambda _answer: None,
    stop: threading.Event | None = None,
    http: httpx.Client | None = None,
) -> EuctrSearch:
    """The register's search over its own polite client (``http``: the caller's, for tests)."""
    return EuctrSearch(build_client(settings, observe=observe, stop=stop, http=http))


# --- a summary block ----------------------------------------------------------------------------


def hit_of_block(block: SearchHit) -> Hit:
    """A summary block as a partial hit: what it says, nothing guessed."""
    countries = tuple(
        CountryRecord(country=code, name=country_name(code), status=status)
        for code, status in sorted(block.statuses.items())
    )
    start = block.start_date.strip()
    snapshot = Snapshot(
        registry="euctr",
        study_id=block.eudract_number,
        org_study_id=block.sponsor_protocol,
        official_title=block.title,
        overall_status=overall_status(countries) if countries else "",
        start_date=StudyDate(date=start if _DATE.fullmatch(start) else ""),
        conditions=(block.conditions,) if block.conditions else (),
        lead_sponsor=block.sponsor,
        countries=countries,
    )
    # the block's "Start Date" is the first authorisation: the closest it gives to a
    # registration date (the full record's first entry in EudraCT replaces it)
    return Hit(snapshot, registered=snapshot.start_date.date, whole=False)


# --- a full download ------------------------------------------------------------------------------


def hit_of_record(raw: dict[str, Any]) -> Hit:
    """A fetched trial (``{"eudract_number", "text"}``) as a whole hit; ``RecordInvalid`` when
    it is not one."""
    snapshot = normalise("euctr", raw)
    try:
        records = parse_download(str(raw.get(TEXT_KEY, ""))).records
    except NotADownload as exc:  # normalise read it: only a changed reader gets here
        raise RecordInvalid(f"EUCTR download of {snapshot.study_id}: {exc}") from None
    mine = [r for r in records if r.eudract_number == snapshot.study_id]
    extra = {
        "interventions": _interventions(mine),
        "allocation": _allocation(mine),
        "masking": _masking(mine),
    }
    organisations = _unique(
        value
        for record in mine
        for label in ("B.1.1 Name of Sponsor", "B.4.1 Name of organisation providing support")
        for value in record.values(label)
    )
    return Hit(
        snapshot.model_copy(update={k: v for k, v in extra.items() if v}),
        organisations=organisations,
        registered=min((d for r in mine if (d := _day(r.value(FIRST_ENTERED_LABEL)))), default=""),
        whole=True,
    )


def _interventions(records: list[CountryText]) -> tuple[Intervention, ...]:
    """Each IMP once: country records repeat them, one giving an INN another leaves out, so
    an IMP sharing any name with one already taken is that one."""
    found: list[Intervention] = []
    seen: set[str] = set()
    for record in records:
        for names in _imp_names(record.text):
            folded = {n.casefold() for n in names}
            if not folded & seen:
                found.append(_drug(names))
            seen |= folded
        if record.value(_PLACEBO).strip().casefold() == "yes" and "placebo" not in seen:
            found.append(Intervention(type="PLACEBO", name="Placebo"))
            seen.add("placebo")
    return tuple(found)


def _drug(names: tuple[str, ...]) -> Intervention:
    return Intervention(type="DRUG", name=names[0], other_names=tuple(sorted(set(names[1:]))))


def _imp_names(text: str) -> list[tuple[str, ...]]:
    """The names of each IMP of one country record, in its order (one block per ``D.IMP``)."""
    starts = [m.start() for m in _IMP_START.finditer(text)]
    blocks = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
    named = [_unique(_label_values(block, label) for label in _IMP_NAMES) for block in blocks]
    return [names for names in named if names]


def _label_values(block: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}:[ \t]*(.+)$", block, re.MULTILINE)
    value = match.group(1).strip() if match else ""
    return "" if value.casefold() in _NO_NAME else value


def _allocation(records: list[CountryText]) -> str:
    said = {r.value("E.8.1.1 Randomised").strip().casefold() for r in records} - {""}
    if said == {"yes"}:
        return "RANDOMIZED"
    return "NON_RANDOMIZED" if said == {"no"} else ""


def _masking(records: list[CountryText]) -> str:
    for label, masking in _MASKING:
        if any(r.value(label).strip().casefold() == "yes" for r in records):
            return masking
    return ""


def _day(value: str) -> str:
    text = value.strip()
    return text if _DATE.fullmatch(text) else ""


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in values if v and v.strip()))
