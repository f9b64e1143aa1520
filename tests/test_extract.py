"""Tests for pipeline/extract.py: HTML main text and metadata, and tidied metadata."""

from __future__ import annotations

import gzip
import json

import pytest
import trafilatura
from trafilatura.settings import Extractor

from pipeline.contract import Document, Rejection
from pipeline.extract import (
    TRAFILATURA_OPTIONS,
    extract_main_text,
    flatten_tables,
    join_credentials,
    names_a_page,
    page_metadata,
    tidy_metadata,
)
from pipeline.run import prepare_document
from tests.corpus import DATA, SAMPLE_BENCHMARK, SAMPLE_SNIPPETS

# trafilatura's hostname is the registered domain; ours is the URL's host (see test_hostname_...).
FIELDS = ("title", "author", "date", "url")

PAGE_KEY = "05844573ca7e1fba714d715bb11ca08c26e25328999c74a1cb3bc8a0e4399f0f"


def _page(key: str = PAGE_KEY) -> str:
    return gzip.decompress((SAMPLE_BENCHMARK / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8")


@pytest.mark.parametrize("key", sorted(p.name.split(".")[0] for p in (SAMPLE_BENCHMARK / "html").iterdir()))
def test_page_metadata_agrees_with_trafilatura_extract_metadata(key: str) -> None:
    """Our slimmer metadata pass finds the same four fields as trafilatura's full one, with the date
    settings ``bare_extraction`` gives it."""
    page = _page(key)
    ours = page_metadata(trafilatura.load_html(page))
    theirs = trafilatura.extract_metadata(page, date_config=Extractor().date_params)
    assert [getattr(ours, f) for f in FIELDS] == [getattr(theirs, f) for f in FIELDS]


def test_extraction_equals_trafilatura_with_metadata_in_one_pass():
    """Parsing once and reading metadata apart changes nothing against one ``bare_extraction`` call."""
    page = _page()
    options = {**TRAFILATURA_OPTIONS, "with_metadata": True}
    theirs = trafilatura.bare_extraction(page, **options)
    doc = extract_main_text(Document("page.html", page, kind="html"))
    assert isinstance(doc, Document)
    assert doc.body == "\n\n".join(line for line in theirs.text.split("\n") if line.strip())
    assert [getattr(doc, f) for f in FIELDS] == [getattr(theirs, f) for f in FIELDS]


def test_real_page_gives_body_paragraphs_and_metadata():
    truth = json.loads((SAMPLE_BENCHMARK / "ground-truth.json").read_text(encoding="utf-8"))[PAGE_KEY]
    doc = extract_main_text(Document("page.html", _page(), kind="html"))
    assert isinstance(doc, Document)
    assert doc.kind == "text" and doc.title
    first_paragraph = truth["articleBody"].split("\n\n")[0]
    assert first_paragraph[:60] in doc.body
    assert "\n\n" in doc.body and "\n\n\n" not in doc.body


def test_page_without_main_text_is_rejected():
    page = "<html><head><title>x</title></head><body><script>var a = 1;</script><div></div></body></html>"
    result = extract_main_text(Document("empty.html", page, kind="html"))
    assert isinstance(result, Rejection)
    assert (result.reason, result.stage) == ("no_main_text", "extract")


def test_extraction_does_not_depend_on_what_was_seen_before():
    """trafilatura's own dedup (process-global) is off: the same page twice gives the same text twice."""
    first = extract_main_text(Document("a.html", _page(), kind="html"))
    second = extract_main_text(Document("b.html", _page(), kind="html"))
    assert first.body == second.body


def test_tidy_metadata_normalises_url_hostname_date_and_sets_group():
    doc = tidy_metadata(
        Document(
            "x.json#1",
            "text",
            url="https://WWW.Example.com/a/?utm_source=feed&id=3",
            date="Tue, 19 Nov 2024 10:00:00 +0000",
            group="exports",
        )
    )
    assert doc.url == "https://www.example.com/a/?id=3"
    assert doc.hostname == "example.com"
    assert doc.date == "2024-11-19"
    assert doc.group == "example.com"


def test_hostname_is_the_full_host_of_the_url_whatever_the_record_says():
    blog = tidy_metadata(Document("x.json#1", "text", url="https://Alice.WordPress.com/2024/a/"))
    other = tidy_metadata(
        Document("x.json#2", "text", url="https://bob.wordpress.com/b/", hostname="wordpress.com")
    )
    assert (blog.hostname, blog.group) == ("alice.wordpress.com", "alice.wordpress.com")
    assert (other.hostname, other.group) == ("bob.wordpress.com", "bob.wordpress.com")
    no_url = tidy_metadata(Document("x.json#3", "text", hostname="WWW.Example.org"))
    assert no_url.hostname == "example.org"  # a record's own field, when there is no URL


def _sample_page(name: str) -> str:
    return gzip.decompress((SAMPLE_SNIPPETS / "pages" / f"{name}.gz").read_bytes()).decode("utf-8")


def test_two_wordpress_blogs_are_two_hosts_not_one_domain():
    """Real pages of trafilatura's evaluation set: trafilatura calls both hosts wordpress.com."""
    hosts = []
    for name in ("grossefragen.wordpress.com.projekt.html", "sprechblase.wordpress.com.zapfsaeulen.html"):
        page = _sample_page(name)
        assert trafilatura.extract_metadata(page).hostname == "wordpress.com"
        doc = prepare_document(Document(name, page, kind="html"))
        assert isinstance(doc, Document)
        hosts.append((doc.hostname, doc.group, doc.url.split("/")[2]))
    assert hosts == [
        ("grossefragen.wordpress.com", "grossefragen.wordpress.com", "grossefragen.wordpress.com"),
        ("sprechblase.wordpress.com", "sprechblase.wordpress.com", "sprechblase.wordpress.com"),
    ]


@pytest.mark.parametrize(
    ("url", "page"),
    [
        ("https://example.com/2024/11/story.html", True),
        ("https://example.com/story", True),
        ("http://example.com/", True),
        ("https://example.com/media/photo.JPG", False),
        ("https://example.com/player/clip.mp4?autoplay=1", False),
        ("https://example.com/static/app.js", False),
        ("https://example.com/files/report.pdf", False),
        ("https://img.example.com/swr/player/Y3Jp/title", False),
        ("https://cdn.example.com/story", False),
        ("/relative/story", False),
        ("javascript:void(0)", False),
        ("https://[broken/", False),
        (None, False),
    ],
)
def test_names_a_page(url: str | None, page: bool):
    assert names_a_page(url) is page


def test_a_pages_url_is_never_an_assets():
    """A real page whose canonical link resolves onto its image host: no URL rather than the image's;
    the fetched URL when there is one, and the hostname is always the URL's."""
    page = gzip.decompress((DATA / "extract" / "ardmediathek-player.html.gz").read_bytes()).decode("utf-8")
    assert page_metadata(trafilatura.load_html(page)).url.startswith("https://img.ardmediathek.de/")

    alone = prepare_document(Document("page.html", page, kind="html"))
    fetched_url = "https://www.ardmediathek.de/swr/player/Y3JpZDovL3N3ci5kZS9hZXgvbzExNjIyMjY/x"
    fetched = prepare_document(Document("page.html", page, kind="html", url=fetched_url))

    assert isinstance(alone, Document) and isinstance(fetched, Document)
    assert (alone.url, alone.hostname, alone.title) == (
        None,
        None,
        "Nahrungsergänzungsmittel - Das dubiose Geschäft mit der Hoffnung",
    )
    assert (fetched.url, fetched.hostname) == (fetched_url, "ardmediathek.de")


def test_a_fetched_pages_hostname_is_its_urls_not_the_pages():
    """A benchmark page whose og:url names another host than the one it was fetched from."""
    truth = json.loads((SAMPLE_BENCHMARK / "ground-truth.json").read_text(encoding="utf-8"))
    checked = 0
    for key, item in sorted(truth.items()):
        page = _page(key)
        own = page_metadata(trafilatura.load_html(page)).url
        if not own or own.split("/")[2] == item["url"].split("/")[2]:
            continue
        doc = prepare_document(Document(f"{key}.html", page, kind="html", url=item["url"]))
        assert isinstance(doc, Document)
        assert doc.hostname == item["url"].split("/")[2].removeprefix("www.")
        assert doc.url.split("/")[2] == item["url"].split("/")[2]
        checked += 1
    assert checked >= 1


def test_tidy_metadata_without_url_keeps_folder_group():
    doc = tidy_metadata(Document("site/a.txt", "text", group="site", date="not a date"))
    assert (doc.hostname, doc.group, doc.date) == (None, "site", "not a date")


def test_layout_tables_become_paragraphs_and_empty_rows_go():
    prose = (
        "The council met on Tuesday and voted, after a long and heated debate, to rebuild the old bridge"
        " over the river before the winter floods."
    )
    page = (
        "<html><body><article><h1>Bridge</h1><table>"
        f"<tr><td></td><td></td></tr><tr><td>{prose}</td><td>{prose.replace('Tuesday', 'Friday')}</td></tr>"
        "</table><p>" + "More words of the article follow here in a paragraph of its own. " * 4 + "</p>"
        "</article></body></html>"
    )
    doc = extract_main_text(Document("page.html", page, kind="html"))
    assert isinstance(doc, Document)
    assert "|" not in doc.body
    assert f"{prose}\n\n{prose.replace('Tuesday', 'Friday')}" in doc.body


def test_data_tables_keep_their_rows():
    rows = [["Team", "Points"], ["Lions", "12"], ["Tigers", "9"]]
    assert flatten_tables(
        ["Standings", *("| " + " | ".join(r) + " |" for r in rows), "|---|---|", "| | |"]
    ) == [
        "Standings",
        "| Team | Points |",
        "| Lions | 12 |",
        "| Tigers | 9 |",
    ]


def test_an_authors_degrees_stay_with_the_name():
    assert join_credentials("Ilana Muhlstein; MS; RDN") == "Ilana Muhlstein, MS, RDN"
    assert join_credentials("Jane Doe; John Roe") == "Jane Doe; John Roe"
    assert join_credentials("Mary Lee; M.D.") == "Mary Lee, M.D."
