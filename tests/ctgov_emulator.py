#!/usr/bin/env python3
"""An emulator of the ClinicalTrials.gov API for trialwatch's tests and offline demo.

Standard library only, so a fresh clone can run it before anything is installed. From study
versions held in memory it serves, over real HTTP on 127.0.0.1:

* API v2: ``GET /api/v2/studies``, ``GET /api/v2/studies/{nctId}``, ``GET /api/v2/version``;
* the internal history API: the version list as ``GET /api/int/studies/{nctId}?history=true``
  (the record with ``{"history": {"changes": […]}}``, the form cthist reads) and/or as
  ``GET /api/int/studies/{nctId}/history`` (``{"changes": […]}``), one version as
  ``.../history/{n}``; ``history_style`` says which list forms answer (``both``, ``query``,
  ``path``), the other answering 404 as an unknown path does;
* a cap on the request line (``max_url_bytes``): longer ones answer 414, as a proxy in front
  of a registry may;
* control endpoints under ``/_emu/`` to publish versions, inject faults, retire or alias
  records and read request counts. They are those of the acceptance checks' emulator, so one
  script drives either.

The behaviour follows the official OpenAPI spec (v2.0.5) and captures of real answers: plain
text 400/404 bodies, 301 for alias ids, opaque page tokens that only work with the first
page's parameters, ``pageSize`` cut to 1000, 400 for unknown parameters, a history API that
answers 429 to overlapping requests. Searches use a small Essie subset: words and quoted
phrases with case, accents and a plural ``s`` folded, ``AND``/``OR``/``NOT``, parentheses,
``AREA[Piece]`` and ``RANGE[low,high]``.

Standalone::

    python tests/ctgov_emulator.py --port 0 --records DIR [--records DIR] [--port-file F]

From a test::

    emu = Emulator.start(records_dirs=[DIR])
    httpx.get(f"{emu.api_url}/studies/NCT05605665")
    emu.fault("429", retry_after=2)
    emu.stop()

Control API (JSON bodies; errors are 400 ``{"error": …}``; none of it is counted)::

    POST /_emu/publish       {"study": {…}, "date"?: "yyyy-MM-dd"}  → {"version": n, "nct": id}
    POST /_emu/fault         {"kind", "count"?: 1, "path_prefix"?: "/", "retry_after"?,
                              "seconds"?: 5, "body"?}                → {"ok": true}
    POST /_emu/clear_faults  POST /_emu/reset_stats                 → {"ok": true}
    POST /_emu/gone          {"nct": id}                            → {"ok": true}
    POST /_emu/alias         {"alias": old_id, "nct": real_id}      → {"ok": true}
    GET  /_emu/stats         → {"requests", "by_path", "history_refused", "history_in_flight"}

Records directories hold study files (bare, or history answers ``{"studyVersion", "study"}``)
and/or one folder per record, named by its NCT id, with its versions ``v0.json``, ``v1.json``…
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import hashlib
import json
import os
import re
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import traceback
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

JSON = dict[str, Any]
PathLike = str | os.PathLike[str]

API_VERSION = "2.0.5"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
NCT_ID = re.compile(r"^[Nn][Cc][Tt]0*([1-9]\d{0,7})$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FALLBACK_DATE = "2024-01-01"

STATUSES = frozenset(
    [
        "ACTIVE_NOT_RECRUITING",
        "COMPLETED",
        "ENROLLING_BY_INVITATION",
        "NOT_YET_RECRUITING",
        "RECRUITING",
        "SUSPENDED",
        "TERMINATED",
        "WITHDRAWN",
        "AVAILABLE",
        "NO_LONGER_AVAILABLE",
        "TEMPORARILY_NOT_AVAILABLE",
        "APPROVED_FOR_MARKETING",
        "WITHHELD",
        "UNKNOWN",
    ]
)

# The query parameters each endpoint knows; anything else is a 400, as on the real API.
STUDIES_PARAMS = frozenset(
    [
        "format",
        "markupFormat",
        "query.cond",
        "query.term",
        "query.locn",
        "query.titles",
        "query.intr",
        "query.outc",
        "query.spons",
        "query.lead",
        "query.id",
        "query.patient",
        "filter.overallStatus",
        "filter.geo",
        "filter.ids",
        "filter.advanced",
        "filter.synonyms",
        "postFilter.overallStatus",
        "postFilter.geo",
        "postFilter.ids",
        "postFilter.advanced",
        "postFilter.synonyms",
        "aggFilters",
        "geoDecay",
        "fields",
        "sort",
        "countTotal",
        "pageSize",
        "pageToken",
    ]
)
STUDY_PARAMS = frozenset({"format", "markupFormat", "fields"})
# The spec: later pages must repeat the first page's parameters except these.
PAGING_PARAMS = frozenset({"countTotal", "pageSize", "pageToken"})
V2_SUBRESOURCES = frozenset({"metadata", "enums", "search-areas", "download"})


# --------------------------------------------------------------------------------------------
# Study documents: ids, pieces, values
# --------------------------------------------------------------------------------------------


def normalise_nct(raw: str) -> str | None:
    """``nct123`` → ``NCT00000123``; None when ``raw`` is not an NCT number."""
    match = NCT_ID.match(raw.strip())
    return f"NCT{int(match.group(1)):08d}" if match else None


def nct_of(study: Mapping[str, Any]) -> str:
    """The normalised NCT id of a study document; ValueError when it has none."""
    ident = study.get("protocolSection", {}).get("identificationModule", {})
    nct = normalise_nct(str(ident.get("nctId", "")))
    if nct is None:
        raise ValueError("study has no valid protocolSection.identificationModule.nctId")
    return nct


def dig(node: Any, path: str) -> Any:
    """The value at a dotted path of nested dicts, None when any step is missing."""
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


_PS = "protocolSection"
_MODULES = (
    "identificationModule",
    "statusModule",
    "sponsorCollaboratorsModule",
    "oversightModule",
    "descriptionModule",
    "conditionsModule",
    "designModule",
    "armsInterventionsModule",
    "outcomesModule",
    "eligibilityModule",
    "contactsLocationsModule",
    "referencesModule",
    "ipdSharingStatementModule",
)
_SECTIONS = ("protocolSection", "resultsSection", "annotationSection", "documentSection")

# Piece names (as in /studies/metadata) that `fields`, `sort` and AREA[...] use; names not
# listed here still work as dotted paths or as a key name found anywhere in the record.
_PIECE_PATHS: dict[str, str] = {
    "NCTId": f"{_PS}.identificationModule.nctId",
    "NCTIdAlias": f"{_PS}.identificationModule.nctIdAliases",
    "OrgStudyId": f"{_PS}.identificationModule.orgStudyIdInfo.id",
    "SecondaryId": f"{_PS}.identificationModule.secondaryIdInfos.id",
    "BriefTitle": f"{_PS}.identificationModule.briefTitle",
    "OfficialTitle": f"{_PS}.identificationModule.officialTitle",
    "Acronym": f"{_PS}.identificationModule.acronym",
    "OrgFullName": f"{_PS}.identificationModule.organization.fullName",
    "StatusVerifiedDate": f"{_PS}.statusModule.statusVerifiedDate",
    "OverallStatus": f"{_PS}.statusModule.overallStatus",
    "LastKnownStatus": f"{_PS}.statusModule.lastKnownStatus",
    "WhyStopped": f"{_PS}.statusModule.whyStopped",
    "StartDate": f"{_PS}.statusModule.startDateStruct.date",
    "PrimaryCompletionDate": f"{_PS}.statusModule.primaryCompletionDateStruct.date",
    "CompletionDate": f"{_PS}.statusModule.completionDateStruct.date",
    "StudyFirstSubmitDate": f"{_PS}.statusModule.studyFirstSubmitDate",
    "StudyFirstPostDate": f"{_PS}.statusModule.studyFirstPostDateStruct.date",
    "ResultsFirstPostDate": f"{_PS}.statusModule.resultsFirstPostDateStruct.date",
    "LastUpdateSubmitDate": f"{_PS}.statusModule.lastUpdateSubmitDate",
    "LastUpdatePostDate": f"{_PS}.statusModule.lastUpdatePostDateStruct.date",
    "LeadSponsor": f"{_PS}.sponsorCollaboratorsModule.leadSponsor",
    "LeadSponsorName": f"{_PS}.sponsorCollaboratorsModule.leadSponsor.name",
    "Collaborator": f"{_PS}.sponsorCollaboratorsModule.collaborators",
    "CollaboratorName": f"{_PS}.sponsorCollaboratorsModule.collaborators.name",
    "BriefSummary": f"{_PS}.descriptionModule.briefSummary",
    "DetailedDescription": f"{_PS}.descriptionModule.detailedDescription",
    "Condition": f"{_PS}.conditionsModule.conditions",
    "Keyword": f"{_PS}.conditionsModule.keywords",
    "StudyType": f"{_PS}.designModule.studyType",
    "Phase": f"{_PS}.designModule.phases",
    "EnrollmentInfo": f"{_PS}.designModule.enrollmentInfo",
    "EnrollmentCount": f"{_PS}.designModule.enrollmentInfo.count",
    "EnrollmentType": f"{_PS}.designModule.enrollmentInfo.type",
    "ArmGroup": f"{_PS}.armsInterventionsModule.armGroups",
    "ArmGroupLabel": f"{_PS}.armsInterventionsModule.armGroups.label",
    "ArmGroupDescription": f"{_PS}.armsInterventionsModule.armGroups.description",
    "Intervention": f"{_PS}.armsInterventionsModule.interventions",
    "InterventionName": f"{_PS}.armsInterventionsModule.interventions.name",
    "InterventionOtherName": f"{_PS}.armsInterventionsModule.interventions.otherNames",
    "InterventionDescription": f"{_PS}.armsInterventionsModule.interventions.description",
    "PrimaryOutcome": f"{_PS}.outcomesModule.primaryOutcomes",
    "PrimaryOutcomeMeasure": f"{_PS}.outcomesModule.primaryOutcomes.measure",
    "PrimaryOutcomeDescription": f"{_PS}.outcomesModule.primaryOutcomes.description",
    "SecondaryOutcome": f"{_PS}.outcomesModule.secondaryOutcomes",
    "SecondaryOutcomeMeasure": f"{_PS}.outcomesModule.secondaryOutcomes.measure",
    "SecondaryOutcomeDescription": f"{_PS}.outcomesModule.secondaryOutcomes.description",
    "OtherOutcome": f"{_PS}.outcomesModule.otherOutcomes",
    "OtherOutcomeMeasure": f"{_PS}.outcomesModule.otherOutcomes.measure",
    "OtherOutcomeDescription": f"{_PS}.outcomesModule.otherOutcomes.description",
    "EligibilityCriteria": f"{_PS}.eligibilityModule.eligibilityCriteria",
    "HealthyVolunteers": f"{_PS}.eligibilityModule.healthyVolunteers",
    "Sex": f"{_PS}.eligibilityModule.sex",
    "MinimumAge": f"{_PS}.eligibilityModule.minimumAge",
    "MaximumAge": f"{_PS}.eligibilityModule.maximumAge",
    "StdAge": f"{_PS}.eligibilityModule.stdAges",
    "OverallOfficialName": f"{_PS}.contactsLocationsModule.overallOfficials.name",
    "Location": f"{_PS}.contactsLocationsModule.locations",
    "LocationFacility": f"{_PS}.contactsLocationsModule.locations.facility",
    "LocationStatus": f"{_PS}.contactsLocationsModule.locations.status",
    "LocationCity": f"{_PS}.contactsLocationsModule.locations.city",
    "LocationState": f"{_PS}.contactsLocationsModule.locations.state",
    "LocationZip": f"{_PS}.contactsLocationsModule.locations.zip",
    "LocationCountry": f"{_PS}.contactsLocationsModule.locations.country",
    "VersionHolder": "derivedSection.miscInfoModule.versionHolder",
    "ConditionMeshTerm": "derivedSection.conditionBrowseModule.meshes.term",
    "InterventionMeshTerm": "derivedSection.interventionBrowseModule.meshes.term",
    "DerivedSection": "derivedSection",
    "HasResults": "hasResults",
    **{name[0].upper() + name[1:]: f"{_PS}.{name}" for name in _MODULES},
    **{name[0].upper() + name[1:]: name for name in _SECTIONS},
}
PIECES: dict[str, str] = {name.lower(): path for name, path in _PIECE_PATHS.items()}
FIELD_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9\-. ]*$")


def piece_path(name: str) -> str | None:
    """The dotted path of a piece name or dotted field name, None if neither."""
    name = name.strip()
    return PIECES.get(name.lower()) or (name if "." in name else None)


def find_key_paths(node: Any, key: str, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every dict key equal to ``key`` (case-insensitive) under ``node``."""
    items = node if isinstance(node, list) else [node]
    for item in items:
        if not isinstance(item, dict):
            continue
        for name, child in item.items():
            path = f"{prefix}.{name}" if prefix else name
            if name.lower() == key.lower():
                yield path
            else:
                yield from find_key_paths(child, key, path)


