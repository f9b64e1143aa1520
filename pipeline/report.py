"""Duplicate reports: ``report.json`` and ``report.html`` in OUTPUT, and the ``pipeline report`` command.

Both reports are built from the output files, never from a run in memory: runs are incremental and append
to ``records.jsonl``, ``duplicates.jsonl`` and ``rejected.jsonl``, so the files hold the whole history (an
output folder of ``--format parquet`` is read from ``records.parquet`` ... instead, which hold the same).
They are read as streams (duplicates twice, records once); what stays in memory is the metadata of the
documents in clusters, the texts of the clusters whose diffs are embedded, and per-source line counts.

``report.html`` is one self-contained file: inline CSS and script, no network (its Content-Security-Policy
allows only its own script and style, by hash). Scraped text is hostile, so every piece of it is escaped:
``html.escape`` in the static parts (summary, histogram, boilerplate tables), and in the embedded data
``<``, ``>``, ``&``, U+2028 and U+2029 become JSON escapes, so no text can close the ``<script>`` element;
the script renders it with ``textContent`` only and links only ``http(s)`` URLs.

At 50,000 duplicates the page stays usable: cluster metadata is embedded as compact arrays and rendered a
page at a time; diffs are computed here (``difflib.SequenceMatcher`` over word tokens, the same diff as the
terminal's) only for the largest clusters, up to a budget (:class:`ReportConfig`), and rendered when a
member is opened. Any other cluster's diff is one command away: ``pipeline report OUTPUT --cluster ID``.
"""

from __future__ import annotations

import argparse
import base64
import csv
import difflib
import hashlib
import html
import json
import logging
import re
import sys
import webbrowser
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipeline import contract
from pipeline.load import folder_group
from pipeline.lock import DEFAULT_WAIT, OutputBusy, output_lock
from pipeline.writer import write_bytes_atomic

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
REPORT_FORMAT = 1
SOURCE_FILES = (contract.RECORDS, contract.DUPLICATES, contract.REJECTED)
TOP_FOLDER = "(top folder)"  # the source group of files directly under INPUT

