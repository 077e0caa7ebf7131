"""Publication versus registry: what a seed document reports that its registration does not say.

Pure functions, in the spirit of the COMPare project's hand checks:

==================  =======================================================  ===========
field               discrepancy                                              severity
==================  =======================================================  ===========
enrollment          reported size differs from the registered count          high ≥ 50%,
                                                                             medium ≥ 20%,
                                                                             else low
enrollment_type     the registry still gives an ESTIMATED count although     medium
                    the study is completed or its results are published
primary_outcome     a primary outcome of the document is registered only     high
                    as a secondary/other outcome
primary_outcome     a primary outcome of the document is not registered      medium
registered_primary  a registered primary outcome the document does not       medium
                    report as primary (only when it lists primaries)
phase               reported and registered phases differ                    medium
status              a registry page's status differs from the record; or     medium
                    results are published while the record is still open
start_date          the registered start is after the publication year       high
primary_completion  the registered primary completion is after the           medium
                    publication year
==================  =======================================================  ===========

Outcomes are matched with ``service.diff.outcome_similarity`` on the measure (and the time
frame where the document gives one), at the diff's own pairing threshold.

Every registry compares (the record is the latest stored snapshot of the linked registry,
as its catalog normaliser made it), each on what it gives; a fact a registry does not keep
is "not compared", never a discrepancy:

- phases are read as ClinicalTrials.gov codes on both sides (``Phase III``, ``Therapeutic
  exploratory (Phase II)``: ``service.seeds.phases``);
- where a registry keeps its end points as one free text (EUCTR, ISRCTN: the catalog's
  ``outcomes_as_text``), a document's primary outcome is registered when the text holds its
  words, and the text is not split into "registered primaries" the document must report;
- a document reporting the actual size is held to the registry's actual enrollment where it
  keeps one beside its target (CTIS, ISRCTN), else to its count;
- outside ClinicalTrials.gov, a status is read as its lifecycle (``Ongoing`` → recruiting).

``seed_discrepancy_changes`` turns the discrepancies a registry update *introduced* into
change events (kind ``field_changed``, field ``seed:<seed id>:<field>``), so that a record
drifting away from its publication is notified like any other change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from service.diff import OUTCOME_PAIR_THRESHOLD, humanise, outcome_similarity
from service.errors import InputError
from service.models import Change, Outcome, Severity, Snapshot
from service.registry.catalog import registry_info
from service.seeds.model import ReportedOutcome, Seed
from service.seeds.phases import phase_codes
from service.seeds.synonyms import fold, word_set

__all__ = ["Discrepancy", "compare", "coverage", "seed_discrepancy_changes"]

_OPEN = frozenset(
    {"NOT_YET_RECRUITING", "RECRUITING", "ENROLLING_BY_INVITATION", "ACTIVE_NOT_RECRUITING"}
)
_ENDED = frozenset({"COMPLETED", "TERMINATED"})
# the same, as lifecycles (every registry's status read into one vocabulary)
_OPEN_LIFECYCLES = frozenset({"not_yet_recruiting", "recruiting", "active_not_recruiting"})
_ENDED_LIFECYCLES = frozenset({"completed", "terminated"})
# words of an outcome's measure that do not say which measure it is
_MEASURE_FILLER = word_set(
    "a an and as at by for from in into of on or the to with was were is are be its their "
    "patient patients participant participants change changes number proportion rate"
)
_CONTAINED = 0.67  # share of a measure's words a free-text end point must hold


@dataclass(frozen=True)
class Discrepancy:
    seed: str
    registry: str
    study_id: str
    field: str
    publication: Any
    registry_value: Any
    severity: Severity
    summary: str
    key: tuple[str, ...]  # what makes it "the same discrepancy" across registry versions

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "registry": self.registry,
            "study_id": self.study_id,
            "field": self.field,
            "publication": self.publication,
            "registry_value": self.registry_value,
            "severity": self.severity,
            "summary": self.summary,
        }


def compare(seed: Seed, snap: Snapshot) -> list[Discrepancy]:
    """Every discrepancy between what ``seed`` reports and the registry record ``snap``."""
    found: list[Discrepancy] = []
    for check in _CHECKS:
        found.extend(check(seed, snap))
    return found


def coverage(seed: Seed, snap: Snapshot) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(what ``compare`` could check, what it could not and why) for ``seed`` and ``snap``.

    "No discrepancies" means something only for what was checked: a document that gives no
    size, or a record with no phase, leaves that fact unchecked, and a person must be told.
    """
    checked: list[str] = []
    unchecked: list[str] = []
    for name, why in _gaps(seed, snap):
        if why:
            unchecked.append(f"{name} ({why})")
        else:
            checked.append(name)
    return tuple(checked), tuple(unchecked)


