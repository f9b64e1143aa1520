"""Fetching: download pages politely into RAW, one file per URL, with a sidecar saying where it came from.

``pipeline fetch --urls FILE | --feed URL | --sitemap URL --raw DIR`` stores each page as
``RAW/<host>/<name>.html`` (``.txt`` for ``text/plain``) beside ``<name>.html.meta.json``::

    {"url": ..., "final_url": ..., "status": 200, "fetched_at": "2024-11-19T08:00:00Z",
     "content_type": "text/html; charset=utf-8", "bytes": 48213, "error": null}

A URL that cannot be fetched gets only the sidecar, with ``"error": {"reason": R, "detail": ...}`` and ``R``
one of :data:`pipeline.contract.FETCH_REASONS` or ``too_large``; ``pipeline clean`` reports it as that URL's
rejection (see :func:`pipeline.load.discover`). The path of a URL is fixed (:func:`page_path`), so a URL whose
page is there is not fetched again unless ``refetch`` is set.

Politeness: a User-Agent naming the tool, robots.txt read once per site and obeyed (RFC 9309, with its
``Crawl-delay``), at most ``per_host_concurrency`` requests in flight per host and ``per_host_delay`` seconds
between the starts of two requests to one host, time-outs, a size cap enforced while the body streams,
bounded redirects, and retries with exponential backoff only for answers that may change (time-outs,
connection errors, 429 and 5xx).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import io
import json
import logging
import os
import queue
import re
import tempfile
import threading
import time
import unicodedata
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from lxml import etree

from pipeline.load import SIDECAR_SUFFIX
from pipeline.writer import FILE_MODE, write_json_atomic

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "scrape-clean/0.1 (+https://example.invalid/scrape-clean)"
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to parse at least 500 KiB; the rest is ignored
MAX_RETRY_AFTER = 60.0  # longest Retry-After we wait for before a retry
PAGE_SUFFIX = ".html"
TEXT_SUFFIX = ".txt"  # text/plain pages: stored as .html, the loader would parse them as markup
NAME_MAX = 80  # characters of the readable part of a file name, before the hash
HOST_MAX = 100
_REDIRECTS = {301, 302, 303, 307, 308}


@dataclass(frozen=True, slots=True)
class FetchConfig:
    """How to fetch. Defaults suit a polite crawl of news sites; tests shrink the times.

    Attributes:
        user_agent: sent with every request; its first word (``scrape-clean``) is the robots.txt token.
        timeout: seconds to connect, and seconds to wait for each read of the answer.
        total_timeout: seconds one response may take from request to last byte (a server that trickles).
        max_bytes: largest body kept (after decompression); a longer one is cut off while streaming.
        max_redirects: redirects followed for one URL; more, or a cycle, is ``redirect_loop``.
        per_host_concurrency: requests in flight to one host at once.
        per_host_delay: seconds between the starts of two requests to one host.
        max_crawl_delay: largest robots.txt ``Crawl-delay`` honoured (a bigger one is cut to this).
        retries: further attempts after a time-out, connection error, 429 or 5xx (0: Prefect retries).
        backoff: seconds before the first retry, doubled for each further one.
        respect_robots: obey robots.txt (turn off only for sites you own).
        refetch: fetch URLs whose page is already stored.
        workers: threads fetching at once across all hosts.
        max_sitemaps: sitemap documents read for one ``--sitemap`` (nested sitemap indexes included).
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


class DiscoveryError(Exception):
    """A feed or sitemap given to discover URLs could not be fetched or is not a feed or sitemap."""


# ---------------------------------------------------------------------------------------------------
# URLs and where their pages go


def canonical_url(url: str) -> str:
    """The URL as fetched and stored: surrounding space and the ``#fragment`` dropped, scheme and host
    lower-cased, an empty path made ``/``.

    Raises:
        ValueError: not an absolute http(s) URL with a usable host (or it holds spaces or control
            characters).
    """
    url = url.strip()
    if not url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValueError(f"not a URL: {url!r}")
    parts = urlsplit(url)  # ValueError for a malformed IPv6 host
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in URL: {url!r}")
    _host_folder(scheme, parts.hostname, parts.port)  # ValueError for a bad port or an unusable host
    netloc = parts.netloc if "@" in parts.netloc else parts.netloc.lower()
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _host_folder(scheme: str, hostname: str, port: int | None) -> str:
    """A safe folder name for a host: IDNA (punycode) ASCII, ``[a-z0-9.-]``, then ``_PORT`` when the port
    is not the scheme's default."""
    try:
        host = hostname.encode("idna").decode("ascii")
    except UnicodeError:
        host = unicodedata.normalize("NFKD", hostname).encode("ascii", "ignore").decode("ascii")
    host = re.sub(r"[^a-z0-9.-]+", "-", host.lower())
    host = re.sub(r"\.{2,}", ".", host).strip(".-")[:HOST_MAX].strip(".-")
    if not host:
        raise ValueError(f"no usable host name in {hostname!r}")
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}_{port}"
    return host


