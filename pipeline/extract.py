"""Extraction: HTML pages to main text and metadata (trafilatura); metadata of every document tidied.

After this stage every document is plain text (``kind == "text"``) with paragraphs separated by blank
lines, and ``url``, ``hostname``, ``date`` and ``group`` filled where the input allows. ``url`` is the
fetched URL (a sidecar's, a record's field), else the page's own (canonical link, ``og:url``) unless that
names no page (:func:`names_a_page`); ``hostname`` is always the host of ``url`` when there is one.
"""

from __future__ import annotations

import logging
import re
from posixpath import splitext
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pipeline.cleanup import parse_date
from pipeline.contract import Document, Rejection

if TYPE_CHECKING:
    from lxml.html import HtmlElement
    from trafilatura.settings import Document as ExtractedPage

log = logging.getLogger(__name__)

# How trafilatura extracts the main text (the metadata are read by :func:`page_metadata`).
# ``fast`` stays off: skipping the readability/jusText comparison makes extraction about a quarter faster
# and scores a little higher on the article-extraction-benchmark (181 English news pages, lower-cased
# whitespace tokens, the metric used then:
# F1 0.951 against 0.949), but loses recall on trafilatura's own evaluation set (990 pages, mostly
# German: F1 0.920 against 0.926, recall 0.934 against 0.947), and lost text is what a cleaner must not do.
TRAFILATURA_OPTIONS: dict[str, Any] = {
    "fast": False,
    "with_metadata": False,
    "deduplicate": False,  # process-global state: results would depend on document order (dedup is ours)
    "include_comments": False,
    "include_tables": True,
    "include_images": False,
    "include_links": False,
}


# What a page's own URL never ends in: og:url and canonical links sometimes name the page's image, video or
# player instead of the page. A host whose first label says it serves files is not a page's either (an
# ardmediathek.de page's og:url is on img.ardmediathek.de).
ASSET_SUFFIXES = frozenset(
    ".jpg .jpeg .png .gif .webp .avif .svg .ico .bmp .tif .tiff .mp4 .m4v .webm .mov .avi .mp3 .m4a .ogg "
    ".wav .flac .js .css .pdf .zip .woff .woff2".split()
)
ASSET_HOST_LABELS = frozenset({"img", "images", "static", "cdn"})


