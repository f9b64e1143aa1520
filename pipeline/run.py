"""The ``clean`` run: discover -> load/extract/normalise (pass 1) -> learn boilerplate -> strip/sign
(pass 2) -> dedup -> write.

Passes 1 and 2 are per chunk of files and run in worker processes; each spools its documents to a file in
a temporary folder inside OUTPUT and returns only compact results. Dedup and writing are sequential in
the parent, in input order, so the output does not depend on the number of workers. The Prefect flow in
``flows/clean_folder.py`` composes the same functions as tasks.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import pickle
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import xxhash

from pipeline import contract
from pipeline.archive import archive_parts
from pipeline.bands import band_keys
from pipeline.cleanup import BoilerplateRules, CleanupConfig, LineCounts, clean_document, require_min_words
from pipeline.contract import Document, Rejection, record_json
from pipeline.dedup import PREFIX_TOKENS, Deduplicator, SignedBatch, Verdict
from pipeline.extract import extract_main_text, tidy_metadata
from pipeline.index import DATA_DIR, INDEX_FILE, STAGED_SUFFIX, Index, IndexMismatch
from pipeline.language import LanguageConfig, LanguageDetector, Ngrams, detector, identify_language
from pipeline.load import (
    MAX_FILE_BYTES,
    SIDECAR_SUFFIX,
    InputBoundary,
    InputPart,
    is_archive,
    load_file,
    open_input,
    path_of_source,
    read_capped,
    source_of_path,
    walk_inputs,
)
from pipeline.lock import DEFAULT_WAIT, output_lock
from pipeline.normalize import normalize_text, signature_keys
from pipeline.progress import Progress, silent
from pipeline.signature import MinHashConfig, Signer, key_shingles, name_sets
from pipeline.writer import (
    BUFFER,
    AtomicJsonl,
    JournaledAppend,
    StagedRewrite,
    open_output,
    write_json_atomic,
)

if TYPE_CHECKING:
    from pipeline.parquet import StagedParquet  # pyarrow: imported by runs that write Parquet only

log = logging.getLogger(__name__)


OUTPUT_FILES = (contract.RECORDS, contract.DUPLICATES, contract.REJECTED)
PARQUET_FILES = tuple(contract.PARQUET.values())
SCAN_MODES = ("full", "folders")
# jsonl: the JSON-lines files; parquet: the Parquet files, the JSON lines kept as the index's journal (in
# OUTPUT/index.data/journal/); both: the two side by side (see pipeline.parquet).
OUTPUT_FORMATS = ("jsonl", "parquet", "both")
JOURNAL_DIR = "journal"  # under index.data: the JSON-lines files of an output folder in --format parquet


class UsageError(Exception):
    """A bad request (missing input folder, bad option): the CLI prints it on one line and exits 2."""


class Stopped(KeyboardInterrupt):
    """A run stopped by an interrupt (Ctrl-C, or a termination signal the caller raised as an interrupt).

    ``committed``: whether the run's outputs and index were committed before it stopped (only stats.json
    and the reports may then be missing); otherwise OUTPUT is as the last committed run left it.
    """

    def __init__(self, committed: bool, cause: BaseException) -> None:
        super().__init__(committed)
        self.committed = committed
        self.cause = cause


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Settings of a whole run."""

    cleanup: CleanupConfig = field(default_factory=CleanupConfig)
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    workers: int = 0  # 0: all cores
    chunk_size: int = 200  # files per task, at most (see chunk_files)
    # A gzipped web archive over this size is read in parts of this many bytes, each a task of its own
    # (see chunk_files): about 150 pages of a crawl, the time of a chunk of 200 HTML files.
    archive_part_bytes: int = 4 * 1024 * 1024
    # report.json / report.html after each run; they cover every run's outputs, so building them costs
    # time in proportion to the whole history (3.5 s at 70,000 documents), not to the new documents.
    report: bool = True
    # "full": stat every input file; "folders": only the files of folders whose modification time changed
    # (new, renamed and deleted files move it; a file rewritten in place under the same name does not).
    scan: str = "full"
    # Read what a symbolic link inside INPUT points to wherever it lies (and walk linked folders outside
    # INPUT); by default a link resolving outside INPUT is rejected as outside_input, never read.
    follow_symlinks: bool = False
    # seconds to wait for another run on the same output folder before giving up (see pipeline.lock)
    wait: float = DEFAULT_WAIT
    # what OUTPUT holds (OUTPUT_FORMATS); not part of the index's fingerprint: a run may switch it
    output_format: str = "jsonl"

    def __post_init__(self) -> None:
        if self.scan not in SCAN_MODES:
            raise ValueError(f"scan must be one of {', '.join(SCAN_MODES)}")
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"format must be one of {', '.join(OUTPUT_FORMATS)}")
        if self.wait < 0:
            raise ValueError("wait must be >= 0 seconds")
        if self.workers < 0:
            raise ValueError("workers must be >= 0 (0 means all cores)")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if self.archive_part_bytes < 1:
            raise ValueError("archive_part_bytes must be at least 1")

    @property
    def processes(self) -> int:
        return self.workers or os.cpu_count() or 1


# What grows with a chunk's records (documents, rejections, signatures, line counts, removed lines) does not
# stay in the worker: it is spooled beside the chunk's spool file as it comes, in batches (see
# :class:`_Spool`), and the chunk's result holds file names and totals. Its ``rejections``, ``counts``,
# ``signed`` and ``removed_lines`` read the batches back, in the parent, where they are needed.


@dataclass(slots=True)
class LoadedChunk:
    """Pass-1 result of one chunk: its documents, rejections and boilerplate line counts, spooled."""

    spool: str  # the documents, in batches; its rejections in SPOOL.rejected, its line counts in SPOOL.counts
    documents: int
    groups: set[str]
    rejected: int
    seconds: float
    config: CleanupConfig
    file_rows: list[tuple[str, int, int, str]] = field(default_factory=list)  # hashed here, first run
    _counts: LineCounts | None = field(default=None, repr=False)

    @property
    def rejections(self) -> list[Rejection]:
        """The chunk's load rejections, in input order (read from the spool)."""
        return _spooled_rejections(self.spool)

    @property
    def counts(self) -> LineCounts:
        """The chunk's line counts, merged from the worker's partial counts on first use."""
        if self._counts is None:
            self._counts = LineCounts()
            for part in read_batches(f"{self.spool}.counts"):
                self._counts.merge(part)
        return self._counts

    @counts.setter
    def counts(self, value: LineCounts) -> None:
        self._counts = value  # the parent releases them once merged


@dataclass(slots=True)
class CleanedChunk:
    """Pass-2 result of one chunk: its clean records (``spool``, JSON lines) and, in batches beside them,
    their compact signatures for dedup (``SPOOL.signed``), its rejections and the lines it removed."""

    spool: str
    documents: int
    rejected: int
    seconds: float

    def signed_batches(self) -> Iterator[SignedBatch]:
        """The chunk's signatures batch by batch, in record order."""
        for batch in read_batches(f"{self.spool}.signed"):
            yield from batch

    @property
    def rejections(self) -> list[Rejection]:
        """The chunk's cleanup rejections, in input order."""
        return _spooled_rejections(self.spool)

    @property
    def removed_lines(self) -> Counter[tuple[str, str]]:
        """How many times each (group, line) was removed from the chunk's documents."""
        total: Counter[tuple[str, str]] = Counter()
        for batch in read_batches(f"{self.spool}.removed"):
            for part in batch:
                total.update(part)
        return total


