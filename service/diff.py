"""Compare two snapshots of one registry record and describe what changed.

``diff(old, new)`` is pure (no I/O, no clock) and deterministic: the same pair of snapshots
always gives the same list of ``Change`` events, in the same order — tracked fields in the
order of ``TRACKED_FIELDS`` (the registry record's own module order), then outcome changes.
``diff(a, a) == []`` always, and a change names exactly the field that differs, by its dotted
path in the registry's raw v2 record (``protocolSection.statusModule.overallStatus``), with a
list index where it names one outcome (``protocolSection.outcomesModule.primaryOutcomes[2]``).
``old``/``new`` are JSON-ready values of the whole field: text, numbers, booleans, lists, and
dicts for dates (``{"date", "type"}``), eligibility, outcomes (``{"measure", "time_frame",
"description"}``) and list items (sites, arms, interventions: compact dicts without empty
keys). Snapshots of two different records are refused with ``InputError``.

Snapshots arrive already folded (markup, entities, whitespace), so text is compared as is.
Lists whose order carries no meaning (conditions, keywords, phases, ids, collaborators, arms,
interventions, locations) are compared as multisets, so reordering them is never a change.

Outcome pairing
---------------
The primary, secondary and other outcome lists are paired across versions as one pool, so an
outcome that moves between lists is recognised as the same outcome:

1. exact text (measure, time frame and description) within the same list, in list order;
2. exact text across lists (an outcome moved between lists);
3. the rest by similarity: token sets of the lowercase text (English function words and
   outcome boilerplate such as "number of participants with" dropped, plural ``s`` stripped),
   each field scored as the mean of the Jaccard and overlap coefficients, weighted
   measure 0.60, time frame 0.25, description 0.15 (a field empty on both sides is left out
   and the weights renormalised). A pair needs a score of at least
   ``OUTCOME_PAIR_THRESHOLD`` (0.5) and a measure similarity of at least ``MEASURE_GATE``
   (0.35), so a shared time frame or boilerplate description never pairs two different
   measures. Candidates are taken greedily, best score first (ties: same list, then nearer
   position, then list order), each outcome at most once.

Exact matching is O(n) with hashing; only the leftovers are scored pairwise, so a long outcome
list with one reworded entry costs one comparison. A paired outcome in the same list with
other text is ``outcome_modified``; in another list it is ``outcome_reclassified`` (``old`` and
``new`` are the two types), plus ``outcome_modified`` when its text changed too. Unpaired
outcomes are ``outcome_removed`` / ``outcome_added``. The index in ``field`` is the outcome's
position in the new record's list (the old record's for a removed outcome), and
``outcome_type`` is the list it is in there.

Severity
--------
==========================  =========================================================
change                      severity
==========================  =========================================================
status_changed              high when the new status is TERMINATED, WITHDRAWN or
                            SUSPENDED; otherwise medium. UNKNOWN stays medium: the
                            registry sets it when a sponsor has not verified the record
                            for two years — a bookkeeping lapse, not a decision about
                            the trial.
enrollment_changed          medium; high when the count moves by at least 50% of the old
                            count (any change from 0 is high; to or from "not given" is
                            medium)
enrollment_type_changed     medium
date_changed                primary completion: medium; start and completion: low, or
                            medium when the date moves by more than one year (either way)
phase_changed               medium
results_posted              high
outcome_* (primary)         high — any change touching a primary outcome: added, removed,
                            modified, or reclassified into or out of the primary list
outcome_* (secondary/other) medium
field_changed, medium       why stopped, lead sponsor, conditions, interventions, arms,
                            eligibility, study type, allocation, intervention model,
                            primary purpose, masking, results withdrawn
                            (hasResults true → false)
field_changed, low          brief/official title, acronym, keywords, locations,
                            collaborators, org study id, secondary ids, results first
                            posted date, last known status
==========================  =========================================================
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel

from service.errors import InputError
from service.models import (
    OUTCOME_TYPES,
    Arm,
    Change,
    ChangeKind,
    Eligibility,
    Intervention,
    Location,
    Outcome,
    OutcomeType,
    Severity,
    Snapshot,
    StudyDate,
)

__all__ = [
    "MEASURE_GATE",
    "OUTCOME_PAIR_THRESHOLD",
    "OUTCOME_PATHS",
    "TRACKED_FIELDS",
    "FieldSpec",
    "diff",
    "humanise",
    "outcome_similarity",
    "pair_outcomes",
]

SeverityRule = Callable[[Any, Any], Severity]
KindRule = Callable[[Any, Any], ChangeKind]
Style = Literal[
    "changed", "value", "text", "enum", "enums", "count", "date", "items", "named", "counted",
    "parts", "results",
]  # fmt: skip

OUTCOME_PAIR_THRESHOLD = 0.5
MEASURE_GATE = 0.35
_WEIGHTS = (0.60, 0.25, 0.15)  # measure, time frame, description
_CLIP = 80
_LIST_SHOWN = 6  # items named in a list summary before "and N more"


# --------------------------------------------------------------------------- severity rules

_STOPPED = frozenset({"TERMINATED", "WITHDRAWN", "SUSPENDED"})


def _status_severity(old: str, new: str) -> Severity:
    return "high" if new in _STOPPED else "medium"


def _enrollment_severity(old: int | None, new: int | None) -> Severity:
    if old is None or new is None:
        return "medium"
    return "high" if abs(new - old) >= 0.5 * old else "medium"


def _slip_severity(old: StudyDate, new: StudyDate) -> Severity:
    a, b = _parse_date(old.date), _parse_date(new.date)
    if a is None or b is None:
        return "low"
    return "medium" if b > _one_year_after(a) or a > _one_year_after(b) else "low"


def _results_severity(old: bool, new: bool) -> Severity:
    return "high" if new else "medium"


def _results_kind(old: bool, new: bool) -> ChangeKind:
    # Only the appearance of results has its own kind; withdrawn results are a plain field.
    return "results_posted" if new else "field_changed"


def _parse_date(text: str) -> date | None:
    """A registry date (``yyyy``, ``yyyy-MM`` or ``yyyy-MM-dd``) as the first day it covers."""
    parts = text.split("-")
    try:
        numbers = [int(p) for p in parts] + [1] * (3 - len(parts))
        return date(numbers[0], numbers[1], numbers[2])
    except (ValueError, IndexError):
        return None


def _one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


# --------------------------------------------------------------------------- the field table


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one tracked Snapshot field is reported."""

    path: str  # dotted path of the value in the registry's raw v2 record
    label: str  # human name, first word of the summary
    severity: Severity | SeverityRule
    style: Style = "changed"  # how the summary line is written
    kind: ChangeKind | KindRule = "field_changed"
    unordered: bool = False  # compared as a multiset: reordering is no change
    # old/new carry only the items that differ (a trial can list 1,000 sites; an event
    # carrying both whole lists for one site's status change would be ~150 KB)
    differences_only: bool = False


