"""The one Jinja2 environment: every HTML page and email part is a template in ``templates/``.

Autoescaping is on for every template, so registry text can only reach a page as text: a
value becomes markup only by being a ``markupsafe.Markup`` made by a template (a macro's
output). Values are escaped the way ``html.escape`` does (``&quot;``, ``&#x27;``) rather than
markupsafe's numeric entities, so pages read byte for byte as they did before templates.

The templates ship inside the package (``PackageLoader``), so an installed wheel finds them.
Jinja2 and markupsafe are imported on first use: commands that render no HTML do not pay
for them at start-up.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Environment
    from markupsafe import Markup

__all__ = ["environment", "macro", "number", "render"]


def number(value: float) -> str:
    """A coordinate as SVG wants it: one decimal at most, no trailing zeros."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


@cache
def environment() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
    from markupsafe import Markup

    def finalize(value: Any) -> Any:
        # Runs before autoescape: plain values are escaped here, markup passes untouched.
        if hasattr(value, "__html__"):
            return value
        return Markup(html.escape(str(value), quote=True))

    env = Environment(
        loader=PackageLoader("service", "templates"),
        # every template is HTML or SVG; a template string made in code is escaped too
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=finalize,
        undefined=StrictUndefined,  # a misspelt name fails the render, not the reader's page
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = number
    return env


def render(name: str, **context: Any) -> str:
    """The template ``name`` rendered with ``context``, as a plain string."""
    return str(environment().get_template(name).render(**context))


def macro(name: str, macro_name: str) -> Callable[..., Markup]:
    """A macro of a template, callable from Python (it returns ``Markup``)."""
    return getattr(environment().get_template(name).module, macro_name)  # type: ignore[no-any-return]
