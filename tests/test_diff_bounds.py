"""Word diffs cost bounded time: the email's word diff and the summaries' change window.

A word diff is quadratic in the worst case (the email diff took 15 s at 10k words and 117 s at
50k, per email and attempt, blocking the delivery round). ``diff_opcodes`` cuts the common head
and tail and falls back to sentences, then one replacement, past ``MAX_DIFF_CELLS``.
"""

from __future__ import annotations

import difflib
import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.notify.render import _word_diff
from service.text import MAX_DIFF_CELLS, change_window, diff_opcodes

RECORDS = Path(__file__).resolve().parent / "data" / "diff"
TOKEN = re.compile(r"\s+|\S+")


def real_description() -> str:
    raw = json.loads((RECORDS / "NCT03630471.json").read_text(encoding="utf-8"))
    return str(raw["protocolSection"]["descriptionModule"]["detailedDescription"])


def rewritten(text: str, words: int) -> tuple[str, str]:
    """A real text repeated to ``words`` words, and a full rewrite of it (every sentence's
    words in another order), the worst case for a word diff."""
    base = text.split()[:50]  # few distinct words: every word matches in many places
    old = [base[i % len(base)] for i in range(words)]
    new = [base[(i * 7 + 3) % len(base)] for i in range(words)]
    return " ".join(old), " ".join(new)


def apply(ops: list[tuple[str, int, int, int, int]], a: list[str], b: list[str]) -> list[str]:
    out: list[str] = []
    for op, i1, i2, j1, j2 in ops:
        out += a[i1:i2] if op == "equal" else b[j1:j2]
    return out


@pytest.mark.parametrize("words", [10_000, 50_000])
def test_the_email_word_diff_of_a_rewritten_long_text_takes_under_two_seconds(words: int) -> None:
    old, new = rewritten(real_description(), words)
    started = time.perf_counter()
    html = _word_diff(old, new)
    assert time.perf_counter() - started < 2.0
    assert html.startswith('<div style="white-space:pre-wrap">')


def test_one_edit_in_a_fifty_thousand_word_text_is_still_a_word_diff() -> None:
    old = rewritten(real_description(), 50_000)[0]
    words = old.split(" ")
    words[25_000] = "REWORDED"
    started = time.perf_counter()
    html = _word_diff(old, " ".join(words))
    assert time.perf_counter() - started < 2.0
    assert re.search(r"<ins [^>]*>REWORDED</ins>", html)
    assert html.count("<ins") == 1


def test_opcodes_past_the_bound_fall_back_to_sentences_then_one_replacement() -> None:
    a = TOKEN.findall("One. Two three. Four five six. Seven.")
    b = TOKEN.findall("One. Two THREE. Four five six. Eight.")
    fine = diff_opcodes(a, b)
    assert fine == difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    coarse = diff_opcodes(a, b, max_cells=20)  # the middle is too big word by word
    assert [op for op, *_ in coarse] == ["equal", "replace", "equal", "replace"]
    assert "".join(a[coarse[2][1] : coarse[2][2]]) == " Four five six."
    whole = diff_opcodes(a, b, max_cells=1)
    assert [op for op, *_ in whole] == ["equal", "replace"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", " ", ".", "d."]), max_size=30),
    st.lists(st.sampled_from(["a", "b", "c", " ", ".", "d."]), max_size=30),
    st.sampled_from([1, 4, 30, MAX_DIFF_CELLS]),
)
def test_opcodes_always_rebuild_the_new_text(a: list[str], b: list[str], cells: int) -> None:
    ops = diff_opcodes(a, b, max_cells=cells)
    assert apply(ops, a, b) == b
    for op, i1, i2, j1, j2 in ops:
        if op == "equal":
            assert a[i1:i2] == b[j1:j2]


def test_short_texts_are_shown_whole() -> None:
    assert change_window("Week 12", "Week 24") == ("Week 12", "Week 24")


def test_the_window_shows_the_first_difference_of_long_texts_on_both_sides() -> None:
    text = real_description()
    later = text.replace("personnel costs", "staff costs", 1)
    assert text != later and text.index("personnel costs") > 200
    before, after = change_window(text, later, 80)
    assert before.startswith("…") and after.startswith("…")
    assert "personnel costs" in before and "staff costs" in after
    assert len(before) <= 80 and len(after) <= 80