_ID = "protocolSection.identificationModule."
_STATUS = "protocolSection.statusModule."
_SPONSOR = "protocolSection.sponsorCollaboratorsModule."
_COND = "protocolSection.conditionsModule."
_DESIGN = "protocolSection.designModule."
_ARMS = "protocolSection.armsInterventionsModule."

# Every Snapshot field except registry, study_id and the three outcome lists.
TRACKED_FIELDS: dict[str, FieldSpec] = {
    "org_study_id": FieldSpec(_ID + "orgStudyIdInfo.id", "Org study ID", "low", "value"),
    "secondary_ids": FieldSpec(
        _ID + "secondaryIdInfos", "Secondary IDs", "low", "items", unordered=True
    ),
    "brief_title": FieldSpec(_ID + "briefTitle", "Brief title", "low"),
    "official_title": FieldSpec(_ID + "officialTitle", "Official title", "low"),
    "acronym": FieldSpec(_ID + "acronym", "Acronym", "low", "value"),
    "overall_status": FieldSpec(
        _STATUS + "overallStatus", "Overall status", _status_severity, "enum", "status_changed"
    ),
    "last_known_status": FieldSpec(_STATUS + "lastKnownStatus", "Last known status", "low", "enum"),
    "why_stopped": FieldSpec(_STATUS + "whyStopped", "Why stopped", "medium", "text"),
    "start_date": FieldSpec(
        _STATUS + "startDateStruct", "Start date", _slip_severity, "date", "date_changed"
    ),
    "primary_completion_date": FieldSpec(
        _STATUS + "primaryCompletionDateStruct",
        "Primary completion date",
        "medium",
        "date",
        "date_changed",
    ),
    "completion_date": FieldSpec(
        _STATUS + "completionDateStruct", "Completion date", _slip_severity, "date", "date_changed"
    ),
    "results_first_posted": FieldSpec(
        _STATUS + "resultsFirstPostDateStruct.date", "Results first posted", "low", "value"
    ),
    "lead_sponsor": FieldSpec(_SPONSOR + "leadSponsor.name", "Lead sponsor", "medium", "value"),
    "collaborators": FieldSpec(
        _SPONSOR + "collaborators", "Collaborators", "low", "items", unordered=True
    ),
    "conditions": FieldSpec(_COND + "conditions", "Conditions", "medium", "items", unordered=True),
    "keywords": FieldSpec(_COND + "keywords", "Keywords", "low", "items", unordered=True),
    "study_type": FieldSpec(_DESIGN + "studyType", "Study type", "medium", "enum"),
    "phases": FieldSpec(
        _DESIGN + "phases", "Phase", "medium", "enums", "phase_changed", unordered=True
    ),
    "allocation": FieldSpec(_DESIGN + "designInfo.allocation", "Allocation", "medium", "enum"),
    "intervention_model": FieldSpec(
        _DESIGN + "designInfo.interventionModel", "Intervention model", "medium", "enum"
    ),
    "primary_purpose": FieldSpec(
        _DESIGN + "designInfo.primaryPurpose", "Primary purpose", "medium", "enum"
    ),
    "masking": FieldSpec(_DESIGN + "designInfo.maskingInfo.masking", "Masking", "medium", "enum"),
    "enrollment_count": FieldSpec(
        _DESIGN + "enrollmentInfo.count",
        "Enrollment",
        _enrollment_severity,
        "count",
        "enrollment_changed",
    ),
    "enrollment_type": FieldSpec(
        _DESIGN + "enrollmentInfo.type",
        "Enrollment type",
        "medium",
        "enum",
        "enrollment_type_changed",
    ),
    "arms": FieldSpec(_ARMS + "armGroups", "Arms", "medium", "named", unordered=True),
    "interventions": FieldSpec(
        _ARMS + "interventions", "Interventions", "medium", "named", unordered=True
    ),
    "eligibility": FieldSpec("protocolSection.eligibilityModule", "Eligibility", "medium", "parts"),
    "locations": FieldSpec(
        "protocolSection.contactsLocationsModule.locations",
        "Locations",
        "low",
        "counted",
        unordered=True,
        differences_only=True,
    ),
    "has_results": FieldSpec("hasResults", "Results", _results_severity, "results", _results_kind),
}

