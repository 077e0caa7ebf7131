"""Outcome change grades (editorial, minor, major), as registry-history research grades them.

Every graded case is a real record (tests/data: byte-for-byte copies of public
ClinicalTrials.gov records; /work/shared/reference/ctgov when present) edited the way sponsors
edit them. Editorial edits are also checked as properties over every outcome of every record:
an editorial edit never grades above editorial.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.diff import diff, pair_outcomes
from service.findings.rules import _grade as finding_grade
from service.models import Change, Outcome, StoredChange
from service.registry.ctgov_normalise import normalise
from service.settings import Subscription
from service.subscriptions import matches

DATA = Path(__file__).resolve().parent / "data"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ctgov"
FOLDERS = (DATA / "records", DATA / "diff", DATA / "findings")

Raw = dict[str, Any]
Outcomes = dict[str, list[dict[str, str]]]
Edit = Callable[[Outcomes], None]


def load(name: str) -> Raw:
    path = next(folder / name for folder in FOLDERS if (folder / name).is_file())
    raw: Raw = json.loads(path.read_text(encoding="utf-8"))
    return raw.get("study", raw)  # type: ignore[no-any-return]


def every_record() -> list[Path]:
    """Every real record with outcomes: the test data, and the shared reference set."""
    paths = [p for folder in FOLDERS for p in sorted(folder.glob("NCT*.json"))]
    if REFERENCE.is_dir():
        paths += sorted(REFERENCE.glob("NCT*.json"))
    found = []
    for path in paths:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw = raw.get("study", raw)
        if raw.get("protocolSection", {}).get("outcomesModule"):
            found.append(path)
    return found


RECORDS = every_record()


def outcome_events(before: Raw, after: Raw) -> list[Change]:
    return [c for c in diff(normalise(before), normalise(after)) if c.kind.startswith("outcome_")]


def edited(name: str, edit: Edit, *, backwards: bool = False) -> list[Change]:
    """Outcome events from the real record ``name`` to a copy ``edit`` changed (``backwards``:
    from the edited copy, an earlier version, to the real record)."""
    raw = load(name)
    other = copy.deepcopy(raw)
    edit(other["protocolSection"]["outcomesModule"])
    return outcome_events(raw, other) if not backwards else outcome_events(other, raw)


def primary(index: int, **parts: str) -> Edit:
    def edit(outcomes: Outcomes) -> None:
        outcomes["primaryOutcomes"][index].update(parts)

    return edit


def with_(kind: str, index: int, change: Callable[[dict[str, str]], None]) -> Edit:
    def edit(outcomes: Outcomes) -> None:
        change(outcomes[kind][index])

    return edit


def move(kind: str, index: int, to: str) -> Edit:
    def edit(outcomes: Outcomes) -> None:
        outcomes.setdefault(to, []).append(outcomes[kind].pop(index))

    return edit


def drop(kind: str, index: int) -> Edit:
    return lambda outcomes: outcomes[kind].pop(index) and None


def add(kind: str, **parts: str) -> Edit:
    return lambda outcomes: outcomes.setdefault(kind, []).append(dict(parts))


MACE = "Cumulative rate of major adverse cardiovascular events (MACE) including cardiac death"

# (id, record, edit, backwards, expected grade) — every class of the issue, edited as sponsors
# edit them in real histories.
CASES: list[tuple[str, str, Edit, bool, str]] = [
    # ---- editorial: meaning untouched
    (
        "punctuation",
        "NCT00973089.json",
        with_("primaryOutcomes", 0, lambda o: o.update(measure=o["measure"].rstrip("."))),
        False,
        "editorial",
    ),
    (
        "spelling-corrected",
        "NCT03475563.json",
        primary(0, measure="Succesful angioplasty"),
        True,
        "editorial",
    ),
    (
        "acronym-spelled-out",
        "NCT03475563.json",
        primary(1, measure="Major adverse cardiovascular events (MACE)"),
        False,
        "editorial",
    ),
    (
        "acronym-added",
        "NCT02513394.json",
        primary(0, measure="Invasive Disease Free Survival"),
        True,
        "editorial",
    ),
    (
        "placeholder-time-frame-filled",
        "NCT00763412.json",
        primary(0, timeFrame="N/A"),
        True,
        "editorial",
    ),
    (
        "placeholder-time-frame-tbd",
        "NCT03630471.json",
        primary(0, timeFrame="TBD"),
        True,
        "editorial",
    ),
    (
        "placeholder-description-emptied",
        "NCT00763412.json",
        primary(0, description="see description"),
        True,
        "editorial",
    ),
    (
        "time-points-moved-out-of-the-measure",
        "NCT03630471.json",
        primary(0, measure="Mental health symptoms at 6 weeks", timeFrame=""),
        True,
        "editorial",
    ),
    (
        "capitalisation-and-punctuation",
        "NCT00763412.json",
        primary(1, measure="Body composition:"),
        False,
        "editorial",
    ),
    (
        "definition-moved-out-of-the-measure",
        "NCT00763412.json",
        primary(
            1, measure="Body Composition: Reporting % of Fat and Lean body mass", description=""
        ),
        True,
        "editorial",
    ),
    # ---- minor: the same outcome measured differently
    ("time-frame-changed", "NCT03630471.json", primary(0, timeFrame="12 weeks"), False, "minor"),
    (
        "time-points-added",
        "NCT04280705_history_v0.json",
        primary(0, timeFrame="Day 15 and Day 29"),
        False,
        "minor",
    ),
    (
        "aggregation-changed",
        "NCT05594173.json",
        primary(0, measure="Mean Number of Chewing Cycles Per Bolus"),
        False,
        "minor",
    ),
    (
        "method-changed",
        "NCT05594173.json",
        with_(
            "primaryOutcomes",
            0,
            lambda o: o.update(
                description=o["description"].replace(
                    "surface electromyography (sEMG) of the masseter muscle", "video recording"
                )
            ),
        ),
        False,
        "minor",
    ),
    (
        "detail-added-to-the-definition",
        "NCT04267848.json",
        with_(
            "primaryOutcomes",
            0,
            lambda o: o.update(description=o["description"] + " Assessed by blinded review."),
        ),
        False,
        "minor",
    ),
    (
        "detail-dropped-from-the-definition",
        "NCT00763412.json",
        primary(1, description="Reporting % of Fat"),
        False,
        "minor",
    ),
    (
        "secondary-added",
        "NCT03630471.json",
        add("secondaryOutcomes", measure="Sleep quality", timeFrame="6 weeks"),
        False,
        "minor",
    ),
    ("secondary-removed", "NCT03630471.json", drop("secondaryOutcomes", 0), False, "minor"),
    # ---- major: what the trial is judged on changed
    ("primary-removed", "NCT03630471.json", drop("primaryOutcomes", 1), False, "major"),
    ("primary-added", "NCT03630471.json", drop("primaryOutcomes", 1), True, "major"),
    (
        "primary-to-secondary",
        "NCT03475563.json",
        move("primaryOutcomes", 1, "secondaryOutcomes"),
        False,
        "major",
    ),
    (
        "secondary-to-primary",
        "NCT03630471.json",
        move("secondaryOutcomes", 0, "primaryOutcomes"),
        False,
        "major",
    ),
    (
        "component-dropped-from-a-composite",
        "NCT03475563.json",
        primary(1, description=MACE + " and repeated revascularization of the target lesion (TLR)"),
        False,
        "major",
    ),
    (
        "component-added-to-a-composite",
        "NCT03475563.json",
        primary(
            1,
            description=MACE + ", myocardial infarction (MI), stroke and repeated "
            "revascularization of the target lesion (TLR)",
        ),
        False,
        "major",
    ),
    (
        "endpoint-appended-inside-an-entry",
        "NCT04267848.json",
        primary(0, measure="Disease free survival (DFS) and overall survival (OS)"),
        False,
        "major",
    ),
]

SEVERITY = {"major": "high", "minor": "medium", "editorial": "low"}


@pytest.mark.parametrize(
    ("name", "edit", "backwards", "grade"),
    [pytest.param(name, edit, back, grade, id=case) for case, name, edit, back, grade in CASES],
)
def test_each_class_is_graded_as_research_grades_it(
    name: str, edit: Edit, backwards: bool, grade: str
) -> None:
    [event] = edited(name, edit, backwards=backwards)
    assert (event.grade, event.severity) == (grade, SEVERITY[grade]), event.summary
    assert event.to_json()["grade"] == grade


def test_other_events_carry_no_grade() -> None:
    raw = load("NCT03630471.json")
    after = copy.deepcopy(raw)
    after["protocolSection"]["statusModule"]["overallStatus"] = "TERMINATED"
    [event] = diff(normalise(raw), normalise(after))
    assert event.grade is None and "grade" not in event.to_json()


# --------------------------------------------------------------------------- list markup


def test_a_markdown_list_rewritten_as_an_html_list_is_cosmetic() -> None:
    markdown = "Scored on:\n\n* Emotional\n* Conduct\n* Peer problems"
    html = "Scored on:<ul><li>Emotional</li><li>Conduct</li><li>Peer problems</li></ul>"
    numbered = "Scored on:\n\n1\\. Emotional\n2\\. Conduct\n3\\. Peer problems"
    bullets = "Scored on:<br>&bull; Emotional<br>&bull; Conduct<br>&bull; Peer problems"
    for before, after in [(markdown, html), (html, markdown), (numbered, html), (bullets, html)]:
        raw = load("NCT03630471.json")
        a, b = copy.deepcopy(raw), copy.deepcopy(raw)
        a["protocolSection"]["outcomesModule"]["primaryOutcomes"][0]["description"] = before
        b["protocolSection"]["outcomesModule"]["primaryOutcomes"][0]["description"] = after
        a["protocolSection"]["descriptionModule"]["detailedDescription"] = before
        b["protocolSection"]["descriptionModule"]["detailedDescription"] = after
        assert diff(normalise(a), normalise(b)) == [], (before, after)


def test_a_list_number_inside_a_sentence_is_not_list_markup() -> None:
    events = edited("NCT03630471.json", primary(0, timeFrame="1 - 2 weeks"), backwards=False)
    assert [e.grade for e in events] == ["minor"]


# --------------------------------------------------------------------------- pairing


def test_a_rewritten_title_pairs_when_its_description_carries_it() -> None:
    # the sponsor renames the outcome; its definition and time frame stay: the same outcome
    events = edited("NCT03630471.json", primary(0, measure="SDQ Total Difficulties score"))
    assert [(e.kind, e.grade) for e in events] == [("outcome_modified", "minor")]


def test_a_shared_boilerplate_description_never_pairs_two_measures() -> None:
    text = "Measured by the study team at each visit using the standard protocol form"
    old = [("primary", Outcome(measure="Blood pressure", time_frame="1 year", description=text))]
    new = [
        ("primary", Outcome(measure="Hair loss", time_frame="1 year", description=text)),
        ("primary", Outcome(measure="Nausea", time_frame="1 year", description=text)),
    ]
    assert pair_outcomes(old, new) == {}


# ------------------------------------------------------------------- editorial as properties


def all_outcomes() -> list[tuple[str, str, int]]:
    found = []
    for path in RECORDS:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw = raw.get("study", raw)
        module = raw["protocolSection"]["outcomesModule"]
        for kind in ("primaryOutcomes", "secondaryOutcomes", "otherOutcomes"):
            found += [(str(path), kind, i) for i in range(len(module.get(kind, [])))]
    return found


OUTCOMES = all_outcomes()
_LONG_WORD = re.compile(r"\b[A-Za-z]{6,}\b")


def _typo(text: str, pick: int) -> str | None:
    words = list(_LONG_WORD.finditer(text))
    if not words:
        return None
    word = words[pick % len(words)]
    w = word.group(0)
    wrong = w[:2] + w[3] + w[2] + w[4:]  # two letters swapped past the start
    return text[: word.start()] + wrong + text[word.end() :]


def _punctuate(text: str, pick: int) -> str:
    return text.rstrip(".") if text.endswith(".") else text + [".", ";", ":"][pick % 3]


def _placeholder(text: str, pick: int) -> str:
    return ["N/A", "TBD", "-", "see description", "a"][pick % 5]


EDITS = ("typo", "punctuation", "time-frame-placeholder", "description-placeholder", "moved")


def editorial_edit(outcome: dict[str, str], how: str, pick: int) -> dict[str, str] | None:
    """An earlier version of ``outcome`` that differs from it editorially, or none when the
    edit does not apply to it."""
    earlier = dict(outcome)
    measure = outcome.get("measure", "")
    if how == "typo":
        wrong = _typo(measure, pick)
        if wrong is None:
            return None
        earlier["measure"] = wrong
    elif how == "punctuation":
        earlier["measure"] = _punctuate(measure, pick)
    elif how == "time-frame-placeholder":
        earlier["timeFrame"] = _placeholder(outcome.get("timeFrame", ""), pick)
    elif how == "description-placeholder":
        earlier["description"] = _placeholder(outcome.get("description", ""), pick)
    else:  # the time points written in the measure, the time frame empty
        if not outcome.get("timeFrame"):
            return None
        earlier["measure"] = f"{measure} at {outcome['timeFrame']}"
        earlier["timeFrame"] = ""
    return earlier


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=st.sampled_from(OUTCOMES),
    how=st.sampled_from(EDITS),
    pick=st.integers(min_value=0, max_value=50),
)
def test_an_editorial_edit_never_grades_above_editorial(
    target: tuple[str, str, int], how: str, pick: int
) -> None:
    path, kind, index = target
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    raw = raw.get("study", raw)
    earlier = copy.deepcopy(raw)
    module = earlier["protocolSection"]["outcomesModule"]
    edit = editorial_edit(module[kind][index], how, pick)
    if edit is None:
        return
    module[kind][index] = edit
    events = outcome_events(earlier, raw)
    assert all(e.grade == "editorial" and e.severity == "low" for e in events), [
        (e.kind, e.grade, e.summary) for e in events
    ]


@pytest.mark.parametrize("how", EDITS)
def test_every_outcome_of_every_record_edited_editorially_grades_editorial(how: str) -> None:
    for path, kind, index in OUTCOMES:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        raw = raw.get("study", raw)
        earlier = copy.deepcopy(raw)
        module = earlier["protocolSection"]["outcomesModule"]
        edit = editorial_edit(module[kind][index], how, index)
        if edit is None:
            continue
        module[kind][index] = edit
        events = outcome_events(earlier, raw)
        assert all(e.grade == "editorial" for e in events), (path, kind, index, events)


# --------------------------------------------------------------------------- readers of the grade


def stored(kind: str, grade: str | None, outcome_type: str = "primary") -> StoredChange:
    from datetime import UTC, datetime

    return StoredChange(
        id=1,
        detected_at=datetime(2026, 1, 1, tzinfo=UTC),
        study_id="NCT03630471",
        kind=kind,  # type: ignore[arg-type]
        field="protocolSection.outcomesModule.primaryOutcomes[0]",
        severity="low",
        summary="x",
        outcome_type=outcome_type,  # type: ignore[arg-type]
        grade=grade,  # type: ignore[arg-type]
    )


def test_the_finding_reads_the_grade_and_falls_back_to_the_kind() -> None:
    assert finding_grade(stored("outcome_modified", "major")) == "major"
    assert finding_grade(stored("outcome_added", "editorial")) == "editorial"
    assert finding_grade(stored("outcome_added", None)) == "major"  # stored before grading
    assert finding_grade(stored("outcome_modified", None)) == "minor"


def test_subscriptions_filter_outcome_events_by_grade() -> None:
    only_major = Subscription(channel="c", grades=["major"])
    assert matches(only_major, stored("outcome_modified", "major"), [])
    assert not matches(only_major, stored("outcome_modified", "editorial"), [])
    assert matches(only_major, stored("outcome_modified", None), [])  # not graded: passes
    status = stored("status_changed", None, outcome_type=None)  # type: ignore[arg-type]
    assert matches(only_major, status, [])  # other kinds pass
    with pytest.raises(ValueError, match="unknown outcome grade"):
        Subscription(channel="c", grades=["huge"])


# --------------------------------------------------------------------------- stored, listed


def test_grades_are_stored_and_listed_with_changes_grade(
    emulator_factory: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    import twconfig

    record = load("NCT03630471.json")
    study_id = record["protocolSection"]["identificationModule"]["nctId"]
    emulator = emulator_factory()
    emulator.publish(record, date="2024-01-10")
    config = twconfig.ctgov(emulator.api_url, emulator.history_url, history=False)
    run = twconfig.runner(twconfig.environment(tmp_path, config, database_url))
    run("watch", "add", study_id)
    assert run("sync").exit_code == 0
    later = copy.deepcopy(record)
    module = later["protocolSection"]["outcomesModule"]
    module["primaryOutcomes"][0]["measure"] += "."  # editorial
    module["secondaryOutcomes"][0]["timeFrame"] = "12 weeks"  # minor
    module["primaryOutcomes"].pop(1)  # major
    emulator.publish(later, date="2024-02-10")
    assert run("sync").exit_code == 0
    listed = run("changes", "--json").json()
    graded = sorted(c["grade"] for c in listed if c["kind"].startswith("outcome_"))
    assert graded == ["editorial", "major", "minor"]
    assert all("grade" not in c for c in listed if not c["kind"].startswith("outcome_"))
    for grade in ("editorial", "minor", "major"):
        [only] = run("changes", "--grade", grade, "--json").json()
        assert only["grade"] == grade
        assert only["severity"] == SEVERITY[grade]
    assert run("changes", "--grade", "huge").exit_code != 0
    text = run("changes", "--grade", "major").output
    assert "major: Primary outcome removed: " in text  # the grade leads an outcome event's line


# --------------------------------------------------------------------------- the finding


@pytest.mark.parametrize(
    ("measure", "severity"),
    [
        pytest.param("Disease-free survival (DFS).", None, id="editorial-never-a-finding"),
        pytest.param("DFS", None, id="acronym-only-never-a-finding"),
        pytest.param("Disease free survival (DFS) per central review", "medium", id="minor"),
        pytest.param("Disease free survival (DFS) and overall survival", "high", id="major"),
    ],
)
def test_primary_outcome_changed_after_start_takes_the_grade(
    measure: str, severity: str | None
) -> None:
    from test_findings_rules import TODAY, chain, edited, evaluate, real

    def edit(ps: dict[str, Any]) -> None:
        ps["outcomesModule"]["primaryOutcomes"][0]["measure"] = measure

    before = real("NCT04267848")  # started 2020-06-16 (ACTUAL); "Disease free survival (DFS)"
    found = evaluate(chain(("2025-08-01", before), ("2026-01-10", edited(before, edit))), TODAY)
    finding = found.get("primary_outcome_changed_after_start")
    assert (finding and finding.severity) == severity


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("Pain at rest", "Gain at rest"),  # another word, one letter apart
        ("Hypertension events", "Hypotension events"),
        ("Mean HbA1c", "Median HbA1c"),
        ("Weight at week 12", "Weight at week 21"),  # digits are never a typo
        ("Overall survival", "Overall survival (PFS)"),  # not its acronym
    ],
)
def test_a_change_of_meaning_one_letter_away_is_not_editorial(before: str, after: str) -> None:
    def edit(outcomes: Outcomes) -> None:
        outcomes["primaryOutcomes"][0].update(measure=after)

    raw = load("NCT03630471.json")
    earlier = copy.deepcopy(raw)
    earlier["protocolSection"]["outcomesModule"]["primaryOutcomes"][0]["measure"] = before
    later = copy.deepcopy(earlier)
    edit(later["protocolSection"]["outcomesModule"])
    assert [e.grade for e in outcome_events(earlier, later)] in (
        ["minor"],
        ["major", "major"],  # too far apart to pair: removed + added
    )


# ------------------------------------------------------------- lists split, merged, taken apart


def _merge(first: int, second: int, measure: str, *, descriptions: bool = False) -> Edit:
    """Two primary outcomes written as one entry, as sponsors tidy a list."""

    def edit(outcomes: Outcomes) -> None:
        primaries = outcomes["primaryOutcomes"]
        other = primaries.pop(second)
        merged = dict(primaries[first], measure=measure)
        if descriptions:
            merged["description"] = f"{merged['description']} {other['description']}"
        primaries[first] = merged

    return edit


def _split_mace(outcomes: Outcomes) -> None:
    """NCT03475563's 30-day MACE composite replaced by its three components."""
    primaries = outcomes["primaryOutcomes"]
    mace = primaries.pop(1)
    for measure in (
        "Repeated revascularization of the target lesion (TLR)",
        "Myocardial infarction (MI)",
        "Cardiac death",
    ):
        primaries.insert(1, {"measure": measure, "timeFrame": mace["timeFrame"]})