_PAGE_EXTENSION = re.compile(r"\.(?:s?html?|xhtml|php\d?|aspx?|jsp|cfm)$")


def page_path(raw_dir: Path, url: str, suffix: str = PAGE_SUFFIX) -> Path:
    """Where the page of ``url`` is stored: ``raw_dir/<host>/<name><suffix>``, the same path every time.

    ``<host>`` is the lower-case host (punycode for a non-ASCII one, ``_PORT`` appended for a port that is not
    the default). ``<name>`` is the URL's path and query reduced to ``[a-z0-9._-]`` (accents folded, no
    ``..``, no leading dot, at most 80 characters) plus 12 hex digits of SHA-256 of the whole URL, so URLs
    that reduce alike do not collide. Nothing in a URL can make the path leave ``raw_dir`` or be hidden.

    Example:
        ``page_path(Path("raw"), "https://www.Example.com/news/2024/story.html?id=7")``
        is ``raw/www.example.com/news-2024-story.html-id-7-<hash>.html``.

    Raises:
        ValueError: ``url`` is not an http(s) URL (see :func:`canonical_url`).
    """
    url = canonical_url(url)
    parts = urlsplit(url)
    assert parts.hostname is not None  # canonical_url checked it
    host = _host_folder(parts.scheme, parts.hostname, parts.port)
    readable = unquote(parts.path + (f"?{parts.query}" if parts.query else ""))
    readable = unicodedata.normalize("NFKD", readable).encode("ascii", "ignore").decode("ascii").lower()
    readable = _PAGE_EXTENSION.sub("", readable) if not parts.query else readable
    readable = re.sub(r"[^a-z0-9._-]+", "-", readable)
    readable = re.sub(r"\.{2,}", ".", readable)
    readable = re.sub(r"-{2,}", "-", readable).strip("._-")[:NAME_MAX].strip("._-") or "index"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    path = raw_dir / host / f"{readable}-{digest}{suffix}"
    if path.parent.parent != raw_dir or path.name.startswith(".") or "/" in path.name:  # by construction
        raise ValueError(f"unsafe page path {path} for {url!r}")
    return path


def sidecar_path(page: Path) -> Path:
    """The ``.meta.json`` sidecar of a stored page."""
    return page.with_name(page.name + SIDECAR_SUFFIX)


def stored_page(raw_dir: Path, url: str) -> Path | None:
    """The page already fetched for ``url``: a page file whose sidecar records no error, else ``None``.

    A page without a readable sidecar (a run stopped between the two writes) does not count.
    """
    for suffix in (PAGE_SUFFIX, TEXT_SUFFIX):
        page = page_path(raw_dir, url, suffix)
        if page.is_file() and _read_meta(sidecar_path(page)).get("error", "missing") is None:
            return page
    return None


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


# ---------------------------------------------------------------------------------------------------
# robots.txt (RFC 9309)


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """The robots.txt rules that apply to our user agent on one site.

    urllib.robotparser is not used: it ignores the ``*`` and ``$`` wildcards news sites use
    (``Disallow: /*?share=``) and takes the first matching rule, where RFC 9309 and Google take the longest.
    """

    rules: tuple[tuple[bool, re.Pattern[str], int], ...] = ()  # (allow, pattern, length of the rule)
    crawl_delay: float | None = None
    note: str = ""  # why the site is off limits as a whole (robots.txt unreachable ...)

    @classmethod
    def allow_all(cls) -> RobotsRules:
        return cls()

    @classmethod
    def disallow_all(cls, note: str) -> RobotsRules:
        return cls(rules=((False, re.compile(""), 1),), note=note)

    @classmethod
    def parse(cls, text: str, token: str) -> RobotsRules:
        """The rules of the groups for ``token`` (case-insensitive), else of the ``*`` groups."""
        groups: list[tuple[list[str], list[tuple[str, str]]]] = []
        in_agents = False
        for raw_line in text.splitlines():
            line = raw_line.split("#", 1)[0].strip()
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key, value = key.strip().lower(), value.strip()
            if key == "user-agent":
                if not in_agents:
                    groups.append(([], []))
                    in_agents = True
                groups[-1][0].append(re.split(r"[/\s]", value, maxsplit=1)[0].lower())
            elif key in ("allow", "disallow", "crawl-delay") and groups:
                in_agents = False
                groups[-1][1].append((key, value))
        chosen = [lines for agents, lines in groups if token in agents]
        if not chosen:
            chosen = [lines for agents, lines in groups if "*" in agents]
        rules: list[tuple[bool, re.Pattern[str], int]] = []
        delay: float | None = None
        for lines in chosen:
            for key, value in lines:
                if key == "crawl-delay":
                    try:
                        delay = max(delay or 0.0, float(value))
                    except ValueError:
                        pass
                elif value:  # an empty Disallow allows everything, an empty Allow says nothing
                    pattern = _robots_path(value)
                    rules.append((key == "allow", _robots_pattern(pattern), len(pattern)))
        return cls(rules=tuple(rules), crawl_delay=delay)

    def allows(self, target: str) -> bool:
        """Whether the path-and-query ``target`` may be fetched: the longest matching rule decides, an
        allow wins a tie, no matching rule allows."""
        target = _robots_path(target)
        best: tuple[int, bool] | None = None
        for allow, pattern, length in self.rules:
            if pattern.match(target) and (best is None or (length, allow) > best):
                best = (length, allow)
        return best is None or best[1]