def derived_piece_path(name: str) -> str | None:
    """Paths of unlisted pieces named after a listed parent: InterventionType → ….type."""
    name = name.strip()
    for cut in range(len(name) - 1, 0, -1):
        parent = PIECES.get(name[:cut].lower())
        if parent is not None:
            rest = name[cut:]
            return f"{parent}.{rest[0].lower()}{rest[1:]}"
    return None


def paths_for(study: Mapping[str, Any], name: str) -> list[str]:
    """Where a field name points in this study: a known piece, a dotted path, a piece named
    after its parent, or else every key of that name."""
    path = piece_path(name)
    if path is not None:
        return [path]
    derived = derived_piece_path(name)
    if derived is not None and values_at(study, derived):
        return [derived]
    return list(dict.fromkeys(find_key_paths(study, name.strip())))


def leaf_strings(node: Any) -> Iterator[str]:
    """Every scalar under ``node`` as text (booleans as JSON writes them)."""
    if isinstance(node, dict):
        for child in node.values():
            yield from leaf_strings(child)
    elif isinstance(node, list):
        for child in node:
            yield from leaf_strings(child)
    elif isinstance(node, bool):
        yield "true" if node else "false"
    elif node is not None:
        yield str(node)


def values_at(node: Any, path: str) -> list[str]:
    """The texts at a dotted path, stepping through lists on the way (as piece names do)."""
    current = [node]
    for key in path.split("."):
        current = [child for item in current for child in _children(item, key)]
    return [text for item in current for text in leaf_strings(item)]


def _children(node: Any, key: str) -> list[Any]:
    if isinstance(node, list):
        return [child for item in node for child in _children(item, key)]
    if isinstance(node, dict) and key in node:
        return [node[key]]
    return []


