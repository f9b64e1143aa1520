"""INPUT is a boundary, and any file name goes through (pipeline/load.py: open_input, read_input,
source_of_path; pipeline/run.py: the first-run and later-run hashing).

Real symbolic links, FIFOs (``os.mkfifo``), a bound UNIX socket, ``/dev/null`` and ``/dev/zero``, real file
names with bytes that are not UTF-8; the CLI in a subprocess with a time-out wherever a hang is the failure.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.contract import Document, Rejection, read_jsonl, validate_output
from pipeline.index import INDEX_FILE
from pipeline.load import (
    InputBoundary,
    folder_group,
    load_file,
    open_input,
    path_of_source,
    read_input,
    source_of_path,
    split_source,
)
from pipeline.run import RunConfig, clean_folder

REPO = Path(__file__).resolve().parents[1]
PASSWD = Path("/etc/passwd")


def article(topic: str) -> str:
    """A short article of its own about ``topic``: kept, and no near duplicate of another one."""
    return (
        f"The {topic} committee met on Tuesday to discuss the {topic} budget for next year.\n\n"
        f"Members of the {topic} group argued for hours about priorities, schedules and {topic} costs.\n\n"
        f"A final vote on the {topic} plan is expected next month, after a public consultation on {topic}.\n"
    )


def run_cli(*args: str | Path, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """``pipeline ARGS`` in a subprocess killed after ``timeout`` (a hang fails the test): the process,
    its seconds and its peak resident memory in kB (its own; with ``--workers 1`` the whole run)."""
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        "status = main(sys.argv[1:])\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so it would count pytest's own memory
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "print('maxrss', hwm, file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "DO_NOT_TRACK": "1"},
        timeout=timeout,
    )
    seconds = time.perf_counter() - start
    rss = re.search(r"maxrss (\d+)", proc.stderr)
    return proc, seconds, int(rss.group(1)) if rss else -1


def rejected_by_source(out: Path) -> dict[str, dict]:
    return {row["source"]: row for row in read_jsonl(out / "rejected.jsonl")}


def record_sources(out: Path) -> set[str]:
    return {row["source"] for row in read_jsonl(out / "records.jsonl")}


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    """A bound UNIX socket file inside ``tmp_path/raw`` (the short name keeps it under the 108-byte limit)."""
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    path = raw / "sock"
    if len(os.fsencode(path)) > 100:
        pytest.skip("temporary folder path too long for a UNIX socket")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    yield path
    server.close()


class FifoWriter:
    """A thread blocked opening a FIFO for writing: it is released only when someone opens the FIFO for
    reading, so ``opened`` tells whether anything did."""

    def __init__(self, fifo: Path) -> None:
        self.fifo = fifo
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()
        time.sleep(0.05)  # let it block in open()

    def _write(self) -> None:
        with open(self.fifo, "wb") as handle:
            self.opened.set()
            handle.write(b"text that must never be read\n" * 10)

    def release(self) -> None:
        """Open the FIFO for reading ourselves, so the thread ends."""
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.thread.join(5)
        os.close(fd)


# ---------------------------------------------------------------------------------------------------
# The text form of names


@pytest.mark.parametrize(
    "name",
    [
        "a.txt",
        "sub/page.html",
        "Café résumé/naïve.txt",
        'a"b.txt',
        "back\\slash.txt",
        "emoji 👩‍💻.txt",
        "x#1",
    ],
)
def test_a_plain_utf8_name_is_its_own_source(name: str) -> None:
    assert source_of_path(name) == name
    assert source_of_path(name.encode("utf-8")) == name
    assert path_of_source(name) == name.encode("utf-8")


@pytest.mark.parametrize(
    ("raw", "source"),
    [
        (b"caf\xe9.txt", '"caf\\xe9.txt"'),
        (b"new\nline.txt", '"new\\x0aline.txt"'),
        (b'"quoted".txt', '"\\"quoted\\".txt"'),
        (b"dir\xff/a\\b.txt", '"dir\\xff/a\\\\b.txt"'),
        ("tab\there/é".encode(), '"tab\\x09here/é"'),
        ("c1 \u0085 nel".encode(), '"c1 \\xc2\\x85 nel"'),  # a C1 control character: both its bytes
        (b"\xed\xa0\x80 surrogate", '"\\xed\\xa0\\x80 surrogate"'),  # UTF-8 of a surrogate is not UTF-8
    ],
)
def test_any_other_name_is_c_quoted(raw: bytes, source: str) -> None:
    assert source_of_path(raw) == source
    assert source_of_path(os.fsdecode(raw)) == source  # as os.scandir names it
    assert path_of_source(source) == raw


names = st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\x00" not in b)
paths = st.lists(names, min_size=1, max_size=4).map(b"/".join)


@given(paths)
def test_the_text_form_is_reversible_for_any_path(path: bytes) -> None:
    source = source_of_path(path)
    assert path_of_source(source) == path
    assert source_of_path(os.fsdecode(path)) == source
    assert not re.search("[\x00-\x1f\x7f-\x9f]", source)  # no control character: no line breaks
    source.encode("utf-8")  # always text an output file can hold (no surrogates)
    try:
        plain = path.decode("utf-8")
    except UnicodeDecodeError:
        plain = None
    if plain is not None and not plain.startswith('"') and not re.search("[\x00-\x1f\x7f-\x9f]", plain):
        assert source == plain  # existing sources and index keys do not change
    else:
        assert source.startswith('"') and source.endswith('"')


@given(paths, st.sampled_from(["", "@0123abcd"]), st.sampled_from(["", "#1", "#42"]))
def test_version_and_record_suffixes_stay_parseable(path: bytes, version: str, record: str) -> None:
    source = source_of_path(path)
    if not source.startswith('"'):
        assume(split_source(source) == (path, ""))  # a plain name ending like a suffix is ambiguous, as ever
    assert split_source(source + version + record) == (path, version + record)


@given(st.lists(names, min_size=2, max_size=4))
def test_a_folder_group_is_the_text_form_of_the_first_folder(parts: list[bytes]) -> None:
    source = source_of_path(b"/".join(parts))
    assert folder_group(source + "#3") == source_of_path(parts[0])


@pytest.mark.parametrize("bad", ['"open', '"a\\q"', '"a"b', '"\\x4"'])
def test_a_malformed_quoted_source_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="quoted"):
        path_of_source(bad)


# ---------------------------------------------------------------------------------------------------
# What may be opened (the library)


def test_a_link_inside_input_to_a_file_inside_input_is_read(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.txt").write_text(article("harbour"), encoding="utf-8")
    (tmp_path / "alias.txt").symlink_to("real/a.txt")

    [doc] = load_file(tmp_path / "alias.txt", tmp_path)

    assert isinstance(doc, Document) and doc.source == "alias.txt" and "harbour" in doc.body


def test_a_link_to_a_file_outside_input_is_refused_unless_followed(tmp_path: Path) -> None:
    raw, outside = tmp_path / "raw", tmp_path / "outside"
    raw.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(article("secret"), encoding="utf-8")
    (raw / "leak.txt").symlink_to(outside / "secret.txt")

    [refused] = load_file(raw / "leak.txt", raw)
    [read] = load_file(raw / "leak.txt", raw, boundary=InputBoundary(str(raw), follow_symlinks=True))

    assert isinstance(refused, Rejection) and refused.reason == "outside_input"
    assert "leak.txt" in refused.detail and str(outside / "secret.txt") in refused.detail
    assert isinstance(read, Document) and "secret" in read.body


def test_a_folder_link_on_the_way_out_is_caught_on_the_opened_descriptor(tmp_path: Path) -> None:
    # The walk never enters a folder link; a path through one (given directly, or swapped in after the
    # walk) passes lstat as a regular file: the kernel's path of the opened descriptor gives it away.
    raw, outside = tmp_path / "raw", tmp_path / "outside"
    raw.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(article("secret"), encoding="utf-8")
    (raw / "sub").symlink_to(outside, target_is_directory=True)

    [refused] = load_file(raw / "sub" / "secret.txt", raw)

    assert isinstance(refused, Rejection) and refused.reason == "outside_input"


@pytest.mark.skipif(not PASSWD.is_file(), reason="no /etc/passwd")
def test_a_link_to_etc_passwd_is_refused(tmp_path: Path) -> None:
    (tmp_path / "passwd.txt").symlink_to(PASSWD)

    [refused] = load_file(tmp_path / "passwd.txt", tmp_path)

    assert isinstance(refused, Rejection) and refused.reason == "outside_input"
    assert "/etc/passwd" in refused.detail


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_a_link_to_a_device_is_outside_input_and_followed_not_a_file(tmp_path: Path, device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    (tmp_path / "dev.txt").symlink_to(device)
    follow = InputBoundary(str(tmp_path), follow_symlinks=True)

    start = time.perf_counter()
    default = read_input(str(tmp_path / "dev.txt"), InputBoundary(str(tmp_path)), "dev.txt")
    followed = read_input(str(tmp_path / "dev.txt"), follow, "dev.txt")

    assert isinstance(default, Rejection) and default.reason == "outside_input"
    assert isinstance(followed, Rejection) and followed.reason == "not_a_file"
    assert "character device" in followed.detail
    assert time.perf_counter() - start < 1


def test_a_fifo_is_not_a_file_and_never_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    (tmp_path / "to-pipe.txt").symlink_to("pipe.txt")
    writer = FifoWriter(fifo)
    try:
        [direct] = load_file(fifo, tmp_path)
        [through_link] = load_file(tmp_path / "to-pipe.txt", tmp_path)
        [followed] = load_file(
            tmp_path / "to-pipe.txt", tmp_path, boundary=InputBoundary(str(tmp_path), follow_symlinks=True)
        )
        time.sleep(0.05)
        assert not writer.opened.is_set()  # no reader ever opened it: the writer is still waiting
    finally:
        writer.release()
    for rejection in (direct, through_link, followed):
        assert isinstance(rejection, Rejection) and rejection.reason == "not_a_file"
        assert "FIFO" in rejection.detail


def test_a_socket_is_not_a_file(tmp_path: Path, unix_socket: Path) -> None:
    [rejection] = load_file(unix_socket, unix_socket.parent)

    assert isinstance(rejection, Rejection) and rejection.reason == "not_a_file"
    assert "socket" in rejection.detail


def test_a_file_swapped_for_a_fifo_after_the_look_is_refused_on_its_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race, made certain: lstat answers for the regular file the walk saw; by the open, a FIFO is
    # there. O_NONBLOCK makes the open return at once; fstat of the descriptor refuses it before any read.
    regular, fifo = tmp_path / "seen.txt", tmp_path / "now.txt"
    regular.write_text("x", encoding="utf-8")
    os.mkfifo(fifo)
    real_lstat = os.lstat
    monkeypatch.setattr(os, "lstat", lambda p, *a, **k: real_lstat(regular if p == str(fifo) else p, *a, **k))

    start = time.perf_counter()
    result = open_input(str(fifo), InputBoundary(str(tmp_path)), "now.txt")

    assert isinstance(result, Rejection) and result.reason == "not_a_file"
    assert "swapped" in result.detail
    assert time.perf_counter() - start < 1


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="no /proc")
def test_the_size_cap_counts_bytes_read_not_the_size_reported(tmp_path: Path) -> None:
    # Files under /proc report a size of 0 and have content: the cap holds anyway.
    (tmp_path / "status.txt").symlink_to("/proc/self/status")
    follow = InputBoundary(str(tmp_path), follow_symlinks=True)

    capped = read_input(str(tmp_path / "status.txt"), follow, "status.txt", limit=16)
    whole = read_input(str(tmp_path / "status.txt"), follow, "status.txt")

    assert os.stat(tmp_path / "status.txt").st_size == 0
    assert isinstance(capped, Rejection) and capped.reason == "too_large"
    assert isinstance(whole, bytes) and len(whole) > 16


# ---------------------------------------------------------------------------------------------------
# Whole runs through the CLI


def hostile_input(raw: Path, outside: Path) -> None:
    """INPUT with an article, a link inside to a file inside, and every kind of entry not to be read."""
    (raw / "real").mkdir(parents=True, exist_ok=True)
    outside.mkdir(exist_ok=True)
    (raw / "article.txt").write_text(article("river"), encoding="utf-8")
    (raw / "real" / "other.txt").write_text(article("orchard"), encoding="utf-8")
    (raw / "inside.txt").symlink_to("real/other.txt")
    (outside / "secret.txt").write_text(article("secret"), encoding="utf-8")
    (raw / "leak.txt").symlink_to(outside / "secret.txt")
    if PASSWD.is_file():
        (raw / "passwd.txt").symlink_to(PASSWD)
    (raw / "zero.txt").symlink_to("/dev/zero")
    (raw / "null.txt").symlink_to("/dev/null")
    os.mkfifo(raw / "pipe.txt")
    (raw / "outside-dir").symlink_to(outside, target_is_directory=True)


REFUSED_BY_DEFAULT = {
    "leak.txt": "outside_input",
    "zero.txt": "outside_input",
    "null.txt": "outside_input",
    "pipe.txt": "not_a_file",
    "sock": "not_a_file",
}


def test_a_run_reads_nothing_outside_input_and_never_hangs(tmp_path: Path, unix_socket: Path) -> None:
    raw, out, outside = tmp_path / "raw", tmp_path / "out", tmp_path / "outside"
    hostile_input(raw, outside)
    expected = {**REFUSED_BY_DEFAULT, **({"passwd.txt": "outside_input"} if PASSWD.is_file() else {})}

    # First run: the workers read and hash (two of them, a chunk per file).
    first, seconds, _ = run_cli(
        "clean", raw, "--out", out, "--workers", "2", "--chunk-size", "1", "-q", timeout=60
    )

    assert first.returncode == 0, first.stderr
    assert {s: r["reason"] for s, r in rejected_by_source(out).items()} == expected
    duplicates = {row["source"] for row in read_jsonl(out / "duplicates.jsonl")}
    assert (record_sources(out), duplicates) == ({"article.txt", "inside.txt"}, {"real/other.txt"})
    records = (out / "records.jsonl").read_text(encoding="utf-8")
    assert "secret" not in records
    if PASSWD.is_file():
        assert PASSWD.read_text(encoding="utf-8", errors="replace").splitlines()[0] not in records
    assert str(outside / "secret.txt") in rejected_by_source(out)["leak.txt"]["detail"]
    assert seconds < 60

    # Second run: the parent hashes what is new (another FIFO, another link out, a new article); what was
    # refused before is unchanged, not refused again.
    os.mkfifo(raw / "pipe2.txt")
    (raw / "leak2.txt").symlink_to(outside / "secret.txt")
    (raw / "new.txt").write_text(article("glacier"), encoding="utf-8")
    second, _, _ = run_cli(
        "clean", raw, "--out", out, "--workers", "2", "--chunk-size", "1", "-q", timeout=60
    )

    assert second.returncode == 0, second.stderr
    rejected = rejected_by_source(out)
    assert (rejected["pipe2.txt"]["reason"], rejected["leak2.txt"]["reason"]) == (
        "not_a_file",
        "outside_input",
    )
    assert "new.txt" in record_sources(out)
    validate_output(out)  # every source once: nothing refused twice

    # A third run with nothing new opens nothing and adds nothing.
    third, _, _ = run_cli("clean", raw, "--out", out, "--workers", "2", "-q", timeout=60)
    assert third.returncode == 0, third.stderr
    assert len(read_jsonl(out / "rejected.jsonl")) == len(rejected)


def test_follow_symlinks_reads_links_out_but_never_a_device(tmp_path: Path, unix_socket: Path) -> None:
    raw, out, outside = tmp_path / "raw", tmp_path / "out", tmp_path / "outside"
    hostile_input(raw, outside)

    proc, seconds, rss_kb = run_cli("clean", raw, "--out", out, "--workers", "1", "--follow-symlinks", "-q")

    assert proc.returncode == 0, proc.stderr
    rejected = {s: r["reason"] for s, r in rejected_by_source(out).items()}
    assert rejected == {s: "not_a_file" for s in ("zero.txt", "null.txt", "pipe.txt", "sock")}
    sources = record_sources(out)
    assert {"leak.txt", "article.txt", "inside.txt"} <= sources
    # The linked folder outside INPUT is walked too; its file is the same as leak.txt's: a duplicate.
    duplicates = {row["source"] for row in read_jsonl(out / "duplicates.jsonl")}
    assert "outside-dir/secret.txt" in sources | duplicates
    if PASSWD.is_file():
        assert "passwd.txt" in sources | rejected_by_source(out).keys()
    assert seconds < 60
    assert 0 < rss_kb < 400_000  # /dev/zero was never read (the size cap alone would allow 50 MB)


def test_switching_follow_symlinks_on_reads_what_was_refused_as_a_new_version(tmp_path: Path) -> None:
    raw, out, outside = tmp_path / "raw", tmp_path / "out", tmp_path / "outside"
    raw.mkdir()
    outside.mkdir()
    (raw / "article.txt").write_text(article("river"), encoding="utf-8")
    (outside / "secret.txt").write_text(article("secret"), encoding="utf-8")
    (raw / "leak.txt").symlink_to(outside / "secret.txt")
    config = RunConfig(workers=1, report=False)

    clean_folder(raw, out, config)
    again = clean_folder(raw, out, config)
    followed = clean_folder(raw, out, RunConfig(workers=1, report=False, follow_symlinks=True))

    assert (again.files, again.unchanged) == (0, 2)
    assert followed.files == 1
    [refused] = read_jsonl(out / "rejected.jsonl")
    assert (refused["source"], refused["reason"]) == ("leak.txt", "outside_input")
    [version] = [s for s in record_sources(out) if s.startswith("leak.txt@")]
    assert re.fullmatch(r"leak\.txt@[0-9a-f]{8}", version)
    validate_output(out)


# ---------------------------------------------------------------------------------------------------
# Odd names through whole runs

ODD = {
    b"caf\xe9.txt": ('"caf\\xe9.txt"', "espresso"),
    b"new\nline.txt": ('"new\\x0aline.txt"', "newline"),
    b'"quoted.txt': ('"\\"quoted.txt"', "quotation"),
    b"dir\xff/inside.txt": ('"dir\\xff/inside.txt"', "folder"),
    b"plain.txt": ("plain.txt", "plain"),
}


def write_odd_names(raw: Path) -> None:
    top = os.fsencode(raw)
    os.makedirs(top + b"/dir\xff", exist_ok=True)
    for name, (_, topic) in ODD.items():
        with open(top + b"/" + name, "wb") as handle:
            handle.write(article(topic).encode("utf-8"))


def age(root: Path, seconds: int = 60) -> None:
    """Move every folder's time into the past, so a folder scan trusts it (see index.RACY_NS)."""
    past = time.time() - seconds
    for folder, _, _ in os.walk(os.fsencode(root)):
        os.utime(folder, (past, past))


