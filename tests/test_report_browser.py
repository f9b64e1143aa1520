"""report.html in a real headless Chromium (Debian's ``chromium`` package, driven by Playwright).

Skipped, with the reason, where Chromium or Playwright is missing, unless ``REPORT_BROWSER_TESTS=required``
(CI sets it): then a missing browser fails the run instead. ``make test`` installs Debian's chromium where
apt-get is available, and Playwright comes with the test extras. Playwright's own browser downloads are not
used (``playwright install`` is never run): ``executable_path`` points at the system Chromium.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pipeline.report import REPORT_HTML, load_report, word_diff
from pipeline.run import RunConfig, clean_folder
from tests.corpus import syndicated_corpus
from tests.test_report import EDITED_FROM, EDITED_TO, HOSTILE_TITLE, IMG, write_hostile_documents
from tests.test_report_chart import SHAPES

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
REQUIRED = os.environ.get("REPORT_BROWSER_TESTS") == "required"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REPO = Path(__file__).resolve().parents[1]


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return (
            f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium; `make test` "
            "does it where apt-get is available) or point CHROMIUM at a Chromium binary"
        )
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = _missing()
    if reason:
        if REQUIRED:
            pytest.fail(f"REPORT_BROWSER_TESTS=required, but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The syndicated corpus (20 articles, 15 clusters) and the hostile documents, cleaned in one run."""
    root = tmp_path_factory.mktemp("browser")
    syndicated_corpus(root / "raw", limit=20)
    write_hostile_documents(root / "raw")
    clean_folder(root / "raw", root / "out", RunConfig(workers=1))
    return root / "out"


class Visit:
    """A page with report.html loaded, and what it logged: console errors, uncaught errors, dialogs."""

    def __init__(self, browser: Browser, path: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.resolve().as_uri())
        self.page.locator("#cluster-list").wait_for()

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def count_shown(self) -> str:
        return self.page.locator("#cluster-count").inner_text()


@pytest.fixture
def visit(browser: Browser, output: Path) -> Iterator[Visit]:
    page = Visit(browser, output / REPORT_HTML)
    yield page
    page.context.close()


