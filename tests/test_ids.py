"""Registry identifiers: validation of what users type, and every format found in free text."""

from __future__ import annotations

import csv
import re
import unicodedata
from pathlib import Path

import pytest
from twconfig import runner

from service.errors import InputError
from service.ids import (
    FORMATS,
    REGISTRY_KEYS,
    RegistryId,
    find_registry_ids,
    parse_nct,
    parse_ncts,
    parse_registry_id,
)

CSV = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "reference"
    / "other-registries"
    / "ctregistries_registries.csv"
)

# the ctregistries table's databanks -> the contract's registry keys
DATABANK_KEYS = {
    "ANZCTR": "anzctr",
    "ChiCTR": "chictr",
    "CRiS": "kct",
    "ClinicalTrials.gov": "ctgov",
    "CTRI": "ctri",
    "DRKS": "drks",
    "EudraCT": "euctr",
    "IRCT": "irct",
    "ISRCTN": "isrctn",
    "JapicCTI": "jprn",
    "JMACCT": "jprn",
    "jRCT": "jprn",
    "LBCTR": "lbctr",
    "NTR": "nl",
    "PACTR": "pactr",
    "ReBec": "rebec",
    "REPEC": "repec",
    "RPCEC": "rpcec",
    "SLCTR": "slctr",
    "TCTR": "tctr",
    "UMIN-CTR": "jprn",
}


# ---- parse_nct stays as it was -------------------------------------------------------------------


def test_a_lowercase_nct_id_is_normalised() -> None:
    assert parse_nct(" nct05605665 ") == "NCT05605665"


def test_a_short_nct_id_is_refused_with_the_documented_message() -> None:
    with pytest.raises(InputError, match=r"'NCT123' is not a ClinicalTrials.gov id"):
        parse_nct("NCT123")


def test_parse_ncts_keeps_order_and_drops_repeats() -> None:
    assert parse_ncts(["NCT00000002", "nct00000001", "NCT00000002"]) == [
        "NCT00000002",
        "NCT00000001",
    ]


# ---- every format --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"{f.registry}-{f.example}")
def test_every_format_finds_its_example_in_a_sentence(fmt) -> None:  # type: ignore[no-untyped-def]
    text = f"The trial was registered ({fmt.example}) before the first patient."
    assert find_registry_ids(text) == [RegistryId(fmt.registry, fmt.example)]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"{f.registry}-{f.example}")
def test_every_example_parses_to_itself(fmt) -> None:  # type: ignore[no-untyped-def]
    assert parse_registry_id(fmt.example) == RegistryId(fmt.registry, fmt.example)


def test_every_format_maps_to_a_known_registry_key() -> None:
    assert {fmt.registry for fmt in FORMATS} == set(REGISTRY_KEYS)


@pytest.mark.parametrize(
    ("typed", "registry", "canonical"),
    [
        ("NCT 05605665", "ctgov", "NCT05605665"),
        ("EudraCT 2014 003140 12", "euctr", "2014-003140-12"),
        ("ISRCTN: 12345678", "isrctn", "ISRCTN12345678"),
        ("chictr-trc-12002340", "chictr", "ChiCTR-TRC-12002340"),
        ("DRKS-00012345", "drks", "DRKS00012345"),
        ("ANZCTR 12615000123456", "anzctr", "ACTRN12615000123456"),
        ("UMIN 000012345", "jprn", "UMIN000012345"),
        ("JRCTS031180001", "jprn", "jRCTs031180001"),
        ("Japic CTI-173456", "jprn", "JapicCTI-173456"),
        ("CTRI / 2009 / 091 / 000123", "ctri", "CTRI/2009/091/000123"),
        ("kct 0001234", "kct", "KCT0001234"),
        ("RBR-7RMVX3", "rebec", "RBR-7rmvx3"),
        ("NTR 1234", "nl", "NTR1234"),
    ],
)
def test_separators_and_case_are_normalised_as_the_registry_writes_the_id(
    typed: str, registry: str, canonical: str
) -> None:
    assert find_registry_ids(f"see {typed}.") == [RegistryId(registry, canonical)]


