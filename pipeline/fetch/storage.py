"""Where a URL's page goes in RAW (one fixed path per URL), and writing pages and sidecars atomically."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pipeline.fetch.config import FetchResult
from pipeline.load import SIDECAR_SUFFIX
from pipeline.writer import write_bytes_atomic, write_json_atomic

if TYPE_CHECKING:
    from pipeline.fetch.session import _Failed, _Response

PAGE_SUFFIX = ".html"
TEXT_SUFFIX = ".txt"  # text/plain pages: stored as .html, the loader would parse them as markup
NAME_MAX = 80  # characters of the readable part of a file name, before the hash
HOST_MAX = 100


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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        write_bytes_atomic(page, response.body)
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
