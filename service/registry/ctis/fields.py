"""What trialwatch knows of CTIS without its client: how an EU CT number is written, where each
tracked value lives in a ``/retrieve`` record (the paths change events name), the public status
codes and their lifecycles, the trial phase codes, and the portal's public pages.

Pure data and small functions (stdlib, ``models`` and ``source`` only), so that the diff, the
renderers and the CLI can use them.

Sources for the code tables: the public status codes are the portal's own
(``ctPublicStatusCode``; rfhb/ctrdata ``R/f_statusRecruitment.R``, confirmed against the
portal's JavaScript by brunoamaral/gregory-ai ``docs/ctis-public-api-schema.md``); the trial
phase codes are ctrdata's ``R/trialPhase`` value list.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from service.models import OutcomeType
from service.registry.source import RegistryInfo

URL = "https://euclinicaltrials.eu/ctis-public-api"
PAGE_URL = "https://euclinicaltrials.eu/ctis-public/view/"

# --- where things live in a /retrieve record (post-2024-06-17 format) -------------------------
APPLICATION = "authorizedApplication"
PART_I = f"{APPLICATION}.authorizedPartI"
PARTS_II = f"{APPLICATION}.authorizedPartsII"
MEMBER_STATES = f"{APPLICATION}.memberStatesConcerned"
TRIAL_DETAILS = f"{PART_I}.trialDetails"
IDENTIFIERS = f"{TRIAL_DETAILS}.clinicalTrialIdentifiers"
TRIAL_INFORMATION = f"{TRIAL_DETAILS}.trialInformation"
END_POINTS = f"{TRIAL_INFORMATION}.endPoint"

# The end of the trial (the results rule, Regulation (EU) No 536/2014 Art. 37(4)): per member
# state a trial event whose notification type names an end (END_OF_TRIAL, EARLY_TERMINATION;
# "End of trial" / "Global end of trial / Early Termination" before the relaunch), dated by
# one of EVENT_DATE_KEYS; the end in the EU; the global end (events.trialGlobalEndDate, or
# authorizedApplication.trialGlobalEnd once the trial ended globally).
EVENTS = "events"
TRIAL_EVENTS_PATH = "events.trialEvents"
END_NOTIFICATIONS = ("END_OF_TRIAL", "EARLY_TERMINATION")
EVENT_DATE_KEYS = ("date", "eventDate", "notificationDate")
GLOBAL_END_EVENT = "trialGlobalEndDate"
GLOBAL_END_PATH = f"{APPLICATION}.trialGlobalEnd"
END_DATE_EU_PATH = "endDateEU"
PIP_PATH = f"{TRIAL_DETAILS}.scientificAdviceAndPip.paediatricInvestigationPlan"
RESULTS_RECEIVED_PATH = "resultsFirstReceived"

STUDY_ID_PATH = "ctNumber"
STATUS_PATH = "ctPublicStatusCode"
LAST_UPDATED_PATH = "lastUpdated"

# Snapshot field → the record's own path. ``acronym`` is left out on purpose: CTIS has one
# "short title" field, which sponsors fill with their protocol code (MK-5592-127) or an
# acronym; it fills both ``org_study_id`` and ``acronym`` and is reported once, as the former.
FIELD_PATHS: dict[str, str] = {
    "org_study_id": f"{IDENTIFIERS}.shortTitle",
    "secondary_ids": f"{IDENTIFIERS}.secondaryIdentifyingNumbers",
    "brief_title": f"{IDENTIFIERS}.publicTitle",
    "official_title": f"{IDENTIFIERS}.fullTitle",
    "overall_status": STATUS_PATH,
    "start_date": "startDateEU",
    "completion_date": "endDateEU",
    "results_first_posted": "results.summaryResults.submissionDate",
    "lead_sponsor": f"{PART_I}.sponsors",
    "collaborators": f"{PART_I}.sponsors",
    "conditions": f"{PART_I}.medicalConditions",
    "phases": f"{TRIAL_INFORMATION}.trialCategory.trialPhase",
    "enrollment_count": f"{PARTS_II}[].recruitmentSubjectCount",
    "enrollment_actual": "totalNumberEnrolled",
    "has_results": "results.summaryResults",
}
OUTCOME_PATHS: dict[OutcomeType, str] = {
    "primary": f"{END_POINTS}.primaryEndPoints",
    "secondary": f"{END_POINTS}.secondaryEndPoints",
}
# A member state's values: authorizedApplication.memberStatesConcerned.BE.mscPublicStatusCode
# (its planned enrollment is its part II's recruitmentSubjectCount).
COUNTRY_KEYS = {"status": "mscPublicStatusCode", "enrollment": "recruitmentSubjectCount"}

LABELS = {
    "org_study_id": "Short title / protocol code",
    "secondary_ids": "Other identifiers",
    "brief_title": "Public title",
    "official_title": "Full title",
    "overall_status": "Trial status",
    "start_date": "Start of trial (EU)",
    "completion_date": "End of trial",
    "results_first_posted": "Summary results first submitted",
    "lead_sponsor": "Primary sponsor",
    "collaborators": "Co-sponsors",
    "conditions": "Medical conditions",
    "phases": "Trial phase",
    "enrollment_count": "Planned enrollment (EEA and rest of world)",
    "enrollment_actual": "Participants enrolled",
    "has_results": "Summary results",
}

# --- the public status (trial level and member-state level share the codes) -----------------
PUBLIC_STATUSES: dict[int, str] = {
    1: "Under evaluation",
    2: "Authorised, recruitment pending",
    3: "Authorised, recruiting",
    4: "Ongoing, recruiting",
    5: "Ongoing, recruitment ended",
    6: "Temporarily halted",
    7: "Suspended",
    8: "Ended",
    9: "Expired",
    10: "Revoked",
    11: "Not authorised",
    12: "Cancelled",
}
ENDED = 8
# Judgements: "Under evaluation" has not started, as "not yet recruiting"; "Ended" is completed
# unless the member states notified an early termination (the normaliser knows the events);
# an authorisation that expired unused, was refused or whose application was cancelled never
# ran: withdrawn; a revoked authorisation stops a trial that may have enrolled: terminated.
CODE_LIFECYCLES: dict[int, str] = {
    1: "not_yet_recruiting",
    2: "not_yet_recruiting",
    3: "recruiting",
    4: "recruiting",
    5: "active_not_recruiting",
    6: "suspended",
    7: "suspended",
    8: "completed",
    9: "withdrawn",
    10: "terminated",
    11: "withdrawn",
    12: "withdrawn",
}
# A member state's status saying the trial ended there: the public code 8 ("Ended", an early
# termination included) and the old portal's words for an end.
ENDED_STATUSES = frozenset(
    {PUBLIC_STATUSES[ENDED].casefold(), "prematurely ended", "terminated early"}
)
# Status words → lifecycle: the labels above, and the words of the portal before its relaunch
# on 2024-06-17 ("CTIS1" records carry ``ctStatus`` "Authorised, not started").
_WORD_LIFECYCLES: dict[str, str] = {
    **{PUBLIC_STATUSES[code].casefold(): life for code, life in CODE_LIFECYCLES.items()},
    "authorised, not started": "not_yet_recruiting",
    "ongoing, not yet recruiting": "not_yet_recruiting",
    "halted": "suspended",
    "prematurely ended": "terminated",
    "terminated early": "terminated",
}

# trialInformation.trialCategory.trialPhase
PHASES: dict[str, str] = {
    "1": "Human pharmacology (Phase I) - First administration to humans",
    "2": "Human pharmacology (Phase I) - Bioequivalence study",
    "3": "Human pharmacology (Phase I) - Other",
    "4": "Therapeutic exploratory (Phase II)",
    "5": "Therapeutic confirmatory (Phase III)",
    "6": "Therapeutic use (Phase IV)",
    "7": "Phase I and Phase II (Integrated) - First administration to humans",
    "8": "Phase I and Phase II (Integrated) - Bioequivalence study",
    "9": "Phase I and Phase II (Integrated) - Other",
    "10": "Phase II and Phase III (Integrated)",
    "11": "Phase III and phase IV (Integrated)",
}

# Member states concerned are named, not coded, in a post-relaunch record (``mscName``); the
# codes are ISO 3166 alpha-2, as CTIS writes them in ``decisionDate`` ("GR", not "EL").
MEMBER_STATE_CODES: dict[str, str] = {
    "austria": "AT",
    "belgium": "BE",
    "bulgaria": "BG",
    "croatia": "HR",
    "cyprus": "CY",
    "czechia": "CZ",
    "czech republic": "CZ",
    "denmark": "DK",
    "estonia": "EE",
    "finland": "FI",
    "france": "FR",
    "germany": "DE",
    "greece": "GR",
    "hungary": "HU",
    "iceland": "IS",
    "ireland": "IE",
    "italy": "IT",
    "latvia": "LV",
    "liechtenstein": "LI",
    "lithuania": "LT",
    "luxembourg": "LU",
    "malta": "MT",
    "netherlands": "NL",
    "norway": "NO",
    "poland": "PL",
    "portugal": "PT",
    "romania": "RO",
    "slovakia": "SK",
    "slovenia": "SI",
    "spain": "ES",
    "sweden": "SE",
}

# An EU CT number: year, a six-digit block starting with 5 (a EudraCT number has a 0 there),
# two check digits and the two-digit resubmission suffix.
_CT_NUMBER = re.compile(r"(?:CTIS)?(20\d{2}-5\d{5}-\d{2}-\d{2})", re.ASCII)


def parse_id(text: str) -> str | None:
    """``ctis2023-505613-24-00`` → ``2023-505613-24-00``; None for anything else (a EudraCT
    number, a CT number without its resubmission suffix)."""
    candidate = text.strip()
    if not candidate.isascii():  # str.upper() maps some non-ASCII letters to ASCII ones
        return None
    match = _CT_NUMBER.fullmatch(candidate.upper())
    return match.group(1) if match else None


def study_url(study_id: str) -> str:
    """The portal's public page of a trial."""
    return PAGE_URL + quote(study_id, safe="")


