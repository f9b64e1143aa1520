"""Command line: ``pipeline clean INPUT --out OUTPUT``. A thin layer over :mod:`pipeline.run`."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from pipeline import __version__
from pipeline.cleanup import CleanupConfig
from pipeline.fetch import add_fetch_arguments, run_fetch
from pipeline.index import INDEX_FILE
from pipeline.interrupt import exit_status, signal_name, terminate_as_interrupt
from pipeline.language import LanguageConfig, parse_languages
from pipeline.lock import OutputBusy
from pipeline.report import ReportError, add_report_arguments, run_report
from pipeline.run import (
    OUTPUT_FORMATS,
    SCAN_MODES,
    RunConfig,
    Stopped,
    Summary,
    UsageError,
    WorkerLost,
    clean_folder,
)
from pipeline.signature import MinHashConfig


class OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line, ``pipeline: error: ...``, and exit status 2 (subcommands inherit this)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"pipeline: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(
        prog="pipeline",
        description="Clean scraped articles: strip boilerplate, normalise, find exact and near duplicates.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    clean = commands.add_parser(
        "clean",
        help="clean a folder of scraped articles",
        description="Clean every text, HTML and JSON/JSONL file under INPUT into "
        "OUTPUT/records.jsonl, duplicates.jsonl, rejected.jsonl and stats.json.",
    )
    clean.add_argument(
        "input", nargs="?", default="raw", type=Path, help="folder of raw inputs (default: raw)"
    )
    clean.add_argument("--out", "-o", default="clean", type=Path, help="output folder (default: clean)")
    defaults = MinHashConfig()
    clean.add_argument(
        "--threshold",
        type=float,
        default=defaults.threshold,
        help=f"Jaccard similarity for near duplicates (default: {defaults.threshold})",
    )
    clean.add_argument(
        "--containment",
        type=float,
        default=defaults.containment,
        help="share of a shorter copy found in the longer one to call it a copy cut short "
        f"(default: {defaults.containment})",
    )
    clean.add_argument(
        "--rewrite-threshold",
        type=float,
        default=defaults.rewrite_threshold,
        help="Jaccard from which a pair below --threshold is a near duplicate when the two texts' names and "
        f"figures agree (a light rewrite; default: {defaults.rewrite_threshold}; >= --threshold: off)",
    )
    clean.add_argument(
        "--shingle-size",
        type=int,
        default=defaults.shingle_size,
        help=f"words per shingle (default: {defaults.shingle_size})",
    )
    clean.add_argument(
        "--num-perm",
        type=int,
        default=defaults.num_perm,
        help=f"MinHash permutations (default: {defaults.num_perm})",
    )
    clean.add_argument(
        "--workers", "-w", type=int, default=0, help="worker processes (default: 0 = all cores)"
    )
    clean.add_argument(
        "--chunk-size",
        type=int,
        default=RunConfig().chunk_size,
        help="files per worker task (default: %(default)s)",
    )
    clean.add_argument(
        "--boilerplate",
        type=Path,
        default=None,
        metavar="FILE",
        help="boilerplate rule file replacing the shipped pipeline/boilerplate.txt",
    )
    clean.add_argument(
        "--min-words",
        type=int,
        default=CleanupConfig().min_words,
        metavar="N",
        help="reject as too_short a clean text of fewer words than this with no sentence in it (a menu, "
        "one word); 0 keeps every text (default: %(default)s)",
    )
    clean.add_argument(
        "--languages",
        default="",
        metavar="CODES",
        help="keep only records in these languages, comma-separated ISO 639-1 codes as the detector "
        "(py3langid) gives them: de,en,fr; the others are rejected as language (default: every language)",
    )
    clean.add_argument(
        "--rebuild",
        action="store_true",
        help="forget the index and the outputs in OUTPUT and clean every input again",
    )
    clean.add_argument(
        "--scan",
        choices=SCAN_MODES,
        default="full",
        help="full: stat every input file (default); folders: look only into folders whose modification "
        "time changed since the last run (new, renamed and deleted files change it; a file rewritten in "
        "place does not), so a run's cost follows the new files, not the corpus",
    )
    clean.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="read what symbolic links in INPUT point to even outside INPUT, and walk linked folders outside "
        "it (default: a link resolving outside INPUT is rejected as outside_input, unread)",
    )
    clean.add_argument(
        "--format",
        dest="output_format",
        choices=OUTPUT_FORMATS,
        default=RunConfig().output_format,
        help="jsonl: records.jsonl, duplicates.jsonl, rejected.jsonl (default); parquet: records.parquet, "
        "duplicates.parquet, rejected.parquet (same fields and types), the JSON lines kept inside "
        "OUTPUT/index.data as the index's journal; both: the two. A later run may switch it",
    )
    clean.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="skip report.json/report.html (they cover all runs, so they cost time with the history; "
        "`pipeline report OUTPUT --open` builds them later)",
    )
    clean.add_argument(
        "--wait",
        type=float,
        default=RunConfig().wait,
        metavar="SECONDS",
        help="if another run is writing to OUTPUT, wait this long for it to finish, then give up with exit "
        "status 75 (default: %(default)g)",
    )
    clean.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on the Dask cluster of this scheduler (tcp://host:8786), or on a new cluster of --workers "
        "processes on this machine (local); INPUT and OUTPUT must be at the same paths on every worker. "
        "The result is the same as without",
    )
    clean.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    fetch = commands.add_parser(
        "fetch",
        help="fetch pages (URL list, feed or sitemap) into RAW/<host>/ politely",
        description="Fetch pages into RAW/<hostname>/<name>.html with a .meta.json sidecar each (URL, final "
        "URL, status, time, content type). Already-fetched URLs are skipped; failures get a sidecar that "
        "`pipeline clean` reports in rejected.jsonl.",
    )
    add_fetch_arguments(fetch)
    report = commands.add_parser(
        "report",
        help="summary, largest clusters and word diffs of a clean run's duplicates",
        description="Print the summary and the largest duplicate clusters of OUTPUT (all runs), one cluster "
        "with word diffs (--cluster ID), JSON or CSV for scripts, or open OUTPUT/report.html (--open).",
    )
    add_report_arguments(report)
    commands.add_parser(
        "serve",
        help="serve the Prefect flows on a cron schedule (see `pipeline serve --help`)",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return _serve(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "report":
        try:
            return run_report(args)
        except ReportError as err:
            print(f"pipeline: error: {err}", file=sys.stderr)
            return 2
    if args.command == "fetch":
        try:
            with _termination_as_interrupt():
                return run_fetch(args)
        except UsageError as err:
            return _fail(str(err), 2)
        except OSError as err:
            return _fail(_fault(err, args.raw), 1)
        except KeyboardInterrupt as err:
            what = "pages stored so far stay; a rerun fetches the rest"
            print(f"pipeline: interrupted ({signal_name(err)}): {what}", file=sys.stderr)
            return exit_status(err)
    try:
        config = RunConfig(
            cleanup=CleanupConfig(boilerplate_file=args.boilerplate, min_words=args.min_words),
            minhash=MinHashConfig(
                threshold=args.threshold,
                containment=args.containment,
                rewrite_threshold=args.rewrite_threshold,
                shingle_size=args.shingle_size,
                num_perm=args.num_perm,
            ),
            language=LanguageConfig(keep=parse_languages(args.languages)),
            workers=args.workers,
            chunk_size=args.chunk_size,
            report=args.report,
            scan=args.scan,
            follow_symlinks=args.follow_symlinks,
            wait=args.wait,
            output_format=args.output_format,
        )
        with _termination_as_interrupt():
            summary = _run_clean(args, config)
    except (UsageError, ValueError) as err:
        return _fail(str(err), 2)
    except OutputBusy as err:
        return _fail(str(err), EXIT_BUSY)
    except WorkerLost as err:
        return _fail(str(err), 1)
    except (OSError, sqlite3.Error) as err:
        return _fail(_fault(err, args.out), 1)
    except KeyboardInterrupt as err:
        return _interrupted(err, args.out)
    if not args.quiet:
        print(format_summary(summary))
    return 0


EXIT_BUSY = 75  # EX_TEMPFAIL: another run holds the output folder; a later attempt may succeed


def _fail(message: str, status: int) -> int:
    print(f"pipeline: error: {message}", file=sys.stderr)
    return status


def _fault(err: OSError | sqlite3.Error, out: Path) -> str:
    """One line for a failure of the file system under the run: what failed, on which path."""
    if isinstance(err, sqlite3.OperationalError):  # SQLite names no file; the index is the only database
        return f"index {out / INDEX_FILE}: {err}"
    if isinstance(err, sqlite3.Error):  # not a database, a malformed page: not a fault of this machine
        return f"index {out / INDEX_FILE} is damaged ({err}): run again with --rebuild to clean every input"
    where = ": ".join(str(name) for name in (err.filename, err.filename2) if name is not None)
    cause = err.strerror or str(err)
    # A failed write names no file (only a failed open does); the run writes only under OUTPUT.
    return f"{cause}: {where}" if where else f"{cause} (writing to {out})"


def _interrupted(err: KeyboardInterrupt, out: Path) -> int:
    """One line saying what the interrupted run committed; exit status 128 + the signal's number."""
    cause = err.cause if isinstance(err, Stopped) and isinstance(err.cause, KeyboardInterrupt) else err
    what = (
        "this run was committed before it stopped (stats.json and the report may be the previous run's)"
        if isinstance(err, Stopped) and err.committed
        else f"nothing of this run was committed: {out} is as the last committed run left it"
    )
    print(f"pipeline: interrupted ({signal_name(cause)}): {what}", file=sys.stderr)
    return exit_status(cause)