Segment = tuple[str, str]  # ("=" | "-" | "+", text): kept text, deleted from it, inserted in the copy


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
        html_sources: sources shown in the HTML boilerplate view (``report.json`` lists every source).
    """

    boilerplate_lines: int = 20
    bins: int = 20
    diff_clusters: int = 200
    diff_members: int = 2000
    diff_words: int = 3000
    html_sources: int = 300

    def __post_init__(self) -> None:
        for name in ("boilerplate_lines", "bins", "diff_words", "html_sources"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("diff_clusters", "diff_members"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


# ---------------------------------------------------------------------------------------------------
# Reading the outputs


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


def _rows(out_dir: Path, name: str) -> Iterator[dict[str, Any]]:
    """The rows of output ``name``, from its JSON lines or (``--format parquet``) its Parquet file."""
    return contract.read_rows(contract.output_path(out_dir, name))


def source_group(row: dict[str, Any]) -> str:
    """The source a document's boilerplate is counted under: its hostname, else the first sub-folder of
    INPUT (as the cleanup stage groups documents to learn boilerplate)."""
    if row.get("hostname"):
        return str(row["hostname"])
    return folder_group(str(row.get("source", ""))) or TOP_FOLDER


def _kept_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "source": record["source"],
        "url": record.get("url"),
        "title": record.get("title"),
        "length": len(record.get("text") or ""),
        "date": record.get("date"),
    }


def _member_view(dup: dict[str, Any]) -> dict[str, Any]:
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


def _member_order(member: dict[str, Any]) -> tuple[float, str]:
    return (-member["similarity"], member["source"])


def _built_from(out_dir: Path) -> dict[str, Any]:
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
    built_from = _built_from(out_dir)
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

    for dup in _rows(out_dir, contract.DUPLICATES):
        member = _member_view(dup)
        members.setdefault(dup["duplicate_of"], []).append(member)
        kinds[member["kind"]] += 1
        # round() first: 0.85 * 20 is 16.999999999999996 in binary floating point.
        index = min(int(round(member["similarity"] * config.bins, 6)), config.bins - 1)
        bins[max(index, 0)]["exact" if member["kind"] == "exact" else "near"] += 1
        count_removed(dup)

    kept_views: dict[str, dict[str, Any]] = {}
    texts: dict[str, str] = {}
    kept = 0
    for record in _rows(out_dir, contract.RECORDS):
        kept += 1
        count_removed(record)
        if record["id"] in members:
            kept_views[record["id"]] = _kept_view(record)
        if record["id"] in wanted:
            texts[record["id"]] = record.get("text") or ""

    rejected: Counter[str] = Counter(r.get("reason", "?") for r in _rows(out_dir, contract.REJECTED))
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
        cluster["members"].sort(key=_member_order)
    clusters.sort(key=lambda c: (-c["size"], c["id"]))

    duplicates = sum(kinds.values())
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "output": str(out_dir),
        "built_from": built_from,
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
    """Per source, the lines removed most often (ties by line), sources with most removals first."""
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
    sources.sort(key=lambda s: (-s["lines_removed"], s["source"]))
    return sources


def load_report(out_dir: Path) -> dict[str, Any]:
    """``OUTPUT/report.json`` as written by :func:`write_reports` (raises ``OSError`` when absent)."""
    return dict(json.loads((Path(out_dir) / REPORT_JSON).read_text(encoding="utf-8")))


def reports_are_current(out_dir: Path) -> bool:
    """Both reports exist and were built from the output files as they are now."""
    out_dir = Path(out_dir)
    if not (out_dir / REPORT_HTML).is_file():
        return False
    try:
        # dump_report writes one top-level key a line, these first: a no-op run need not parse the clusters
        head: dict[str, Any] = {}
        with (out_dir / REPORT_JSON).open(encoding="utf-8") as handle:
            for _, line in zip(range(4), handle, strict=False):
                key, _, value = line.strip().rstrip(",").partition(": ")
                if key in ('"format"', '"built_from"'):
                    head[json.loads(key)] = json.loads(value)
        return bool(head.get("format") == REPORT_FORMAT and head.get("built_from") == _built_from(out_dir))
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------------
# Cluster detail and word diffs


_WORD = re.compile(r"(\S+)(\s*)")


def word_tokens(text: str) -> list[tuple[str, str]]:
    """``(word, the whitespace after it)`` pairs; joined back they give ``text`` without leading space."""
    return _WORD.findall(text)


def word_opcodes(
    kept: list[tuple[str, str]], copy: list[tuple[str, str]]
) -> Sequence[tuple[str, int, int, int, int]]:
    """``SequenceMatcher`` opcodes over the words alone (whitespace differences are not differences).

    ``autojunk`` is off: it would treat every word that makes up over 1% of a long text ("the") as junk
    and leave long runs of a near copy marked as changed.
    """
    matcher = difflib.SequenceMatcher(None, [w for w, _ in kept], [w for w, _ in copy], autojunk=False)
    return matcher.get_opcodes()


def word_diff(kept_text: str, copy_text: str) -> list[Segment]:
    """The word diff of a copy against the kept text, as ``("=", text)``, ``("-", text)`` (only in the
    kept text) and ``("+", text)`` (only in the copy) segments; ``=`` runs carry the kept text's spacing.

    Example:
        >>> word_diff("the cat sat", "the dog sat")
        [('=', 'the '), ('-', 'cat '), ('+', 'dog '), ('=', 'sat')]
    """
    kept, copy = word_tokens(kept_text), word_tokens(copy_text)
    segments: list[Segment] = []
    for tag, i1, i2, j1, j2 in word_opcodes(kept, copy):
        if tag == "equal":
            segments.append(("=", _joined(kept[i1:i2])))
            continue
        deleted = _joined(kept[i1:i2])
        if j2 > j1 and deleted:
            # replaced: the copy's words follow the struck-out ones on the same line
            deleted = deleted.rstrip() + " "
        if deleted:
            segments.append(("-", deleted))
        if j2 > j1:
            segments.append(("+", _joined(copy[j1:j2])))
    # the kept text's last word has no space after it; a word inserted after it needs one
    return [
        (op, text + " " if i < len(segments) - 1 and text and not text[-1].isspace() else text)
        for i, (op, text) in enumerate(segments)
    ]


def _joined(tokens: list[tuple[str, str]]) -> str:
    return "".join(w + s for w, s in tokens)


def cluster_detail(out_dir: Path, cluster_id: str) -> dict[str, Any]:
    """One cluster with texts and word diffs: ``{"id", "size", "kept": {..., "text"}, "members": [{...,
    "text", "diff": [[op, text], ...]}]}``. ``cluster_id`` is the kept record's id or any member's id.

    Raises:
        ReportError: no outputs, or no kept record or duplicate has that id.
    """
    out_dir = Path(out_dir)
    check_output(out_dir)
    cluster_id = cluster_id.strip().lower()
    copies: list[dict[str, Any]] = []
    redirect = None
    for dup in _rows(out_dir, contract.DUPLICATES):
        if dup["duplicate_of"] == cluster_id:
            copies.append(dup)
        elif dup["id"] == cluster_id:
            redirect = dup["duplicate_of"]
    if redirect is not None and not copies:
        cluster_id = redirect
        copies = [d for d in _rows(out_dir, contract.DUPLICATES) if d["duplicate_of"] == cluster_id]
    kept = next((r for r in _rows(out_dir, contract.RECORDS) if r["id"] == cluster_id), None)
    if kept is None:
        raise ReportError(f"no cluster, kept record or duplicate with id {cluster_id!r} in {out_dir}")
    kept_text = kept.get("text") or ""
    members = []
    for dup in copies:
        member = _member_view(dup)
        member["text"] = dup.get("text") or ""
        member["diff"] = [list(s) for s in word_diff(kept_text, member["text"])]
        members.append(member)
    members.sort(key=_member_order)
    return {
        "id": cluster_id,
        "size": len(members) + 1,
        "kept": {**_kept_view(kept), "text": kept_text},
        "members": members,
    }


# ---------------------------------------------------------------------------------------------------
# Writing report.json and report.html


def write_reports(out_dir: Path, config: ReportConfig | None = None) -> tuple[Path, Path]:
    """Build the report of ``out_dir`` and write ``report.json`` and ``report.html`` (atomically).

    Raises:
        ReportError: ``out_dir`` holds no outputs.
    """
    config = config or ReportConfig()
    out_dir = Path(out_dir)
    check_output(out_dir)
    # The clusters whose diffs go into the page are the largest; their order is known only after the
    # duplicates are read, so the sizes are counted first (a pass over duplicates.jsonl without texts).
    sizes: Counter[str] = Counter(d["duplicate_of"] for d in _rows(out_dir, contract.DUPLICATES))
    ranked = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))
    chosen: dict[str, int] = {}  # kept id -> how many of its copies get an embedded diff
    budget = config.diff_members
    for kept_id, n in ranked[: config.diff_clusters]:
        if budget <= 0:
            break
        chosen[kept_id] = min(n, budget)
        budget -= n
    report, texts = build_report(out_dir, config, texts_for=chosen)
    diffs = _embedded_diffs(out_dir, texts, chosen, config)
    json_path, html_path = out_dir / REPORT_JSON, out_dir / REPORT_HTML
    write_bytes_atomic(json_path, dump_report(report).encode("utf-8", "replace"))
    write_bytes_atomic(html_path, render_html(report, diffs, config).encode("utf-8", "replace"))
    return json_path, html_path


def update_reports(out_dir: Path) -> None:
    """After a run: write both reports unless they are current. A failure is logged, not raised: the
    outputs are committed by then, and ``pipeline report OUTPUT --open`` writes the reports again."""
    try:
        if not reports_are_current(out_dir):
            write_reports(out_dir)
    except Exception as err:  # noqa: BLE001 - the run's outputs stand; the report can be rebuilt
        log.warning("report not written to %s: %s: %s", out_dir, type(err).__name__, err)


def _embedded_diffs(
    out_dir: Path, texts: dict[str, str], chosen: dict[str, int], config: ReportConfig
) -> dict[str, dict[str, Any]]:
    """Per chosen cluster: the kept text's tokens (cut at ``diff_words``) and each member's diff ops
    against them: ``[0, i, j]`` kept words i..j in both, ``[1, i, j]`` only in the kept text,
    ``[2, "text"]`` only in the copy."""
    cap = config.diff_words
    embedded: dict[str, dict[str, Any]] = {}
    kept_tokens: dict[str, list[tuple[str, str]]] = {}
    for kept_id in chosen:
        tokens = word_tokens(texts.get(kept_id, ""))
        kept_tokens[kept_id] = tokens[:cap]
        embedded[kept_id] = {
            "tokens": [w + s for w, s in tokens[:cap]],
            "cut": len(tokens) > cap,
            "members": {},
        }
    if not chosen:
        return embedded
    allowance = dict(chosen)
    for dup in _rows(out_dir, contract.DUPLICATES):
        entry = embedded.get(dup["duplicate_of"])
        if entry is None or allowance[dup["duplicate_of"]] <= 0:
            continue
        allowance[dup["duplicate_of"]] -= 1
        kept = kept_tokens[dup["duplicate_of"]]
        copy = word_tokens(dup.get("text") or "")
        ops: list[list[Any]] = []
        # an exact copy has the kept text: nothing to compare
        opcodes = (
            [("equal", 0, len(kept), 0, len(kept))]
            if dup["kind"] == "exact"
            else word_opcodes(kept, copy[:cap])
        )
        for tag, i1, i2, j1, j2 in opcodes:
            if tag == "equal":
                ops.append([0, i1, i2])
                continue
            if i2 > i1:
                ops.append([1, i1, i2])
            if j2 > j1:
                ops.append([2, _joined(copy[j1:j2])])
        entry["members"][dup["id"]] = [ops, len(copy) > cap]
    return embedded


def dump_report(report: dict[str, Any]) -> str:
    """``report.json``'s text: one top-level key per line, one cluster per line (greppable, compact)."""
    parts = []
    for key, value in report.items():
        if key == "clusters":
            rows = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in value)
            parts.append(f'  "clusters": [\n{rows}\n  ]' if rows else '  "clusters": []')
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


