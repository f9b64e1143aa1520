"""`make bench`: times our engine against the peers on generated corpora and prints one table.

Cases (each timed over several runs after a warm-up; the median is reported):

- signatures only, on the dedup tokens of 2,000 generated articles: datasketch's naive loop (one
  ``MinHash.update`` per shingle, default SHA-1 hash: the baseline), datasketch's ``update_batch`` with our
  ``shingle_hash`` (the same signatures as ours, bit for bit), our production path, and rensa's RMinHash
  (Rust, single-threaded) where installed (``pip install rensa``);
- the whole ``pipeline clean`` of 20,000 generated scraped-text files as a separate process, 1 and 2
  workers, with peak RSS;
- datatrove's MinHash pipeline on the same files, where ``make bench-peers`` installed it (not measured
  otherwise: it needs datatrove[io,processing] and spaCy in their own virtual environment);
- incremental: 1,000 new files against an existing output of 2,000 and of 200,000 documents, with
  ``--scan full`` (every input stat-ed) and ``--scan folders`` (only folders whose time changed); the
  added files are removed afterwards, so the base corpora stay as generated;
- memory: peak RSS of the first run over 200,000 documents (run each time, before the incremental runs);
- HTML: the 181 real pages of ../shared/data/article-extraction-benchmark, replicated 5 times into
  subfolders (905 pages; the copies are exact duplicates, as syndicated pages often are, so dedup
  reports 724 exact duplicates), through a bare ``trafilatura.extract`` loop in this process (the
  issue's baseline, default options; again with the options our extraction uses; and with
  ``with_metadata=True``, which reads the title, author and date our records carry) and through the
  whole ``pipeline clean`` as a process, 1 and 2 workers, timed both as a whole process (interpreter
  start-up and imports included) and in-run (``timings_seconds.total`` of its ``stats.json``). Skipped
  with a note when the shared data is missing.

Corpora and base outputs are cached under bench/.cache (generated once, deterministically). Results go
to bench/results/<time>.json and bench/results/latest.json. Sizes can be shrunk for a smoke run with
``BENCH_SMALL=N BENCH_LARGE=N BENCH_RUNS=N``; the HTML case with ``BENCH_HTML_PAGES=N`` (0: all),
``BENCH_HTML_COPIES=N``, ``BENCH_HTML_SOURCE=folder`` (``BENCH_HTML=0`` skips it).
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import trafilatura
from datasketch import MinHash

from bench.corpus import generate
from pipeline.extract import TRAFILATURA_OPTIONS
from pipeline.normalize import dedup_token_bytes
from pipeline.signature import (
    MinHashConfig,
    Signer,
    shingle_hash,
    shingle_hash_sets,
    shingle_hashes,
    shingles,
)

ROOT = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("BENCH_CACHE", ROOT / ".cache"))
RESULTS = Path(os.environ.get("BENCH_RESULTS", ROOT / "results"))
PIPELINE_DOCS = int(os.environ.get("BENCH_PIPELINE", 20_000))
SMALL = int(os.environ.get("BENCH_SMALL", 2_000))
LARGE = int(os.environ.get("BENCH_LARGE", 200_000))
NEW = int(os.environ.get("BENCH_NEW", 1_000))
RUNS = int(os.environ.get("BENCH_RUNS", 3))
SIGNATURE_DOCS = int(os.environ.get("BENCH_SIGNATURE_DOCS", 2_000))
HTML = os.environ.get("BENCH_HTML", "1") != "0"
HTML_SOURCE = Path(
    os.environ.get("BENCH_HTML_SOURCE", ROOT.parents[1] / "shared" / "data" / "article-extraction-benchmark")
)
HTML_PAGES = int(os.environ.get("BENCH_HTML_PAGES", 0))  # 0: every page
HTML_COPIES = int(os.environ.get("BENCH_HTML_COPIES", 5))


def timed(fn: Callable[[], object], runs: int = RUNS) -> float:
    """Median seconds of ``runs`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def corpus(name: str, count: int, seed: int, start: int = 0) -> tuple[Path, int]:
    """A cached generated corpus: (folder, bytes)."""
    folder = CACHE / name
    marker = folder / ".bytes"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        written = generate(folder, count, seed=seed, start=start)
        marker.write_text(str(written))
    return folder, int(marker.read_text())


def run_process(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB, the largest process of the run) of a command."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True)
    seconds, rss_kb, code = out.stdout.split()
    if code != "0":
        raise RuntimeError(f"{args} exited {code}")
    return float(seconds), int(rss_kb) // 1024


def clean(
    input_dir: Path, out: Path, workers: int, rebuild: bool = True, extra: tuple[str, ...] = ()
) -> tuple[float, int]:
    """``pipeline clean`` as its own process, without the reports (they cover the whole history, so
    they are not part of what a run's new documents cost; not measured here)."""
    args = [
        sys.executable,
        "-m",
        "pipeline",
        "clean",
        str(input_dir),
        "--out",
        str(out),
        "-q",
        "--workers",
        str(workers),
        "--no-report",
        *extra,
    ]
    return run_process(args + (["--rebuild"] if rebuild else []))


def signatures() -> dict[str, dict]:
    folder, _ = corpus(f"articles-{SIGNATURE_DOCS}", SIGNATURE_DOCS, seed=11)
    texts = [p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.txt"))]
    tokens = [dedup_token_bytes(t) for t in texts]
    # Each engine gets its natural input ready-made: our path reads tokens; the others read n-grams.
    ngrams = [shingles(t, 5) for t in tokens]
    ngram_strings = [[s.decode("utf-8") for s in n] for n in ngrams]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    config = MinHashConfig()
    signer = Signer(config)
    cases: dict[str, Callable[[], object]] = {
        "datasketch naive update() loop": lambda: [_naive(n) for n in ngrams],
        "datasketch update_batch(shingle_hash)": lambda: [_batch(n) for n in ngrams],
        # As the workers sign: chunks of 200 documents, each a batch (see run.sign).
        "ours (production path)": lambda: [
            signer.signatures(shingle_hash_sets(tokens[i : i + 200], 5)) for i in range(0, len(tokens), 200)
        ],
        "ours, one document at a time": lambda: [signer.signature(shingle_hashes(t, 5)) for t in tokens],
    }
    try:
        import rensa

        cases["rensa RMinHash (Rust, 1 thread), n-grams ready-made"] = lambda: [
            _rensa(rensa, n) for n in ngram_strings
        ]
        cases["rensa RMinHash (Rust, 1 thread), from tokens"] = lambda: [
            _rensa(rensa, [s.decode("utf-8") for s in shingles(t, 5)]) for t in tokens
        ]
    except ImportError:
        pass
    results = {}
    for name, fn in cases.items():
        runs = 1 if "naive" in name or "update_batch" in name else RUNS
        seconds = timed(fn, runs)
        results[name] = {
            "docs_per_s": len(texts) / seconds,
            "mb_per_s": megabytes / seconds,
            "seconds": seconds,
        }
    return results


def _naive(ngrams: list[bytes]) -> MinHash:
    minhash = MinHash(num_perm=128)
    for shingle in ngrams:
        minhash.update(shingle)
    return minhash


def _batch(ngrams: list[bytes]) -> MinHash:
    minhash = MinHash(num_perm=128, seed=1, scheme="affine32", hashfunc=shingle_hash)
    minhash.update_batch(ngrams)
    return minhash


def _rensa(rensa, ngrams: list[str]):  # type: ignore[no-untyped-def]
    minhash = rensa.RMinHash(num_perm=128, seed=1)
    minhash.update(ngrams)
    return minhash.digest()


def pipeline_runs() -> dict[str, dict]:
    """1 and 2 workers, interleaved (a disturbance of the machine then hits both alike), RUNS times each."""
    folder, size = corpus(f"pipeline-{PIPELINE_DOCS}", PIPELINE_DOCS, seed=1)
    times: dict[int, list[float]] = {1: [], 2: []}
    peaks: dict[int, list[int]] = {1: [], 2: []}
    for _ in range(RUNS):
        for workers in (1, 2):
            seconds, peak = clean(folder, CACHE / f"pipeline-out-{workers}", workers)
            times[workers].append(seconds)
            peaks[workers].append(peak)
    results = {}
    for workers in (1, 2):
        seconds = statistics.median(times[workers])
        results[f"pipeline clean, {workers} worker(s)"] = {
            "docs_per_s": PIPELINE_DOCS / seconds,
            "mb_per_s": size / 1e6 / seconds,
            "seconds": seconds,
            "peak_rss_mb": max(peaks[workers]),
            "runs_seconds": [round(t, 2) for t in times[workers]],
        }
    return results


def incremental() -> dict[str, dict]:
    """First runs over SMALL and LARGE documents (the LARGE one is the memory case), then runs that each
    add NEW files, with both scan modes: ``full`` stats every input, ``folders`` only changed folders."""
    results = {}
    for size in (SMALL, LARGE):
        base, _ = corpus(f"base-{size}", size, seed=3)
        for leftover in base.glob("new-*"):  # files added by an earlier bench's incremental runs
            shutil.rmtree(leftover)
        out = CACHE / f"base-{size}-out"
        seconds, peak = clean(base, out, workers=2)
        results[f"first run, {size} documents, 2 workers"] = {
            "docs_per_s": size / seconds,
            "seconds": seconds,
            "peak_rss_mb": peak,
        }
        for scan in ("full", "folders"):
            times = []
            for _ in range(RUNS):
                # Each timed run adds NEW files the index has not seen (numbered after everything so far).
                start = size + 10_000_000 + int(time.time() * 1000) % 1_000_000 * NEW
                generate(base / f"new-{start}", NEW, seed=start % 2**31, start=start)
                seconds, peak = clean(base, out, workers=2, rebuild=False, extra=("--scan", scan))
                times.append(seconds)
            results[f"incremental, {NEW} new against {size}, --scan {scan}"] = {
                "seconds": statistics.median(times),
                "peak_rss_mb": peak,
                "docs_per_s": NEW / statistics.median(times),
            }
        for added in base.glob("new-*"):
            shutil.rmtree(added)
    return results


def datatrove() -> dict[str, dict]:
    python = ROOT / ".venv-peers" / "bin" / "python"
    if not python.exists():
        return {}
    folder, size = corpus(f"pipeline-{PIPELINE_DOCS}", PIPELINE_DOCS, seed=1)
    work = CACHE / "datatrove-work"
    shutil.rmtree(work, ignore_errors=True)
    script = str(ROOT / "datatrove_minhash.py")
    subprocess.run([str(python), script, "prepare", str(folder), str(work)], check=True)  # not timed
    seconds, peak = run_process([str(python), script, "run", str(work)])
    return {
        "datatrove MinHash dedup (4 stages), 2 tasks": {
            "docs_per_s": PIPELINE_DOCS / seconds,
            "mb_per_s": size / 1e6 / seconds,
            "seconds": seconds,
            "peak_rss_mb": peak,
        }
    }


def html_pages() -> Path | None:
    """The benchmark's pages decompressed once into bench/.cache/html-<n>/<id>.html; None without them."""
    pages = sorted((HTML_SOURCE / "html").glob("*.html.gz"))[: HTML_PAGES or None]
    if not pages:
        return None
    folder = CACHE / f"html-{len(pages)}"
    marker = folder / ".source"
    if not marker.exists() or marker.read_text() != str(HTML_SOURCE):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for page in pages:
            (folder / page.name.removesuffix(".gz")).write_bytes(gzip.decompress(page.read_bytes()))
        marker.write_text(str(HTML_SOURCE))
    return folder


def html_copies(pages: Path) -> Path:
    """``HTML_COPIES`` copies of the pages, one subfolder each (hard links where the file system allows)."""
    folder = CACHE / f"{pages.name}x{HTML_COPIES}"
    marker = folder / ".source"
    if not marker.exists() or marker.read_text() != str(HTML_SOURCE):
        shutil.rmtree(folder, ignore_errors=True)
        for copy in range(HTML_COPIES):
            target = folder / f"copy-{copy}"
            target.mkdir(parents=True)
            for page in sorted(pages.glob("*.html")):
                try:
                    os.link(page, target / page.name)
                except OSError:
                    shutil.copyfile(page, target / page.name)
        marker.write_text(str(HTML_SOURCE))
    return folder


def _bare_loop(files: list[Path], options: dict[str, object]) -> None:
    for path in files:
        trafilatura.extract(path.read_text(encoding="utf-8"), **options)


def html_runs() -> dict[str, dict]:
    """Bare ``trafilatura.extract`` loops in this process vs the whole ``pipeline clean`` on real pages."""
    pages = html_pages() if HTML else None
    if pages is None:
        print(f"html case skipped: {'BENCH_HTML=0' if not HTML else f'no pages under {HTML_SOURCE}/html'}")
        return {}
    folder = html_copies(pages)
    files = sorted(folder.rglob("*.html"))
    count, size = len(files), sum(p.stat().st_size for p in files)
    runs = max(1, RUNS - 1)
    # Our options minus the metadata switch: bare ``extract`` returns text only, so it reads no metadata.
    ours = {k: v for k, v in TRAFILATURA_OPTIONS.items() if k != "with_metadata"}
    loops = {
        "html: bare extract(deduplicate=False)": {"deduplicate": False},
        "html: bare extract, our options": ours,
        # The fields our records carry (title, author, date, URL, host) cost trafilatura this much more.
        "html: bare extract(with_metadata=True)": {"deduplicate": False, "with_metadata": True},
    }
    results = {}
    for name, options in loops.items():
        _bare_loop(files[:20], options)  # warm-up: imports, lazily built tables
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            _bare_loop(files, options)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        results[f"{name}, {count} pages"] = {
            "docs_per_s": count / seconds,
            "mb_per_s": size / 1e6 / seconds,
            "seconds": seconds,
        }
    for workers in (1, 2):
        out = CACHE / f"html-out-{workers}"
        times, in_run, peaks = [], [], []
        for _ in range(runs):
            seconds, peak = clean(folder, out, workers)
            stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
            times.append(seconds)
            in_run.append(stats["timings_seconds"]["total"])
            peaks.append(peak)
        for label, values in (("whole process", times), ("in-run", in_run)):
            seconds = statistics.median(values)
            row = {"docs_per_s": count / seconds, "mb_per_s": size / 1e6 / seconds, "seconds": seconds}
            if label == "whole process":
                row["peak_rss_mb"] = max(peaks)
            results[f"html: pipeline clean, {workers} worker(s), {label}"] = row
    return results


def html_ratios(results: dict[str, dict]) -> dict[str, float | None]:
    """Time ratios of the HTML case (None when it was skipped)."""

    def seconds(prefix: str) -> float | None:
        return next((row["seconds"] for name, row in results.items() if name.startswith(prefix)), None)

    bare = seconds("html: bare extract(deduplicate=False)")
    bare_ours = seconds("html: bare extract, our options")
    bare_metadata = seconds("html: bare extract(with_metadata=True)")
    one = seconds("html: pipeline clean, 1 worker(s), whole process")
    one_in_run = seconds("html: pipeline clean, 1 worker(s), in-run")
    two = seconds("html: pipeline clean, 2 worker(s), whole process")
    two_in_run = seconds("html: pipeline clean, 2 worker(s), in-run")
    if not (bare and bare_ours and bare_metadata and one and one_in_run and two and two_in_run):
        return dict.fromkeys(
            (
                "html: ours 1 worker / bare trafilatura per core (target <= 1.10)",
                "html: 2 workers / 1 worker (target >= 1.7)",
            )
        )
    return {
        "html: ours 1 worker / bare trafilatura per core (target <= 1.10)": one / bare,
        "html: ours 1 worker in-run / bare trafilatura": one_in_run / bare,
        "html: ours 1 worker in-run / bare trafilatura, our options": one_in_run / bare_ours,
        "html: ours 1 worker in-run / bare extract with metadata (same fields)": one_in_run / bare_metadata,
        "html: 2 workers / 1 worker (target >= 1.7)": one / two,
        "html: 2 workers / 1 worker, in-run": one_in_run / two_in_run,
    }


def main() -> None:
    CACHE.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    results = {**signatures(), **pipeline_runs(), **datatrove(), **incremental(), **html_runs()}
    naive = results["datasketch naive update() loop"]["docs_per_s"]
    ours = results["ours (production path)"]["docs_per_s"]
    rensa = results.get("rensa RMinHash (Rust, 1 thread), from tokens", {}).get("docs_per_s")
    rensa_ready = results.get("rensa RMinHash (Rust, 1 thread), n-grams ready-made", {}).get("docs_per_s")
    one = results["pipeline clean, 1 worker(s)"]["docs_per_s"]
    two = results["pipeline clean, 2 worker(s)"]["docs_per_s"]
    ratios = {
        "signatures: ours / datasketch naive (target >= 30)": ours / naive,
        "signatures: ours / rensa 1 thread, both from tokens (target >= 1)": ours / rensa if rensa else None,
        "signatures: ours / rensa 1 thread given ready n-gram strings": ours / rensa_ready
        if rensa_ready
        else None,
        "pipeline: 2 workers / 1 worker (target >= 1.7)": two / one,
    }
    for scan in ("full", "folders"):
        large = results[f"incremental, {NEW} new against {LARGE}, --scan {scan}"]["seconds"]
        small = results[f"incremental, {NEW} new against {SMALL}, --scan {scan}"]["seconds"]
        name = f"incremental --scan {scan}: against {LARGE} / against {SMALL} (target <= 1.5)"
        ratios[name] = large / small
    ratios.update(html_ratios(results))
    datatrove_case = results.get("datatrove MinHash dedup (4 stages), 2 tasks")
    if datatrove_case:
        ratios["pipeline 2 workers / datatrove"] = two / datatrove_case["docs_per_s"]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"\n{'case':58s} {'docs/s':>10s} {'MB/s':>7s} {'seconds':>8s} {'peak MB':>8s}")
    for name, row in results.items():
        mb = f"{row['mb_per_s']:7.1f}" if "mb_per_s" in row else " " * 7
        peak = f"{row['peak_rss_mb']:8d}" if "peak_rss_mb" in row else ""
        print(f"{name:58s} {row['docs_per_s']:10.0f} {mb} {row['seconds']:8.2f} {peak}")
    print()
    for name, value in ratios.items():
        print(f"{name:70s} {value:8.2f}" if value is not None else f"{name:70s} {'n/a':>8s}")
    print(f"\nmachine: {machine}")
    record = {
        "machine": machine,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "results": results,
        "ratios": ratios,
        "sizes": {
            "pipeline": PIPELINE_DOCS,
            "small": SMALL,
            "large": LARGE,
            "new": NEW,
            "runs": RUNS,
            "html_pages": HTML_PAGES or "all",
            "html_copies": HTML_COPIES,
        },
    }
    text = json.dumps(record, indent=2)
    (RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(text)
    (RESULTS / "latest.json").write_text(text)


if __name__ == "__main__":
    main()
