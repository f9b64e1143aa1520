"""Loading raw inputs: walk INPUT, read bytes, decode, and split files into documents.

A file becomes zero or more :class:`Document` objects, or :class:`Rejection` objects saying why not.
Nothing here raises for a bad file: every failure is a rejection with a reason.

INPUT is a boundary: every input is opened by :func:`open_input`, which opens regular files only (a FIFO,
socket or device is ``not_a_file``, never opened) and, unless ``--follow-symlinks``, only inside INPUT once
every symbolic link is resolved (``outside_input`` otherwise). A file's ``source`` is the text form of its
relative path (:func:`source_of_path`): the path itself for a printable UTF-8 name, C-quoted otherwise.

Formats, by extension and then by sniffing the first bytes:

- ``.html``/``.htm``/``.xhtml`` (or text starting with ``<!doctype html``/``<html``): one HTML page
- ``.json``: one object, or an array of objects (``path#N`` for the N-th, 1-based)
- ``.jsonl``/``.ndjson``: one object per line (``path#N`` for line N, 1-based)
- anything else that decodes as text: one plain-text article
- any of these compressed with gzip (``.gz``) is read through the compression
- ``.warc``/``.arc``/``.wet`` (also ``.gz``): a web archive, streamed record by record by
  :mod:`pipeline.archive` (``path#OFFSET`` for the record at that byte offset)

A JSON object gives its fields under the names common scrapers use (``text``/``content``/``body``...,
``html``/``raw_html``..., ``title``/``headline``, ``url``/``link``, ``author``/``authors``/``byline``,
``date``/``published``...). A sidecar ``NAME.meta.json`` beside a page (written by ``pipeline fetch``)
gives its URL, its HTTP charset and its fetch date (the record's date when the page gives none).
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import logging
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import orjson
from charset_normalizer import from_bytes

from pipeline.contract import REASONS, Document, Rejection

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 50 * 1024 * 1024
# The longest text one document may hold (a page's HTML, a text file, a record's text field): extracting,
# normalising and signing a document cost 30-55 bytes a character at their peak (an HTML page of 3.8 M
# characters: 256 MB in its worker process; a text of 3.7 M: 208 MB), so this keeps a worker within its
# bound whatever one file holds (see README, "Reliability and security"). The extraction benchmark's longest
# page has 1.5 M; a 50 MB text file would cost its worker 1.4 GB.
MAX_DOCUMENT_CHARS = 4_000_000
# The bytes of one page or text at most: a character takes 4 bytes at most, in any encoding.
MAX_PAGE_BYTES = 4 * MAX_DOCUMENT_CHARS
SIDECAR_SUFFIX = ".meta.json"
HTML_SUFFIXES = {".html", ".htm", ".xhtml", ".shtml", ".php", ".asp", ".aspx"}
JSON_SUFFIXES = {".json"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
# Web archives, by name (optionally gzipped): read by pipeline.archive, never as one text.
ARCHIVE_SUFFIXES = (".warc", ".arc", ".wet")
_BINARY_MAGIC = (
    b"%PDF",
    b"\x89PNG",
    b"GIF8",
    b"\xff\xd8\xff",
    b"PK\x03\x04",
    b"\x7fELF",
    b"BZh",
    b"\xfd7zXZ",
    b"RIFF",
    b"OggS",
    b"ID3",
    b"\x00\x00\x01\x00",
    b"wOFF",
    b"wOF2",
)
_HTML_START = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w:.-]+)""", re.I)
# A record's text field holding HTML (a "body" of <p> paragraphs), told conservatively: the text starts
# with a tag and closes an element somewhere, or block-level markup runs through it (at least
# MIN_BLOCK_MARKS ends of a paragraph, list item, heading, cell, block or a <br>, one per 1,000 characters
# or more of its first 20,000). A plain text that quotes a tag or two stays text.
_LEADING_TAG = re.compile(r"\s*<(?:[a-zA-Z][\w:-]*|!--)[\s/>]")
_CLOSING_TAG = re.compile(r"</[a-zA-Z][\w:-]*\s*>")
_BLOCK_MARK = re.compile(
    r"</(?:p|div|li|h[1-6]|blockquote|td|tr|table|ul|ol|section|article|figure|pre)\s*>|<br\s*/?>", re.I
)
MIN_BLOCK_MARKS = 3

TEXT_KEYS = (
    "text",
    "content",
    "body",
    "article",
    "maintext",
    "main_text",
    "article_body",
    "articleBody",
    "raw_content",
    "plain_text",
    "fulltext",
    "full_text",
    "description",
)
HTML_KEYS = ("html", "raw_html", "content_html", "html_content", "page", "source_html")
TITLE_KEYS = ("title", "headline", "name")
URL_KEYS = ("url", "link", "canonical_url", "source_url", "final_url", "permalink", "href")
AUTHOR_KEYS = ("author", "authors", "byline", "creator", "writer")
DATE_KEYS = (
    "date",
    "published",
    "date_publish",
    "published_at",
    "publish_date",
    "pubDate",
    "datePublished",
    "pub_date",
    "created_at",
    "timestamp",
    "time",
)
HOST_KEYS = ("hostname", "domain", "source_domain", "site", "sitename")


# ---------------------------------------------------------------------------------------------------
# Any file name: a reversible text form for ``source``

