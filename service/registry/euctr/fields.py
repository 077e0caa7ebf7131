"""What trialwatch knows of the EU Clinical Trials Register beyond its client: how EudraCT
numbers are written, where each tracked value lives in a record (ctrdata's snake_case keys of
the register's labels, the names its users know: ``F.4.2.2 In the whole clinical trial`` →
``f422_in_the_whole_clinical_trial``), how its status words map to the shared lifecycle, and
its public pages. Constants and small pure functions only.

A trial is registered country by country: its status is each country's (``countries.FR.
end_of_trial_status``), so the trial-level status text is derived from them and is not a
field of its own (``overall_status`` has no path: its changes are reported per country).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

from service.registry.source import RegistryInfo

URL = "https://www.clinicaltrialsregister.eu"
SEARCH_PAGE = URL + "/ctr-search/search?query="

# The register's country codes (ctrdata's countriesEUCTR) and their names in English. 3RD is
# a record of the trial's sites outside the EU/EEA; GB records stopped on 1 January 2021.
COUNTRIES: dict[str, str] = {
    "AT": "Austria", "BE": "Belgium", "BG": "Bulgaria", "HR": "Croatia", "CY": "Cyprus",
    "CZ": "Czechia", "DK": "Denmark", "EE": "Estonia", "FI": "Finland", "FR": "France",
    "DE": "Germany", "GR": "Greece", "HU": "Hungary", "IE": "Ireland", "IT": "Italy",
    "LV": "Latvia", "LT": "Lithuania", "LU": "Luxembourg", "MT": "Malta", "NL": "Netherlands",
    "PL": "Poland", "PT": "Portugal", "RO": "Romania", "SK": "Slovakia", "SE": "Sweden",
    "SI": "Slovenia", "ES": "Spain", "GB": "United Kingdom", "IS": "Iceland",
    "LI": "Liechtenstein", "NO": "Norway", "3RD": "Outside the EU/EEA",
}  # fmt: skip
# ctrdata's preference when one country record speaks for the trial (countriesPreferred)
PREFERRED_COUNTRIES: tuple[str, ...] = ("BE", "ES", "DE", "FR", "IT", "NL", "DK", "AT", "PL", "PT")
# only when nothing else is there: outside the EU/EEA, then the frozen GB records
LAST_RESORT_COUNTRIES: tuple[str, ...] = ("3RD", "GB")

# the middle block of a EudraCT number starts with 0 (an EU CT number's, with 5)
_ID = re.compile(r"(?:EUCTR)?(\d{4}-0\d{5}-\d{2})(?:-(" + "|".join(COUNTRIES) + r"))?", re.ASCII)

PATHS: dict[str, str] = {
    "org_study_id": "a41_sponsors_protocol_code_number",
    "secondary_ids": "a5_identifiers",  # A.5.1 ISRCTN … A.5.4 other identifiers together
    "official_title": "a3_full_title_of_the_trial",
    "brief_title": (
        "a31_title_of_the_trial_for_lay_people_in_easily_understood_ie_nontechnical_language"
    ),
    "acronym": "a32_name_or_abbreviated_title_of_the_trial_where_available",
    "lead_sponsor": "b1_sponsor.b11_name_of_sponsor",
    "collaborators": "b1_sponsor",
    "conditions": "e11_medical_conditions_being_investigated",
    "phases": "e7_trial_type_and_phase",
    "enrollment_count": "f422_in_the_whole_clinical_trial",
    "start_date": "n_date_of_competent_authority_decision",
    "completion_date": "p_date_of_the_global_end_of_the_trial",
    # the search summary's line, asked for a trial ended everywhere (the download has none)
    "has_results": "trial_results",
}  # fmt: skip
OUTCOME_PATHS = {
    "primary": "e51_primary_end_points",
    "secondary": "e52_secondary_end_points",
}
COUNTRY_KEYS = {"status": "end_of_trial_status", "enrollment": "f41_in_the_member_state"}
LABELS = {
    "overall_status": "Trial status",
    "enrollment_count": "Planned enrollment",
    "primary_outcomes": "Primary end points",
    "secondary_outcomes": "Secondary end points",
    "org_study_id": "Sponsor's protocol code",
    "secondary_ids": "Other trial identifiers",
    "official_title": "Full title",
    "brief_title": "Title for lay people",
    "acronym": "Abbreviated title",
    "lead_sponsor": "Sponsor",
    "collaborators": "Other sponsors",
    "conditions": "Medical condition",
    "phases": "Trial phase",
    "start_date": "Competent authority decision",
    "completion_date": "Global end of the trial",
    "has_results": "Trial results",
}

# A country's status (P. End of Trial Status, else the summary's Trial Status) → lifecycle.
# ctrdata's f.statusRecruitment puts ongoing, restarted, temporarily halted and suspended in
# one "ongoing" class, trial now transitioned and not authorised in "other". The register does
# not say whether an ongoing trial still recruits: Ongoing and Restarted read as recruiting, the
# stopping words as trialwatch's own classes.
STATUS_LIFECYCLES: dict[str, str] = {
    "ongoing": "recruiting",
    "restarted": "recruiting",
    "temporarily halted": "suspended",
    "suspended by ca": "suspended",
    "completed": "completed",
    "prematurely ended": "terminated",
    "not authorised": "withdrawn",
    "prohibited by ca": "withdrawn",
    "trial now transitioned": "unknown",  # its life goes on in CTIS
    "gb - no longer in eu/eea": "unknown",
}
# The EU Trials Tracker counts a country record as ended when its P. End of Trial Status is
# one of these (ebmdatalab/euctr-tracker-code, get_trials_from_db.py: "Completed", "Prematurely
# Ended"); every other word, a blank one included, is a country not ended.
TRACKER_ENDED_STATUSES = frozenset({"completed", "prematurely ended"})
# A record that says nothing of the trial's state today: left out when others speak.
SILENT_STATUSES = frozenset({"", "no status", "gb - no longer in eu/eea"})
# The trial's lifecycle from its countries', the first that any country has. A trial ongoing
# somewhere is ongoing; halted somewhere and ended elsewhere, halted.
_PRECEDENCE = ("recruiting", "suspended", "unknown", "completed", "terminated", "withdrawn")
_PART = re.compile(r"(.+?) in ((?:[A-Z0-9]{2,3})(?:, [A-Z0-9]{2,3})*)")


def parse_id(text: str) -> str | None:
    """``2014-003140-12``, ``EUCTR2014-003140-12``, ``2014-003140-12-NL`` or ``…-3RD`` (any
    case) → ``2014-003140-12``; None for anything else (a CTIS number ``…-00`` included)."""
    candidate = text.strip()
    if not candidate.isascii():  # str.upper() maps some non-ASCII letters to ASCII ones
        return None
    match = _ID.fullmatch(candidate.upper())
    return match.group(1) if match else None


def study_url(study_id: str) -> str:
    """The register's search page for the trial (it links every country record)."""
    return SEARCH_PAGE + quote(study_id, safe="")


