"""Fetching pages into RAW: one URL (:func:`fetch_url`) or many, hosts in parallel (:func:`fetch_all`)."""

from __future__ import annotations

import logging
import queue
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.fetch.config import FetchConfig, FetchResult
from pipeline.fetch.session import _PAGE, FetchCancelled, FetchSession, _Failed
from pipeline.fetch.storage import _store_failure, _store_page, canonical_url, stored_page

log = logging.getLogger(__name__)


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
