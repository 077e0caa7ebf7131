# Registered by service/cli.py with `cli.add_command(findings)`; kept apart (and free of
# imports from service.cli) so that the two modules never import each other.
"""``trialwatch findings``: what the transparency rules found in the watched records."""

from __future__ import annotations

import click

from service.errors import InputError

__all__ = ["findings"]


def _rule_names() -> tuple[str, ...]:
    # service.findings.rules imports pydantic models: loaded only when this command needs it
    from service.findings.rules import RULE_NAMES

    return RULE_NAMES


class RuleOption(click.Option):
    """``--rule``, whose help names every rule: written when help is drawn, not at import."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = f"Only this rule: {', '.join(_rule_names())}."
        return super().get_help_record(ctx)


@click.command()
@click.option("--open", "only_open", is_flag=True, help="Only the findings that hold now.")
@click.option("--study", "study_id", metavar="ID", help="Only this record's findings.")
@click.option("--rule", cls=RuleOption, metavar="RULE")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def findings(
    ctx: click.Context, only_open: bool, study_id: str | None, rule: str | None, as_json: bool
) -> None:
    """Transparency findings: results overdue, outcomes switched after the start, …

    Each is open while its rule holds and resolved when it stops; opening and resolving are
    change events (finding_opened / finding_resolved) notified like any change. Each is
    shown with its evidence in words and, while open, how far its deadline is from today.
    """
    from service import views
    from service.app import App

    rules = _rule_names()
    if rule is not None and rule not in rules:
        raise InputError(f"--rule {rule!r}: not a rule (one of {', '.join(rules)})")
    from service.registry.catalog import parse_watch_id

    study = parse_watch_id(study_id)[1] if study_id is not None else None
    app = ctx.find_object(App)
    assert app is not None, "the findings command runs under the trialwatch group"
    found = app.store.list_findings(only_open=only_open, study_id=study, rule=rule)
    if as_json:
        views.print_json([f.to_json() for f in found])
    elif not found:
        views.echo("no findings" + (" open" if only_open else ""))
    else:
        views.show(views.findings_table(found, today=app.clock().date()))
