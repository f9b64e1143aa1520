"""Prefect flow ``fetch-and-clean``: fetch a URL list, feed or sitemap into RAW, then clean RAW into OUT.

discover the URLs (task) -> one ``fetch_host`` task per host, concurrently across hosts -> publish a table
of fetch counts -> the ``clean-folder`` flow as a subflow on RAW -> OUT, whose summary this flow returns.

Politeness lives in :mod:`pipeline.fetch` (per-host delay and concurrency, robots.txt, size cap); one task
per host keeps it intact, since no two tasks ever talk to the same host. A URL that cannot be fetched does
not fail the flow: the fetcher writes an error sidecar for it, and the clean step reports it in
``rejected.jsonl`` with its reason (``http_error``, ``timeout`` ...). Transient failures (time-outs,
connection errors, 5xx, 429) make the host's task fail and Prefect retry it with exponential backoff;
pages stored by an earlier attempt are not fetched again. After the last attempt the failures stand.

Run it without a server (Prefect starts a temporary one)::

    python -m flows.fetch_and_clean --sitemap https://example.org/sitemap.xml --raw raw --out clean
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prefect import Task, flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from flows.clean_folder import clean_folder, command_end, map_in_order
from pipeline import fetch
from pipeline.fetch import DiscoveryError, FetchConfig, FetchResult, FetchSession
from pipeline.lock import EXIT_BUSY, OutputBusy
from pipeline.options import CleanOptions, add_arguments, from_arguments
from pipeline.run import Summary, UsageError

COUNTS_ARTIFACT = "fetch-and-clean-fetch-counts"
FAILURES_ARTIFACT = "fetch-and-clean-fetch-summary"
# Hosts fetched at once (each host's own limits apply inside its task), as the fetcher's own default.
HOST_THREADS = FetchConfig().workers
FAILURES_LISTED = 50
FETCH_CLEAN_OPTIONS = CleanOptions(scan="folders")  # see fetch_and_clean's ``options``


class RetryableFetchFailures(Exception):
    """Some URLs of a host failed in a way that may pass on a later try; Prefect retries the host's task."""

    def __init__(self, host: str, failures: list[FetchResult]) -> None:
        shown = "; ".join(f"{r.url}: {r.reason} ({r.detail})" for r in failures[:3])
        more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
        super().__init__(f"{host}: {len(failures)} URL(s) may pass on a retry: {shown}{more}")


@dataclass(frozen=True, slots=True)
class HostChunk:
    """The URLs of one host, and those of them whose page was stored before this run."""

    host: str
    urls: list[str]
    stored_before: list[str]


@task(cache_policy=NO_CACHE)
def discover_urls(
    urls_file: str | None, feed: str | None, sitemap: str | None, config: FetchConfig
) -> list[str]:
    """The URLs to fetch: the lines of ``urls_file``, the articles of ``feed`` or the pages of ``sitemap``.

    Raises:
        DiscoveryError: the feed or sitemap cannot be fetched or read (retried like a host's fetch).
        OSError, UnicodeDecodeError: the URL file cannot be read (not retried).
    """
    if urls_file:
        return fetch.urls_from_file(Path(urls_file))
    with FetchSession(config) as session:
        if feed:
            return fetch.urls_from_feed(feed, config, session)
        assert sitemap, "check_sources makes sure there is exactly one source"
        return fetch.urls_from_sitemap(sitemap, config, session)


@task(cache_policy=NO_CACHE, task_run_name="fetch-{host}")
def fetch_host(
    host: str, urls: list[str], stored_before: list[str], raw: str, config: FetchConfig
) -> list[FetchResult]:
    """Fetch one host's URLs into ``raw`` (the fetcher keeps the host's delay and concurrency limits).

    Failed URLs are results, not errors: the fetcher has written their error sidecars. While Prefect
    retries are left, transient failures (time-out, connection error, 429, 5xx) raise
    :class:`RetryableFetchFailures` so the task is retried with backoff. A retry skips the pages stored by
    earlier attempts and asks again for every other URL of the host (a 404 too: the fetcher does not say
    which stored failures were transient). A page skipped as stored that was not stored before this run
    came from an earlier attempt and is reported as fetched.
    """
    with FetchSession(config) as session:
        results = fetch.fetch_all(urls, Path(raw), config, session=session)
    before = set(stored_before)
    results = [
        replace(r, status="fetched", detail="fetched by an earlier attempt of this run")
        if r.status == "skipped" and r.url not in before
        else r
        for r in results
    ]
    transient = [r for r in results if r.status == "failed" and r.retryable]
    if transient and retries_left() > 0:
        raise RetryableFetchFailures(host, transient)
    return results


def retries_left() -> int:
    """Prefect retries left for the running task; 0 outside a task run (the decorators deleted)."""
    context = TaskRunContext.get()
    if context is None:
        return 0
    return max(0, context.task.retries - (context.task_run.run_count - 1))