def status_label(code: int) -> str:
    """The portal's words for a public status code; a code it added since is named as such."""
    return PUBLIC_STATUSES.get(code, f"Public status {code}")


def lifecycle(status: str) -> str:
    """A trial's or member state's status words → the shared lifecycle. "Ended" alone says
    ``completed``: whether it ended early is in the record's events (the normaliser's
    ``lifecycle`` says ``terminated`` then)."""
    return _WORD_LIFECYCLES.get(status.strip().casefold(), "unknown")


def ended(status: str) -> bool:
    """Whether a member state's (or the trial's) status says the trial ended there."""
    return " ".join(status.split()).casefold() in ENDED_STATUSES


def is_phase1(phase: str) -> bool:
    """Whether a phase (``PHASES``' words, or a search row's) is phase I alone (codes 1–3)."""
    return phase.strip().casefold().startswith("human pharmacology (phase i)")


def member_state_code(name: str) -> str:
    """``Belgium`` → ``BE``; a name not in the table gives itself in capitals, so that a new
    member state still has a stable key."""
    key = " ".join(name.split()).casefold()
    return MEMBER_STATE_CODES.get(key, key.upper())


INFO = RegistryInfo(
    key="ctis",
    name="EU CTIS",
    id_forms="EU CT number 2023-505613-24-00 (CTIS prefix allowed)",
    parse_id=parse_id,
    study_url=study_url,
    lifecycle=lifecycle,
    paths=FIELD_PATHS,
    outcome_paths=OUTCOME_PATHS,
    labels=LABELS,
    countries_path=MEMBER_STATES,
    country_keys=COUNTRY_KEYS,
)