# ---------------------------------------------------------------------------------------------------
# report.html


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


def _clip(value: Any, limit: int = 400) -> Any:
    """A field as shown in the page: a hostile 1 MB title must not make the page 1 MB per row."""
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value


def page_data(report: dict[str, Any], diffs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The data the page's script renders, as compact arrays (field order in ``_SCRIPT``'s C and M).

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
                _clip(m["source"]),
                _clip(m["url"]),
                None if m["title"] == kept["title"] else _clip(m["title"]),
                m["similarity"],
                m["containment"],
                1 if m["kind"] == "exact" else 0,
                reasons.setdefault(_clip(m["reason"]), len(reasons)),
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
                _clip(kept["source"]),
                _clip(kept["url"]),
                _clip(kept["title"]),
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


def _n(value: int) -> str:
    return f"{value:,}"


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def render_html(report: dict[str, Any], diffs: dict[str, dict[str, Any]], config: ReportConfig) -> str:
    """``report.html``: one self-contained page (summary, histogram, clusters, diffs, boilerplate)."""
    counts = report["counts"]
    minhash = report["config"].get("minhash", {})
    # Only this page's own script and style run; nothing is fetched (no network, no external assets).
    csp = (
        f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; "
        "img-src 'none'; base-uri 'none'; form-action 'none'"
    )
    cards = [
        ("documents", counts["documents"], "in all runs"),
        ("kept", counts["kept"], contract.output_path(Path(report["output"]), contract.RECORDS).name),
        ("duplicates", counts["duplicates"], f"{_n(counts['exact'])} exact, {_n(counts['near'])} near"),
        (
            "rejected",
            counts["rejected"],
            contract.output_path(Path(report["output"]), contract.REJECTED).name,
        ),
        ("clusters", counts["clusters"], f"largest: {_n(counts['largest_cluster'])} documents"),
    ]
    card_html = "".join(
        f'<div class="card" id="count-{_e(name)}"><span class="label">{_e(name)}</span>'
        f'<span class="value">{_n(value)}</span><span class="note">{_e(note)}</span></div>'
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
        + "".join(f"<tr><th>{_e(k)}</th><td>{_n(v)}</td></tr>" for k, v in reasons.items())
        + "</table>"
        if reasons
        else ""
    )
    embedded = len(diffs)
    embedded_note = (
        f"Word diffs are embedded for the {_n(embedded)} largest clusters"
        + (f" of {_n(counts['clusters'])}" if embedded < counts["clusters"] else "")
        + "; for any cluster, <code>pipeline report OUTPUT --cluster ID</code> prints them in a terminal."
    )
    body = _PAGE.format(
        csp=_e(csp),
        style=_STYLE,
        script=_SCRIPT,
        output=_e(report["output"]),
        cards=card_html,
        histogram=histogram_svg(report["similarity_histogram"], minhash.get("threshold")),
        settings=settings_html,
        reasons=reasons_html,
        clusters=_n(counts["clusters"]),
        embedded_note=embedded_note,
        boilerplate=_boilerplate_html(report["boilerplate"], config),
        data=script_json(page_data(report, diffs)),
    )
    return body