def test_a_ctis_number_is_not_mistaken_for_a_eudract_number() -> None:
    found = find_registry_ids("EU CT 2025-523333-26-00 follows EudraCT 2014-003140-12.")
    assert found == [
        RegistryId("ctis", "2025-523333-26-00"),
        RegistryId("euctr", "2014-003140-12"),
    ]


def test_ids_come_back_in_text_order_without_repeats() -> None:
    text = "NCT05605665 (nct05605665), then ISRCTN12345678 and NCT05605665 again."
    assert find_registry_ids(text) == [
        RegistryId("ctgov", "NCT05605665"),
        RegistryId("isrctn", "ISRCTN12345678"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "grants 2017YFC0907601 and 2019-I2M-2–008",  # Chinese grant numbers
        "the NL12345.041.15 file of the ethics committee",  # a CCMO file number, not the NTR
        "per 100 patients, nl 12 of them",  # short prefixes in prose
        "SFB650, TP10",
        "dates 2014-03-07 and 2016-11-30",
        "NCT0560566",  # too short
        "phone +31887557358",
    ],
)
def test_numbers_that_are_not_registrations_are_not_found(text: str) -> None:
    assert find_registry_ids(text) == []


def test_the_five_seed_documents_name_only_nct05605665(tests_data: Path) -> None:
    found = {
        path.name: find_registry_ids(path.read_text())
        for path in sorted((tests_data / "seeds").glob("*.txt"))
    }
    assert found == {
        "000_leflunomide_pss.txt": [],
        "001_baricitinib_ss.txt": [],
        "002_lenalidomide_cle.txt": [],
        "003_low_dose_il2_sle.txt": [],
        "004_nct05605665_page.txt": [RegistryId("ctgov", "NCT05605665")],
    }


# ---- parse_registry_id ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("EUCTR2014-003140-12-NL", RegistryId("euctr", "2014-003140-12")),
        ("JPRN-UMIN000012345", RegistryId("jprn", "UMIN000012345")),
        ("nl-omon45101", RegistryId("nl", "NL-OMON45101")),
    ],
)
def test_who_portal_prefixes_and_suffixes_are_understood(typed: str, expected: RegistryId) -> None:
    assert parse_registry_id(typed) == expected


def test_an_unknown_identifier_is_refused_with_examples() -> None:
    with pytest.raises(InputError, match=r"'XYZ-1' is not a registry identifier .*NCT05605665"):
        parse_registry_id("XYZ-1")


def test_an_identifier_of_another_registry_than_asked_is_refused() -> None:
    with pytest.raises(InputError, match=r"'NCT05605665' is not a drks identifier"):
        parse_registry_id("NCT05605665", "drks")


def test_an_unknown_registry_key_is_refused() -> None:
    with pytest.raises(InputError, match=r"unknown registry 'who'"):
        parse_registry_id("NCT05605665", "who")


# ---- the reference table, where present ----------------------------------------------------------


@pytest.fixture
def registry_table() -> list[dict[str, str]]:
    if not CSV.is_file():
        pytest.skip(f"the ctregistries table is not available at {CSV}")
    with CSV.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    return [r for r in rows if r["databank_type"] == "registry" and r["trn_regex"] != "NA"]


NEWER_THAN_THE_TABLE = {"CTIS (EU CT number)", "NL-OMON"}


def _table_pattern(regex: str) -> re.Pattern[str]:
    # Python's re needs one fixed width per look-behind: split the table's alternation.
    return re.compile(regex.replace(r"(?<!IRCT|PACTR|\d)", r"(?<!IRCT)(?<!PACTR)(?<!\d)"))


def test_every_registry_of_the_reference_table_has_a_format(
    registry_table: list[dict[str, str]],
) -> None:
    assert {r["databank"] for r in registry_table} <= set(DATABANK_KEYS)
    assert {DATABANK_KEYS[r["databank"]] for r in registry_table} <= set(REGISTRY_KEYS)


def test_every_example_is_an_identifier_by_the_reference_table(
    registry_table: list[dict[str, str]],
) -> None:
    patterns = {r["databank"]: _table_pattern(r["trn_regex"]) for r in registry_table}
    unmatched = [
        fmt.example
        for fmt in FORMATS
        if fmt.name not in NEWER_THAN_THE_TABLE
        and not any(
            p.search(fmt.example)
            for name, p in patterns.items()
            if DATABANK_KEYS[name] == fmt.registry
        )
    ]
    assert unmatched == []


