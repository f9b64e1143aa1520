"""Atomic output files: write to a temporary file beside the target, then ``os.replace`` it."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np
import orjson


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner only; outputs get the mode a plain open() would give.
FILE_MODE = 0o666 & ~_umask()
# Output and spool files are written through a 1 MB buffer: a record is a few KB, and the default 8 KB
# buffer made a write system call every other record.
BUFFER = 1 << 20


class _JsonLines:
    """What both output writers share: rows written as UTF-8 JSON lines, counted, then synced."""

    _file: BinaryIO
    count: int

    def write(self, row: dict[str, Any]) -> None:
        self.write_line(orjson.dumps(row) + b"\n")

    def write_line(self, line: bytes) -> None:
        """Write one row already serialised (UTF-8 JSON ending in a newline)."""
        self._file.write(line)
        self.count += 1

    def _sync_and_close(self) -> int:
        """Flush, fsync and close the file; return its length."""
        self._file.flush()
        os.fsync(self._file.fileno())
        length = self._file.tell()
        self._file.close()
        return length


def _close_quietly(file: BinaryIO) -> None:
    """Close a file whose contents are being thrown away: a failed flush still closes the descriptor."""
    try:
        file.close()
    except OSError:
        pass


class AtomicJsonl(_JsonLines):
    """A JSON-lines file that appears under its name only when closed without an error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._existed = path.exists()  # committed empty: an abort after commit leaves it empty again
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        self._tmp = Path(name)
        self._renamed = False
        try:
            os.chmod(name, FILE_MODE)
            self._file = os.fdopen(handle, "wb", buffering=BUFFER)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self.count = 0

    def commit(self) -> int:
        """Sync, rename into place; return the file's length. A failure (the disk filled while the last
        of the buffer went out) removes the temporary file."""
        try:
            length = self._sync_and_close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._renamed = True
        return length

    def abort(self) -> None:
        """Drop what this writer wrote, also after ``commit`` (when the index's own commit failed)."""
        _close_quietly(self._file)
        self._tmp.unlink(missing_ok=True)
        if self._renamed:
            if self._existed:
                os.truncate(self.path, 0)
            else:
                self.path.unlink(missing_ok=True)

    def __enter__(self) -> AtomicJsonl:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def write_bytes_atomic(path: Path, data: bytes | memoryview, sync: bool = False) -> None:
    """Write ``data`` as ``path`` atomically: a temporary file beside it (removed on failure), renamed into
    place; ``sync``: flushed to the disk first (files an index commit will name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(name, FILE_MODE)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write one JSON document atomically."""
    text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def write_array_atomic(path: Path, array: np.ndarray) -> None:
    """Write a numpy array as a synced ``.npy`` file, atomically.

    Serialised in memory first: ``np.save`` to a real file goes through ``ndarray.tofile``, whose short
    write on a full disk raises an OSError without an errno ("5202 requested and 5104 written")."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes_atomic(path, buffer.getbuffer(), sync=True)


class JournaledAppend(_JsonLines):
    """Appends JSON lines to a file whose committed length the index keeps.

    Opening cuts the file back to its committed length (what a run that died mid-append left behind is
    rolled back); ``abort`` does the same; ``commit`` syncs and returns the new length, which the caller
    stores in the same transaction as the rest of the run. Cost: the new lines only.
    """

    def __init__(self, path: Path, committed: int) -> None:
        self.path = path
        size = path.stat().st_size if path.exists() else 0
        if size < committed:
            raise ValueError(
                f"{path} is shorter ({size} bytes) than the index says its last run left it ({committed} "
                "bytes): it was cut or replaced outside the pipeline. Restore it, or run again with "
                "--rebuild to clean every input again"
            )
        self._file = open(path, "r+b" if path.exists() else "wb", buffering=BUFFER)  # noqa: SIM115 - closed in commit/abort
        self._file.truncate(committed)
        self._file.seek(committed)
        self._committed = committed
        self.count = 0

    def commit(self) -> int:
        """Sync; return the file's new length."""
        return self._sync_and_close()

    def abort(self) -> None:
        """Cut the file back to its committed length, also after ``commit`` (the index's commit failed)."""
        _close_quietly(self._file)  # a buffer that cannot be flushed (disk full) is dropped
        os.truncate(self.path, self._committed)  # never needs space


def open_output(path: Path, committed: int) -> AtomicJsonl | JournaledAppend:
    """A fresh output is written atomically (temporary file, rename); an existing one is appended to."""
    return AtomicJsonl(path) if committed == 0 else JournaledAppend(path, committed)


class StagedRewrite(_JsonLines):
    """A JSON-lines output rewritten without some rows (by ``source``), then appended to.

    The new file is written beside the old one as ``NAME.next``; the caller commits its length in the index,
    marked as a rewrite in progress, then calls ``put_in_place``. A run that dies before the index commit
    leaves the old file as it was; one that dies after has its rewrite completed by the next run.
    """

    def __init__(self, path: Path, committed: int, drop: set[str], staged_suffix: str) -> None:
        self.path = path
        self.staged = path.with_name(path.name + staged_suffix)
        self.count = 0
        self.dropped = 0
        self._file = open(self.staged, "wb", buffering=BUFFER)  # noqa: SIM115 - closed in commit/abort
        try:
            os.chmod(self.staged, FILE_MODE)
            with open(path, "rb") as old:
                left = committed  # what lies past it belongs to no committed run
                for line in old:
                    if left <= 0:
                        break
                    left -= len(line)
                    if orjson.loads(line).get("source") in drop:
                        self.dropped += 1
                    else:
                        self._file.write(line)
        except BaseException:
            self.abort()
            raise

    def commit(self) -> int:
        """Sync; return the new file's length (it is not in place yet: see ``put_in_place``)."""
        return self._sync_and_close()

    def put_in_place(self) -> None:
        os.replace(self.staged, self.path)

    def abort(self) -> None:
        _close_quietly(self._file)
        self.staged.unlink(missing_ok=True)
