"""Prefect flow ``clean-folder``: the steps of :func:`pipeline.run.clean_folder` as tasks.

plan the chunks -> map ``load_chunk`` -> merge line counts (``learn_boilerplate``) -> map ``clean_chunk``
-> ``finish`` (dedup, write the four output files and the duplicate reports) -> publish the run's counts
(table + markdown), the largest duplicate clusters (table + markdown) and a link to ``report.html``.

Tasks take file paths and return compact results; the documents travel between the two passes in spool
files inside OUTPUT, exactly as in the library run. The tasks are thin wrappers over the library functions,
and the flow body is plain Python: delete the ``@task``/``@flow`` lines and it still runs, in one thread.

Run it without a server (Prefect starts a temporary one)::

    python -m flows.clean_folder raw --out clean

On a Dask cluster, the flow with prefect-dask's task runner (``--dask ADDRESS`` or ``--dask local`` here):
the chunk tasks run on the cluster's workers, and the flow body merges the line counts and forms and
verifies dedup's pairs on the same cluster through the runner's client (see :mod:`pipeline.cluster`)::

    clean_folder.with_options(task_runner=DaskTaskRunner(address="tcp://host:8786"))("raw", "clean")
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.settings import get_current_settings
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline import remote, report, run
from pipeline.cleanup import CleanupConfig
from pipeline.cluster import LOCAL, check_address, local_cluster, merged_counts, warm_up
from pipeline.contract import Rejection
from pipeline.load import InputPart
from pipeline.lock import EXIT_BUSY, OutputBusy
from pipeline.options import CleanOptions, add_arguments, from_arguments
from pipeline.progress import Progress, ProgressLines, silent
from pipeline.run import EXIT_EMPTY, CleanedChunk, LoadedChunk, Run, RunConfig, Summary, UsageError
from pipeline.signature import Signer

COUNTS_ARTIFACT = "clean-folder-counts"
SUMMARY_ARTIFACT = "clean-folder-summary"
CLUSTERS_ARTIFACT = "clean-folder-top-clusters"
DUPLICATES_ARTIFACT = "clean-folder-duplicates"
REPORT_ARTIFACT = "clean-folder-report"
TOP_CLUSTERS = 10
DEFAULT_OPTIONS = CleanOptions()

# Prefect's default thread pool is unbounded: every chunk would be in flight at once, holding the whole
# corpus in memory and defeating the chunking. Bound it by Prefect's own setting, else by the cores.
THREADS = get_current_settings().tasks.runner.thread_pool_max_workers or os.cpu_count() or 1

# NO_CACHE on every task: their inputs and results name spool files that live only as long as one run, so a
# cached result would point at a deleted file; and hashing a chunk's signatures for a cache key costs time.
# Retries only on the chunk tasks, which are idempotent (a retry rewrites the same spool file).


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def load_chunk(
    files: list[InputPart],
    root: str,
    spool: str,
    config: CleanupConfig,
    hash_files: bool = False,
    follow_symlinks: bool = False,
) -> LoadedChunk:
    """Pass 1 over one chunk: load, extract, normalise, spool, count edge lines."""
    return run.load_chunk(files, root, spool, config, hash_files, follow_symlinks)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def clean_chunk(
    spool_in: str, spool_out: str, learned: dict[str, frozenset[int]], config: RunConfig, signer: Signer
) -> CleanedChunk:
    """Pass 2 over one chunk: strip boilerplate, spool the clean records, return their signatures."""
    return run.clean_chunk(spool_in, spool_out, learned, config, signer)


@task(cache_policy=NO_CACHE)
def finish(
    context: Run, cleaned: list[CleanedChunk], learned: dict[str, frozenset[int]], rejections: list[Rejection]
) -> Summary:
    """Dedup the cleaned chunks in input order and write the four output files."""
    return run.finish(context, cleaned, learned, rejections)


@flow(name="clean-folder", task_runner=ThreadPoolTaskRunner(max_workers=THREADS))
def clean_folder(
    input_dir: str = "raw", out: str = "clean", options: CleanOptions = DEFAULT_OPTIONS
) -> Summary:
    """Clean every input under ``input_dir`` (a folder or one file) into ``out``: the same output as
    ``pipeline clean``, with the same ``options`` (:class:`pipeline.options.CleanOptions`: every option of
    ``pipeline clean --help``, by field name: ``{"threshold": 0.7, "languages": ["de"]}``).

    ``options.dask`` (a scheduler's address, or ``local``) and ``options.workers`` (chunk tasks at once)
    ask for a task runner: the run goes on as a nested flow run on it, so a deployment reaches a cluster
    by a parameter. Progress goes to the flow run's log, a line every ``options.progress_every`` seconds
    (none with ``options.quiet``)."""
    runner = task_runner_for(options)
    if runner is not None:
        return clean_folder.with_options(task_runner=runner)(input_dir, out, replace(options, dask=None))
    config = options.run_config()
    logger = get_run_logger() if FlowRunContext.get() is not None else None
    client = dask_client()
    say = logger.warning if logger else None
    with (
        remote.staged(input_dir, out, config.wait, say) as (input_path, out_path),
        run.open_run(input_path, out_path, config, options.rebuild, say) as context,
        _progress(options, logger) as progress,
    ):
        if client is not None and context.files:
            warm_up(client)
        t0 = time.perf_counter()
        loaded = map_in_order(
            load_chunk, *context.load_calls(), done=run.chunk_progress("load", context, progress)
        )
        # In the flow body, not a task: it reads and updates the run's index (an SQLite connection).
        counts = [c.counts for c in loaded] if client is None else [merged_counts(client, loaded)]
        learned = context.learn(counts, loaded)
        context.timings["load"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        calls = context.clean_calls(loaded, learned)
        cleaned = map_in_order(clean_chunk, *calls, done=run.chunk_progress("clean", context, progress))
        context.timings["clean"] = time.perf_counter() - t1
        rejections = [r for c in loaded for r in c.rejections]
        if client is None:
            summary = finish(context, cleaned, learned, rejections)
        else:  # not a task, which would run on a worker: it writes the index; its pairs go to the cluster
            summary = run.finish(context, cleaned, learned, rejections, client)
    remote.name_locations(summary.stats, input_dir, out)
    if logger is not None and not options.quiet:
        (logger.warning if summary.empty else logger.info)(summary.line())
    publish_summary(summary)
    publish_report(out_path)
    return summary


def task_runner_for(options: CleanOptions) -> Any:
    """The task runner ``options`` ask for when the flow run has another, else None: prefect-dask's for
    ``options.dask``; a thread pool of ``options.workers`` threads for a number of chunk tasks at once
    other than the flow run's runner's."""
    context = FlowRunContext.get()
    if context is None or dask_client() is not None:
        return None
    if options.dask is not None:
        return dask_runner(options.dask, RunConfig(workers=options.workers).processes)
    runner = context.task_runner
    if (
        options.workers
        and isinstance(runner, ThreadPoolTaskRunner)
        and runner._max_workers != options.workers
    ):
        return ThreadPoolTaskRunner(max_workers=options.workers)
    return None


@contextmanager
def _progress(options: CleanOptions, logger: Any) -> Iterator[Progress]:
    """Progress lines in the flow run's log (none outside a flow run, or with ``options.quiet``)."""
    if logger is None or options.quiet:
        yield silent
        return
    with ProgressLines(logger.info, options.progress_every) as lines:
        yield lines


def dask_client() -> Any:
    """The ``distributed.Client`` of the flow run's task runner when it is prefect-dask's, else None."""
    context = FlowRunContext.get()
    prefect_dask = sys.modules.get("prefect_dask")  # imported by whoever made a DaskTaskRunner
    if (
        context is None
        or prefect_dask is None
        or not isinstance(context.task_runner, prefect_dask.DaskTaskRunner)
    ):
        return None
    return context.task_runner.client


def dask_runner(address: str, workers: int) -> Any:
    """A prefect-dask task runner on the scheduler at ``address``, or on a new ``LocalCluster`` of
    ``workers`` single-threaded processes for ``"local"`` (``pipeline clean --dask``'s two forms)."""
    from prefect_dask import DaskTaskRunner  # noqa: PLC0415 - distributed: cluster runs only

    if address != LOCAL:
        check_address(address)
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class=_local_cluster, cluster_kwargs={"workers": workers})


