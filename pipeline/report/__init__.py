"""Duplicate reports: ``report.json`` and ``report.html`` in OUTPUT, and the ``pipeline report`` command.

Both reports are built from the output files, never from a run in memory: runs are incremental and append
to ``records.jsonl``, ``duplicates.jsonl`` and ``rejected.jsonl``, so the files hold the whole history (an
output folder of ``--format parquet`` is read from ``records.parquet`` ... instead, which hold the same).
They are read as streams (duplicates twice, records once); what stays in memory is the metadata of the
documents in clusters, the texts of the clusters whose diffs are embedded, and per-source line counts.

``report.html`` is one self-contained file: inline CSS and script, no network (its Content-Security-Policy
allows only its own script and style, by hash). Scraped text is hostile, so every piece of it is escaped
(see :mod:`pipeline.report.page`).

At 50,000 duplicates the page stays usable: cluster metadata is embedded as compact arrays and rendered a
page at a time; diffs are computed here (``difflib.SequenceMatcher`` over word tokens, the same diff as the
terminal's) only for the largest clusters, up to a budget (:class:`ReportConfig`), and rendered when a
member is opened. Any other cluster's diff is one command away: ``pipeline report OUTPUT --cluster ID``.

The package, one concern a module:

- :mod:`~pipeline.report.build`: the report's data from the output files (what ``report.json`` holds);
- :mod:`~pipeline.report.diff`: word diffs, one cluster in full, the diffs embedded in the page;
- :mod:`~pipeline.report.files`: writing both reports into OUTPUT, reading ``report.json``, staleness;
- :mod:`~pipeline.report.page`: ``report.html`` from ``page.html``, ``report.css`` and ``report.js``;
- :mod:`~pipeline.report.chart`: the page's charts (SVG);
- :mod:`~pipeline.report.terminal`, :mod:`~pipeline.report.dashboard`, :mod:`~pipeline.report.command`:
  the report in a terminal, for dashboards (markdown, rows), and the ``pipeline report`` command.
"""

from pipeline.report.build import (
    REPORT_FORMAT,
    REPORT_HTML,
    REPORT_JSON,
    SOURCE_FILES,
    TOP_FOLDER,
    ReportConfig,
    ReportError,
    build_report,
    check_output,
    source_group,
)
from pipeline.report.chart import similarity_histogram
from pipeline.report.command import CSV_FIELDS, add_report_arguments, run_report, write_csv
from pipeline.report.dashboard import markdown_text, summary_markdown, top_cluster_rows
from pipeline.report.diff import Segment, cluster_detail, word_diff, word_opcodes, word_tokens
from pipeline.report.files import dump_report, load_report, reports_are_current, update_reports, write_reports
from pipeline.report.page import page_data, render_html, script_json
from pipeline.report.terminal import clusters_table, diff_text, histogram_table, print_cluster, summary_table

__all__ = [
    "CSV_FIELDS",
    "REPORT_FORMAT",
    "REPORT_HTML",
    "REPORT_JSON",
    "SOURCE_FILES",
    "TOP_FOLDER",
    "ReportConfig",
    "ReportError",
    "Segment",
    "add_report_arguments",
    "build_report",
    "check_output",
    "cluster_detail",
    "clusters_table",
    "diff_text",
    "dump_report",
    "histogram_table",
    "load_report",
    "markdown_text",
    "page_data",
    "print_cluster",
    "render_html",
    "reports_are_current",
    "run_report",
    "script_json",
    "similarity_histogram",
    "source_group",
    "summary_markdown",
    "summary_table",
    "top_cluster_rows",
    "update_reports",
    "word_diff",
    "word_opcodes",
    "word_tokens",
    "write_csv",
    "write_reports",
]