def numbers(text: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", text)]


def test_loads_without_errors_and_shows_the_cluster_count(visit: Visit, output: Path) -> None:
    from playwright.sync_api import expect

    rep = load_report(output)
    clusters = len(rep["clusters"])
    assert clusters == 17  # 15 syndicated, 2 hostile
    expect(visit.page.locator("#cluster-count")).to_have_text(f"{clusters} clusters")
    assert numbers(visit.page.locator("#count-clusters .value").inner_text()) == [clusters]
    assert numbers(visit.page.locator("#count-duplicates .value").inner_text()) == [
        rep["counts"]["duplicates"]
    ]
    cards = visit.page.locator("article.cluster")
    expect(cards).to_have_count(clusters)  # one page of 20
    # largest first, as in report.json
    first = rep["clusters"][0]
    expect(cards.first).to_contain_text(first["kept"]["source"])
    expect(cards.first.locator("tbody tr")).to_have_count(len(first["members"]))
    expect(visit.page.locator("svg.histogram rect")).not_to_have_count(0)
    assert visit.requests == [(output / REPORT_HTML).resolve().as_uri()]  # nothing else is fetched
    assert visit.errors == []


def test_search_box_filters_clusters(visit: Visit, output: Path) -> None:
    from playwright.sync_api import expect

    rep = load_report(output)
    total = len(rep["clusters"])
    # a duplicate's source finds its cluster, whatever the case
    target = next(c for c in rep["clusters"] if any("-edited" in m["source"] for m in c["members"]))
    member = next(m for m in target["members"] if "-edited" in m["source"])
    visit.page.locator("#search").fill(member["source"].upper())
    expect(visit.page.locator("#cluster-count")).to_have_text(f"1 of {total} clusters")
    expect(visit.page.locator("article.cluster")).to_have_count(1)
    expect(visit.page.locator("article.cluster")).to_contain_text(target["id"])

    # a site name: every cluster with a document from that site
    visit.page.locator("#search").fill("valleytimes")
    expected = [c for c in rep["clusters"] if "valleytimes" in str(c)]
    expect(visit.page.locator("#cluster-count")).to_have_text(f"{len(expected)} of {total} clusters")
    visit.page.locator("#search").fill("no such words anywhere")
    expect(visit.page.locator("#cluster-count")).to_have_text(f"0 of {total} clusters")
    expect(visit.page.locator("#cluster-list")).to_have_text("No cluster matches.")
    visit.page.locator("#search").fill("")
    expect(visit.page.locator("#cluster-count")).to_have_text(f"{total} clusters")
    assert visit.errors == []


def test_diff_view_highlights_the_changed_words(visit: Visit, output: Path) -> None:
    from playwright.sync_api import expect

    rep = load_report(output)
    records = {r["id"]: r for r in _rows(output / "records.jsonl")}
    duplicates = {d["id"]: d for d in _rows(output / "duplicates.jsonl")}
    # an edited copy of a syndicated article: three words changed, a sentence added
    cluster = next(
        c
        for c in rep["clusters"]
        if any("-edited" in s for s in [c["kept"]["source"], *(m["source"] for m in c["members"])])
    )
    member = next(m for m in cluster["members"] if m["kind"] == "near")
    segments = word_diff(records[cluster["id"]]["text"], duplicates[member["id"]]["text"])
    deleted = [t.strip() for op, t in segments if op == "-"]
    inserted = [t.strip() for op, t in segments if op == "+"]
    assert deleted or inserted

    visit.page.locator("#search").fill(member["source"])
    expect(visit.page.locator("article.cluster")).to_have_count(1)
    row = visit.page.locator("tbody tr", has_text=member["source"])
    row.locator("button.diff-toggle").click()
    diff = visit.page.locator(".diff")
    expect(diff).to_have_count(1)
    expect(diff.locator("h4").first).to_have_text(f"kept: {cluster['kept']['source']}")
    shown_deleted = [t.strip() for t in diff.locator("del").all_inner_texts()]
    shown_inserted = [t.strip() for t in diff.locator("ins").all_inner_texts()]
    assert shown_deleted == deleted and shown_inserted == inserted
    # closing it again
    row.locator("button.diff-toggle").click()
    expect(visit.page.locator(".diff")).to_have_count(0)

    # the hostile pair: one word edited
    visit.page.locator("#search").fill("Council budget")
    expect(visit.page.locator("article.cluster h3")).to_have_text([re.compile("Council budget")])
    visit.page.locator("button.diff-toggle").first.click()
    expect(visit.page.locator(".diff del")).to_have_text([EDITED_TO.split()[1]])
    expect(visit.page.locator(".diff ins")).to_have_text([EDITED_FROM.split()[1]])
    assert visit.errors == []


def test_boilerplate_view_lists_lines_per_source(visit: Visit, output: Path) -> None:
    from playwright.sync_api import expect

    rep = load_report(output)
    visit.page.locator("#tab-boilerplate").click()
    expect(visit.page.locator("#view-boilerplate")).to_be_visible()
    expect(visit.page.locator("#view-duplicates")).to_be_hidden()
    sections = visit.page.locator(".bp-source")
    expect(sections).to_have_count(len(rep["boilerplate"]))
    top = rep["boilerplate"][0]
    first = sections.first
    expect(first.locator("h3")).to_have_text(top["source"])
    expect(first.locator("tbody tr").first.locator("td").nth(0)).to_have_text(top["top"][0]["line"])
    expect(first.locator("tbody tr").first.locator("td").nth(1)).to_have_text(f"{top['top'][0]['count']:,}")
    visit.page.locator("#bp-search").fill("tips@dailyledger")
    expect(visit.page.locator(".bp-source:visible")).to_have_count(1)
    expect(visit.page.locator(".bp-source:visible tbody tr:visible")).to_have_count(1)
    assert visit.errors == []


def test_boilerplate_view_folds_the_smaller_sources(browser: Browser, tmp_path: Path) -> None:
    """A crawl of many small sites: its big sources one by one, most documents first; the 32 sources of
    fewer than 3 documents in one group that opens on a click, or when the filter finds a line in it."""
    from playwright.sync_api import expect

    from pipeline import report
    from tests.test_report import MANY_SMALL_SITES, sources_output

    out = sources_output(tmp_path, MANY_SMALL_SITES)
    report.write_reports(out)
    visit = Visit(browser, out / REPORT_HTML)
    page = visit.page
    page.locator("#tab-boilerplate").click()
    expect(page.locator(".bp-source h3")).to_have_text(["big.example", "mid.example", "three.example"])
    fold = page.locator("details.bp-fold")
    expect(fold.locator("summary")).to_contain_text("32 smaller sources")
    expect(fold.locator("summary")).to_contain_text(
        "33 documents, 99 lines removed; fewer than 3 documents each"
    )
    rows = fold.locator(".bp-fold-sources tbody tr")
    expect(rows).to_have_count(32)
    expect(rows.first).to_be_hidden()  # folded
    fold.locator("summary").click()
    expect(rows.first).to_be_visible()
    expect(rows.first.locator("td").first).to_have_text("pair.example")
    lines = [
        "Footer of pair.example ×2",
        "Share this: ×2",
        "Only in pair.example/0",
        "Only in pair.example/1",
    ]
    expect(rows.first.locator("li")).to_have_text(lines)  # most often first, ties by line
    expect(fold.locator(".bp-fold-lines tbody tr").first).to_have_text(re.compile(r"Share this:\s*32\s*33"))
    expect(page.locator("body")).to_contain_text("<b>bold</b>.example")
    fold.locator("summary").click()
    expect(rows.first).to_be_hidden()

    # the filter opens the group on a match inside it, shows only what matches, and closes it again
    page.locator("#bp-search").fill("ONLY IN SITE07")
    expect(fold).to_have_js_property("open", True)
    expect(page.locator(".bp-fold-sources tbody tr:visible")).to_have_count(1)
    expect(page.locator(".bp-fold-sources tbody tr:visible td").first).to_have_text("site07.example")
    expect(page.locator(".bp-source:visible")).to_have_count(0)
    page.locator("#bp-search").fill("")
    expect(fold).to_have_js_property("open", False)
    expect(rows.first).to_be_hidden()
    page.locator("#bp-search").fill("share this")
    expect(page.locator(".bp-source:visible")).to_have_count(3)
    expect(page.locator(".bp-fold-sources tbody tr:visible")).to_have_count(32)
    page.locator("#bp-search").fill("no such line")
    expect(fold).to_be_hidden()
    # opened by the reader, it stays open when the filter is cleared
    page.locator("#bp-search").fill("")
    fold.locator("summary").click()
    page.locator("#bp-search").fill("pair.example")
    page.locator("#bp-search").fill("")
    expect(fold).to_have_js_property("open", True)
    assert visit.errors == []
    visit.context.close()


def test_injected_payloads_do_not_run(browser: Browser, output: Path) -> None:
    """The escaping alone must hold: this visit bypasses the page's Content-Security-Policy, which
    would otherwise block an injected script as a second line of defence."""
    from playwright.sync_api import expect

    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto((output / REPORT_HTML).resolve().as_uri())
    # render every place hostile text reaches: the cluster cards, both diffs, the boilerplate view
    page.locator("#search").fill("hostile/")
    expect(page.locator("article.cluster")).to_have_count(2)
    for button in page.locator("button.diff-toggle").all():
        button.click()
    expect(page.locator(".diff")).to_have_count(2)
    page.locator("#tab-boilerplate").click()
    expect(page.locator("#view-boilerplate")).to_contain_text(HOSTILE_TITLE)
    page.locator("#tab-duplicates").click()

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []
    assert page.evaluate("document.querySelectorAll('script').length") == 2
    assert page.evaluate("document.querySelectorAll('img, b').length") == 0
    # shown as text, where a reader can see it
    expect(page.locator("article.cluster").first).to_contain_text("Council budget <script>")
    expect(page.locator("body")).to_contain_text(f"hostile/{IMG}.txt")
    expect(page.locator(".diff").first).to_contain_text("</script><script>window.__pwned = 3")
    # a javascript: URL is never a link
    hrefs = page.evaluate("Array.from(document.querySelectorAll('a[href]'), a => a.href)")
    assert hrefs and all(h.startswith(("http://", "https://")) for h in hrefs)
    context.close()


def test_report_of_the_sample_run(browser: Browser, tmp_path: Path) -> None:
    """The output of `make run` (raw/ cleaned): the page loads clean and counts what report.json says."""
    from playwright.sync_api import expect

    out = tmp_path / "clean"
    clean_folder(REPO / "raw", out, RunConfig(workers=1))
    rep = load_report(out)
    assert rep["counts"]["rejected"] == 3
    visit = Visit(browser, out / REPORT_HTML)
    expect(visit.page.locator("#cluster-count")).to_have_text(f"{len(rep['clusters'])} clusters")
    visit.page.locator("button.diff-toggle").first.click()
    expect(visit.page.locator(".diff .diff-text")).to_have_count(2)
    assert visit.errors == []
    visit.context.close()


def test_pages_through_many_clusters(browser: Browser, tmp_path: Path) -> None:
    """2,000 duplicates in 400 clusters: 20 clusters a page; pages and the kind filter work; copies
    whose diffs are not embedded point to the terminal command."""
    from playwright.sync_api import expect

    from pipeline import report
    from pipeline.report import ReportConfig
    from tests.test_report import synthetic_output

    out = synthetic_output(tmp_path, clusters=400, copies=5, similarities=(0.9, 1.0))
    report.write_reports(out, ReportConfig(diff_clusters=2))
    visit = Visit(browser, out / REPORT_HTML)
    page = visit.page
    expect(page.locator("#cluster-count")).to_have_text("400 clusters")
    expect(page.locator("article.cluster")).to_have_count(20)
    expect(page.locator("#page-info")).to_have_text("clusters 1–20 of 400 · page 1 of 20")
    page.locator("#next").click()
    expect(page.locator("#page-info")).to_have_text("clusters 21–40 of 400 · page 2 of 20")
    page.locator("#last").click()
    expect(page.locator("#page-info")).to_have_text("clusters 381–400 of 400 · page 20 of 20")
    expect(page.locator("#next")).to_be_disabled()
    page.locator("button.diff-toggle").first.click()
    expect(page.locator(".diff-note")).to_contain_text(f"pipeline report {out} --cluster ")
    page.select_option("#kind", "exact")
    expect(page.locator("#cluster-count")).to_have_text("0 of 400 clusters")
    page.select_option("#kind", "near")
    expect(page.locator("#cluster-count")).to_have_text("400 clusters")
    assert visit.errors == []
    visit.context.close()


def _rows(path: Path) -> list[dict[str, Any]]:
    from pipeline.contract import read_jsonl

    return read_jsonl(path)


# The page's charts: no text over another, a bar or a line, none outside the chart, on the boxes Chromium
# draws (the layout works on estimated ones: tests/test_report_chart.py).

CHART_BOXES = """() => {
  const svg = document.querySelector("svg.histogram");
  const rect = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  return {
    chart: rect(svg),
    scale: svg.getBoundingClientRect().width / svg.viewBox.baseVal.width,
    texts: Array.from(svg.querySelectorAll("text"), (t) => {
      const b = t.getBBox();
      return [t.getAttribute("class") + " " + JSON.stringify(t.textContent), rect(t), [b.width, b.height]];
    }),
    others: [
      ...Array.from(svg.querySelectorAll("rect"), (r) => ["bar " + r.textContent, rect(r)]),
      ...Array.from(svg.querySelectorAll("line"), (l) => ["line " + l.getAttribute("class"), rect(l)]),
    ],
  };
}"""


def drawn_clashes(page: Page) -> tuple[list[str], list[str]]:
    """What the chart's texts overlap, as Chromium draws them; and the texts it draws, by class and text."""
    drawn = page.evaluate(CHART_BOXES)
    half_stroke = 0.5 * drawn["scale"]

    def overlap(a: list[float], b: list[float]) -> bool:
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    others = [(name, [b[0] - half_stroke, b[1] - half_stroke, b[2] + half_stroke, b[3] + half_stroke])
              for name, b in drawn["others"]]  # fmt: skip
    problems = []
    x0, y0, x1, y1 = drawn["chart"]
    texts = drawn["texts"]
    for i, (name, box, _) in enumerate(texts):
        if box[0] < x0 or box[1] < y0 or box[2] > x1 or box[3] > y1:
            problems.append(f"{name} outside the chart")
        for other, other_box in others + [(t[0], t[1]) for t in texts[i + 1 :]]:
            if overlap(box, other_box):
                problems.append(f"{name} over {other}")
    return problems, [name for name, _, _ in texts]


@pytest.mark.parametrize("shape", SHAPES)
def test_chart_labels_never_overlap(browser: Browser, tmp_path: Path, shape: str) -> None:
    from pipeline import report
    from pipeline.report import ReportConfig
    from pipeline.report.chart import similarity_histogram
    from tests.test_report import synthetic_output

    histogram, threshold = SHAPES[shape]
    out = synthetic_output(tmp_path, clusters=2, copies=2)
    rep, _ = report.build_report(out)
    rep["similarity_histogram"] = histogram
    rep["config"]["minhash"]["threshold"] = threshold
    (tmp_path / "page.html").write_text(report.render_html(rep, {}, ReportConfig()), encoding="utf-8")
    visit = Visit(browser, tmp_path / "page.html")
    problems, drawn = drawn_clashes(visit.page)
    assert problems == []
    expected = similarity_histogram(histogram, threshold)
    assert drawn == [f"{label.role} {json.dumps(label.text)}" for label in expected.labels]
    # the layout's estimates hold every text as this Chromium draws it (in the chart's own units)
    sizes = visit.page.evaluate(
        "() => Array.from(document.querySelectorAll('svg.histogram text'), t => [t.getBBox().width, "
        "t.getBBox().height])"
    )
    for label, (width, height) in zip(expected.labels, sizes, strict=True):
        box = label.box
        assert width <= box.x1 - box.x0 if not label.rotated else width <= box.y1 - box.y0, label
        assert height <= box.y1 - box.y0 if not label.rotated else height <= box.x1 - box.x0, label
    assert visit.errors == []
    visit.context.close()


def test_chart_labels_of_a_cleaned_corpus_never_overlap(visit: Visit) -> None:
    problems, drawn = drawn_clashes(visit.page)
    assert problems == []
    assert any(name.startswith("count ") for name in drawn) and any(
        name.startswith("threshold-label") for name in drawn
    )
