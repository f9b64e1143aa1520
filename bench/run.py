"""`make bench`: times our engine against the previous release and the peers on real text; one table.

Every text corpus is ``bench.corpus``'s: real sentences of the articles in ../shared/data by language, real
article lengths, scraped boilerplate, 20% edited syndicated copies. Each corpus's truth (which file copies
which) is kept beside it, as bench/.cache/<name>.truth.json (outside its folder: the pipeline reads the .json
files of the folder it cleans).

Cases (each timed over several runs after a warm-up; the median is reported):

- signatures only, on the dedup keys of 2,000 real-text articles: datasketch's naive loop (one
  ``MinHash.update`` per shingle, default SHA-1 hash: the baseline), datasketch's ``update_batch`` with our
  ``shingle_hash`` (the same signatures as ours, bit for bit), our production path (``key_shingles`` and
  ``packed_signatures`` on chunks of 200 documents, as the workers sign), and rensa's RMinHash (Rust,
  single-threaded) where installed (``pip install rensa``);
- the whole ``pipeline clean`` of 20,000 real-text files as a separate process: ours with 2 workers, the
  previous release (``PREVIOUS_RELEASE``, checked out into a temporary git worktree and run with this
  interpreter, ``PYTHONPATH`` pointing at it) with 2 workers, and ours with 1 worker, interleaved (a
  disturbance of the machine then hits all alike), with peak RSS; then the dedup quality of our output and
  of the previous release's: pairwise precision, recall and F1 of the clusters found against the truth;
- datatrove's MinHash pipeline on the same files, where ``make bench-peers`` installed it (not measured
  otherwise: it needs datatrove[io,processing] and spaCy in their own virtual environment);
- cluster: the same 20,000 files through ``--dask local`` (a ``distributed.LocalCluster`` started by
  the run) with 1 and 2 workers, against the local engine with as many, interleaved; each row also keeps
  the run's stage times from its ``stats.json``, and the outputs must be byte-identical to the local
  engine's (``BENCH_DASK=0`` skips it);
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

Corpora and base outputs are cached under bench/.cache (generated once, deterministically; again when the
sentence pool's source folders change). Results go to bench/results/<time>.json and
bench/results/latest.json. Sizes can be shrunk for a smoke run with ``BENCH_PIPELINE=N BENCH_SMALL=N
BENCH_LARGE=N BENCH_NEW=N BENCH_RUNS=N BENCH_SIGNATURE_DOCS=N``; the HTML case with ``BENCH_HTML_PAGES=N``
(0: all), ``BENCH_HTML_COPIES=N``, ``BENCH_HTML_SOURCE=folder`` (``BENCH_HTML=0`` skips it). The previous
release is ``BENCH_PREVIOUS=<commit>`` (``0`` skips it). The sentence pool is read from
``BENCH_TEXT_BENCHMARK`` (an article-extraction-benchmark folder: ground-truth.json and html/) and
``BENCH_TEXT_EVALUATION`` (trafilatura's evaluation set; may be missing).
"""

from __future__ import annotations

import compileall
import functools
import gzip
import itertools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import trafilatura
from datasketch import MinHash

import bench.corpus
from pipeline.extract import TRAFILATURA_OPTIONS
from pipeline.normalize import dedup_key
from pipeline.run import OUTPUT_FILES
from pipeline.signature import (
    MinHashConfig,
    Signer,
    key_shingles,
    shingle_hash,
    shingle_hashes,
    shingles,
)

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
CACHE = Path(os.environ.get("BENCH_CACHE", ROOT / ".cache")).resolve()
RESULTS = Path(os.environ.get("BENCH_RESULTS", ROOT / "results"))
PIPELINE_DOCS = int(os.environ.get("BENCH_PIPELINE", 20_000))
SMALL = int(os.environ.get("BENCH_SMALL", 2_000))
LARGE = int(os.environ.get("BENCH_LARGE", 200_000))
NEW = int(os.environ.get("BENCH_NEW", 1_000))
RUNS = int(os.environ.get("BENCH_RUNS", 3))
SIGNATURE_DOCS = int(os.environ.get("BENCH_SIGNATURE_DOCS", 2_000))
# The commit before the real-text work: the release the pipeline case compares against.
PREVIOUS_RELEASE = "f5c6fbd"
PREVIOUS = os.environ.get("BENCH_PREVIOUS", PREVIOUS_RELEASE)
TEXT_BENCHMARK = Path(os.environ.get("BENCH_TEXT_BENCHMARK", bench.corpus.ARTICLE_BENCHMARK)).resolve()
TEXT_EVALUATION = Path(os.environ.get("BENCH_TEXT_EVALUATION", bench.corpus.TRAFILATURA_EVAL)).resolve()
HTML = os.environ.get("BENCH_HTML", "1") != "0"
HTML_SOURCE = Path(
    os.environ.get("BENCH_HTML_SOURCE", ROOT.parents[1] / "shared" / "data" / "article-extraction-benchmark")
)
HTML_PAGES = int(os.environ.get("BENCH_HTML_PAGES", 0))  # 0: every page
HTML_COPIES = int(os.environ.get("BENCH_HTML_COPIES", 5))
TARGET = re.compile(r"\(target ([<>]=) ([\d.,]+)(?: MB)?\)")