CO_PRIMARY = (
    "Co-primary: (1) number of chewing cycles per bolus; (2) total chewing duration per bolus"
)


def _co_primary(outcomes: Outcomes) -> None:
    """NCT05594173's two primary outcomes written as one co-primary entry."""
    primaries = outcomes["primaryOutcomes"]
    primaries[0]["measure"] = CO_PRIMARY
    del primaries[1]


def _then(*edits: Edit) -> Edit:
    def edit(outcomes: Outcomes) -> None:
        for one in edits:
            one(outcomes)

    return edit


def _demote_chewing_duration(outcomes: Outcomes) -> None:
    primary = outcomes["primaryOutcomes"][0]
    primary["measure"] = "Co-primary: (1) number of chewing cycles per bolus"
    outcomes["secondaryOutcomes"] = [dict(primary, measure="Total chewing duration per bolus")]


def _promote_perceived_stress(outcomes: Outcomes) -> None:
    del outcomes["secondaryOutcomes"][6]
    outcomes["primaryOutcomes"][0]["measure"] = "Mental health symptoms and perceived stress"


def _retimed(time_frame: str) -> Edit:
    def edit(outcomes: Outcomes) -> None:
        for outcome in outcomes["primaryOutcomes"]:
            outcome["timeFrame"] = time_frame

    return edit


