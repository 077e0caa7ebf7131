"""The registrations a record names: the ids of other registry records found in the ids it
lists (ClinicalTrials.gov secondary ids, EUCTR A.5.x, CTIS ``eudraCt`` and secondary
identifying numbers, ISRCTN external references), canonical, each once.

One ordered table of id forms does the finding (``service.ids.FORMATS``: CTIS before EudraCT,
digit boundaries), so an EU CT number is never also read as the EudraCT number it starts
with. Placeholders that registries accept in place of an id (``NCT00000000``, "Nil known")
and the record's own id are left out.
"""

from __future__ import annotations

from collections.abc import Iterable

from service.ids import find_registry_ids
from service.models import LinkedId

# ids that registrants type when they have none (dl_who's list for NCT numbers)
PLACEHOLDER_IDS = frozenset(
    {"NCT00000000", "NCT12345678", "NCT11111111", "NCT99999999", "NCT87654321"}
)


def linked_ids(
    registry: str, study_id: str, named: Iterable[str], source: str
) -> tuple[LinkedId, ...]:
    """The registrations named in ``named`` (id strings as the record gives them), found in
    ``source`` (the record's path to them), without ``(registry, study_id)`` itself."""
    found: dict[tuple[str, str], LinkedId] = {}
    for text in named:
        for rid in find_registry_ids(text):
            if rid.study_id in PLACEHOLDER_IDS or (rid.registry, rid.study_id) == (
                registry,
                study_id,
            ):
                continue
            found.setdefault(
                (rid.registry, rid.study_id), LinkedId(rid.registry, rid.study_id, source)
            )
    return tuple(sorted(found.values(), key=lambda link: (link.registry, link.study_id)))