def timed(fn: Callable[[], object], runs: int = RUNS) -> float:
    """Median seconds of ``runs`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@functools.cache
def text_pool() -> dict:
    """The sentence pool of ``TEXT_BENCHMARK`` and ``TEXT_EVALUATION`` (built once, cached in CACHE)."""
    if not (TEXT_BENCHMARK / "ground-truth.json").exists():
        raise SystemExit(
            f"bench: no {TEXT_BENCHMARK}/ground-truth.json to build the real-text corpus from "
            "(BENCH_TEXT_BENCHMARK names an article-extraction-benchmark folder)"
        )
    return bench.corpus.pool(CACHE, TEXT_BENCHMARK, TEXT_EVALUATION)


def generate(root: Path, count: int, seed: int, start: int = 0) -> tuple[int, dict[str, str]]:
    """``bench.corpus.generate`` from :func:`text_pool`."""
    return bench.corpus.generate(root, count, seed=seed, start=start, sentences=text_pool())


def describe(folder: Path, clusters: dict[str, str], written: int) -> dict:
    """Files, MB, median file size, the languages' shares of the files and the copies' share."""
    sizes = [(folder / path).stat().st_size for path in clusters]
    # Files are <language>-site<n>/<number>.txt.
    languages = Counter(path.split("/")[0].rsplit("-site", 1)[0] for path in clusters)
    copies = sum(1 for path, cluster in clusters.items() if path != cluster)
    return {
        "files": len(clusters),
        "mb": round(written / 1e6, 1),
        "median_file_bytes": int(statistics.median(sizes)) if sizes else 0,
        "languages": {lang: round(n / len(clusters), 3) for lang, n in languages.most_common()},
        "copies_share": round(copies / len(clusters), 3) if clusters else 0.0,
    }


def corpus(name: str, count: int, seed: int) -> tuple[Path, dict]:
    """A cached real-text corpus: its folder and ``{"bytes", "description", "clusters", ...}`` (the truth,
    stored in CACHE/<name>.truth.json)."""
    folder = CACHE / name
    truth = CACHE / f"{name}.truth.json"
    wanted = {"pool": text_pool()["key"], "count": count, "seed": seed}
    if truth.exists():
        stored = json.loads(truth.read_text(encoding="utf-8"))
        if {k: stored.get(k) for k in wanted} == wanted and folder.is_dir():
            return folder, stored
    shutil.rmtree(folder, ignore_errors=True)
    written, clusters = generate(folder, count, seed=seed)
    stored = {
        **wanted,
        "bytes": written,
        "description": describe(folder, clusters, written),
        "clusters": clusters,
    }
    truth.write_text(json.dumps(stored, ensure_ascii=False), encoding="utf-8")
    return folder, stored


def run_process(args: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB, the largest process of the run) of a command."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True, cwd=cwd, env=env
    )
    seconds, rss_kb, code = out.stdout.split()
    if code != "0":
        raise RuntimeError(f"{args} exited {code}")
    return float(seconds), int(rss_kb) // 1024


def clean(
    input_dir: Path,
    out: Path,
    workers: int,
    rebuild: bool = True,
    extra: tuple[str, ...] = (),
    release: Path | None = None,
) -> tuple[float, int]:
    """``pipeline clean`` as its own process, without the reports (they cover the whole history, so
    they are not part of what a run's new documents cost; not measured here). ``release``: a worktree of
    another version to run instead of ours (from there, with ``PYTHONPATH`` at it: it wins over the
    editable install of ours)."""
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
    if release is None:
        return run_process(args + (["--rebuild"] if rebuild else []))
    env = {**os.environ, "PYTHONPATH": str(release)}
    return run_process(args + (["--rebuild"] if rebuild else []), cwd=release, env=env)


def compile_bytecode(tree: Path) -> None:
    """Byte-compile a tree's packages, as a first run writes them for its user: a process that finds no
    ``.pyc`` compiles every module of ours again (about 0.07 s, and always where ``PYTHONDONTWRITEBYTECODE``
    is set, as on this project's machines). Done for ours and the previous release alike."""
    for package in ("pipeline", "flows"):
        if (tree / package).is_dir():
            compileall.compile_dir(tree / package, quiet=1)


@contextmanager
def previous_release() -> Iterator[Path | None]:
    """A temporary git worktree of ``PREVIOUS`` (None when ``BENCH_PREVIOUS=0``), removed afterwards."""
    if PREVIOUS == "0":
        yield None
        return
    parent = Path(tempfile.mkdtemp(prefix="bench-previous-"))
    tree = parent / "tree"
    try:
        added = subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(tree), PREVIOUS],
            capture_output=True,
            text=True,
        )
        if added.returncode != 0:
            raise RuntimeError(f"no worktree of the previous release {PREVIOUS}: {added.stderr.strip()}")
        # The worktree's package, not ours, must be the one that runs.
        found = subprocess.run(
            [sys.executable, "-c", "import pipeline; print(pipeline.__file__)"],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not Path(found).resolve().is_relative_to(tree.resolve()):
            raise RuntimeError(f"the previous release's process imports {found}, not the worktree's")
        compile_bytecode(tree)
        yield tree
    finally:
        if tree.exists():
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )
        shutil.rmtree(parent, ignore_errors=True)


