"""The ``clean-folder`` Prefect flow against a real temporary Prefect server (the ``prefect_harness``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from pipeline import contract
from pipeline.options import CleanOptions
from pipeline.run import RunConfig
from pipeline.run import clean_folder as library_clean_folder
from tests.corpus import OUTPUT_NAMES, SEED

ROOT = Path(__file__).resolve().parents[1]
OTHER_ARTICLE = """\
Council approves new cycle lanes for the city centre

The city council voted on Tuesday to build protected cycle lanes along four streets in the centre, after a
two-year consultation in which residents, shop owners and commuters argued over parking and deliveries.

Work on the first section is due to start in the spring, and the council expects the whole network to be
finished within three years. Opponents said they would ask for a review of the decision.
"""


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """An article, an exact copy of it under another name, an empty file and another article."""
    folder = tmp_path / "raw"
    folder.mkdir()
    shutil.copy(SEED, folder / "ukraine-atacms.txt")
    shutil.copy(SEED, folder / "copy-of-atacms.txt")
    (folder / "empty.txt").write_text("", encoding="utf-8")
    (folder / "cycle-lanes.txt").write_text(OTHER_ARTICLE, encoding="utf-8")
    return folder


def outputs(out: Path) -> dict[str, list[tuple]]:
    """What a run decided, without timings: kept records, duplicates, rejections."""
    return {
        "records": [(r["id"], r["source"], r["text"]) for r in contract.read_jsonl(out / contract.RECORDS)],
        "duplicates": [
            (d["id"], d["duplicate_of"], d["kind"]) for d in contract.read_jsonl(out / contract.DUPLICATES)
        ],
        "rejected": [(r["source"], r["reason"]) for r in contract.read_jsonl(out / contract.REJECTED)],
    }


def test_flow_writes_the_library_output_and_publishes_artifacts(
    prefect_harness: None, raw: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.clean_folder import (
        CLUSTERS_ARTIFACT,
        COUNTS_ARTIFACT,
        DUPLICATES_ARTIFACT,
        REPORT_ARTIFACT,
        SUMMARY_ARTIFACT,
        clean_folder,
    )

    out = tmp_path / "out"
    # chunk_size=1: four chunks, so both passes map several task runs.
    state = clean_folder(str(raw), str(out), CleanOptions(chunk_size=1), return_state=True)
    assert state.is_completed()
    summary = state.result()

    assert sorted(p.name for p in out.iterdir()) == OUTPUT_NAMES  # spool folder removed
    assert contract.validate_output(out) == {"records": 2, "duplicates": 1, "rejected": 1}
    assert (summary.files, summary.documents, summary.kept) == (4, 4, 2)
    assert (summary.exact_duplicates, summary.near_duplicates, summary.rejected) == (1, 0, 1)
    stats = json.loads((out / contract.STATS).read_text(encoding="utf-8"))
    assert stats["rejected_by_reason"] == {"empty": 1}
    assert stats["duplicates"] == {"exact": 1, "near": 0}

    library_out = tmp_path / "library-out"
    library_clean_folder(raw, library_out, RunConfig(workers=1, chunk_size=1))
    assert outputs(out) == outputs(library_out)
    assert outputs(out)["rejected"] == [("empty.txt", "empty")]

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) == {
        COUNTS_ARTIFACT,
        SUMMARY_ARTIFACT,
        CLUSTERS_ARTIFACT,
        DUPLICATES_ARTIFACT,
        REPORT_ARTIFACT,
    }
    assert by_key[COUNTS_ARTIFACT].type == "table"
    table = by_key[COUNTS_ARTIFACT].data
    counts = {row["count"]: row["value"] for row in (json.loads(table) if isinstance(table, str) else table)}
    assert counts == {
        "files": 4,
        "documents": 4,
        "kept": 2,
        "exact duplicates": 1,
        "near duplicates": 0,
        "rejected": 1,
        "rejected: empty": 1,
    }
    assert by_key[SUMMARY_ARTIFACT].type == "markdown"
    assert "2 kept" in by_key[SUMMARY_ARTIFACT].data
    assert "| rejected: empty | 1 |" in by_key[SUMMARY_ARTIFACT].data

    # the duplicate report: the largest clusters, and a link to report.html
    [kept] = [r for r in contract.read_jsonl(out / contract.RECORDS) if r["source"] == "copy-of-atacms.txt"]
    clusters = by_key[CLUSTERS_ARTIFACT].data
    [row] = json.loads(clusters) if isinstance(clusters, str) else clusters
    assert (row["cluster"], row["documents"], row["kept source"]) == (kept["id"], 2, "copy-of-atacms.txt")
    assert (row["exact copies"], row["near copies"], row["lowest similarity"]) == (1, 0, 1.0)
    assert by_key[DUPLICATES_ARTIFACT].type == "markdown"
    assert f"| `{kept['id']}` | 2 | copy\\-of\\-atacms\\.txt |" in by_key[DUPLICATES_ARTIFACT].data
    link = (out / "report.html").resolve().as_uri()
    assert link.startswith("file:///") and f"]({link})" in by_key[REPORT_ARTIFACT].data


def test_flow_without_decorators_is_plain_working_code(raw: Path, tmp_path: Path) -> None:
    """House rule: deleting the ``@task``/``@flow`` lines leaves working code: one thread, no Prefect run."""
    source = (ROOT / "flows" / "clean_folder.py").read_text(encoding="utf-8")
    plain, deleted = re.subn(r"^@(task|flow)\b.*\n", "", source, flags=re.M)
    assert deleted == 4
    module = types.ModuleType("clean_folder_without_decorators")
    exec(compile(plain, "clean_folder_without_decorators.py", "exec"), module.__dict__)

    out = tmp_path / "out"
    summary = module.clean_folder(str(raw), str(out), CleanOptions(chunk_size=1))
    assert (summary.kept, summary.exact_duplicates, summary.rejected) == (2, 1, 1)
    assert contract.validate_output(out) == {"records": 2, "duplicates": 1, "rejected": 1}


def test_cli_missing_input_folder_is_a_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.clean_folder",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"python -m flows.clean_folder: error: input folder or file not found: {tmp_path / 'missing'}"
    ]
    assert not (tmp_path / "out").exists()


def test_cli_unknown_language_is_a_one_line_error_and_options_reach_the_config(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "flows.clean_folder", str(tmp_path / "raw"), "--languages", "en,xx"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("python -m flows.clean_folder: error: unknown language code(s) xx")
    config = CleanOptions(languages=("EN", "de"), min_words=3).run_config()
    assert (config.language.keep, config.cleanup.min_words) == (("de", "en"), 3)


def test_flow_waits_for_another_run_on_its_output_then_fails_naming_it(
    prefect_harness: None, raw: Path, tmp_path: Path
) -> None:
    """Two scheduled runs overlapping on one output folder: the second waits, then its flow run fails."""
    from flows.clean_folder import clean_folder
    from pipeline.lock import OutputBusy, output_lock

    out = tmp_path / "out"
    out.mkdir()
    hold = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom pipeline.lock import output_lock\n"
            "with output_lock(Path(sys.argv[1]), 0):\n    print('held', flush=True)\n    time.sleep(60)\n",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert hold.stdout is not None and hold.stdout.readline() == "held\n"
        with pytest.raises(OutputBusy, match="--wait"):
            clean_folder(str(raw), str(out), CleanOptions(wait=0.5))
        assert not (out / contract.RECORDS).exists()
    finally:
        hold.kill()
        hold.wait()
    with output_lock(out, 0):  # released with the process that held it
        pass
    assert clean_folder(str(raw), str(out), CleanOptions(wait=0)).kept == 2
