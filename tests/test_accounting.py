"""The accounting invariant of a run: every input document appears exactly once across records.jsonl,
duplicates.jsonl and rejected.jsonl, keyed by ``source``."""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import contract
from pipeline.run import RunConfig, UsageError, clean_folder
from tests.corpus import OUTPUT_NAMES, SAMPLE_BENCHMARK, SEED

SEED_ARTICLE = SEED
# A real news page (L.A. Auto Show) from the article-extraction benchmark.
BENCHMARK_PAGE = (
    SAMPLE_BENCHMARK / "html" / "05844573ca7e1fba714d715bb11ca08c26e25328999c74a1cb3bc8a0e4399f0f.html.gz"
)

JSONL_ARTICLES = [
    {
        "title": "Harbour reopens",
        "text": "The harbour reopened on Monday after the storm damage was repaired. "
        "Fishing boats returned to the quay before dawn and the market opened an hour early.",
        "url": "https://coast.example/harbour",
    },
    {
        "title": "Library extends hours",
        "text": "The city library will stay open until ten in the evening from "
        "next month. The council approved the budget for two more librarians on Thursday.",
    },
    {
        "title": "Bridge closed",
        "content": "The old rail bridge is closed for inspection until Friday. "
        "Engineers found corrosion on two supports and trains will run on the northern line instead.",
    },
]


def sources_by_file(out: Path) -> dict[str, list[str]]:
    return {
        name: [row["source"] for row in contract.read_jsonl(out / name)]
        for name in (contract.RECORDS, contract.DUPLICATES, contract.REJECTED)
    }


def assert_accounted_once(out: Path, expected: set[str]) -> dict[str, dict]:
    """Every expected source appears exactly once across the three files, and nothing else does."""
    by_file = sources_by_file(out)
    counts = Counter(source for sources in by_file.values() for source in sources)
    twice = sorted(source for source, n in counts.items() if n > 1)
    assert twice == [], f"accounted for more than once: {twice}"
    assert set(counts) == expected, (sorted(set(counts) - expected), sorted(expected - set(counts)))
    contract.validate_output(out)
    return {row["source"]: row for name in by_file for row in contract.read_jsonl(out / name)}


@pytest.fixture
def mixed_folder(tmp_path: Path) -> tuple[Path, set[str]]:
    """A folder with one of every kind of input, and the set of document sources it holds."""
    folder = tmp_path / "raw"
    (folder / "news").mkdir(parents=True)
    (folder / "feeds").mkdir()
    seed = SEED_ARTICLE.read_bytes()
    (folder / "news" / "atacms.txt").write_bytes(seed)
    (folder / "news" / "atacms-copy.txt").write_bytes(seed)
    (folder / "news" / "atacms-crlf.txt").write_bytes(
        seed.replace(b"\n", b"\r\n")
    )  # same text once normalised
    (folder / "news" / "auto-show.html").write_bytes(gzip.decompress(BENCHMARK_PAGE.read_bytes()))
    (folder / "news" / "auto-show.html.meta.json").write_text('{"url": "https://www.latimes.com/x"}')
    (folder / "nav-only.html").write_text("<html><body><nav>Home</nav></body></html>", encoding="utf-8")
    lines = [
        json.dumps(JSONL_ARTICLES[0]),
        json.dumps(JSONL_ARTICLES[1]),
        '{"text": "broken',
        json.dumps(JSONL_ARTICLES[2]),
    ]
    (folder / "feeds" / "items.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "feeds" / "array.json").write_text(
        json.dumps([JSONL_ARTICLES[1], {"title": "no text"}]), encoding="utf-8"
    )
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.txt").write_bytes(b"  \n\n \t\n")
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100))
    (folder / ".hidden.txt").write_bytes(seed)  # not an input
    expected = {
        "news/atacms.txt",
        "news/atacms-copy.txt",
        "news/atacms-crlf.txt",
        "news/auto-show.html",
        "nav-only.html",
        "feeds/items.jsonl#1",
        "feeds/items.jsonl#2",
        "feeds/items.jsonl#3",
        "feeds/items.jsonl#4",
        "feeds/array.json#1",
        "feeds/array.json#2",
        "empty.txt",
        "blank.txt",
        "image.png",
    }
    return folder, expected


