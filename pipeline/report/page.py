"""``report.html``: the page template (``page.html``), its style (``report.css``) and script (``report.js``),
package files read with :mod:`importlib.resources`, filled with the report's data.

Scraped text is hostile, so every piece of it is escaped: ``html.escape`` in the static parts (summary,
histogram, boilerplate tables), and in the embedded data ``<``, ``>``, ``&``, U+2028 and U+2029 become JSON
escapes, so no text can close the ``<script>`` element; the script renders it with ``textContent`` only and
links only ``http(s)`` URLs. The page's Content-Security-Policy allows only its own script and style, by hash.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline import contract
from pipeline.report.build import ReportConfig
from pipeline.report.chart import histogram_svg
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


def _e(value: Any) -> str:
    """Escape for HTML text and (double-quoted) attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


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
    cards = [
        ("documents", counts["documents"], "in all runs"),
        ("kept", counts["kept"], contract.output_path(Path(report["output"]), contract.RECORDS).name),
        (
            "duplicates",
            counts["duplicates"],
            f"{number(counts['exact'])} exact, {number(counts['near'])} near",
        ),
        (
            "rejected",
            counts["rejected"],
            contract.output_path(Path(report["output"]), contract.REJECTED).name,
        ),
        ("clusters", counts["clusters"], f"largest: {number(counts['largest_cluster'])} documents"),
    ]
    card_html = "".join(
        f'<div class="card" id="count-{_e(name)}"><span class="label">{_e(name)}</span>'
        f'<span class="value">{number(value)}</span><span class="note">{_e(note)}</span></div>'
        for name, value, note in cards
    )
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
    settings_html = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in settings if v is not None
    )
    reasons = counts["rejected_by_reason"]
    reasons_html = (
        '<table class="kv"><caption>Rejected, by reason</caption>'
        + "".join(f"<tr><th>{_e(k)}</th><td>{number(v)}</td></tr>" for k, v in reasons.items())
        + "</table>"
        if reasons
        else ""
    )
    embedded = len(diffs)
    embedded_note = (
        f"Word diffs are embedded for the {number(embedded)} largest clusters"
        + (f" of {number(counts['clusters'])}" if embedded < counts["clusters"] else "")
        + "; for any cluster, <code>pipeline report OUTPUT --cluster ID</code> prints them in a terminal."
    )
    body = asset("page.html").format(
        csp=_e(csp),
        style=style,
        script=script,
        output=_e(report["output"]),
        cards=card_html,
        histogram=histogram_svg(report["similarity_histogram"], minhash.get("threshold")),
        settings=settings_html,
        reasons=reasons_html,
        clusters=number(counts["clusters"]),
        embedded_note=embedded_note,
        boilerplate=_boilerplate_html(report["boilerplate"], config),
        data=script_json(page_data(report, diffs)),
    )
    return body


def _boilerplate_html(sources: list[dict[str, Any]], config: ReportConfig) -> str:
    if not sources:
        return '<p class="empty">No boilerplate lines were removed.</p>'
    shown = sources[: config.html_sources]
    parts = []
    if len(sources) > len(shown):
        parts.append(
            f'<p class="note">The {number(len(shown))} sources with most lines removed, of '
            f"{number(len(sources))}; report.json lists them all.</p>"
        )
    for source in shown:
        rows = "".join(
            f'<tr><td class="line">{_e(item["line"])}</td><td class="num">{number(item["count"])}</td>'
            f'<td class="num">{item["count"] / max(source["documents"], 1):.0%}</td></tr>'
            for item in source["top"]
        )
        more = source["distinct_lines"] - len(source["top"])
        distinct = f", {number(source['distinct_lines'])} distinct lines (top {len(source['top'])} shown)"
        distinct = distinct if more > 0 else ""
        parts.append(
            '<section class="bp-source">'
            f'<h3><span class="bp-name">{_e(source["source"])}</span></h3>'
            f'<p class="note">{number(source["documents"])} documents, '
            f"{number(source['lines_removed'])} lines "
            f"removed{distinct}</p>"
            '<table class="bp-table"><thead><tr><th>line removed</th><th>times</th>'
            "<th>per document</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></section>"
        )
    return "".join(parts)
