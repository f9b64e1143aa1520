"""The report for dashboards (the ``clean-folder`` flow's artifacts): the largest clusters as flat rows,
and the summary as markdown with every piece of scraped text made inert."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pipeline.report.display import clip, number


def top_cluster_rows(report: dict[str, Any], top: int = 10) -> list[dict[str, Any]]:
    """The largest clusters as flat rows (a table for a dashboard, such as a Prefect table artifact)."""
    rows = []
    for cluster in report["clusters"][:top]:
        kinds = Counter(m["kind"] for m in cluster["members"])
        rows.append(
            {
                "cluster": cluster["id"],
                "documents": cluster["size"],
                "kept source": cluster["kept"]["source"],
                "title": clip(cluster["kept"]["title"] or "", 120),
                "exact copies": kinds["exact"],
                "near copies": kinds["near"],
                "lowest similarity": min(m["similarity"] for m in cluster["members"]),
            }
        )
    return rows


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def markdown_text(value: Any) -> str:
    """Scraped text as inert markdown: ``&``, ``<`` and ``>`` as entities (no HTML), the other markdown
    punctuation backslash-escaped (no links, emphasis or table cells), line breaks as spaces."""
    text = " ".join(str("" if value is None else value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def summary_markdown(report: dict[str, Any], top: int = 10) -> str:
    """The summary and the largest clusters as markdown (every piece of scraped text escaped)."""
    counts = report["counts"]
    minhash = report["config"].get("minhash", {})
    lines = [
        "# Duplicates",
        "",
        f"{number(counts['documents'])} documents in all runs: {number(counts['kept'])} kept, "
        f"{number(counts['duplicates'])} duplicates ({number(counts['exact'])} exact, "
        f"{number(counts['near'])} near) in "
        f"{number(counts['clusters'])} clusters (largest: {number(counts['largest_cluster'])} documents), "
        f"{number(counts['rejected'])} rejected. Threshold {minhash.get('threshold')}, containment "
        f"{minhash.get('containment')}.",
        "",
    ]
    rows = top_cluster_rows(report, top)
    if rows:
        lines += [
            f"## Largest clusters ({len(rows)} of {number(counts['clusters'])})",
            "",
            "| cluster | documents | kept source | title | exact | near | lowest similarity |",
            "|---|---:|---|---|---:|---:|---:|",
            *(
                f"| `{r['cluster']}` | {r['documents']} | {markdown_text(r['kept source'])} | "
                f"{markdown_text(r['title'])} | {r['exact copies']} | {r['near copies']} | "
                f"{r['lowest similarity']:.3f} |"
                for r in rows
            ),
            "",
            "One cluster with word diffs: `pipeline report OUTPUT --cluster ID`.",
            "",
        ]
    return "\n".join(lines)
