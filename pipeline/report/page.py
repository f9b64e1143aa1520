"""``report.html``: the page template (``page.html``), its style (``report.css``) and script (``report.js``),
package files read with :mod:`importlib.resources`, filled with the report's data.

Scraped text is hostile, so every piece of it is escaped. The template is Jinja with autoescape on: every
value it prints is HTML-escaped unless marked safe, and only three are: the page's own style and script, and
the JSON data block, in which ``<``, ``>``, ``&``, U+2028 and U+2029 become JSON escapes (:func:`script_json`)
so no text can close the ``<script>`` element. The script renders that data with ``textContent`` only and
links only ``http(s)`` URLs. The page's Content-Security-Policy allows only its own script and style, by
hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from pipeline import contract
from pipeline.report.build import ReportConfig
from pipeline.report.chart import similarity_histogram
from pipeline.report.display import clip, number


def asset(name: str) -> str:
    """A file of the page (``page.html``, ``report.css``, ``report.js``) as installed with the package."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def script_json(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` (so nothing can close the
    element or open a comment) and U+2028/U+2029 are written as ``\\u`` escapes. Outside strings JSON has
    none of these characters, so the result parses to the same value."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def page_data(report: dict[str, Any], diffs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The data the page's script renders, as compact arrays (field order in ``report.js``'s C and M).

    cluster: ``[kept id, source, url, title, length, date, members, diff index or -1]``
    member: ``[id, source, url, title or null when the kept one's, similarity, containment, 1 if exact
    else 0, reason (index into ``reasons``), length, matched id or null when the kept one]``

    Reasons repeat (every copy that lost on a tie names the kept source), so they are stored once.
    """
    clusters = []
    diff_list: list[list[Any]] = []
    reasons: dict[str, int] = {}
    for cluster in report["clusters"]:
        kept = cluster["kept"]
        members = [
            [
                m["id"],
                clip(m["source"]),
                clip(m["url"]),
                None if m["title"] == kept["title"] else clip(m["title"]),
                m["similarity"],
                m["containment"],
                1 if m["kind"] == "exact" else 0,
                reasons.setdefault(clip(m["reason"]), len(reasons)),
                m["length"],
                None if m["matched"] == cluster["id"] else m["matched"],
            ]
            for m in cluster["members"]
        ]
        diff_index = -1
        if cluster["id"] in diffs:
            entry = diffs[cluster["id"]]
            diff_index = len(diff_list)
            diff_list.append([entry["tokens"], entry["cut"], entry["members"]])
        clusters.append(
            [
                cluster["id"],
                clip(kept["source"]),
                clip(kept["url"]),
                clip(kept["title"]),
                kept["length"],
                kept["date"],
                members,
                diff_index,
            ]
        )
    return {"output": report["output"], "clusters": clusters, "diffs": diff_list, "reasons": list(reasons)}


def boilerplate_view(
    sources: list[dict[str, Any]], config: ReportConfig, min_documents: int
) -> dict[str, Any]:
    """The "Boilerplate removed" tab: sources one by one, most documents first, down to ``min_documents``
    (the cleanup learns a line of a source only from that many of its documents) and at most
    ``config.html_sources`` of them; the rest folded into one group, with the lines removed from most of
    them and the first ``html_small_sources`` of them listed.

    On a crawl of many small sites most sources hold a document or two (the 1,033 pages of trafilatura's
    evaluation set: 337 sources with lines removed, 324 of one document, 9 of two, 4 of three or more): each
    alone says nothing (its lines are cut from every one of its documents, 100%), together they show what
    the rules cut across sites. The lines across them are summed from each source's top lines (all of a
    source's lines unless it has more than ``boilerplate_lines`` distinct ones).

    Args:
        sources: ``report["boilerplate"]``, most documents first.
    """
    shown = [s for s in sources if s["documents"] >= min_documents][: config.html_sources]
    listed = {s["source"] for s in shown}
    folded = [s for s in sources if s["source"] not in listed]
    across: dict[str, list[int]] = {}  # line -> [times, sources]
    for source in folded:
        for item in source["top"]:
            entry = across.setdefault(item["line"], [0, 0])
            entry[0] += item["count"]
            entry[1] += 1
    # a line cut in many of these sources is a rule at work across sites: those first
    top = sorted(across.items(), key=lambda item: (-item[1][1], -item[1][0], item[0]))
    return {
        "sources": shown,
        "total": len(sources),
        "min_documents": min_documents,
        "folded": {
            "count": len(folded),
            "documents": sum(s["documents"] for s in folded),
            "lines_removed": sum(s["lines_removed"] for s in folded),
            "past_the_largest": sum(1 for s in folded if s["documents"] >= min_documents),
            "top": [
                {"line": line, "count": n, "sources": k} for line, (n, k) in top[: config.boilerplate_lines]
            ],
            "sources": folded[: config.html_small_sources],
        },
    }


def _learn_min_docs(run_config: dict[str, Any]) -> int:
    """How many documents of a source the run's cleanup learned boilerplate from (``stats.json``)."""
    value = run_config.get("cleanup", {}).get("learn_min_docs")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    from pipeline.cleanup import CleanupConfig  # noqa: PLC0415 - 0.2 s of rules, for outputs that do not say

    return CleanupConfig().learn_min_docs


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def _share(count: int, documents: int) -> str:
    """``count`` of ``documents`` as a whole percentage."""
    return f"{count / max(documents, 1):.0%}"


