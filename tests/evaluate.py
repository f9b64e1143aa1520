"""Quality evaluations on real data (``make eval``); the quality gate tests call the same functions.

- dedup: pairwise precision/recall/F1 of the clusters on ``corpus.syndicated_corpus``, and how many
  distinct short articles were merged;
- light rewrites: recall of the pairs (a real article or a templated brief, and a copy of it with one
  word in forty replaced, ``corpus.rewrite_corpus``), and how many distinct briefs were merged;
- text reuse: on the Clough-Stevenson corpus (answers written from a Wikipedia article: copied, lightly
  or heavily revised, or written independently), which answers are clustered with what; an answer
  written independently must stay alone;
- cleanup: share of scraped text files whose clean ``text`` equals the expected body exactly;
- extraction: word 4-gram precision/recall/F1 of our ``text`` on the article-extraction-benchmark pages,
  against a bare ``trafilatura.extract`` loop, computed as the benchmark's ``evaluate.py`` computes them
  (tokens are runs of word characters; per-page precision and recall, averaged over pages);
- snippets: trafilatura's own evaluation (990 pages, mostly German): a "with" snippet found in the text is
  a true positive, missing a false negative; a "without" snippet found is a false positive (whitespace
  normalised substring match, as its ``comparison.py``), ours against bare ``trafilatura.extract``.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import trafilatura

from pipeline.contract import read_jsonl
from pipeline.normalize import normalize_text
from pipeline.run import RunConfig, clean_folder
from tests.corpus import (
    FULL_BENCHMARK,
    FULL_SNIPPETS,
    SAMPLE_BENCHMARK,
    SAMPLE_SNIPPETS,
    rewrite_corpus,
    snippet_pages,
    syndicated_corpus,
)

CLOUGH_STEVENSON = FULL_BENCHMARK.parent / "clough-stevenson"


def pairs(clusters: dict[str, str]) -> set[tuple[str, str]]:
    """All unordered pairs of sources that share a cluster label."""
    members = defaultdict(list)
    for source, label in clusters.items():
        members[label].append(source)
    return {tuple(sorted(p)) for m in members.values() for p in itertools.combinations(m, 2)}  # type: ignore[misc]


def _clusters(out: Path) -> tuple[dict[str, str], list[dict]]:
    """Each source's predicted cluster (the source of the record its cluster keeps), and the duplicates."""
    records = read_jsonl(out / "records.jsonl")
    duplicates = read_jsonl(out / "duplicates.jsonl")
    by_id = {r["id"]: r["source"] for r in records}
    predicted = {r["source"]: r["source"] for r in records}
    predicted.update({d["source"]: by_id[d["duplicate_of"]] for d in duplicates})
    return predicted, duplicates


def evaluate_rewrites(limit: int | None = None, workers: int = 0, benchmark: Path = SAMPLE_BENCHMARK) -> dict:
    """Light rewrites of real articles and of templated briefs: recall of the (original, rewrite) pairs,
    pairs found that are not true (briefs merged with other briefs above all), and how the copies were
    linked (``how`` of each duplicate)."""
    work = Path(tempfile.mkdtemp(prefix="eval-rewrites-"))
    try:
        truth = rewrite_corpus(work / "raw", limit=limit, benchmark=benchmark)
        summary = clean_folder(work / "raw", work / "out", RunConfig(workers=workers, report=False))
        predicted, duplicates = _clusters(work / "out")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    true_pairs, found_pairs = pairs(truth), pairs(predicted)
    wrong = found_pairs - true_pairs

    def recall(kind: str) -> float:
        wanted = {p for p in true_pairs if truth[p[0]].startswith(f"{kind}/")}
        return round(len(wanted & found_pairs) / len(wanted), 4)

    def merged(kind: str) -> int:
        return len({truth[s] for p in wrong for s in p if truth[s].startswith(f"{kind}/")})

    return {
        "documents": len(truth),
        "rewrite_pairs": len(true_pairs),
        "recall": round(len(true_pairs & found_pairs) / len(true_pairs), 4),
        "article_recall": recall("article"),
        "brief_recall": recall("brief"),
        "police_recall": recall("police"),
        "wrong_pairs": len(wrong),
        "distinct_briefs_merged": merged("brief") + merged("police"),
        "articles_merged": merged("article"),
        "how": dict(sorted(Counter(d.get("how") or d["kind"] for d in duplicates).items())),
        "seconds": round(summary.seconds, 2),
    }