def _local_cluster(workers: int) -> Any:
    """A local cluster whose workers report their task runs to this process's Prefect API (without one,
    each worker process would start a temporary server of its own)."""
    api = get_current_settings().api.url
    return local_cluster(workers, {"PREFECT_API_URL": api} if api else None)


def map_in_order(
    step: Callable[..., Any], *iterables: Iterable[Any], done: Callable[[int, Any], None] | None = None
) -> list[Any]:
    """``step`` over the iterables, results in input order, like the builtin ``map``; ``done(i, result)``
    is called for each result in turn, as it arrives.

    A Prefect task runs as concurrent task runs; all of them have ended when this returns or raises, so the
    caller may remove the spool folder. A plain function (the decorators deleted) runs with ``map``.
    """
    if not isinstance(step, Task):
        return _collected(map(step, *iterables), done)
    futures = step.map(*iterables)
    try:
        return _collected((future.result() for future in futures), done)
    finally:
        futures.wait()


def _collected(results: Iterable[Any], done: Callable[[int, Any], None] | None) -> list[Any]:
    """``results`` as a list, with ``done(i, result)`` called for each as it arrives."""
    collected = []
    for i, result in enumerate(results):
        collected.append(result)
        if done is not None:
            done(i, result)
    return collected


def publish_summary(summary: Summary) -> None:
    """Publish the run's counts as a table artifact and its summary as a markdown artifact.

    Artifacts belong to a flow run: outside one (the decorators deleted) there is nothing to publish to.
    """
    if FlowRunContext.get() is None:
        return
    rows = summary_rows(summary)
    create_table_artifact(rows, key=COUNTS_ARTIFACT, description="Documents in, kept, duplicates, rejected")
    table = ["| count | value |", "|---|---:|", *(f"| {r['count']} | {r['value']} |" for r in rows)]
    markdown = "\n".join(["# Clean folder", "", summary.line(), "", *table, ""])
    create_markdown_artifact(markdown, key=SUMMARY_ARTIFACT, description="Summary of the clean-folder run")


