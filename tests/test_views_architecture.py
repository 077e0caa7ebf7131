"""Everything printed goes through ``service.views``, whose strings go through ``terminal_safe``:
no other module writes to stdout or stderr, echoes, or draws with rich on its own."""

from __future__ import annotations

import ast
import json
import unicodedata
from pathlib import Path

import pytest
from rich.text import Text
from test_architecture import PACKAGE

from service import views

# module (relative to service/) -> why it may write to a stream itself
ALLOWED_WRITERS = {
    "views.py": "the printing layer itself",
    "logs.py": "binds the log handler to sys.stderr (log lines, not command output)",
    "cli_report.py": "prints only the --out path a person gave and counts (click.echo)",
    "quick_exit.py": "flushes the streams as the process ends (writes nothing)",
}
PRINTING_CALLS = {"click.echo", "click.secho", "print", "sys.stdout.write", "sys.stderr.write"}
STREAMS = {"sys.stdout", "sys.stderr"}
RICH_DRAWING = {"rich.console", "rich.table", "rich.text", "rich.markup", "rich.panel"}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def offences(path: Path) -> list[str]:
    """Lines of ``path`` that print, touch a standard stream or draw with rich directly."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        name = dotted(node.func) if isinstance(node, ast.Call) else ""
        if name in PRINTING_CALLS or name.endswith((".stdout.print", "console.print")):
            found.append(f"{node.lineno}: calls {name}")
        elif isinstance(node, ast.Attribute) and dotted(node) in STREAMS:
            found.append(f"{node.lineno}: uses {dotted(node)}")
        elif isinstance(node, ast.ImportFrom) and node.module in RICH_DRAWING:
            found.append(f"{node.lineno}: imports {node.module}")
    return found


MODULES = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("module", [m for m in MODULES if m not in ALLOWED_WRITERS])
def test_only_the_printing_layer_prints(module: str) -> None:
    assert offences(PACKAGE / module) == [], (
        f"{module} prints on its own: use service.views (echo, show, print_json), "
        "which makes registry text terminal-safe"
    )


def test_the_architecture_check_catches_a_stray_print(tmp_path: Path) -> None:
    stray = tmp_path / "stray.py"
    stray.write_text(
        "import click, sys\nfrom rich.table import Table\n"
        "def f(x):\n    click.echo(x)\n    print(x)\n    sys.stdout.write(x)\n"
    )
    assert [o.split(": ", 1)[1] for o in offences(stray)] == [
        "imports rich.table",
        "calls click.echo",
        "calls print",
        "calls sys.stdout.write",
        "uses sys.stdout",
    ]


def test_every_acting_character_is_escaped_and_nothing_else() -> None:
    """Over the whole of Unicode: controls (C0, DEL, C1), format characters (bidi overrides,
    isolates, zero-width and tag characters), surrogates and line/paragraph separators are
    escaped; the joiners scripts need, newline and every visible character pass unchanged."""
    every = "".join(map(chr, range(0x110000)))
    shown = views.terminal_safe(every)
    kept = "".join(ch for ch in every if not views.unsafe_char(ch))
    assert views.terminal_safe(kept) == kept
    acting = [
        ch
        for ch in every
        if unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Zl", "Zp"} and ch not in "\n\u200c\u200d"
    ]
    assert {ch for ch in every if views.unsafe_char(ch)} - {"\n"} == set(acting)
    for ch in acting:
        assert ch not in shown
    assert {"\u202a", "\u202e", "\u2066", "\u2069", "\x1b", "\x9b", "\x07", "\x7f"} <= set(acting)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),  # OSC 52: write the clipboard
        ("\x9b2J", "\\x9b2J"),  # C1 CSI
        ("a\u202eb\u2066c", "a\\u202eb\\u2066c"),  # bidi override, isolate
        ("tag\U000e0041", "tag\\U000e0041"),  # an invisible tag character
        ("a\rb", "a\\rb"),  # carriage return: overwrites the line
        ("Sjögren’s 日本 🙂 a\u00a0b", "Sjögren’s 日本 🙂 a\u00a0b"),  # visible: unchanged
    ],
)
def test_terminal_safe_shows_what_would_act(raw: str, shown: str) -> None:
    assert views.terminal_safe(raw) == shown


def test_newlines_are_kept_for_layout_and_escaped_inside_a_value() -> None:
    assert views.terminal_safe("one\ntwo") == "one\ntwo"
    assert views.one_line("one\ntwo") == "one\\ntwo"


def test_print_json_escapes_as_json_and_parses_back_to_the_same_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = {"title": "a\x1b]52;c;x\x07 \u202eb\x85c\U000e0041 \ud800 日本", "n": [1, None]}
    views.print_json(document)
    out = capsys.readouterr().out
    assert not [ch for ch in out if ch != "\n" and views.unsafe_char(ch)]
    assert "\\u202e" in out and "\\udb40\\udc41" in out  # JSON escapes (a surrogate pair)
    assert json.loads(out) == document


def test_the_console_escapes_what_a_renderable_slipped_through(
    capsys: pytest.CaptureFixture[str],
) -> None:
    views.show(Text("before\x1b[2Jafter \u202eevil"))  # built without one_line: the backstop
    assert capsys.readouterr().out == "before\\x1b[2Jafter \\u202eevil\n"