# (id, record, edit applied to the real record, backwards, [(kind, grade)] expected, sorted)
RESTRUCTURED: list[tuple[str, str, Edit, bool, list[tuple[str, str]]]] = [
    (
        "two-entries-merged",
        "NCT00763412.json",
        _merge(0, 2, "BMI and CRP"),
        False,
        [("outcome_modified", "editorial")] * 2,
    ),
    (
        "one-entry-split-in-two",
        "NCT00763412.json",
        _merge(0, 2, "BMI and CRP"),
        True,
        [("outcome_modified", "editorial")] * 2,
    ),
    (
        "merged-with-their-definitions",
        "NCT05594173.json",
        _merge(
            0, 1, "Number of Chewing Cycles and Total Chewing Duration Per Bolus", descriptions=True
        ),
        False,
        [("outcome_modified", "editorial")] * 2,
    ),
    (
        "split-and-retimed",
        "NCT00763412.json",
        _then(_merge(0, 2, "BMI and CRP"), _retimed("1 year")),
        True,
        [("outcome_modified", "minor")] * 3,  # BMI, CRP split out, and Body Composition retimed
    ),
    (
        "composite-taken-apart-into-its-components",
        "NCT03475563.json",
        _split_mace,
        False,
        [("outcome_modified", "major")] * 3,
    ),
    (
        "component-demoted-to-secondary",
        "NCT05594173.json",
        _demote_chewing_duration,
        False,
        [("outcome_modified", "major"), ("outcome_reclassified", "major")],
    ),
    (
        "component-promoted-into-the-entry",
        "NCT05594173.json",
        _demote_chewing_duration,
        True,
        [("outcome_modified", "major"), ("outcome_reclassified", "major")],
    ),
    (
        "secondary-promoted-into-an-entry",
        "NCT03630471.json",
        _promote_perceived_stress,
        False,
        [("outcome_modified", "major"), ("outcome_reclassified", "major")],
    ),
    (
        "an-outcome-named-in-an-unchanged-composite-is-added",
        "NCT03475563.json",
        add("primaryOutcomes", measure="Cardiac death", timeFrame="30 days"),
        False,
        [("outcome_added", "major")],
    ),
]


