"""The report's data, built from the output files: counts, the similarity histogram, boilerplate removed
per source, and the clusters (what ``report.json`` holds).

The files are read as streams (duplicates once, records once, rejections once): what stays in memory is
the metadata of the documents in clusters, the texts asked for, and per-source line counts.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import contract
from pipeline.load import folder_group

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
REPORT_FORMAT = 1
SOURCE_FILES = (contract.RECORDS, contract.DUPLICATES, contract.REJECTED)
TOP_FOLDER = "(top folder)"  # the source group of files directly under INPUT


class ReportError(Exception):
    """Nothing to report on (no outputs, unknown cluster): the CLI prints it on one line and exits 2."""


@dataclass(frozen=True, slots=True)
class ReportConfig:
    """What the reports hold; the budgets keep ``report.html`` a few MB at any number of duplicates.

    Args:
        boilerplate_lines: lines listed per source, those removed most often.
        bins: similarity histogram bins over [0, 1].
        diff_clusters: clusters, largest first, whose word diffs are embedded in ``report.html``.
        diff_members: duplicates whose diffs are embedded, over all those clusters.
        diff_words: words of each text compared in an embedded diff (the rest is cut off, and said so).
        html_sources: sources shown one by one in the HTML boilerplate view, at most.
        html_small_sources: sources listed, a row each, in that view's group of smaller sources (about
            250 bytes a row; ``report.json`` lists every source).
    """

    boilerplate_lines: int = 20
    bins: int = 20
    diff_clusters: int = 200
    diff_members: int = 2000
    diff_words: int = 3000
    html_sources: int = 300
    html_small_sources: int = 2000

    def __post_init__(self) -> None:
        for name in ("boilerplate_lines", "bins", "diff_words", "html_sources", "html_small_sources"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("diff_clusters", "diff_members"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


def check_output(out_dir: Path) -> None:
    """Raise :class:`ReportError` unless ``out_dir`` holds the outputs of a ``pipeline clean`` run."""
    if not out_dir.is_dir():
        raise ReportError(f"output folder not found: {out_dir}")
    missing = [n for n in SOURCE_FILES if not contract.output_path(out_dir, n).is_file()]
    missing += [] if (out_dir / contract.STATS).is_file() else [contract.STATS]
    if missing:
        raise ReportError(
            f"no pipeline outputs in {out_dir} ({', '.join(missing)} missing); run `pipeline clean` first"
        )


def output_rows(out_dir: Path, name: str) -> Iterator[dict[str, Any]]:
    """The rows of output ``name``, from its JSON lines or (``--format parquet``) its Parquet file."""
    return contract.read_rows(contract.output_path(out_dir, name))


def source_group(row: dict[str, Any]) -> str:
    """The source a document's boilerplate is counted under: its hostname, else the first sub-folder of
    INPUT (as the cleanup stage groups documents to learn boilerplate)."""
    if row.get("hostname"):
        return str(row["hostname"])
    return folder_group(str(row.get("source", ""))) or TOP_FOLDER


def kept_view(record: dict[str, Any]) -> dict[str, Any]:
    """A kept record as a cluster shows it (its metadata and length, not its text)."""
    return {
        "id": record["id"],
        "source": record["source"],
        "url": record.get("url"),
        "title": record.get("title"),
        "length": len(record.get("text") or ""),
        "date": record.get("date"),
    }


def member_view(dup: dict[str, Any]) -> dict[str, Any]:
    """A duplicate as its cluster lists it: metadata, how similar it is and why it lost."""
    return {
        "id": dup["id"],
        "source": dup["source"],
        "url": dup.get("url"),
        "title": dup.get("title"),
        "similarity": round(float(dup["similarity"]), 4),
        "containment": round(float(dup.get("containment", dup["similarity"])), 4),
        "kind": dup["kind"],
        "how": dup.get("how"),  # exact, jaccard, containment, rewrite (None in outputs of older releases)
        "reason": dup.get("reason", ""),
        "matched": dup.get("matched", dup["duplicate_of"]),
        "length": len(dup.get("text") or ""),
        "date": dup.get("date"),
    }


def member_order(member: dict[str, Any]) -> tuple[float, str]:
    """A cluster's members most similar first, then by source."""
    return (-member["similarity"], member["source"])


def built_from(out_dir: Path) -> dict[str, Any]:
    """What a report depends on: the output files' sizes (they only grow, or are rewritten by --rebuild)
    and the run configuration (a rebuild with another threshold could leave the sizes as they were)."""
    built: dict[str, Any] = {
        name: contract.output_path(out_dir, name).stat().st_size for name in SOURCE_FILES
    }
    config = json.loads((out_dir / contract.STATS).read_text(encoding="utf-8")).get("config", {})
    built["config"] = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    return built


