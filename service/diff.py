"""Compare two snapshots of one registry record and describe what changed.

``diff(old, new)`` is pure (no I/O, no clock) and deterministic: the same pair of snapshots
always gives the same list of ``Change`` events, in the same order — tracked fields in the
order of ``TRACKED_FIELDS`` (the registry record's own module order), then outcome changes.
``diff(a, a) == []`` always, and a change names exactly the field that differs, by its dotted
path in the registry's raw record (the paths are ``service.registry.ctgov_fields``'), with a
list index where it names one outcome (``…primaryOutcomes[2]``).
``old``/``new`` are JSON-ready values of the whole field: text, numbers, booleans, lists, and
dicts for dates (``{"date", "type"}``), eligibility, outcomes (``{"measure", "time_frame",
"description"}``) and list items (sites, arms, interventions: compact dicts without empty
keys). Snapshots of two different records are refused with ``InputError``.

Snapshots arrive already folded (markup, entities, whitespace), so text is compared as is.
Lists whose order carries no meaning (conditions, keywords, phases, ids, collaborators, arms,
interventions, locations) are compared as multisets, so reordering them is never a change.
The brief summary and detailed description are ``None`` in a snapshot stored before they were
tracked: "not known", never reported, so the first sync after the upgrade reports nothing.

Outcome pairing
---------------
The primary, secondary and other outcome lists are paired across versions as one pool, so an
outcome that moves between lists is recognised as the same outcome:

1. exact text (measure, time frame and description) within the same list, in list order;
2. text equal but for cosmetic edits (``service.text.cosmetic_key``: letter case, spacing
   inside words and around hyphens, number words), within the same list, then across lists
   (an outcome moved between lists);
3. the rest by similarity: token sets of the text (``service.text.match_tokens``: case
   folded, letters and digits split so ``VO2max`` = ``VO2 max``, number words as digits, units
   in one spelling, plural ``s`` stripped, function words and outcome boilerplate such as
   "number of participants with" dropped, and clinical synonyms such as mortality/death,
   safety/adverse events, response/remission, QoL/quality of life as one concept token), each
   field scored as the mean of the Jaccard and overlap coefficients, weighted measure 0.60,
   time frame 0.25, description 0.15. A field empty on both sides is left out and the weights
   renormalised; a field empty on one side only was filled in (or emptied): an edit, so it is
   left out too, and a time frame filled in is compared as part of the measure (time points
   moved out of the measure into the new time frame). A pair needs a score of at least
   ``OUTCOME_PAIR_THRESHOLD`` (0.5) and a similarity of what the measures measure (their
   tokens without numbers and time units) of at least ``MEASURE_GATE`` (0.35), so a shared
   time frame, time points or boilerplate description never pair two different measures.
   Candidates are taken greedily, best score first (ties: same list, then nearer position,
   then list order), each outcome at most once;
4. a rewritten title: the rest pair when the description carries the outcome — at least
   ``DESCRIPTION_WORDS`` (5) distinct tokens, similar by ``DESCRIPTION_PAIR`` (0.8) or more,
   shared by no other outcome of either version, naming what both measures measure (half of
   each one's words) — and the time frames, when both are given, are similar by half or
   more ("Mental health symptoms" → "SDQ Total Difficulties score", defined by the same
   SDQ description at 6 weeks).

Between steps 2 and 3, outcomes whose text differs only editorially (see Grades: a spelling
corrected, an acronym spelled out, a placeholder filled in, time points moved into the time
frame) pair as well, in the same list first: "C-Petpide" → "C-Peptide" shares no token. Being
word by word, this step runs only up to ``MAX_EDITORIAL_PAIRS`` (2,500) leftover pairs.

Exact matching is O(n) with hashing; only the leftovers are scored pairwise, so a long outcome
list with one reworded entry costs one comparison. Past ``MAX_PAIR_SCORES`` leftover pairs the
k-th leftover of a list is tried against the k-th of the same list only (linear: 10,000
reworded outcomes diff in about 2 s instead of minutes and GBs).

One outcome gives at most one event per version step. A paired outcome in another list is
``outcome_reclassified`` (``old`` and ``new`` are the two types; the summary also says what
was reworded); in the same list with text that differs beyond the cosmetic it is
``outcome_modified``; a cosmetic edit alone gives nothing. Unpaired outcomes are
``outcome_removed`` / ``outcome_added``. ``field`` is the outcome's position in the new
record's list (the old record's for a removed outcome) and ``old_field`` its position in the
old record's (none for an added outcome), so both sides are addressable; ``outcome_type`` is
the list named by ``field``. Summaries of rewordings show both sides cut to the same place
around the first differing word (``service.text.change_window``), never the first 80
characters of each.

Grades
------
Every outcome event carries a ``grade``, as registry-history research grades outcome changes
(COMPare; the "major discrepancy" studies):

``major``
    a primary outcome added or removed, or moved between the primary and another list; a
    component joined to or taken out of a primary outcome's measure ("Overall survival" →
    "Overall survival and progression-free survival"; "Death, MI or stroke" → "Death, MI,
    stroke or hospitalisation"; in the description too when the outcome says it is a
    composite): an end point appended inside an existing entry.
``minor``
    the same outcome measured differently: time frame or time points changed, measurement
    method, metric or aggregation changed, detail added to or dropped from a definition;
    a secondary or other outcome added, removed or moved between those two lists.
``editorial``
    meaning untouched: punctuation, capitalisation, spelling corrected (one edit in a word,
    two in a long one, never a digit, never hyper/hypo or pre/post), an acronym added,
    dropped or spelled out ("OS" → "Overall survival (OS)"), a placeholder time frame or
    description ("N/A", "TBD", "see description", "-") filled in or emptied, text moved
    between the measure and the time frame or description without other change.

A registry that keeps a kind's end points as one free text (EUCTR, ISRCTN): a rewording of the
primary text beyond the editorial is ``major`` (it may add or drop an end point, which the
text cannot tell apart). A secondary or other outcome is never graded ``major`` (only a
primary outcome's changes are major discrepancies). Edits that are only cosmetic
(``cosmetic_key``) give no event.

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
outcome_*                   follows the event's grade (below): major high, minor
                            medium, editorial low
field_changed, medium       why stopped, lead sponsor, conditions, interventions, arms,
                            eligibility, study type, allocation, intervention model,
                            primary purpose, masking, results withdrawn
                            (hasResults true → false)
field_changed, low          brief/official title, acronym, brief summary, detailed
                            description, keywords, locations, collaborators, org study
                            id, secondary ids, results first posted date, last known
                            status
==========================  =========================================================
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel

from service.errors import InputError
from service.models import (
    LATE_FIELDS,
    OUTCOME_TYPES,
    Arm,
    Change,
    ChangeKind,
    CountryRecord,
    Eligibility,
    Intervention,
    Location,
    Outcome,
    OutcomeGrade,
    OutcomeType,
    Severity,
    Snapshot,
    StudyDate,
)
from service.outcome_lists import CONJUNCTION, list_items, restructure
from service.registry.catalog import registry_info
from service.registry.source import RegistryInfo

# diff_opcodes is re-exported for notify.render, whose design allows it models and diff only.
from service.text import (
    STOPWORDS,
    cased_words,
    change_window,
    cosmetic_key,
    diff_opcodes,
    match_tokens,
    plain_words,
    unlisted,
)

__all__ = [
    "DESCRIPTION_PAIR",
    "DESCRIPTION_WORDS",
    "MAX_PAIR_SCORES",
    "MEASURE_GATE",
    "OUTCOME_PAIR_THRESHOLD",
    "TRACKED_FIELDS",
    "FieldSpec",
    "diff",
    "diff_opcodes",
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
# A rewritten title still pairs when a distinctive description carries the outcome.
DESCRIPTION_PAIR = 0.8
DESCRIPTION_WORDS = 5
# an outcome is named in another registration's free text when most of its measure's words are
NAMED_IN_TEXT = 0.6
_WEIGHTS = (0.60, 0.25, 0.15)  # measure, time frame, description
# Leftover outcomes (after exact pairing) are scored pairwise up to this many pairs; past it
# (10,000 reworded outcomes would be 10^8 pairs: minutes and GBs) they pair by position.
MAX_PAIR_SCORES = 40_000
# Editorial pairing compares texts word by word (~35 µs a pair): only this many leftover
# pairs (a record's few edited outcomes) are tried; past it similarity pairing alone runs.
MAX_EDITORIAL_PAIRS = 2_500
_CLIP = 80
_CLIP_MOVED = 50  # each side of a rewording told inside a reclassification summary
_CLIP_PART = 50  # each side of one changed part of an arm, intervention or eligibility
_LIST_SHOWN = 6  # items named in a list summary before "and N more"


# --------------------------------------------------------------------------- severity rules

_STOPPED = frozenset({"TERMINATED", "WITHDRAWN", "SUSPENDED"})


def _status_severity(old: str, new: str) -> Severity:
    # the registry's words for a stopped trial: told by the lifecycle they map to
    # (``_field_changes``); this rule alone knows ClinicalTrials.gov's
    return "high" if new in _STOPPED else "medium"


def _enrollment_severity(old: int | None, new: int | None) -> Severity:
    if old is None or new is None:
        return "medium"
    return "high" if abs(new - old) >= 0.5 * old else "medium"


def _slip_severity(old: StudyDate, new: StudyDate) -> Severity:
    a, b = old.first_day(), new.first_day()
    if a is None or b is None:
        return "low"
    return "medium" if b > _one_year_after(a) or a > _one_year_after(b) else "low"


def _results_severity(old: bool, new: bool) -> Severity:
    return "high" if new else "medium"


def _results_kind(old: bool, new: bool) -> ChangeKind:
    # Only the appearance of results has its own kind; withdrawn results are a plain field.
    return "results_posted" if new else "field_changed"


def _one_year_after(day: date) -> date:
    if day.year == date.max.year:  # a record may say 9999: past it is beyond every date
        return date.max
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


# --------------------------------------------------------------------------- the field table


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one tracked Snapshot field is reported."""

    label: str  # human name, first word of the summary (a registry's own word overrides it)
    severity: Severity | SeverityRule
    style: Style = "changed"  # how the summary line is written
    kind: ChangeKind | KindRule = "field_changed"
    unordered: bool = False  # compared as a multiset: reordering is no change
    # old/new carry only the items that differ (a trial can list 1,000 sites; an event
    # carrying both whole lists for one site's status change would be ~150 KB)
    differences_only: bool = False


