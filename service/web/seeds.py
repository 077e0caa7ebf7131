"""Seed studies: the page ``/seeds`` and its JSON twin ``/api/seeds``.

Each seed (the document trialwatch starts from) with its citation and file, every link to a
registry record with the evidence for it (how it was found, its score, whether it is confident
enough to follow, the reasons), and what ``trialwatch seeds compare`` finds between the
publication and the records it follows. Seeds are few (one file each), so the page is one
page. The JSON body is ``trialwatch seeds list --json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.seeds import service as seeds_service
from service.seeds.model import Seed
from service.web.pages import html_page, json_answer, tw

__all__ = ["ROUTES"]

HOW_FOUND = {
    "document": "identifier written in the document",
    "search": "found by a registry search",
    "person": "accepted by a person",
}


@dataclass(frozen=True)
class LinkView:
    registry: str
    study_id: str
    score: float
    how: str
    confident: bool
    watched: bool
    reasons: list[str]
    record_url: str | None  # its page here, for the records trialwatch follows


@dataclass(frozen=True)
class SeedView:
    seed_id: str
    title: str
    kind: str
    citation: str
    citation_links: list[tuple[str, str]]  # (text, url): DOI, PubMed, the document's address
    file: str
    links: list[LinkView]
    comparisons: list[seeds_service.Comparison]


def seeds_data(request: Request) -> list[SeedView]:
    store = tw(request).store
    stored = {s.seed_id: s for s in store.list_seeds()}
    listed = seeds_service.list_seeds(store)
    compared: dict[str, list[seeds_service.Comparison]] = {}
    for comparison in seeds_service.compare_seeds(store, ()).comparisons:
        compared.setdefault(comparison.seed, []).append(comparison)
    return [
        _seed_view(item, seeds_service.seed_of(stored[item["seed"]]), compared)
        for item in listed
        if item["seed"] in stored
    ]


def _seed_view(
    item: dict[str, Any], seed: Seed, compared: dict[str, list[seeds_service.Comparison]]
) -> SeedView:
    return SeedView(
        seed_id=item["seed"],
        title=item["title"],
        kind=item["kind"],
        citation=_citation(seed),
        citation_links=_citation_links(seed),
        file=item["source"],
        links=[_link_view(link) for link in item["links"]],
        comparisons=compared.get(item["seed"], []),
    )


def _link_view(link: dict[str, Any]) -> LinkView:
    followed = link["registry"] in seeds_service.WATCHED_REGISTRIES and link["watched"]
    return LinkView(
        registry=link["registry"],
        study_id=link["study_id"],
        score=link["confidence"],
        how=HOW_FOUND.get(link["source"], link["source"]),
        confident=link["confident"],
        watched=link["watched"],
        reasons=list(link["reasons"]),
        record_url=f"/studies/{quote(link['study_id'], safe='')}" if followed else None,
    )


def _citation(seed: Seed) -> str:
    cite = seed.citation
    head = ", ".join(p for p in (cite.first_author, cite.journal) if p)
    parts = [f"{head} {cite.year}" if cite.year else head]
    parts += [f"{cite.volume}:{cite.pages}" if cite.volume and cite.pages else cite.volume]
    return "; ".join(p.strip() for p in parts if p and p.strip())


def _citation_links(seed: Seed) -> list[tuple[str, str]]:
    """Where to read the document. Only http(s) addresses become links: a seed file is
    written by people and a ``javascript:`` URL in it must not become one."""
    cite = seed.citation
    found: list[tuple[str, str]] = []
    if cite.doi:
        found.append((f"doi:{cite.doi}", "https://doi.org/" + quote(cite.doi, safe="/:;()")))
    if cite.pmid:
        found.append((f"PMID {cite.pmid}", f"https://pubmed.ncbi.nlm.nih.gov/{cite.pmid}/"))
    if cite.url.lower().startswith(("https://", "http://")):
        found.append(("document", cite.url))
    return found


def seeds_page(request: Request) -> Response:
    return html_page(request, "seeds.html", title="Seed studies", seeds=seeds_data(request))


def seeds_api(request: Request) -> Response:
    return json_answer(seeds_service.list_seeds(tw(request).store))


ROUTES: list[Route] = [
    Route("/seeds", seeds_page, methods=["GET"]),
    Route("/api/seeds", seeds_api, methods=["GET"]),
]
