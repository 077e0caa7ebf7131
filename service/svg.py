"""Charts as data: the shapes of an inline SVG chart, drawn by ``templates/svg.html``.

The report (and the web app after it) computes where every line, point and label goes; the
``chart`` macro writes them out, escaping every text and attribute value. So no code builds SVG
markup, and a hostile registry value in a tooltip or a ``data-`` attribute stays text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Chart", "Circle", "Line", "Path", "Rect", "Shape", "Text"]


@dataclass(frozen=True, slots=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    cls: str = ""  # a CSS class of the chart's stylesheet (grid, axis), or a stroke below
    stroke: str = ""
    width: float | None = None  # stroke width
    dash: str = ""  # stroke-dasharray
    kind: Literal["line"] = "line"


@dataclass(frozen=True, slots=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "middle"
    cls: str = ""
    style: str = ""  # inline style (a series' colour), made from constants only
    kind: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class Circle:
    """A data point, with a tooltip and the value's type for readers and tests."""

    cx: float
    cy: float
    r: float
    fill: str
    stroke: str
    width: float
    data_type: str
    title: str
    kind: Literal["circle"] = "circle"


@dataclass(frozen=True, slots=True)
class Rect:
    """A run of time (a status spell), with a tooltip and the status it stands for."""

    x: float
    y: float
    width: float
    height: float
    fill: str
    stroke: str
    stroke_width: float
    data_status: str
    title: str
    kind: Literal["rect"] = "rect"


@dataclass(frozen=True, slots=True)
class Path:
    d: str  # path data made from numbers only
    stroke: str
    width: float
    title: str
    kind: Literal["path"] = "path"


Shape = Line | Text | Circle | Rect | Path


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart: its size in user units, its accessible name, and its shapes in paint order."""

    width: int
    height: int
    label: str
    shapes: tuple[Shape, ...]
