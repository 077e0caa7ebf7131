"""The seam for registries that keep no version history of their own (EUCTR, CTIS, ISRCTN).

Such a registry is asked for one record at a time (``fetch``) and, once a cycle, for its
change signal (``signal``: the EUCTR ``bydates`` feed, the CTIS search sorted by
``lastUpdated``, ISRCTN's ``lastEdited GE``). trialwatch's own snapshots are the history.

``RegistryInfo`` is what the rest of the service knows of any registry without its client:
how its ids are written, where each tracked field lives in its records (the paths change
events name), how its status words map to the shared lifecycle, and its public pages. Pure
data and functions, so that the diff, the renderers and the CLI can use it.

A registry package ``service/registry/<key>/`` holds ``fields.py`` (its ``INFO``),
``normalise.py`` (``normalise(raw) -> Snapshot`` and ``record_meta(raw) -> RecordMeta``, pure)
and ``client.py`` (``build_client(settings, *, observe, stop) -> RecordSource``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from service.models import OutcomeType

Precision = Literal["day", "time"]


@dataclass(frozen=True)
class Signal:
    """What a registry says changed since a moment.

    ``stamps``: study id → when the registry last changed it, ``yyyy-mm-dd`` when the signal
    has only a day's precision, an ISO 8601 time (UTC) when it has the time. ``covers_from``:
    the signal says nothing of changes before then (EUCTR's feed lists the last 7 days); None
    when it reaches back to ``since``. ``records``: full records the signal carried with it
    (ISRCTN's query answers with the records), not to be fetched again. ``warning``: what
    the signal could not say (the CTIS cap), to be said out loud."""

    stamps: Mapping[str, str]
    precision: Precision
    covers_from: datetime | None = None
    records: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    warning: str = ""


class RecordSource(Protocol):
    """A registry client. ``requests`` counts every HTTP request made, retries included."""

    registry: str
    requests: int

    def fetch(self, study_id: str) -> dict[str, Any]:
        """The current record (JSON-ready: what the store keeps as the version's raw record).
        ``RecordNotFound`` when the registry does not have it, ``RecordInvalid`` when its
        answer is not a record, ``RegistryUnavailable`` when it does not answer."""
        ...

    def signal(self, since: datetime) -> Signal:
        """What changed since ``since`` (UTC), in as few requests as the registry allows
        (one, in a quiet week)."""
        ...


@dataclass(frozen=True)
class RegistryInfo:
    """One registry as the service knows it (see the module docstring)."""

    key: str  # the contract's registry key ("euctr")
    name: str  # as people name it ("EU Clinical Trials Register")
    id_forms: str  # the accepted forms, for errors ("2014-003140-12, EUCTR2014-003140-12 …")
    parse_id: Callable[[str], str | None]  # typed id → canonical id, None when not this form
    study_url: Callable[[str], str]  # the registry's public page of a record
    lifecycle: Callable[[str], str]  # the registry's status text → a lifecycle (models)
    # Snapshot field → the registry's own path to it; a field not named is not reported
    # (the registry has no such field, or it is derived from others, as EUCTR's trial status
    # is from its country records)
    paths: Mapping[str, str]
    outcome_paths: Mapping[OutcomeType, str]
    labels: Mapping[str, str] = field(default_factory=dict)  # the registry's own words
    id_path: str = "id"  # where a record keeps its id (record_added, record_unavailable)
    # the registry's side-by-side view of two of its versions (only one that numbers them)
    compare_url: Callable[[str, int, int], str] | None = None
    # the end points of a kind are one free text, not a list of measures (EUCTR, ISRCTN):
    # a text rewritten is that outcome modified, never one removed and another added
    outcomes_as_text: bool = False
    countries_path: str = ""  # "countries": a country's value is countries.FR.<key>
    # CountryRecord field → the registry's key for it under a country ("status" →
    # "end_of_trial_status" makes countries.FR.end_of_trial_status)
    country_keys: Mapping[str, str] = field(
        default_factory=lambda: {"status": "status", "enrollment": "enrollment"}
    )
