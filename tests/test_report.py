"""Tests for pipeline/report/: report.json on a corpus with known clusters, the ``pipeline report`` command,
escaping of hostile text in report.html, the page's size budget, and its files as package data. The page in
a real browser: tests/test_report_browser.py."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import webbrowser
import zipfile
from collections import Counter, defaultdict
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pipeline import contract, report
from pipeline.cli import main
from pipeline.report import REPORT_HTML, REPORT_JSON, ReportConfig, load_report, word_diff
from pipeline.run import RunConfig, clean_folder
from tests.corpus import SEED, syndicated_corpus

# Scraped text that would run if a report pasted it into HTML or its script data unescaped.
SCRIPT = "<script>window.__pwned = 1; alert(1)</script>"
IMG = '<img src=x onerror="window.__pwned = 2; alert(2)">'
BREAKOUT = "</script><script>window.__pwned = 3; alert(3)</script>"
JS_URL = "javascript:window.__pwned=4"
MARKUP = "[bold red]not bold[/] and [link=https://example.org]no link[/link]"
HOSTILE_TITLE = f"Council budget {SCRIPT} vote"
HOSTILE_BODY = [
    "The city council met on Tuesday to debate the budget for the coming year, and members argued for hours "
    "about roads, schools and the harbour before a late vote that split the chamber down the middle.",
    f"A scraper saved this page with {IMG} in the middle of a paragraph and a stray {BREAKOUT} tag after "
    "it, which a report must show as text and never run.",
    "Residents who spoke at the public hearing asked for more money for the library and for repairs to the "
    "Main Street bridge, which has been closed to trucks since the spring floods damaged its supports.",
    f"Markup such as {MARKUP} must print literally in a terminal, and the mayor said the final budget keeps "
    "property taxes flat for a third year while adding two bus routes and a summer jobs programme.",
]
HARBOUR_BODY = [
    "Fishing boats returned to the harbour on Monday after a week of storms kept the fleet tied up at the "
    "quay, and the first catch of the season sold out at the market within an hour of the boats landing.",
    "Harbour master Ellen Price said crews had lost about nine days of work, and that the co-operative would "
    "ask the regional fund for help with repairs to nets and two damaged wheelhouses before the summer.",
    "Buyers from three towns along the coast drove in before dawn, and prices for cod and haddock were the "
    "highest the market has recorded since the new auction hall opened four years ago on the east pier.",
]
EDITED_FROM, EDITED_TO = "on Tuesday", "on Wednesday"
REPO = Path(__file__).resolve().parents[1]


def write_hostile_documents(root: Path) -> None:
    """Two clusters of hostile documents under ``root/hostile``: a text file whose name, title and body
    carry script payloads and its edited copy; a JSONL export of one story twice, with a ``javascript:``
    URL and a payload in the title."""
    folder = root / "hostile"
    folder.mkdir(parents=True, exist_ok=True)
    original = "\n\n".join([HOSTILE_TITLE, HOSTILE_TITLE, *HOSTILE_BODY]) + "\n"
    edited = original.replace(EDITED_FROM, EDITED_TO)
    (folder / f"{IMG}.txt").write_text(original, encoding="utf-8")
    (folder / "[bold]copy[red] <b>.txt").write_text(edited, encoding="utf-8")
    text = "\n\n".join(HARBOUR_BODY)
    rows = [
        {"url": JS_URL, "title": f"Harbour {IMG}", "text": text},
        {
            "url": "https://example.org/harbour?q=<script>",
            "title": f"Harbour {IMG}",
            "text": text + " Extra.",
        },
    ]
    (folder / "export.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def clusters_by_sources(rep: dict[str, Any]) -> list[list[str]]:
    """Each cluster of a report as the sorted sources of its documents, the kept one included."""
    return sorted(
        sorted([c["kept"]["source"], *(m["source"] for m in c["members"])]) for c in rep["clusters"]
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, str]]]:
    """The syndicated corpus (20 articles: 92 documents, 15 clusters) cleaned; its truth."""
    root = tmp_path_factory.mktemp("report")
    truth = syndicated_corpus(root / "raw", limit=20)
    clean_folder(root / "raw", root / "out", RunConfig(workers=1))
    return root / "out", truth


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    write_hostile_documents(root / "raw")
    clean_folder(root / "raw", root / "out", RunConfig(workers=1))
    return root / "out"


# ---------------------------------------------------------------------------------------------------
# report.json


def test_a_run_writes_both_reports(corpus: tuple[Path, dict[str, dict[str, str]]]) -> None:
    out, _ = corpus
    assert (out / REPORT_JSON).is_file() and (out / REPORT_HTML).is_file()
    assert report.reports_are_current(out)


def test_report_json_clusters_are_the_corpus_truth(corpus: tuple[Path, dict[str, dict[str, str]]]) -> None:
    out, truth = corpus
    rep = load_report(out)
    groups: dict[str, list[str]] = defaultdict(list)
    for source, item in truth.items():
        groups[item["cluster"]].append(source)
    expected = sorted(sorted(g) for g in groups.values() if len(g) > 1)
    assert len(expected) == 15
    assert clusters_by_sources(rep) == expected

    records = {r["id"]: r for r in contract.read_jsonl(out / contract.RECORDS)}
    duplicates = {d["id"]: d for d in contract.read_jsonl(out / contract.DUPLICATES)}
    sizes = [(-c["size"], c["id"]) for c in rep["clusters"]]
    assert sizes == sorted(sizes)  # by size, then id
    for cluster in rep["clusters"]:
        kept = records[cluster["id"]]
        assert cluster["kept"] == {
            "id": kept["id"],
            "source": kept["source"],
            "url": kept["url"],
            "title": kept["title"],
            "length": len(kept["text"]),
            "date": kept["date"],
        }
        assert cluster["size"] == len(cluster["members"]) + 1
        for member in cluster["members"]:
            dup = duplicates[member["id"]]
            assert dup["duplicate_of"] == cluster["id"]
            for name in ("source", "url", "title", "kind", "reason"):
                assert member[name] == dup[name]
            assert member["similarity"] == round(dup["similarity"], 4)
            assert member["containment"] == round(dup["containment"], 4)
            assert member["reason"]
    # copies cut short are near copies with a low Jaccard but a high containment
    truncated = [m for c in rep["clusters"] for m in c["members"] if m["source"].endswith("-truncated.txt")]
    assert any(m["similarity"] < 0.8 <= m["containment"] for m in truncated)


def test_report_json_counts_config_and_histogram(corpus: tuple[Path, dict[str, dict[str, str]]]) -> None:
    out, truth = corpus
    rep = load_report(out)
    duplicates = contract.read_jsonl(out / contract.DUPLICATES)
    kinds = Counter(d["kind"] for d in duplicates)
    assert rep["counts"] == {
        "documents": len(truth),
        "kept": len(contract.read_jsonl(out / contract.RECORDS)),
        "duplicates": len(duplicates),
        "exact": kinds["exact"],
        "near": kinds["near"],
        "rejected": 0,
        "rejected_by_reason": {},
        "clusters": 15,
        "largest_cluster": max(c["size"] for c in rep["clusters"]),
        "documents_in_clusters": len(duplicates) + 15,
    }
    stats = json.loads((out / contract.STATS).read_text(encoding="utf-8"))
    assert rep["config"] == stats["config"]
    assert rep["config"]["minhash"]["threshold"] == 0.8
    bins = rep["similarity_histogram"]["bins"]
    assert len(bins) == 20 and bins[0]["from"] == 0.0 and bins[-1]["to"] == 1.0
    assert sum(b["exact"] for b in bins) == kinds["exact"] and sum(b["near"] for b in bins) == kinds["near"]
    for d in duplicates:
        [b] = [b for b in bins if b["from"] <= d["similarity"] < b["to"] or d["similarity"] == b["to"] == 1.0]
        assert b[d["kind"]] > 0


def test_histogram_bins_do_not_suffer_from_binary_floats(tmp_path: Path) -> None:
    """0.85 * 20 is 16.999999999999996: a copy at exactly 0.85 belongs in the 0.85-0.90 bin."""
    out = synthetic_output(tmp_path, clusters=1, copies=3, similarities=(0.85, 0.8, 1.0))
    bins = report.build_report(out)[0]["similarity_histogram"]["bins"]
    assert [(b["from"], b["near"]) for b in bins if b["near"]] == [(0.8, 1), (0.85, 1)]
    assert [(b["from"], b["exact"]) for b in bins if b["exact"]] == [(0.95, 1)]


def test_boilerplate_removed_most_often_per_source(corpus: tuple[Path, dict[str, dict[str, str]]]) -> None:
    out, truth = corpus
    rep = load_report(out)
    by_source = {s["source"]: s for s in rep["boilerplate"]}
    # Every article file of the Daily Ledger carries its own footer (learned) and its share widget (rule),
    # the kept ones and the copies alike; its briefs carry neither.
    articles = [s for s in truth if s.startswith("dailyledger/") and "brief" not in s]
    ledger = by_source["dailyledger"]
    assert ledger["documents"] == len([s for s in truth if s.startswith("dailyledger/")])
    counts = {item["line"]: item["count"] for item in ledger["top"]}
    assert counts["Tips? Write to the Daily Ledger desk at tips@dailyledger.example"] == len(articles)
    assert counts["Share this:"] == len(articles)
    # recomputed from every document's removed_lines, not from the last run's stats
    rows = contract.read_jsonl(out / contract.RECORDS) + contract.read_jsonl(out / contract.DUPLICATES)
    expected = Counter(
        line for r in rows if r["source"].startswith("dailyledger/") for line in r["removed_lines"]
    )
    assert ledger["lines_removed"] == sum(expected.values())
    assert ledger["distinct_lines"] == len(expected)
    top = sorted(expected.items(), key=lambda item: (-item[1], item[0]))[:20]
    assert [(i["line"], i["count"]) for i in ledger["top"]] == top
    assert len(rep["boilerplate"]) == 6  # the six sites
    # most documents first, then most lines removed
    order = [(-s["documents"], -s["lines_removed"], s["source"]) for s in rep["boilerplate"]]
    assert order == sorted(order)
    assert rep["boilerplate"][0]["documents"] > rep["boilerplate"][-1]["documents"]


def sources_output(root: Path, documents: dict[str, int], learn_min_docs: int | None = 3) -> Path:
    """An OUTPUT folder of kept records only, ``documents[host]`` of them per host; each record's
    removed lines: ``Share this:`` (on every host), ``Footer of HOST`` and one line its own."""
    out = root / "out"
    out.mkdir(parents=True)
    with (out / contract.RECORDS).open("w", encoding="utf-8") as records:
        for host, n in documents.items():
            for i in range(n):
                record = {"id": f"{host}-{i}", "source": f"{host}/{i}.html", "url": f"https://{host}/{i}"}
                record |= {"title": f"{host} {i}", "author": None, "text": "Text.", "date": None}
                removed = ["Share this:", f"Footer of {host}", f"Only in {host}/{i}"]
                record |= {"hostname": host, "content_hash": f"{host}{i}", "removed_lines": removed}
                records.write(json.dumps(record) + "\n")
    (out / contract.DUPLICATES).write_text("")
    (out / contract.REJECTED).write_text("")
    config: dict[str, Any] = {"minhash": {"threshold": 0.8}}
    if learn_min_docs is not None:
        config["cleanup"] = {"learn_min_docs": learn_min_docs}
    (out / contract.STATS).write_text(json.dumps({"config": config}))
    return out


# a crawl of many small sites, as trafilatura's evaluation set is (most sources one or two documents)
MANY_SMALL_SITES = (
    {"big.example": 40, "mid.example": 12, "three.example": 3, "pair.example": 2}
    | {f"site{i:02d}.example": 1 for i in range(30)}
    | {"<b>bold</b>.example": 1}
)


def test_boilerplate_sources_by_documents_small_ones_folded(tmp_path: Path) -> None:
    from pipeline.report.page import boilerplate_view

    out = sources_output(tmp_path, MANY_SMALL_SITES)
    rep, _ = report.build_report(out)
    sources = rep["boilerplate"]
    assert [s["source"] for s in sources[:4]] == [
        "big.example",
        "mid.example",
        "three.example",
        "pair.example",
    ]
    assert [s["documents"] for s in sources] == sorted((s["documents"] for s in sources), reverse=True)
    assert len(sources) == len(MANY_SMALL_SITES)  # report.json lists every source

    view = boilerplate_view(sources, ReportConfig(), min_documents=3)
    # one by one: the sources the cleanup can learn boilerplate from (3 documents or more)
    assert [s["source"] for s in view["sources"]] == ["big.example", "mid.example", "three.example"]
    fold = view["folded"]
    assert fold["count"] == 32 and fold["documents"] == 2 + 31 and fold["past_the_largest"] == 0
    assert fold["lines_removed"] == 3 * (2 + 31)
    assert [s["source"] for s in fold["sources"]][0] == "pair.example"
    # across them: the line on every one of these hosts first, then by times
    assert fold["top"][0] == {"line": "Share this:", "count": 33, "sources": 32}
    assert fold["top"][1] == {"line": "Footer of pair.example", "count": 2, "sources": 1}

    # past the largest: the one-by-one list is capped, the rest joins the group
    view = boilerplate_view(sources, ReportConfig(html_sources=2, html_small_sources=5), min_documents=3)
    assert [s["source"] for s in view["sources"]] == ["big.example", "mid.example"]
    assert view["folded"]["count"] == 33 and view["folded"]["past_the_largest"] == 1
    assert [s["source"] for s in view["folded"]["sources"]][:2] == ["three.example", "pair.example"]
    assert len(view["folded"]["sources"]) == 5

    # the run's own learning minimum decides (stats.json), with the cleanup's default when it does not say
    view = boilerplate_view(sources, ReportConfig(), min_documents=2)
    assert [s["source"] for s in view["sources"]][-1] == "pair.example"


def test_boilerplate_tab_in_the_page(tmp_path: Path) -> None:
    out = sources_output(tmp_path / "a", MANY_SMALL_SITES, learn_min_docs=None)
    report.write_reports(out, ReportConfig(html_small_sources=10))
    page = (out / REPORT_HTML).read_text(encoding="utf-8")
    sections = re.findall(r'<section class="bp-source">\s*<h3><span class="bp-name">([^<]*)<', page)
    assert sections == ["big.example", "mid.example", "three.example"]  # the cleanup's default: 3
    assert page.count('<details class="bp-fold">') == 1 and '<details class="bp-fold" open' not in page
    assert re.search(r'<span class="bp-fold-title">32 smaller sources</span>', page)
    assert "33 documents, 99 lines removed" in page and "fewer than 3 documents each" in page
    assert "The first 10 of them (report.json lists them all)" in page
    fold = page[page.index('<details class="bp-fold">') : page.index("</details>")]
    assert fold.count('<td class="bp-name">') == 10
    assert "&lt;b&gt;bold&lt;/b&gt;.example" in page and "<b>" not in page  # escaped like every source
    # the same with the run's own minimum
    out = sources_output(tmp_path / "b", MANY_SMALL_SITES, learn_min_docs=2)
    report.write_reports(out)
    page = (out / REPORT_HTML).read_text(encoding="utf-8")
    assert re.search(r'<span class="bp-fold-title">31 smaller sources</span>', page)
    assert "Each of them" in page and "fewer than 2 documents each" in page


def test_report_covers_every_run_and_is_rewritten_only_when_outputs_change(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(SEED, raw / "seed.txt")
    out = tmp_path / "out"
    clean_folder(raw, out, RunConfig(workers=1))
    assert load_report(out)["counts"]["clusters"] == 0
    html_mtime = (out / REPORT_HTML).stat().st_mtime_ns

    clean_folder(raw, out, RunConfig(workers=1))  # nothing new: the report stands
    assert (out / REPORT_HTML).stat().st_mtime_ns == html_mtime

    # other bytes (the same bytes under another name are skipped as seen), the same clean text
    (raw / "later-copy.txt").write_text(SEED.read_text(encoding="utf-8") + "\n\n\n", encoding="utf-8")
    clean_folder(raw, out, RunConfig(workers=1))
    rep = load_report(out)
    assert rep["counts"]["documents"] == 2
    [cluster] = rep["clusters"]
    assert {cluster["kept"]["source"], cluster["members"][0]["source"]} == {"seed.txt", "later-copy.txt"}
    assert "kept by an earlier run" in cluster["members"][0]["reason"]


def test_report_is_stale_when_outputs_or_configuration_change(hostile: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(hostile, out)
    assert report.reports_are_current(out)
    stats = json.loads((out / contract.STATS).read_text(encoding="utf-8"))
    stats["config"]["minhash"]["threshold"] = 0.7  # as after --rebuild --threshold 0.7
    (out / contract.STATS).write_text(json.dumps(stats), encoding="utf-8")
    assert not report.reports_are_current(out)
    report.update_reports(out)
    assert report.reports_are_current(out)
    assert load_report(out)["config"]["minhash"]["threshold"] == 0.7
    with (out / contract.REJECTED).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"source": "x", "reason": "empty", "detail": "", "stage": "load"}) + "\n")
    assert not report.reports_are_current(out)
    (out / REPORT_HTML).unlink()
    report.update_reports(out)
    assert report.reports_are_current(out)
    assert load_report(out)["counts"]["rejected_by_reason"] == {"empty": 1}


def test_word_diff_marks_the_changed_words() -> None:
    kept = "The council met on Tuesday.\n\nIt voted late."
    copy = "The council met on Wednesday.\n\nIt voted late. Extra words"
    segments = word_diff(kept, copy)
    assert segments == [
        ("=", "The council met on "),
        ("-", "Tuesday. "),
        ("+", "Wednesday.\n\n"),
        ("=", "It voted late. "),
        ("+", "Extra words"),
    ]
    # the kept side and the copy side each read back word for word
    assert "".join(t for op, t in segments if op != "+").split() == kept.split()
    assert "".join(t for op, t in segments if op != "-").split() == copy.split()
    assert word_diff("same  words\nhere", "same words here") == [("=", "same  words\nhere")]


# ---------------------------------------------------------------------------------------------------
# pipeline report


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(["report", *map(str, args)])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_table(
    corpus: tuple[Path, dict[str, dict[str, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, truth = corpus
    rep = load_report(out)
    code, stdout, stderr = run_cli(capsys, out, "--top", "3")
    assert (code, stderr) == (0, "")
    assert re.search(rf"documents \(all runs\)\s*│\s*{len(truth)}\b", stdout)
    assert re.search(r"clusters\s*│\s*15\b", stdout)
    assert re.search(r"threshold / containment\s*│\s*0\.8 / 0\.9", stdout)
    assert "Largest clusters (3 of 15)" in stdout
    listed = [c["id"] for c in rep["clusters"] if c["id"] in stdout]
    assert listed == [c["id"] for c in rep["clusters"][:3]]
    assert "0.95–1.00" in stdout  # the histogram


def test_cli_json_and_csv(
    corpus: tuple[Path, dict[str, dict[str, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = corpus
    rep = load_report(out)
    code, stdout, _ = run_cli(capsys, out, "--format", "json", "--top", "2")
    assert code == 0
    data = json.loads(stdout)
    assert data["clusters"] == rep["clusters"][:2]
    assert data["counts"] == rep["counts"] and data["config"] == rep["config"]

    code, stdout, _ = run_cli(capsys, out, "--format", "csv", "--top", "0")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert tuple(rows[0]) == report.CSV_FIELDS
    assert len(rows) == rep["counts"]["duplicates"]
    first = rep["clusters"][0]
    assert {r["member_source"] for r in rows if r["cluster_id"] == first["id"]} == {
        m["source"] for m in first["members"]
    }
    assert all(r["kind"] in ("exact", "near") and 0 <= float(r["similarity"]) <= 1 for r in rows)


def test_cli_one_cluster_shows_a_word_diff(hostile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rep = load_report(hostile)
    [council] = [c for c in rep["clusters"] if "Council" in (c["kept"]["title"] or "")]
    [member] = council["members"]
    # the longest text is kept: the copy edited to "Wednesday"
    assert council["kept"]["source"] == "hostile/[bold]copy[red] <b>.txt"
    for cluster_id in (council["id"], member["id"]):  # a duplicate's id finds its cluster too
        code, stdout, stderr = run_cli(capsys, hostile, "--cluster", cluster_id)
        assert (code, stderr) == (0, "")
        assert f"Cluster {council['id']}: 2 documents" in stdout
        # captured output has no colour: git's word-diff markers, words only in the kept text first
        assert "[-Wednesday-] {+Tuesday+}" in stdout
        # rich markup in scraped text prints literally
        assert "kept hostile/[bold]copy[red] <b>.txt" in stdout
        assert IMG in stdout

    code, stdout, _ = run_cli(capsys, hostile, "--cluster", council["id"], "--format", "json")
    detail = json.loads(stdout)
    assert detail["id"] == council["id"] and detail["kept"]["text"]
    [diff] = [m["diff"] for m in detail["members"]]
    assert ["-", "Wednesday "] in diff and ["+", "Tuesday "] in diff
    assert MARKUP in detail["kept"]["text"]

    code, stdout, _ = run_cli(capsys, hostile, "--cluster", council["id"], "--format", "csv")
    assert [r["member_id"] for r in csv.DictReader(io.StringIO(stdout))] == [member["id"]]


def test_cli_errors_are_one_line_exit_2(
    tmp_path: Path, hostile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    for args, message in (
        ((tmp_path / "missing",), f"output folder not found: {tmp_path / 'missing'}"),
        ((tmp_path / "empty",), "records.jsonl, duplicates.jsonl, rejected.jsonl, stats.json missing"),
        ((hostile, "--cluster", "0123456789abcdef"), "no cluster, kept record or duplicate with id"),
        ((hostile, "--top", "-1"), "--top must be >= 0"),
        ((hostile, "--format", "xml"), "invalid choice: 'xml'"),
    ):
        code, stdout, stderr = run_cli(capsys, *args)
        assert code == 2, args
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert stderr.startswith("pipeline: error: ") and message in stderr, stderr


def test_cli_open_writes_a_missing_report_and_opens_it(
    hostile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    shutil.copytree(hostile, out)
    (out / REPORT_HTML).unlink()
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda uri: opened.append(uri) or True)
    code, stdout, _ = run_cli(capsys, out, "--open")
    assert code == 0
    assert opened == [(out / REPORT_HTML).resolve().as_uri()]
    assert stdout.strip() == f"opened {opened[0]}"
    assert (out / REPORT_HTML).is_file()


# ---------------------------------------------------------------------------------------------------
# report.html: escaping and size


class Elements(HTMLParser):
    """The elements and attributes of a page, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.attributes: list[tuple[str, str, str | None]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attributes += [(tag, name, value) for name, value in attrs]
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)
            self._in_script = False