def names_a_page(url: str | None) -> bool:
    """Whether ``url`` can be a page's URL: absolute ``http(s)``, not a file of another kind by its path's
    suffix (``ASSET_SUFFIXES``) or its host (``ASSET_HOST_LABELS``)."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    return (
        host.split(".", 1)[0] not in ASSET_HOST_LABELS
        and splitext(parts.path)[1].lower() not in ASSET_SUFFIXES
    )


def extract_main_text(doc: Document) -> Document | Rejection:
    """Replace an HTML body by its main text and fill title, author, date and URL from the page.

    A fetched URL (``doc.url``, from a sidecar or a record's field) is kept: it is what was fetched, and the
    page's own URL names another host or scheme often enough (8 of the 168 article-extraction-benchmark
    pages that have one: ``http://`` for an ``https://`` page, ``social.techcrunch.com``,
    ``businessinsider.de`` for ``.com``). Without one, the page's own URL is taken when it
    :func:`names_a_page`.

    The page is parsed once: :func:`page_metadata` reads the metadata from the tree, then trafilatura
    extracts the text from a copy of it (with ``TRAFILATURA_OPTIONS``). trafilatura's own
    ``deduplicate`` is off: it keeps process-global state, which would make results depend on document
    order and on which worker saw what. Dedup is ours.
    """
    # Imported here: trafilatura costs 0.1-0.3 s to import, and a folder of text files never needs it.
    import trafilatura  # noqa: PLC0415
    from trafilatura.settings import Document as ExtractedPage  # noqa: PLC0415

    try:
        tree = trafilatura.load_html(doc.body)
        if tree is None:
            return Rejection(
                doc.source, "no_main_text", "trafilatura found no main text in the page", stage="extract"
            )
        meta = page_metadata(tree, doc.url)
        url = doc.url or (meta.url if names_a_page(meta.url) else None)
        # The URL trafilatura's metadata pass would hand to its extractor (it resolves relative links).
        result = trafilatura.bare_extraction(tree, url=url, **TRAFILATURA_OPTIONS)
    except Exception as err:  # trafilatura/lxml raise many types on hostile markup
        return Rejection(
            doc.source, "parse_error", f"HTML extraction failed: {type(err).__name__}: {err}", stage="extract"
        )
    text = result.text if isinstance(result, ExtractedPage) else None
    if not text or not text.strip():
        return Rejection(
            doc.source, "no_main_text", "trafilatura found no main text in the page", stage="extract"
        )
    # trafilatura puts one paragraph, heading or list item per line, and a table row as "| a | b |".
    doc.body = "\n\n".join(flatten_tables([line for line in text.split("\n") if line.strip()]))
    doc.kind = "text"
    doc.title = doc.title or meta.title
    doc.site_name = meta.sitename
    doc.author = doc.author or meta.author
    doc.date = doc.date or meta.date
    doc.url = url
    return doc


_TABLE_RULE = re.compile(r"[|\s:-]*")  # a Markdown separator row ("|---|---|") or a row of empty cells
LAYOUT_CELL_WORDS = 20  # a table with a cell this long is page layout, not data


def flatten_tables(lines: list[str]) -> list[str]:
    """trafilatura's table rows made readable: rows with no text ("| | |", "|---|---|") go; a layout
    table (one holding a cell of prose, over ``LAYOUT_CELL_WORDS`` words: pages laid out in tables) becomes
    one line a non-empty cell; a data table (short cells: scores, prices) keeps its rows."""
    out: list[str] = []
    block: list[list[str]] = []

    def flush() -> None:
        layout = any(len(cell.split()) > LAYOUT_CELL_WORDS for row in block for cell in row)
        for row in block:
            if layout:
                out.extend(cell for cell in row if cell)
            else:
                out.append("| " + " | ".join(row) + " |")
        block.clear()

    for line in lines:
        stripped = line.strip()
        if not stripped.startswith("|"):
            if block:
                flush()
            out.append(line)
        elif not _TABLE_RULE.fullmatch(stripped):
            block.append([cell.strip() for cell in stripped.strip("|").split(" | ")])
    if block:
        flush()
    return out


def page_metadata(tree: HtmlElement, url: str | None = None) -> ExtractedPage:
    """Title, author, date and URL of a parsed page, as trafilatura's ``extract_metadata`` finds them,
    without the fields we do not keep (the hostname too: trafilatura's is the registered domain, which
    makes every ``*.wordpress.com`` blog one ``wordpress.com``; ours is the URL's host, see
    :func:`tidy_metadata`).

    ``extract_metadata`` also looks for the site name, categories, tags and licence, which we do not keep:
    about 40% of its time on the article-extraction-benchmark pages (1.1 s against 0.7 s for 181 pages).
    This runs its steps in its order for the four fields of our output contract;
    ``tests/test_extract.py`` checks that they agree with ``extract_metadata`` on real pages. The tree is
    not modified.
    """
    from htmldate import find_date  # noqa: PLC0415 - see extract_main_text
    from trafilatura.metadata import (  # noqa: PLC0415
        examine_meta,
        extract_author,
        extract_meta_json,
        extract_title,
        extract_url,
    )
    from trafilatura.settings import DEFAULT_CONFIG, set_date_params  # noqa: PLC0415

    metadata = examine_meta(tree)
    if metadata.author and " " not in metadata.author:
        metadata.author = None  # as trafilatura: a single word is a handle, not a name
    try:
        metadata = extract_meta_json(tree, metadata)
    except Exception as err:  # noqa: BLE001 - trafilatura guards its JSON-LD parser the same way
        log.debug("JSON-LD metadata failed: %s: %s", type(err).__name__, err)
    if not metadata.title:
        metadata.title = extract_title(tree)
    if not metadata.author:
        metadata.author = extract_author(tree)
    if not metadata.url:
        metadata.url = extract_url(tree, url)
    # What trafilatura's own metadata pass uses for htmldate (``Extractor.date_params``).
    date_params = set_date_params(DEFAULT_CONFIG.getboolean("DEFAULT", "EXTENSIVE_DATE_SEARCH"))
    date_params["url"] = metadata.url
    metadata.date = find_date(tree, **date_params)
    metadata.clean_and_trim()
    return metadata


def tidy_metadata(doc: Document) -> Document:
    """Normalise URL, hostname, date and fetch date, and set the source group used to learn boilerplate.

    The hostname of a document with an ``http(s)`` URL is that URL's host (lower-cased, ``www.`` dropped),
    whatever a record's field or the page said: ``alice.wordpress.com`` and ``bob.wordpress.com`` are two
    sources, each learning its own boilerplate.
    """
    if doc.url:
        try:
            parts = urlsplit(doc.url)
            if parts.scheme in ("http", "https") and parts.hostname:
                from courlan import normalize_url  # noqa: PLC0415 - 0.05 s: only for documents with a URL

                doc.url = normalize_url(doc.url)  # lower-cased host, tracking parameters dropped
                doc.hostname = urlsplit(doc.url).hostname or parts.hostname
        except ValueError:
            pass
    if doc.hostname:
        doc.hostname = doc.hostname.lower().removeprefix("www.")
    if doc.date:
        doc.date = parse_date(doc.date) or doc.date
    if doc.fetched:
        doc.fetched = parse_date(doc.fetched) or doc.fetched
    if doc.author:
        doc.author = join_credentials(doc.author)
    if doc.hostname:
        doc.group = doc.hostname
    return doc


# A degree or suffix that follows a name after a comma ("Ilana Muhlstein, MS, RDN", "John Doe, Jr.").
_CREDENTIAL = re.compile(r"[A-Z]{2,6}|(?:[A-Z][a-z]?\.){1,3}[A-Z]?[a-z]?\.?|Ph\.?D\.?|Jr\.?|Sr\.?|I{2,3}|IV")


def join_credentials(author: str) -> str:
    """Authors as ``"Name; Name"`` with a name's degrees kept on it: trafilatura splits authors at commas,
    which makes "Ilana Muhlstein, MS, RDN" three authors ("Ilana Muhlstein; MS; RDN")."""
    names: list[str] = []
    for part in author.split("; "):
        if names and _CREDENTIAL.fullmatch(part.strip()):
            names[-1] += ", " + part.strip()
        else:
            names.append(part)
    return "; ".join(names)
