"""Incremental runs against the persistent index (pipeline/index.py and the run around it)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from pipeline.cleanup import CleanupConfig
from pipeline.contract import read_jsonl, validate_output
from pipeline.index import INDEX_FILE
from pipeline.run import RunConfig, UsageError, clean_folder
from pipeline.signature import MinHashConfig
from tests.corpus import SEED, syndicated_corpus

CONFIG = RunConfig(workers=1, chunk_size=7)


def outputs(out: Path) -> dict[str, list[dict]]:
    return {name: read_jsonl(out / f"{name}.jsonl") for name in ("records", "duplicates", "rejected")}


def clusters(out: Path) -> set[frozenset[str]]:
    """The partition of sources into clusters (kept record plus its duplicates); rejections apart."""
    rows = outputs(out)
    by_id = {r["id"]: {r["source"]} for r in rows["records"]}
    for dup in rows["duplicates"]:
        by_id[dup["duplicate_of"]].add(dup["source"])
    return {frozenset(members) for members in by_id.values()}


def test_unchanged_input_does_nothing(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    syndicated_corpus(raw, limit=10)
    first = clean_folder(raw, out, CONFIG)
    before = {name: (out / f"{name}.jsonl").read_bytes() for name in ("records", "duplicates", "rejected")}
    again = clean_folder(raw, out, CONFIG)
    assert first.documents > 0
    assert (again.documents, again.files, again.unchanged) == (0, 0, first.files)
    assert {name: (out / f"{name}.jsonl").read_bytes() for name in before} == before


def test_new_copy_of_an_old_article_is_a_duplicate_of_the_kept_record(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    shutil.copy(SEED, raw / "seed.txt")
    clean_folder(raw, out, CONFIG)
    [kept] = outputs(out)["records"]
    syndicated = "Skip to content\n\n" + SEED.read_text(encoding="utf-8") + "\n\nShare this:\nTwitter\n"
    (raw / "later").mkdir()
    (raw / "later" / "copy.txt").write_text(syndicated, encoding="utf-8")
    second = clean_folder(raw, out, CONFIG)
    assert (second.documents, second.exact_duplicates) == (1, 1)
    [dup] = outputs(out)["duplicates"]
    assert (dup["source"], dup["duplicate_of"], dup["kind"]) == ("later/copy.txt", kept["id"], "exact")
    assert "earlier run" in dup["reason"]
    validate_output(out)


def test_refetched_identical_file_is_skipped_and_a_copy_under_a_new_path_is_accounted_for(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    shutil.copy(SEED, raw / "seed.txt")
    (raw / "empty.txt").write_text("   \n")
    clean_folder(raw, out, CONFIG)
    shutil.copy(SEED, raw / "renamed.txt")
    shutil.copy(raw / "empty.txt", raw / "empty copy.txt")
    os.utime(raw / "seed.txt", ns=(1, 1))  # re-fetched: new mtime, same bytes
    second = clean_folder(raw, out, CONFIG)
    assert (second.documents, second.same_content) == (2, 1)
    rows = outputs(out)
    assert [r["source"] for r in rows["records"]] == ["seed.txt"]
    # the copy's bytes became the seed's record: it is an exact duplicate of it; the rejected bytes are
    # rejected again under the copy's name
    assert [(d["source"], d["kind"], d["duplicate_of"]) for d in rows["duplicates"]] == [
        ("renamed.txt", "exact", rows["records"][0]["id"])
    ]
    assert sorted(r["source"] for r in rows["rejected"]) == ["empty copy.txt", "empty.txt"]
    validate_output(out)
    assert clean_folder(raw, out, CONFIG).documents == 0


def test_changed_file_is_a_new_version(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    shutil.copy(SEED, raw / "seed.txt")
    clean_folder(raw, out, CONFIG)
    (raw / "seed.txt").write_text(SEED.read_text(encoding="utf-8") + "\n\nAn added closing paragraph.\n")
    second = clean_folder(raw, out, CONFIG)
    assert second.documents == 1
    sources = {r["source"] for rows in outputs(out).values() for r in rows}
    assert "seed.txt" in sources
    assert any(s.startswith("seed.txt@") for s in sources)
    validate_output(out)


def test_runs_over_three_batches_describe_the_clusters_of_one_run(tmp_path: Path):
    whole = tmp_path / "whole"
    syndicated_corpus(whole, limit=40)
    files = sorted(p for p in whole.rglob("*") if p.is_file())
    one = clean_folder(whole, tmp_path / "one-out", CONFIG)

    batches = tmp_path / "batches"
    order = {}
    for n, part in enumerate((files[0::3], files[1::3], files[2::3])):
        for path in part:
            target = batches / path.relative_to(whole)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
            order[path.relative_to(whole).as_posix()] = n
        clean_folder(batches, tmp_path / "inc-out", CONFIG)

    validate_output(tmp_path / "inc-out")
    assert one.documents == len(files)
    assert clusters(tmp_path / "inc-out") == clusters(tmp_path / "one-out")
    # The kept record differs only where a later batch brought the one the policy prefers: records an
    # earlier run handed out are never withdrawn.
    kept_one = {r["source"] for r in outputs(tmp_path / "one-out")["records"]}
    kept_inc = {r["source"] for r in outputs(tmp_path / "inc-out")["records"]}
    for cluster in clusters(tmp_path / "one-out"):
        [a] = cluster & kept_one
        [b] = cluster & kept_inc
        assert a == b or order[a] > order[b], (a, b)


def test_rebuild_starts_over_and_matches_a_fresh_run(tmp_path: Path):
    raw = tmp_path / "raw"
    syndicated_corpus(raw, limit=8)
    clean_folder(raw, tmp_path / "out", CONFIG)
    clean_folder(raw, tmp_path / "fresh", CONFIG)
    rebuilt = clean_folder(raw, tmp_path / "out", CONFIG, rebuild=True)
    assert rebuilt.unchanged == 0
    for name in ("records", "duplicates", "rejected"):
        assert (tmp_path / "out" / f"{name}.jsonl").read_bytes() == (
            tmp_path / "fresh" / f"{name}.jsonl"
        ).read_bytes()


@pytest.mark.parametrize(
    "changed",
    [{"num_perm": 64}, {"rewrite_threshold": 0.7}, {"names_tolerance": 0.1}],
    ids=["num-perm", "rewrite-threshold", "names-tolerance"],
)
def test_changed_minhash_configuration_refuses_the_old_index(tmp_path: Path, changed: dict):
    raw = tmp_path / "raw"
    syndicated_corpus(raw, limit=3)
    clean_folder(raw, tmp_path / "out", CONFIG)
    other = RunConfig(workers=1, minhash=MinHashConfig(**changed))
    with pytest.raises(UsageError, match="--rebuild"):
        clean_folder(raw, tmp_path / "out", other)
    assert clean_folder(raw, tmp_path / "out", other, rebuild=True).documents > 0


def test_an_index_without_name_sets_asks_for_rebuild(tmp_path: Path):
    """An index of format 2 (before the second check of light rewrites) has no index.data/names/."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    syndicated_corpus(raw, limit=3)
    clean_folder(raw, out, CONFIG)
    with sqlite3.connect(out / INDEX_FILE) as db:
        db.execute("UPDATE meta SET value = '2' WHERE key = 'format'")
    shutil.rmtree(out / "index.data" / "names")
    with pytest.raises(UsageError, match="format2 -> format3.*--rebuild"):
        clean_folder(raw, out, CONFIG)


