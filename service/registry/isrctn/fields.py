"""What the service knows of ISRCTN without its client: ids, record paths, status words.

An ISRCTN record is one ``<fullTrial>`` of the query API (``<trial>`` with its ``<sponsor>``,
``<contact>`` and ``<funder>`` blocks beside it). Paths below are the XML element paths under
``<trial>`` written with dots (``participants.targetEnrolment``); a sponsor's is
``sponsor.organisation`` (the block beside ``<trial>`` that ``parties/sponsorId`` names).

ISRCTN keeps no status: the registry computes one from the recruitment dates and the
editors' overrides each time a page is shown (registries.md §2.3). trialwatch computes it the
same way for the day a record was fetched (``normalise``), so its path is a marker,
``participants.recruitmentStatus (computed)``, not an element of the record.

Pure: imports only the models and the registry seam.
"""

from __future__ import annotations

import re

from service.models import OutcomeType
from service.registry.source import RegistryInfo

URL = "https://www.isrctn.com/api"  # the query API's base ([isrctn] api_url)
SITE = "https://www.isrctn.com"  # the public pages

_ID = re.compile(r"ISRCTN(\d{8})", re.IGNORECASE | re.ASCII)

STATUS_PATH = "participants.recruitmentStatus (computed)"
PRIMARY_OUTCOME_PATH = "trialDescription.primaryOutcome"
SECONDARY_OUTCOME_PATH = "trialDescription.secondaryOutcome"

# The words the registry shows (computed: Not yet recruiting, Ongoing, Completed) and those its
# editors set as overrides (Stopped, Suspended …), case-folded → a lifecycle. "Ongoing" is
# computed from the recruitment dates, so it means recruiting; "Completed" that recruitment
# has ended (ISRCTN's own "completed": the end date has passed).
_LIFECYCLES: dict[str, str] = {
    "not yet recruiting": "not_yet_recruiting",
    "planned": "not_yet_recruiting",
    "anticipated": "not_yet_recruiting",
    "ongoing": "recruiting",
    "recruiting": "recruiting",
    "no longer recruiting": "active_not_recruiting",
    "completed": "completed",
    "stopped": "terminated",
    "terminated": "terminated",
    "suspended": "suspended",
    "withdrawn": "withdrawn",
}


def parse_id(text: str) -> str | None:
    """``ISRCTN`` + 8 digits, any case, surrounding spaces ignored → ``ISRCTN12345678``;
    anything else (a bare number, a space inside, another registry's id) → None."""
    match = _ID.fullmatch(text.strip())
    return f"ISRCTN{match.group(1)}" if match else None


def study_url(study_id: str) -> str:
    """The registry's public page of a record."""
    return f"{SITE}/{study_id}"


def lifecycle(status: str) -> str:
    """A status as ISRCTN shows it (computed or an editor's override) → a lifecycle; a word
    the registry has not been seen to use → ``unknown``."""
    return _LIFECYCLES.get(" ".join(status.split()).casefold(), "unknown")


_OUTCOME_PATHS: dict[OutcomeType, str] = {
    "primary": PRIMARY_OUTCOME_PATH,
    "secondary": SECONDARY_OUTCOME_PATH,
}

INFO = RegistryInfo(
    outcomes_as_text=True,  # primaryOutcome and secondaryOutcome are one text each
    key="isrctn",
    name="ISRCTN",
    id_forms="ISRCTN12345678 (ISRCTN + 8 digits)",
    parse_id=parse_id,
    study_url=study_url,
    lifecycle=lifecycle,
    paths={
        "org_study_id": "externalRefs.protocolSerialNumber",
        "secondary_ids": "externalRefs",
        "brief_title": "trialDescription.title",
        "official_title": "trialDescription.scientificTitle",
        "acronym": "trialDescription.acronym",
        "overall_status": STATUS_PATH,
        "why_stopped": "trialDesign.reasonAbandoned",
        "study_type": "trialDesign.primaryStudyDesign",
        "phases": "interventions.intervention.phase",
        "enrollment_count": "participants.targetEnrolment",
        "enrollment_actual": "participants.totalFinalEnrolment",
        # trialDesign.overallStartDate where a record has one (older records); the current
        # API gives the recruitment start alone, the registry's "trial start date"
        "start_date": "participants.recruitmentStart",
        "completion_date": "trialDesign.overallEndDate",
        "conditions": "conditions.condition.description",
        "lead_sponsor": "sponsor.organisation",
        "collaborators": "sponsor.organisation",
        "brief_summary": "trialDescription.plainEnglishSummary",
        "has_results": "results.publicationStage",
        "results_first_posted": "outputs.output.dateUploaded",
    },
    outcome_paths=_OUTCOME_PATHS,
    labels={
        "org_study_id": "Protocol/serial number",
        "secondary_ids": "Secondary identifying numbers",
        "brief_title": "Title",
        "official_title": "Scientific title",
        "overall_status": "Recruitment status (computed)",
        "why_stopped": "Reason abandoned",
        "study_type": "Primary study design",
        "enrollment_count": "Target enrolment",
        "enrollment_actual": "Final enrolment",
        "start_date": "Recruitment start date",
        "completion_date": "Overall study end date",
        "conditions": "Condition",
        "lead_sponsor": "Sponsor",
        "collaborators": "Other sponsors",
        "brief_summary": "Plain English summary",
        "results_first_posted": "Results first uploaded",
    },
)