def build_report(
    out_dir: Path, config: ReportConfig | None = None, texts_for: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """The report of ``out_dir``'s whole history, and the clean texts of the kept records in ``texts_for``.

    Returns:
        ``(report, texts)``: ``report`` is what ``report.json`` holds (``counts``, ``config``,
        ``similarity_histogram``, ``boilerplate``, ``clusters`` sorted by size, then id); ``texts`` maps
        each requested kept id to its text.

    Raises:
        ReportError: ``out_dir`` holds no outputs.
    """
    config = config or ReportConfig()
    out_dir = Path(out_dir)
    check_output(out_dir)
    inputs = built_from(out_dir)
    wanted = set(texts_for)
    members: dict[str, list[dict[str, Any]]] = {}
    removed: dict[str, Counter[str]] = {}
    documents: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    bins = [
        {"from": round(i / config.bins, 4), "to": round((i + 1) / config.bins, 4), "exact": 0, "near": 0}
        for i in range(config.bins)
    ]

    def count_removed(row: dict[str, Any]) -> None:
        group = source_group(row)
        documents[group] += 1
        lines = row.get("removed_lines") or ()
        if lines:
            removed.setdefault(group, Counter()).update(lines)

    for dup in output_rows(out_dir, contract.DUPLICATES):
        member = member_view(dup)
        members.setdefault(dup["duplicate_of"], []).append(member)
        kinds[member["kind"]] += 1
        # round() first: 0.85 * 20 is 16.999999999999996 in binary floating point.
        index = min(int(round(member["similarity"] * config.bins, 6)), config.bins - 1)
        bins[max(index, 0)]["exact" if member["kind"] == "exact" else "near"] += 1
        count_removed(dup)

    kept_views: dict[str, dict[str, Any]] = {}
    texts: dict[str, str] = {}
    kept = 0
    for record in output_rows(out_dir, contract.RECORDS):
        kept += 1
        count_removed(record)
        if record["id"] in members:
            kept_views[record["id"]] = kept_view(record)
        if record["id"] in wanted:
            texts[record["id"]] = record.get("text") or ""

    rejected: Counter[str] = Counter(r.get("reason", "?") for r in output_rows(out_dir, contract.REJECTED))
    stats = json.loads((out_dir / contract.STATS).read_text(encoding="utf-8"))

    clusters: list[dict[str, Any]] = []
    for kept_id, copies in members.items():
        # A kept record is never withdrawn, so it is in records.jsonl; should a file have been edited by
        # hand, the cluster still shows, with what its copies say about it.
        view = kept_views.get(kept_id) or {
            "id": kept_id,
            "source": None,
            "url": None,
            "title": None,
            "length": None,
            "date": None,
        }
        clusters.append({"id": kept_id, "size": len(copies) + 1, "kept": view, "members": copies})
    for cluster in clusters:
        cluster["members"].sort(key=member_order)
    clusters.sort(key=lambda c: (-c["size"], c["id"]))

    duplicates = sum(kinds.values())
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "output": str(out_dir),
        "built_from": inputs,
        "counts": {
            "documents": kept + duplicates + sum(rejected.values()),
            "kept": kept,
            "duplicates": duplicates,
            "exact": kinds["exact"],
            "near": kinds["near"],
            "rejected": sum(rejected.values()),
            "rejected_by_reason": dict(sorted(rejected.items())),
            "clusters": len(clusters),
            "largest_cluster": clusters[0]["size"] if clusters else 0,
            "documents_in_clusters": sum(c["size"] for c in clusters),
        },
        "config": stats.get("config", {}),
        "similarity_histogram": {"bin_width": round(1 / config.bins, 4), "bins": bins},
        "boilerplate": _boilerplate(removed, documents, config.boilerplate_lines),
        "clusters": clusters,
    }
    return report, texts


def _boilerplate(removed: dict[str, Counter[str]], documents: Counter[str], top: int) -> list[dict[str, Any]]:
    """Per source, the lines removed most often (ties by line); sources with most documents first (then
    most lines removed, then by name): a reader of a crawl of many sites wants its big sources first."""
    sources: list[dict[str, Any]] = []
    for group, lines in removed.items():
        ranked = sorted(lines.items(), key=lambda item: (-item[1], item[0]))[:top]
        sources.append(
            {
                "source": group,
                "documents": documents[group],
                "lines_removed": sum(lines.values()),
                "distinct_lines": len(lines),
                "top": [{"line": line, "count": n} for line, n in ranked],
            }
        )
    sources.sort(key=lambda s: (-s["documents"], -s["lines_removed"], s["source"]))
    return sources
