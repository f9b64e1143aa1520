"""Process-level reliability of ``pipeline clean`` (issue 9): one writer per output folder, faults of the
file system under a run, interrupts and kills at random moments, two runs at once.

Everything here is real: the command line in subprocesses (``python -m pipeline``), real signals to the
process or its process group, corpora built from real article text (tests/corpus.py), and where the tests
may mount one (root), a real small tmpfs that fills up or is remounted read-only. Random moments are seeded
(``RELIABILITY_SEED``); ``SOAK_ROUNDS`` (``make soak``) repeats the loops many more times.
"""

from __future__ import annotations

import ctypes
import fcntl
import itertools
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from pipeline import contract
from pipeline.contract import validate_output
from tests.corpus import SAMPLE_BENCHMARK, syndicated_corpus

ROOT = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("RELIABILITY_SEED", "9"))
SOAK_ROUNDS = int(os.environ.get("SOAK_ROUNDS", "0"))  # 0: the CI rounds below
JSONL = (contract.RECORDS, contract.DUPLICATES, contract.REJECTED)
OUTPUTS = (*JSONL, contract.STATS)
EXIT_BUSY = 75
STOP_SECONDS = 15  # an interrupted run must be gone within this (generous: other test runs share the cores)
WORKER_GRACE = 5  # seconds the workers get to go after the parent has exited


def rounds(ci: int, soak_share: float = 1.0) -> int:
    """How many times a loop runs: ``ci`` by default, a share of ``SOAK_ROUNDS`` under ``make soak``."""
    return max(ci, int(SOAK_ROUNDS * soak_share)) if SOAK_ROUNDS else ci


# ---------------------------------------------------------------------------------------------------
# Running the command line


def command(inp: Path, out: Path, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "pipeline", "clean", str(inp), "--out", str(out)),
        *("--no-report", "--workers", "2", *extra),
    ]


