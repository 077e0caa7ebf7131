"""``registrations_disagree``: the registrations of one trial (``service.trials``) say different
things. Pure: the caller hands in the trial, since when each registration has said its
current status, and today.

Every disagreement but the lifecycles' holds as soon as it is seen (a count or a date apart is
apart). Lifecycles apart hold only after ``disagree_days``: a trial's end reaches one registry
before another, and weeks of lag are the norm, not news.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from service.findings.rules import Finding
from service.trials import ENDED, GOING, Disagreement, Key, Trial

RULE = "registrations_disagree"
SOURCE = (
    "WHO ICTRP: one trial, several registrations, bridged by their secondary ids; "
    "discrepancies between registries (Fleminger & Goldacre, PLoS One 2018: status in EUCTR vs "
    "ClinicalTrials.gov; Hartung et al., Ann Intern Med 2014: registry vs publication)"
)
_HIGH = frozenset({"lifecycle", "primary_outcomes"})


def status_since(
    history: Sequence[tuple[str, str]], lifecycle_of: Callable[[str], str]
) -> date | None:
    """The first day a record said its current lifecycle, from its versions' (day, status),
    newest first; None without versions or dates."""
    if not history:
        return None
    current = lifecycle_of(history[0][1])
    since = ""
    for day, status in history:
        if lifecycle_of(status) != current:
            break
        since = day or since
    return date.fromisoformat(since[:10]) if since else None


def registrations_disagree(
    trial: Trial, since: Mapping[Key, date], today: date, disagree_days: int
) -> Finding | None:
    """The finding for ``trial`` when its registrations disagree (see the module docstring);
    ``since``: the day each registration has said its current lifecycle since."""
    kept = [
        d
        for d in trial.disagreements
        if d.field != "lifecycle" or _apart_days(d, since, today) > disagree_days
    ]
    if not kept:
        return None
    severity = "high" if any(d.field in _HIGH for d in kept) else "medium"
    return Finding(
        RULE,
        severity,
        "registrations disagree: " + "; ".join(d.summary for d in kept),
        _detail(trial, kept, since),
        cited=SOURCE,
    )


def anchor(trial: Trial) -> Key | None:
    """The registration a trial's finding is kept on: its first stored one (registry, then
    id), so that a finding is told once per trial, not once per registration."""
    stored = [(r.registry, r.study_id) for r in trial.registrations if r.snapshot is not None]
    return stored[0] if stored else None


def _apart_days(disagreement: Disagreement, since: Mapping[Key, date], today: date) -> int:
    """How long the lifecycles have been apart: for each ended and going registration, since
    the later of the days each began saying what it says now; the longest-standing such pair
    counts (a registration joining the trial later does not restart the clock). Unknown
    days: not yet."""
    ended = [since.get(key) for key, life in disagreement.values if life in ENDED]
    going = [since.get(key) for key, life in disagreement.values if life in GOING]
    pairs = [max(e, g) for e in ended for g in going if e is not None and g is not None]
    return (today - min(pairs)).days if pairs else 0


def _detail(trial: Trial, kept: list[Disagreement], since: Mapping[Key, date]) -> dict[str, Any]:
    return {
        "kinds": sorted({d.field for d in kept}),
        "disagreements": [d.to_json() for d in kept],
        "registrations": [
            r.to_json() | _said_since(since.get((r.registry, r.study_id)))
            for r in trial.registrations
        ],
    }


def _said_since(day: date | None) -> dict[str, str]:
    return {"status_since": day.isoformat()} if day else {}
