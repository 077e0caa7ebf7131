# Registered by service/cli.py with `cli.add_command(report)`; kept apart (and free of imports
# from service.cli) so that the two modules never import each other.
"""``trialwatch report [ID…] --out FILE.html``: the stored history of records as one HTML page.

Arguments are checked before anything is written: an id that is not a ClinicalTrials.gov id,
or one the store has no versions of, is bad input (exit 2, one line naming it, no file). The
page is rendered in memory, then written to a temporary file beside ``--out`` and renamed over
it, so a reader never sees half a report and a failure leaves the old file (or none) in place.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from service.errors import InputError

if TYPE_CHECKING:  # annotations only: the command imports these when it runs (start-up time)
    from service.app import App
    from service.report import StudyData

__all__ = ["report", "write_atomically"]


def _app(ctx: click.Context) -> App:
    from service.app import App

    app = ctx.find_object(App)
    assert app is not None, "the report command runs under the trialwatch group"
    return app


@click.command("report")
@click.argument("study_ids", nargs=-1, metavar="[ID...]")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE.html",
    help="Where to write the report (replaced atomically).",
)
@click.pass_context
def report(ctx: click.Context, study_ids: tuple[str, ...], out: Path) -> None:
    """A self-contained HTML report of stored versions and changes (default: every watched
    record): status over time, enrollment, dates, outcome changes, seed publications."""
    from service.report import load_studies, render_report

    app = _app(ctx)
    _check_target(out)
    ids = _report_ids(app, study_ids)
    studies = load_studies(app.store, ids)
    failed: dict[str, str] = {}
    page = render_report(
        studies,
        generated_at=app.clock(),
        failed=lambda study_id, exc: failed.setdefault(study_id, f"internal error: {exc}"),
    )
    try:
        write_atomically(out, page)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot be written ({exc.strerror or exc})") from None
    drawn = [s for s in studies if s.study_id not in failed]
    click.echo(f"{out}: {_summary(drawn)}")
    for study_id, why in failed.items():  # one record's bug: the others are in the report
        click.echo(f"trialwatch: {study_id}: not in the report: {why}", err=True)
    if failed:
        ctx.exit(1)


def _report_ids(app: App, study_ids: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(registry, study id)`` of the records to draw: those named, or every watched one."""
    from service.registry.catalog import WATCHED, parse_watch_ids

    if not study_ids:
        return [(r, i) for r in WATCHED for i in app.store.watched_ids(r)]
    ids = parse_watch_ids(study_ids)
    missing = [i for r, i in ids if i not in app.store.record_states(r, [i])]
    if missing:
        raise InputError(
            f"not in the store: {', '.join(missing)} "
            f"(watch and sync it first: trialwatch watch add {missing[0]} && trialwatch sync)"
        )
    return ids


def _check_target(out: Path) -> None:
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"--out {out}: folder {folder} does not exist")
    if out.is_dir():
        raise InputError(f"--out {out}: is a folder, not a file")
    _refuse_special(out)


def _refuse_special(out: Path) -> None:
    """A device, FIFO or socket at ``--out`` is refused: renaming over it would replace
    ``/dev/full`` or ``/dev/null`` with a report when run as root (a symlink to one, too)."""
    try:
        info = out.stat()  # follows a symlink: what it points at is what it names
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InputError(f"--out {out}: cannot be checked ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"--out {out}: exists and is not a regular file; refusing to replace it")


def _summary(studies: list[StudyData]) -> str:
    versions = sum(len(s.versions) for s in studies)
    changes = sum(len(s.changes) for s in studies)
    return f"report of {len(studies)} record(s), {versions} version(s), {changes} change(s) written"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, 0o644)  # mkstemp makes it private; a report is meant to be shared
        _refuse_special(path)  # again, just before the rename: it may have appeared meanwhile
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
