"""What a fetch is asked to do (:class:`FetchConfig`) and what it says of each URL (:class:`FetchResult`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_USER_AGENT = "scrape-clean/0.1 (+https://example.invalid/scrape-clean)"


@dataclass(frozen=True, slots=True)
class FetchConfig:
    """How to fetch. Defaults suit a polite crawl of news sites; tests shrink the times.

    Attributes:
        user_agent: sent with every request; its first word (``scrape-clean``) is the robots.txt token.
        timeout: seconds to connect, and seconds to wait for each read of the answer.
        total_timeout: seconds one URL may take from its first request to its last byte: connect, headers
            and body of every redirect hop and retry, with the pauses between them, all end by then (a
            server that drips its headers or body is cut off at it); a retry whose pause would end past
            it is not made. robots.txt, fetched once per site, has a deadline of its own.
        max_bytes: largest body kept, counted after decompression; a longer one is cut off while it
            streams, with at most one byte inflated past the cap.
        max_redirects: redirects followed for one URL; more, or a cycle, is ``redirect_loop``.
        per_host_concurrency: requests in flight to one host at once.
        per_host_delay: seconds between the starts of two requests to one host.
        max_crawl_delay: largest robots.txt ``Crawl-delay`` honoured (a bigger one is cut to this).
        retries: further attempts after a time-out, connection error, 429 or 5xx (0: Prefect retries),
            within ``total_timeout``.
        backoff: seconds before the first retry, doubled for each further one.
        respect_robots: obey robots.txt (turn off only for sites you own).
        refetch: fetch URLs whose page is already stored.
        workers: threads fetching at once across all hosts.
        max_sitemaps: sitemap documents read for one ``--sitemap`` (nested sitemap indexes included).
        max_urls: URLs one feed, or one sitemap with all its nested sitemaps, may queue (10,000); the rest
            is left out with a warning, and the fetch summary says so.
        allow_private: connect to any address; by default only public addresses are fetched (see
            :mod:`pipeline.fetch.guard`), so a list, feed or redirect cannot reach this machine, the local
            network or a cloud metadata service. Set it for an intranet crawl.
    """

    user_agent: str = DEFAULT_USER_AGENT
    timeout: float = 20.0
    total_timeout: float = 120.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    per_host_concurrency: int = 2
    per_host_delay: float = 1.0
    max_crawl_delay: float = 30.0
    retries: int = 2
    backoff: float = 1.0
    respect_robots: bool = True
    refetch: bool = False
    workers: int = 8
    max_sitemaps: int = 50
    max_urls: int = 10_000
    allow_private: bool = False

    def __post_init__(self) -> None:
        if not self.user_agent.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in self.user_agent):
            raise ValueError("user_agent must be non-empty printable text")
        if not self.timeout > 0:
            raise ValueError("timeout must be > 0")
        if not self.total_timeout >= self.timeout:
            raise ValueError("total_timeout must be >= timeout")
        if self.max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must be >= 0")
        if self.per_host_concurrency < 1:
            raise ValueError("per_host_concurrency must be >= 1")
        if not self.per_host_delay >= 0:
            raise ValueError("per_host_delay must be >= 0")
        if not self.max_crawl_delay >= 0:
            raise ValueError("max_crawl_delay must be >= 0")
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if not self.backoff >= 0:
            raise ValueError("backoff must be >= 0")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.max_sitemaps < 1:
            raise ValueError("max_sitemaps must be >= 1")
        if self.max_urls < 1:
            raise ValueError("max_urls must be >= 1")

    @property
    def robots_token(self) -> str:
        """The product token robots.txt groups are matched against: the User-Agent's first word."""
        return re.split(r"[/\s]", self.user_agent.strip(), maxsplit=1)[0].lower()


@dataclass(slots=True)
class FetchResult:
    """What happened to one URL. ``path`` is the page (fetched, skipped), the sidecar (failed), or ``None``
    for a URL that is not an http(s) URL at all (nothing is written for it)."""

    url: str
    path: Path | None
    status: str  # "fetched" | "skipped" | "failed"
    reason: str | None = None
    detail: str = ""
    retryable: bool = False  # a failure that may pass on a later try (time-out, connection error, 429, 5xx)
