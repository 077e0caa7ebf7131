# Registered by service/cli.py with `watch.add_command(query)`; kept apart (and free of imports
# from service.cli) so that the two modules never import each other. Heavy modules are
# imported inside the commands: `trialwatch --help` must stay fast.
"""``trialwatch watch query``: saved searches that bring matching records onto the watch list."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from service.app import App

__all__ = ["query"]

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def _app(ctx: click.Context) -> App:
    from service.app import App

    app = ctx.find_object(App)
    assert app is not None, "the query group runs under the trialwatch group"
    return app


@click.group()
def query() -> None:
    """Saved searches: every record matching one is watched (tag query:NAME)."""


@query.command("add")
@click.argument("name")
@click.option("--cond", help="Condition or disease (query.cond).")
@click.option("--intr", help="Intervention or treatment (query.intr).")
@click.option("--term", help="Any words, anywhere in the record (query.term).")
@click.option("--spons", help="Sponsor or collaborator (query.spons).")
@click.option("--advanced", metavar="ESSIE", help="An Essie expression (filter.advanced).")
@json_option
@click.pass_context
def query_add(
    ctx: click.Context,
    name: str,
    cond: str | None,
    intr: str | None,
    term: str | None,
    spons: str | None,
    advanced: str | None,
    as_json: bool,
) -> None:
    """Save a search; each sync then watches the records it newly matches.

    Refused when it matches more than [ctgov] max_query_matches records (5,000).
    """
    from service import views
    from service.searches import check_name, search_params

    check_name(name)
    params = search_params(
        {"cond": cond, "intr": intr, "term": term, "spons": spons, "advanced": advanced}
    )
    total = _app(ctx).monitor.searches.add(name, params)
    if as_json:
        views.print_json({"name": name, "params": params, "matches": total})
        return
    matching = "record matches" if total == 1 else "records match"
    views.echo(f"saved search {name!r}: {total:,} {matching} now")
    them = "it" if total == 1 else "them"
    views.echo(f"Next: `trialwatch sync` watches {them} (tag query:{name}).")


@query.command("list")
@json_option
@click.pass_context
def query_list(ctx: click.Context, as_json: bool) -> None:
    """The saved searches, their criteria and how many records they match."""
    from service import views

    searches = _app(ctx).store.list_searches()
    if as_json:
        views.print_json([s.to_json() for s in searches])
        return
    if not searches:
        views.echo("no saved searches (add one: trialwatch watch query add NAME --cond TEXT)")
    for s in searches:
        criteria = ", ".join(f"{k}={v!r}" for k, v in s.params.items())
        refreshed = views.when(s.refreshed_at)
        matched = views.plural(len(s.matches), "record")
        views.echo(f"{s.name}: {criteria}; {matched} matched; refreshed {refreshed}")


@query.command("remove")
@click.argument("name")
@json_option
@click.pass_context
def query_remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Forget a saved search (the records it brought in stay watched)."""
    from service import views
    from service.errors import InputError

    if not _app(ctx).store.remove_search(name):
        raise InputError(f"no saved search named {name!r} (see `trialwatch watch query list`)")
    if as_json:
        views.print_json({"name": name, "removed": True})
    else:
        views.echo(f"saved search {name!r} removed; its records stay watched")
