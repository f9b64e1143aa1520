"""The persistent index next to the output: what earlier runs saw, kept and learned.

One SQLite file (``OUTPUT/index.sqlite``, no server) holds

- ``files``: every input file seen (path, size, mtime, content hash), so an unchanged file is skipped by
  a stat and a renamed or re-fetched identical file by its hash;
- ``documents``: every document that reached dedup (id, source, content hash, length, date, the index of
  the record its cluster keeps and the prefix key); their shingle sets are in one append-only file per
  run (``index.data/shingles/``, see :class:`SetFiles`), listed in ``shingle_runs``, and their name
  sets (names and figures, for the second check of light rewrites) in a file of the same name in
  ``index.data/names/``;
- ``segments``: the files of LSH band keys (``index.data/bands/``, see :mod:`pipeline.bands`), so a run looks
  up candidates for its new documents only;
- ``lines`` and ``groups``: per-source counts of head/tail lines, for learned boilerplate;
- ``outputs``: the committed length of each output file, so a run that dies mid-append is rolled back;
  ``meta.replacing`` names an output rewritten by a committed run but not yet renamed into place;
- ``provisional``: rejections that a later outcome replaces (a file that could not be read, a failed
  fetch): their source and the input path whose next reading decides;
- ``meta``: the format version and the configuration fingerprint. A different MinHash configuration
  refuses to mix with the index and says how to rebuild.

A run costs lookups for its new documents, not a pass over the index.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from array import array
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.bands import BandTable
from pipeline.cleanup import CleanupConfig, LineTotals
from pipeline.writer import write_array_atomic

INDEX_FILE = "index.sqlite"
STAGED_SUFFIX = ".next"  # an output rewritten beside itself, renamed into place after the index commits
DATA_DIR = "index.data"  # the index's files besides the SQLite one: band-key segments and shingle sets
FORMAT_VERSION = 3  # 2: band keys and shingle sets in files under index.data/; files by folder; folders
# 3: the name sets of documents in index.data/names/
_MASK63 = (1 << 63) - 1  # SQLite integers are signed 64-bit
_NONE = np.empty(0, dtype=np.uint32)
RACY_NS = 2_000_000_000  # folder times this close to the listing are not trusted (FAT counts in 2 s)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, folder TEXT NOT NULL, size INTEGER, mtime_ns INTEGER, hash TEXT);
CREATE INDEX IF NOT EXISTS files_hash ON files (hash);
CREATE INDEX IF NOT EXISTS files_folder ON files (folder);
CREATE TABLE IF NOT EXISTS folders (
    path TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, scanned_ns INTEGER NOT NULL, subdirs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    idx INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL, content_hash TEXT NOT NULL,
    length INTEGER NOT NULL, date TEXT, rep INTEGER NOT NULL, prefix INTEGER);
CREATE INDEX IF NOT EXISTS documents_hash ON documents (content_hash);
CREATE INDEX IF NOT EXISTS documents_prefix ON documents (prefix) WHERE prefix IS NOT NULL;
CREATE TABLE IF NOT EXISTS segments (pos INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shingle_runs (first_idx INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lines (grp TEXT NOT NULL, key INTEGER NOT NULL, count INTEGER NOT NULL,
    articles TEXT NOT NULL, PRIMARY KEY (grp, key));
CREATE TABLE IF NOT EXISTS groups (grp TEXT PRIMARY KEY, docs INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outputs (name TEXT PRIMARY KEY, length INTEGER NOT NULL, rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS provisional (source TEXT PRIMARY KEY, path TEXT NOT NULL);
"""


def _changed_parts(old: str, new: str) -> str:
    """``was -> now`` for each part of a fingerprint that differs (the rules' digest, ``p128``...)."""
    before, after = re.split(r"[ -]", old), re.split(r"[ -]", new)
    if len(before) != len(after):
        return f"{old} -> {new}"
    return ", ".join(f"{a} -> {b}" for a, b in zip(before, after, strict=True) if a != b)