def _gaps(seed: Seed, snap: Snapshot) -> list[tuple[str, str]]:
    """(fact, why it cannot be compared, or "") for each fact ``compare`` looks at."""
    page = seed.kind == "registry_page"
    gives_none = "the document gives none"
    found = [
        (
            "enrollment",
            _why(
                seed.enrollment.count is None,
                snap.enrollment_count is None,
                "the document gives no size",
            ),
        ),
        # the registry's own estimate-vs-ended check needs only the record's enrollment type
        ("enrollment type", _why(False, not snap.enrollment_type, "")),
        (
            "primary outcomes",
            _why(
                not seed.outcomes_of("primary"),
                not snap.primary_outcomes,
                "the document names none as primary",
            ),
        ),
        ("phase", _why(not seed.design.phases, not phase_codes(snap.phases), gives_none)),
        ("status", _why(page and not seed.status, not snap.overall_status, gives_none)),
    ]
    if not page:  # a registry page has no publication date to hold the registry's dates to
        dates = snap.start_date.date or snap.primary_completion_date.date
        year = "the document's publication year is not known"
        found.append(("dates", _why(seed.citation.year is None, not dates, year)))
    return found


def _why(document: bool, registry: bool, document_why: str) -> str:
    if document:
        return document_why
    return "the registry record gives none" if registry else ""


def seed_discrepancy_changes(seed: Seed, old: Snapshot | None, new: Snapshot) -> list[Change]:
    """Discrepancies present for ``new`` but not for ``old``, as change events.

    With no ``old`` (the record's first sighting) every discrepancy is new. A discrepancy that
    appears while its own field kept its value (the enrollment still ESTIMATED, newly a
    discrepancy because the status became COMPLETED) is no event: it would read "ESTIMATED →
    ESTIMATED", and the field that did change has its own event.
    """
    if old is None:
        return [_change(seed, d, None) for d in compare(seed, new)]
    before = {d.key for d in compare(seed, old)}
    return [
        _change(seed, d, old)
        for d in compare(seed, new)
        if d.key not in before and not _unchanged(d.field, old, new)
    ]


def _unchanged(field: str, old: Snapshot, new: Snapshot) -> bool:
    """Whether the registry gives ``field`` the same value in both versions (a field this
    module cannot read back is taken as changed)."""
    if field not in _REGISTRY_VALUES:
        return False
    return _registry_value(field, old) == _registry_value(field, new)


def _change(seed: Seed, found: Discrepancy, old: Snapshot | None) -> Change:
    return Change(
        registry=found.registry,
        study_id=found.study_id,
        kind="field_changed",
        field=f"seed:{seed.id}:{found.field}",
        old=_registry_value(found.field, old) if old is not None else None,
        new=found.registry_value,
        severity=found.severity,
        summary=f"Seed {seed.id}: {found.summary}",
    )


# what each discrepancy's field reads of a registry version
_REGISTRY_VALUES: dict[str, Callable[[Snapshot], Any]] = {
    "enrollment": lambda snap: (snap.enrollment_count, snap.enrollment_actual),
    "enrollment_type": lambda snap: snap.enrollment_type,
    "phase": lambda snap: list(snap.phases),
    "status": lambda snap: (snap.overall_status, snap.lifecycle),
    "start_date": lambda snap: snap.start_date.date,
    "primary_completion": lambda snap: snap.primary_completion_date.date,
    "primary_outcome": lambda snap: [o.measure for o in snap.primary_outcomes],
    "registered_primary": lambda snap: [o.measure for o in snap.primary_outcomes],
}


def _registry_value(field: str, snap: Snapshot) -> Any:
    read = _REGISTRY_VALUES.get(field)
    if read is None:
        return None
    value = read(snap)
    # the event shows the count and the status as the registry gives them
    return value[0] if field in ("enrollment", "status") else value


def _make(
    seed: Seed,
    snap: Snapshot,
    field: str,
    publication: Any,
    registry_value: Any,
    severity: Severity,
    summary: str,
    *key: str,
) -> Discrepancy:
    return Discrepancy(
        seed.id,
        snap.registry,
        snap.study_id,
        field,
        publication,
        registry_value,
        severity,
        summary,
        (field, *key),
    )


