"""Design facts of a document: phase, design words and the registry enums they imply, status.

Pure; part of ``service.seeds.extract``. A phrase near the start (the title, a registry page's
header) wins over one deeper in the text, which may describe other trials.
"""

from __future__ import annotations

import re

from service.seeds.model import Design, SeedArm
from service.seeds.registry_page import Page
from service.text import fold_text

__all__ = ["DURATION", "design_of", "status_of"]

_PHASE = re.compile(
    r"(?i)\b(early\s+)?phase\s*(IV|I{1,3}|[0-4])(?:\s*(?:/|-|–|and|to)\s*(IV|I{1,3}|[1-4]))?"
    r"(?:\s*[ab])?\b"
)
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4}
_NOT_APPLICABLE = re.compile(r"(?im)^(?:Phase\s*:?\s*)?(?:Not Applicable|N/A)\s*$")

# (pattern, word written into design.words, Design fields it implies)
_DESIGN_WORDS: tuple[tuple[re.Pattern[str], str, dict[str, object]], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), word, implied)
    for pattern, word, implied in (
        (r"\bnon-?randomi[sz]ed\b", "non-randomized", {"allocation": "NON_RANDOMIZED"}),
        (
            r"(?<!non-)(?<!non)\brandomi[sz]ed\b|\brandomly\s+(?:assigned|allocated|divided)",
            "randomized",
            {"allocation": "RANDOMIZED"},
        ),
        (
            r"\bopen[- ]label\b|\bunblinded\b|\bopen(?:\s+clinical)?\s+(?:trial|study)\b",
            "open label",
            {"masking": "NONE"},
        ),
        (r"\bdouble[- ](?:blind(?:ed)?|mask(?:ed)?)\b", "double-blind", {"masking": "DOUBLE"}),
        (r"\bsingle[- ](?:blind(?:ed)?|mask(?:ed)?)\b", "single-blind", {"masking": "SINGLE"}),
        (r"\btriple[- ]blind(?:ed)?\b", "triple-blind", {"masking": "TRIPLE"}),
        (r"\bplacebo\b", "placebo", {"placebo": True}),
        (
            r"\bparallel[- ](?:group|arm|design|assignment)",
            "parallel",
            {"model": "PARALLEL"},
        ),
        (r"\bcross-?over\b", "crossover", {"model": "CROSSOVER"}),
        (r"\bsingle[- ](?:arm|group)\b", "single arm", {"model": "SINGLE_GROUP"}),
        (r"\bpilot\b", "pilot", {"pilot": True}),
        (r"\bcase report\b", "case report", {}),
        (r"\bmulti-?cent(?:er|re)\b", "multicenter", {}),
        (r"\bprospective\b", "prospective", {}),
    )
)
DURATION = re.compile(r"(?i)\b(?:for|after|over)\s+(\d{1,3}\s+(?:weeks?|months?|days?|years?))\b")


def design_of(text: str, title: str, page: Page | None, kind: str) -> Design:
    """Phases, design words and the enums they imply, duration and (registry pages) arms."""
    scope = _design_scope(text, page)
    words: list[str] = []
    fields: dict[str, object] = {}
    for pattern, word, implied in _DESIGN_WORDS:
        if word == "pilot":
            said = _own_pilot(title, scope)
        else:
            said = pattern.search(scope) is not None or (
                word == "parallel" and page is not None and page.first("design") == "PARALLEL"
            )
        if said:
            words.append(word)
            for key, value in implied.items():
                fields.setdefault(key, value)
    if kind == "case_report" and "case report" not in words:
        fields["model"] = "SINGLE_GROUP"
    if page is not None:
        model = page.first("design").upper().replace(" ", "_")
        if model in {"SINGLE_GROUP", "PARALLEL", "CROSSOVER", "FACTORIAL", "SEQUENTIAL"}:
            fields["model"] = model
    duration = DURATION.search(scope)
    arms = tuple(page.arms()) if page else ()
    return Design(
        phases=_phases(title, text, page),
        words=tuple(words),
        duration=duration.group(1) if duration else "",
        arms=tuple(_clean_arm(arm) for arm in arms),
        **fields,  # type: ignore[arg-type]
    )