# Control characters (Unicode category Cc): a name holding one is quoted, so no source breaks a line.
_CONTROL_CHAR = re.compile("[\x00-\x1f\x7f-\x9f]")
_QUOTED = re.compile(r'"((?:[^"\\]|\\x[0-9a-fA-F]{2}|\\["\\])*)"')
_QUOTED_PART = re.compile(r'\\x([0-9a-fA-F]{2})|\\(["\\])|[^\\]+')
_SUFFIX = re.compile(r"(?:@[0-9a-f]{8})?(?:#[0-9]+)?\Z")


def source_of_path(rel: bytes | str) -> str:
    """The text form of a relative path in ``source`` and in the index (inverse: :func:`path_of_source`).

    A path that is valid UTF-8, holds no control character and does not start with ``"`` is its own form.
    Any other is C-quoted as git quotes names: ``"`` + the path with ``\\`` as ``\\\\``, ``"`` as
    ``\\"``, each byte of a control character and each byte that is not UTF-8 as ``\\xNN`` + ``"``. A
    ``str`` is a name as ``os`` gives it (undecodable bytes as surrogate escapes).

    Example: ``source_of_path(b"caf\\xe9/a.txt") == '"caf\\\\xe9/a.txt"'``
    """
    if isinstance(rel, str):
        if rel.isascii() and rel.isprintable() and not rel.startswith('"'):
            return rel  # most names: printable ASCII has no control character (a third of the time below)
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:  # surrogate escapes: bytes that are not UTF-8
            return _quoted(os.fsencode(rel))
        text = rel
    else:
        try:
            text = rel.decode("utf-8")
        except UnicodeDecodeError:
            return _quoted(rel)
    if text.startswith('"') or _CONTROL_CHAR.search(text):
        return _quoted(text.encode("utf-8"))
    return text


def _quoted(raw: bytes) -> str:
    out = ['"']
    for char in raw.decode("utf-8", "surrogateescape"):
        if char in '"\\':
            out.append("\\" + char)
        elif "\udc80" <= char <= "\udcff":  # a byte that is not UTF-8
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif _CONTROL_CHAR.match(char):
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8"))
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def path_of_source(source: str) -> bytes:
    """The relative path (bytes) that :func:`source_of_path` gave ``source`` for.

    Raises:
        ValueError: ``source`` starts with ``"`` but is not one quoted form, end to end.
    """
    path, rest = split_source(source)
    if rest and source.startswith('"'):
        raise ValueError(f"text after the quoted path: {rest!r}")
    return path if source.startswith('"') else source.encode("utf-8")


def split_source(source: str) -> tuple[bytes, str]:
    """A ``source`` split into its file's relative path (bytes) and what follows: ``@HASH8`` (a later version
    of the file) and ``#N`` (the N-th record of a multi-record file), ``""`` when neither.

    A quoted path ends at its closing quote. A plain path is read up to a trailing ``@HASH8``/``#N``: a plain
    name that itself ends like one (``notes#2``) cannot be told apart, as before quoting existed.

    Raises:
        ValueError: ``source`` starts with ``"`` but no quoted form does.
    """
    if not source.startswith('"'):
        cut = _SUFFIX.search(source)
        start = cut.start() if cut else len(source)
        return source[:start].encode("utf-8"), source[start:]
    match = _QUOTED.match(source)
    if match is None:
        raise ValueError(f"not a quoted path: {source[:80]!r}")
    out = bytearray()
    for part in _QUOTED_PART.finditer(match.group(1)):
        if part.group(1):
            out.append(int(part.group(1), 16))
        elif part.group(2):
            out += part.group(2).encode("ascii")
        else:
            out += part.group(0).encode("utf-8")
    return bytes(out), source[match.end() :]


# ---------------------------------------------------------------------------------------------------
# INPUT is a boundary: what may be opened, and how

# Non-blocking: opening a FIFO that slipped past the checks returns at once instead of waiting for a
# writer; no controlling terminal from a tty; not inherited by worker processes started later.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOT_A_FILE = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


@dataclass(frozen=True, slots=True)
class InputBoundary:
    """Where inputs may be read from: regular files whose real path (every symbolic link resolved) lies
    inside ``root``; with ``follow_symlinks``, also whatever regular file a link inside ``root`` points to."""

    root: str
    follow_symlinks: bool = False
    real_root: str = field(init=False)  # resolved once, not once per file (22 us a call)

    def __post_init__(self) -> None:
        object.__setattr__(self, "real_root", os.path.realpath(self.root))

    def contains(self, real_path: str) -> bool:
        """Whether a resolved path lies inside the resolved root."""
        return real_path == self.real_root or real_path.startswith(self.real_root.rstrip(os.sep) + os.sep)


