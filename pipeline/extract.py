"""Extraction: HTML pages to main text and metadata (trafilatura); metadata of every document tidied.

After this stage every document is plain text (``kind == "text"``) with paragraphs separated by blank
lines, and ``url``, ``hostname``, ``date`` and ``group`` filled where the input allows.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import trafilatura
from courlan import normalize_url
from trafilatura.settings import Document as ExtractedPage

from pipeline.cleanup import parse_date
from pipeline.contract import Document, Rejection

log = logging.getLogger(__name__)


def extract_main_text(doc: Document) -> Document | Rejection:
    """Replace an HTML body by its main text and fill title, author, date, hostname and URL from the page.

    trafilatura's own ``deduplicate`` is off: it keeps process-global state, which would make results
    depend on document order and on which worker saw what. Dedup is ours.
    """
    try:
        result = trafilatura.bare_extraction(
            doc.body,
            url=doc.url,
            with_metadata=True,
            deduplicate=False,
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_links=False,
        )
    except Exception as err:  # trafilatura/lxml raise many types on hostile markup
        return Rejection(
            doc.source, "parse_error", f"HTML extraction failed: {type(err).__name__}: {err}", stage="extract"
        )
    meta = result.as_dict() if isinstance(result, ExtractedPage) else {}
    text = meta.get("text")
    if not text or not text.strip():
        return Rejection(
            doc.source, "no_main_text", "trafilatura found no main text in the page", stage="extract"
        )
    # trafilatura puts one paragraph, heading or list item per line.
    doc.body = "\n\n".join(line for line in text.split("\n") if line.strip())
    doc.kind = "text"
    doc.title = doc.title or meta.get("title")
    doc.author = doc.author or meta.get("author")
    doc.date = doc.date or meta.get("date")
    doc.url = doc.url or meta.get("url")
    doc.hostname = doc.hostname or meta.get("hostname")
    return doc


def tidy_metadata(doc: Document) -> Document:
    """Normalise URL, hostname and date, and set the source group used to learn boilerplate."""
    if doc.url:
        try:
            parts = urlsplit(doc.url)
            if parts.scheme in ("http", "https"):
                doc.url = normalize_url(doc.url)  # lower-cased host, tracking parameters dropped
                doc.hostname = doc.hostname or parts.hostname
        except ValueError:
            pass
    if doc.hostname:
        doc.hostname = doc.hostname.lower().removeprefix("www.")
    if doc.date:
        doc.date = parse_date(doc.date) or doc.date
    if doc.hostname:
        doc.group = doc.hostname
    return doc