def histogram_svg(histogram: dict[str, Any], threshold: float | None) -> str:
    """The similarity histogram as an inline SVG: exact and near copies stacked per bin."""
    bins = histogram["bins"]
    width, height, left, bottom, top = 640, 220, 44, 28, 18
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((b["exact"] + b["near"] for b in bins), default=0) or 1
    bar_w = plot_w / len(bins)
    parts = [
        f'<svg class="histogram" viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="hist-title" xmlns="http://www.w3.org/2000/svg">',
        '<title id="hist-title">Duplicates by measured Jaccard similarity with the kept record</title>',
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}"/>',
    ]
    for i, b in enumerate(bins):
        total = b["exact"] + b["near"]
        x = left + i * bar_w
        y_base = top + plot_h
        for kind in ("near", "exact"):
            if not b[kind]:
                continue
            h = max(2.0, plot_h * b[kind] / peak)
            y_base -= h
            parts.append(
                f'<rect class="bar-{kind}" x="{x + 1:.1f}" y="{y_base:.1f}" width="{bar_w - 2:.1f}" '
                f'height="{h:.1f}"><title>{b["from"]:.2f}–{b["to"]:.2f}: {_n(b[kind])} {kind}</title></rect>'
            )
        if total:
            parts.append(
                f'<text class="count" x="{x + bar_w / 2:.1f}" y="{y_base - 4:.1f}">{_n(total)}</text>'
            )
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + tick * plot_w
        parts.append(f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 16}">{tick:g}</text>')
    if isinstance(threshold, int | float) and 0 <= threshold <= 1:
        x = left + threshold * plot_w
        parts.append(
            f'<line class="threshold" x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{top + plot_h}"/>'
            f'<text class="threshold-label" x="{x - 4:.1f}" y="{top - 8}">threshold {threshold:g}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="10" y="{top + plot_h / 2:.1f}" '
        f'transform="rotate(-90 10 {top + plot_h / 2:.1f})">copies</text></svg>'
    )
    return "".join(parts)


def _boilerplate_html(sources: list[dict[str, Any]], config: ReportConfig) -> str:
    if not sources:
        return '<p class="empty">No boilerplate lines were removed.</p>'
    shown = sources[: config.html_sources]
    parts = []
    if len(sources) > len(shown):
        parts.append(
            f'<p class="note">The {_n(len(shown))} sources with most lines removed, of '
            f"{_n(len(sources))}; report.json lists them all.</p>"
        )
    for source in shown:
        rows = "".join(
            f'<tr><td class="line">{_e(item["line"])}</td><td class="num">{_n(item["count"])}</td>'
            f'<td class="num">{item["count"] / max(source["documents"], 1):.0%}</td></tr>'
            for item in source["top"]
        )
        more = source["distinct_lines"] - len(source["top"])
        distinct = f", {_n(source['distinct_lines'])} distinct lines (top {len(source['top'])} shown)"
        distinct = distinct if more > 0 else ""
        parts.append(
            '<section class="bp-source">'
            f'<h3><span class="bp-name">{_e(source["source"])}</span></h3>'
            f'<p class="note">{_n(source["documents"])} documents, {_n(source["lines_removed"])} lines '
            f"removed{distinct}</p>"
            '<table class="bp-table"><thead><tr><th>line removed</th><th>times</th>'
            "<th>per document</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></section>"
        )
    return "".join(parts)


# ---------------------------------------------------------------------------------------------------
# Terminal output (pipeline report)


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
        ("documents (all runs)", _n(counts["documents"])),
        ("kept", _n(counts["kept"])),
        (
            "duplicates",
            f"{_n(counts['duplicates'])} ({_n(counts['exact'])} exact, {_n(counts['near'])} near)",
        ),
        ("rejected", _n(counts["rejected"])),
        *((f"  rejected: {k}", _n(v)) for k, v in counts["rejected_by_reason"].items()),
        ("clusters", _n(counts["clusters"])),
        ("largest cluster", f"{_n(counts['largest_cluster'])} documents"),
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
        table.add_row(f"{b['from']:.2f}–{b['to']:.2f}", _n(b["exact"]), _n(b["near"]), bar)
    return table