def open_input(
    path: str, boundary: InputBoundary, source: str
) -> tuple[BinaryIO, os.stat_result] | Rejection:
    """Open one input file for reading with its ``fstat``, or the rejection that says why not.

    ``outside_input``: a symbolic link (the file itself, or a folder on its way) resolving outside
    ``boundary.root``, unless ``follow_symlinks``. ``not_a_file``: a FIFO, socket, device or folder, told by
    ``lstat`` (``stat`` of a link's target) and never opened. ``unreadable``: the system refused.

    What was looked at is checked again on the opened descriptor: a file swapped for a FIFO or a link after
    the walk is refused before a byte is read (``O_NONBLOCK``: opening the FIFO does not wait), and without
    ``follow_symlinks`` the file is opened with ``O_NOFOLLOW`` and its real path, as the kernel reports it for
    the descriptor, must lie inside the boundary.
    """
    follow = boundary.follow_symlinks
    try:
        info = os.lstat(path)
        target = path
        if stat.S_ISLNK(info.st_mode):
            if not follow:
                target = os.path.realpath(path)
                if not boundary.contains(target):
                    return _outside(source, path, target)
            info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return _not_a_file(source, info.st_mode, "not opened")
        fd = os.open(target, _OPEN_FLAGS | (0 if follow else getattr(os, "O_NOFOLLOW", 0)))
    except OSError as err:
        return Rejection(source, "unreadable", f"{type(err).__name__}: {err}")
    handle = open(fd, "rb")  # noqa: SIM115 - returned open, or closed below
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            handle.close()
            return _not_a_file(source, info.st_mode, "swapped in after the walk; opened, not read")
        if not follow:
            real = _opened_path(fd, target)
            if not boundary.contains(real):
                handle.close()
                return _outside(source, path, real)
    except OSError as err:
        handle.close()
        return Rejection(source, "unreadable", f"{type(err).__name__}: {err}")
    return handle, info


def _opened_path(fd: int, path: str) -> str:
    """The real path of an open descriptor: the kernel's (Linux ``/proc``), else ``realpath`` of its path."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


def _outside(source: str, link: str, target: str) -> Rejection:
    detail = f"{source_of_path(link)} -> {source_of_path(target)}: outside INPUT (--follow-symlinks reads it)"
    return Rejection(source, "outside_input", detail)


def _not_a_file(source: str, mode: int, what: str) -> Rejection:
    kind = _NOT_A_FILE.get(stat.S_IFMT(mode), f"file type {stat.S_IFMT(mode):o}")
    return Rejection(source, "not_a_file", f"{kind}, {what}")


def read_capped(handle: BinaryIO, size: int, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of an opened file whose ``fstat`` said ``size``: the cap counts the bytes
    read, so a file that grew, or one that reports no size (``/proc``), is still caught past ``limit``."""
    data = handle.read(min(size, limit) + 1)
    if size < len(data) <= limit:
        data += handle.read(limit + 1 - len(data))
    return data


def read_input(
    path: str, boundary: InputBoundary, source: str, limit: int = MAX_FILE_BYTES
) -> bytes | Rejection:
    """The bytes of one input file (see :func:`open_input`), or a rejection; ``too_large`` past ``limit``."""
    opened = open_input(path, boundary, source)
    if isinstance(opened, Rejection):
        return opened
    handle, info = opened
    with handle:
        if info.st_size > limit:
            return Rejection(source, "too_large", f"{info.st_size} bytes > cap {limit}")
        try:
            data = read_capped(handle, info.st_size, limit)
        except OSError as err:
            return Rejection(source, "unreadable", f"{type(err).__name__}: {err}")
    if len(data) > limit:
        return Rejection(source, "too_large", f"over the cap of {limit} bytes read (it said {info.st_size})")
    return data


def discover(root: Path, exclude: Path | None = None) -> list[Path]:
    """All input files under ``root``, sorted by relative path (see :func:`walk_inputs`)."""
    return [Path(path) for path, _ in walk_inputs(root, exclude)]


# Given a folder (its source form, "" at the top) and its modification time: the source forms of its
# sub-folders' names when its files need no look (an earlier walk saw it with this time), else None.
Unchanged = Callable[[str, int], list[str] | None]


def walk_inputs(
    root: Path,
    exclude: Path | None = None,
    unchanged: Unchanged | None = None,
    folders: list[tuple[str, int, list[str]]] | None = None,
    follow_symlinks: bool = False,
) -> list[tuple[str, str]]:
    """``(path, source)`` of every input file under ``root``, sorted by source: the path to open (the
    system's name, undecodable bytes as surrogate escapes) and the relative path's text form
    (:func:`source_of_path`).

    Skips hidden entries, sidecars and ``exclude``. A sidecar without its page (``pipeline fetch`` writes
    one for a URL it could not fetch) is listed: it loads as that URL's rejection, so a failed fetch is
    accounted for like any other input. Every other entry that is not a folder is listed, links, FIFOs and
    devices too: :func:`open_input` decides at reading time what may be read, so each gets its rejection.
    Folder symlinks are not followed; with ``follow_symlinks``, one whose target lies outside ``root`` is
    (one inside is not: its folder is walked under its own name), and no folder is walked twice, by its
    ``(st_dev, st_ino)``, so a link loop ends. Plain strings, not ``Path`` objects: a run walks every
    input each time.

    ``unchanged``: asked for each folder with its modification time; where it returns the folder's
    sub-folders, the folder is not listed (its files are left out) and the walk goes on into them.
    ``folders``: receives ``(source form, modification time, sub-folder names' source forms)`` of each
    folder listed.
    """
    found: list[tuple[str, str]] = []
    excluded = os.path.realpath(exclude) if exclude else None
    top = os.fspath(root)
    boundary = InputBoundary(top) if follow_symlinks else None
    walked: set[tuple[int, int]] = set()
    pending = [""]
    while pending:
        rel = pending.pop()
        folder = os.path.join(top, rel) if rel else top
        key = source_of_path(rel)
        try:
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in walked:
                continue  # reached again through a link (or a bind mount)
            walked.add((info.st_dev, info.st_ino))
            mtime = info.st_mtime_ns
            known = _known_subfolders(unchanged(key, mtime)) if unchanged else None
            if known is not None:
                pending.extend(f"{rel}/{name}" if rel else name for name in known)
                continue
            with os.scandir(folder) as entries:
                listed = [e for e in entries if not e.name.startswith(".")]
        except OSError:
            continue  # a folder that vanished or cannot be read: as os.walk, nothing from it
        subdirs, names = [], []
        for entry in listed:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if not is_dir:
                names.append(entry.name)
                continue
            real = os.path.realpath(entry.path) if entry.is_symlink() or excluded else None
            if real is not None and real == excluded:
                continue
            if not entry.is_symlink() or (boundary is not None and not boundary.contains(real or "")):
                subdirs.append(entry.name)
        subdirs.sort()  # a folder reached twice (links) is walked under the same name every time
        if folders is not None:
            folders.append((key, mtime, [source_of_path(name) for name in subdirs]))
        pending.extend(f"{rel}/{name}" if rel else name for name in subdirs)
        present = set(names)
        prefix = f"{rel}/" if rel else ""
        for name in names:
            # a sidecar is listed only without its page: a failed fetch, loaded as a rejection
            if not name.endswith(SIDECAR_SUFFIX) or name.removesuffix(SIDECAR_SUFFIX) not in present:
                found.append((os.path.join(folder, name), source_of_path(prefix + name)))
    found.sort(key=lambda item: item[1])
    return found


