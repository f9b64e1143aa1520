"""Word diffs of a copy against its kept text: for the terminal (``pipeline report --cluster``), for one
cluster in full, and the compact ops embedded in ``report.html`` for the largest clusters."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline import contract
from pipeline.report.build import (
    ReportConfig,
    ReportError,
    check_output,
    kept_view,
    member_order,
    member_view,
    output_rows,
)

Segment = tuple[str, str]  # ("=" | "-" | "+", text): kept text, deleted from it, inserted in the copy

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
    for dup in output_rows(out_dir, contract.DUPLICATES):
        if dup["duplicate_of"] == cluster_id:
            copies.append(dup)
        elif dup["id"] == cluster_id:
            redirect = dup["duplicate_of"]
    if redirect is not None and not copies:
        cluster_id = redirect
        copies = [d for d in output_rows(out_dir, contract.DUPLICATES) if d["duplicate_of"] == cluster_id]
    kept = next((r for r in output_rows(out_dir, contract.RECORDS) if r["id"] == cluster_id), None)
    if kept is None:
        raise ReportError(f"no cluster, kept record or duplicate with id {cluster_id!r} in {out_dir}")
    kept_text = kept.get("text") or ""
    members = []
    for dup in copies:
        member = member_view(dup)
        member["text"] = dup.get("text") or ""
        member["diff"] = [list(s) for s in word_diff(kept_text, member["text"])]
        members.append(member)
    members.sort(key=member_order)
    return {
        "id": cluster_id,
        "size": len(members) + 1,
        "kept": {**kept_view(kept), "text": kept_text},
        "members": members,
    }


def embedded_diffs(
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
    for dup in output_rows(out_dir, contract.DUPLICATES):
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
