"""Tests for pipeline/report/chart.py: the similarity histogram's labels never overlap each other, a bar, a
line or the chart's edge, on the estimated boxes the layout works with. The same shapes in Chromium, on
the boxes it really draws: tests/test_report_browser.py."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.report.chart import Box, Chart, short_count, similarity_histogram, text_width


def histogram(exact: list[int], near: list[int] | None = None) -> dict[str, Any]:
    """A similarity histogram as report.json holds it, of ``len(exact)`` bins over [0, 1]."""
    near = near if near is not None else [0] * len(exact)
    bins = len(exact)
    return {
        "bin_width": round(1 / bins, 4),
        "bins": [
            {"from": round(i / bins, 4), "to": round((i + 1) / bins, 4), "exact": e, "near": n}
            for i, (e, n) in enumerate(zip(exact, near, strict=True))
        ],
    }


def _bins(values: dict[int, int], bins: int = 20) -> list[int]:
    return [values.get(i, 0) for i in range(bins)]


# Histograms that once drew a label over another (the threshold's over the counts of the tallest bars
# beside it), or that push the layout to its edges. Shared with the browser test.
SHAPES: dict[str, tuple[dict[str, Any], float | None]] = {
    "tall bars left of the threshold": (histogram([0] * 14 + [980, 1200, 3, 0, 0, 40]), 0.8),
    "tall bars on both sides of the threshold": (
        histogram(_bins({15: 12345, 16: 23456, 17: 1, 18: 22222, 19: 9999}), _bins({16: 20000})),
        0.8,
    ),
    "threshold at the left edge": (histogram(_bins({0: 5000, 1: 4800, 2: 7})), 0.0),
    "threshold in the first bin": (histogram(_bins({0: 5000, 1: 4800})), 0.03),
    "threshold at the right edge": (histogram(_bins({18: 654321, 19: 1234567})), 1.0),
    "threshold through a bar": (histogram(_bins({16: 777, 17: 12})), 0.825),
    "every bin, large counts": (
        histogram([9999 - 37 * i for i in range(20)], [i * 11 for i in range(20)]),
        0.8,
    ),
    "many bins": (histogram([(i * 7919) % 5000 if i % 3 else 0 for i in range(100)]), 0.83),
    "one bin": (histogram([41], [1_000_000]), 0.8),
    "no duplicates": (histogram([0] * 20), 0.8),
    "no threshold": (histogram(_bins({19: 3, 17: 2})), None),
}


def clashes(chart: Chart) -> list[str]:
    """Every pair of things a chart draws that a label of it overlaps, and every label out of bounds."""
    problems = []
    bounds = Box(0, 0, chart.width, chart.height)
    others: list[tuple[str, Box]] = [(f"bar {b.title}", b.box) for b in chart.bars]
    others += [(f"line {line.role}", line.box) for line in chart.lines]
    for i, label in enumerate(chart.labels):
        if not label.box.inside(bounds):
            problems.append(f"{label.role} {label.text!r} out of the chart: {label.box}")
        for name, box in others + [(f"{o.role} {o.text!r}", o.box) for o in chart.labels[i + 1 :]]:
            if label.box.overlaps(box):
                problems.append(f"{label.role} {label.text!r} over {name}")
    return problems


@pytest.mark.parametrize("name", SHAPES)
def test_no_label_overlaps_anything(name: str) -> None:
    chart = similarity_histogram(*SHAPES[name])
    assert clashes(chart) == []
    nonzero = sum(1 for b in SHAPES[name][0]["bins"] if b["exact"] + b["near"])
    counts = [label for label in chart.labels if label.role == "count"]
    assert len(counts) + chart.hidden_counts == nonzero
    if SHAPES[name][1] is not None:
        [threshold] = [label for label in chart.labels if label.role == "threshold-label"]
        assert threshold.text == f"threshold {SHAPES[name][1]:g}"
    assert [label.text for label in chart.labels if label.role == "tick"] == ["0", "0.25", "0.5", "0.75", "1"]


def test_the_counts_beside_the_threshold_are_shown() -> None:
    """The case of the issue: the tallest bars just left of the threshold keep their counts, below its
    label; and at 20 bins every count up to 9,999 has room, in full or short."""
    chart = similarity_histogram(*SHAPES["tall bars left of the threshold"])
    # 1,200 is wider than its bar: in full it would cross the threshold line
    assert {label.text for label in chart.labels if label.role == "count"} == {"980", "1.2k", "3", "40"}
    [threshold] = [label for label in chart.labels if label.role == "threshold-label"]
    assert all(threshold.box.y1 < label.box.y0 for label in chart.labels if label.role == "count")
    chart = similarity_histogram(*SHAPES["every bin, large counts"])
    assert chart.hidden_counts == 0
    shown = {label.text for label in chart.labels if label.role == "count"}
    assert "10k" in shown  # 9,999 + 0 exact and near, too wide for its bar in full


def test_threshold_label_stays_inside_the_chart() -> None:
    left = similarity_histogram(*SHAPES["threshold at the left edge"])
    [label] = [label for label in left.labels if label.role == "threshold-label"]
    assert label.anchor == "start" and label.box.x0 >= 0  # on the right of its line
    right = similarity_histogram(*SHAPES["threshold at the right edge"])
    [label] = [label for label in right.labels if label.role == "threshold-label"]
    assert label.anchor == "end" and label.box.x1 <= right.width


def test_a_count_through_which_the_threshold_runs_moves_beside_it() -> None:
    chart = similarity_histogram(*SHAPES["threshold through a bar"])
    [line] = [line for line in chart.lines if line.role == "threshold"]
    [count] = [label for label in chart.labels if label.text == "777"]
    assert count.anchor in ("start", "end")
    assert not count.box.overlaps(line.box)


def test_short_counts() -> None:
    assert [short_count(n) for n in (0, 999, 1000, 1234, 9949, 9950, 12345, 999_499, 999_500, 3_456_789)] == [
        "0", "999", "1k", "1.2k", "9.9k", "10k", "12k", "999k", "1M", "3.5M",
    ]  # fmt: skip
    assert short_count(2_500_000_000) == "2.5G"
    assert text_width("1,234") > text_width("1.2k") > text_width("12") > 0


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 120).flatmap(
        lambda n: st.tuples(
            st.lists(
                st.sampled_from([0, 0, 1, 7, 42, 999, 1000, 12_345, 999_999, 10**7]), min_size=n, max_size=n
            ),
            st.lists(st.sampled_from([0, 0, 3, 250, 5_000, 77_777]), min_size=n, max_size=n),
        )
    ),
    st.one_of(st.none(), st.floats(0, 1), st.sampled_from([0.0, 0.05, 0.5, 0.8, 0.95, 1.0])),
)
def test_no_label_overlaps_anything_on_any_histogram(
    counts: tuple[list[int], list[int]], threshold: float | None
) -> None:
    exact, near = counts
    chart = similarity_histogram(histogram(exact, near), threshold)
    assert clashes(chart) == []
    nonzero = sum(1 for e, n in zip(exact, near, strict=True) if e + n)
    assert sum(1 for label in chart.labels if label.role == "count") + chart.hidden_counts == nonzero
    assert all(bar.width > 0 and bar.height >= 2 for bar in chart.bars)