def _known_subfolders(names: list[str] | None) -> list[str] | None:
    """The system's names of the sub-folders an earlier walk recorded (source forms), None if any does not
    read as one (the folder is then listed again)."""
    if names is None:
        return None
    try:
        return [os.fsdecode(path_of_source(name)) for name in names]
    except ValueError:
        return None


class InputPart(NamedTuple):
    """What one task loads of an input: the whole file, or the part of a split web archive that holds the
    records starting in its bytes ``[start, stop)`` (``stop`` None: to the end; see
    :func:`pipeline.archive.load_archive`)."""

    path: str
    source: str
    start: int = 0
    stop: int | None = None


def is_archive(name: str) -> bool:
    """Whether a file name is a web archive's: ``.warc``, ``.arc`` or ``.wet`` (Common Crawl's
    ``.warc.wet``), each also gzipped (``.warc.gz``)."""
    return name.lower().removesuffix(".gz").endswith(ARCHIVE_SUFFIXES)


def load_file(
    path: Path,
    root: Path,
    source: str | None = None,
    data: bytes | None = None,
    boundary: InputBoundary | None = None,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[Document | Rejection]:
    """Read one file and yield its documents, or a rejection saying why there are none.

    ``source`` names the file in the outputs (default: its path relative to ``root``, see
    :func:`source_of_path`); ``data`` is the file's content when the caller has read it already (at most
    ``MAX_FILE_BYTES``); ``boundary`` says what may be opened (default: files inside ``root``, see
    :func:`open_input`). A web archive (:func:`is_archive`) is streamed record by record from the open file
    by :mod:`pipeline.archive`, whatever its size; ``start`` and ``stop`` select the part of it whose
    records start in those bytes (see :class:`InputPart`).
    """
    source = source or source_of_path(path.relative_to(root).as_posix())
    boundary = boundary or InputBoundary(os.fspath(root))
    if path.name.endswith(SIDECAR_SUFFIX):
        yield _failed_fetch(path, source, boundary)
        return
    if is_archive(path.name):
        from pipeline.archive import load_archive  # noqa: PLC0415 - pipeline.archive imports this module

        yield from load_archive(os.fspath(path), source, boundary, data, start, stop)
        return
    if data is None:
        read = read_input(os.fspath(path), boundary, source)
        if isinstance(read, Rejection):
            yield read
            return
        data = read
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
        try:
            data = _gunzip(data)
        except (OSError, EOFError, zlib.error) as err:
            yield Rejection(source, "unreadable", f"{type(err).__name__}: {err}")
            return
        except ValueError as err:  # gzip over the size cap
            yield Rejection(source, "too_large", str(err))
            return
    suffix = suffixes[-1] if suffixes else ""
    meta = _read_sidecar(path, boundary)
    if suffix in JSONL_SUFFIXES or suffix in JSON_SUFFIXES:
        buffer = _json_buffer(data, source, meta.get("charset"))
        del data  # the records are split from the file's bytes or from its text, never both held here
        if isinstance(buffer, Rejection):
            yield buffer
        else:
            split = _split_jsonl if suffix in JSONL_SUFFIXES else _split_json
            yield from split(buffer[0], source, buffer[1])
        return
    page = page_document(data, source, suffix in HTML_SUFFIXES, meta)
    del data
    yield page


def page_document(data: bytes, source: str, html: bool, meta: dict[str, Any]) -> Document | Rejection:
    """The document of one page or text (a file, an archive's record): its bytes decoded (with the HTTP
    charset of ``meta``), HTML when ``html`` or when it starts like a page, its URL and fetch date from
    ``meta`` (a sidecar's, a WARC record's headers)."""
    if len(data) > MAX_PAGE_BYTES:
        return _too_long(source, f"{len(data)} bytes")
    text = decode(data, source, meta.get("charset"))
    if isinstance(text, Rejection):
        return text
    if len(text) > MAX_DOCUMENT_CHARS:
        return _too_long(source, f"{len(text)} characters")
    return Document(
        source=source,
        body=text,
        kind="html" if html or _HTML_START.match(data[:2048]) else "text",
        url=meta.get("url"),
        fetched=meta.get("fetched"),
        group=folder_group(source),
    )


def _too_long(source: str, size: str) -> Rejection:
    return Rejection(
        source, "too_large", f"{size}: over the cap of {MAX_DOCUMENT_CHARS} characters a document"
    )


def _gunzip(data: bytes) -> bytes:
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
        out = handle.read(MAX_FILE_BYTES + 1)
    if len(out) > MAX_FILE_BYTES:
        raise ValueError(f"decompressed size over cap {MAX_FILE_BYTES}")
    return out


def decode(data: bytes, source: str, charset: str | None = None) -> str | Rejection:
    """Bytes to text: BOM, UTF-8, the charset an HTML page declares, then detection.

    Returns a rejection (``empty``, ``binary``, ``decode_error``) when the bytes are not readable text.
    """
    rejection = _not_text(data, source)
    if rejection is not None:
        return rejection
    text: str | None
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                text = data.decode(codec).lstrip("\ufeff")
            except UnicodeDecodeError as err:
                return Rejection(source, "decode_error", f"{codec} BOM but {err.reason} at byte {err.start}")
            break
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            text = _decode_legacy(data, charset)
            if text is None:
                return Rejection(
                    source,
                    "decode_error",
                    f"not UTF-8 ({err.reason} at byte {err.start}), and no other encoding explains it",
                )
    if not text or text.isspace():  # not text.strip(): a copy of the text
        return Rejection(source, "empty", "only whitespace or a byte-order mark")
    if _control_ratio(text) > 0.05:
        return Rejection(source, "binary", "over 5% control characters")
    return text


def _not_text(data: bytes, source: str) -> Rejection | None:
    """The rejection of bytes that are no text whatever their encoding (``empty``, ``binary``), else None."""
    if not data or data.isspace():
        return Rejection(source, "empty", f"{len(data)} bytes, no content")
    head = data[:4096]
    if head.startswith(_BINARY_MAGIC) or b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return Rejection(source, "binary", "binary signature or NUL bytes")
    return None


# Browsers read these labels as windows-1252 (WHATWG Encoding Standard); so do the pages that carry them.
_WINDOWS_1252_LABELS = {
    "iso-8859-1",
    "iso8859-1",
    "latin1",
    "latin-1",
    "l1",
    "us-ascii",
    "ascii",
    "cp1252",
    "windows-1252",
    "x-cp1252",
}
_EBCDIC = {"cp037", "cp273", "cp424", "cp500", "cp875", "cp1026", "cp1140"}
_WESTERN = re.compile(
    "[\u00a0-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)


def _decode_legacy(data: bytes, charset: str | None = None) -> str | None:
    """Text from bytes that are not UTF-8: the charset the HTTP header (``charset``) or the page declares,
    else windows-1252 when it reads as Western European text, else charset-normalizer's detection
    (Cyrillic, Greek, CJK code pages ...)."""
    declared = _META_CHARSET.search(data[:4096])
    label = charset or (declared.group(1).decode("ascii", "replace") if declared else None)
    if label:
        label = label.strip().lower()
        try:
            return data.decode("cp1252" if label in _WINDOWS_1252_LABELS else label)
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None:
        # charset-normalizer often names a neighbouring code page (cp1257, cp1250) for short French or
        # Spanish text; cp1252 is right when its reading has only Western letters and punctuation.
        non_ascii = [ch for ch in western if ord(ch) > 127]
        if sum(1 for ch in non_ascii if _WESTERN.match(ch)) >= 0.95 * len(non_ascii):
            return western
    best = from_bytes(data[:200_000]).best()
    if (
        best is None
        or best.encoding in ("utf_8", "utf_16", "utf_32")
        or best.encoding in _EBCDIC
        or best.chaos > 0.2
    ):
        return None
    try:
        return data.decode(best.encoding)
    except (LookupError, UnicodeDecodeError):
        return None


# C0 controls only: C1 characters (U+0080-U+009F) are what UTF-8 read as cp1252 leaves behind, which is
# mojibake for the normaliser to repair, not binary data.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f]")


_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])