@flow(name="fetch-and-clean", task_runner=ThreadPoolTaskRunner(max_workers=HOST_THREADS))
def fetch_and_clean(
    urls_file: str | None = None,
    feed: str | None = None,
    sitemap: str | None = None,
    raw: str = "raw",
    out: str = "clean",
    per_host_delay: float = 1.0,
    timeout: float = 20.0,
    refetch: bool = False,
    retries: int = 2,
    retry_backoff: float = 10.0,
    allow_private: bool = False,
    max_urls: int = FetchConfig().max_urls,
    options: CleanOptions = FETCH_CLEAN_OPTIONS,
) -> Summary:
    """Fetch the URLs of one source (a URL file, a feed or a sitemap) into ``raw``, then clean ``raw``
    into ``out`` with the ``clean-folder`` flow and return its summary.

    Args:
        per_host_delay: seconds between two requests to one host (a robots.txt Crawl-delay may raise it).
        timeout: seconds to connect, and to wait for each read.
        refetch: fetch again URLs whose page is stored.
        retries: Prefect retries of discovery and of each host's fetch task after transient failures.
        retry_backoff: seconds before the first retry, doubled for each further one.
        allow_private: also fetch from loopback, private and other non-public addresses (an intranet
            crawl); by default such a URL, or a redirect to one, is rejected as ``blocked_address``.
        max_urls: most URLs taken from the feed or the sitemap (nested sitemaps included); the fetch
            summary says when it cut.
        options: the clean's options (those of ``pipeline clean``, see the clean-folder flow), with
            ``scan="folders"`` by default here: the fetcher stores each page by a rename into its host's
            folder, so every new page changes its folder's time, and a run stats only the folders that
            changed (its cost follows the new pages, not all pages fetched so far).
    """
    check_sources(urls_file, feed, sitemap)
    # The fetcher's own retries are off: Prefect retries the tasks, visibly, with backoff.
    config = fetch_config(per_host_delay, timeout, refetch, allow_private, max_urls)
    raw_dir = Path(raw)
    raw_dir.mkdir(parents=True, exist_ok=True)
    discover = with_retries(discover_urls, 0 if urls_file else retries, retry_backoff)
    urls = discover(urls_file, feed, sitemap, config)
    chunks = host_chunks(urls, raw_dir, config)
    results = map_in_order(
        with_retries(fetch_host, retries, retry_backoff),
        [c.host for c in chunks],
        [c.urls for c in chunks],
        [c.stored_before for c in chunks],
        [str(raw_dir)] * len(chunks),
        [config] * len(chunks),
    )
    notes = [getattr(urls, "note", "")]  # what --max-urls left out of a feed or sitemap
    publish_fetch_counts([r for host_results in results for r in host_results], notes)
    return clean_folder(str(raw_dir), out, options)


def check_sources(urls_file: str | None, feed: str | None, sitemap: str | None) -> None:
    """Exactly one URL source.

    Raises:
        ValueError: none, or more than one.
    """
    given = [
        name for name, value in (("urls_file", urls_file), ("feed", feed), ("sitemap", sitemap)) if value
    ]
    if len(given) != 1:
        raise ValueError(f"give exactly one of urls_file, feed, sitemap (got {', '.join(given) or 'none'})")


def fetch_config(
    per_host_delay: float,
    timeout: float,
    refetch: bool,
    allow_private: bool = False,
    max_urls: int = FetchConfig().max_urls,
) -> FetchConfig:
    """The fetch settings of the flow's parameters (raises ``ValueError`` for a bad value)."""
    return FetchConfig(
        per_host_delay=per_host_delay,
        timeout=timeout,
        total_timeout=max(FetchConfig().total_timeout, timeout),
        refetch=refetch,
        retries=0,
        allow_private=allow_private,
        max_urls=max_urls,
    )


def host_chunks(urls: list[str], raw_dir: Path, config: FetchConfig) -> list[HostChunk]:
    """The URLs grouped by host, hosts in order of first appearance, URLs in their order.

    URLs are canonical (as the fetcher stores them); one that is not an http(s) URL goes, as given, into
    the chunk of host ``""``, where the fetcher reports it failed.
    """
    by_host: dict[str, dict[str, None]] = {}
    for url in urls:
        try:
            target = fetch.canonical_url(url)
        except ValueError:
            by_host.setdefault("", {})[url] = None
            continue
        by_host.setdefault(urlsplit(target).hostname or "", {})[target] = None
    chunks = []
    for host, targets in by_host.items():
        stored = [] if config.refetch or not host else [u for u in targets if fetch.stored_page(raw_dir, u)]
        chunks.append(HostChunk(host, list(targets), stored))
    return chunks


def with_retries(step: Callable[..., Any], retries: int, backoff: float) -> Callable[..., Any]:
    """``step`` with ``retries`` Prefect retries, ``backoff`` seconds doubled each time, some jitter.

    A plain function (the decorators deleted) is returned as it is.
    """
    if not isinstance(step, Task):
        return step
    return step.with_options(
        retries=retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=backoff),
        retry_jitter_factor=0.2,
    )


