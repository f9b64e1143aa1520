"""The ``fetch-and-clean`` Prefect flow against a real HTTP server on 127.0.0.1 and a real Prefect server.

The site serves a robots.txt, a sitemap and four pages: an article, the same article under another site's
boilerplate, a second article whose first request fails with 503 (Prefect retries the host's task), and a
404. The flow fetches, then cleans with the ``clean-folder`` subflow.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from pipeline import contract
from tests.corpus import SEED

CYCLE_LANES = [
    "The city council voted on Tuesday to build protected cycle lanes along four streets in the centre, "
    "after a two-year consultation in which residents, shop owners and commuters argued over parking and "
    "deliveries.",
    "Work on the first section is due to start in the spring, and the council expects the whole network to "
    "be finished within three years. Opponents said they would ask for a review of the decision.",
    "Shop owners on the busiest of the four streets said they feared losing passing trade while the work "
    "goes on, and asked the council to keep at least one lane open for deliveries in the mornings.",
]


def article_page(title: str, paragraphs: list[str], site: str, nav: list[str], footer: str) -> str:
    """A news page: the site's header, navigation, newsletter box and footer around the article."""
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    links = "".join(f'<li><a href="/{n.lower()}">{html.escape(n)}</a></li>' for n in nav)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} | {site}</title></head>
<body>
<header><div class="logo">{site}</div><nav><ul>{links}</ul></nav></header>
<main><article><h1>{html.escape(title)}</h1>
{body}
</article></main>
<aside><h3>Newsletter</h3><p>Sign up for the {site} newsletter.</p></aside>
<footer><p>{html.escape(footer)}</p></footer>
</body></html>"""


def seed_article() -> tuple[str, list[str]]:
    """The seed article's title and body paragraphs, without its scraped title repeats and footer."""
    blocks = [b.strip() for b in SEED.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    return blocks[0], [b for b in blocks[2:] if b != "Exit mobile version"]


@pytest.fixture(scope="module")
def site() -> Iterator[HTTPServer]:
    """A real HTTP server on 127.0.0.1 (its own, so the address is not left to the default ``localhost``)."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def pages(site: HTTPServer) -> dict[str, str]:
    """Serve robots.txt, the sitemap and the pages; return the page URLs by role."""
    site.clear()
    title, paragraphs = seed_article()
    urls = {
        "article": site.url_for("/news/ukraine-atacms.html"),
        "syndicated": site.url_for("/wire/2024/11/19/atacms-strike"),
        "flaky": site.url_for("/news/cycle-lanes.html"),
        "missing": site.url_for("/news/withdrawn-story.html"),
    }
    site.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /admin/\n", content_type="text/plain"
    )
    sitemap = "".join(f"<url><loc>{html.escape(u)}</loc></url>" for u in urls.values())
    site.expect_request("/sitemap.xml").respond_with_data(
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{sitemap}</urlset>',
        content_type="application/xml",
    )
    page = {"content_type": "text/html; charset=utf-8"}
    site.expect_request("/news/ukraine-atacms.html").respond_with_data(
        article_page(title, paragraphs, "Daily Courier", ["World", "Politics"], "© Daily Courier"), **page
    )
    site.expect_request("/wire/2024/11/19/atacms-strike").respond_with_data(
        article_page(
            title,
            paragraphs,
            "Kyiv Wire",
            ["Home", "Ukraine", "Opinion", "Podcasts"],
            "Kyiv Wire is independent.",
        ),
        **page,
    )
    # One-shot handlers are matched before permanent ones: the first request gets 503, the retry the page.
    site.expect_oneshot_request("/news/cycle-lanes.html").respond_with_data("busy", status=503)
    site.expect_request("/news/cycle-lanes.html").respond_with_data(
        article_page(
            "Council approves new cycle lanes for the city centre",
            CYCLE_LANES,
            "Daily Courier",
            ["World", "Politics"],
            "© Daily Courier",
        ),
        **page,
    )
    site.expect_request("/news/withdrawn-story.html").respond_with_data("Not Found", status=404)
    return urls


BACK = [
    f"The harbour authority reopened pier {n} on Tuesday after repairs that took {n + 2} weeks, and ferries "
    f"to the {word} islands resume their summer timetable from the first of next month."
    for n, word in enumerate(("northern", "outer", "western", "small", "far"), start=3)
]


def requests_for(site: HTTPServer, path: str) -> int:
    return sum(1 for request, _ in site.log if request.path == path)


def table(artifact: Any) -> list[dict[str, Any]]:
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


def test_flow_fetches_retries_and_cleans(
    prefect_harness: None, site: HTTPServer, pages: dict[str, str], tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
    )

    from flows.fetch_and_clean import COUNTS_ARTIFACT, FAILURES_ARTIFACT, fetch_and_clean

    raw, out = tmp_path / "raw", tmp_path / "out"

    def run(retries: int) -> Any:
        state = fetch_and_clean(
            sitemap=site.url_for("/sitemap.xml"),
            raw=str(raw),
            out=str(out),
            per_host_delay=0.0,
            timeout=5.0,
            retries=retries,
            retry_backoff=0.2,
            allow_private=True,  # the site is on 127.0.0.1
            return_state=True,
        )
        assert state.is_completed(), state
        return state

    state = run(retries=2)
    summary = state.result()

    # Clean step: the two copies of one article are one cluster, the 404 is its fetch rejection.
    assert contract.validate_output(out) == {"records": 2, "duplicates": 1, "rejected": 1}
    assert (summary.kept, summary.duplicates, summary.rejected) == (2, 1, 1)
    records = {r["url"]: r for r in contract.read_jsonl(out / contract.RECORDS)}
    assert records[pages["flaky"]]["title"] == "Council approves new cycle lanes for the city centre"
    [duplicate] = contract.read_jsonl(out / contract.DUPLICATES)
    [kept_copy] = set(records) - {pages["flaky"]}
    assert {kept_copy, duplicate["url"]} == {pages["article"], pages["syndicated"]}
    assert (duplicate["kind"], duplicate["duplicate_of"]) == ("exact", records[kept_copy]["id"])
    [rejected] = contract.read_jsonl(out / contract.REJECTED)
    assert (rejected["reason"], rejected["stage"]) == ("http_error", "fetch")
    assert pages["missing"] in rejected["detail"] and "404" in rejected["detail"]

    # Fetch step: the 503 made Prefect retry the host's task, and the retry stored the page.
    assert requests_for(site, "/news/cycle-lanes.html") == 2
    assert requests_for(site, "/news/ukraine-atacms.html") == 1  # stored pages are not fetched again
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    [host_task] = [t for t in task_runs if t.name.startswith("fetch-127.0.0.1")]
    assert host_task.run_count == 2 and host_task.state.is_completed()

    by_key = {a.key: a for a in artifacts}
    assert by_key[COUNTS_ARTIFACT].type == "table"
    assert table(by_key[COUNTS_ARTIFACT]) == [
        {"outcome": "fetched", "reason": "", "urls": 3},
        {"outcome": "failed", "reason": "http_error", "urls": 1},
    ]
    assert by_key[FAILURES_ARTIFACT].type == "markdown"
    assert pages["missing"] in by_key[FAILURES_ARTIFACT].data

    # A second run fetches nothing new: stored pages are skipped, the 404 is asked for again.
    state = run(retries=0)
    assert requests_for(site, "/news/ukraine-atacms.html") == 1
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    [counts] = [a for a in artifacts if a.key == COUNTS_ARTIFACT]
    assert table(counts) == [
        {"outcome": "skipped", "reason": "already fetched", "urls": 3},
        {"outcome": "failed", "reason": "http_error", "urls": 1},
    ]
    contract.validate_output(out)

    # The withdrawn story is back: the third run fetches it and its clean finds it with the flow's default
    # --scan folders (the page came in by a rename, which changed its folder's time).
    site.expect_oneshot_request("/news/withdrawn-story.html").respond_with_data(
        article_page("Withdrawn story is back", BACK, "Daily Courier", ["World"], "© Daily Courier"),
        content_type="text/html; charset=utf-8",
    )
    state = run(retries=0)
    assert json.loads((out / contract.STATS).read_text())["config"]["scan"] == "folders"
    assert contract.validate_output(out) == {"records": 3, "duplicates": 1, "rejected": 0}
    records = {r["url"]: r for r in contract.read_jsonl(out / contract.RECORDS)}
    assert records[pages["missing"]]["title"] == "Withdrawn story is back"


def test_a_url_failing_on_every_run_is_one_rejection(
    prefect_harness: None, site: HTTPServer, pages: dict[str, str], tmp_path: Path
) -> None:
    from flows.fetch_and_clean import fetch_and_clean

    urls = tmp_path / "urls.txt"
    urls.write_text(f"# what to fetch\n{pages['article']}\n{pages['missing']}\n", encoding="utf-8")
    raw, out = tmp_path / "raw", tmp_path / "out"
    for _ in range(2):
        summary = fetch_and_clean(
            urls_file=str(urls),
            raw=str(raw),
            out=str(out),
            per_host_delay=0.0,
            timeout=5.0,
            retries=0,
            allow_private=True,
        )
    assert requests_for(site, "/news/withdrawn-story.html") == 2
    assert (summary.rejected, summary.stats["index"]["rejected"]) == (0, 1)  # counted once, in the first run
    assert [r["reason"] for r in contract.read_jsonl(out / contract.REJECTED)] == ["http_error"]


def test_fetch_options_reach_the_fetcher_and_the_deployment(tmp_path: Path) -> None:
    """allow_private and max_urls: flow parameters, options of both command lines, deployment parameters."""
    from flows import serve
    from flows.fetch_and_clean import DEFAULTS, build_parser, fetch_config

    assert (DEFAULTS["allow_private"], DEFAULTS["max_urls"]) == (False, 10_000)
    config = fetch_config(0.0, 5.0, False, allow_private=True, max_urls=7)
    assert (config.allow_private, config.max_urls, config.retries) == (True, 7, 0)
    args = build_parser().parse_args(["--sitemap", "http://x/s.xml", "--allow-private", "--max-urls", "7"])
    assert (args.allow_private, args.max_urls) == (True, 7)

    argv = ["--sitemap", "http://x/s.xml", "--allow-private", "--max-urls", "7"]
    options = serve.fetch_options(serve.build_parser().parse_args(argv))
    assert options == {"allow_private": True, "max_urls": 7}
    assert serve.fetch_options(serve.build_parser().parse_args(argv[:2])) == {}
    raw = tmp_path / "raw"
    deployments = serve.build_deployments(
        "0 * * * *",
        input_dir=raw,
        out=tmp_path / "out",
        raw=raw,
        sitemap="http://x/s.xml",
        fetch_options=options,
    )
    assert {"allow_private": True, "max_urls": 7}.items() <= deployments[1].parameters.items()