# --------------------------------------------------------------------------------------------
# Projection (`fields=`)
# --------------------------------------------------------------------------------------------

_MISSING: Any = object()


def project(study: Mapping[str, Any], names: list[str] | None) -> JSON:
    """The study reduced to the given fields, keeping the record's nesting (like the API)."""
    if not names or "@query" in names:
        return cast(JSON, study)
    out: JSON = {}
    for name in names:
        for path in paths_for(study, name):
            part = _extract(study, path.split("."))
            if part is not _MISSING:
                _merge(out, part)
    return out


def _extract(node: Any, keys: list[str]) -> Any:
    """The part of ``node`` at ``keys`` wrapped in its parents; _MISSING when absent."""
    if not keys:
        return copy.deepcopy(node)
    if isinstance(node, list):
        # Keep one slot per element so that two fields of the same list merge side by side.
        items = [_extract(item, keys) for item in node]
        if all(item is _MISSING for item in items):
            return _MISSING
        return [{} if item is _MISSING else item for item in items]
    if isinstance(node, dict) and keys[0] in node:
        inner = _extract(node[keys[0]], keys[1:])
        return _MISSING if inner is _MISSING else {keys[0]: inner}
    return _MISSING


def _merge(target: Any, part: Any) -> Any:
    if isinstance(target, dict) and isinstance(part, dict):
        for key, value in part.items():
            target[key] = _merge(target[key], value) if key in target else value
        return target
    if isinstance(target, list) and isinstance(part, list) and len(target) == len(part):
        return [_merge(a, b) for a, b in zip(target, part, strict=True)]
    return part


# --------------------------------------------------------------------------------------------
# Essie-lite: folding, parsing and matching of query.* and filter.advanced expressions
# --------------------------------------------------------------------------------------------


def fold(text: str) -> tuple[str, ...]:
    """Search tokens: accents and case removed, a plural ``s`` cut (Sjögren's → sjogren, s)."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()
    return tuple(_stem(token) for token in re.findall(r"[a-z0-9]+", plain))


def _stem(token: str) -> str:
    return (
        token[:-1] if len(token) > 3 and token.endswith("s") and not token.endswith("ss") else token
    )


class QueryError(ValueError):
    """A search expression the emulator cannot parse (answered with 400)."""


@dataclass(frozen=True)
class Phrase:
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Negation:
    part: Node


@dataclass(frozen=True)
class InArea:
    area: str
    part: Node


@dataclass(frozen=True)
class InRange:
    low: str
    high: str


Node = Phrase | AllOf | AnyOf | Negation | InArea | InRange

_LEXEME = re.compile(
    r"""\s*(?:(?P<open>\()|(?P<close>\))|"(?P<phrase>[^"]*)"?"""
    r"""|AREA\[(?P<area>[^\]]*)\]|RANGE\[(?P<range>[^\]]*)\]"""
    r"""|(?P<ignored>[A-Z]+\[[^\]]*\])|(?P<word>[^\s()"]+))"""
)
_OPERATORS = frozenset({"AND", "OR", "NOT"})


def _lex(expression: str) -> list[tuple[str, str]]:
    """(kind, text) pairs; EXPANSION[...]-like operators we do not model are dropped."""
    lexemes: list[tuple[str, str]] = []
    position = 0
    while expression[position:].strip():
        match = _LEXEME.match(expression, position)
        if match is None or match.end() == position:
            raise QueryError(f"cannot parse the search expression near {expression[position:]!r}")
        kind = cast(str, match.lastgroup)
        text = match.group(kind)
        position = match.end()
        if kind == "word" and text in _OPERATORS:
            kind = text
        if kind != "ignored":
            lexemes.append((kind, text))
    return lexemes


class _Parser:
    """Recursive descent; NOT binds tighter than AND (also implicit), AND tighter than OR."""

    def __init__(self, expression: str) -> None:
        self._lexemes = _lex(expression)
        self._at = 0

    def parse(self) -> Node:
        node = self._any_of()
        if self._peek() is not None:
            raise QueryError(f"unexpected {self._lexemes[self._at][1]!r} in search expression")
        return node

    def _peek(self) -> str | None:
        return self._lexemes[self._at][0] if self._at < len(self._lexemes) else None

    def _take(self) -> tuple[str, str]:
        if self._at >= len(self._lexemes):
            raise QueryError("search expression ends too early")
        self._at += 1
        return self._lexemes[self._at - 1]

    def _any_of(self) -> Node:
        parts = [self._all_of()]
        while self._peek() == "OR":
            self._take()
            parts.append(self._all_of())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def _all_of(self) -> Node:
        parts = [self._negation()]
        while self._peek() not in (None, "close", "OR"):
            if self._peek() == "AND":
                self._take()
            parts.append(self._negation())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def _negation(self) -> Node:
        if self._peek() == "NOT":
            self._take()
            return Negation(self._negation())
        return self._atom()

    def _atom(self) -> Node:
        kind, text = self._take()
        if kind == "open":
            node = self._any_of()
            if self._take()[0] != "close":
                raise QueryError("unbalanced parenthesis in search expression")
            return node
        if kind == "area":
            return InArea(text.strip(), self._atom())
        if kind == "range":
            return _range(text)
        if kind in ("phrase", "word"):
            return Phrase(fold(text))
        raise QueryError(f"unexpected {text!r} in search expression")


def _range(text: str) -> InRange:
    bounds = [bound.strip() for bound in text.split(",")]
    if len(bounds) != 2 or not all(bounds):
        raise QueryError(f"RANGE[{text}] needs two bounds")
    return InRange(bounds[0], bounds[1])


def parse_query(expression: str) -> Node:
    """Parse an Essie-lite expression; QueryError when it makes no sense."""
    return _Parser(expression).parse()


_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*(year|month|week|day|hour|minute)s?$", re.IGNORECASE)
_UNIT_DAYS = {
    "year": 365.25,
    "month": 30.4375,
    "week": 7.0,
    "day": 1.0,
    "hour": 1 / 24,
    "minute": 1 / 1440,
}


def _sort_key(value: str) -> tuple[int, float, str]:
    """Numbers and ages compare as numbers (ages in days), everything else (dates) as text."""
    text = value.strip()
    age = _AGE.match(text)
    if age:
        return (0, float(age.group(1)) * _UNIT_DAYS[age.group(2).lower()], "")
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text.lower())


def _in_range(value: str, low: str, high: str) -> bool:
    key = _sort_key(value)
    above = low.upper() == "MIN" or key >= _sort_key(low)
    below = high.upper() == "MAX" or key <= _sort_key(high)
    return above and below


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    if not needle:
        return True
    width = len(needle)
    return any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))


# Which pieces each query.* parameter searches (the spec's "search areas", simplified).
SEARCH_AREAS: dict[str, tuple[str, ...]] = {
    "query.cond": ("Condition", "Keyword", "BriefTitle", "OfficialTitle", "ConditionMeshTerm"),
    "query.term": ("@all",),
    "query.patient": ("@all",),
    "query.intr": (
        "InterventionName",
        "InterventionOtherName",
        "ArmGroupLabel",
        "InterventionMeshTerm",
    ),
    "query.titles": ("BriefTitle", "OfficialTitle", "Acronym"),
    "query.outc": (
        "PrimaryOutcomeMeasure",
        "PrimaryOutcomeDescription",
        "SecondaryOutcomeMeasure",
        "SecondaryOutcomeDescription",
        "OtherOutcomeMeasure",
        "OtherOutcomeDescription",
    ),
    "query.spons": ("LeadSponsorName", "CollaboratorName"),
    "query.lead": ("LeadSponsorName",),
    "query.locn": (
        "LocationFacility",
        "LocationCity",
        "LocationState",
        "LocationZip",
        "LocationCountry",
    ),
    "query.id": ("NCTId", "NCTIdAlias", "OrgStudyId", "SecondaryId", "Acronym"),
}


