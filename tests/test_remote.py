"""fsspec URLs as INPUT and OUTPUT (``pipeline/remote.py``) against a real S3 API: moto's server on
127.0.0.1, reached through s3fs, as a user's store would be (endpoint and keys from the environment)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import contract, remote
from tests.corpus import mixed_corpus

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = (contract.RECORDS, contract.DUPLICATES, contract.REJECTED)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An empty bucket ``corpus`` and an s3fs file system on it; the environment points every command of
    the test at the server, with its own cache folder."""
    import s3fs

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "SCRAPE_CLEAN_CACHE": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    if fs.exists("corpus"):
        fs.rm("corpus", recursive=True)
    fs.mkdir("corpus")
    fs.invalidate_cache()
    return fs


def clean(*args: str | Path, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"SCRAPE_CLEAN_CACHE": str(cache)} if cache else {})}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "clean", *map(str, args), "--no-report"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def stored_outputs(fs: Any, prefix: str) -> dict[str, bytes]:
    fs.invalidate_cache()
    return {name: fs.cat_file(f"{prefix}/{name}") for name in OUTPUTS}


def local_outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def test_a_run_from_s3_to_s3_equals_the_local_run_and_continues_on_another_machine(
    s3: Any, tmp_path: Path
) -> None:
    raw = mixed_corpus(tmp_path / "raw", articles=24, pages=3)
    s3.put(f"{raw}/", "corpus/raw/", recursive=True)
    local = clean(raw, "--out", tmp_path / "local")
    assert local.returncode == 0, local.stderr

    first = clean("s3://corpus/raw", "--out", "s3://corpus/clean")

    assert first.returncode == 0, first.stderr
    assert " -> s3://corpus/clean (all runs: " in first.stdout, first.stdout  # the URL, not the copy
    assert stored_outputs(s3, "corpus/clean") == local_outputs(tmp_path / "local")
    assert contract.validate_output(tmp_path / "local")["records"] > 0
    manifest = json.loads(s3.cat_file(f"corpus/clean/{remote.MANIFEST}"))
    assert set(manifest["files"]) >= {contract.RECORDS, "index.sqlite"}

    # New and deleted inputs, cleaned on "another machine" (an empty cache): the working copy comes
    # from the store, and the result is the local incremental run's.
    added = raw / "later" / "new-story.txt"
    added.parent.mkdir()
    story = next(p for p in sorted(raw.rglob("*.txt")) if p.parent.name != "bad")
    added.write_text(story.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    s3.put_file(str(added), "corpus/raw/later/new-story.txt")
    assert clean(raw, "--out", tmp_path / "local").returncode == 0

    again = clean("s3://corpus/raw", "--out", "s3://corpus/clean", cache=tmp_path / "other-cache")

    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("1 new documents"), again.stdout
    assert stored_outputs(s3, "corpus/clean") == local_outputs(tmp_path / "local")


def test_the_mirror_downloads_only_what_changed_and_drops_what_left(s3: Any, tmp_path: Path) -> None:
    s3.pipe({"corpus/raw/a.txt": b"Alpha story. " * 40, "corpus/raw/sub/b.txt": b"Beta story. " * 40})
    mirror = remote._mirrored("s3://corpus/raw")
    first = {p.relative_to(mirror).as_posix(): p.stat().st_ino for p in mirror.rglob("*.txt")}
    assert sorted(first) == ["a.txt", "sub/b.txt"]
    assert (mirror / "a.txt").stat().st_mtime == pytest.approx(
        s3.info("corpus/raw/a.txt")["LastModified"].timestamp()
    )

    s3.pipe({"corpus/raw/sub/b.txt": b"Beta story, corrected. " * 40, "corpus/raw/c.txt": b"Gamma. " * 40})
    s3.rm("corpus/raw/a.txt")
    s3.invalidate_cache()
    assert remote._mirrored("s3://corpus/raw") == mirror

    now = {p.relative_to(mirror).as_posix(): p.stat().st_ino for p in mirror.rglob("*.txt")}
    assert sorted(now) == ["c.txt", "sub/b.txt"]
    assert (mirror / "sub" / "b.txt").read_bytes().startswith(b"Beta story, corrected.")
    s3.pipe({"corpus/raw/c.txt": b"Gamma. " * 40})  # the same bytes again: a new version all the same
    s3.invalidate_cache()
    unchanged = remote._mirrored("s3://corpus/raw")
    assert (unchanged / "sub" / "b.txt").stat().st_ino == now["sub/b.txt"]  # not downloaded again


def test_a_file_url_is_one_input(s3: Any, tmp_path: Path) -> None:
    s3.pipe({"corpus/raw/one.txt": b"A single story about the harbour. " * 30})
    out = tmp_path / "out"

    result = clean("s3://corpus/raw/one.txt", "--out", out)

    assert result.returncode == 0, result.stderr
    [record] = contract.read_jsonl(out / contract.RECORDS)
    assert record["source"] == "one.txt"


def test_a_second_writer_meanwhile_is_refused_and_nothing_is_uploaded(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with remote._working_copy("s3://corpus/out") as copy:
        (copy / "records.jsonl").write_text("{}\n")
    with pytest.raises(OSError, match="another run wrote this output while this one ran"):
        with remote._working_copy("s3://corpus/out") as mine:
            monkeypatch.setenv("SCRAPE_CLEAN_CACHE", str(tmp_path / "elsewhere"))
            with remote._working_copy("s3://corpus/out") as theirs:
                (theirs / "records.jsonl").write_text('{"theirs": 1}\n')
            (mine / "records.jsonl").write_text('{"mine": 1}\n')
    s3.invalidate_cache()
    assert s3.cat_file("corpus/out/records.jsonl") == b'{"theirs": 1}\n'


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["nosuch://x/raw", "--out", "o"], 2, "pipeline: error: nosuch://x/raw: Protocol not known: nosuch"),
        (
            ["s3://corpus/absent", "--out", "o"],
            2,
            "pipeline: error: input folder or file not found: s3://corpus/absent",
        ),
        (
            ["s3://corpus/raw", "--out", "s3://corpus/raw/"],
            2,
            "pipeline: error: the output folder must differ",
        ),
        (["s3://no-such-bucket/raw", "--out", "o"], 2, "pipeline: error: input folder or file not found"),
    ],
)
def test_bad_urls_are_one_line_errors(
    s3: Any, argv: list[str], status: int, message: str, tmp_path: Path
) -> None:
    s3.pipe({"corpus/raw/a.txt": b"Alpha story. " * 40})

    result = clean(*argv)

    assert result.returncode == status, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(message), line


