"""Web archives as inputs (pipeline/archive.py): WARC, ARC and WET files written here with warcio's own
writer from real pages, cleaned as a folder and compared with the same pages given as ``.html`` files with
sidecars; damaged archives, archives read in parts, incremental and cluster runs."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import sqlite3
import tempfile
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline import archive
from pipeline.archive import archive_parts, load_archive
from pipeline.cli import main
from pipeline.contract import REASONS, Document, Rejection, read_jsonl, validate_output
from pipeline.index import INDEX_FILE
from pipeline.load import InputBoundary, split_source
from pipeline.run import RunConfig, chunk_files, clean_folder

HTML_PAGES = Path(__file__).parent / "data" / "article-extraction-benchmark" / "html"
OUTPUTS = ("records.jsonl", "duplicates.jsonl", "rejected.jsonl")
CONFIG = RunConfig(workers=1, report=False)
PAGES = 8
# A page with no date of its own (the record's date is the fetch date) and one that has its own.
UNDATED = (
    "<html><head><title>Harbour reopens after storm</title></head><body><article><h1>Harbour reopens after"
    " storm</h1><p>The harbour of the small town reopened on Tuesday after the storm that closed it for a"
    " week had passed, the port authority said in a statement to the press.</p><p>Fishing boats left at"
    " dawn, and the ferry to the islands will run on its usual timetable from Wednesday morning.</p>"
    "</article></body></html>"
)
DATED = (
    '<html><head><meta property="article:published_time" content="2018-06-07"><title>Library extends its'
    " hours</title></head><body><article><h1>Library extends its hours</h1><p>The city library will stay"
    " open until nine in the evening from next month, after readers asked for longer hours in a survey"
    " held last spring.</p><p>The reading room on the first floor gets new lamps and forty more seats, and"
    " the children's corner moves to the ground floor.</p></article></body></html>"
)
UNDATED_TEXT = (
    "Harbour reopens after storm\n\nThe harbour of the small town reopened on Tuesday after the storm that"
    " closed it for a week had passed, the port authority said.\n\nFishing boats left at dawn, and the ferry"
    " to the islands will run on its usual timetable from Wednesday morning."
)
# Cyrillic text in windows-1251, the charset named only by the HTTP header.
CYRILLIC = "Порт снова открылся после шторма, сообщили власти города во вторник утром."
CP1251_PAGE = (
    f"<html><body><article><h1>Порт открылся</h1><p>{CYRILLIC}</p><p>{CYRILLIC}</p></article></body></html>"
).encode("cp1251")


def real_pages() -> list[bytes]:
    return [gzip.decompress(p.read_bytes()) for p in sorted(HTML_PAGES.iterdir())[:PAGES]]


def page_url(i: int) -> str:
    return f"https://site{i % 3}.example/news/{i}"


def fetch_date(i: int) -> str:
    return f"2021-03-{i + 1:02d}T10:00:00Z"


def http(status: str, content_type: str, **more: str) -> StatusAndHeaders:
    return StatusAndHeaders(status, [("Content-Type", content_type), *more.items()], protocol="HTTP/1.1")


def write_warc(path: Path, pages: list[bytes], gzipped: bool, others: bool = True) -> None:
    """A crawl's archive: warcinfo, then per page a request, its response and a metadata record, then
    (``others``) what a crawl also holds: an image, a 404, a redirect, a revisit, a dns: lookup."""
    with path.open("wb") as handle:
        writer = WARCWriter(handle, gzip=gzipped)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "tests"}))
        for i, page in enumerate(pages):
            url, date = page_url(i), {"WARC-Date": fetch_date(i)}
            request = io.BytesIO(f"GET /news/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            writer.write_record(writer.create_warc_record(url, "request", payload=request))
            headers = http("200 OK", "text/html; charset=utf-8")
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(page), http_headers=headers, warc_headers_dict=date
            )
            writer.write_record(record)
            meta = io.BytesIO(b"outlinks: none\r\n")
            writer.write_record(
                writer.create_warc_record(url, "metadata", payload=meta, warc_content_type="text/plain")
            )
        if not others:
            return
        for url, headers, body in (
            ("https://site0.example/logo.png", http("200 OK", "image/png"), b"\x89PNG\r\n\x1a\n..."),
            ("https://site0.example/gone", http("404 Not Found", "text/html"), b"<html>Not found</html>"),
            (
                "https://site0.example/old",
                http("301 Moved Permanently", "text/html", Location="https://site0.example/new"),
                b"",
            ),
        ):
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), http_headers=headers
            )
            writer.write_record(record)
        revisit = writer.create_revisit_record(page_url(0), "sha1:X", page_url(0), fetch_date(0))
        writer.write_record(revisit)
        dns = io.BytesIO(b"site0.example. 300 IN A 192.0.2.1\n")
        writer.write_record(writer.create_warc_record("dns:site0.example", "response", payload=dns))


def write_pages(folder: Path, pages: list[bytes]) -> None:
    """The same pages as ``pipeline fetch`` stores them: ``.html`` files beside their sidecars."""
    folder.mkdir(parents=True)
    for i, page in enumerate(pages):
        (folder / f"page{i:02d}.html").write_bytes(page)
        sidecar = {
            "url": page_url(i),
            "final_url": page_url(i),
            "status": 200,
            "fetched_at": fetch_date(i),
            "content_type": "text/html; charset=utf-8",
            "bytes": len(page),
            "error": None,
        }
        (folder / f"page{i:02d}.html.meta.json").write_text(json.dumps(sidecar), encoding="utf-8")


def record_offsets(path: Path) -> dict[str, int]:
    """URL -> offset of each response record, as warcio reads the file."""
    return {url: offset for url, (offset, _) in record_spans(path).items()}


def record_spans(path: Path) -> dict[str, tuple[int, int]]:
    """URL -> (offset, length) of each response record, as warcio reads the file."""
    spans = {}
    with path.open("rb") as handle:
        records = ArchiveIterator(handle)
        for record in records:
            if record.rec_type == "response":
                url = record.rec_headers.get_header("WARC-Target-URI")
                spans[url] = (records.get_record_offset(), records.get_record_length())
    return spans


def outcomes(out: Path, url_of: dict[str, str]) -> dict[str, tuple]:
    """Each input's outcome by its URL (``url_of``: source -> URL): the record's fields but its source
    and id, a duplicate's kind and the URL of what it copies, a rejection's reason."""
    rows = {name: read_jsonl(out / name) for name in OUTPUTS}
    url_by_id = {r["id"]: url_of[r["source"]] for r in rows["records.jsonl"]}
    found: dict[str, tuple] = {}
    for r in rows["records.jsonl"]:
        found[url_of[r["source"]]] = ("kept", {k: v for k, v in r.items() if k not in ("source", "id")})
    for r in rows["duplicates.jsonl"]:
        found[url_of[r["source"]]] = ("duplicate", r["kind"], url_by_id[r["duplicate_of"]], r["text"])
    for r in rows["rejected.jsonl"]:
        found[url_of.get(r["source"], r["source"])] = ("rejected", r["reason"])
    return found


@pytest.fixture(scope="module")
def html_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """The pages as .html files with sidecars, cleaned: the outcome each archive must give."""
    base = tmp_path_factory.mktemp("html")
    write_pages(base / "raw" / "crawl", real_pages())
    clean_folder(base / "raw", base / "out", CONFIG)
    url_of = {f"crawl/page{i:02d}.html": page_url(i) for i in range(PAGES)}
    return outcomes(base / "out", url_of)


@pytest.mark.parametrize("name", ["crawl.warc.gz", "crawl.warc"])
def test_a_warc_gives_the_records_of_its_pages_as_html_files(
    name: str, html_run: dict[str, tuple], tmp_path: Path
) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    (raw / "crawl").mkdir(parents=True)
    warc = raw / "crawl" / name
    write_warc(warc, real_pages(), gzipped=name.endswith(".gz"))
    summary = clean_folder(raw, out, CONFIG)
    validate_output(out)
    offsets = record_offsets(warc)
    url_of = {f"crawl/{name}#{offset}": url for url, offset in offsets.items()}
    got = outcomes(out, url_of)
    # one outcome per HTML response, the same as the page's as a file: text, title, url, date ...
    assert {url: got[url] for url in html_run} == html_run
    kept = [row for row in html_run.values() if row[0] == "kept"]
    assert len(kept) >= PAGES - 2 and all(row[1]["url"] for row in kept)
    # the response records that are no pages are rejected with the reason; the others leave no trace
    assert got["https://site0.example/logo.png"] == ("rejected", "unsupported_type")
    assert got["https://site0.example/gone"] == ("rejected", "http_error")
    assert got["https://site0.example/old"] == ("rejected", "http_error")
    redirect = read_jsonl(out / "rejected.jsonl")[-1]
    assert redirect["detail"] == "HTTP 301, redirect to https://site0.example/new"
    assert len(got) == PAGES + 3
    assert summary.files == 1 and summary.documents == PAGES + 3
    sources = [r["source"] for name_ in OUTPUTS for r in read_jsonl(out / name_)]
    assert all(split_source(s) == (f"crawl/{name}".encode(), s[s.index("#") :]) for s in sources)


@pytest.mark.parametrize("given_as", ["warc", "html"])
def test_the_record_date_is_the_page_s_own_else_the_fetch_date(given_as: str, tmp_path: Path) -> None:
    """Through a WARC (WARC-Date) and through .html files and their sidecars (fetched_at) alike."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    pages = [UNDATED.encode(), DATED.encode()]
    if given_as == "warc":
        raw.mkdir()
        write_warc(raw / "two.warc.gz", pages, gzipped=True, others=False)
    else:
        write_pages(raw, pages)
    clean_folder(raw, out, CONFIG)
    records = {r["url"]: r for r in read_jsonl(out / "records.jsonl")}
    assert records[page_url(0)]["date"] == "2021-03-01"  # the fetch date: the page gives none
    assert records[page_url(1)]["date"] == "2018-06-07"  # the page's own date comes first
    assert records[page_url(0)]["hostname"] == "site0.example"


