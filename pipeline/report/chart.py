"""The report's charts as inline SVG: the similarity histogram."""

from __future__ import annotations

from typing import Any

from pipeline.report.display import number


def histogram_svg(histogram: dict[str, Any], threshold: float | None) -> str:
    """The similarity histogram as an inline SVG: exact and near copies stacked per bin."""
    bins = histogram["bins"]
    width, height, left, bottom, top = 640, 220, 44, 28, 18
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((b["exact"] + b["near"] for b in bins), default=0) or 1
    bar_w = plot_w / len(bins)
    parts = [
        f'<svg class="histogram" viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="hist-title" xmlns="http://www.w3.org/2000/svg">',
        '<title id="hist-title">Duplicates by measured Jaccard similarity with the kept record</title>',
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}"/>',
    ]
    for i, b in enumerate(bins):
        total = b["exact"] + b["near"]
        x = left + i * bar_w
        y_base = top + plot_h
        for kind in ("near", "exact"):
            if not b[kind]:
                continue
            h = max(2.0, plot_h * b[kind] / peak)
            y_base -= h
            parts.append(
                f'<rect class="bar-{kind}" x="{x + 1:.1f}" y="{y_base:.1f}" width="{bar_w - 2:.1f}" '
                f'height="{h:.1f}"><title>{b["from"]:.2f}–{b["to"]:.2f}: {number(b[kind])} {kind}</title>'
                "</rect>"
            )
        if total:
            parts.append(
                f'<text class="count" x="{x + bar_w / 2:.1f}" y="{y_base - 4:.1f}">{number(total)}</text>'
            )
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + tick * plot_w
        parts.append(f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 16}">{tick:g}</text>')
    if isinstance(threshold, int | float) and 0 <= threshold <= 1:
        x = left + threshold * plot_w
        parts.append(
            f'<line class="threshold" x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{top + plot_h}"/>'
            f'<text class="threshold-label" x="{x - 4:.1f}" y="{top - 8}">threshold {threshold:g}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="10" y="{top + plot_h / 2:.1f}" '
        f'transform="rotate(-90 10 {top + plot_h / 2:.1f})">copies</text></svg>'
    )
    return "".join(parts)