def test_hostile_text_is_escaped_in_the_page(hostile: Path) -> None:
    page = (hostile / REPORT_HTML).read_text(encoding="utf-8")
    for payload in (SCRIPT, IMG, BREAKOUT, "<b>.txt", "alert(1)</script>"):
        assert payload not in page
    assert page.count("</script>") == 2  # the data block and the page's own script
    elements = Elements()
    elements.feed(page)
    assert elements.tags["script"] == 2 and elements.tags["img"] == 0 and elements.tags["b"] == 0
    assert not [a for a in elements.attributes if a[1].startswith("on")]
    assert not [a for a in elements.attributes if a[2] and "javascript:" in a[2]]
    # the data block parses back to the hostile text, unchanged
    data = json.loads(elements.scripts[0])
    fields = [f for c in data["clusters"] for f in (*c[:6], *(f for m in c[6] for f in m))]
    assert f"hostile/{IMG}.txt" in fields and HOSTILE_TITLE in fields and JS_URL in fields
    assert any(BREAKOUT in "".join(tokens) for tokens, _, _ in data["diffs"])
    assert "\\u003cscript\\u003e" in page
    # static parts (the boilerplate view) escape with entities
    assert html_escaped(HOSTILE_TITLE) in page


def html_escaped(text: str) -> str:
    return html.escape(text, quote=False)


