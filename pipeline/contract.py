"""The records that flow through the stages and the output contract every later tool reads.

OUTPUT holds exactly these files (see README, "Output contract"):

- ``records.jsonl``    one :class:`Record` per kept document
- ``duplicates.jsonl`` one :class:`Duplicate` per dropped copy
- ``rejected.jsonl``   one :class:`Rejection` per input that yields no record
- ``stats.json``       counts per stage and reason, timings, configuration

With ``--format parquet`` or ``both``, ``records.parquet``, ``duplicates.parquet`` and ``rejected.parquet``
hold the same rows, typed by :data:`COLUMNS` (see :mod:`pipeline.parquet`); with ``parquet`` alone the
JSON-lines files are kept out of sight, as the index's journal. :func:`output_path` and :func:`read_rows`
read either form.

Every input document appears exactly once across the three ``.jsonl`` files (keyed by ``source``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RECORDS = "records.jsonl"
DUPLICATES = "duplicates.jsonl"
REJECTED = "rejected.jsonl"
STATS = "stats.json"

RECORD_FIELDS = (
    "id",
    "source",
    "url",
    "title",
    "author",
    "text",
    "date",
    "hostname",
    "language",
    "content_hash",
)
DUPLICATE_FIELDS = ("id", "source", "duplicate_of", "kind", "similarity")
REJECTION_FIELDS = ("source", "reason", "detail")

# Every field of each row file with its type, in the order the JSON lines hold them; ``| None``: the field
# may be null. The Parquet outputs' schema is derived from these (pipeline.parquet).
RECORD_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("id", str),
    ("source", str),
    ("url", str | None),
    ("title", str | None),
    ("author", str | None),
    ("text", str),
    ("date", str | None),
    ("hostname", str | None),
    ("language", str | None),
    ("content_hash", str),
    ("removed_lines", list[str]),
    ("credits", list[str]),
)
DUPLICATE_COLUMNS = (
    *RECORD_COLUMNS,
    ("duplicate_of", str),
    ("kind", str),
    ("similarity", float),
    ("containment", float),
    ("matched", str),
    ("reason", str),
    ("how", str | None),
)
REJECTION_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("source", str),
    ("reason", str),
    ("detail", str),
    ("stage", str),
)
COLUMNS = {RECORDS: RECORD_COLUMNS, DUPLICATES: DUPLICATE_COLUMNS, REJECTED: REJECTION_COLUMNS}
PARQUET = {name: name.removesuffix(".jsonl") + ".parquet" for name in COLUMNS}  # records.parquet ...

# Short, stable reason codes; README documents each.
LOAD_REASONS = (
    "empty",  # zero bytes or only whitespace
    "binary",  # not text (NUL bytes, control characters, known binary magic)
    "decode_error",  # bytes that no encoding explains
    "too_large",  # a file over the size cap (50 MB, decompressed), a document over 4 M characters
    "unreadable",  # the file could not be read (permissions, vanished, I/O error)
    "outside_input",  # a symbolic link whose target lies outside INPUT (read only with --follow-symlinks)
    "not_a_file",  # a FIFO, socket or device: never opened
    "parse_error",  # a JSON line or file that does not parse, or a record with no text field
    "no_main_text",  # HTML with no main text, or text that is all boilerplate
    "too_short",  # a clean text of fewer than --min-words words (10) and no sentence: a menu, one word
    "language",  # detected in a language --languages does not keep (the detail: which, and its score)
    "internal_error",  # a bug of ours met this document; the run goes on, the detail names the exception
)
# Why `pipeline fetch` could not store a page (written into the page's sidecar, reported by `clean`, stage
# fetch); a web archive's response that is no page is rejected with two of them (`http_error`,
# `unsupported_type`, stage load: see pipeline.archive).
FETCH_REASONS = (
    "http_error",  # a 4xx/5xx status (detail: "HTTP 404")
    "timeout",  # no complete answer within the time-out
    "connection_error",  # DNS, refused, reset, TLS
    "redirect_loop",  # more redirects than allowed, or a cycle
    "robots_disallowed",  # the site's robots.txt forbids our user agent
    "unsupported_type",  # not HTML/XHTML/text (a PDF, an image ...)
    "blocked_address",  # the host resolves to a non-public address (loopback, private ...): --allow-private
    "fetch_error",  # anything else
)
REASONS = LOAD_REASONS + FETCH_REASONS
# How a duplicate's link to ``matched`` was verified (pipeline.dedup); None: it joined through others.
HOWS = ("exact", "jaccard", "containment", "rewrite")


def document_id(source: str) -> str:
    """Stable id of a document: the first 16 hex digits of SHA-256 of its ``source``."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def content_hash(text: str) -> str:
    """Hash of the clean text, the key for exact duplicates."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(slots=True)
class Document:
    """One document on its way through the stages.

    ``kind`` says how ``body`` is to be read (``html`` or ``text``); after extraction it is ``text``.
    ``group`` is the source group whose recurring lines are learned as boilerplate (hostname, else the
    first sub-folder of INPUT).
    """

    source: str
    body: str
    kind: str = "text"
    url: str | None = None
    title: str | None = None
    author: str | None = None
    date: str | None = None
    hostname: str | None = None
    language: str | None = None  # ISO 639-1 code of the clean text (pipeline.language)
    group: str = ""
    removed: list[str] = field(default_factory=list)
    credits: list[str] = field(default_factory=list)  # closing credit lines, also in the text (see cleanup)
    site_name: str | None = None  # the page's og:site_name: a title affix equal to it is removed (not output)
    # When the page was fetched (a WARC record's WARC-Date, a sidecar's fetched_at): the record's date when
    # neither the input's fields, the page nor a byline give one (see pipeline.cleanup.clean_document).
    fetched: str | None = None

    @property
    def id(self) -> str:
        return document_id(self.source)


@dataclass(slots=True)
class Rejection:
    """An input that yields no record, with the stage that rejected it and why."""

    source: str
    reason: str
    detail: str
    stage: str = "load"

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown rejection reason {self.reason!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def record_json(doc: Document) -> dict[str, Any]:
    """The ``records.jsonl`` object of a clean document."""
    return {
        "id": doc.id,
        "source": doc.source,
        "url": doc.url,
        "title": doc.title,
        "author": doc.author,
        "text": doc.body,
        "date": doc.date,
        "hostname": doc.hostname,
        "language": doc.language,
        "content_hash": content_hash(doc.body),
        "removed_lines": doc.removed,
        "credits": doc.credits,
    }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines output file (a Parquet one by its suffix); an empty list when it does not exist."""
    return list(read_rows(path)) if path.exists() else []