def clusters_table(report: dict[str, Any], top: int) -> Table:
    """The largest clusters: size, kept record, the lowest similarity among its copies."""
    clusters = report["clusters"][:top] if top else report["clusters"]
    table = Table(
        title=f"Largest clusters ({_n(len(clusters))} of {_n(len(report['clusters']))})", title_justify="left"
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
            _n(cluster["size"]),
            Text(str(cluster["kept"]["source"])),
            Text(_clip(str(cluster["kept"]["title"] or ""), 60)),
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
        f"{kept['source']} ({_n(kept['length'])} characters{dated})",
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
                f"{_n(member['length'])} characters; lost: {member['reason']}",
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
                "title": _clip(cluster["kept"]["title"] or "", 120),
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
        f"{_n(counts['documents'])} documents in all runs: {_n(counts['kept'])} kept, "
        f"{_n(counts['duplicates'])} duplicates ({_n(counts['exact'])} exact, {_n(counts['near'])} near) in "
        f"{_n(counts['clusters'])} clusters (largest: {_n(counts['largest_cluster'])} documents), "
        f"{_n(counts['rejected'])} rejected. Threshold {minhash.get('threshold')}, containment "
        f"{minhash.get('containment')}.",
        "",
    ]
    rows = top_cluster_rows(report, top)
    if rows:
        lines += [
            f"## Largest clusters ({len(rows)} of {_n(counts['clusters'])})",
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


CSV_FIELDS = (
    "cluster_id",
    "cluster_size",
    "kept_source",
    "kept_title",
    "member_id",
    "member_source",
    "member_title",
    "kind",
    "similarity",
    "containment",
    "reason",
)


def write_csv(clusters: list[dict[str, Any]], stream: Any) -> None:
    """One row per duplicate, with its cluster and kept record (values as written, not spreadsheet-safe)."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for cluster in clusters:
        for m in cluster["members"]:
            writer.writerow(
                [
                    cluster["id"],
                    cluster["size"],
                    cluster["kept"]["source"],
                    cluster["kept"]["title"],
                    m["id"],
                    m["source"],
                    m["title"],
                    m["kind"],
                    m["similarity"],
                    m["containment"],
                    m["reason"],
                ]
            )


# ---------------------------------------------------------------------------------------------------
# The ``pipeline report`` command


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pipeline report``."""
    parser.add_argument(
        "output", nargs="?", default="clean", type=Path, help="output folder of a clean run (default: clean)"
    )
    parser.add_argument("--top", type=int, default=10, help="largest clusters listed (default: 10; 0 = all)")
    parser.add_argument(
        "--cluster",
        metavar="ID",
        help="show one cluster (a kept record's id, or a duplicate's) with word diffs",
    )
    parser.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="table for people (default), json or csv on stdout for scripts",
    )
    parser.add_argument(
        "--open", action="store_true", help="open OUTPUT/report.html in a browser (written first if stale)"
    )


def run_report(args: argparse.Namespace) -> int:
    """``pipeline report``: print the summary and the largest clusters, one cluster, or open the page.

    Raises:
        ReportError: no outputs in ``args.output``, an unknown cluster id, or a negative ``--top``.
    """
    if args.top < 0:
        raise ReportError("--top must be >= 0 (0 lists every cluster)")
    out_dir = Path(args.output)
    console = Console(highlight=False)
    check_output(out_dir)
    if not reports_are_current(out_dir):  # runs with --no-report leave them stale or absent
        try:
            with output_lock(out_dir, DEFAULT_WAIT, log.warning):  # not while a run appends
                write_reports(out_dir)
        except OutputBusy as err:
            raise ReportError(str(err)) from err
        except OSError as err:
            raise ReportError(f"cannot write the reports in {out_dir}: {err.strerror or err}") from err
    if args.open:
        uri = (out_dir / REPORT_HTML).resolve().as_uri()
        opened = webbrowser.open(uri)
        print(f"{'opened' if opened else 'open this in a browser:'} {uri}")
        return 0
    if args.cluster:
        detail = cluster_detail(out_dir, args.cluster)
        if args.format == "json":
            print(json.dumps(detail, ensure_ascii=False, indent=2))
        elif args.format == "csv":
            write_csv([detail], sys.stdout)
        else:
            print_cluster(console, detail)
        return 0
    report, _ = build_report(out_dir)
    if args.format == "table":
        console.print(summary_table(report))
        console.print(histogram_table(report))
        console.print(clusters_table(report, args.top))
        console.print(
            Text(
                f"One cluster with word diffs: pipeline report {out_dir} --cluster ID; in a browser: --open",
                style="dim",
            )
        )
        return 0
    if args.top:
        report["clusters"] = report["clusters"][: args.top]
    if args.format == "json":
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        write_csv(report["clusters"], sys.stdout)
    return 0


# ---------------------------------------------------------------------------------------------------
# The page. Placeholders in _PAGE are filled by render_html; _STYLE and _SCRIPT are fixed text (their
# hashes go into the Content-Security-Policy), so they hold no data and no braces are formatted into them.

