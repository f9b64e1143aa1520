"""Tests for pipeline/load.py: discovering input files, decoding bytes, splitting files into documents."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.contract import Document, Rejection
from pipeline.load import _json_loads, decode, discover, load_file

FRENCH = "Café résumé naïve — déjà vu. "
# A few sentences of Western European text whose bytes are not UTF-8 (é, ï, à, ù, ç, and an em dash).
FRENCH_TEXT = (
    "Le café était plein. "
    + FRENCH * 3
    + "Elle a mis à jour son résumé, naïve comme toujours — déjà vu. "
    + "Où est la gare? Ça va très bien, merci.\n"
) * 3


def random_bytes(seed: int, low: int, high: int, count: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(low, high) for _ in range(count))


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def load(root: Path, name: str, data: bytes | str | None = None) -> list[Document | Rejection]:
    """Load ``root/name`` (writing ``data`` there first when given) and return everything it yields."""
    path = root / name
    if data is not None:
        write(path, data)
    return list(load_file(path, root))


def only_document(items: list[Document | Rejection]) -> Document:
    assert len(items) == 1, items
    assert isinstance(items[0], Document), items[0]
    return items[0]


def only_rejection(items: list[Document | Rejection]) -> Rejection:
    assert len(items) == 1, items
    assert isinstance(items[0], Rejection), items[0]
    return items[0]


def relative(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


# ---------------------------------------------------------------------------------------------------
# discover


def test_discover_returns_files_sorted_by_relative_path(tmp_path: Path) -> None:
    for name in ("z.txt", "b/2.txt", "a.txt", "b/1.txt", "B.txt", "a/c/deep.txt"):
        write(tmp_path / name, "x")

    found = discover(tmp_path)

    assert relative(found, tmp_path) == ["B.txt", "a.txt", "a/c/deep.txt", "b/1.txt", "b/2.txt", "z.txt"]


def test_discover_skips_hidden_files_and_hidden_folders(tmp_path: Path) -> None:
    write(tmp_path / "kept.txt", "x")
    write(tmp_path / ".hidden.txt", "x")
    write(tmp_path / ".git" / "config", "x")
    write(tmp_path / "sub" / ".DS_Store", "x")
    write(tmp_path / "sub" / "kept.html", "x")

    assert relative(discover(tmp_path), tmp_path) == ["kept.txt", "sub/kept.html"]


def test_discover_skips_meta_json_sidecars_but_not_other_json(tmp_path: Path) -> None:
    write(tmp_path / "page.html", "<html></html>")
    write(tmp_path / "page.html.meta.json", '{"url": "https://example.com/"}')
    write(tmp_path / "export.json", "[]")

    assert relative(discover(tmp_path), tmp_path) == ["export.json", "page.html"]


def test_discover_does_not_follow_directory_symlink_loops(tmp_path: Path) -> None:
    write(tmp_path / "a" / "one.txt", "x")
    write(tmp_path / "b" / "two.txt", "x")
    (tmp_path / "a" / "loop").symlink_to(tmp_path, target_is_directory=True)  # a/loop -> root
    (tmp_path / "b" / "self").symlink_to(tmp_path / "b", target_is_directory=True)  # b/self -> b

    assert relative(discover(tmp_path), tmp_path) == ["a/one.txt", "b/two.txt"]


def test_discover_reads_file_symlinks_like_files(tmp_path: Path) -> None:
    write(tmp_path / "real.txt", "x")
    (tmp_path / "alias.txt").symlink_to(tmp_path / "real.txt")

    assert relative(discover(tmp_path), tmp_path) == ["alias.txt", "real.txt"]


def test_discover_excludes_the_output_folder_inside_input(tmp_path: Path) -> None:
    write(tmp_path / "article.txt", "x")
    write(tmp_path / "clean" / "records.jsonl", '{"text": "x"}\n')
    write(tmp_path / "clean" / "stats.json", "{}")
    write(tmp_path / "cleaner" / "other.txt", "x")  # a sibling sharing the prefix is still input

    assert relative(discover(tmp_path, exclude=tmp_path / "clean"), tmp_path) == [
        "article.txt",
        "cleaner/other.txt",
    ]


def test_discover_excludes_the_output_folder_given_as_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "raw" / "article.txt", "x")
    write(tmp_path / "raw" / "out" / "records.jsonl", "{}")
    monkeypatch.chdir(tmp_path)

    found = discover(Path("raw"), exclude=Path("raw/out"))

    assert [p.as_posix() for p in found] == ["raw/article.txt"]


# ---------------------------------------------------------------------------------------------------
# decode


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"Plain ASCII.\n", "Plain ASCII.\n", id="ascii"),
        pytest.param("Zoë’s naïve café — 東京\n".encode(), "Zoë’s naïve café — 東京\n", id="utf-8"),
        pytest.param("\ufeffZoë’s café\n".encode(), "Zoë’s café\n", id="utf-8-bom"),
        pytest.param("Zoë’s café — 東京\n".encode("utf-16"), "Zoë’s café — 東京\n", id="utf-16-bom-native"),
        pytest.param(b"\xff\xfe" + "Zoë’s café\n".encode("utf-16-le"), "Zoë’s café\n", id="utf-16-le-bom"),
        pytest.param(b"\xfe\xff" + "Zoë’s café\n".encode("utf-16-be"), "Zoë’s café\n", id="utf-16-be-bom"),
    ],
)
def test_decode_unicode_encodings(data: bytes, expected: str) -> None:
    assert decode(data, "doc.txt") == expected


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        pytest.param(FRENCH_TEXT, "cp1252", id="french-cp1252"),
        pytest.param(FRENCH_TEXT.replace("—", "-"), "latin-1", id="french-latin-1"),
        pytest.param(
            "El niño comió jamón en España, señor. " * 6,
            "latin-1",
            id="spanish-latin-1",
        ),
        pytest.param("Grüße aus München, schön dass Sie da sind. " * 6, "cp1252", id="german-cp1252"),
    ],
)
def test_decode_legacy_western_encodings(text: str, encoding: str) -> None:
    assert decode(text.encode(encoding), "doc.txt") == text


def test_load_html_page_declaring_iso_8859_1(tmp_path: Path) -> None:
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="iso-8859-1"><title>Déjà vu</title></head>\n'
        "<body><article><p>Café résumé naïve, déjà vu: où, ça, très.</p></article></body></html>\n"
    )

    doc = only_document(load(tmp_path, "page.html", page.encode("iso-8859-1")))

    assert doc.kind == "html"
    assert doc.body == page


def test_load_html_page_labelled_iso_8859_1_with_windows_1252_punctuation(tmp_path: Path) -> None:
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1"></head>'
        "<body><p>It’s the café’s “menu” — déjà vu.</p></body></html>"
    )

    doc = only_document(load(tmp_path, "page.html", page.encode("cp1252")))

    assert doc.body == page


# ---------------------------------------------------------------------------------------------------
# rejections


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="zero-bytes"),
        pytest.param(b" \n\t\r\n   \n", id="whitespace-only"),
    ],
)
def test_empty_input_is_rejected_as_empty(tmp_path: Path, data: bytes) -> None:
    rejection = only_rejection(load(tmp_path, "empty.txt", data))

    assert (rejection.source, rejection.reason) == ("empty.txt", "empty")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), id="png-header"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", id="pdf-header"),
        pytest.param(random.Random(7).randbytes(4096), id="random-bytes-with-nuls"),
        pytest.param(bytes(range(1, 32)) * 40, id="control-characters"),
    ],
)
def test_binary_input_is_rejected_as_binary(tmp_path: Path, data: bytes) -> None:
    rejection = only_rejection(load(tmp_path, "blob.txt", data))

    assert (rejection.source, rejection.reason) == ("blob.txt", "binary")


@pytest.mark.parametrize(
    "data",
    [
        # Every byte 0x80-0xff: not UTF-8, and no legacy encoding makes text of it.
        pytest.param(bytes(range(128, 256)) * 20, id="high-bytes-ascending"),
        pytest.param(random_bytes(3, 128, 256, 2000), id="random-high-bytes"),
        pytest.param(random_bytes(4, 1, 256, 2000), id="random-bytes-no-nul"),
    ],
)
def test_undecodable_garbage_is_rejected_as_decode_error(tmp_path: Path, data: bytes) -> None:
    assert b"\x00" not in data
    rejection = only_rejection(load(tmp_path, "garbage.txt", data))

    assert (rejection.source, rejection.reason) == ("garbage.txt", "decode_error")


def test_utf16_bom_with_invalid_body_is_rejected_as_decode_error() -> None:
    rejection = decode(b"\xff\xfe" + b"\x00\xd8" * 3, "bad.txt")  # lone high surrogates

    assert isinstance(rejection, Rejection)
    assert rejection.reason == "decode_error"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_unreadable_file_is_rejected_as_unreadable(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.txt", "You cannot read this.")
    path.chmod(0)
    try:
        rejection = only_rejection(load(tmp_path, "secret.txt"))
    finally:
        path.chmod(0o644)

    assert (rejection.source, rejection.reason) == ("secret.txt", "unreadable")


def test_dangling_symlink_is_rejected_as_unreadable(tmp_path: Path) -> None:
    (tmp_path / "gone.txt").symlink_to(tmp_path / "does-not-exist.txt")

    assert relative(discover(tmp_path), tmp_path) == ["gone.txt"]
    rejection = only_rejection(load(tmp_path, "gone.txt"))
    assert (rejection.source, rejection.reason) == ("gone.txt", "unreadable")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"<html>not gzip at all</html>", id="not-gzip"),
        pytest.param(gzip.compress(b"<html><body><p>cut short</p></body></html>" * 50)[:60], id="truncated"),
    ],
)
def test_broken_gzip_is_rejected_as_unreadable(tmp_path: Path, data: bytes) -> None:
    rejection = only_rejection(load(tmp_path, "page.html.gz", data))

    assert (rejection.source, rejection.reason) == ("page.html.gz", "unreadable")


# ---------------------------------------------------------------------------------------------------
# formats


def test_plain_text_file_is_one_text_document(tmp_path: Path) -> None:
    doc = only_document(load(tmp_path, "news/story.txt", "Title\n\nBody paragraph.\n"))

    assert (doc.source, doc.kind, doc.body, doc.group) == (
        "news/story.txt",
        "text",
        "Title\n\nBody paragraph.\n",
        "news",
    )


def test_html_is_recognised_by_content_without_html_suffix(tmp_path: Path) -> None:
    doc = only_document(load(tmp_path, "download", "<!DOCTYPE html>\n<html><body><p>x</p></body></html>"))

    assert doc.kind == "html"


def test_gzip_compressed_html_page(tmp_path: Path) -> None:
    page = (
        "<!DOCTYPE html><html><head><title>Zipped</title></head><body><p>Café inside gzip.</p></body></html>"
    )

    doc = only_document(load(tmp_path, "page.html.gz", gzip.compress(page.encode("utf-8"))))

    assert (doc.source, doc.kind, doc.body) == ("page.html.gz", "html", page)


def test_sidecar_meta_json_gives_the_url(tmp_path: Path) -> None:
    write(tmp_path / "page.html", "<html><body><p>Fetched page.</p></body></html>")
    write(tmp_path / "page.html.meta.json", json.dumps({"url": "https://example.com/news/1", "status": 200}))

    doc = only_document(load(tmp_path, "page.html"))

    assert doc.url == "https://example.com/news/1"


def test_sidecar_final_url_wins_over_requested_url(tmp_path: Path) -> None:
    write(tmp_path / "page.html", "<html><body><p>Redirected page.</p></body></html>")
    write(
        tmp_path / "page.html.meta.json",
        json.dumps({"url": "http://example.com/a", "final_url": "https://www.example.com/a/"}),
    )

    assert only_document(load(tmp_path, "page.html")).url == "https://www.example.com/a/"


def test_jsonl_broken_line_is_rejected_alone_with_line_numbers(tmp_path: Path) -> None:
    lines = [
        json.dumps({"text": "First article."}),
        '{"text": "broken line, no closing brace"',
        "",  # blank lines are skipped but still count for numbering
        json.dumps({"text": "Fourth line.", "title": "Four"}),
        json.dumps({"content": "Fifth line."}),
    ]

    items = load(tmp_path, "export.jsonl", "\n".join(lines) + "\n")

    assert [(type(i).__name__, i.source) for i in items] == [
        ("Document", "export.jsonl#1"),
        ("Rejection", "export.jsonl#2"),
        ("Document", "export.jsonl#4"),
        ("Document", "export.jsonl#5"),
    ]
    assert items[1].reason == "parse_error"
    assert [i.body for i in items if isinstance(i, Document)] == [
        "First article.",
        "Fourth line.",
        "Fifth line.",
    ]


def test_jsonl_line_with_unicode_line_separator_stays_one_record(tmp_path: Path) -> None:
    # JSON allows raw U+2028/U+2029 inside strings; only "\n" ends a JSON line.
    lines = ['{"text": "one\u2028still one\u2029and still one"}', '{"text": "two"}']

    items = load(tmp_path, "export.jsonl", "\n".join(lines))

    assert [i.source for i in items] == ["export.jsonl#1", "export.jsonl#2"]
    assert all(isinstance(i, Document) for i in items)


def test_json_array_gives_one_document_per_item(tmp_path: Path) -> None:
    data = [{"text": "First."}, {"text": "Second."}, "not an object"]

    items = load(tmp_path, "dump/array.json", json.dumps(data))

    assert [(type(i).__name__, i.source) for i in items] == [
        ("Document", "dump/array.json#1"),
        ("Document", "dump/array.json#2"),
        ("Rejection", "dump/array.json#3"),
    ]
    assert [items[0].body, items[1].body] == ["First.", "Second."]
    assert items[2].reason == "parse_error"


def test_json_object_without_text_field_is_a_parse_error(tmp_path: Path) -> None:
    rejection = only_rejection(
        load(tmp_path, "meta.json", json.dumps({"title": "No body", "url": "https://x.org/"}))
    )

    assert (rejection.source, rejection.reason) == ("meta.json", "parse_error")


def test_broken_json_file_is_a_parse_error(tmp_path: Path) -> None:
    rejection = only_rejection(load(tmp_path, "broken.json", '{"text": "unterminated'))

    assert (rejection.source, rejection.reason) == ("broken.json", "parse_error")


def test_json_file_holding_json_lines_is_split_by_line(tmp_path: Path) -> None:
    items = load(tmp_path, "lines.json", '{"text": "a"}\n{"text": "b"}\n')

    assert [(type(i).__name__, i.source) for i in items] == [
        ("Document", "lines.json#1"),
        ("Document", "lines.json#2"),
    ]


def test_json_record_with_html_field_is_an_html_document(tmp_path: Path) -> None:
    page = "<html><body><article><p>From the html field.</p></article></body></html>"

    doc = only_document(
        load(tmp_path, "one.json", json.dumps({"html": page, "url": "https://example.com/p"}))
    )

    assert (doc.kind, doc.body, doc.url) == ("html", page, "https://example.com/p")


HTML_BODY = (
    "<p>The city council voted on Tuesday to build protected cycle lanes along four streets in the centre, "
    "after a two-year consultation.</p>\n<p>Work on the first section is due to start in the spring, and the "
    "council expects the whole network to be finished within three years.</p>"
    "<script>trackPageView();</script>"
    '<div class="share">Share this: Facebook Twitter</div><br>Opponents said they would ask for a review.'
)


def test_a_jsonl_record_whose_body_is_html_is_extracted(tmp_path: Path) -> None:
    """A scraper's export with the article body in markup: extracted, not taken for text."""
    from pipeline.run import prepare_document  # noqa: PLC0415 - extraction, after loading

    line = json.dumps({"title": "Cycle lanes", "body": HTML_BODY, "url": "https://example.com/lanes"})
    doc = only_document(load(tmp_path, "export.jsonl", line + "\n"))
    assert doc.kind == "html"

    prepared = prepare_document(doc)

    assert isinstance(prepared, Document)
    assert prepared.body.split("\n\n") == [
        "The city council voted on Tuesday to build protected cycle lanes along four streets in the centre, "
        "after a two-year consultation.",
        "Work on the first section is due to start in the spring, and the council expects the whole network "
        "to be finished within three years.",
        "Opponents said they would ask for a review.",
    ]
    assert (prepared.title, prepared.url) == ("Cycle lanes", "https://example.com/lanes")