class _Matcher:
    """Evaluates a parsed expression against one study, folding each field once."""

    def __init__(self, study: Mapping[str, Any]) -> None:
        self._study = study
        self._raw: dict[str, list[str]] = {}
        self._folded: dict[str, list[tuple[str, ...]]] = {}

    def matches(self, node: Node, areas: tuple[str, ...]) -> bool:
        match node:
            case Phrase(tokens):
                return any(_contains(seq, tokens) for seq in self._tokens(areas))
            case AllOf(parts):
                return all(self.matches(part, areas) for part in parts)
            case AnyOf(parts):
                return any(self.matches(part, areas) for part in parts)
            case Negation(part):
                return not self.matches(part, areas)
            case InArea(area, part):
                return self.matches(part, (area,))
            case InRange(low, high):
                return any(_in_range(value, low, high) for value in self._values(areas))
        raise AssertionError(f"unknown node {node!r}")

    def _values(self, areas: tuple[str, ...]) -> list[str]:
        return [value for area in areas for value in self._area_values(area)]

    def _tokens(self, areas: tuple[str, ...]) -> list[tuple[str, ...]]:
        for area in areas:
            if area not in self._folded:
                self._folded[area] = [fold(value) for value in self._area_values(area)]
        return [seq for area in areas for seq in self._folded[area]]

    def _area_values(self, area: str) -> list[str]:
        if area not in self._raw:
            if area == "@all":
                self._raw[area] = list(leaf_strings(self._study))
            else:
                paths = paths_for(self._study, area)
                self._raw[area] = [v for path in paths for v in values_at(self._study, path)]
        return self._raw[area]


# --------------------------------------------------------------------------------------------
# Responses and errors
# --------------------------------------------------------------------------------------------


@dataclass
class Response:
    """One HTTP answer, built before it is written so that faults can rewrite it."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return cls(status, body, "application/json")

    @classmethod
    def text(cls, status: int, message: str) -> Response:
        return cls(status, message.encode("utf-8"))


class ApiError(Exception):
    """Answered as a plain-text error, the way the real API reports bad requests."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------------------------
# The store of study versions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyVersion:
    """One version of a record as served: lastUpdatePostDate already set to ``date``."""

    number: int
    date: str
    study: JSON


MODULE_LABELS = {
    "identificationModule": "Study Identification",
    "statusModule": "Study Status",
    "sponsorCollaboratorsModule": "Sponsor/Collaborators",
    "oversightModule": "Oversight",
    "descriptionModule": "Study Description",
    "conditionsModule": "Conditions",
    "designModule": "Study Design",
    "armsInterventionsModule": "Arms and Interventions",
    "outcomesModule": "Outcome Measures",
    "eligibilityModule": "Eligibility",
    "contactsLocationsModule": "Contacts/Locations",
    "referencesModule": "References",
    "ipdSharingStatementModule": "IPD Sharing Statement",
}


def module_labels(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """History's moduleLabels: the modules that differ from the previous version."""
    old = (before or {}).get(_PS, {})
    new = after.get(_PS, {})
    labels = [
        label
        for module, label in MODULE_LABELS.items()
        if module in new or module in old
        if before is None or old.get(module) != new.get(module)
    ]
    if before is not None and before.get("resultsSection") != after.get("resultsSection"):
        labels.append("Results")
    return labels


def check_date(value: str) -> str:
    """Return an ISO ``yyyy-MM-dd`` date unchanged; ValueError for anything else."""
    if not ISO_DATE.match(value):
        raise ValueError(f"date must be yyyy-MM-dd, not {value!r}")
    date.fromisoformat(value)
    return value


def own_date(study: Mapping[str, Any]) -> str | None:
    """The study's own lastUpdatePostDate when it is a full yyyy-MM-dd date."""
    value = dig(study, f"{_PS}.statusModule.lastUpdatePostDateStruct.date")
    return value if isinstance(value, str) and ISO_DATE.match(value) else None


def _served_copy(study: Mapping[str, Any], when: str) -> JSON:
    served = copy.deepcopy(dict(study))
    status = served.setdefault(_PS, {}).setdefault("statusModule", {})
    status["lastUpdatePostDateStruct"] = {"date": when, "type": "ACTUAL"}
    return served


def _now_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class StudyStore:
    """Versions per record, retired records and alias ids; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._versions: dict[str, list[StudyVersion]] = {}
        self._gone: set[str] = set()
        self._aliases: dict[str, str] = {}
        self._data_timestamp = _now_timestamp()

    def add(self, study: Mapping[str, Any], when: str | None = None, *, as_is: bool = False) -> int:
        """Add a new current version and return its number (versions count from 0).

        The version's lastUpdatePostDateStruct becomes ``{"date": when, "type": "ACTUAL"}``.
        Without ``when``, it is dated by its own lastUpdatePostDate, moved to the day after
        the previous version when that is not later, so dates never go backwards. ``as_is``
        serves a document with a full lastUpdatePostDate untouched (records loaded from files).
        """
        nct = nct_of(study)
        with self._lock:
            versions = self._versions.setdefault(nct, [])
            if as_is and own_date(study):
                when, served = cast(str, own_date(study)), copy.deepcopy(dict(study))
            else:
                when = check_date(when) if when else self._default_date(study, versions)
                served = _served_copy(study, when)
            versions.append(StudyVersion(len(versions), when, served))
            self._gone.discard(nct)
            for alias in study[_PS]["identificationModule"].get("nctIdAliases", []) or []:
                self._register_alias(str(alias), nct)
            self._touch()
            return len(versions) - 1

    def _default_date(self, study: Mapping[str, Any], versions: list[StudyVersion]) -> str:
        own = own_date(study)
        if not versions:
            return own or FALLBACK_DATE
        following = (date.fromisoformat(versions[-1].date) + timedelta(days=1)).isoformat()
        return max(own or following, following)

    def _touch(self) -> None:
        # The data timestamp moves on every change, strictly, like a registry refresh.
        now = _now_timestamp()
        if now <= self._data_timestamp:
            later = datetime.fromisoformat(self._data_timestamp) + timedelta(seconds=1)
            now = later.strftime("%Y-%m-%dT%H:%M:%S")
        self._data_timestamp = now

    def retire(self, nct: str) -> None:
        """Make a record answer 404 everywhere until a new version is published."""
        with self._lock:
            self._gone.add(_require_nct(nct))
            self._touch()

    def alias(self, old_id: str, real_id: str) -> None:
        """Make ``old_id`` answer 301 to ``real_id`` (and match it in filter.ids)."""
        with self._lock:
            self._register_alias(old_id, _require_nct(real_id))

    def _register_alias(self, old_id: str, real_id: str) -> None:
        self._aliases[_require_nct(old_id)] = real_id

    def resolve_alias(self, nct: str) -> str | None:
        with self._lock:
            return self._aliases.get(nct)

    def current(self, nct: str) -> StudyVersion | None:
        with self._lock:
            versions = self._live_versions(nct)
            return versions[-1] if versions else None

    def history(self, nct: str) -> list[StudyVersion] | None:
        with self._lock:
            return self._live_versions(nct)

    def _live_versions(self, nct: str) -> list[StudyVersion] | None:
        if nct in self._gone or not self._versions.get(nct):
            return None
        return list(self._versions[nct])

    def current_studies(self) -> list[JSON]:
        """The current version of every live record, by NCT id (the real order is unspecified)."""
        with self._lock:
            live = sorted(nct for nct in self._versions if nct not in self._gone)
            return [self._versions[nct][-1].study for nct in live]

    def ids_matching(self, wanted: set[str]) -> set[str]:
        """Record ids for ids that may be aliases (filter.ids searches NCTId and NCTIdAlias)."""
        with self._lock:
            return {self._aliases.get(nct, nct) for nct in wanted}

    @property
    def data_timestamp(self) -> str:
        with self._lock:
            return self._data_timestamp


def _require_nct(raw: str) -> str:
    nct = normalise_nct(raw)
    if nct is None:
        raise ValueError(f"not an NCT number: {raw!r}")
    return nct


def load_records(directory: PathLike) -> list[JSON]:
    """Study documents of a records directory, versions of one record in order.

    A directory holds study files (``NCT….json``, bare or as a history answer
    ``{"studyVersion", "study"}``) and/or one folder per record named by its NCT id holding
    that record's versions (``v0.json``, ``v1.json``, …). Other JSON files are skipped.
    """
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"records directory not found: {root}")
    files = _natural_sorted(root.glob("*.json"))
    for folder in _natural_sorted(p for p in root.iterdir() if p.is_dir()):
        if normalise_nct(folder.name):
            files.extend(_natural_sorted(folder.glob("*.json")))
    studies = (_read_study(path) for path in files)
    return [study for study in studies if study is not None]


def _natural_sorted(paths: Iterable[Path]) -> list[Path]:
    def key(path: Path) -> list[tuple[int, int | str]]:
        parts = re.split(r"(\d+)", path.name)
        return [(0, int(p)) if p.isdigit() else (1, p) for p in parts]

    return sorted(paths, key=key)


def _read_study(path: Path) -> JSON | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from exc
    if isinstance(document, dict) and isinstance(document.get("study"), dict):
        document = document["study"]
    if not isinstance(document, dict) or not isinstance(document.get(_PS), dict):
        return None
    return document


# --------------------------------------------------------------------------------------------
# Faults and request statistics
# --------------------------------------------------------------------------------------------

FAULT_KINDS = ("html", "truncated", "slow", "reset", "drift")


@dataclass(eq=False)  # compared by identity: the queue removes this very fault
class Fault:
    """A scheduled misbehaviour: the next ``remaining`` requests under ``path_prefix``.

    ``kind`` is an HTTP status ("429", "500", "503", "403", any 4xx/5xx) or one of
    FAULT_KINDS. ``remaining`` < 0 means until the faults are cleared.
    """

    kind: str
    remaining: int = 1
    path_prefix: str = "/"
    retry_after: str | None = None
    seconds: float = 5.0
    body: Any = None
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS and not re.fullmatch(r"[45]\d\d", self.kind):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.remaining == 0:
            raise ValueError("count must be positive (or negative for 'until cleared')")

    @property
    def status(self) -> int | None:
        return int(self.kind) if self.kind.isdigit() else None


class FaultQueue:
    """Faults in the order they were added; the first one matching a path fires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._sleeping: list[Fault] = []  # slow faults fired and still holding an answer

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    if fault.kind == "slow":
                        self._sleeping.append(fault)
                    return fault
        return None

    def sleep(self, fault: Fault) -> None:
        """Hold a slow answer for its seconds, or until the faults are cleared."""
        try:
            fault.released.wait(fault.seconds)
        finally:
            with self._lock:
                self._sleeping.remove(fault)

    def clear(self) -> None:
        """Drop pending faults and end slow answers in progress."""
        with self._lock:
            for fault in self._faults + self._sleeping:
                fault.released.set()
            self._faults.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)


