"""The EU Clinical Trials Register's text downloads, read into labelled values.

The register has no API. ``…/ctr-search/rest/download/full?query=<EudraCT>`` answers a plain
text file: a header paragraph ("This file contains full details on each clinical trial …"),
then one block per country record, each starting ``Summary`` / ``EudraCT Number: …``::

    Summary
    EudraCT Number: 2021-002179-21
    …
    Trial Status: Ongoing
    Link: https://www.clinicaltrialsregister.eu/ctr-search/trial/2021-002179-21/FR/

    A. Protocol Information
    A.3 Full title of the trial: A multicenter, randomized, …
    A.3 Full title of the trial (es): Estudio de fase 3, …
    …
    P. End of Trial
    P. End of Trial Status: Ongoing

How the lines are read (ctrdata's ``inst/js/euctr2ndjson.js`` reads them the same way):

- a line starting with an item code (``A.3``, ``B.1.3.4``, ``D.IMP``, ``E.8.9.1`` …) starts a
  value, its label up to the first colon (``D.8.1 Is a Placebo used in this Trial? Yes`` has a
  question mark instead); ``N.`` and ``P.`` items (``N. Date of Competent Authority Decision``)
  only inside their own sections, so that a criterion beginning "P. aeruginosa" stays text;
- every other line continues the value above it (inclusion criteria, end points, the list of
  countries of E.8.6.3 run over many lines);
- a label repeated in one record (a second sponsor's ``B.1.1``, a second IMP's ``D.3.1``) keeps
  every value, in order;
- a label with a language suffix (``A.3 Full title of the trial (es)``) is the register's
  translation of the one above it: dropped, with its continuation lines;
- a value is text as given: junk such as ``JSON_ERROR_HERE`` is a value, not an error.

A country's code comes from its ``Link:`` line (``…/trial/2021-002179-21/FR/``; third countries
``3rd`` → ``3RD``). A download of the header alone is a number the register does not know (it
answers 200). Anything else that is not a download (an HTML page, an empty body, a body cut
mid-record) raises ``NotADownload``; ``incomplete`` says it may be a passing fault, worth asking
again. Pure functions, standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

__all__ = [
    "HEADER_START",
    "CountryText",
    "Download",
    "NotADownload",
    "SearchHit",
    "SearchPage",
    "parse_download",
    "parse_record",
    "parse_summary",
    "split_blocks",
]

HEADER_START = "This file contains full details"
EUDRACT = re.compile(r"\d{4}-\d{6}-\d{2}", re.ASCII)

# The sections of a country record, as their header lines start. Only these count as headers:
# free text can hold a line such as "A. Patients with …" (a criterion, not section A).
SECTION_HEADERS: Mapping[str, str] = {
    "A": "A. Protocol Information",
    "B": "B. Sponsor Information",
    "C": "C. Applicant Identification",
    "D": "D. IMP Identification",
    "E": "E. General Information on the Trial",
    "F": "F. Population of Trial Subjects",
    "G": "G. Investigator Networks",
    "H": "H. Third Country",
    "N": "N. Review by the Competent Authority or Ethics Committee",
    "P": "P. End of Trial",
}
# The section a download cut short has not reached: every record holds its population
# (planned numbers of subjects); one that stops before it was cut.
LAST_REQUIRED_SECTION = "F"

# Item codes that start a value anywhere in a record; N. and P. items only in their sections.
_ITEM = re.compile(r"[A-H]\.(?:IMP\b|\d+(?:\.\d+)*\b)", re.ASCII)
_SECTION_ITEM = re.compile(r"([NP])\. \S", re.ASCII)
# Lines that carry no code but start a group: "Sponsor 1" (B.1), "MedDRA Classification" (E.1.2)
_SPONSOR_GROUP = re.compile(r"Sponsor (\d+)", re.ASCII)
_GROUP_LINES = frozenset({"MedDRA Classification"})
# Labels with a colon of their own (ctrdata's converter special-cases the same one)
_LABELS_WITH_COLON = ("N. Ethics Committee Opinion: Reason(s) for unfavourable opinion",)
# The register's translations: the EU/EEA languages, as its labels suffix them
_LANGUAGES = "bg|cs|da|de|el|en|es|et|fi|fr|ga|hr|hu|is|it|lt|lv|mt|nl|no|pl|pt|ro|sk|sl|sv"
_TRANSLATED = re.compile(r"(.*\S) \((?:" + _LANGUAGES + r")\)", re.ASCII)
_LINK_COUNTRY = re.compile(r"/trial/(\d{4}-\d{6}-\d{2})/([A-Za-z]{2}|3rd|3RD)/?\s*$", re.ASCII)
_BLOCK_START = re.compile(r"^Summary[ \t]*\r?\n(?=EudraCT Number:)", re.MULTILINE)


class NotADownload(ValueError):
    """The text is not the register's download. ``incomplete``: it looks like one cut short
    (or an empty body), which a second request may not be."""

    def __init__(self, message: str, *, incomplete: bool = False) -> None:
        super().__init__(message)
        self.incomplete = incomplete


@dataclass(frozen=True)
class CountryText:
    """One country record of a trial, as its labelled values.

    ``fields``: label (``"F.4.2.2 In the whole clinical trial"``, ``"Trial Status"`` for the
    summary lines) → its values in the record's order (one, or several for repeated labels).
    ``sections``: the section letters met, in order. ``text``: the block as the register wrote
    it."""

    eudract_number: str
    country: str  # "FR", "3RD"
    fields: Mapping[str, tuple[str, ...]]
    sections: tuple[str, ...]
    text: str

    def value(self, label: str) -> str:
        """The first value of ``label``, "" when the record has none."""
        values = self.fields.get(label, ())
        return values[0] if values else ""

    def values(self, label: str) -> tuple[str, ...]:
        return self.fields.get(label, ())

    def starting(self, code: str) -> Iterator[tuple[str, tuple[str, ...]]]:
        """Every (label, values) whose label is item ``code`` (``"A.5.4"``), whatever its words."""
        prefix = code + " "
        for label, values in self.fields.items():
            if label.startswith(prefix):
                yield label, values


@dataclass(frozen=True)
class Download:
    """A full download: its header paragraph and its country records, in the register's order."""

    header: str
    records: tuple[CountryText, ...]


