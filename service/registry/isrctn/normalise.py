"""An ISRCTN record → ``Snapshot``: the tracked fields, folded and ordered.

The raw record is what ``client.fetch`` returns: ``{"isrctn": "ISRCTN12949496", "xml":
"<fullTrial>…</fullTrial>", "as_of": "yyyy-mm-dd"}``. Pure functions: no I/O, no clock. The
promise to callers: ``normalise`` and ``record_meta`` raise nothing but ``RecordInvalid``,
whose message names the offending path under ``<trial>`` (``participants.recruitmentEnd:
expected a date …``) or the raw record's key (``as_of: …``).

Status. ISRCTN stores none: the registry computes it whenever a page is shown, so the record
carries the day it was fetched (``as_of``) and the status is computed for that day, in this
order (the registry's rule, registries.md §2.3, as ctrdata's ``f.statusRecruitment`` applies
it):

1. an editor's override, ``participants.recruitmentStatusOverride`` then
   ``trialDesign.overallStatusOverride`` (``Stopped``, ``Suspended`` …), as written;
2. ``Completed`` when ``participants.recruitmentEnd`` is before ``as_of``;
3. ``participants.recruitmentStartStatusOverride`` when set (it overrides what the start
   date says, so it holds until recruitment ends);
4. ``Not yet recruiting`` when ``participants.recruitmentStart`` is after ``as_of``;
5. ``Ongoing`` when either date is known (recruitment runs on ``as_of``), else "".

So the same record read on two days either side of its recruitment end is ``Ongoing`` and
then ``Completed``: a status change is seen at the first fetch after the day passes.

Dates are the registry's days (``2015-05-07T00:00:00.000Z`` → ``2015-05-07``), ``ACTUAL``
when before ``as_of`` and ``ESTIMATED`` otherwise (ISRCTN marks neither). The start is
``trialDesign.overallStartDate`` where a record has one, else the recruitment start (the
registry's "trial start date"); the completion is ``trialDesign.overallEndDate``.

Outcomes. Structured ``primaryOutcomes/outcomeMeasure`` (``variable``, ``method``,
``timepoints``), when a record has them, are one ``Outcome`` each (measure, description, time
frame). Otherwise the free text ``primaryOutcome`` / ``secondaryOutcome`` is ONE outcome: it
is not split on its numbered list, because the registry's texts mix several lists, headings,
shared time points ("Measured at 21 days.") and, after an edit, the earlier list under
"Previous secondary outcome measures:" (ISRCTN appends rather than overwrites); a split
would invent outcomes. A reworded text is then one ``outcome_modified``.

Text is folded (``service.text.fold_text``) as one line: ISRCTN's texts are plain, so a line
that starts "1. " is the registry's own numbering and is kept.

Enrolment: ``targetEnrolment`` and ``totalFinalEnrolment`` are free text; the number is read
when the text holds exactly one (``120``, ``120 participants``, ``1,200``), else None.
Identifiers: every number ``externalRefs`` names (EudraCT, ClinicalTrials.gov, IRAS, each
``secondaryNumbers/secondaryNumber``) but the protocol number itself (``org_study_id``) and the
record's own, placeholders ("Nil known", "N/A" …) dropped. Sponsor: the ``<sponsor>`` blocks
beside ``<trial>`` that ``parties/sponsorId`` names (the first is the lead), else none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

from lxml import etree

from service.errors import RecordInvalid
from service.models import Outcome, RecordMeta, Snapshot, StudyDate
from service.registry.isrctn.fields import INFO, lifecycle, parse_id
from service.registry.isrctn.xml import parse_full_trial
from service.registry.shape import describe, invalid, sorted_set
from service.text import fold_text

__all__ = ["computed_status", "normalise", "record_meta", "whole_number"]

Element = etree._Element

# Texts the registry's forms put where a number is not known (case and a final stop ignored).
PLACEHOLDERS = frozenset(
    {
        "nil known", "nil", "none", "none known", "n/a", "na", "not applicable", "not known",
        "unknown", "not available", "not provided", "not assigned", "not yet assigned",
        "to be determined", "tbd", "tbc", "-", "0",
    }
)  # fmt: skip
_ISO_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})(?:T[0-9:.]*(?:Z|[+-]\d{2}:?\d{2})?)?", re.ASCII)
_DIGITS = re.compile(r"\d{8}", re.ASCII)
_NUMBER = re.compile(r"\d[\d,]*", re.ASCII)
_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+", re.ASCII)
_MAX_INT = 2**63 - 1
_PROTOCOL_TYPE = "protocol serial number"  # secondaryNumber@numberType of a protocol number


# --- public API -----------------------------------------------------------------------------


def normalise(raw: object) -> Snapshot:
    """The tracked content of one fetched ISRCTN record, its status computed for ``as_of``."""
    full, trial, study_id = _record(raw)
    as_of = _as_of(raw)
    description = _child(trial, "trialDescription")
    design = _child(trial, "trialDesign")
    participants = _child(trial, "participants")
    org_study_id = _org_study_id(trial)
    lead, *others = _sponsors(full, trial)
    status = computed_status(participants, design, as_of)
    return Snapshot(
        registry=INFO.key,
        study_id=study_id,
        org_study_id=org_study_id,
        secondary_ids=_secondary_ids(trial, study_id, org_study_id),
        brief_title=_text(description, "title"),
        official_title=_text(description, "scientificTitle"),
        acronym=_present(_text(description, "acronym")),
        overall_status=status,
        lifecycle=lifecycle(status),
        why_stopped=_text(design, "reasonAbandoned"),
        study_type=_text(design, "primaryStudyDesign"),
        phases=sorted_set(_texts(trial, "interventions/intervention/phase")),
        enrollment_count=_enrolment(participants, "targetEnrolment"),
        enrollment_actual=_enrolment(participants, "totalFinalEnrolment"),
        start_date=_start_date(design, participants, as_of),
        completion_date=_study_date(design, "trialDesign", "overallEndDate", as_of),
        conditions=sorted_set(_texts(trial, "conditions/condition/description")),
        primary_outcomes=_outcomes(description, "primary"),
        secondary_outcomes=_outcomes(description, "secondary"),
        lead_sponsor=lead,
        collaborators=sorted_set(iter(others)),
        brief_summary=_text(description, "plainEnglishSummary"),
        detailed_description="",
        has_results=_has_results(trial),
        results_first_posted=_results_first_posted(trial),
    )


def record_meta(raw: object) -> RecordMeta:
    """The untracked facts of a record: its id and ``trial@lastUpdated`` as the registry gives
    it (an ISO time). ISRCTN's ``trial@version`` is a counter of edits, not a version anyone
    can fetch, so ``registry_version`` stays None."""
    _full, trial, study_id = _record(raw)
    updated = (trial.get("lastUpdated") or "").strip()
    if updated and _ISO_DAY.fullmatch(updated) is None:
        raise invalid("lastUpdated", "an ISO time (yyyy-mm-ddThh:mm:ss.sssZ)", updated)
    return RecordMeta(study_id=study_id, registry_version=None, last_update_posted=updated)


def computed_status(participants: Element | None, design: Element | None, as_of: date) -> str:
    """The status ISRCTN shows on ``as_of`` (the order is the module docstring's)."""
    for override in (
        _text(participants, "recruitmentStatusOverride"),
        _text(design, "overallStatusOverride"),
    ):
        if override:
            return override
    start = _day(participants, "participants", "recruitmentStart")
    end = _day(participants, "participants", "recruitmentEnd")
    if end is not None and end < as_of:
        return "Completed"
    start_override = _text(participants, "recruitmentStartStatusOverride")
    if start_override:
        return start_override
    if start is not None and as_of < start:
        return "Not yet recruiting"
    return "Ongoing" if start is not None or end is not None else ""


def whole_number(text: str) -> int | None:
    """The number a free-text count holds when it holds exactly one (``"120 participants"``
    → 120, ``"1,200"`` → 1200); None for no number or several (``"60 (30 per arm)"``)."""
    numbers: set[int] = set()
    for token in _NUMBER.findall(text):
        token = token.rstrip(",")
        if "," in token and _GROUPED.fullmatch(token) is None:
            return None  # "20,30": a list, or a decimal comma: not one number
        number = int(token.replace(",", ""))
        if number > _MAX_INT:
            return None
        numbers.add(number)
    return numbers.pop() if len(numbers) == 1 else None


# --- the raw record -----------------------------------------------------------------------------


def _record(raw: object) -> tuple[Element, Element, str]:
    """``(fullTrial, trial, study id)`` of a raw record, checked."""
    if not isinstance(raw, dict):
        raise RecordInvalid(
            f"expected an ISRCTN record {{isrctn, xml, as_of}}, got {describe(raw)}"
        )
    xml = raw.get("xml")
    if not isinstance(xml, str) or not xml.strip():
        raise invalid("xml", "the record's <fullTrial> XML text", xml)
    full = parse_full_trial(xml, "xml")
    trial = full.find("trial")
    if trial is None:
        raise RecordInvalid("xml: the <fullTrial> holds no <trial>")
    digits = (trial.findtext("isrctn") or "").strip()
    if _DIGITS.fullmatch(digits) is None:
        raise invalid("isrctn", "the ISRCTN number's 8 digits", digits)
    study_id = f"ISRCTN{digits}"
    named = raw.get("isrctn")
    if named is not None and (not isinstance(named, str) or parse_id(named) != study_id):
        raise RecordInvalid(f"isrctn: the record is {study_id}, not {describe(named)}")
    return full, trial, study_id


def _as_of(raw: object) -> date:
    value = raw.get("as_of") if isinstance(raw, dict) else None
    if value is None:
        raise RecordInvalid("as_of: missing; the day the record was fetched computes its status")
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise invalid("as_of", "a day (yyyy-mm-dd)", value) from None


# --- fields -----------------------------------------------------------------------------------


def _org_study_id(trial: Element) -> str:
    """The sponsor's protocol number: ``protocolSerialNumber``, else the first secondary number
    the registry types as one (newer records keep it there)."""
    serial = _present(_text(trial, "externalRefs/protocolSerialNumber"))
    if serial:
        return serial
    for number in trial.iterfind("externalRefs/secondaryNumbers/secondaryNumber"):
        if (number.get("numberType") or "").casefold() == _PROTOCOL_TYPE:
            value = _present(_fold(number))
            if value:
                return value
    return ""


def _secondary_ids(trial: Element, study_id: str, org_study_id: str) -> tuple[str, ...]:
    refs = _child(trial, "externalRefs")
    values = [
        *(_text(refs, key) for key in ("eudraCTNumber", "clinicalTrialsGovNumber", "irasNumber")),
        *_texts(refs, "secondaryNumbers/secondaryNumber"),
    ]
    own = {study_id.casefold(), study_id.removeprefix("ISRCTN"), org_study_id.casefold()}
    kept = (_present(value) for value in values)
    return sorted_set(value for value in kept if value and value.casefold() not in own)


def _enrolment(participants: Element | None, key: str) -> int | None:
    return whole_number(_text(participants, key))


def _start_date(design: Element | None, participants: Element | None, as_of: date) -> StudyDate:
    overall = _study_date(design, "trialDesign", "overallStartDate", as_of)
    if overall.date:
        return overall
    return _study_date(participants, "participants", "recruitmentStart", as_of)


def _study_date(parent: Element | None, where: str, key: str, as_of: date) -> StudyDate:
    day = _day(parent, where, key)
    if day is None:
        return StudyDate()
    return StudyDate(date=day.isoformat(), type="ACTUAL" if day < as_of else "ESTIMATED")


def _outcomes(description: Element | None, kind: str) -> tuple[Outcome, ...]:
    """Structured outcome measures when the record has them, else its one free text."""
    if description is None:
        return ()
    measures = tuple(
        outcome
        for item in description.iterfind(f"{kind}Outcomes/outcomeMeasure")
        if (outcome := _measure(item)) is not None
    )
    if measures:
        return measures
    text = _text(description, f"{kind}Outcome")
    return (Outcome(measure=text),) if text else ()


def _measure(item: Element) -> Outcome | None:
    outcome = Outcome(
        measure=_text(item, "variable"),
        description=_text(item, "method"),
        time_frame=_text(item, "timepoints"),
    )
    return outcome if outcome != Outcome(measure="") else None


def _sponsors(full: Element, trial: Element) -> list[str]:
    """Sponsor organisations, the lead first: the blocks ``parties/sponsorId`` names, in its
    order (every block when the record names none); ``[""]`` when there is none."""
    blocks = full.findall("sponsor")
    ids = [value for value in _texts(trial, "parties/sponsorId") if value]
    if ids:
        by_id = {(block.get("id") or "").strip(): block for block in blocks}
        blocks = [by_id[i] for i in ids if i in by_id]
    names = [_text(block, "organisation") for block in blocks]
    unique = list(dict.fromkeys(name for name in names if name))
    return unique or [""]


def _has_results(trial: Element) -> bool:
    """Results posted: the publication stage says so, a basic or plain English results report
    is given, or an output is of a results type (``basicresults``, ``resultsarticle`` …)."""
    results = _child(trial, "results")
    stage = _text(results, "publicationStage").casefold()
    reports = (_present(_text(results, key)) for key in ("basicReport", "plainEnglishReport"))
    return stage == "results" or any(reports) or any(True for _ in _result_outputs(trial))


def _results_first_posted(trial: Element) -> str:
    """The earliest upload day of a results output, "" when none says."""
    days = []
    for output in _result_outputs(trial):
        stamp = (output.get("dateUploaded") or output.get("dateCreated") or "").strip()
        match = _ISO_DAY.fullmatch(stamp)
        if match:
            days.append(match.group(1))
    return min(days, default="")


def _result_outputs(trial: Element) -> Iterator[Element]:
    for output in trial.iterfind("outputs/output"):
        if "results" in (output.get("outputType") or "").casefold():
            yield output


# --- readers: a missing element is "" / None; a malformed date is RecordInvalid ---------------


def _child(parent: Element, key: str) -> Element | None:
    return parent.find(key)


def _text(parent: Element | None, path: str) -> str:
    """The folded text of the first element at ``path`` ("" when there is none)."""
    if parent is None:
        return ""
    node = parent.find(path)
    return _fold(node) if node is not None else ""


def _texts(parent: Element | None, path: str) -> Iterator[str]:
    if parent is None:
        return
    for node in parent.iterfind(path):
        yield _fold(node)


def _fold(node: Element) -> str:
    """An element's text folded as one line: ISRCTN's texts are plain, so a line that starts
    "1. " is the registry's own numbering, kept (folded as multi-line Markdown it would go)."""
    return fold_text(" ".join("".join(node.itertext()).split()))


def _present(value: str) -> str:
    """``value``, or "" when it is a placeholder for "none" ("Nil known", "N/A" …)."""
    return "" if value.rstrip(".").strip().casefold() in PLACEHOLDERS else value


def _day(parent: Element | None, where: str, key: str) -> date | None:
    if parent is None:
        return None
    node = parent.find(key)
    text = "".join(node.itertext()).strip() if node is not None else ""
    if not text:
        return None
    match = _ISO_DAY.fullmatch(text)
    try:
        if match is None:
            raise ValueError
        return date.fromisoformat(match.group(1))
    except ValueError:
        raise invalid(f"{where}.{key}", "a date (yyyy-mm-ddThh:mm:ss.sssZ)", text) from None
