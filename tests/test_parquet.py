"""Parquet outputs (pipeline/parquet.py, ``pipeline clean --format parquet|both``): read back with duckdb, a
reader that shares no code with ours, they hold the rows of the JSON lines field by field and type by type,
across incremental runs, format switches, failed writes and cluster runs; the report reads them."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import sqlite3
import traceback
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from pipeline import contract, parquet
from pipeline.cli import main
from pipeline.index import DATA_DIR
from pipeline.options import CleanOptions
from pipeline.report import REPORT_HTML, REPORT_JSON, build_report, write_reports
from pipeline.run import JOURNAL_DIR, RunConfig, Stopped, clean_folder
from tests.corpus import mixed_corpus, syndicated_corpus
from tests.test_reliability import (
    Mounts,
    _no_process_left,  # noqa: F401 - autouse: a failed test's runs are killed
    ended_within,
    run_clean,
    start,
)

NAMES = (contract.RECORDS, contract.DUPLICATES, contract.REJECTED)
CONFIG = RunConfig(workers=1, chunk_size=10, report=False)
# The contract's types as duckdb names them, and whether the column may hold nulls.
DUCKDB_TYPES = {
    str: ("VARCHAR", False),
    str | None: ("VARCHAR", True),
    float: ("DOUBLE", False),
    list[str]: ("VARCHAR[]", False),
}


def config(output_format: str, **changes: Any) -> RunConfig:
    return replace(CONFIG, output_format=output_format, **changes)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Syndicated copies of every kind, distinct briefs, real HTML pages (with URLs, dates, authors) and bad
    inputs of several reasons."""
    return mixed_corpus(tmp_path_factory.mktemp("parquet") / "raw", articles=30, pages=10)


@pytest.fixture(scope="module")
def jsonl_out(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("jsonl") / "out"
    clean_folder(corpus, out, config("jsonl"))
    return out


def duckdb_rows(path: Path) -> list[dict[str, Any]]:
    """A Parquet file's rows as duckdb reads them, in file order."""
    with duckdb.connect() as db:
        result = db.execute(
            "SELECT * EXCLUDE (file_row_number) FROM read_parquet(?, file_row_number = true) "
            "ORDER BY file_row_number",
            [str(path)],
        )
        columns = [d[0] for d in result.description]
        return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]


def duckdb_types(path: Path) -> dict[str, str]:
    with duckdb.connect() as db:
        return {d[0]: str(d[1]) for d in db.execute("SELECT * FROM read_parquet(?)", [str(path)]).description}


def typed(rows: list[dict[str, Any]]) -> list[list[tuple[str, type, Any]]]:
    """Each row as (field, type, value) in field order: equal lists mean the same fields, in the same
    order, with the same types and values."""
    return [[(key, type(value), value) for key, value in row.items()] for row in rows]


def jsonl_rows(out: Path, name: str) -> list[dict[str, Any]]:
    with (out / name).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def assert_parquet_holds(out: Path, reference: Path) -> None:
    """Each Parquet output in ``out`` holds the rows of ``reference``'s JSON lines, field by field and type
    by type, and its columns have the contract's types (nullable exactly where the contract says)."""
    for name in NAMES:
        path = out / contract.PARQUET[name]
        assert typed(duckdb_rows(path)) == typed(jsonl_rows(reference, name)), name
        expected = {column: DUCKDB_TYPES[kind] for column, kind in contract.COLUMNS[name]}
        schema = pq.read_schema(path)
        got = {column: (kind, schema.field(column).nullable) for column, kind in duckdb_types(path).items()}
        assert got == expected, name


def visible(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.suffix in (".jsonl", ".parquet")}


@pytest.mark.parametrize("output_format", ["parquet", "both"])
def test_parquet_outputs_hold_the_jsonl_rows_field_by_field(
    corpus: Path, jsonl_out: Path, tmp_path: Path, output_format: str
):
    out = tmp_path / "out"
    summary = clean_folder(corpus, out, config(output_format))
    assert_parquet_holds(out, jsonl_out)
    # the corpus exercises every kind of field: nulls and values, lists empty and not, each row file
    records = jsonl_rows(jsonl_out, contract.RECORDS)
    assert {r["url"] is None for r in records} == {True, False}
    assert {bool(r["removed_lines"]) for r in records} == {True, False}
    assert summary.exact_duplicates and summary.near_duplicates and summary.rejected >= 4
    assert {r["how"] for r in jsonl_rows(jsonl_out, contract.DUPLICATES)} >= {"exact", "jaccard"}
    parquet_files = set(contract.PARQUET.values())
    if output_format == "parquet":
        assert visible(out) == parquet_files
        journal = out / DATA_DIR / JOURNAL_DIR
        for name in NAMES:
            assert (journal / name).read_bytes() == (jsonl_out / name).read_bytes()
    else:
        assert visible(out) == parquet_files | set(NAMES)
        for name in NAMES:
            assert (out / name).read_bytes() == (jsonl_out / name).read_bytes()
    assert contract.validate_output(out) == contract.validate_output(jsonl_out)


