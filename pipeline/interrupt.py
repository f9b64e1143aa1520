"""SIGTERM as an interrupt, so that a run stops the same way whether Ctrl-C or a scheduler stops it.

Installed by the command line's entry point before it imports anything heavy (numpy, the stages): a
signal that lands while the program is still starting gets the same one-line ending as one that lands
mid-run, never a traceback or a silent death.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType
from typing import NoReturn


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as an interrupt so that a run stops as it does on Ctrl-C."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def terminate_as_interrupt() -> None:
    """From now on, SIGTERM raises :class:`Terminated` in the main thread (SIGINT raises
    KeyboardInterrupt already)."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def exit_status(err: KeyboardInterrupt) -> int:
    """128 + the number of the signal behind the interrupt: 143 for SIGTERM, 130 for SIGINT."""
    return 128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)


def signal_name(err: KeyboardInterrupt) -> str:
    return "SIGTERM" if isinstance(err, Terminated) else "SIGINT"


def main() -> int:
    """The ``pipeline`` command: the interrupt path is in place before :mod:`pipeline.cli` is imported.

    A signal that lands while a C extension is being imported can surface as that import's error (numpy:
    "ImportError: numpy._core.multiarray failed to import"): a signal seen here makes any error of the
    start-up an interrupt. One that escapes the command's own handling (while it parses its arguments,
    say) gets the same one line.
    """
    arrived: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        arrived.append(signum)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    started = False
    try:
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        from pipeline.cli import main as cli_main  # noqa: PLC0415 - after the handlers, on purpose

        started = True
        status = cli_main()
    except KeyboardInterrupt as err:
        status, name = exit_status(err), signal_name(err)
    except Exception:
        if started or not arrived:
            raise
        status, name = 128 + arrived[0], signal.Signals(arrived[0]).name
    else:
        # Done: a signal from now on changes nothing. Ignored, not left to Python's finalization, which
        # puts back the default handlers (a Ctrl-C during the exit would end the process by SIGINT).
        _ignore_stop_signals()
        if arrived or "prefect" not in sys.modules:
            # The outputs are committed and closed: the process ends now rather than after Python has
            # freed every object the run made (0.15 s after cleaning 20,000 files). Not after a flow ran:
            # Prefect stops its temporary server in an exit hook.
            logging.shutdown()
            return _exit_now(status)
        return status
    _ignore_stop_signals()
    when = "" if started else " while starting: nothing was done"
    print(f"pipeline: interrupted ({name}){when}", file=sys.stderr)
    return _exit_now(status)


def _ignore_stop_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def _exit_now(status: int) -> NoReturn:
    """Exit with ``status`` now, the standard streams flushed (the command's work is done and committed, or
    an interrupt has been handled: its one line printed, the workers gone).

    After an interrupt, not through ``sys.exit``: CPython 3.11 remembers a KeyboardInterrupt that went
    through code run by ``PyRun_*`` during an import, even one caught later, and then ends the process by
    SIGINT itself (status -2, not 130). Seen in 4 of 60 Ctrl-Cs landing 0.22-0.26 s after start.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
