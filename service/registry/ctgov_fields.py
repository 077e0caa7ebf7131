"""What trialwatch knows of ClinicalTrials.gov beyond its API client: where things live in a
v2 record (the dotted paths that change events name, as the contract says), its public pages,
and its default addresses. Constants and small pure functions only, so that the pure diff,
the settings and the renderers can use them without the client's imports.

Only ``service/registry/ctgov*.py`` may know ClinicalTrials.gov's URLs and field paths
(``tests/test_architecture.py``): a second registry is a second set of these modules.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

API_URL = "https://clinicaltrials.gov/api/v2"
HISTORY_URL = "https://clinicaltrials.gov/api/int"
PAGE_URL = "https://clinicaltrials.gov/study/"

PROTOCOL = "protocolSection"
ID = f"{PROTOCOL}.identificationModule."
STATUS = f"{PROTOCOL}.statusModule."
SPONSOR = f"{PROTOCOL}.sponsorCollaboratorsModule."
COND = f"{PROTOCOL}.conditionsModule."
DESIGN = f"{PROTOCOL}.designModule."
ARMS = f"{PROTOCOL}.armsInterventionsModule."
DESCRIPTION = f"{PROTOCOL}.descriptionModule."
ELIGIBILITY = f"{PROTOCOL}.eligibilityModule"
LOCATIONS = f"{PROTOCOL}.contactsLocationsModule.locations"
OUTCOMES = f"{PROTOCOL}.outcomesModule."
HAS_RESULTS = "hasResults"
STUDY_ID_FIELD = ID + "nctId"


def study_url(study_id: str) -> str:
    """The public page of a study."""
    return PAGE_URL + quote(study_id, safe="")


def compare_url(study_id: str, from_version: int, to_version: int) -> str:
    """The public side-by-side view of two versions of a study."""
    return f"{study_url(study_id)}?tab=history&a={int(from_version)}&b={int(to_version)}"


def search_hit_texts(study: dict[str, Any]) -> tuple[list[str], str]:
    """What seed linking weighs in a search hit beyond its normalised fields: the
    organisations named (organisation, investigator's and officials' affiliations) and the
    summary and description text."""
    protocol = study.get(PROTOCOL) or {}
    names = [
        _dig(protocol, "identificationModule", "organization", "fullName"),
        _dig(protocol, "sponsorCollaboratorsModule", "responsibleParty", "investigatorAffiliation"),
    ]
    officials = _dig(protocol, "contactsLocationsModule", "overallOfficials")
    if isinstance(officials, list):
        names += [o.get("affiliation") for o in officials if isinstance(o, dict)]
    organisations = [n for n in dict.fromkeys(names) if isinstance(n, str) and n]
    text = " ".join(
        str(_dig(protocol, "descriptionModule", key) or "")
        for key in ("briefSummary", "detailedDescription")
    )
    return organisations, text


def _dig(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
