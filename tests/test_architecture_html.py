"""HTML is made by the templates only (``service/templates/``), with autoescaping.

A module that writes markup in a string literal escapes registry text by hand, and one forgotten
call is an injection; templates escape every value unless a macro made it. So no Python string
under ``service/`` holds an HTML or SVG tag, no module marks text as safe, no template turns
escaping off, and the templates ship in the wheel (the report and the emails need them).
"""

from __future__ import annotations

import ast
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from markupsafe import Markup

from service.templates import environment, render

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "service"
TEMPLATES = PACKAGE / "templates"

# An opening or closing tag of HTML or of the SVG the charts use. "(?P<name>" is a regex group.
TAG = re.compile(
    r"(?<!\?P)</?\s*(a|b|i|p|br|td|th|tr|dl|dt|dd|ul|ol|li|h[1-6]|div|span|svg|table|thead|tbody"
    r"|html|head|body|title|meta|style|script|link|img|iframe|section|header|footer|main|figure"
    r"|figcaption|small|strong|code|del|ins|line|text|rect|circle|path|g)(?=[\s>/])",
    re.IGNORECASE,
)
# Modules allowed to hold a tag in a string literal, and why. Empty: charts are shapes
# (service/svg.py) drawn by templates/svg.html, so not even they need an exception.
ALLOWED: dict[str, str] = {}
# The one module that may make Markup: the environment's finalize, which escapes plain values.
MARKUP_MAKERS = {"templates/__init__.py"}


def docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring constants of a module, its classes and functions (prose, not HTML)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def tags_in(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = docstrings(tree)
    return [
        (node.lineno, node.value[:60])
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skip
        and TAG.search(node.value)
    ]


def test_no_module_builds_html_from_strings() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): found
        for path in modules()
        if (found := tags_in(path)) and str(path.relative_to(PACKAGE)) not in ALLOWED
    }
    assert offenders == {}, "HTML belongs in service/templates/: " + repr(offenders)


@pytest.mark.parametrize(
    "literal",
    ["<td>", '<div style="x">', "</tr>", "<p class='x'>", "<span>", "<svg ", "<table>", "<br/>"],
)
def test_the_check_sees_tags(literal: str) -> None:
    assert TAG.search(literal)


@pytest.mark.parametrize("literal", ["a < b", "(?P<code>[A-Z]{3})", "x <= 3", "<NCT0…>"])
def test_the_check_ignores_what_is_not_a_tag(literal: str) -> None:
    assert not TAG.search(literal)


def test_only_the_environment_makes_markup() -> None:
    makers = set()
    for path in modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            named = isinstance(node, ast.Name) and node.id == "Markup"
            imported = isinstance(node, ast.ImportFrom) and node.module == "markupsafe"
            if named or imported:
                makers.add(str(path.relative_to(PACKAGE)))
    assert makers <= MARKUP_MAKERS


def test_no_template_turns_escaping_off() -> None:
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text(encoding="utf-8")
        for unsafe in ("|safe", "| safe", "autoescape false", "Markup("):
            assert unsafe not in text, f"{template.relative_to(TEMPLATES)}: {unsafe}"


def test_every_template_is_autoescaped_the_html_escape_way() -> None:
    env = environment()
    for template in TEMPLATES.rglob("*.html"):
        assert env.autoescape(str(template.relative_to(TEMPLATES)))  # type: ignore[operator]
    hostile = '<script>alert("x")</script>\''
    shown = env.from_string("{{ value }}").render(value=hostile)
    assert shown == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#x27;"
    # a macro's output is markup: it is not escaped twice
    link = env.get_template("macros.html").module.link("https://x.example/?a=1&b=2", hostile)
    assert isinstance(link, Markup) and "&amp;b=2" in link and "&lt;script" in link


def test_a_misspelt_name_fails_the_render() -> None:
    with pytest.raises(Exception, match="undefined"):
        render("email/alert.html", title="t", summary="s", details=[])  # no event_id


def test_the_templates_are_package_data() -> None:
    """``pip install .`` (not editable) copies only the listed files: every template must match."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["service"]
    shipped = [p for p in TEMPLATES.rglob("*") if p.is_file() and p.suffix in {".html", ".css"}]
    assert shipped
    for path in shipped:
        name = str(path.relative_to(PACKAGE))
        # setuptools globs: "*" does not cross "/", as fnmatch's does; count the parts too
        assert any(
            fnmatch(name, pattern) and name.count("/") == pattern.count("/") for pattern in patterns
        ), f"{name} is not in [tool.setuptools.package-data]"
    assert "jinja2" in " ".join(config["project"]["dependencies"]).lower()
