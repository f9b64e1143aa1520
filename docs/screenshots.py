"""Screenshots of report.html for the README: ``make screenshots`` (or ``python -m docs.screenshots``).

Cleans the syndicated test corpus (80 real articles on six generated sites: exact, edited, typographic,
mojibake and cut-short copies) into a temporary ``clean/``, then photographs the page's three views in
Debian's Chromium through Playwright: docs/report-summary.png, docs/report-diff.png and
docs/report-boilerplate.png.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from pipeline.report import REPORT_HTML
from pipeline.run import RunConfig, clean_folder
from tests.corpus import syndicated_corpus
from tests.test_report_browser import ARGS, CHROMIUM

DOCS = Path(__file__).resolve().parent


def main() -> int:
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the page shows the output folder as given: "clean", as after `make run`
        syndicated_corpus(Path("raw"))
        clean_folder(Path("raw"), Path("clean"), RunConfig(workers=1))
        report = json.loads(Path("clean/report.json").read_text(encoding="utf-8"))
        # a cluster with an edited copy: a few words changed and a sentence added
        cluster = next(
            c
            for c in report["clusters"]
            if any(m["source"].endswith("-edited.txt") and m["similarity"] < 1 for m in c["members"])
        )
        member = next(m for m in cluster["members"] if m["source"].endswith("-edited.txt"))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1200})
            page.goto((Path("clean") / REPORT_HTML).resolve().as_uri())
            expect(page.locator("article.cluster")).not_to_have_count(0)
            page.screenshot(path=DOCS / "report-summary.png")

            page.locator("#search").fill(member["source"])
            expect(page.locator("#cluster-count")).to_contain_text("1 of")
            page.locator("tbody tr", has_text=member["source"]).locator("button.diff-toggle").click()
            first_change = page.locator(".diff ins, .diff del").first
            first_change.scroll_into_view_if_needed()
            page.locator("article.cluster").screenshot(path=DOCS / "report-diff.png")

            page.locator("#tab-boilerplate").click()
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=DOCS / "report-boilerplate.png")
            browser.close()
    for name in ("summary", "diff", "boilerplate"):
        print(DOCS / f"report-{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
