"""Fold registry text to a canonical plain form so that cosmetic churn compares equal.

ClinicalTrials.gov served old record versions as HTML with entities (``<p>``, ``&#x2F;``) and
serves current ones as Markdown with backslash escapes (``\\>=``). The same sentence in both
forms must fold to the same string, or every history backfill would report every text field as
changed. ``fold_text`` therefore strips both markups, decodes entities, normalises Unicode and
collapses whitespace. The result is still readable (it is what alerts show), just flat.

What is deliberately *not* folded: letter case (``fold_key`` adds that for matching), typographic
quotes and dashes, and compatibility characters other than spaces (``²``, ``µ``, ``½`` keep their
meaning). The functions are pure and run on every text field of every record in a cycle, so every
pattern is compiled once here and the common case (short plain ASCII) takes a fast path.

Also here, for the diff and its alerts: bounded word diffs (``diff_opcodes``), a window around
the first difference of two long texts (``change_window``), and how outcome text is compared
(``cosmetic_key``: case, spacing and number words folded; ``match_tokens``: units, plurals and
clinical synonyms read alike, for pairing reworded outcomes).
"""

from __future__ import annotations

import difflib
import functools
import html
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = [
    "MAX_DIFF_CELLS",
    "cased_words",
    "change_window",
    "cosmetic_key",
    "diff_opcodes",
    "fold_key",
    "fold_list_text",
    "fold_text",
    "match_tokens",
    "plain_words",
    "storable",
    "unlisted",
]

# Characters that can start markup, an entity, an escape or a line structure. Text without any
# of them only needs its whitespace collapsed.
_NEEDS_WORK = re.compile(r"[&<\\*_\[\n\r]")

_LINE_ENDS = re.compile(r"\r\n?")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)

# Only known tag names count as markup: a literal "a<b and c>d" in plain text must survive, and a
# Markdown-escaped "\<p\>" is text, not a tag.
_INLINE_TAGS = (
    "a|abbr|b|big|cite|code|del|em|font|i|ins|kbd|mark|q|s|samp|small|span|strike|strong|sub|"
    "sup|tt|u|var"
)
_BLOCK_TAGS = (
    "address|article|aside|blockquote|body|br|caption|center|col|colgroup|dd|div|dl|dt|"
    "figcaption|figure|footer|h[1-6]|head|header|hr|html|img|li|main|nav|ol|p|pre|section|"
    "table|tbody|td|tfoot|th|thead|title|tr|ul"
)
_TAG_TAIL = r")(?:\s[^<>]*)?/?>"
_INLINE_TAG = re.compile(r"(?<!\\)</?(?:" + _INLINE_TAGS + _TAG_TAIL, re.IGNORECASE)
_BLOCK_TAG = re.compile(r"(?<!\\)</?(?:" + _BLOCK_TAGS + _TAG_TAIL, re.IGNORECASE)

# Line-level Markdown. Only applied to multi-line Markdown text: a one-line title, arm label or
# outcome measure such as "2. Repaglinide" or "# of participants" is content, not a list.
_THEMATIC_BREAK = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$", re.MULTILINE)
_LINE_MARKER = re.compile(r"^[ \t]*(?:#{1,6}|[*+-]|\d{1,9}[.)])[ \t]+", re.MULTILINE)

# Inline Markdown. An escaped delimiter (\*) is literal and must not open or close emphasis.
_STRONG = re.compile(r"(?<![\\*_])(\*\*|__)(?=\S)(.+?)(?<=[^\s\\])\1")
_EMPHASIS_STAR = re.compile(r"(?<![\\*\w])\*(?=[^\s*])(.+?)(?<=[^\s\\*])\*(?![*\w])")
_EMPHASIS_UNDERSCORE = re.compile(r"(?<![\\_\w])_(?=[^\s_])(.+?)(?<=[^\s\\_])_(?![_\w])")
_LINK = re.compile(r"!?(?<!\\)\[([^\[\]\n]*)(?<!\\)\]\([^()\n]*\)")
# CommonMark: a backslash before ASCII punctuation escapes it; before a line end it is a break.
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~\n])")

# Entities need their semicolon: html.unescape alone would also turn "R&D&notes" into "R&D¬es".
_ENTITY = re.compile(r"&(?:#[0-9]{1,8}|#[xX][0-9a-fA-F]{1,7}|[A-Za-z][A-Za-z0-9]{1,31});")
_MAX_ENTITY_PASSES = 4  # "&amp;amp;#x2F;" needs three; more would be a loop on hostile input