_STYLE = """
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #ffffff; --soft: #f6f8fa;
  --accent: #0969da; --exact: #57606a; --near: #2da44e; --del: #ffd7d5; --ins: #ccffd8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  color: var(--fg); background: var(--bg); }
header.top { padding: 16px 24px 0; border-bottom: 1px solid var(--line); background: var(--soft); }
header.top h1 { margin: 0; font-size: 20px; }
header.top p { margin: 2px 0 10px; color: var(--muted); }
nav.tabs { display: flex; gap: 4px; }
nav.tabs button { border: 1px solid transparent; border-bottom: none; background: none; padding: 8px 14px;
  font: inherit; cursor: pointer; border-radius: 6px 6px 0 0; color: var(--muted); }
nav.tabs button[aria-selected="true"] { background: var(--bg); border-color: var(--line); color: var(--fg);
  font-weight: 600; margin-bottom: -1px; }
main { padding: 16px 24px 40px; max-width: 1400px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 16px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.card .label { display: block; color: var(--muted); text-transform: uppercase; font-size: 11px;
  letter-spacing: .04em; }
.card .value { display: block; font-size: 24px; font-weight: 600; }
.card .note { display: block; color: var(--muted); font-size: 12px; }
.panels { display: flex; flex-wrap: wrap; gap: 16px; margin-bottom: 20px; }
.panel { border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
.panel h2 { font-size: 14px; margin: 0 0 8px; }
.histogram { width: 560px; max-width: 100%; height: auto; }
.histogram .bar-exact { fill: var(--exact); }
.histogram .bar-near { fill: var(--near); }
.histogram .axis { stroke: var(--muted); }
.histogram .threshold { stroke: #cf222e; stroke-dasharray: 4 3; }
.histogram text { font-size: 11px; fill: var(--muted); text-anchor: middle; }
.histogram .threshold-label { fill: #cf222e; text-anchor: end; }
.legend { color: var(--muted); font-size: 12px; }
.legend .swatch { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }
.swatch.exact { background: var(--exact); }
.swatch.near { background: var(--near); }
table.kv { border-collapse: collapse; margin-bottom: 10px; }
table.kv caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
table.kv th { text-align: left; font-weight: normal; color: var(--muted); padding: 2px 16px 2px 0; }
table.kv td { font-variant-numeric: tabular-nums; }
.toolbar { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; margin: 8px 0 12px; }
.toolbar input[type="search"] { flex: 1 1 320px; max-width: 520px; padding: 6px 10px; font: inherit;
  border: 1px solid var(--line); border-radius: 6px; }
.toolbar select { padding: 5px 6px; font: inherit; border: 1px solid var(--line); border-radius: 6px; }
#cluster-count { color: var(--muted); }
.cluster { border: 1px solid var(--line); border-radius: 8px; margin-bottom: 12px; }
.cluster > header { padding: 8px 12px; background: var(--soft); border-bottom: 1px solid var(--line);
  border-radius: 8px 8px 0 0; }
.cluster h3 { margin: 0; font-size: 15px; }
.cluster .meta { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
.badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600;
  background: #ddf4ff; color: #0550ae; margin-right: 6px; }
.badge.exact { background: #eaeef2; color: #424a53; }
.badge.near { background: #dafbe1; color: #116329; }
table.members { width: 100%; border-collapse: collapse; }
table.members th, table.members td { text-align: left; padding: 5px 10px; border-top: 1px solid var(--line);
  vertical-align: top; }
table.members th { font-size: 12px; color: var(--muted); font-weight: 600; }
table.members td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.src { overflow-wrap: anywhere; }
td.src .title { color: var(--muted); font-size: 12px; }
button.diff-toggle, button.more, .pager button { font: inherit; font-size: 12px; padding: 2px 10px;
  border: 1px solid var(--line); border-radius: 6px; background: var(--bg); cursor: pointer; }
button.diff-toggle[aria-expanded="true"] { background: #ddf4ff; }
.pager { display: flex; gap: 8px; align-items: center; margin: 12px 0; }
.diff { padding: 8px 0; }
.diff-note { color: var(--muted); font-size: 12px; margin: 0 0 6px; }
.diff-cols { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.diff-cols h4 { margin: 0 0 4px; font-size: 12px; color: var(--muted); overflow-wrap: anywhere; }
.diff-text { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 13px; line-height: 1.55;
  border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; max-height: 420px; overflow: auto;
  background: var(--bg); }
del { background: var(--del); text-decoration: line-through; text-decoration-color: #cf222e; }
ins { background: var(--ins); text-decoration: none; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--soft);
  padding: 1px 4px; border-radius: 4px; overflow-wrap: anywhere; }
a { color: var(--accent); }
.note, .empty { color: var(--muted); }
.bp-source { border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; margin-bottom: 12px; }
.bp-source h3 { margin: 0; font-size: 15px; }
.bp-source .note { margin: 0 0 6px; font-size: 12px; }
table.bp-table { border-collapse: collapse; width: 100%; }
table.bp-table th, table.bp-table td { text-align: left; padding: 3px 8px; border-top: 1px solid var(--line);
  vertical-align: top; }
table.bp-table th { font-size: 12px; color: var(--muted); }
table.bp-table td.line { white-space: pre-wrap; overflow-wrap: anywhere; }
table.bp-table td.num, table.bp-table th:not(:first-child) { text-align: right; width: 8em;
  font-variant-numeric: tabular-nums; }
[hidden] { display: none !important; }
"""

