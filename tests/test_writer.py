"""Tests for pipeline/writer.py: output files appear whole or not at all."""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.writer import AtomicJsonl, JournaledAppend, StagedRewrite, write_array_atomic, write_json_atomic

ROWS = [{"id": "1", "text": "Café — “quoted”"}, {"id": "2", "text": "second\nline", "n": [1, 2]}]


class Boom(Exception):
    pass


def test_atomic_jsonl_commits_rows_on_success(tmp_path: Path) -> None:
    target = tmp_path / "records.jsonl"

    with AtomicJsonl(target) as out:
        for row in ROWS:
            out.write(row)

    assert out.count == 2
    lines = target.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == ROWS
    assert "Café — “quoted”" in lines[0]  # UTF-8, not \\u escapes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.jsonl"]


def test_atomic_jsonl_with_no_rows_commits_an_empty_file(tmp_path: Path) -> None:
    target = tmp_path / "duplicates.jsonl"

    with AtomicJsonl(target):
        pass

    assert target.read_bytes() == b""


def test_atomic_jsonl_creates_missing_parent_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "records.jsonl"

    with AtomicJsonl(target) as out:
        out.write({"x": 1})

    assert json.loads(target.read_text(encoding="utf-8")) == {"x": 1}


def test_atomic_jsonl_leaves_nothing_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "records.jsonl"

    with pytest.raises(Boom), AtomicJsonl(target) as out:
        out.write(ROWS[0])
        raise Boom

    assert list(tmp_path.iterdir()) == []


def test_atomic_jsonl_existing_target_untouched_until_commit(tmp_path: Path) -> None:
    target = tmp_path / "records.jsonl"
    target.write_text('{"old": true}\n', encoding="utf-8")

    with AtomicJsonl(target) as out:
        out.write(ROWS[0])
        assert target.read_text(encoding="utf-8") == '{"old": true}\n'

    assert [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()] == [ROWS[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.jsonl"]


def test_atomic_jsonl_existing_target_kept_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "records.jsonl"
    target.write_text('{"old": true}\n', encoding="utf-8")

    with pytest.raises(Boom), AtomicJsonl(target) as out:
        out.write(ROWS[0])
        raise Boom

    assert target.read_text(encoding="utf-8") == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.jsonl"]


def test_atomic_jsonl_unserialisable_row_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "records.jsonl"

    with pytest.raises(TypeError), AtomicJsonl(target) as out:
        out.write(ROWS[0])
        out.write({"bad": object()})

    assert list(tmp_path.iterdir()) == []


def test_write_json_atomic_writes_sorted_indented_json(tmp_path: Path) -> None:
    target = tmp_path / "stats.json"

    write_json_atomic(target, {"b": 1, "a": {"é": "ü"}})

    text = target.read_text(encoding="utf-8")
    assert json.loads(text) == {"a": {"é": "ü"}, "b": 1}
    assert text.index('"a"') < text.index('"b"')
    assert '"é": "ü"' in text and text.endswith("}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json"]


def test_write_json_atomic_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "stats.json"
    target.write_text('{"old": true}\n', encoding="utf-8")

    write_json_atomic(target, {"new": True})

    assert json.loads(target.read_text(encoding="utf-8")) == {"new": True}


def test_write_json_atomic_failure_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "stats.json"
    target.write_text('{"old": true}\n', encoding="utf-8")

    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})

    assert target.read_text(encoding="utf-8") == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json"]


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _write_jsonl(path: Path) -> None:
    with AtomicJsonl(path) as out:
        out.write({"x": 1})


@pytest.mark.parametrize(
    "write",
    [_write_jsonl, lambda path: write_json_atomic(path, {"x": 1})],
    ids=["AtomicJsonl", "write_json_atomic"],
)
def test_committed_file_mode_follows_the_umask(tmp_path: Path, umask_022: None, write) -> None:
    plain = tmp_path / "plain.json"
    plain.write_text("{}", encoding="utf-8")
    target = tmp_path / "out.json"

    write(target)

    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o644


# ---------------------------------------------------------------------------------------------------
# Rolled back after commit: the outputs are synced before the index commits; if that commit fails, the
# run's rows must go too (the index still names the old lengths).


def test_an_append_is_cut_back_also_after_its_commit(tmp_path: Path) -> None:
    target = tmp_path / "records.jsonl"
    target.write_bytes(b'{"id": "0"}\n')
    out = JournaledAppend(target, committed=target.stat().st_size)
    out.write(ROWS[0])
    out.commit()
    assert target.read_bytes().count(b"\n") == 2
    out.abort()  # the index's commit failed
    assert target.read_bytes() == b'{"id": "0"}\n'


def test_a_first_output_disappears_again_when_the_index_commit_fails(tmp_path: Path) -> None:
    target = tmp_path / "records.jsonl"
    out = AtomicJsonl(target)
    out.write(ROWS[0])
    out.commit()
    out.abort()
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_staged_rewrite_drops_rows_by_source_and_appears_only_when_put_in_place(tmp_path: Path) -> None:
    target = tmp_path / "rejected.jsonl"
    rows = [{"source": "a.txt", "reason": "unreadable"}, {"source": "b.txt", "reason": "empty"}]
    committed = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    target.write_bytes(committed + b'{"source": "dead run tail"}\n')  # past the committed length
    out = StagedRewrite(target, len(committed), {"a.txt"}, ".next")
    out.write({"source": "c.txt", "reason": "binary"})
    length = out.commit()
    assert (out.dropped, out.count) == (1, 1)
    assert target.read_bytes().startswith(committed)  # untouched until put in place
    out.put_in_place()
    assert [json.loads(line)["source"] for line in target.read_text().splitlines()] == ["b.txt", "c.txt"]
    assert target.stat().st_size == length and not (tmp_path / "rejected.jsonl.next").exists()


def test_a_full_disk_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A write that fails (here: a file-size limit, no root needed) removes the temporary file."""
    before = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, before[1]))
    try:
        with pytest.raises(OSError), AtomicJsonl(tmp_path / "records.jsonl") as out:
            for _ in range(1000):
                out.write({"text": "x" * 100})
        with pytest.raises(OSError):
            write_array_atomic(tmp_path / "keys.npy", np.zeros(10_000, np.int64))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, before)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert list(tmp_path.iterdir()) == []
