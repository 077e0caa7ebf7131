"""Print how many snapshot pairs per second ``service.diff.diff`` compares on one core.

Synthetic but record-sized snapshots: 40 sites, 4 arms and interventions, 12 outcomes with
long descriptions, long eligibility text. The new side of each pair is parsed from JSON on its
own, as in a sync cycle, so no objects are shared between the two sides. Three workloads:

- identical: nothing changed (the most common case in a sync cycle);
- typical: status, enrollment count and type, primary completion date and one site's status;
- heavy: typical plus one reworded outcome and one outcome moved to another list.

    .venv/bin/python bench/diff_speed.py [PAIRS]
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

from service.diff import diff
from service.models import Arm, Eligibility, Intervention, Location, Outcome, Snapshot, StudyDate

# fmt: off
WORDS = (
    "overall", "survival", "progression", "free", "response", "rate", "adverse", "events",
    "serious", "quality", "of", "life", "score", "week", "month", "baseline", "change", "mean",
    "participants", "hba1c", "blood", "pressure", "pain", "fatigue", "disease", "activity",
    "index", "questionnaire", "assessed", "measured", "central", "laboratory", "visit",
)
# fmt: on


def _text(rnd: random.Random, words: int) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(words)).capitalize()


def _outcome(rnd: random.Random) -> Outcome:
    return Outcome(
        measure=_text(rnd, 8), time_frame=f"Week {rnd.randint(1, 52)}", description=_text(rnd, 30)
    )


def _location(rnd: random.Random) -> Location:
    return Location(facility=_text(rnd, 3), city=_text(rnd, 1), country="X", status="RECRUITING")


def _snapshot(rnd: random.Random, number: int) -> Snapshot:
    outcomes = [_outcome(rnd) for _ in range(12)]
    return Snapshot(
        study_id=f"NCT{number:08d}",
        brief_title=_text(rnd, 12),
        official_title=_text(rnd, 25),
        overall_status="RECRUITING",
        study_type="INTERVENTIONAL",
        phases=("PHASE3",),
        enrollment_count=rnd.randint(20, 2000),
        enrollment_type="ESTIMATED",
        start_date=StudyDate(date="2022-01-15", type="ACTUAL"),
        primary_completion_date=StudyDate(date="2025-06", type="ESTIMATED"),
        conditions=tuple(sorted(_text(rnd, 2) for _ in range(3))),
        keywords=tuple(sorted(_text(rnd, 1) for _ in range(5))),
        interventions=tuple(
            Intervention(type="DRUG", name=_text(rnd, 2), description=_text(rnd, 20))
            for _ in range(4)
        ),
        arms=tuple(Arm(label=_text(rnd, 3), description=_text(rnd, 20)) for _ in range(4)),
        primary_outcomes=tuple(outcomes[:2]),
        secondary_outcomes=tuple(outcomes[2:]),
        lead_sponsor=_text(rnd, 3),
        eligibility=Eligibility(criteria=_text(rnd, 300), sex="ALL", minimum_age="18 Years"),
        locations=tuple(_location(rnd) for _ in range(40)),
    )


def _reparsed(snapshot: Snapshot) -> Snapshot:
    return Snapshot.model_validate_json(snapshot.model_dump_json())


def _typical(rnd: random.Random, old: Snapshot) -> Snapshot:
    locations = list(old.locations)
    site = rnd.randrange(len(locations))
    locations[site] = locations[site].model_copy(update={"status": "COMPLETED"})
    return old.model_copy(
        update={
            "overall_status": "ACTIVE_NOT_RECRUITING",
            "enrollment_count": (old.enrollment_count or 0) + 7,
            "enrollment_type": "ACTUAL",
            "primary_completion_date": StudyDate(date="2025-09", type="ESTIMATED"),
            "locations": tuple(locations),
        }
    )


def _heavy(rnd: random.Random, old: Snapshot) -> Snapshot:
    new = _typical(rnd, old)
    secondary = list(new.secondary_outcomes)
    secondary[0] = secondary[0].model_copy(update={"measure": secondary[0].measure + " (ITT)"})
    moved = secondary.pop()
    update = {"secondary_outcomes": tuple(reversed(secondary)), "other_outcomes": (moved,)}
    return new.model_copy(update=update)


def _rate(pairs: list[tuple[Snapshot, Snapshot]]) -> tuple[float, float]:
    start = time.perf_counter()
    changes = sum(len(diff(old, new)) for old, new in pairs)
    return len(pairs) / (time.perf_counter() - start), changes / len(pairs)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    rnd = random.Random(1)
    olds = [_snapshot(rnd, i) for i in range(count)]
    workloads: dict[str, Callable[[random.Random, Snapshot], Snapshot]] = {
        "identical": lambda _rnd, old: old,
        "typical": _typical,
        "heavy": _heavy,
    }
    for name, edit in workloads.items():
        pairs = [(old, _reparsed(edit(rnd, old))) for old in olds]
        rate, changes = _rate(pairs)
        print(f"{name:>9}: {rate:10,.0f} pairs/s  ({changes:.1f} changes per pair)")


if __name__ == "__main__":
    main()