def restructured_events(name: str, edit: Edit, backwards: bool) -> list[Change]:
    raw = load(name)
    if edit is _demote_chewing_duration:  # from (or to) the record's outcomes as one co-primary
        _co_primary(raw["protocolSection"]["outcomesModule"])
    other = copy.deepcopy(raw)
    edit(other["protocolSection"]["outcomesModule"])
    return outcome_events(other, raw) if backwards else outcome_events(raw, other)


@pytest.mark.parametrize(
    ("name", "edit", "backwards", "expected"),
    [pytest.param(n, e, b, x, id=case) for case, n, e, b, x in RESTRUCTURED],
)
def test_a_restructured_list_is_what_it_is_never_removed_and_added(
    name: str, edit: Edit, backwards: bool, expected: list[tuple[str, str]]
) -> None:
    events = restructured_events(name, edit, backwards)
    assert sorted((e.kind, e.grade) for e in events) == expected, [e.summary for e in events]


def test_a_split_names_the_entry_it_came_from() -> None:
    events = edited("NCT00763412.json", _merge(0, 2, "BMI and CRP"), backwards=True)
    assert 'Primary outcome 1 split: "CRP" is now an entry of its own' in [
        e.summary for e in events
    ]
    merged = edited("NCT00763412.json", _merge(0, 2, "BMI and CRP"))
    assert 'Primary outcome "CRP" merged into primary outcome 1' in [e.summary for e in merged]


