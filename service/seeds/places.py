"""Country names as ClinicalTrials.gov writes them, the other spellings documents use, and the
provinces and states that stand between a city and its country.

Affiliation lines end with a country ("…, Utrecht, The Netherlands"); registry locations carry
one too. Both are mapped to the registry's spelling so they compare directly. The place before
the country is a city only when it is not a province or state ("Wuhu, Anhui, China": Anhui is
the province, Wuhu the city) and once its postcode is cut off ("Utrecht 3584 CX").
"""

from __future__ import annotations

__all__ = ["country_of", "is_region", "place_name"]

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


# First-level regions, per country (registry spelling), as affiliations write them. Cities that
# are regions of their own (Beijing, Shanghai, Berlin, Hamburg, Vienna, …) are left out on
# purpose: there the name is the city.
_REGIONS: dict[str, tuple[str, ...]] = {
    "China": (
        "Anhui", "Fujian", "Gansu", "Guangdong", "Guangxi", "Guizhou", "Hainan", "Hebei",
        "Heilongjiang", "Henan", "Hubei", "Hunan", "Inner Mongolia", "Jiangsu", "Jiangxi",
        "Jilin", "Liaoning", "Ningxia", "Qinghai", "Shaanxi", "Shandong", "Shanxi", "Sichuan",
        "Tibet", "Xinjiang", "Yunnan", "Zhejiang",
    ),
    "United States": (
        "Alabama", "AL", "Alaska", "AK", "Arizona", "AZ", "Arkansas", "AR", "California", "CA",
        "Colorado", "CO", "Connecticut", "CT", "Delaware", "DE", "Florida", "FL", "Georgia",
        "GA", "Hawaii", "HI", "Idaho", "ID", "Illinois", "IL", "Indiana", "IN", "Iowa", "IA",
        "Kansas", "KS", "Kentucky", "KY", "Louisiana", "LA", "Maine", "ME", "Maryland", "MD",
        "Massachusetts", "MA", "Michigan", "MI", "Minnesota", "MN", "Mississippi", "MS",
        "Missouri", "MO", "Montana", "MT", "Nebraska", "NE", "Nevada", "NV", "New Hampshire",
        "NH", "New Jersey", "NJ", "New Mexico", "NM", "New York State", "NY", "North Carolina",
        "NC", "North Dakota", "ND", "Ohio", "OH", "Oklahoma", "OK", "Oregon", "OR",
        "Pennsylvania", "PA", "Rhode Island", "RI", "South Carolina", "SC", "South Dakota", "SD",
        "Tennessee", "TN", "Texas", "TX", "Utah", "UT", "Vermont", "VT", "Virginia", "VA",
        "Washington State", "WA", "West Virginia", "WV", "Wisconsin", "WI", "Wyoming", "WY",
        "District of Columbia", "DC", "Puerto Rico", "PR",
    ),
    "Canada": (
        "Alberta", "AB", "British Columbia", "BC", "Manitoba", "MB", "New Brunswick", "NB",
        "Newfoundland and Labrador", "NL", "Nova Scotia", "NS", "Ontario", "ON",
        "Prince Edward Island", "PE", "Quebec", "Québec", "QC", "Saskatchewan", "SK",
    ),
    "Australia": (
        "New South Wales", "NSW", "Victoria", "VIC", "Queensland", "QLD", "South Australia",
        "SA", "Western Australia", "WA", "Tasmania", "TAS", "Northern Territory", "NT",
        "Australian Capital Territory", "ACT",
    ),
    "India": (
        "Andhra Pradesh", "Gujarat", "Haryana", "Karnataka", "Kerala", "Madhya Pradesh",
        "Maharashtra", "Punjab", "Rajasthan", "Tamil Nadu", "Telangana", "Uttar Pradesh",
        "West Bengal",
    ),
    "Germany": (
        "Baden-Württemberg", "Bavaria", "Bayern", "Hesse", "Hessen", "Lower Saxony",
        "Niedersachsen", "North Rhine-Westphalia", "Nordrhein-Westfalen", "Rhineland-Palatinate",
        "Saxony", "Sachsen", "Schleswig-Holstein", "Thuringia", "Thüringen",
    ),
    "Italy": ("Lombardy", "Lombardia", "Lazio", "Tuscany", "Toscana", "Veneto", "Piedmont"),
    "Spain": ("Catalonia", "Cataluña", "Catalunya", "Andalusia", "Andalucía", "Galicia"),
    "Japan": ("Hokkaido",),
}  # fmt: skip
_REGION_WORDS = ("province", "prefecture", "state", "provincia", "oblast", "region")
_REGION_LOOKUP = {(country, _key(name)) for country, names in _REGIONS.items() for name in names}


def is_region(text: str, country: str) -> bool:
    """True if ``text`` names a province or state (of ``country``), not a city."""
    words = text.casefold().split()
    if len(words) > 1 and words[-1] in _REGION_WORDS:
        return True  # "Anhui Province", "Osaka Prefecture"
    return (country, _key(text)) in _REGION_LOOKUP


def place_name(text: str) -> str:
    """The place in an address part, without its postcode: "Utrecht 3584 CX" → "Utrecht",
    "10117 Berlin" → "Berlin", "PA 19104" → "PA"."""
    words = text.split()
    while words and any(ch.isdigit() for ch in words[0]):
        words.pop(0)
    kept: list[str] = []
    for word in words:
        if any(ch.isdigit() for ch in word):
            break
        kept.append(word)
    return " ".join(kept)