@dataclass(frozen=True)
class SearchHit:
    """One trial of the summary download (the register's search results as text)."""

    eudract_number: str
    sponsor_protocol: str = ""
    sponsor: str = ""
    title: str = ""
    start_date: str = ""
    conditions: str = ""
    # country code → its status, from "Trial protocol: ES(Ongoing) FR(Completed)"
    statuses: Mapping[str, str] = field(default_factory=dict)
    results: str = ""  # "View results", "(No results available)", or "" when not said


@dataclass(frozen=True)
class SearchPage:
    total: int | None  # "Trials with a EudraCT protocol (N)", when the page says
    hits: tuple[SearchHit, ...]


# --- the full download ------------------------------------------------------------------------


def parse_download(text: str) -> Download:
    """Every country record of a full download; ``NotADownload`` when the text is none."""
    if not text.strip():
        raise NotADownload("an empty body instead of the text download", incomplete=True)
    start = text.lstrip("\ufeff \t\r\n")
    if start.startswith("<"):  # an HTML page (a firewall's, a maintenance notice) or XML
        raise NotADownload("a markup page instead of the text download", incomplete=True)
    header, blocks = split_blocks(text)
    if not blocks:
        _check_header_alone(header, start)
    records = [parse_record(block) for block in blocks[:-1]]
    if blocks:
        records.append(_last_record(text, blocks[-1]))
    return Download(header=header, records=tuple(records))


def split_blocks(text: str) -> tuple[str, list[str]]:
    """The header and the verbatim blocks of a download, each starting ``Summary``."""
    starts = [m.start() for m in _BLOCK_START.finditer(text)]
    if not starts:
        return text, []
    ends = [*starts[1:], len(text)]
    return text[: starts[0]], [text[a:b] for a, b in zip(starts, ends, strict=True)]


