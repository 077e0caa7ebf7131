"""Render one notification: the webhook JSON body, and an email's subject, text and HTML parts.

Pure: no I/O, no clock. The same ``Message`` always renders to the same bytes, so a retried
delivery carries exactly what the first attempt carried (the webhook signature covers the body,
and receivers deduplicate on the event id).

A ``Message`` is either one study's changes (``study.changed``) or a digest of several studies'
changes (``digest``). Shapes follow the contract ("Webhook delivery"): ``webhook_payload`` is
``{"id", "type", "created_at", "study": {"registry", "study_id", "title", "url"}, "changes"}``,
and a digest replaces ``study``/``changes`` with ``"studies": [{"study", "changes"}, …]``.

Registry text is untrusted. The HTML part is a Jinja2 template (``templates/email/``) with
autoescaping: this module hands it plain values and diff nodes, never markup, so every piece of
registry text is escaped where the template writes it; the plain-text part carries it as text,
and the subject folds it onto one line. The HTML is self-contained (inline styles only: mail
clients drop ``<style>`` blocks and block remote assets).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.diff import diff_opcodes, humanise
from service.errors import InputError
from service.findings.words import FindingWords, finding_words
from service.models import StoredChange, severity_rank
from service.registry.catalog import registry_info
from service.templates import macro as template_macro
from service.templates import render as render_template

__all__ = [
    "SUBJECT_MAX",
    "Message",
    "MessageKind",
    "Rendered",
    "StudyChanges",
    "compare_url",
    "email_html",
    "email_subject",
    "email_text",
    "finding_detail",
    "render",
    "study_url",
    "webhook_body",
    "webhook_payload",
]

MessageKind = Literal["study.changed", "digest", "alert"]

SUBJECT_MAX = 120  # most clients show ~70–130 characters of a subject; past that it is noise
_VALUE_MAX = 40  # one value (a status, a date) inside the subject
_TEXT_VALUE_MAX = 1000  # one old/new text in the plain-text part; the HTML shows it whole
_CONTEXT_WORDS = 12  # unchanged words kept either side of a change in a long text
_PROSE_WORDS = 4  # a text of more words than this is diffed word by word
_ITEMS_SHOWN = 50  # list items shown per change (a trial can change 1,000 sites at once)


# --------------------------------------------------------------------------- the message


class StudyChanges(BaseModel):
    """One study and the changes a message reports for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    registry: str = "ctgov"
    study_id: str
    title: str = ""
    changes: list[StoredChange]


class Alert(BaseModel):
    """An operational alert about trialwatch itself (not about a trial)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str  # registry_unreachable | schema_drift | dead_letters
    summary: str
    details: list[str] = []


class Message(BaseModel):
    """What one delivery carries. ``event_id`` is the idempotency key receivers see."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Printable ASCII without spaces: it goes verbatim into mail and HTTP headers.
    event_id: str = Field(pattern=r"^[!-~]{1,200}$")
    created_at: datetime
    kind: MessageKind
    studies: list[StudyChanges]
    alert: Alert | None = None  # kind "alert" only

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        # SQLite hands datetimes back naive; the store writes them in UTC.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    @model_validator(mode="after")
    def _one_study_per_event(self) -> Message:
        if self.kind == "study.changed" and len(self.studies) != 1:
            raise ValueError(f"a study.changed message has one study, not {len(self.studies)}")
        if (self.kind == "alert") != (self.alert is not None):
            raise ValueError("an alert message, and only an alert message, carries an alert")
        return self

    @property
    def change_count(self) -> int:
        return sum(len(study.changes) for study in self.studies)


@dataclass(frozen=True, slots=True)
class Rendered:
    """Everything the senders need, rendered once."""

    subject: str
    text: str
    html: str
    body: bytes  # the webhook JSON body


def render(message: Message) -> Rendered:
    return Rendered(
        subject=email_subject(message),
        text=email_text(message),
        html=email_html(message),
        body=webhook_body(message),
    )


def _alert_subject(alert: Alert) -> str:
    return _clip(_one_line(f"trialwatch alert: {alert.summary}"), SUBJECT_MAX)