def test_the_http_charset_decodes_the_page(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    with (raw / "ru.warc.gz").open("wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        headers = http("200 OK", "text/html; charset=windows-1251")
        record = writer.create_warc_record(
            "https://ru.example/port", "response", payload=io.BytesIO(CP1251_PAGE), http_headers=headers
        )
        writer.write_record(record)
    clean_folder(raw, out, CONFIG)
    (record,) = read_jsonl(out / "records.jsonl")
    assert CYRILLIC in record["text"]


def test_wet_conversion_records_are_plain_text_documents(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    library = "The city library will stay open until nine in the evening from next month, readers were told."
    texts = [
        UNDATED_TEXT,
        f"Library extends its hours\n\n{library}\n\nThe reading room gets forty more seats.",
    ]
    with (raw / "crawl.warc.wet.gz").open("wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        writer.write_record(writer.create_warcinfo_record("crawl.warc.wet.gz", {"software": "tests"}))
        for i, text in enumerate(texts):
            payload = io.BytesIO(text.encode("utf-8"))
            headers = {"WARC-Date": fetch_date(i)}
            record = writer.create_warc_record(
                page_url(i),
                "conversion",
                payload=payload,
                warc_content_type="text/plain",
                warc_headers_dict=headers,
            )
            writer.write_record(record)
    clean_folder(raw, out, CONFIG)
    records = read_jsonl(out / "records.jsonl")
    assert [(r["url"], r["date"]) for r in records] == [
        (page_url(0), "2021-03-01"),
        (page_url(1), "2021-03-02"),
    ]
    assert [r["text"] for r in records] == [UNDATED_TEXT.split("\n\n", 1)[1], texts[1].split("\n\n", 1)[1]]
    assert [r["title"] for r in records] == ["Harbour reopens after storm", "Library extends its hours"]


def arc_record(url: str, date: str, content_type: str, body: bytes) -> bytes:
    """One ARC (version 1) record: its header line, the HTTP response, a newline."""
    response = f"HTTP/1.0 200 OK\r\nContent-Type: {content_type}\r\n\r\n".encode() + body
    return f"{url} 192.0.2.1 {date} text/html {len(response)}\n".encode() + response + b"\n"


def test_an_arc_file_gives_its_pages_with_url_and_date(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    header = b"1 0 tests\nURL IP-address Archive-date Content-type Archive-length\n"
    filedesc = f"filedesc://crawl.arc 0.0.0.0 20240101000000 text/plain {len(header)}\n".encode() + header
    records = [
        arc_record("http://old.example/harbour", "20040305101112", "text/html", UNDATED.encode()),
        arc_record("http://old.example/ru", "20040306101112", "text/html; charset=windows-1251", CP1251_PAGE),
    ]
    (raw / "crawl.arc.gz").write_bytes(b"".join(gzip.compress(part) for part in [filedesc + b"\n", *records]))
    clean_folder(raw, out, CONFIG)
    got = {r["url"]: r for r in read_jsonl(out / "records.jsonl")}
    assert got["http://old.example/harbour"]["date"] == "2004-03-05"
    assert CYRILLIC in got["http://old.example/ru"]["text"]
    assert not read_jsonl(out / "rejected.jsonl")
    # read in parts, an ARC's records are found by their header lines
    arc, size = str(raw / "crawl.arc.gz"), (raw / "crawl.arc.gz").stat().st_size
    whole = loaded_sources(raw / "crawl.arc.gz", archive_parts(arc, "crawl.arc.gz", size, size))
    assert len(whole) == 2
    for part_bytes in (1, 100, 333):
        assert (
            loaded_sources(raw / "crawl.arc.gz", archive_parts(arc, "crawl.arc.gz", size, part_bytes))
            == whole
        )


def test_a_damaged_archive_keeps_the_records_before_the_damage(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    pages = real_pages()[:4]  # bodies of 10-40 KB compressed: the middle of a member is in its body
    write_warc(tmp_path / "whole.warc.gz", pages, gzipped=True, others=False)
    third, length = list(record_spans(tmp_path / "whole.warc.gz").values())[2]
    data = (tmp_path / "whole.warc.gz").read_bytes()
    (raw / "cut-head.warc.gz").write_bytes(data[: third + 40])  # inside the third response's head
    (raw / "cut-body.warc.gz").write_bytes(data[: third + length // 2])  # and inside its body
    write_warc(tmp_path / "whole.warc", pages, gzipped=False, others=False)
    plain = (tmp_path / "whole.warc").read_bytes()
    middle = list(record_offsets(tmp_path / "whole.warc").values())[2]
    (raw / "garbage-inside.warc").write_bytes(plain[:middle] + b"no record here\r\n" * 50 + plain[middle:])
    (raw / "garbage.warc").write_bytes(b"<html>this is no archive</html>\n" * 10)
    (raw / "header-cut.warc").write_bytes(plain[: middle + 20])  # inside the third record's head
    (raw / "one-stream.warc.gz").write_bytes(gzip.compress(plain))  # not one gzip member per record
    summary = clean_folder(raw, out, CONFIG)
    validate_output(out)
    kept = {(r["source"].split("#")[0], r["url"]) for r in read_jsonl(out / "records.jsonl")}
    kept |= {(r["source"].split("#")[0], r["url"]) for r in read_jsonl(out / "duplicates.jsonl")}
    for name in ("cut-head.warc.gz", "cut-body.warc.gz", "garbage-inside.warc", "header-cut.warc"):
        assert {url for source, url in kept if source == name} == {page_url(0), page_url(1)}, name
    rejected = {r["source"]: (r["reason"], r["detail"]) for r in read_jsonl(out / "rejected.jsonl")}
    for name in ("cut-head.warc.gz", "cut-body.warc.gz"):
        assert rejected[f"{name}#{third}"][0] == "parse_error", name
        assert "cut short" in rejected[f"{name}#{third}"][1], name
    assert rejected[f"garbage-inside.warc#{middle}"][0] == "parse_error"
    assert rejected["garbage.warc#0"][0] == "parse_error"
    assert rejected[f"header-cut.warc#{middle}"][0] == "parse_error"
    (stream,) = [detail for source, (_, detail) in rejected.items() if source.startswith("one-stream")]
    assert "warcio recompress" in stream
    assert summary.files == 6 and len(rejected) == 6


def test_a_record_over_the_cap_is_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    big = UNDATED.replace("</article>", "<p>" + "More words about the harbour. " * 200 + "</p></article>")
    write_warc(raw / "crawl.warc.gz", [UNDATED.encode(), big.encode()], gzipped=True, others=False)
    monkeypatch.setattr(archive, "MAX_PAGE_BYTES", len(big) - 1)  # workers=1: loaded in this process
    clean_folder(raw, out, CONFIG)
    (rejection,) = read_jsonl(out / "rejected.jsonl")
    assert rejection["reason"] == "too_large" and rejection["source"].startswith("crawl.warc.gz#")
    assert [r["url"] for r in read_jsonl(out / "records.jsonl")] == [page_url(0)]


@pytest.fixture(scope="module")
def big_warc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gzipped WARC of real pages, with each page twice under another URL (exact copies) and the other
    records a crawl holds."""
    raw = tmp_path_factory.mktemp("big") / "raw"
    raw.mkdir()
    pages = real_pages()
    write_warc(raw / "crawl.warc.gz", pages + pages[:4], gzipped=True)
    return raw


def index_files(out: Path) -> list[tuple]:
    """The index's file table: (path, folder, size, modification time, hash) of each input read."""
    with sqlite3.connect(out / INDEX_FILE) as db:
        return sorted(db.execute("SELECT * FROM files"))


def loaded_sources(warc: Path, parts: list) -> list[str]:
    boundary = InputBoundary(str(warc.parent))
    items: list[Document | Rejection] = []
    for part in parts:
        items.extend(load_archive(part.path, part.source, boundary, None, part.start, part.stop))
    return [item.source for item in items]


@pytest.mark.parametrize("part_bytes", [7, 997, 20_000, 150_000])  # 7: parts smaller than any head
def test_the_parts_of_an_archive_read_each_record_once(big_warc: Path, part_bytes: int) -> None:
    warc = big_warc / "crawl.warc.gz"
    whole = loaded_sources(warc, archive_parts(str(warc), "crawl.warc.gz", 0, part_bytes))
    parts = archive_parts(str(warc), "crawl.warc.gz", warc.stat().st_size, part_bytes)
    assert len(parts) == -(-warc.stat().st_size // part_bytes) > 1
    assert loaded_sources(warc, parts) == whole
    assert len(whole) == PAGES + 4 + 3


def test_an_archive_split_over_chunks_gives_the_output_of_one_read_whole(big_warc: Path, tmp_path: Path):
    size = (big_warc / "crawl.warc.gz").stat().st_size
    split = replace(CONFIG, workers=2, archive_part_bytes=size // 5 + 1)
    chunks = chunk_files([(str(big_warc / "crawl.warc.gz"), "crawl.warc.gz")], split)
    assert [[(part.start, part.stop) for part in chunk] for chunk in chunks] == [
        [(i * (size // 5 + 1), (i + 1) * (size // 5 + 1) if i < 4 else None)] for i in range(5)
    ]
    whole = clean_folder(big_warc, tmp_path / "whole", CONFIG)
    parted = clean_folder(big_warc, tmp_path / "parted", split)
    for name in OUTPUTS:
        assert (tmp_path / "parted" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert parted.files == whole.files == 1
    assert whole.exact_duplicates == 4 and whole.documents == PAGES + 4 + 3
    assert parted.stats["index"] == {**whole.stats["index"], "path": parted.stats["index"]["path"]}
    # one row for the file in the index, hashed by its first part as it is when read whole
    assert index_files(tmp_path / "parted") == index_files(tmp_path / "whole")
    (row,) = index_files(tmp_path / "whole")
    assert (row[0], row[2]) == ("crawl.warc.gz", size)


def test_an_unchanged_archive_is_skipped_and_a_changed_one_read_again(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    pages = [UNDATED.encode(), DATED.encode()]
    write_warc(raw / "crawl.warc.gz", pages, gzipped=True, others=False)
    split = replace(CONFIG, archive_part_bytes=700)
    first = clean_folder(raw, out, split)
    assert (first.files, first.documents) == (1, 2)
    again = clean_folder(raw, out, split)
    assert (again.files, again.documents, again.unchanged) == (0, 0, 1)
    # the crawl goes on: a new page appended as a later record; the file is a new version, read again
    extra = tmp_path / "extra.warc.gz"
    write_warc(extra, [UNDATED.replace("harbour", "station").encode()], gzipped=True, others=False)
    with (raw / "crawl.warc.gz").open("ab") as handle:
        handle.write(extra.read_bytes())
    os.utime(raw / "crawl.warc.gz", ns=(1, 1))
    later = clean_folder(raw, out, split)
    assert (later.files, later.documents, later.exact_duplicates) == (1, 3, 2)  # the two pages again, copies
    validate_output(out)
    sources = [r["source"] for name in OUTPUTS for r in read_jsonl(out / name)]
    assert len(sources) == 5 and sum(s.startswith("crawl.warc.gz@") for s in sources) == 3


def test_an_archive_over_the_file_cap_is_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 50 MB cap on a file read whole does not apply: the archive is read from the open file (the
    first run hashes it in blocks)."""
    import pipeline.load
    import pipeline.run

    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    write_warc(raw / "crawl.warc", [UNDATED.encode(), DATED.encode()], False)
    assert (raw / "crawl.warc").stat().st_size > 2_000
    monkeypatch.setattr(pipeline.run, "MAX_FILE_BYTES", 2_000)
    monkeypatch.setattr(pipeline.load, "MAX_FILE_BYTES", 2_000)
    summary = clean_folder(raw, out, CONFIG)
    assert summary.kept == 2
    assert clean_folder(raw, out, CONFIG).unchanged == 1  # its row is in the index


def test_the_cli_cleans_a_folder_of_archives(big_warc: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["clean", str(big_warc), "--out", str(out), "--no-report", "--workers", "2"]) == 0
    line = capsys.readouterr().out
    assert f"{PAGES + 7} new documents in (1 files)" in line
    assert "unsupported_type 1" in line and "http_error 2" in line
    validate_output(out)


def test_a_cluster_run_of_an_archive_equals_a_local_one(big_warc: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    size = (big_warc / "crawl.warc.gz").stat().st_size
    config = replace(CONFIG, workers=2, archive_part_bytes=size // 3)
    local = clean_folder(big_warc, tmp_path / "local", config)
    cluster = clean_folder(big_warc, tmp_path / "cluster", config, dask="local")
    for name in OUTPUTS:
        assert (tmp_path / "cluster" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert cluster.documents == local.documents == PAGES + 7
    shutil.rmtree(tmp_path / "cluster")


@pytest.mark.parametrize("name", ["endless.warc", "endless.warc.gz"])
def test_a_head_without_end_is_rejected_in_bounded_memory(name: str, tmp_path: Path) -> None:
    """20 MB with no newline after a record's first line (200 MB gzipped: 200 KB of zeros): warcio would
    read it as one header line; the head's budget stops it. (warcio decompresses 16 KB of the file at a
    time, up to 16 MB of zeros: the bound, whatever the file's size.)"""
    gzipped = name.endswith(".gz")
    data = b"WARC/1.0\r\nWARC-Type: response\r\nX-Junk: " + b"0" * (200_000_000 if gzipped else 20_000_000)
    (tmp_path / name).write_bytes(gzip.compress(data, 6) if gzipped else data)
    del data
    tracemalloc.start()
    try:
        items = list(load_archive(str(tmp_path / name), name, InputBoundary(str(tmp_path))))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(item.source, item.reason) for item in items] == [(f"{name}#0", "parse_error")]
    assert "record head over" in items[0].detail
    assert peak < 64_000_000


def small_warc(gzipped: bool) -> bytes:
    path = Path(tempfile.mkdtemp()) / "small.warc"
    pages = [UNDATED.encode(), DATED.encode(), CP1251_PAGE]
    write_warc(path, pages, gzipped=gzipped)
    data = path.read_bytes()
    shutil.rmtree(path.parent)
    return data


SMALL = {True: small_warc(True), False: small_warc(False)}


@st.composite
def damaged_archives(draw) -> tuple[bytes, bool, int]:
    """A small WARC, gzipped or not, cut, overwritten or with bytes inserted at random places; and a
    size of parts to read it in."""
    gzipped = draw(st.booleans())
    data = SMALL[gzipped]
    if gzipped and draw(st.booleans()):
        data = gzip.compress(SMALL[False])  # one gzip stream, not one member per record
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        junk = draw(
            st.binary(min_size=1, max_size=40) | st.sampled_from([b"\n", b"WARC/1.0\r\n", b"\x1f\x8b\x08"])
        )
        kind = draw(st.sampled_from(["cut", "overwrite", "insert"]))
        data = (
            data[:at] if kind == "cut" else data[:at] + junk + data[at + len(junk) * (kind == "overwrite") :]
        )
    return data, gzipped, draw(st.integers(50, max(50, len(data))))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=damaged_archives())
def test_damaged_archives_never_raise_and_account_for_each_record_once(case: tuple[bytes, bool, int]) -> None:
    data, gzipped, part_bytes = case
    with tempfile.TemporaryDirectory() as folder:
        name = "crawl.warc.gz" if gzipped else "crawl.warc"
        path = Path(folder) / name
        path.write_bytes(data)
        boundary = InputBoundary(folder)
        whole = list(load_archive(str(path), name, boundary))
        parts = archive_parts(str(path), name, len(data), part_bytes)
        parted = [i for p in parts for i in load_archive(str(path), name, boundary, None, p.start, p.stop)]
    for items in (whole, parted):
        sources = [item.source for item in items]
        assert len(sources) == len(set(sources)), sources
        assert all(re.fullmatch(rf"{re.escape(name)}(#[0-9]+)?", s) for s in sources), sources
        for item in items:
            if isinstance(item, Rejection):
                assert item.reason in REASONS and item.reason != "internal_error", item
            else:
                assert isinstance(item, Document) and item.url
    if data == SMALL[gzipped]:
        assert [i.source for i in parted] == [i.source for i in whole]
