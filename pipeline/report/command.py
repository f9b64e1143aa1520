"""The ``pipeline report`` command: its options, and what it prints (tables, one cluster, JSON or CSV)."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import webbrowser
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from pipeline.lock import DEFAULT_WAIT, OutputBusy, output_lock
from pipeline.report.build import REPORT_HTML, ReportError, build_report, check_output
from pipeline.report.diff import cluster_detail
from pipeline.report.files import reports_are_current, write_reports
from pipeline.report.terminal import clusters_table, histogram_table, print_cluster, summary_table

log = logging.getLogger(__name__)

CSV_FIELDS = (
    "cluster_id",
    "cluster_size",
    "kept_source",
    "kept_title",
    "member_id",
    "member_source",
    "member_title",
    "kind",
    "similarity",
    "containment",
    "reason",
)


def write_csv(clusters: list[dict[str, Any]], stream: Any) -> None:
    """One row per duplicate, with its cluster and kept record (values as written, not spreadsheet-safe)."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for cluster in clusters:
        for m in cluster["members"]:
            writer.writerow(
                [
                    cluster["id"],
                    cluster["size"],
                    cluster["kept"]["source"],
                    cluster["kept"]["title"],
                    m["id"],
                    m["source"],
                    m["title"],
                    m["kind"],
                    m["similarity"],
                    m["containment"],
                    m["reason"],
                ]
            )


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pipeline report``."""
    parser.add_argument(
        "output", nargs="?", default="clean", type=Path, help="output folder of a clean run (default: clean)"
    )
    parser.add_argument("--top", type=int, default=10, help="largest clusters listed (default: 10; 0 = all)")
    parser.add_argument(
        "--cluster",
        metavar="ID",
        help="show one cluster (a kept record's id, or a duplicate's) with word diffs",
    )
    parser.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="table for people (default), json or csv on stdout for scripts",
    )
    parser.add_argument(
        "--open", action="store_true", help="open OUTPUT/report.html in a browser (written first if stale)"
    )


def run_report(args: argparse.Namespace) -> int:
    """``pipeline report``: print the summary and the largest clusters, one cluster, or open the page.

    Raises:
        ReportError: no outputs in ``args.output``, an unknown cluster id, or a negative ``--top``.
    """
    if args.top < 0:
        raise ReportError("--top must be >= 0 (0 lists every cluster)")
    out_dir = Path(args.output)
    console = Console(highlight=False)
    check_output(out_dir)
    if not reports_are_current(out_dir):  # runs with --no-report leave them stale or absent
        try:
            with output_lock(out_dir, DEFAULT_WAIT, log.warning):  # not while a run appends
                write_reports(out_dir)
        except OutputBusy as err:
            raise ReportError(str(err)) from err
        except OSError as err:
            raise ReportError(f"cannot write the reports in {out_dir}: {err.strerror or err}") from err
    if args.open:
        uri = (out_dir / REPORT_HTML).resolve().as_uri()
        opened = webbrowser.open(uri)
        print(f"{'opened' if opened else 'open this in a browser:'} {uri}")
        return 0
    if args.cluster:
        detail = cluster_detail(out_dir, args.cluster)
        if args.format == "json":
            print(json.dumps(detail, ensure_ascii=False, indent=2))
        elif args.format == "csv":
            write_csv([detail], sys.stdout)
        else:
            print_cluster(console, detail)
        return 0
    report, _ = build_report(out_dir)
    if args.format == "table":
        console.print(summary_table(report))
        console.print(histogram_table(report))
        console.print(clusters_table(report, args.top))
        console.print(
            Text(
                f"One cluster with word diffs: pipeline report {out_dir} --cluster ID; in a browser: --open",
                style="dim",
            )
        )
        return 0
    if args.top:
        report["clusters"] = report["clusters"][: args.top]
    if args.format == "json":
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        write_csv(report["clusters"], sys.stdout)
    return 0
