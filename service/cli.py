"""The ``trialwatch`` command line: a thin skin over ``App``.

Each command parses and validates its arguments first (so bad input writes nothing), calls
the app, and prints a table or, with ``--json``, one JSON document. Exit codes: 0 done, 1 done
but some studies or deliveries failed, 2 bad usage, input or settings.

Start-up is kept short: at the top this module imports only click and light modules of its own
(no settings, store, registry client, diff engine or rich), so ``--help`` and ``--version``
answer in a few hundredths of a second. Each command imports what it needs in its body; the
group builds the app (settings, then the store and clients on first use) only for commands
that use it. ``tests/test_startup_imports.py`` holds this; ``bench/startup.py`` times it.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from service import __version__
from service.cli_findings import findings
from service.cli_report import report
from service.cli_searches import query
from service.cli_seeds import seeds
from service.clock import parse_since
from service.errors import InputError, RecordInvalid, TrialwatchError, UnsafeDocument
from service.quick_exit import leave
from service.safeload import MIB, load_json, read_bounded

if TYPE_CHECKING:  # for annotations only: importing these costs most of a second
    from service.app import App
    from service.models import Snapshot, WatchInfo
    from service.store import Store

WATCHED = ("ctgov", "euctr", "ctis", "isrctn")  # service.registry.catalog.WATCHED


def parse_watch_id(text: str) -> tuple[str, str]:
    """``(registry, id)`` of a typed id (the catalog, and pydantic with it, loaded only now)."""
    from service.registry.catalog import parse_watch_id

    return parse_watch_id(text)


def parse_watch_ids(texts: tuple[str, ...]) -> list[tuple[str, str]]:
    from service.registry.catalog import parse_watch_ids

    return parse_watch_ids(texts)


PROGRESS_THRESHOLD = 20  # studies; below this a bar only flickers
MAX_INTEGER = 2**63 - 1  # ids and limits go to the store as 64-bit integers: larger ones overflow

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")

# Commands that only read the files they are given. The group reads no settings and builds no
# app for them: they use neither, and validating settings alone (the database URL goes through
# SQLAlchemy) would double the start-up of a one-study diff.
OFFLINE_COMMANDS = frozenset({"diff"})
_COLLECTOR_HELD = False  # main() holds the cyclic garbage collector off during start-up


class LazyChoice(click.Choice):
    """A ``click.Choice`` whose values are loaded when first needed (checking a value,
    drawing help), not when the command line is defined: they may live in a heavy module."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        # click.Choice.__init__ would assign ``choices``; here it is computed on first use
        self._load = load
        self.case_sensitive = True

    @cached_property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self._load())


def _change_kinds() -> tuple[str, ...]:
    from service.models import CHANGE_KINDS

    return CHANGE_KINDS


class TrialwatchGroup(click.Group):
    """Turns every ``TrialwatchError`` into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrialwatchError as exc:
            fail(str(exc), exc.exit_code)


def fail(message: str, code: int) -> NoReturn:
    from service import views

    views.echo(f"trialwatch: error: {message}", err=True)
    sys.exit(code)


def app_of(ctx: click.Context) -> App:
    from service.app import App

    app = ctx.find_object(App)
    assert app is not None
    return app


@click.group(cls=TrialwatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (default: $TRIALWATCH_CONFIG, else config/trialwatch.toml if present).",
)
@click.option("-v", "--verbose", count=True, help="More log detail on stderr (-vv for debug).")
@click.version_option(__version__, prog_name="trialwatch")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Watch clinical-trial registry records and report what changed.

    Settings come from config/trialwatch.toml (or --config) and TRIALWATCH_* variables;
    see the README.
    """
    from service.logs import configure_logging

    if ctx.invoked_subcommand in OFFLINE_COMMANDS:
        configure_logging(verbose)  # no settings: default format, and no secrets to mask
        _release_collector()
        return
    from service.app import build_app
    from service.settings import load_settings, secret_values

    settings = load_settings(config_path)
    configure_logging(verbose, settings.daemon.log_format, secret_values(settings))
    app = build_app(settings)
    ctx.obj = app
    ctx.call_on_close(app.close)
    _release_collector()