def _alert_text(message: Message, alert: Alert) -> str:
    lines = [alert.summary, "", *alert.details, "", "-- ", f"trialwatch · event {message.event_id}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- links


def study_url(registry: str, study_id: str) -> str | None:
    """The registry's public page of a study; None for registries without a known one."""
    try:
        return registry_info(registry).study_url(study_id)
    except InputError:
        return None


def compare_url(
    registry: str, study_id: str, from_version: int | None, to_version: int | None
) -> str | None:
    """The registry's side-by-side view of two of its own versions, when both are known
    (only a registry that numbers versions has one)."""
    if from_version is None or to_version is None:
        return None
    try:
        compare = registry_info(registry).compare_url
    except InputError:
        return None
    return compare(study_id, from_version, to_version) if compare else None


# --------------------------------------------------------------------------- webhook JSON


def _study_json(study: StudyChanges) -> dict[str, Any]:
    return {
        "registry": study.registry,
        "study_id": study.study_id,
        "title": study.title,
        "url": study_url(study.registry, study.study_id),
    }


def webhook_payload(message: Message) -> dict[str, Any]:
    """The webhook body as a JSON-ready dict, keys in the contract's order."""
    payload: dict[str, Any] = {
        "id": message.event_id,
        "type": message.kind,
        "created_at": message.created_at.astimezone(UTC).isoformat(),
    }
    if message.alert is not None:
        payload["alert"] = message.alert.model_dump()
    elif message.kind == "study.changed":
        study = message.studies[0]
        payload["study"] = _study_json(study)
        payload["changes"] = [change.to_json() for change in study.changes]
    else:
        payload["studies"] = [
            {"study": _study_json(s), "changes": [c.to_json() for c in s.changes]}
            for s in message.studies
        ]
    return payload


def webhook_body(message: Message) -> bytes:
    """The exact bytes POSTed and signed: compact UTF-8 JSON, keys in a fixed order."""
    return json.dumps(
        webhook_payload(message), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


# --------------------------------------------------------------------------- subject

_DATE_NAMES = {
    "startDateStruct": "start",
    "primaryCompletionDateStruct": "primary completion",
    "completionDateStruct": "completion",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def _one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _short(value: Any) -> str:
    """A value as the subject shows it: humanised, one line, clipped."""
    if value is None or value == "":
        return "none"
    if isinstance(value, list | tuple):
        return "/".join(_short(v) for v in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _clip(_one_line(humanise(str(value))), _VALUE_MAX)


def _date_short(value: Any) -> str:
    return _short(value.get("date")) if isinstance(value, dict) else _short(value)


def _date_type(value: Any) -> str:
    return str(value.get("type") or "") if isinstance(value, dict) else ""


def _became_actual(old_type: Any, new_type: Any) -> str:
    return " (actual)" if new_type == "ACTUAL" and old_type != "ACTUAL" else ""


def _date_phrase(change: StoredChange) -> str:
    name = _DATE_NAMES.get(change.field.rsplit(".", 1)[-1], "date")
    old_type, new_type = _date_type(change.old), _date_type(change.new)
    old_date, new_date = _date_short(change.old), _date_short(change.new)
    if old_date == new_date:
        return f"{name} date {_short(old_type).lower()} → {_short(new_type).lower()}"
    return f"{name} {old_date} → {new_date}{_became_actual(old_type, new_type)}"


def _field_phrase(change: StoredChange) -> str:
    # The diff's summaries open with the field's label ("Arms: changed X"): keep the label.
    head, colon, _ = change.summary.partition(":")
    head = _one_line(head)
    if colon and not head.endswith("changed"):
        head += " changed"
    return head[:1].lower() + head[1:]


def _phrase(change: StoredChange, enrollment_type: StoredChange | None) -> str:
    """A change in a few words for the subject."""
    kind, old, new = change.kind, change.old, change.new
    outcome = f"{change.outcome_type} outcome" if change.outcome_type else "outcome"
    match kind:
        case "status_changed":
            return f"{_short(old)} → {_short(new)}"
        case "enrollment_changed":
            # "30 → 28 (actual)": the count and its type read as one fact.
            suffix = ""
            if enrollment_type is not None:
                suffix = _became_actual(enrollment_type.old, enrollment_type.new)
            return f"enrollment {_short(old)} → {_short(new)}{suffix}"
        case "enrollment_type_changed":
            return f"enrollment {_short(old).lower()} → {_short(new).lower()}"
        case "date_changed":
            return _date_phrase(change)
        case "phase_changed":
            return f"{_short(old)} → {_short(new)}"
        case "results_posted":
            return "results posted"
        case "record_added":
            return "first seen"
        case "record_unavailable":
            return "no longer served by the registry"
        case "outcome_added":
            return f"{outcome} added"
        case "outcome_removed":
            return f"{outcome} removed"
        case "outcome_modified":
            return f"{outcome} reworded"
        case "outcome_reclassified":
            return f"outcome moved {_short(old).lower()} → {_short(new).lower()}"
    return _field_phrase(change)


# Within one severity, the facts readers scan a subject for come first.
_HEADLINE_ORDER = {
    "status_changed": 0,
    "record_unavailable": 0,
    "results_posted": 1,
    "enrollment_changed": 2,
    "enrollment_type_changed": 2,
    "outcome_added": 3,
    "outcome_removed": 3,
    "outcome_modified": 3,
    "outcome_reclassified": 3,
    "phase_changed": 4,
    "date_changed": 5,
    "record_added": 6,
}


def _headline_first(changes: Iterable[StoredChange]) -> list[StoredChange]:
    return sorted(
        changes, key=lambda c: (-severity_rank(c.severity), _HEADLINE_ORDER.get(c.kind, 7))
    )


def _by_severity(changes: Iterable[StoredChange]) -> list[StoredChange]:
    """Most severe first; the original order otherwise (sorted() is stable)."""
    return sorted(changes, key=lambda c: -severity_rank(c.severity))


def _phrases(changes: Sequence[StoredChange]) -> list[str]:
    """Subject phrases, most severe first; repeats folded into one with a count."""
    enrollment_type = next((c for c in changes if c.kind == "enrollment_type_changed"), None)
    has_count = any(c.kind == "enrollment_changed" for c in changes)
    phrases = [
        _phrase(c, enrollment_type)
        for c in _headline_first(changes)
        # The type is already told by the count's phrase ("… (actual)").
        if not (has_count and c is enrollment_type and _became_actual(c.old, c.new))
    ]
    counts = Counter(phrases)
    unique = list(dict.fromkeys(phrases))
    return [p if counts[p] == 1 else f"{p} (×{counts[p]})" for p in unique]


def _fit(prefix: str, phrases: Sequence[str], limit: int) -> str:
    """``prefix`` and as many phrases as fit in ``limit``, then "+N more"."""
    shown: list[str] = []
    for i, phrase in enumerate(phrases):
        rest = len(phrases) - i - 1
        more = f"; +{rest} more" if rest else ""
        candidate = prefix + "; ".join([*shown, phrase])
        if len(candidate + more) > limit and shown:
            return prefix + "; ".join(shown) + f"; +{len(phrases) - i} more"
        shown.append(phrase)
    return _clip(prefix + "; ".join(shown), limit)


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def email_subject(message: Message) -> str:
    """``NCT05605665: Recruiting → Completed; enrollment 30 → 28 (actual)``, or for a digest
    ``trialwatch digest: 3 studies, 7 changes``. One line, at most ``SUBJECT_MAX`` characters."""
    if message.alert is not None:
        return _alert_subject(message.alert)
    if message.kind == "digest":
        studies = _plural(len(message.studies), "study", "studies")
        return f"trialwatch digest: {studies}, {_plural(message.change_count, 'change', 'changes')}"
    study = message.studies[0]
    prefix = f"{_clip(_one_line(study.study_id), 40)}: "
    room = SUBJECT_MAX - len(prefix) - len("; +999 more")  # one phrase never crowds out the rest
    phrases = [_clip(p, room) for p in _phrases(study.changes)] or ["changed"]
    return _fit(prefix, phrases, SUBJECT_MAX)


# --------------------------------------------------------------------------- grouping


@dataclass(frozen=True, slots=True)
class _Group:
    """The changes of one study between one pair of versions."""

    from_version: int | None
    to_version: int | None
    changes: list[StoredChange]

    @property
    def detected_at(self) -> datetime:
        return min(c.detected_at for c in self.changes)


def _groups(study: StudyChanges) -> list[_Group]:
    """Changes by version pair, pairs in order of first appearance, most severe first."""
    pairs: dict[tuple[int | None, int | None], list[StoredChange]] = {}
    for change in study.changes:
        pairs.setdefault((change.from_version, change.to_version), []).append(change)
    return [_Group(a, b, _by_severity(changes)) for (a, b), changes in pairs.items()]


def _versions_label(group: _Group) -> str:
    if group.from_version is None and group.to_version is None:
        return "Changes"
    if group.from_version is None:
        return f"Version {group.to_version}"
    return f"Versions {group.from_version} → {group.to_version}"


def _when(moment: datetime) -> str:
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------------- plain text


def email_text(message: Message) -> str:
    """The plain-text part: every study, its links and its changes with old and new text."""
    if message.alert is not None:
        return _alert_text(message, message.alert)
    lines: list[str] = []
    if message.kind == "digest":
        lines += [email_subject(message), ""]
    for study in message.studies:
        lines += _study_text(study)
    lines += ["-- ", f"trialwatch · event {message.event_id}"]
    return "\n".join(lines) + "\n"


def _study_text(study: StudyChanges) -> list[str]:
    page = study_url(study.registry, study.study_id)
    lines = [f"{study.study_id}: {_one_line(study.title)}" if study.title else study.study_id]
    if page:
        lines.append(page)
    lines.append("")
    for group in _groups(study):
        link = compare_url(study.registry, study.study_id, group.from_version, group.to_version)
        lines.append(f"{_versions_label(group)} (detected {_when(group.detected_at)})")
        if link:
            lines.append(f"Compare: {link}")
        for change in group.changes:
            lines.append(f"  [{change.severity}] {change.summary}")
            details = (
                _finding_text(change)
                if change.kind in _FINDING_KINDS
                else _text_details(change.old, change.new)
            )
            lines += [f"      {detail}" for detail in details]
        lines.append("")
    return lines


def _text_details(old: Any, new: Any) -> list[str]:
    """Old and new wording of texts a summary clips (outcomes, why stopped, criteria)."""
    if isinstance(old, str) and isinstance(new, str) and _is_prose(old, new):
        return [f"was: {_text_value(old)}", f"now: {_text_value(new)}"]
    if isinstance(old, dict) or isinstance(new, dict):
        before, after = old or {}, new or {}
        details = []
        for key in _keys(before, after):
            a, b = before.get(key, ""), after.get(key, "")
            if a != b and isinstance(a, str) and isinstance(b, str) and _is_prose(a, b):
                details += [f"{_label(key)} was: {_text_value(a)}"]
                details += [f"{_label(key)} now: {_text_value(b)}"]
        return details
    return []


def _finding_text(change: StoredChange) -> list[str]:
    """A finding's evidence as ``Label: value`` lines, its outcome steps as was/now."""
    resolved = change.kind == "finding_resolved"
    words = _event_words(change)
    lines = ["Resolved: the rule no longer holds. It held on:"] if resolved else []
    lines += [f"{row.label}: {_text_value(row.text)}" for row in words.rows]
    for step in words.steps:
        lines.append(f"{step.title}:")
        for before, after in step.pairs:
            lines += [f"  was: {_text_value(before)}", f"  now: {_text_value(after)}"]
    return lines


def _text_value(text: str) -> str:
    return _clip(_one_line(text), _TEXT_VALUE_MAX) if text else "(none)"


# --------------------------------------------------------------------------- HTML
#
# The HTML part is ``templates/email/message.html``. This half of the module decides what it
# shows: a view of each study, its version groups and changes, and for each change a diff node
# (``_Node``) that the template's ``diff`` macro draws. No markup is made here.

_SEVERITY_COLOURS = {"high": "#b42318", "medium": "#b54708", "low": "#475467"}
_STYLES: dict[str, Any] = {  # inline styles of the shared macros (templates/macros.html)
    "del": "background:#fee4e2;color:#912018;text-decoration:line-through",
    "ins": "background:#dcfae6;color:#085d3a;text-decoration:none",
    "muted": "color:#667085",
    "link": "color:#175cd3",
    "severity": _SEVERITY_COLOURS,
}
_ENUM_KEYS = frozenset({"type", "status", "sex"})  # dict keys whose values are registry enums
# Fields whose values are registry enums (shown humanised: RECRUITING → Recruiting).
_ENUM_FIELDS = (
    "overallStatus",
    "lastKnownStatus",
    "enrollmentInfo.type",
    "phases",
    "studyType",
    "allocation",
    "interventionModel",
    "primaryPurpose",
    "masking",
)

NodeKind = Literal["scalar", "words", "rows", "items", "plain", "ins", "del"]


@dataclass(frozen=True, slots=True)
class _Row:
    label: str
    value: _Node
    muted: bool = False


@dataclass(frozen=True, slots=True)
class _Item:
    how: Literal["diff", "ins", "del", "note"]
    text: str
    inner: _Node | None = None


@dataclass(frozen=True, slots=True)
class _Node:
    """One piece of a visual diff; ``kind`` says which fields it uses."""

    kind: NodeKind
    text: str = ""  # plain, ins, del
    old: str = ""  # scalar
    new: str = ""
    segments: tuple[tuple[str, str], ...] = ()  # words: (equal|del|ins|gap, text)
    rows: tuple[_Row, ...] = ()
    items: tuple[_Item, ...] = ()


@dataclass(frozen=True, slots=True)
class _ChangeView:
    severity: str
    summary: str
    historical: bool
    detail: _Node | None


@dataclass(frozen=True, slots=True)
class _GroupView:
    label: str
    compare_url: str | None
    detected: str
    changes: list[_ChangeView]


@dataclass(frozen=True, slots=True)
class _StudyView:
    study_id: str
    title: str
    url: str | None
    groups: list[_GroupView]


def email_html(message: Message) -> str:
    """The HTML part: a visual diff per change, grouped by study, every registry text escaped."""
    if message.alert is not None:
        return _alert_html(message, message.alert)
    page = render_template(
        "email/message.html",
        title=email_subject(message),
        heading=message.kind == "digest",
        studies=[study_view(study) for study in message.studies],
        event_id=message.event_id,
        s=_STYLES,
    )
    return page + "\n"


def _alert_html(message: Message, alert: Alert) -> str:
    page = render_template(
        "email/alert.html",
        title=_alert_subject(alert),
        summary=alert.summary,
        details=alert.details,
        event_id=message.event_id,
    )
    return page + "\n"


def study_view(study: StudyChanges) -> _StudyView:
    return _StudyView(
        study_id=study.study_id,
        title=study.title,
        url=study_url(study.registry, study.study_id),
        groups=[_group_view(study, group) for group in _groups(study)],
    )


def _group_view(study: StudyChanges, group: _Group) -> _GroupView:
    return _GroupView(
        label=_versions_label(group),
        compare_url=compare_url(
            study.registry, study.study_id, group.from_version, group.to_version
        ),
        detected=_when(group.detected_at),
        changes=[_change_view(c) for c in group.changes],
    )


def _change_view(change: StoredChange) -> _ChangeView:
    return _ChangeView(
        severity=change.severity,
        summary=change.summary,
        historical=change.historical,
        detail=change_detail(change),
    )


def change_detail(change: StoredChange) -> _Node | None:
    """The visual diff of one change, by the shape of its values (None: nothing to show)."""
    old, new = change.old, change.new
    if change.kind in _FINDING_KINDS:
        return finding_detail(_event_words(change), resolved=change.kind == "finding_resolved")
    if change.kind in ("record_added", "record_unavailable", "results_posted"):
        return None
    if change.kind == "date_changed":
        return _scalar(_date_text(old), _date_text(new))
    enum = change.field.endswith(_ENUM_FIELDS)
    return _value_diff(old, new, enum=enum, context=change.kind.startswith("outcome_"))


_FINDING_KINDS = ("finding_opened", "finding_resolved")


def _event_words(change: StoredChange) -> FindingWords:
    """A finding event's detail in words, its days counted from the day it was detected (an
    event is rendered the same on every delivery and at every feed poll)."""
    detail = change.new if change.kind == "finding_opened" else change.old
    today = None if change.kind == "finding_resolved" else change.detected_at.date()
    return finding_words(detail if isinstance(detail, dict) else {}, today)


def finding_detail(words: FindingWords, *, resolved: bool = False) -> _Node | None:
    """A finding's evidence as labelled rows (``service.findings.words``), its outcome steps
    as before/after word diffs; a resolved finding's evidence is shown as it was, muted, under
    a line saying it is resolved (not struck through: nothing was deleted)."""
    rows = [_Row("Resolved", _Node("plain", text="the rule no longer holds; it held on"))]
    rows = rows if resolved else []
    rows += [_Row(row.label, _Node("plain", text=row.text), muted=resolved) for row in words.rows]
    for step in words.steps:
        items = [_outcome_item(before, after) for before, after in step.pairs]
        if step.unchanged:
            items.append(_Item("note", _plural(step.unchanged, "outcome", "outcomes") + " kept"))
        items += [_Item("note", change) for change in step.changes]
        rows.append(_Row(step.title, _Node("items", items=tuple(items)), muted=resolved))
    return _Node("rows", rows=tuple(rows)) if rows else None


def _outcome_item(before: str, after: str) -> _Item:
    if before and after:
        return _Item("diff", "", _Node("words", segments=_word_segments(before, after)))
    return _Item("ins", after) if after else _Item("del", before)


def _value_diff(old: Any, new: Any, *, enum: bool = False, context: bool = False) -> _Node | None:
    if isinstance(old, dict) or isinstance(new, dict):
        return _dict_diff(_as_dict(old), _as_dict(new), context=context)
    if isinstance(old, list) or isinstance(new, list):
        return _list_diff(_as_list(old), _as_list(new), enum=enum)
    if isinstance(old, str) and isinstance(new, str) and _is_prose(old, new):
        return _Node("words", segments=_word_segments(old, new))
    return _scalar(_shown(old, enum), _shown(new, enum))


def _scalar(old: str, new: str) -> _Node:
    return _Node("scalar", old=old, new=new)


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _shown(value: Any, enum: bool = False) -> str:
    """A scalar or a list of scalars as text ("" for nothing)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list | tuple):
        return ", ".join(_shown(v, enum) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{_label(k)}: {_shown(v, k in _ENUM_KEYS)}" for k, v in value.items())
    text = str(value)
    return humanise(text) if enum else text


def _date_text(value: Any) -> str:
    if not isinstance(value, dict) or not value.get("date"):
        return ""
    kind = str(value.get("type") or "")
    return f"{value['date']} ({humanise(kind).lower()})" if kind else str(value["date"])


def _is_prose(old: str, new: str) -> bool:
    return max(len(old.split()), len(new.split())) > _PROSE_WORDS


def _label(key: str) -> str:
    words = key.replace("_", " ")
    return words[:1].upper() + words[1:]


def _keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys([*old, *new]))


def _dict_diff(old: dict[str, Any], new: dict[str, Any], *, context: bool = False) -> _Node | None:
    """One row per key that differs (and, with ``context``, the unchanged ones as they are)."""
    rows: list[_Row] = []
    for key in _keys(old, new):
        a, b = old.get(key), new.get(key)
        enum = key in _ENUM_KEYS
        if a == b:
            if context and a not in (None, ""):
                rows.append(_Row(_label(key), _Node("plain", text=_shown(a, enum)), muted=True))
            continue
        if not old:  # a new item: no strike-through of nothing on every row
            value = _Node("ins", text=_shown(b, enum))
        elif not new:
            value = _Node("del", text=_shown(a, enum))
        else:
            value = _value_diff(a, b, enum=enum) or _Node("plain")
        rows.append(_Row(_label(key), value))
    return _Node("rows", rows=tuple(rows)) if rows else None


def _item_key(item: Any) -> Any:
    """What makes two versions of a list item the same item (an arm by its label, a site by
    where it is), so a changed item is shown as a diff, not as a removal and an addition."""
    if not isinstance(item, dict):
        return item
    if "label" in item:
        return ("label", item["label"])
    if "name" in item:
        return ("name", item.get("type"), item["name"])
    place = tuple(item.get(k) for k in ("facility", "city", "state", "country"))
    if any(place):
        return ("place", *place)
    return ("item", json.dumps(item, sort_keys=True))


def _item_name(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    for key in ("label", "name", "facility", "city", "country"):
        if item.get(key):
            return str(item[key])
    return "item"


def _list_diff(old: list[Any], new: list[Any], *, enum: bool = False) -> _Node | None:
    """Removed items struck through, added items highlighted, changed items diffed."""
    gone = _surplus(old, new)
    came = _surplus(new, old)
    by_key: dict[Any, list[Any]] = {}
    for item in gone:
        by_key.setdefault(_item_key(item), []).append(item)
    rows: list[_Item] = []
    for item in came:
        partners = by_key.get(_item_key(item))
        if partners and isinstance(item, dict):
            before = partners.pop(0)
            rows.append(_Item("diff", _item_name(item), _dict_diff(before, item) or _Node("plain")))
        else:
            rows.append(_Item("ins", _shown(item, enum)))
    rows += [_Item("del", _shown(item, enum)) for items in by_key.values() for item in items]
    if len(rows) > _ITEMS_SHOWN:
        hidden = len(rows) - _ITEMS_SHOWN
        rows = [*rows[:_ITEMS_SHOWN], _Item("note", f"and {hidden} more")]
    kept = len(new) - len(came)
    if kept and (gone or came):
        rows.append(_Item("note", f"{kept} unchanged"))
    return _Node("items", items=tuple(rows)) if rows else None


def _surplus(items: list[Any], others: list[Any]) -> list[Any]:
    """The items of ``items`` with no equal partner in ``others`` (as multisets, in order)."""
    spare = Counter(_hashable(o) for o in others)
    left = []
    for item in items:
        key = _hashable(item)
        if spare[key] > 0:
            spare[key] -= 1
        else:
            left.append(item)
    return left


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


# --------------------------------------------------------------------------- word diff

_TOKEN = re.compile(r"\s+|\S+")


def _word_diff(old: str, new: str) -> str:
    """``old`` → ``new`` word by word as the email shows it (the shared ``word_diff`` macro)."""
    return str(template_macro("macros.html", "word_diff")(_word_segments(old, new), _STYLES))


def _word_segments(old: str, new: str) -> tuple[tuple[str, str], ...]:
    """``old`` → ``new`` word by word: removed words, added ones, and the unchanged stretches
    between them, long ones cut to a few words of context (a ``gap`` where words were cut)."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    # Spaces are junk: they may extend a match but never anchor one, so "the" ≠ "a" does not
    # split a sentence into fragments around the spaces between them. diff_opcodes bounds the
    # cost (a whole-text rewrite of 50k words falls back to sentences, then one replacement).
    parts: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in diff_opcodes(a, b, str.isspace):
        if op == "equal":
            parts += _context(a[i1:i2], at_start=i1 == 0, at_end=i2 == len(a))
            continue
        parts.append(("del", "".join(a[i1:i2])))
        parts.append(("ins", "".join(b[j1:j2])))
    return tuple((kind, text) for kind, text in parts if text or kind == "gap")


def _context(tokens: list[str], *, at_start: bool, at_end: bool) -> list[tuple[str, str]]:
    """Unchanged text, shortened to ``_CONTEXT_WORDS`` words next to each change."""
    words = [i for i, t in enumerate(tokens) if not t.isspace()]
    keep_head = 0 if at_start else _CONTEXT_WORDS
    keep_tail = 0 if at_end else _CONTEXT_WORDS
    if len(words) <= keep_head + keep_tail + _CONTEXT_WORDS:
        return [("equal", "".join(tokens))]
    head_end = words[keep_head - 1] + 1 if keep_head else 0
    tail_start = words[-keep_tail] if keep_tail else len(tokens)
    return [
        ("equal", "".join(tokens[:head_end])),
        ("gap", ""),
        ("equal", "".join(tokens[tail_start:])),
    ]
