"""The README stays true: every CLI command is in it, and so are the two make targets."""

from __future__ import annotations

from pathlib import Path

import click

from service.cli import cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def command_paths(group: click.Group, prefix: str = "trialwatch") -> list[str]:
    paths = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, path))
        else:
            paths.append(path)
    return paths


def test_every_cli_command_is_documented_in_the_readme() -> None:
    missing = [path for path in command_paths(cli) if f"`{path}" not in README]
    assert missing == []


def test_the_readme_shows_the_two_make_commands() -> None:
    assert "make run" in README and "make test" in README
