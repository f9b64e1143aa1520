"""The report in a terminal (``pipeline report``): summary, histogram and largest clusters as rich tables,
and one cluster with its copies' word diffs.

Built from :class:`rich.text.Text` pieces, which rich never parses as markup: scraped text such as
``[bold]`` prints as it is.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipeline.report.diff import Segment
from pipeline.report.display import clip, number


def summary_table(report: dict[str, Any]) -> Table:
    """The overall counts and the dedup settings as a two-column table."""
    counts = report["counts"]
    minhash = report["config"].get("minhash", {})
    table = Table(
        title=Text(f"Duplicate report: {report['output']}"), show_header=False, title_justify="left"
    )
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    rows = [
        ("documents (all runs)", number(counts["documents"])),
        ("kept", number(counts["kept"])),
        (
            "duplicates",
            f"{number(counts['duplicates'])} ({number(counts['exact'])} exact, "
            f"{number(counts['near'])} near)",
        ),
        ("rejected", number(counts["rejected"])),
        *((f"  rejected: {k}", number(v)) for k, v in counts["rejected_by_reason"].items()),
        ("clusters", number(counts["clusters"])),
        ("largest cluster", f"{number(counts['largest_cluster'])} documents"),
        ("threshold / containment", f"{minhash.get('threshold')} / {minhash.get('containment')}"),
        ("shingle size / permutations", f"{minhash.get('shingle_size')} / {minhash.get('num_perm')}"),
    ]
    for what, value in rows:
        table.add_row(Text(what), Text(value))
    return table


def histogram_table(report: dict[str, Any], width: int = 40) -> Table:
    """Non-empty similarity bins with a bar each."""
    bins = [b for b in report["similarity_histogram"]["bins"] if b["exact"] + b["near"]]
    peak = max((b["exact"] + b["near"] for b in bins), default=1)
    table = Table(title="Similarity of each copy to the kept record", title_justify="left")
    table.add_column("similarity")
    table.add_column("exact", justify="right")
    table.add_column("near", justify="right")
    table.add_column("")
    for b in bins:
        total = b["exact"] + b["near"]
        bar = "█" * max(1, round(width * total / peak))
        table.add_row(f"{b['from']:.2f}–{b['to']:.2f}", number(b["exact"]), number(b["near"]), bar)
    return table


def clusters_table(report: dict[str, Any], top: int) -> Table:
    """The largest clusters: size, kept record, the lowest similarity among its copies."""
    clusters = report["clusters"][:top] if top else report["clusters"]
    table = Table(
        title=f"Largest clusters ({number(len(clusters))} of {number(len(report['clusters']))})",
        title_justify="left",
    )
    table.add_column("cluster id", no_wrap=True, min_width=16)
    table.add_column("size", justify="right", no_wrap=True, min_width=4)
    table.add_column("kept source", overflow="fold", min_width=12, max_width=40)
    table.add_column("title", min_width=10, max_width=40)
    table.add_column("copies", min_width=7)
    table.add_column("min sim.", justify="right", no_wrap=True, min_width=5)
    for cluster in clusters:
        kinds = Counter(m["kind"] for m in cluster["members"])
        table.add_row(
            cluster["id"],
            number(cluster["size"]),
            Text(str(cluster["kept"]["source"])),
            Text(clip(str(cluster["kept"]["title"] or ""), 60)),
            ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())),
            f"{min(m['similarity'] for m in cluster['members']):.3f}",
        )
    return table


def diff_text(segments: list[Segment], context: int = 12, plain: bool = False) -> Text:
    """A word diff for the terminal: deletions red and struck through, insertions green (``plain``: git's
    ``--word-diff=plain`` markers ``[-old-]{+new+}``, for output without colour); runs of unchanged words
    longer than ``2 * context`` shortened to their ends.

    Built from :class:`rich.text.Text` pieces, which rich never parses as markup: scraped text such as
    ``[bold]`` or a trailing backslash prints as it is.
    """
    styles = {"-": "red strike", "+": "green bold"}
    markers = {"-": ("[-", "-]"), "+": ("{+", "+}")}
    out = Text()
    last = len(segments) - 1
    for i, (op, text) in enumerate(segments):
        if op in styles:
            core = text.rstrip()
            if plain:
                out.append(markers[op][0] + core + markers[op][1])
            else:
                out.append(core, style=styles[op])
            out.append(text[len(core) :])
            continue
        words = text.split(" ")
        head = context if i < last else 2 * context
        tail = context if i > 0 else 2 * context
        if len(words) > head + tail + 3:
            if i > 0:
                out.append(" ".join(words[:head]) + " ")
            out.append("… ", style="dim")
            if i < last:
                out.append(" ".join(words[-tail:]))
        else:
            out.append(text)
    return out


def print_cluster(console: Console, detail: dict[str, Any]) -> None:
    """One cluster: the kept record, then each copy with why it lost and its word diff."""
    kept = detail["kept"]
    dated = f", {kept['date']}" if kept["date"] else ""
    head = Text.assemble(
        ("Cluster ", "bold"),
        (detail["id"], "bold"),
        f": {detail['size']} documents\n",
        ("kept ", "bold"),
        f"{kept['source']} ({number(kept['length'])} characters{dated})",
        f"\n  {kept['title'] or ''}",
        f"\n  {kept['url']}" if kept["url"] else "",
    )
    console.print(head)
    plain = console.no_color or not console.is_terminal
    for member in detail["members"]:
        console.print()
        console.rule(Text(member["source"]), align="left")
        console.print(
            Text.assemble(
                (member["kind"], "bold"),
                " copy (a light rewrite: its names and figures agree)"
                if member.get("how") == "rewrite"
                else " copy",
                f", similarity {member['similarity']:.3f}, containment {member['containment']:.3f}, "
                f"{number(member['length'])} characters; lost: {member['reason']}",
                f"\nlinked through {member['matched']}" if member["matched"] != detail["id"] else "",
            )
        )
        segments = [(op, text) for op, text in member["diff"]]
        if all(op == "=" for op, _ in segments):
            console.print(Text("same words as the kept text", style="dim"))
        else:
            console.print(diff_text(segments, plain=plain))
    if not detail["members"]:
        console.print(Text("no duplicates of this record", style="dim"))
