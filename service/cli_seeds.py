# Registered by service/cli.py with `cli.add_command(seeds)`; kept apart (and free of imports
# from service.cli) so that the two modules never import each other.
"""``trialwatch seeds``: seed studies, the documents trialwatch starts from.

Thin commands over ``service.seeds.service``: parse, call one function, print a table or,
with ``--json``, one JSON document. Errors are ``TrialwatchError``s, which the top-level group
turns into one line on stderr and the exit code (2 for bad input: nothing written).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # annotations only: the commands import these when they run (start-up time)
    from service.app import App
    from service.seeds import service as seeds_service

__all__ = ["seeds"]

DEFAULT_DIR = Path("seeds")

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def _app(ctx: click.Context) -> App:
    from service.app import App

    app = ctx.find_object(App)
    assert app is not None, "the seeds group runs under the trialwatch group"
    return app


@click.group()
def seeds() -> None:
    """Seed studies: the documents trialwatch starts from, and their registrations."""


@seeds.command("load")
@click.argument("directory", required=False, type=click.Path(path_type=Path), metavar="[DIR]")
@json_option
@click.pass_context
def seeds_load(ctx: click.Context, directory: Path | None, as_json: bool) -> None:
    """Load seed files (DIR/*.toml, default seeds/) and watch their confident registrations."""
    from service import views
    from service.seeds import service as seeds_service

    app = _app(ctx)
    report = seeds_service.load_seeds(app.store, directory or DEFAULT_DIR, app.clock())
    for warning in report.draft_warnings():
        views.echo(f"warning: {warning}", err=True)
    if as_json:
        views.print_json(report.to_json())
        return
    for item in report.to_json():
        watched = (
            f"watching {', '.join(item['watched'])}" if item["watched"] else "nothing to watch"
        )
        views.echo(f"{item['seed']}: {item['result']}; {watched}")
        for skipped in item["not_watched"]:
            views.echo(f"  not watched: {skipped}")
    counts = {v: list(report.verdicts.values()).count(v) for v in ("added", "updated", "unchanged")}
    views.echo(
        f"{len(report.verdicts)} seed studies: "
        + ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    )


@seeds.command("import")
@click.argument("documents", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write DIR/<id>.toml per document instead of printing the drafts.",
)
@click.option("--force", is_flag=True, help="Overwrite seed files that already exist.")
def seeds_import(documents: tuple[Path, ...], into: Path | None, force: bool) -> None:
    """Draft seed files from raw documents (papers, case reports, registry pages as text)."""
    from service import views
    from service.seeds import service as seeds_service

    drafts = seeds_service.draft_documents(documents, into, force=force)
    if into is None:
        for line in "\n".join(d.text for d in drafts).splitlines():
            views.echo(line)
        return
    seeds_service.write_drafts(drafts)
    for item in drafts:
        missing = f" (not found: {', '.join(item.draft.missing)})" if item.draft.missing else ""
        views.echo(f"{item.document} → {item.target}{missing}")


@seeds.command("list")
@json_option
@click.pass_context
def seeds_list(ctx: click.Context, as_json: bool) -> None:
    """Seed studies, their registry links and how confident each link is."""
    from service import views
    from service.seeds import service as seeds_service

    listed = seeds_service.list_seeds(_app(ctx).store)
    if as_json:
        views.print_json(listed)
        return
    views.show(views.seeds_table(listed))


@seeds.command("link")
@click.argument("seed_ids", nargs=-1, metavar="[SEED...]")
@click.option("--accept", metavar="ID", help="Record a person's choice of registration for SEED.")
@click.option(
    "--related",
    is_flag=True,
    help="With --accept: ID is a related registration (a later trial), not the seed's own.",
)
@click.option(
    "--again",
    is_flag=True,
    help="Search for seeds already linked too (to list their related registrations).",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --accept: accept a registration the evidence rules out (another drug, "
    "started after the publication).",
)
@json_option
@click.pass_context
def seeds_link(
    ctx: click.Context,
    seed_ids: tuple[str, ...],
    accept: str | None,
    related: bool,
    again: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Rank candidate registrations (in every registry) of seeds without a confident one of
    their own, and list their related registrations. What it starts watching is fetched at
    once, so `seeds compare` can follow."""
    from service import views
    from service.seeds import service as seeds_service

    app = _app(ctx)
    results = seeds_service.link_seeds(
        app.store,
        _LazyClient(app),
        seed_ids,
        app.clock(),
        accept=accept,
        relation="related" if related else "own",
        registries=[_LazySearch(app, key) for key in SEARCHED_REGISTRIES],
        again=again,
        force=force,
    )
    if as_json:
        listed = list(results)
        shown = [r.to_json() for r in listed]
        for note in (n for r in shown for n in r.get("notes", ())):
            views.echo(f"note: {note}", err=True)
        for line in _fetch_linked(app, listed):
            views.echo(f"note: {line}", err=True)
        views.print_json(shown)
        return
    for result in results:  # each seed as soon as it is decided
        views.echo(f"{result.seed}:")
        _print_candidates(result)
        for note in result.notes:
            views.echo(f"  note: {note}")
        if result.linked:
            views.echo(f"  now watching {result.linked} (tag seed:{result.seed})")
        for line in _fetch_linked(app, [result]):
            views.echo(f"  {line}")


def _fetch_linked(app: App, results: list[seeds_service.LinkResult]) -> list[str]:
    """Fetch (one sync cycle of just these) the registrations the run started watching
    that are not stored yet, so `seeds compare` has something to compare with; a line that
    says what happened."""
    targets: dict[str, list[str]] = {}
    for result in results:
        registry, study_id = result.linked_registry, result.linked
        if study_id and app.store.latest_snapshot(registry, study_id) is None:
            targets.setdefault(registry, []).append(study_id)
    if not targets:
        return []
    ids = [i for ids in targets.values() for i in ids]
    report = app.sync(targets)
    failed = {e["study_id"]: e["error"] for e in report.errors}
    lines = [f"fetched {i}: `trialwatch seeds compare` can use it" for i in ids if i not in failed]
    lines += [f"not fetched: {error} (`trialwatch sync` tries again)" for error in failed.values()]
    return lines


def _print_candidates(result: seeds_service.LinkResult) -> None:
    from service import views

    own = [c for c in result.candidates if c.get("relation", "own") == "own"]
    related = [c for c in result.candidates if c.get("relation") == "related"]
    if not own:
        views.echo("  no candidate registrations found: no confident match")
    elif result.searched and not own[0]["confident"]:
        views.echo("  no confident match; best candidates:")
    for item in own[:5]:
        verdict = "confident" if item["confident"] else "unsure"
        _print_candidate(item, verdict)
    if related:
        views.echo("  related registrations (later trials of the same sponsor or centre):")
    for item in related[:5]:
        _print_candidate(item, "related")


def _print_candidate(item: dict[str, Any], verdict: str) -> None:
    """One candidate: its id, score, verdict and registry, then its reasons."""
    from service import views

    views.echo(f"  {item['study_id']}  {item['score']:.2f}  {verdict}  {item['registry']}")
    for reason in item["reasons"]:
        views.echo(f"      {reason}")


# the registries seed linking searches beside ClinicalTrials.gov (each has a search module)
SEARCHED_REGISTRIES = ("euctr", "ctis", "isrctn")
# Linking is interactive: a registry that does not answer after two tries is reported and the
# others still count, rather than a person waiting through the sync's patient retries.
_SEARCH_ATTEMPTS = 2
_SEARCH_RETRY_MAX_SECONDS = 5.0


class _LazyClient:
    """Opens the registry client only when a search is actually made."""

    def __init__(self, app: App) -> None:
        self._app = app

    def search(self, params: dict[str, str], *, limit: int = 100) -> list[dict[str, object]]:
        return self._app.ctgov.search(params, limit=limit)


class _LazySearch:
    """One registry's search (``service/registry/<key>/search.py``), built when first asked:
    a seed already linked asks no registry, and opens no connection."""

    def __init__(self, app: App, key: str) -> None:
        self._app = app
        self.registry = key
        self.name = key.upper()  # as the registry's client names it in its errors ("EUCTR")
        self._search: Any = None

    def _built(self) -> Any:
        if self._search is None:
            import importlib

            module = importlib.import_module(f"service.registry.{self.registry}.search")
            settings = getattr(self._app.settings, self.registry)
            patience = {
                "max_attempts": min(settings.max_attempts, _SEARCH_ATTEMPTS),
                "retry_max_seconds": min(settings.retry_max_seconds, _SEARCH_RETRY_MAX_SECONDS),
            }
            self._search = module.build_search(
                settings.model_copy(update=patience), stop=self._app.stopping
            )
        return self._search

    def search(
        self, *, condition: str = "", drug: str = "", sponsor: str = "", limit: int = 20
    ) -> Any:
        return self._built().search(condition=condition, drug=drug, sponsor=sponsor, limit=limit)

    def fetch(self, study_id: str) -> Any:
        return self._built().fetch(study_id)


@seeds.command("compare")
@click.argument("seed_ids", nargs=-1, metavar="[SEED...]")
@json_option
@click.pass_context
def seeds_compare(ctx: click.Context, seed_ids: tuple[str, ...], as_json: bool) -> None:
    """Publication-vs-registry discrepancies (enrollment, outcomes, phase, status, dates)."""
    from service import views
    from service.seeds import service as seeds_service

    report = seeds_service.compare_seeds(_app(ctx).store, seed_ids)
    if as_json:
        for note in report.notes:
            views.echo(f"note: {note}", err=True)
        views.print_json([d.to_json() for d in report.discrepancies])
        return
    for comparison in report.comparisons:
        for line in _comparison_lines(comparison):
            views.echo(line)
    views.echo(_compare_summary(report))


def _comparison_lines(c: seeds_service.Comparison) -> list[str]:
    """One seed against one registration: what differs, and what could not be compared."""
    who = f"{c.seed} ↔ {c.study_id}" if c.study_id else c.seed
    if c.not_compared:
        return [f"{who}: not compared: {c.study_id + ' ' if c.study_id else ''}{c.not_compared}"]
    found = len(c.discrepancies)
    head = f"{found} discrepanc{'y' if found == 1 else 'ies'}" if found else "no discrepancies"
    if not found and not c.checked:  # no fact both sides give: nothing to claim either way
        head = "not compared: no fact is given by both the document and the record"
    lines = [f"{who}: {head}" + (f" (compared: {', '.join(c.checked)})" if c.checked else "")]
    lines += [f"  {d.severity:<6}  {d.summary}" for d in c.discrepancies]
    lines += [f"  not compared: {why}" for why in c.unchecked]
    return lines


def _compare_summary(report: seeds_service.CompareReport) -> str:
    """The last line: never "no discrepancies" where nothing could be compared."""
    compared = [c for c in report.comparisons if c.checked or c.discrepancies]
    skipped = len(report.comparisons) - len(compared)
    if not compared:
        seeds = len({c.seed for c in report.comparisons})
        return (
            f"nothing could be compared: none of the {seeds} seed(s) has a confident "
            "registration that has been synced (see above)"
        )
    found = len(report.discrepancies)
    line = f"{found} discrepanc{'y' if found == 1 else 'ies'} in {len(compared)} comparison(s)"
    return line + (f"; {skipped} could not be compared (see above)" if skipped else "")