def test_row_groups_are_bounded(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The Parquet file is written a row group at a time: with groups of 7 rows, many groups."""
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 7)
    out = tmp_path / "out"
    clean_folder(corpus, out, config("parquet"))
    meta = pq.ParquetFile(out / "records.parquet").metadata
    assert meta.num_row_groups == -(-meta.num_rows // 7) > 5
    assert {meta.row_group(i).num_rows for i in range(meta.num_row_groups - 1)} == {7}


def split_corpus(corpus: Path, root: Path) -> tuple[Path, Path]:
    """``root/raw`` with about two thirds of the corpus, and the rest (in the same folders) to add later."""
    raw, later = root / "raw", root / "later"
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    for n, path in enumerate(files):
        target = (later if n % 3 == 2 else raw) / path.relative_to(corpus)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return raw, later


def clusters(rows: dict[str, list[dict[str, Any]]]) -> set[frozenset[str]]:
    by_id = {r["id"]: {r["source"]} for r in rows[contract.RECORDS]}
    for dup in rows[contract.DUPLICATES]:
        by_id[dup["duplicate_of"]].add(dup["source"])
    return {frozenset(members) for members in by_id.values()}


def parquet_outputs(out: Path) -> dict[str, list[dict[str, Any]]]:
    return {name: duckdb_rows(out / contract.PARQUET[name]) for name in NAMES}


def test_an_incremental_run_gives_the_parquet_of_a_rebuild(corpus: Path, tmp_path: Path):
    """Run 1 on part of the corpus, run 2 with the rest: the Parquet files hold what the JSON lines of the
    same two runs hold, row for row, and the clusters and rejections of a rebuild of the whole folder."""
    raw, later = split_corpus(corpus, tmp_path)
    out, ref = tmp_path / "out", tmp_path / "ref"
    for target, output_format in ((out, "parquet"), (ref, "jsonl")):
        clean_folder(raw, target, config(output_format))
    first = (out / "records.parquet").read_bytes()
    shutil.copytree(later, raw, dirs_exist_ok=True)
    second = clean_folder(raw, out, config("parquet"))
    clean_folder(raw, ref, config("jsonl"))
    assert second.documents > 20 and second.duplicates > 5
    assert (out / "records.parquet").read_bytes() != first
    assert_parquet_holds(out, ref)
    incremental = parquet_outputs(out)
    rebuilt = tmp_path / "rebuilt"
    clean_folder(raw, rebuilt, config("parquet"), rebuild=True)
    whole = parquet_outputs(rebuilt)
    assert clusters(incremental) == clusters(whole)
    for rows in (incremental, whole):
        rows[contract.REJECTED].sort(key=lambda r: r["source"])
    assert incremental[contract.REJECTED] == whole[contract.REJECTED]


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file of ``out`` but the lock, the index's own files and the stats (bytes)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and (p.suffix in (".jsonl", ".parquet") or p.name.endswith(".tmp"))
    }


def test_a_full_disk_while_writing_parquet_leaves_the_last_committed_state(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The disk fills at the second row group of the new records.parquet: the run fails and is not
    committed (the journal and the old Parquet files as they were, no temporary file), and the next run
    does what the failed one would have done."""
    raw, later = split_corpus(corpus, tmp_path)
    out, ref = tmp_path / "out", tmp_path / "ref"
    clean_folder(raw, out, config("parquet"))
    clean_folder(raw, ref, config("jsonl"))
    before = snapshot(out)
    shutil.copytree(later, raw, dirs_exist_ok=True)
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 10)
    write_batch = pq.ParquetWriter.write_batch
    calls = []

    def full_disk(self: pq.ParquetWriter, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        write_batch(self, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(pq.ParquetWriter, "write_batch", full_disk)
        with pytest.raises(OSError, match="No space left"):
            clean_folder(raw, out, config("parquet"))
    assert snapshot(out) == before
    assert_parquet_holds(out, ref)
    again = clean_folder(raw, out, config("parquet"))
    clean_folder(raw, ref, config("jsonl"))
    assert again.documents > 20  # the failed run committed nothing: its files are new to this one
    assert_parquet_holds(out, ref)


def test_a_real_full_disk_at_growing_sizes_leaves_the_last_committed_parquet(corpus: Path, tmp_path: Path):
    """An incremental run on a tmpfs too small for it, grown by 64 KB after each failure until the run
    fits: the disk fills at a later stage each time, the Parquet files' among them, and each failure leaves
    the journal and the Parquet files of the last committed run, and no temporary file."""
    mounts = Mounts(tmp_path)
    try:
        raw, later = split_corpus(corpus, tmp_path)
        ref = tmp_path / "ref"
        clean_folder(raw, ref, config("jsonl"))
        fs = mounts.tmpfs("64m")
        out = fs / "out"
        clean_folder(raw, out, config("parquet"))
        before = snapshot(out)
        size = shutil.disk_usage(fs).used // 1024 + 64
        mounts.remount(fs, f"size={size}k")
        shutil.copytree(later, raw, dirs_exist_ok=True)
        clean_folder(raw, ref, config("jsonl"))
        failed_in = []
        while True:
            try:
                clean_folder(raw, out, config("parquet"))
                break
            except (OSError, sqlite3.OperationalError) as err:
                assert getattr(err, "errno", None) == errno.ENOSPC or "disk is full" in str(err), err
                failed_in.append({frame.filename for frame in traceback.extract_tb(err.__traceback__)})
            assert snapshot(out) == before, f"outputs changed by the run that failed at {size} KB"
            size += 64
            assert size < 16384, "the run does not fit 16 MB"
            mounts.remount(fs, f"size={size}k")
        in_parquet = sum(parquet.__file__ in files for files in failed_in)
        print(f"{len(failed_in)} failed runs, {in_parquet} of them writing Parquet; fit in {size} KB")
        assert len(failed_in) >= 3
        assert in_parquet, "the disk never filled writing Parquet"
        assert_parquet_holds(out, ref)
    finally:
        mounts.unmount_all()


def test_a_run_stopped_after_its_commit_has_its_parquet_brought_up_to_date(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Stopped between the index's commit and the rename of the new Parquet files: the old Parquet files
    stay (whole, readable), and the next run, with nothing new to read, writes them from the journal."""
    raw, later = split_corpus(corpus, tmp_path)
    out, ref = tmp_path / "out", tmp_path / "ref"
    clean_folder(raw, out, config("parquet"))
    clean_folder(raw, ref, config("jsonl"))
    old = {name: (out / contract.PARQUET[name]).read_bytes() for name in NAMES}
    shutil.copytree(later, raw, dirs_exist_ok=True)
    clean_folder(raw, ref, config("jsonl"))

    def interrupted(self: parquet.StagedParquet) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(parquet.StagedParquet, "put_in_place", interrupted)
        with pytest.raises(Stopped) as stopped:
            clean_folder(raw, out, config("parquet"))
    assert stopped.value.committed
    assert {name: (out / contract.PARQUET[name]).read_bytes() for name in NAMES} == old
    again = clean_folder(raw, out, config("parquet"))
    assert again.files == 0
    assert_parquet_holds(out, ref)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # and a run after that, still with nothing new, leaves the Parquet files alone
    current = {name: (out / contract.PARQUET[name]).stat().st_mtime_ns for name in NAMES}
    clean_folder(raw, out, config("parquet"))
    assert {name: (out / contract.PARQUET[name]).stat().st_mtime_ns for name in NAMES} == current


def test_runs_killed_at_random_moments_leave_parquet_a_rerun_brings_up_to_date(corpus: Path, tmp_path: Path):
    """``pipeline clean --format parquet`` killed (SIGKILL to its process group) at random moments of an
    incremental run, most of them late, where it writes and commits: each rerun leaves the Parquet files of
    an uninterrupted run, and no temporary file."""
    raw, later = split_corpus(corpus, tmp_path)
    first, ref = tmp_path / "first", tmp_path / "ref"
    assert run_clean(raw, first, "--format", "parquet").returncode == 0
    clean_folder(raw, ref, config("jsonl"))
    shutil.copytree(later, raw, dirs_exist_ok=True)
    clean_folder(raw, ref, config("jsonl"))
    out = tmp_path / "out"
    shutil.copytree(first, out)
    whole = run_clean(raw, out, "--format", "parquet")
    assert whole.returncode == 0, whole.stderr
    rng = random.Random(11)
    killed = 0
    for round_ in range(8):
        shutil.rmtree(out)
        shutil.copytree(first, out)
        delay = rng.uniform(0.5, 1.0) * whole.seconds
        run = start(raw, out, tmp_path, "--format", "parquet")
        if ended_within(run, delay) is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.proc.wait(timeout=60)
            killed += 1
        rerun = run_clean(raw, out, "--format", "parquet")
        assert rerun.returncode == 0, f"round {round_}, killed after {delay:.2f} s: {rerun.stderr}"
        assert_parquet_holds(out, ref)
        assert not list(out.rglob("*.tmp")), f"round {round_}"
    assert killed >= 4


def test_the_format_can_switch_between_runs(corpus: Path, tmp_path: Path):
    """jsonl -> parquet -> both -> jsonl -> parquet, with new files in some runs: each run leaves the files
    its format names, holding every run's rows (as a folder cleaned in jsonl throughout)."""
    raw, later = split_corpus(corpus, tmp_path)
    out, ref = tmp_path / "out", tmp_path / "ref"
    parquet_files = set(contract.PARQUET.values())
    steps = [("jsonl", False), ("parquet", False), ("both", True), ("jsonl", False), ("parquet", False)]
    for n, (output_format, add_files) in enumerate(steps):
        if add_files:
            shutil.copytree(later, raw, dirs_exist_ok=True)
        clean_folder(raw, out, config(output_format))
        clean_folder(raw, ref, config("jsonl"))
        expected = {"jsonl": set(NAMES), "parquet": parquet_files, "both": set(NAMES) | parquet_files}
        assert visible(out) == expected[output_format], f"step {n}: {output_format}"
        journal = out if output_format != "parquet" else out / DATA_DIR / JOURNAL_DIR
        for name in NAMES:
            assert (journal / name).read_bytes() == (ref / name).read_bytes(), (n, name)
        if output_format != "jsonl":
            assert_parquet_holds(out, ref)


def test_the_report_renders_from_a_parquet_only_output(corpus: Path, jsonl_out: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    clean_folder(corpus, out, config("parquet"))
    assert not list(out.glob("*.jsonl")) and not (out / REPORT_JSON).exists()
    assert main(["report", str(out), "--format", "json", "--top", "0"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected, _ = build_report(jsonl_out)
    for key in ("counts", "similarity_histogram", "boilerplate", "clusters"):
        assert printed[key] == expected[key], key
    assert printed["counts"]["duplicates"] > 5 and printed["counts"]["rejected"] >= 4
    assert set(printed["built_from"]) - {"config"} == set(NAMES)
    biggest = printed["clusters"][0]
    assert main(["report", str(out), "--cluster", biggest["id"], "--format", "json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert len(detail["members"]) == biggest["size"] - 1
    write_reports(out)
    page = (out / REPORT_HTML).read_text(encoding="utf-8")
    assert "records.parquet" in page and "records.jsonl" not in page


def test_the_cli_option_and_a_bad_format(corpus: Path, jsonl_out: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert main(["clean", str(corpus), "--out", str(out), "--format", "both", "-q", "-w", "1"]) == 0
    assert_parquet_holds(out, jsonl_out)
    assert json.loads((out / contract.STATS).read_text())["config"]["format"] == "both"
    with pytest.raises(SystemExit) as exited:
        main(["clean", str(corpus), "--out", str(tmp_path / "bad"), "--format", "csv"])
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "invalid choice: 'csv'" in line
    with pytest.raises(ValueError, match="format must be one of jsonl, parquet, both"):
        RunConfig(output_format="csv")


def test_a_cluster_run_writes_the_same_parquet(corpus: Path, jsonl_out: Path, tmp_path: Path):
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    clean_folder(corpus, out, config("parquet", workers=2), dask="local")
    assert_parquet_holds(out, jsonl_out)


@pytest.fixture
def small_raw(tmp_path: Path) -> Iterator[Path]:
    raw = tmp_path / "raw"
    syndicated_corpus(raw, limit=3)
    (raw / "empty.txt").write_bytes(b"")
    yield raw


def test_the_flow_takes_the_format(prefect_harness: None, small_raw: Path, tmp_path: Path):
    from flows.clean_folder import clean_folder as flow

    out, ref = tmp_path / "out", tmp_path / "ref"
    summary = flow(str(small_raw), str(out), CleanOptions(output_format="parquet"))
    clean_folder(small_raw, ref, config("jsonl"))
    assert summary.kept and summary.rejected == 1
    assert visible(out) == set(contract.PARQUET.values())
    assert_parquet_holds(out, ref)
