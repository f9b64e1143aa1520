"""The report's charts as geometry the page's template draws as inline SVG: the similarity histogram."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.report.display import number


@dataclass(frozen=True, slots=True)
class Bar:
    """A bar (or a bar's part, exact and near copies stacked) with its tooltip."""

    kind: str
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True, slots=True)
class Line:
    role: str  # its CSS class: axis, threshold
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True, slots=True)
class Label:
    """A text drawn in the chart, at its baseline point (rotated a quarter turn anticlockwise if asked)."""

    role: str  # its CSS class: count, tick, threshold-label, axis-label
    text: str
    x: float
    y: float
    anchor: str = "middle"
    rotated: bool = False


@dataclass(frozen=True, slots=True)
class Chart:
    """What an SVG chart draws, in its viewBox's units."""

    title: str
    width: int
    height: int
    font_size: int
    bars: tuple[Bar, ...]
    lines: tuple[Line, ...]
    labels: tuple[Label, ...]


FONT_SIZE = 11


def similarity_histogram(histogram: dict[str, Any], threshold: float | None) -> Chart:
    """The similarity histogram: exact and near copies stacked per bin, the threshold marked."""
    bins = histogram["bins"]
    width, height, left, bottom, top = 640, 220, 44, 28, 18
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((b["exact"] + b["near"] for b in bins), default=0) or 1
    bar_w = plot_w / len(bins)
    bars: list[Bar] = []
    lines = [Line("axis", left, top + plot_h, left + plot_w, top + plot_h)]
    labels: list[Label] = []
    for i, b in enumerate(bins):
        total = b["exact"] + b["near"]
        x = left + i * bar_w
        y_base = top + plot_h
        for kind in ("near", "exact"):
            if not b[kind]:
                continue
            h = max(2.0, plot_h * b[kind] / peak)
            y_base -= h
            tip = f"{b['from']:.2f}–{b['to']:.2f}: {number(b[kind])} {kind}"
            bars.append(Bar(kind, round(x + 1, 1), round(y_base, 1), round(bar_w - 2, 1), round(h, 1), tip))
        if total:
            labels.append(Label("count", number(total), round(x + bar_w / 2, 1), round(y_base - 4, 1)))
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        labels.append(Label("tick", f"{tick:g}", round(left + tick * plot_w, 1), top + plot_h + 16))
    if isinstance(threshold, int | float) and 0 <= threshold <= 1:
        x = round(left + threshold * plot_w, 1)
        lines.append(Line("threshold", x, top - 6, x, top + plot_h))
        labels.append(Label("threshold-label", f"threshold {threshold:g}", round(x - 4, 1), top - 8, "end"))
    labels.append(Label("axis-label", "copies", 10, round(top + plot_h / 2, 1), rotated=True))
    return Chart(
        "Duplicates by measured Jaccard similarity with the kept record",
        width,
        height,
        FONT_SIZE,
        tuple(bars),
        tuple(lines),
        tuple(labels),
    )