def test_odd_file_names_go_through_and_are_recognised_by_later_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_odd_names(raw)
    age(raw)

    assert main(["clean", str(raw), "--out", str(out), "--workers", "1", "--no-report"]) == 0

    printed = capsys.readouterr()
    assert "5 kept" in printed.out, printed
    records = read_jsonl(out / "records.jsonl")
    assert {r["source"]: r["text"].split()[1] for r in records} == {s: t for s, t in ODD.values()}
    for record in records:  # each source names its file
        assert os.path.isfile(os.fsencode(raw) + b"/" + path_of_source(record["source"]))
    validate_output(out)
    with sqlite3.connect(out / INDEX_FILE) as db:
        assert dict(db.execute("SELECT path, subdirs FROM folders"))[""] == '"dir\\xff"'

    # A rerun recognises every file by its name, with a full scan and with a folder scan.
    full = clean_folder(raw, out, RunConfig(workers=1, report=False))
    folders = clean_folder(raw, out, RunConfig(workers=1, report=False, scan="folders"))

    assert (full.files, full.unchanged) == (0, 5)
    assert (folders.files, folders.documents) == (0, 0)

    # A folder scan enters the odd folder by the name the index keeps: the top folder is unchanged, so
    # the new file is found only through that name.
    os.makedirs(os.fsencode(raw) + b"/dir\xff", exist_ok=True)
    with open(os.fsencode(raw) + b"/dir\xff/later\x01.txt", "wb") as handle:
        handle.write(article("latecomer").encode("utf-8"))
    later = clean_folder(raw, out, RunConfig(workers=1, report=False, scan="folders"))

    assert (later.files, later.kept) == (1, 1)
    assert '"dir\\xff/later\\x01.txt"' in record_sources(out)
    assert main(["clean", str(raw), "--out", str(out), "--workers", "1", "--no-report", "-q"]) == 0
    validate_output(out)


def test_odd_names_in_a_subprocess_run_leave_valid_json_lines(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_odd_names(raw)

    proc, _, _ = run_cli("clean", raw, "--out", out, "--workers", "2", "--chunk-size", "1", "-q")

    assert proc.returncode == 0, proc.stderr
    lines = (out / "records.jsonl").read_bytes().split(b"\n")
    assert len([line for line in lines if line]) == len(ODD)  # no name broke a line
    assert {json.loads(line)["source"] for line in lines if line} == {s for s, _ in ODD.values()}


def test_the_flow_passes_follow_symlinks_through() -> None:
    from flows.clean_folder import build_parser, clean_folder  # noqa: PLC0415 - imports Prefect
    from pipeline.options import from_arguments  # noqa: PLC0415

    args = build_parser().parse_args(["raw", "--follow-symlinks"])

    assert from_arguments(args).run_config().follow_symlinks
    assert not from_arguments(build_parser().parse_args(["raw"])).run_config().follow_symlinks
    assert clean_folder.parameters.properties["options"]["default"]["follow_symlinks"] is False