def path_key(path: str) -> str:
    """A path with ids and version numbers replaced, for per-endpoint request counts."""
    parts = path.split("/")
    if len(parts) >= 5 and parts[1] == "api" and parts[3] == "studies":
        if parts[2] == "int" or parts[4] not in V2_SUBRESOURCES:
            parts[4] = "{id}"
        if len(parts) >= 7 and parts[5] == "history":
            parts[6] = "{n}"
    return "/".join(parts)


class RequestStats:
    """Counts of /api/ requests, and the one-at-a-time rule of the history API."""

    def __init__(self, history_gap: float = 0.0) -> None:
        self._lock = threading.Lock()
        self.history_gap = history_gap
        self._requests = 0
        self._by_path: dict[str, int] = {}
        self._history_refused = 0
        self._history_in_flight = 0
        self._history_last_end = float("-inf")

    def count(self, path: str) -> None:
        key = path_key(path)
        with self._lock:
            self._requests += 1
            self._by_path[key] = self._by_path.get(key, 0) + 1

    @contextmanager
    def history_slot(self) -> Iterator[bool]:
        """Yield whether a history request may run: none in flight and the gap respected."""
        with self._lock:
            quiet = time.monotonic() - self._history_last_end >= self.history_gap
            admitted = self._history_in_flight == 0 and quiet
            if admitted:
                self._history_in_flight += 1
            else:
                self._history_refused += 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._lock:
                    self._history_in_flight -= 1
                    self._history_last_end = time.monotonic()

    def wait_until_history_quiet(self) -> None:
        with self._lock:
            quiet_at = self._history_last_end + self.history_gap
        time.sleep(max(0.0, quiet_at - time.monotonic()))

    def reset(self) -> None:
        with self._lock:
            self._requests = 0
            self._by_path.clear()
            self._history_refused = 0

    def snapshot(self) -> JSON:
        with self._lock:
            return {
                "requests": self._requests,
                "by_path": dict(self._by_path),
                "history_refused": self._history_refused,
                "history_in_flight": self._history_in_flight,
            }


# --------------------------------------------------------------------------------------------
# The API: request → Response
# --------------------------------------------------------------------------------------------

Params = dict[str, str]