def test_changed_boilerplate_rules_refuse_the_old_index(tmp_path: Path):
    """A rerun with another rule file would clean new documents differently from the kept ones."""
    raw = tmp_path / "raw"
    syndicated_corpus(raw, limit=3)
    rules = tmp_path / "rules.txt"
    rules.write_text("[edge]\nExit mobile version\n", encoding="utf-8")
    with_rules = RunConfig(workers=1, cleanup=CleanupConfig(boilerplate_file=rules))
    clean_folder(raw, tmp_path / "out", with_rules)
    rules.write_text("[edge]\nExit mobile version\nShare this article\n", encoding="utf-8")
    (raw / "late.txt").write_text("A late article\n\nWith a body of its own.\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"rules-\w+ -> rules-\w+|\w{12} -> \w{12}.*--rebuild"):
        clean_folder(raw, tmp_path / "out", with_rules)
    # the same rules in another file (a comment added, the path changed) are the same configuration
    moved = tmp_path / "moved.txt"
    moved.write_text("# ours\n[edge]\nExit mobile version\nShare this article\n", encoding="utf-8")
    assert clean_folder(raw, tmp_path / "out", with_rules, rebuild=True).documents > 0
    moved_config = RunConfig(workers=1, cleanup=CleanupConfig(boilerplate_file=moved))
    assert clean_folder(raw, tmp_path / "out", moved_config).documents == 0


def test_a_crashed_append_is_rolled_back_by_the_next_run(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    syndicated_corpus(raw, limit=4)
    clean_folder(raw, out, CONFIG)
    records = out / "records.jsonl"
    good = records.read_bytes()
    with records.open("ab") as handle:
        handle.write(b'{"id": "half-writ')  # what a run killed mid-append leaves
    (raw / "new.txt").write_text("A new title\n\n" + "Fresh words about a new subject entirely. " * 20)
    clean_folder(raw, out, CONFIG)
    assert records.read_bytes().startswith(good)
    assert b"half-writ" not in records.read_bytes()
    validate_output(out)


def test_outputs_without_index_are_started_over(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    syndicated_corpus(raw, limit=3)
    first = clean_folder(raw, out, CONFIG)
    (out / INDEX_FILE).unlink()
    second = clean_folder(raw, out, CONFIG)
    assert second.documents == first.documents
    validate_output(out)


def test_boilerplate_learned_over_several_runs(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    footer = "Tips? Call the Gazette newsroom any time on 555-0100"
    for n in range(6):
        folder = raw / "gazette"
        folder.mkdir(parents=True, exist_ok=True)
        words = " ".join(f"w{n}x{i}" for i in range(60))
        (folder / f"{n}.txt").write_text(f"Story {n}\n\nBody {words}.\n\n{footer}\n")
        clean_folder(raw, out, CONFIG)
    texts = {r["source"]: r["text"] for r in outputs(out)["records"]}
    assert footer in texts["gazette/0.txt"]  # cleaned before the line was known
    assert footer not in texts["gazette/5.txt"]  # learned from the counts of earlier runs


def _age_folders(root: Path, seconds: int = 60) -> None:
    """Set every folder's modification time into the past, beyond the index's racy-time window."""
    past = int(time.time()) - seconds
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        os.utime(folder, (past, past))


def test_folder_scan_finds_new_files_and_skips_unchanged_folders(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    syndicated_corpus(raw, limit=10)
    _age_folders(raw)
    config = RunConfig(workers=1, chunk_size=7, scan="folders")
    first = clean_folder(raw, out, config)
    assert clean_folder(raw, out, config).files == 0

    folder = next(p for p in raw.iterdir() if p.is_dir())
    shutil.copy(SEED, folder / "new-in-old-folder.txt")
    (raw / "fresh" / "deep").mkdir(parents=True)
    (raw / "fresh" / "deep" / "new.txt").write_text("A new article.\n\n" + "Some words here. " * 40)
    second = clean_folder(raw, out, config)
    sources = {r["source"] for name in ("records", "duplicates") for r in outputs(out)[name]}
    assert second.files == 2
    assert {f"{folder.name}/new-in-old-folder.txt", "fresh/deep/new.txt"} <= sources
    # Only the changed folders were listed: the others' files were neither stat-ed nor counted.
    assert second.unchanged < first.files
    validate_output(out)


def test_folder_scan_misses_a_file_rewritten_in_place_and_full_scan_finds_it(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    article = raw / "article.txt"
    shutil.copy(SEED, article)
    _age_folders(raw)
    clean_folder(raw, out, RunConfig(workers=1, scan="folders"))
    stamp = raw.stat()
    article.write_text(SEED.read_text(encoding="utf-8") + "\n\nA correction was added.\n", encoding="utf-8")
    os.utime(raw, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # rewritten in place: the folder's time holds

    assert clean_folder(raw, out, RunConfig(workers=1, scan="folders")).files == 0  # the documented limit
    full = clean_folder(raw, out, RunConfig(workers=1, scan="full"))
    assert full.files == 1
    assert any(
        r["source"].startswith("article.txt@") for r in outputs(out)["duplicates"] + outputs(out)["records"]
    )


def test_folder_scan_does_not_trust_a_folder_listed_in_the_same_moment(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    shutil.copy(SEED, raw / "a.txt")
    config = RunConfig(workers=1, scan="folders")
    clean_folder(raw, out, config)  # the folder changed just now: a change in the same tick could hide
    stamp = raw.stat()
    (raw / "b.txt").write_text("Another article.\n\n" + "Other words here. " * 40, encoding="utf-8")
    os.utime(raw, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # as if b.txt came in the same clock tick
    assert clean_folder(raw, out, config).files == 1


def test_missing_index_data_is_a_one_line_error_naming_rebuild(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    syndicated_corpus(raw, limit=5)
    clean_folder(raw, out, CONFIG)
    shutil.rmtree(out / "index.data" / "shingles")
    with pytest.raises(UsageError, match="missing or damaged.*--rebuild"):
        clean_folder(raw, out, CONFIG)
    assert clean_folder(raw, out, CONFIG, rebuild=True).documents > 0


def test_an_index_of_the_older_format_asks_for_rebuild(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    syndicated_corpus(raw, limit=3)
    out.mkdir()
    with sqlite3.connect(out / INDEX_FILE) as db:  # format 1: another files table, no folder column
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('format', '1'), ('fingerprint', 'x')")
        db.execute("CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, hash TEXT)")
    with pytest.raises(UsageError, match="format1.*--rebuild"):
        clean_folder(raw, out, CONFIG)


def test_a_run_with_nothing_new_changes_no_output_file(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    syndicated_corpus(raw, limit=3)
    clean_folder(raw, out, CONFIG)
    names = ["records.jsonl", "duplicates.jsonl", "rejected.jsonl", "stats.json", "report.json"]
    names.append("report.html")
    before = {name: ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) for name in names}
    summary = clean_folder(raw, out, CONFIG)
    assert summary.documents == 0 and summary.unchanged > 0
    assert {name: ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) for name in names} == before
