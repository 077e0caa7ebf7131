"""The ISRCTN query API's XML, read safely: ``<allTrials totalCount="N">`` split into one
``<fullTrial>`` per record, each kept as its own XML text (the raw record the store keeps).

Safety: the registry's XML is read with lxml with entity expansion, DTD loading and network
access off, and a document that declares a DTD (``<!DOCTYPE``, ``<!ENTITY``) is refused
before it is parsed: the API sends none, and a DTD is how an entity bomb or an external
entity would come in. libxml2's own limits (depth, text size: ``huge_tree`` off) hold.

Namespaces: the live API puts its elements in a default namespace
(``http://www.67bricks.com/isrctn``); the emulator and ctrdata's conversions use none. Every
element is matched by its local name, so both read alike. The text kept for a record is the
element as the registry sent it (its namespace declaration included).

Every failure is ``RecordInvalid`` naming what was read (``where``) and what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from service.errors import RecordInvalid

# A DTD or entity declaration, anywhere: the API never sends one (checked before parsing, so
# no declaration is ever read; parsed XML is checked again for a document type).
_DECLARATION = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_DIGITS = re.compile(r"\d{8}", re.ASCII)
_SHOWN = 80  # characters of a parser's complaint kept in a message


@dataclass(frozen=True)
class TrialXml:
    """One ``<fullTrial>`` of an answer: its id (``ISRCTN`` + 8 digits, "" when its
    ``trial/isrctn`` is not 8 digits), ``trial@lastUpdated`` as given ("" when absent) and
    the element's XML text."""

    isrctn: str
    last_updated: str
    xml: str


@dataclass(frozen=True)
class QueryAnswer:
    """An ``<allTrials>`` answer: the registry's count of matching records (it may be more
    than came back: ``limit`` caps the records, not the count) and the records."""

    total_count: int
    trials: tuple[TrialXml, ...]


def parse_query_answer(body: bytes | str, where: str) -> QueryAnswer:
    """The records of one query answer; ``RecordInvalid`` naming ``where`` when it is not an
    ``<allTrials totalCount>`` document."""
    root = _parse(body, where)
    if local_name(root) != "allTrials":
        raise RecordInvalid(f"{where}: expected <allTrials>, got <{local_name(root)}>")
    count = root.get("totalCount")
    if count is None or not count.strip().isdigit() or not count.strip().isascii():
        shown = "none" if count is None else repr(count[:_SHOWN])
        raise RecordInvalid(f"{where}: allTrials@totalCount: expected a count, got {shown}")
    fulls = [child for child in root if local_name(child) == "fullTrial"]
    # serialised before the namespaces are dropped: the record is kept as the registry sent it
    texts = [etree.tostring(full, encoding="unicode", with_tail=False) for full in fulls]
    strip_namespaces(root)
    trials = tuple(
        TrialXml(_isrctn(full), _last_updated(full), text)
        for full, text in zip(fulls, texts, strict=True)
    )
    return QueryAnswer(int(count.strip()), trials)


def parse_full_trial(text: str, where: str) -> etree._Element:
    """One record's XML (a ``<fullTrial>``, or a bare ``<trial>``, which is wrapped in one)
    as an element tree whose elements carry their local names only."""
    root = _parse(text, where)
    strip_namespaces(root)
    if root.tag == "trial":
        wrapper = etree.Element("fullTrial")
        wrapper.append(root)
        return wrapper
    if root.tag != "fullTrial":
        raise RecordInvalid(f"{where}: expected <fullTrial>, got <{root.tag}>")
    return root


def local_name(element: etree._Element) -> str:
    """An element's name without its namespace (``{ns}trial`` → ``trial``)."""
    return etree.QName(element).localname


def strip_namespaces(root: etree._Element) -> None:
    """Every element and attribute under ``root`` renamed to its local name, in place."""
    for element in root.iter(tag=etree.Element):
        element.tag = etree.QName(element).localname
        for key in [k for k in element.attrib if k.startswith("{")]:
            value = element.attrib.pop(key)
            element.attrib[etree.QName(key).localname] = value
    etree.cleanup_namespaces(root)


def _parse(body: bytes | str, where: str) -> etree._Element:
    data = body.encode("utf-8") if isinstance(body, str) else body
    if _DECLARATION.search(data):
        raise RecordInvalid(
            f"{where}: refused: the XML declares a DTD or entities, which the registry "
            "never sends (an entity bomb or external entity would come in that way)"
        )
    parser = etree.XMLParser(  # one a call: an lxml parser is not to be shared by threads
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        message = str(exc).splitlines()[0][:_SHOWN] if str(exc) else "unreadable"
        raise RecordInvalid(f"{where}: not XML ({message})") from None
    if root is None:
        raise RecordInvalid(f"{where}: not XML (empty document)")
    if root.getroottree().docinfo.doctype:
        raise RecordInvalid(f"{where}: refused: the XML declares a document type")
    return root


def _isrctn(full: etree._Element) -> str:
    digits = (full.findtext("trial/isrctn") or "").strip()
    return f"ISRCTN{digits}" if _DIGITS.fullmatch(digits) else ""


def _last_updated(full: etree._Element) -> str:
    trial = full.find("trial")
    return (trial.get("lastUpdated") or "").strip() if trial is not None else ""
