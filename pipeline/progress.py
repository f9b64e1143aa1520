"""A run's progress, wherever it runs: a bar on a terminal, a line at a steady interval elsewhere (a pipe,
a scheduler's log, a flow run's logger).

The run reports ``(stage, files done, files in the run, documents so far)`` after each chunk of each
pass (``load``, then ``clean``); both forms show the rate and the time left of the stage, the files being
what the run knows the number of in advance (a JSON-lines file may hold any number of documents).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Progress = Callable[[str, int, int, int], None]  # (stage, files done, files in the run, documents so far)
PROGRESS_INTERVAL = 10.0  # seconds between two progress lines off a terminal


def silent(stage: str, done: int, total: int, documents: int) -> None:
    """The progress of a run nobody watches."""


class ProgressLines:
    """Progress as lines, through ``emit``, one every ``interval`` seconds from the start, also while no
    chunk finishes (a thread keeps the beat: a scheduler's log is never silent for longer), none for a run
    shorter than that. A line says the stage, files done of all, documents, the rate, the time spent in the
    stage and the time left, e.g. ``load: 240/531 files (45%), 2,310 documents, 52.1 files/s, 4 s in, 6 s
    left``.

    Use it as a context manager: the beat stops on exit.
    """

    def __init__(self, emit: Callable[[str], None], interval: float, unit: str = "files") -> None:
        self.emit, self.interval, self.unit = emit, interval, unit
        self.state: tuple[str, int, int, int] | None = None
        self.started = self.last = time.monotonic()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.beat = threading.Thread(target=self._keep_beat, name="progress-lines", daemon=True)

    def __enter__(self) -> ProgressLines:
        self.started = self.last = time.monotonic()
        self.beat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.beat.join()

    def __call__(self, stage: str, done: int, total: int, documents: int) -> None:
        with self.lock:
            if self.state is None or stage != self.state[0]:
                self.started = time.monotonic()
            self.state = (stage, done, total, documents)

    def _keep_beat(self) -> None:
        while not self.stopped.wait(max(0.0, self.last + self.interval - time.monotonic())):
            with self.lock:
                self.last = now = time.monotonic()
                if self.state is not None:
                    self.emit(progress_line(*self.state, now - self.started, self.unit))


def progress_line(
    stage: str, done: int, total: int, documents: int, seconds: float, unit: str = "files"
) -> str:
    """One progress line (see :class:`ProgressLines`); ``documents`` below 0: none counted (a fetch)."""
    share = f" ({100 * done // total}%)" if total else ""
    line = f"{stage}: {done:,}/{total:,} {unit}{share}"
    if documents >= 0:
        line += f", {documents:,} documents"
    if done and seconds > 0:
        line += f", {done / seconds:,.1f} {unit}/s"
    line += f", {_duration(seconds)} in"
    if done and done < total and seconds > 0:
        line += f", {_duration(math.ceil((total - done) * seconds / done))} left"
    return line


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
    )


@contextmanager
def progress_for(
    quiet: bool, interval: float, emit: Callable[[str], None], unit: str = "files"
) -> Iterator[Progress]:
    """The progress of a command-line run: none when ``quiet``; a bar when standard error is a terminal;
    otherwise :class:`ProgressLines` through ``emit`` every ``interval`` seconds. ``unit``: what the run
    counts its way through (files; URLs for a fetch)."""
    if quiet:
        yield silent
        return
    from rich.console import Console  # noqa: PLC0415 - 0.05 s, only for the progress bar

    console = Console(stderr=True)
    if not console.is_terminal:
        with ProgressLines(emit, interval, unit) as lines:
            yield lines
        return
    with _bar(console, unit) as bar:
        yield bar


@contextmanager
def _bar(console: Any, unit: str) -> Iterator[Progress]:
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description:<6}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{unit}{{task.fields[documents]}}{{task.fields[rate]}}"),
        TimeElapsedColumn(),
        TextColumn("in,"),
        TimeRemainingColumn(),
        TextColumn("left"),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, tuple[TaskID, float]] = {}  # stage -> its bar, when it started

        def report(stage: str, done: int, total: int, documents: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, documents="", rate=""), time.monotonic()
            task, started = tasks[stage]
            seconds = time.monotonic() - started
            rate = f", {done / seconds:,.1f} {unit}/s" if done and seconds > 0 else ""
            counted = f", {documents:,} documents" if documents >= 0 else ""
            bar.update(task, completed=done, documents=counted, rate=rate)

        yield report
