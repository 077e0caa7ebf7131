"""What the ``trialwatch seeds`` commands do, over the store and the registry clients.

Each function validates everything first and writes after, so bad input writes nothing.
Links to the registries trialwatch fetches (``WATCHED_REGISTRIES``) are watched when they are
confident or person-accepted, with the tag ``seed:<seed id>``.

A link is the seed's own registration or a related one (``service.seeds.related``: a later
trial of the same sponsor or centre). Both are watched once followed; only the own
registration is compared with the document (``seeds compare``, the discrepancies a sync
introduces): a follow-up trial differs from its pilot by design, not by discrepancy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from service.errors import InputError, RegistryError
from service.ids import parse_registry_id
from service.models import Change, Snapshot
from service.seeds.compare import Discrepancy, compare, coverage, seed_discrepancy_changes
from service.seeds.evidence import Ranked, ruled_out
from service.seeds.extract import Draft, extract
from service.seeds.files import load_seed_dir, seed_toml
from service.seeds.link import RegistrySearch, Searcher, fetch_candidate, find_candidates
from service.seeds.model import CONFIDENT, RegistryLink, Seed
from service.seeds.related import split
from service.store import SeedData, SeedLinkData, Store, StoredSeed

__all__ = [
    "RELATIONS",
    "WATCHED_REGISTRIES",
    "CompareReport",
    "Comparison",
    "DraftFile",
    "LinkResult",
    "LoadReport",
    "compare_seeds",
    "discrepancy_changes",
    "draft_documents",
    "link_seeds",
    "linked_discrepancy_changes",
    "list_seeds",
    "load_seeds",
    "seed_of",
    "write_drafts",
]

# the registries trialwatch can fetch (service.registry.catalog.WATCHED)
WATCHED_REGISTRIES = ("ctgov", "euctr", "ctis", "isrctn")
# a link is the seed's own registration or a related one (a later trial of its sponsor)
RELATIONS = ("own", "related")


# ---- load ----------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    verdicts: dict[str, str] = field(default_factory=dict)  # seed id -> added|updated|unchanged
    watched: dict[str, list[str]] = field(default_factory=dict)  # seed id -> registry ids
    not_watched: dict[str, list[str]] = field(default_factory=dict)  # seed id -> "id (why)"
    # seed files that are still drafts (``missing`` left in): path -> what the draft lacks
    drafts: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def draft_warnings(self) -> list[str]:
        """A line per seed file still a draft: loaded, but not checked against its document."""
        return [
            f"{path}: still a draft (missing: {', '.join(missing)}): check it against the "
            "document, then delete its `missing` list"
            for path, missing in self.drafts.items()
        ]

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "seed": seed_id,
                "result": verdict,
                "watched": self.watched.get(seed_id, []),
                "not_watched": self.not_watched.get(seed_id, []),
            }
            for seed_id, verdict in self.verdicts.items()
        ]


def load_seeds(store: Store, directory: Path, now: datetime) -> LoadReport:
    """Validate every seed file in ``directory``, then store them and watch their links."""
    files = load_seed_dir(directory)
    data = [_seed_data(f.seed, str(f.path)) for f in files]
    report = LoadReport(verdicts=store.save_seeds(data, now))
    report.drafts = {str(f.path): f.seed.missing for f in files if f.seed.missing}
    for stored in store.list_seeds([f.seed.id for f in files]):
        _watch_links(store, stored, now, report)
    return report


def _seed_data(seed: Seed, source: str) -> SeedData:
    return SeedData(
        seed_id=seed.id,
        title=seed.title,
        kind=seed.kind,
        document=seed.model_dump_json(),
        content_hash=seed.content_hash(),
        source=source,
        links=tuple(
            SeedLinkData(
                registry=link.registry,
                study_id=link.id,
                confidence=link.confidence,
                source=link.source,
                reasons=(link.note,) if link.note else (),
                from_file=True,
            )
            for link in seed.links
        ),
    )


def _watch_links(store: Store, stored: StoredSeed, now: datetime, report: LoadReport) -> None:
    watched: dict[str, list[str]] = {}
    skipped: list[str] = []
    for link in stored.links:
        why = _why_not_watched(link)
        if why:
            skipped.append(f"{link.registry}:{link.study_id} ({why})")
        else:
            watched.setdefault(link.registry, []).append(link.study_id)
    for registry, ids in watched.items():
        store.add_watches(registry, ids, [f"seed:{stored.seed_id}"], now)
    report.watched[stored.seed_id] = [i for ids in watched.values() for i in ids]
    report.not_watched[stored.seed_id] = skipped


def _why_not_watched(link: SeedLinkData) -> str:
    if link.registry not in WATCHED_REGISTRIES:
        return "stored; trialwatch cannot fetch this registry yet"
    if link.source != "person" and link.confidence < CONFIDENT:
        return f"confidence {link.confidence:.2f} is below {CONFIDENT}; accept it to watch it"
    return ""


def _followed(link: SeedLinkData) -> bool:
    return not _why_not_watched(link)


def _compared(link: SeedLinkData) -> bool:
    """Followed and the seed's own registration: a related trial is not the study the
    document reports, so it is watched but never compared with it."""
    return _followed(link) and link.relation == "own"


# ---- list ----------------------------------------------------------------------------------------


def list_seeds(store: Store) -> list[dict[str, Any]]:
    """Every stored seed with its links (strongest first) as JSON-ready dicts."""
    return [_seed_json(stored) for stored in store.list_seeds()]


def _seed_json(stored: StoredSeed) -> dict[str, Any]:
    seed = seed_of(stored)
    return {
        "seed": stored.seed_id,
        "title": stored.title,
        "kind": stored.kind,
        "year": seed.citation.year,
        "source": stored.source,
        "links": [
            {
                "registry": link.registry,
                "study_id": link.study_id,
                "confidence": round(link.confidence, 3),
                "source": link.source,
                "confident": link.source == "person" or link.confidence >= CONFIDENT,
                "watched": _followed(link),
                "reasons": [*_relation_words(link), *link.reasons],
                "relation": link.relation,
            }
            for link in _own_first(stored.links)
        ],
    }


def _relation_words(link: SeedLinkData) -> list[str]:
    # said in the reasons too: the web page shows a link's reasons, not its fields
    if link.relation == "related":
        return ["a related registration (a later trial), not the seed's own"]
    return []


def seed_of(stored: StoredSeed) -> Seed:
    """The stored seed with every link it has now (file, search and person links)."""
    seed = Seed.model_validate_json(stored.document)
    links = tuple(
        RegistryLink(
            registry=link.registry,
            id=link.study_id,
            confidence=link.confidence,
            source=link.source,  # type: ignore[arg-type]
            note="; ".join(link.reasons),
        )
        for link in stored.links
    )
    return seed.model_copy(update={"links": links})


def _stored(store: Store, seed_ids: Sequence[str]) -> list[StoredSeed]:
    found = store.list_seeds(list(seed_ids) if seed_ids else None)
    unknown = sorted(set(seed_ids) - {s.seed_id for s in found})
    if unknown:
        raise InputError(
            f"no seed study {', '.join(unknown)} (see `trialwatch seeds list`; "
            "load seed files with `trialwatch seeds load`)"
        )
    return found


# ---- link ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkResult:
    seed: str
    candidates: list[dict[str, Any]]  # the own registration's candidates, then related ones
    searched: bool
    linked: str = ""  # the study id now watched because of this run, if any
    notes: tuple[str, ...] = ()  # a line for each registry that did not answer
    linked_registry: str = ""  # the registry of ``linked``

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"seed": self.seed, "candidates": self.candidates}
        if self.notes:
            shown["notes"] = list(self.notes)
        return shown


def link_seeds(
    store: Store,
    client: Searcher | None,
    seed_ids: Sequence[str],
    now: datetime,
    *,
    accept: str | None = None,
    relation: str = "own",
    registries: Sequence[RegistrySearch] = (),
    again: bool = False,
    force: bool = False,
) -> Iterator[LinkResult]:
    """Rank candidate registrations of seeds without a confident own registration, and list
    their related registrations (or record ``accept`` as the seed's ``relation``).

    ``client`` searches ClinicalTrials.gov, ``registries`` the others; ``again`` searches
    for seeds already linked too (to list their related registrations). An ``accept``ed own
    registration that the evidence rules out (see ``evidence.ruled_out``) is refused unless
    ``force``: a person may know better, but should say so knowingly.

    The arguments are checked now; the results come one seed at a time, each once it is
    decided and recorded, so that a registry failing half-way (or absent: see the README's
    offline notes) still leaves the seeds before it linked, and shown.
    """
    if relation not in RELATIONS:
        raise InputError(f"unknown relation {relation!r} (one of: {', '.join(RELATIONS)})")
    if accept is not None:
        checker = _RuleOut(client, registries) if relation == "own" and not force else None
        return iter([_accept(store, seed_ids, accept, now, relation, checker)])
    if relation != "own":
        raise InputError("--related goes with --accept ID (the related registration to record)")
    return _link_each(store, client, registries, _stored(store, seed_ids), now, again=again)


def _link_each(
    store: Store,
    client: Searcher | None,
    registries: Sequence[RegistrySearch],
    seeds: list[StoredSeed],
    now: datetime,
    *,
    again: bool,
) -> Iterator[LinkResult]:
    down: dict[str, str] = {}  # registries that failed in this run: not asked again
    for stored in seeds:
        own = [link for link in stored.links if _confident(link) and link.relation == "own"]
        if own and not again:
            shown = [link for link in stored.links if _confident(link)]
            yield LinkResult(stored.seed_id, [_link_json(x) for x in _own_first(shown)], False)
        else:
            yield _search(store, client, registries, stored, now, down)


def _own_first(links: Sequence[SeedLinkData]) -> list[SeedLinkData]:
    return sorted(links, key=lambda link: link.relation != "own")  # stable: strongest first


def _confident(link: SeedLinkData) -> bool:
    return link.source == "person" or link.confidence >= CONFIDENT


def _link_json(link: SeedLinkData) -> dict[str, Any]:
    reasons = {
        "document": "identifier written in the document",
        "person": "accepted by a person",
        "search": "found by search",
    }
    return {
        "registry": link.registry,
        "study_id": link.study_id,
        "score": round(link.confidence, 3),
        "confident": True,
        "reasons": [reasons[link.source], *link.reasons],
        "relation": link.relation,
    }


def _search(
    store: Store,
    client: Searcher | None,
    registries: Sequence[RegistrySearch],
    stored: StoredSeed,
    now: datetime,
    down: dict[str, str],
) -> LinkResult:
    seed = seed_of(stored)
    found = find_candidates(seed, client, registries, skip=dict(down))
    down.update(found.failed)
    own = [x for x in stored.links if _confident(x) and x.relation == "own"]
    parts = split(
        seed,
        found.ranked,
        own_ids=[(x.registry, x.study_id) for x in own],
        own_start=_own_start(store, own),
        related_ids=[(x.registry, x.study_id) for x in stored.links if x.relation == "related"],
    )
    linked = registry = ""
    top = parts.own[0] if parts.own else None
    if top is not None and top.confident and not own:
        _record(store, stored.seed_id, _search_link(top), now)
        linked, registry = top.candidate.study_id, top.candidate.registry
    candidates = [{**r.to_json(), "relation": "own"} for r in parts.own[:10]]
    candidates += [r.to_json() for r in parts.related[:10]]
    return LinkResult(stored.seed_id, candidates, True, linked, found.notes, registry)


def _own_start(store: Store, own: Sequence[SeedLinkData]) -> str:
    """When the seed's own registration began, from its stored record (when synced)."""
    for link in own:
        snapshot = store.latest_snapshot(link.registry, link.study_id)
        if snapshot is not None and snapshot.start_date.date:
            return snapshot.start_date.date
    return ""


def _search_link(top: Ranked) -> SeedLinkData:
    return SeedLinkData(
        registry=top.candidate.registry,
        study_id=top.candidate.study_id,
        confidence=round(top.score, 3),
        source="search",
        reasons=top.reasons,
    )


@dataclass(frozen=True)
class _RuleOut:
    """Weighs the registration a person accepts as a seed's own, as a search hit is."""

    client: Searcher | None
    registries: Sequence[RegistrySearch]

    def why(self, stored: StoredSeed, registry: str, study_id: str) -> tuple[str, str]:
        """(why the record is ruled out, or ""; a note when it could not be weighed)."""
        try:
            candidate = fetch_candidate(registry, study_id, self.client, self.registries)
        except RegistryError as exc:
            return "", f"not weighed against the document: {exc}"
        if candidate is None:
            return "", f"not weighed against the document: the registry does not serve {study_id}"
        return ruled_out(seed_of(stored), candidate), ""


def _accept(
    store: Store,
    seed_ids: Sequence[str],
    accept: str,
    now: datetime,
    relation: str,
    checker: _RuleOut | None,
) -> LinkResult:
    if len(seed_ids) != 1:
        raise InputError("--accept needs exactly one SEED (the seed study the id belongs to)")
    chosen = parse_registry_id(accept)
    stored = _stored(store, seed_ids)[0]
    notes: tuple[str, ...] = ()
    if checker is not None and chosen.registry in WATCHED_REGISTRIES:
        veto, note = checker.why(stored, chosen.registry, chosen.study_id)
        if veto:
            raise InputError(
                f"{chosen.study_id} is ruled out as the registration of {stored.seed_id}: "
                f"{veto} (accept it anyway with --force)"
            )
        notes = (note,) if note else ()
    link = SeedLinkData(
        registry=chosen.registry,
        study_id=chosen.study_id,
        confidence=1.0,
        source="person",
        relation=relation,
    )
    _record(store, stored.seed_id, link, now)
    watched = chosen.registry in WATCHED_REGISTRIES
    linked = chosen.study_id if watched else ""
    return LinkResult(
        stored.seed_id, [_link_json(link)], False, linked, notes, chosen.registry if watched else ""
    )


def _record(store: Store, seed_id: str, link: SeedLinkData, now: datetime) -> None:
    store.add_seed_link(seed_id, link, now)
    if link.registry in WATCHED_REGISTRIES:
        store.add_watches(link.registry, [link.study_id], [f"seed:{seed_id}"], now)


# ---- compare -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One seed against one followed registration, or why it could not be compared."""

    seed: str
    study_id: str = ""  # "" when the seed follows no registration
    discrepancies: tuple[Discrepancy, ...] = ()
    checked: tuple[str, ...] = ()  # the facts compared
    unchecked: tuple[str, ...] = ()  # "fact (why not)" for the facts one side does not give
    not_compared: str = ""  # why nothing at all was compared (no link, never synced)


@dataclass
class CompareReport:
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def discrepancies(self) -> list[Discrepancy]:
        return [d for c in self.comparisons for d in c.discrepancies]

    @property
    def notes(self) -> list[str]:
        """The seeds and links that could not be compared, and why."""
        return [
            f"{c.seed}: {c.study_id + ' ' if c.study_id else ''}{c.not_compared}"
            for c in self.comparisons
            if c.not_compared
        ]


def compare_seeds(store: Store, seed_ids: Sequence[str]) -> CompareReport:
    """Discrepancies of each seed against the latest stored version of its followed links."""
    report = CompareReport()
    for stored in _stored(store, seed_ids):
        report.comparisons.extend(_comparisons(store, stored))
    return report


def _comparisons(store: Store, stored: StoredSeed) -> list[Comparison]:
    followed = [link for link in stored.links if _compared(link)]
    if not followed:
        why = (
            "no confident registration of its own (rank candidates with `trialwatch seeds "
            f"link {stored.seed_id}`, or record one with `--accept ID`)"
        )
        return [Comparison(stored.seed_id, not_compared=why)]
    seed = seed_of(stored)
    found: list[Comparison] = []
    for link in followed:
        snapshot = store.latest_snapshot(link.registry, link.study_id)
        if snapshot is None:
            why = "has not been synced yet: nothing stored to compare with (run `trialwatch sync`)"
            found.append(Comparison(stored.seed_id, link.study_id, not_compared=why))
            continue
        checked, unchecked = coverage(seed, snapshot)
        discrepancies = tuple(compare(seed, snapshot))
        found.append(Comparison(stored.seed_id, link.study_id, discrepancies, checked, unchecked))
    return found


def discrepancy_changes(store: Store, old: Snapshot | None, new: Snapshot) -> list[Change]:
    """After a sync stored ``new``: the seed discrepancies that version introduced, as changes.

    Only seeds that follow the record as their own registration (a confident or accepted
    link) are compared.
    """
    return linked_discrepancy_changes(store.seeds_linked_to(new.registry, new.study_id), old, new)


def linked_discrepancy_changes(
    linked: Sequence[StoredSeed], old: Snapshot | None, new: Snapshot
) -> list[Change]:
    """``discrepancy_changes`` with the seeds that link to ``new`` already read."""
    changes: list[Change] = []
    for stored in linked:
        link = next(
            (x for x in stored.links if (x.registry, x.study_id) == (new.registry, new.study_id)),
            None,
        )
        if link is not None and _compared(link):
            changes.extend(seed_discrepancy_changes(seed_of(stored), old, new))
    return changes


# ---- import --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DraftFile:
    document: Path
    draft: Draft
    text: str  # the TOML to write
    target: Path | None  # where it goes (None: stdout)


def draft_documents(
    documents: Iterable[Path], into: Path | None, *, force: bool = False
) -> list[DraftFile]:
    """Draft a seed file per document; refuse (writing nothing) to overwrite without ``force``."""
    drafts: list[DraftFile] = []
    for path in documents:
        text = _read_document(path)
        draft = extract(text, name=path.name, source=_document_source(path))
        target = into / f"{draft.seed.id}.toml" if into is not None else None
        drafts.append(
            DraftFile(path, draft, seed_toml(draft.seed, comments=_header(path, draft)), target)
        )
    _check_targets(drafts, force=force)
    return drafts


def _document_source(path: Path) -> str:
    """Where a draft says its document is: the path as given (a person finds it again from
    where they ran the import); an absolute path inside the working directory is made
    relative to it, so that the seed file stays valid in a clone elsewhere."""
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)
    return str(path)


