"""The seed modules keep the design's rules: extraction, ranking and comparison stay pure, and
only the service layer touches the store or the registry client."""

from __future__ import annotations

import pytest
from test_architecture import IMPURE_MODULES, PACKAGE, imports_of

PURE = [
    "seeds.compare",
    "seeds.evidence",
    "seeds.extract",
    "seeds.extract_design",
    "seeds.extract_sponsor",
    "seeds.extract_treatment",
    "seeds.model",
    "seeds.phases",
    "seeds.places",
    "seeds.registry_page",
    "seeds.related",
    "seeds.synonyms",
    "seeds.toml",
]
# what each may import from the package
ALLOWED: dict[str, set[str]] = {
    # the catalog says which registries keep their end points as one text (pure data)
    "seeds.compare": {
        "diff",
        "errors",
        "models",
        "registry.catalog",
        "seeds.model",
        "seeds.phases",
        "seeds.synonyms",
    },
    "seeds.evidence": {"diff", "models", "seeds.model", "seeds.phases", "seeds.synonyms"},
    "seeds.phases": set(),
    "seeds.related": {"seeds.evidence", "seeds.model"},
    "seeds.extract": {
        "ids",
        "seeds.extract_design",
        "seeds.extract_sponsor",
        "seeds.extract_treatment",
        "seeds.model",
        "seeds.registry_page",
        "text",
    },
    "seeds.extract_design": {"seeds.model", "seeds.registry_page", "text"},
    "seeds.extract_sponsor": {"seeds.model", "seeds.places", "seeds.registry_page"},
    "seeds.extract_treatment": {
        "seeds.extract_design",
        "seeds.model",
        "seeds.registry_page",
        "seeds.synonyms",
        "text",
    },
    "seeds.model": {"errors", "ids"},
    "seeds.places": set(),
    "seeds.registry_page": {"seeds.model"},
    "seeds.synonyms": set(),
    "seeds.toml": set(),
    "seeds.files": {"errors", "safeload", "seeds", "seeds.model"},
    # the other registries only through the RegistrySearch protocol (their search modules
    # are chosen by key at run time, as App.source chooses their clients)
    "seeds.link": {
        "errors",
        "models",
        "registry.ctgov_facts",
        "registry.ctgov_fields",
        "registry.ctgov_normalise",
        "seeds.evidence",
        "seeds.model",
        "seeds.synonyms",
    },
    "seeds.service": {
        "errors",
        "ids",
        "models",
        "seeds.compare",
        "seeds.evidence",
        "seeds.extract",
        "seeds.files",
        "seeds.link",
        "seeds.model",
        "seeds.related",
        "store",
    },
    "cli_seeds": {"__init__", "app", "seeds", "views"},
}


@pytest.mark.parametrize("module", PURE)
def test_extraction_ranking_and_comparison_do_no_io(module: str) -> None:
    _, outside = imports_of(module)
    assert not outside & (IMPURE_MODULES | {"pathlib", "httpx"}), module
    text = (PACKAGE / (module.replace(".", "/") + ".py")).read_text()
    assert "datetime.now" not in text and ".read_text(" not in text and " open(" not in text


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_a_seed_module_imports_only_what_it_needs(module: str) -> None:
    inside, _ = imports_of(module)
    assert inside <= ALLOWED[module], f"{module} imports {sorted(inside - ALLOWED[module])}"