def _release_collector() -> None:
    """Start-up is over (see ``main``): the collector on, what start-up built frozen."""
    global _COLLECTOR_HELD
    if _COLLECTOR_HELD:
        _COLLECTOR_HELD = False
        gc.freeze()
        gc.enable()


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the store or migrate it to the newest schema (safe to repeat)."""
    from service import views
    from service.store import shown_url

    store = app_of(ctx).store
    counts = store.count_rows()
    views.echo(
        f"store ready at {shown_url(store.engine)}: "
        + ", ".join(f"{n} {name}" for name, n in counts.items())
    )


# ---- watch -----------------------------------------------------------------------------------


@cli.group()
def watch() -> None:
    """Choose the registry records to follow."""


@watch.command("add")
@click.argument("study_ids", nargs=-1, required=True, metavar="ID...")
@click.option(
    "--tag", "tags", multiple=True, help="A tag for subscriptions (tag:NAME); repeatable."
)
@click.option(
    "--linked",
    is_flag=True,
    help="Watch each record's trial: every registration it names or that names it, in any "
    "registry, now and as syncs find them (tag: linked).",
)
@json_option
@click.pass_context
def watch_add(
    ctx: click.Context,
    study_ids: tuple[str, ...],
    tags: tuple[str, ...],
    linked: bool,
    as_json: bool,
) -> None:
    """Watch records by id, in any registry: NCT05605665 (ClinicalTrials.gov), 2014-003140-12
    (EUCTR; EUCTR2014-003140-12 and 2014-003140-12-NL too), 2023-505613-24-00 (CTIS),
    ISRCTN12345678."""
    from service import views
    from service.app import LINKED

    pairs = parse_watch_ids(study_ids)
    app = app_of(ctx)
    tags = (*tags, LINKED) if linked and LINKED not in tags else tags
    added: set[tuple[str, str]] = set()
    for registry, ids in _by_registry(pairs).items():
        new = app.store.add_watches(registry, ids, tags, app.clock())
        added |= {(registry, i) for i in new}
    if linked:  # the registrations already known, from records stored before
        for registry, ids in app.follow_links().items():
            new_pairs = [(registry, i) for i in ids]
            pairs, added = [*pairs, *new_pairs], added | set(new_pairs)
    if as_json:
        views.print_json(
            [{"registry": r, "study_id": i, "added": (r, i) in added} for r, i in pairs]
        )
        return
    for pair in pairs:
        views.echo(f"{pair[1]}: {'now watched' if pair in added else 'already watched'}")
    if added:
        views.echo(f"Next: `trialwatch sync` fetches {'it' if len(added) == 1 else 'them'}.")


watch.add_command(query)


@watch.command("list")
@json_option
@click.pass_context
def watch_list(ctx: click.Context, as_json: bool) -> None:
    """The watched records, their status and when they were last checked."""
    from service import views
    from service.trial_store import trial_members
    from service.trials import with_trials

    store = app_of(ctx).store
    watches = _not_found(store, with_trials(store.list_watches(), trial_members(store)))
    if as_json:
        views.print_json([w.to_json() for w in watches])
        return
    views.show(views.watches_table(watches))
    for hint in views.not_found_hints(watches):
        views.echo(hint)


def _not_found(store: Store, watches: list[WatchInfo]) -> list[WatchInfo]:
    """The watches whose id the registry said it never had, in state ``not found``."""
    from service.views import NOT_FOUND

    missing = store.not_found_watches()
    return [
        w.model_copy(update={"state": NOT_FOUND})
        if (w.registry, w.study_id) in missing and w.versions == 0
        else w
        for w in watches
    ]


@watch.command("remove")
@click.argument("study_ids", nargs=-1, required=True, metavar="ID...")
@json_option
@click.pass_context
def watch_remove(ctx: click.Context, study_ids: tuple[str, ...], as_json: bool) -> None:
    """Stop watching records (their stored versions and changes are kept)."""
    from service import views

    groups = _by_registry(parse_watch_ids(study_ids))
    store = app_of(ctx).store
    not_watched = sorted(
        i for r, ids in groups.items() for i in set(ids) - set(store.watched_ids(r))
    )
    if not_watched:
        raise InputError(f"not watched: {', '.join(not_watched)} (see `trialwatch watch list`)")
    unfollowed = _unfollow(store, [(r, i) for r, ids in groups.items() for i in ids])
    removed = [i for r, ids in groups.items() for i in store.remove_watches(r, ids)]
    if as_json:
        views.print_json(removed)
        return
    views.echo(f"no longer watched: {', '.join(removed)}")
    if unfollowed:
        names = ", ".join(study_id for _, study_id in unfollowed)
        views.echo(f"still watched, no longer following their trial's links: {names}")


def _unfollow(store: Store, keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A record removed from a trial watched with --linked would be watched again by the next
    sync: its trial stops being followed (the tag ``linked`` taken off), its other
    registrations stay watched."""
    from service.app import LINKED
    from service.trial_store import trial_members

    if not store.tagged_watches(LINKED):
        return []  # (no trial is followed: its links need not be read)
    members = trial_members(store)
    trial = {other for key in keys for other in members.get(key, ())} - set(keys)
    dropped = store.drop_tag(LINKED, trial | set(keys))
    return [key for key in dropped if key in trial]


