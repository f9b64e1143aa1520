"""Cluster runs (pipeline/cluster.py) on real Dask clusters: a LocalCluster of worker processes, and a
scheduler and a worker started as their own processes, as a user starts them. A cluster run must leave
what a local ``--rebuild`` of the same folder leaves: the same output bytes and the same index."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.contract import validate_output
from pipeline.index import DATA_DIR, INDEX_FILE
from pipeline.options import CleanOptions
from pipeline.run import RunConfig, clean_folder
from tests.corpus import mixed_corpus

OUTPUTS = ("records.jsonl", "duplicates.jsonl", "rejected.jsonl")
# Small chunks: many tasks, so the shuffle has several partitions' worth of chunks and a killed worker
# leaves work in flight.
CONFIG = RunConfig(workers=2, chunk_size=10, report=False)

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[str]:
    """A LocalCluster of 2 single-threaded worker processes (with nannies, which restart a killed one)."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Syndicated copies of every kind (exact, edited, typographic, mojibake, cut short) with site chrome
    to learn, distinct briefs, real HTML pages, and bad inputs."""
    return mixed_corpus(tmp_path_factory.mktemp("cluster") / "raw", articles=40, pages=12)


def index_rows(out: Path) -> dict[str, list[tuple]]:
    """The index's tables, less the times of a scan (a cluster run and a local one scan at other times)."""
    with sqlite3.connect(out / INDEX_FILE) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(db.execute(f"SELECT * FROM {t}")) for t in tables if t != "folders"}  # noqa: S608


def index_files(out: Path) -> dict[str, bytes]:
    data = out / DATA_DIR
    return {str(p.relative_to(data)): p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()}


def assert_same_run(local: Path, cluster: Path) -> None:
    for name in OUTPUTS:
        assert (cluster / name).read_bytes() == (local / name).read_bytes(), name
    assert index_rows(cluster) == index_rows(local)
    assert index_files(cluster) == index_files(local)
    validate_output(cluster)


def test_a_cluster_run_equals_a_local_rebuild(corpus: Path, local_cluster: str, tmp_path: Path):
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    expected = clean_folder(corpus, local, CONFIG, rebuild=True)
    got = clean_folder(corpus, cluster, CONFIG, rebuild=True, dask=local_cluster)
    assert_same_run(local, cluster)
    # the corpus exercises what the cluster computes: learned lines, near and exact copies, rejections
    assert expected.near_duplicates > 10 and expected.exact_duplicates > 0 and expected.rejected >= 3
    assert expected.stats["boilerplate"]["learned_lines_per_source"]
    assert got.stats["dedup"] == expected.stats["dedup"]
    assert got.stats["boilerplate"] == expected.stats["boilerplate"]


def test_later_local_runs_continue_from_a_cluster_run(corpus: Path, local_cluster: str, tmp_path: Path):
    """The index a cluster run leaves is a local run's: an incremental run on one machine goes on."""
    raw = tmp_path / "raw"
    shutil.copytree(corpus, raw)
    later = raw / "later"
    later.mkdir()
    for path in sorted((raw / "pages").iterdir())[:3]:  # copies of pages seen, and a new text
        shutil.copy(path, later / f"copy-{path.name}")
    (later / "new.txt").write_text("A new article, seen by no earlier run. " * 20, encoding="utf-8")
    moved = tmp_path / "held-back"
    shutil.move(later, moved)
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    clean_folder(raw, local, CONFIG)
    clean_folder(raw, cluster, CONFIG, dask=local_cluster)
    shutil.move(moved, later)
    second_local = clean_folder(raw, local, CONFIG)
    second_after_cluster = clean_folder(raw, cluster, CONFIG)
    assert second_local.documents == second_after_cluster.documents == 4
    assert second_after_cluster.kept == 1  # the new text; the copies join the pages kept by the first run
    assert_same_run(local, cluster)