def evaluate_text_reuse(source: Path = CLOUGH_STEVENSON, workers: int = 0) -> dict:
    """The Clough-Stevenson answers and their five source articles in one run: per category (``cut``,
    ``light``, ``heavy``, ``non``), how many answers were clustered with their task's source article and
    how many with anything at all; clusters that mix tasks."""
    with (source / "file_information.csv").open(encoding="utf-8") as handle:
        labels = {row["File"]: (row["Task"], row["Category"]) for row in csv.DictReader(handle)}
    work = Path(tempfile.mkdtemp(prefix="eval-reuse-"))
    try:
        (work / "raw").mkdir()
        for name in labels:
            shutil.copyfile(source / name, work / "raw" / name)
        clean_folder(work / "raw", work / "out", RunConfig(workers=workers, report=False))
        predicted, _ = _clusters(work / "out")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    members: dict[str, list[str]] = defaultdict(list)
    for name, cluster in predicted.items():
        members[cluster].append(name)
    result: dict = {}
    for category in ("cut", "light", "heavy", "non"):
        answers = [name for name, (_, c) in labels.items() if c == category and name in predicted]
        result[category] = {
            "answers": len(answers),
            "with_source": sum(1 for a in answers if f"orig_task{labels[a][0]}.txt" in members[predicted[a]]),
            "merged": sum(1 for a in answers if len(members[predicted[a]]) > 1),
        }
    result["clusters_across_tasks"] = sum(
        1 for m in members.values() if len({labels[name][0] for name in m}) > 1
    )
    return result


def evaluate_syndicated(
    limit: int | None = None, workers: int = 0, benchmark: Path = SAMPLE_BENCHMARK
) -> dict:
    """Run the pipeline on the generated syndicated corpus and score dedup and cleanup."""
    work = Path(tempfile.mkdtemp(prefix="eval-syndicated-"))
    try:
        truth = syndicated_corpus(work / "raw", limit=limit, benchmark=benchmark)
        summary = clean_folder(work / "raw", work / "out", RunConfig(workers=workers))
        records = read_jsonl(work / "out" / "records.jsonl")
        duplicates = read_jsonl(work / "out" / "duplicates.jsonl")
        rejected = read_jsonl(work / "out" / "rejected.jsonl")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    by_id = {r["id"]: r["source"] for r in records}
    predicted = {r["source"]: r["source"] for r in records}
    predicted.update({d["source"]: by_id[d["duplicate_of"]] for d in duplicates})
    expected = {s: t["cluster"] for s, t in truth.items()}
    true_pairs, found_pairs = pairs(expected), pairs(predicted)
    tp = len(true_pairs & found_pairs)
    precision = tp / len(found_pairs) if found_pairs else 1.0
    recall = tp / len(true_pairs) if true_pairs else 1.0
    briefs = {s for s in truth if "/brief-" in s}
    merged_briefs = sorted({s for p in found_pairs - true_pairs for s in p if s in briefs})
    texts = {r["source"]: r["text"] for r in records + duplicates}
    checked = [s for s, t in truth.items() if t["body"] is not None]
    exact = [s for s in checked if texts.get(s) == normalize_text(truth[s]["body"])]
    titles = {r["source"]: r["title"] for r in records + duplicates}
    title_ok = [s for s in checked if titles.get(s) == truth[s]["title"]]
    return {
        "documents": len(truth),
        "clusters": len(set(expected.values())),
        "rejected": len(rejected),
        "pairwise_precision": round(precision, 4),
        "pairwise_recall": round(recall, 4),
        "pairwise_f1": round(2 * precision * recall / (precision + recall), 4) if tp else 0.0,
        "distinct_short_articles_merged": len(merged_briefs),
        "exact_body_share": round(len(exact) / len(checked), 4),
        "bodies_checked": len(checked),
        "title_share": round(len(title_ok) / len(checked), 4),
        "not_exact": sorted(set(checked) - set(exact))[:20],
        "seconds": round(summary.seconds, 2),
    }


_TOKEN = re.compile(r"\w+")


def _shingles(text: str) -> Counter[tuple[str, ...]]:
    """The benchmark's 4-gram shingles: runs of word characters (case kept), one shingle for a short text."""
    tokens = _TOKEN.findall(text)
    return Counter(tuple(tokens[i : i + 4]) for i in range(max(len(tokens) - 3, 1)) if tokens[i : i + 4])


def _page_counts(predicted: str, truth: str) -> tuple[int, int, int]:
    """(tp, fp, fn) of one page: shingles in both, only predicted, only in the truth (multisets)."""
    p, t = _shingles(predicted), _shingles(truth)
    tp = sum((p & t).values())
    return tp, sum(p.values()) - tp, sum(t.values()) - tp


