"""Serving the flows on a cron schedule (``flows/serve.py``) against a real temporary Prefect server.

The deployments are registered and their schedules read back through the Prefect client; then
``python -m flows.serve`` runs in a subprocess against the same server and one run of the scheduled
deployment is triggered and completed without waiting for the clock.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from pipeline import contract
from pipeline.run import UsageError
from tests.corpus import SEED

ROOT = Path(__file__).resolve().parents[1]
HOURLY = "0 * * * *"


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """An article and an exact copy of it under another name."""
    folder = tmp_path / "raw"
    folder.mkdir()
    shutil.copy(SEED, folder / "ukraine-atacms.txt")
    shutil.copy(SEED, folder / "copy-of-atacms.txt")
    return folder


@pytest.fixture
def fresh_deployments(prefect_harness: None) -> Iterator[None]:
    """No deployment of ours registered before or after the test: each test sees only what it registered."""
    delete_our_deployments()
    try:
        yield
    finally:
        delete_our_deployments()


def delete_our_deployments() -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from flows.serve import CLEAN_DEPLOYMENT, FETCH_DEPLOYMENT

    with get_client(sync_client=True) as client:
        for name in (f"clean-folder/{CLEAN_DEPLOYMENT}", f"fetch-and-clean/{FETCH_DEPLOYMENT}"):
            try:
                client.delete_deployment(client.read_deployment_by_name(name).id)
            except ObjectNotFound:
                pass


def test_deployments_register_with_their_cron_schedule(
    fresh_deployments: None, raw: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    from flows.serve import CLEAN_DEPLOYMENT, FETCH_DEPLOYMENT, build_deployments

    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/a\n", encoding="utf-8")
    out = tmp_path / "out"
    deployments = build_deployments(
        "30 6 * * 1-5", input_dir=raw, out=out, raw=raw, urls_file=urls, timezone="Europe/Kyiv"
    )
    assert [(d.flow_name, d.name) for d in deployments] == [
        ("clean-folder", CLEAN_DEPLOYMENT),
        ("fetch-and-clean", FETCH_DEPLOYMENT),
    ]
    for deployment in deployments:
        deployment.apply()

    with get_client(sync_client=True) as client:
        clean = client.read_deployment_by_name(f"clean-folder/{CLEAN_DEPLOYMENT}")
        fetch = client.read_deployment_by_name(f"fetch-and-clean/{FETCH_DEPLOYMENT}")
    for registered in (clean, fetch):
        [schedule] = registered.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == (
            "30 6 * * 1-5",
            "Europe/Kyiv",
            True,
        )
    assert clean.entrypoint == "flows/clean_folder.py:clean_folder"
    assert fetch.entrypoint == "flows/fetch_and_clean.py:fetch_and_clean"
    assert clean.parameters == {"input_dir": str(raw), "out": str(out)}
    assert fetch.parameters == {"urls_file": str(urls), "raw": str(raw), "out": str(out)}

    # A second apply (a restarted `serve`) updates the same deployment and keeps one schedule.
    again = build_deployments(HOURLY, input_dir=raw, out=out)
    assert [d.name for d in again] == [CLEAN_DEPLOYMENT]
    assert again[0].apply() == clean.id
    with get_client(sync_client=True) as client:
        [schedule] = client.read_deployment_by_name(f"clean-folder/{CLEAN_DEPLOYMENT}").schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == (HOURLY, "UTC")


def test_served_deployment_completes_a_run_triggered_now(
    fresh_deployments: None, raw: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    from flows.serve import CLEAN_DEPLOYMENT

    out = tmp_path / "out"
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),  # the harness's server
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",  # look for runs every second, not every 10 s
    }
    command = [sys.executable, "-m", "flows.serve", "--cron", HOURLY, "--input", str(raw), "--out", str(out)]
    with log.open("wb") as log_file:
        # Its own process group: the runner starts each flow run as a child process, stopped with it.
        server_side = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for_deployment(f"clean-folder/{CLEAN_DEPLOYMENT}", server_side, log)
        flow_run = run_deployment(f"clean-folder/{CLEAN_DEPLOYMENT}", timeout=45, poll_interval=1)
        assert flow_run.state is not None
        assert flow_run.state.is_completed(), f"{flow_run.state!r}\n{log.read_text(errors='replace')}"
    finally:
        stop(server_side)

    assert flow_run.parameters == {"input_dir": str(raw), "out": str(out)}
    assert contract.validate_output(out) == {"records": 1, "duplicates": 1, "rejected": 0}
    assert "Your deployments are being served" in log.read_text(errors="replace")
    # Stopped with Ctrl-C, the runner paused its schedules: no runs pile up while nothing serves them.
    with get_client(sync_client=True) as client:
        assert client.read_deployment_by_name(f"clean-folder/{CLEAN_DEPLOYMENT}").paused


def wait_for_deployment(name: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Until the served process has registered ``name`` (it applies its deployments when it starts)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"serve exited {process.returncode}:\n{log.read_text()}"
            try:
                client.read_deployment_by_name(name)
                return
            except ObjectNotFound:
                time.sleep(0.2)
    raise AssertionError(f"{name} not registered within {timeout} s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C for the serving process group (the runner pauses its schedules and exits), then a kill."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def test_invalid_cron_is_a_one_line_error_before_anything_starts(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flows.serve", "--cron", "61 * * * *", "--input", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"},  # nothing listens: nothing may call
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == ['python -m flows.serve: error: Invalid cron string: "61 * * * *"']
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cron", "0 * * *"], 'Invalid cron string: "0 * * *"'),
        (["--cron", "H * * * *"], 'Invalid cron string: "H * * * *"'),
        (["--timezone", "Mars/Olympus"], 'Invalid timezone: "Mars/Olympus"'),
        (["--urls", "missing.txt"], "URL file not found: missing.txt"),
        (["--urls", "u.txt", "--feed", "http://x/feed"], "argument --feed: not allowed with argument --urls"),
        (["--input", "nowhere"], "input folder or file not found: nowhere"),
        (["--sitemap", "http://x/s.xml", "--raw", "fetched"], "--input and --raw must be the same folder"),
        (
            ["--sitemap", "http://x/s.xml", "--out", "raw"],
            "the output folder must differ from the raw folder",
        ),
        (["--limit", "0"], "--limit must be at least 1"),
        (["--threshold", "3"], "threshold must be in (0, 1]"),
        (["--languages", "xx"], "unknown language"),
        (["--boilerplate", "missing.txt"], "boilerplate file: "),
        (["--rebuild"], "--rebuild would forget the index at every scheduled run"),
        (["--input", "s3://b/raw", "--sitemap", "http://x/s.xml"], "--raw (and --input) must be a local"),
    ],
)
def test_usage_errors(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows.serve import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "raw").mkdir()
    try:
        status = main(argv, prog="pipeline serve")
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    assert status == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("pipeline serve: error: ") and message in line


def test_clean_options_reach_both_deployments_over_each_flows_defaults(raw: Path, tmp_path: Path) -> None:
    from flows.fetch_and_clean import FETCH_CLEAN_OPTIONS
    from flows.serve import build_deployments, build_parser
    from pipeline.options import CleanOptions, as_parameter, given

    rules = tmp_path / "rules.txt"
    rules.write_text("[line]\nExit mobile version\n", encoding="utf-8")
    args = build_parser().parse_args(
        ["--threshold", "0.7", "--languages", "en,de", "--boilerplate", str(rules), "-w", "1"]
    )
    options = given(args)
    assert options == {"threshold": 0.7, "workers": 1, "boilerplate": str(rules), "languages": ["de", "en"]}

    clean, fetch = build_deployments(
        HOURLY, input_dir=raw, raw=raw, out=tmp_path / "out", sitemap="http://x/s.xml", options=options
    )
    assert clean.parameters["options"] == options  # the rest: CleanOptions' defaults, the flow's own
    assert fetch.parameters["options"] == as_parameter(
        CleanOptions(**{**as_parameter(FETCH_CLEAN_OPTIONS), **options})
    )
    assert fetch.parameters["options"]["scan"] == "folders"  # spelled out: a partial object would say full
    assert build_deployments(HOURLY, input_dir=raw)[0].parameters.keys() == {"input_dir", "out"}
    [on_a_store] = build_deployments(HOURLY, input_dir="s3://corpus/raw", out="s3://corpus/clean")
    assert on_a_store.parameters == {"input_dir": "s3://corpus/raw", "out": "s3://corpus/clean"}


def test_serving_without_an_api_url_runs_one_server_that_schedules_and_stops_with_it(
    raw: Path, tmp_path: Path
) -> None:
    """No PREFECT_API_URL: the serving process starts one Prefect server, says where it is; the server's
    scheduler makes the cron schedule's runs (Prefect's temporary server has none), the flow runs report to
    it (not to servers of their own), and Ctrl-C stops it, after the runner, without a traceback."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.serve import CLEAN_DEPLOYMENT

    out = tmp_path / "out"
    log = tmp_path / "serve.log"
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    command = [sys.executable, "-m", "pipeline", "serve", "--input", str(raw), "--out", str(out)]
    with log.open("wb") as log_file:
        server_side = subprocess.Popen(
            [*command, "--threshold", "0.7"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        api_url = wait_for_line(r"trigger a run with PREFECT_API_URL=(\S+) ", server_side, log)
        with temporary_settings({PREFECT_API_URL: api_url}):
            wait_for_deployment(f"clean-folder/{CLEAN_DEPLOYMENT}", server_side, log)
            flow_run = run_deployment(f"clean-folder/{CLEAN_DEPLOYMENT}", timeout=60, poll_interval=1)
            scheduled = wait_for_scheduled_runs()
            with get_client(sync_client=True) as client:
                flow_runs = client.read_flow_runs()
                deployment = client.read_deployment_by_name(f"clean-folder/{CLEAN_DEPLOYMENT}")
    finally:
        stop(server_side)

    text = log.read_text(errors="replace")
    assert flow_run.state is not None and flow_run.state.is_completed(), f"{flow_run.state!r}\n{text}"
    assert flow_run.parameters["options"] == {"threshold": 0.7}
    assert {run.id for run in flow_runs} == {flow_run.id, *scheduled}  # one server saw them all
    assert all(run.deployment_id == deployment.id for run in flow_runs)
    assert contract.validate_output(out) == {"records": 1, "duplicates": 1, "rejected": 0}
    assert text.count("serving against a Prefect server started for this process") == 1, text
    assert "temporary server" not in text, text  # Prefect's own, as the flow run's process started
    assert "Traceback" not in text and "Error" not in text, text
    assert server_side.returncode == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{api_url}/health", timeout=2)


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"]
)
def test_a_signal_while_the_server_starts_stops_it_too(
    signum: signal.Signals, raw: Path, tmp_path: Path
) -> None:
    """Stopped before it serves (a new database's migrations take seconds), even by SIGKILL, the command
    leaves no server process behind."""
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    command = [sys.executable, "-m", "pipeline", "serve", "--input", str(raw), "--out", str(tmp_path / "out")]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (servers := children(process.pid, "server\0start")):
            assert process.poll() is None and time.monotonic() < deadline, "no server started"
            time.sleep(0.05)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(map(alive, servers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, servers)), "the server outlived serve"
    assert b"Traceback" not in stderr, stderr.decode(errors="replace")


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped by whoever adopted it, does not)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def children(parent: int, word: str) -> list[int]:
    """The processes whose parent is ``parent`` and whose command line holds ``word`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if f"\nPPid:\t{parent}\n" in status and word.encode() in command:
            found.append(int(entry.name))
    return found


def wait_for_scheduled_runs(timeout: float = 60) -> set[UUID]:
    """The ids of the runs the server's scheduler has made for the hourly schedule, once there are any."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    only_scheduled = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
    )
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if found := client.read_flow_runs(flow_run_filter=only_scheduled):
                return {run.id for run in found}
            time.sleep(0.5)
    raise AssertionError(f"no scheduled run within {timeout} s: the server schedules nothing")


