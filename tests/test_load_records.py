"""A record is the unit of failure, and multi-record files are streamed in bounded memory (issue 9, item 5).

Whatever goes wrong with one record of a JSON lines file or a JSON array (nesting 100,000 deep, a field of the
wrong type, a bug of ours in the loader or a later stage) rejects that record alone; every other record comes
out. A worker holds one batch of a file's records at a time: its peak memory does not grow with their number
(checked on real worker processes). The loaders never raise on random bytes (hypothesis).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import load, run
from pipeline.contract import LOAD_REASONS, REASONS, Document, Rejection, read_jsonl, validate_output
from pipeline.load import load_file
from pipeline.run import RunConfig, clean_folder
from pipeline.signature import _fmix32
from tests.corpus import benchmark_articles

ROOT = Path(__file__).resolve().parents[1]
DEEP = 100_000


@pytest.fixture(scope="module")
def bodies() -> list[str]:
    """Real article bodies, distinct enough that dedup keeps each."""
    return [article.body for article in benchmark_articles(6)]


def loaded(path: Path) -> list[tuple[str, str, str]]:
    """(kind, source, reason or first words) of everything ``load_file`` yields for ``path``."""
    return [
        ("rejection", item.source, item.reason)
        if isinstance(item, Rejection)
        else ("document", item.source, item.body[:12])
        for item in load_file(path, path.parent)
    ]


def deep(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


# ---------------------------------------------------------------------------------------------------
# A record is the unit of failure


def test_a_line_nested_100000_deep_rejects_that_line_only_in_a_whole_run(tmp_path: Path, bodies) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    lines = [
        json.dumps({"text": bodies[0]}),
        deep(),
        json.dumps({"text": bodies[1]}),
        json.dumps({"text": bodies[2]}),
    ]
    (raw / "export.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (raw / "other.txt").write_text(bodies[3], encoding="utf-8")  # two files: two chunks, real workers

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "clean",
            str(raw),
            "--out",
            str(out),
            "--workers",
            "2",
            "--no-report",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    validate_output(out)
    assert sorted(r["source"] for r in read_jsonl(out / "records.jsonl")) == [
        "export.jsonl#1",
        "export.jsonl#3",
        "export.jsonl#4",
        "other.txt",
    ]
    [rejected] = read_jsonl(out / "rejected.jsonl")
    assert (rejected["source"], rejected["reason"]) == ("export.jsonl#2", "parse_error")
    assert "depth" in rejected["detail"]


def test_an_array_item_nested_100000_deep_rejects_that_item_only(tmp_path: Path) -> None:
    items = ['{"text": "one"}', deep(), '{"text": "three"}', '{"text": "four"}']
    (tmp_path / "dump.json").write_text("[" + ", ".join(items) + "]")

    assert loaded(tmp_path / "dump.json") == [
        ("document", "dump.json#1", "one"),
        ("rejection", "dump.json#2", "parse_error"),
        ("document", "dump.json#3", "three"),
        ("document", "dump.json#4", "four"),
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_deep_but_parseable_fields_cost_nothing_and_wrong_types_cost_their_record(
    tmp_path: Path, suffix: str
) -> None:
    # 900 levels parse (under orjson's 1,024); reading such a field as text must not recurse into it.
    nested_author = "[" * 900 + '"x"' + "]" * 900
    records = [
        '{"text": "one", "author": ' + nested_author + "}",
        '{"text": {"not": "text"}}',
        '{"text": ["a paragraph", {"text": "another"}, ' + deep(500) + "]}",
        '{"text": 5}',
        '{"text": "five", "title": 12, "url": ["https://a.example/", null], "date": {"value": 2024}}',
    ]
    data = "\n".join(records) if suffix == ".jsonl" else "[" + ",\n".join(records) + "]"
    (tmp_path / f"mixed{suffix}").write_text(data)

    items = list(load_file(tmp_path / f"mixed{suffix}", tmp_path))

    assert [(type(i).__name__, i.source.rsplit("#", 1)[1]) for i in items] == [
        ("Document", "1"),
        ("Rejection", "2"),
        ("Document", "3"),
        ("Rejection", "4"),
        ("Document", "5"),
    ]
    assert items[0].author is None  # too deep to be read as a name
    assert items[2].body == "a paragraph\n\nanother"
    assert (items[4].title, items[4].url, items[4].date) == ("12", "https://a.example/", "2024")
    assert {items[1].reason, items[3].reason} == {"parse_error"}


def test_a_bug_of_ours_on_one_record_rejects_that_record_only(tmp_path: Path, monkeypatch) -> None:
    real = load.document_from_json

    def buggy(item, source):
        if item.get("text") == "boom":
            raise KeyError("simulated bug")
        return real(item, source)

    monkeypatch.setattr(load, "document_from_json", buggy)
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n{"text": "boom"}\n{"text": "three"}\n')
    (tmp_path / "b.json").write_text('[{"text": "one"}, {"text": "boom"}, {"text": "three"}]')

    assert loaded(tmp_path / "a.jsonl") == [
        ("document", "a.jsonl#1", "one"),
        ("rejection", "a.jsonl#2", "internal_error"),
        ("document", "a.jsonl#3", "three"),
    ]
    assert [kind for kind, _, _ in loaded(tmp_path / "b.json")] == ["document", "rejection", "document"]


def test_a_bug_in_a_later_stage_rejects_that_record_only(tmp_path: Path, monkeypatch, bodies) -> None:
    real = run.normalize_text

    def buggy(text, *args, **kwargs):
        if "BOOM" in text:
            raise RecursionError("simulated")
        return real(text, *args, **kwargs)

    monkeypatch.setattr(run, "normalize_text", buggy)
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = [{"text": bodies[0]}, {"text": "BOOM " + bodies[1]}, {"text": bodies[2]}]
    (raw / "export.jsonl").write_text("\n".join(json.dumps(line) for line in lines))

    summary = clean_folder(raw, tmp_path / "out", RunConfig(workers=1, report=False))

    validate_output(tmp_path / "out")
    assert (summary.kept, summary.rejected) == (2, 1)
    [rejected] = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    assert (rejected["source"], rejected["reason"], rejected["stage"]) == (
        "export.jsonl#2",
        "internal_error",
        "extract",
    )


def test_a_truncated_array_keeps_its_complete_items(tmp_path: Path) -> None:
    (tmp_path / "cut.json").write_text('[{"text": "one"}, {"text": "t]w}o"}, {"text": "thr')

    assert loaded(tmp_path / "cut.json") == [
        ("document", "cut.json#1", "one"),
        ("document", "cut.json#2", "t]w}o"),
        ("rejection", "cut.json#3", "parse_error"),
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param("[", [("rejection", "x.json", "parse_error")], id="nothing-delimited"),
        pytest.param('[{"text": "a"} }', [("rejection", "x.json", "parse_error")], id="brace-closes-array"),
        pytest.param("[] more", [("rejection", "x.json", "parse_error")], id="after-empty-array"),
        pytest.param("[ ]", [("rejection", "x.json", "empty")], id="empty-array"),
        pytest.param(
            '[{"text": "a"}] more',
            [("document", "x.json#1", "a"), ("rejection", "x.json", "parse_error")],
            id="after-array",
        ),
        pytest.param(
            '[{"text": "a"},, {"text": "b"},]',
            [("document", "x.json#1", "a"), ("document", "x.json#2", "b")],
            id="stray-commas",
        ),
        pytest.param(
            '[{"text": "a"}, tru, {"text": "c"}]',
            [
                ("document", "x.json#1", "a"),
                ("rejection", "x.json#2", "parse_error"),
                ("document", "x.json#3", "c"),
            ],
            id="bad-item",
        ),
    ],
)
def test_json_arrays_that_do_not_parse_are_accounted_once(tmp_path: Path, data: str, expected) -> None:
    (tmp_path / "x.json").write_text(data)

    assert loaded(tmp_path / "x.json") == expected


def test_an_exception_escaping_the_loader_names_how_far_it_got(tmp_path: Path, monkeypatch) -> None:
    real = load._lines

    def breaks_after_two(buffer, start=0):
        for number, line in real(buffer, start):
            if number == 3:
                raise MemoryError("simulated")
            yield number, line

    monkeypatch.setattr(load, "_lines", breaks_after_two)
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n{"text": "three"}\n')
    items = list(
        run._guarded_load(
            str(tmp_path / "a.jsonl"), str(tmp_path), "a.jsonl", None, load.InputBoundary(str(tmp_path))
        )
    )

    assert [i.source for i in items] == ["a.jsonl#1", "a.jsonl#2", "a.jsonl"]
    assert items[-1].reason == "internal_error"
    assert items[-1].detail == "MemoryError: simulated (after 2 records)"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xef\xbb\xbf" + '{"text": "caf\u00e9"}\n{"text": "two"}'.encode(), id="utf8-bom"),
        pytest.param('{"text": "caf\u00e9"}\n{"text": "two"}'.encode("utf-16"), id="utf16"),
        pytest.param('{"text": "caf\u00e9"}\n{"text": "two"}'.encode("cp1252"), id="cp1252"),
    ],
)
def test_json_lines_in_any_encoding_split_the_same(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "enc.jsonl").write_bytes(data)

    assert loaded(tmp_path / "enc.jsonl") == [
        ("document", "enc.jsonl#1", "caf\u00e9"),
        ("document", "enc.jsonl#2", "two"),
    ]


# ---------------------------------------------------------------------------------------------------
# Bounded memory: a worker's peak does not grow with the number of records, nor with one document's size


def test_a_document_over_the_cap_is_too_large_and_costs_its_record_only(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(load, "MAX_DOCUMENT_CHARS", 100)
    (tmp_path / "long.txt").write_text("word " * 21)  # 105 characters
    (tmp_path / "longer.txt").write_bytes(b"x" * 401)  # over 4 bytes a character: not even decoded
    (tmp_path / "short.txt").write_text("word " * 19)
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "w" * 101}) + "\n" + json.dumps({"text": "short"}))

    assert loaded(tmp_path / "long.txt") == [("rejection", "long.txt", "too_large")]
    assert loaded(tmp_path / "longer.txt") == [("rejection", "longer.txt", "too_large")]
    assert loaded(tmp_path / "short.txt")[0][0] == "document"
    assert loaded(tmp_path / "a.jsonl") == [
        ("rejection", "a.jsonl#1", "too_large"),
        ("document", "a.jsonl#2", "short"),
    ]


def test_long_and_empty_sets_are_signed_as_the_plain_minimum() -> None:
    # The compiled loop against the definition: per permutation, the least (a * fmix32(s) + b) mod 2^32.
    signer = run._signer(RunConfig().minhash)
    rng = np.random.default_rng(9)
    sizes = (0, 3, 1 << 15, (1 << 15) + 1, 3 * (1 << 15) + 17, 40)
    sets = [np.unique(rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)) for n in sizes]
    a, b = signer._a.astype(np.uint64)[:, None], signer._b.astype(np.uint64)[:, None]
    plain = [
        ((a * _fmix32(s).astype(np.uint64)[None, :] + b) & 0xFFFFFFFF).min(axis=1)
        if s.size
        else np.full(signer.config.num_perm, 0xFFFFFFFF)
        for s in sets
    ]

    assert np.array_equal(signer.signatures(sets), np.array(plain, dtype=np.uint32))


WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pipeline import run

    path, spool = Path(sys.argv[1]), Path(sys.argv[2])
    config = run.RunConfig()
    loaded = run.load_chunk([(str(path), path.name)], str(path.parent), str(spool / "load"), config.cleanup)
    signer = run._signer(config.minhash)
    cleaned = run.clean_chunk(str(spool / "load"), str(spool / "clean"), {}, config, signer)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so it would count pytest's own memory
    hwm = int([line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0].split()[1])
    print(hwm // 1024, loaded.documents, cleaned.documents)
    """
)


