"""What trialwatch knows of ClinicalTrials.gov beyond its API client: where things live in a
v2 record (the dotted paths that change events name, as the contract says), its public pages,
and its default addresses. Constants and small pure functions only, so that the pure diff,
the settings and the renderers can use them without the client's imports.

Only ``service/registry/ctgov*.py`` may know ClinicalTrials.gov's URLs and field paths
(``tests/test_architecture.py``): a second registry is a second set of these modules.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from service.registry.source import RegistryInfo

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


# Where each tracked Snapshot field lives in a v2 record: the dotted paths change events name.
FIELD_PATHS: dict[str, str] = {
    "org_study_id": ID + "orgStudyIdInfo.id",
    "secondary_ids": ID + "secondaryIdInfos",
    "brief_title": ID + "briefTitle",
    "official_title": ID + "officialTitle",
    "acronym": ID + "acronym",
    "overall_status": STATUS + "overallStatus",
    "last_known_status": STATUS + "lastKnownStatus",
    "why_stopped": STATUS + "whyStopped",
    "start_date": STATUS + "startDateStruct",
    "primary_completion_date": STATUS + "primaryCompletionDateStruct",
    "completion_date": STATUS + "completionDateStruct",
    "results_first_posted": STATUS + "resultsFirstPostDateStruct.date",
    "lead_sponsor": SPONSOR + "leadSponsor.name",
    "collaborators": SPONSOR + "collaborators",
    "brief_summary": DESCRIPTION + "briefSummary",
    "detailed_description": DESCRIPTION + "detailedDescription",
    "conditions": COND + "conditions",
    "keywords": COND + "keywords",
    "study_type": DESIGN + "studyType",
    "phases": DESIGN + "phases",
    "allocation": DESIGN + "designInfo.allocation",
    "intervention_model": DESIGN + "designInfo.interventionModel",
    "primary_purpose": DESIGN + "designInfo.primaryPurpose",
    "masking": DESIGN + "designInfo.maskingInfo.masking",
    "enrollment_count": DESIGN + "enrollmentInfo.count",
    "enrollment_type": DESIGN + "enrollmentInfo.type",
    "arms": ARMS + "armGroups",
    "interventions": ARMS + "interventions",
    "eligibility": ELIGIBILITY,
    "locations": LOCATIONS,
    "has_results": HAS_RESULTS,
}
OUTCOME_PATHS = {
    "primary": OUTCOMES + "primaryOutcomes",
    "secondary": OUTCOMES + "secondaryOutcomes",
    "other": OUTCOMES + "otherOutcomes",
}

# overallStatus → the lifecycle shared by every registry (expanded access statuses: unknown)
LIFECYCLES = {
    "NOT_YET_RECRUITING": "not_yet_recruiting",
    "RECRUITING": "recruiting",
    "ENROLLING_BY_INVITATION": "recruiting",
    "ACTIVE_NOT_RECRUITING": "active_not_recruiting",
    "COMPLETED": "completed",
    "TERMINATED": "terminated",
    "SUSPENDED": "suspended",
    "WITHDRAWN": "withdrawn",
}
_NCT = re.compile(r"NCT\d{8}", re.ASCII)


def lifecycle(status: str) -> str:
    return LIFECYCLES.get(status, "unknown")


def parse_id(text: str) -> str | None:
    """``nct05605665`` → ``NCT05605665``; None when it is not an NCT number."""
    candidate = text.strip()
    if not candidate.isascii():  # str.upper() maps some non-ASCII letters to ASCII ones
        return None
    candidate = candidate.upper()
    return candidate if _NCT.fullmatch(candidate) else None


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


INFO = RegistryInfo(
    key="ctgov",
    name="ClinicalTrials.gov",
    id_forms="NCT followed by 8 digits, e.g. NCT05605665",
    parse_id=parse_id,
    study_url=study_url,
    lifecycle=lifecycle,
    paths=FIELD_PATHS,
    outcome_paths=OUTCOME_PATHS,  # type: ignore[arg-type]
    id_path=STUDY_ID_FIELD,
    compare_url=compare_url,
)
