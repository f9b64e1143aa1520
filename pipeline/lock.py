"""One writer per output folder: an OS lock on ``OUTPUT/.lock``, held for the whole run.

``flock`` locks belong to the open file, so the kernel releases them when the process ends, however it
ends (``kill -9`` included): a lock is never left behind. Worker processes forked during the run inherit
the open file and so keep the folder locked until the last of them has exited. On NFS, Linux emulates
``flock`` with byte-range locks, which the server enforces across machines.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".lock"
DEFAULT_WAIT = 60.0  # seconds a run waits for another run on the same output folder
EXIT_BUSY = 75  # EX_TEMPFAIL: another run holds the output folder; a later attempt may succeed


class OutputBusy(Exception):
    """Another run still holds the output folder after the wait."""


@contextmanager
def output_lock(
    out_dir: Path,
    wait: float = DEFAULT_WAIT,
    on_wait: Callable[[str], None] | None = None,
    name: str = LOCK_FILE,
    label: str | None = None,
) -> Iterator[None]:
    """Hold ``out_dir``'s lock (the file ``name`` in it); wait up to ``wait`` seconds for another run to
    release it.

    ``on_wait`` is told once, in a sentence, when the run has to wait; the sentences name ``label`` (by
    default ``out_dir``).

    Raises:
        OutputBusy: the lock is still held after ``wait`` seconds.
        OSError: the lock file cannot be created (a read-only or missing folder, no permission).
    """
    path = out_dir / name
    label = label or str(out_dir)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if time.monotonic() >= deadline:
                    raise OutputBusy(
                        f"another run{holder} still holds {label} after {wait:g} s; try again later or "
                        "give it longer with --wait SECONDS"
                    ) from None
                if not told and on_wait is not None:
                    on_wait(f"waiting for another run on {label}{holder} to finish (up to {wait:g} s)")
                    told = True
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """`` (process N)`` as the holder wrote it into the lock file, or nothing if it cannot be read."""
    pid = os.pread(fd, 32, 0).strip()
    return f" (process {pid.decode()})" if pid.isdigit() else ""
