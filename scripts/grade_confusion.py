"""The confusion between the outcome grades expected and the grades given, on the graded pairs
of tests/test_outcome_grades.py and on held-out pairs written before their grades were seen
(real records in tests/data, edited as sponsors edit them). Run: python scripts/grade_confusion.py
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_outcome_grades import (
    CASES,
    RESTRUCTURED,
    Edit,
    Outcomes,
    add,
    drop,
    edited,
    move,
    primary,
    restructured_events,
)

GRADES = ("editorial", "minor", "major")


def _set(kind: str, index: int, **parts: str) -> Edit:
    def edit(outcomes: Outcomes) -> None:
        outcomes[kind][index].update(parts)

    return edit


def _merge_concentrations(outcomes: Outcomes) -> None:
    primaries = outcomes["primaryOutcomes"]
    week1 = primaries.pop(3)
    primaries[2] = dict(
        primaries[2],
        measure="Certolizumab Pegol Plasma Concentration at Baseline and Week 1",
        timeFrame=f"{primaries[2]['timeFrame']} and {week1['timeFrame']}",
    )


def _replace(kind: str, index: int, part: str, old: str, new: str) -> Edit:
    def edit(outcomes: Outcomes) -> None:
        outcomes[kind][index][part] = outcomes[kind][index][part].replace(old, new)

    return edit


# (record, edit, expected grade of every outcome event it gives)
HELD_OUT: list[tuple[str, Edit, str]] = [
    ("NCT02552212.json", primary(0, timeFrame="Week 48"), "minor"),
    ("NCT02513394.json", primary(0, measure="Invasive Disease-Free Survival (iDFS)"), "editorial"),
    (
        "NCT04267848.json",
        _replace("primaryOutcomes", 0, "timeFrame", "recurrence", "recurrence, up to 5 years"),
        "minor",
    ),
    (
        "NCT00973089.json",
        primary(0, measure="The succes of the alternative treatment of the deep carious lesion."),
        "editorial",
    ),
    (
        "NCT03475563.json",
        _replace("primaryOutcomes", 0, "description", "segments", "segment"),
        "editorial",
    ),
    ("NCT02552212.json", move("primaryOutcomes", 1, "secondaryOutcomes"), "major"),
    ("NCT02210780.json", drop("secondaryOutcomes", 2), "minor"),
    ("NCT00763412.json", primary(2, measure="hs-CRP"), "minor"),
    ("NCT00763412.json", primary(0, measure="Body mass index (BMI)"), "editorial"),
    (
        "NCT03630471.json",
        primary(0, measure="Mental health symptoms and functional impairment"),
        "major",
    ),
    ("NCT04207047.json", primary(0, measure="Complete re-epithelialization"), "minor"),
    ("NCT06171568.json", primary(0, timeFrame="TBD"), "minor"),
    ("NCT02552212.json", _merge_concentrations, "editorial"),
    ("NCT02513394.json", move("secondaryOutcomes", 0, "primaryOutcomes"), "major"),
    (
        "NCT04267848.json",
        add("secondaryOutcomes", measure="Overall survival", timeFrame="5 years"),
        "minor",
    ),
    (
        "NCT03630471.json",
        _replace("primaryOutcomes", 0, "description", "25-item", "25 item"),
        "editorial",
    ),
    ("NCT05594173.json", primary(1, measure="Total chewing time per bolus"), "editorial"),
    ("NCT03475563.json", drop("primaryOutcomes", 2), "major"),
]


def _table(title: str, pairs: list[tuple[str, str]]) -> None:
    counts = Counter(pairs)
    print(f"\n{title}: {len(pairs)} events, {sum(e == g for e, g in pairs)} graded as expected")
    print("expected \\ given | " + " | ".join(GRADES))
    for expected in GRADES:
        print(f"{expected:>16} | " + " | ".join(str(counts[expected, g]) for g in GRADES))


def main() -> None:
    built = [
        (grade, e.grade or "")
        for _, name, edit, back, grade in CASES
        for e in edited(name, edit, backwards=back)
    ]
    for _, name, edit, back, expected in RESTRUCTURED:
        given = sorted((e.kind, e.grade or "") for e in restructured_events(name, edit, back))
        built += [(want[1], got[1]) for want, got in zip(expected, given, strict=False)]
    _table("Pairs in the tests", built)
    held: list[tuple[str, str]] = []
    for name, edit, grade in HELD_OUT:
        events = edited(name, edit)
        held += [(grade, e.grade or "") for e in events] or [(grade, "none")]
        for e in events:
            if e.grade != grade:
                print(f"  held-out miss: {name}: expected {grade}, given {e.grade}: {e.summary}")
    _table("Held-out pairs", held)


if __name__ == "__main__":
    main()