def worker_peak_mb(folder: Path, records: int) -> int:
    """Peak RSS (MB) of a real worker process through both passes over a .jsonl.gz of tiny records."""
    folder.mkdir()
    path = folder / "tiny.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(b'{"text": "a b c d e f g h i j"}\n' * records)  # 10 words: --min-words keeps it
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(path), str(folder)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    peak, documents, cleaned = map(int, done.stdout.split())
    assert documents == cleaned == records
    return peak


@pytest.mark.skipif(sys.platform != "linux", reason="reads VmHWM from /proc/self/status")
def test_a_worker_does_not_hold_a_files_records(tmp_path: Path) -> None:
    # Before: every document of a chunk was held, then pickled at once (~800 bytes a tiny record in pass 1,
    # ~3 KB in pass 2: +160 MB from 5,000 to 60,000 records). Now one batch at a time.
    # A first run compiles the kernels when their cache is cold (a fresh clone): 50 MB more of LLVM at its
    # peak, which is not the records' cost. The measured runs find them compiled.
    worker_peak_mb(tmp_path / "warm", 100)
    small = worker_peak_mb(tmp_path / "small", 5_000)
    large = worker_peak_mb(tmp_path / "large", 60_000)

    assert large - small < 25, (small, large)
    # A worker's fixed cost: Python, numpy, the kernels, the language model. Measured 271 MB in one checkout
    # and 309 MB in a fresh clone on the same machine, warm both times (the cause is not pinned down); the
    # bound is about the records, which the difference above measures, so it leaves room for that.
    assert large < 360, (small, large)