def _control_ratio(text: str) -> float:
    """Share of control characters (``_CONTROL``) in the first 8,192 characters.

    Counted on the UTF-8 bytes with one ``bytes.translate``, several times faster than the regex: the
    control characters are ASCII, and no byte of a multi-byte UTF-8 sequence is.
    """
    sample = text[:8192]
    data = sample.encode("utf-8", "surrogatepass")
    return (len(data) - len(data.translate(None, _CONTROL_BYTES))) / max(len(sample), 1)


# A sidecar is a few hundred bytes of JSON; it is read like any input (a FIFO or a link out is not).
SIDECAR_MAX_BYTES = 1024 * 1024


def _read_sidecar(path: Path, boundary: InputBoundary) -> dict[str, Any]:
    sidecar = os.fspath(path) + SIDECAR_SUFFIX
    if not os.path.lexists(sidecar):  # the common case, told without building a rejection
        return {}
    data = read_input(sidecar, boundary, "", SIDECAR_MAX_BYTES)
    if isinstance(data, Rejection):  # one that may not be read
        return {}
    try:
        meta = _json_loads(data.decode("utf-8"))
    except ValueError:
        return {}
    if not isinstance(meta, dict):
        return {}
    return {
        "url": meta.get("final_url") or meta.get("url"),
        "charset": content_type_charset(meta.get("content_type")),
        "fetched": meta.get("fetched_at"),
    }