# ---- sync, changes, history ------------------------------------------------------------------


@cli.command()
@click.argument("study_ids", nargs=-1, metavar="[ID...]")
@click.option("--dry-run", is_flag=True, help="Fetch and diff, but store nothing.")
@json_option
@click.pass_context
def sync(ctx: click.Context, study_ids: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """One cycle now: fetch, normalise, diff, store. Exit 1 if any study failed."""
    from service import views

    app = app_of(ctx)
    ids = _watched(app, study_ids) if study_ids else None  # None: the cycle reads the list

    def total() -> int:
        if ids is not None:
            return sum(map(len, ids.values()))
        return sum(app.store.watch_count(r) for r in WATCHED)

    with _progress(total, enabled=not as_json) as advance:
        report = app.sync(ids, dry_run=dry_run, progress=advance)
    if as_json:
        views.print_json(report.to_json(lazy=True))
    else:
        if report.changes:
            views.show(views.changes_lines(report.changes, "Changes found"))
        for error in report.errors:
            views.echo(f"failed: {error['error']}", err=True)
        for line in views.sync_summary(report, dry_run=dry_run):
            views.echo(line)
    if report.failed:
        sys.exit(1)


def _watched(app: App, study_ids: tuple[str, ...]) -> dict[str, list[str]]:
    """``study_ids`` by registry, each of them watched."""
    groups = _by_registry(parse_watch_ids(study_ids))
    unknown = [
        i for r, ids in groups.items() for i in ids if i not in set(app.store.watched_ids(r))
    ]
    if unknown:
        raise InputError(
            f"not watched: {', '.join(unknown)} (add it first: trialwatch watch add {unknown[0]})"
        )
    return groups


def _by_registry(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for registry, study_id in pairs:
        groups.setdefault(registry, []).append(study_id)
    return groups


@contextmanager
def _progress(total: Callable[[], int], *, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal for a run over ``total()`` items (asked only then)."""
    from service import views

    if not enabled or not views.stderr.is_terminal or (count := total()) < PROGRESS_THRESHOLD:
        yield lambda _done: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn("syncing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=views.stderr, transient=True) as bar:
        task = bar.add_task("sync", total=count)
        yield lambda done: bar.update(task, completed=done)


@cli.command()
@click.option("--study", "study_id", metavar="ID", help="Only this record.")
@click.option("--since", metavar="ISO", help="Only changes detected at or after this time.")
@click.option("--kind", type=LazyChoice(_change_kinds), help="Only this kind of change.")
@click.option(
    "--grade",
    type=click.Choice(["editorial", "minor", "major"]),
    help="Only outcome changes of this grade.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_INTEGER),
    help="Only the N most recent (still listed oldest first, unless --newest).",
    metavar="N",
)
@click.option("--newest", is_flag=True, help="Newest first.")
@json_option
@click.pass_context
def changes(
    ctx: click.Context,
    study_id: str | None,
    since: str | None,
    kind: str | None,
    grade: str | None,
    limit: int | None,
    newest: bool,
    as_json: bool,
) -> None:
    """Stored change events, oldest first (a log: the latest at the bottom); --newest turns
    the order round. --limit N keeps the N most recent either way."""
    from itertools import islice

    from service import views

    study = parse_watch_id(study_id)[1] if study_id else None
    app = app_of(ctx)
    # with --limit the newest N are read, newest first, and nothing before them
    latest_first = newest or limit is not None
    stored = app.store.iter_changes(
        study_id=study,
        since=parse_since(since, app.clock()),
        kind=kind,
        grade=grade,
        newest=latest_first,
    )
    found = list(islice(stored, limit))
    if latest_first != newest:
        found.reverse()
    if as_json:
        views.print_json([c.to_json() for c in found])
    else:
        title = views.plural(len(found), "change") + (", newest first" if newest else "")
        views.show(views.changes_lines(found, title))


@cli.command()
@click.argument("study_id", metavar="ID")
@json_option
@click.pass_context
def history(ctx: click.Context, study_id: str, as_json: bool) -> None:
    """The stored versions of one record, oldest first."""
    from service import views

    registry, study = parse_watch_id(study_id)
    versions = app_of(ctx).store.list_versions(registry, study)
    if as_json:
        views.print_json([v.to_json() for v in versions])
    elif not versions:
        views.echo(f"{study}: no stored versions (is it watched and synced?)")
    else:
        views.show(views.versions_lines(study, versions))


@cli.command()
@click.argument("study_ids", nargs=-1, metavar="[ID...]")
@json_option
@click.pass_context
def trials(ctx: click.Context, study_ids: tuple[str, ...], as_json: bool) -> None:
    """Trials registered more than once: the watched records that name one another (a link
    counts both ways), side by side, and where they disagree. With IDs: their trials."""
    from service import views
    from service.trial_store import load_trials

    keys = parse_watch_ids(study_ids)
    shown = load_trials(app_of(ctx).store, keys)
    if as_json:
        views.print_json([t.to_json() for t in shown])
    else:
        views.show(views.trials_lines(shown))


@cli.command("import-bulk")
@click.argument("zip_path", metavar="FILE.zip", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--all", "watch_all", is_flag=True, help="Import and watch every study in it.")
@json_option
@click.pass_context
def import_bulk_command(ctx: click.Context, zip_path: Path, watch_all: bool, as_json: bool) -> None:
    """Baseline from the registry's bulk download (a zip of one JSON per study): the watched
    studies in it (or all, with --all) are stored without change events; syncs go on from there."""
    from service import views
    from service.bulk import BulkProgress, BulkReport, import_bulk

    app = app_of(ctx)

    def shown_import() -> BulkReport:
        """The import, with a progress bar (rate, time left) on a terminal's stderr."""
        if as_json or not views.stderr.is_terminal:
            report = import_bulk(app.store, zip_path, clock=app.clock, watch_all=watch_all)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            # the rate and time left as the import counts them (rich's own estimate follows only
            # the last few updates, and members skipped as stored at the start would skew it)
            rate = TextColumn("{task.fields[rate]:,.0f} studies/s, {task.fields[left]} left")
            columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), rate)
            with Progress(*columns, console=views.stderr, transient=True) as bar:
                task = bar.add_task("import", total=None, rate=0.0, left="…")

                def shown(at: BulkProgress) -> None:
                    left = "…" if at.eta is None else f"{int(at.eta) // 60}:{int(at.eta) % 60:02d}"
                    bar.update(task, completed=at.read, total=at.total, rate=at.rate, left=left)

                report = import_bulk(
                    app.store, zip_path, clock=app.clock, watch_all=watch_all, progress=shown
                )
        return report

    try:
        report = shown_import()
    except KeyboardInterrupt:
        # whole batches are stored: the next run skips them and goes on from there
        views.echo("interrupted: run the same command again to go on where it stopped", err=True)
        raise SystemExit(130) from None
    if as_json:
        views.print_json(report.to_json())
    else:
        for bad in report.invalid[:20]:
            views.echo(f"unreadable: {bad['file']}: {bad['error']}", err=True)
        views.echo(
            f"{report.read} read: {report.stored} stored, {report.already_stored} already in the "
            f"store, {report.not_watched} not watched, {len(report.invalid)} unreadable"
        )


# ---- offline diff ----------------------------------------------------------------------------


@cli.command("diff")
@click.argument("old_path", metavar="OLD.json", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new_path", metavar="NEW.json", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def diff_command(old_path: Path, new_path: Path, as_json: bool) -> None:
    """Diff two ClinicalTrials.gov v2 study files (bare or history-API wrapped), offline."""
    from service import views
    from service.diff import diff

    (old, old_version), (new, new_version) = _snapshot_file(old_path), _snapshot_file(new_path)
    found = diff(old, new)
    if as_json:
        # history-API wrappers carry the registry's version numbers: say which step this is
        steps = {"from_version": old_version, "to_version": new_version}
        numbered = old_version is not None or new_version is not None
        views.print_json([{**c.to_json(), **(steps if numbered else {})} for c in found])
    elif not found:
        views.echo("no reportable changes")
    else:
        views.show(views.changes_lines(found, views.plural(len(found), "change")))


DIFF_MAX_BYTES = 64 * MIB  # the largest record with results is a few MiB


def _snapshot_file(path: Path) -> tuple[Snapshot, int | None]:
    """The normalised record in a file and its registry version (history wrappers only)."""
    from service.registry.ctgov_normalise import normalise, record_meta

    try:
        raw = load_json(read_bounded(path, DIFF_MAX_BYTES))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnsafeDocument as exc:  # too large, too deeply nested, a device or a FIFO
        raise InputError(f"{path}: {exc}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None
    try:
        return normalise(raw), record_meta(raw).registry_version
    except RecordInvalid as exc:
        raise InputError(f"{path}: not a ClinicalTrials.gov study record ({exc})") from None


# ---- notifications ---------------------------------------------------------------------------


@cli.command()
@click.option("--dry-run", is_flag=True, help="Show what is due; send nothing.")
@json_option
@click.pass_context
def notify(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Deliver due notifications once. Exit 1 if any failed (retried later or dead)."""
    from service import views

    app = app_of(ctx)
    if dry_run:
        due = [n for n in app.store.list_outbox() if n["due_at"] <= app.clock().isoformat()]
        _print_outbox(due, as_json, "due now (dry run: nothing sent)")
        return
    report = app.deliver()
    if as_json:
        views.print_json(report.to_json())
    else:
        for outcome in report.outcomes:
            line = f"{outcome['outcome']}: {outcome['channel']} {', '.join(outcome['studies'])}"
            views.echo(line + (f" ({outcome['error']})" if outcome["error"] else ""))
        views.echo(f"{report.sent} sent, {report.retrying} to retry, {report.dead} dead")
    if report.failed:
        sys.exit(1)


@cli.group(invoke_without_command=True)
@click.option("--dead", is_flag=True, help="The dead letters instead of the pending queue.")
@json_option
@click.pass_context
def outbox(ctx: click.Context, dead: bool, as_json: bool) -> None:
    """Pending notifications (or, with --dead, dead letters); `outbox replay ID…` resends."""
    if ctx.invoked_subcommand is not None:
        return
    found = app_of(ctx).store.list_outbox(dead=dead)
    _print_outbox(found, as_json, "dead letters" if dead else "pending")


@outbox.command("replay")
@click.argument(
    "outbox_ids", nargs=-1, required=True, type=click.IntRange(1, MAX_INTEGER), metavar="ID..."
)
@json_option
@click.pass_context
def outbox_replay(ctx: click.Context, outbox_ids: tuple[int, ...], as_json: bool) -> None:
    """Queue dead (or sent) notifications again, due now, with their event ids."""
    from service import views

    app = app_of(ctx)
    missing = app.store.replay(outbox_ids, app.clock())
    if missing:
        raise InputError(f"no dead or sent notification with id {', '.join(map(str, missing))}")
    replayed = sorted(set(outbox_ids))
    if as_json:
        views.print_json(replayed)
    else:
        views.echo(f"queued again: {', '.join(map(str, replayed))}; `trialwatch notify` sends them")


def _print_outbox(rows: list[dict[str, Any]], as_json: bool, title: str) -> None:
    from service import views

    if as_json:
        views.print_json(rows)
        return
    views.echo(f"{views.plural(len(rows), 'notification')} {title}")
    for row in rows:
        views.echo(
            f"  #{row['id']} {row['channel']} {row['study_id']}: "
            f"{views.plural(row['changes'], 'change')}, "
            f"{views.plural(row['attempts'], 'attempt')}, due {row['due_at']}"
            + (f", last error: {row['last_error']}" if row["last_error"] else "")
        )


cli.add_command(seeds)
cli.add_command(report)
cli.add_command(findings)


# ---- daemon ----------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--health-port",
    type=click.IntRange(0, 65535),
    help="Serve /healthz and /metrics on 127.0.0.1:PORT (overrides [daemon] health_port).",
)
@click.pass_context
def run(ctx: click.Context, health_port: int | None) -> None:
    """The daemon: scheduled syncs and deliveries until SIGTERM/SIGINT (then exit 0), and the
    web app when [web] port is set."""
    import logging

    from service.scheduler import Daemon

    app = app_of(ctx)
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger().setLevel(logging.INFO)  # a daemon logs its schedule and cycles
        logging.getLogger("alembic").setLevel(logging.WARNING)  # not its plugin set-up lines
    port = app.settings.daemon.health_port if health_port is None else health_port
    Daemon(app, health_port=port).run()


@cli.command()
@click.option("--host", metavar="HOST", help="Listen on HOST (default: [web] host, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Listen on PORT (default: [web] port, or 8080)."
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """The read-only web app: records, changes, findings, seeds, the outbox, Atom feeds and
    JSON at /api/…, until Ctrl-C. Any address but loopback needs [web] token_env."""
    import logging
    import os

    from service.web.server import DEFAULT_PORT, WebServer

    app = app_of(ctx)
    web = app.settings.web
    if not logging.getLogger().isEnabledFor(logging.WARNING):
        logging.getLogger().setLevel(logging.WARNING)
    port = port if port is not None else (web.port or DEFAULT_PORT)
    app.store.check()  # a store that does not open is one line now, not a 503 on every page
    WebServer(app, host or web.host, port, environ=os.environ).serve_forever()


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), help="Default: [daemon] health_port.")
@click.option("--ready", is_flag=True, help="Ask /readyz (syncs succeed) instead of /healthz.")
@click.pass_context
def healthcheck(ctx: click.Context, port: int | None, ready: bool) -> None:
    """Ask the running daemon's /healthz (alive) or /readyz (--ready: syncs succeed), on
    [daemon] health_host; exit 0 when it answers 200 (for container HEALTHCHECKs)."""
    from service import views
    from service.health import probe, probe_host

    daemon = app_of(ctx).settings.daemon
    port = port or daemon.health_port
    if not port:
        raise InputError("no health port: pass --port or set [daemon] health_port")
    status, body = probe(port, probe_host(daemon.health_host), ready=ready)
    views.echo(body.strip() or f"status {status}")
    sys.exit(0 if status == 200 else 1)


def main() -> None:
    # Start-up builds ~10⁵ objects that live as long as the process (modules, classes,
    # SQLAlchemy's and pydantic's schemas), and the cyclic collector walks them again and
    # again while they are made: ~0.1 s of a 0.6 s one-shot sync. It is held off until the
    # settings and the store's modules are loaded (``cli``), then what start-up built is frozen
    # out of later collections. The command itself runs with the collector on: a first load
    # of 100,000 records makes cyclic garbage.
    gc.disable()
    global _COLLECTOR_HELD
    _COLLECTOR_HELD = True
    # httpx imports its own command-line tool at import time (rich, pygments and click's
    # help rendering: ~30 ms); trialwatch never calls it, and a one-shot command that a cron
    # job runs every few minutes should not pay for it. Marking the module absent makes
    # httpx's guarded import fall back to its stub.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    # pydantic looks for plugins (entry points) when it builds its first model: it imports
    # importlib.metadata (with zipfile, email, csv) and reads every installed package's
    # metadata, ~20-30 ms of a one-shot command. trialwatch uses no pydantic plugin.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        cli(prog_name="trialwatch")  # click ends with SystemExit, also on success
    except SystemExit as done:
        leave(done.code)
