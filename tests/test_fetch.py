"""Tests for pipeline/fetch.py, against a real HTTP server on 127.0.0.1 (pytest-httpserver), never a live
site."""

from __future__ import annotations

import argparse
import gzip
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipeline.contract import FETCH_REASONS, read_jsonl, validate_output
from pipeline.fetch import (
    DiscoveryError,
    FetchConfig,
    FetchResult,
    FetchSession,
    RobotsRules,
    add_fetch_arguments,
    canonical_url,
    fetch_all,
    fetch_url,
    format_fetch_summary,
    page_path,
    run_fetch,
    sidecar_path,
    urls_from_feed,
    urls_from_file,
    urls_from_sitemap,
)
from pipeline.run import RunConfig, UsageError, clean_folder


def local(**settings: Any) -> FetchConfig:
    """A configuration for the test server on 127.0.0.1, which the address guard lets through only so."""
    return FetchConfig(allow_private=True, **settings)


# Tests shrink every wait: no delay, no retries, half-second time-outs.
FAST = local(timeout=0.5, total_timeout=2.0, per_host_delay=0.0, retries=0, backoff=0.0)
BENCHMARK = Path(__file__).parent / "data" / "article-extraction-benchmark" / "html"
SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def article(title: str, paragraphs: int = 6) -> str:
    body = "".join(
        f"<p>{title}: paragraph {n} says something long enough to count as the main text of a news "
        f"article, with several clauses, names and numbers ({n * 17}) so extraction keeps it.</p>"
        for n in range(paragraphs)
    )
    head = f"<!doctype html><html><head><title>{title}</title></head>"
    return f"{head}<body><article><h1>{title}</h1>{body}</article></body></html>"