def content_type_charset(content_type: Any) -> str | None:
    """The ``charset`` parameter of an HTTP Content-Type, None without one."""
    charset = re.search(r"charset=([\w.:-]+)", str(content_type or ""), re.I)
    return charset.group(1) if charset else None


def _failed_fetch(sidecar: Path, source: str, boundary: InputBoundary) -> Rejection:
    """The rejection a page-less sidecar stands for: its ``error`` as written by ``pipeline fetch``.

    Its ``source`` is the sidecar's own path: should the URL be fetched later, the page has a path of its
    own, so the rejection and the record never share a source.
    """
    data = read_input(os.fspath(sidecar), boundary, source, SIDECAR_MAX_BYTES)
    if isinstance(data, Rejection):
        return data
    try:
        meta = _json_loads(data.decode("utf-8"))
        error = meta["error"]
        reason, detail = error["reason"], f"{meta.get('url')}: {error.get('detail', '')}"
        return Rejection(source, reason if reason in REASONS else "fetch_error", detail, stage="fetch")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return Rejection(source, "parse_error", f"sidecar without a page or a readable error: {err}")


def folder_group(source: str) -> str:
    """The group of a document without a hostname: the first sub-folder of INPUT ("" at the top), in the
    text form of a name (:func:`source_of_path`)."""
    if source.startswith('"'):  # a quoted path: its first folder is a name of its own
        try:
            path, _ = split_source(source)
        except ValueError:
            return ""
        return source_of_path(path.split(b"/", 1)[0]) if b"/" in path else ""
    return source.split("/", 1)[0] if "/" in source else ""


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# orjson errors the json module raises too (it reads a superset of what orjson reads, and its recursion limit
# stops it short of orjson's 1,024 levels): no second, slower parse for these. Older orjson wordings too.
_FINAL_ORJSON_ERRORS = ("depth limit", "recursion limit", "trailing characters", "unexpected content after")


def _json_loads(text: bytes | str) -> Any:
    """Parse one JSON value (UTF-8 bytes or text); raises ``ValueError`` for anything that is not JSON.

    orjson first: fast, and it stops at 1,024 levels of nesting with a clean error where ``json`` raises
    ``RecursionError`` (the depth is then reported as a ``ValueError`` too). ``json`` for what only it reads:
    ``NaN``, and lone surrogate escapes ("\\ud83d" of an emoji cut in half, common in scraper exports), each
    read as U+FFFD: a lone surrogate is no character, and no UTF-8 output can hold it.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as err:
        if any(part in str(err) for part in _FINAL_ORJSON_ERRORS):
            raise
    try:
        data = json.loads(text)
        escape = _SURROGATE_ESCAPE_BYTES if isinstance(text, bytes) else _SURROGATE_ESCAPE
        return _without_lone_surrogates(data) if escape.search(text) else data  # type: ignore[arg-type]
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------------
# Multi-record files: JSON lines and JSON arrays, split one record at a time
#
# A record is the unit of failure: whatever goes wrong with one record (JSON that does not parse, nesting
# past orjson's 1,024 levels, a field of the wrong type, a bug of ours) rejects that record alone, and every
# other record of the file comes out. The file is split lazily, without a list of its lines or items, and
# from its own bytes when they are UTF-8 (no decoded copy of the whole file: a 50 MB file of text with one
# character outside Latin-1 is a 100-200 MB str).

_UTF8_BOM = b"\xef\xbb\xbf"
_BLANK = re.compile(rb"\s*\Z")


def _json_buffer(data: bytes, source: str, charset: str | None) -> tuple[bytes | str, int] | Rejection:
    """What a JSON (lines) file's records are split from, and where its content starts (after a BOM): the
    file's own bytes when they are UTF-8 (most are), else its text as :func:`decode` reads it."""
    rejection = _not_text(data, source)
    if rejection is not None:
        return rejection
    start = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or not _is_utf8(data, start):
        text = decode(data, source, charset)
        return text if isinstance(text, Rejection) else (text, 0)
    if _BLANK.match(data, start):  # decode's checks of the text, on the bytes
        return Rejection(source, "empty", "only whitespace or a byte-order mark")
    if _control_ratio(data[start : start + 32768].decode("utf-8", "ignore")) > 0.05:
        return Rejection(source, "binary", "over 5% control characters")
    return data, start


def _is_utf8(data: bytes, start: int = 0) -> bool:
    """Whether ``data[start:]`` is UTF-8, checked a megabyte at a time (no decoded copy of the whole)."""
    if data.isascii():
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for block in range(start, len(data), 1 << 20):
            decoder.decode(view[block : block + (1 << 20)])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _lines(buffer: bytes | str, start: int = 0) -> Iterator[tuple[int, bytes | str]]:
    """``(number, line)`` of each line from ``start`` (numbered from 1, ``\\n`` only), one at a time."""
    newline: Any = b"\n" if isinstance(buffer, bytes) else "\n"
    number = 0
    while True:
        number += 1
        stop = buffer.find(newline, start)
        if stop < 0:
            yield number, buffer[start:]
            return
        yield number, buffer[start:stop]
        start = stop + 1