def previous_commit() -> str | None:
    """``PREVIOUS`` as a full commit hash (None when skipped or unknown)."""
    if PREVIOUS == "0":
        return None
    found = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{PREVIOUS}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() or None


def signatures() -> dict[str, dict]:
    folder, _ = corpus(f"articles-{SIGNATURE_DOCS}", SIGNATURE_DOCS, seed=11)
    texts = [p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.txt"))]
    keys = [dedup_key(t) for t in texts]
    tokens = [key.split() for key in keys]
    # Each engine gets its natural input ready-made: our path reads dedup keys; the others read n-grams.
    ngrams = [shingles(t, 5) for t in tokens]
    ngram_strings = [[s.decode("utf-8") for s in n] for n in ngrams]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    config = MinHashConfig()
    signer = Signer(config)

    def production() -> list:
        # As the workers sign: chunks of 200 documents, each one batch (see pipeline.run.sign).
        batches = []
        for i in range(0, len(keys), 200):
            shingle_sets, offsets, _ = key_shingles(keys[i : i + 200], 5)
            batches.append(signer.packed_signatures(shingle_sets, offsets))
        return batches

    cases: dict[str, Callable[[], object]] = {
        "datasketch naive update() loop": lambda: [_naive(n) for n in ngrams],
        "datasketch update_batch(shingle_hash)": lambda: [_batch(n) for n in ngrams],
        "ours (production path)": production,
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


def pairs(clusters: dict[str, str]) -> set[tuple[str, str]]:
    """All unordered pairs of documents that share a cluster label (as tests/evaluate.py scores dedup)."""
    members = defaultdict(list)
    for source, label in clusters.items():
        members[label].append(source)
    return {(a, b) if a < b else (b, a) for m in members.values() for a, b in itertools.combinations(m, 2)}


def _rows(path: Path) -> list[dict]:
    with path.open("rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]


def quality(out: Path, truth: dict[str, str]) -> dict:
    """Pairwise precision, recall and F1 of the clusters an output found against the true ones. A kept
    record is its own cluster, a duplicate is in the cluster of the record its ``duplicate_of`` names;
    documents in neither (rejected) pair with nothing."""
    records = _rows(out / "records.jsonl")
    duplicates = _rows(out / "duplicates.jsonl")
    by_id = {r["id"]: r["source"] for r in records}
    predicted = {r["source"]: r["source"] for r in records}
    predicted.update({d["source"]: by_id[d["duplicate_of"]] for d in duplicates})
    true_pairs, found_pairs = pairs(truth), pairs(predicted)
    hits = len(true_pairs & found_pairs)
    precision = hits / len(found_pairs) if found_pairs else 1.0
    recall = hits / len(true_pairs) if true_pairs else 1.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "true_pairs": len(true_pairs),
        "found_pairs": len(found_pairs),
        "kept": len(records),
        "duplicates": len(duplicates),
        "not_in_output": len(set(truth) - set(predicted)),
    }


def pipeline_runs() -> tuple[dict[str, dict], dict[str, dict]]:
    """Ours with 2 workers, the previous release with 2, ours with 1, interleaved, RUNS times each; then
    the dedup quality of our output and of the previous release's. Returns (results, quality)."""
    folder, stored = corpus(f"pipeline-{PIPELINE_DOCS}", PIPELINE_DOCS, seed=1)
    size = stored["bytes"]
    # In the order they run: (table row, quality line or None, workers, output folder, previous release?)
    plans = [
        ("pipeline clean, 2 worker(s)", "ours, 2 workers", 2, "pipeline-out-2", False),
        (
            f"previous release {PREVIOUS}: pipeline clean, 2 worker(s)",
            f"previous release {PREVIOUS}, 2 workers",
            2,
            "pipeline-out-previous-2",
            True,
        ),
        ("pipeline clean, 1 worker(s)", None, 1, "pipeline-out-1", False),
    ]
    times: dict[str, list[float]] = defaultdict(list)
    peaks: dict[str, list[int]] = defaultdict(list)
    with previous_release() as release:
        if release is None:
            plans = [plan for plan in plans if not plan[4]]
        for _ in range(RUNS):
            for name, _, workers, out, previous in plans:
                seconds, peak = clean(folder, CACHE / out, workers, release=release if previous else None)
                times[name].append(seconds)
                peaks[name].append(peak)
    results = {}
    for name, *_ in plans:
        seconds = statistics.median(times[name])
        results[name] = {
            "docs_per_s": PIPELINE_DOCS / seconds,
            "mb_per_s": size / 1e6 / seconds,
            "seconds": seconds,
            "peak_rss_mb": max(peaks[name]),
            "runs_seconds": [round(t, 2) for t in times[name]],
        }
    scores = {label: quality(CACHE / out, stored["clusters"]) for _, label, _, out, _ in plans if label}
    return results, scores


DASK = os.environ.get("BENCH_DASK", "1") != "0"
STAGES = (
    "load",
    "clean_and_dedup",
    "clusters",
    "write",
    "total",
    "worker_load_seconds",
    "worker_clean_seconds",
)


def dask_runs() -> dict[str, dict]:
    """The pipeline corpus on a Dask LocalCluster of 1 and 2 workers (``--dask local``) against the local
    engine with as many workers, interleaved, RUNS times each; each row also has the run's own stage times
    (``stats.json``, medians), from which README's Scaling section reads its per-million costs."""
    if not DASK:
        print("dask case skipped: BENCH_DASK=0")
        return {}
    folder, stored = corpus(f"pipeline-{PIPELINE_DOCS}", PIPELINE_DOCS, seed=1)
    plans = [
        (f"{engine}, {workers} worker(s)", workers, f"dask-out-{short}-{workers}", extra)
        for workers in (1, 2)
        for engine, short, extra in (
            ("local engine", "engine", ()),
            ("dask local", "dask", ("--dask", "local")),
        )
    ]
    times: dict[str, list[float]] = defaultdict(list)
    stages: dict[str, list[dict]] = defaultdict(list)
    peaks: dict[str, list[int]] = defaultdict(list)
    for _ in range(RUNS):
        for name, workers, out, extra in plans:
            seconds, peak = clean(folder, CACHE / out, workers, extra=extra)
            times[name].append(seconds)
            peaks[name].append(peak)
            stages[name].append(json.loads((CACHE / out / "stats.json").read_text())["timings_seconds"])
    results = {}
    for name, *_ in plans:
        seconds = statistics.median(times[name])
        results[f"cluster case: {name}"] = {
            "docs_per_s": PIPELINE_DOCS / seconds,
            "mb_per_s": stored["bytes"] / 1e6 / seconds,
            "seconds": seconds,
            "peak_rss_mb": max(peaks[name]),
            "runs_seconds": [round(t, 2) for t in times[name]],
            "stages_seconds": {k: statistics.median(s[k] for s in stages[name]) for k in STAGES},
        }
    same = all(
        (CACHE / f"dask-out-dask-{w}" / f).read_bytes() == (CACHE / f"dask-out-engine-{w}" / f).read_bytes()
        for w in (1, 2)
        for f in OUTPUT_FILES
    )
    print(f"cluster case: outputs of --dask local and the local engine byte-identical: {same}")
    if not same:
        raise RuntimeError("a --dask local run differs from the local engine's")
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
    folder, stored = corpus(f"pipeline-{PIPELINE_DOCS}", PIPELINE_DOCS, seed=1)
    size = stored["bytes"]
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


HTML_HEADLINE = (
    "html: ours 1 worker / bare extract(with_metadata=True) per core (target <= 1.0)",
    "html: 2 workers / 1 worker (target >= 1.8)",
)


def html_ratios(results: dict[str, dict]) -> dict[str, float | None]:
    """Time ratios of the HTML case, the headline two first (None when it was skipped)."""

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
        return dict.fromkeys(HTML_HEADLINE)
    metadata_per_core, two_by_one = HTML_HEADLINE
    return {
        # Whole process (start-up, imports, dedup, writing) against the bare loop that reads the same fields.
        metadata_per_core: one / bare_metadata,
        two_by_one: one / two,
        "html: ours 1 worker / bare extract(deduplicate=False)": one / bare,
        "html: ours 1 worker in-run / bare extract(deduplicate=False)": one_in_run / bare,
        "html: ours 1 worker in-run / bare extract, our options": one_in_run / bare_ours,
        "html: ours 1 worker in-run / bare extract(with_metadata=True)": one_in_run / bare_metadata,
        "html: 2 workers / 1 worker, in-run": one_in_run / two_in_run,
    }


def meets(name: str, value: float | None) -> bool | None:
    """Whether a ratio meets the target its name states (None: no target, or not measured)."""
    found = TARGET.search(name)
    if found is None or value is None:
        return None
    target = float(found.group(2).replace(",", ""))
    return value >= target if found.group(1) == ">=" else value <= target


def machine() -> str:
    model = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line), ""
        )
    except OSError:
        pass
    cores = f"{os.cpu_count()} cores" + (f" ({model})" if model else "")
    return f"{platform.machine()}, {cores}, Python {platform.python_version()}"