def test_a_short_html_body_keeps_its_text() -> None:
    """trafilatura finds no main text in a bare fragment this short; as the page's article it does."""
    from pipeline.load import document_from_json  # noqa: PLC0415
    from pipeline.run import prepare_document  # noqa: PLC0415

    doc = document_from_json({"content": "<p>One short paragraph.</p>"}, "a.json")
    prepared = prepare_document(doc)  # type: ignore[arg-type]
    assert isinstance(prepared, Document) and prepared.body == "One short paragraph."


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("<p>One.</p>", "html"),
        ("  <div>Starts with markup</div> and goes on", "html"),
        ("Intro<br>second line<br>third line<br>", "html"),
        ("Use the <p> tag for a paragraph and <br> for a line break.", "text"),  # quotes a tag or two
        ("<alice> hi there, <bob> hello", "text"),  # a chat log: no element is closed
        ("A long article " * 300 + "</p> </p> </p>", "text"),  # three marks in 4,500 characters
        ("I <3 this.", "text"),
    ],
)
def test_html_in_a_text_field_is_told_conservatively(text: str, kind: str) -> None:
    from pipeline.load import document_from_json  # noqa: PLC0415

    doc = document_from_json({"text": text}, "a.json")
    assert isinstance(doc, Document) and doc.kind == kind
    if kind == "text":
        assert doc.body == text