# Every Snapshot field a registry can name except registry, study_id, the outcome lists and
# the country records; each registry's ``RegistryInfo.paths`` says where it keeps them (a
# field it does not name is not reported) and its ``labels`` how it calls them.
TRACKED_FIELDS: dict[str, FieldSpec] = {
    "org_study_id": FieldSpec("Org study ID", "low", "value"),
    "secondary_ids": FieldSpec("Secondary IDs", "low", "items", unordered=True),
    "brief_title": FieldSpec("Brief title", "low"),
    "official_title": FieldSpec("Official title", "low"),
    "acronym": FieldSpec("Acronym", "low", "value"),
    "overall_status": FieldSpec("Overall status", _status_severity, "enum", "status_changed"),
    "last_known_status": FieldSpec("Last known status", "low", "enum"),
    "why_stopped": FieldSpec("Why stopped", "medium", "text"),
    "start_date": FieldSpec("Start date", _slip_severity, "date", "date_changed"),
    "primary_completion_date": FieldSpec(
        "Primary completion date", "medium", "date", "date_changed"
    ),
    "completion_date": FieldSpec("Completion date", _slip_severity, "date", "date_changed"),
    "results_first_posted": FieldSpec("Results first posted", "low", "value"),
    "lead_sponsor": FieldSpec("Lead sponsor", "medium", "value"),
    "collaborators": FieldSpec("Collaborators", "low", "items", unordered=True),
    "brief_summary": FieldSpec("Brief summary", "low", "text"),
    "detailed_description": FieldSpec("Detailed description", "low", "text"),
    "conditions": FieldSpec("Conditions", "medium", "items", unordered=True),
    "keywords": FieldSpec("Keywords", "low", "items", unordered=True),
    "study_type": FieldSpec("Study type", "medium", "enum"),
    "phases": FieldSpec("Phase", "medium", "enums", "phase_changed", unordered=True),
    "allocation": FieldSpec("Allocation", "medium", "enum"),
    "intervention_model": FieldSpec("Intervention model", "medium", "enum"),
    "primary_purpose": FieldSpec("Primary purpose", "medium", "enum"),
    "masking": FieldSpec("Masking", "medium", "enum"),
    "enrollment_count": FieldSpec(
        "Enrollment", _enrollment_severity, "count", "enrollment_changed"
    ),
    "enrollment_type": FieldSpec("Enrollment type", "medium", "enum", "enrollment_type_changed"),
    "enrollment_actual": FieldSpec(
        "Actual enrollment", _enrollment_severity, "count", "enrollment_changed"
    ),
    "arms": FieldSpec("Arms", "medium", "named", unordered=True),
    "interventions": FieldSpec("Interventions", "medium", "named", unordered=True),
    "eligibility": FieldSpec("Eligibility", "medium", "parts"),
    "locations": FieldSpec("Locations", "low", "counted", unordered=True, differences_only=True),
    "has_results": FieldSpec("Results", _results_severity, "results", _results_kind),
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
    info = registry_info(new.registry)
    changes = _field_changes(old, new, info)
    if old.countries != new.countries:
        changes.extend(_country_changes(old, new, info))
    if any(old.outcomes(t) != new.outcomes(t) for t in OUTCOME_TYPES):
        changes.extend(_outcome_changes(old, new, info))
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
    changed: list[tuple[Any, Any]]  # (old, new) of items whose identity (``_item_key``) stayed


_NO_DELTA = _Delta([], [], [])


def _same_but_list_markup(before: Any, after: Any) -> bool:
    """Whether two texts (or eligibilities) differ only in how a list is written: Markdown
    ``*``/``1.`` lines, an HTML list, bullet characters (``service.text.unlisted``)."""
    if isinstance(before, str) and isinstance(after, str):
        return unlisted(before) == unlisted(after)
    if isinstance(before, Eligibility) and isinstance(after, Eligibility):
        return before.model_copy(update={"criteria": unlisted(before.criteria)}) == (
            after.model_copy(update={"criteria": unlisted(after.criteria)})
        )
    return False


def _field_changes(old: Snapshot, new: Snapshot, info: RegistryInfo) -> list[Change]:
    changes: list[Change] = []
    for name, spec in TRACKED_FIELDS.items():
        path = info.paths.get(name)
        if path is None:
            continue  # the registry has no such field, or derives it from others
        before, after = getattr(old, name), getattr(new, name)
        if name in LATE_FIELDS and (before is None or after is None):
            continue  # not known in a snapshot stored before the field was tracked
        delta = _NO_DELTA
        if spec.unordered:
            # Computed once: it both decides "only reordered" and feeds the summary.
            delta = _multiset_delta(before, after)
            if not any(delta):
                continue
        elif before == after or _same_but_list_markup(before, after):
            continue
        label = info.labels.get(name, spec.label)
        change = _field_change(new, spec, path, label, (before, after), delta)
        if name == "overall_status" and info.lifecycle(after) in _STOPPING_LIFECYCLES:
            change = change.model_copy(update={"severity": "high"})
        changes.append(change)
    return changes


# --------------------------------------------------------------------------- country records

_STOPPING_LIFECYCLES = frozenset({"terminated", "suspended", "withdrawn"})


def _country_changes(old: Snapshot, new: Snapshot, info: RegistryInfo) -> list[Change]:
    """A trial registered country by country (EUCTR, CTIS's member states): each country's
    status and planned enrollment, reported in its own name (``France: Ongoing → Completed``)."""
    before = {c.country: c for c in old.countries}
    after = {c.country: c for c in new.countries}
    changes: list[Change] = []
    for code in sorted(before.keys() | after.keys()):
        was, now = before.get(code), after.get(code)
        base = f"{info.countries_path or 'countries'}.{code}"
        if was is None or now is None:
            changes.append(_country_presence(new, base, was, now))
            continue
        name = now.name or was.name or code
        if was.status != now.status:
            field = f"{base}.{info.country_keys.get('status', 'status')}"
            stopping = info.lifecycle(now.status) in _STOPPING_LIFECYCLES
            severity: Severity = "high" if stopping else "medium"
            summary = f"{name}: {was.status or 'none'} → {now.status or 'none'}"
            values = (was.status, now.status)
            changes.append(_country_change(new, "status_changed", field, values, summary, severity))
        if was.enrollment != now.enrollment:
            field = f"{base}.{info.country_keys.get('enrollment', 'enrollment')}"
            summary = (
                f"{name}: planned enrollment {_plain(was.enrollment)} → {_plain(now.enrollment)}"
            )
            severity = _enrollment_severity(was.enrollment, now.enrollment)
            values = (was.enrollment, now.enrollment)  # type: ignore[assignment]
            changes.append(
                _country_change(new, "enrollment_changed", field, values, summary, severity)
            )
    return changes


def _country_presence(
    snap: Snapshot, base: str, was: CountryRecord | None, now: CountryRecord | None
) -> Change:
    record = now or was
    assert record is not None
    name = record.name or record.country
    verb = "added" if now is not None else "removed"
    status = f" ({record.status})" if record.status else ""
    values = (_compact(was) if was else None, _compact(now) if now else None)
    severity: Severity = "low" if now is not None else "medium"
    return _country_change(
        snap, "field_changed", base, values, f"Countries: {name} {verb}{status}", severity
    )


def _country_change(
    snap: Snapshot,
    kind: ChangeKind,
    field: str,
    values: tuple[Any, Any],
    summary: str,
    severity: Severity,
) -> Change:
    return Change(
        registry=snap.registry,
        study_id=snap.study_id,
        kind=kind,
        field=field,
        old=values[0],
        new=values[1],
        severity=severity,
        summary=summary,
    )


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


def _field_change(
    snap: Snapshot,
    spec: FieldSpec,
    path: str,
    label: str,
    values: tuple[Any, Any],
    delta: _Delta,
) -> Change:
    old, new = values
    kind = spec.kind if isinstance(spec.kind, str) else spec.kind(old, new)
    severity = spec.severity if isinstance(spec.severity, str) else spec.severity(old, new)
    shown_old, shown_new = _differences(old, new) if spec.differences_only else (old, new)
    return Change(
        registry=snap.registry,
        study_id=snap.study_id,
        kind=kind,
        field=path,
        old=_jsonable(shown_old),
        new=_jsonable(shown_new),
        severity=severity,
        summary=_SUMMARISERS[spec.style](label, old, new, delta),
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


def _window_pair(old: str, new: str, limit: int = _CLIP) -> str:
    """``"old" → "new"``, both cut to the same place around their first differing word, so
    an edit far into a long text is still visible (``none`` for an empty side)."""
    before, after = change_window(old, new, limit)
    return f"{_quoted(before)} → {_quoted(after)}"


def _quoted(text: str) -> str:
    return f'"{text}"' if text else "none"


def _plain(value: Any) -> str:
    return _clip(str(value)) if value not in ("", None) else "none"


def _summary_changed(label: str, old: Any, new: Any, delta: _Delta) -> str:
    return f"{label} changed"


def _summary_value(label: str, old: Any, new: Any, delta: _Delta) -> str:
    return f"{label}: {_plain(old)} → {_plain(new)}"


def _summary_text(label: str, old: str, new: str, delta: _Delta) -> str:
    return f"{label}: {_window_pair(old, new)}"


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
        + [f"{_item_name(after)}: {_what_changed(before, after)}" for before, after in changed]
    )
    return f"{label}: {_join_some(parts, '; ')}"


_ENUM_PARTS = frozenset({"type", "sex"})  # parts of list items and eligibility holding an enum


def _what_changed(old: BaseModel, new: BaseModel) -> str:
    """The parts of one arm, intervention or eligibility that differ, each with its old and
    new value (``description "1 MIU daily" → "2 MIU daily"``, ``interventions +Drug: X``)."""
    said: list[str] = []
    for name, before in old.__dict__.items():
        after = getattr(new, name)
        if before == after:
            continue
        label = name.replace("_", " ")
        if isinstance(before, tuple):
            moves = [f"+{x}" for x in after if x not in before]
            moves += [f"−{x}" for x in before if x not in after]
            said.append(f"{label} {', '.join(moves)}")
        elif name in _ENUM_PARTS:
            said.append(f"{label} {humanise(before) or 'none'} → {humanise(after) or 'none'}")
        elif isinstance(before, str):
            said.append(f"{label} {_window_pair(before, after, _CLIP_PART)}")
        else:
            said.append(f"{label} {_yes_no(before)} → {_yes_no(after)}")
    return "; ".join(said)


def _yes_no(value: Any) -> str:
    return {True: "yes", False: "no", None: "not given"}.get(value, str(value))


def _summary_counted(label: str, old: Sequence[Any], new: Sequence[Any], delta: _Delta) -> str:
    added, removed, changed = delta
    counts = ((len(added), "added"), (len(removed), "removed"), (len(changed), "changed"))
    return f"{label}: " + ", ".join(f"{n} {word}" for n, word in counts if n)


def _summary_parts(label: str, old: Eligibility, new: Eligibility, delta: _Delta) -> str:
    return f"{label}: {_what_changed(old, new)}"


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


def _join_some(parts: Sequence[str], separator: str = ", ") -> str:
    shown = separator.join(parts[:_LIST_SHOWN])
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
    changed: list[tuple[Any, Any]] = []
    for item in came:
        match = by_key.get(_item_key(item))
        if match:
            changed.append((match.popleft(), item))
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


# (plain words that came into an entry from outcomes merged into it, words that left it for
# outcomes split out of it): see service.outcome_lists
_Moved = tuple[frozenset[str], frozenset[str]]
_NOT_MOVED: _Moved = (frozenset(), frozenset())


@dataclass(frozen=True, slots=True)
class _Slot:
    type: OutcomeType
    index: int
    outcome: Outcome
    base: str  # the registry's path to the slot's list

    @property
    def path(self) -> str:
        return f"{self.base}[{self.index}]"


@dataclass(frozen=True, slots=True)
class _Features:
    measure: frozenset[str]
    content: frozenset[str]  # the measure without numbers and time units: what is measured
    time_frame: frozenset[str]
    time_words: frozenset[str]  # the time frame without function words, to join the measure
    description: frozenset[str]


# Tokens that say when, not what: "Pain at week 12" and "Nausea at week 12" share them.
_TIME_UNITS = frozenset({"week", "month", "day", "hour", "minute", "year"})


def _features(outcome: Outcome) -> _Features:
    measure = match_tokens(outcome.measure, filtered=True)
    content = frozenset(t for t in measure if t not in _TIME_UNITS and not t[0].isdigit())
    return _Features(
        measure,
        content or measure,
        match_tokens(outcome.time_frame, filtered=False),
        match_tokens(outcome.time_frame, filtered=True),
        match_tokens(outcome.description, filtered=True),
    )


def _set_similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Mean of Jaccard and overlap coefficients: overlap lets a measure that gained a
    qualifier ("Overall survival (per protocol)") still score high, Jaccard keeps a short
    subset from scoring as equal."""
    if not a or not b:
        return 1.0 if a == b else 0.0
    common = len(a & b)
    return 0.5 * (common / len(a | b) + common / min(len(a), len(b)))


def _scores(a: _Features, b: _Features) -> tuple[float, float]:
    """(overall score, similarity of what the measures measure) of two outcomes' features.

    A time frame or description empty on one side only was filled in (or emptied): that is
    an edit, not evidence of another outcome, so it does not count against the pair. A time
    frame filled in usually takes the time points out of the measure ("Pain at 6 weeks" →
    "Pain", "6 weeks"), so the measure is then compared together with the time frame.
    """
    a_measure, b_measure = a.measure, b.measure
    total = weight = 0.0
    if bool(a.time_frame) != bool(b.time_frame):
        a_measure, b_measure = a.measure | a.time_words, b.measure | b.time_words
    elif a.time_frame:
        total, weight = _WEIGHTS[1] * _set_similarity(a.time_frame, b.time_frame), _WEIGHTS[1]
    if a.description and b.description:
        total += _WEIGHTS[2] * _set_similarity(a.description, b.description)
        weight += _WEIGHTS[2]
    total += _WEIGHTS[0] * _set_similarity(a_measure, b_measure)
    weight += _WEIGHTS[0]
    # The gate looks past the time points, so two measures taken at the same weeks never pair
    # on those alone.
    return total / weight, _set_similarity(a.content, b.content)


def outcome_similarity(a: Outcome, b: Outcome) -> float:
    """How alike two outcomes read, 0–1 (0 when their measures are too different to pair)."""
    score, measure = _scores(_features(a), _features(b))
    return score if measure >= MEASURE_GATE else 0.0


def _cosmetic(outcome: Outcome) -> tuple[str, str, str]:
    return (
        cosmetic_key(outcome.measure),
        cosmetic_key(outcome.time_frame),
        cosmetic_key(outcome.description),
    )


def pair_outcomes(
    old: Sequence[tuple[OutcomeType, Outcome]], new: Sequence[tuple[OutcomeType, Outcome]]
) -> dict[int, int]:
    """Pair two pools of typed outcomes; returns {position in ``new``: position in ``old``}.

    Unpaired positions are absent. See the module docstring for the rules.
    """
    pairs: dict[int, int] = {}
    free_old = dict.fromkeys(range(len(old)))  # an ordered set
    # Unchanged outcomes first, by their raw text: cheap, and most outcomes are unchanged.
    # Plain tuples as keys: hashing the pydantic models themselves is several times slower.
    _pair_exact(old, new, pairs, free_old, lambda t, o: (t, o.measure, o.time_frame, o.description))
    # Then edits that are only cosmetic (case, spacing, number words): in the same list, then
    # across lists (an outcome moved).
    _pair_exact(old, new, pairs, free_old, lambda t, o: (t, *_cosmetic(o)))
    _pair_exact(old, new, pairs, free_old, lambda t, o: _cosmetic(o))
    _pair_editorial(old, new, pairs, free_old)
    _pair_similar(old, new, pairs, free_old)
    _pair_by_description(old, new, pairs, free_old)
    return pairs


def unpaired_outcomes(
    a: Sequence[Outcome], b: Sequence[Outcome], *, a_text: bool = False, b_text: bool = False
) -> tuple[list[Outcome], list[Outcome]]:
    """The outcomes of ``a`` and of ``b`` (two registrations' primary outcomes) that do not
    pair, as the diff pairs a record's versions (cosmetic differences ignored). A side that
    is one free text (``*_text``: EUCTR's E.5.1, ISRCTN's primaryOutcome) holds each of the
    other side's outcomes whose measure it names (most of its words); one unnamed is apart.
    """
    if a_text and len(a) == 1:
        return [], [o for o in b if not _named_in(o, a[0])]
    if b_text and len(b) == 1:
        return [o for o in a if not _named_in(o, b[0])], []
    pairs = pair_outcomes([("primary", o) for o in a], [("primary", o) for o in b])
    paired_a = set(pairs.values())
    return (
        [o for i, o in enumerate(a) if i not in paired_a],
        [o for i, o in enumerate(b) if i not in pairs],
    )


def _named_in(outcome: Outcome, text: Outcome) -> bool:
    measure = _features(outcome).content
    if not measure:
        return True
    said = _features(text)
    words = said.measure | said.description | said.time_frame
    return len(measure & words) / len(measure) >= NAMED_IN_TEXT


def _pair_exact(
    old: Sequence[tuple[OutcomeType, Outcome]],
    new: Sequence[tuple[OutcomeType, Outcome]],
    pairs: dict[int, int],
    free_old: dict[int, None],
    key: Callable[[OutcomeType, Outcome], Any],
) -> None:
    """Pair outcomes with equal keys, each at most once, in list order (keys are computed
    only for outcomes not paired yet)."""
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
    if len(old_features) * len(new_features) > MAX_PAIR_SCORES:
        _pair_by_position(old, new, old_features, new_features, pairs, free_old)
        return
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


def _pair_editorial(
    old: Sequence[tuple[OutcomeType, Outcome]],
    new: Sequence[tuple[OutcomeType, Outcome]],
    pairs: dict[int, int],
    free_old: dict[int, None],
) -> None:
    """Outcomes whose text differs only editorially (a spelling corrected, an acronym spelled
    out, a placeholder filled in, time points moved into the time frame) pair before any
    scoring: "C-Petpide" → "C-Peptide" shares no token, yet is the same outcome. The same
    list first, then across lists; in list order."""
    free_new = [pos for pos in range(len(new)) if pos not in pairs]
    if not free_old or not free_new or len(free_old) * len(free_new) > MAX_EDITORIAL_PAIRS:
        return
    for same_list in (True, False):
        for n in free_new:
            if n in pairs:
                continue
            for o in list(free_old):
                if (old[o][0] == new[n][0]) != same_list:
                    continue
                if _editorially_equal(old[o][1], new[n][1]):
                    pairs[n] = o
                    del free_old[o]
                    break


def _editorially_equal(a: Outcome, b: Outcome) -> bool:
    if not plain_words(a.measure) or not plain_words(b.measure):
        return False
    return _moved_between_parts(a, b) or all(
        _editorial_text(before, after) for _, before, after in _reworded_parts(a, b)
    )


def _pair_by_description(
    old: Sequence[tuple[OutcomeType, Outcome]],
    new: Sequence[tuple[OutcomeType, Outcome]],
    pairs: dict[int, int],
    free_old: dict[int, None],
) -> None:
    """A rewritten title: an outcome whose measure was rewritten past the gate still pairs
    when its description carries it — a description of at least ``DESCRIPTION_WORDS`` words,
    alike by ``DESCRIPTION_PAIR`` or more, that no other outcome of either version shares —
    and its time frame does not contradict it (alike by half, or filled in or emptied)."""
    free_new = [pos for pos in range(len(new)) if pos not in pairs]
    if not free_old or not free_new or len(free_old) * len(free_new) > MAX_PAIR_SCORES:
        return
    old_keys = Counter(cosmetic_key(o.description) for _, o in old)
    new_keys = Counter(cosmetic_key(o.description) for _, o in new)
    old_features = {
        pos: _features(old[pos][1])
        for pos in free_old
        if old_keys[cosmetic_key(old[pos][1].description)] == 1
    }
    new_features = {
        pos: _features(new[pos][1])
        for pos in free_new
        if new_keys[cosmetic_key(new[pos][1].description)] == 1
    }
    candidates: list[tuple[float, bool, int, int]] = []
    for o, of in old_features.items():
        if len(of.description) < DESCRIPTION_WORDS:
            continue
        for n, nf in new_features.items():
            if len(nf.description) < DESCRIPTION_WORDS:
                continue
            said = _set_similarity(of.description, nf.description)
            if said < DESCRIPTION_PAIR:
                continue
            timed = of.time_frame and nf.time_frame
            if timed and _set_similarity(of.time_frame, nf.time_frame) < 0.5:
                continue
            if not (_named(of.content, nf.description) and _named(nf.content, of.description)):
                continue  # a boilerplate description names neither measure
            candidates.append((-said, old[o][0] != new[n][0], o, n))
    candidates.sort(key=lambda c: (c[0], c[1], abs(c[2] - c[3]), c[2], c[3]))
    for _, _, o, n in candidates:
        if o in free_old and n not in pairs:
            pairs[n] = o
            del free_old[o]


def _named(measure: frozenset[str], description: frozenset[str]) -> bool:
    """Whether a description names what a measure measures (half its words or more), or the
    measure names nothing ("Primary Outcome", "Endpoint 1": a title left as a placeholder)."""
    if measure and all(w in _UNNAMED or w.isdigit() for w in measure):
        return True
    return bool(measure) and len(measure & description) / len(measure) >= 0.5


# Words of a measure that names no outcome: "Primary Outcome", "Main endpoint 1".
_UNNAMED = frozenset(
    {"primary", "secondary", "other", "main", "outcome", "endpoint", "end", "point"}
)


def _pair_by_position(
    old: Sequence[tuple[OutcomeType, Outcome]],
    new: Sequence[tuple[OutcomeType, Outcome]],
    old_features: dict[int, _Features],
    new_features: dict[int, _Features],
    pairs: dict[int, int],
    free_old: dict[int, None],
) -> None:
    """The coarse pairing for huge leftovers (every pair scored would be quadratic: 10,000
    reworded outcomes took minutes and GBs): the k-th unpaired outcome of a list is tried
    against the k-th unpaired one of the same list only, in linear time."""
    waiting: dict[OutcomeType, deque[int]] = defaultdict(deque)
    for pos in old_features:
        waiting[old[pos][0]].append(pos)
    for n, nf in new_features.items():
        queue = waiting[new[n][0]]
        if not queue:
            continue
        o = queue.popleft()
        score, measure = _scores(old_features[o], nf)
        if score >= OUTCOME_PAIR_THRESHOLD and measure >= MEASURE_GATE:
            pairs[n] = o
            del free_old[o]


def _slots(snap: Snapshot, info: RegistryInfo) -> list[_Slot]:
    return [
        _Slot(t, i, o, info.outcome_paths.get(t, f"{t}_outcomes"))
        for t in OUTCOME_TYPES
        for i, o in enumerate(snap.outcomes(t))
    ]


def _outcome_changes(old: Snapshot, new: Snapshot, info: RegistryInfo) -> list[Change]:
    old_slots, new_slots = _slots(old, info), _slots(new, info)
    pairs = _whole_text_pairs(old_slots, new_slots) if info.outcomes_as_text else {}
    rest_old = [i for i in range(len(old_slots)) if i not in set(pairs.values())]
    rest_new = [i for i in range(len(new_slots)) if i not in pairs]
    found = pair_outcomes(
        [(old_slots[i].type, old_slots[i].outcome) for i in rest_old],
        [(new_slots[i].type, new_slots[i].outcome) for i in rest_new],
    )
    pairs |= {rest_new[n]: rest_old[o] for n, o in found.items()}
    lists = restructure(
        [(s.type, s.outcome) for s in old_slots], [(s.type, s.outcome) for s in new_slots], pairs
    )
    changes: list[Change] = []
    for pos, slot in enumerate(new_slots):
        if pos in pairs:
            moved = (
                lists.moved_in.get(pos, frozenset()),
                lists.moved_out.get(pairs[pos], frozenset()),
            )
            change = _paired_change(new, old_slots[pairs[pos]], slot, info.outcomes_as_text, moved)
            if change is not None:
                changes.append(change)
    changes.extend(
        _piece_event(new, old_slots[p.old], new_slots[p.new], p.split) for p in lists.pieces
    )
    pieces_new = {p.new for p in lists.pieces}
    pieces_old = {p.old for p in lists.pieces}
    changes.extend(
        _outcome_event(new, "outcome_added", slot)
        for pos, slot in enumerate(new_slots)
        if pos not in pairs and pos not in pieces_new
    )
    paired_old = set(pairs.values())
    changes.extend(
        _outcome_event(new, "outcome_removed", slot)
        for pos, slot in enumerate(old_slots)
        if pos not in paired_old and pos not in pieces_old
    )
    return changes


def _piece_event(snap: Snapshot, old: _Slot, new: _Slot, split: bool) -> Change:
    """The event of an outcome split out of an entry that held several (``split``), or merged
    into one: modified in the same list, reclassified when it moved to another on the way (a
    component demoted from a primary entry, or promoted into one)."""
    summary = _piece_summary(old, new, split)
    if old.type != new.type:
        grade: OutcomeGrade = "major" if "primary" in (old.type, new.type) else "minor"
        old_value: Any = old.type
        new_value: Any = new.type
        kind: ChangeKind = "outcome_reclassified"
    else:
        whole, piece = (old.outcome, new.outcome) if split else (new.outcome, old.outcome)
        grade = _piece_grade(piece, whole, new.type)
        old_value, new_value = _outcome_json(old.outcome), _outcome_json(new.outcome)
        kind = "outcome_modified"
    severity = _GRADE_SEVERITY[grade]
    return _change(snap, kind, new, old, old_value, new_value, severity, summary, grade)


def _piece_summary(old: _Slot, new: _Slot, split: bool) -> str:
    measure = _quoted(_clip(new.outcome.measure if split else old.outcome.measure))
    entry = (
        f"{old.type} outcome {old.index + 1}" if split else f"{new.type} outcome {new.index + 1}"
    )
    if old.type != new.type:
        if split:
            return f"Part of {entry} moved to {new.type}: {measure}"
        return f"{old.type.capitalize()} outcome {measure} moved into {entry}"
    if split:
        return f"{entry.capitalize()} split: {measure} is now an entry of its own"
    return f"{old.type.capitalize()} outcome {measure} merged into {entry}"


def _piece_grade(piece: Outcome, whole: Outcome, kind: OutcomeType) -> OutcomeGrade:
    """A list split or merged says the same (editorial) unless the piece says more than the
    entry did (minor); a primary composite taken apart into its components, or components
    combined into one, changes the end point the trial is judged on (major)."""
    if kind == "primary" and _composite(whole) and not _composite(piece):
        return "major"
    return "editorial" if _carried(piece, whole) else "minor"


def _carried(piece: Outcome, whole: Outcome) -> bool:
    """Whether an outcome split out of (or merged into) ``whole`` says nothing ``whole`` did not:
    its words are the whole's, and its time frame the whole's or a placeholder."""
    said = {w for _, attr in _PARTS for w in plain_words(getattr(whole, attr))}
    words = {
        w
        for _, attr in _PARTS
        if not _is_placeholder(getattr(piece, attr))
        for w in plain_words(getattr(piece, attr))
    }
    timed = (
        _is_placeholder(piece.time_frame)
        or _editorial_text(whole.time_frame, piece.time_frame)
        or set(plain_words(piece.time_frame)) <= set(plain_words(whole.time_frame))
    )
    return timed and words <= said | _JOINERS | _CONJUNCTION_WORDS


def _whole_text_pairs(old: list[_Slot], new: list[_Slot]) -> dict[int, int]:
    """A registry whose end points of a kind are one free text (EUCTR's E.5.1, ISRCTN's
    primaryOutcome): a kind holding one text on both sides is that text, rewritten however
    much (an amendment that drops one of two end points rewrites it), before any text is
    tried against another kind's (an outcome moved between kinds)."""
    pairs: dict[int, int] = {}
    for kind in OUTCOME_TYPES:
        olds = [i for i, s in enumerate(old) if s.type == kind]
        news = [i for i, s in enumerate(new) if s.type == kind]
        if len(olds) == len(news) == 1:
            pairs[news[0]] = olds[0]
    return pairs


_PARTS = (("measure", "measure"), ("time frame", "time_frame"), ("description", "description"))


def _reworded_parts(old: Outcome, new: Outcome) -> list[tuple[str, str, str]]:
    """(part name, old text, new text) of the parts whose text differs beyond the cosmetic
    (case, spacing, number words)."""
    parts = []
    for name, attr in _PARTS:
        before, after = getattr(old, attr), getattr(new, attr)
        if before != after and cosmetic_key(before) != cosmetic_key(after):
            parts.append((name, before, after))
    return parts


def _paired_change(
    snap: Snapshot, old: _Slot, new: _Slot, as_text: bool = False, moved: _Moved = _NOT_MOVED
) -> Change | None:
    """The one event of an outcome found in both versions: reclassified when it moved (the
    summary also says what was reworded), else modified when its text changed beyond the
    cosmetic, else none."""
    parts = _reworded_parts(old.outcome, new.outcome)
    if old.type == new.type and not parts:
        return None
    grade = _grade(old, new, as_text, moved)
    severity = _GRADE_SEVERITY[grade]
    if old.type != new.type:
        summary = f'Outcome moved from {old.type} to {new.type}: "{_clip(new.outcome.measure)}"'
        if parts:
            summary += f" ({_rewording(parts)})"
        return _change(
            snap, "outcome_reclassified", new, old, old.type, new.type, severity, summary, grade
        )
    return _change(
        snap,
        "outcome_modified",
        new,
        old,
        _outcome_json(old.outcome),
        _outcome_json(new.outcome),
        severity,
        _modified_summary(parts, new),
        grade,
    )


def _outcome_event(snap: Snapshot, kind: ChangeKind, slot: _Slot) -> Change:
    added = kind == "outcome_added"
    value = _outcome_json(slot.outcome)
    grade = _grade(None, slot)
    return _change(
        snap,
        kind,
        slot,
        None if added else slot,
        None if added else value,
        value if added else None,
        _GRADE_SEVERITY[grade],
        f"{slot.type.capitalize()} outcome {'added' if added else 'removed'}: "
        f'"{_clip(slot.outcome.measure)}"',
        grade,
    )


def _change(
    snap: Snapshot,
    kind: ChangeKind,
    slot: _Slot,
    old_slot: _Slot | None,
    old: Any,
    new: Any,
    severity: Severity,
    summary: str,
    grade: OutcomeGrade | None = None,
) -> Change:
    return Change(
        registry=snap.registry,
        study_id=snap.study_id,
        kind=kind,
        field=slot.path,
        old=old,
        new=new,
        severity=severity,
        summary=summary,
        outcome_type=slot.type,
        old_field=None if old_slot is None else old_slot.path,
        grade=grade,
    )


def _modified_summary(parts: list[tuple[str, str, str]], new: _Slot) -> str:
    head = f"{new.type.capitalize()} outcome {new.index + 1}"
    name, before, after = parts[0]
    also = f" ({' and '.join(p[0] for p in parts[1:])} also changed)" if parts[1:] else ""
    verb = "reworded" if name == "measure" else f"{name} changed"
    return f"{head} {verb}{also}: {_window_pair(before, after)}"


def _rewording(parts: list[tuple[str, str, str]]) -> str:
    """What a moved outcome's text change was, for its one ``outcome_reclassified``."""
    said = []
    for name, before, after in parts:
        label = "reworded" if name == "measure" else f"{name} changed"
        said.append(f"{label}: {_window_pair(before, after, _CLIP_MOVED)}")
    return "; ".join(said)


# --------------------------------------------------------------------------- outcome grades

# Time frames and descriptions that say nothing: filling one in (or emptying it) is editorial.
_PLACEHOLDERS = frozenset(
    {
        "", "a", "na", "n a", "none", "tbd", "tba", "to be determined", "not applicable",
        "not available", "see description", "see above", "see below", "see measure",
        "see outcome measure", "as above", "not specified", "unknown", "x", "0",
    }
)  # fmt: skip
# Words that join text moved between the measure and the time frame or description: "Pain at
# week 6" = "Pain" + "week 6".
_JOINERS = frozenset(
    {"a", "an", "the", "at", "in", "on", "by", "over", "during", "to", "up", "through",
     "until", "from", "for", "of", "time", "frame", "timeframe", "measured", "assessed"}
)  # fmt: skip
_CONJUNCTION_WORDS = frozenset({"and", "or", "plus", "as", "well"})
_TIME_WORDS = frozenset(
    {"week", "weeks", "month", "months", "day", "days", "hour", "hours", "minute", "minutes",
     "year", "years", "wk", "wks", "mo", "yr", "yrs", "h", "hr", "hrs", "baseline", "visit",
     "end", "treatment", "follow", "up", "followup", "time", "point", "points"}
)  # fmt: skip
# Prefixes a one-letter "typo" can flip into the opposite meaning.
_OPPOSITES = (("hyper", "hypo"), ("pre", "post"), ("in", "ex"), ("increase", "decrease"))
# An acronym: two capitals at least ("OS", "HbA1c", "iDFS"), or a capital and a digit ("FEV1").
_ACRONYM = re.compile(r"(?=[a-z0-9]*[A-Z])(?=.*[A-Z].*[A-Z]|[A-Z].*\d)[A-Za-z0-9]{2,10}")
# What says an outcome is a composite, whose components are end points of their own.
_COMPOSITE_WORDS = frozenset({"composite", "mace", "combined"})
_GRADE_SEVERITY: dict[OutcomeGrade, Severity] = {
    "major": "high",
    "minor": "medium",
    "editorial": "low",
}


def _is_placeholder(text: str) -> bool:
    return " ".join(plain_words(text)) in _PLACEHOLDERS or not plain_words(text)


def _acronym_edit(before: str, after: str) -> bool:
    """Whether ``after`` is ``before`` with acronyms added, dropped or spelled out and nothing
    else: "Overall survival" → "Overall survival (OS)", "OS" → "Overall survival",
    "FEV1" → "Forced expiratory volume in 1 second (FEV1)"."""
    a, b = cased_words(before), cased_words(after)
    la, lb = [w.lower() for w in a], [w.lower() for w in b]
    ops = difflib.SequenceMatcher(a=la, b=lb, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            continue
        if i2 - i1 <= j2 - j1:
            one, run, words, at, end = a[i1:i2], b[j1:j2], b, j1, j2
        else:
            one, run, words, at, end = b[j1:j2], a[i1:i2], a, i1, i2
        following = words[end] if end < len(words) else ""
        if not _acronym_change(one, run, words[:at], following):
            return False
    return True


def _acronym_change(one: list[str], run: list[str], before: list[str], following: str) -> bool:
    """One side of a difference is an acronym alone (or nothing) and the other its words, the
    acronym after its words, or the acronym alone after the words it stands for (or the
    words alone before the acronym they spell out)."""
    if not one:
        if len(run) == 1 and _acronym_of(run[0], before[-2 * len(run[0]) - 2 :]):
            return True  # "(OS)" added after "overall survival"
        return _acronym_of(following, run, whole=True)  # "forced … second" before "(FEV1)"
    if len(one) != 1 or not _ACRONYM.fullmatch(one[0]):
        return False
    acronym = one[0]
    if run and run[-1].lower() == acronym.lower():
        run = run[:-1]
    return bool(run) and _acronym_of(acronym, run, whole=True)


def _acronym_of(acronym: str, words: Sequence[str], *, whole: bool = False) -> bool:
    """Whether ``acronym`` stands for the last words of ``words`` (all of them if ``whole``):
    they start with its first letter and hold its letters in order, about one word a letter."""
    if not _ACRONYM.fullmatch(acronym):
        return False
    letters = acronym.lower()
    sizes = [len(words)] if whole else range(1, len(words) + 1)
    for size in sizes:
        run = [w.lower() for w in words[len(words) - size :]]
        if not run or run[0][0] != letters[0]:
            continue
        meaningful = [w for w in run if w not in _JOINERS]
        if len(meaningful) > len(letters) + 1:
            continue
        joined = iter("".join(run))
        if all(c in joined for c in letters):
            return True
    return False


def _typo(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` with a spelling mistake corrected (or made): one edit (two in a
    long word) in a word of five letters or more ("pain" → "gain" is another word), a plural
    ``s``, no digit touched, no prefix turned into its opposite."""
    if a == b or a + "s" == b or a == b + "s":
        return True
    if any(c.isdigit() for c in a + b) or min(len(a), len(b)) < 5:
        return False
    for x, y in _OPPOSITES:
        if (a.startswith(x) and b.startswith(y)) or (a.startswith(y) and b.startswith(x)):
            return False
    allowed = 2 if min(len(a), len(b)) >= 9 else 1
    return _edits(a, b, allowed) <= allowed


def _edits(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance of ``a`` and ``b`` (a transposition is one edit),
    cut off past ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[len(b)]


def _same_words(a: list[str], b: list[str]) -> bool:
    """Equal word lists but for spelling corrections and words joined or split."""
    if a == b or "".join(a) == "".join(b):
        return True
    if len(a) != len(b):
        return False
    return all(_typo(x, y) for x, y in zip(a, b, strict=True))


def _editorial_text(before: str, after: str) -> bool:
    """Whether two texts of one outcome part say the same: punctuation, capitalisation,
    spelling, an acronym added or spelled out, or a placeholder filled in or emptied."""
    blank_before, blank_after = _is_placeholder(before), _is_placeholder(after)
    if blank_before and blank_after:
        return True  # "N/A" → "", "TBD" → "-": nothing said either way
    if blank_before and before.strip():
        return True  # a placeholder filled in
    if blank_before or blank_after:
        return False  # text given where there was none, or dropped: detail added or lost
    a, b = plain_words(before), plain_words(after)
    if _same_words(a, b):
        return True
    return _acronym_edit(before, after)


def _moved_between_parts(old: Outcome, new: Outcome) -> bool:
    """Whether the outcome's words are the same once the parts are read as one text: time
    points moved out of the measure into the time frame (or back), a definition moved into
    the description. Placeholders and joining words ("at", "over") are left out."""

    def words(outcome: Outcome) -> Counter[str]:
        said: Counter[str] = Counter()
        for _, attr in _PARTS:
            text = getattr(outcome, attr)
            if not _is_placeholder(text):
                said.update(w for w in plain_words(text) if w not in _JOINERS)
        return said

    return words(old) == words(new)


def _component_change(
    before: str,
    after: str,
    moved: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset()),
) -> bool:
    """Whether ``after`` is ``before`` with a component (an end point) joined to it or taken
    out of it: the words inserted or deleted come with a conjunction ("and", ";", "/") and
    name something measured, not a time point."""
    a, b = Counter(plain_words(before)), Counter(plain_words(after))
    added, dropped = set(b - a), set(a - b)
    # words that came from (or went to) another part of the outcome were moved, not joined
    added = added - _CONJUNCTION_WORDS - moved[0]
    dropped = dropped - _CONJUNCTION_WORDS - moved[1]
    if (added and dropped) or not (added or dropped):
        return False  # a rewording, not a component joined or taken out
    content = {
        w
        for w in added or dropped
        if not w[0].isdigit() and w not in STOPWORDS and w not in _JOINERS
        and w not in _TIME_WORDS
    }  # fmt: skip
    longer, shorter = (after, before) if added else (before, after)
    joins = _joins(longer) > _joins(shorter)
    return bool(content) and joins


def _joins(text: str) -> int:
    """How many components ``text`` joins: conjunctions, and the items of a list."""
    return len(CONJUNCTION.findall(text)) + list_items(text)


def _only_moved(a: Outcome, b: Outcome, moved: _Moved) -> bool:
    """Whether ``a`` became ``b`` only by giving words to outcomes split out of it (``moved[1]``)
    or taking words from outcomes merged into it (``moved[0]``): the rest says the same."""
    into, out = moved
    if not (into or out):
        return False
    ignored = _CONJUNCTION_WORDS | _JOINERS | STOPWORDS
    for _, attr in _PARTS:
        before, after = (
            Counter(plain_words(getattr(a, attr))),
            Counter(plain_words(getattr(b, attr))),
        )
        if not ({w for w in after - before} - ignored <= into):
            return False
        if not ({w for w in before - after} - ignored <= out):
            return False
    return True


def _other_words(a: Outcome, b: Outcome, part: str) -> tuple[frozenset[str], frozenset[str]]:
    """(words the other parts than ``part`` lost, words they gained) from ``a`` to ``b``: text
    moved from there into ``part`` (or out of it there) is not a component joined or taken
    out."""

    def words(o: Outcome) -> frozenset[str]:
        return frozenset(
            w for _, attr in _PARTS if attr != part for w in plain_words(getattr(o, attr))
        )

    return words(a) - words(b), words(b) - words(a)


def _composite(outcome: Outcome) -> bool:
    words = plain_words(outcome.measure) + plain_words(outcome.description)
    return not _COMPOSITE_WORDS.isdisjoint(words) or "major adverse" in " ".join(words)


def _grade(
    old: _Slot | None, new: _Slot | None, as_text: bool = False, moved: _Moved = _NOT_MOVED
) -> OutcomeGrade:
    """How much an outcome event changes what the trial measures (module docstring, Grades).

    ``as_text``: the registry keeps a kind's end points as one free text (EUCTR's E.5.1,
    ISRCTN's primaryOutcome), so a rewording of the primary text may add or drop an end point
    that cannot be told apart: major unless editorial."""
    if old is None or new is None:  # added or removed
        slot = new or old
        assert slot is not None
        return "major" if slot.type == "primary" else "minor"
    primary = "primary" in (old.type, new.type)
    if old.type != new.type:
        return "major" if primary else "minor"
    a, b = old.outcome, new.outcome
    if _editorially_equal(a, b) or _only_moved(a, b, moved):
        return "editorial"
    if as_text and primary and not _editorial_text(a.measure, b.measure):
        return "major"
    lost, gained = _other_words(a, b, "measure")
    if primary and (
        _component_change(a.measure, b.measure, (lost | moved[0], gained | moved[1]))
        or (
            _composite(a)
            and _composite(b)
            and _component_change(a.description, b.description, _other_words(a, b, "description"))
        )
    ):
        return "major"
    return "minor"