# ---------------------------------------------------------------------------------------------------
# Fuzzing: the loaders never raise, whatever the bytes

SUFFIXES = (".txt", ".html", ".json", ".jsonl", ".jsonl.gz", ".json.gz", "")
FIELDS = ("text", "content", "html", "title", "url", "author", "authors", "date", "hostname", "body")

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**30, max_value=10**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["", " ", "<html><body><p>page</p></body></html>", "\ud83d", "\udc00 x", "\u2028"])
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=12,
)
records = st.dictionaries(st.sampled_from(FIELDS), values, max_size=6)


@st.composite
def json_ish(draw) -> bytes:
    """JSON lines, arrays and objects of scraped-looking records, some of them damaged."""
    items = draw(st.lists(records | values, min_size=1, max_size=5))
    texts = [json.dumps(item, allow_nan=True) for item in items]
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(texts)))
        texts.insert(at, draw(st.sampled_from([deep(2_000), '{"text": "\\ud83d cut"}', "1e99999", "{", "]"])))
    shape = draw(st.sampled_from(["lines", "array", "object"]))
    data = (
        "\n".join(texts)
        if shape == "lines"
        else "[" + ",".join(texts) + "]"
        if shape == "array"
        else texts[0]
    )
    encoded = data.encode("utf-8", "surrogatepass")
    cut = draw(st.none() | st.integers(0, len(encoded)))
    return encoded if cut is None else encoded[:cut]


