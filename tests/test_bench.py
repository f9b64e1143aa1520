"""Smoke test of the benchmark script on a tiny corpus: it runs and writes its table and JSON.

Not a timing test: the numbers of a tiny run mean nothing and nothing here asserts on them.
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
    result = subprocess.run(
        [sys.executable, "-m", "bench.run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ours (production path)" in result.stdout
    assert "incremental, 5 new against 40, --scan folders" in result.stdout
    latest = json.loads((tmp_path / "results" / "latest.json").read_text())
    assert set(latest["ratios"]) >= {"signatures: ours / datasketch naive (target >= 30)"}
    assert latest["results"]["ours (production path)"]["docs_per_s"] > 0
    # The HTML case ran on 3 pages twice over, both loops and both worker counts, with its ratios.
    assert "html: bare extract(deduplicate=False), 6 pages" in latest["results"]
    assert latest["results"]["html: pipeline clean, 2 worker(s), in-run"]["docs_per_s"] > 0
    html_ratios = {k: v for k, v in latest["ratios"].items() if k.startswith("html:")}
    assert "html: 2 workers / 1 worker (target >= 1.7)" in html_ratios
    assert all(v is not None and v > 0 for v in html_ratios.values())


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
