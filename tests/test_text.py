"""Tests of service.text: old HTML and current Markdown versions of a text fold equal."""

from __future__ import annotations

import html
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.text import fold_key, fold_text

# --- the contract's cosmetic churn -----------------------------------------------------------


def test_none_folds_to_an_empty_string() -> None:
    assert fold_text(None) == ""


def test_html_paragraph_with_an_entity_equals_the_markdown_text() -> None:
    assert fold_text("<p>A &amp; B</p>") == fold_text("A & B") == "A & B"


def test_a_hex_entity_for_slash_is_a_slash() -> None:
    assert fold_text("and&#x2F;or") == "and/or"


def test_double_encoded_entities_decode_fully() -> None:
    assert fold_text("and&amp;#x2F;or") == "and/or"
    assert fold_text("&amp;amp;lt;") == "<"


def test_a_markdown_escape_before_a_comparison_is_dropped() -> None:
    assert fold_text("age \\>=18 years") == "age >=18 years"
    assert fold_text("\\>=") == fold_text("&gt;=") == ">="


def test_escaped_markdown_punctuation_is_literal() -> None:
    assert fold_text("\\*see note\\*") == "*see note*"
    assert fold_text("\\[Eichenfeld 2004\\]") == "[Eichenfeld 2004]"
    assert fold_text("50\\% \\_or\\_ more") == "50% _or_ more"


def test_a_non_breaking_space_is_an_ordinary_space() -> None:
    assert fold_text("10\u00a0mg") == fold_text("10&nbsp;mg") == "10 mg"


@pytest.mark.parametrize("space", ["\u2009", "\u202f", "\u2002", "\u3000", "\u205f"])
def test_compatibility_spaces_are_ordinary_spaces(space: str) -> None:
    assert fold_text(f"10{space}mg") == "10 mg"


def test_zero_width_characters_and_soft_hyphens_vanish() -> None:
    assert fold_text("zero\u200bwidth\ufeff soft\u00adhyphen") == "zerowidth softhyphen"


def test_html_bullet_list_equals_markdown_bullet_list() -> None:
    assert fold_text("<ul><li>x</li><li>y</li></ul>") == fold_text("* x\n* y") == "x y"
    assert fold_text("<ul><li>x</li><li>y</li></ul>") == fold_text("- x\n- y")


def test_html_numbered_list_equals_markdown_numbered_list() -> None:
    assert fold_text("<ol><li>x</li><li>y</li></ol>") == fold_text("1. x\n2. y") == "x y"


def test_nested_html_lists_equal_indented_markdown_lists() -> None:
    old = (
        "<p>Inclusion Criteria:</p><ol><li><p>Illness, and one of:</p><ul>"
        "<li>SpO2 &lt;&#x2F;= 94%, OR</li><li>ventilation and&#x2F;or oxygen.</li></ul></li>"
        "<li>Consent.</li></ol>"
    )
    new = (
        "Inclusion Criteria:\n\n1. Illness, and one of:\n\n   * SpO2 \\</= 94%, OR\n"
        "   * ventilation and/or oxygen.\n2. Consent."
    )
    assert fold_text(old) == fold_text(new)
    assert fold_text(new) == (
        "Inclusion Criteria: Illness, and one of: SpO2 </= 94%, OR ventilation and/or oxygen. "
        "Consent."
    )


def test_html_line_breaks_and_markdown_line_breaks_fold_alike() -> None:
    assert fold_text("first<br/>second<BR>third") == fold_text("first\nsecond\r\nthird")


def test_unicode_is_composed_to_nfc() -> None:
    decomposed = "Universitario de Leo\u0301n"
    assert fold_text(decomposed) == "Universitario de Le\u00f3n"


def test_whitespace_runs_and_newlines_collapse_to_one_space() -> None:
    assert fold_text("  a\t\tb \n\n c  ") == "a b c"


# --- Markdown markup -------------------------------------------------------------------------


def test_markdown_emphasis_is_dropped() -> None:
    assert fold_text("**bold**, *italic*, __strong__ and _em_") == "bold, italic, strong and em"
    assert fold_text("<b>bold</b>, <i>italic</i>") == fold_text("**bold**, *italic*")


def test_markdown_headings_in_multi_line_text_are_dropped() -> None:
    assert fold_text("## Inclusion\n\n* adults") == fold_text(
        "<h2>Inclusion</h2><ul><li>adults</li></ul>"
    )


def test_markdown_links_keep_their_text() -> None:
    assert fold_text("see [the protocol](https://example.org/p.pdf)") == "see the protocol"
    assert fold_text('see <a href="https://example.org/p.pdf">the protocol</a>') == (
        "see the protocol"
    )