OUTCOME_PATHS: dict[OutcomeType, str] = {
    "primary": "protocolSection.outcomesModule.primaryOutcomes",
    "secondary": "protocolSection.outcomesModule.secondaryOutcomes",
    "other": "protocolSection.outcomesModule.otherOutcomes",
}


# --------------------------------------------------------------------------- public API


def diff(old: Snapshot, new: Snapshot) -> list[Change]:
    """The changes from ``old`` to ``new``, two snapshots of the same record."""
    if (old.registry, old.study_id) != (new.registry, new.study_id):
        raise InputError(
            f"cannot diff {old.registry}:{old.study_id} against {new.registry}:{new.study_id}: "
            "they are different records"
        )
    if old == new:
        return []
    changes = _field_changes(old, new)
    if any(old.outcomes(t) != new.outcomes(t) for t in OUTCOME_TYPES):
        changes.extend(_outcome_changes(old, new))
    return changes


_ENUM_WORD = re.compile(r"[A-Z][A-Z0-9_]*")
_PHASE = re.compile(r"(EARLY_)?PHASE(\d)")
_HUMAN_OVERRIDES = {
    "NA": "Not applicable",
    "ACTIVE_NOT_RECRUITING": "Active, not recruiting",
    "NON_RANDOMIZED": "Non-randomized",
    "NONE": "None (open label)",
}


