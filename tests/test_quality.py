"""Quality gate: pinned floors on real data that cannot drop without a deliberate change.

The full evaluation (``make eval``) runs the same functions on all 181 benchmark pages and the whole
generated corpus; these run on a slice to keep the suite fast.
"""

from __future__ import annotations

import pytest

from tests.evaluate import evaluate_extraction, evaluate_rewrites, evaluate_snippets, evaluate_syndicated

# Measured on the slices below when the floors were set (see README, "Quality"); a floor sits just under.
SYNDICATED_FLOORS = {"pairwise_f1": 0.99, "exact_body_share": 0.98, "title_share": 0.99}
# The benchmarks' own metrics on their samples: 40 article-extraction-benchmark pages, 83 pages of
# trafilatura's evaluation set (every 12th).
EXTRACTION_F1_FLOOR = 0.965
SNIPPETS_F1_FLOOR = 0.92
# Light rewrites (one word in forty replaced) of the 80 sample articles, 40 templated briefs and 40 police
# briefs: recall 0.894 when set (0.125 before the second check on names and figures).
REWRITE_RECALL_FLOOR = 0.85


@pytest.fixture(scope="module")
def syndicated() -> dict:
    return evaluate_syndicated(limit=80, workers=1)


def test_syndicated_copies_are_clustered(syndicated):
    assert syndicated["pairwise_f1"] >= SYNDICATED_FLOORS["pairwise_f1"], syndicated
    assert syndicated["distinct_short_articles_merged"] == 0, syndicated
    assert syndicated["rejected"] == 0, syndicated


def test_scraped_text_comes_out_with_exact_bodies_and_titles(syndicated):
    assert syndicated["exact_body_share"] >= SYNDICATED_FLOORS["exact_body_share"], syndicated["not_exact"]
    assert syndicated["title_share"] >= SYNDICATED_FLOORS["title_share"], syndicated


def test_html_extraction_is_at_least_as_good_as_bare_trafilatura():
    scores = evaluate_extraction(limit=40)
    assert scores["pipeline"]["f1"] >= scores["trafilatura"]["f1"] - 0.005, scores
    assert scores["pipeline"]["f1"] >= EXTRACTION_F1_FLOOR, scores


def test_snippets_of_trafilaturas_evaluation_set_are_kept_and_boilerplate_dropped():
    scores = evaluate_snippets()
    assert scores["pipeline"]["f1"] >= SNIPPETS_F1_FLOOR, scores


def test_light_rewrites_are_found_and_distinct_briefs_stay_apart():
    scores = evaluate_rewrites(workers=1)
    assert scores["recall"] >= REWRITE_RECALL_FLOOR, scores
    assert scores["distinct_briefs_merged"] == 0, scores
    assert scores["articles_merged"] == 0, scores
