"""Smoke test of the benchmark script on a tiny corpus: it runs and writes its table and JSON.

Not a timing test: the numbers of a tiny run mean nothing and nothing here asserts on them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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
    }
    result = subprocess.run(
        [sys.executable, "-m", "bench.run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ours (production path)" in result.stdout
    assert "incremental, 5 new against 40" in result.stdout
    latest = json.loads((tmp_path / "results" / "latest.json").read_text())
    assert set(latest["ratios"]) >= {"signatures: ours / datasketch naive (target >= 30)"}
    assert latest["results"]["ours (production path)"]["docs_per_s"] > 0
