"""The polite HTTP client one fetch run shares: per-host limits, robots.txt, redirects, caps and retries."""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from pipeline.fetch.config import FetchConfig
from pipeline.fetch.decode import ENCODINGS, BodyDecoder, UnsupportedEncoding
from pipeline.fetch.guard import AddressGuard, BlockedAddress, Resolver, system_resolver
from pipeline.fetch.robots import ROBOTS_MAX_BYTES, RobotsCache, RobotsRules
from pipeline.fetch.storage import canonical_url

if TYPE_CHECKING:
    from pipeline.fetch.network import Connector

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 60.0  # longest Retry-After we wait for before a retry
_REDIRECTS = {301, 302, 303, 307, 308}


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

    Every connection passes the address guard (:mod:`pipeline.fetch.guard`; off with
    ``config.allow_private``). ``HTTP(S)_PROXY`` variables are not used: a proxy would resolve the names
    where the guard cannot see the addresses.

    Args:
        config: the fetch configuration.
        resolver: how host names are resolved, ``resolver(host, port) -> addresses`` (tests pass a stub);
            the system's resolver when ``None``.
        connect: how a checked address is connected to (tests pass one that records it); a plain TCP
            connection when ``None``.

    Example:
        >>> with FetchSession(config) as session:  # doctest: +SKIP
        ...     feed_urls = urls_from_feed("https://example.com/rss", config, session)
        ...     results = [fetch_url(u, Path("raw"), config, session) for u in feed_urls]
    """

    def __init__(
        self, config: FetchConfig, *, resolver: Resolver | None = None, connect: Connector | None = None
    ) -> None:
        self.config = config
        self.robots = RobotsCache()
        self.stop = threading.Event()
        self._gates: dict[str, _HostGate] = {}
        self._gates_lock = threading.Lock()
        import httpx  # noqa: PLC0415 - 0.05 s to import, and only `pipeline fetch` needs it

        from pipeline.fetch import network  # noqa: PLC0415 - imports httpcore (0.08 s)

        self.guard = AddressGuard(config.allow_private, resolver or system_resolver)
        self.deadlines = network.Deadlines()
        backend = network.GuardedBackend(self.guard, self.deadlines, connect or network.open_socket)
        timeout = httpx.Timeout(config.timeout, pool=None)  # the pool wait is bounded by the gates
        limits = httpx.Limits(max_connections=config.workers * 2, max_keepalive_connections=config.workers)
        self._client = httpx.Client(
            # Only what decode.BodyDecoder decodes (httpx would add br or zstd once their packages are in).
            headers={"User-Agent": config.user_agent, "Accept-Encoding": ", ".join(ENCODINGS)},
            timeout=timeout,
            transport=network.guarded_transport(backend, limits),
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
        """GET ``url``: robots.txt, host limits, redirects, caps, and retries with backoff, all within
        one deadline (``config.total_timeout`` from the first request).

        Raises:
            _Failed: no usable answer, with its reason.
            FetchCancelled: :attr:`stop` was set.
        """
        budget = _Budget(self.config.total_timeout)
        attempt = 0
        while True:
            if self.stop.is_set():
                raise FetchCancelled
            try:
                return self._follow(url, accept, check_robots, budget)
            except _Failed as failure:
                if not failure.retryable or attempt >= self.config.retries:
                    raise
                pause = self.config.backoff * 2**attempt
                if failure.retry_after is not None:
                    pause = max(pause, min(failure.retry_after, MAX_RETRY_AFTER))
                if not budget.has_time_after(pause):
                    log.debug("no retry of %s: its deadline ends within the %.1f s pause", url, pause)
                    raise
                attempt += 1
                log.debug("retry %d of %s in %.1f s after %s", attempt, url, pause, failure)
                if self.stop.wait(pause):
                    raise FetchCancelled from None

    def _follow(self, url: str, accept: _Accept, check_robots: bool, budget: _Budget) -> _Response:
        chain = [url]
        current = url
        for _ in range(self.config.max_redirects + 1):
            if check_robots:
                self._check_robots(current)
            with self._gate(current).turn(self.stop):
                answer = self._request(current, accept, budget)
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

    def _request(self, url: str, accept: _Accept, budget: _Budget) -> _Response | str:
        """One GET without following redirects: the response, or the ``Location`` of a redirect.

        Connect, headers and body end by the budget's deadline (the network stream's every read and write
        waits at most until then), and the body is decoded here a bounded piece at a time, so the size cap
        counts decompressed bytes and stops a compressed bomb within a byte of the cap.
        """
        import httpx  # noqa: PLC0415 - see __init__

        cap = accept.max_bytes or self.config.max_bytes
        deadline = budget.start()
        try:
            with (
                self.deadlines.until(deadline),
                self._client.stream("GET", url, headers={"Accept": accept.header}) as response,
            ):
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
                try:
                    decoder = BodyDecoder(response.headers.get("content-encoding", ""))
                except UnsupportedEncoding as err:
                    raise fail("unsupported_type", str(err)) from None
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > cap and not accept.truncate:
                    raise fail("too_large", f"Content-Length {declared} > cap {cap} bytes")
                chunks: list[bytes] = []
                size = 0
                try:
                    for piece in _decoded(response.iter_raw(), decoder, cap):
                        if size + len(piece) > cap:
                            if accept.truncate:
                                chunks.append(piece[: cap - size])
                                break
                            stopped = f"stopped at {size + len(piece)}"
                            decoded = f" decompressed from {decoder.encoding}" if decoder.encoding else ""
                            raise fail("too_large", f"body over cap {cap} bytes ({stopped}{decoded})")
                        size += len(piece)
                        chunks.append(piece)
                        if time.monotonic() > deadline:
                            raise fail("timeout", self._timeout_detail(None, deadline), retryable=True)
                except httpx.TimeoutException as err:  # here, unlike below, the status is known
                    raise fail("timeout", self._timeout_detail(err, deadline), retryable=True) from None
                except zlib.error as err:
                    raise fail("fetch_error", f"bad {decoder.encoding} data: {err}") from None
                return _Response(url, url, status, content_type, b"".join(chunks))
        except BlockedAddress as err:
            raise _Failed("blocked_address", str(err), final_url=url) from None
        except httpx.TimeoutException as err:
            detail = self._timeout_detail(err, deadline)
            raise _Failed("timeout", detail, final_url=url, retryable=True) from None
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as err:
            raise _Failed(
                "connection_error", f"{type(err).__name__}: {err}", final_url=url, retryable=True
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as err:
            raise _Failed("fetch_error", f"{type(err).__name__}: {err}", final_url=url) from None

    def _timeout_detail(self, err: Exception | None, deadline: float) -> str:
        """Why a request timed out: the URL's deadline passed, or one wait exceeded ``config.timeout``."""
        if err is None or time.monotonic() >= deadline:  # socket waits end at the deadline, never before
            return (
                f"answer not complete within {self.config.total_timeout:g} s "
                "(connect, headers and body; redirects and retries included)"
            )
        return f"{type(err).__name__}: no answer within {self.config.timeout:g} s"

    def _check_robots(self, url: str) -> None:
        if not self.config.respect_robots:
            return
        parts = urlsplit(url)
        if parts.path == "/robots.txt":
            return
        origin = f"{parts.scheme}://{parts.netloc}"
        try:
            rules = self.robots.get(origin, lambda: self._load_robots(origin))
        except _Failed as failure:  # a blocked host: the page is refused for its address, not for robots
            raise _Failed(failure.reason, failure.detail, final_url=url) from None
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if not rules.allows(target):
            why = rules.note or f"{origin}/robots.txt disallows {target} for {self.config.robots_token}"
            raise _Failed(rules.reason, why, final_url=url)

    def _load_robots(self, origin: str) -> RobotsRules:
        """Fetch and parse ``origin/robots.txt``. A 4xx answer (no file) allows everything, except 401 and
        403, which disallow everything like urllib.robotparser; an unreachable file (5xx, 429, time-out,
        connection error) disallows everything for the run, as RFC 9309 section 2.3.1.4 requires. Where no
        answer came at all (connection refused, time-out), each page is refused with that cause as its
        reason (``connection_error``, ``timeout``): the host was down, robots.txt did not forbid anything."""
        url = f"{origin}/robots.txt"
        try:
            response = self._get(url, _ROBOTS, check_robots=False)
        except _Failed as failure:
            if failure.reason == "blocked_address":
                raise  # nothing was asked of the host: no rules to cache, each page says why
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
                    f"{url} unreachable ({failure.reason}: {failure.detail}): treated as disallow-all",
                    "robots_disallowed" if failure.status is not None else failure.reason,
                )
        else:
            rules = RobotsRules.parse(response.body.decode("utf-8", "replace"), self.config.robots_token)
        if rules.crawl_delay:
            gate = self._gate(url)
            gate.delay = max(gate.delay, min(rules.crawl_delay, self.config.max_crawl_delay))
        return rules


def _decoded(raw: Iterator[bytes], decoder: BodyDecoder, cap: int) -> Iterator[bytes]:
    """The decoded body in pieces that together never pass ``cap`` by more than one byte: each piece is
    inflated only as far as the room left under the cap, plus the byte that shows the body is over it."""
    size = 0
    for chunk in raw:
        decoder.feed(chunk)
        while piece := decoder.read(cap - size + 1):
            size += len(piece)
            yield piece
    if tail := decoder.flush():
        yield tail


@dataclass(slots=True)
class _Budget:
    """The time one URL may take, ``seconds`` from its first request: redirects and retries included."""

    seconds: float
    deadline: float | None = None

    def start(self) -> float:
        """The deadline, set by the first request (waiting for the host's turn before it does not count)."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.seconds
        return self.deadline

    def has_time_after(self, pause: float) -> bool:
        """Whether a retry after ``pause`` seconds would start before the deadline."""
        return self.deadline is None or time.monotonic() + pause < self.deadline


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None
