"""Web archives: the pages of WARC and ARC files (and Common Crawl's WET text), streamed record by record.

A crawl's archive holds its pages as records (warcio reads them): each HTTP response with a page becomes a
document that goes through extraction like an ``.html`` file beside its sidecar, its ``url`` the record's
``WARC-Target-URI``, its fetch date the ``WARC-Date`` (the record's date when the page gives none) and the
HTTP charset of its Content-Type used for decoding. A WET file's ``conversion`` records are the crawler's
plain text of each page, with their URL and date. A record's ``source`` is ``path#OFFSET``, the byte offset
of its first byte in the file (the gzip member's offset in a ``.warc.gz``: what ``warcio extract`` and CDX
indexes name a record by); see :func:`pipeline.load.split_source`.

Which records are documents (see README, "Web archives"):

- ``response`` and ``resource`` records of an ``http(s)`` URL, ``conversion`` records (WET): a page when
  the media type is ``text/html``, ``application/xhtml+xml``, ``text/plain`` or none (the body is then told
  by its first bytes), as ``pipeline fetch`` keeps pages;
- such a record with another media type (an image, a script, a PDF) is rejected as ``unsupported_type``,
  one with a status other than 2xx (a 404, a redirect) as ``http_error``, one over the cap as
  ``too_large``, one cut short as ``parse_error``;
- the other records hold no page and are skipped: ``warcinfo``, ``request``, ``metadata``, ``revisit``
  (a payload seen before), an ARC file's header, ``dns:`` and other non-HTTP responses.

Memory is bounded whatever the file: records are read one at a time from the open file, and a record's
body at most ``MAX_PAGE_BYTES``. A gzipped archive (one gzip member per record, as WARC writers write
them) can be read in parts (:func:`archive_parts`): a part reads the records whose first byte lies in its
byte range, from the first member in it that holds a record's head, so each record is read by exactly one
part. A damaged archive (cut short, garbage, a gzip stream that does not decompress) yields the records
before the damage and a rejection where it starts; the records after it are lost to the part it is in.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterator
from io import BytesIO
from typing import TYPE_CHECKING, Any, BinaryIO

from pipeline.contract import Document, Rejection
from pipeline.load import (
    MAX_PAGE_BYTES,
    InputBoundary,
    InputPart,
    content_type_charset,
    open_input,
    page_document,
)

if TYPE_CHECKING:
    from warcio.recordloader import ArcWarcRecord

log = logging.getLogger(__name__)

PAGE_RECORDS = frozenset({"response", "resource", "conversion"})
HTML_MEDIA = frozenset({"text/html", "application/xhtml+xml"})
PAGE_MEDIA = HTML_MEDIA | {"text/plain", ""}  # "": no Content-Type, the body's first bytes tell
DRAIN_BYTES = 1 << 16
# The bytes of one record's head (WARC and HTTP headers, the blank lines before it) at most: real heads
# are a few KB. warcio reads them line by line with no bound, so a file of garbage with no newline (or a
# gzip member of zeros) would become one line in memory; past this, the file is damaged from there on.
HEAD_BYTES = 1 << 20
# Finding a part's first record: the file is searched for gzip members this much at a time, and a
# member's first bytes are decompressed to see whether they are a record's head.
SYNC_BLOCK = 1 << 20
SYNC_PROBE = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b\x08"  # a gzip member's first bytes (deflate)
# A WARC record's first line, or an ARC record's (URL, IP address, 14-digit date, ...).
_RECORD_HEAD = re.compile(rb"WARC/\d+\.\d+\r?\n|\S+ \S+ \d{14} ")


def archive_parts(path: str, source: str, size: int, part_bytes: int) -> list[InputPart]:
    """A web archive as the parts its records are read in: whole unless it is gzipped and over
    ``part_bytes``, else one part per ``part_bytes`` of the file (a plain archive cannot be entered in the
    middle: any byte of a record's body could look like the head of another)."""
    if size <= part_bytes or not path.lower().endswith(".gz"):
        return [InputPart(path, source)]
    starts = range(0, size, part_bytes)
    return [InputPart(path, source, a, a + part_bytes if a + part_bytes < size else None) for a in starts]


def load_archive(
    path: str,
    source: str,
    boundary: InputBoundary,
    data: bytes | None = None,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[Document | Rejection]:
    """The documents and rejections of the records of one archive that start in bytes ``[start, stop)``.

    ``data``: the file's bytes when the caller read them already, else the file is opened through
    :func:`~pipeline.load.open_input` and streamed. The file's own rejections (cannot be opened, empty)
    come from the part at ``start == 0`` only, so a file split in parts is accounted for once.
    """
    if data is not None:
        handle: BinaryIO = BytesIO(data)
        size = len(data)
    else:
        opened = open_input(path, boundary, source)
        if isinstance(opened, Rejection):
            if start == 0:
                yield opened
            return
        handle, info = opened
        size = info.st_size
    with handle:
        if start == 0 and size == 0:
            yield Rejection(source, "empty", "0 bytes, no records")
            return
        try:
            first = _first_member(handle, start, stop) if start else 0
        except OSError as err:
            yield Rejection(f"{source}#{start}", "unreadable", f"{type(err).__name__}: {err}")
            return
        if first is None:
            return  # no record starts in this part (one long record spans it)
        handle.seek(first)
        yield from _records(handle, source, first, stop, size)


def _records(
    handle: BinaryIO, source: str, first: int, stop: int | None, size: int
) -> Iterator[Document | Rejection]:
    """Each record from ``first`` (a record's first byte) whose offset is before ``stop``, read in turn."""
    from warcio.archiveiterator import ArchiveIterator  # noqa: PLC0415 - only runs with archives import it

    records = ArchiveIterator(handle, arc2warc=True)
    head = _HeadBudget(records.reader)
    last = -1  # the offset of the last record read
    damaged = False  # whether it was rejected as damaged
    try:
        while True:
            try:
                head.left = HEAD_BYTES
                record = next(records, None)
            except Exception as err:  # noqa: BLE001 - warcio raises many types on a damaged file
                where = records.offset  # the record being read, or the last one while it is finished
                if stop is not None and where >= stop:
                    return  # the head of the next part's first record: that part reports it
                if where > last:
                    yield _damaged(f"{source}#{where}", err)
                elif not damaged:
                    # Damage after the last record, which was read whole (or a gzip stream that is one
                    # member: warcio's offsets then mean nothing): no offset of its own is known.
                    yield _damaged(f"{source}#{last + 1}", err, f" after the record at offset {last}")
                return
            if record is None:
                break
            # the current record's first byte (warcio's, absolute: see above); in a damaged gzip stream
            # warcio's offset can go back, even below 0 (hypothesis found one): then the next free offset
            last = max(records.offset, last + 1)
            if stop is not None and last >= stop:
                return  # the next part's
            item = _guarded_record(record, f"{source}#{last}")
            damaged = isinstance(item, Rejection) and item.reason in ("parse_error", "unreadable")
            if item is not None:
                yield item
        end = records.offset
        if last < end < size and (stop is None or end < stop):
            # warcio stops quietly at a record's head cut short (past stop: the next part's to say)
            yield Rejection(
                f"{source}#{end}",
                "parse_error",
                f"{size - end} bytes after the last record are no complete record (cut short?)",
            )
    finally:
        records.close()


class _HeadBudget:
    """``readline`` of warcio's reader with a bound: at most ``left`` bytes until reset (the iterator reads
    record heads with ``readline``, bodies with ``read``), then ``ValueError``. Installed on the one
    reader of one iterator."""

    def __init__(self, reader: Any) -> None:
        self.readline = reader.readline
        self.left = HEAD_BYTES
        reader.readline = self

    def __call__(self, length: int | None = None) -> bytes:
        if self.left <= 0:
            raise ValueError(f"a record head over {HEAD_BYTES} bytes: no archive record")
        line: bytes = self.readline(min(length, self.left) if length else self.left)
        self.left -= len(line)
        return line


def _damaged(source: str, err: Exception, where: str = "") -> Rejection:
    """The rejection of the place where an archive stops being readable (``source``: ``path#OFFSET``)."""
    message = " ".join(str(err).split())[:300]
    if "non-chunked gzip" in message:
        message = "one gzip member holds several records (`warcio recompress` makes one per record)"
    reason = "unreadable" if isinstance(err, OSError) and err.errno else "parse_error"
    detail = f"{type(err).__name__}{where}: {message}; no record after it is read"
    return Rejection(source, reason, detail)


def _guarded_record(record: ArcWarcRecord, source: str) -> Document | Rejection | None:
    """:func:`archive_record`, with an exception reading the record this record's rejection: the file
    ends or breaks inside its body (``parse_error``, ``unreadable`` for the system's read error), or a bug
    of ours (``internal_error``)."""
    try:
        return archive_record(record, source)
    except (OSError, EOFError, zlib.error, ValueError) as err:
        reason = "unreadable" if isinstance(err, OSError) and err.errno else "parse_error"
        return Rejection(source, reason, f"{type(err).__name__}: {err}")
    except Exception as err:  # noqa: BLE001 - a bug of ours costs this record only
        log.warning("load failed on %s: %s: %s", source, type(err).__name__, err)
        return Rejection(source, "internal_error", f"{type(err).__name__}: {err}")


def archive_record(record: ArcWarcRecord, source: str) -> Document | Rejection | None:
    """The document of one archive record, its rejection, or None for a record that holds no page (see the
    module's docstring for which is which)."""
    if not record.rec_type:  # warcio's reading of a head cut short: a WARC record always has a type
        return Rejection(
            source, "parse_error", "a record without WARC-Type: its head is cut short or garbled"
        )
    url = (record.rec_headers.get_header("WARC-Target-URI") or "").strip().strip("<>")
    if record.rec_type not in PAGE_RECORDS or not url.lower().startswith(("http://", "https://")):
        return None
    headers = record.http_headers
    if headers is not None:
        status = headers.get_statuscode() or ""
        if not status.isdigit():
            detail = f"HTTP status line {headers.statusline[:40]!r}: the record is cut short or garbled"
            return Rejection(source, "parse_error", detail)
        if not status.startswith("2"):
            location = headers.get_header("Location")
            detail = f"HTTP {status}"
            return Rejection(
                source, "http_error", f"{detail}, redirect to {location}" if location else detail
            )
        content_type = headers.get_header("Content-Type") or ""
    else:
        content_type = record.content_type or ""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in PAGE_MEDIA:
        return Rejection(source, "unsupported_type", f"content type {media!r}")
    data = record.content_stream().read(MAX_PAGE_BYTES + 1)  # chunked and gzip transfer undone
    if len(data) > MAX_PAGE_BYTES:  # the rest is skipped unread (decompressed in blocks, never held)
        return Rejection(source, "too_large", f"a payload over the cap of {MAX_PAGE_BYTES} bytes a page")
    while record.raw_stream.read(DRAIN_BYTES):
        pass
    missing = getattr(record.raw_stream, "limit", 0)
    if missing:
        return Rejection(
            source, "parse_error", f"cut short: the file ends {missing} bytes before the record does"
        )
    meta: dict[str, Any] = {
        "url": url,
        "charset": content_type_charset(content_type),
        "fetched": record.rec_headers.get_header("WARC-Date"),
    }
    return page_document(data, source, media in HTML_MEDIA, meta)


def _first_member(handle: BinaryIO, start: int, stop: int | None) -> int | None:
    """The offset of the first gzip member at or after ``start`` and before ``stop`` that holds the head of
    a WARC or ARC record, None when there is none.

    Inside a member the bytes are compressed: three that read as a gzip member's start, followed by a
    deflate stream whose first bytes are a record's head, are a member of the file. (A record whose payload
    is itself a gzipped archive, stored uncompressed inside its member, is the one way to be misled.)
    """
    pos = start
    while stop is None or pos < stop:
        handle.seek(pos)
        block = handle.read(SYNC_BLOCK)
        found = block.find(_GZIP_MAGIC)
        while found >= 0:
            if stop is not None and pos + found >= stop:
                return None
            if _holds_record_head(handle, pos + found):
                return pos + found
            found = block.find(_GZIP_MAGIC, found + 1)
        if len(block) < SYNC_BLOCK:
            return None  # the end of the file
        pos += len(block) - len(_GZIP_MAGIC) + 1  # a member's start across two blocks is found in the next
    return None


def _holds_record_head(handle: BinaryIO, offset: int) -> bool:
    """Whether the gzip member that would start at ``offset`` decompresses to a record's first line."""
    handle.seek(offset)
    try:
        head = zlib.decompressobj(wbits=31).decompress(handle.read(SYNC_PROBE), 256)
    except zlib.error:
        return False
    return _RECORD_HEAD.match(head) is not None