def _robots_path(path: str) -> str:
    """A path percent-encoded the one way (UTF-8, upper-case escapes), so rules and URLs compare alike."""
    encoded = quote(path, safe="/?=&;:@!$'()*+,-._~%")
    return re.sub(r"%[0-9a-f]{2}", lambda m: m.group(0).upper(), encoded)


def _robots_pattern(rule: str) -> re.Pattern[str]:
    anchored = rule.endswith("$")
    body = ".*".join(re.escape(part) for part in rule.rstrip("$").split("*"))
    return re.compile(body + (r"\Z" if anchored else ""))


class RobotsCache:
    """robots.txt rules per site (scheme, host, port), each fetched once per run, safe across threads."""

    def __init__(self) -> None:
        self._rules: dict[str, RobotsRules] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, origin: str, load: Callable[[], RobotsRules]) -> RobotsRules:
        """The rules of ``origin``, calling ``load`` the first time (other threads wait for it)."""
        with self._lock:
            site_lock = self._locks.setdefault(origin, threading.Lock())
        with site_lock:
            if origin not in self._rules:
                self._rules[origin] = load()
            return self._rules[origin]


# ---------------------------------------------------------------------------------------------------
# The polite HTTP client


class _Failed(Exception):
    """A request that produced no usable body, with its reason code (FETCH_REASONS or too_large)."""

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        status: int | None = None,
        content_type: str | None = None,
        final_url: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = status
        self.content_type = content_type
        self.final_url = final_url
        self.retryable = retryable
        self.retry_after = retry_after


class FetchCancelled(Exception):
    """The session's ``stop`` flag was set (Ctrl-C): the URL was not fetched and nothing was recorded."""


@dataclass(frozen=True, slots=True)
class _Accept:
    """What a request accepts: its Accept header, the media types kept, and what to do past the cap."""

    header: str
    allows: Callable[[str], bool]
    truncate: bool = False  # keep the first max_bytes instead of failing with too_large
    max_bytes: int | None = None  # None: the configuration's max_bytes


def _is_xml(media: str) -> bool:
    return media in ("text/xml", "application/xml") or media.endswith("+xml")


_PAGE = _Accept(
    "text/html,application/xhtml+xml,application/xml;q=0.9,text/plain;q=0.8,*/*;q=0.1",
    lambda media: (
        not media or media in ("text/html", "application/xhtml+xml", "text/plain") or _is_xml(media)
    ),
)
_DOCUMENT = _Accept(  # feeds and sitemaps: XML, JSON Feed, plain-text sitemaps, gzip; some serve text/html
    "application/rss+xml,application/atom+xml,application/feed+json,application/xml;q=0.9,"
    "text/xml;q=0.9,*/*;q=0.5",
    lambda media: (
        not media
        or _is_xml(media)
        or media
        in (
            "text/html",
            "text/plain",
            "application/json",
            "application/feed+json",
            "application/gzip",
            "application/x-gzip",
            "application/octet-stream",
        )
    ),
)
_ROBOTS = _Accept("text/plain,*/*;q=0.5", lambda media: True, truncate=True, max_bytes=ROBOTS_MAX_BYTES)


@dataclass(slots=True)
class _Response:
    url: str
    final_url: str
    status: int
    content_type: str
    body: bytes


@dataclass(slots=True)
class _HostGate:
    """At most ``concurrency`` requests in flight to one host, starts at least ``delay`` seconds apart."""

    slots: threading.BoundedSemaphore
    delay: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_start: float = 0.0

    @contextmanager
    def turn(self, stop: threading.Event) -> Iterator[None]:
        self.slots.acquire()
        try:
            with self.lock:
                now = time.monotonic()
                start = max(now, self.next_start)
                self.next_start = start + self.delay
            if start > now and stop.wait(start - now):
                raise FetchCancelled
            with self.lock:  # a thread that woke late pushes the next start back: spacing from real starts
                self.next_start = max(self.next_start, time.monotonic() + self.delay)
            yield
        finally:
            self.slots.release()