# Invisible characters removed outright: a zero-width space inside a word must not split it.
# Visible compatibility spaces (NBSP, thin, ideographic ...) are whitespace to str.split().
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u180e\u200b\u2060\ufeff"))
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
T = TypeVar("T")


# Short values (statuses, countries, cities, sponsor names) repeat across the whole registry;
# remembering them makes the common call a dict lookup. Long texts rarely repeat and would
# only churn the cache. Bounded, so memory stays flat over any number of cycles.
_CACHED_LENGTH = 120
_CACHE_SIZE = 1 << 16


def fold_text(value: object) -> str:
    """Return ``value`` as flat plain text: markup, entities and whitespace runs folded away.

    ``None`` is ``""``; other non-strings are folded as ``str(value)``.
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= _CACHED_LENGTH:
        return _fold_short(text)
    return _fold(text)


def fold_key(value: object) -> str:
    """Return ``fold_text(value)`` case-folded: a key for matching text that may change case."""
    return fold_text(value).casefold()


def _fold(text: str) -> str:
    if "\x00" in text:  # PostgreSQL stores no NUL in text; it carries nothing anyway
        text = text.replace("\x00", "")
    if _NEEDS_WORK.search(text) is not None:
        text = _unmark(text)
    if not text.isascii():
        text = _fold_unicode(text)
    return " ".join(text.split())


_fold_short = functools.lru_cache(maxsize=_CACHE_SIZE)(_fold)


def _unmark(text: str) -> str:
    # A text is either an old HTML version or a current Markdown one, never both: Markdown
    # escapes "<", and HTML has no Markdown. Reading HTML as Markdown would turn a literal
    # "<p>1. Dose</p>" into a list item and drop its number. Entities go last in both cases
    # (a decoded "&lt;p&gt;" or "&#42;" is literal text, never markup).
    if "\r" in text:
        text = _LINE_ENDS.sub("\n", text)
    text = _strip_tags(text) if "<" in text and _is_html(text) else _unmark_markdown(text)
    if "&" in text:
        text = _decode_entities(text)
    return text


def _is_html(text: str) -> bool:
    return _BLOCK_TAG.search(text) is not None or _INLINE_TAG.search(text) is not None


def _unmark_markdown(text: str) -> str:
    # Markdown before escapes: an escaped "\*" must neither open emphasis nor vanish.
    if "\n" in text:
        text = _THEMATIC_BREAK.sub("", text)
        text = _LINE_MARKER.sub("", text)
    if "*" in text or "_" in text:
        text = _STRONG.sub(r"\2", text)
        text = _EMPHASIS_STAR.sub(r"\1", text)
        text = _EMPHASIS_UNDERSCORE.sub(r"\1", text)
    if "[" in text:
        text = _LINK.sub(r"\1", text)
    if "\\" in text:
        text = _ESCAPE.sub(r"\1", text)
    return text


def _strip_tags(text: str) -> str:
    text = _HTML_COMMENT.sub("", text)
    text = _BLOCK_TAG.sub("\n", text)
    return _INLINE_TAG.sub("", text)


def _decode_entities(text: str) -> str:
    for _ in range(_MAX_ENTITY_PASSES):
        decoded = _ENTITY.sub(_decode_entity, text)
        if decoded == text:
            break
        text = decoded
    return text


def _decode_entity(match: re.Match[str]) -> str:
    # html.unescape maps unknown names to themselves and invalid code points to U+FFFD.
    return html.unescape(match.group(0))


def _fold_unicode(text: str) -> str:
    text = text.translate(_INVISIBLE)
    # A lone surrogate (legal in JSON, "\ud800") cannot be encoded as UTF-8 later.
    if _LONE_SURROGATE.search(text) is not None:
        text = _LONE_SURROGATE.sub("\ufffd", text)
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text


def storable(value: T) -> T:
    """``value`` (text, or JSON made of text) as every store can hold it: without NUL
    characters (PostgreSQL refuses them in text and JSON) and with lone surrogates (legal in
    JSON, not encodable as UTF-8) replaced. Text a registry sent that was not folded (facts
    the findings quote, error messages) passes here before it is stored."""
    if isinstance(value, str):
        return _storable_text(value)  # type: ignore[return-value]
    if isinstance(value, list | tuple):
        return type(value)(storable(item) for item in value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}  # type: ignore[return-value]
    return value


def _storable_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii() and _LONE_SURROGATE.search(text) is not None:
        text = _LONE_SURROGATE.sub("\ufffd", text)
    return text


# --- bounded word diffs -------------------------------------------------------------------------

Opcode = tuple[str, int, int, int, int]

# A word diff costs up to len(a) × len(b) steps (10k against 10k words took 15 s). The part
# between the common head and tail is diffed word by word only while it stays within this
# many cells; past it, by sentences; past that too, as one replacement.
MAX_DIFF_CELLS = 4_000_000
_SENTENCE_END = re.compile(r"[.;:!?]$|\n")


def diff_opcodes(
    a: Sequence[str],
    b: Sequence[str],
    isjunk: Callable[[str], bool] | None = None,
    max_cells: int = MAX_DIFF_CELLS,
) -> list[Opcode]:
    """``difflib.SequenceMatcher(isjunk, a, b).get_opcodes()`` at a bounded cost.

    The common head and tail are cut off first (O(n): most edits touch one place). A middle
    of more than ``max_cells`` (len × len) is diffed by sentences, and one whose sentences
    are still too many is a single replacement: coarser, never slow.
    """
    head = _common_head(a, b)
    tail = _common_tail(a[head:], b[head:])
    a_end, b_end = len(a) - tail, len(b) - tail
    ops: list[Opcode] = [("equal", 0, head, 0, head)] if head else []
    ops += _middle_opcodes(a, b, head, a_end, head, b_end, isjunk, max_cells)
    if tail:
        ops.append(("equal", a_end, len(a), b_end, len(b)))
    return ops


def _common_head(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _common_tail(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    for x, y in zip(reversed(a), reversed(b), strict=False):
        if x != y:
            break
        n += 1
    return n


def _middle_opcodes(
    a: Sequence[str],
    b: Sequence[str],
    a0: int,
    a1: int,
    b0: int,
    b1: int,
    isjunk: Callable[[str], bool] | None,
    max_cells: int,
) -> list[Opcode]:
    if a0 == a1 and b0 == b1:
        return []
    if a0 == a1 or b0 == b1:
        return [("insert" if a0 == a1 else "delete", a0, a1, b0, b1)]
    if (a1 - a0) * (b1 - b0) <= max_cells:
        matcher = difflib.SequenceMatcher(isjunk, a[a0:a1], b[b0:b1], autojunk=False)
        return [(op, a0 + i, a0 + j, b0 + k, b0 + m) for op, i, j, k, m in matcher.get_opcodes()]
    return _sentence_opcodes(a, b, a0, a1, b0, b1, max_cells)


def _sentences(tokens: Sequence[str], start: int, end: int) -> list[tuple[int, int]]:
    """``tokens[start:end]`` cut after each token that ends a sentence or a line."""
    spans: list[tuple[int, int]] = []
    begin = start
    for i in range(start, end):
        if _SENTENCE_END.search(tokens[i]):
            spans.append((begin, i + 1))
            begin = i + 1
    if begin < end:
        spans.append((begin, end))
    return spans


def _sentence_opcodes(
    a: Sequence[str], b: Sequence[str], a0: int, a1: int, b0: int, b1: int, max_cells: int
) -> list[Opcode]:
    a_spans, b_spans = _sentences(a, a0, a1), _sentences(b, b0, b1)
    if len(a_spans) * len(b_spans) > max_cells:
        return [("replace", a0, a1, b0, b1)]
    a_text = ["".join(a[i:j]) for i, j in a_spans]
    b_text = ["".join(b[i:j]) for i, j in b_spans]
    matcher = difflib.SequenceMatcher(None, a_text, b_text, autojunk=False)
    ops: list[Opcode] = []
    for op, i, j, k, m in matcher.get_opcodes():
        start_a = a_spans[i][0] if i < len(a_spans) else a1
        end_a = a_spans[j - 1][1] if j > i else start_a
        start_b = b_spans[k][0] if k < len(b_spans) else b1
        end_b = b_spans[m - 1][1] if m > k else start_b
        ops.append((op, start_a, end_a, start_b, end_b))
    return ops


# --- a short window around the first difference ------------------------------------------------

_WINDOW_CONTEXT = 4  # unchanged words kept before the first differing word


def change_window(old: str, new: str, limit: int = 80) -> tuple[str, str]:
    """``old`` and ``new`` cut to at most ``limit`` characters each, both showing the same
    place: a few words before their first differing word, then as much as fits. Cut ends are
    marked with "…". Texts that fit are returned whole, so short edits read in full."""
    if len(old) <= limit and len(new) <= limit:
        return old, new
    a, b = old.split(" "), new.split(" ")
    head = _common_head(a, b)
    # A few words of context, but never more than a third of the room: the rest is for
    # the words that differ.
    start = head
    while (
        start > 0
        and head - start < _WINDOW_CONTEXT
        and len(" ".join(a[start - 1 : head])) <= limit // 3
    ):
        start -= 1
    return _window(a, start, limit), _window(b, start, limit)


def _window(words: list[str], start: int, limit: int) -> str:
    prefix = "…" if start else ""
    text = prefix + " ".join(words[start:])
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


# --- outcome text ---------------------------------------------------------------------------------
# Registry histories show outcome text edited in ways that do not change the outcome: letter
# case (``3 months`` → ``3 Months``), spacing inside a word or around a hyphen (``VO2max`` →
# ``VO2 max``, ``6-18 weeks`` → ``6 -18 weeks``) and number words (``three months`` →
# ``3 months``). ``cosmetic_key`` folds exactly those away: two outcome texts with the same key
# are the same text for the diff (the contract lists them as never reported).
#
# Pairing a reworded outcome with its earlier version needs more: units written differently
# (``12 wks``/``12 weeks``), plurals, boilerplate openings ("Number of participants with") and
# clinical synonyms (``Mortality`` ↔ ``death of any cause``; ``Safety of X`` ↔ ``adverse
# events related to X``). ``match_tokens`` reads a text as a set of such normalised tokens,
# synonyms of one concept as the same ``@concept`` token. These tokens only decide which
# outcomes pair; they never decide that a text is unchanged.

# --- outcome text: number words -------------------------------------------------------------

# fmt: off
_UNITS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
# fmt: on
_UNIT_VALUE = {word: n for n, word in enumerate(_UNITS)}
_TENS_VALUE = {word: 20 + 10 * n for n, word in enumerate(_TENS)}
_NUMBER_WORD = re.compile(
    r"\b(?:(" + "|".join(_TENS) + r")(?:[\s-]+(" + "|".join(_UNITS[1:10]) + r"))?"
    r"|(" + "|".join(_UNITS) + r"))\b"
)  # case-sensitive: it reads case-folded text only (three times faster than IGNORECASE)


def _number(match: re.Match[str]) -> str:
    tens, unit, alone = match.group(1), match.group(2), match.group(3)
    if alone:
        return str(_UNIT_VALUE[alone])
    return str(_TENS_VALUE[tens] + (_UNIT_VALUE[unit] if unit else 0))


def _digits(folded: str) -> str:
    """``three months`` → ``3 months``; ``twenty-four hours`` → ``24 hours`` (0–99), in
    case-folded text."""
    return _NUMBER_WORD.sub(_number, folded)


# --- outcome text: the cosmetic key ----------------------------------------------------------

_OUTCOME_CACHE = 1 << 14


@functools.lru_cache(maxsize=_OUTCOME_CACHE)
def cosmetic_key(text: str) -> str:
    """``text`` with letter case, all spacing, number words and list markers folded away: two
    outcome texts with the same key differ only cosmetically (``VO2max`` = ``VO2 max`` =
    ``vo2 MAX``; a Markdown list = the same list in HTML)."""
    # a list's items kept apart by "; " (``fold_list_text``) read as the same list run together
    return "".join(_digits(unlisted(fold_key(text))).replace(";", " ").split())


# A list item: a Markdown line starting with a bullet or a number, or an HTML <li>.
_ITEM_LINE = re.compile(r"^[ \t]*(?:[*+-]|\d{1,9}[.)])[ \t]+", re.MULTILINE)
_HTML_ITEM = re.compile(r"<li\b[^>]*>", re.IGNORECASE)


def fold_list_text(value: object) -> str:
    """``fold_text``, with the items of a list (Markdown lines, HTML ``<li>``) kept apart by
    "; " instead of run together: an outcome measure's end points stay countable ("A; B; C"),
    and the same list in Markdown or HTML folds alike."""
    if not isinstance(value, str) or ("\n" not in value and "<" not in value):
        return fold_text(value)
    splitter = _HTML_ITEM if _HTML_ITEM.search(value) else _ITEM_LINE
    head, *items = splitter.split(value)
    folded = [one for one in (fold_text(item).rstrip(";, ") for item in items) if one]
    if len(folded) < 2:
        return fold_text(value)
    listed = "; ".join(folded)
    lead = fold_text(head)
    return f"{lead} {listed}" if lead else listed


# A list marker left in folded text: a bullet standing alone, or a list number ("1." "2)").
_BULLET = re.compile(
    r"(?:(?<=\s)|^)[\u2022\u25e6\u25aa\u25ab\u2023\u2043\u25cf\u25cb\u25a0\u25a1\u2219\u00b7*+-](?=\s|$)"
)
_LIST_NUMBER = re.compile(r"(?:(?<=\s)|^)(\d{1,2})[.)](?=\s)")


def unlisted(text: str) -> str:
    """Folded ``text`` without list markers: a list written in Markdown (``* a`` lines,
    ``1. a`` lines, escaped or not), in HTML (``<ul><li>``, which folding drops) or with
    bullet characters (``&bull; a``) reads the same. A number counts as a list marker only in
    a run 1, 2, 3… (one alone only at the start): "Pain at 1. week" keeps its number; a
    bullet only standing alone, never after a number ("1 - 2 weeks" keeps its dash)."""
    if _BULLET.search(text) is not None:
        text = _BULLET.sub(_drop_bullet, text)
    numbers = [int(n) for n in _LIST_NUMBER.findall(text)]
    if (
        numbers
        and numbers == list(range(1, len(numbers) + 1))
        and (len(numbers) > 1 or _LIST_NUMBER.match(text.lstrip()) is not None)
    ):
        text = _LIST_NUMBER.sub("", text)
    return " ".join(text.split())


def _drop_bullet(match: re.Match[str]) -> str:
    before = match.string[: match.start()].rstrip()
    return match.group(0) if before[-1:].isdigit() else ""


# Words as a reader sees them: letters and digits runs, hyphens and punctuation dropped.
_WORD = re.compile(r"[^\W_]+")


def plain_words(text: str) -> list[str]:
    """The words of ``text`` with markup, punctuation, hyphens and letter case folded away and
    number words as digits: two texts with the same words differ only in punctuation or
    capitalisation (``Time-to-event, (days)`` = ``time to event days``)."""
    return list(_plain_words(text))


@functools.lru_cache(maxsize=_OUTCOME_CACHE)
def _plain_words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(_digits(fold_key(text))))


def cased_words(text: str) -> list[str]:
    """The words of ``text`` (markup and punctuation dropped) in their own letter case, to
    tell an acronym (``FEV1``, ``OS``) from a word."""
    return list(_cased_words(text))


@functools.lru_cache(maxsize=_OUTCOME_CACHE)
def _cased_words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(fold_text(text)))


# --- outcome text: tokens for pairing --------------------------------------------------------

# Letters and digits are separate tokens, so "VO2max" and "VO2 max" give the same ones.
_TOKEN = re.compile(r"[^\W\d_]+|\d+(?:[.,]\d+)?")

# Function words, and the boilerplate that opens most outcome measures ("Number of
# participants with", "Change from baseline in"): matching on them would pair any two outcomes.
# fmt: off
STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "during", "for", "from", "in", "into",
    "is", "its", "of", "on", "or", "over", "per", "the", "their", "to", "up", "vs", "versus",
    "was", "were", "which", "who", "with", "within", "after", "between", "than", "that",
    "this", "those", "number", "percentage", "proportion", "change", "baseline",
    "participant", "patient", "subject", "rate", "incidence", "occurrence", "measure",
    "assessed", "assessment", "evaluation", "evaluate", "any",
))
# fmt: on

# Units as registries write them → one spelling. Only unambiguous abbreviations.
_UNIT_SPELLINGS: dict[str, tuple[str, ...]] = {
    "week": ("wk", "wks", "week", "weeks"),
    "month": ("mo", "mos", "mth", "mths", "month", "months"),
    "day": ("day", "days"),
    "hour": ("h", "hr", "hrs", "hour", "hours"),
    "minute": ("min", "mins", "minute", "minutes"),
    "year": ("yr", "yrs", "year", "years"),
    "kg": ("kg", "kgs", "kilogram", "kilograms", "kilogramme", "kilogrammes"),
    "mg": ("mg", "milligram", "milligrams", "milligramme", "milligrammes"),
    "ml": ("ml", "millilitre", "millilitres", "milliliter", "milliliters"),
    "cm": ("cm", "centimetre", "centimetres", "centimeter", "centimeters"),
    "mmhg": ("mmhg",),
}
_UNIT = {spelling: unit for unit, spellings in _UNIT_SPELLINGS.items() for spelling in spellings}


def _stem(word: str) -> str:
    # Plural "s" only: enough to match "event"/"events" without a stemming library.
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _normal_words(text: str) -> list[str]:
    words = _TOKEN.findall(_digits(fold_key(text)))
    return [_UNIT.get(w) or _stem(w) for w in words]


@functools.lru_cache(maxsize=_OUTCOME_CACHE)
def match_tokens(text: str, *, filtered: bool) -> frozenset[str]:
    """The normalised tokens of ``text`` for pairing outcomes: units in one spelling,
    plurals stemmed, synonym phrases as ``@concept`` tokens, and (``filtered``) function
    words and outcome boilerplate dropped unless nothing else is left."""
    words = _concepts(_normal_words(text))
    found = frozenset(w for w in words if len(w) > 1 or w.isdigit())
    if filtered:
        # A measure made only of boilerplate ("Change from baseline") keeps its words.
        return found - STOPWORDS or found
    return found


def _concepts(words: list[str]) -> list[str]:
    """``words`` with every synonym phrase of the table replaced by its concept token,
    longest phrase first."""
    out: list[str] = []
    i = 0
    while i < len(words):
        for phrase, concept in _PHRASES.get(words[i], ()):
            if tuple(words[i : i + len(phrase)]) == phrase:
                out.append(concept)
                i += len(phrase)
                break
        else:
            out.append(words[i])
            i += 1
    return out


# --- outcome text: clinical synonyms ---------------------------------------------------------

# Common outcome concepts and the wordings registrations use for them. A phrase is read after
# the folding above (lowercase, number words as digits, plural "s" stripped, units in one
# spelling), so "Adverse Events" is written here as "adverse event".
SYNONYMS: dict[str, tuple[str, ...]] = {
    "death": (
        "mortality", "death", "dead", "die", "died", "fatality", "fatalities",
        "all cause mortality", "death of all cause", "death from all cause",
    ),
    "safety": (
        "safety", "adverse event", "adverse effect", "adverse reaction", "adverse drug reaction",
        "side effect", "toxicity", "toxicities", "tolerability", "ae", "teae", "sae",
        "serious adverse event", "treatment emergent adverse event",
        "treatment related adverse event",
        "complication", "safety and tolerability",
    ),
    "response": (
        "response", "responder", "remission", "respond", "responding", "orr",
        "objective response", "overall response", "clinical response",
    ),
    "qol": (
        "qol", "hrqol", "quality of life", "health related quality of life",
        "life quality",
    ),
    "pfs": ("pfs", "progression free survival", "progression-free survival"),
    "os": ("os", "overall survival"),
    "dfs": ("dfs", "disease free survival"),
    "efs": ("efs", "event free survival"),
    "relapse": ("relapse", "recurrence", "recurrent disease", "recur"),
    "hospitalisation": (
        "hospitalization", "hospitalisation", "hospital admission", "admission to hospital",
        "hospitalized", "hospitalised", "rehospitalization", "readmission",
    ),
    "efficacy": ("efficacy", "effectiveness", "clinical efficacy"),
    "pk": (
        "pk", "pharmacokinetic", "pharmacokinetics", "plasma concentration",
        "serum concentration",
    ),
    "bp": ("bp", "blood pressure"),
    "hba1c": ("hba 1 c", "a 1 c", "glycated hemoglobin", "glycosylated hemoglobin",
              "glycated haemoglobin", "glycosylated haemoglobin"),
    "los": ("los", "length of stay", "length of hospital stay", "hospital length of stay"),
    "6mw": ("6 minute walk", "6 mwt", "6 mwd", "6mwt", "6mwd", "6 min walk", "6 minute walking"),
    "mi": ("mi", "myocardial infarction", "heart attack"),
    "stroke": ("stroke", "cerebrovascular accident", "cva"),
    "adherence": ("adherence", "compliance"),
    "pain": ("pain", "pain intensity", "pain severity", "pain score"),
}  # fmt: skip


def _phrase_table() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    table: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for concept, phrases in SYNONYMS.items():
        for phrase in phrases:
            words = tuple(_normal_words(phrase))
            table.setdefault(words[0], []).append((words, "@" + concept))
    for entries in table.values():
        entries.sort(key=lambda entry: -len(entry[0]))  # longest phrase first
    return table


_PHRASES = _phrase_table()
