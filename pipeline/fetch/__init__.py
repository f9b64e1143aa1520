"""Fetching: download pages politely into RAW, one file per URL, with a sidecar saying where it came from.

``pipeline fetch --urls FILE | --feed URL | --sitemap URL --raw DIR`` stores each page as
``RAW/<host>/<name>.html`` (``.txt`` for ``text/plain``) beside ``<name>.html.meta.json``::

    {"url": ..., "final_url": ..., "status": 200, "fetched_at": "2024-11-19T08:00:00Z",
     "content_type": "text/html; charset=utf-8", "bytes": 48213, "error": null}

A URL that cannot be fetched gets only the sidecar, with ``"error": {"reason": R, "detail": ...}`` and ``R``
one of :data:`pipeline.contract.FETCH_REASONS` or ``too_large``; ``pipeline clean`` reports it as that URL's
rejection (see :func:`pipeline.load.discover`). The path of a URL is fixed (:func:`page_path`), so a URL whose
page is there is not fetched again unless ``refetch`` is set.

Safety: only public addresses are fetched unless ``allow_private`` (``--allow-private``) is set: a host is
resolved once, every address it resolves to is checked, and the connection goes to the checked address, on
every redirect hop and for robots.txt too (:mod:`~pipeline.fetch.guard`). A refused URL gets an error
sidecar with the reason ``blocked_address``.

Politeness: a User-Agent naming the tool, robots.txt read once per site and obeyed (RFC 9309, with its
``Crawl-delay``), at most ``per_host_concurrency`` requests in flight per host and ``per_host_delay`` seconds
between the starts of two requests to one host, time-outs (one deadline per URL bounds connect, headers
and body, at the socket), a size cap on the decompressed body enforced while it streams, bounded redirects,
retries with exponential backoff only for answers that may change (time-outs, connection errors, 429 and
5xx), and at most ``max_urls`` URLs taken from one feed or sitemap.

The package, one module per concern: :mod:`~pipeline.fetch.config` (the settings and a URL's result),
:mod:`~pipeline.fetch.storage` (where a URL's page goes, atomic writes), :mod:`~pipeline.fetch.robots`
(robots.txt), :mod:`~pipeline.fetch.guard` (which addresses may be fetched), :mod:`~pipeline.fetch.network`
(connections through the guard), :mod:`~pipeline.fetch.session` (the polite HTTP client),
:mod:`~pipeline.fetch.pages` (fetching URLs into RAW), :mod:`~pipeline.fetch.discover` (URLs from files,
feeds and sitemaps) and :mod:`~pipeline.fetch.cli` (``pipeline fetch``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.fetch.cli import add_fetch_arguments, format_fetch_summary, run_fetch
    from pipeline.fetch.config import DEFAULT_USER_AGENT, FetchConfig, FetchResult
    from pipeline.fetch.discover import (
        DiscoveredUrls,
        DiscoveryError,
        urls_from_feed,
        urls_from_file,
        urls_from_sitemap,
    )
    from pipeline.fetch.pages import fetch_all, fetch_url
    from pipeline.fetch.robots import RobotsCache, RobotsRules
    from pipeline.fetch.session import FetchCancelled, FetchSession
    from pipeline.fetch.storage import canonical_url, page_path, sidecar_path, stored_page

# Each name is imported from its module when first used: ``pipeline clean`` needs none of the network stack
# (httpx and the rest: 0.15 s at start-up), and the CLI needs only the options of ``pipeline fetch``.
_MODULES = {
    "add_fetch_arguments": "cli",
    "format_fetch_summary": "cli",
    "run_fetch": "cli",
    "DEFAULT_USER_AGENT": "config",
    "FetchConfig": "config",
    "FetchResult": "config",
    "DiscoveredUrls": "discover",
    "DiscoveryError": "discover",
    "urls_from_feed": "discover",
    "urls_from_file": "discover",
    "urls_from_sitemap": "discover",
    "fetch_all": "pages",
    "fetch_url": "pages",
    "RobotsCache": "robots",
    "RobotsRules": "robots",
    "FetchCancelled": "session",
    "FetchSession": "session",
    "canonical_url": "storage",
    "page_path": "storage",
    "sidecar_path": "storage",
    "stored_page": "storage",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)


__all__ = [
    "DEFAULT_USER_AGENT",
    "DiscoveredUrls",
    "DiscoveryError",
    "FetchCancelled",
    "FetchConfig",
    "FetchResult",
    "FetchSession",
    "RobotsCache",
    "RobotsRules",
    "add_fetch_arguments",
    "canonical_url",
    "fetch_all",
    "fetch_url",
    "format_fetch_summary",
    "page_path",
    "run_fetch",
    "sidecar_path",
    "stored_page",
    "urls_from_feed",
    "urls_from_file",
    "urls_from_sitemap",
]