def test_a_worker_killed_mid_run_changes_nothing(corpus: Path, local_cluster: str, tmp_path: Path):
    """Dask gives the chunk of a worker that died to another (its nanny starts a new one); the spool
    files of a task run twice are rewritten whole, so the result is still the local one."""
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    clean_folder(corpus, local, CONFIG)
    client = distributed.Client(local_cluster)
    pids = list(client.run(os.getpid).values())
    killed: list[int] = []

    def progress(stage: str, done: int, total: int, documents: int) -> None:
        if stage == "clean" and done and not killed:  # the first chunk cleaned: the others are in flight
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    try:
        clean_folder(corpus, cluster, CONFIG, progress, dask=local_cluster)
        assert killed
        assert_same_run(local, cluster)
    finally:
        client.wait_for_workers(2, timeout=60)  # the nanny's new worker, for the tests after this one
        client.close()


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_cli_on_a_scheduler_and_a_worker_of_their_own(corpus: Path, tmp_path: Path):
    """`dask scheduler` and `dask worker` started as processes on 127.0.0.1, as README says, and
    `pipeline clean --dask tcp://...` pointed at them."""
    dask = str(Path(sys.executable).with_name("dask"))
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = _start(
        [
            dask,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            ":0",
            "--scheduler-file",
            str(scheduler_file),
        ],
        tmp_path / "scheduler.log",
    )
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        worker = _start(
            [dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
            tmp_path / "worker.log",
        )
        with distributed.Client(address) as client:
            client.wait_for_workers(2, timeout=60)
        local, cluster = tmp_path / "local", tmp_path / "cluster"
        assert main(["clean", str(corpus), "--out", str(local), "--chunk-size", "10", "--quiet"]) == 0
        status = main(
            ["clean", str(corpus), "--out", str(cluster), "--chunk-size", "10", "--quiet", "--dask", address]
        )
        assert status == 0
        assert_same_run(local, cluster)
    finally:
        if worker is not None:
            _stop(worker)
        _stop(scheduler)


def test_a_bad_address_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_text("Some text of an article that is long enough to be kept. " * 5)
    assert main(["clean", str(raw), "--out", str(tmp_path / "out"), "--dask", "nowhere"]) == 2
    assert "--dask takes a scheduler address" in capsys.readouterr().err
    assert main(["clean", str(raw), "--out", str(tmp_path / "out"), "--dask", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("pipeline: error: no Dask scheduler answers at tcp://127.0.0.1:9") and "\n" not in err
    )


def test_the_flow_on_a_dask_task_runner(prefect_harness: None, corpus: Path, tmp_path: Path):
    """The clean-folder flow with prefect-dask's DaskTaskRunner pointed at a running cluster (whose workers
    report to the test's Prefect server): the chunk tasks run on its workers, the counts and dedup's pairs
    on the cluster, and the output is the local run's."""
    from prefect.settings import get_current_settings
    from prefect_dask import DaskTaskRunner

    from flows.clean_folder import clean_folder as flow

    local, cluster = tmp_path / "local", tmp_path / "cluster"
    clean_folder(corpus, local, RunConfig(workers=2, chunk_size=10), rebuild=True)
    env = {"PREFECT_API_URL": get_current_settings().api.url}
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", env=env
    ) as dask_cluster:
        runner = DaskTaskRunner(address=dask_cluster.scheduler_address)
        state = flow.with_options(task_runner=runner)(
            str(corpus), str(cluster), CleanOptions(chunk_size=10), return_state=True
        )
        assert state.is_completed()
        with distributed.Client(dask_cluster) as client:  # the tasks ran on the cluster's workers
            ran = client.run(lambda dask_worker: dask_worker.state.transition_counter)
            assert all(n > 0 for n in ran.values()), ran
    assert_same_run(local, cluster)
    assert state.result().stats["dedup"]["candidate_pairs_checked"] > 0


def test_the_flow_command_with_dask_local(prefect_harness: None, corpus: Path, tmp_path: Path):
    from flows.clean_folder import main as flow_main

    local, cluster = tmp_path / "local", tmp_path / "cluster"
    assert main(["clean", str(corpus), "--out", str(local), "--chunk-size", "10", "--quiet"]) == 0
    assert flow_main([str(corpus), "--out", str(cluster), "--chunk-size", "10", "--dask", "local"]) == 0
    assert_same_run(local, cluster)
    assert flow_main([str(corpus), "--out", str(tmp_path / "x"), "--dask", "tcp://127.0.0.1:9"]) == 2


def test_ctrl_c_stops_a_local_cluster_run_with_one_line(corpus: Path, tmp_path: Path):
    """SIGINT to the run's process group, as a terminal's Ctrl-C sends it, while the workers load: exit
    130, the run's one line and nothing else (no worker's traceback), no process of the group left."""
    raw = tmp_path / "raw"
    shutil.copytree(corpus, raw)
    for copy in range(8):  # pages enough that the load pass is still running when the signal comes
        shutil.copytree(corpus / "pages", raw / f"pages-{copy}")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pipeline", "clean", str(raw), "--out", str(out), "--chunk-size", "2"]
    run = subprocess.Popen(
        [*command, "--workers", "2", "--dask", "local", "-q"],
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not any(out.glob(".spool-*/*")) and time.monotonic() < deadline:  # a worker wrote a chunk
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130
    assert err.decode().splitlines() == [
        f"pipeline: interrupted (SIGINT): nothing of this run was committed: {out} is as the last committed "
        "run left it"
    ]
    deadline = time.monotonic() + 10
    # the processes of the group still there (the workers end when their nannies see the parent gone)
    while (
        left := subprocess.run(["pgrep", "-g", str(run.pid), "-a"], capture_output=True, text=True).stdout
    ) and (time.monotonic() < deadline):
        time.sleep(0.2)
    assert not left
