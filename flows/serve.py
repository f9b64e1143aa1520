"""Serve the cleanup flows on a cron schedule: ``clean-folder`` and, given a URL source, ``fetch-and-clean``.

:func:`build_deployments` turns the flows into Prefect deployments with one cron schedule each;
:func:`serve` registers them with the Prefect API and runs their scheduled runs in this process (a
``prefect.serve`` runner) until interrupted. Start a server first and point at it::

    prefect server start                                  # another terminal; UI on http://127.0.0.1:4200
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    python -m flows.serve --cron "0 * * * *" --sitemap https://example.org/sitemap.xml
    prefect deployment run 'clean-folder/clean-folder-scheduled'   # a run now, not at the next hour

Without PREFECT_API_URL it starts a server of its own for as long as it serves (:func:`prefect_api`).
``pipeline serve ...`` is the same command: it delegates to :func:`main`.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pipeline import options as clean_options
from pipeline import remote
from pipeline.run import UsageError

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

PROG = "python -m flows.serve"
CLEAN_DEPLOYMENT = "clean-folder-scheduled"
FETCH_DEPLOYMENT = "fetch-and-clean-scheduled"
DEFAULT_CRON = "0 * * * *"
DEFAULT_TIMEZONE = "UTC"


def check_schedule(cron: str, timezone: str = DEFAULT_TIMEZONE) -> None:
    """Refuse a cron expression or time zone the Prefect API would refuse.

    Prefect's own schedule model validates, so what passes here registers. Random and hashed expressions
    (``H``, ``R``) are refused, as Prefect does.

    Raises:
        UsageError: one line naming the bad value.
    """
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as err:
        message = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in err.errors())
        raise UsageError(message) from None


def check_layout(input_dir: str | Path, out: str | Path, raw: str | Path) -> None:
    """Refuse folders that cannot serve both deployments.

    Both clean into OUTPUT and its index of everything seen, whose sources are paths relative to the folder
    cleaned: clean-folder's INPUT and fetch-and-clean's RAW must be one folder, or their files would mix.

    Raises:
        UsageError: RAW is a URL (the fetcher writes pages into a local folder), INPUT is not RAW, or
            OUTPUT is RAW.
    """
    if remote.is_url(raw):
        raise UsageError(
            "with a URL source, --raw (and --input) must be a local folder: the fetcher writes there"
        )
    if Path(raw).resolve() != Path(input_dir).resolve():
        raise UsageError("with a URL source, --input and --raw must be the same folder")
    if Path(raw).resolve() == Path(out).resolve():
        raise UsageError("the output folder must differ from the raw folder")


def build_deployments(
    cron: str,
    input_dir: str | Path = "raw",
    out: str | Path = "clean",
    raw: str | Path = "raw",
    urls_file: str | Path | None = None,
    feed: str | None = None,
    sitemap: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    fetch_options: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> list[RunnerDeployment]:
    """The deployments to serve, each with one cron schedule in ``timezone``.

    ``clean-folder/clean-folder-scheduled`` cleans ``input_dir`` into ``out``. With a URL source (at most
    one of ``urls_file``, ``feed``, ``sitemap``) also ``fetch-and-clean/fetch-and-clean-scheduled``, which
    fetches into ``raw`` and cleans ``raw`` into ``out``, with ``fetch_options`` as further parameters
    (``allow_private``, ``max_urls``). ``options`` are clean options (fields of
    :class:`~pipeline.options.CleanOptions`) for both deployments, each over its flow's defaults
    (fetch-and-clean keeps ``scan: folders`` unless ``options`` says otherwise). Folder parameters are
    stored as absolute paths, so a run started from the UI or ``prefect deployment run`` does not depend
    on a working directory.

    Raises:
        UsageError: a bad schedule, more than one URL source, or folders :func:`check_layout` refuses.
    """
    from prefect.schedules import Cron

    from flows.clean_folder import clean_folder

    check_schedule(cron, timezone)
    options = dict(options or {})
    if options.get("boilerplate"):
        options["boilerplate"] = _absolute(options["boilerplate"])
    sources = {"urls_file": urls_file, "feed": feed, "sitemap": sitemap}
    given = {name: value for name, value in sources.items() if value is not None}
    if len(given) > 1:
        raise UsageError(f"give at most one URL source, not {' and '.join(given)}")
    if given:
        check_layout(input_dir, out, raw)

    deployments = [
        clean_folder.to_deployment(
            name=CLEAN_DEPLOYMENT,
            schedules=[Cron(cron, timezone=timezone)],
            parameters={
                "input_dir": _absolute(input_dir),
                "out": _absolute(out),
                **({"options": options} if options else {}),
            },
            description=f"Clean {input_dir} into {out}, on cron {cron!r} ({timezone}).",
            tags=["scrape-clean"],
        )
    ]
    if given:
        # Imported only when asked for: serving clean-folder alone needs nothing of the fetcher.
        from flows.fetch_and_clean import FETCH_CLEAN_OPTIONS, fetch_and_clean

        name, source = next(iter(given.items()))
        value = _absolute(source) if name == "urls_file" else str(source)
        # in full: a partial options object would take CleanOptions' scan, not the flow's
        full = clean_options.as_parameter(replace(FETCH_CLEAN_OPTIONS, **options))
        fetch_clean = {"options": full} if options else {}
        deployments.append(
            fetch_and_clean.to_deployment(
                name=FETCH_DEPLOYMENT,
                schedules=[Cron(cron, timezone=timezone)],
                parameters={
                    name: value,
                    "raw": _absolute(raw),
                    "out": _absolute(out),
                    **(fetch_options or {}),
                    **fetch_clean,
                },
                description=f"Fetch {source} into {raw}, clean {raw} into {out}, on cron {cron!r} "
                f"({timezone}).",
                tags=["scrape-clean"],
            )
        )
    return deployments


def serve(
    cron: str,
    input_dir: str | Path = "raw",
    out: str | Path = "clean",
    raw: str | Path = "raw",
    urls_file: str | Path | None = None,
    feed: str | None = None,
    sitemap: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    limit: int = 1,
    fetch_options: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> None:
    """Register the deployments of :func:`build_deployments` and run their flow runs until interrupted.

    ``limit`` caps the flow runs this process runs at once. The default 1 queues the two deployments one
    after the other when their schedules fire together: both write the same OUTPUT folder.
    """
    from prefect import serve as prefect_serve

    deployments = build_deployments(
        cron, input_dir, out, raw, urls_file, feed, sitemap, timezone, fetch_options, options
    )
    prefect_serve(*deployments, limit=limit)


class ServerDidNotStart(Exception):
    """The Prefect server started for serving did not answer."""


SERVER_START_TIMEOUT = 120.0  # seconds for a new server to answer (a new database's migrations: ~20 s here)


@contextmanager
def prefect_api(prog: str = PROG) -> Iterator[None]:
    """The Prefect API to serve against: PREFECT_API_URL's, or else a Prefect server started for this
    process (``prefect server start`` on 127.0.0.1, no UI, its database in PREFECT_HOME), which the flow
    runs it starts reach through the inherited PREFECT_API_URL, stopped when the block ends.

    Not Prefect's temporary server: it runs no scheduler service, so no cron schedule would ever make a
    run, and each flow-run process would start another one. The server is in a session of its own, so a
    Ctrl-C at the terminal reaches the runner alone, which pauses its schedules through the server before
    the server stops; on Linux it also stops if this process dies without stopping it.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api_url = f"http://127.0.0.1:{port}/api"
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [*command, "--no-ui", "--analytics-off"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_stop_with_parent,
        )
        try:  # a signal while it starts (a new database's migrations take seconds) must stop it too
            _wait_until_up(server, api_url, log)
            print(
                f"{prog}: PREFECT_API_URL is not set: serving against a Prefect server started for this "
                f"process, {api_url} (no UI; it stops with this process; a lasting one: 'prefect server "
                f"start'); trigger a run with PREFECT_API_URL={api_url} prefect deployment run "
                f"'clean-folder/{CLEAN_DEPLOYMENT}'",
                file=sys.stderr,
                flush=True,
            )
            os.environ["PREFECT_API_URL"] = api_url  # for the flow-run processes
            with temporary_settings({PREFECT_API_URL: api_url}):
                yield
        finally:
            os.environ.pop("PREFECT_API_URL", None)
            _stop(server)


