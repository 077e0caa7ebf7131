"""Trial phases as every registry writes them, in ClinicalTrials.gov's codes.

Seeds use ClinicalTrials.gov's codes (``PHASE2``); the other registries write words:
EUCTR ``Phase 3``, ISRCTN ``Phase III`` or ``Phase II/III``, CTIS ``Therapeutic exploratory
(Phase II)``. Comparing the words with the codes would make every EU record disagree with
its paper, so both sides are read into codes first. A value that names no phase ("Other",
"Not Specified") gives none: it is not compared at all. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["phase_codes"]

_CODES = frozenset({"EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA"})
_NUMBERS = {"0": 1, "1": 1, "2": 2, "3": 3, "4": 4, "i": 1, "ii": 2, "iii": 3, "iv": 4}
_NUMBER = r"(iv|i{1,3}|[0-4])"
# "Phase 1", "phase II", "Phase I/II", "Phase 2-3", "phase 1 and phase 2"
_PHASE = re.compile(rf"(?i)\bphase\s*{_NUMBER}\b((?:\s*(?:/|-|and|,)\s*(?:phase\s*)?{_NUMBER}\b)*)")
_MORE = re.compile(rf"(?i){_NUMBER}\b")
_EARLY = re.compile(r"(?i)\b(?:early\s+phase\s*(?:1|i)|phase\s*0)\b")
_NOT_APPLICABLE = re.compile(r"(?i)^\s*(?:n/?a|not applicable)\s*$")


def phase_codes(values: Iterable[str]) -> frozenset[str]:
    """The ClinicalTrials.gov codes of registry phase values (codes pass as they are)."""
    codes: set[str] = set()
    for value in values:
        codes |= _codes(value)
    return frozenset(codes)


def _codes(value: str) -> set[str]:
    text = value.strip()
    if text.upper() in _CODES:
        return {text.upper()}
    if _NOT_APPLICABLE.match(text):
        return {"NA"}
    if _EARLY.search(text):
        return {"EARLY_PHASE1"}
    found: set[str] = set()
    for match in _PHASE.finditer(text):
        numbers = [match.group(1), *_MORE.findall(match.group(2) or "")]
        found |= {f"PHASE{_NUMBERS[n.casefold()]}" for n in numbers}
    return found