def test_json_record_prefers_text_over_html(tmp_path: Path) -> None:
    record = {"text": "Already extracted.", "raw_html": "<html><body><p>Raw.</p></body></html>"}

    doc = only_document(load(tmp_path, "one.json", json.dumps(record)))

    assert (doc.kind, doc.body) == ("text", "Already extracted.")


def test_json_field_aliases(tmp_path: Path) -> None:
    record = {
        "headline": "Aliased headline",
        "link": "https://example.com/aliased",
        "byline": "Ada Lovelace",
        "published": "2024-11-19T08:30:00Z",
        "articleBody": "The body under a schema.org name.",
        "domain": "example.com",
    }

    doc = only_document(load(tmp_path, "one.json", json.dumps(record)))

    assert (doc.title, doc.url, doc.author, doc.date, doc.body, doc.hostname) == (
        "Aliased headline",
        "https://example.com/aliased",
        "Ada Lovelace",
        "2024-11-19T08:30:00Z",
        "The body under a schema.org name.",
        "example.com",
    )


def test_json_authors_list_and_paragraph_list(tmp_path: Path) -> None:
    record = {
        "title": "T",
        "authors": ["Ada Lovelace", {"name": "Charles Babbage"}],
        "content": ["First paragraph.", "Second paragraph."],
    }

    doc = only_document(load(tmp_path, "one.json", json.dumps(record)))

    assert doc.author == "Ada Lovelace, Charles Babbage"
    assert doc.body == "First paragraph.\n\nSecond paragraph."


