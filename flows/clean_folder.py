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
import inspect
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.settings import get_current_settings
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline import report, run
from pipeline.cleanup import CleanupConfig
from pipeline.cli import EXIT_BUSY, format_summary
from pipeline.cluster import LOCAL, check_address, local_cluster, merged_counts, warm_up
from pipeline.contract import Rejection
from pipeline.language import LanguageConfig, parse_languages
from pipeline.load import InputPart
from pipeline.lock import DEFAULT_WAIT, OutputBusy
from pipeline.run import CleanedChunk, LoadedChunk, Run, RunConfig, Summary, UsageError
from pipeline.signature import MinHashConfig, Signer

COUNTS_ARTIFACT = "clean-folder-counts"
SUMMARY_ARTIFACT = "clean-folder-summary"
CLUSTERS_ARTIFACT = "clean-folder-top-clusters"
DUPLICATES_ARTIFACT = "clean-folder-duplicates"
REPORT_ARTIFACT = "clean-folder-report"
TOP_CLUSTERS = 10

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
    input_dir: str = "raw",
    out: str = "clean",
    threshold: float = 0.8,
    shingle_size: int = 5,
    num_perm: int = 128,
    chunk_size: int = 200,
    scan: str = "full",
    follow_symlinks: bool = False,
    wait: float = DEFAULT_WAIT,
    languages: list[str] | None = None,
    min_words: int = CleanupConfig().min_words,
    output_format: str = "jsonl",
    dask: str | None = None,
) -> Summary:
    """Clean every input under ``input_dir`` into ``out`` (same output as ``pipeline clean``).

    ``scan="folders"`` looks only into folders whose modification time changed since the last run (see
    ``pipeline clean --scan``); ``follow_symlinks`` reads links that resolve outside ``input_dir`` (see
    ``pipeline clean --follow-symlinks``); ``wait``: seconds to wait for another run on ``out`` before
    the flow run fails (see ``pipeline clean --wait``); ``languages``: keep only records in these
    languages (``["de", "en"]``; see ``pipeline clean --languages``), default every language;
    ``min_words``: see ``pipeline clean --min-words``; ``output_format``: ``jsonl``, ``parquet`` or
    ``both`` (see ``pipeline clean --format``); ``dask``: a Dask scheduler's address (``tcp://host:8786``)
    or ``local``: the run goes on as a nested flow run on prefect-dask's task runner for that cluster
    (see ``pipeline clean --dask``), so a deployment can be pointed at a cluster by a parameter."""
    parameters = dict(locals())
    if dask is not None and dask_client() is None:
        on_cluster = clean_folder.with_options(task_runner=dask_runner(dask, RunConfig().processes))
        return on_cluster(**{**parameters, "dask": None})
    config = run_config(
        threshold,
        shingle_size,
        num_perm,
        chunk_size,
        scan,
        follow_symlinks,
        wait,
        languages or (),
        min_words,
        output_format,
    )
    on_wait = get_run_logger().warning if FlowRunContext.get() is not None else None
    client = dask_client()
    with run.open_run(Path(input_dir), Path(out), config, on_wait=on_wait) as context:
        if client is not None and context.files:
            warm_up(client)
        t0 = time.perf_counter()
        loaded = map_in_order(load_chunk, *context.load_calls())
        # In the flow body, not a task: it reads and updates the run's index (an SQLite connection).
        counts = [c.counts for c in loaded] if client is None else [merged_counts(client, loaded)]
        learned = context.learn(counts, loaded)
        context.timings["load"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        cleaned = map_in_order(clean_chunk, *context.clean_calls(loaded, learned))
        context.timings["clean"] = time.perf_counter() - t1
        rejections = [r for c in loaded for r in c.rejections]
        if client is None:
            summary = finish(context, cleaned, learned, rejections)
        else:  # not a task, which would run on a worker: it writes the index; its pairs go to the cluster
            summary = run.finish(context, cleaned, learned, rejections, client)
    publish_summary(summary)
    publish_report(Path(out))
    return summary


def run_config(
    threshold: float,
    shingle_size: int,
    num_perm: int,
    chunk_size: int,
    scan: str = "full",
    follow_symlinks: bool = False,
    wait: float = DEFAULT_WAIT,
    languages: Iterable[str] = (),
    min_words: int = CleanupConfig().min_words,
    output_format: str = "jsonl",
) -> RunConfig:
    """The run settings of the flow's parameters (raises ``ValueError`` for a bad value)."""
    return RunConfig(
        cleanup=CleanupConfig(min_words=min_words),
        minhash=MinHashConfig(threshold=threshold, shingle_size=shingle_size, num_perm=num_perm),
        language=LanguageConfig(keep=parse_languages(",".join(languages))),
        chunk_size=chunk_size,
        scan=scan,
        follow_symlinks=follow_symlinks,
        wait=wait,
        output_format=output_format,
    )


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


def map_in_order(step: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
    """``step`` over the iterables, results in input order, like the builtin ``map``.

    A Prefect task runs as concurrent task runs; all of them have ended when this returns or raises, so the
    caller may remove the spool folder. A plain function (the decorators deleted) runs with ``map``.
    """
    if not isinstance(step, Task):
        return list(map(step, *iterables))
    futures = step.map(*iterables)
    futures.wait()
    return futures.result()


def publish_summary(summary: Summary) -> None:
    """Publish the run's counts as a table artifact and its summary as a markdown artifact.

    Artifacts belong to a flow run: outside one (the decorators deleted) there is nothing to publish to.
    """
    if FlowRunContext.get() is None:
        return
    rows = summary_rows(summary)
    create_table_artifact(rows, key=COUNTS_ARTIFACT, description="Documents in, kept, duplicates, rejected")
    table = ["| count | value |", "|---|---:|", *(f"| {r['count']} | {r['value']} |" for r in rows)]
    markdown = "\n".join(["# Clean folder", "", format_summary(summary), "", *table, ""])
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
DEFAULTS = {name: p.default for name, p in inspect.signature(clean_folder).parameters.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run the clean-folder Prefect flow: clean every "
        "input under INPUT into OUTPUT (records.jsonl, duplicates.jsonl, "
        "rejected.jsonl, stats.json) and publish a summary artifact.",
    )
    parser.add_argument(
        "input", nargs="?", default=DEFAULTS["input_dir"], help="folder of raw inputs (default: %(default)s)"
    )
    parser.add_argument("--out", "-o", default=DEFAULTS["out"], help="output folder (default: %(default)s)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULTS["threshold"],
        help="Jaccard similarity for near duplicates (default: %(default)s)",
    )
    parser.add_argument(
        "--shingle-size",
        type=int,
        default=DEFAULTS["shingle_size"],
        help="words per shingle (default: %(default)s)",
    )
    parser.add_argument(
        "--num-perm",
        type=int,
        default=DEFAULTS["num_perm"],
        help="MinHash permutations (default: %(default)s)",
    )
    parser.add_argument(
        "--chunk-size", type=int, default=DEFAULTS["chunk_size"], help="files per task (default: %(default)s)"
    )
    parser.add_argument(
        "--scan",
        choices=run.SCAN_MODES,
        default=DEFAULTS["scan"],
        help="full: stat every input; folders: only folders whose modification time changed "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="read what symbolic links point to even outside INPUT (default: rejected as outside_input)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULTS["wait"],
        metavar="SECONDS",
        help="wait this long for another run on OUTPUT to finish, then fail (default: %(default)g)",
    )
    parser.add_argument(
        "--min-words",
        type=int,
        default=DEFAULTS["min_words"],
        metavar="N",
        help="reject as too_short a clean text of fewer words with no sentence (default: %(default)s)",
    )
    parser.add_argument(
        "--languages",
        default="",
        metavar="CODES",
        help="keep only records in these languages (comma-separated: de,en); others are rejected as "
        "language (default: every language)",
    )
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the tasks with prefect-dask's task runner on the Dask cluster of this scheduler "
        "(tcp://host:8786), or on a new local cluster (local); see pipeline clean --dask",
    )
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=run.OUTPUT_FORMATS,
        default=DEFAULTS["output_format"],
        help="jsonl, parquet or both (see `pipeline clean --help`; default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # Refuse a bad request before the flow starts a Prefect server and logs a traceback.
        config = run_config(
            args.threshold,
            args.shingle_size,
            args.num_perm,
            args.chunk_size,
            args.scan,
            args.follow_symlinks,
            args.wait,
            parse_languages(args.languages),
            args.min_words,
            args.output_format,
        )
        run.check_request(Path(args.input), Path(args.out), config)
        if args.dask not in (None, LOCAL):
            check_address(args.dask)
        summary = clean_folder(
            args.input,
            args.out,
            args.threshold,
            args.shingle_size,
            args.num_perm,
            args.chunk_size,
            args.scan,
            follow_symlinks=args.follow_symlinks,
            wait=args.wait,
            languages=list(config.language.keep),
            min_words=args.min_words,
            output_format=args.output_format,
            dask=args.dask,
        )
    except (UsageError, ValueError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except OutputBusy as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return EXIT_BUSY
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
