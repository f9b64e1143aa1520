"""``report.json`` and ``report.html`` in OUTPUT: writing both (atomically, after every run unless they are
current), reading ``report.json`` back, and telling whether they are current."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline import contract
from pipeline.report.build import (
    REPORT_FORMAT,
    REPORT_HTML,
    REPORT_JSON,
    ReportConfig,
    build_report,
    built_from,
    check_output,
    output_rows,
)
from pipeline.report.diff import embedded_diffs
from pipeline.report.page import render_html
from pipeline.writer import write_bytes_atomic

log = logging.getLogger(__name__)


def write_reports(out_dir: Path, config: ReportConfig | None = None) -> tuple[Path, Path]:
    """Build the report of ``out_dir`` and write ``report.json`` and ``report.html`` (atomically).

    Raises:
        ReportError: ``out_dir`` holds no outputs.
    """
    config = config or ReportConfig()
    out_dir = Path(out_dir)
    check_output(out_dir)
    # The clusters whose diffs go into the page are the largest; their order is known only after the
    # duplicates are read, so the sizes are counted first (a pass over duplicates.jsonl without texts).
    sizes: Counter[str] = Counter(d["duplicate_of"] for d in output_rows(out_dir, contract.DUPLICATES))
    ranked = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))
    chosen: dict[str, int] = {}  # kept id -> how many of its copies get an embedded diff
    budget = config.diff_members
    for kept_id, n in ranked[: config.diff_clusters]:
        if budget <= 0:
            break
        chosen[kept_id] = min(n, budget)
        budget -= n
    report, texts = build_report(out_dir, config, texts_for=chosen)
    diffs = embedded_diffs(out_dir, texts, chosen, config)
    json_path, html_path = out_dir / REPORT_JSON, out_dir / REPORT_HTML
    write_bytes_atomic(json_path, dump_report(report).encode("utf-8", "replace"))
    write_bytes_atomic(html_path, render_html(report, diffs, config).encode("utf-8", "replace"))
    return json_path, html_path


def update_reports(out_dir: Path) -> None:
    """After a run: write both reports unless they are current. A failure is logged, not raised: the
    outputs are committed by then, and ``pipeline report OUTPUT --open`` writes the reports again."""
    try:
        if not reports_are_current(out_dir):
            write_reports(out_dir)
    except Exception as err:  # noqa: BLE001 - the run's outputs stand; the report can be rebuilt
        log.warning("report not written to %s: %s: %s", out_dir, type(err).__name__, err)


def dump_report(report: dict[str, Any]) -> str:
    """``report.json``'s text: one top-level key per line, one cluster per line (greppable, compact)."""
    parts = []
    for key, value in report.items():
        if key == "clusters":
            rows = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in value)
            parts.append(f'  "clusters": [\n{rows}\n  ]' if rows else '  "clusters": []')
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def load_report(out_dir: Path) -> dict[str, Any]:
    """``OUTPUT/report.json`` as written by :func:`write_reports` (raises ``OSError`` when absent)."""
    return dict(json.loads((Path(out_dir) / REPORT_JSON).read_text(encoding="utf-8")))


def reports_are_current(out_dir: Path) -> bool:
    """Both reports exist and were built from the output files as they are now."""
    out_dir = Path(out_dir)
    if not (out_dir / REPORT_HTML).is_file():
        return False
    try:
        # dump_report writes one top-level key a line, these first: a no-op run need not parse the clusters
        head: dict[str, Any] = {}
        with (out_dir / REPORT_JSON).open(encoding="utf-8") as handle:
            for _, line in zip(range(4), handle, strict=False):
                key, _, value = line.strip().rstrip(",").partition(": ")
                if key in ('"format"', '"built_from"'):
                    head[json.loads(key)] = json.loads(value)
        return bool(head.get("format") == REPORT_FORMAT and head.get("built_from") == built_from(out_dir))
    except (OSError, ValueError):
        return False