@pytest.fixture(scope="module")
def make_httpserver() -> Iterator[HTTPServer]:
    """A threaded server (the plugin's default is not): slow handlers and concurrency tests need it."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def site(httpserver: HTTPServer) -> HTTPServer:
    """The test server with no robots.txt (404: everything allowed)."""
    httpserver.expect_request("/robots.txt").respond_with_data("not found", status=404)
    return httpserver


def requested(server: HTTPServer) -> list[str]:
    return [request.path for request, _ in server.log]


def sidecar(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def only(results: list[FetchResult]) -> FetchResult:
    assert len(results) == 1, results
    return results[0]


def assert_failed(result: FetchResult, reason: str, raw: Path) -> dict[str, object]:
    """The result failed with ``reason``, and only the error sidecar is on disk for its URL."""
    assert (result.status, result.reason) == ("failed", reason), result
    assert result.path == sidecar_path(page_path(raw, result.url))
    meta = sidecar(result.path)
    assert meta["error"] == {"reason": reason, "detail": result.detail}
    assert meta["url"] == result.url
    assert not page_path(raw, result.url).exists()
    assert not page_path(raw, result.url, ".txt").exists()
    return meta


# ---------------------------------------------------------------------------------------------------
# Pages and sidecars


def test_pages_are_stored_with_sidecars(site: HTTPServer, tmp_path: Path) -> None:
    html = article("Storm hits the coast")
    site.expect_request("/news/storm.html").respond_with_data(html, content_type="text/html; charset=utf-8")
    site.expect_request("/news/other").respond_with_data(article("Other"), content_type="text/html")
    urls = [
        site.url_for("/news/storm.html"),
        site.url_for("/news/other"),
        site.url_for("/news/storm.html#top"),
    ]

    results = fetch_all(urls, tmp_path, FAST)

    assert [r.status for r in results] == ["fetched", "fetched"]  # the #top copy is the same URL
    first = results[0]
    assert first.path == page_path(tmp_path, urls[0])
    assert first.path.parent == tmp_path / f"127.0.0.1_{site.port}"
    assert first.path.read_bytes() == html.encode("utf-8")
    meta = sidecar(sidecar_path(first.path))
    assert meta["url"] == meta["final_url"] == urls[0]
    assert meta["status"] == 200
    assert meta["content_type"] == "text/html; charset=utf-8"
    assert meta["bytes"] == len(html.encode("utf-8"))
    assert meta["error"] is None
    assert str(meta["fetched_at"]).endswith("Z")
    datetime.fromisoformat(str(meta["fetched_at"]).replace("Z", "+00:00"))
    assert requested(site).count("/robots.txt") == 1  # once per site per run
    agents = {request.headers.get("User-Agent") for request, _ in site.log}
    assert agents == {FAST.user_agent}
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temporary files left


def test_redirect_is_followed_and_recorded(site: HTTPServer, tmp_path: Path) -> None:
    site.expect_request("/old").respond_with_data("", status=301, headers={"Location": "/new"})
    site.expect_request("/new").respond_with_data(article("Moved"), content_type="text/html")

    result = fetch_url(site.url_for("/old"), tmp_path, FAST)

    assert result.status == "fetched"
    assert result.path == page_path(tmp_path, site.url_for("/old"))  # stored under the URL asked for
    meta = sidecar(sidecar_path(result.path))
    assert (meta["url"], meta["final_url"]) == (site.url_for("/old"), site.url_for("/new"))


def test_plain_text_is_stored_as_txt(site: HTTPServer, tmp_path: Path) -> None:
    site.expect_request("/notes").respond_with_data("Line one.\n\nLine two.\n", content_type="text/plain")

    result = fetch_url(site.url_for("/notes"), tmp_path, FAST)

    assert result.status == "fetched"
    assert result.path == page_path(tmp_path, site.url_for("/notes"), ".txt")
    assert result.path.read_text() == "Line one.\n\nLine two.\n"


# ---------------------------------------------------------------------------------------------------
# Failures: each gets only an error sidecar with its reason


def test_not_found_is_http_error(site: HTTPServer, tmp_path: Path) -> None:
    site.expect_request("/gone").respond_with_data("nope", status=404, content_type="text/html")

    result = fetch_url(site.url_for("/gone"), tmp_path, FAST)

    meta = assert_failed(result, "http_error", tmp_path)
    assert result.detail == "HTTP 404"
    assert meta["status"] == 404
    assert not result.retryable


def test_slow_page_times_out(site: HTTPServer, tmp_path: Path) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.5)
        return Response(article("Late"), content_type="text/html")

    site.expect_request("/slow").respond_with_handler(slow)
    config = local(timeout=0.3, total_timeout=1.0, per_host_delay=0, retries=0)
    started = time.monotonic()

    result = fetch_url(site.url_for("/slow"), tmp_path, config)

    assert time.monotonic() - started < 1.2
    assert_failed(result, "timeout", tmp_path)
    assert result.retryable


def test_trickling_page_hits_the_total_time_out(site: HTTPServer, tmp_path: Path) -> None:
    def trickle() -> Iterator[bytes]:
        yield b"<html><body>"
        for _ in range(40):
            time.sleep(0.1)  # each read arrives within the read time-out, the whole never does
            yield b"<p>more</p>"

    site.expect_request("/trickle").respond_with_response(Response(trickle(), content_type="text/html"))
    config = local(timeout=0.5, total_timeout=0.6, per_host_delay=0, retries=0)

    result = fetch_url(site.url_for("/trickle"), tmp_path, config)

    meta = assert_failed(result, "timeout", tmp_path)
    assert "not complete" in result.detail
    assert meta["status"] == 200  # the headers had come: the sidecar keeps them


def test_redirect_cycle_and_too_many_redirects(site: HTTPServer, tmp_path: Path) -> None:
    site.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    site.expect_request("/b").respond_with_data("", status=302, headers={"Location": "/a"})
    for n in range(8):
        site.expect_request(f"/hop{n}").respond_with_data(
            "", status=301, headers={"Location": f"/hop{n + 1}"}
        )

    cycle, chain = fetch_all([site.url_for("/a"), site.url_for("/hop0")], tmp_path, FAST)

    assert_failed(cycle, "redirect_loop", tmp_path)
    assert "cycle" in cycle.detail
    assert_failed(chain, "redirect_loop", tmp_path)
    assert "more than 5 redirects" in chain.detail
    assert "/hop6" not in requested(site)  # five redirects followed (hop0 -> hop5), then stopped


def test_oversized_body_is_cut_off_while_streaming(site: HTTPServer, tmp_path: Path) -> None:
    sent = {"bytes": 0}
    total = 800 * 65536  # 50 MiB, chunked: no Content-Length to refuse it by

    def body() -> Iterator[bytes]:
        for _ in range(800):
            sent["bytes"] += 65536
            yield b"<p>" + b"x" * 65529 + b"</p>"

    site.expect_request("/huge").respond_with_response(Response(body(), content_type="text/html"))
    config = local(timeout=0.5, total_timeout=5, max_bytes=100_000, per_host_delay=0, retries=0)

    result = fetch_url(site.url_for("/huge"), tmp_path, config)

    assert_failed(result, "too_large", tmp_path)
    time.sleep(0.3)  # let the server notice the closed connection
    assert sent["bytes"] < total / 4  # socket buffers hold a few MiB; the client read none of the rest


def test_declared_length_over_the_cap_is_refused_before_reading(site: HTTPServer, tmp_path: Path) -> None:
    site.expect_request("/big").respond_with_data(b"x" * 200_000, content_type="text/html")
    config = local(timeout=0.5, total_timeout=2, max_bytes=100_000, per_host_delay=0, retries=0)

    result = fetch_url(site.url_for("/big"), tmp_path, config)

    assert_failed(result, "too_large", tmp_path)
    assert result.detail == "Content-Length 200000 > cap 100000 bytes"


def test_non_html_content_type_is_unsupported(site: HTTPServer, tmp_path: Path) -> None:
    site.expect_request("/report.pdf").respond_with_data(b"%PDF-1.7 ...", content_type="application/pdf")

    result = fetch_url(site.url_for("/report.pdf"), tmp_path, FAST)

    meta = assert_failed(result, "unsupported_type", tmp_path)
    assert meta["content_type"] == "application/pdf"
    assert "application/pdf" in result.detail


def test_server_error_is_retried_with_backoff(site: HTTPServer, tmp_path: Path) -> None:
    answers = iter([Response("busy", status=503), Response("busy", status=503)])

    def flaky(request: Request) -> Response:
        return next(answers, Response(article("Back"), content_type="text/html"))

    site.expect_request("/flaky").respond_with_handler(flaky)
    config = local(timeout=0.5, total_timeout=2, per_host_delay=0, retries=2, backoff=0.05)
    started = time.monotonic()

    result = fetch_url(site.url_for("/flaky"), tmp_path, config)

    assert result.status == "fetched"
    assert requested(site).count("/flaky") == 3
    assert time.monotonic() - started >= 0.05 + 0.1  # backoff doubles: 0.05, then 0.1


def test_server_error_without_retries_fails_as_retryable(site: HTTPServer, tmp_path: Path) -> None:
    site.expect_request("/down").respond_with_data("busy", status=503)

    result = fetch_url(site.url_for("/down"), tmp_path, FAST)

    assert_failed(result, "http_error", tmp_path)
    assert (result.detail, result.retryable) == ("HTTP 503", True)
    assert requested(site).count("/down") == 1


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # free, and nothing listens once the socket is closed


@pytest.mark.parametrize("respect_robots", [False, True], ids=["page", "robots.txt first"])
def test_closed_port_is_connection_error(respect_robots: bool, tmp_path: Path) -> None:
    """A refused connection is named for what it is, also when the request refused was for robots.txt."""
    port = closed_port()
    config = local(timeout=0.5, total_timeout=2, per_host_delay=0, retries=0, respect_robots=respect_robots)

    result = fetch_url(f"http://127.0.0.1:{port}/x", tmp_path, config)

    assert_failed(result, "connection_error", tmp_path)
    assert "ConnectError" in result.detail
    assert ("robots.txt unreachable" in result.detail) == respect_robots


def test_every_reason_written_is_a_contract_reason(site: HTTPServer, tmp_path: Path) -> None:
    site.expect_request("/gone").respond_with_data("", status=410)
    site.expect_request("/pdf").respond_with_data(b"%PDF", content_type="application/pdf")
    results = fetch_all([site.url_for("/gone"), site.url_for("/pdf")], tmp_path, FAST)
    for result in results:
        assert result.reason in FETCH_REASONS


# ---------------------------------------------------------------------------------------------------
# robots.txt


def test_robots_disallowed_page_is_never_requested(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /private/\n", content_type="text/plain"
    )
    httpserver.expect_request("/public/a").respond_with_data(article("Public"), content_type="text/html")
    httpserver.expect_request("/private/b").respond_with_data(article("Private"), content_type="text/html")

    public, private = fetch_all(
        [httpserver.url_for("/public/a"), httpserver.url_for("/private/b")], tmp_path, FAST
    )

    assert public.status == "fetched"
    assert_failed(private, "robots_disallowed", tmp_path)
    assert "/private/b" in private.detail
    assert requested(httpserver) == ["/robots.txt", "/public/a"]


def test_robots_group_for_our_agent_wins_over_star(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nAllow: /\n\nUser-agent: Scrape-Clean\nDisallow: /\n", content_type="text/plain"
    )

    result = fetch_url(httpserver.url_for("/page"), tmp_path, FAST)

    assert_failed(result, "robots_disallowed", tmp_path)
    assert requested(httpserver) == ["/robots.txt"]


def test_unreachable_robots_disallows_the_site(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("down", status=503)

    results = fetch_all([httpserver.url_for("/a"), httpserver.url_for("/b")], tmp_path, FAST)

    for result in results:
        assert_failed(result, "robots_disallowed", tmp_path)
        assert "unreachable" in result.detail
    assert requested(httpserver) == ["/robots.txt"]  # asked once, and no page


def test_robots_crawl_delay_spaces_requests(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("User-agent: *\nCrawl-delay: 0.3\n")
    starts: list[float] = []

    def page(request: Request) -> Response:
        starts.append(time.monotonic())
        return Response(article("Paced"), content_type="text/html")

    httpserver.expect_request(re.compile("/p[0-9]")).respond_with_handler(page)
    config = local(timeout=0.5, total_timeout=2, per_host_delay=0, per_host_concurrency=1, retries=0)

    fetch_all([httpserver.url_for(f"/p{n}") for n in range(3)], tmp_path, config)

    assert len(starts) == 3
    assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) >= 0.25


@pytest.mark.parametrize(
    ("robots", "allowed", "disallowed"),
    [
        ("User-agent: *\nDisallow: /*?share=\n", ["/a?x=1"], ["/a?share=1", "/b/c?share=tw"]),
        ("User-agent: *\nDisallow: /*.pdf$\n", ["/a.pdf?x=1", "/a.pdfx"], ["/a.pdf", "/x/y.pdf"]),
        ("User-agent: *\nDisallow: /\nAllow: /news/\n", ["/news/a"], ["/", "/sport"]),  # longest wins
        ("User-agent: *\nAllow: /a\nDisallow: /a\n", ["/a"], []),  # allow wins a tie
        ("User-agent: *\nDisallow:\n", ["/anything"], []),  # empty Disallow: all allowed
        ("User-agent: other\nDisallow: /\n", ["/x"], []),  # no group for us, no * group
        ("User-agent: *\nDisallow: /caf\u00e9\n", [], ["/caf%C3%A9/menu", "/caf%c3%a9"]),
        (
            "User-agent: a\nUser-agent: *\nDisallow: /x\n# c\nSitemap: /s.xml\nDisallow: /y\n",
            [],
            ["/x", "/y"],
        ),
    ],
)
def test_robots_rules(robots: str, allowed: list[str], disallowed: list[str]) -> None:
    rules = RobotsRules.parse(robots, "scrape-clean")
    for path in allowed:
        assert rules.allows(path), path
    for path in disallowed:
        assert not rules.allows(path), path


# ---------------------------------------------------------------------------------------------------
# Skipping, refetching, replacing errors


def test_already_fetched_is_skipped_and_refetch_fetches_again(site: HTTPServer, tmp_path: Path) -> None:
    site.expect_request("/story").respond_with_data(article("Once"), content_type="text/html")
    url = site.url_for("/story")
    assert only(fetch_all([url], tmp_path, FAST)).status == "fetched"
    hits = len(site.log)

    again = only(fetch_all([url], tmp_path, FAST))

    assert (again.status, again.path) == ("skipped", page_path(tmp_path, url))
    assert len(site.log) == hits  # not even robots.txt

    refetched = only(fetch_all([url], tmp_path, replace(FAST, refetch=True)))
    assert refetched.status == "fetched"
    assert requested(site).count("/story") == 2


def test_later_success_replaces_the_error_sidecar(site: HTTPServer, tmp_path: Path) -> None:
    answers = iter([Response("nope", status=404)])
    site.expect_request("/later").respond_with_handler(
        lambda request: next(answers, Response(article("Later"), content_type="text/html"))
    )
    url = site.url_for("/later")
    assert_failed(fetch_url(url, tmp_path, FAST), "http_error", tmp_path)

    result = fetch_url(url, tmp_path, FAST)  # an error sidecar is not "already fetched"

    assert result.status == "fetched" and result.path is not None
    assert sidecar(sidecar_path(result.path))["error"] is None
    assert sorted(p.name for p in result.path.parent.iterdir()) == [
        result.path.name,
        sidecar_path(result.path).name,
    ]


def test_failed_refetch_keeps_the_earlier_copy(site: HTTPServer, tmp_path: Path) -> None:
    answers = iter([Response(article("Kept"), content_type="text/html")])
    site.expect_request("/kept").respond_with_handler(
        lambda request: next(answers, Response("down", status=500))
    )
    url = site.url_for("/kept")
    first = fetch_url(url, tmp_path, FAST)
    content = first.path.read_bytes() if first.path else b""

    result = fetch_url(url, tmp_path, replace(FAST, refetch=True))

    assert (result.status, result.reason, result.path) == ("failed", "http_error", first.path)
    assert "kept the earlier copy" in result.detail
    assert first.path is not None and first.path.read_bytes() == content
    assert sidecar(sidecar_path(first.path))["error"] is None


def test_page_without_sidecar_is_fetched_again(site: HTTPServer, tmp_path: Path) -> None:
    site.expect_request("/half").respond_with_data(article("Half"), content_type="text/html")
    url = site.url_for("/half")
    page = page_path(tmp_path, url)
    page.parent.mkdir(parents=True)
    page.write_text("left by a run stopped before its sidecar")

    assert fetch_url(url, tmp_path, FAST).status == "fetched"
    assert sidecar(sidecar_path(page))["error"] is None


# ---------------------------------------------------------------------------------------------------
# Per-host limits


def test_per_host_delay_spaces_request_starts(site: HTTPServer, tmp_path: Path) -> None:
    starts: list[float] = []

    def page(request: Request) -> Response:
        starts.append(time.monotonic())
        return Response(article("Paced"), content_type="text/html")

    site.expect_request(re.compile("/d[0-9]")).respond_with_handler(page)
    delay = 0.25
    config = local(timeout=0.5, total_timeout=2, per_host_delay=delay, per_host_concurrency=1, retries=0)

    results = fetch_all([site.url_for(f"/d{n}") for n in range(4)], tmp_path, config)

    assert [r.status for r in results] == ["fetched"] * 4
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    # Stamped on arrival by a server thread of this process: one late arrival shortens the next gap, so
    # each gap is checked loosely and the pace over all of them closely.
    assert len(gaps) == 3 and min(gaps) >= delay / 2, gaps
    assert starts[-1] - starts[0] >= 3 * delay - 0.05, gaps


def test_per_host_concurrency_is_a_ceiling(site: HTTPServer, tmp_path: Path) -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def page(request: Request) -> Response:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return Response(article("Parallel"), content_type="text/html")

    site.expect_request(re.compile("/c[0-9]")).respond_with_handler(page)
    config = local(timeout=1, total_timeout=2, per_host_delay=0, per_host_concurrency=2, workers=8)
    progress: list[tuple[int, int]] = []

    results = fetch_all(
        [site.url_for(f"/c{n}") for n in range(6)], tmp_path, config, lambda d, t: progress.append((d, t))
    )

    assert [r.status for r in results] == ["fetched"] * 6
    assert state["peak"] == 2
    assert progress[-1] == (6, 6) and len(progress) == 6

    # The same ceiling when callers bring their own threads and share one session (a Prefect task runner).
    state["peak"] = 0
    refetch = replace(config, refetch=True)
    with FetchSession(refetch) as session, ThreadPoolExecutor(max_workers=6) as pool:
        shared = list(
            pool.map(lambda n: fetch_url(site.url_for(f"/c{n}"), tmp_path, refetch, session), range(6))
        )
    assert [r.status for r in shared] == ["fetched"] * 6
    assert state["peak"] == 2


# ---------------------------------------------------------------------------------------------------
# Discovery: URL files, feeds, sitemaps


def test_urls_from_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text(
        "# today's list\n\nhttps://example.com/a\n  https://example.com/b#comments  \n"
        "ftp://example.com/file\nnot a url\nhttps://example.com/a\nHTTPS://EXAMPLE.com/c?x=1\n",
        encoding="utf-8",
    )

    urls = urls_from_file(listing)

    assert urls == ["https://example.com/a", "https://example.com/b", "https://example.com/c?x=1"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "line 5" in warnings[0] and "line 6" in warnings[0]


def rss(server: HTTPServer) -> str:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>
  <title>News</title><link>{server.url_for("/")}</link>
  <atom:link href="{server.url_for("/feed.xml")}" rel="self" type="application/rss+xml"/>
  <image><url>{server.url_for("/logo.png")}</url><link>{server.url_for("/")}</link></image>
  <item><title>One</title><link>{server.url_for("/news/one")}</link></item>
  <item><title>Two</title><link><![CDATA[{server.url_for("/news/two?id=2&amp=1")}]]></link></item>
  <item><title>Three</title><guid isPermaLink="true">{server.url_for("/news/three")}</guid></item>
  <item><title>Elsewhere</title><link>https://other.example/story</link></item>
  <item><title>Relative</title><link>/news/four</link></item>
</channel></rss>"""


