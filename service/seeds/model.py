"""The seed file model: one seed study (a paper, a case report or a registry page) per file.

Strict on purpose (``extra="forbid"`` everywhere): a misspelt key in a hand-written file must
be an error naming it, not a silently ignored fact. Registry enums (phases, allocation,
masking, model, status, enrollment type) use the ClinicalTrials.gov spelling so that a seed
compares with a registry record without translation. Identifiers are normalised on load
(``nct05605665`` → ``NCT05605665``) by ``service.ids``.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from service.errors import InputError
from service.ids import REGISTRY_KEYS, parse_registry_id

__all__ = [
    "CONFIDENT",
    "LINK_SOURCES",
    "Citation",
    "Design",
    "Enrollment",
    "RegistryLink",
    "ReportedOutcome",
    "Seed",
    "SeedArm",
    "SeedIntervention",
    "Sponsor",
]

# A link is followed (watched, compared) without a person's check from this confidence on.
# An identifier written in the document has 1.0; a search hit earns it only with strong,
# clearly leading evidence (see service.seeds.link).
CONFIDENT = 0.8

SeedId = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$", strip_whitespace=True)
]
Text = Annotated[str, StringConstraints(strip_whitespace=True)]
Phase = Literal["EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA"]
Kind = Literal["paper", "case_report", "registry_page"]
LinkSource = Literal["document", "search", "person"]
LINK_SOURCES: tuple[str, ...] = LinkSource.__args__  # type: ignore[attr-defined]
Status = Literal[
    "",
    "NOT_YET_RECRUITING",
    "RECRUITING",
    "ENROLLING_BY_INVITATION",
    "ACTIVE_NOT_RECRUITING",
    "SUSPENDED",
    "TERMINATED",
    "COMPLETED",
    "WITHDRAWN",
    "UNKNOWN",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Citation(Strict):
    """Where the document was published (empty for a registry page)."""

    journal: Text = ""
    year: int | None = Field(None, ge=1900, le=2100)
    volume: Text = ""
    pages: Text = ""
    doi: Text = ""
    pmid: Annotated[str, StringConstraints(pattern=r"^(\d{1,9})?$")] = ""
    first_author: Text = ""
    url: Text = ""


class SeedIntervention(Strict):
    name: Text = Field(min_length=1)
    other_names: tuple[Text, ...] = ()  # brand names, codes, synonyms
    dose: Text = ""  # as reported: "20 mg once daily", "1 million IU twice a week"
    route: Text = ""
    duration: Text = ""


class SeedArm(Strict):
    label: Text = Field(min_length=1)
    description: Text = ""
    interventions: tuple[Text, ...] = ()


class Design(Strict):
    phases: tuple[Phase, ...] = ()
    allocation: Literal["", "RANDOMIZED", "NON_RANDOMIZED", "NA"] = ""
    masking: Literal["", "NONE", "SINGLE", "DOUBLE", "TRIPLE", "QUADRUPLE"] = ""
    model: Literal["", "SINGLE_GROUP", "PARALLEL", "CROSSOVER", "FACTORIAL", "SEQUENTIAL"] = ""
    # None: the document does not say (a draft never claims "not a pilot" from silence)
    placebo: bool | None = None
    pilot: bool | None = None
    duration: Text = ""  # treatment or follow-up period, as reported
    words: tuple[Text, ...] = ()  # design words as the document uses them
    arms: tuple[SeedArm, ...] = ()


class Enrollment(Strict):
    count: int | None = Field(None, ge=0)
    # ACTUAL: people the document says took part; ESTIMATED: a target (registry pages).
    type: Literal["", "ACTUAL", "ESTIMATED"] = ""
    phrase: Text = ""  # the short phrase it was read from, e.g. "13 primary SS patients"


class ReportedOutcome(Strict):
    # "other": measured and reported, but the document does not call it primary or secondary
    type: Literal["primary", "secondary", "other"] = "primary"
    measure: Text = Field(min_length=1)
    time_frame: Text = ""
    description: Text = ""


class Sponsor(Strict):
    lead: Text = ""  # the registry's lead sponsor where the document names one
    funders: tuple[Text, ...] = ()
    affiliations: tuple[Text, ...] = ()
    cities: tuple[Text, ...] = ()
    countries: tuple[Text, ...] = ()


class RegistryLink(Strict):
    registry: str
    id: str
    confidence: float = Field(ge=0.0, le=1.0)
    source: LinkSource
    note: Text = ""

    @field_validator("registry")
    @classmethod
    def _known_registry(cls, value: str) -> str:
        if value not in REGISTRY_KEYS:
            raise ValueError(f"unknown registry {value!r} (one of: {', '.join(REGISTRY_KEYS)})")
        return value

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str, info: ValidationInfo) -> str:
        registry = info.data.get("registry")
        if registry is None:
            return value  # the registry itself was refused; that error is the one to show
        try:
            return parse_registry_id(value, registry).study_id
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @property
    def confident(self) -> bool:
        return self.source == "person" or self.confidence >= CONFIDENT


class Seed(Strict):
    """One seed study as its file describes it."""

    id: SeedId
    title: Text = Field(min_length=1)
    kind: Kind = "paper"
    status: Status = ""  # the study's status where the document states one
    summary: Text = ""  # in our own words
    document: Text = ""  # where the source text is (a path or URL)
    notes: tuple[Text, ...] = ()  # provenance of facts not taken from the document
    missing: tuple[Text, ...] = ()  # what a draft could not find (``seeds import``)
    citation: Citation = Citation()
    conditions: tuple[Text, ...] = ()
    interventions: tuple[SeedIntervention, ...] = ()
    design: Design = Design()
    enrollment: Enrollment = Enrollment()
    outcomes: tuple[ReportedOutcome, ...] = ()
    sponsor: Sponsor = Sponsor()
    links: tuple[RegistryLink, ...] = ()

    def outcomes_of(self, outcome_type: str) -> tuple[ReportedOutcome, ...]:
        return tuple(o for o in self.outcomes if o.type == outcome_type)

    def content_hash(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    @property
    def year(self) -> int | None:
        return self.citation.year
