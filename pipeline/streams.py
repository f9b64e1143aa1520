"""``-`` as INPUT or OUTPUT: a clean run fed from standard input, its kept records sent to standard output.

A run reads files and writes an output folder (its index, its atomic commits), so both ends of a pipe are
staged in temporary folders: standard input becomes one file (``stdin.jsonl``, ``stdin.json`` or
``stdin.txt`` by its first byte), standard output gets ``records.jsonl`` once the run has committed.
With ``--out -`` the run keeps no index: each run stands alone.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

STDIO = "-"


class NothingToRead(Exception):
    """Standard input was empty."""


SNIFF_BYTES = 64 * 1024
_LEADING = b"\xef\xbb\xbf \t\r\n"  # a UTF-8 byte-order mark and white space before the first character


def input_kind(head: bytes) -> str:
    """The file suffix standard input is read as: JSON lines for an object first, a JSON array for ``[``,
    plain text (one document) otherwise."""
    first = head.lstrip(_LEADING)[:1]
    return ".jsonl" if first == b"{" else ".json" if first == b"[" else ".txt"


@contextmanager
def staged_input(stream: BinaryIO) -> Iterator[Path]:
    """``stream`` copied whole into ``stdin.SUFFIX`` in a temporary folder, removed afterwards.

    Raises:
        NothingToRead: the stream was empty.
    """
    with tempfile.TemporaryDirectory(prefix="scrape-clean-stdin-") as folder:
        head = stream.read(SNIFF_BYTES)
        if not head:
            raise NothingToRead("nothing to read on standard input: it was empty")
        path = Path(folder) / f"stdin{input_kind(head)}"
        with open(path, "wb") as staged:
            staged.write(head)
            shutil.copyfileobj(stream, staged, 1 << 20)
        yield path


@contextmanager
def staged_output() -> Iterator[Path]:
    """A temporary output folder, removed afterwards (see :func:`send_records`)."""
    with tempfile.TemporaryDirectory(prefix="scrape-clean-out-") as folder:
        yield Path(folder)


def send_records(records: Path, stream: BinaryIO) -> None:
    """The committed ``records.jsonl`` of a run, copied to ``stream`` (none when the run kept nothing)."""
    if records.exists():
        with open(records, "rb") as handle:
            shutil.copyfileobj(handle, stream, 1 << 20)
    stream.flush()