def test_every_input_is_accounted_for_exactly_once(
    mixed_folder: tuple[Path, set[str]], tmp_path: Path
) -> None:
    folder, expected = mixed_folder
    out = tmp_path / "clean"

    summary = clean_folder(folder, out, RunConfig(workers=1))

    rows = assert_accounted_once(out, expected)
    assert summary.documents == len(expected)
    assert summary.kept + summary.duplicates + summary.rejected == len(expected)
    assert summary.files == 10  # the sidecar and the hidden file are not inputs
    rejected = {s: r["reason"] for s, r in rows.items() if "reason" in r and "duplicate_of" not in r}
    assert rejected == {
        "nav-only.html": "no_main_text",
        "feeds/items.jsonl#3": "parse_error",
        "feeds/array.json#2": "parse_error",
        "empty.txt": "empty",
        "blank.txt": "empty",
        "image.png": "binary",
    }
    duplicates = {s for s, r in rows.items() if "duplicate_of" in r}
    # The three copies of the seed form one cluster; the JSON array repeats a JSONL article.
    assert len(duplicates & {"news/atacms.txt", "news/atacms-copy.txt", "news/atacms-crlf.txt"}) == 2
    assert len(duplicates & {"feeds/items.jsonl#2", "feeds/array.json#1"}) == 1
    assert len(duplicates) == 3
    page = rows["news/auto-show.html"]
    assert "duplicate_of" not in page and "reason" not in page
    assert page["url"] == "https://www.latimes.com/x" and "Auto Show" in page["title"]


def test_accounting_holds_with_several_workers_and_chunks(
    mixed_folder: tuple[Path, set[str]], tmp_path: Path
) -> None:
    folder, expected = mixed_folder

    clean_folder(folder, tmp_path / "one", RunConfig(workers=1))
    clean_folder(folder, tmp_path / "many", RunConfig(workers=2, chunk_size=2))

    assert assert_accounted_once(tmp_path / "many", expected) == assert_accounted_once(
        tmp_path / "one", expected
    )


def test_rerun_with_output_inside_input_accounts_for_the_same_inputs(
    mixed_folder: tuple[Path, set[str]],
) -> None:
    folder, expected = mixed_folder
    out = folder / "clean"

    clean_folder(folder, out, RunConfig(workers=1))
    first = (out / contract.RECORDS).read_bytes()
    clean_folder(folder, out, RunConfig(workers=1))

    assert_accounted_once(out, expected)
    assert (out / contract.RECORDS).read_bytes() == first
    assert sorted(p.name for p in out.iterdir()) == OUTPUT_NAMES  # no spool left behind