def output_path(out: Path, name: str) -> Path:
    """The file holding output ``name`` (``records.jsonl`` ...) in ``out``: the JSON lines, else (``--format
    parquet``) the Parquet file."""
    jsonl = out / name
    return jsonl if jsonl.exists() else out / PARQUET[name]


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of an output file, JSON lines or Parquet (by its suffix), one at a time."""
    if path.suffix == ".parquet":
        from pipeline.parquet import parquet_rows  # noqa: PLC0415 - pyarrow, only for Parquet outputs

        yield from parquet_rows(path)
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def validate_output(out: Path) -> dict[str, int]:
    """Check an OUTPUT folder (JSON lines, else Parquet) against the contract; return counts, raise
    ``ValueError`` on a breach."""
    records, duplicates, rejected = (
        read_jsonl(output_path(out, name)) for name in (RECORDS, DUPLICATES, REJECTED)
    )
    for name, rows, fields in (
        (RECORDS, records, RECORD_FIELDS),
        (DUPLICATES, duplicates, DUPLICATE_FIELDS),
        (REJECTED, rejected, REJECTION_FIELDS),
    ):
        for row in rows:
            missing = [f for f in fields if f not in row]
            if missing:
                raise ValueError(f"{name}: {row.get('source')!r} lacks {missing}")
    sources = [r["source"] for r in records + duplicates + rejected]
    if len(sources) != len(set(sources)):
        seen: set[str] = set()
        twice = sorted({s for s in sources if s in seen or seen.add(s)})  # type: ignore[func-returns-value]
        raise ValueError(f"sources accounted for more than once: {twice[:5]}")
    kept_ids = {r["id"] for r in records}
    for dup in duplicates:
        if dup["duplicate_of"] not in kept_ids:
            raise ValueError(
                f"{dup['source']!r} is a duplicate of {dup['duplicate_of']!r}, not a kept record"
            )
        if dup["kind"] not in ("exact", "near") or not 0.0 <= dup["similarity"] <= 1.0:
            raise ValueError(f"{dup['source']!r}: bad kind or similarity")
        if dup.get("how") not in (None, *HOWS):
            raise ValueError(f"{dup['source']!r}: unknown how {dup['how']!r}")
    for rej in rejected:
        if rej["reason"] not in REASONS:
            raise ValueError(f"{rej['source']!r}: unknown reason {rej['reason']!r}")
    json.loads((out / STATS).read_text(encoding="utf-8"))
    return {"records": len(records), "duplicates": len(duplicates), "rejected": len(rejected)}