ENV = {**os.environ, "DO_NOT_TRACK": "1"}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_clean(inp: Path, out: Path, *extra: str, timeout: float = 300, **popen: object) -> Result:
    """Run ``pipeline clean`` to its end."""
    started = time.monotonic()
    done = subprocess.run(
        command(inp, out, *extra),
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,  # type: ignore[arg-type]
    )
    return Result(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


_LOGS = itertools.count()
_LIVE: list[subprocess.Popen[bytes]] = []


@dataclass
class Started:
    """A ``pipeline clean`` process started in a session of its own (its pid is its process group's and
    its session's id, which its worker processes inherit), with its output in files."""

    proc: subprocess.Popen[bytes]
    logs: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return (self.logs / "stdout").read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return (self.logs / "stderr").read_text(encoding="utf-8", errors="replace")


def start(inp: Path, out: Path, logs_in: Path, *extra: str) -> Started:
    logs = logs_in / f"logs-{next(_LOGS)}"
    logs.mkdir(parents=True)
    with open(logs / "stdout", "wb") as stdout, open(logs / "stderr", "wb") as stderr:
        proc = subprocess.Popen(
            command(inp, out, *extra), cwd=ROOT, env=ENV, stdout=stdout, stderr=stderr, start_new_session=True
        )
    _LIVE.append(proc)
    return Started(proc, logs)


@pytest.fixture(autouse=True)
def _no_process_left() -> Iterator[None]:
    """Whatever a failed test left running is killed, with its workers."""
    yield
    while _LIVE:
        proc = _LIVE.pop()
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in session_members(proc.pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def session_members(sid: int) -> dict[int, str]:
    """Live processes (not zombies) of session ``sid``, with their state letter, read from /proc/*/stat.

    ``start_new_session`` makes the started process a session leader; every process it forks (the
    workers, anything they fork) stays in that session, even once orphaned and adopted by init.
    """
    members = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses
        fields = stat[stat.rindex(b")") + 2 :].split()
        state, session = fields[0].decode(), int(fields[3])
        if session == sid and state != "Z":  # a zombie runs nothing; init may be slow to reap it
            members[int(entry.name)] = state
    return members


def maps(pid: int, name: bytes) -> bool:
    """Whether process ``pid`` has a file whose path holds ``name`` mapped (a loaded C extension)."""
    try:
        with open(f"/proc/{pid}/maps", "rb") as handle:
            return name in handle.read()
    except OSError:
        return False


def survivors(sid: int, grace: float = WORKER_GRACE) -> dict[int, str]:
    """The processes of session ``sid`` still alive ``grace`` seconds from now (sooner if none is)."""
    deadline = time.monotonic() + grace
    while (alive := session_members(sid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def assert_no_traceback(stderr: str, context: str) -> None:
    assert "Traceback" not in stderr and "InvalidStateError" not in stderr, f"{context}:\n{stderr}"


def new_documents(stdout: str) -> int:
    """N of the summary line ``N new documents in (...)``."""
    found = re.match(r"(\d+) new documents in ", stdout)
    assert found, f"no summary line in {stdout!r}"
    return int(found.group(1))


# ---------------------------------------------------------------------------------------------------
# Output folders


def output_lines(out: Path) -> dict[str, list[bytes]]:
    """Each output's lines, sorted: the order of lines is the order in which runs committed them, which a
    resumed run need not repeat; every line itself (record, id, verdict) must be byte-for-byte the same,
    and a line written twice shows up (a set would hide it)."""
    return {
        name: sorted((out / name).read_bytes().splitlines()) if (out / name).exists() else []
        for name in JSONL
    }


def differences(out: Path, ref: Path) -> list[str]:
    """What ``out``'s outputs hold that ``ref``'s do not and the reverse, in a few words per file."""
    found, expected = output_lines(out), output_lines(ref)
    said = []
    for name in JSONL:
        if found[name] != expected[name]:
            extra = sorted(set(found[name]) - set(expected[name]))
            missing = sorted(set(expected[name]) - set(found[name]))
            said.append(
                f"{name}: {len(found[name])} lines against {len(expected[name])}; "
                f"{len(extra)} not in the reference {[line[:120] for line in extra[:1]]}; "
                f"{len(missing)} missing {[line[:120] for line in missing[:1]]}"
            )
    return said


def leftovers(out: Path) -> list[str]:
    """Temporary files and spool folders under ``out`` (index.data included)."""
    return sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.name.endswith(".tmp") or p.name.startswith(".spool-")
    )


def snapshot(out: Path, names: tuple[str, ...] = JSONL) -> dict[str, tuple[bytes, int] | None]:
    """Bytes and modification time of each named output (None: absent)."""
    return {
        name: ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) if (out / name).exists() else None
        for name in names
    }


def contents(out: Path) -> dict[str, bytes | None]:
    """The bytes of each JSON-lines output (None: absent)."""
    return {name: (out / name).read_bytes() if (out / name).exists() else None for name in JSONL}


def tree(out: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every file and folder under ``out`` but the lock file, with bytes and modification time."""
    return {
        str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
        for p in sorted(out.rglob("*"))
        if p.name != ".lock"
    }


def assert_same_as(out: Path, ref: Path, context: str) -> None:
    said = differences(out, ref)
    assert not said, f"{context}: outputs differ from an uninterrupted run's:\n" + "\n".join(said)
    validate_output(out)
    assert not leftovers(out), f"{context}: left behind {leftovers(out)}"


# ---------------------------------------------------------------------------------------------------
# Corpora and their uninterrupted runs (built once per module)


@dataclass(frozen=True)
class Corpus:
    """An input folder, a reference output of one uninterrupted run over it and how long that run took."""

    input: Path
    ref: Path
    seconds: float


def reference(inp: Path, out: Path, prepare: Callable[[Path], object] = lambda out: None) -> Corpus:
    """Two uninterrupted runs over ``inp`` (into ``out`` and a second folder, each made by ``prepare``):
    their outputs must be byte-identical, else comparing with them would prove nothing. The faster run's
    time is the run's duration (the first run of a session pays for cold caches)."""
    seconds = []
    for dest in (out, out.with_name(f"{out.name}-again")):
        prepare(dest)
        result = run_clean(inp, dest)
        assert result.returncode == 0, result.stderr
        validate_output(dest)
        seconds.append(result.seconds)
    assert contents(out) == contents(dest), "two uninterrupted runs gave different outputs"
    return Corpus(inp, out, min(seconds))


@dataclass(frozen=True)
class TwoBatches:
    """A first batch (``first.input``) and a second one added later (``both.input``: the first batch's
    files with their modification times, plus the second), with references for the first run and the
    incremental run after it (``both.ref`` started as a copy of ``first.ref``)."""

    first: Corpus
    both: Corpus


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> TwoBatches:
    """A few hundred syndicated articles (real bodies, ~1 s to clean), then ~200 more from another draw."""
    root = tmp_path_factory.mktemp("batches")
    syndicated_corpus(root / "first" / "a", seed=1)
    first = reference(root / "first", root / "ref-first")
    shutil.copytree(root / "first", root / "both")  # copy2: modification times kept, so seen as unchanged
    syndicated_corpus(root / "both" / "b", limit=60, seed=2)
    return TwoBatches(first, reference(root / "both", root / "ref-both", partial(shutil.copytree, first.ref)))


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """40 real news pages (HTML, the slow kind) and ~130 syndicated articles: a run of a few seconds on
    two workers, so that a signal lands mid-run."""
    root = tmp_path_factory.mktemp("pages")
    syndicated_corpus(root / "in" / "syndicated", limit=40, seed=3)
    (root / "in" / "pages").mkdir()
    for page in sorted((SAMPLE_BENCHMARK / "html").glob("*.html.gz"))[:40]:
        shutil.copy(page, root / "in" / "pages" / page.name)
    return reference(root / "in", root / "ref")


# ---------------------------------------------------------------------------------------------------
# One writer per output folder


@contextmanager
def lock_held(out: Path) -> Iterator[None]:
    """Hold ``out``'s lock as another run does (flock on OUT/.lock, from this process)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def test_a_run_on_a_locked_folder_gives_up_after_wait_and_touches_nothing(
    batches: TwoBatches, tmp_path: Path
):
    out = tmp_path / "out"
    shutil.copytree(batches.first.ref, out)
    # What a live run owns while it writes: its spool, a temporary file, lines appended past the
    # committed length. A run that only waits must not read, roll back or delete any of it.
    (out / ".spool-live").mkdir()
    (out / ".spool-live" / "load-000000.pkl").write_bytes(b"spooled")
    (out / ".records.jsonl.live.tmp").write_bytes(b"half a file")
    with open(out / contract.DUPLICATES, "ab") as handle:
        handle.write(b'{"id": "being appen')
    before = tree(out)
    with lock_held(out):
        result = run_clean(batches.both.input, out, "--wait", "1")
    assert result.returncode == EXIT_BUSY, result.stderr
    assert_no_traceback(result.stderr, "busy")
    lines = result.stderr.splitlines()
    waiting = [line for line in lines if line.startswith("pipeline: waiting for another run on")]
    errors = [line for line in lines if line.startswith("pipeline: error:")]
    assert len(waiting) == 1 and str(out) in waiting[0], result.stderr
    assert len(errors) == 1, result.stderr
    assert result.seconds >= 1
    assert tree(out) == before


def test_a_waiting_run_goes_on_when_the_other_run_ends(batches: TwoBatches, tmp_path: Path):
    out = tmp_path / "out"
    shutil.copytree(batches.first.ref, out)
    with lock_held(out):
        waiting = start(batches.first.input, out, tmp_path, "--wait", "60")
        deadline = time.monotonic() + 60
        while "pipeline: waiting for another run on" not in waiting.stderr():
            assert waiting.proc.poll() is None, f"did not wait: {waiting.stderr()}"
            assert time.monotonic() < deadline, "no waiting message within 60 s"
            time.sleep(0.05)
        time.sleep(0.5)
        assert waiting.proc.poll() is None, "stopped waiting while the lock was held"
    assert waiting.proc.wait(timeout=120) == 0, waiting.stderr()
    assert_no_traceback(waiting.stderr(), "waited")
    assert new_documents(waiting.stdout()) == 0
    assert_same_as(out, batches.first.ref, "after waiting")


def test_two_runs_at_once_on_one_folder(batches: TwoBatches, tmp_path: Path):
    for n in range(rounds(2, 0.1)):
        out = tmp_path / f"out-{n}"
        both = [start(batches.first.input, out, tmp_path) for _ in range(2)]
        for run in both:
            assert run.proc.wait(timeout=180) == 0, run.stderr()
            assert_no_traceback(run.stderr(), f"round {n}")
        # The lock lets one run in; the other waits, then finds everything already done.
        found = sorted(new_documents(run.stdout()) for run in both)
        assert found[0] == 0 and found[1] > 0, found
        assert_same_as(out, batches.first.ref, f"round {n}")
        third = run_clean(batches.first.input, out)
        assert third.returncode == 0, third.stderr
        assert new_documents(third.stdout) == 0
        validate_output(out)


def test_a_run_with_nothing_new_changes_no_output_file(batches: TwoBatches, tmp_path: Path):
    out = tmp_path / "out"
    shutil.copytree(batches.first.ref, out)
    before = snapshot(out, OUTPUTS)
    result = run_clean(batches.first.input, out)
    assert result.returncode == 0, result.stderr
    assert new_documents(result.stdout) == 0
    assert snapshot(out, OUTPUTS) == before


# ---------------------------------------------------------------------------------------------------
# Interrupts


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, False)],
    ids=["SIGINT-to-group (Ctrl-C)", "SIGINT-to-process", "SIGTERM-to-process"],
)
def test_an_interrupt_stops_the_run_cleanly_and_a_rerun_completes(
    pages: Corpus, tmp_path: Path, signum: signal.Signals, to_group: bool
):
    """Interrupts in threes on one output folder (while the command imports its modules, once the workers
    are up, anywhere), then a rerun that must give an uninterrupted run's outputs."""
    rng = random.Random(f"{SEED}-{signum.name}-{to_group}")
    workers_seen = 0
    for group in range(max(1, rounds(3, 0.25) // 3)):
        out = tmp_path / f"out-{group}"
        for moment in ("importing", "workers up", "anywhere"):
            run, started = start(pages.input, out, tmp_path), time.monotonic()
            if moment == "importing":  # numpy's extension mapped: the command is importing its modules
                began, delay = time.monotonic(), 0.0
                while not maps(run.pid, b"_multiarray_umath") and run.proc.poll() is None:
                    assert time.monotonic() - began < pages.seconds, "numpy never loaded: pick another marker"
                    time.sleep(0.002)
            elif moment == "workers up":  # seen in /proc, then a random share of the rest: mid-pool for sure
                while len(session_members(run.pid)) < 2 and run.proc.poll() is None:
                    time.sleep(0.01)
                # Of what remains of the run, not of all of it: the parent loads the kernels and the
                # language model (about 1.1 s) before it forks the workers.
                rest = max(pages.seconds - (time.monotonic() - started), 0.1)
                delay = rng.uniform(0.0, 0.5) * rest
            else:
                # Never before a quarter of a second: the interpreter itself may still be starting (a
                # KeyboardInterrupt raised in site.py, before any code of ours runs, is not ours to handle).
                delay = max(0.25, rng.uniform(0.0, 0.95) * pages.seconds)
            time.sleep(delay)
            context = f"seed {SEED}, group {group}, {moment}: {delay:.2f} s"
            workers_seen += interrupt(run, signum, to_group, context)
        rerun = run_clean(pages.input, out)
        assert rerun.returncode == 0, rerun.stderr
        assert_no_traceback(rerun.stderr, "rerun")
        assert_same_as(out, pages.ref, f"seed {SEED}, group {group}, rerun after {signum.name}")
        shutil.rmtree(out)
    assert workers_seen, "no interrupt landed while the workers were running: the test proved nothing"


def interrupt(run: Started, signum: signal.Signals, to_group: bool, context: str) -> bool:
    """Send ``signum`` to the run (or its process group) and check how it stops; return whether worker
    processes were running when the signal went."""
    if run.proc.poll() is not None:  # finished first: nothing to interrupt
        assert run.proc.returncode == 0, f"{context}: {run.stderr()}"
        return False
    workers = len(session_members(run.pid)) > 1
    # A run that has printed its summary is ending: it may end as if the signal came a moment later.
    ending = bool(run.stdout())
    sent = time.monotonic()
    (os.killpg if to_group else os.kill)(run.pid, signum)
    try:
        status = run.proc.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{context}: still running {STOP_SECONDS} s after {signum.name}:\n{run.stderr()}")
    took = time.monotonic() - sent
    alive = survivors(run.pid)
    stderr = run.stderr()
    assert_no_traceback(stderr, context)
    assert not alive, f"{context}: processes of the run alive {WORKER_GRACE} s after it exited: {alive}"
    if ending and status == 0:
        return workers
    assert status == 128 + signum, f"{context}: exit status {status}:\n{stderr}"
    interrupted = [line for line in stderr.splitlines() if line.startswith("pipeline: interrupted")]
    assert len(interrupted) == 1, f"{context}:\n{stderr}"
    assert took < STOP_SECONDS
    print(f"{context}: exit {status} {took:.2f} s after {signum.name}: {interrupted[0]}")
    return workers


# ---------------------------------------------------------------------------------------------------
# Kill loop


def kill_loop(corpus: Corpus, fresh: Callable[[Path], None], tmp_path: Path, kills: int, label: str) -> int:
    """Kill runs over ``corpus.input`` at random moments (SIGKILL to the process group: the parent and
    its workers at once), rerun to completion after each round, compare with ``corpus.ref``.

    ``fresh(out)`` prepares a round's output folder. Some rounds kill the recovering run too. Returns
    how many runs were killed.
    """
    rng = random.Random(f"{SEED}-{label}")
    seconds = corpus.seconds  # a run's duration, lowered when a round's first run ends sooner
    killed = rounds_run = 0
    while killed < kills:
        rounds_run += 1
        assert rounds_run <= 3 * kills + 5, f"{label}: runs kept ending before the kill ({killed} killed)"
        out = tmp_path / f"{label}-{rounds_run}"
        fresh(out)
        moments = []
        for attempt in range(rng.choice((1, 1, 2))):
            # Anywhere in the run but the first fifth (the interpreter and imports: nothing to recover).
            # Every other kill in the last third, where the run dedups, appends and commits.
            delay = rng.uniform(*rng.choice(((0.2, 1.0), (0.67, 1.0)))) * seconds
            run = start(corpus.input, out, tmp_path)
            ended = ended_within(run, delay)
            if ended is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.proc.wait(timeout=60)
                killed += 1
                moments.append(f"{delay:.2f}")
                continue
            assert run.proc.returncode == 0, f"{label} round {rounds_run}: {run.stderr()}"
            if attempt == 0:  # a whole run from the round's starting state: the machine is faster now
                seconds = min(seconds, ended)
        context = f"seed {SEED}, {label} round {rounds_run}, killed after {', '.join(moments) or '-'} s"
        rerun = run_clean(corpus.input, out)
        assert rerun.returncode == 0, f"{context}:\n{rerun.stderr}"
        assert_no_traceback(rerun.stderr, context)
        assert_same_as(out, corpus.ref, context)
        print(f"{context}; rerun {rerun.seconds:.2f} s (a whole run: {seconds:.2f} s)")
        shutil.rmtree(out)
    return killed


def ended_within(run: Started, seconds: float) -> float | None:
    """Wait ``seconds`` or until the run ends; return how long it ran if it ended, else None."""
    began = time.monotonic()
    while (waited := time.monotonic() - began) < seconds:
        if run.proc.poll() is not None:
            return waited
        time.sleep(min(0.01, seconds - waited))
    return None if run.proc.poll() is None else waited


def test_kill_loop_on_a_first_run(batches: TwoBatches, tmp_path: Path):
    killed = kill_loop(batches.first, lambda out: None, tmp_path, rounds(5), "first")
    assert killed >= 5


def test_kill_loop_on_an_incremental_run(batches: TwoBatches, tmp_path: Path):
    killed = kill_loop(
        batches.both, lambda out: shutil.copytree(batches.first.ref, out), tmp_path, rounds(5), "incremental"
    )
    assert killed >= 5


# ---------------------------------------------------------------------------------------------------
# Faults: disk full, file too large, read-only output


@dataclass(frozen=True)
class FaultInputs:
    """A small batch that fits anywhere, and a larger one (~2 MB of text) that a 2 MB file system does not
    hold; ``ref``: both cleaned in two runs on a roomy disk."""

    small: Path
    more: Path
    ref: Path


@pytest.fixture(scope="module")
def fault_inputs(tmp_path_factory: pytest.TempPathFactory) -> FaultInputs:
    root = tmp_path_factory.mktemp("faults")
    syndicated_corpus(root / "small" / "s", limit=3, seed=4)
    syndicated_corpus(root / "more" / "m", seed=5)
    inputs = FaultInputs(root / "small", root / "more", root / "ref")
    inp = root / "in"
    shutil.copytree(inputs.small, inp)
    assert run_clean(inp, inputs.ref).returncode == 0
    shutil.copytree(inputs.more, inp, dirs_exist_ok=True)
    assert run_clean(inp, inputs.ref).returncode == 0
    return inputs


class Mounts:
    """Small tmpfs file systems under a test's folder, unmounted when the test ends."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounted: list[Path] = []

    def tmpfs(self, size: str) -> Path:
        where = self.root / f"fs-{len(self.mounted)}"
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(
                f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): disk-full and "
                "read-only output are tested where the tests may mount one (as root); the file size limit "
                "test covers a failing write without"
            )
        self.mounted.append(where)
        return where

    def remount(self, where: Path, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True, capture_output=True)

    def bind_read_only(self, where: Path) -> None:
        """``where`` made read-only in place (a bind mount of itself, remounted read-only)."""
        subprocess.run(["mount", "--bind", str(where), str(where)], check=True, capture_output=True)
        self.mounted.append(where)
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(where)], check=True, capture_output=True, text=True
        )

    def unmount(self, where: Path) -> None:
        subprocess.run(["umount", str(where)], check=True, capture_output=True)
        self.mounted.remove(where)

    def unmount_all(self) -> None:
        for where in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    made = Mounts(tmp_path)
    yield made
    made.unmount_all()


def assert_fault(result: Result, out: Path, before: dict[str, bytes | None], cause: str) -> str:
    """The fault contract: exit 1, one line ``pipeline: error: ...`` naming the path and the cause, no
    traceback, the outputs as their last committed state, no temporary file or spool left. Returns the
    line."""
    assert result.returncode == 1, f"exit status {result.returncode}:\n{result.stderr}"
    assert_no_traceback(result.stderr, "fault")
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pipeline: error:"), result.stderr
    assert str(out) in lines[0], f"the message names no path under {out}: {lines[0]}"
    assert re.search(cause, lines[0], re.I), f"the message does not say {cause!r}: {lines[0]}"
    assert "missing or damaged" not in lines[0]
    assert contents(out) == before, "outputs changed by the failed run"
    assert not leftovers(out), leftovers(out)
    print(lines[0])
    return lines[0]


DISK_FULL = r"No space left on device|disk is full"


def test_disk_full_at_growing_sizes_leaves_the_last_committed_state_each_time(
    fault_inputs: FaultInputs, mounts: Mounts, tmp_path: Path
):
    """An incremental run on a file system too small for it, grown by 512 KB after each failure until the
    run fits: the disk fills at a later stage each time (the workers' spool, the index's shingle file,
    the outputs' append, their sync, the index's commit: where each size struck, on this corpus, before
    the faults were handled), and every failure leaves the last committed state for the next run."""
    size = 2048  # KB
    fs = mounts.tmpfs(f"{size}k")
    out, inp = fs / "out", tmp_path / "in"
    shutil.copytree(fault_inputs.small, inp)
    assert run_clean(inp, out).returncode == 0
    before = contents(out)
    shutil.copytree(fault_inputs.more, inp, dirs_exist_ok=True)
    failures = []
    while (result := run_clean(inp, out)).returncode != 0:
        failures.append(f"{size} KB: {assert_fault(result, out, before, DISK_FULL)}")
        size += 512
        assert size <= 16384, "the run does not fit 16 MB"
        mounts.remount(fs, f"size={size}k")
    assert len(failures) >= 3, f"the disk filled in fewer than three runs: {failures}"
    assert_same_as(out, fault_inputs.ref, f"the run that fit in {size} KB")


def test_disk_full_in_a_first_run_leaves_no_output(fault_inputs: FaultInputs, mounts: Mounts, tmp_path: Path):
    out = mounts.tmpfs("1m") / "out"
    inp = tmp_path / "in"
    shutil.copytree(fault_inputs.small, inp)
    shutil.copytree(fault_inputs.more, inp, dirs_exist_ok=True)
    before = contents(out)
    assert set(before.values()) == {None}
    assert_fault(run_clean(inp, out), out, before, DISK_FULL)


@pytest.mark.parametrize("read_only", ["output folder", "index.data"])
def test_read_only_output_is_said_read_only(
    fault_inputs: FaultInputs, mounts: Mounts, tmp_path: Path, read_only: str
):
    # Tests run as root, which chmod does not stop: the file system itself is made read-only, the whole
    # tmpfs or (a read-only bind mount) the index's folder alone, which the run meets only mid-way.
    fs = mounts.tmpfs("64m")
    out, inp = fs / "out", tmp_path / "in"
    shutil.copytree(fault_inputs.small, inp)
    assert run_clean(inp, out).returncode == 0
    before = contents(out)
    shutil.copytree(fault_inputs.more, inp, dirs_exist_ok=True)
    if read_only == "output folder":
        mounts.remount(fs, "ro")
    else:
        mounts.bind_read_only(out / "index.data")
    assert_fault(run_clean(inp, out), out, before, r"read-only|permission denied")
    if read_only == "output folder":
        mounts.remount(fs, "rw")
    else:
        mounts.unmount(out / "index.data")
    again = run_clean(inp, out)
    assert again.returncode == 0, again.stderr
    assert_same_as(out, fault_inputs.ref, "after the read-only run")


def as_a_user_whom_permissions_bind() -> None:
    """Before exec in a child: root keeps root but loses CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (dropped
    from the bounding set, so the exec'd program does not get them back), the two capabilities that let
    root ignore file permissions: chmod then binds it as it binds any user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def set_modes(top: Path, files: int, folders: int) -> None:
    for path in [top, *top.rglob("*")]:
        path.chmod(folders if path.is_dir() else files)


@pytest.mark.parametrize("denied", ["output folder", "index.data"])
def test_permission_denied_in_the_output_folder_is_said_so(
    fault_inputs: FaultInputs, tmp_path: Path, denied: str
):
    # Tests run as root, which chmod alone does not stop: the run goes without the capabilities that let
    # root ignore permissions (as any other user, it needs none of them).
    out, inp = tmp_path / "out", tmp_path / "in"
    shutil.copytree(fault_inputs.small, inp)
    assert run_clean(inp, out).returncode == 0
    before = contents(out)
    shutil.copytree(fault_inputs.more, inp, dirs_exist_ok=True)
    top = out if denied == "output folder" else out / "index.data"
    set_modes(top, 0o444, 0o555)
    try:
        preexec = as_a_user_whom_permissions_bind if os.geteuid() == 0 else None
        assert_fault(run_clean(inp, out, preexec_fn=preexec), out, before, r"permission denied")
    finally:
        set_modes(top, 0o644, 0o755)
    again = run_clean(inp, out)
    assert again.returncode == 0, again.stderr
    assert_same_as(out, fault_inputs.ref, "after the run without permission")


def test_a_write_over_the_file_size_limit_leaves_the_last_committed_state(
    fault_inputs: FaultInputs, tmp_path: Path
):
    """A failing write without mounting anything: RLIMIT_FSIZE (``ulimit -f``) makes a write past the limit
    fail with EFBIG (Python ignores SIGXFSZ), in the parent and its workers alike."""
    out, inp = tmp_path / "out", tmp_path / "in"
    shutil.copytree(fault_inputs.small, inp)
    assert run_clean(inp, out).returncode == 0
    before = contents(out)
    biggest = max((out / name).stat().st_size for name in os.listdir(out) if (out / name).is_file())
    shutil.copytree(fault_inputs.more, inp, dirs_exist_ok=True)
    limit = 2 * biggest  # the small run's files fit twice over; the larger batch's records do not

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    assert_fault(run_clean(inp, out, preexec_fn=limited), out, before, r"File too large|disk is full")
    again = run_clean(inp, out)
    assert again.returncode == 0, again.stderr
    assert_same_as(out, fault_inputs.ref, "after the failed write")