def check_loaded(data: bytes, suffix: str) -> None:
    """``load_file`` does not raise; it yields documents and rejections with known reasons, each source once,
    and ``prepare_document`` gives each document a document or a rejection, never an exception."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
        items = list(load_file(path, Path(folder)))
    assert items
    sources = [item.source for item in items]
    assert len(sources) == len(set(sources))
    assert all(s == path.name or s.startswith(f"{path.name}#") for s in sources)
    for item in items:
        if isinstance(item, Rejection):
            assert item.reason in LOAD_REASONS
            assert item.reason != "internal_error", item
            continue
        assert isinstance(item, Document)
        assert isinstance(item.body, str) and item.body.strip()
        result = run._guarded(run.prepare_document, item, "extract")
        assert isinstance(result, Document | Rejection)
        if isinstance(result, Rejection):
            assert result.reason in REASONS
            assert result.reason != "internal_error", result
        else:
            result.body.encode("utf-8")  # every string an output can hold


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=st.binary(max_size=3000), suffix=st.sampled_from(SUFFIXES))
def test_load_file_on_random_bytes_never_raises(data: bytes, suffix: str) -> None:
    check_loaded(data, suffix)


@FUZZ
@given(data=json_ish(), suffix=st.sampled_from(SUFFIXES))
def test_load_file_on_damaged_json_never_raises(data: bytes, suffix: str) -> None:
    check_loaded(data, suffix)
