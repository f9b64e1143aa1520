"""Tests for the fetcher's limits: one deadline for connect, headers and body (retries included), the size cap
on decompressed bytes (pipeline/fetch/decode.py), and --max-urls for feeds and sitemaps. Against real
servers on 127.0.0.1: pytest-httpserver, and a raw socket server for answers no HTTP library would send."""

from __future__ import annotations

import argparse
import gzip
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from pipeline.fetch import (
    DiscoveryError,
    FetchConfig,
    FetchSession,
    add_fetch_arguments,
    fetch_url,
    format_fetch_summary,
    page_path,
    run_fetch,
    sidecar_path,
    urls_from_feed,
    urls_from_sitemap,
)
from pipeline.fetch.decode import STEP, BodyDecoder, gunzip_capped

PAGE = (
    "<html><head><title>T</title></head><body><article><p>" + "Words. " * 40 + "</p></article></body></html>"
)


def local(**settings: Any) -> FetchConfig:
    """No waits, no robots.txt unless asked; the servers are on 127.0.0.1, so allow_private."""
    return FetchConfig(**{"per_host_delay": 0, "allow_private": True, "respect_robots": False, **settings})


# ---------------------------------------------------------------------------------------------------
# One deadline: connect, headers and body


class DripServer:
    """A raw TCP server that answers every request by sending its status line and headers one byte every
    ``pause`` seconds (a minute's worth), and counts the connections it gets."""

    def __init__(self, pause: float = 0.2) -> None:
        self.pause = pause
        self.connections = 0
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Padding: " + b"x" * 300 + b"\r\n\r\n"
        with conn:
            try:
                conn.recv(65536)  # the request
                for byte in head:
                    if self.stop.wait(self.pause):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return  # the client gave up and closed

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.listener.close()


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer()
    yield server
    server.close()


def test_headers_dripping_a_byte_at_a_time_end_at_the_deadline(drip: DripServer, tmp_path: Path) -> None:
    # Each byte comes well within the 1 s read time-out: only the deadline can end this.
    config = local(timeout=1.0, total_timeout=1.5, retries=2, backoff=0.1)
    started = time.monotonic()

    result = fetch_url(f"http://127.0.0.1:{drip.port}/page", tmp_path, config)

    elapsed = time.monotonic() - started
    assert (result.status, result.reason) == ("failed", "timeout"), result
    assert "not complete within 1.5 s" in result.detail
    assert result.retryable
    assert 1.4 <= elapsed < 3.0, elapsed  # the deadline, plus slack for a loaded machine; no retry after it
    assert drip.connections == 1


def test_robots_txt_dripping_ends_at_its_own_deadline(drip: DripServer, tmp_path: Path) -> None:
    config = local(timeout=1.0, total_timeout=1.0, retries=0, respect_robots=True)
    started = time.monotonic()

    result = fetch_url(f"http://127.0.0.1:{drip.port}/page", tmp_path, config)

    assert (result.status, result.reason) == ("failed", "timeout"), result  # the cause, not robots
    assert "robots.txt unreachable (timeout" in result.detail
    assert time.monotonic() - started < 2.5


