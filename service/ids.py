"""Registry identifiers: parse, validate and normalise them, and find them in free text.

Only ClinicalTrials.gov records can be watched today (``parse_nct``); identifiers of the other
registries are recognised so that seed studies can name them and linking can report them.

Every format below comes from the registry table of the ``ctregistries`` project (its
``trn_regex`` column), tightened where that table is deliberately loose:

* each pattern tolerates the separators people type (``NCT 05605665``, ``DRKS-00012345``) but
  only within one line and at most three characters;
* a short, common prefix (``NL``, ``PER``, ``C``) must be written in capitals and stand at a word
  start, so ``nl 12`` in prose is not a Dutch trial;
* the EU CT number of CTIS (``2025-523333-26-00``, not in that table) is told apart from a
  EudraCT number (``2014-003140-12``) by its sixth-from-last digit group starting with 5.

An identifier is returned as the registry writes it (``study_id`` of the contract): fixed
prefix case, the registry's own separators, no spaces. Registry keys are the contract's
(``ctgov``, ``euctr``, ``ctis``, ``isrctn``, ``chictr``, ``nl``, ``drks``, ``anzctr``, ``jprn``,
``ctri``, ``kct``, ``irct``, ``pactr``), extended with the table's remaining primary registries
(``lbctr``, ``rebec``, ``repec``, ``rpcec``, ``slctr``, ``tctr``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from service.errors import InputError

__all__ = [
    "FORMATS",
    "NCT_PATTERN",
    "REGISTRY_KEYS",
    "IdFormat",
    "RegistryId",
    "find_registry_ids",
    "parse_nct",
    "parse_ncts",
    "parse_registry_id",
]

# Every pattern here is compiled with re.ASCII: without it ``\d`` matches any Unicode digit
# (fullwidth ０, Arabic-Indic ٠, mathematical 𝟎 …), so ``NCT０５６０５６６５`` was watched and from
# then on the registry refused every batch it was in; and IGNORECASE folds ``ſ`` to ``s`` and
# the Kelvin sign to ``k``. Registry identifiers are ASCII.
NCT_PATTERN = re.compile(r"NCT\d{8}", re.ASCII)

REGISTRY_KEYS: tuple[str, ...] = (
    "ctgov",
    "euctr",
    "ctis",
    "isrctn",
    "chictr",
    "nl",
    "drks",
    "anzctr",
    "jprn",
    "ctri",
    "kct",
    "irct",
    "pactr",
    "lbctr",
    "rebec",
    "repec",
    "rpcec",
    "slctr",
    "tctr",
)

_SEP = r"[^\w\n]{0,3}"  # what people put between a prefix and its number: " ", "-", ": "
_NUMBER_END = r"(?!\d)"  # a number must not run on into more digits


@dataclass(frozen=True, order=True)
class RegistryId:
    """An identifier and the registry (contract key) that issued it."""

    registry: str
    study_id: str

    def to_json(self) -> dict[str, str]:
        return {"registry": self.registry, "study_id": self.study_id}


@dataclass(frozen=True)
class IdFormat:
    """One identifier format: where to find it in text and how its registry writes it."""

    registry: str
    name: str  # the registry (or member registry) as the ctregistries table names it
    regex: str
    canonical: Callable[[re.Match[str]], str]
    example: str

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        # compiled when first used: the CLI imports this module for NCT ids alone, and the
        # two dozen formats cost more to compile than the rest of its start-up here
        return re.compile(self.regex, re.ASCII)


def _format(
    registry: str, name: str, pattern: str, canonical: Callable[[re.Match[str]], str], example: str
) -> IdFormat:
    return IdFormat(registry, name, pattern, canonical, example)


def _joined(prefix: str, *groups: int | str, sep: str = "") -> Callable[[re.Match[str]], str]:
    def canonical(match: re.Match[str]) -> str:
        return prefix + sep.join(match.group(g) for g in groups)

    return canonical


def _chictr(match: re.Match[str]) -> str:
    code, number = match.group("code"), match.group("number")
    return f"ChiCTR-{code.upper()}-{number}" if code else f"ChiCTR{number}"


def _jrct(match: re.Match[str]) -> str:
    return f"jRCT{match.group(1).lower()}{match.group(2)}"


# Order matters only where two formats could claim the same characters: CTIS before EudraCT.
FORMATS: tuple[IdFormat, ...] = (
    _format(
        "ctgov",
        "ClinicalTrials.gov",
        rf"(?i)\bNCT{_SEP}(0\d{{7}}){_NUMBER_END}",
        _joined("NCT", 1),
        "NCT05605665",
    ),
    _format(
        "ctis",
        "CTIS (EU CT number)",
        # the WHO portal writes it CTIS2025-523333-26-00
        r"(?:(?<![\w-])|(?<=CTIS)|(?<=ctis))(20\d{2})-(5\d{5})-(\d{2})-(\d{2})" + _NUMBER_END,
        _joined("", 1, 2, 3, 4, sep="-"),
        "2025-523333-26-00",
    ),
    _format(
        "euctr",
        "EudraCT",
        # (the WHO portal writes it EUCTR2014-003140-12, with a country suffix per record)
        rf"(?i)(?<!IRCT)(?<!PACTR)(?<![\d-])(?:\b|(?<=EUCTR))(20\d{{2}}){_SEP}(0\d{{5}}){_SEP}"
        r"(\d{2})\b(?!-\d)",
        _joined("", 1, 2, 3, sep="-"),
        "2014-003140-12",
    ),
    _format(
        "isrctn",
        "ISRCTN",
        rf"(?i)\bISRCTN{_SEP}(\d{{8}}){_NUMBER_END}",
        _joined("ISRCTN", 1),
        "ISRCTN12345678",
    ),
    _format(
        "chictr",
        "ChiCTR",
        rf"(?i)\bChiCTR{_SEP}(?:(?P<code>[A-Z]{{3}}){_SEP})?(?P<number>\d{{8,10}}){_NUMBER_END}",
        _chictr,
        "ChiCTR2000029308",
    ),
    _format(
        "nl",
        "NL-OMON",
        rf"\bNL-OMON{_SEP}(\d{{1,8}}){_NUMBER_END}",
        _joined("NL-OMON", 1),
        "NL-OMON45101",
    ),
    _format(
        "nl",
        "NTR",
        r"(?i)\b(NTR)\s?(\d{2,4})\b(?!\.\d)",
        lambda m: "NTR" + m.group(2),
        "NTR1234",
    ),
    _format(
        "nl",
        "NTR",
        r"\b(NL)\s?(\d{2,5})\b(?!\.\d)",  # NL + digits; "NL12345.041.15" is a CCMO file number
        _joined("NL", 2),
        "NL8765",
    ),
    _format(
        "drks",
        "DRKS",
        rf"(?i)\bDRKS{_SEP}(000\d{{5}}){_NUMBER_END}",
        _joined("DRKS", 1),
        "DRKS00012345",
    ),
    _format(
        "anzctr",
        "ANZCTR",
        rf"(?i)\b(?:ACTRN|ANZCTR){_SEP}(126\d{{11}}){_NUMBER_END}",
        _joined("ACTRN", 1),
        "ACTRN12615000123456",
    ),
    _format(
        "jprn",
        "UMIN-CTR",
        rf"(?i:\bUMIN){_SEP}(0000\d{{5}}){_NUMBER_END}|\bC(0000\d{{5}}){_NUMBER_END}",
        lambda m: "UMIN" + (m.group(1) or m.group(2)),
        "UMIN000012345",
    ),
    _format(
        "jprn",
        "jRCT",
        rf"(?i)\bjRCT{_SEP}([a-z0-9]){_SEP}(\d{{9}}){_NUMBER_END}",
        _jrct,
        "jRCTs031180001",
    ),
    _format(
        "jprn",
        "JapicCTI",
        rf"(?i)\bJapic{_SEP}CTI{_SEP}(\d{{6}}){_NUMBER_END}",
        _joined("JapicCTI-", 1),
        "JapicCTI-173456",
    ),
    _format(
        "jprn",
        "JMACCT",
        rf"(?i)\bJMA{_SEP}IIA(00\d{{3}}){_NUMBER_END}",
        _joined("JMA-IIA", 1),
        "JMA-IIA00123",
    ),
    _format(
        "ctri",
        "CTRI",
        rf"(?i)\bCTRI{_SEP}/{_SEP}(20\d{{2}}){_SEP}/{_SEP}(\d{{2,3}}){_SEP}/{_SEP}(0\d{{5}}){_NUMBER_END}",
        _joined("CTRI/", 1, 2, 3, sep="/"),
        "CTRI/2017/05/008567",
    ),
    _format(
        "kct",
        "CRiS",
        rf"(?i)\bKCT{_SEP}(00\d{{5}}){_NUMBER_END}",
        _joined("KCT", 1),
        "KCT0001234",
    ),
    _format(
        "irct",
        "IRCT",
        rf"(?i)\bIRCT{_SEP}(20\d{{10,12}})N(\d{{1,3}}){_NUMBER_END}",
        lambda m: f"IRCT{m.group(1)}N{m.group(2)}",
        "IRCT20150303021315N3",
    ),
    _format(
        "pactr",
        "PACTR",
        rf"(?i)\bPACTR{_SEP}(20\d{{13,14}}){_NUMBER_END}",
        _joined("PACTR", 1),
        "PACTR201509001252398",
    ),
    _format(
        "lbctr",
        "LBCTR",
        rf"(?i)\bLBCTR{_SEP}(20\d{{8}}){_NUMBER_END}",
        _joined("LBCTR", 1),
        "LBCTR2019020199",
    ),
    _format(
        "rebec",
        "ReBec",
        rf"(?i)\bRBR{_SEP}(\d[a-z0-9]{{5}})\b",
        lambda m: "RBR-" + m.group(1).lower(),
        "RBR-7rmvx3",
    ),
    _format(
        "repec",
        "REPEC",
        r"\bPER-?(\d{3})-?(\d{2})\b",
        _joined("PER-", 1, 2, sep="-"),
        "PER-012-19",
    ),
    _format(
        "rpcec",
        "RPCEC",
        rf"(?i)\bRPCEC{_SEP}(0{{5}}\d{{3}}){_NUMBER_END}",
        _joined("RPCEC", 1),
        "RPCEC00000123",
    ),
    _format(
        "slctr",
        "SLCTR",
        rf"(?i)\bSLCTR{_SEP}(20\d{{2}}){_SEP}(\d{{3}}){_NUMBER_END}",
        _joined("SLCTR/", 1, 2, sep="/"),
        "SLCTR/2019/012",
    ),
    _format(
        "tctr",
        "TCTR",
        rf"(?i)\bTCTR{_SEP}(20\d{{9}}){_NUMBER_END}",
        _joined("TCTR", 1),
        "TCTR20190123001",
    ),
)

# How the WHO portal prefixes member registries ("JPRN-UMIN000012345", "EUCTR2014-003140-12-NL").
_PORTAL_PREFIX = re.compile(r"(?i)^(?:JPRN|EUCTR|CTIS)-?", re.ASCII)
_EUCTR_COUNTRY_SUFFIX = re.compile(r"(?i)^(20\d{2}-0\d{5}-\d{2})-[A-Z]{2,3}$", re.ASCII)


def find_registry_ids(text: str) -> list[RegistryId]:
    """Every registry identifier in ``text``, normalised, in order of first appearance."""
    found: list[tuple[int, RegistryId]] = []
    taken: list[tuple[int, int]] = []
    for fmt in FORMATS:
        for match in fmt.pattern.finditer(text):
            span = match.span()
            if any(start < span[1] and span[0] < end for start, end in taken):
                continue  # already claimed by an earlier, more specific format
            taken.append(span)
            found.append((span[0], RegistryId(fmt.registry, fmt.canonical(match))))
    found.sort(key=lambda item: item[0])
    return list(dict.fromkeys(rid for _, rid in found))


def parse_registry_id(text: str, registry: str | None = None) -> RegistryId:
    """One identifier, as typed, normalised; ``InputError`` when it is not one.

    With ``registry`` given, the identifier must belong to that registry.
    """
    candidate = _PORTAL_PREFIX.sub("", text.strip())
    if not candidate.isascii():  # str.upper() below would turn "ﬅ" into "ST", "ı" into "I"
        candidate = ""
    suffixed = _EUCTR_COUNTRY_SUFFIX.match(candidate)
    if suffixed:
        candidate = suffixed.group(1)
    for fmt in FORMATS:
        match = fmt.pattern.fullmatch(candidate) or fmt.pattern.fullmatch(candidate.upper())
        if match is not None and (registry is None or fmt.registry == registry):
            return RegistryId(fmt.registry, fmt.canonical(match))
    shown = text if len(text) <= 40 else text[:37] + "..."
    if registry is not None:
        examples = ", ".join(f.example for f in FORMATS if f.registry == registry)
        if not examples:
            raise InputError(f"unknown registry {registry!r} (one of: {', '.join(REGISTRY_KEYS)})")
        raise InputError(f"{shown!r} is not a {registry} identifier (e.g. {examples})")
    raise InputError(
        f"{shown!r} is not a registry identifier trialwatch knows "
        "(e.g. NCT05605665, 2014-003140-12, ISRCTN12345678, DRKS00012345)"
    )


def parse_nct(text: str) -> str:
    """``nct05605665`` → ``NCT05605665``; anything else is an ``InputError`` naming it."""
    candidate = text.strip().upper()
    # isascii first: str.upper() maps some non-ASCII letters to ASCII ones ("ı" → "I").
    if not text.strip().isascii() or not NCT_PATTERN.fullmatch(candidate):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise InputError(
            f"{shown!r} is not a ClinicalTrials.gov id (NCT followed by 8 digits, e.g. NCT05605665)"
        )
    return candidate


def parse_ncts(texts: list[str] | tuple[str, ...]) -> list[str]:
    """Validate every id before any is used (a bad one writes nothing); keep order, drop repeats."""
    return list(dict.fromkeys(parse_nct(text) for text in texts))