def write_drafts(drafts: Sequence[DraftFile]) -> None:
    for item in drafts:
        if item.target is not None:
            item.target.parent.mkdir(parents=True, exist_ok=True)
            item.target.write_text(item.text, encoding="utf-8")


def _read_document(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a document") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None


def _header(path: Path, draft: Draft) -> list[str]:
    lines = [
        f"Draft seed from {_printable(_document_source(path))}, written by `trialwatch seeds "
        "import`.",
        "Check every value against the document, put the summary in your own words, then",
        "`trialwatch seeds load`. The format is described in seeds/README.md.",
    ]
    if draft.missing:
        lines.append(f"Not found in the document: {', '.join(draft.missing)}.")
    return lines


def _printable(text: str) -> str:
    """``text`` for a one-line comment: a file name with a newline must not start a TOML line
    of its own (it could set any key of the draft)."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


def _check_targets(drafts: Sequence[DraftFile], *, force: bool) -> None:
    targets = [d.target for d in drafts if d.target is not None]
    repeated = sorted({str(t) for t in targets if targets.count(t) > 1})
    if repeated:
        raise InputError(
            f"{repeated[0]}: two documents draft the same seed id; import them one by one"
        )
    if not force:
        for target in targets:
            if target.exists():
                raise InputError(f"{target}: already exists (use --force to overwrite it)")