# ---- enrollment ----------------------------------------------------------------------------------


def _enrollment(seed: Seed, snap: Snapshot) -> list[Discrepancy]:
    reported, registered = seed.enrollment.count, snap.enrollment_count
    kind = f" ({snap.enrollment_type.lower()})" if snap.enrollment_type else ""
    if seed.enrollment.type == "ACTUAL" and snap.enrollment_actual is not None:
        registered, kind = snap.enrollment_actual, " (actual)"  # like with like
    if reported is None or registered is None or reported == registered:
        return []
    gap = abs(reported - registered) / max(reported, registered)
    severity: Severity = "high" if gap >= 0.5 else "medium" if gap >= 0.2 else "low"
    what = "targets" if seed.enrollment.type == "ESTIMATED" else "reports"
    summary = f"Enrollment: the document {what} {reported}, the registry says {registered}{kind}"
    return [_make(seed, snap, "enrollment", reported, registered, severity, summary)]


def _enrollment_type(seed: Seed, snap: Snapshot) -> list[Discrepancy]:
    if snap.enrollment_type != "ESTIMATED":
        return []
    published = seed.kind != "registry_page" and seed.enrollment.type == "ACTUAL"
    ended = snap.overall_status in _ENDED or (
        snap.registry != "ctgov" and snap.lifecycle in _ENDED_LIFECYCLES
    )
    if not (ended or published):
        return []
    why = (
        f"the study is {humanise(snap.overall_status).lower()}"
        if ended
        else "results are published"
    )
    summary = f"Enrollment is still an estimate in the registry although {why}"
    publication = "ACTUAL" if published else None
    return [_make(seed, snap, "enrollment_type", publication, "ESTIMATED", "medium", summary)]


# ---- outcomes ------------------------------------------------------------------------------------


def _outcomes(seed: Seed, snap: Snapshot) -> list[Discrepancy]:
    mine = seed.outcomes_of("primary")
    found: list[Discrepancy] = []
    for outcome in mine:
        found.extend(_primary_outcome(seed, snap, outcome))
    if not mine:
        return found  # the document does not say which outcomes were primary
    if _outcomes_as_text(snap):
        return found  # one text holds every end point: none of it is an outcome of its own
    for registered in snap.primary_outcomes:
        if _best_match(registered, mine) is None:
            summary = (
                f"Registered primary outcome {_quote(registered.measure)} is not a primary "
                "outcome of the document"
            )
            found.append(
                _make(
                    seed,
                    snap,
                    "registered_primary",
                    None,
                    registered.measure,
                    "medium",
                    summary,
                    registered.measure.casefold(),
                )
            )
    return found


def _primary_outcome(seed: Seed, snap: Snapshot, outcome: ReportedOutcome) -> list[Discrepancy]:
    if _best_registered(outcome, snap.primary_outcomes) is not None:
        return []
    key = outcome.measure.casefold()
    other = _best_registered(outcome, (*snap.secondary_outcomes, *snap.other_outcomes))
    if other is not None:
        kind = "secondary" if other in snap.secondary_outcomes else "other"
        summary = (
            f"Primary outcome {_quote(outcome.measure)} of the document is registered as a "
            f"{kind} outcome ({_quote(other.measure)})"
        )
        return [
            _make(
                seed,
                snap,
                "primary_outcome",
                outcome.measure,
                other.measure,
                "high",
                summary,
                key,
                "reclassified",
            )
        ]
    registered = [o.measure for o in snap.primary_outcomes]
    summary = f"Primary outcome {_quote(outcome.measure)} of the document is not registered"
    return [
        _make(
            seed,
            snap,
            "primary_outcome",
            outcome.measure,
            registered,
            "medium",
            summary,
            key,
            "unregistered",
        )
    ]


def _similarity(mine: ReportedOutcome, registered: Outcome) -> float:
    # Like with like: time frames only where both sides give one, and no descriptions (a
    # paper's methods and a registry's description share little wording).
    both = bool(mine.time_frame and registered.time_frame)
    return outcome_similarity(
        Outcome(measure=mine.measure, time_frame=mine.time_frame if both else ""),
        Outcome(measure=registered.measure, time_frame=registered.time_frame if both else ""),
    )


def _best_registered(mine: ReportedOutcome, registered: Sequence[Outcome]) -> Outcome | None:
    scored = [(_similarity(mine, r), i) for i, r in enumerate(registered)]
    best = max(scored, default=(0.0, -1))
    if best[0] >= OUTCOME_PAIR_THRESHOLD:
        return registered[best[1]]
    # an end point written as free text (EUCTR, ISRCTN) holds several measures in one text
    return next((r for r in registered if _holds(r.measure, mine.measure)), None)