def test_asterisks_and_underscores_that_are_not_emphasis_survive() -> None:
    assert fold_text("5 * 3 * 2") == "5 * 3 * 2"
    assert fold_text("p<0.05*") == "p<0.05*"
    assert fold_text("HBV_DNA_level") == "HBV_DNA_level"


def test_a_single_line_label_keeps_its_leading_number_or_hash() -> None:
    # Real arm labels read "1. Metformin", outcome measures "# of participants": content.
    assert fold_text("2. repaglinide") == "2. repaglinide"
    assert fold_text("# of participants with AEs") == "# of participants with AEs"
    assert fold_text("- 5 mg") == "- 5 mg"


def test_html_text_is_not_read_as_markdown() -> None:
    # Old versions never hold Markdown, so their literal "1." and "*" are content; the current
    # Markdown writes the same literals escaped.
    assert fold_text("<p>1. Dose</p><p>*see note*</p>") == "1. Dose *see note*"
    assert fold_text("<p>1. Dose</p><p>*see note*</p>") == fold_text("1\\. Dose\n\n\\*see note\\*")


# --- what must not be folded away -------------------------------------------------------------


def test_an_ampersand_without_a_semicolon_is_not_an_entity() -> None:
    assert fold_text("R&D &notes &copy") == "R&D &notes &copy"


def test_angle_brackets_that_are_not_known_tags_survive() -> None:
    assert fold_text("p < 0.05 and age<18 and <=65") == "p < 0.05 and age<18 and <=65"
    assert fold_text("dose <10 mg/kg>") == "dose <10 mg/kg>"


def test_decoded_entities_are_text_never_markup() -> None:
    assert fold_text("&lt;p&gt;literal&lt;/p&gt;") == "<p>literal</p>"
    assert fold_text("&#42;not emphasis&#42;") == "*not emphasis*"


def test_compatibility_characters_other_than_spaces_keep_their_meaning() -> None:
    assert fold_text("1.73 m² and 5 µg") == "1.73 m² and 5 µg"


def test_case_is_kept_by_fold_text_and_ignored_by_fold_key() -> None:
    assert fold_text("COVID-19") != fold_text("covid-19")
    assert fold_key("<p>COVID&#x2D;19</p>") == fold_key("covid-19") == "covid-19"


def test_non_string_values_fold_as_their_text() -> None:
    assert fold_text(42) == "42"


def test_a_lone_surrogate_becomes_a_replacement_character() -> None:
    assert fold_text("a\ud800b") == "a\ufffdb"


def test_long_texts_fold_like_short_ones() -> None:
    # Short values go through a cache; long ones do not. Both paths must agree.
    item = "<li>SpO2 &lt;&#x2F;= 94%</li>"
    assert fold_text(f"<ul>{item * 200}</ul>") == " ".join(["SpO2 </= 94%"] * 200)


# --- properties -------------------------------------------------------------------------------

_ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)
# Text with no markup-significant characters: letters, digits, spaces and plain punctuation.
_PLAIN = st.text(
    st.characters(
        codec="utf-8",
        exclude_categories=("Cs", "Cc", "Cf"),
        exclude_characters="&<>\\*_[]#+-`\n\r",
    ),
    max_size=120,
)
# Registry-like sentences with the characters that HTML or Markdown escape. No letter that
# could start a tag name: an unescaped "<b>" in plain text is genuinely ambiguous.
_SENTENCE = st.text(
    st.sampled_from(list("cxyzXYZ 0123456789.,;:()/%=<>&'\"!?")),
    max_size=80,
)


@given(_ANY_TEXT)
def test_folded_text_is_flat_trimmed_and_nfc(value: str) -> None:
    folded = fold_text(value)
    assert folded == folded.strip()
    assert "  " not in folded
    assert "\n" not in folded
    assert unicodedata.is_normalized("NFC", folded)
    folded.encode("utf-8")  # no lone surrogates


@given(_PLAIN)
def test_plain_text_only_has_its_whitespace_collapsed(value: str) -> None:
    expected = unicodedata.normalize("NFC", " ".join(value.split()))
    assert fold_text(value) == " ".join(expected.split())


@given(_SENTENCE)
def test_html_escaped_text_in_a_paragraph_folds_like_the_text(value: str) -> None:
    assert fold_text(f"<p>{html.escape(value)}</p>") == fold_text(value)


@given(_SENTENCE)
def test_markdown_escaped_text_folds_like_the_html_escaped_text(value: str) -> None:
    markdown = "".join(f"\\{char}" if char in "<>&()!.=" else char for char in value)
    assert fold_text(markdown) == fold_text(f"<p>{html.escape(value, quote=False)}</p>")