def country_name(code: str) -> str:
    return COUNTRIES.get(code, code)


def country_lifecycle(status: str) -> str:
    return STATUS_LIFECYCLES.get(" ".join(status.split()).casefold(), "unknown")


def tracker_ended(status: str) -> bool:
    """Whether a country's P. End of Trial Status is an end as the EU Trials Tracker counts it."""
    return " ".join(status.split()).casefold() in TRACKER_ENDED_STATUSES


def trial_lifecycle(statuses: Iterable[str]) -> str:
    """The lifecycle of a trial from its countries' statuses (see ``_PRECEDENCE``): ended when
    every country that speaks has ended, completed unless every one ended prematurely."""
    words = [" ".join(s.split()).casefold() for s in statuses]
    speaking = [w for w in words if w not in SILENT_STATUSES] or [w for w in words if w]
    found = {STATUS_LIFECYCLES.get(word, "unknown") for word in speaking}
    if {"completed", "terminated"} <= found:
        found.discard("terminated")  # ended early in one country, completed in another
    for lifecycle in _PRECEDENCE:
        if lifecycle in found:
            return lifecycle
    return "unknown"


def lifecycle(status: str) -> str:
    """A status text → lifecycle: one country's word (``Prematurely Ended``) or the trial's
    derived text (``Completed in FR; Ongoing in ES, PT``)."""
    parts = [_PART.fullmatch(part.strip()) for part in status.split(";")]
    if ";" in status or (parts and parts[0] is not None):
        return trial_lifecycle(match.group(1) for match in parts if match is not None)
    return trial_lifecycle([status])


def ctrdata_key(label: str) -> str:
    """ctrdata's key of a register label (its euctr2ndjson.js rule): ``F.4.2.2 In the whole
    clinical trial`` → ``f422_in_the_whole_clinical_trial``."""
    return re.sub(r"[^a-z0-9_]", "", label.lower().replace(" ", "_"))


INFO = RegistryInfo(
    key="euctr",
    name="EU Clinical Trials Register",
    id_forms=(
        "a EudraCT number (2014-003140-12), with an EUCTR prefix (EUCTR2014-003140-12) or a "
        "country (2014-003140-12-NL, 2014-003140-12-3RD: that trial)"
    ),
    parse_id=parse_id,
    study_url=study_url,
    lifecycle=lifecycle,
    paths=PATHS,
    outcome_paths=OUTCOME_PATHS,  # type: ignore[arg-type]
    labels=LABELS,
    countries_path="countries",
    country_keys=COUNTRY_KEYS,
    outcomes_as_text=True,  # E.5.1 and E.5.2 are one text each
)