class Texts(HTMLParser):
    """The text of a page outside its script elements, as a browser reads it (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._skip = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip = tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip = False

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.texts.append(data)


def test_every_value_the_template_prints_is_escaped(hostile: Path) -> None:
    """Hostile text in every field that reaches the page's template outside the data block: the output
    folder's name, settings read from stats.json, rejection reasons, boilerplate sources and lines, the
    chart's threshold. Each comes out as text, never as an element or attribute."""
    rep, _ = report.build_report(hostile)
    rep["counts"]["rejected_by_reason"] = {"empty": 1}
    clean_page = report.render_html(rep, {}, ReportConfig())
    payloads = [
        SCRIPT,
        IMG,
        BREAKOUT,
        f'" onmouseover="{JS_URL}',
        "' autofocus onfocus='alert(5)",
        "{{ 7*7 }}",
    ]
    rep["output"] = " ".join(payloads)
    rep["config"]["minhash"] = {"threshold": IMG, "containment": SCRIPT, "shingle_size": BREAKOUT}
    rep["config"]["minhash_fingerprint"] = payloads[3]
    rep["counts"]["rejected_by_reason"] = {payload: 1 for payload in payloads}
    rep["boilerplate"] = [
        {
            "source": payload,
            "documents": 3,
            "lines_removed": 3,
            "distinct_lines": 1,
            "top": [{"line": payload, "count": 3}],
        }
        for payload in payloads
    ]
    page = report.render_html(rep, {}, ReportConfig())
    clean, hostile_page = Elements(), Elements()
    clean.feed(clean_page)
    hostile_page.feed(page)
    assert set(hostile_page.tags) == set(clean.tags)  # no element the page does not have anyway
    assert hostile_page.tags["script"] == 2 and "img" not in hostile_page.tags
    assert {name for _, name, _ in hostile_page.attributes} == {name for _, name, _ in clean.attributes}
    assert not [a for a in hostile_page.attributes if a[2] and "alert" in a[2]]
    texts = Texts()
    texts.feed(page)
    text = "".join(texts.texts)
    for payload in payloads:
        assert payload in text  # shown as written (a template expression too), where a reader can see it