_PILOT = re.compile(r"(?i)\bpilot\b")
# what says a pilot is another study: an earlier one the document builds on or cites
_OTHER_BEFORE = re.compile(
    r"(?i)\b(?:previous(?:ly)?|earlier|prior|preceding|former|published|original|initial|"
    r"results\s+of|findings\s+of|based\s+on|following|extension\s+of|"
    r"follow-?up\s+(?:of|to))\b[^.;]{0,40}$"
)
_THIS = re.compile(r"(?i)\b(?:this|the\s+present|the\s+current)\s+(?:[\w-]+\s+){0,3}$")
_OTHER_AFTER = re.compile(
    r"(?i)^[^.;]{0,40}?(?:\bet\s+al\b|\[\d|\(\s*(?:ref|\d)|"
    r"\b(?:showed|demonstrated|suggested|reported|found)\b)"
)


def _own_pilot(title: str, text: str) -> bool:
    """Whether the document calls its own study a pilot: in its title, or in a mention that
    is not about an earlier pilot it builds on ("our previous pilot", "a pilot study [12]
    showed …"), which makes the study a follow-up, not a pilot."""
    if _PILOT.search(title):
        return True
    for match in _PILOT.finditer(text):
        before = text[max(0, match.start() - 60) : match.start()]
        after = text[match.end() : match.end() + 60]
        if _THIS.search(before):
            return True
        if not _OTHER_BEFORE.search(before) and not _OTHER_AFTER.match(after):
            return True
    return False


def _design_scope(text: str, page: Page | None) -> str:
    if page is None:
        return text
    # On a registry page the eligibility lists talk about other trials and past treatment.
    keep = ("header", "summary", "description", "design", "study_type", "arms")
    return "\n".join([*page.header, *(line for s in keep for line in page.sections.get(s, []))])


def _clean_arm(arm: SeedArm) -> SeedArm:
    return arm.model_copy(update={"description": fold_text(arm.description)})


def _phases(title: str, text: str, page: Page | None) -> tuple[str, ...]:
    sources = [title, "\n".join(page.header) + "\n" + page.text("phase")] if page else [title]
    sources.append(text)
    for source in sources:
        if page is not None and _NOT_APPLICABLE.search(source):
            return ("NA",)
        match = _PHASE.search(source)
        if match:
            return _phase_values(match)
    return ()


def _phase_values(match: re.Match[str]) -> tuple[str, ...]:
    if match.group(1):
        return ("EARLY_PHASE1",)
    numbers = [_phase_number(g) for g in (match.group(2), match.group(3)) if g]
    return tuple(f"PHASE{n}" for n in dict.fromkeys(n for n in numbers if 1 <= n <= 4))


def _phase_number(token: str) -> int:
    return int(token) if token.isdigit() else _ROMAN[token.casefold()]


_STATUS_WORDS = {
    "not yet recruiting": "NOT_YET_RECRUITING",
    "recruiting": "RECRUITING",
    "enrolling by invitation": "ENROLLING_BY_INVITATION",
    "active, not recruiting": "ACTIVE_NOT_RECRUITING",
    "active not recruiting": "ACTIVE_NOT_RECRUITING",
    "suspended": "SUSPENDED",
    "terminated": "TERMINATED",
    "completed": "COMPLETED",
    "withdrawn": "WITHDRAWN",
    "unknown status": "UNKNOWN",
    "unknown": "UNKNOWN",
}


def status_of(page: Page | None) -> str:
    """A registry page's overall status as the registry's enum; papers have none."""
    if page is None:
        return ""
    for line in [page.first("status"), *page.header]:
        key = line.strip().casefold().replace("_", " ")
        if key in _STATUS_WORDS:
            return _STATUS_WORDS[key]
    return ""