def test_the_flow_takes_urls_too(s3: Any, prefect_harness: None, tmp_path: Path) -> None:
    from flows.clean_folder import clean_folder

    raw = mixed_corpus(tmp_path / "raw", articles=12, pages=1)
    s3.put(f"{raw}/", "corpus/raw/", recursive=True)
    assert clean(raw, "--out", tmp_path / "local").returncode == 0

    summary = clean_folder("s3://corpus/raw", "s3://corpus/flow-out")

    assert summary.stats["kept"] > 0
    assert stored_outputs(s3, "corpus/flow-out") == local_outputs(tmp_path / "local")


def test_keys_that_cannot_be_local_paths_are_left_out_with_a_warning(
    s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A store's keys are any strings: none may leave the mirror or land on another key's file."""
    import boto3

    client = boto3.client("s3")
    keys = ["ok.txt", "../escape.txt", "..", "./ok.txt", "a//double.txt", "ok.txt/inner.txt", "sub/"]
    for key in keys:
        client.put_object(Bucket="corpus", Key=f"raw/{key}", Body=f"The story of {key}. ".encode() * 30)
    client.put_object(Bucket="corpus", Key="raw/folder/", Body=b"")  # a console's folder marker
    client.put_object(Bucket="corpus", Key="raw/folder/café.txt", Body="Le café. ".encode() * 30)
    s3.invalidate_cache()

    with caplog.at_level("WARNING", logger="pipeline.remote"):
        mirror = remote._mirrored("s3://corpus/raw")

    files = sorted(p.relative_to(mirror).as_posix() for p in mirror.rglob("*") if p.is_file())
    assert files == ["folder/café.txt", "ok.txt"]
    assert (mirror / "ok.txt").read_bytes().startswith(b"The story of ok.txt.")  # not ./ok.txt's bytes
    warnings = [r.getMessage() for r in caplog.records if r.name == "pipeline.remote"]
    warned = sorted(message.split(": key ")[1].split(" cannot")[0] for message in warnings)
    assert warned == sorted(repr(k) for k in keys[1:])
    assert not (mirror.parent / "escape.txt").exists()


def test_a_second_run_of_this_machine_waits_for_the_working_copy(s3: Any, tmp_path: Path) -> None:
    """The working copy is held from before its sync to the end of the upload: another run of this machine
    waits (here --wait 1, then exit 75) instead of syncing a folder in use."""
    s3.pipe({"corpus/raw/a.txt": b"Alpha story. " * 40})
    copy = remote._folder_for("output", "s3://corpus/clean")
    with remote._held(copy, "s3://corpus/clean", 0, None):
        result = clean("s3://corpus/raw", "--out", "s3://corpus/clean", "--wait", "1")
    assert result.returncode == 75, result.stderr
    assert (
        result.stderr.splitlines()[-1].startswith("pipeline: error: another run (process ")
        and "still holds s3://corpus/clean after 1 s" in result.stderr
    )
    assert not s3.exists("corpus/clean/records.jsonl")
    assert clean("s3://corpus/raw", "--out", "s3://corpus/clean").returncode == 0


def test_an_output_location_that_is_not_ours_is_never_written(s3: Any) -> None:
    """Files but no manifest (somebody else's data), or a manifest that is not ours: nothing is uploaded
    over them."""
    s3.pipe({"corpus/raw/a.txt": b"Alpha story. " * 40, "corpus/theirs/records.jsonl": b'{"theirs": 1}\n'})

    refused = clean("s3://corpus/raw", "--out", "s3://corpus/theirs")

    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.splitlines() == [
        "pipeline: error: s3://corpus/theirs holds files but no .sync.json: not an output of this tool (or "
        "its first upload was cut short); give an empty or new location"
    ]
    s3.pipe({"corpus/damaged/.sync.json": b"{not json", "corpus/damaged/records.jsonl": b"{}\n"})
    damaged = clean("s3://corpus/raw", "--out", "s3://corpus/damaged")
    assert damaged.returncode == 1, damaged.stderr
    assert "s3://corpus/damaged/.sync.json is damaged or not this tool's" in damaged.stderr
    s3.invalidate_cache()
    assert s3.cat_file("corpus/theirs/records.jsonl") == b'{"theirs": 1}\n'
    assert s3.cat_file("corpus/damaged/records.jsonl") == b"{}\n"