def humanise(enum_value: str) -> str:
    """A registry enum as a person reads it: ``RECRUITING`` → ``Recruiting``, ``PHASE2`` →
    ``Phase 2``. Text that is not an enum value comes back unchanged."""
    if enum_value in _HUMAN_OVERRIDES:
        return _HUMAN_OVERRIDES[enum_value]
    if not _ENUM_WORD.fullmatch(enum_value):
        return enum_value
    phase = _PHASE.fullmatch(enum_value)
    if phase:
        return f"{'Early ' if phase.group(1) else ''}Phase {phase.group(2)}"
    words = enum_value.replace("_", " ").lower()
    return words[:1].upper() + words[1:]


# --------------------------------------------------------------------------- field changes


class _Delta(NamedTuple):
    """How two unordered lists differ, as items of those lists."""

    added: list[Any]
    removed: list[Any]
    changed: list[Any]  # new versions of items whose identity (``_item_key``) stayed


_NO_DELTA = _Delta([], [], [])


def _field_changes(old: Snapshot, new: Snapshot) -> list[Change]:
    changes: list[Change] = []
    for name, spec in TRACKED_FIELDS.items():
        before, after = getattr(old, name), getattr(new, name)
        delta = _NO_DELTA
        if spec.unordered:
            # Computed once: it both decides "only reordered" and feeds the summary.
            delta = _multiset_delta(before, after)
            if not any(delta):
                continue
        elif before == after:
            continue
        changes.append(_field_change(new, spec, before, after, delta))
    return changes


_INNER_LISTS = (Arm, Intervention)  # models that hold a list of their own


def _fingerprints(items: Sequence[Any]) -> list[Any]:
    """Cheap hashable stand-ins for the items of one list (hashing pydantic models is several
    times slower), the items' own inner lists sorted, since their order carries no meaning.
    A Snapshot list holds one type, so the first item decides for all."""
    if not items or isinstance(items[0], str):
        return list(items)
    if isinstance(items[0], _INNER_LISTS):
        return [
            tuple(tuple(sorted(v)) if isinstance(v, tuple) else v for v in item.__dict__.values())
            for item in items
        ]
    return [tuple(item.__dict__.values()) for item in items]


def _field_change(snap: Snapshot, spec: FieldSpec, old: Any, new: Any, delta: _Delta) -> Change:
    kind = spec.kind if isinstance(spec.kind, str) else spec.kind(old, new)
    severity = spec.severity if isinstance(spec.severity, str) else spec.severity(old, new)
    shown_old, shown_new = _differences(old, new) if spec.differences_only else (old, new)
    return Change(
        registry=snap.registry,
        study_id=snap.study_id,
        kind=kind,
        field=spec.path,
        old=_jsonable(shown_old),
        new=_jsonable(shown_new),
        severity=severity,
        summary=_SUMMARISERS[spec.style](spec.label, old, new, delta),
    )


_COMPACT = (Location, Intervention, Arm)  # list items: empty keys dropped to keep events small


