"""One writer per output folder: pipeline.lock, with the lock held by a real second process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.lock import LOCK_FILE, OutputBusy, output_lock

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, str(os.getpid()).encode(), 0)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _holder(out: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out / LOCK_FILE), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_a_held_folder_is_waited_for_then_refused_naming_the_holder(tmp_path: Path):
    holder = _holder(tmp_path, 30)
    told: list[str] = []
    start = time.monotonic()
    try:
        with (
            pytest.raises(OutputBusy, match=rf"process {holder.pid}.*--wait"),
            output_lock(tmp_path, 0.5, told.append),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    assert 0.5 <= time.monotonic() - start < 10
    assert len(told) == 1 and f"process {holder.pid}" in told[0] and "up to 0.5 s" in told[0]


def test_the_lock_is_taken_when_the_holder_ends_however_it_ends(tmp_path: Path):
    holder = _holder(tmp_path, 30)
    holder.kill()  # kill -9: the kernel releases the lock with the process
    holder.wait()
    with output_lock(tmp_path, 5):
        assert (tmp_path / LOCK_FILE).read_text().strip().isdigit()


def test_a_waiting_run_proceeds_once_the_other_finishes(tmp_path: Path):
    holder = _holder(tmp_path, 1.0)
    start = time.monotonic()
    with output_lock(tmp_path, 30):
        waited = time.monotonic() - start
    holder.wait()
    assert 0.3 < waited < 20