def wait_for_line(pattern: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> str:
    """The first group of ``pattern`` once it appears in the served process's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := re.search(pattern, log.read_text(errors="replace")):
            return found.group(1)
        assert process.poll() is None, f"serve exited {process.returncode}:\n{log.read_text()}"
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} within {timeout} s:\n{log.read_text()}")


def test_the_library_refuses_two_url_sources_and_two_raw_folders() -> None:
    from flows.serve import build_deployments

    with pytest.raises(UsageError, match="at most one URL source"):
        build_deployments(HOURLY, urls_file="u.txt", sitemap="http://x/sitemap.xml")
    with pytest.raises(UsageError, match="--input and --raw must be the same folder"):
        build_deployments(HOURLY, input_dir="dropped", raw="fetched", sitemap="http://x/sitemap.xml")


def test_prefect_yaml_deploys_both_flows_to_a_process_work_pool(fresh_deployments: None) -> None:
    """``prefect deploy --all`` with the project's prefect.yaml, as README says, against the test server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL
    from prefect.workers.process import ProcessWorker

    from flows.serve import CLEAN_DEPLOYMENT, FETCH_DEPLOYMENT

    with get_client(sync_client=True) as client:
        pool = client.create_work_pool(
            WorkPoolCreate(
                name="scrape-clean",
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
        )
    try:
        result = subprocess.run(
            [str(Path(sys.executable).with_name("prefect")), "--no-prompt", "deploy", "--all"],
            cwd=ROOT,
            env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        with get_client(sync_client=True) as client:
            clean = client.read_deployment_by_name(f"clean-folder/{CLEAN_DEPLOYMENT}")
            fetch = client.read_deployment_by_name(f"fetch-and-clean/{FETCH_DEPLOYMENT}")
    finally:
        with get_client(sync_client=True) as client:
            client.delete_work_pool(pool.name)

    working_directory = [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
    for deployment, entrypoint in (
        (clean, "flows/clean_folder.py:clean_folder"),
        (fetch, "flows/fetch_and_clean.py:fetch_and_clean"),
    ):
        assert (deployment.entrypoint, deployment.work_pool_name) == (entrypoint, "scrape-clean")
        [schedule] = deployment.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == (HOURLY, "UTC", True)
        assert deployment.pull_steps == working_directory
        assert deployment.global_concurrency_limit is not None
        assert deployment.global_concurrency_limit.limit == 1
    assert clean.parameters == {"input_dir": "raw", "out": "clean", "options": {"threshold": 0.8}}
    assert fetch.parameters == {
        "urls_file": "urls.txt",
        "raw": "raw",
        "out": "clean",
        "options": {"threshold": 0.8, "scan": "folders"},
    }