class FetchSession:
    """What one fetch run shares across its threads: the HTTP client, robots.txt per site, the per-host
    limits, and a stop flag. Use as a context manager, or call :meth:`close`.

    Example:
        >>> with FetchSession(config) as session:  # doctest: +SKIP
        ...     feed_urls = urls_from_feed("https://example.com/rss", config, session)
        ...     results = [fetch_url(u, Path("raw"), config, session) for u in feed_urls]
    """

    def __init__(self, config: FetchConfig) -> None:
        self.config = config
        self.robots = RobotsCache()
        self.stop = threading.Event()
        self._gates: dict[str, _HostGate] = {}
        self._gates_lock = threading.Lock()
        import httpx  # noqa: PLC0415 - 0.05 s to import, and only `pipeline fetch` needs it

        timeout = httpx.Timeout(config.timeout, pool=None)  # the pool wait is bounded by the gates
        limits = httpx.Limits(max_connections=config.workers * 2, max_keepalive_connections=config.workers)
        self._client = httpx.Client(
            headers={"User-Agent": config.user_agent},
            timeout=timeout,
            limits=limits,
            follow_redirects=False,  # followed by hand: robots.txt, loops and host limits apply per hop
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> FetchSession:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _gate(self, url: str) -> _HostGate:
        host = (urlsplit(url).hostname or "").lower()
        with self._gates_lock:
            gate = self._gates.get(host)
            if gate is None:
                gate = _HostGate(
                    threading.BoundedSemaphore(self.config.per_host_concurrency), self.config.per_host_delay
                )
                self._gates[host] = gate
            return gate

    def _get(self, url: str, accept: _Accept = _PAGE, *, check_robots: bool = True) -> _Response:
        """GET ``url``: robots.txt, host limits, redirects, caps, and retries with backoff.

        Raises:
            _Failed: no usable answer, with its reason.
            FetchCancelled: :attr:`stop` was set.
        """
        attempt = 0
        while True:
            if self.stop.is_set():
                raise FetchCancelled
            try:
                return self._follow(url, accept, check_robots)
            except _Failed as failure:
                if not failure.retryable or attempt >= self.config.retries:
                    raise
                pause = self.config.backoff * 2**attempt
                if failure.retry_after is not None:
                    pause = max(pause, min(failure.retry_after, MAX_RETRY_AFTER))
                attempt += 1
                log.debug("retry %d of %s in %.1f s after %s", attempt, url, pause, failure)
                if self.stop.wait(pause):
                    raise FetchCancelled from None

    def _follow(self, url: str, accept: _Accept, check_robots: bool) -> _Response:
        chain = [url]
        current = url
        for _ in range(self.config.max_redirects + 1):
            if check_robots:
                self._check_robots(current)
            with self._gate(current).turn(self.stop):
                answer = self._request(current, accept)
            if isinstance(answer, _Response):
                answer.url = url
                return answer
            try:
                target = canonical_url(urljoin(current, answer))
            except ValueError as err:
                raise _Failed(
                    "fetch_error", f"redirect to an unusable URL: {err}", final_url=current
                ) from None
            if target in chain:
                raise _Failed(
                    "redirect_loop",
                    f"redirect cycle: {' -> '.join(chain[chain.index(target) :])} -> {target}",
                    final_url=current,
                )
            chain.append(target)
            current = target
        raise _Failed(
            "redirect_loop",
            f"more than {self.config.max_redirects} redirects (last: {current})",
            final_url=current,
        )

    def _request(self, url: str, accept: _Accept) -> _Response | str:
        import httpx  # noqa: PLC0415 - see __init__

        """One GET without following redirects: the response, or the ``Location`` of a redirect."""
        cap = accept.max_bytes or self.config.max_bytes
        deadline = time.monotonic() + self.config.total_timeout
        try:
            with self._client.stream("GET", url, headers={"Accept": accept.header}) as response:
                status = response.status_code
                content_type = response.headers.get("content-type", "")
                if status in _REDIRECTS and response.headers.get("location"):
                    return response.headers["location"]
                if not 200 <= status < 300:
                    raise _Failed(
                        "http_error",
                        f"HTTP {status}",
                        status=status,
                        content_type=content_type or None,
                        final_url=url,
                        retryable=status == 429 or status >= 500,
                        retry_after=_retry_after(response.headers.get("retry-after")),
                    )
                media = content_type.split(";", 1)[0].strip().lower()

                def fail(reason: str, detail: str, retryable: bool = False) -> _Failed:
                    return _Failed(
                        reason,
                        detail,
                        status=status,
                        content_type=content_type or None,
                        final_url=url,
                        retryable=retryable,
                    )

                if not accept.allows(media):
                    raise fail("unsupported_type", f"content type {media!r}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > cap and not accept.truncate:
                    raise fail("too_large", f"Content-Length {declared} > cap {cap} bytes")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    if size + len(chunk) > cap:
                        if accept.truncate:
                            chunks.append(chunk[: cap - size])
                            break
                        raise fail("too_large", f"body over cap {cap} bytes (stopped at {size + len(chunk)})")
                    size += len(chunk)
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        limit = self.config.total_timeout
                        raise fail("timeout", f"body not complete within {limit:g} s", retryable=True)
                return _Response(url, url, status, content_type, b"".join(chunks))
        except httpx.TimeoutException as err:
            raise _Failed(
                "timeout",
                f"{type(err).__name__}: no answer within {self.config.timeout:g} s",
                final_url=url,
                retryable=True,
            ) from None
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as err:
            raise _Failed(
                "connection_error", f"{type(err).__name__}: {err}", final_url=url, retryable=True
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as err:
            raise _Failed("fetch_error", f"{type(err).__name__}: {err}", final_url=url) from None

    def _check_robots(self, url: str) -> None:
        if not self.config.respect_robots:
            return
        parts = urlsplit(url)
        if parts.path == "/robots.txt":
            return
        origin = f"{parts.scheme}://{parts.netloc}"
        rules = self.robots.get(origin, lambda: self._load_robots(origin))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if not rules.allows(target):
            why = rules.note or f"{origin}/robots.txt disallows {target} for {self.config.robots_token}"
            raise _Failed("robots_disallowed", why, final_url=url)

    def _load_robots(self, origin: str) -> RobotsRules:
        """Fetch and parse ``origin/robots.txt``. A 4xx answer (no file) allows everything, except 401 and
        403, which disallow everything like urllib.robotparser; an unreachable file (5xx, 429, time-out,
        connection error) disallows everything for the run, as RFC 9309 section 2.3.1.4 requires."""
        url = f"{origin}/robots.txt"
        try:
            response = self._get(url, _ROBOTS, check_robots=False)
        except _Failed as failure:
            if failure.reason == "redirect_loop":
                rules = RobotsRules.allow_all()  # RFC 9309: may be treated as unavailable
            elif failure.status is not None and 400 <= failure.status < 500 and failure.status != 429:
                rules = (
                    RobotsRules.disallow_all(f"{url} answered HTTP {failure.status}: treated as disallow-all")
                    if failure.status in (401, 403)
                    else RobotsRules.allow_all()
                )
            else:
                log.warning("%s unreachable (%s): no page of this site is fetched in this run", url, failure)
                rules = RobotsRules.disallow_all(
                    f"{url} unreachable ({failure.reason}: {failure.detail}): treated as disallow-all"
                )
        else:
            rules = RobotsRules.parse(response.body.decode("utf-8", "replace"), self.config.robots_token)
        if rules.crawl_delay:
            gate = self._gate(url)
            gate.delay = max(gate.delay, min(rules.crawl_delay, self.config.max_crawl_delay))
        return rules


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


# ---------------------------------------------------------------------------------------------------
# Fetching and storing pages


def fetch_url(
    url: str, raw_dir: Path, config: FetchConfig, session: FetchSession | None = None
) -> FetchResult:
    """Fetch one URL into ``raw_dir`` (page and sidecar, or only an error sidecar); never raises for a
    network or site problem.

    Args:
        url: an http(s) URL; its ``#fragment`` is ignored.
        raw_dir: the RAW folder.
        config: the fetch configuration (``refetch`` decides whether a stored page is fetched again).
        session: shared robots.txt cache, host limits and client of a run; a private one when ``None``
            (then robots.txt is fetched for this URL alone).

    Returns:
        ``fetched``, ``skipped`` (already stored) or ``failed`` with the reason code. A failed refetch
        leaves the page fetched earlier in place.

    Raises:
        FetchCancelled: the session's ``stop`` flag was set.
        ValueError: ``session`` was made for another configuration.
    """
    try:
        target = canonical_url(url)
    except ValueError as err:
        return FetchResult(url, None, "failed", "fetch_error", str(err))
    _check_session(session, config)
    raw_dir = Path(raw_dir)
    if not config.refetch:
        existing = stored_page(raw_dir, target)
        if existing is not None:
            return FetchResult(target, existing, "skipped", None, "already fetched")
    own = session is None
    active = session or FetchSession(config)
    try:
        try:
            response = active._get(target, _PAGE)
        except _Failed as failure:
            return _store_failure(raw_dir, target, failure)
        except (FetchCancelled, KeyboardInterrupt):
            raise
        except Exception as err:  # a bug of ours met this URL: record it, the run goes on
            log.warning("fetch of %s failed: %s: %s", target, type(err).__name__, err)
            return _store_failure(raw_dir, target, _Failed("fetch_error", f"{type(err).__name__}: {err}"))
        return _store_page(raw_dir, target, response)
    finally:
        if own:
            active.close()


def _check_session(session: FetchSession | None, config: FetchConfig) -> None:
    """A shared session must have been made for the same configuration (``refetch`` aside)."""
    if session is not None and replace(session.config, refetch=config.refetch) != config:
        raise ValueError("the session was made for another FetchConfig")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(name, FILE_MODE)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _store_page(raw_dir: Path, url: str, response: _Response) -> FetchResult:
    media = response.content_type.split(";", 1)[0].strip().lower()
    suffix = TEXT_SUFFIX if media == "text/plain" else PAGE_SUFFIX
    page = page_path(raw_dir, url, suffix)
    meta = {
        "url": url,
        "final_url": response.final_url,
        "status": response.status,
        "fetched_at": _now(),
        "content_type": response.content_type or None,
        "bytes": len(response.body),
        "error": None,
    }
    try:
        # Page first: a sidecar with no page would read as a failed fetch if the run stopped in between.
        _write_bytes_atomic(page, response.body)
        write_json_atomic(sidecar_path(page), meta)
        other = page_path(raw_dir, url, PAGE_SUFFIX if suffix == TEXT_SUFFIX else TEXT_SUFFIX)
        other.unlink(missing_ok=True)  # a copy of another type, or the error sidecar, from an earlier run
        sidecar_path(other).unlink(missing_ok=True)
    except OSError as err:
        return FetchResult(url, page, "failed", "fetch_error", f"could not write {page}: {err}")
    return FetchResult(url, page, "fetched", None, f"HTTP {response.status}, {len(response.body)} bytes")


def _store_failure(raw_dir: Path, url: str, failure: _Failed) -> FetchResult:
    earlier = stored_page(raw_dir, url)
    retryable = failure.retryable
    if earlier is not None:
        detail = f"{failure.detail}; kept the earlier copy"
        return FetchResult(url, earlier, "failed", failure.reason, detail, retryable)
    sidecar = sidecar_path(page_path(raw_dir, url))
    meta = {
        "url": url,
        "final_url": failure.final_url,
        "status": failure.status,
        "fetched_at": _now(),
        "content_type": failure.content_type,
        "bytes": None,
        "error": {"reason": failure.reason, "detail": failure.detail},
    }
    try:
        for suffix in (PAGE_SUFFIX, TEXT_SUFFIX):  # a page left by an interrupted run: only the sidecar stays
            page_path(raw_dir, url, suffix).unlink(missing_ok=True)
        sidecar_path(page_path(raw_dir, url, TEXT_SUFFIX)).unlink(missing_ok=True)
        write_json_atomic(sidecar, meta)
    except OSError as err:
        detail = f"{failure.detail}; could not write: {err}"
        return FetchResult(url, sidecar, "failed", failure.reason, detail, retryable)
    return FetchResult(url, sidecar, "failed", failure.reason, failure.detail, retryable)


def fetch_all(
    urls: list[str],
    raw_dir: Path,
    config: FetchConfig,
    progress: Callable[[int, int], None] | None = None,
    session: FetchSession | None = None,
) -> list[FetchResult]:
    """Fetch many URLs: duplicates (after dropping fragments) fetched once, hosts in parallel on
    ``config.workers`` threads, each host within its concurrency and delay limits.

    Args:
        progress: called in the calling thread as ``progress(done, total)`` after each URL.
        session: a session shared with discovery (:func:`urls_from_feed`), else a private one.

    Returns:
        One result per distinct URL, in the order the URLs first appear.
    """
    _check_session(session, config)
    raw_dir = Path(raw_dir)
    order: dict[str, None] = {}  # distinct URLs (invalid ones as given), in first-seen order
    results: dict[str, FetchResult] = {}
    hosts: dict[str, deque[str]] = {}
    for url in urls:
        try:
            target = canonical_url(url)
        except ValueError as err:
            if url not in order:
                order[url] = None
                results[url] = FetchResult(url, None, "failed", "fetch_error", str(err))
            continue
        if target not in order:
            order[target] = None
            hosts.setdefault(_host_key(target), deque()).append(target)
    total = len(order)
    done = len(results)
    if progress and done:
        progress(done, total)
    if not hosts:
        return [results[url] for url in order]
    own = session is None
    active = session or FetchSession(config)
    finished: queue.Queue[FetchResult] = queue.Queue()

    def lane(pending: deque[str]) -> None:
        while not active.stop.is_set():
            try:
                url = pending.popleft()
            except IndexError:
                return
            try:
                finished.put(fetch_url(url, raw_dir, config, active))
            except FetchCancelled:
                return
            except Exception as err:  # noqa: BLE001 - one URL must not stop the run
                finished.put(FetchResult(url, None, "failed", "fetch_error", f"{type(err).__name__}: {err}"))

    # Lanes interleaved across hosts, so a long list from one site does not hold every thread.
    lanes = [
        pending
        for round_ in range(config.per_host_concurrency)
        for pending in hosts.values()
        if round_ < len(pending)
    ]
    pool = ThreadPoolExecutor(max_workers=min(config.workers, len(lanes)), thread_name_prefix="fetch")
    try:
        futures: list[Future[None]] = [pool.submit(lane, pending) for pending in lanes]
        while done < total:
            try:
                result = finished.get(timeout=0.2)
            except queue.Empty:
                if all(f.done() for f in futures) and finished.empty():
                    for future in futures:
                        future.result()  # a lane that died: raise its error
                    break
                continue
            results[result.url] = result
            done += 1
            if progress:
                progress(done, total)
    except BaseException:
        active.stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if own:
            active.close()
    return [
        results.get(url) or FetchResult(url, None, "failed", "fetch_error", "not fetched (run stopped)")
        for url in order
    ]


def _host_key(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


# ---------------------------------------------------------------------------------------------------
# Discovery: URL lists, feeds, sitemaps


def urls_from_file(path: Path) -> list[str]:
    """The URLs listed in a text file, one a line; blank lines and ``#`` comment lines are ignored.

    Lines that are not http(s) URLs are skipped with one warning naming them. Duplicates are dropped.

    Raises:
        OSError, UnicodeDecodeError: the file cannot be read as UTF-8 text.
    """
    text = Path(path).read_text(encoding="utf-8-sig")
    urls: dict[str, None] = {}
    invalid: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            urls[canonical_url(line)] = None
        except ValueError:
            invalid.append(f"line {number}: {line[:80]!r}")
    if invalid:
        log.warning(
            "%s: %d line(s) are not http(s) URLs and were skipped (%s%s)",
            path,
            len(invalid),
            "; ".join(invalid[:5]),
            "; ..." if len(invalid) > 5 else "",
        )
    return list(urls)


# Strict: lxml's recover mode reads "?a=1&b=2" (an ampersand left unescaped, common in feeds) as "?a=1=2".
# A document that is not well-formed goes to the regular-expression readers instead, which keep it as is.
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True)
_LOC = re.compile(r"<(?:[\w.-]+:)?loc>\s*(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?\s*</(?:[\w.-]+:)?loc>", re.S)
_SITEMAP_ROOT = re.compile(r"<(?:[\w.-]+:)?(urlset|sitemapindex)\b")


def _download_document(url: str, config: FetchConfig, session: FetchSession | None, what: str) -> bytes:
    try:
        target = canonical_url(url)
    except ValueError as err:
        raise DiscoveryError(f"{what} {url!r}: {err}") from None
    own = session is None
    active = session or FetchSession(config)
    try:
        body = active._get(target, _DOCUMENT).body
    except _Failed as failure:
        raise DiscoveryError(f"{what} {target}: {failure.reason} ({failure.detail})") from None
    finally:
        if own:
            active.close()
    if body[:2] == b"\x1f\x8b":  # a .xml.gz served as gzip bytes
        try:
            body = _gunzip(body, config.max_bytes)
        except (OSError, EOFError, zlib.error, ValueError) as err:
            raise DiscoveryError(f"{what} {target}: bad gzip data ({err})") from None
    return body


def _gunzip(data: bytes, cap: int) -> bytes:
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
        out = handle.read(cap + 1)
    if len(out) > cap:
        raise ValueError(f"decompressed size over cap {cap} bytes")
    return out


def _localname(element: Any) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _children(element: Any, name: str) -> list[Any]:
    return [child for child in element if _localname(child) == name]


def _unique_urls(candidates: list[str], base: str) -> list[str]:
    found: dict[str, None] = {}
    for candidate in candidates:
        if not candidate.strip():
            continue  # urljoin would make an empty one the base URL itself
        try:
            found[canonical_url(urljoin(base, candidate.strip()))] = None
        except ValueError:
            continue
    return list(found)


def urls_from_feed(url: str, config: FetchConfig, session: FetchSession | None = None) -> list[str]:
    """The article URLs of an RSS (0.9x, 1.0, 2.0), Atom or JSON feed, in feed order.

    The feed is fetched with this module's client (robots.txt, limits and caps apply). RSS and Atom are
    read with lxml item by item (``item/link``, else a permalink ``guid``; ``entry/link`` with
    ``rel="alternate"`` or none, resolved against ``xml:base``), so the channel's home-page link is not
    taken for an article. JSON Feed, and XML too broken for lxml to recover, go to trafilatura's
    ``feeds.find_links``. trafilatura's ``find_feed_urls``/``extract_links`` are not used: they fetch with
    their own client and drop links whose host courlan rejects (IP addresses, ``localhost``) or that are
    not on the feed's domain.

    Raises:
        DiscoveryError: the feed cannot be fetched or is not a feed.
    """
    from trafilatura.feeds import FeedParameters, find_links, is_potential_feed  # noqa: PLC0415 - 0.1 s

    body = _download_document(url, config, session, "feed")
    target = canonical_url(url)
    text = body.decode("utf-8", "replace").lstrip("\ufeff").strip()
    if text.startswith("{"):
        host = urlsplit(target).hostname or ""
        links = find_links(text, FeedParameters(target, host, target))
        if not links:
            raise DiscoveryError(f"feed {target}: a JSON document with no feed items")
        return _unique_urls(links, target)
    root = _parse_xml(body, target)
    kind = _localname(root) if root is not None else ""
    candidates: list[str] = []
    if kind in ("rss", "RDF", "rdf"):
        for item in (el for el in root.iter() if _localname(el) == "item"):
            link = next((c.text for c in _children(item, "link") if c.text and c.text.strip()), None)
            if link is None:
                link = item.get("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about")
            if link is None:
                link = next(
                    (
                        c.text
                        for c in _children(item, "guid")
                        if c.text and c.get("isPermaLink", "true").lower() != "false"
                    ),
                    None,
                )
            if link:
                candidates.append(link)
    elif kind == "feed":
        for entry in _children(root, "entry"):
            for link in _children(entry, "link"):
                href = link.get("href")
                rel, kind_of_link = link.get("rel", "alternate"), link.get("type", "text/html")
                if href and rel == "alternate" and kind_of_link in ("text/html", "application/xhtml+xml"):
                    candidates.append(urljoin(link.base or target, href))
                    break
    elif root is None and is_potential_feed(text):
        # Not well-formed: trafilatura's regular expressions, which cannot tell an item's link from the
        # channel's, so the feed itself and its site's home page are dropped.
        host = urlsplit(target).hostname or ""
        for link in find_links(text, FeedParameters(target, host, target)):
            absolute = urljoin(target, html.unescape(link.strip()))
            if absolute != target and urlsplit(absolute).path not in ("", "/"):
                candidates.append(absolute)
    else:
        raise DiscoveryError(f"feed {target}: not an RSS, Atom or JSON feed")
    return _unique_urls(candidates, target)


def _parse_xml(body: bytes, base_url: str) -> Any:
    try:
        return etree.fromstring(body, _XML_PARSER, base_url=base_url)
    except etree.XMLSyntaxError:
        return None


def urls_from_sitemap(url: str, config: FetchConfig, session: FetchSession | None = None) -> list[str]:
    """The page URLs of a sitemap (XML ``urlset``, plain-text list, either gzipped), following sitemap
    indexes breadth-first up to ``config.max_sitemaps`` documents, each read at most once.

    Parsed with lxml by structure (``sitemapindex/sitemap/loc`` are sitemaps, ``urlset/url/loc`` pages,
    whatever the namespace). trafilatura's ``sitemap_search`` is not used: it fetches with its own client,
    drops IP-address and ``localhost`` hosts and other domains, and tells a nested sitemap from a page by
    a ``.xml`` ending. A nested sitemap that fails is logged and skipped.

    Raises:
        DiscoveryError: the first sitemap cannot be fetched or is not a sitemap.
    """
    own = session is None
    active = session or FetchSession(config)
    try:
        first = canonical_url(url) if _is_url(url) else url
        pending = deque([first])
        seen: set[str] = set()
        pages: dict[str, None] = {}
        while pending and len(seen) < config.max_sitemaps:
            current = pending.popleft()
            if current in seen:
                continue
            seen.add(current)
            try:
                nested, found = _read_sitemap(current, config, active)
            except DiscoveryError as err:
                if current == first:
                    raise
                log.warning("skipped a nested sitemap: %s", err)
                continue
            pages.update(dict.fromkeys(found))
            pending.extend(s for s in nested if s not in seen)
        if pending:
            log.warning("%s: stopped after %d sitemaps (max_sitemaps)", first, config.max_sitemaps)
        return list(pages)
    finally:
        if own:
            active.close()


def _is_url(url: str) -> bool:
    try:
        canonical_url(url)
    except ValueError:
        return False
    return True


def _read_sitemap(url: str, config: FetchConfig, session: FetchSession) -> tuple[list[str], list[str]]:
    """One sitemap document: (nested sitemaps, page URLs)."""
    body = _download_document(url, config, session, "sitemap")
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped.startswith(b"<"):  # plain-text sitemap: one URL a line
        lines = stripped.decode("utf-8", "replace").splitlines()
        found = _unique_urls([line for line in lines if line.strip().lower().startswith("http")], url)
        if not found:
            raise DiscoveryError(f"sitemap {url}: no URLs in a plain-text document")
        return [], found
    root = _parse_xml(stripped, url)
    if root is not None:
        kind = _localname(root)
        entry = "url" if kind == "urlset" else "sitemap"
        locations = [
            loc.text for item in _children(root, entry) for loc in _children(item, "loc") if loc.text
        ]
    else:  # not well-formed: every <loc>, unescaped by hand
        text = stripped.decode("utf-8", "replace")
        match = _SITEMAP_ROOT.search(text)
        kind = match.group(1) if match else ""
        locations = [html.unescape(m.group(1)) for m in _LOC.finditer(text)]
    if kind not in ("urlset", "sitemapindex"):
        raise DiscoveryError(f"sitemap {url}: not a sitemap (root element {kind or 'unreadable'!r})")
    found = _unique_urls(locations, url)
    return ([], found) if kind == "urlset" else (found, [])


# ---------------------------------------------------------------------------------------------------
# Command line (wired into pipeline/cli.py as ``pipeline fetch``)


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
        help="connect/read time-out, s (default: %(default)s)",
    )
    parser.add_argument(
        "--max-bytes", type=int, default=defaults.max_bytes, help="largest page kept (default: %(default)s)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=defaults.retries,
        help="retries after a time-out, connection error or 5xx (default: %(default)s)",
    )
    parser.add_argument("--user-agent", default=defaults.user_agent, help="User-Agent (default: %(default)s)")


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
        )
    except ValueError as err:
        raise UsageError(str(err)) from err
    raw = Path(args.raw)
    if raw.exists() and not raw.is_dir():
        raise UsageError(f"--raw is not a folder: {raw}")
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
    print(format_fetch_summary(results))
    return 0


def format_fetch_summary(results: list[FetchResult]) -> str:
    """``N URLs: A fetched, B skipped (already fetched), C failed (http_error 2, timeout 1)``."""
    counts = Counter(r.status for r in results)
    reasons = Counter(r.reason or "fetch_error" for r in results if r.status == "failed")
    by_reason = ", ".join(
        f"{reason} {n}" for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return (
        f"{len(results)} URLs: {counts['fetched']} fetched, {counts['skipped']} skipped (already fetched), "
        f"{counts['failed']} failed{f' ({by_reason})' if by_reason else ''}"
    )
