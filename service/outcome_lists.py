"""Outcome lists restructured between two versions of a record: one entry split into several,
several merged into one, a component of an entry moved to another list (or from another list
into an entry).

Pairing (``service.diff.pair_outcomes``) matches one outcome to one outcome; what it leaves
unpaired would read as removed + added. Before that verdict, an unpaired outcome is tried as
a *piece* of an entry that holds several outcomes (a list, a composite, "A and B"):

- **split**: an unpaired new outcome whose measure is carried by an old entry holding several,
  and whose words left that entry (its successor no longer has them, or it has none);
- **merge**: an unpaired old outcome whose measure is carried by a new entry holding several,
  and whose words came into that entry (its predecessor did not have them, or it has none).

Each piece found is one event against the entry it came from or went into (the diff grades
it), and the words that moved are handed to the grading of the entry's own pair, so that
taking a component out into an entry of its own is not read as a component dropped.
Pure functions: no I/O, no state.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.models import Outcome, OutcomeType
from service.text import STOPWORDS, plain_words

__all__ = [
    "CONJUNCTION",
    "COVER",
    "Piece",
    "Restructure",
    "holds_several",
    "list_items",
    "restructure",
]

# Share of a piece's measure words the whole entry must carry: "Improvement of fatigue VAS"
# is a piece of "Improvement of dryness, pain and fatigue VAS"; "Sleep quality" is not.
COVER = 0.8

# What joins components in one text: "Death and stroke", "Death; stroke", "Death/stroke".
CONJUNCTION = re.compile(r"(?:^|\s)(?:and|or|plus|as well as)(?:\s|$)|[,;/+&]", re.IGNORECASE)
_COMPOSITE = frozenset({"composite", "mace", "combined", "co", "coprimary"})
# Words that say how or when, never what: they neither make nor break a piece.
_FILLER = frozenset(
    {"and", "or", "plus", "well", "time", "frame", "measured", "each", "both", "all",
     "following", "defined", "including", "include", "includes", "primary", "secondary",
     "outcome", "outcomes", "endpoint", "endpoints", "end", "point", "points", "co"}
)  # fmt: skip
# A list item: a line that starts with a bullet or a number ("1." "2)" "(3)" "a)").
_LINE_ITEM = re.compile(
    r"^[ \t]*(?:[-*+\u2022\u25e6\u25cf\u00b7]|\(?\d{1,2}[.)]|\(?[a-h]\))[ \t]+", re.M
)
# Items written inline: "1) death; 2) stroke", "(1) death (2) stroke".
_INLINE_ITEM = re.compile(r"(?:^|\s)\(?(\d{1,2})\)")

# Words that say nothing of what is measured; "baseline" stays: "at baseline" and "at week 1"
# are two pieces of "at baseline and week 1".
_FUNCTION = STOPWORDS - {"baseline"}

Pool = Sequence[tuple[OutcomeType, Outcome]]


@dataclass(frozen=True, slots=True)
class Piece:
    """One outcome split out of an old entry (``split``) or merged into a new one."""

    old: int  # position in the old pool
    new: int  # position in the new pool
    split: bool
    words: frozenset[str]  # the plain words of the piece: what moved


@dataclass
class Restructure:
    pieces: list[Piece] = field(default_factory=list)
    # per paired entry: plain words that left it for pieces of their own / came into it
    moved_out: dict[int, frozenset[str]] = field(default_factory=dict)  # old position
    moved_in: dict[int, frozenset[str]] = field(default_factory=dict)  # new position


def list_items(text: str) -> int:
    """How many list items ``text`` holds: bulleted or numbered lines, or items numbered
    inline ("1) death; 2) stroke"); 0 when it is not a list."""
    lines = len(_LINE_ITEM.findall(text))
    numbers = [int(n) for n in _INLINE_ITEM.findall(text)]
    inline = len(numbers) if numbers[:2] == [1, 2] else 0
    items = max(lines, inline)
    return items if items >= 2 else 0


def holds_several(outcome: Outcome) -> bool:
    """Whether an entry holds several outcomes: its measure lists or joins them, or it says it
    is a composite (its components then in the measure or the description)."""
    measure = outcome.measure
    if list_items(measure) or CONJUNCTION.search(measure):
        return True
    words = set(plain_words(measure)) | set(plain_words(outcome.description))
    return not _COMPOSITE.isdisjoint(words) and bool(
        list_items(outcome.description) or CONJUNCTION.search(outcome.description)
    )


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _content(text: str) -> dict[str, str]:
    """{stem: word} of the words of ``text`` that say what is measured."""
    return {
        _stem(w): w
        for w in plain_words(text)
        if w not in _FUNCTION and w not in _FILLER and not w[0].isdigit() and len(w) > 1
    }


def _said(outcome: Outcome | None) -> frozenset[str]:
    if outcome is None:
        return frozenset()
    return frozenset(_content(outcome.measure)) | frozenset(_content(outcome.description))


def _all_words(outcome: Outcome) -> list[tuple[str, str]]:
    return [
        (_stem(w), w)
        for text in (outcome.measure, outcome.time_frame, outcome.description)
        for w in plain_words(text)
    ]


def _moved_words(piece: Outcome, whole: Outcome, rest: Outcome | None) -> frozenset[str] | None:
    """The plain words of ``piece`` when it is a piece of ``whole``: ``whole`` carried most of
    its measure's words and ``rest`` (what became of the whole, if anything) no longer carries
    some of them; else ``None``."""
    measure = _content(piece.measure)
    if not measure:
        return None
    carried = set(measure) & _said(whole)
    if len(carried) / len(measure) < COVER:
        return None
    if not carried - _said(rest):
        return None  # what it names is still in the entry: an outcome of its own, not a piece
    return frozenset(w for _, w in _all_words(piece))


def restructure(old: Pool, new: Pool, pairs: dict[int, int]) -> Restructure:
    """The pieces among the outcomes ``pairs`` (``{new: old}``) left unpaired, and the words
    each paired entry lost to pieces or gained from them (same list only: a component moved
    to another list is a change of its own entry too)."""
    found = Restructure()
    successor = {o: n for n, o in pairs.items()}
    paired_old = set(pairs.values())
    wholes_old = [o for o, (_, outcome) in enumerate(old) if holds_several(outcome)]
    wholes_new = [n for n, (_, outcome) in enumerate(new) if holds_several(outcome)]
    for n in range(len(new)):
        if n in pairs:
            continue
        best = _best(
            new[n],
            [(o, old[o], new[successor[o]][1] if o in successor else None) for o in wholes_old],
            n,
        )
        if best is not None:
            o, words = best
            found.pieces.append(Piece(o, n, True, words))
            if o in successor and old[o][0] == new[n][0]:
                found.moved_out[o] = found.moved_out.get(o, frozenset()) | words
    for o in range(len(old)):
        if o in paired_old:
            continue
        best = _best(
            old[o],
            [(n, new[n], old[pairs[n]][1] if n in pairs else None) for n in wholes_new],
            o,
        )
        if best is not None:
            n, words = best
            found.pieces.append(Piece(o, n, False, words))
            if n in pairs and old[o][0] == new[n][0]:
                found.moved_in[n] = found.moved_in.get(n, frozenset()) | words
    return found


def _best(
    piece: tuple[OutcomeType, Outcome],
    wholes: list[tuple[int, tuple[OutcomeType, Outcome], Outcome | None]],
    position: int,
) -> tuple[int, frozenset[str]] | None:
    """The whole entry ``piece`` best belongs to: most of its words moved, then the same list,
    then the nearest position."""
    found: list[tuple[int, bool, int, int, frozenset[str]]] = []
    for at, (kind, whole), rest in wholes:
        if whole is piece[1]:
            continue
        words = _moved_words(piece[1], whole, rest)
        if words is not None:
            found.append((-len(words), kind != piece[0], abs(at - position), at, words))
    if not found:
        return None
    found.sort(key=lambda f: f[:4])
    return found[0][3], found[0][4]
