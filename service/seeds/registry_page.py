"""Read the layout of a registry page saved as plain text (ClinicalTrials.gov or a mirror).

Such a page is a run of labelled sections ("Conditions", "Target Recruitment", "Primary
Outcome Measures", …), each label on a line of its own. Copying a page's tables to text glues
their cells together ("…peripheral bloodweek 12", "Rapamycinrapamycin0.5 ml…"), so the table
readers here split cells back apart by their shapes. Pure functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from service.seeds.model import ReportedOutcome, SeedArm

__all__ = ["Page", "read_page", "split_time_frame"]

# label (lowercase, as a line of its own) -> section
_LABELS: dict[str, str] = {
    "conditions": "conditions",
    "condition": "conditions",
    "interventions": "interventions",
    "intervention": "interventions",
    "registration number": "registration",
    "clinicaltrials.gov id": "registration",
    "nct number": "registration",
    "trial id": "registration",
    "lead sponsor": "sponsor",
    "sponsor": "sponsor",
    "brief summary": "summary",
    "detailed description": "description",
    "status": "status",
    "overall status": "status",
    "recruitment status": "status",
    "sex": "sex",
    "target recruitment": "enrollment",
    "target sample size": "enrollment",
    "enrollment": "enrollment",
    "enrollment (estimated)": "enrollment",
    "enrollment (actual)": "enrollment_actual",
    "inclusion criteria": "inclusion",
    "exclusion criteria": "exclusion",
    "study type": "study_type",
    "study design": "design",
    "phase": "phase",
    "study phase": "phase",
    "arm && interventions": "arms",
    "arm & interventions": "arms",
    "arms & interventions": "arms",
    "arms and interventions": "arms",
    "primary outcome measures": "primary",
    "primary outcome measure": "primary",
    "secondary outcome measures": "secondary",
    "secondary outcome measure": "secondary",
    "trial locations": "locations",
    "locations": "locations",
    "recruitment & eligibility": "",
    "study & design": "",
}
_DEFINING = frozenset({"registration", "primary", "enrollment", "enrollment_actual", "arms"})
_TABLE_HEADER = re.compile(r"^(?:Group\s*Intervention\s*Description|Name\s*Time\s*Method)$", re.I)
_LOCATIONS_COUNT = re.compile(r"^Locations\s*\(\d+\)$", re.I)

_UNIT = r"(?:weeks?|months?|days?|years?|hours?)"
_TIME_FRAME = re.compile(
    rf"(?i)((?:at\s+|up\s+to\s+|through\s+|from\s+)?(?:baseline(?:\s*(?:,|and|to|-)\s*)?)?"
    rf"(?:{_UNIT}\s*\d+(?:\s*(?:,|and|to|-|–)\s*\d+)*|\d+\s*{_UNIT}))$"
)
# Where a glued cell ends and the next begins: a lowercase letter or digit followed by a
# capitalised word ("…rapamycinOne million IU…").
_CELL_BREAK = re.compile(r"(?<=[a-z0-9)])(?=[A-Z][a-z])")


@dataclass
class Page:
    """The sections of a registry page, each a list of non-empty lines."""

    header: list[str] = field(default_factory=list)
    sections: dict[str, list[str]] = field(default_factory=dict)

    def first(self, section: str) -> str:
        lines = self.sections.get(section, [])
        return lines[0] if lines else ""

    def text(self, section: str) -> str:
        return " ".join(self.sections.get(section, []))

    def arms(self) -> list[SeedArm]:
        return _arms(self.sections.get("arms", []))

    def outcomes(self) -> list[ReportedOutcome]:
        return _outcomes(self.sections.get("primary", []), "primary") + _outcomes(
            self.sections.get("secondary", []), "secondary"
        )


def read_page(text: str) -> Page | None:
    """The page's sections, or None when ``text`` does not look like a registry page."""
    page = Page()
    current: list[str] = page.header
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        section = _LABELS.get(line.casefold())
        if section is not None:
            current = page.sections.setdefault(section, []) if section else []
            continue
        if _LOCATIONS_COUNT.match(line):
            current = page.sections.setdefault("locations", [])
            continue
        current.append(line)
    found = {name for name, lines in page.sections.items() if lines}
    return page if len(found) >= 3 and found & _DEFINING else None


def split_time_frame(cell: str) -> tuple[str, str]:
    """``"Proportion of Treg cellsweek 12"`` → ``("Proportion of Treg cells", "week 12")``."""
    match = _TIME_FRAME.search(cell)
    if match is None or match.start() == 0:
        return cell.strip(), ""
    return cell[: match.start()].strip(" ,;"), match.group(1).strip()


def _arms(lines: list[str]) -> list[SeedArm]:
    merged: dict[str, SeedArm] = {}
    for line in lines:
        if _TABLE_HEADER.match(line):
            continue
        label, intervention, description = _arm_cells(line)
        if not label:
            continue
        known = merged.get(label.casefold())
        interventions = (*known.interventions, intervention) if known else (intervention,)
        merged[label.casefold()] = SeedArm(
            label=label,
            description=(known.description if known else "") or description,
            interventions=tuple(dict.fromkeys(i for i in interventions if i)),
        )
    return list(merged.values())


def _arm_cells(line: str) -> tuple[str, str, str]:
    cells = [c.strip() for c in re.split(r"\t|\s{3,}|\|", line) if c.strip()]
    if len(cells) >= 3:
        return cells[0], cells[1], " ".join(cells[2:])
    breaks = [m.start() for m in _CELL_BREAK.finditer(line)]
    if not breaks:
        return line.strip(), "", ""
    head, description = line[: breaks[0]], line[breaks[0] :].strip()
    label, intervention = _split_label(head)
    return label, intervention, description


def _split_label(head: str) -> tuple[str, str]:
    """Split "Low-dose IL-2 and rapamycinrapamycin" into the arm label and the intervention.

    Arm labels name their drugs, so the intervention cell is the longest tail of the glued
    text that the label before it already contains.
    """
    for size in range(len(head) - 3, 2, -1):
        label, tail = head[:-size], head[-size:]
        if label and label[-1].isalnum() and tail.casefold() in label.casefold():
            return label.strip(), tail.strip()
    return head.strip(), ""


def _outcomes(lines: list[str], outcome_type: str) -> list[ReportedOutcome]:
    found: list[ReportedOutcome] = []
    for line in lines:
        if _TABLE_HEADER.match(line):
            continue
        measure, time_frame = split_time_frame(line)
        if time_frame or not found:
            found.append(ReportedOutcome(type=outcome_type, measure=measure, time_frame=time_frame))
            continue
        last = found[-1]
        description = f"{last.description} {line}".strip()
        found[-1] = last.model_copy(update={"description": description})
    return found