class _Spool:
    """Items written to a spool file as they come, as pickled lists of at most ``BATCH_DOCUMENTS`` items
    or ``BATCH_CHARS`` characters (as the caller counts them); :func:`read_batches` reads them back."""

    def __init__(self, path: str, batch: int = 0) -> None:
        self.handle = open(path, "wb", buffering=BUFFER)  # noqa: SIM115 - closed on leaving the with statement
        self.batch = batch or BATCH_DOCUMENTS
        self.items: list[Any] = []
        self.chars = 0
        self.count = 0

    def add(self, item: Any, chars: int = 0) -> bool:
        """Add one item; True when that wrote the batch out."""
        self.items.append(item)
        self.count += 1
        self.chars += chars
        if len(self.items) >= self.batch or self.chars >= BATCH_CHARS:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        if self.items:
            pickle.dump(self.items, self.handle, protocol=pickle.HIGHEST_PROTOCOL)
            self.items, self.chars = [], 0

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.flush()
        finally:
            self.handle.close()


def _spooled_rejections(spool: str) -> list[Rejection]:
    """The rejections a worker spooled beside ``spool`` (``SPOOL.rejected``), in input order."""
    return [r for batch in read_batches(f"{spool}.rejected") for r in batch]


def read_batches(path: str) -> Iterator[Any]:
    """The pickled objects of a spool file (batches, line counts), one at a time."""
    with open(path, "rb") as handle:
        while True:
            try:
                yield pickle.load(handle)
            except EOFError:
                return


# A batch closes at whichever comes first. One batch of documents is what a worker holds at a time, never
# a chunk or a file's records: its memory does not grow with the number of records (see README,
# "Reliability and security").
BATCH_DOCUMENTS = 1_000
BATCH_CHARS = 1_000_000  # characters of text: 1-4 MB of str, and what signing a batch costs (~10 MB)
# Entries (document, edge line) in a worker's line counts before it spools them and starts new counts (24
# bytes each: about 24 MB; the parent merges the parts: the counts are exact).
COUNTS_SPOOL_LINES = 1_000_000


EXIT_EMPTY = 66  # EX_NOINPUT: the input held nothing to read (Summary.empty)


@dataclass(slots=True)
class Summary:
    """What a run did, as printed by the CLI and stored in ``stats.json``."""

    files: int
    documents: int
    kept: int
    exact_duplicates: int
    near_duplicates: int
    rejected: int
    seconds: float
    stats: dict[str, Any]
    unchanged: int = 0
    same_content: int = 0
    empty: bool = False  # the input held no file to read, none new and none seen before (see Selection)

    @property
    def duplicates(self) -> int:
        return self.exact_duplicates + self.near_duplicates

    def line(self) -> str:
        """The one line that ends a run (the CLI prints it, the flows log and publish it)."""
        if self.empty:
            return (
                f"nothing to read in {self.stats['input']}: no input file found (see `pipeline clean --help`)"
            )
        by_reason = ", ".join(f"{k} {v}" for k, v in self.stats["rejected_by_reason"].items())
        skipped = self.unchanged + self.same_content
        seen = (
            f"; skipped {skipped} files seen before ({self.unchanged} unchanged, "
            f"{self.same_content} same content)"
            if skipped
            else ""
        )
        index = self.stats["index"]
        return (
            f"{self.documents} new documents in ({self.files} files{seen}): {self.kept} kept, "
            f"{self.duplicates} duplicates "
            f"({self.exact_duplicates} exact, {self.near_duplicates} near), "
            f"{self.rejected} rejected{f' ({by_reason})' if by_reason else ''} "
            f"in {self.seconds:.2f} s -> {self.stats['output']} "
            f"(all runs: {index['records']} kept, {index['duplicates']} duplicates, "
            f"{index['rejected']} rejected)"
        )


# ---------------------------------------------------------------------------------------------------
# Pass 1: load, extract, normalise (worker side)


def load_chunk(
    files: list[InputPart] | list[tuple[str, str]],
    root: str,
    spool: str,
    config: CleanupConfig,
    hash_files: bool = False,
    follow_symlinks: bool = False,
) -> LoadedChunk:
    """Load, extract and normalise one chunk of files (:class:`~pipeline.load.InputPart`, or ``(path,
    source)`` for a whole file); spool the documents; count lines.

    ``hash_files``: also stat and hash each file for the index (a first run, where the parent had no
    earlier hashes to compare with and left the reading to the workers); a file read in parts is hashed
    by the part that starts it. ``follow_symlinks``: see :class:`~pipeline.load.InputBoundary`.
    """
    start = time.perf_counter()
    boundary = InputBoundary(root, follow_symlinks)
    file_rows: list[tuple[str, int, int, str]] = []
    counts = LineCounts()
    groups: set[str] = set()

    def prepared(doc: Document) -> Document | Rejection:
        """Extracted and normalised, its edge lines counted (a failure of either costs this document)."""
        result = prepare_document(doc)
        if isinstance(result, Document):
            counts.add(result, config)
        return result

    with (
        _Spool(spool) as documents,
        _Spool(f"{spool}.rejected") as rejected,
        open(f"{spool}.counts", "wb") as counts_spool,
    ):
        for path, source, first, stop in (InputPart(*part) for part in files):
            data = None
            if hash_files and first == 0:  # on a first run every source is the file's relative path
                # an archive is streamed from the file by its loader: hashed in blocks, never held
                data, row = _read_and_hash(path, source, boundary, keep=not is_archive(path))
                if row is not None:
                    file_rows.append(row)
            items = _guarded_load(path, root, source, data, boundary, first, stop)
            del data  # the loader's own reference goes when the file's last record is out
            for item in items:
                doc = _guarded(prepared, item, "extract") if isinstance(item, Document) else item
                if isinstance(doc, Rejection):
                    rejected.add(doc)
                    continue
                groups.add(doc.group)
                if documents.add(doc, len(doc.body)) and len(counts) >= COUNTS_SPOOL_LINES:
                    pickle.dump(counts, counts_spool, protocol=pickle.HIGHEST_PROTOCOL)
                    counts = LineCounts()
        pickle.dump(counts, counts_spool, protocol=pickle.HIGHEST_PROTOCOL)
    return LoadedChunk(
        spool, documents.count, groups, rejected.count, time.perf_counter() - start, config, file_rows
    )


FileRow = tuple[str, int, int, str]  # a row of the index's file table: (source, size, mtime_ns, hash)
# Inputs refused without being opened. Their row is recorded like a read file's (with a stand-in hash), so
# a rerun skips them as unchanged instead of refusing them again.
REFUSED = ("outside_input", "not_a_file")


def _read_and_hash(
    path: str, rel: str, boundary: InputBoundary, keep: bool = True
) -> tuple[bytes | None, FileRow | None]:
    """A file's bytes (None when over the size cap or refused: loading rejects it; always None unless
    ``keep``) and its row for the index's file table, from one read (see :func:`_file_hash`);
    ``(None, None)`` if it cannot be read."""
    data, row, _ = _file_hash(path, rel, boundary, keep=keep)
    return data, row


