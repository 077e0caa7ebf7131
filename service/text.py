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
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata

__all__ = ["fold_key", "fold_text"]

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
