"""Quality evaluations on real data (``make eval``); the quality gate tests call the same functions.

- dedup: pairwise precision/recall/F1 of the clusters on ``corpus.syndicated_corpus``, and how many
  distinct short articles were merged;
- cleanup: share of scraped text files whose clean ``text`` equals the expected body exactly;
- extraction: word 4-gram precision/recall/F1 of our ``text`` on the article-extraction-benchmark pages,
  against a bare ``trafilatura.extract`` loop (the benchmark's own metric).
"""

from __future__ import annotations

import gzip
import itertools
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import trafilatura

from pipeline.contract import read_jsonl
from pipeline.normalize import normalize_text
from pipeline.run import RunConfig, clean_folder
from tests.corpus import FULL_BENCHMARK, SAMPLE_BENCHMARK, syndicated_corpus


def pairs(clusters: dict[str, str]) -> set[tuple[str, str]]:
    """All unordered pairs of sources that share a cluster label."""
    members = defaultdict(list)
    for source, label in clusters.items():
        members[label].append(source)
    return {tuple(sorted(p)) for m in members.values() for p in itertools.combinations(m, 2)}  # type: ignore[misc]


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


def _shingles(text: str) -> list[tuple[str, ...]]:
    words = text.lower().split()
    return [tuple(words[i : i + 4]) for i in range(max(len(words) - 3, 1))] if words else []


def _precision_recall(predicted: str, truth: str) -> tuple[float, float]:
    """The article-extraction-benchmark metric: 4-gram multiset overlap, per page."""
    from collections import Counter

    p, t = Counter(_shingles(predicted)), Counter(_shingles(truth))
    overlap = sum((p & t).values())
    precision = overlap / sum(p.values()) if p else (1.0 if not t else 0.0)
    recall = overlap / sum(t.values()) if t else 1.0
    return precision, recall


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
        started = time.perf_counter()
        clean_folder(work / "raw", work / "out", RunConfig(workers=1, chunk_size=50))
        ours_seconds = time.perf_counter() - started
        rows = read_jsonl(work / "out" / "records.jsonl") + read_jsonl(work / "out" / "duplicates.jsonl")
        ours = {r["source"].removesuffix(".html"): r["text"] for r in rows}
        started = time.perf_counter()
        bare = {}
        for key in keys:
            page = (work / "raw" / f"{key}.html").read_text(encoding="utf-8", errors="replace")
            bare[key] = trafilatura.extract(page, deduplicate=False, include_comments=False) or ""
        bare_seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    scores = {}
    for name, texts in (("pipeline", ours), ("trafilatura", bare)):
        prs = [_precision_recall(texts.get(k, ""), truth[k]["articleBody"]) for k in keys]
        p = sum(x for x, _ in prs) / len(prs)
        r = sum(y for _, y in prs) / len(prs)
        scores[name] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4)}
    scores["pages"] = len(keys)
    scores["seconds"] = {"pipeline": round(ours_seconds, 2), "trafilatura": round(bare_seconds, 2)}
    return scores


def main() -> None:
    result = {
        "syndicated": evaluate_syndicated(benchmark=FULL_BENCHMARK),
        "extraction": evaluate_extraction(benchmark=FULL_BENCHMARK),
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