def _jsonable(value: Any) -> Any:
    # Hot for long lists (the whole site list goes into a location change), so plain values
    # return first and list items take the specialised ``_compact``.
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, tuple | list):
        if value and isinstance(value[0], Location):
            # Every field of a site is text: falsy means empty.
            return [{k: v for k, v in site.__dict__.items() if v} for site in value]
        if value and isinstance(value[0], _COMPACT):
            return [_compact(v) for v in value]
        return [_jsonable(v) for v in value]
    if isinstance(value, Outcome):
        return _outcome_json(value)
    if isinstance(value, _COMPACT):
        return _compact(value)
    if isinstance(value, BaseModel):
        return {k: _jsonable(v) for k, v in value.__dict__.items()}
    return value


def _compact(item: BaseModel) -> dict[str, Any]:
    # Sites, arms and interventions hold only text and tuples of text: falsy means empty.
    return {k: list(v) if isinstance(v, tuple) else v for k, v in item.__dict__.items() if v}


def _outcome_json(outcome: Outcome) -> dict[str, str]:
    return {
        "measure": outcome.measure,
        "time_frame": outcome.time_frame,
        "description": outcome.description,
    }


# --------------------------------------------------------------------------- summaries


def _clip(text: str, limit: int = _CLIP) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quote(text: str) -> str:
    return f'"{_clip(text)}"' if text else "none"


def _plain(value: Any) -> str:
    return _clip(str(value)) if value not in ("", None) else "none"


def _summary_changed(label: str, old: Any, new: Any, delta: _Delta) -> str:
    return f"{label} changed"


def _summary_value(label: str, old: Any, new: Any, delta: _Delta) -> str:
    return f"{label}: {_plain(old)} → {_plain(new)}"


def _summary_text(label: str, old: str, new: str, delta: _Delta) -> str:
    return f"{label}: {_quote(old)} → {_quote(new)}"


def _summary_enum(label: str, old: str, new: str, delta: _Delta) -> str:
    return f"{label}: {humanise(old) or 'none'} → {humanise(new) or 'none'}"


def _summary_enums(label: str, old: Sequence[str], new: Sequence[str], delta: _Delta) -> str:
    def show(values: Sequence[str]) -> str:
        return ", ".join(map(humanise, values)) or "none"

    return f"{label}: {show(old)} → {show(new)}"


def _show_date(value: StudyDate) -> str:
    if not value.date:
        return "none"
    return f"{value.date} ({value.type.lower()})" if value.type else value.date


def _summary_date(label: str, old: StudyDate, new: StudyDate, delta: _Delta) -> str:
    return f"{label}: {_show_date(old)} → {_show_date(new)}"


def _summary_items(label: str, old: Sequence[str], new: Sequence[str], delta: _Delta) -> str:
    added, removed, _ = delta
    parts = [f"+{_clip(a, 60)}" for a in added] + [f"−{_clip(r, 60)}" for r in removed]
    return f"{label}: {_join_some(parts)}"


def _item_key(item: Any) -> Any:
    """What makes two versions of a list item "the same item" (then it is changed, not new)."""
    if isinstance(item, Intervention):
        return (item.type, item.name)
    if isinstance(item, Arm):
        return item.label
    if isinstance(item, Location):
        return (item.facility, item.city, item.state, item.country)
    return item


def _item_name(item: Any) -> str:
    name = item.name if isinstance(item, Intervention) else getattr(item, "label", str(item))
    return _clip(name or "unnamed", 60)


def _summary_named(label: str, old: Sequence[Any], new: Sequence[Any], delta: _Delta) -> str:
    added, removed, changed = delta
    parts = (
        [f"+{_item_name(a)}" for a in added]
        + [f"−{_item_name(r)}" for r in removed]
        + [f"changed {_item_name(c)}" for c in changed]
    )
    return f"{label}: {_join_some(parts)}"


def _summary_counted(label: str, old: Sequence[Any], new: Sequence[Any], delta: _Delta) -> str:
    added, removed, changed = delta
    counts = ((len(added), "added"), (len(removed), "removed"), (len(changed), "changed"))
    return f"{label}: " + ", ".join(f"{n} {word}" for n, word in counts if n)