@contextmanager
def _termination_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while a command runs (the entry point may have done so already;
    ``main`` called as a library function has not)."""
    before = signal.getsignal(signal.SIGTERM)
    terminate_as_interrupt()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _serve(argv: list[str]) -> int:
    """``pipeline serve``: the Prefect side lives in flows/ (the library never imports Prefect)."""
    try:
        serve = importlib.import_module("flows.serve")
    except ImportError as err:
        print(f"pipeline: error: serving needs the flows package next to pipeline/ ({err})", file=sys.stderr)
        return 2
    return int(serve.main(argv, prog="pipeline serve"))


def _run_clean(args: argparse.Namespace, config: RunConfig) -> Summary:
    from rich.console import Console  # noqa: PLC0415 - 0.05 s, only for the progress bar
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(stderr=True)

    def on_wait(message: str) -> None:
        print(f"pipeline: {message}", file=sys.stderr, flush=True)

    if args.quiet or not console.is_terminal:
        return clean_folder(
            args.input, args.out, config, rebuild=args.rebuild, on_wait=on_wait, dask=args.dask
        )
    columns = (TextColumn("{task.description:<6}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        return clean_folder(
            args.input, args.out, config, progress, rebuild=args.rebuild, on_wait=on_wait, dask=args.dask
        )


def format_summary(summary: Summary) -> str:
    """The short summary printed at the end of a run."""
    by_reason = ", ".join(f"{k} {v}" for k, v in summary.stats["rejected_by_reason"].items())
    skipped = summary.unchanged + summary.same_content
    seen = (
        f"; skipped {skipped} files seen before ({summary.unchanged} unchanged, "
        f"{summary.same_content} same content)"
        if skipped
        else ""
    )
    index = summary.stats["index"]
    return (
        f"{summary.documents} new documents in ({summary.files} files{seen}): {summary.kept} kept, "
        f"{summary.duplicates} duplicates "
        f"({summary.exact_duplicates} exact, {summary.near_duplicates} near), "
        f"{summary.rejected} rejected{f' ({by_reason})' if by_reason else ''} "
        f"in {summary.seconds:.2f} s -> {summary.stats['output']} "
        f"(all runs: {index['records']} kept, {index['duplicates']} duplicates, {index['rejected']} rejected)"
    )


if __name__ == "__main__":
    sys.exit(main())