def main() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    compile_bytecode(REPO)
    # Signatures first: their first call of the compiled kernels fills numba's cache before any timed process.
    signature_results = signatures()
    pipeline_results, scores = pipeline_runs()
    results = {
        **signature_results,
        **pipeline_results,
        **dask_runs(),
        **datatrove(),
        **incremental(),
        **html_runs(),
    }
    corpora = {
        name: json.loads((CACHE / f"{name}.truth.json").read_text(encoding="utf-8"))["description"]
        for name in (
            f"pipeline-{PIPELINE_DOCS}",
            f"articles-{SIGNATURE_DOCS}",
            f"base-{SMALL}",
            f"base-{LARGE}",
        )
    }
    naive = results["datasketch naive update() loop"]["docs_per_s"]
    ours = results["ours (production path)"]["docs_per_s"]
    rensa = results.get("rensa RMinHash (Rust, 1 thread), from tokens", {}).get("docs_per_s")
    rensa_ready = results.get("rensa RMinHash (Rust, 1 thread), n-grams ready-made", {}).get("docs_per_s")
    one = results["pipeline clean, 1 worker(s)"]["seconds"]
    two = results["pipeline clean, 2 worker(s)"]["seconds"]
    previous = results.get(f"previous release {PREVIOUS}: pipeline clean, 2 worker(s)", {}).get("seconds")
    datatrove_case = results.get("datatrove MinHash dedup (4 stages), 2 tasks")
    large_first = results[f"first run, {LARGE} documents, 2 workers"]
    ratios: dict[str, float | None] = {
        "pipeline: ours / previous release, 2 workers (target >= 2.0)": previous / two if previous else None,
        "pipeline: 2 workers / 1 worker (target >= 1.8)": one / two,
        "pipeline: ours 2 workers / datatrove (target >= 25)": datatrove_case["seconds"] / two
        if datatrove_case
        else None,
        f"memory: peak RSS at {LARGE:,} documents (target <= 1024 MB)": large_first["peak_rss_mb"],
    }
    ratios.update(html_ratios(results))
    if "cluster case: dask local, 2 worker(s)" in results:
        ratios["cluster: dask local 2 workers / local engine 2 workers (seconds)"] = (
            results["cluster case: dask local, 2 worker(s)"]["seconds"]
            / results["cluster case: local engine, 2 worker(s)"]["seconds"]
        )
        ratios["cluster: dask local 1 worker / 2 workers (seconds)"] = (
            results["cluster case: dask local, 1 worker(s)"]["seconds"]
            / results["cluster case: dask local, 2 worker(s)"]["seconds"]
        )
    ratios.update(
        {
            "signatures: ours / datasketch naive (target >= 30)": ours / naive,
            "signatures: ours / rensa 1 thread, both from tokens (target >= 1)": ours / rensa
            if rensa
            else None,
            "signatures: ours / rensa 1 thread given ready n-gram strings": ours / rensa_ready
            if rensa_ready
            else None,
        }
    )
    for scan in ("full", "folders"):
        large = results[f"incremental, {NEW} new against {LARGE}, --scan {scan}"]["seconds"]
        small = results[f"incremental, {NEW} new against {SMALL}, --scan {scan}"]["seconds"]
        name = f"incremental --scan {scan}: against {LARGE} / against {SMALL} (target <= 1.5)"
        ratios[name] = large / small
    targets = {name: meets(name, value) for name, value in ratios.items()}
    where = machine()

    print(f"\nmachine: {where}")
    for name, described in corpora.items():
        languages = ", ".join(f"{lang} {share:.0%}" for lang, share in described["languages"].items())
        print(
            f"corpus {name}: {described['files']:,} files, {described['mb']:.1f} MB, median file "
            f"{described['median_file_bytes']:,} bytes, copies {described['copies_share']:.0%}; {languages}"
        )
    print(f"\n{'case':62s} {'docs/s':>10s} {'MB/s':>7s} {'seconds':>8s} {'peak MB':>8s}")
    for name, row in results.items():
        mb = f"{row['mb_per_s']:7.1f}" if "mb_per_s" in row else " " * 7
        peak = f"{row['peak_rss_mb']:8d}" if "peak_rss_mb" in row else ""
        print(f"{name:62s} {row['docs_per_s']:10.0f} {mb} {row['seconds']:8.2f} {peak}")
    print(f"\n{'quality (pairwise, against the truth)':62s} {'precision':>10s} {'recall':>7s} {'F1':>8s}")
    for label, score in scores.items():
        print(f"{'dedup: ' + label:62s} {score['precision']:10.4f} {score['recall']:7.4f} {score['f1']:8.4f}")
    print()
    for name, value in ratios.items():
        met = {True: "met", False: "MISSED", None: ""}[targets[name]]
        shown = f"{value:8.2f}" if value is not None else f"{'n/a':>8s}"
        print(f"{name:82s} {shown} {met}")
    record = {
        "machine": where,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "previous_release": previous_commit(),
        "corpora": corpora,
        "results": results,
        "quality": scores,
        "ratios": ratios,
        "targets_met": targets,
        "sizes": {
            "pipeline": PIPELINE_DOCS,
            "small": SMALL,
            "large": LARGE,
            "new": NEW,
            "runs": RUNS,
            "signature_docs": SIGNATURE_DOCS,
            "html_pages": HTML_PAGES or "all",
            "html_copies": HTML_COPIES,
        },
    }
    text = json.dumps(record, indent=2, ensure_ascii=False)
    (RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(text, encoding="utf-8")
    (RESULTS / "latest.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