def test_output_folder_equal_to_input_is_refused_or_not_read_back(tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    shutil.copyfile(SEED_ARTICLE, folder / "atacms.txt")

    try:
        clean_folder(folder, folder, RunConfig(workers=1))
        clean_folder(folder, folder, RunConfig(workers=1))
    except UsageError:
        return
    assert_accounted_once(folder, {"atacms.txt"})


@pytest.mark.parametrize(
    ("name", "data"),
    [
        pytest.param("empty-array.json", b"[]\n", id="empty-json-array"),
        pytest.param("bom-only.jsonl", b"\xef\xbb\xbf\n", id="jsonl-bom-only"),
        pytest.param("nbsp-only.jsonl", "\u00a0\n\u3000\n".encode(), id="jsonl-unicode-spaces-only"),
    ],
)
def test_a_file_that_yields_no_item_is_still_accounted_for(tmp_path: Path, name: str, data: bytes) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    shutil.copyfile(SEED_ARTICLE, folder / "atacms.txt")
    (folder / name).write_bytes(data)

    summary = clean_folder(folder, tmp_path / "clean", RunConfig(workers=1))

    rows = assert_accounted_once(tmp_path / "clean", {"atacms.txt", name})
    assert rows[name]["reason"] in ("empty", "parse_error")
    assert summary.documents == 2


# ---------------------------------------------------------------------------------------------------
# The same law over generated folders.

_PARAGRAPH = st.lists(
    st.sampled_from(
        "storm harbour council budget bridge library vote rain market school "
        "ferry museum winter river".split()
    ),
    min_size=12,
    max_size=40,
).map(lambda words: " ".join(words).capitalize() + ".")
_ARTICLE = st.lists(_PARAGRAPH, min_size=1, max_size=3).map("\n\n".join)
_JSONL_LINE = st.one_of(
    _ARTICLE.map(lambda text: json.dumps({"text": text})),
    st.sampled_from(['{"text": ', '{"title": "no body"}', "[1, 2]", "null", "   "]),
)
_FILE = st.one_of(
    st.tuples(st.just("txt"), _ARTICLE.map(str.encode)),
    st.tuples(
        st.just("txt"), st.sampled_from([b"", b"\n \t", b"\x89PNG\r\n\x1a\n\x00\x00", b"\xff\xfe\x00\xd8"])
    ),
    st.tuples(
        st.just("jsonl"), st.lists(_JSONL_LINE, min_size=1, max_size=4).map(lambda ls: "\n".join(ls).encode())
    ),
    st.tuples(
        st.just("html"),
        _ARTICLE.map(lambda text: f"<html><body><article><p>{text}</p></article></body></html>".encode()),
    ),
)


def _expected_sources(name: str, kind: str, data: bytes) -> set[str]:
    if kind != "jsonl":
        return {name}
    text = data.decode("utf-8")
    if not text.strip():
        return {name}  # an all-blank JSON-lines file is one empty input
    return {f"{name}#{n}" for n, line in enumerate(text.split("\n"), start=1) if line.strip()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(_FILE, min_size=1, max_size=8), copies=st.lists(st.integers(0, 7), max_size=3))
def test_every_input_is_accounted_for_once_on_generated_folders(
    files: list[tuple[str, bytes]], copies: list[int]
) -> None:
    files = files + [files[i % len(files)] for i in copies]  # exact copies under other names
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "raw", Path(tmp) / "clean"
        folder.mkdir()
        expected: set[str] = set()
        for number, (kind, data) in enumerate(files):
            name = f"f{number:02d}.{kind}"
            (folder / name).write_bytes(data)
            expected |= _expected_sources(name, kind, data)

        summary = clean_folder(folder, out, RunConfig(workers=1))

        assert_accounted_once(out, expected)
        assert summary.documents == len(expected)


# ---------------------------------------------------------------------------------------------------
# Across runs: a provisional rejection is replaced by the outcome of the next reading


def _sources(out: Path) -> dict[str, list[str]]:
    return {
        name: [row["source"] for row in contract.read_jsonl(out / name)]
        for name in (contract.RECORDS, contract.DUPLICATES, contract.REJECTED)
    }


@pytest.mark.parametrize("scan", ["full", "folders"])
def test_an_unreadable_file_is_retried_and_its_final_outcome_counts_once(tmp_path: Path, scan: str):
    """A link to a file not there yet cannot be read (as root, no permission bit makes a file unreadable);
    once the file exists, the record replaces the rejection, in a full scan and in a folder scan alike."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    (raw / "later").mkdir(parents=True)
    shutil.copy(SEED_ARTICLE, raw / "seed.txt")
    (raw / "pending.txt").symlink_to("later/article.txt")
    (raw / "gone.txt").symlink_to("later/never.txt")
    config = RunConfig(workers=1, scan=scan)
    clean_folder(raw, out, config)
    first = _sources(out)
    assert sorted(first[contract.REJECTED]) == ["gone.txt", "pending.txt"]
    rejected_before = (out / contract.REJECTED).read_bytes()

    clean_folder(raw, out, config)  # still unreadable: rejected again, replacing the earlier rejection
    assert (out / contract.REJECTED).read_bytes() == rejected_before

    (raw / "later" / "article.txt").write_text(
        "Harbour reopens\n\nThe harbour reopened on Monday after the storm damage was repaired; boats "
        "returned to the quay before dawn.\n",
        encoding="utf-8",
    )
    clean_folder(raw, out, config)
    after = _sources(out)
    assert after[contract.REJECTED] == ["gone.txt"]
    assert "pending.txt" in after[contract.DUPLICATES]  # of later/article.txt, the same file
    contract.validate_output(out)  # every source once
    assert not list(out.glob("*.next"))


def test_a_rewrite_committed_by_the_index_is_completed_by_the_next_run(tmp_path: Path):
    """A run killed after its index commit and before renaming rejected.jsonl.next into place: the next
    run puts it in place (the index already counts its length); an uncommitted one is deleted."""
    from pipeline.index import INDEX_FILE, STAGED_SUFFIX, Index  # noqa: PLC0415
    from pipeline.run import index_fingerprint  # noqa: PLC0415

    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    shutil.copy(SEED_ARTICLE, raw / "seed.txt")
    (raw / "empty.txt").write_text("")
    config = RunConfig(workers=1)
    clean_folder(raw, out, config)
    rejected = out / contract.REJECTED
    staged = out / (contract.REJECTED + STAGED_SUFFIX)
    staged.write_bytes(b"")  # as the killed run left it: the rewrite without its one row
    with Index(out / INDEX_FILE, index_fingerprint(config)) as index:
        index.set_committed(contract.REJECTED, 0, 0)
        index.set_replacing(contract.REJECTED)
        index.commit()
    assert clean_folder(raw, out, config).documents == 0
    assert rejected.read_bytes() == b"" and not staged.exists()

    staged.write_bytes(b"not committed by any index\n")
    clean_folder(raw, out, config)
    assert not staged.exists() and rejected.read_bytes() == b""