class Api:
    """The registry's endpoints over a StudyStore (no HTTP plumbing, no faults)."""

    def __init__(self, store: StudyStore) -> None:
        self.store = store
        self.history_style = "both"  # which version-list forms answer: both | query | path

    def handle(self, path: str, params: Params) -> Response:
        try:
            return self._route(path, params)
        except ApiError as exc:
            return Response.text(exc.status, exc.message)
        except QueryError as exc:
            return Response.text(400, str(exc))

    def _route(self, path: str, params: Params) -> Response:
        if path == "/api/v2/version":
            _check_known(params, frozenset())
            return Response.json(
                {"apiVersion": API_VERSION, "dataTimestamp": self.store.data_timestamp}
            )
        if path == "/api/v2/studies":
            return self.search(params)
        match = re.fullmatch(r"/api/v2/studies/([^/]+)", path)
        if match and match.group(1) not in V2_SUBRESOURCES:
            return self.study(match.group(1), params)
        match = re.fullmatch(r"/api/int/studies/([^/]+)", path)
        if match and params.get("history") == "true" and self.history_style != "path":
            return self.history_record(match.group(1))
        match = re.fullmatch(r"/api/int/studies/([^/]+)/history(?:/([^/]+))?", path)
        if match and (match.group(2) is not None or self.history_style != "query"):
            return self.history(match.group(1), match.group(2))
        return Response.text(404, "Not Found")

    # -- one study ---------------------------------------------------------------------------

    def study(self, raw_id: str, params: Params) -> Response:
        _check_known(params, STUDY_PARAMS)
        _check_format(params)
        names = _field_names(params.get("fields"))
        nct = _parse_nct(raw_id)
        version = self.store.current(nct)
        if version is not None:
            return Response.json(project(version.study, names))
        real = self.store.resolve_alias(nct)
        if real is not None:
            return _redirect(f"/api/v2/studies/{real}", params)
        raise ApiError(404, f"NCT number {nct} not found")

    # -- search ------------------------------------------------------------------------------

    def search(self, params: Params) -> Response:
        _check_known(params, STUDIES_PARAMS)
        _check_format(params)
        size = _page_size(params.get("pageSize"))
        count_total = _boolean(params, "countTotal")
        names = _field_names(params.get("fields"))
        digest = _query_digest(params)
        token = params.get("pageToken")
        offset = _decode_token(token, digest) if token else 0
        studies = self._matching(params)
        payload: JSON = {"studies": [project(s, names) for s in studies[offset : offset + size]]}
        if count_total and not token:
            payload["totalCount"] = len(studies)
        if offset + size < len(studies):
            payload["nextPageToken"] = _encode_token(offset + size, digest)
        return Response.json(payload)

    def _matching(self, params: Params) -> list[JSON]:
        studies = self.store.current_studies()
        for name in ("filter.ids", "postFilter.ids"):
            if params.get(name):
                wanted = self.store.ids_matching(_id_list(params[name], name))
                studies = [s for s in studies if nct_of(s) in wanted]
        for name in ("filter.overallStatus", "postFilter.overallStatus"):
            if params.get(name):
                statuses = _status_list(params[name], name)
                studies = [s for s in studies if _status(s) in statuses]
        studies = _apply_queries(studies, params)
        return _sorted(studies, params.get("sort"))

    # -- history -----------------------------------------------------------------------------

    def history_record(self, raw_id: str) -> Response:
        """The current record with its version list, as ``?history=true`` answers."""
        nct = _parse_nct(raw_id)
        versions = self.store.history(nct)
        if versions is None:
            raise ApiError(404, f"NCT number {nct} not found")
        return Response.json({**versions[-1].study, "history": {"changes": _changes(versions)}})

    def history(self, raw_id: str, raw_version: str | None) -> Response:
        nct = _parse_nct(raw_id)
        versions = self.store.history(nct)
        if versions is None:
            raise ApiError(404, f"NCT number {nct} not found")
        if raw_version is None:
            return Response.json({"changes": _changes(versions)})
        if not raw_version.isdigit():
            raise ApiError(400, f"Version `{raw_version}` has incorrect format")
        number = int(raw_version)
        if number >= len(versions):
            raise ApiError(404, f"Version {number} of {nct} not found")
        return Response.json({"studyVersion": number, "study": _historic(versions[number])})


def _changes(versions: list[StudyVersion]) -> list[JSON]:
    changes = []
    for version in versions:
        before = versions[version.number - 1].study if version.number else None
        changes.append(
            {
                "version": version.number,
                "date": version.date,
                "status": dig(version.study, f"{_PS}.statusModule.overallStatus"),
                "studyType": dig(version.study, f"{_PS}.designModule.studyType"),
                "moduleLabels": module_labels(before, version.study),
            }
        )
    return changes


def _historic(version: StudyVersion) -> JSON:
    # Real historic versions carry no derivedSection (see the ACTT-1 capture).
    return {key: value for key, value in version.study.items() if key != "derivedSection"}


def _apply_queries(studies: list[JSON], params: Params) -> list[JSON]:
    clauses: list[tuple[Node, tuple[str, ...]]] = []
    for name, areas in SEARCH_AREAS.items():
        if params.get(name, "").strip():
            clauses.append((parse_query(params[name]), areas))
    for name in ("filter.advanced", "postFilter.advanced"):
        if params.get(name, "").strip():
            clauses.append((parse_query(params[name]), ("@all",)))
    if not clauses:
        return studies
    return [s for s in studies if all(_Matcher(s).matches(n, a) for n, a in clauses)]


def _sorted(studies: list[JSON], sort: str | None) -> list[JSON]:
    if not sort:
        return studies
    items = [item.strip() for item in re.split(r"[,|]", sort) if item.strip()]
    if len(items) > 2:
        raise ApiError(400, "Parameter `sort` accepts at most 2 items")
    # Sorting is stable: apply the least significant key first.
    for item in reversed(items):
        studies = _sorted_by(studies, item)
    return studies


def _sorted_by(studies: list[JSON], item: str) -> list[JSON]:
    match = re.fullmatch(r"([a-zA-Z@][a-zA-Z0-9\-. ]*)(?::(asc|desc))?", item)
    if match is None:
        raise ApiError(400, f"Parameter `sort` has incorrect format: `{item}`")
    name, direction = match.group(1), match.group(2)
    if name == "@relevance":
        return studies
    path = piece_path(name)
    if path is None:
        raise ApiError(400, f"Unknown sort field `{name}`")
    descending = (direction or ("desc" if name.lower().endswith("date") else "asc")) == "desc"
    present = [(values_at(s, path), s) for s in studies]
    keyed = sorted(
        ((_sort_key(vals[0]), s) for vals, s in present if vals),
        key=lambda pair: pair[0],
        reverse=descending,
    )
    # The spec: studies missing the sort field are always last.
    return [s for _, s in keyed] + [s for vals, s in present if not vals]


def _status(study: Mapping[str, Any]) -> str | None:
    return dig(study, f"{_PS}.statusModule.overallStatus")


def _check_known(params: Params, known: frozenset[str]) -> None:
    for name in params:
        if name not in known:
            raise ApiError(400, f"`{name}` is unknown parameter")


def _check_format(params: Params) -> None:
    fmt = params.get("format", "json")
    if fmt != "json":
        raise ApiError(400, f"Parameter `format` value `{fmt}` is not served by the emulator")
    markup = params.get("markupFormat", "markdown")
    if markup not in ("markdown", "legacy"):
        raise ApiError(400, f"Parameter `markupFormat` has incorrect value `{markup}`")


def _parse_nct(raw: str) -> str:
    nct = normalise_nct(raw)
    if nct is None:
        raise ApiError(400, "Parameter `nctId` has incorrect format")
    return nct


