"""Command line: ``pipeline clean INPUT --out OUTPUT``. A thin layer over :mod:`pipeline.run`."""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import NoReturn

from pipeline import __version__, contract, remote
from pipeline.fetch import add_fetch_arguments, run_fetch
from pipeline.index import INDEX_FILE
from pipeline.interrupt import exit_status, signal_name, terminate_as_interrupt
from pipeline.lock import EXIT_BUSY, OutputBusy
from pipeline.options import CleanOptions, add_arguments, from_arguments
from pipeline.progress import progress_for
from pipeline.report import ReportError, add_report_arguments, run_report
from pipeline.run import (
    EXIT_EMPTY,
    RunConfig,
    Stopped,
    Summary,
    UsageError,
    WorkerLost,
    clean_folder,
    journal_path,
)
from pipeline.streams import STDIO, NothingToRead, send_records, staged_input, staged_output


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
        "input",
        nargs="?",
        default="raw",
        metavar="INPUT",
        help="folder of raw inputs, one file, an fsspec URL (s3://bucket/raw, with the store's driver "
        "installed), or - for standard input (JSON lines, or one plain text) (default: raw)",
    )
    clean.add_argument(
        "--out",
        "-o",
        default="clean",
        metavar="OUTPUT",
        help="output folder (default: clean), or an fsspec URL (synced through a local working copy); - "
        "sends the kept records to standard output as JSON lines (no index is kept: each such run "
        "stands alone)",
    )
    add_arguments(clean)
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
            with (
                _termination_as_interrupt(),
                progress_for(args.quiet, args.progress_every, _say, unit="URLs") as progress,
            ):
                return run_fetch(args, lambda done, total: progress("fetch", done, total, -1))
        except UsageError as err:
            return _fail(str(err), 2)
        except OSError as err:
            return _fail(_fault(err, args.raw), 1)
        except KeyboardInterrupt as err:
            what = "pages stored so far stay; a rerun fetches the rest"
            print(f"pipeline: interrupted ({signal_name(err)}): {what}", file=sys.stderr)
            return exit_status(err)
    try:
        options = from_arguments(args)
        if args.out == STDIO and options.output_format != "jsonl":
            raise UsageError("--out - sends JSON lines: leave --format at jsonl")
        config = options.run_config()
        with _termination_as_interrupt():
            summary = _run_clean(args.input, args.out, options, config)
    except (UsageError, ValueError) as err:
        return _fail(str(err), 2)
    except OutputBusy as err:
        return _fail(str(err), EXIT_BUSY)
    except NothingToRead as err:
        print(f"pipeline: {err}", file=sys.stderr)
        return EXIT_EMPTY
    except WorkerLost as err:
        return _fail(str(err), 1)
    except (OSError, sqlite3.Error) as err:
        return _fail(_fault(err, args.out), 1)
    except KeyboardInterrupt as err:
        return _interrupted(err, args.out)
    if summary.empty:
        print(f"pipeline: {summary.line()}", file=sys.stderr)
        return EXIT_EMPTY
    if not options.quiet:
        print(summary.line(), file=sys.stderr if args.out == STDIO else sys.stdout)
    return 0


def _fail(message: str, status: int) -> int:
    print(f"pipeline: error: {message}", file=sys.stderr)
    return status


def _fault(err: OSError | sqlite3.Error, out: str | Path) -> str:
    """One line for a failure of the file system under the run: what failed, on which path."""
    if isinstance(err, sqlite3.OperationalError):  # SQLite names no file; the index is the only database
        return f"index {out}/{INDEX_FILE}: {err}"
    if isinstance(err, sqlite3.Error):  # not a database, a malformed page: not a fault of this machine
        return f"index {out}/{INDEX_FILE} is damaged ({err}): run again with --rebuild to clean every input"
    where = ": ".join(str(name) for name in (err.filename, err.filename2) if name is not None)
    cause = err.strerror or str(err)
    # A failed write names no file (only a failed open does); the run writes only under OUTPUT.
    return f"{cause}: {where}" if where else f"{cause} (writing to {out})"


def _interrupted(err: KeyboardInterrupt, out: str) -> int:
    """One line saying what the interrupted run committed; exit status 128 + the signal's number."""
    cause = err.cause if isinstance(err, Stopped) and isinstance(err.cause, KeyboardInterrupt) else err
    committed = isinstance(err, Stopped) and err.committed
    if committed and remote.is_url(out):
        what = f"this run was committed to the working copy of {out}, not uploaded: the next run uploads it"
    elif committed:
        what = "this run was committed before it stopped (stats.json and the report may be an earlier run's)"
    else:
        what = f"nothing of this run was committed: {out} is as the last committed run left it"
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


COMMANDS = "scrape_clean.commands"  # the entry-point group of commands outside the library (pyproject.toml)


def _serve(argv: list[str]) -> int:
    """``pipeline serve``: the Prefect side lives in flows/, reached through its entry point (the library
    never imports flows/ or Prefect)."""
    found = entry_points(group=COMMANDS, name="serve")
    if not found:
        print(
            "pipeline: error: serving needs the flows package installed (pip install -e .)", file=sys.stderr
        )
        return 2
    [command] = found
    return int(command.load()(argv, prog="pipeline serve"))


def _say(message: str) -> None:
    print(f"pipeline: {message}", file=sys.stderr, flush=True)


def _run_clean(input_arg: str, out_arg: str, options: CleanOptions, config: RunConfig) -> Summary:
    """The run of ``pipeline clean``, with ``-`` as INPUT or OUTPUT staged (see :mod:`pipeline.streams`),
    fsspec URLs too (:mod:`pipeline.remote`), and the progress where the user sees it: a bar on a
    terminal, lines on standard error otherwise."""

    with ExitStack() as stack:
        staged = input_arg == STDIO
        input_path, out = stack.enter_context(remote.staged(input_arg, out_arg, config.wait, _say))
        if staged:
            input_path = stack.enter_context(staged_input(sys.stdin.buffer))
        if out_arg == STDIO:
            out = stack.enter_context(staged_output())
            config = replace(config, report=False)  # nobody could open it
        with progress_for(options.quiet, options.progress_every, _say) as progress:
            summary = clean_folder(
                input_path, out, config, progress, rebuild=options.rebuild, on_wait=_say, dask=options.dask
            )
        remote.name_locations(summary.stats, input_arg, out_arg)
        if out_arg == STDIO and not summary.empty:
            send_records(journal_path(out, contract.RECORDS, config.output_format), sys.stdout.buffer)
            summary.stats["output"] = "standard output"
        if staged:
            summary.stats["input"] = "standard input"
    return summary


if __name__ == "__main__":
    sys.exit(main())
