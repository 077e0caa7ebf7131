"""Tests of the outcome text readers in service.text: which outcome texts are the same but
for cosmetics, and how a text is read for pairing (units, number words, synonyms)."""

from __future__ import annotations

import pytest

from service.text import cosmetic_key, match_tokens


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("VO2max", "VO2 max"),
        ("6-18 weeks", "6 -18 weeks"),
        ("6-18 weeks", "6 - 18 weeks"),
        ("Acute pain relief", "Acute Pain Relief"),
        ("3 months", "3 Months"),
        ("three months", "3 months"),
        ("Twenty-four hours", "24 hours"),
        ("twenty four hours", "24 hours"),
        ("Day one through day twenty-nine", "Day 1 through Day 29"),
    ],
)
def test_case_spacing_and_number_words_are_cosmetic(before: str, after: str) -> None:
    assert cosmetic_key(before) == cosmetic_key(after)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("3 months", "6 months"),
        ("6-18 weeks", "6-12 weeks"),
        ("12 wks", "12 weeks"),  # units: pair, but a visible edit
        ("Mortality", "Death"),  # synonyms: pair, but a visible edit
        ("someone", "some1"),  # number words only as whole words
        ("Pain", "Pain."),
    ],
)
def test_other_edits_are_not_cosmetic(before: str, after: str) -> None:
    assert cosmetic_key(before) != cosmetic_key(after)


def test_units_and_plurals_read_alike_for_pairing() -> None:
    assert match_tokens("12 wks", filtered=False) == match_tokens("twelve Weeks", filtered=False)
    assert match_tokens("Serious adverse events", filtered=True) == match_tokens(
        "serious adverse event", filtered=True
    )


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Mortality", "All-cause death"),
        ("Safety", "Adverse events"),
        ("Tolerability", "Side effects"),
        ("Clinical remission", "Clinical response"),
        ("QoL", "Quality of life"),
        ("HRQoL", "Health-related quality of life"),
        ("PFS", "Progression-free survival"),
        ("Overall survival", "OS"),
        ("Hospitalization", "Hospital admission"),
        ("HbA1c", "Glycated hemoglobin"),
        ("6MWT", "6-minute walk"),
    ],
)
def test_synonyms_of_one_concept_share_its_token(one: str, other: str) -> None:
    shared = match_tokens(one, filtered=True) & match_tokens(other, filtered=True)
    assert any(token.startswith("@") for token in shared), (one, other)


def test_boilerplate_openings_are_dropped_unless_nothing_else_is_left() -> None:
    assert match_tokens("Number of participants with nausea", filtered=True) == {"nausea"}
    assert match_tokens("Change from baseline", filtered=True) == {"change", "from", "baseline"}


def test_different_concepts_do_not_share_a_concept_token() -> None:
    death = match_tokens("Mortality", filtered=True)
    safety = match_tokens("Adverse events", filtered=True)
    assert not death & safety
    # "adverse cardiovascular events" (MACE) is its own outcome, not "adverse events"
    assert "@safety" not in match_tokens("Major adverse cardiovascular events", filtered=True)
