"""Discovery: the URLs to fetch from a text file, a feed (RSS, Atom, JSON Feed) or a sitemap."""

from __future__ import annotations

import html
import logging
import re
import zlib
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from lxml import etree

from pipeline.fetch.config import FetchConfig
from pipeline.fetch.decode import gunzip_capped
from pipeline.fetch.session import _DOCUMENT, FetchSession, _Failed
from pipeline.fetch.storage import canonical_url

log = logging.getLogger(__name__)


class DiscoveryError(Exception):
    """A feed or sitemap given to discover URLs could not be fetched or is not a feed or sitemap."""


class DiscoveredUrls(list[str]):
    """The URLs a feed or sitemap lists, in order, and ``note``: what ``max_urls`` left out (``""``: nothing),
    as ``sitemap URL: kept N of M URLs (--max-urls)``, for the fetch summary line."""

    __slots__ = ("note",)

    def __init__(self, urls: list[str], note: str = "") -> None:
        super().__init__(urls)
        self.note = note


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
            body = gunzip_capped(body, config.max_bytes)
        except (OSError, EOFError, zlib.error, ValueError) as err:
            raise DiscoveryError(f"{what} {target}: bad gzip data ({err})") from None
    return body


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


def urls_from_feed(url: str, config: FetchConfig, session: FetchSession | None = None) -> DiscoveredUrls:
    """The article URLs of an RSS (0.9x, 1.0, 2.0), Atom or JSON feed, in feed order, the first
    ``config.max_urls`` of them (a longer feed is cut with one warning, and the result's ``note`` says so).

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
    urls = _feed_urls(url, config, session)
    kept = urls[: config.max_urls]
    note = ""
    if len(kept) < len(urls):
        note = f"feed {canonical_url(url)}: kept {len(kept)} of {len(urls)} URLs (--max-urls)"
        log.warning("%s", note)
    return DiscoveredUrls(kept, note)


def _feed_urls(url: str, config: FetchConfig, session: FetchSession | None) -> list[str]:
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


def urls_from_sitemap(url: str, config: FetchConfig, session: FetchSession | None = None) -> DiscoveredUrls:
    """The page URLs of a sitemap (XML ``urlset``, plain-text list, either gzipped), following sitemap
    indexes breadth-first up to ``config.max_sitemaps`` documents, each read at most once.

    At most ``config.max_urls`` page URLs are kept, from all the documents together: once they are there,
    no further sitemap is read, and one warning (also the result's ``note``) says how many were left out.

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
        listed = 0  # distinct page URLs in the documents read, kept or not
        while pending and len(seen) < config.max_sitemaps and len(pages) < config.max_urls:
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
            new = [page for page in found if page not in pages]
            listed += len(new)
            pages.update(dict.fromkeys(new[: config.max_urls - len(pages)]))
            pending.extend(s for s in nested if s not in seen)
        unread = len(set(pending) - seen)
        note = ""
        if listed > len(pages) or (unread and len(pages) >= config.max_urls):
            note = f"sitemap {first}: kept {len(pages)} of {listed} URLs (--max-urls)"
            note += f"; {unread} more sitemap(s) not read" if unread else ""
            log.warning("%s", note)
        elif unread:
            log.warning("%s: stopped after %d sitemaps (max_sitemaps)", first, config.max_sitemaps)
        return DiscoveredUrls(list(pages), note)
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