def publish_report(out: Path) -> None:
    """Publish the largest duplicate clusters (all runs) as a table and a markdown artifact, and a link to
    ``OUTPUT/report.html`` (a ``file://`` URL: the report lives beside the outputs, where the flow ran).

    Nothing is published outside a flow run, or when the run wrote no report (its warning says why).
    """
    if FlowRunContext.get() is None:
        return
    try:
        duplicates = report.load_report(out)
    except (OSError, ValueError):
        return
    create_table_artifact(
        report.top_cluster_rows(duplicates, TOP_CLUSTERS),
        key=CLUSTERS_ARTIFACT,
        description=f"The {TOP_CLUSTERS} largest duplicate clusters over all runs",
    )
    create_markdown_artifact(
        report.summary_markdown(duplicates, TOP_CLUSTERS),
        key=DUPLICATES_ARTIFACT,
        description="Duplicates over all runs and the largest clusters",
    )
    create_link_artifact(
        (out / report.REPORT_HTML).resolve().as_uri(),
        link_text="report.html: clusters, word diffs, boilerplate removed",
        key=REPORT_ARTIFACT,
        description="The HTML duplicate report (open it on the machine that ran the flow)",
    )


def summary_rows(summary: Summary) -> list[dict[str, Any]]:
    """The counts of a run, one ``{"count", "value"}`` row each, rejections also per reason."""
    rows: list[dict[str, Any]] = [
        {"count": "files", "value": summary.files},
        {"count": "documents", "value": summary.documents},
        {"count": "kept", "value": summary.kept},
        {"count": "exact duplicates", "value": summary.exact_duplicates},
        {"count": "near duplicates", "value": summary.near_duplicates},
        {"count": "rejected", "value": summary.rejected},
    ]
    rows += [
        {"count": f"rejected: {reason}", "value": n}
        for reason, n in summary.stats["rejected_by_reason"].items()
    ]
    return rows


# ---------------------------------------------------------------------------------------------------
# Command line: python -m flows.clean_folder INPUT --out OUTPUT

PROG = "python -m flows.clean_folder"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run the clean-folder Prefect flow: clean every input under INPUT (a folder or one "
        "file) into OUTPUT (records.jsonl, duplicates.jsonl, rejected.jsonl, stats.json) and publish a "
        "summary artifact. The options are pipeline clean's.",
    )
    parser.add_argument(
        "input",
        nargs="?",
        default="raw",
        metavar="INPUT",
        help="folder or file of raw inputs, or an fsspec URL (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        "-o",
        default="clean",
        metavar="OUTPUT",
        help="output folder or fsspec URL (default: %(default)s)",
    )
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # Refuse a bad request before the flow starts a Prefect server and logs a traceback.
        options = from_arguments(args)
        remote.check_request(args.input, args.out, options.run_config())
        if options.dask not in (None, LOCAL):
            check_address(options.dask)
        summary = clean_folder(args.input, args.out, options)
    except (UsageError, ValueError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except OutputBusy as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return EXIT_BUSY
    return command_end(PROG, summary, options.quiet)


def command_end(prog: str, summary: Summary, quiet: bool) -> int:
    """How a flow's command ends after its run: the summary line (on standard error and exit status
    66 when the input held nothing to read), nothing with ``quiet``; else 0."""
    if summary.empty:
        print(f"{prog}: {summary.line()}", file=sys.stderr)
        return EXIT_EMPTY
    if not quiet:
        print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