def fetch_count_rows(results: list[FetchResult]) -> list[dict[str, Any]]:
    """``{"outcome", "reason", "urls"}`` rows: fetched, skipped, then failed per reason, most first."""
    counts = Counter((r.status, row_reason(r)) for r in results)
    order = {"fetched": 0, "skipped": 1, "failed": 2}
    return [
        {"outcome": status, "reason": reason, "urls": n}
        for (status, reason), n in sorted(
            counts.items(), key=lambda kv: (order.get(kv[0][0], 3), -kv[1], kv[0][1])
        )
    ]


def row_reason(result: FetchResult) -> str:
    """The reason column of a result: the failure reason, why a URL was skipped, or empty when fetched."""
    if result.status == "failed":
        return result.reason or "fetch_error"
    if result.status == "skipped":
        return result.reason or result.detail
    return ""


def publish_fetch_counts(results: list[FetchResult], notes: list[str] | None = None) -> None:
    """Publish the fetch counts as a table artifact, and the summary with the failed URLs as markdown
    (``notes``: what ``max_urls`` left out of the source, if anything).

    Outside a flow run (the decorators deleted) there is nothing to publish to.
    """
    if FlowRunContext.get() is None:
        return
    rows = fetch_count_rows(results)
    create_table_artifact(
        rows, key=COUNTS_ARTIFACT, description="URLs fetched, skipped and failed, by reason"
    )
    failed = [r for r in results if r.status == "failed"]
    lines = ["# Fetch", "", fetch.format_fetch_summary(results, notes or []), ""]
    if failed:
        lines += ["| URL | reason | detail |", "|---|---|---|"]
        lines += [
            "| " + " | ".join(_cell(v) for v in (r.url, r.reason, r.detail)) + " |"
            for r in failed[:FAILURES_LISTED]
        ]
        if len(failed) > FAILURES_LISTED:
            lines.append(f"\n... and {len(failed) - FAILURES_LISTED} more (see rejected.jsonl)")
    create_markdown_artifact("\n".join(lines) + "\n", key=FAILURES_ARTIFACT, description="Fetch summary")


def _cell(value: object) -> str:
    return str(value or "").replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------------------------------------------
# Command line: python -m flows.fetch_and_clean --urls FILE | --feed URL | --sitemap URL

PROG = "python -m flows.fetch_and_clean"
DEFAULTS = {name: p.default for name, p in inspect.signature(fetch_and_clean).parameters.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run the fetch-and-clean Prefect flow: fetch the URLs of one source into RAW "
        "(one page and sidecar per URL), then clean RAW into OUTPUT.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--urls", metavar="FILE", help="file of URLs, one a line")
    source.add_argument("--feed", metavar="URL", help="RSS, Atom or JSON feed whose articles to fetch")
    source.add_argument("--sitemap", metavar="URL", help="sitemap whose pages to fetch")
    parser.add_argument(
        "--raw", default=DEFAULTS["raw"], help="folder of fetched pages (default: %(default)s)"
    )
    parser.add_argument("--out", "-o", default=DEFAULTS["out"], help="output folder (default: %(default)s)")
    parser.add_argument(
        "--delay",
        type=float,
        default=DEFAULTS["per_host_delay"],
        help="seconds between requests to one host (default: %(default)s)",
    )
    parser.add_argument("--refetch", action="store_true", help="fetch again URLs already stored")
    parser.add_argument(
        "--retries",
        type=int,
        default=DEFAULTS["retries"],
        help="Prefect retries per host (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-private",
        action="store_true",
        help="also fetch from loopback, private and other non-public addresses (an intranet crawl)",
    )
    parser.add_argument(
        "--max-urls",
        type=int,
        default=DEFAULTS["max_urls"],
        metavar="N",
        help="most URLs taken from the feed or sitemap (default: %(default)s)",
    )
    add_arguments(parser, FETCH_CLEAN_OPTIONS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, check the request, run the flow; 2 and one line on a usage error or a feed or
    sitemap that cannot be read (as ``pipeline fetch``)."""
    args = build_parser().parse_args(argv)
    try:
        options = from_arguments(args)
        options.run_config()
        # Refuse a bad request before the flow starts a Prefect server.
        fetch_config(args.delay, DEFAULTS["timeout"], args.refetch, args.allow_private, args.max_urls)
        if args.retries < 0:
            raise ValueError("--retries must be >= 0")
        if args.urls and not Path(args.urls).is_file():
            raise UsageError(f"URL file not found: {args.urls}")
        if Path(args.raw).resolve() == Path(args.out).resolve():
            raise UsageError("the output folder must differ from the raw folder")
    except (UsageError, ValueError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    try:
        summary = fetch_and_clean(
            urls_file=args.urls,
            feed=args.feed,
            sitemap=args.sitemap,
            raw=args.raw,
            out=args.out,
            per_host_delay=args.delay,
            refetch=args.refetch,
            retries=args.retries,
            allow_private=args.allow_private,
            max_urls=args.max_urls,
            options=options,
        )
    except DiscoveryError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except OutputBusy as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return EXIT_BUSY
    return command_end(PROG, summary, options.quiet)


if __name__ == "__main__":
    sys.exit(main())
