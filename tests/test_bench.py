"""Smoke test of the benchmark script on a tiny corpus: it runs and writes its table and JSON.

Not a timing test: the numbers of a tiny run mean nothing and nothing here asserts on them. The real-text
corpus's sentences come from the 80-page sample in tests/data (English and Russian have enough text), so
the test does not need ../shared/data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = REPO / "tests" / "data" / "article-extraction-benchmark"  # a sample kept in the repo


def test_bench_runs_on_a_tiny_corpus(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BENCH_CACHE": str(tmp_path / "cache"),
        "BENCH_RESULTS": str(tmp_path / "results"),
        "BENCH_TEXT_BENCHMARK": str(PAGES),
        "BENCH_TEXT_EVALUATION": str(tmp_path / "missing"),
        "BENCH_PIPELINE": "60",
        "BENCH_SMALL": "20",
        "BENCH_LARGE": "40",
        "BENCH_NEW": "5",
        "BENCH_RUNS": "1",
        "BENCH_SIGNATURE_DOCS": "30",
        "BENCH_HTML_SOURCE": str(PAGES),
        "BENCH_HTML_PAGES": "3",
        "BENCH_HTML_COPIES": "2",
    }
    env.pop("BENCH_PREVIOUS", None)  # the previous release runs too, from its temporary worktree
    result = subprocess.run(
        [sys.executable, "-m", "bench.run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ours (production path)" in result.stdout
    assert "incremental, 5 new against 40, --scan folders" in result.stdout
    assert "machine: " in result.stdout
    assert "corpus pipeline-60: 60 files" in result.stdout
    latest = json.loads((tmp_path / "results" / "latest.json").read_text())
    assert latest["results"]["ours (production path)"]["docs_per_s"] > 0
    # The corpus is real text from the sample's languages, with copies, and its truth beside it.
    described = latest["corpora"]["pipeline-60"]
    assert described["files"] == 60 and 0 < described["copies_share"] < 1
    assert set(described["languages"]) <= {"en", "ru"} and described["languages"]
    truth = json.loads((tmp_path / "cache" / "pipeline-60.truth.json").read_text())
    assert len(truth["clusters"]) == 60
    # The previous release ran beside ours, and both outputs were scored against the truth.
    previous = "previous release f5c6fbd: pipeline clean, 2 worker(s)"
    assert latest["results"][previous]["docs_per_s"] > 0
    assert latest["previous_release"].startswith("f5c6fbd")
    assert set(latest["quality"]) == {"ours, 2 workers", "previous release f5c6fbd, 2 workers"}
    for score in latest["quality"].values():
        assert 0 <= score["precision"] <= 1 and 0 <= score["recall"] <= 1 and score["true_pairs"] > 0
    ratios = latest["ratios"]
    for name in (
        "pipeline: ours / previous release, 2 workers (target >= 2.0)",
        "pipeline: 2 workers / 1 worker (target >= 1.8)",
        "memory: peak RSS at 40 documents (target <= 1024 MB)",
        "html: ours 1 worker / bare extract(with_metadata=True) per core (target <= 1.0)",
        "html: 2 workers / 1 worker (target >= 1.8)",
        "signatures: ours / datasketch naive (target >= 30)",
    ):
        assert ratios[name] is not None and ratios[name] > 0, name
        assert latest["targets_met"][name] in (True, False), name
    # datatrove's ratio is there, n/a unless `make bench-peers` installed it.
    assert "pipeline: ours 2 workers / datatrove (target >= 25)" in ratios
    # The HTML case ran on 3 pages twice over, both loops and both worker counts, with its ratios.
    assert "html: bare extract(deduplicate=False), 6 pages" in latest["results"]
    assert latest["results"]["html: pipeline clean, 2 worker(s), in-run"]["docs_per_s"] > 0
    html_ratios = {k: v for k, v in ratios.items() if k.startswith("html:")}
    assert all(v is not None and v > 0 for v in html_ratios.values())
    # The temporary worktree is gone.
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=REPO, capture_output=True, text=True).stdout
    assert "bench-previous-" not in worktrees


def test_bench_quality_scores_the_pairs_of_the_clusters_found(tmp_path: Path) -> None:
    """A duplicate joins the cluster of the record it names; rejected documents pair with nothing."""
    from bench import run

    records = [{"id": "1", "source": "a.txt"}, {"id": "2", "source": "c.txt"}]
    duplicates = [{"source": "b.txt", "duplicate_of": "1"}, {"source": "d.txt", "duplicate_of": "1"}]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "duplicates.jsonl").write_text("".join(json.dumps(d) + "\n" for d in duplicates))
    # Truth: {a, b} and {c, d, e} (e was rejected). Found: {a, b, d}, {c}.
    truth = {"a.txt": "a.txt", "b.txt": "a.txt", "c.txt": "c.txt", "d.txt": "c.txt", "e.txt": "c.txt"}
    score = run.quality(tmp_path, truth)
    assert (score["true_pairs"], score["found_pairs"]) == (4, 3)
    assert score["precision"] == pytest.approx(1 / 3) and score["recall"] == pytest.approx(1 / 4)
    assert score["not_in_output"] == 1


def test_bench_html_case_without_pages_is_skipped_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ../shared/data the HTML case prints a note; its ratios are n/a, nothing fails."""
    from bench import run

    monkeypatch.setattr(run, "HTML_SOURCE", tmp_path / "missing")
    monkeypatch.setattr(run, "CACHE", tmp_path / "cache")
    assert run.html_runs() == {}
    assert "html case skipped: no pages under" in capsys.readouterr().out
    assert set(run.html_ratios({}).values()) == {None}
