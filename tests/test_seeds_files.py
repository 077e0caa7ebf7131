"""Seed files: the format, its validation (one line naming file and key) and TOML writing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.errors import InputError
from service.seeds.files import load_seed_dir, parse_seed, seed_toml
from service.seeds.model import Seed
from service.seeds.toml import dumps

SEEDS = Path(__file__).resolve().parents[1] / "seeds"

MINIMAL = 'id = "a-seed"\ntitle = "A study"\n'


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_five_project_seeds_load_and_validate() -> None:
    files = load_seed_dir(SEEDS)
    assert [f.seed.id for f in files] == [
        "baricitinib-ss-pilot-bai-2022",
        "il2-rapamycin-ss-nct05605665",
        "leflunomide-pss-bikker-2012",
        "lenalidomide-cle-braunstein-2012",
        "low-dose-il2-sle-case-humrich-2015",
    ]
    links = {
        f.seed.id: [(x.registry, x.id, x.confidence, x.source) for x in f.seed.links] for f in files
    }
    assert links["il2-rapamycin-ss-nct05605665"] == [("ctgov", "NCT05605665", 1.0, "document")]
    assert sum(map(len, links.values())) == 1


def test_every_project_seed_points_at_its_document_in_the_test_data() -> None:
    root = SEEDS.parent
    assert all((root / f.seed.document).is_file() for f in load_seed_dir(SEEDS))


def test_a_minimal_seed_needs_only_an_id_and_a_title() -> None:
    seed = parse_seed(MINIMAL, "x.toml")
    assert (seed.id, seed.title, seed.kind, seed.links) == ("a-seed", "A study", "paper", ())


def test_an_identifier_in_a_link_is_normalised() -> None:
    text = MINIMAL + (
        '[[links]]\nregistry = "ctgov"\nid = "nct05605665"\nconfidence = 1.0\nsource = "document"\n'
    )
    assert parse_seed(text, "x.toml").links[0].id == "NCT05605665"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "foo = 1\n", "x.toml: foo: unknown key"),
        (MINIMAL + "[design]\nphases = ['PHASE9']\n", "x.toml: design.phases[0]: Input should be"),
        ('title = "A study"\n', "x.toml: id: required key is missing"),
        ('id = "Not An Id"\ntitle = "T"\n', "x.toml: id: 'Not An Id' is not a seed id"),
        (
            MINIMAL + "[enrollment]\ncount = -3\n",
            "x.toml: enrollment.count: Input should be greater",
        ),
        (
            MINIMAL + '[[links]]\nregistry = "ctgov"\nid = "NCT123"\nconfidence = 1.0\n'
            'source = "document"\n',
            "x.toml: links[0].id: 'NCT123' is not a ctgov identifier",
        ),
        (
            MINIMAL
            + '[[links]]\nregistry = "who"\nid = "X"\nconfidence = 1.0\nsource = "search"\n',
            "x.toml: links[0].registry: unknown registry 'who'",
        ),
        (
            MINIMAL + '[[links]]\nregistry = "ctgov"\nid = "NCT05605665"\nconfidence = 2\n'
            'source = "search"\n',
            "x.toml: links[0].confidence: Input should be less than or equal to 1",
        ),
        ('id = "a-seed"\ntitle = \n', "x.toml: not valid TOML"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file_and_the_key(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_seed(text, "x.toml")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_two_files_with_the_same_id_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", MINIMAL)
    write(tmp_path, "b.toml", MINIMAL)
    with pytest.raises(InputError, match=r"b.toml: id: 'a-seed' is already the id of .*a.toml"):
        load_seed_dir(tmp_path)


def test_a_directory_without_seed_files_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "# not a seed")
    with pytest.raises(InputError, match="no seed files"):
        load_seed_dir(tmp_path)


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a directory of seed files"):
        load_seed_dir(tmp_path / "nope")


@pytest.mark.parametrize("path", sorted(SEEDS.glob("*.toml")), ids=lambda p: p.stem)
def test_a_seed_written_as_toml_reads_back_the_same(path: Path) -> None:
    seed = parse_seed(path.read_text(), path.name)
    assert parse_seed(seed_toml(seed, comments=["a comment"]), "again.toml") == seed


@given(
    st.dictionaries(
        st.text("abcxyz_-", min_size=1, max_size=8),
        st.one_of(
            st.text(max_size=30),
            st.integers(-(2**40), 2**40),
            st.booleans(),
            st.lists(st.text(max_size=10), max_size=4),
        ),
        max_size=6,
    )
)
def test_any_flat_table_of_strings_numbers_and_lists_reads_back(data: dict[str, object]) -> None:
    kept = {k: v for k, v in data.items() if v not in ("", [])}
    assert tomllib.loads(dumps(data)) == kept


def test_nested_tables_and_arrays_of_tables_read_back() -> None:
    data = {
        "id": "x",
        "design": {"phases": ["PHASE1"], "arms": [{"label": "A"}, {"label": 'B "q"'}]},
        "links": [{"registry": "ctgov", "confidence": 0.5}],
        "text": "tab\there\nnew line ß \x7f",
    }
    assert tomllib.loads(dumps(data)) == data


def test_the_model_refuses_unknown_keys_at_every_level() -> None:
    with pytest.raises(ValueError, match="Extra inputs"):
        Seed.model_validate({"id": "abc", "title": "t", "design": {"phasez": []}})