class IndexMismatch(Exception):
    """The index was built differently (configuration, format) or no longer matches the output files."""


@dataclass(frozen=True, slots=True)
class IndexedDoc:
    """A document of an earlier run, as dedup needs it."""

    idx: int
    id: str
    source: str
    content_hash: str
    length: int
    date: str | None
    rep: int


class Index:
    """The SQLite index of one output folder. Use as a context manager; ``commit`` ends a run."""

    def __init__(self, path: Path | None, fingerprint: str) -> None:
        """Open (or create) the index at ``path``; ``None`` makes a throw-away index in memory."""
        self.path = path
        self.is_new = path is None or not path.exists()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path or ":memory:")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        # Candidate look-ups hit random pages of the band index: map the file rather than read it page by
        # page through SQLite's 2 MB default cache (1,000 look-ups against 200,000 documents: 0.86 -> 0.4 s).
        self.db.execute("PRAGMA mmap_size=4294967296")
        self.db.execute("PRAGMA cache_size=-65536")
        # The format is checked before the schema is applied: an older format's tables may not take it.
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        expected = {"format": str(FORMAT_VERSION), "fingerprint": fingerprint}
        if meta and {k: meta.get(k) for k in expected} != expected:
            self.db.close()
            old = f"{meta.get('fingerprint')} format{meta.get('format')}"
            changed = _changed_parts(old, f"{fingerprint} format{FORMAT_VERSION}")
            raise IndexMismatch(
                f"{path} was built with other settings than this run's ({changed}): its signatures and "
                "clean texts would not compare with this run's. Run again with --rebuild to clean every "
                "input again with these settings, or with the settings the index was built with."
            )
        self.db.executescript(_SCHEMA)
        if not meta:
            self.db.executemany("INSERT INTO meta VALUES (?, ?)", expected.items())
            self.db.commit()
        self.next_idx = self.db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM documents").fetchone()[0]
        self._line_totals: LineTotals | None = None  # from merge_line_counts, for write_line_counts
        names = [name for (name,) in self.db.execute("SELECT name FROM segments ORDER BY pos")]
        runs = list(self.db.execute("SELECT first_idx, name FROM shingle_runs ORDER BY first_idx"))
        data = path.parent / DATA_DIR if path is not None else None
        try:
            self.bands = BandTable(data / "bands" if data else None, names)
            self.shingle_files = SetFiles(data / "shingles" if data else None, runs, self.next_idx)
            try:
                self.name_files = SetFiles(data / "names" if data else None, runs, self.next_idx)
            except BaseException:
                self.shingle_files.close()
                raise
        except (OSError, ValueError) as err:
            self.db.close()
            if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
                raise  # read-only, no permission, disk full: a fault of the file system, not of the index
            raise IndexMismatch(
                f"{data} is missing or damaged ({type(err).__name__}: {err}). Run again with --rebuild to "
                "start over from the raw inputs."
            ) from err

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.shingle_files.close()
        self.name_files.close()
        self.db.close()

    # -- files -------------------------------------------------------------------------------------

    def files_in(self, folder: str) -> dict[str, tuple[int, int, str]]:
        """``{path: (size, mtime_ns, hash)}`` of the files seen directly in ``folder`` ("" at the top)."""
        query = "SELECT path, size, mtime_ns, hash FROM files WHERE folder = ?"
        return {
            path: (size, mtime, digest) for path, size, mtime, digest in self.db.execute(query, (folder,))
        }

    @property
    def has_files(self) -> bool:
        """Whether any earlier run recorded input files (a first run has nothing to compare hashes with)."""
        return self.db.execute("SELECT EXISTS (SELECT 1 FROM files)").fetchone()[0] == 1

    def add_files(self, rows: Iterable[tuple[str, int, int, str]]) -> None:
        """Record files as seen: (path, size, mtime_ns, hash)."""
        self.db.executemany(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
            ((path, path.rpartition("/")[0], size, mtime, digest) for path, size, mtime, digest in rows),
        )

    def unchanged_folder(self, folder: str, mtime_ns: int) -> list[str] | None:
        """The sub-folders of ``folder`` when an earlier run listed it with this modification time, long
        enough before it looked (a change in the same clock tick would not move the time), else None."""
        row = self.db.execute(
            "SELECT mtime_ns, scanned_ns, subdirs FROM folders WHERE path = ?", (folder,)
        ).fetchone()
        if row is None or row[0] != mtime_ns or row[0] >= row[1] - RACY_NS:
            return None
        return row[2].split("/") if row[2] else []

    def add_folders(self, rows: Iterable[tuple[str, int, list[str]]], scanned_ns: int) -> None:
        """Record folders as listed: (path, mtime_ns, sub-folder names), listed at ``scanned_ns``."""
        self.db.executemany(
            "INSERT OR REPLACE INTO folders VALUES (?, ?, ?, ?)",
            ((path, mtime, scanned_ns, "/".join(subdirs)) for path, mtime, subdirs in rows),
        )

    # -- documents and candidates ------------------------------------------------------------------

    def exact(self, content_hash: str) -> int | None:
        """A document of an earlier run with this clean text (the first one)."""
        row = self.db.execute(
            "SELECT idx FROM documents WHERE content_hash = ? AND idx < ? ORDER BY idx LIMIT 1",
            (content_hash, self.next_idx),
        ).fetchone()
        return row[0] if row else None

    def prefix_candidates(self, prefix: int, limit: int) -> list[int]:
        """Documents of earlier runs that start with the same words."""
        query = "SELECT idx FROM documents WHERE prefix = ? AND idx < ? ORDER BY idx LIMIT ?"
        return [idx for (idx,) in self.db.execute(query, (prefix, self.next_idx, limit))]

    def reps(self, idxs: Iterable[int]) -> dict[int, list[int]]:
        """Group documents by the record their cluster keeps: ``{rep: [idx, ...]}``, each list sorted."""
        groups: dict[int, list[int]] = {}
        ids = sorted(idxs)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            query = f"SELECT idx, rep FROM documents WHERE idx IN ({','.join('?' * len(part))})"
            for idx, rep in self.db.execute(query, part):
                groups.setdefault(rep, []).append(idx)
        return {rep: sorted(members) for rep, members in groups.items()}

    def shingles(self, idx: int) -> np.ndarray:
        """The shingle set of a document (of an earlier run or of this one)."""
        return self.shingle_files.get(idx)

    def names(self, idx: int) -> np.ndarray:
        """The name set of a document (see :func:`pipeline.normalize.name_key`)."""
        return self.name_files.get(idx)

    def doc(self, idx: int) -> IndexedDoc:
        row = self.db.execute(
            "SELECT idx, id, source, content_hash, length, date, rep FROM documents WHERE idx = ?", (idx,)
        ).fetchone()
        return IndexedDoc(*row)

    def add_documents(self, rows: Iterable[tuple]) -> None:
        """Insert documents: (idx, id, source, content_hash, length, date, rep, prefix); their shingle and
        name sets are added with ``shingle_files.extend`` and ``name_files.extend`` in the same order."""
        self.db.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def set_reps(self, reps: Iterable[tuple[int, int]]) -> None:
        """Point documents at the record their cluster keeps: (idx, rep)."""
        self.db.executemany("UPDATE documents SET rep = ? WHERE idx = ?", ((rep, idx) for idx, rep in reps))

    def save_run_files(self) -> None:
        """Put this run's shingle, name and band-key files in place and list them (committed by
        ``commit``)."""
        if self.path is None:
            return
        saved = self.shingle_files.save()
        self.name_files.save()  # listed by the same row: the same documents, the same name
        if saved is not None:
            self.db.execute("INSERT INTO shingle_runs VALUES (?, ?)", saved)
        names = self.bands.save(f"seg-{self.next_idx:012d}")
        self.db.execute("DELETE FROM segments")
        self.db.executemany("INSERT INTO segments VALUES (?, ?)", enumerate(names))

    # -- learned boilerplate -----------------------------------------------------------------------

    def merge_line_counts(self, totals: LineTotals, config: CleanupConfig) -> LineTotals:
        """Add a run's line totals to the stored ones; return the totals for the lines of this run.

        The new counts are written by :meth:`write_line_counts` (the run calls it while its workers clean).
        """
        docs = {}
        for group, count in totals.docs.items():
            row = self.db.execute("SELECT docs FROM groups WHERE grp = ?", (group,)).fetchone()
            docs[group] = count + (row[0] if row else 0)
            self.db.execute("INSERT OR REPLACE INTO groups VALUES (?, ?)", (group, docs[group]))
        totals = replace(totals, docs=docs)
        if not self.db.execute("SELECT NOT EXISTS (SELECT 1 FROM lines)").fetchone()[0]:
            # Lines stored by earlier runs: their counts and fingerprints join this run's.
            totals = replace(
                totals,
                counts=totals.counts.copy(),
                articles=totals.articles.copy(),
                distinct=totals.distinct.copy(),
            )
            cap = totals.articles.shape[1]
            rows = zip(totals.group_of.tolist(), totals.keys.tolist(), totals.distinct.tolist(), strict=True)
            for i, (group, key, distinct) in enumerate(rows):
                row = self.db.execute(
                    "SELECT count, articles FROM lines WHERE grp = ? AND key = ?",
                    (totals.groups[group], key & _MASK63),
                ).fetchone()
                if row is None:
                    continue
                seen = [int(a) for a in row[1].split()][:cap]
                for fingerprint in totals.articles[i, :distinct].tolist():
                    if len(seen) < cap and fingerprint not in seen:
                        seen.append(fingerprint)
                totals.counts[i] += row[0]
                totals.articles[i, : len(seen)] = sorted(seen)
                totals.distinct[i] = len(seen)
        self._line_totals = totals
        return totals

    def write_line_counts(self) -> None:
        """Write the counts :meth:`merge_line_counts` merged (once; committed by ``commit``)."""
        totals, self._line_totals = self._line_totals, None
        if totals is None:
            return
        groups = totals.groups
        articles = [
            " ".join(map(str, row[:distinct]))
            for row, distinct in zip(totals.articles.tolist(), totals.distinct.tolist(), strict=True)
        ]
        self.db.executemany(
            "INSERT OR REPLACE INTO lines VALUES (?, ?, ?, ?)",
            zip(
                [groups[g] for g in totals.group_of.tolist()],
                (totals.keys & np.uint64(_MASK63)).astype(np.int64).tolist(),
                totals.counts.tolist(),
                articles,
                strict=True,
            ),
        )

    # -- output files --------------------------------------------------------------------------------

    def committed(self) -> dict[str, tuple[int, int]]:
        """Each output file's committed (length in bytes, rows)."""
        return {name: (length, rows) for name, length, rows in self.db.execute("SELECT * FROM outputs")}

    def set_committed(self, name: str, length: int, rows: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO outputs VALUES (?, ?, ?)", (name, length, rows))

    def provisional(self) -> dict[str, str]:
        """``{source: input path}`` of the rejections that the next reading of that path replaces."""
        return dict(self.db.execute("SELECT source, path FROM provisional"))

    def set_provisional(self, added: Iterable[tuple[str, str]], removed: Iterable[str]) -> None:
        self.db.executemany("DELETE FROM provisional WHERE source = ?", ((s,) for s in removed))
        self.db.executemany("INSERT OR REPLACE INTO provisional VALUES (?, ?)", added)

    def set_replacing(self, name: str | None) -> None:
        """Name the output whose rewritten copy (``NAME.next``) this commit stands for (None: done)."""
        if name is None:
            self.db.execute("DELETE FROM meta WHERE key = 'replacing'")
        else:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('replacing', ?)", (name,))

    def finish_replacing(self, *folders: Path) -> None:
        """Complete or drop the rewrite a run left half done in one of the output ``folders``: a
        ``NAME.next`` the index committed is put in place (the index already counts its length); one it
        did not commit is a dead run's and deleted."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'replacing'").fetchone()
        for staged in (path for folder in folders for path in folder.glob(f"*{STAGED_SUFFIX}")):
            if row is not None and staged.name == row[0] + STAGED_SUFFIX:
                os.replace(staged, staged.with_name(row[0]))
            else:
                staged.unlink()
        if row is not None:
            self.set_replacing(None)
            self.db.commit()

    def commit(self) -> None:
        self.db.commit()


class SetFiles:
    """Sets of uint32 hashes per document (shingle sets, name sets): one append-only file per run, with the
    offsets of its documents.

    This run's sets go to a temporary file as dedup adds them; ``save`` renames it into place, and the index
    lists it in the same transaction as the run's documents. Earlier runs' files are memory-mapped, so a
    look-up reads only the pages of the documents it compares. A file the index does not list was left by
    a run that died, and is deleted on open. ``folder`` None: in a temporary file only (tests, no index).
    """

    def __init__(self, folder: Path | None, runs: list[tuple[int, str]], first_new: int) -> None:
        self.folder = folder
        self._firsts = [first for first, _ in runs]
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (offsets, data) per earlier run
        if folder is not None:
            for _, name in runs:
                offsets = np.load(folder / f"{name}.offsets.npy")
                size = (folder / f"{name}.u32").stat().st_size
                data = np.memmap(folder / f"{name}.u32", dtype=np.uint32, mode="r") if size else _NONE
                self._runs.append((offsets, data))
            wanted = {f"{name}.{part}" for _, name in runs for part in ("u32", "offsets.npy")}
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.iterdir():
                if stale.name not in wanted:
                    stale.unlink(missing_ok=True)
        self.first_new = first_new
        self.name = f"run-{first_new:012d}"
        self._file = (
            tempfile.NamedTemporaryFile(dir=folder, prefix=".", suffix=".tmp", delete=False)  # noqa: SIM115
            if folder is not None
            else tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        )
        self._offsets = array("q", [0])

    def extend(self, shingles: np.ndarray, sizes: list[int]) -> None:
        """Add the shingle sets of the next documents of this run: concatenated, and their sizes."""
        self._file.seek(self._offsets[-1] * 4)  # a look-up may have moved the position
        self._file.write(shingles.astype(np.uint32).tobytes())
        for size in sizes:
            self._offsets.append(self._offsets[-1] + size)

    def get(self, idx: int) -> np.ndarray:
        if idx >= self.first_new:
            i = idx - self.first_new
            self._file.seek(self._offsets[i] * 4)
            return np.frombuffer(self._file.read((self._offsets[i + 1] - self._offsets[i]) * 4), np.uint32)
        run = bisect_right(self._firsts, idx) - 1
        offsets, data = self._runs[run]
        i = idx - self._firsts[run]
        return np.array(data[offsets[i] : offsets[i + 1]])

    def save(self) -> tuple[int, str] | None:
        """Put this run's file in place (synced) and return its row for ``shingle_runs``; None if empty."""
        if self.folder is None or len(self._offsets) == 1:
            return None
        self._file.flush()
        os.fsync(self._file.fileno())
        write_array_atomic(self.folder / f"{self.name}.offsets.npy", np.frombuffer(self._offsets, np.int64))
        os.replace(self._file.name, self.folder / f"{self.name}.u32")
        return self.first_new, self.name

    def close(self) -> None:
        self._file.close()
        if self.folder is not None:
            Path(self._file.name).unlink(missing_ok=True)  # not saved: the run failed or had no documents