def _benchmark_scores(counts: list[tuple[int, int, int]]) -> dict:
    """The article-extraction-benchmark's ``evaluate.py`` averages: precision over the pages with a
    prediction, recall over the pages with a truth; a page with neither false positive nor negative
    scores 1 on both."""

    def ratio(hit: int, miss: int, fp: int, fn: int) -> float:
        return 1.0 if fp == fn == 0 else hit / (hit + miss)

    precisions = [ratio(tp, fp, fp, fn) for tp, fp, fn in counts if tp + fp > 0]
    recalls = [ratio(tp, fn, fp, fn) for tp, fp, fn in counts if tp + fn > 0]
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4)}


def _ours_and_bare(work: Path, config: RunConfig, names: list[str]) -> tuple[dict, dict, dict]:
    """The text of each page of ``work/raw`` by our ``pipeline clean`` (records and duplicates, by source)
    and by a bare ``trafilatura.extract`` of its bytes (by name), and the seconds each took."""
    started = time.perf_counter()
    clean_folder(work / "raw", work / "out", config)
    ours_seconds = time.perf_counter() - started
    rows = read_jsonl(work / "out" / "records.jsonl") + read_jsonl(work / "out" / "duplicates.jsonl")
    started = time.perf_counter()
    bare = {
        name: trafilatura.extract(
            (work / "raw" / name).read_bytes(), deduplicate=False, include_comments=False
        )
        or ""
        for name in names
    }
    seconds = {"pipeline": round(ours_seconds, 2), "trafilatura": round(time.perf_counter() - started, 2)}
    return {r["source"]: r["text"] for r in rows}, bare, seconds


def evaluate_extraction(limit: int | None = None, benchmark: Path = SAMPLE_BENCHMARK) -> dict:
    """Our pipeline vs bare trafilatura on the article-extraction-benchmark pages."""
    truth = json.loads((benchmark / "ground-truth.json").read_text(encoding="utf-8"))
    keys = sorted(truth)[:limit]
    work = Path(tempfile.mkdtemp(prefix="eval-extraction-"))
    try:
        for key in keys:
            html = gzip.decompress((benchmark / "html" / f"{key}.html.gz").read_bytes())
            (work / "raw").mkdir(exist_ok=True)
            (work / "raw" / f"{key}.html").write_bytes(html)
        ours, bare, seconds = _ours_and_bare(
            work, RunConfig(workers=1, chunk_size=50), [f"{k}.html" for k in keys]
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ours = {name.removesuffix(".html"): text for name, text in ours.items()}
    bare = {name.removesuffix(".html"): text for name, text in bare.items()}
    scores: dict = {}
    for name, texts in (("pipeline", ours), ("trafilatura", bare)):
        scores[name] = _benchmark_scores(
            [_page_counts(texts.get(k, ""), truth[k]["articleBody"]) for k in keys]
        )
    scores["pages"] = len(keys)
    scores["seconds"] = seconds
    return scores


def _snippet_counts(text: str, item: dict) -> tuple[int, int, int, int]:
    """(tp, fn, fp, tn) of one page, as trafilatura's ``comparison.py`` counts them."""
    text = " ".join(text.split())
    found_with = sum(1 for snippet in item["with"] if " ".join(snippet.split()) in text)
    found_without = sum(1 for snippet in item["without"] if " ".join(snippet.split()) in text)
    return found_with, len(item["with"]) - found_with, found_without, len(item["without"]) - found_without


def _snippet_scores(counts: list[tuple[int, int, int, int]]) -> dict:
    tp, fn, fp, tn = (sum(c[i] for c in counts) for i in range(4))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "accuracy": round((tp + tn) / (tp + fn + fp + tn), 4),
        "f1": round(2 * precision * recall / (precision + recall), 4),
    }


def evaluate_snippets(limit: int | None = None, source: Path = SAMPLE_SNIPPETS, workers: int = 0) -> dict:
    """Ours vs bare trafilatura on trafilatura's evaluation set (one ``pipeline clean`` of all pages)."""
    work = Path(tempfile.mkdtemp(prefix="eval-snippets-"))
    try:
        items = snippet_pages(source, work / "raw", limit)
        ours, bare, seconds = _ours_and_bare(work, RunConfig(workers=workers), list(items))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    scores: dict = {}
    for label, texts in (("pipeline", ours), ("trafilatura", bare)):
        scores[label] = _snippet_scores(
            [_snippet_counts(texts.get(n, ""), item) for n, item in items.items()]
        )
    scores["pages"] = len(items)
    scores["seconds"] = seconds
    return scores


def main() -> None:
    result = {
        "syndicated": evaluate_syndicated(benchmark=FULL_BENCHMARK),
        "rewrites": evaluate_rewrites(benchmark=FULL_BENCHMARK),
        "text_reuse": evaluate_text_reuse(),
        "extraction": evaluate_extraction(benchmark=FULL_BENCHMARK),
        "snippets": evaluate_snippets(source=FULL_SNIPPETS),
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