def _field_names(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    names = [name.strip() for name in re.split(r"[,|]", raw) if name.strip()]
    if not names:
        raise ApiError(400, "Parameter `fields` must be a non-empty list")
    for name in names:
        if name != "@query" and not FIELD_NAME.match(name):
            raise ApiError(400, f"Parameter `fields` has incorrect format: `{name}`")
    return names


def _page_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise ApiError(400, "Parameter `pageSize` has incorrect format") from None
    if size < 0:
        raise ApiError(400, "Parameter `pageSize` must be greater than or equal to 0")
    return min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _boolean(params: Params, name: str) -> bool:
    raw = params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise ApiError(400, f"Parameter `{name}` must be true or false")
    return raw == "true"


def _id_list(raw: str, name: str) -> set[str]:
    ids = set()
    for item in (i.strip() for i in re.split(r"[,|]", raw)):
        nct = normalise_nct(item) if item else None
        if nct is None:
            raise ApiError(400, f"Parameter `{name}` has incorrect format: `{item}`")
        ids.add(nct)
    return ids


def _status_list(raw: str, name: str) -> set[str]:
    statuses = {item.strip() for item in re.split(r"[,|]", raw) if item.strip()}
    for status in statuses:
        if status not in STATUSES:
            raise ApiError(400, f"Parameter `{name}` has incorrect value `{status}`")
    return statuses


def _query_digest(params: Params) -> str:
    stable = sorted((k, v) for k, v in params.items() if k not in PAGING_PARAMS)
    return hashlib.sha256(json.dumps(stable).encode()).hexdigest()[:16]


def _encode_token(offset: int, digest: str) -> str:
    raw = json.dumps({"o": offset, "q": digest}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, digest: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset, query = int(decoded["o"]), str(decoded["q"])
        if offset < 0:
            raise ValueError(offset)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError(400, "Parameter `pageToken` is invalid") from None
    if query != digest:
        raise ApiError(400, "pageToken does not match the query parameters of the first page")
    return offset


def _redirect(location: str, params: Params) -> Response:
    query = urlencode(params)
    target = f"{location}?{query}" if query else location
    return Response(301, b"", "text/plain; charset=utf-8", {"Location": target})


# --------------------------------------------------------------------------------------------
# Fault rendering
# --------------------------------------------------------------------------------------------

MAINTENANCE_PAGE = (
    b"<!DOCTYPE html><html><head><title>ClinicalTrials.gov</title></head>"
    b"<body><h1>Scheduled maintenance</h1><p>ClinicalTrials.gov is temporarily unavailable."
    b"</p></body></html>"
)


def fault_response(fault: Fault) -> Response | None:
    """The answer a fault gives instead of the real one; None for faults that alter it."""
    if fault.status is not None:
        response = Response.text(fault.status, HTTPStatus(fault.status).phrase)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = fault.retry_after
        return response
    if fault.kind == "html":
        return Response(200, MAINTENANCE_PAGE, "text/html; charset=utf-8")
    return None


def altered_response(fault: Fault, path: str, response: Response) -> Response:
    """Rewrite a real answer for faults that damage it (truncated JSON, a drifted shape)."""
    if fault.kind == "truncated":
        cut = response.body[: max(1, len(response.body) // 2)]
        return Response(200, cut, "application/json")
    if fault.kind == "drift":
        body = fault.body if fault.body is not None else _drifted_body(path)
        return Response.json(body)
    return response


def _drifted_body(path: str) -> Any:
    """Valid JSON of the wrong shape for the endpoint at ``path``."""
    key = path_key(path)
    if key.endswith("/history"):
        return {"changes": {"version": "0"}}
    if key.endswith("/history/{n}"):
        return {"studyVersion": "zero", "study": []}
    if key.endswith("/studies/{id}"):
        return {"protocolSection": [], "hasResults": "unknown"}
    if key.endswith("/studies"):
        return {"studies": {}, "nextPageToken": 0}
    return {"unexpected": True}


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its emulator and can drop every open connection."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], emulator: Emulator, tls: ssl.SSLContext | None = None
    ) -> None:
        self.emulator = emulator
        self.tls = tls
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.tls is None:
            return connection, address
        # the handshake happens in the request's own thread, on its first read
        wrapped = self.tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (getfqdn), which can take a while.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        # Keep-alive connections would otherwise hold daemon threads after stop().
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ctgov-emulator/1"
    timeout = 30  # an idle keep-alive connection must not pin a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read answers, not access logs."""

    @property
    def emulator(self) -> Emulator:
        return cast(_Server, self.server).emulator

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle and delayed ACKs add
        # 40 ms to every keep-alive answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        cap = self.emulator.max_url_bytes
        if cap and url.path.startswith("/api/") and len(self.path.encode()) > cap:
            self.emulator.stats.count(url.path)
            self._send(Response.text(414, "URI Too Long"))
            return
        if url.path.startswith("/_emu/"):
            self._send(self.emulator.control("GET", url.path, None))
        elif url.path.startswith("/api/"):
            self._serve_api(url.path, dict(parse_qsl(url.query, keep_blank_values=True)))
        else:
            self._send(Response(404, b"<html><body>Not Found</body></html>", "text/html"))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path.startswith("/_emu/"):
            self._send(self.emulator.control("POST", url.path, raw))
        else:
            self._send(Response.text(405, "Method Not Allowed"))

    def _serve_api(self, path: str, params: Params) -> None:
        emulator = self.emulator
        emulator.stats.count(path)
        if emulator.latency:
            time.sleep(emulator.latency)
        is_history = path.startswith("/api/int/")
        slot = emulator.stats.history_slot() if is_history else _always_admitted()
        # The answer is made inside the history slot and sent after it: a request ends, for
        # the quiet gap, before its bytes reach the client. Sent inside, the slot closed only
        # once this thread was scheduled again after the send, and a client keeping the gap
        # from the moment it had the answer could be refused at random under load.
        with slot as admitted:
            if not admitted:
                self._send(Response.text(429, "Too Many Requests"))
                return
            fault = emulator.faults.take(path)
            if fault is not None and fault.kind == "reset":
                self._reset()
                return
            if fault is not None and fault.kind == "slow":
                emulator.faults.sleep(fault)
            answer = self._answer(path, params, fault)
        self._send(answer)

    def _answer(self, path: str, params: Params, fault: Fault | None) -> Response:
        immediate = fault_response(fault) if fault is not None else None
        if immediate is not None:
            return immediate
        try:
            response = self.emulator.api.handle(path, params)
        except Exception as exc:  # an emulator bug must show as a 500, not hang the client
            traceback.print_exc()
            response = Response.text(500, f"emulator error: {exc!r}")
        if fault is not None:
            response = altered_response(fault, path, response)
        return _with_etag(response, self.headers.get("If-None-Match"))

    def _reset(self) -> None:
        # Linger 0 turns the close into a TCP reset: the client gets no answer at all.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _send(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout ran out)


@contextmanager
def _always_admitted() -> Iterator[bool]:
    yield True


def _with_etag(response: Response, if_none_match: str | None) -> Response:
    if response.status != 200 or response.content_type != "application/json":
        return response
    etag = '"' + hashlib.sha256(response.body).hexdigest()[:20] + '"'
    if if_none_match and etag in (tag.strip() for tag in if_none_match.split(",")):
        return Response(304, b"", response.content_type, {"ETag": etag})
    response.headers["ETag"] = etag
    return response


# --------------------------------------------------------------------------------------------
# The emulator: Python API and /_emu control API
# --------------------------------------------------------------------------------------------


class Emulator:
    """A running emulator: an HTTP server in a thread over a StudyStore.

    Use ``Emulator.start(...)``; ``stop()`` (or a ``with`` block) shuts it down.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        history_gap: float = 0.0,
        history_style: str = "both",
        max_url_bytes: int = 0,
    ) -> None:
        if history_style not in ("both", "query", "path"):
            raise ValueError(f"history_style must be both, query or path, not {history_style!r}")
        self.store = StudyStore()
        self.api = Api(self.store)
        self.api.history_style = history_style
        self.max_url_bytes = max_url_bytes  # 0: no cap
        self.faults = FaultQueue()
        self.stats = RequestStats(history_gap)
        self.latency = latency
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def start(
        cls,
        records_dirs: Iterable[PathLike] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        history_gap: float = 0.0,
        history_style: str = "both",
        max_url_bytes: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> Emulator:
        """Load records and serve them on ``host:port`` (0 = a free port) from a thread;
        over HTTPS with ``tls`` (a server context holding a certificate for 127.0.0.1).

        ``latency`` delays every /api/ answer (seconds); ``history_gap`` is the quiet time the
        history API wants between requests before it stops answering 429; ``history_style``
        which version-list forms answer; ``max_url_bytes`` the longest request line served.
        """
        emulator = cls(
            latency=latency,
            history_gap=history_gap,
            history_style=history_style,
            max_url_bytes=max_url_bytes,
        )
        for directory in records_dirs:
            emulator.load(directory)
        emulator._serve(host, port, tls)
        return emulator

    def _serve(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self._server = _Server((host, port), self, tls)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},  # how long stop() waits for the loop
            name=f"ctgov-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cut slow answers short and close open connections."""
        if self._server is None:
            return
        self.faults.clear()
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        scheme = "https" if self._server is not None and self._server.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v2"

    @property
    def history_url(self) -> str:
        return f"{self.base_url}/api/int"

    # -- data --------------------------------------------------------------------------------

    def load(self, records_dir: PathLike) -> int:
        """Add every version found in a records directory; return how many.

        Each version keeps its own lastUpdatePostDate (files are served as they are).
        """
        studies = load_records(records_dir)
        for study in studies:
            self.store.add(study, as_is=True)
        return len(studies)

    def publish(self, study: Mapping[str, Any], date: str | None = None) -> int:
        """Make ``study`` the new current version of its record; return its version number.

        Its lastUpdatePostDate becomes ``date`` (yyyy-MM-dd), by default the study's own
        lastUpdatePostDate or the day after the previous version, whichever is later.
        """
        return self.store.add(study, date)

    def gone(self, nct: str) -> None:
        """The record answers 404 (and leaves searches and history) until republished."""
        self.store.retire(nct)

    def alias(self, old_id: str, real_id: str) -> None:
        """``GET /studies/{old_id}`` answers 301 to ``real_id``."""
        self.store.alias(old_id, real_id)

    def current(self, nct: str) -> JSON | None:
        """The current version of a record as served, or None."""
        version = self.store.current(_require_nct(nct))
        return copy.deepcopy(version.study) if version else None

    def version_count(self, nct: str) -> int:
        versions = self.store.history(_require_nct(nct))
        return len(versions) if versions else 0

    # -- faults ------------------------------------------------------------------------------

    def fault(
        self,
        kind: str,
        count: int = 1,
        path_prefix: str = "/api/v2",
        *,
        retry_after: int | float | str | None = None,
        seconds: float = 5.0,
        body: Any = None,
    ) -> None:
        """Misbehave on the next ``count`` requests under ``path_prefix`` (<0: until cleared).

        Kinds: an HTTP status ("429" with optional ``retry_after``, "500", "503", "403", …);
        "html" (200 text/html maintenance page); "truncated" (the real JSON cut in half);
        "slow" (answer after ``seconds``); "reset" (close the connection without answering);
        "drift" (valid JSON of a wrong shape, or ``body``).
        """
        after = None if retry_after is None else str(retry_after)
        self.faults.add(Fault(str(kind), count, path_prefix, after, float(seconds), body))

    def clear_faults(self) -> None:
        """Drop pending faults and let slow answers in progress finish now."""
        self.faults.clear()

    # -- statistics --------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Requests to /api/ since the start or the last reset (faulted ones included)."""
        return int(self.stats.snapshot()["requests"])

    @property
    def requests_by_path(self) -> dict[str, int]:
        """Request counts by path, ids as ``{id}`` and history versions as ``{n}``."""
        return dict(self.stats.snapshot()["by_path"])

    @property
    def history_in_flight(self) -> int:
        return int(self.stats.snapshot()["history_in_flight"])

    def reset_stats(self) -> None:
        """Count from zero, once the history API is quiet again. A request count is exact only
        from a quiet registry: a new process (each CLI command) cannot know how recently an
        earlier one asked for history, so its first history request could fall inside the gap,
        be refused, and be retried (one request more, depending on how fast the machine is)."""
        self.stats.wait_until_history_quiet()
        self.stats.reset()

    # -- the /_emu/ control API --------------------------------------------------------------

    def control(self, method: str, path: str, raw_body: bytes | None) -> Response:
        """Serve one control request; errors come back as 400 JSON ``{"error": …}``."""
        action = path.removeprefix("/_emu/").strip("/")
        try:
            if method == "GET" and action == "stats":
                return Response.json(self.stats.snapshot())
            if method == "POST" and action in _CONTROL_ACTIONS:
                return Response.json(_CONTROL_ACTIONS[action](self, _json_object(raw_body)))
        except (ValueError, KeyError, TypeError) as exc:
            return Response.json({"error": f"{type(exc).__name__}: {exc}"}, status=400)
        return Response.json({"error": f"unknown control {method} {path}"}, status=404)


def _json_object(raw: bytes | None) -> JSON:
    document = json.loads(raw or b"{}")
    if not isinstance(document, dict):
        raise ValueError("the body must be a JSON object")
    return document


def _control_publish(emulator: Emulator, body: JSON) -> JSON:
    study = body["study"]
    if not isinstance(study, dict):
        raise ValueError("`study` must be a JSON object")
    version = emulator.publish(study, body.get("date"))
    return {"version": version, "nct": nct_of(study)}


def _control_fault(emulator: Emulator, body: JSON) -> JSON:
    emulator.fault(
        str(body["kind"]),
        int(body.get("count", 1)),
        str(body.get("path_prefix", "/")),  # the acceptance emulator's default: every path
        retry_after=body.get("retry_after"),
        seconds=float(body.get("seconds", 5.0)),
        body=body.get("body"),
    )
    return {"ok": True}


def _control_clear_faults(emulator: Emulator, body: JSON) -> JSON:
    emulator.clear_faults()
    return {"ok": True}


def _control_gone(emulator: Emulator, body: JSON) -> JSON:
    emulator.gone(str(body["nct"]))
    return {"ok": True}


def _control_alias(emulator: Emulator, body: JSON) -> JSON:
    emulator.alias(str(body["alias"]), str(body["nct"]))
    return {"ok": True}


def _control_reset_stats(emulator: Emulator, body: JSON) -> JSON:
    emulator.reset_stats()
    return {"ok": True}


_CONTROL_ACTIONS = {
    "publish": _control_publish,
    "fault": _control_fault,
    "clear_faults": _control_clear_faults,
    "gone": _control_gone,
    "alias": _control_alias,
    "reset_stats": _control_reset_stats,
}


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve an emulated ClinicalTrials.gov API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--records", action="append", default=[], metavar="DIR", help="records to load"
    )
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay every API answer")
    parser.add_argument(
        "--history-gap-ms", type=float, default=0.0, help="quiet time the history API wants"
    )
    parser.add_argument(
        "--history-style",
        choices=["both", "query", "path"],
        default="both",
        help="which version-list forms answer",
    )
    parser.add_argument(
        "--max-url-bytes", type=int, default=0, help="longer request lines answer 414 (0: off)"
    )
    return parser.parse_args(argv)


def _write_port_file(path: Path, port: int) -> None:
    # Written whole and renamed so that a poller never reads a half-written number.
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(str(port), encoding="utf-8")
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    emulator = Emulator.start(
        args.records,
        host=args.host,
        port=args.port,
        latency=args.latency_ms / 1000,
        history_gap=args.history_gap_ms / 1000,
        history_style=args.history_style,
        max_url_bytes=args.max_url_bytes,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if args.port_file:
        _write_port_file(args.port_file, emulator.port)
    print(emulator.port, flush=True)
    stop.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
