"""``pipeline fetch``: its options, the run from parsed arguments, and the one-line summary."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.fetch.config import FetchConfig, FetchResult
from pipeline.progress import PROGRESS_INTERVAL


def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pipeline fetch``."""
    defaults = FetchConfig()
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--urls", type=Path, metavar="FILE", help="text file of URLs, one a line (# comments)"
    )
    source.add_argument("--feed", metavar="URL", help="RSS, Atom or JSON feed whose articles to fetch")
    source.add_argument("--sitemap", metavar="URL", help="sitemap or sitemap index whose pages to fetch")
    parser.add_argument("--raw", type=Path, default=Path("raw"), metavar="DIR", help="folder (default: raw)")
    parser.add_argument("--refetch", action="store_true", help="fetch again URLs already stored")
    parser.add_argument(
        "--delay",
        type=float,
        default=defaults.per_host_delay,
        help="seconds between requests to one host (default: %(default)s; a robots.txt Crawl-delay may "
        "raise it)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=defaults.per_host_concurrency,
        help="requests in flight per host (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=defaults.timeout,
        help="connect/read time-out, s (default: %(default)s); one URL, redirects and retries included, "
        f"ends after {defaults.total_timeout:g} s or this, if larger",
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=defaults.max_bytes,
        help="largest page kept, counted decompressed (default: %(default)s)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=defaults.retries,
        help="retries after a time-out, connection error or 5xx (default: %(default)s)",
    )
    parser.add_argument("--user-agent", default=defaults.user_agent, help="User-Agent (default: %(default)s)")
    parser.add_argument(
        "--max-urls",
        type=int,
        default=defaults.max_urls,
        metavar="N",
        help="most URLs taken from one feed or sitemap, nested sitemaps included (default: %(default)s)",
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        default=PROGRESS_INTERVAL,
        metavar="SECONDS",
        help="off a terminal, a progress line this often; a terminal gets a bar (default: %(default)g)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary")
    parser.add_argument(
        "--allow-private",
        action="store_true",
        help="also fetch from loopback, private, link-local and other non-public addresses (an intranet "
        "crawl); by default such a URL, or a redirect to one, gets an error sidecar (blocked_address)",
    )


def run_fetch(args: argparse.Namespace, progress: Callable[[int, int], None] | None = None) -> int:
    """Run ``pipeline fetch`` from parsed arguments; print the one-line summary; return the exit status.

    Raises:
        pipeline.run.UsageError: bad options, an unreadable URL file, a RAW path that is a file, or a feed
            or sitemap that cannot be read.
    """
    from pipeline.run import UsageError  # heavy (the clean stages); only the CLI needs it

    try:
        config = FetchConfig(
            user_agent=args.user_agent,
            timeout=args.timeout,
            total_timeout=max(FetchConfig().total_timeout, args.timeout),
            max_bytes=args.max_bytes,
            per_host_concurrency=args.concurrency,
            per_host_delay=args.delay,
            retries=args.retries,
            refetch=args.refetch,
            allow_private=args.allow_private,
            max_urls=args.max_urls,
        )
    except ValueError as err:
        raise UsageError(str(err)) from err
    raw = Path(args.raw)
    if raw.exists() and not raw.is_dir():
        raise UsageError(f"--raw is not a folder: {raw}")
    # The network stack is imported here, when a fetch runs (see pipeline.fetch: 0.15 s at start-up).
    from pipeline.fetch.discover import (  # noqa: PLC0415
        DiscoveryError,
        urls_from_feed,
        urls_from_file,
        urls_from_sitemap,
    )
    from pipeline.fetch.pages import fetch_all  # noqa: PLC0415
    from pipeline.fetch.session import FetchSession  # noqa: PLC0415

    with FetchSession(config) as session:
        try:
            if args.urls is not None:
                try:
                    urls = urls_from_file(args.urls)
                except (OSError, UnicodeDecodeError) as err:
                    raise UsageError(f"cannot read URL file {args.urls}: {err}") from err
            elif args.feed is not None:
                urls = urls_from_feed(args.feed, config, session)
            else:
                urls = urls_from_sitemap(args.sitemap, config, session)
        except DiscoveryError as err:
            raise UsageError(str(err)) from err
        raw.mkdir(parents=True, exist_ok=True)
        results = fetch_all(urls, raw, config, progress, session)
    if not args.quiet:
        print(format_fetch_summary(results, [getattr(urls, "note", "")]))
    return 0


def format_fetch_summary(results: list[FetchResult], notes: Iterable[str] = ()) -> str:
    """``N URLs: A fetched, B skipped (already fetched), C failed (http_error 2, timeout 1)``, then the
    non-empty ``notes`` (``sitemap URL: kept N of M URLs (--max-urls)``), each after a ``; ``."""
    counts = Counter(r.status for r in results)
    reasons = Counter(r.reason or "fetch_error" for r in results if r.status == "failed")
    by_reason = ", ".join(
        f"{reason} {n}" for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    line = (
        f"{len(results)} URLs: {counts['fetched']} fetched, {counts['skipped']} skipped (already fetched), "
        f"{counts['failed']} failed{f' ({by_reason})' if by_reason else ''}"
    )
    return "; ".join([line, *(note for note in notes if note)])