def _summary_parts(label: str, old: Eligibility, new: Eligibility, delta: _Delta) -> str:
    names = [
        name.replace("_", " ")
        for name in Eligibility.model_fields
        if getattr(old, name) != getattr(new, name)
    ]
    return f"{label} changed: {', '.join(names)}"


def _summary_results(label: str, old: bool, new: bool, delta: _Delta) -> str:
    return "Results posted" if new else "Results no longer posted"


_SUMMARISERS: dict[Style, Callable[[str, Any, Any, _Delta], str]] = {
    "changed": _summary_changed,
    "value": _summary_value,
    "text": _summary_text,
    "enum": _summary_enum,
    "enums": _summary_enums,
    "count": _summary_value,
    "date": _summary_date,
    "items": _summary_items,
    "named": _summary_named,
    "counted": _summary_counted,
    "parts": _summary_parts,
    "results": _summary_results,
}


def _join_some(parts: Sequence[str]) -> str:
    shown = ", ".join(parts[:_LIST_SHOWN])
    more = len(parts) - _LIST_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _multiset_delta(old: Sequence[Any], new: Sequence[Any]) -> _Delta:
    """How two unordered lists differ; an old and a new item with the same ``_item_key``
    (a site whose recruitment status changed) count as one changed item."""
    old_fps, new_fps = _fingerprints(old), _fingerprints(new)
    if old_fps == new_fps:  # the usual case, and cheaper than comparing the pydantic models
        return _NO_DELTA
    old_count, new_count = Counter(old_fps), Counter(new_fps)
    gone = _surplus(old, old_fps, old_count - new_count)
    came = _surplus(new, new_fps, new_count - old_count)
    by_key: dict[Any, deque[Any]] = defaultdict(deque)
    for item in gone:
        by_key[_item_key(item)].append(item)
    added: list[Any] = []
    changed: list[Any] = []
    for item in came:
        match = by_key.get(_item_key(item))
        if match:
            match.popleft()
            changed.append(item)
        else:
            added.append(item)
    removed = [item for queue in by_key.values() for item in queue]
    return _Delta(added, removed, changed)


def _differences(old: Sequence[Any], new: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """The items only ``old`` has and the items only ``new`` has (as multisets)."""
    old_fps, new_fps = _fingerprints(old), _fingerprints(new)
    old_count, new_count = Counter(old_fps), Counter(new_fps)
    return (
        _surplus(old, old_fps, old_count - new_count),
        _surplus(new, new_fps, new_count - old_count),
    )


def _surplus(items: Iterable[Any], fps: list[Any], surplus: Counter[Any]) -> list[Any]:
    """The items, in list order, that the ``surplus`` counts say have no partner."""
    left: list[Any] = []
    for fp, item in zip(fps, items, strict=True):
        if surplus[fp] > 0:
            surplus[fp] -= 1
            left.append(item)
    return left


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True)
class _Slot:
    type: OutcomeType
    index: int
    outcome: Outcome


# Function words, and the boilerplate that opens most outcome measures ("Number of
# participants with", "Change from baseline in"): matching on them would pair any two outcomes.
# fmt: off
_STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "during", "for", "from", "in", "into",
    "is", "its", "of", "on", "or", "over", "per", "the", "their", "to", "up", "vs", "versus",
    "was", "were", "which", "who", "with", "within", "after", "between", "than", "that",
    "this", "those", "number", "percentage", "proportion", "change", "baseline",
    "participant", "patient", "subject",
))
# fmt: on
_TOKEN = re.compile(r"[^\W_]+")


def _tokens(text: str, *, filtered: bool) -> frozenset[str]:
    found = set(_TOKEN.findall(text.lower()))  # deduplicated first: stemming is per word
    words = frozenset(_stem(w) for w in found if len(w) > 1 or w.isdigit())
    if filtered:
        # A measure made only of boilerplate ("Change from baseline") keeps its words.
        return words - _STOPWORDS or words
    return words


