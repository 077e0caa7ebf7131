"""Who ran a study and where: affiliations, cities and countries of the authors (or a
registry page's sponsor and sites), and the funders a paper thanks.

Pure; part of ``service.seeds.extract``.
"""

from __future__ import annotations

import re

from service.seeds.model import Sponsor
from service.seeds.places import country_of, is_region, place_name
from service.seeds.registry_page import Page

__all__ = ["sponsor_of"]

_INSTITUTION = re.compile(
    r"(?i)university|universit|hospital|college|institut|cent(?:er|re)|\bUMC\b|charit|clinic|"
    r"academy|school|medicine|foundation"
)
_SUPERSCRIPT_LEAD = re.compile(r"^\s*(?:\d{1,2}\.\s*)?\d{0,2}\s*")
_FUNDING = re.compile(
    r"(?i)\b(?:financially\s+)?(?:supported|funded)\s+by\s+(?:(?:research\s+)?grants?\s+from\s+|"
    r"an?\s+(?:unrestricted\s+)?grant\s+from\s+)?(?:the\s+)?(.+?)(?:\.(?:\s|$)|$)",
    re.MULTILINE,
)


def sponsor_of(text: str, page: Page | None) -> Sponsor:
    """Affiliations, cities, countries and funders (a registry page: lead sponsor and sites)."""
    if page is not None:
        cities, countries = _places(page.sections.get("locations", []))
        return Sponsor(lead=page.first("sponsor"), cities=cities, countries=countries)
    affiliations: list[str] = []
    cities: list[str] = []
    countries: list[str] = []
    for line in text.splitlines()[:80]:
        found = _affiliation(line)
        if found:
            affiliations.append(found[0])
            cities.append(found[1])
            countries.append(found[2])
    return Sponsor(
        funders=_funders(text),
        affiliations=tuple(dict.fromkeys(a for a in affiliations if a)),
        cities=tuple(dict.fromkeys(c for c in cities if c)),
        countries=tuple(dict.fromkeys(countries)),
    )


def _affiliation(line: str) -> tuple[str, str, str] | None:
    body = _SUPERSCRIPT_LEAD.sub("", line).strip()
    if body.casefold().startswith(("correspondence", "reprint")):
        return None
    parts = [p.strip() for p in re.split(r"[;,]", body) if p.strip()]
    if len(parts) < 3:
        return None
    country = country_of(parts[-1])
    if country is None:
        return None
    institution = next(
        (
            p
            for p in parts[:-1]
            if _INSTITUTION.search(p) and not p.casefold().startswith(("department", "division"))
        ),
        "",
    )
    return institution, _city(parts[:-1], country), country


def _city(places: list[str], country: str) -> str:
    """The city among the address parts before the country: the last one that is a place,
    stepping over a province or state; "" rather than a guess when there is none."""
    for part in reversed(places[-2:]):
        name = place_name(part)
        if not name or _INSTITUTION.search(name):
            return ""  # an institution or a street: the address names no city here
        if not is_region(name, country):
            return name
    return ""


def _places(lines: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    cities: list[str] = []
    countries: list[str] = []
    for line in lines:
        parts = [p.strip() for p in line.split(",") if p.strip()]
        country = country_of(parts[-1]) if parts else None
        if country is None:
            continue
        countries.append(country)
        city = place_name(parts[0]) if len(parts) >= 2 else ""
        if city and not is_region(city, country):
            cities.append(city)
    return tuple(dict.fromkeys(cities)), tuple(dict.fromkeys(countries))


# PubMed-style publication types name a funder without a sentence about it.
_NIH_SUPPORT = re.compile(r"(?im)^RESEARCH SUPPORT, N\.I\.H\.")


def _funders(text: str) -> tuple[str, ...]:
    match = _FUNDING.search(text)
    if match is None:
        return ("National Institutes of Health",) if _NIH_SUPPORT.search(text) else ()
    # Grant numbers sit in parentheses between funder names: split there.
    pieces = re.split(r"\([^()]*\)", match.group(1))
    funders = []
    for piece in pieces:
        name = re.sub(r"^[\s,;]*(?:and\s+)?(?:the\s+)?", "", piece).strip(" ,;")
        if len(name) >= 4:
            funders.append(name)
    return tuple(dict.fromkeys(funders))
