"""Tests for pipeline/dedup.py and the dedup step of a run: clusters built by controlled perturbation."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.bands import band_keys
from pipeline.contract import document_id, read_jsonl, validate_output
from pipeline.dedup import BUCKET_HEAD, Deduplicator, Signed, bucket_pairs, names_agree
from pipeline.normalize import dedup_token_bytes, name_key
from pipeline.run import RunConfig, clean_folder
from pipeline.signature import MinHashConfig, Signer, jaccard, lsh_bands, name_sets, shingle_hashes
from tests.corpus import _mojibake, _typographic_variant, benchmark_articles, light_rewrite

# Articles of a usual length (400+ words): on a 60-word brief, three edited words already move Jaccard
# below 0.8, which is what the threshold means, not a miss.
ARTICLES = [a for a in benchmark_articles(40) if len(a.body.split()) >= 400][:12]


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _page(title: str, body: str, site: str, footer: str) -> str:
    return f"{title} | {site}\n\n{title}\n\n{body}\n\n{footer}\n"


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory) -> dict:
    """One article in five perturbed copies, plus five unrelated articles; the run's output rows."""
    root = tmp_path_factory.mktemp("perturbed")
    base = ARTICLES[0]
    paragraphs = base.body.split("\n\n")
    words = base.body.split(" ")
    rng = random.Random(3)
    for i in rng.sample(range(len(words)), 3):
        words[i] = "changed"
    _write(root / "raw", "a/original.txt", _page(base.title, base.body, "Site A", "Exit mobile version"))
    _write(root / "raw", "b/boilerplate.txt", _page(base.title, base.body, "Site B", "Share this:\nTwitter"))
    _write(
        root / "raw",
        "c/edited.txt",
        _page(base.title, " ".join(words) + "\n\nThis story was updated.", "Site C", ""),
    )
    _write(
        root / "raw", "d/typographic.txt", _page(base.title, _typographic_variant(base.body), "Site D", "")
    )
    _write(root / "raw", "e/mojibake.txt", _mojibake(_page(base.title, base.body, "Site E", "")))
    _write(
        root / "raw",
        "f/truncated.txt",
        _page(base.title, "\n\n".join(paragraphs[: len(paragraphs) // 2]), "Site F", "Continue reading"),
    )
    for n, other in enumerate(ARTICLES[1:6]):
        _write(root / "raw", f"other/{n}.txt", _page(other.title, other.body, "Site O", ""))
    clean_folder(root / "raw", root / "out", RunConfig(workers=1))
    validate_output(root / "out")
    return {
        "records": read_jsonl(root / "out" / "records.jsonl"),
        "duplicates": read_jsonl(root / "out" / "duplicates.jsonl"),
    }


def test_perturbed_copies_form_one_cluster_kept_once(perturbed):
    kept = {r["source"] for r in perturbed["records"]}
    dups = {d["source"]: d for d in perturbed["duplicates"]}
    copies = {
        "a/original.txt",
        "b/boilerplate.txt",
        "c/edited.txt",
        "d/typographic.txt",
        "e/mojibake.txt",
        "f/truncated.txt",
    }
    assert len(copies & kept) == 1
    assert set(dups) == copies - kept
    assert len({d["duplicate_of"] for d in dups.values()}) == 1
    assert {f"other/{n}.txt" for n in range(5)} <= kept


def test_duplicate_kinds_and_measured_similarity(perturbed):
    dups = {d["source"]: d for d in perturbed["duplicates"]}
    kept = next(r for r in perturbed["records"] if r["id"] == next(iter(dups.values()))["duplicate_of"])
    # The copies under other boilerplate, and the mojibake copy once repaired, are byte-identical when clean.
    rows = {r["source"]: r for r in perturbed["records"] + perturbed["duplicates"]}
    assert (
        len({rows[s]["content_hash"] for s in ("a/original.txt", "b/boilerplate.txt", "e/mojibake.txt")}) == 1
    )
    for dup in dups.values():
        assert (dup["kind"] == "exact") == (dup["content_hash"] == kept["content_hash"])
        if dup["kind"] == "exact":
            assert dup["similarity"] == 1.0
    if "c/edited.txt" in dups:
        assert dups["c/edited.txt"]["kind"] == "near"
        assert 0.8 <= dups["c/edited.txt"]["similarity"] < 1.0
    truncated = dups["f/truncated.txt"]
    assert truncated["kind"] == "near" and truncated["containment"] >= 0.9 and truncated["similarity"] < 0.8
    assert "shorter" in truncated["reason"]
    assert kept["source"] != "f/truncated.txt"


SIGNER = Signer(MinHashConfig())


def _signed(source: str, text: str, date: str | None = None) -> Signed:
    hashes = shingle_hashes(dedup_token_bytes(text), 5)
    bands = band_keys(SIGNER.signature(hashes), lsh_bands(SIGNER.config))[0]
    names = name_sets([name_key(text)])[0]
    return Signed(document_id(source), source, str(hash(text)), len(text), date, hashes, bands, None, names)


def test_representative_policy_longest_then_earliest_then_source():
    text = ARTICLES[1].body
    dedup = Deduplicator(MinHashConfig())
    dedup.add(_signed("z.txt", text, "2024-01-02"))
    dedup.add(_signed("y.txt", text, "2024-01-01"))
    dedup.add(_signed("x.txt", text, None))
    dedup.add(_signed("w.txt", text + " One more sentence at the end of the article."))
    verdicts = dedup.verdicts()
    dedup.close()
    assert set(verdicts) == {document_id(s) for s in ("z.txt", "y.txt", "x.txt")}
    assert {v.duplicate_of for v in verdicts.values()} == {document_id("w.txt")}
    dedup = Deduplicator(MinHashConfig())
    for source, date in (("z.txt", "2024-01-02"), ("y.txt", "2024-01-01"), ("x.txt", None), ("a.txt", None)):
        dedup.add(_signed(source, text, date))
    verdicts = dedup.verdicts()
    dedup.close()
    assert {v.duplicate_of for v in verdicts.values()} == {document_id("y.txt")}
    assert "later or missing date" in verdicts[document_id("x.txt")].reason


def test_distinct_articles_are_not_merged():
    dedup = Deduplicator(MinHashConfig())
    for n, article in enumerate(ARTICLES):
        dedup.add(_signed(f"{n}.txt", article.body))
    assert dedup.verdicts() == {}
    dedup.close()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(range(6)), min_size=1, max_size=12))
def test_exactly_one_kept_per_cluster(choices: list[int]):
    """Whatever the mix of copies, each source article is kept exactly once and copies point at it."""
    dedup = Deduplicator(MinHashConfig())
    sources = []
    for n, choice in enumerate(choices):
        source = f"{n:02d}-{choice}.txt"
        sources.append((source, choice))
        dedup.add(_signed(source, ARTICLES[choice].body))
    verdicts = dedup.verdicts()
    dedup.close()
    kept = [(s, c) for s, c in sources if document_id(s) not in verdicts]
    assert sorted(c for _, c in kept) == sorted(set(choices))
    kept_by_article = {c: document_id(s) for s, c in kept}
    for source, choice in sources:
        verdict = verdicts.get(document_id(source))
        if verdict:
            assert verdict.duplicate_of == kept_by_article[choice]
            assert verdict.kind == "exact" and verdict.similarity == 1.0


def test_shingle_files_round_trip_across_runs(tmp_path: Path):
    from pipeline.index import SetFiles

    folder = tmp_path / "shingles"
    arrays = [np.arange(n, dtype=np.uint32) * 7 for n in (0, 3, 1000, 1)]
    first = SetFiles(folder, [], 0)
    first.extend(np.concatenate(arrays[:2]), [a.size for a in arrays[:2]])
    saved = first.save()
    first.close()
    (folder / "run-000000000002.u32").write_bytes(b"left by a run that died")
    second = SetFiles(folder, [saved], 2)
    assert not (folder / "run-000000000002.u32").exists()
    second.extend(arrays[2], [arrays[2].size])
    second.extend(arrays[3], [arrays[3].size])
    for i, array in enumerate(arrays):  # earlier run's from the file, this run's from the open one
        assert np.array_equal(second.get(i), array)
    second.close()
    assert sorted(p.name for p in folder.iterdir()) == [
        "run-000000000000.offsets.npy",
        "run-000000000000.u32",
    ]


def test_a_flood_of_identical_and_near_identical_records_costs_linear_work(tmp_path: Path):
    """One notice repeated in every record of an export, and one template page with a counter: each
    record is compared with a bounded number of others (band buckets and clusters are capped), not with
    every earlier copy, so a 50 MB export of tiny records cannot make dedup quadratic in time or memory."""
    raw = tmp_path / "raw"
    raw.mkdir()
    with gzip.open(raw / "same.jsonl.gz", "wt", encoding="utf-8") as out:
        for _ in range(6_000):
            out.write('{"text": "The same short notice repeated in every record of this export."}\n')
    with gzip.open(raw / "near.jsonl.gz", "wt", encoding="utf-8") as out:
        for i in range(3_000):
            notice = f"Page not found. The page you asked for does not exist on this site any more. Ref {i}"
            out.write(json.dumps({"text": notice}) + "\n")
    summary = clean_folder(raw, tmp_path / "out", RunConfig(workers=1, report=False))
    assert (summary.kept, summary.exact_duplicates, summary.near_duplicates) == (2, 5_999, 2_999)
    checked = summary.stats["dedup"]["candidate_pairs_checked"]
    # BUCKET_HEAD pairs per bucket and document at most; the 19 buckets of one notice mostly share their
    # earliest members (50,604 pairs here; every pair of the 3,000 would be 4.5 million)
    assert checked <= 3_000 * BUCKET_HEAD * 3, checked
    validate_output(tmp_path / "out")


# -- light rewrites: the second check on names and figures --------------------------------------------------

# Ordinary words a light rewrite puts in (no name, no figure): what a copy editor's synonyms look like.
ORDINARY = ["also", "said", "however", "several", "recently", "largely", "new", "local", "major", "early"]
BRIEF = (
    "Police in {town} arrested {n} people on {day} after a series of break-ins at shops on {street}. "
    "Officers said the arrests followed reports from residents over the past two weeks, and that stolen "
    "goods had been found in a garage nearby. The suspects are expected to appear in court later this "
    "month. Police asked anyone with information to call the {town} police station."
)


def _verdict(first: str, second: str) -> tuple[float, object]:
    """The Jaccard of two texts and the verdict on the second when both go through one dedup."""
    dedup = Deduplicator(MinHashConfig())
    a, b = _signed("a.txt", first), _signed("b.txt", second)
    dedup.add(a)
    dedup.add(b)
    verdicts = dedup.verdicts()
    dedup.close()
    verdict = verdicts.get(document_id("b.txt"), verdicts.get(document_id("a.txt")))
    return jaccard(a.shingles, b.shingles), verdict


def test_a_light_rewrite_of_a_real_article_is_a_near_duplicate_by_its_names_and_figures():
    article = ARTICLES[2].body
    rewrite = light_rewrite(article, random.Random(1), ORDINARY)
    score, verdict = _verdict(article, rewrite)
    assert 0.6 <= score < 0.8  # under the threshold: only the second check can find it
    assert verdict is not None and verdict.kind == "near" and verdict.how == "rewrite", verdict
    assert verdict.similarity == round(score, 4)


def test_briefs_from_one_template_with_other_names_and_figures_stay_apart():
    one = BRIEF.format(town="Springfield", n=3, day="Tuesday", street="Main Street")
    other = BRIEF.format(town="Shelbyville", n=5, day="Friday", street="Main Street")
    score, verdict = _verdict(one, other)
    assert 0.6 <= score < 0.8, score  # as alike as a light rewrite by their shingles
    assert verdict is None
    # ... while a light rewrite of the brief itself is found (two ordinary words of 70 changed)
    rewrite = one.replace("series", "spate").replace("nearby", "close by")
    score, verdict = _verdict(one, rewrite)
    assert 0.6 <= score < 0.8 and verdict is not None and verdict.how == "rewrite", (score, verdict)


def test_names_agree_within_the_tolerance_and_only_with_enough_names():
    config = MinHashConfig()  # names_tolerance 0.25, min_names 3
    names = np.arange(12, dtype=np.uint32)
    assert names_agree(names, names, config)
    assert names_agree(names, names[:-1], config)  # one name only on one side: always allowed
    assert names_agree(names, np.append(names[:-1], [100, 101]).astype(np.uint32), config)  # 3 of 14
    assert not names_agree(names, np.append(names[:-2], [100, 101]).astype(np.uint32), config)  # 4 of 14
    assert not names_agree(names[:2], names[:2], config)  # two names: too little to go on
    assert not names_agree(names[:0], names[:0], config)


def test_a_rewrite_of_a_record_kept_by_an_earlier_run_is_found(tmp_path: Path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    article = ARTICLES[3]
    _write(raw, "first/original.txt", _page(article.title, article.body, "Site A", ""))
    _write(raw, "first/other.txt", _page(ARTICLES[4].title, ARTICLES[4].body, "Site A", ""))
    first = clean_folder(raw, out, RunConfig(workers=1, report=False))
    assert first.kept == 2
    rewrite = light_rewrite(article.body, random.Random(2), ORDINARY)
    _write(raw, "second/rewrite.txt", _page(article.title, rewrite, "Site B", ""))
    second = clean_folder(raw, out, RunConfig(workers=1, report=False))
    assert (second.kept, second.near_duplicates) == (0, 1)
    (dup,) = read_jsonl(out / "duplicates.jsonl")
    assert dup["source"] == "second/rewrite.txt" and dup["duplicate_of"] == document_id("first/original.txt")
    assert dup["how"] == "rewrite" and dup["similarity"] < 0.8
    assert "kept by an earlier run" in dup["reason"]
    assert second.stats["dedup"]["rewrite_pairs"] == 1 and second.stats["dedup"]["rewrite_duplicates"] == 1
    validate_output(out)


def test_bucket_pairs_pair_each_document_with_the_earliest_of_its_buckets():
    keys = np.array([7, 7, 7, 7, 9, 9, 7], dtype=np.int64)
    docs = np.array([4, 0, 2, 1, 3, 1, 2], dtype=np.int64)  # (7, 2) twice: one row
    assert bucket_pairs(keys, docs, head=2).tolist() == [[0, 1], [0, 2], [0, 4], [1, 2], [1, 3], [1, 4]]
    every = [[0, 1], [0, 2], [0, 4], [1, 2], [1, 3], [1, 4], [2, 4]]
    assert bucket_pairs(keys, docs, head=8).tolist() == every
    assert bucket_pairs(np.empty(0, np.int64), np.empty(0, np.int64)).shape == (0, 2)