def _stem(word: str) -> str:
    # Plural "s" only: enough to match "event"/"events" without a stemming library.
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _set_similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Mean of Jaccard and overlap coefficients: overlap lets a measure that gained a
    qualifier ("Overall survival (per protocol)") still score high, Jaccard keeps a short
    subset from scoring as equal."""
    if not a or not b:
        return 1.0 if a == b else 0.0
    common = len(a & b)
    return 0.5 * (common / len(a | b) + common / min(len(a), len(b)))


@dataclass(frozen=True, slots=True)
class _Features:
    measure: frozenset[str]
    time_frame: frozenset[str]
    description: frozenset[str]


def _features(outcome: Outcome) -> _Features:
    return _Features(
        _tokens(outcome.measure, filtered=True),
        _tokens(outcome.time_frame, filtered=False),
        _tokens(outcome.description, filtered=True),
    )


def _scores(a: _Features, b: _Features) -> tuple[float, float]:
    """(overall score, measure similarity) of two outcomes' features."""
    measure = _set_similarity(a.measure, b.measure)
    total, weight = _WEIGHTS[0] * measure, _WEIGHTS[0]
    for w, x, y in (
        (_WEIGHTS[1], a.time_frame, b.time_frame),
        (_WEIGHTS[2], a.description, b.description),
    ):
        if x or y:  # a field both versions leave empty says nothing either way
            total += w * _set_similarity(x, y)
            weight += w
    return total / weight, measure


def outcome_similarity(a: Outcome, b: Outcome) -> float:
    """How alike two outcomes read, 0–1 (0 when their measures are too different to pair)."""
    score, measure = _scores(_features(a), _features(b))
    return score if measure >= MEASURE_GATE else 0.0


def pair_outcomes(
    old: Sequence[tuple[OutcomeType, Outcome]], new: Sequence[tuple[OutcomeType, Outcome]]
) -> dict[int, int]:
    """Pair two pools of typed outcomes; returns {position in ``new``: position in ``old``}.

    Unpaired positions are absent. See the module docstring for the rules.
    """
    pairs: dict[int, int] = {}
    free_old = dict.fromkeys(range(len(old)))  # an ordered set
    # Plain tuples as keys: hashing the pydantic models themselves is several times slower.
    _pair_exact(old, new, pairs, free_old, lambda t, o: (t, o.measure, o.time_frame, o.description))
    _pair_exact(old, new, pairs, free_old, lambda t, o: (o.measure, o.time_frame, o.description))
    _pair_similar(old, new, pairs, free_old)
    return pairs


def _pair_exact(
    old: Sequence[tuple[OutcomeType, Outcome]],
    new: Sequence[tuple[OutcomeType, Outcome]],
    pairs: dict[int, int],
    free_old: dict[int, None],
    key: Callable[[OutcomeType, Outcome], Any],
) -> None:
    waiting: dict[Any, deque[int]] = defaultdict(deque)
    for pos in free_old:
        waiting[key(*old[pos])].append(pos)
    for pos, item in enumerate(new):
        if pos in pairs:
            continue
        queue = waiting.get(key(*item))
        if queue:
            pairs[pos] = queue.popleft()
            del free_old[pairs[pos]]


def _pair_similar(
    old: Sequence[tuple[OutcomeType, Outcome]],
    new: Sequence[tuple[OutcomeType, Outcome]],
    pairs: dict[int, int],
    free_old: dict[int, None],
) -> None:
    free_new = [pos for pos in range(len(new)) if pos not in pairs]
    if not free_old or not free_new:
        return
    old_features = {pos: _features(old[pos][1]) for pos in free_old}
    new_features = {pos: _features(new[pos][1]) for pos in free_new}
    candidates: list[tuple[float, bool, int, int]] = []
    for o, of in old_features.items():
        for n, nf in new_features.items():
            score, measure = _scores(of, nf)
            if score >= OUTCOME_PAIR_THRESHOLD and measure >= MEASURE_GATE:
                candidates.append((-score, old[o][0] != new[n][0], o, n))
    # Best score first; on a tie the same list wins, then the nearer position, then list order.
    candidates.sort(key=lambda c: (c[0], c[1], abs(c[2] - c[3]), c[2], c[3]))
    for _, _, o, n in candidates:
        if o in free_old and n not in pairs:
            pairs[n] = o
            del free_old[o]


