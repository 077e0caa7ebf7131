"""Country names as ClinicalTrials.gov writes them, and the other spellings documents use.

Affiliation lines end with a country ("…, Utrecht, The Netherlands"); registry locations carry
one too. Both are mapped to the registry's spelling so they compare directly.
"""

from __future__ import annotations

__all__ = ["country_of"]

# registry spelling -> other spellings (matched case-insensitively, "The " ignored)
_COUNTRIES: dict[str, tuple[str, ...]] = {
    "Argentina": (),
    "Australia": (),
    "Austria": (),
    "Belgium": (),
    "Brazil": ("Brasil",),
    "Canada": (),
    "Chile": (),
    "China": ("P.R. China", "PR China", "People's Republic of China", "P. R. China"),
    "Colombia": (),
    "Czechia": ("Czech Republic",),
    "Denmark": (),
    "Egypt": (),
    "Finland": (),
    "France": (),
    "Germany": ("Deutschland",),
    "Greece": (),
    "Hong Kong": (),
    "Hungary": (),
    "India": (),
    "Iran, Islamic Republic of": ("Iran",),
    "Ireland": (),
    "Israel": (),
    "Italy": ("Italia",),
    "Japan": (),
    "Korea, Republic of": ("Korea", "South Korea", "Republic of Korea"),
    "Mexico": (),
    "Netherlands": ("Holland", "Nederland"),
    "New Zealand": (),
    "Nigeria": (),
    "Norway": (),
    "Pakistan": (),
    "Poland": (),
    "Portugal": (),
    "Russian Federation": ("Russia",),
    "Saudi Arabia": (),
    "Singapore": (),
    "South Africa": (),
    "Spain": ("España",),
    "Sweden": (),
    "Switzerland": (),
    "Taiwan": (),
    "Thailand": (),
    "Turkey": ("Türkiye", "Turkiye"),
    "United Kingdom": ("UK", "U.K.", "England", "Scotland", "Wales", "Great Britain"),
    "United States": ("USA", "U.S.A.", "US", "U.S.", "United States of America"),
}


def _key(text: str) -> str:
    key = text.strip().casefold()
    key = key.removeprefix("the ")
    return "".join(ch for ch in key if ch.isalnum())


_LOOKUP: dict[str, str] = {
    _key(name): registry for registry, others in _COUNTRIES.items() for name in (registry, *others)
}


def country_of(text: str) -> str | None:
    """The registry's spelling of the country ``text`` names, or None when it names none."""
    return _LOOKUP.get(_key(text)) if len(text) <= 40 else None