_SCRIPT = r"""
(() => {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  // Field positions of the compact arrays (pipeline/report.py, page_data).
  const C = { ID: 0, SOURCE: 1, URL: 2, TITLE: 3, LENGTH: 4, DATE: 5, MEMBERS: 6, DIFF: 7 };
  const M = {
    ID: 0, SOURCE: 1, URL: 2, TITLE: 3, SIM: 4, CONT: 5, EXACT: 6, REASON: 7, LENGTH: 8, MATCHED: 9,
  };
  const reasons = data.reasons;
  const PAGE_SIZE = 20;
  const MEMBER_PAGE = 50;
  const clusters = data.clusters;
  const nf = new Intl.NumberFormat("en");
  const $ = (id) => document.getElementById(id);

  // Every piece of scraped text goes in through textContent: nothing from the data is parsed as HTML.
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function link(url, text) {
    // Only http(s) URLs become links: a "javascript:" URL from a scraped page stays text.
    if (typeof url !== "string" || !/^https?:\/\//i.test(url)) return el("span", "", text);
    const a = el("a", "", text);
    a.href = url;
    a.rel = "noopener noreferrer nofollow";
    a.target = "_blank";
    return a;
  }

  // Tabs
  const tabs = Array.from(document.querySelectorAll('nav.tabs [role="tab"]'));
  for (const tab of tabs) {
    tab.addEventListener("click", () => {
      for (const other of tabs) {
        const on = other === tab;
        other.setAttribute("aria-selected", on ? "true" : "false");
        $(other.getAttribute("aria-controls")).hidden = !on;
      }
    });
  }

  // Clusters: filter, sort, paginate
  const minSim = clusters.map((c) => c[C.MEMBERS].reduce((low, m) => Math.min(low, m[M.SIM]), 1));
  let haystacks = null;
  function haystack(c) {
    const parts = [c[C.ID], c[C.SOURCE], c[C.URL], c[C.TITLE]];
    for (const m of c[C.MEMBERS]) {
      parts.push(m[M.ID], m[M.SOURCE], m[M.URL], m[M.TITLE], reasons[m[M.REASON]]);
    }
    return parts.filter((p) => p !== null && p !== undefined).join("\n").toLowerCase();
  }
  let visible = clusters.map((_, i) => i);
  let page = 0;
  const search = $("search"), kindSelect = $("kind"), sortSelect = $("sort");
  const list = $("cluster-list"), countLabel = $("cluster-count");

  function applyFilter() {
    const terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const kind = kindSelect.value;
    if (terms.length && haystacks === null) haystacks = clusters.map(haystack);
    visible = [];
    for (let i = 0; i < clusters.length; i++) {
      const members = clusters[i][C.MEMBERS];
      if (kind === "near" && members.every((m) => m[M.EXACT])) continue;
      if (kind === "exact" && !members.every((m) => m[M.EXACT])) continue;
      if (terms.length && !terms.every((t) => haystacks[i].includes(t))) continue;
      visible.push(i);
    }
    if (sortSelect.value === "similarity") visible.sort((a, b) => minSim[a] - minSim[b] || a - b);
    page = 0;
    render();
  }
  let timer = 0;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(applyFilter, 120); });
  kindSelect.addEventListener("change", applyFilter);
  sortSelect.addEventListener("change", applyFilter);

  function pages() { return Math.max(1, Math.ceil(visible.length / PAGE_SIZE)); }
  function go(to) { page = Math.min(Math.max(0, to), pages() - 1); render(); list.scrollIntoView(); }
  $("first").addEventListener("click", () => go(0));
  $("prev").addEventListener("click", () => go(page - 1));
  $("next").addEventListener("click", () => go(page + 1));
  $("last").addEventListener("click", () => go(pages() - 1));

  function render() {
    const total = clusters.length;
    countLabel.textContent = visible.length === total
      ? nf.format(total) + (total === 1 ? " cluster" : " clusters")
      : nf.format(visible.length) + " of " + nf.format(total) + " clusters";
    const start = page * PAGE_SIZE;
    const cards = visible.slice(start, start + PAGE_SIZE).map((i) => clusterCard(clusters[i]));
    if (!cards.length) cards.push(el("p", "empty", total ? "No cluster matches." : "No duplicates found."));
    list.replaceChildren(...cards);
    $("page-info").textContent = visible.length
      ? "clusters " + nf.format(start + 1) + "–" + nf.format(Math.min(start + PAGE_SIZE, visible.length)) +
        " of " + nf.format(visible.length) + " · page " + (page + 1) + " of " + pages()
      : "";
    $("first").disabled = $("prev").disabled = page === 0;
    $("next").disabled = $("last").disabled = page >= pages() - 1;
  }

  function clusterCard(c) {
    const card = el("article", "cluster");
    const head = el("header");
    const title = el("h3");
    title.append(el("span", "badge", nf.format(c[C.MEMBERS].length + 1) + " documents"));
    title.append(c[C.TITLE] || "(no title)");
    head.append(title);
    const meta = el("div", "meta");
    meta.append("kept: ", el("code", "", c[C.SOURCE]), " · " + nf.format(c[C.LENGTH] || 0) + " characters");
    if (c[C.DATE]) meta.append(" · " + c[C.DATE]);
    meta.append(" · id ", el("code", "", c[C.ID]));
    if (c[C.URL]) meta.append(" · ", link(c[C.URL], c[C.URL]));
    head.append(meta);
    card.append(head);

    const table = el("table", "members");
    const hrow = el("tr");
    for (const name of ["copy", "kind", "similarity", "containment", "length", "why it lost", ""]) {
      hrow.append(el("th", "", name));
    }
    const thead = el("thead");
    thead.append(hrow);
    table.append(thead);
    const body = el("tbody");
    table.append(body);
    const members = c[C.MEMBERS];
    let shown = 0;
    const more = el("button", "more");
    function showMore() {
      const end = Math.min(members.length, shown + MEMBER_PAGE);
      for (; shown < end; shown++) body.append(memberRow(c, members[shown]));
      more.hidden = shown >= members.length;
      more.textContent = "show " + nf.format(Math.min(MEMBER_PAGE, members.length - shown)) +
        " more of " + nf.format(members.length - shown);
    }
    more.addEventListener("click", showMore);
    showMore();
    card.append(table, more);
    return card;
  }

  function memberRow(c, m) {
    const row = el("tr");
    const src = el("td", "src");
    src.append(m[M.URL] ? link(m[M.URL], m[M.SOURCE]) : el("span", "", m[M.SOURCE]));
    if (m[M.TITLE] !== null) src.append(el("div", "title", m[M.TITLE]));
    if (m[M.MATCHED] !== null) src.append(el("div", "title", "linked through " + m[M.MATCHED]));
    const kind = el("td");
    const kindName = m[M.EXACT] ? "exact" : "near";
    kind.append(el("span", "badge " + kindName, kindName));
    const button = el("button", "diff-toggle", "diff");
    button.type = "button";
    button.setAttribute("aria-expanded", "false");
    const action = el("td");
    action.append(button);
    row.append(
      src, kind,
      el("td", "num", m[M.SIM].toFixed(3)),
      el("td", "num", m[M.CONT].toFixed(3)),
      el("td", "num", nf.format(m[M.LENGTH])),
      el("td", "", reasons[m[M.REASON]]),
      action,
    );
    let detail = null;
    button.addEventListener("click", () => {
      if (detail) {
        detail.remove();
        detail = null;
        button.setAttribute("aria-expanded", "false");
        return;
      }
      detail = el("tr", "diff-row");
      const cell = el("td");
      cell.colSpan = 7;
      cell.append(diffView(c, m));
      detail.append(cell);
      row.after(detail);
      button.setAttribute("aria-expanded", "true");
    });
    return row;
  }

  // the changed words highlighted, the space after them not
  function marked(tag, text) {
    const core = text.replace(/\s+$/, "");
    return [el(tag, "", core), text.slice(core.length)];
  }

  function diffView(c, m) {
    const box = el("div", "diff");
    const entry = c[C.DIFF] >= 0 ? data.diffs[c[C.DIFF]] : null;
    const diff = entry ? entry[2][m[M.ID]] : undefined;
    if (!diff) {
      const note = el("p", "diff-note", "This diff is not embedded in the page (it holds the largest " +
        "clusters only). In a terminal: ");
      note.append(el("code", "", "pipeline report " + data.output + " --cluster " + c[C.ID]));
      box.append(note);
      return box;
    }
    const tokens = entry[0], ops = diff[0];
    const changed = ops.some((op) => op[0] !== 0);
    let text = changed
      ? "Words only in the kept text are struck out on the left; words only in the copy are marked " +
        "on the right."
      : "Same words as the kept text" +
        (m[M.EXACT] ? " (an exact copy)." : "; only spacing differs.");
    if (entry[1] || diff[1]) text += " Compared on the first " + nf.format(tokens.length) + " words.";
    box.append(el("p", "diff-note", text));
    const kept = el("div", "diff-text"), copy = el("div", "diff-text");
    for (const op of ops) {
      if (op[0] === 0) {
        const same = tokens.slice(op[1], op[2]).join("");
        kept.append(same);
        copy.append(same);
      } else if (op[0] === 1) {
        kept.append(...marked("del", tokens.slice(op[1], op[2]).join("")));
      } else {
        copy.append(...marked("ins", op[1]));
      }
    }
    const cols = el("div", "diff-cols");
    const left = el("div"), right = el("div");
    left.append(el("h4", "", "kept: " + c[C.SOURCE]), kept);
    right.append(el("h4", "", "copy: " + m[M.SOURCE]), copy);
    cols.append(left, right);
    box.append(cols);
    return box;
  }

  // Boilerplate view: filter by source or line
  const bpSearch = $("bp-search");
  if (bpSearch) {
    bpSearch.addEventListener("input", () => {
      const q = bpSearch.value.toLowerCase().trim();
      for (const section of document.querySelectorAll(".bp-source")) {
        const nameHit = section.querySelector(".bp-name").textContent.toLowerCase().includes(q);
        let any = false;
        for (const row of section.querySelectorAll("tbody tr")) {
          const hit = !q || nameHit || row.cells[0].textContent.toLowerCase().includes(q);
          row.hidden = !hit;
          any = any || hit;
        }
        section.hidden = !any;
      }
    });
  }

  render();
})();
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Duplicate report: {output}</title>
<style>{style}</style>
</head>
<body>
<header class="top">
<h1>Duplicate report</h1>
<p>{output}</p>
<nav class="tabs" role="tablist">
<button type="button" role="tab" id="tab-duplicates" aria-controls="view-duplicates" aria-selected="true">\
Duplicates</button>
<button type="button" role="tab" id="tab-boilerplate" aria-controls="view-boilerplate" aria-selected="false">\
Boilerplate removed</button>
</nav>
</header>
<main>
<section id="view-duplicates" role="tabpanel" aria-labelledby="tab-duplicates">
<div class="cards">{cards}</div>
<div class="panels">
<div class="panel"><h2>Similarity of each copy to the kept record</h2>{histogram}
<div class="legend"><span class="swatch exact"></span>exact copies<span class="swatch near"></span>near copies
 · measured Jaccard of the word shingles</div></div>
<div class="panel"><h2>Dedup settings</h2><table class="kv">{settings}</table>{reasons}</div>
</div>
<h2>Clusters <span id="cluster-count">{clusters} clusters</span></h2>
<p class="note">Each cluster is one kept record and the copies dropped in its favour, largest first.
Open a copy's diff to see what differs. {embedded_note}</p>
<div class="toolbar">
<input type="search" id="search" placeholder="Filter by source, title, URL, id or reason" \
aria-label="Filter clusters" autocomplete="off">
<select id="kind" aria-label="Kind of copies"><option value="all">all clusters</option>\
<option value="near">with near copies</option><option value="exact">exact copies only</option></select>
<select id="sort" aria-label="Order"><option value="size">largest first</option>\
<option value="similarity">least similar first</option></select>
</div>
<noscript><p class="note">The cluster list needs JavaScript; report.json holds the same data.</p></noscript>
<div id="cluster-list"></div>
<nav class="pager" aria-label="Cluster pages"><button type="button" id="first">« first</button>\
<button type="button" id="prev">‹ previous</button><span id="page-info"></span>\
<button type="button" id="next">next ›</button><button type="button" id="last">last »</button></nav>
</section>
<section id="view-boilerplate" role="tabpanel" aria-labelledby="tab-boilerplate" hidden>
<p class="note">Lines the cleanup removed from documents (kept and duplicates), most often first, per source
(hostname, else the first sub-folder of the input). A line removed from nearly every document of a source is
boilerplate; a line of real text here means a rule cuts too much.</p>
<div class="toolbar"><input type="search" id="bp-search" placeholder="Filter by source or line" \
aria-label="Filter boilerplate" autocomplete="off"></div>
{boilerplate}
</section>
</main>
<script type="application/json" id="report-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
