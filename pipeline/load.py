"""Loading raw inputs: walk INPUT, read bytes, decode, and split files into documents.

A file becomes zero or more :class:`Document` objects, or :class:`Rejection` objects saying why not.
Nothing here raises for a bad file: every failure is a rejection with a reason.

Formats, by extension and then by sniffing the first bytes:

- ``.html``/``.htm``/``.xhtml`` (or text starting with ``<!doctype html``/``<html``): one HTML page
- ``.json``: one object, or an array of objects (``path#N`` for the N-th, 1-based)
- ``.jsonl``/``.ndjson``: one object per line (``path#N`` for line N, 1-based)
- anything else that decodes as text: one plain-text article
- any of these compressed with gzip (``.gz``) is read through the compression

A JSON object gives its fields under the names common scrapers use (``text``/``content``/``body``...,
``html``/``raw_html``..., ``title``/``headline``, ``url``/``link``, ``author``/``authors``/``byline``,
``date``/``published``...). A sidecar ``NAME.meta.json`` beside a page (written by ``pipeline fetch``)
gives its URL.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from charset_normalizer import from_bytes

from pipeline.contract import REASONS, Document, Rejection

MAX_FILE_BYTES = 50 * 1024 * 1024
SIDECAR_SUFFIX = ".meta.json"
HTML_SUFFIXES = {".html", ".htm", ".xhtml", ".shtml", ".php", ".asp", ".aspx"}
JSON_SUFFIXES = {".json"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
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


def discover(root: Path, exclude: Path | None = None) -> list[Path]:
    """All input files under ``root``, sorted by relative path (see :func:`walk_inputs`)."""
    return [Path(path) for path, _ in walk_inputs(root, exclude)]


# Given a folder (relative posix path, "" at the top) and its modification time: the names of its sub-folders
# when its files need no look (an earlier walk saw it with this time), else None.
Unchanged = Callable[[str, int], list[str] | None]


def walk_inputs(
    root: Path,
    exclude: Path | None = None,
    unchanged: Unchanged | None = None,
    folders: list[tuple[str, int, list[str]]] | None = None,
) -> list[tuple[str, str]]:
    """``(path, relative posix path)`` of every input file under ``root``, sorted by relative path.

    Skips hidden entries, sidecars and ``exclude``. A sidecar without its page (``pipeline fetch`` writes
    one for a URL it could not fetch) is listed: it loads as that URL's rejection, so a failed fetch is
    accounted for like any other input. Directory symlinks are not followed (no loops); file symlinks are
    read like files. Plain strings, not ``Path`` objects: a run walks every input each time.

    ``unchanged``: asked for each folder with its modification time; where it returns the folder's
    sub-folders, the folder is not listed (its files are left out) and the walk goes on into them.
    ``folders``: receives ``(relative path, modification time, sub-folder names)`` of each folder listed.
    """
    found: list[tuple[str, str]] = []
    excluded = os.path.realpath(exclude) if exclude else None
    top = os.fspath(root)
    pending = [""]
    while pending:
        rel = pending.pop()
        folder = os.path.join(top, rel) if rel else top
        try:
            mtime = os.stat(folder).st_mtime_ns
            known = unchanged(rel, mtime) if unchanged else None
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
            elif not entry.is_symlink() and (excluded is None or os.path.realpath(entry.path) != excluded):
                subdirs.append(entry.name)
        if folders is not None:
            folders.append((rel, mtime, subdirs))
        pending.extend(f"{rel}/{name}" if rel else name for name in subdirs)
        present = set(names)
        prefix = f"{rel}/" if rel else ""
        for name in names:
            # a sidecar is listed only without its page: a failed fetch, loaded as a rejection
            if not name.endswith(SIDECAR_SUFFIX) or name.removesuffix(SIDECAR_SUFFIX) not in present:
                found.append((os.path.join(folder, name), prefix + name))
    found.sort(key=lambda item: item[1])
    return found


def load_file(
    path: Path, root: Path, source: str | None = None, data: bytes | None = None
) -> Iterator[Document | Rejection]:
    """Read one file and yield its documents, or a rejection saying why there are none.

    ``source`` names the file in the outputs (default: its path relative to ``root``); ``data`` is the
    file's content when the caller has read it already (at most ``MAX_FILE_BYTES``).
    """
    source = source or path.relative_to(root).as_posix()
    if path.name.endswith(SIDECAR_SUFFIX):
        yield _failed_fetch(path, source)
        return
    try:
        if data is None:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                yield Rejection(source, "too_large", f"{size} bytes > cap {MAX_FILE_BYTES}")
                return
            data = path.read_bytes()
        suffixes = [s.lower() for s in path.suffixes]
        if suffixes and suffixes[-1] == ".gz":
            data = _gunzip(data)
            suffixes = suffixes[:-1]
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        yield Rejection(source, "unreadable", f"{type(err).__name__}: {err}")
        return
    except ValueError as err:  # gzip over the size cap
        yield Rejection(source, "too_large", str(err))
        return
    suffix = suffixes[-1] if suffixes else ""
    meta = _read_sidecar(path)
    text_or_rejection = decode(data, source, meta.get("charset"))
    if isinstance(text_or_rejection, Rejection):
        yield text_or_rejection
        return
    text = text_or_rejection
    if suffix in JSONL_SUFFIXES:
        yield from _split_jsonl(text, source)
    elif suffix in JSON_SUFFIXES:
        yield from _split_json(text, source)
    else:
        kind = "html" if suffix in HTML_SUFFIXES or _HTML_START.match(data[:2048]) else "text"
        yield Document(source=source, body=text, kind=kind, url=meta.get("url"), group=folder_group(source))


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
    if not data.strip():
        return Rejection(source, "empty", f"{len(data)} bytes, no content")
    head = data[:4096]
    if head.startswith(_BINARY_MAGIC) or b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return Rejection(source, "binary", "binary signature or NUL bytes")
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
    if not text.strip():
        return Rejection(source, "empty", "only whitespace or a byte-order mark")
    if _control_ratio(text) > 0.05:
        return Rejection(source, "binary", "over 5% control characters")
    return text


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
    sample = text[:8192]
    if sample.isascii():  # the same count with one bytes.translate, five times faster than the regex
        data = sample.encode("ascii")
        return (len(data) - len(data.translate(None, _CONTROL_BYTES))) / max(len(data), 1)
    return len(_CONTROL.findall(sample)) / max(len(sample), 1)


def _read_sidecar(path: Path) -> dict[str, Any]:
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if not sidecar.exists():
        return {}
    try:
        meta = _json_loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(meta, dict):
        return {}
    charset = re.search(r"charset=([\w.:-]+)", str(meta.get("content_type") or ""), re.I)
    return {"url": meta.get("final_url") or meta.get("url"), "charset": charset.group(1) if charset else None}


def _failed_fetch(sidecar: Path, source: str) -> Rejection:
    """The rejection a page-less sidecar stands for: its ``error`` as written by ``pipeline fetch``.

    Its ``source`` is the sidecar's own path: should the URL be fetched later, the page has a path of its
    own, so the rejection and the record never share a source.
    """
    try:
        meta = _json_loads(sidecar.read_text(encoding="utf-8"))
        error = meta["error"]
        reason, detail = error["reason"], f"{meta.get('url')}: {error.get('detail', '')}"
        return Rejection(source, reason if reason in REASONS else "fetch_error", detail, stage="fetch")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return Rejection(source, "parse_error", f"sidecar without a page or a readable error: {err}")


def folder_group(source: str) -> str:
    """The group of a document without a hostname: the first sub-folder of INPUT ("" at the top)."""
    return source.split("/", 1)[0] if "/" in source else ""


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_loads(text: str) -> Any:
    """``json.loads``, with each lone surrogate escape ("\\ud83d" of an emoji cut in half, common in
    scraper exports) read as U+FFFD: a lone surrogate is no character, and no UTF-8 output can hold it."""
    data = json.loads(text)
    if _SURROGATE_ESCAPE.search(text):
        data = _without_lone_surrogates(data)
    return data


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


def _split_jsonl(text: str, source: str) -> Iterator[Document | Rejection]:
    if not text.strip():
        yield Rejection(source, "empty", "JSON lines file with no lines")
        return
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        item_source = f"{source}#{number}"
        try:
            item = _json_loads(line)
        except ValueError as err:
            yield Rejection(item_source, "parse_error", f"JSON line {number}: {err}")
            continue
        yield document_from_json(item, item_source)


def _split_json(text: str, source: str) -> Iterator[Document | Rejection]:
    try:
        data = _json_loads(text)
    except ValueError as err:
        # A .json file that is really JSON lines is common in scraper exports.
        if "\n" in text.strip() and text.lstrip().startswith("{"):
            yield from _split_jsonl(text, source)
        else:
            yield Rejection(source, "parse_error", f"JSON: {err}")
        return
    if isinstance(data, list):
        if not data:
            yield Rejection(source, "empty", "JSON array with no records")
        for number, item in enumerate(data, start=1):
            yield document_from_json(item, f"{source}#{number}")
    else:
        yield document_from_json(data, source)


def _first(item: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = item.get(key)
        if value not in (None, "", [], {}):
            return value
    return None


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        parts = [_as_text(v) for v in value]
        return ", ".join(p for p in parts if p) or None
    if isinstance(value, dict):
        return _as_text(_first(value, ("name", "text", "value")))
    return str(value).strip() or None


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
        text = "\n\n".join(str(p) for p in text if p)
    if not isinstance(text, str) or not text.strip():
        return Rejection(source, "parse_error", f"no text field (looked for {', '.join(TEXT_KEYS[:5])}, ...)")
    if kind == "text" and _HTML_START.match(text[:2048].encode("utf-8", "replace")):
        kind = "html"
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