def parse_record(block: str) -> CountryText:
    """One country record (a block starting ``Summary``)."""
    reader = _Reader()
    for line in block.splitlines()[1:]:  # the "Summary" line itself
        reader.feed(line)
    fields = reader.finish()
    number = _first(fields, "EudraCT Number").strip()
    if EUDRACT.fullmatch(number) is None:
        raise NotADownload(f"a country record whose EudraCT number is {_shown(number)}")
    link = _first(fields, "Link").strip()
    match = _LINK_COUNTRY.search(link)
    if match is None or match.group(1) != number:
        raise NotADownload(f"a country record of {number} without its country link")
    return CountryText(
        eudract_number=number,
        country=match.group(2).upper(),
        fields=fields,
        sections=tuple(reader.sections),
        text=block,
    )


def _check_header_alone(header: str, start: str) -> None:
    # An unknown number: the header paragraph and nothing else. More text without a record
    # is a body cut in the first record's summary, or not the download at all.
    if not header.strip().startswith(HEADER_START):
        raise NotADownload(f"not the register's text download (starts {_shown(start)})")
    if len(header.strip().splitlines()) > 1:
        raise NotADownload("a download with text but no country record", incomplete=True)


def _last_record(text: str, block: str) -> CountryText:
    """The last record, which a body cut short cuts: any fault in it may be passing."""
    try:
        last = parse_record(block)
    except NotADownload as exc:
        message = f"a download cut short in its last record ({exc})"
        raise NotADownload(message, incomplete=True) from None
    _check_complete(text, last)
    return last


def _check_complete(text: str, last: CountryText) -> None:
    # A body cut mid-record: the transport may not say so (a proxy that ends a chunked
    # answer early). The register ends every line, and every record reaches section F.
    cut = not text.endswith(("\n", "\r"))
    if cut or max(last.sections, default="") < LAST_REQUIRED_SECTION:
        where = f"{last.eudract_number}-{last.country}"
        raise NotADownload(f"a download cut short in the record of {where}", incomplete=True)


class _Reader:
    """Lines → labelled values, one record at a time (see the module docstring)."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}
        self.sections: list[str] = []
        self._label: str | None = None  # None: lines go nowhere (a translation, a header)
        self._lines: list[str] = []

    def feed(self, raw: str) -> None:
        line = raw.rstrip("\r")
        key = line.replace("\t", " ").strip()
        section = self._section(key)
        if section:
            self._close()
            self.sections.append(section)
            self._label = None
            return
        split = self._split(key)
        if split is None:
            if self._label is not None:
                self._lines.append(line.rstrip())
            return
        self._close()
        label, value = split
        translated = _TRANSLATED.fullmatch(label)
        self._label = None if translated else label
        self._lines = [value]

    def finish(self) -> dict[str, tuple[str, ...]]:
        self._close()
        return {label: tuple(values) for label, values in self.fields.items()}

    def _section(self, key: str) -> str:
        for letter, header in SECTION_HEADERS.items():
            if key.startswith(header) and ":" not in key:
                if letter == "P" and key != header:
                    return ""  # "P. End of Trial Status: …" is an item, this is the header
                return letter
        return ""

    def _split(self, key: str) -> tuple[str, str] | None:
        """(label, first line of the value) when the line starts a value, else None."""
        if not self.sections:
            return _summary_line(key)
        sponsor = _SPONSOR_GROUP.fullmatch(key)
        if sponsor:
            return "Sponsor", sponsor.group(1)
        if key in _GROUP_LINES:
            return key, ""
        item = _SECTION_ITEM.match(key)
        in_own_section = item is not None and self.sections[-1] == item.group(1)
        if not (_ITEM.match(key) or in_own_section):
            return None
        return _label_and_value(key)

    def _close(self) -> None:
        if self._label is not None:
            value = "\n".join(self._lines).strip()
            self.fields.setdefault(self._label, []).append(value)
        self._label, self._lines = None, []


def _summary_line(key: str) -> tuple[str, str] | None:
    label, colon, value = key.partition(":")
    if not colon or not label or label[0].isdigit():
        return None
    return label.strip(), value.strip()


def _label_and_value(key: str) -> tuple[str, str]:
    for label in _LABELS_WITH_COLON:
        if key.startswith(label + ":"):
            return label, key[len(label) + 1 :].strip()
    colon = _label_colon(key)
    if colon >= 0:
        return key[:colon].strip(), key[colon + 1 :].strip()
    question = key.find("? ")
    if question >= 0:  # "D.8.1 Is a Placebo used in this Trial? Yes"
        return key[: question + 1], key[question + 2 :].strip()
    return key, ""  # a group title ("E.5 End points", "B.5.3 Address")


def _label_colon(key: str) -> int:
    """Where the label ends: the first colon followed by a space or the line's end."""
    for index, char in enumerate(key):
        if char == ":" and (index + 1 == len(key) or key[index + 1] in " \t"):
            return index
    return -1


