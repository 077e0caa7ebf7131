"""The registries trialwatch watches, and the one place that knows where each one's modules
are: the rest of the service asks here for a registry's ``RegistryInfo``, its normaliser, or
which registry an id a person typed belongs to.

A registry's modules are imported when it is first asked for, so a command about
ClinicalTrials.gov records pays for no other registry's parser.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType
from typing import Any

from service.errors import InputError
from service.links import linked_ids
from service.models import RecordMeta, Snapshot
from service.registry.source import RegistryInfo

# the contract's keys, in the order ids are tried and listings show them
WATCHED: tuple[str, ...] = ("ctgov", "euctr", "ctis", "isrctn")

_PACKAGES = {
    "ctgov": ("service.registry.ctgov_fields", "service.registry.ctgov_normalise"),
    "euctr": ("service.registry.euctr.fields", "service.registry.euctr.normalise"),
    "ctis": ("service.registry.ctis.fields", "service.registry.ctis.normalise"),
    "isrctn": ("service.registry.isrctn.fields", "service.registry.isrctn.normalise"),
}


@cache
def registry_info(key: str) -> RegistryInfo:
    """What the service knows of registry ``key`` (``InputError`` for one it does not watch)."""
    if key not in _PACKAGES:
        raise InputError(f"unknown registry {key!r} (one of: {', '.join(WATCHED)})")
    info: RegistryInfo = importlib.import_module(_PACKAGES[key][0]).INFO
    return info


@cache
def _normaliser(key: str) -> ModuleType:
    registry_info(key)
    return importlib.import_module(_PACKAGES[key][1])


def normalise(key: str, raw: Any) -> Snapshot:
    """The snapshot of a raw record of registry ``key`` (``RecordInvalid`` when it is none),
    with its lifecycle and the registrations it names filled in where its normaliser left
    them to the service."""
    snapshot: Snapshot = _normaliser(key).normalise(raw)
    info = registry_info(key)
    derived: dict[str, Any] = {}
    if not snapshot.lifecycle:
        derived["lifecycle"] = info.lifecycle(snapshot.overall_status)
    if not snapshot.linked and snapshot.secondary_ids:
        source = info.paths.get("secondary_ids", "")
        ids = snapshot.secondary_ids
        derived["linked"] = linked_ids(key, snapshot.study_id, ids, source)
    return snapshot.model_copy(update=derived) if derived else snapshot


def record_meta(key: str, raw: Any) -> RecordMeta:
    meta: RecordMeta = _normaliser(key).record_meta(raw)
    return meta


def accepted_forms() -> str:
    return "; ".join(f"{registry_info(k).name}: {registry_info(k).id_forms}" for k in WATCHED)


def parse_watch_id(text: str, registry: str | None = None) -> tuple[str, str]:
    """``(registry, canonical id)`` of an id as a person typed it, in any registry trialwatch
    watches (or in ``registry``); ``InputError`` naming the accepted forms otherwise."""
    keys = (registry,) if registry else WATCHED
    for key in keys:
        study_id = registry_info(key).parse_id(text)
        if study_id is not None:
            return key, study_id
    shown = text if len(text) <= 40 else text[:37] + "..."
    meant = registry or _meant(text)
    if meant:
        forms = registry_info(meant).id_forms
        raise InputError(f"{shown!r} is not a {registry_info(meant).name} id ({forms})")
    raise InputError(f"{shown!r} is not a registry id trialwatch watches ({accepted_forms()})")


_PREFIXES = (("NCT", "ctgov"), ("ISRCTN", "isrctn"), ("EUCTR", "euctr"), ("CTIS", "ctis"))


def _meant(text: str) -> str | None:
    """The registry a malformed id was most likely meant for (its prefix, or the number of
    dash-separated groups of an EU number: three EudraCT, four CTIS), to name its forms."""
    candidate = text.strip().upper()
    for prefix, key in _PREFIXES:
        if candidate.startswith(prefix):
            return key
    groups = candidate.split("-")
    if len(groups) >= 3 and all(g.isdigit() for g in groups[:3]):
        return "ctis" if len(groups) == 4 and groups[3].isdigit() else "euctr"
    return None


def parse_watch_ids(texts: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """Every id checked before any is used (a bad one writes nothing); order kept, repeats
    dropped."""
    return list(dict.fromkeys(parse_watch_id(text) for text in texts))


def study_url(key: str, study_id: str) -> str:
    return registry_info(key).study_url(study_id)