def test_a_retry_that_would_end_past_the_deadline_is_not_made(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/busy").respond_with_data("busy", status=503, headers={"Retry-After": "5"})
    config = local(timeout=1.0, total_timeout=1.5, retries=2, backoff=0.1)
    started = time.monotonic()

    result = fetch_url(httpserver.url_for("/busy"), tmp_path, config)

    assert (result.status, result.reason, result.detail) == ("failed", "http_error", "HTTP 503")
    assert time.monotonic() - started < 1.0  # Retry-After 5 s does not fit in what is left of 1.5 s
    assert len(httpserver.log) == 1


def test_retries_fit_within_the_deadline(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_oneshot_request("/flaky").respond_with_data("busy", status=503)
    httpserver.expect_request("/flaky").respond_with_data(PAGE, content_type="text/html")
    config = local(timeout=1.0, total_timeout=1.5, retries=2, backoff=0.1)

    assert fetch_url(httpserver.url_for("/flaky"), tmp_path, config).status == "fetched"
    assert len(httpserver.log) == 2


# ---------------------------------------------------------------------------------------------------
# The size cap counts decompressed bytes


def compressed_zeros(size: int, wbits: int) -> bytes:
    """``size`` zero bytes compressed (gzip: wbits 31, zlib: 15, raw deflate: -15), built a MiB at a time."""
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join(parts) + packer.flush()


BOMB = 100 * 1024 * 1024  # 100 MiB of zeros: about 100 KB compressed


# The bomb is served from another process, so that tracemalloc sees the client alone (pytest-httpserver's
# thread allocates several MB of its own when the client hangs up on it).
BOMB_SERVER = r"""
import http.server, sys
body, encoding = open(sys.argv[1], "rb").read(), sys.argv[2]
class Bomb(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        for name, value in (("Content-Type", "text/html"), ("Content-Encoding", encoding),
                            ("Content-Length", str(len(body)))):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, address): pass  # the client hung up: what it should do
server = Server(("127.0.0.1", 0), Bomb)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextmanager
def bomb_server(tmp_path: Path, encoding: str, body: bytes) -> Iterator[str]:
    """The URL of a server in its own process that answers every GET with ``body`` as ``encoding``."""
    (tmp_path / "bomb").write_bytes(body)
    server = subprocess.Popen(
        [sys.executable, "-c", BOMB_SERVER, str(tmp_path / "bomb"), encoding],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield f"http://127.0.0.1:{int(server.stdout.readline())}/bomb"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize(("encoding", "wbits"), [("gzip", 31), ("deflate", 15), ("deflate", -15)])
def test_compressed_bomb_is_stopped_at_the_cap_with_little_memory(
    tmp_path: Path, encoding: str, wbits: int
) -> None:
    body = compressed_zeros(BOMB, wbits)
    assert len(body) < 200_000
    cap = 1_000_000
    config = local(timeout=2.0, total_timeout=10.0, max_bytes=cap, retries=0)
    raw = tmp_path / "raw"

    with bomb_server(tmp_path, encoding, body) as url, FetchSession(config) as session:
        tracemalloc.start()
        try:
            result = fetch_url(url, raw, config, session)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert (result.status, result.reason) == ("failed", "too_large"), result
    # One byte past the cap is inflated, no more: that byte shows the body is over it.
    assert result.detail == f"body over cap {cap} bytes (stopped at {cap + 1} decompressed from {encoding})"
    # About 2.3 MB (the cap, zlib's output blocks, one raw chunk); the fetcher before stopped at 67 MB
    # decoded, with a peak of 149 MB: httpx inflated each 64 KB chunk whole.
    assert peak < 4 * cap, f"peak {peak / 1e6:.1f} MB"
    assert not page_path(raw, result.url).exists()
    assert sidecar_path(page_path(raw, result.url)).exists()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "x-gzip", "identity", ""])
def test_compressed_page_under_the_cap_is_stored_decoded(
    httpserver: HTTPServer, tmp_path: Path, encoding: str
) -> None:
    raw = (PAGE * 200).encode()
    body = {"gzip": gzip.compress, "x-gzip": gzip.compress, "deflate": zlib.compress}.get(encoding, bytes)(
        raw
    )
    headers = {"Content-Encoding": encoding} if encoding else {}
    httpserver.expect_request("/page").respond_with_data(body, content_type="text/html", headers=headers)

    result = fetch_url(httpserver.url_for("/page"), tmp_path, local(timeout=2.0, max_bytes=len(raw)))

    assert result.status == "fetched", result
    assert result.path is not None and result.path.read_bytes() == raw


def test_an_encoding_the_fetcher_did_not_ask_for_is_refused(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/br").respond_with_data(
        b"\x0b\x02\x80hello\x03", content_type="text/html", headers={"Content-Encoding": "br"}
    )
    httpserver.expect_request("/bad").respond_with_data(
        b"not gzip at all", content_type="text/html", headers={"Content-Encoding": "gzip"}
    )

    brotli = fetch_url(httpserver.url_for("/br"), tmp_path, local(timeout=2.0))
    broken = fetch_url(httpserver.url_for("/bad"), tmp_path, local(timeout=2.0))

    assert (brotli.reason, brotli.detail) == (
        "unsupported_type",
        "Content-Encoding 'br' (only gzip and deflate are decoded)",
    )
    assert broken.reason == "fetch_error" and broken.detail.startswith("bad gzip data")
    request, _ = httpserver.log[0]
    assert request.headers["Accept-Encoding"] == "gzip, deflate"


def test_body_decoder_never_inflates_past_what_is_asked() -> None:
    data = compressed_zeros(8 * STEP, 31)
    decoder = BodyDecoder("gzip")
    decoder.feed(data)
    sizes = []
    while piece := decoder.read(STEP // 3):
        sizes.append(len(piece))
    assert sum(sizes) + len(decoder.flush()) == 8 * STEP
    assert max(sizes) == STEP // 3
    assert BodyDecoder("identity, gzip").encoding == "gzip"


def test_gunzip_capped_is_bounded_and_reads_every_member() -> None:
    bomb = compressed_zeros(BOMB, 31)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="over cap 1000000"):
            gunzip_capped(bomb, 1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000, peak
    assert gunzip_capped(gzip.compress(b"one ") + gzip.compress(b"two"), 100) == b"one two"
    with pytest.raises(EOFError):
        gunzip_capped(gzip.compress(b"x" * 1000)[:-20], 10_000)


def test_gzipped_sitemap_bomb_is_a_discovery_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/sitemap.xml.gz").respond_with_data(
        compressed_zeros(BOMB, 31), content_type="application/gzip"
    )
    with pytest.raises(DiscoveryError, match="bad gzip data .decompressed size over cap 1000000"):
        urls_from_sitemap(httpserver.url_for("/sitemap.xml.gz"), local(timeout=2.0, max_bytes=1_000_000))


# ---------------------------------------------------------------------------------------------------
# --max-urls


def sitemap(*urls: str, index: bool = False) -> str:
    kind, item = ("sitemapindex", "sitemap") if index else ("urlset", "url")
    entries = "".join(f"<{item}><loc>{u}</loc></{item}>" for u in urls)
    return (
        f'<?xml version="1.0"?><{kind} xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</{kind}>'
    )


@pytest.fixture
def sitemap_index(httpserver: HTTPServer) -> str:
    """An index of three sitemaps of three pages each (one page listed twice)."""
    u = httpserver.url_for
    httpserver.expect_request("/index.xml").respond_with_data(
        sitemap(u("/s1.xml"), u("/s2.xml"), u("/s3.xml"), index=True), content_type="application/xml"
    )
    httpserver.expect_request("/s1.xml").respond_with_data(sitemap(u("/a"), u("/b"), u("/c")))
    httpserver.expect_request("/s2.xml").respond_with_data(sitemap(u("/c"), u("/d"), u("/e"), u("/f")))
    httpserver.expect_request("/s3.xml").respond_with_data(sitemap(u("/g"), u("/h"), u("/i")))
    return u("/index.xml")


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_max_urls_cuts_a_sitemap_index_in_total(
    sitemap_index: str, httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    u = httpserver.url_for

    urls = urls_from_sitemap(sitemap_index, local(max_urls=4))

    assert urls == [u("/a"), u("/b"), u("/c"), u("/d")]
    note = f"sitemap {sitemap_index}: kept 4 of 6 URLs (--max-urls); 1 more sitemap(s) not read"
    assert urls.note == note
    assert warnings_of(caplog) == [note]
    assert "/s3.xml" not in [request.path for request, _ in httpserver.log]  # not read once the cap is met

    everything = urls_from_sitemap(sitemap_index, local(max_urls=100))
    assert len(everything) == 9 and everything.note == ""


def test_max_urls_cuts_a_feed(httpserver: HTTPServer, caplog: pytest.LogCaptureFixture) -> None:
    items = "".join(f"<item><link>{httpserver.url_for(f'/n{n}')}</link></item>" for n in range(5))
    httpserver.expect_request("/feed.xml").respond_with_data(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>N</title>{items}</channel></rss>',
        content_type="application/rss+xml",
    )

    urls = urls_from_feed(httpserver.url_for("/feed.xml"), local(max_urls=2))

    assert urls == [httpserver.url_for("/n0"), httpserver.url_for("/n1")]
    assert urls.note == f"feed {httpserver.url_for('/feed.xml')}: kept 2 of 5 URLs (--max-urls)"
    assert warnings_of(caplog) == [urls.note]


def test_fetch_summary_line_says_what_max_urls_left_out(
    sitemap_index: str, httpserver: HTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    for page in "ab":
        httpserver.expect_request(f"/{page}").respond_with_data(PAGE, content_type="text/html")
    parser = argparse.ArgumentParser()
    add_fetch_arguments(parser)
    argv = ["--sitemap", sitemap_index, "--raw", str(tmp_path), "--delay", "0", "--max-urls", "2"]

    assert run_fetch(parser.parse_args([*argv, "--allow-private"])) == 0

    assert capsys.readouterr().out.strip() == (
        "2 URLs: 2 fetched, 0 skipped (already fetched), 0 failed; "
        f"sitemap {sitemap_index}: kept 2 of 3 URLs (--max-urls); 2 more sitemap(s) not read"
    )
    assert parser.parse_args(argv[:2]).max_urls == FetchConfig().max_urls == 10_000
    assert (
        format_fetch_summary([], ["", "note"])
        == "0 URLs: 0 fetched, 0 skipped (already fetched), 0 failed; note"
    )


def test_max_urls_is_validated() -> None:
    with pytest.raises(ValueError, match="max_urls"):
        FetchConfig(max_urls=0)
