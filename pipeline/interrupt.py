"""SIGTERM as an interrupt, so that a run stops the same way whether Ctrl-C or a scheduler stops it.

Installed by the command line's entry point before it imports anything heavy (numpy, the stages): a
signal that lands while the program is still starting gets the same one-line ending as one that lands
mid-run, never a traceback or a silent death.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as an interrupt so that a run stops as it does on Ctrl-C."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def terminate_as_interrupt() -> None:
    """From now on, SIGTERM raises :class:`Terminated` in the main thread."""
    signal.signal(signal.SIGTERM, _raise_terminated)


def exit_status(err: KeyboardInterrupt) -> int:
    """128 + the number of the signal behind the interrupt: 143 for SIGTERM, 130 for SIGINT."""
    return 128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)


def signal_name(err: KeyboardInterrupt) -> str:
    return "SIGTERM" if isinstance(err, Terminated) else "SIGINT"


def main() -> int:
    """The ``pipeline`` command: the interrupt path is in place before :mod:`pipeline.cli` is imported."""
    try:
        terminate_as_interrupt()
        from pipeline.cli import main as cli_main  # noqa: PLC0415 - after the handler, on purpose
    except KeyboardInterrupt as err:
        print(f"pipeline: interrupted ({signal_name(err)}) while starting: nothing was done", file=sys.stderr)
        return exit_status(err)
    return cli_main()
