"""Parquet outputs (``--format parquet|both``): ``records.parquet``, ``duplicates.parquet``,
``rejected.parquet``, each derived whole from its JSON-lines file.

The JSON-lines files stay the run's journal: later runs append to them and roll them back as
:mod:`pipeline.writer` describes, and with ``--format parquet`` alone they are kept beside the index's files.
A Parquet file cannot be appended to in place, so after each run that changed a JSON-lines file its Parquet
file is written again, streamed from the JSON lines a row group at a time (memory: one row group), to a
temporary file beside the target that the run renames into place only once the index has committed it.
A failed write (a full disk) leaves the previous Parquet file as it was, and the run is not committed.

Each Parquet file names the JSON lines it was derived from (their size and modification time, in its
key-value metadata): a run that died between the index's commit and the rename leaves an older Parquet
file, which the next run (with new inputs or none) sees as stale and writes again.
"""

from __future__ import annotations

import os
import tempfile
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import contract
from pipeline.writer import BUFFER, FILE_MODE

DERIVED_FROM = b"pipeline.derived_from"  # key-value metadata: "SIZE:MTIME_NS" of the JSON lines
# A row group holds this many rows, or this many bytes of JSON lines, at most (a larger document alone
# makes a row group of one): about 1,000 records of a few KB. What the derivation holds is one group's rows
# as Python objects and as Arrow arrays, 2-4 times its JSON (a str of non-ASCII text takes 2-4 bytes a
# character): on the 20,000-file bench, 16 MB groups cost the parent 110 MB, 4 MB groups about 45 MB.
ROW_GROUP_ROWS = 1000
ROW_GROUP_BYTES = 4 << 20
COMPRESSION = "zstd"  # text compresses ~2x better than with snappy, pyarrow's default; every reader has it

_ARROW_TYPES: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    list[str]: pa.list_(pa.string()),
}


def schema(name: str) -> pa.Schema:
    """The Arrow schema of output ``name`` (``records.jsonl`` ...), from :data:`pipeline.contract.COLUMNS`:
    a ``T | None`` column is nullable, any other is not."""
    fields = []
    for column, kind in contract.COLUMNS[name]:
        nullable = isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)
        base = next(a for a in typing.get_args(kind) if a is not type(None)) if nullable else kind
        fields.append(pa.field(column, _ARROW_TYPES[base], nullable=nullable))
    return pa.schema(fields)


def derived_from(jsonl: Path) -> bytes:
    """What a Parquet file derived from ``jsonl`` now records of it: its size and modification time (an
    append or a rewrite changes both; a rename into another folder neither)."""
    info = jsonl.stat()
    return f"{info.st_size}:{info.st_mtime_ns}".encode()


def is_current(parquet: Path, jsonl: Path) -> bool:
    """``parquet`` exists, is readable, and was derived from ``jsonl`` as it is now."""
    try:
        metadata = pq.read_schema(parquet).metadata or {}
    except (OSError, pa.ArrowException):
        return False
    return metadata.get(DERIVED_FROM) == derived_from(jsonl)


def _batches(lines: BinaryIO) -> Iterator[list[dict[str, Any]]]:
    """The JSON lines parsed, a row group's worth at a time."""
    rows: list[dict[str, Any]] = []
    size = 0
    for line in lines:
        rows.append(orjson.loads(line))
        size += len(line)
        if len(rows) >= ROW_GROUP_ROWS or size >= ROW_GROUP_BYTES:
            yield rows
            rows, size = [], 0
    if rows:
        yield rows


def write_parquet(jsonl: Path, out: BinaryIO, name: str) -> int:
    """Write the rows of ``jsonl`` (output ``name``) to ``out`` as Parquet, a row group per batch; return
    the rows written."""
    typed = schema(name).with_metadata({DERIVED_FROM: derived_from(jsonl)})
    written = 0
    with (
        open(jsonl, "rb", buffering=BUFFER) as lines,
        pq.ParquetWriter(out, typed, compression=COMPRESSION) as writer,
    ):
        for rows in _batches(lines):
            writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=typed))
            written += len(rows)
    return written


class StagedParquet:
    """``NAME.parquet`` written from ``jsonl`` to a synced temporary file beside it (``.NAME.parquet.*.tmp``,
    which a later run removes if this one dies), renamed into place by :meth:`put_in_place`."""

    def __init__(self, path: Path, jsonl: Path, name: str) -> None:
        self.path = path
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        self._tmp = Path(tmp)
        try:
            os.chmod(tmp, FILE_MODE)
            with os.fdopen(handle, "wb", buffering=BUFFER) as out:
                self.rows = write_parquet(jsonl, out, name)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            self.abort()
            raise

    def put_in_place(self) -> None:
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._tmp.unlink(missing_ok=True)


def stage_parquet(out_dir: Path, journals: dict[str, Path]) -> list[StagedParquet]:
    """A staged Parquet file for each output whose JSON lines (``journals``: output name -> the file that
    will hold them once the run commits) changed since its Parquet file was written. On a failure the
    files staged so far are removed."""
    staged: list[StagedParquet] = []
    try:
        for name, jsonl in journals.items():
            target = out_dir / contract.PARQUET[name]
            if jsonl.exists() and not is_current(target, jsonl):
                staged.append(StagedParquet(target, jsonl, name))
    except BaseException:
        for part in staged:
            part.abort()
        raise
    return staged


def parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet output as the JSON lines hold them, a row group at a time."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP_ROWS):
        yield from batch.to_pylist()