def test_page_allows_only_its_own_script_and_style(hostile: Path) -> None:
    page = (hostile / REPORT_HTML).read_text(encoding="utf-8")
    [csp] = re.findall(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    csp = html.unescape(csp)
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no external assets


def test_script_json_cannot_close_the_script_element() -> None:
    value = {"t": "</script><!-- \u2028\u2029 & <b>"}
    text = report.script_json(value)
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == value


def synthetic_output(
    root: Path, clusters: int, copies: int, similarities: tuple[float, ...] = (0.9,), words: int = 60
) -> Path:
    """An OUTPUT folder written directly (no cleaning): ``clusters`` kept records with ``copies`` near
    copies each, every copy differing from its kept text in one word."""
    out = root / "out"
    out.mkdir(parents=True, exist_ok=True)
    vocabulary = [f"word{i}" for i in range(200)]
    with (out / contract.RECORDS).open("w") as records, (out / contract.DUPLICATES).open("w") as dups:
        for c in range(clusters):
            text = " ".join(vocabulary[(c * 7 + i) % 200] for i in range(words))
            kept = {"id": f"{c:016x}", "source": f"site{c % 5}/kept-{c}.txt", "url": None, "title": f"T{c}"}
            kept |= {"author": None, "text": text, "date": None, "hostname": None, "content_hash": str(c)}
            records.write(json.dumps({**kept, "removed_lines": ["Share this:"]}) + "\n")
            for k in range(copies):
                sim = similarities[k % len(similarities)]
                kind = "exact" if sim == 1.0 else "near"
                copy_text = (
                    text if kind == "exact" else text.replace(vocabulary[(c * 7) % 200], f"edit{k}", 1)
                )
                dup = {**kept, "id": f"{c:08x}{k:08x}", "source": f"site{k % 5}/copy-{c}-{k}.txt"}
                dup |= {
                    "text": copy_text,
                    "removed_lines": ["Share this:", "Menu"],
                    "duplicate_of": kept["id"],
                }
                dup |= {"kind": kind, "similarity": sim, "containment": sim, "matched": kept["id"]}
                dups.write(json.dumps(dup | {"reason": "shorter text"}) + "\n")
    (out / contract.REJECTED).write_text("")
    (out / contract.STATS).write_text(json.dumps({"config": {"minhash": {"threshold": 0.8}}}))
    return out


def test_page_size_stays_bounded_as_duplicates_grow(tmp_path: Path) -> None:
    """Diffs are embedded only for the largest clusters, up to a budget; the rest is metadata."""
    config = ReportConfig(diff_clusters=10, diff_members=30)
    out = synthetic_output(tmp_path, clusters=400, copies=5, words=400)
    report.write_reports(out, config)
    page = (out / REPORT_HTML).read_text(encoding="utf-8")
    elements = Elements()
    elements.feed(page)
    data = json.loads(elements.scripts[0])
    assert len(data["clusters"]) == 400
    assert sum(len(c[6]) for c in data["clusters"]) == 2000
    assert len(data["diffs"]) == 6  # 30 copies' diffs: the six largest clusters of five
    assert [c[7] for c in data["clusters"][:7]] == [0, 1, 2, 3, 4, 5, -1]
    embedded = sum(len(d[2]) for d in data["diffs"])
    assert embedded == 30
    # one edited word in 400: a diff is a few ops, not a second copy of the text
    assert all(len(ops) <= 4 for d in data["diffs"] for ops, _ in d[2].values())
    # about 150 bytes a duplicate of metadata, plus the embedded kept texts
    assert len(page.encode()) < 150 * 2000 + 6 * 400 * 12 + 60_000
    rep = load_report(out)
    assert rep["counts"]["duplicates"] == 2000 and len(rep["clusters"]) == 400
    assert rep["boilerplate"][0]["top"][0] == {"line": "Share this:", "count": 480}


def test_report_config_is_validated() -> None:
    with pytest.raises(ValueError, match="bins must be at least 1"):
        ReportConfig(bins=0)
    with pytest.raises(ValueError, match="diff_members must be >= 0"):
        ReportConfig(diff_members=-1)


def test_no_report_run_leaves_reports_to_pipeline_report(tmp_path: Path) -> None:
    from pipeline.cli import main as cli_main

    raw = tmp_path / "raw"
    syndicated_corpus(raw, limit=4)
    out = tmp_path / "out"
    assert cli_main(["clean", str(raw), "--out", str(out), "--no-report", "-q", "--workers", "1"]) == 0
    assert not (out / "report.json").exists()
    assert cli_main(["report", str(out), "--format", "json"]) == 0
    assert (out / "report.json").exists() and (out / "report.html").exists()


# ---------------------------------------------------------------------------------------------------
# The page's files as package data


PAGE_FILES = ("page.html", "report.css", "report.js")


def test_page_files_are_read_through_importlib_resources() -> None:
    from importlib import resources

    from pipeline.report.page import asset

    files = resources.files("pipeline.report")
    for name in PAGE_FILES:
        assert files.joinpath(name).is_file(), name
        assert asset(name) == (REPO / "pipeline" / "report" / name).read_text(encoding="utf-8")
    # each is inlined into a raw-text element of the page: neither may close it early
    assert "</style" not in asset("report.css").lower()
    assert "</script" not in asset("report.js").lower()


def test_a_wheel_holds_the_page_files_and_its_install_writes_a_report(hostile: Path, tmp_path: Path) -> None:
    """Built offline from a copy of the sources (nothing is written into the repository), unpacked as an
    installer would, imported from there alone: its report.html carries the style and script."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    caches = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    for package in ("pipeline", "flows"):
        shutil.copytree(REPO / package, src / package, ignore=caches)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    subprocess.run([*pip, "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("scrape_clean-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    beside = [p.name for p in (REPO / "pipeline" / "report").iterdir() if p.is_file() and p.suffix != ".pyc"]
    assert set(PAGE_FILES) <= set(beside)
    assert {f"pipeline/report/{name}" for name in beside} <= names
    assert "pipeline/boilerplate.txt" in names

    out = tmp_path / "out"
    shutil.copytree(hostile, out)
    (out / REPORT_HTML).unlink()
    code = (
        "import sys; from pathlib import Path; import pipeline.report as r; "
        "assert Path(r.__file__).is_relative_to(Path(sys.argv[1])), r.__file__; "
        "r.write_reports(Path(sys.argv[2]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(tmp_path / "site")}
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "site"), str(out)], check=True, cwd=tmp_path, env=env
    )
    page = (out / REPORT_HTML).read_text(encoding="utf-8")
    from pipeline.report.page import asset

    assert asset("report.css") in page and asset("report.js") in page