def _guarded(
    step: Callable[[Document], Document | Rejection], doc: Document, stage: str
) -> Document | Rejection:
    """Run one per-document step; an unexpected exception becomes this document's rejection, not the run's."""
    try:
        return step(doc)
    except Exception as err:  # noqa: BLE001 - hostile input must not stop the run
        return _failed(doc, stage, err)


def _failed(doc: Document, stage: str, err: Exception) -> Rejection:
    """The rejection of a document a step failed on (a bug of ours), warned."""
    log.warning("%s failed on %s: %s: %s", stage, doc.source, type(err).__name__, err)
    return Rejection(doc.source, "internal_error", f"{type(err).__name__}: {err}", stage=stage)


def _guarded_load(
    path: str,
    root: str,
    source: str,
    data: bytes | None,
    boundary: InputBoundary,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[Document | Rejection]:
    """``load_file``, with an unexpected exception turned into a rejection of the file (of the part of it
    from ``start``, ``path#START``, for an archive read in parts).

    Each record of a multi-record file is read under its own guard inside the loader (see
    :mod:`pipeline.load`), so an exception reaching this one is a bug outside any record: the file's
    remaining records cannot be told apart, and the rejection says how many came out before it.
    """
    done = 0
    try:
        for item in load_file(Path(path), Path(root), source, data, boundary, start, stop):
            done += 1
            yield item
    except Exception as err:  # noqa: BLE001
        log.warning("load failed on %s: %s: %s", source, type(err).__name__, err)
        after = f" (after {done} records)" if done else ""
        where = f"{source}#{start}" if start else source
        yield Rejection(where, "internal_error", f"{type(err).__name__}: {err}{after}", stage="load")


def prepare_document(doc: Document) -> Document | Rejection:
    """Extract (HTML) and normalise one loaded document."""
    came_from_html = doc.kind == "html"
    if came_from_html:
        extracted = extract_main_text(doc)
        if isinstance(extracted, Rejection):
            return extracted
    doc = tidy_metadata(doc)
    doc.body = normalize_text(doc.body, unescape=not came_from_html)
    for name in ("title", "author"):
        value = getattr(doc, name)
        if value:
            setattr(doc, name, normalize_text(value, unescape=True).replace("\n", " ") or None)
    if not doc.body:
        return Rejection(doc.source, "empty", "no text after normalisation", stage="normalize")
    return doc


# ---------------------------------------------------------------------------------------------------
# Pass 2: strip boilerplate, sign (worker side)


def _rules(path: Path | None) -> BoilerplateRules:
    """The compiled rules of ``path``, compiled again when the file changes (a long-lived process such as
    ``pipeline serve`` must not clean with a rule file's old contents)."""
    stamp = None
    if path is not None:
        info = os.stat(path)
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
    return _compiled_rules(path, stamp)


@lru_cache(maxsize=4)
def _compiled_rules(path: Path | None, stamp: tuple[int, int, int] | None) -> BoilerplateRules:
    return BoilerplateRules.load(path)


@lru_cache(maxsize=4)
def _signer(config: MinHashConfig) -> Signer:
    return Signer(config)


def clean_chunk(
    spool_in: str, spool_out: str, learned: dict[str, frozenset[int]], config: RunConfig, signer: Signer
) -> CleanedChunk:
    """Strip boilerplate from a spooled chunk batch by batch; spool the clean records, and their
    signatures beside them (``SPOOL_OUT.signed``, one batch of signatures per batch of records)."""
    start = time.perf_counter()
    rules = _rules(config.cleanup.boilerplate_file)
    languages = detector()  # the parent's, forked with the worker (see _clean); loaded here otherwise
    documents = 0

    def cleaned(doc: Document) -> Document | Rejection:
        """Stripped of its boilerplate, and long enough to be an article."""
        result = clean_document(doc, rules, learned.get(doc.group, frozenset()), config.cleanup)
        return result if isinstance(result, Rejection) else require_min_words(result, config.cleanup)

    with (
        open(spool_out, "wb", buffering=BUFFER) as out,
        _Spool(f"{spool_out}.signed", batch=1) as signed,  # one per batch of records, written at once
        _Spool(f"{spool_out}.rejected") as rejected,
        _Spool(f"{spool_out}.removed", batch=1) as removed,
    ):
        for batch in read_batches(spool_in):
            records: list[dict[str, Any]] = []
            keys: list[bytes] = []
            names: list[bytes] = []
            removed_here: Counter[tuple[str, str]] = Counter()
            results = [_guarded(cleaned, doc, "cleanup") for doc in batch]
            for result in _identify_languages(results, config.language, languages):
                if isinstance(result, Rejection):
                    rejected.add(result)
                    continue
                doc = result
                try:
                    record = record_json(result)
                    serialised = orjson.dumps(record) + b"\n"
                    key, name_key = signature_keys(record["text"])
                except Exception as err:  # noqa: BLE001 - (a string no UTF-8 can hold ...) this document only
                    log.warning("cleanup failed on %s: %s: %s", doc.source, type(err).__name__, err)
                    detail = f"{type(err).__name__}: {err}"
                    rejected.add(Rejection(doc.source, "internal_error", detail, stage="cleanup"))
                    continue
                removed_here.update((doc.group, line) for line in doc.removed)
                out.write(serialised)
                records.append(record)
                keys.append(key)
                names.append(name_key)
            if records:
                signed.add(sign(records, signer, keys, names))
                documents += len(records)
            if removed_here:
                removed.add(removed_here)
    return CleanedChunk(spool_out, documents, rejected.count, time.perf_counter() - start)


def _identify_languages(
    results: list[Document | Rejection], config: LanguageConfig, model: LanguageDetector
) -> list[Document | Rejection]:
    """:func:`~pipeline.language.identify_language` over a batch's clean documents, each under its own
    guard: every text walked first, then every one scored. The model's automaton and table (96 MB) stay
    in the processor's caches across the batch; the two steps in turn for each document cost twice as
    much (on the bench corpus, 2,000 characters: 530 against 270 us a document)."""
    walked: dict[int, Ngrams] = {}
    for i, result in enumerate(results):
        if isinstance(result, Document):
            try:
                walked[i] = model.ngrams(result.body[: config.prefix_chars])
            except Exception as err:  # noqa: BLE001 - this document only
                results[i] = _failed(result, "language", err)
    for i, ngrams in walked.items():
        step = partial(identify_language, config=config, model=model, ngrams=ngrams)
        results[i] = _guarded(step, results[i], "language")  # type: ignore[arg-type]
    return results


def sign(records: list[dict[str, Any]], signer: Signer, keys: list[bytes], names: list[bytes]) -> SignedBatch:
    """The compact dedup view of clean records, computed as one batch (see :func:`key_shingles`); ``keys``
    and ``names``: their texts' dedup keys and name keys (:func:`signature_keys`: the caller computes them
    under each record's own guard)."""
    config = signer.config
    shingles, offsets, words = key_shingles(keys, config.shingle_size)
    short = max(PREFIX_TOKENS, config.min_containment_shingles + config.shingle_size - 1)
    return SignedBatch(
        [r["id"] for r in records],
        [r["source"] for r in records],
        [r["content_hash"] for r in records],
        [len(r["text"]) for r in records],
        [r["date"] for r in records],
        # 63 bits: the prefix is an SQLite integer in the index.
        [
            xxhash.xxh64_intdigest(b" ".join(key.split(maxsplit=PREFIX_TOKENS)[:PREFIX_TOKENS])) >> 1
            if count >= short
            else None
            for key, count in zip(keys, words.tolist(), strict=True)
        ],
        shingles,
        offsets,
        band_keys(signer.packed_signatures(shingles, offsets), signer.hashranges),
        *name_sets(names),
    )


# ---------------------------------------------------------------------------------------------------
# The parent: plan, merge, dedup, write


def check_request(input_dir: Path, out_dir: Path, config: RunConfig) -> None:
    """Refuse a request that cannot run, before any work starts.

    Raises:
        UsageError: ``input_dir`` is neither a folder nor a file, is ``out_dir`` (or a file right in it), or
            the boilerplate file does not load.
    """
    if not input_dir.is_dir() and not input_dir.is_file():
        raise UsageError(f"input folder or file not found: {input_dir}")
    if out_dir.resolve() in (
        input_dir.resolve(),
        input_dir.resolve().parent if input_dir.is_file() else None,
    ):
        raise UsageError("the output folder must differ from the input folder")
    check_rules(config)


def check_rules(config: RunConfig) -> None:
    """Refuse a boilerplate rule file that does not load (UsageError)."""
    try:
        _rules(config.cleanup.boilerplate_file)
    except (OSError, ValueError) as err:
        raise UsageError(f"boilerplate file: {err}") from err


@dataclass(slots=True)
class Selection:
    """The input files a run processes, and what it skips because an earlier run saw them."""

    files: list[tuple[str, str]]  # (path, source)
    unchanged: int = 0  # same path, size and modification time as before
    same_content: int = 0  # rewritten under its path with the bytes it had (touched, fetched again)
    rows: list[tuple[str, int, int, str]] = field(default_factory=list)  # for the index's file table
    folders: list[tuple[str, int, list[str]]] = field(default_factory=list)  # folders listed, for the index
    started_ns: int = field(default_factory=time.time_ns)  # when the walk began
    # The input held nothing to read: no file found, and (with --scan folders, which does not list the
    # folders it saw unchanged) no file ever seen by an earlier run either.
    empty: bool = False
    only: str | None = None  # the one file looked at (a single file given as INPUT)


def select_files(
    input_dir: Path,
    out_dir: Path,
    index: Index,
    scan: str = "full",
    follow_symlinks: bool = False,
    only: str | None = None,
) -> Selection:
    """Input files in sorted order that the index has not seen, by stat and then by content hash.
    ``only``: the one file of ``input_dir`` to look at (a single file given as INPUT), by name.

    A file whose bytes changed under a path seen before is a new version: its ``source`` is
    ``path@HASH8``, so both versions stay accounted for. ``scan="folders"`` lists only folders whose
    modification time changed since an earlier run listed them (see README, "Incremental runs").
    ``follow_symlinks``: see :class:`~pipeline.load.InputBoundary`.
    """
    selection = Selection([], only=only)
    unchanged = index.unchanged_folder if scan == "folders" else None
    if only is None:
        walked = walk_inputs(
            input_dir,
            out_dir,
            unchanged=unchanged,
            folders=selection.folders,
            follow_symlinks=follow_symlinks,
        )
    else:
        walked = [(os.path.join(input_dir, only), source_of_path(only))]
    selection.empty = not walked and (scan == "full" or not index.has_files)
    if not index.has_files:
        # A first run has no earlier hashes to compare with: the workers hash the files they read anyway.
        selection.files = walked
        return selection
    # a provisional rejection's file is read again even in a folder seen unchanged
    if scan == "folders" and only is None:
        listed = {rel for _, rel in walked}
        for rel in sorted(set(index.provisional().values()) - listed):
            path = os.path.join(input_dir, os.fsdecode(path_of_source(rel)))
            if os.path.lexists(path):
                walked.append((path, rel))
        walked.sort(key=lambda item: item[1])
    boundary = InputBoundary(os.fspath(input_dir), follow_symlinks)
    seen_in: dict[str, dict[str, tuple[int, int, str]]] = {}  # folder -> the index's files there
    for path, rel in walked:
        folder = rel.rpartition("/")[0]
        seen = seen_in.get(folder)
        if seen is None:
            seen = seen_in[folder] = index.files_in(folder)
        known = seen.get(rel)
        try:
            # A failed fetch's sidecar is rewritten on every failing attempt: one rejection is enough.
            if known is not None and (
                known[:2] in _stat_keys(path, follow_symlinks) or path.endswith(SIDECAR_SUFFIX)
            ):
                selection.unchanged += 1
                continue
        except OSError:
            if known is None:
                selection.files.append((path, rel))  # loading reports it as unreadable
            continue
        _, row, refused = _file_hash(path, rel, boundary)
        if row is None:
            if known is None:  # loading reports it as unreadable, a provisional rejection (see finish)
                selection.files.append((path, rel))
            else:  # its earlier version stays accounted for; the file table still has it: retried next run
                log.warning("%s changed and cannot be read now; a later run tries again", rel)
            continue
        selection.rows.append(row)
        if known is not None and known[2] == row[3] and refused is None:
            selection.same_content += 1  # rewritten with the same bytes (touched, fetched again)
        else:
            # New bytes under a new path are read even when an earlier file had them (renamed, copied):
            # every input is accounted for, here as copies of what those bytes became.
            selection.files.append((path, f"{rel}@{row[3][:8]}" if known is not None else rel))
    return selection


def _stat_keys(path: str, follow_symlinks: bool) -> list[tuple[int, int]]:
    """The (size, mtime_ns) an unchanged input has in the index's file table: its own, and for a symbolic
    link its target's (a file read through the link) too; with ``follow_symlinks``, for a link only its
    target's, so a link refused as ``outside_input`` before is read now."""
    info = os.lstat(path)
    own = [(info.st_size, info.st_mtime_ns)]
    if not stat.S_ISLNK(info.st_mode):
        return own
    try:
        target = os.stat(path)
    except OSError:  # a dangling link
        return [] if follow_symlinks else own
    return [(target.st_size, target.st_mtime_ns)] + ([] if follow_symlinks else own)


def _file_hash(
    path: str, rel: str, boundary: InputBoundary, keep: bool = False
) -> tuple[bytes | None, FileRow | None, Rejection | None]:
    """Hash one input file through :func:`~pipeline.load.open_input`: its bytes when ``keep`` and within
    the size cap, its row for the index's file table, and the rejection when it was refused.

    Memory stays bounded whatever the file: a regular file over the cap is hashed in blocks (the index
    records it, loading rejects it as ``too_large``), and nothing but a regular file is opened. A refused
    input (``outside_input``, ``not_a_file``) gets a row whose hash stands for the refusal (it matches no
    file's bytes) and whose size and time are the entry's own (its target's with ``follow_symlinks``);
    an unreadable one gets none: a later run tries again.
    """
    opened = open_input(path, boundary, rel)
    if isinstance(opened, Rejection):
        if opened.reason not in REFUSED:
            return None, None, opened
        try:
            info = os.stat(path) if boundary.follow_symlinks else os.lstat(path)
        except OSError:
            return None, None, opened
        stand_in = xxhash.xxh3_128_hexdigest(f"{opened.reason}:{info.st_size}:{info.st_mtime_ns}".encode())
        return None, (rel, info.st_size, info.st_mtime_ns, stand_in), opened
    handle, info = opened
    digest = xxhash.xxh3_128()
    data: bytes | None = None
    try:
        with handle:
            if keep and info.st_size <= MAX_FILE_BYTES:
                data = read_capped(handle, info.st_size, MAX_FILE_BYTES)
                digest.update(data)
                if len(data) > MAX_FILE_BYTES:
                    data = None
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as err:
        return None, None, Rejection(rel, "unreadable", f"{type(err).__name__}: {err}")
    return data, (rel, info.st_size, info.st_mtime_ns, digest.hexdigest()), None


@dataclass(slots=True)
class Run:
    """One run's context: its request, its chunks of input files, its spool folder and its timings."""

    input_dir: Path
    out_dir: Path
    config: RunConfig
    index: Index
    selection: Selection
    chunks: list[list[InputPart]]
    spool_dir: Path
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    inputs_recorded: bool = False
    committed: bool = False  # the outputs and the index hold this run

    @property
    def files(self) -> int:
        return sum(files_in(c) for c in self.chunks)

    def load_calls(self) -> tuple[list[Any], ...]:
        """Arguments of :func:`load_chunk`, one list per parameter: ``map(load_chunk, *run.load_calls())``."""
        n = len(self.chunks)
        spools = [str(self.spool_dir / f"load-{i:06d}.pkl") for i in range(n)]
        hash_files = [not self.index.has_files] * n
        follow = [self.config.follow_symlinks] * n
        return self.chunks, [str(self.input_dir)] * n, spools, [self.config.cleanup] * n, hash_files, follow

    def learn(self, counts: Iterable[LineCounts], loaded: list[LoadedChunk]) -> dict[str, frozenset[int]]:
        """After pass 1: the learned boilerplate (merged with the index's counts), the file rows the
        workers hashed on a first run, and the workers' load time. ``counts`` may fill ``loaded`` as it
        is consumed."""
        learned = learn_boilerplate(counts, self.config.cleanup, self.index)
        self.selection.rows.extend(row for chunk in loaded for row in chunk.file_rows)
        self.timings["worker_load_seconds"] = sum(c.seconds for c in loaded)
        return learned

    def record_inputs(self) -> None:
        """Write what the index learns from the inputs alone (line counts, file rows, folders listed),
        once; a caller can do it while the workers clean. Committed with the rest of the run."""
        if not self.inputs_recorded:
            self.index.write_line_counts()
            self.index.add_files(self.selection.rows)
            self.index.add_folders(self.selection.folders, self.selection.started_ns)
            self.inputs_recorded = True

    def clean_calls(
        self, loaded: list[LoadedChunk], learned: dict[str, frozenset[int]]
    ) -> tuple[list[Any], ...]:
        """Arguments of :func:`clean_chunk`; each chunk gets the learned lines of its own groups only."""
        n = len(loaded)
        spools = [str(self.spool_dir / f"clean-{i:06d}.jsonl") for i in range(n)]
        shares = [{g: learned[g] for g in c.groups if g in learned} for c in loaded]
        signers = [_signer(self.config.minhash)] * n
        return [c.spool for c in loaded], spools, shares, [self.config] * n, signers


@contextmanager
def open_run(
    input_dir: Path,
    out_dir: Path,
    config: RunConfig,
    rebuild: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[Run]:
    """Lock the output folder, check the request, open the index, select the new files and hold a spool
    folder for the run.

    ``rebuild`` deletes the index and the outputs first, so everything is cleaned again from raw.
    ``on_wait`` is told when another run holds the output folder (default: a logged warning).

    Raises:
        UsageError: see :func:`check_request`; also an index built with another configuration.
        OutputBusy: another run held the output folder for longer than ``config.wait``.
    """
    started = time.perf_counter()
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    check_request(input_dir, out_dir, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    # A single file is read as the one file of its folder: its source is its name.
    only = input_dir.name if input_dir.is_file() else None
    with output_lock(out_dir, config.wait, on_wait or log.warning):
        yield from _open_locked(
            input_dir.parent if only else input_dir, out_dir, config, rebuild, started, only
        )


def _open_locked(
    input_dir: Path, out_dir: Path, config: RunConfig, rebuild: bool, started: float, only: str | None
) -> Iterator[Run]:
    """:func:`open_run` once the output folder is this run's alone."""
    remove_leftovers(out_dir)
    if rebuild:
        for name in (INDEX_FILE, f"{INDEX_FILE}-wal", f"{INDEX_FILE}-shm", *OUTPUT_FILES, *PARQUET_FILES):
            (out_dir / name).unlink(missing_ok=True)
        shutil.rmtree(out_dir / DATA_DIR, ignore_errors=True)
    try:
        index = Index(out_dir / INDEX_FILE, index_fingerprint(config))
    except IndexMismatch as err:
        raise UsageError(str(err)) from err
    with index:
        index.finish_replacing(*journal_folders(out_dir))
        if index.is_new:
            # Outputs without an index (an older run, or a deleted index): start them over.
            for folder in journal_folders(out_dir):
                for name in OUTPUT_FILES:
                    (folder / name).unlink(missing_ok=True)
            for name in PARQUET_FILES:
                (out_dir / name).unlink(missing_ok=True)
        selection = select_files(input_dir, out_dir, index, config.scan, config.follow_symlinks, only)
        chunks = chunk_files(selection.files, config)
        spool_dir = Path(tempfile.mkdtemp(prefix=".spool-", dir=out_dir))
        try:
            run = Run(input_dir, out_dir, config, index, selection, chunks, spool_dir, started)
            run.timings["select"] = time.perf_counter() - started
            yield run
        finally:
            shutil.rmtree(spool_dir, ignore_errors=True)


def remove_leftovers(out_dir: Path) -> None:
    """Remove what a killed run left in ``out_dir``: its spool folder and its temporary files, also those
    of the journal (only ever called under the output folder's lock, so no live run owns them). The
    index's own folder is tidied when it opens (files it does not list)."""
    for folder in journal_folders(out_dir):
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith(".spool-") and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            elif entry.name.startswith(".") and entry.name.endswith(".tmp"):
                os.unlink(entry.path)


def journal_folders(out_dir: Path) -> tuple[Path, Path]:
    """The two folders the JSON-lines files can be in: OUTPUT itself, and the journal of ``--format
    parquet`` (``index.data/journal``)."""
    return out_dir, out_dir / DATA_DIR / JOURNAL_DIR


def journal_folder(out_dir: Path, output_format: str) -> Path:
    """Where ``output_format`` keeps the JSON-lines files."""
    visible, hidden = journal_folders(out_dir)
    return hidden if output_format == "parquet" else visible


def journal_path(out_dir: Path, name: str, output_format: str) -> Path:
    """Where output ``name``'s JSON lines are: where the last committed run left them (a run may switch
    ``--format``; its files move once it has committed), else where ``output_format`` keeps them."""
    for folder in journal_folders(out_dir):
        if (folder / name).exists():
            return folder / name
    return journal_folder(out_dir, output_format) / name


def _settle_format(out_dir: Path, output_format: str) -> None:
    """After a committed run: the JSON lines moved where ``output_format`` keeps them (a rename each), and
    Parquet files no longer wanted removed."""
    for name in OUTPUT_FILES:
        path = journal_path(out_dir, name, output_format)
        target = journal_folder(out_dir, output_format) / name
        if path != target and path.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    if output_format == "jsonl":
        for name in PARQUET_FILES:
            (out_dir / name).unlink(missing_ok=True)


# Chunks per worker process a run aims for, at least: one chunk of a slow kind (HTML pages: ~20 ms each)
# left for one worker at the end would idle the others; a chunk costs ~1 ms of pool overhead.
CHUNKS_PER_WORKER = 8


def chunk_files(files: list[tuple[str, str]], config: RunConfig) -> list[list[InputPart]]:
    """The run's files cut into chunks of at most ``chunk_size`` files, small enough that each worker gets
    ``CHUNKS_PER_WORKER`` of them (905 HTML pages on 2 workers: 16 chunks of 57, not 5 of 200).

    A web archive weighs as many files as its bytes make pages (``chunk_size`` per
    ``archive_part_bytes``); a gzipped one over ``archive_part_bytes`` is cut into parts of that size
    (:func:`~pipeline.archive.archive_parts`), each a chunk of its own, in order: every record is read
    once, by the part its first byte lies in, and the outputs are those of the file read whole.
    """
    parts: list[tuple[InputPart, int]] = []
    for path, source in files:
        if not is_archive(path):
            parts.append((InputPart(path, source), 1))
            continue
        try:
            size = os.stat(path).st_size
        except OSError:
            size = 0  # loading reports it
        for part in archive_parts(path, source, size, config.archive_part_bytes):
            part_size = (part.stop or size) - part.start
            parts.append((part, max(1, -(-part_size * config.chunk_size // config.archive_part_bytes))))
    total = sum(weight for _, weight in parts)
    size = max(1, min(config.chunk_size, -(-total // (config.processes * CHUNKS_PER_WORKER))))
    chunks: list[list[InputPart]] = []
    load = 0
    for part, weight in parts:
        if not chunks or load + weight > size:
            chunks.append([])
            load = 0
        chunks[-1].append(part)
        load += weight
    return chunks


def files_in(chunk: list[InputPart]) -> int:
    """The files a chunk starts reading (a file read in parts counts once, with its first part)."""
    return sum(1 for part in chunk if part.start == 0)


def index_fingerprint(config: RunConfig) -> str:
    """What the stored signatures, band keys, clusters and clean texts depend on: a rerun with other
    boilerplate rules is refused like one with other MinHash settings, never mixed in silently."""
    m = config.minhash
    cleanup = config.cleanup.fingerprint(_rules(config.cleanup.boilerplate_file))
    minhash = (
        f"{m.fingerprint()}-t{m.threshold}-c{m.containment}-m{m.min_containment_shingles}"
        f"-r{m.rewrite_threshold}-n{m.names_tolerance}-{m.min_names}"
    )
    return f"{minhash} {cleanup} {config.language.fingerprint()}"


def learn_boilerplate(
    counts: Iterable[LineCounts], config: CleanupConfig, index: Index | None = None
) -> dict[str, frozenset[int]]:
    """Merge the chunks' line counts (and the index's, for the same lines) and decide each source
    group's learned boilerplate lines. Lines that become boilerplate later are stripped from new
    documents; ``--rebuild`` re-cleans the old ones."""
    total = LineCounts()
    for chunk_counts in counts:
        total.merge(chunk_counts)
    totals = total.totals(config.learn_min_docs)
    if index is not None:
        totals = index.merge_line_counts(totals, config)
    return totals.learned(config)


def finish(
    run: Run,
    cleaned: Iterable[CleanedChunk],
    learned: dict[str, frozenset[int]],
    load_rejections: list[Rejection],
    client: Any = None,
) -> Summary:
    """Dedup the cleaned chunks in order (against the index too), append the outputs, update the index.
    With a Dask ``client``, the run's candidate pairs are formed and verified on its cluster.

    The outputs of a first run are written atomically (temporary file, rename); later runs append, with
    the committed lengths kept in the index, so a run that dies mid-write is rolled back by the next one.
    With ``--format parquet|both``, each Parquet file whose JSON lines changed is written whole from them
    before the index commits, and renamed into place after (see :mod:`pipeline.parquet`).
    """
    t0 = time.perf_counter()
    config, timings = run.config, run.timings
    dedup = Deduplicator(config.minhash, run.index)
    rejections = list(load_rejections)
    removed: Counter[tuple[str, str]] = Counter()
    spools: list[tuple[str, list[str]]] = []  # (spool, ids of its records in order)
    clean_seconds = 0.0
    try:
        for chunk in cleaned:
            ids: list[str] = []
            for batch in chunk.signed_batches():  # a batch at a time: never a whole chunk's signatures
                dedup.add_chunk(batch)
                ids.extend(batch.ids)
            rejections.extend(chunk.rejections)
            removed.update(chunk.removed_lines)
            spools.append((chunk.spool, ids))
            clean_seconds += chunk.seconds
        timings["clean_and_dedup"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        edges = None
        if client is not None:
            from pipeline.cluster import cluster_edges  # noqa: PLC0415

            firsts = np.cumsum([0] + [len(ids) for _, ids in spools[:-1]]).tolist() if spools else []
            edges, checks = cluster_edges(
                client, [s for s, _ in spools], firsts, dedup.heads(), config.minhash
            )
            dedup.checks.merge(checks)
        verdicts = dedup.verdicts(edges)
        timings["clusters"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        kept = exact = near = 0
        committed = run.index.committed()
        totals = {name: committed.get(name, (0, 0))[1] for name in OUTPUT_FILES}
        # A run with no input to account for leaves every output file as it was (bytes and times).
        names = OUTPUT_FILES if run.files else ()
        provisional = run.index.provisional()
        retried = {part.source for chunk in run.chunks for part in chunk}
        superseded = {source for source, path in provisional.items() if path in retried}
        outputs: dict[str, AtomicJsonl | JournaledAppend | StagedRewrite] = {}
        parquet: list[StagedParquet] = []  # renamed into place once the index has committed the run
        for name in names:
            path, length = (
                journal_path(run.out_dir, name, config.output_format),
                committed.get(name, (0, 0))[0],
            )
            # a retried input's new outcome replaces its provisional rejection: rejected.jsonl is rewritten
            rewrite = name == contract.REJECTED and superseded and length
            outputs[name] = (
                StagedRewrite(path, length, superseded, STAGED_SUFFIX)
                if rewrite
                else open_output(path, length)
            )
        try:
            for line, doc_id in _read_spools(spools):
                verdict = verdicts.get(doc_id)
                if verdict is None:
                    outputs[contract.RECORDS].write_line(line)
                    kept += 1
                else:
                    outputs[contract.DUPLICATES].write_line(_with_verdict(line, verdict))
                    exact += verdict.kind == "exact"
                    near += verdict.kind == "near"
            for rejection in rejections:
                outputs[contract.REJECTED].write(rejection.to_json())
            run.index.set_provisional(_provisional(rejections), superseded)
            dedup.save(verdicts)
            run.record_inputs()  # if the caller has not yet
            for name, output in outputs.items():
                totals[name] += output.count - getattr(output, "dropped", 0)
                run.index.set_committed(name, output.commit(), totals[name])
            if config.output_format != "jsonl":
                from pipeline.parquet import stage_parquet  # noqa: PLC0415 - pyarrow: Parquet outputs only

                t3 = time.perf_counter()
                parquet = stage_parquet(run.out_dir, _journals(run, outputs))
                timings["parquet"] = time.perf_counter() - t3
            staged = [o for o in outputs.values() if isinstance(o, StagedRewrite)]
            for output in staged:
                run.index.set_replacing(output.path.name)
            # An interrupt between the commit and the flag would roll back outputs the index now counts:
            # one that arrives there takes effect just after.
            with _signals_deferred():
                run.index.commit()
                run.committed = True
        except BaseException:
            if not run.committed:
                for output in outputs.values():
                    output.abort()
                for part in parquet:
                    part.abort()
            raise
        for output in staged:  # committed: the index counts the new file already (see finish_replacing)
            output.put_in_place()
            run.index.set_replacing(None)
            run.index.commit()
        for part in parquet:  # a run that dies before this leaves them stale: the next one writes them again
            part.put_in_place()
        _settle_format(run.out_dir, config.output_format)
        timings["write"] = time.perf_counter() - t2
        checks = dedup.checks
    finally:
        dedup.close()
    timings["total"] = time.perf_counter() - run.started
    timings["worker_clean_seconds"] = clean_seconds
    documents = kept + exact + near + len(rejections)
    stats = {
        "input": str(run.input_dir / run.selection.only) if run.selection.only else str(run.input_dir),
        "output": str(run.out_dir),
        "files": run.files,
        "files_skipped": {"unchanged": run.selection.unchanged, "same_content": run.selection.same_content},
        "documents": documents,
        "kept": kept,
        "duplicates": {"exact": exact, "near": near},
        "rejected": len(rejections),
        "rejected_by_reason": dict(sorted(Counter(r.reason for r in rejections).items())),
        "rejected_by_stage": dict(sorted(Counter(r.stage for r in rejections).items())),
        "dedup": {
            "candidate_pairs_checked": checks.checked,
            "pairs_verified": checks.verified,
            # the second check of light rewrites (see pipeline.dedup): pairs it accepted, pairs it refused
            "rewrite_pairs": checks.rewrite,
            "rewrite_pairs_refused": checks.refused,
            "rewrite_duplicates": sum(1 for v in verdicts.values() if v.how == "rewrite"),
            "clusters": len({v.duplicate_of for v in verdicts.values()}),
        },
        "boilerplate": {
            "learned_lines_per_source": {g: len(k) for g, k in sorted(learned.items())},
            "lines_removed": sum(removed.values()),
            "most_removed": [
                {"source": g, "line": line, "count": n} for (g, line), n in removed.most_common(50)
            ],
        },
        "index": {
            "path": str(run.index.path),
            "records": totals[contract.RECORDS],
            "duplicates": totals[contract.DUPLICATES],
            "rejected": totals[contract.REJECTED],
            "bridges_refused": dedup.bridges_refused,
        },
        "timings_seconds": {k: round(v, 3) for k, v in timings.items()},
        "docs_per_second": round(documents / timings["total"], 1) if timings["total"] else None,
        "config": {
            "workers": config.processes,
            "chunk_size": config.chunk_size,
            "scan": config.scan,
            "format": config.output_format,
            "minhash": asdict(config.minhash),
            "minhash_fingerprint": config.minhash.fingerprint(),
            "cleanup": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config.cleanup).items()},
            "language": asdict(config.language),
        },
    }
    if run.files:  # else stats.json and the reports keep describing the last run that did something
        write_json_atomic(run.out_dir / contract.STATS, stats)
        if config.report:
            from pipeline.report import update_reports  # noqa: PLC0415 - rich and more, only when reporting

            update_reports(run.out_dir)  # report.json and report.html over all runs' outputs
    return Summary(
        run.files,
        documents,
        kept,
        exact,
        near,
        len(rejections),
        timings["total"],
        stats,
        run.selection.unchanged,
        run.selection.same_content,
        run.selection.empty,
    )


def _provisional(rejections: list[Rejection]) -> list[tuple[str, str]]:
    """(source, input path) of the rejections a later reading replaces: a file that could not be read
    (permissions, I/O, vanished: tried again next run) and a failed fetch (its page may come later)."""
    rows = []
    for rejection in rejections:
        if rejection.reason == "unreadable":
            rows.append((rejection.source, rejection.source))
        elif rejection.stage == "fetch" and rejection.source.endswith(SIDECAR_SUFFIX):
            rows.append((rejection.source, rejection.source.removesuffix(SIDECAR_SUFFIX)))
    return rows


def _journals(run: Run, outputs: dict[str, AtomicJsonl | JournaledAppend | StagedRewrite]) -> dict[str, Path]:
    """Each output's JSON lines as they stand once the run commits: a rewritten one's staged copy, or the
    file itself (also an output this run did not touch)."""
    return {
        name: (
            output.staged
            if isinstance(output := outputs.get(name), StagedRewrite)
            else journal_path(run.out_dir, name, run.config.output_format)
        )
        for name in OUTPUT_FILES
    }


def _read_spools(spools: list[tuple[str, list[str]]]) -> Iterator[tuple[bytes, str]]:
    """The record lines the workers serialised, with their ids (the lines are copied, never re-parsed)."""
    for spool, ids in spools:
        with open(spool, "rb") as handle:
            yield from zip(handle, ids, strict=True)


def _with_verdict(line: bytes, verdict: Verdict) -> bytes:
    """A duplicate's line: the record's JSON object with the verdict's fields added at its end."""
    return line.rstrip()[:-1] + b"," + orjson.dumps(verdict)[1:] + b"\n"


def clean_folder(
    input_dir: Path,
    out_dir: Path,
    config: RunConfig | None = None,
    progress: Progress | None = None,
    rebuild: bool = False,
    on_wait: Callable[[str], None] | None = None,
    dask: str | None = None,
) -> Summary:
    """Clean the inputs under ``input_dir`` that the index in ``out_dir`` has not seen; dedup them against
    everything seen before (see README, "Output contract" and "Incremental runs").

    ``dask``: run the passes and dedup's pairs on the Dask cluster of this scheduler address, or on a new
    local one (``"local"``); see :mod:`pipeline.cluster`. The result is the same as without.

    Raises:
        UsageError, OutputBusy: see :func:`open_run`.
        Stopped: an interrupt (KeyboardInterrupt) stopped the run; the workers are gone.
        OSError, sqlite3.Error: the output folder could not be written (disk full, read-only ...); the
            outputs are as the last committed run left them.
    """
    config = config or RunConfig()
    run: Run | None = None
    try:
        with open_run(input_dir, out_dir, config, rebuild, on_wait) as run:
            report = progress or silent
            if dask is None:
                return _clean(run, report)
            from pipeline.cluster import cluster_client  # noqa: PLC0415 - distributed: cluster runs only

            with cluster_client(dask, config.processes) as client:
                return _clean(run, report, client)
    except KeyboardInterrupt as err:
        raise Stopped(run is not None and run.committed, err) from err


def _clean(run: Run, report: Progress, client: Any = None) -> Summary:
    """The body of :func:`clean_folder`, with the run open (on the cluster of ``client``, if given).

    The compiled kernels and the language model are loaded here, before the workers are forked: they
    start with them loaded (numba takes ~0.5 s a process to load the kernels, py3langid 0.5-1.5 s to load
    its model). A run with no file to read loads neither.
    """
    config = run.config
    if run.files and client is None:
        from pipeline import signature_kernels  # noqa: PLC0415 - numba: not for the CLI's start-up

        signature_kernels.warm_up()
        detector()
    elif run.files:
        from pipeline.cluster import warm_up  # noqa: PLC0415

        warm_up(client)
    with _fewer_collections(), _executor(config.processes, len(run.chunks), client) as pool:
        t0 = time.perf_counter()
        loaded: list[LoadedChunk] = []

        def arrived() -> Iterator[LoadedChunk]:
            chunk_done = chunk_progress("load", run, report)
            for i, chunk in enumerate(pool.map(load_chunk, *run.load_calls())):
                loaded.append(chunk)
                chunk_done(i, chunk)
                yield chunk

        def counts() -> Iterator[LineCounts]:
            """Each chunk's line counts as it arrives, released once merged (they are most of the
            parent's memory at this point: a few entries per document)."""
            for chunk in arrived():
                yield chunk.counts
                chunk.counts = LineCounts()

        if client is None:
            learned = run.learn(counts(), loaded)
        else:  # every chunk loaded, then their counts merged on the cluster (the parent gets the total)
            from pipeline.cluster import merged_counts  # noqa: PLC0415

            learned = run.learn([merged_counts(client, list(arrived()))], loaded)
        run.timings["load"] = time.perf_counter() - t0

        def reported(items: Iterable[CleanedChunk]) -> Iterator[CleanedChunk]:
            chunk_done = chunk_progress("clean", run, report)
            for i, item in enumerate(items):
                chunk_done(i, item)
                yield item

        cleaned = pool.map(clean_chunk, *run.clean_calls(loaded, learned))  # submitted: workers start
        run.record_inputs()  # while they clean
        return finish(run, reported(cleaned), learned, [r for c in loaded for r in c.rejections], client)


def chunk_progress(
    stage: str, run: Run, progress: Progress
) -> Callable[[int, LoadedChunk | CleanedChunk], None]:
    """What to call as chunk ``i`` of the pass ``stage`` is done: it reports the stage's files and
    documents so far to ``progress`` (and reports the stage's start now, if the run has files)."""
    done = documents = 0
    total = run.files  # counted once: each chunk's count costs a walk of every chunk
    if total:
        progress(stage, 0, total, 0)

    def chunk_done(i: int, chunk: LoadedChunk | CleanedChunk) -> None:
        nonlocal done, documents
        done += files_in(run.chunks[i])
        documents += chunk.documents + chunk.rejected
        progress(stage, done, total, documents)

    return chunk_done


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cyclic garbage collector runs after every 700 new containers by default; a run creates
    millions of short-lived ones that form no cycles, and those collections cost 3-7% of a run (20,000
    files: 3.76-4.05 s against 3.50-3.66 s on 2 workers). The first generation's threshold is raised for
    the run (the worker processes forked inside inherit it) and restored after."""
    before = gc.get_threshold()
    gc.set_threshold(20_000, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


class _InProcess:
    """Runs ``map`` lazily in this process: no pool start-up for one worker or one chunk."""

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> Iterator[Any]:
        return map(fn, *iterables)


class _WorkerPool:
    """``map`` over worker processes, results in input order, with an interrupt path of our own.

    ``concurrent.futures.ProcessPoolExecutor`` can hang on Ctrl-C (CPython gh-107219: its manager thread
    meets a cancelled future, prints ``InvalidStateError`` and the shutdown waits for ever). Here workers
    ignore SIGINT (a terminal sends it to the whole process group; the parent alone decides), die with the
    parent (Linux ``PR_SET_PDEATHSIG``), and on any exception the parent terminates them and reaps them.
    """

    def __init__(self, processes: int) -> None:
        before = set(multiprocessing.active_children())
        # Created with SIGINT and SIGTERM blocked: the workers are forked with them blocked (and so is the
        # pool's thread that forks replacements), so a Ctrl-C in the moment between a fork and the
        # worker's initializer cannot kill it; the initializer ignores SIGINT, then unblocks them. A
        # signal that arrives meanwhile is delivered here when the parent unblocks it.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            self._pool = multiprocessing.get_context("fork").Pool(processes, initializer=_worker_start)
        finally:
            self._workers = [p for p in multiprocessing.active_children() if p not in before]
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            except BaseException:
                if hasattr(self, "_pool"):
                    self.terminate()
                raise

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> Iterator[Any]:
        return self._watched(self._pool.imap(partial(_call, fn), zip(*iterables, strict=True)))

    def _watched(self, results: Any) -> Iterator[Any]:
        """The results, while every worker lives: a pool replaces a worker that died (the OOM killer, a
        crash in a C library) but the chunk it held is lost and would be waited for for ever."""
        while True:
            try:
                yield results.next(timeout=WATCH_SECONDS)
            except StopIteration:
                return
            except multiprocessing.TimeoutError:
                for worker in self._workers:
                    if worker.exitcode is not None:
                        raise WorkerLost(worker.exitcode) from None

    def close(self) -> None:
        self._pool.close()
        self._pool.join()

    def terminate(self) -> None:
        """Stop every worker now, even mid-task; no second signal can cut this short."""
        with _signals_held():
            self._pool.terminate()
            self._pool.join()


WATCH_SECONDS = 1.0  # how often the parent checks that no worker died while it waits for a result


class WorkerLost(Exception):
    """A worker process died while the run waited for it; nothing of the run was committed."""

    def __init__(self, exitcode: int) -> None:
        how = f"killed by {signal.Signals(-exitcode).name}" if exitcode < 0 else f"exit status {exitcode}"
        super().__init__(
            f"a worker process died ({how}) and took its chunk of files with it; nothing of this run was "
            "committed. Running out of memory is the usual cause: try fewer --workers or a smaller "
            "--chunk-size"
        )


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return fn(*args)


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _worker_start() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler (the CLI's) is not the worker's
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # forked blocked: see _WorkerPool
    try:
        import ctypes  # noqa: PLC0415 - Linux only, and only in workers

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed with the parent (kill -9)
    except (OSError, AttributeError):
        pass  # not Linux: workers end when they next find the task queue closed


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for a moment that must not be cut in two, then deliver them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    before = {
        sig: signal.signal(sig, lambda n, _: arrived.append(n)) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        if arrived:
            signal.raise_signal(arrived[0])


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM for a moment (the main thread only can): a second Ctrl-C while the
    workers are being stopped would otherwise leave them orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


@contextmanager
def _executor(processes: int, chunks: int, client: Any = None) -> Iterator[Any]:
    if client is not None:
        from pipeline.cluster import ClusterPool  # noqa: PLC0415

        yield ClusterPool(client)
        return
    if processes <= 1 or chunks <= 1:
        yield _InProcess()
        return
    pool = _WorkerPool(min(processes, chunks))
    try:
        yield pool
    except BaseException:
        pool.terminate()
        raise
    pool.close()