_NON_ASCII_FIRST = re.compile(rb"\s*[\x80-\xff]")


def _blank(line: bytes | str) -> bool:
    """Whether a line is white space only, Unicode's included (a no-break space, an ideographic space)."""
    if not line or line.isspace():
        return True
    if isinstance(line, str):
        return False
    return _NON_ASCII_FIRST.match(line) is not None and line.decode("utf-8", "replace").isspace()


def _json_record(raw: bytes | str, source: str, where: str) -> Document | Rejection:
    """One record of a multi-record file, parsed and read alone: whatever goes wrong rejects it, and only
    it (``parse_error`` for what is not JSON or nested too deep, ``internal_error`` for a bug of ours)."""
    try:
        item = _json_loads(raw)
    except ValueError as err:
        return Rejection(source, "parse_error", f"{where}: {err}")
    except Exception as err:  # noqa: BLE001 - (MemoryError ...) this record only
        return _record_failed(source, err)
    return _record(item, source)


def _record(item: Any, source: str) -> Document | Rejection:
    """:func:`document_from_json`, with an unexpected exception (a bug of ours) this record's rejection."""
    try:
        return document_from_json(item, source)
    except Exception as err:  # noqa: BLE001 - a bug of ours costs this record only
        return _record_failed(source, err)


def _record_failed(source: str, err: Exception) -> Rejection:
    log.warning("load failed on %s: %s: %s", source, type(err).__name__, err)
    return Rejection(source, "internal_error", f"{type(err).__name__}: {err}")


def _split_jsonl(buffer: bytes | str, source: str, start: int = 0) -> Iterator[Document | Rejection]:
    """The records of a JSON lines file, ``path#N`` for line N."""
    found = False
    for number, line in _lines(buffer, start):
        if not _blank(line):
            found = True
            yield _json_record(line, f"{source}#{number}", f"JSON line {number}")
    if not found:
        yield Rejection(source, "empty", "JSON lines file with no lines")


def _split_json(buffer: bytes | str, source: str, start: int = 0) -> Iterator[Document | Rejection]:
    """The record of a JSON file holding one object, or the records of an array (``path#N`` for item N).

    An array is split item by item (see :func:`_array_items`). A file holding anything else that does not
    parse is one ``parse_error`` (its records cannot be delimited), unless it is JSON lines: one object per
    line, common in scraper exports under ``.json``.
    """
    scan = _SCANS[type(buffer)]
    first = scan.blank.match(buffer, start).end()  # type: ignore[union-attr]
    opening = buffer[first : first + 1]
    if opening == scan.open_array:
        yield from _split_json_array(buffer, source, first)
        return
    try:
        data = _json_loads(buffer[start:] if start else buffer)
    except ValueError as err:
        newline = buffer.find(scan.newline, first)
        if opening == scan.open_object and newline >= 0 and scan.nonblank.search(buffer, newline):
            yield from _split_jsonl(buffer, source, start)
        else:
            yield Rejection(source, "parse_error", f"JSON: {err}")
        return
    yield _record(data, source)


def _split_json_array(buffer: bytes | str, source: str, start: int) -> Iterator[Document | Rejection]:
    number = 0
    items = _array_items(buffer, start)
    while True:
        try:
            bounds = next(items, None)
        except _Undelimited as err:
            if err.after_array or not number:  # no record of its own: the file's rejection
                yield Rejection(source, "parse_error", f"JSON array: {err} (after {number} items)")
            else:
                yield Rejection(
                    f"{source}#{number + 1}", "parse_error", f"JSON array item {number + 1}: {err}"
                )
            return
        if bounds is None:
            break
        raw = buffer[bounds[0] : bounds[1]]
        if not _blank(raw):  # none between two commas, or after a last comma
            number += 1
            yield _json_record(raw, f"{source}#{number}", f"JSON array item {number}")
    if not number:
        yield Rejection(source, "empty", "JSON array with no records")


class _Undelimited(ValueError):
    """Where an array's walk cannot tell where the next item ends, or what follows the array is not blank."""

    def __init__(self, message: str, after_array: bool = False) -> None:
        super().__init__(message)
        self.after_array = after_array


@dataclass(frozen=True, slots=True)
class _Scan:
    """The patterns of an array's walk, for bytes or for text."""

    top: re.Pattern[Any]  # up to the next bracket or comma, strings whole
    inner: re.Pattern[Any]  # inside an item: up to the next bracket, strings and commas whole
    opens: re.Pattern[Any]  # a run of opening brackets
    closes: re.Pattern[Any]  # a run of closing brackets
    blank: re.Pattern[Any]
    nonblank: re.Pattern[Any]
    open_array: Any
    open_object: Any
    close_array: Any
    comma: Any
    newline: Any

    @classmethod
    def of(cls, kind: type) -> _Scan:
        def pattern(text: str) -> re.Pattern[Any]:
            return re.compile(text.encode("ascii") if kind is bytes else text, re.S)

        # A string is matched whole, so that a bracket or comma inside it is text; a quote that opens no
        # complete string (the file ends first) stops a step short.
        string = r'"[^"\\]*(?:\\.[^"\\]*)*"'
        return cls(
            pattern(rf'(?:[^"\[\]{{}},]+|{string})*'),
            pattern(rf'(?:[^"\[\]{{}}]+|{string})*'),
            pattern(r"[\[{]+"),
            pattern(r"[\]}]+"),
            pattern(r"\s*"),
            pattern(r"\S"),
            *((c.encode("ascii") if kind is bytes else c) for c in ("[", "{", "]", ",", "\n")),
        )