def test_rss_feed_lists_its_items(site: HTTPServer, tmp_path: Path) -> None:
    site.expect_request("/feed.xml").respond_with_data(rss(site), content_type="application/rss+xml")

    urls = urls_from_feed(site.url_for("/feed.xml"), FAST)

    assert urls == [
        site.url_for("/news/one"),
        site.url_for("/news/two?id=2&amp=1"),
        site.url_for("/news/three"),
        "https://other.example/story",  # feeds may syndicate other sites; not filtered out
        site.url_for("/news/four"),
    ]


def test_atom_feed_lists_its_entries(site: HTTPServer) -> None:
    atom = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>News</title>
  <link rel="self" href="{site.url_for("/atom")}"/><link href="{site.url_for("/")}"/>
  <entry><title>A</title><link rel="alternate" type="text/html" href="{site.url_for("/a")}"/>
    <link rel="enclosure" href="{site.url_for("/a.mp3")}"/></entry>
  <entry><title>B</title><link rel="edit" href="{site.url_for("/edit/b")}"/>
    <link href="{site.url_for("/b")}"/></entry>
  <entry xml:base="{site.url_for("/section/")}"><title>C</title><link href="c.html"/></entry>
</feed>"""
    site.expect_request("/atom").respond_with_data(atom, content_type="application/atom+xml")

    urls = urls_from_feed(site.url_for("/atom"), FAST)

    assert urls == [site.url_for("/a"), site.url_for("/b"), site.url_for("/section/c.html")]


def test_rdf_and_json_feeds(site: HTTPServer) -> None:
    rdf = f"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
  <channel rdf:about="{site.url_for("/")}"><link>{site.url_for("/")}</link></channel>
  <item rdf:about="{site.url_for("/r1")}"><link>{site.url_for("/r1")}</link></item>
  <item rdf:about="{site.url_for("/r2")}"><title>no link element</title></item>
</rdf:RDF>"""
    json_feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "items": [{"id": "1", "url": site.url_for("/j1")}],
    }
    site.expect_request("/rdf").respond_with_data(rdf, content_type="application/rdf+xml")
    site.expect_request("/feed.json").respond_with_json(json_feed)

    assert urls_from_feed(site.url_for("/rdf"), FAST) == [site.url_for("/r1"), site.url_for("/r2")]
    assert urls_from_feed(site.url_for("/feed.json"), FAST) == [site.url_for("/j1")]


