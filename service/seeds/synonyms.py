"""The small synonym table linking and extraction share, and the text folding they match with.

Registries and papers name the same things differently: Sjögren / Sjogren / sicca, a generic
drug name and its brand (baricitinib / Olumiant), a molecule and its pharmaceutical name
(interleukin-2 / aldesleukin / Proleukin). Each entry maps a canonical name to the other names
that mean it. The table is deliberately short: it covers the seed studies' fields and their
usual neighbours; a name it does not know still matches itself.

Matching is on folded tokens: accents and case removed, apostrophes and a possessive or plural
``s`` dropped (``Sjögren's`` → ``sjogren``), the same folding the registry's search applies.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

__all__ = [
    "CONDITIONS",
    "DRUGS",
    "aliases",
    "base_name",
    "canonical",
    "find_terms",
    "fold",
    "mentions",
    "word_set",
]

# canonical name -> other names (abbreviations only where they are unambiguous in the field)
CONDITIONS: dict[str, tuple[str, ...]] = {
    "Sjögren's syndrome": (
        "Sjogren's syndrome",
        "Sjögren syndrome",
        "Sjögren's disease",
        "sicca syndrome",
        "primary SS",
        "pSS",
        "Sjogren",
        "sicca",
    ),
    "systemic lupus erythematosus": ("SLE", "systemic lupus", "lupus erythematosus, systemic"),
    "cutaneous lupus erythematosus": (
        "CLE",
        "cutaneous lupus",
        "discoid lupus erythematosus",
        "subacute cutaneous lupus erythematosus",
        "lupus erythematosus, cutaneous",
    ),
    "lupus nephritis": (),
    "rheumatoid arthritis": ("RA",),
    "dermatomyositis": (),
    "cystic fibrosis": ("CF",),
}

DRUGS: dict[str, tuple[str, ...]] = {
    "leflunomide": ("Arava", "HWA 486"),
    "baricitinib": ("Olumiant", "LY3009104", "INCB028050"),
    "lenalidomide": ("Revlimid", "CC-5013"),
    "thalidomide": ("Thalomid",),
    "interleukin-2": (
        "IL-2",
        "IL2",
        "aldesleukin",
        "Proleukin",
        "recombinant human interleukin-2",
        "rhIL-2",
        "hrIL-2",
    ),
    "sirolimus": ("rapamycin", "Rapamune"),
    "hydroxychloroquine": ("Plaquenil", "HCQ"),
    "methotrexate": ("MTX",),
    "rituximab": ("Rituxan", "MabThera"),
    "tofacitinib": ("Xeljanz",),
    "filgotinib": ("Jyseleca",),
    "upadacitinib": ("Rinvoq",),
    "abatacept": ("Orencia",),
    "belimumab": ("Benlysta",),
}

# Short abbreviations match only when written in capitals in the text ("RA", not "ra").
_CASE_SENSITIVE_MAX = 3

_TOKEN = re.compile(r"[a-z0-9]+")


def word_set(words: str) -> frozenset[str]:
    """A set of words written as one space-separated string (for stopword tables)."""
    return frozenset(words.split())


@lru_cache(maxsize=4096)
def fold(text: str) -> tuple[str, ...]:
    """Search tokens of ``text``: ``"Sjögren’s Syndrome"`` → ``("sjogren", "syndrome")``."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()
    return tuple(_stem(token) for token in _TOKEN.findall(plain) if token != "s")


def _stem(token: str) -> str:
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


# Words around a drug name that do not change which drug it is ("Drug: low-dose IL-2").
_QUALIFIERS = re.compile(
    r"(?i)^(?:(?:drug|biological|other)\s*:\s*)?(?:(?:ultra[- ]?)?low[- ]dose|high[- ]dose)\s+"
)


def base_name(name: str) -> str:
    """``name`` without a type prefix or dose qualifier: ``"Drug: low-dose IL-2"`` → ``"IL-2"``."""
    return _QUALIFIERS.sub("", name.strip()).strip()


def _table_for(name: str) -> dict[str, tuple[str, ...]] | None:
    key = fold(base_name(name))
    for table in (DRUGS, CONDITIONS):
        for canon, others in table.items():
            if key == fold(canon) or any(key == fold(o) for o in others):
                return {canon: others}
    return None


def canonical(name: str) -> str:
    """The table's canonical name for ``name``, or ``name`` itself when the table lacks it."""
    entry = _table_for(name)
    return next(iter(entry)) if entry else name


def aliases(name: str) -> tuple[str, ...]:
    """``name``, its canonical name and every other name of it, canonical first."""
    entry = _table_for(name)
    if not entry:
        return tuple(dict.fromkeys([name, base_name(name)]))
    canon, others = next(iter(entry.items()))
    return tuple(dict.fromkeys([canon, *others, name]))


def mentions(names: Iterable[str], text: str) -> bool:
    """Whether ``text`` mentions any of ``names`` (or their synonyms) as whole words."""
    haystack = fold(text)
    return any(
        _contains(haystack, fold(alias)) for name in names for alias in aliases(name) if alias
    )


def find_terms(text: str, table: dict[str, tuple[str, ...]]) -> list[tuple[int, str]]:
    """``(position, canonical name)`` of every entry of ``table`` mentioned in ``text``.

    The longest name wins where several overlap ("cutaneous lupus erythematosus" is not also
    "lupus"); short abbreviations count only where the text writes them in capitals.
    """
    tokens = _spans(text)
    words = [token for token, _start, _end in tokens]
    spans: list[tuple[int, int, str]] = []
    for canon, others in table.items():
        for name in (canon, *others):
            needle = fold(name)
            for i in _occurrences(words, needle):
                start, end = tokens[i][1], tokens[i + len(needle) - 1][2]
                if len(name) <= _CASE_SENSITIVE_MAX and not text[start:end].isupper():
                    continue
                spans.append((start, end, canon))
    spans.sort(key=lambda s: (-(s[1] - s[0]), s[0]))
    taken: list[tuple[int, int, str]] = []
    for span in spans:
        if all(span[1] <= t[0] or span[0] >= t[1] for t in taken):
            taken.append(span)
    return sorted((start, canon) for start, _end, canon in taken)


_WORD = re.compile(r"[^\W_]+")


def _spans(text: str) -> list[tuple[str, int, int]]:
    """Folded tokens of ``text`` with their character spans in it."""
    out: list[tuple[str, int, int]] = []
    for match in _WORD.finditer(text):
        for token in fold(match.group()):
            out.append((token, match.start(), match.end()))
    return out


def _occurrences(haystack: Sequence[str], needle: Sequence[str]) -> list[int]:
    width = len(needle)
    if not width:
        return []
    return [
        i
        for i in range(len(haystack) - width + 1)
        if haystack[i] == needle[0] and tuple(haystack[i : i + width]) == tuple(needle)
    ]


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    return bool(_occurrences(haystack, needle))