def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    environment.filters["number"] = number
    environment.filters["share"] = _share
    return environment.from_string(asset("page.html"))


def render_html(report: dict[str, Any], diffs: dict[str, dict[str, Any]], config: ReportConfig) -> str:
    """``report.html``: one self-contained page (summary, histogram, clusters, diffs, boilerplate)."""
    counts = report["counts"]
    minhash = report["config"].get("minhash", {})
    style, script = asset("report.css"), asset("report.js")
    # Only this page's own script and style run; nothing is fetched (no network, no external assets).
    csp = (
        f"default-src 'none'; script-src {_csp_hash(script)}; style-src {_csp_hash(style)}; "
        "img-src 'none'; base-uri 'none'; form-action 'none'"
    )
    output = Path(report["output"])
    cards = [
        ("documents", counts["documents"], "in all runs"),
        ("kept", counts["kept"], contract.output_path(output, contract.RECORDS).name),
        (
            "duplicates",
            counts["duplicates"],
            f"{number(counts['exact'])} exact, {number(counts['near'])} near",
        ),
        ("rejected", counts["rejected"], contract.output_path(output, contract.REJECTED).name),
        ("clusters", counts["clusters"], f"largest: {number(counts['largest_cluster'])} documents"),
    ]
    settings = [
        ("threshold (Jaccard)", minhash.get("threshold")),
        ("containment", minhash.get("containment")),
        ("shingle size (words)", minhash.get("shingle_size")),
        ("permutations", minhash.get("num_perm")),
        ("min. shingles for containment", minhash.get("min_containment_shingles")),
        ("rewrites: from Jaccard, if names and figures agree", minhash.get("rewrite_threshold")),
        ("rewrites: names and figures in one text only, at most", minhash.get("names_tolerance")),
        ("fingerprint", report["config"].get("minhash_fingerprint")),
    ]
    return _template().render(
        csp=csp,
        # the page's own files (no data in them); inlined as they are, so their hashes match the policy
        style=Markup(style),
        script=Markup(script),
        output=report["output"],
        cards=[{"name": name, "value": value, "note": note} for name, value, note in cards],
        chart=similarity_histogram(report["similarity_histogram"], minhash.get("threshold")),
        settings=[(name, value) for name, value in settings if value is not None],
        rejected=list(counts["rejected_by_reason"].items()),
        clusters=counts["clusters"],
        embedded=len(diffs),
        boilerplate=boilerplate_view(report["boilerplate"], config, _learn_min_docs(report["config"])),
        # safe for a <script> element by its own escaping (script_json), and parsed as JSON, not HTML
        data=Markup(script_json(page_data(report, diffs))),
    )