def _listed(items: list[str], html: bool) -> str:
    if html:
        return "Co-primary:<ol>" + "".join(f"<li>{item}</li>" for item in items) + "</ol>"
    return "Co-primary:\n" + "\n".join(f"{n}. {item}" for n, item in enumerate(items, 1))


@pytest.mark.parametrize("html", [False, True], ids=["markdown", "html"])
def test_an_end_point_appended_to_a_list_inside_an_entry_is_major(html: bool) -> None:
    items = ["Number of chewing cycles per bolus", "Total chewing duration per bolus"]
    raw = load("NCT05594173.json")
    before, after, reformatted = (copy.deepcopy(raw) for _ in range(3))
    before["protocolSection"]["outcomesModule"]["primaryOutcomes"][0]["measure"] = _listed(
        items, html
    )
    after["protocolSection"]["outcomesModule"]["primaryOutcomes"][0]["measure"] = _listed(
        [*items, "Maximal bite force"], html
    )
    reformatted["protocolSection"]["outcomesModule"]["primaryOutcomes"][0]["measure"] = _listed(
        items, not html
    )
    [event] = outcome_events(before, after)
    assert (event.kind, event.grade) == ("outcome_modified", "major")
    assert outcome_events(before, reformatted) == []  # the same list in the other markup


def test_any_two_primary_outcomes_of_any_record_merged_are_never_removed_or_added() -> None:
    """A property over the real records: two primary outcomes of one time frame written as one
    entry ("A and B") is a restructured list, never a swap."""
    tried = 0
    for path in RECORDS:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw = raw.get("study", raw)
        primaries = raw["protocolSection"]["outcomesModule"].get("primaryOutcomes", [])
        for first in range(min(len(primaries), 4)):
            for second in range(first + 1, min(len(primaries), 4)):
                a, b = primaries[first], primaries[second]
                if a.get("timeFrame") != b.get("timeFrame"):
                    continue
                merged = copy.deepcopy(raw)
                outcomes = merged["protocolSection"]["outcomesModule"]
                _merge(first, second, f"{a['measure']} and {b['measure']}")(outcomes)
                kinds = {e.kind for e in outcome_events(raw, merged)}
                assert kinds <= {"outcome_modified"}, (path.name, first, second, kinds)
                tried += 1
    assert tried >= 5