def test_what_the_reference_table_finds_in_a_text_is_found_here_too(
    registry_table: list[dict[str, str]],
) -> None:
    text = (
        "Registered as NCT05605665, ISRCTN12345678, DRKS00012345, ACTRN12615000123456, "
        "ChiCTR2000029308, ChiCTR-TRC-12002340, KCT0001234, CTRI/2017/05/008567, "
        "IRCT20150303021315N3, PACTR201509001252398, UMIN000012345, jRCTs031180001, "
        "JapicCTI-173456, JMA-IIA00123, LBCTR2019020199, RBR-7rmvx3, RPCEC00000123, "
        "SLCTR/2019/012, TCTR20190123001, NTR1234 and EudraCT 2014-003140-12."
    )
    expected = set()
    for row in registry_table:
        for match in _table_pattern(row["trn_regex"]).finditer(text):
            expected.add((DATABANK_KEYS[row["databank"]], match.group(0)))
    found = find_registry_ids(text)
    for registry, raw in expected:
        assert any(
            rid.registry == registry and _digits(rid.study_id) == _digits(raw) for rid in found
        ), (registry, raw)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


# ---- ASCII only: every Unicode digit class -----------------------------------------------------

# One digit of every non-ASCII decimal-digit block (category Nd): fullwidth, Arabic-Indic,
# Devanagari, mathematical bold, … — 60-odd blocks; `\d` without re.ASCII matches them all.
NON_ASCII_DIGITS = [
    chr(code)
    for code in range(0x80, 0x110000)
    if unicodedata.category(chr(code)) == "Nd" and unicodedata.digit(chr(code)) == 0
]


def test_there_are_many_non_ascii_digit_blocks_to_refuse() -> None:
    assert len(NON_ASCII_DIGITS) > 50  # the test below is not vacuous
    assert "\uff10" in NON_ASCII_DIGITS and "\u0660" in NON_ASCII_DIGITS  # fullwidth, Arabic


@pytest.mark.parametrize("zero", NON_ASCII_DIGITS, ids=lambda z: unicodedata.name(z))
def test_an_id_with_non_ascii_digits_is_refused_everywhere(zero: str) -> None:
    # the digits 0-9 of this block, spelled as NCT05605665 would be
    digits = "".join(chr(ord(zero) + int(d)) for d in "05605665")
    with pytest.raises(InputError, match=r"is not a ClinicalTrials\.gov id"):
        parse_nct("NCT" + digits)
    with pytest.raises(InputError):
        parse_registry_id("NCT" + digits)
    assert find_registry_ids(f"registered as NCT{digits} and ISRCTN{digits}") == []
    one_digit_swapped = "NCT0560566" + chr(ord(zero) + 5)
    with pytest.raises(InputError):
        parse_nct(one_digit_swapped)


@pytest.mark.parametrize(
    "typed",
    ["\u0131SRCTN12345678", "\u017fLCTR2019012", "\u212aCT0001234", "NCT05605665\u0338"],
    ids=["dotless-i", "long-s", "kelvin-sign", "combining-mark"],
)
def test_letters_that_fold_to_ascii_are_not_identifiers(typed: str) -> None:
    with pytest.raises(InputError):
        parse_registry_id(typed)
    assert find_registry_ids(typed) in ([], [RegistryId("ctgov", "NCT05605665")])


def test_an_id_next_to_cjk_text_is_still_found() -> None:
    # With ASCII word boundaries, Chinese text around an id no longer hides it.
    assert find_registry_ids("注册号NCT05605665。") == [RegistryId("ctgov", "NCT05605665")]


def test_watch_add_refuses_fullwidth_digits_and_watches_nothing(tmp_path: Path) -> None:
    env = {"TRIALWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/t.db", "TRIALWATCH_CONFIG": ""}
    run = runner(env)
    refused = run("watch", "add", "NCT０５６０５６６５")
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        "trialwatch: error: 'NCT０５６０５６６５' is not a ClinicalTrials.gov id "
        "(NCT followed by 8 digits, e.g. NCT05605665)"
    )
    assert run("watch", "list", "--json").json() == []