def _wait_until_up(server: subprocess.Popen[bytes], api_url: str, log: Any) -> None:
    import httpx

    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            last = log.read().decode(errors="replace").strip().splitlines()[-1:]
            status = server.returncode
            raise ServerDidNotStart(f"the Prefect server did not start (exit {status}): {' '.join(last)}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    within = f"within {SERVER_START_TIMEOUT:g} s"
    raise ServerDidNotStart(f"the Prefect server did not answer at {api_url} {within}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's session (its own process group), SIGKILL if it is still there in 15 s."""
    if server.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _stop_with_parent() -> None:
    """In the server's process before it runs: SIGTERM when this process dies (Linux' PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _absolute(path: str | Path) -> str:
    """A folder as an absolute path (a URL as it is)."""
    return str(path) if remote.is_url(path) else str(Path(path).expanduser().resolve())


# ---------------------------------------------------------------------------------------------------
# Command line: python -m flows.serve --cron "0 * * * *" [--urls FILE | --feed URL | --sitemap URL]


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line, ``PROG: error: ...``, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = _OneLineErrors(
        prog=prog,
        description="Register the clean-folder deployment (and, given --urls, --feed or --sitemap, the "
        "fetch-and-clean deployment) with the Prefect API at PREFECT_API_URL, each on the cron schedule, "
        "and run their flow runs in this process until Ctrl-C.",
        epilog="Trigger a run now: prefect deployment run 'clean-folder/clean-folder-scheduled'",
    )
    parser.add_argument(
        "--cron",
        default=DEFAULT_CRON,
        help='cron expression of the schedule, in quotes (default: "%(default)s", hourly)',
    )
    parser.add_argument(
        "--timezone", default=DEFAULT_TIMEZONE, help="IANA time zone of the schedule (default: %(default)s)"
    )
    parser.add_argument("--input", default="raw", help="folder clean-folder cleans (default: %(default)s)")
    parser.add_argument("--out", "-o", default="clean", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--raw", help="folder fetch-and-clean stores pages in; it must be the --input folder (default: that)"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--urls", metavar="FILE", help="file of URLs to fetch, one a line")
    source.add_argument("--feed", metavar="URL", help="RSS or Atom feed whose articles to fetch")
    source.add_argument("--sitemap", metavar="URL", help="sitemap whose pages to fetch")
    parser.add_argument(
        "--allow-private",
        action="store_true",
        help="fetch-and-clean also fetches from loopback, private and other non-public addresses",
    )
    parser.add_argument(
        "--max-urls",
        type=int,
        metavar="N",
        help="most URLs fetch-and-clean takes from the feed or sitemap (default: the flow's, 10000)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=1,
        help="flow runs at once (default: %(default)s, so runs writing the same output never overlap)",
    )
    clean = parser.add_argument_group(
        "clean options", "for both deployments; those left out keep each flow's defaults"
    )
    clean_options.add_arguments(clean, given_only=True)
    return parser


def check_folders(args: argparse.Namespace) -> None:
    """Refuse folders no run could use, before anything registers; create RAW for the fetcher.

    RAW defaults to INPUT (``args.raw`` is set to it).

    Raises:
        UsageError: see :func:`pipeline.run.check_request`; a missing URL file; a bad ``--limit``; with a
            URL source, an input folder other than RAW; a clean option out of range, or ``--rebuild``.
    """
    fetching = args.urls or args.feed or args.sitemap
    args.raw = args.raw or args.input
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    if args.urls and not Path(args.urls).is_file():
        raise UsageError(f"URL file not found: {args.urls}")
    if fetching:
        check_layout(args.input, args.out, args.raw)
        # fetch-and-clean fills RAW; clean-folder, serving it too, must find it from the first run.
        Path(args.raw).mkdir(parents=True, exist_ok=True)
    if getattr(args, "rebuild", False):
        raise UsageError(
            "--rebuild would forget the index at every scheduled run: rebuild once with "
            "'pipeline clean INPUT --out OUTPUT --rebuild', then serve"
        )
    try:
        options = clean_options.CleanOptions(**clean_options.given(args))
    except ValueError as err:
        raise UsageError(str(err)) from None
    remote.check_request(args.input, args.out, options.run_config())


def fetch_options(args: argparse.Namespace) -> dict[str, Any]:
    """The fetch-and-clean parameters given on the command line, beyond the source and the folders (only
    those given, so a deployment lists what was asked for).

    Raises:
        UsageError: ``--max-urls`` below 1.
    """
    options: dict[str, Any] = {"allow_private": True} if args.allow_private else {}
    if args.max_urls is not None:
        if args.max_urls < 1:
            raise UsageError("--max-urls must be at least 1")
        options["max_urls"] = args.max_urls
    return options


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Parse ``argv``, check the request, serve until interrupted; 2 and one line on a usage error.

    ``pipeline serve`` calls this with its own arguments (and ``prog="pipeline serve"``).
    """
    args = build_parser(prog).parse_args(argv)
    try:
        # Everything is checked before Prefect is asked for anything: a typo in the cron expression is a
        # one-line error, not a traceback from a half-started runner.
        check_schedule(args.cron, args.timezone)
        check_folders(args)
        fetching = fetch_options(args)
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2

    # Prefect's runner shuts down cleanly on Ctrl-C under asyncio's own SIGINT handler, which asyncio.run
    # installs only over Python's default one; `pipeline`'s entry point has put its own in place, which
    # raises KeyboardInterrupt wherever the loop is (a connection's task then dies with a traceback).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with prefect_api(prog):
            serve(
                args.cron,
                args.input,
                args.out,
                args.raw,
                args.urls,
                args.feed,
                args.sitemap,
                timezone=args.timezone,
                limit=args.limit,
                fetch_options=fetching,
                options=clean_options.given(args),
            )
    except ServerDidNotStart as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