def _holds(text: str, measure: str) -> bool:
    """Whether a registered text holds most of a measure's distinctive words."""
    words = {w for w in fold(measure) if len(w) > 2 and w not in _MEASURE_FILLER}
    if len(words) < 2:  # one word ("mortality") is too little to find in a paragraph
        return False
    held = words & set(fold(text))
    return len(held) / len(words) >= _CONTAINED


def _outcomes_as_text(snap: Snapshot) -> bool:
    try:
        return registry_info(snap.registry).outcomes_as_text
    except InputError:  # a registry the catalog does not know keeps its outcomes as a list
        return False


def _best_match(registered: Outcome, mine: Sequence[ReportedOutcome]) -> ReportedOutcome | None:
    scored = [(_similarity(m, registered), i) for i, m in enumerate(mine)]
    best = max(scored, default=(0.0, -1))
    return mine[best[1]] if best[0] >= OUTCOME_PAIR_THRESHOLD else None


def _quote(text: str, limit: int = 70) -> str:
    return f"“{text if len(text) <= limit else text[: limit - 1] + '…'}”"


# ---- phase, status, dates ------------------------------------------------------------------------


def _phase(seed: Seed, snap: Snapshot) -> list[Discrepancy]:
    mine, theirs = set(seed.design.phases), set(phase_codes(snap.phases))
    if not mine or not theirs or mine == theirs:
        return []  # a registry value that names no phase ("Other") is not compared
    summary = f"Phase: the document says {_phases(mine)}, the registry {_phases(theirs)}"
    registered = sorted(snap.phases)  # as the registry writes them
    return [_make(seed, snap, "phase", sorted(mine), registered, "medium", summary, *sorted(mine))]


def _phases(values: set[str]) -> str:
    return "/".join(humanise(v) for v in sorted(values))


def _status(seed: Seed, snap: Snapshot) -> list[Discrepancy]:
    status = snap.overall_status
    if not status:
        return []
    if seed.kind == "registry_page":
        if not seed.status or _same_status(seed.status, snap):
            return []
        summary = f"Status: the page says {humanise(seed.status)}, the registry {humanise(status)}"
        return [_make(seed, snap, "status", seed.status, status, "medium", summary, seed.status)]
    if status in _OPEN or (snap.registry != "ctgov" and snap.lifecycle in _OPEN_LIFECYCLES):
        summary = f"Results are published but the registry still says {humanise(status)}"
        return [_make(seed, snap, "status", "COMPLETED", status, "medium", summary)]
    return []


def _same_status(said: str, snap: Snapshot) -> bool:
    """A page's status (ClinicalTrials.gov's words) against the record's: the words alike,
    or, in a registry with words of its own, the same lifecycle (unknown: not compared)."""
    if said == snap.overall_status or snap.registry == "ctgov":
        return said == snap.overall_status
    lifecycle = registry_info("ctgov").lifecycle(said)  # a seed's status: ClinicalTrials.gov's
    known = lifecycle != "unknown" and snap.lifecycle not in ("", "unknown")
    return not known or lifecycle == snap.lifecycle


def _dates(seed: Seed, snap: Snapshot) -> list[Discrepancy]:
    published = seed.citation.year
    if published is None or seed.kind == "registry_page":
        return []
    found: list[Discrepancy] = []
    start = _year(snap.start_date.date)
    if start is not None and start > published:
        summary = f"Registered start {snap.start_date.date} is after the publication ({published})"
        found.append(
            _make(seed, snap, "start_date", published, snap.start_date.date, "high", summary)
        )
    end = _year(snap.primary_completion_date.date)
    if end is not None and end > published:
        kind = (
            f" ({snap.primary_completion_date.type.lower()})"
            if snap.primary_completion_date.type
            else ""
        )
        summary = (
            f"Registered primary completion {snap.primary_completion_date.date}{kind} is after "
            f"the publication ({published})"
        )
        found.append(
            _make(
                seed,
                snap,
                "primary_completion",
                published,
                snap.primary_completion_date.date,
                "medium",
                summary,
            )
        )
    return found


def _year(date: str) -> int | None:
    return int(date[:4]) if len(date) >= 4 and date[:4].isdigit() else None


_CHECKS = (_enrollment, _enrollment_type, _outcomes, _phase, _status, _dates)
