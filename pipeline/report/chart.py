"""The report's charts as geometry that the page's template draws as inline SVG: the similarity histogram.

No label may overlap another label, a bar, the threshold line or the chart's edge. The page is static (it
must read without its script), so labels are placed here, with each text's box estimated from per-character
advance widths: DejaVu Sans's (what Debian's Chromium draws ``system-ui`` with, and among the widest sans
faces; Segoe UI, Roboto, San Francisco and Noto Sans are narrower) plus a tenth, and a line height that holds
the tallest ascent and descent of those faces. tests/test_report_browser.py checks the real boxes in
Chromium. Every label has a place of its own:

- the threshold's label in a band above the plot, beside the top of its line, on the side where it fits;
- counts above their bars, the tallest bar's in a row kept free below that band; a count that collides
  with anything is tried in a short form (``12k``), then beside the threshold line, and otherwise left to
  its bar's tooltip (the legend then says so): largest counts are placed first, so they keep theirs;
- ticks below the axis, the axis label rotated in the left margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.report.display import number

FONT_SIZE = 11  # the labels' size in viewBox units (an attribute of the <svg>: the layout depends on it)
# advance widths in ems (DejaVu Sans, as Chromium measures it); any other character counts a full em
_ADVANCE: dict[str, float] = {**dict.fromkeys("0123456789", 0.636), ",": 0.318, ".": 0.318, " ": 0.318}
_ADVANCE |= {"–": 0.5, "M": 0.863, "G": 0.775}
_LOWER = [0.613, 0.635, 0.55, 0.635, 0.617, 0.348, 0.635, 0.634, 0.278, 0.287, 0.585, 0.278, 0.974, 0.634]
_LOWER += [0.614, 0.635, 0.635, 0.4, 0.523, 0.398, 0.634, 0.596, 0.818, 0.596, 0.596, 0.527]
_ADVANCE |= dict(zip("abcdefghijklmnopqrstuvwxyz", _LOWER, strict=True))
WIDTH_MARGIN = 1.05
ASCENT, DESCENT = 1.1, 0.3  # ems above and below the baseline (DejaVu 0.91/0.27, Noto Sans 1.07/0.29)
PAD = 2.0  # free space around the threshold's label, the ticks and the axis label
COUNT_PAD = 1.0  # ... and around a count (so that a short count fits between a bar's edges)


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned rectangle in viewBox units."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box, pad: float = 0.0) -> bool:
        """Whether the two share any area once this one is grown by ``pad`` on every side."""
        return (
            self.x0 - pad < other.x1
            and other.x0 < self.x1 + pad
            and self.y0 - pad < other.y1
            and other.y0 < self.y1 + pad
        )

    def inside(self, other: Box) -> bool:
        """Whether this box lies within ``other``."""
        return other.x0 <= self.x0 and self.x1 <= other.x1 and other.y0 <= self.y0 and self.y1 <= other.y1


@dataclass(frozen=True, slots=True)
class Bar:
    """A bar (or a bar's part: exact and near copies are stacked) with its tooltip."""

    kind: str
    x: float
    y: float
    width: float
    height: float
    title: str

    @property
    def box(self) -> Box:
        """Where the bar is drawn."""
        return Box(self.x, self.y, self.x + self.width, self.y + self.height)


@dataclass(frozen=True, slots=True)
class Line:
    """A straight line (the axis, the threshold)."""

    role: str  # its CSS class: axis, threshold
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def box(self) -> Box:
        """The area the line's stroke (1 unit wide) covers."""
        x0, x1 = sorted((self.x1, self.x2))
        y0, y1 = sorted((self.y1, self.y2))
        return Box(x0 - 0.5, y0 - 0.5, x1 + 0.5, y1 + 0.5)


@dataclass(frozen=True, slots=True)
class Label:
    """A text drawn at its baseline point (rotated a quarter turn anticlockwise if asked), and the box it
    is estimated to cover."""

    role: str  # its CSS class: count, tick, threshold-label, axis-label
    text: str
    x: float
    y: float
    anchor: str  # SVG text-anchor: start, middle, end
    box: Box
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
    hidden_counts: int  # bars whose count did not fit beside them (their tooltips have it)


def text_width(text: str, font_size: float = FONT_SIZE) -> float:
    """The estimated advance width of ``text`` (generous: see the module's docstring)."""
    return sum(_ADVANCE.get(char, 1.0) for char in text) * font_size * WIDTH_MARGIN


def label(role: str, text: str, x: float, y: float, anchor: str = "middle", rotated: bool = False) -> Label:
    """A label at baseline point ``(x, y)`` with its estimated box."""
    x, y = round(x, 1), round(y, 1)
    width = text_width(text)
    start = {"start": 0.0, "middle": width / 2, "end": width}[anchor]
    above, below = ASCENT * FONT_SIZE, DESCENT * FONT_SIZE
    if rotated:  # a quarter turn anticlockwise about (x, y): the text runs upwards, its top to the left
        box = Box(x - above, y - width + start, x + below, y + start)
    else:
        box = Box(x - start, y - above, x - start + width, y + below)
    return Label(role, text, x, y, anchor, box, rotated)


def short_count(value: int) -> str:
    """A count in at most four characters or so: ``950``, ``1.2k``, ``12k``, ``3.4M``."""
    if value < 1000:
        return str(value)
    for unit, size in (("k", 1e3), ("M", 1e6), ("G", 1e9)):
        scaled = value / size
        text = f"{scaled:.1f}" if scaled < 9.95 else f"{scaled:.0f}"
        if float(text) < 1000 or unit == "G":
            return text.removesuffix(".0") + unit
    raise AssertionError("unreachable")


def similarity_histogram(histogram: dict[str, Any], threshold: float | None) -> Chart:
    """The similarity histogram: exact and near copies stacked per bin, the threshold marked, every
    label placed clear of the others and of the bars (see the module's docstring)."""
    bins = histogram["bins"]
    line_height = (ASCENT + DESCENT) * FONT_SIZE
    width, left, right = 640, 44.0, 10.0
    band = PAD + line_height  # the threshold label's band at the top
    plot_top = band + PAD + line_height + 4  # then the tallest bar's count, 3 above its bar
    plot_bottom = plot_top + 172
    height = int(plot_bottom + 3 + line_height + PAD + 1)  # then the ticks
    plot_w = width - left - right
    bounds = Box(0, 0, width, height)
    peak = max((b["exact"] + b["near"] for b in bins), default=0) or 1
    column = plot_w / max(len(bins), 1)
    gap = min(1.0, column / 4)  # between neighbouring bars

    bars: list[Bar] = []
    tops: list[tuple[int, float, float]] = []  # (count, x of the column's middle, y of its top)
    for i, b in enumerate(bins):
        x = left + i * column
        y = plot_bottom
        for kind in ("near", "exact"):
            if not b[kind]:
                continue
            h = max(2.0, (plot_bottom - plot_top) * b[kind] / peak)
            y -= h
            tip = f"{b['from']:.2f}–{b['to']:.2f}: {number(b[kind])} {kind}"
            bars.append(
                Bar(kind, round(x + gap, 1), round(y, 1), round(column - 2 * gap, 1), round(h, 1), tip)
            )
        if b["exact"] + b["near"]:
            tops.append((b["exact"] + b["near"], x + column / 2, y))

    lines = [Line("axis", left, plot_bottom, left + plot_w, plot_bottom)]
    fixed: list[Label] = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        fixed.append(label("tick", f"{tick:g}", left + tick * plot_w, plot_bottom + 3 + ASCENT * FONT_SIZE))
    plot_middle = (plot_top + plot_bottom) / 2
    fixed.append(label("axis-label", "copies", PAD + ASCENT * FONT_SIZE, plot_middle, rotated=True))
    threshold_x = None
    if isinstance(threshold, int | float) and not isinstance(threshold, bool) and 0 <= threshold <= 1:
        threshold_x = round(left + threshold * plot_w, 1)
        lines.append(Line("threshold", threshold_x, band - 4, threshold_x, plot_bottom))
        text, baseline = f"threshold {threshold:g}", PAD + ASCENT * FONT_SIZE
        beside = label("threshold-label", text, threshold_x - 4, baseline, "end")
        if beside.box.x0 < bounds.x0:  # no room on the left of the line: on its right
            beside = label("threshold-label", text, threshold_x + 4, baseline, "start")
        fixed.append(beside)

    obstacles = [bar.box for bar in bars] + [line.box for line in lines] + [f.box for f in fixed]
    placed: list[Label] = []
    hidden = 0
    for count, middle, top in sorted(tops, key=lambda t: (-t[0], t[1])):
        baseline = top - 3 - DESCENT * FONT_SIZE
        texts = list(dict.fromkeys((number(count), short_count(count))))
        centred = [label("count", text, middle, baseline) for text in texts]
        own = Box(middle - column / 2, 0, middle + column / 2, height)
        # within the bar's own column first (in full, then short), so neighbours keep room for theirs;
        # then short, over the neighbours' columns where they are free; then beside the threshold line
        # when it runs through this bar
        candidates = [c for c in centred if c.box.x0 >= own.x0 and c.box.x1 <= own.x1] + centred[-1:]
        if threshold_x is not None and abs(threshold_x - middle) < column / 2 - gap:
            for text in texts:
                candidates.append(label("count", text, threshold_x + 1.5 + PAD, baseline, "start"))
                candidates.append(label("count", text, threshold_x - 1.5 - PAD, baseline, "end"))
        for candidate in candidates:
            box = candidate.box
            if box.inside(bounds) and not any(box.overlaps(o, COUNT_PAD) for o in obstacles):
                placed.append(candidate)
                obstacles.append(box)
                break
        else:
            hidden += 1
    return Chart(
        title="Duplicates by measured Jaccard similarity with the kept record",
        width=width,
        height=height,
        font_size=FONT_SIZE,
        bars=tuple(bars),
        lines=tuple(lines),
        labels=tuple(sorted(placed, key=lambda p: p.x)) + tuple(fixed),
        hidden_counts=hidden,
    )
