"""Tests for pipeline/contract.py: the validator catches every breach of the output contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.contract import Rejection, document_id, validate_output

RECORD = {
    "id": "a1",
    "source": "a.txt",
    "url": None,
    "title": "T",
    "author": None,
    "text": "x",
    "date": None,
    "hostname": None,
    "language": "en",
    "content_hash": "h",
}
DUPLICATE = {"id": "b1", "source": "b.txt", "duplicate_of": "a1", "kind": "exact", "similarity": 1.0}
REJECTION = {"source": "c.txt", "reason": "empty", "detail": "0 bytes"}


def _write(out: Path, records=(RECORD,), duplicates=(DUPLICATE,), rejected=(REJECTION,)) -> Path:
    out.mkdir(exist_ok=True)
    for name, rows in (("records", records), ("duplicates", duplicates), ("rejected", rejected)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "stats.json").write_text("{}")
    return out


def test_valid_output_is_counted(tmp_path: Path):
    assert validate_output(_write(tmp_path)) == {"records": 1, "duplicates": 1, "rejected": 1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"records": ({k: v for k, v in RECORD.items() if k != "text"},)}, "lacks"),
        ({"records": ({k: v for k, v in RECORD.items() if k != "language"},)}, "lacks"),
        ({"duplicates": ({**DUPLICATE, "duplicate_of": "zz"},)}, "not a kept record"),
        ({"duplicates": ({**DUPLICATE, "kind": "fuzzy"},)}, "bad kind"),
        ({"duplicates": ({**DUPLICATE, "source": "a.txt"},)}, "more than once"),
        ({"rejected": ({**REJECTION, "reason": "meh"},)}, "unknown reason"),
    ],
)
def test_breaches_are_caught(tmp_path: Path, change: dict, message: str):
    with pytest.raises(ValueError, match=message):
        validate_output(_write(tmp_path, **change))


def test_ids_are_stable_and_distinct():
    assert document_id("a.txt") == document_id("a.txt") != document_id("a.txt#1")
    assert len(document_id("a.txt")) == 16


def test_unknown_rejection_reason_is_refused():
    with pytest.raises(ValueError):
        Rejection("a", "whatever", "")