def _slots(snap: Snapshot) -> list[_Slot]:
    return [_Slot(t, i, o) for t in OUTCOME_TYPES for i, o in enumerate(snap.outcomes(t))]


def _outcome_changes(old: Snapshot, new: Snapshot) -> list[Change]:
    old_slots, new_slots = _slots(old), _slots(new)
    pairs = pair_outcomes(
        [(s.type, s.outcome) for s in old_slots], [(s.type, s.outcome) for s in new_slots]
    )
    changes: list[Change] = []
    for pos, slot in enumerate(new_slots):
        if pos in pairs:
            changes.extend(_paired_changes(new, old_slots[pairs[pos]], slot))
        else:
            changes.append(_outcome_event(new, "outcome_added", slot, None, slot.outcome))
    paired_old = set(pairs.values())
    changes.extend(
        _outcome_event(new, "outcome_removed", slot, slot.outcome, None)
        for pos, slot in enumerate(old_slots)
        if pos not in paired_old
    )
    return changes


def _paired_changes(snap: Snapshot, old: _Slot, new: _Slot) -> list[Change]:
    severity = _outcome_severity(old.type, new.type)
    changes: list[Change] = []
    if old.type != new.type:
        changes.append(
            _change(
                snap,
                "outcome_reclassified",
                new,
                old.type,
                new.type,
                severity,
                f'Outcome moved from {old.type} to {new.type}: "{_clip(new.outcome.measure)}"',
            )
        )
    if old.outcome != new.outcome:
        changes.append(
            _change(
                snap,
                "outcome_modified",
                new,
                _outcome_json(old.outcome),
                _outcome_json(new.outcome),
                severity,
                _modified_summary(old.outcome, new),
            )
        )
    return changes


def _outcome_event(
    snap: Snapshot, kind: ChangeKind, slot: _Slot, old: Outcome | None, new: Outcome | None
) -> Change:
    verb = "added" if kind == "outcome_added" else "removed"
    return _change(
        snap,
        kind,
        slot,
        None if old is None else _outcome_json(old),
        None if new is None else _outcome_json(new),
        _outcome_severity(slot.type),
        f'{slot.type.capitalize()} outcome {verb}: "{_clip(slot.outcome.measure)}"',
    )


def _change(
    snap: Snapshot,
    kind: ChangeKind,
    slot: _Slot,
    old: Any,
    new: Any,
    severity: Severity,
    summary: str,
) -> Change:
    return Change(
        registry=snap.registry,
        study_id=snap.study_id,
        kind=kind,
        field=f"{OUTCOME_PATHS[slot.type]}[{slot.index}]",
        old=old,
        new=new,
        severity=severity,
        summary=summary,
        outcome_type=slot.type,
    )


def _outcome_severity(*types: OutcomeType) -> Severity:
    return "high" if "primary" in types else "medium"


def _modified_summary(old: Outcome, new: _Slot) -> str:
    head = f"{new.type.capitalize()} outcome {new.index + 1}"
    after = new.outcome
    differs = [
        name
        for name, a, b in (
            ("measure", old.measure, after.measure),
            ("time frame", old.time_frame, after.time_frame),
            ("description", old.description, after.description),
        )
        if a != b
    ]
    also = f" ({' and '.join(differs[1:])} also changed)" if len(differs) > 1 else ""
    if differs[0] == "measure":
        return f"{head} reworded{also}: {_quote(old.measure)} → {_quote(after.measure)}"
    if differs[0] == "time frame":
        before, now = _quote(old.time_frame), _quote(after.time_frame)
        return f"{head} time frame changed{also}: {before} → {now}"
    return f"{head} description changed: {_quote(after.measure)}"