def test_a_lone_surrogate_escape_in_json_becomes_a_replacement_character(tmp_path: Path) -> None:
    # An emoji cut in half by an exporter: "\ud83d" alone is no character, and UTF-8 output cannot hold it.
    (tmp_path / "a.jsonl").write_text(
        '{"title": "Cut \\ud83d", "url": "https://example.org/\\udc00", "text": "Broken \\ud83d emoji, '
        'whole \\ud83d\\ude00 one."}\n',
        encoding="utf-8",
    )
    [doc] = list(load_file(tmp_path / "a.jsonl", tmp_path))
    assert isinstance(doc, Document)
    assert doc.body == "Broken \ufffd emoji, whole \U0001f600 one."
    assert doc.title == "Cut \ufffd" and doc.url == "https://example.org/\ufffd"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(b'{"text": "caf\xc3\xa9"}', {"text": "caf\u00e9"}, id="utf8-bytes"),
        pytest.param('{"n": NaN}', "nan", id="nan-as-json-reads-it"),
        pytest.param('{"t": "\\ud83d x"}', {"t": "\ufffd x"}, id="lone-surrogate"),
        pytest.param(b'{"t": "\\udc00"}', {"t": "\ufffd"}, id="lone-surrogate-in-bytes"),
        pytest.param("[" * 1100 + "]" * 1100, ValueError, id="past-orjson-depth"),
        # orjson refuses NaN, so json reads it, and stops at its recursion limit short of 1,000 levels
        pytest.param("[" * 1000 + "NaN" + "]" * 1000, ValueError, id="past-json-recursion-limit"),
        pytest.param('{"a": 1}\n{"b": 2}', ValueError, id="two-values"),
    ],
)
def test_json_loads_reads_what_json_reads_and_reports_every_failure_as_a_value_error(text, expected) -> None:
    if expected is ValueError:
        with pytest.raises(ValueError):
            _json_loads(text)
    elif expected == "nan":
        assert str(_json_loads(text)["n"]) == "nan"
    else:
        assert _json_loads(text) == expected


def test_a_large_json_lines_file_is_split_from_its_bytes_line_by_line(tmp_path: Path) -> None:
    # 20,000 records, one with a character outside Latin-1: read from the bytes, not a 2-4x decoded copy.
    lines = [json.dumps({"text": f"record {n} \u2019"}, ensure_ascii=False) for n in range(20_000)]
    items = load(tmp_path, "big.jsonl", "\n".join(lines) + "\n")

    assert len(items) == 20_000
    assert items[-1].source == "big.jsonl#20000" and items[-1].body == "record 19999 \u2019"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=9000) | st.text(max_size=50))
def test_control_ratio_counts_as_the_regex(text: str) -> None:
    from pipeline.load import _CONTROL, _control_ratio

    sample = text[:8192]
    assert _control_ratio(text) == len(_CONTROL.findall(sample)) / max(len(sample), 1)