def test_feed_that_is_not_well_formed_keeps_its_urls_intact(site: HTTPServer) -> None:
    broken = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Tom & Jerry&nbsp;News</title><link>{site.url_for("/")}</link>
  <item><title>One</title><link>{site.url_for("/story?id=1&page=2")}</link></item>
  <item><title>Two</title><link>{site.url_for("/story?id=2&amp;page=3")}</link></item>
</channel></rss>"""
    site.expect_request("/broken.rss").respond_with_data(broken, content_type="application/rss+xml")

    urls = urls_from_feed(site.url_for("/broken.rss"), FAST)

    # lxml's recover mode would have read the first as "?id=1=2"; the home page link is not an article.
    assert urls == [site.url_for("/story?id=1&page=2"), site.url_for("/story?id=2&page=3")]


def test_sitemap_that_is_not_well_formed_keeps_its_urls_intact(site: HTTPServer) -> None:
    broken = (
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{site.url_for('/a?x=1&y=2')}</loc></url>"
        f"<url><loc>{site.url_for('/b?x=1&amp;y=2')}</loc></url><url><loc>&nbsp;</loc></url></urlset>"
    )
    site.expect_request("/broken.xml").respond_with_data(broken, content_type="application/xml")

    urls = urls_from_sitemap(site.url_for("/broken.xml"), FAST)

    assert urls == [site.url_for("/a?x=1&y=2"), site.url_for("/b?x=1&y=2")]


def test_feed_that_cannot_be_read_is_a_discovery_error(site: HTTPServer) -> None:
    site.expect_request("/missing.xml").respond_with_data("", status=404)
    site.expect_request("/home").respond_with_data(article("Home"), content_type="text/html")

    with pytest.raises(DiscoveryError, match="http_error"):
        urls_from_feed(site.url_for("/missing.xml"), FAST)
    with pytest.raises(DiscoveryError, match="not an RSS, Atom or JSON feed"):
        urls_from_feed(site.url_for("/home"), FAST)


def sitemap(*urls: str, index: bool = False) -> str:
    kind, item = ("sitemapindex", "sitemap") if index else ("urlset", "url")
    entries = "".join(f"<{item}><loc>{u}</loc><lastmod>2024-11-19</lastmod></{item}>" for u in urls)
    return f'<?xml version="1.0" encoding="UTF-8"?><{kind} xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</{kind}>'


def test_sitemap_lists_its_pages(site: HTTPServer) -> None:
    pages = [site.url_for(f"/news/{n}") for n in range(3)]
    site.expect_request("/sitemap.xml").respond_with_data(sitemap(*pages), content_type="application/xml")

    assert urls_from_sitemap(site.url_for("/sitemap.xml"), FAST) == pages


def test_sitemap_index_is_followed_with_a_cap(site: HTTPServer) -> None:
    u = site.url_for
    site.expect_request("/index.xml").respond_with_data(
        sitemap(u("/s1.xml"), u("/s2.xml.gz"), u("/broken.xml"), u("/index.xml"), index=True),
        content_type="application/xml",
    )
    site.expect_request("/s1.xml").respond_with_data(sitemap(u("/a"), u("/b")), content_type="text/xml")
    site.expect_request("/s2.xml.gz").respond_with_data(
        gzip.compress(sitemap(u("/b"), u("/c.xml")).encode()), content_type="application/gzip"
    )
    site.expect_request("/broken.xml").respond_with_data("", status=500)

    assert urls_from_sitemap(u("/index.xml"), FAST) == [u("/a"), u("/b"), u("/c.xml")]
    assert requested(site).count("/index.xml") == 1  # an index that lists itself is read once

    capped = replace(FAST, max_sitemaps=2)
    assert urls_from_sitemap(u("/index.xml"), capped) == [u("/a"), u("/b")]


def test_plain_text_sitemap_and_a_page_that_is_no_sitemap(site: HTTPServer) -> None:
    site.expect_request("/sitemap.txt").respond_with_data(
        f"{site.url_for('/t1')}\n\n{site.url_for('/t2')}\n", content_type="text/plain"
    )
    site.expect_request("/page").respond_with_data(article("Not a sitemap"), content_type="text/html")

    assert urls_from_sitemap(site.url_for("/sitemap.txt"), FAST) == [site.url_for("/t1"), site.url_for("/t2")]
    with pytest.raises(DiscoveryError, match="not a sitemap"):
        urls_from_sitemap(site.url_for("/page"), FAST)


def test_discovery_and_fetching_share_one_session(site: HTTPServer, tmp_path: Path) -> None:
    site.expect_request("/feed.xml").respond_with_data(rss(site), content_type="application/rss+xml")
    site.expect_request(re.compile("/news/.*")).respond_with_data(article("Item"), content_type="text/html")

    with FetchSession(FAST) as session:
        urls = urls_from_feed(site.url_for("/feed.xml"), FAST, session)
        local = [url for url in urls if url.startswith(site.url_for("/"))]
        results = fetch_all(local, tmp_path, FAST, session=session)

    assert [r.status for r in results] == ["fetched"] * 4
    assert requested(site).count("/robots.txt") == 1


# ---------------------------------------------------------------------------------------------------
# Paths derived from URLs are hostile


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/../../etc/passwd",
        "http://example.com/%2e%2e/%2e%2e/etc/passwd",
        "http://example.com/..%2f..%2fetc%2fpasswd",
        "http://example.com/.hidden",
        "http://example.com/.../....",
        "http://example.com/" + "a/" * 3000,
        "http://example.com/?q=../../x&next=/etc/passwd",
        "http://example.com/%00%0a%ff",
        "http://ex\u00e4mple.com/\u043d\u043e\u0432\u043e\u0441\u0442\u0438/\u8a18\u4e8b?id=\u00e9",
        "http://EXAMPLE.com:8080/News/Story.HTML",
        "http://example.com:80/",
        "http://user:secret@example.com/a",
        "http://[::1]:8080/a",
        "https://example.com/a\\..\\..\\b",
    ],
)
def test_page_path_stays_inside_raw_and_is_visible(url: str, tmp_path: Path) -> None:
    path = page_path(tmp_path, url)

    assert path.parent.parent == tmp_path
    assert SAFE_NAME.match(path.parent.name), path.parent.name
    assert SAFE_NAME.match(path.name), path.name
    assert ".." not in path.name and ".." not in path.parent.name
    assert len(path.name) <= 110
    assert path.resolve().is_relative_to(tmp_path.resolve())
    assert path == page_path(tmp_path, url)  # deterministic


def test_page_path_names(tmp_path: Path) -> None:
    assert page_path(tmp_path, "http://EXAMPLE.com:8080/a").parent.name == "example.com_8080"
    assert page_path(tmp_path, "http://example.com:80/a").parent.name == "example.com"
    assert page_path(tmp_path, "http://b\u00fccher.de/a").parent.name == "xn--bcher-kva.de"
    name = page_path(tmp_path, "https://www.example.com/news/2024/story.html").name
    assert re.fullmatch(r"news-2024-story-[0-9a-f]{12}\.html", name), name
    assert page_path(tmp_path, "http://example.com/").name.startswith("index-")
    # Different URLs that reduce to the same readable name still get different files.
    assert (
        page_path(tmp_path, "http://example.com/A").name != page_path(tmp_path, "http://example.com/a").name
    )
    assert page_path(tmp_path, "http://example.com/a?x=1") != page_path(tmp_path, "http://example.com/a?x=2")
    assert page_path(tmp_path, "http://example.com/a#one") == page_path(tmp_path, "http://example.com/a")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a",
        "mailto:a@example.com",
        "http:///path",
        "http://../x",
        "example.com/a",
        "http://example.com:99999/",
        "http://exa mple.com/",
        "",
    ],
)
def test_unusable_urls_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        page_path(tmp_path, url)
    result = fetch_url(url, tmp_path, FAST)
    assert (result.status, result.reason, result.path) == ("failed", "fetch_error", None)
    assert not list(tmp_path.iterdir())


@settings(max_examples=300, deadline=None)
@given(
    host=st.from_regex(r"[a-z0-9\u00e0-\u00ff.-]{1,40}", fullmatch=True),
    path=st.text(max_size=300),
    query=st.text(max_size=100),
)
def test_any_url_maps_inside_raw(host: str, path: str, query: str) -> None:
    raw = Path("/srv/raw")
    from urllib.parse import quote

    url = f"http://{host}/{quote(path, safe='/.%?&=')}" + (f"?{quote(query, safe='/.=&')}" if query else "")
    try:
        result = page_path(raw, url)
    except ValueError:
        return  # a host that reduces to nothing is refused, never mapped somewhere odd
    assert result.parent.parent == raw
    assert SAFE_NAME.match(result.parent.name) and SAFE_NAME.match(result.name)
    assert ".." not in result.name and ".." not in result.parent.name


def test_canonical_url() -> None:
    assert canonical_url("  HTTP://Example.COM#x ") == "http://example.com/"
    assert canonical_url("https://example.com/A?b=C#d") == "https://example.com/A?b=C"


# ---------------------------------------------------------------------------------------------------
# Configuration and command line


@pytest.mark.parametrize(
    "bad",
    [
        {"timeout": 0},
        {"timeout": 5, "total_timeout": 1},
        {"max_bytes": 0},
        {"max_redirects": -1},
        {"per_host_concurrency": 0},
        {"per_host_delay": -1},
        {"retries": -1},
        {"backoff": -0.1},
        {"workers": 0},
        {"max_sitemaps": 0},
        {"user_agent": ""},
        {"user_agent": "bot\r\nX-Injected: 1"},
    ],
)
def test_config_is_validated(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FetchConfig(**bad)  # type: ignore[arg-type]


def test_robots_token_is_the_user_agents_first_word() -> None:
    assert FetchConfig().robots_token == "scrape-clean"
    assert FetchConfig(user_agent="NewsBot/2.0 (+https://x.example)").robots_token == "newsbot"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pipeline fetch")
    add_fetch_arguments(parser)
    return parser.parse_args(argv)


def test_run_fetch_prints_a_summary(
    site: HTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site.expect_request("/ok").respond_with_data(article("OK"), content_type="text/html")
    site.expect_request("/gone").respond_with_data("", status=404)
    site.expect_request("/pdf").respond_with_data(b"%PDF", content_type="application/pdf")
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(site.url_for(p) for p in ("/ok", "/gone", "/pdf", "/ok")) + "\n")
    raw = tmp_path / "raw"
    argv = ["--urls", str(listing), "--raw", str(raw), "--delay", "0", "--timeout", "0.5", "--retries", "0"]
    argv.append("--allow-private")

    assert run_fetch(parse(argv)) == 0
    assert capsys.readouterr().out.strip() == (
        "3 URLs: 1 fetched, 0 skipped (already fetched), 2 failed (http_error 1, unsupported_type 1)"
    )
    assert run_fetch(parse(argv)) == 0
    assert capsys.readouterr().out.startswith("3 URLs: 0 fetched, 1 skipped (already fetched), 2 failed")


def test_run_fetch_usage_errors(site: HTTPServer, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read URL file"):
        run_fetch(parse(["--urls", str(tmp_path / "missing.txt"), "--raw", str(tmp_path / "raw")]))
    with pytest.raises(UsageError, match="timeout"):
        run_fetch(parse(["--urls", "x", "--timeout", "0"]))
    site.expect_request("/feed").respond_with_data("", status=500)
    with pytest.raises(UsageError, match="feed"):
        run_fetch(
            parse(
                ["--feed", site.url_for("/feed"), "--raw", str(tmp_path), "--delay", "0", "--allow-private"]
            )
        )
    with pytest.raises(SystemExit):
        parse(["--urls", "a.txt", "--feed", "http://example.com/rss"])  # mutually exclusive
    with pytest.raises(SystemExit):
        parse(["--raw", "raw"])  # one source is required


def test_format_fetch_summary() -> None:
    results = [
        FetchResult("u1", None, "fetched"),
        FetchResult("u2", None, "failed", "timeout"),
        FetchResult("u3", None, "failed", "http_error"),
        FetchResult("u4", None, "failed", "http_error"),
    ]
    assert format_fetch_summary(results) == (
        "4 URLs: 1 fetched, 0 skipped (already fetched), 3 failed (http_error 2, timeout 1)"
    )


# ---------------------------------------------------------------------------------------------------
# End to end: fetch into RAW, clean RAW


def test_fetched_pages_and_failures_flow_through_clean(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("User-agent: *\nDisallow: /private/\n")
    pages = sorted(BENCHMARK.glob("*.html.gz"))[:2]
    for n, page in enumerate(pages):
        httpserver.expect_request(f"/news/{n}.html").respond_with_data(
            gzip.decompress(page.read_bytes()), content_type="text/html"
        )
    httpserver.expect_request("/news/gone.html").respond_with_data("", status=404)
    good = [httpserver.url_for(f"/news/{n}.html") for n in range(len(pages))]
    bad = {
        httpserver.url_for("/news/gone.html"): "http_error",
        httpserver.url_for("/private/x"): "robots_disallowed",
    }
    raw, out = tmp_path / "raw", tmp_path / "out"

    results = fetch_all(good + list(bad), raw, FAST)
    assert [r.status for r in results] == ["fetched"] * len(good) + ["failed"] * len(bad)
    clean_folder(raw, out, RunConfig(workers=1))

    validate_output(out)
    records = read_jsonl(out / "records.jsonl") + read_jsonl(out / "duplicates.jsonl")
    assert sorted(r["url"] for r in records) == sorted(good)
    rejected = read_jsonl(out / "rejected.jsonl")
    by_url = {row["detail"].split(": ", 1)[0]: row for row in rejected}
    assert len(rejected) == len(bad)
    for url, reason in bad.items():
        row = by_url[url]
        assert (row["reason"], row["stage"]) == (reason, "fetch")
        assert row["source"] == sidecar_path(page_path(raw, url)).relative_to(raw).as_posix()