# --- the summary download (search results) ---------------------------------------------------

_TOTAL = re.compile(r"Trials with a EudraCT protocol \((\d[\d,.]*)\)", re.ASCII)
_HIT_START = re.compile(r"^EudraCT Number:", re.MULTILINE)
_PROTOCOL = re.compile(r"(3rd|[A-Za-z]{2}|Outside EU/EEA)\s*\(([^()]*)\)", re.ASCII)
_SUMMARY_KEYS = {
    "EudraCT Number": "eudract_number",
    "Sponsor Protocol Number": "sponsor_protocol",
    "Sponsor Name": "sponsor",
    "Full Title": "title",
    "Start Date": "start_date",
    "Medical condition": "conditions",
    "Trial results": "results",
}
# every label of a summary block (ctrdata's variablesEUCTR), so none runs into another
_SUMMARY_LABELS = frozenset(
    (*_SUMMARY_KEYS, "Disease", "Population Age", "Gender", "Trial protocol", "Link")
)


def parse_summary(text: str) -> SearchPage:
    """The trials of a summary download; ``NotADownload`` when the text is none."""
    start = text.lstrip("\ufeff \t\r\n")
    if start.startswith("<"):
        raise NotADownload("a markup page instead of the summary download", incomplete=True)
    total_match = _TOTAL.search(text)
    total = int(re.sub(r"\D", "", total_match.group(1))) if total_match else None
    starts = [m.start() for m in _HIT_START.finditer(text)]
    if not starts and total_match is None and not text.strip().startswith(HEADER_START):
        raise NotADownload(f"not the register's summary download (starts {_shown(start)})")
    ends = [*starts[1:], len(text)][: len(starts)]
    hits = tuple(_summary_hit(text[a:b]) for a, b in zip(starts, ends, strict=True))
    return SearchPage(total=total, hits=tuple(hit for hit in hits if hit is not None))


def _summary_hit(block: str) -> SearchHit | None:
    values: dict[str, list[str]] = {}
    label = ""
    for line in block.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip() in _SUMMARY_LABELS:
            label = key.strip()
            values[label] = [value.strip()]
        elif label and line.strip():
            values[label].append(line.strip())
    joined = {k: " ".join(v).strip() for k, v in values.items()}
    number = joined.get("EudraCT Number", "")
    if EUDRACT.fullmatch(number) is None:
        return None
    statuses = {
        ("3RD" if code.lower() in ("3rd", "outside eu/eea") else code.upper()): status.strip()
        for code, status in _PROTOCOL.findall(joined.get("Trial protocol", ""))
    }
    known = {attr: joined.get(key, "") for key, attr in _SUMMARY_KEYS.items()}
    return SearchHit(**known, statuses=statuses)


# --- helpers ----------------------------------------------------------------------------------


def _first(fields: Mapping[str, tuple[str, ...]], label: str) -> str:
    values = fields.get(label, ())
    return values[0] if values else ""


def _shown(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return repr(line[:40] + ("…" if len(line) > 40 else ""))