_SCANS = {bytes: _Scan.of(bytes), str: _Scan.of(str)}


def _array_items(buffer: bytes | str, start: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each item of the JSON array whose ``[`` is at ``start``, one at a time.

    The walk counts brackets and skips strings, in runs, so that an item is delimited without being parsed:
    each item is then parsed alone, and one nested 100,000 deep costs that item only. Raises
    :class:`_Undelimited` where the file ends inside the array (a truncated export: the items before come
    out) or a ``}`` closes it, and when something other than white space follows it.
    """
    scan = _SCANS[type(buffer)]
    size = len(buffer)
    pos = item = start + 1
    depth = 0
    while True:
        pos = (scan.inner if depth else scan.top).match(buffer, pos).end()  # type: ignore[union-attr]
        if pos >= size:
            raise _Undelimited("the file ends inside the array")
        char = buffer[pos : pos + 1]
        if char in (scan.open_array, scan.open_object):
            run = scan.opens.match(buffer, pos).end()  # type: ignore[union-attr]
            depth, pos = depth + run - pos, run
        elif char == scan.comma:  # a top-level comma: inside an item, the step passes commas
            yield item, pos
            pos = item = pos + 1
        elif char in (scan.close_array, b"}" if isinstance(buffer, bytes) else "}"):
            run = scan.closes.match(buffer, pos).end()  # type: ignore[union-attr]
            if run - pos <= depth:
                depth, pos = depth - (run - pos), run
                continue
            pos += depth  # the bracket after the item's last one closes the array
            if buffer[pos : pos + 1] != scan.close_array:
                raise _Undelimited(f"a '}}' at offset {pos} where the array should close")
            yield item, pos
            if scan.blank.match(buffer, pos + 1).end() != size:  # type: ignore[union-attr]
                raise _Undelimited(f"more content at offset {pos + 1}", after_array=True)
            return
        else:
            raise _Undelimited(f"a string from offset {pos} never ends")


def _first(item: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = item.get(key)
        if value not in (None, "", [], {}):
            return value
    return None


def _as_text(value: Any, depth: int = 0) -> str | None:
    """A field's value as text: a list joined with commas, an object's name, text or value. Lists and
    objects are read ``_TEXT_DEPTH`` levels deep at most (a record can nest them a thousand levels deep)."""
    if value is None:
        return None
    if isinstance(value, list):
        if depth >= _TEXT_DEPTH:
            return None
        parts = [_as_text(v, depth + 1) for v in value]
        return ", ".join(p for p in parts if p) or None
    if isinstance(value, dict):
        return _as_text(_first(value, ("name", "text", "value")), depth + 1) if depth < _TEXT_DEPTH else None
    return str(value).strip() or None


_TEXT_DEPTH = 4


def holds_html(text: str) -> bool:
    """Whether a record's text field is HTML rather than text (see ``_BLOCK_MARK``)."""
    sample = text[:20_000]
    if "<" not in sample:
        return False
    if _LEADING_TAG.match(sample) and _CLOSING_TAG.search(sample):
        return True
    marks = len(_BLOCK_MARK.findall(sample))
    return marks >= MIN_BLOCK_MARKS and marks * 1000 >= len(sample)


def document_from_json(item: Any, source: str) -> Document | Rejection:
    """A document from one scraped JSON object, or a ``parse_error`` rejection when it has no text."""
    if not isinstance(item, dict):
        return Rejection(source, "parse_error", f"expected a JSON object, got {type(item).__name__}")
    text = _first(item, TEXT_KEYS)
    html_value = _first(item, HTML_KEYS)
    kind = "text"
    if isinstance(html_value, str) and (not isinstance(text, str) or not text.strip()):
        text, kind = html_value, "html"
    if isinstance(text, list):  # a list of paragraphs
        paragraphs = (p if isinstance(p, str) else _as_text(p) for p in text)
        text = "\n\n".join(p for p in paragraphs if p)
    if not isinstance(text, str) or not text or text.isspace():
        return Rejection(source, "parse_error", f"no text field (looked for {', '.join(TEXT_KEYS[:5])}, ...)")
    if len(text) > MAX_DOCUMENT_CHARS:
        return _too_long(source, f"{len(text)} characters")
    if kind == "text" and _HTML_START.match(text[:2048].encode("utf-8", "replace")):
        kind = "html"
    elif kind == "text" and holds_html(text):
        # The record's body in markup: extracted as a page whose article it is. Without the <article>
        # element trafilatura takes a fragment for a page and drops what looks thin in one (a short body
        # is "no main text"; a <br> line after the paragraphs is lost); with it, it keeps the text and
        # still drops scripts, share rows and the like (tests/test_load.py).
        text, kind = f"<html><body><article>{text}</article></body></html>", "html"
    url = _as_text(_first(item, URL_KEYS))
    hostname = _as_text(_first(item, HOST_KEYS))
    return Document(
        source=source,
        body=text,
        kind=kind,
        url=url,
        title=_as_text(_first(item, TITLE_KEYS)),
        author=_as_text(_first(item, AUTHOR_KEYS)),
        date=_as_text(_first(item, DATE_KEYS)),
        hostname=hostname,
        group=folder_group(source),
    )
