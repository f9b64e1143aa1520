"""One set of run options for every entry point, the input shapes (a folder, one file, standard input),
records to standard output, the empty input's exit status, and progress off a terminal."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from pipeline import contract
from pipeline.cli import build_parser
from pipeline.options import CleanOptions, flags
from pipeline.run import EXIT_EMPTY
from tests.corpus import DATA, SEED, mixed_corpus

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SAMPLE_EXPORT = ROOT / "raw" / "exports" / "articles.jsonl"


def run(
    *args: str | Path, stdin: bytes | None = None, module: str = "pipeline"
) -> subprocess.CompletedProcess:
    """A real command, its standard output and error piped (no terminal: no progress bar)."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )


def long_flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings if s.startswith("--")} - {"--help"}


def subcommand(name: str) -> argparse.ArgumentParser:
    [commands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices[name]


def defaults(parser: argparse.ArgumentParser) -> dict[str, object]:
    names = {f.name for f in fields(CleanOptions)}
    return {a.dest: a.default for a in parser._actions if a.dest in names}


OPTION_FLAGS = {flags(f)[0] for f in fields(CleanOptions)}
OPTION_NAMES = {f.name for f in fields(CleanOptions)}


# ---------------------------------------------------------------------------------------------------
# One declaration


def test_every_entry_point_takes_every_option_with_the_same_defaults() -> None:
    from flows import clean_folder, fetch_and_clean, serve

    clean = subcommand("clean")
    assert long_flags(clean) == OPTION_FLAGS | {"--out", "--version"} - {"--version"}
    assert long_flags(clean_folder.build_parser()) == long_flags(clean)
    assert OPTION_FLAGS <= long_flags(fetch_and_clean.build_parser())
    assert OPTION_FLAGS <= long_flags(serve.build_parser())  # for its deployments' options parameter
    assert vars(serve.build_parser().parse_args([])).keys().isdisjoint(OPTION_NAMES)  # only those given

    expected = {f.name: getattr(CleanOptions(), f.name) for f in fields(CleanOptions)}
    assert defaults(clean) == defaults(clean_folder.build_parser()) == expected
    # fetch-and-clean differs in one default, on purpose: the fetcher adds pages by rename
    assert defaults(fetch_and_clean.build_parser()) == {**expected, "scan": "folders"}


def test_the_flows_take_the_options_as_one_parameter_with_every_field() -> None:
    from flows.clean_folder import clean_folder
    from flows.fetch_and_clean import fetch_and_clean

    for flow in (clean_folder, fetch_and_clean):
        schema = flow.parameters.model_dump()
        assert "options" in schema["properties"], flow.name
        properties = schema["definitions"]["CleanOptions"]["properties"]
        assert set(properties) == {f.name for f in fields(CleanOptions)}, flow.name
    assert set(clean_folder.parameters.properties) == {"input_dir", "out", "options"}
    # a deployment's JSON parameters come back as the options object
    validated = clean_folder.validate_parameters({"options": {"threshold": 0.7, "languages": ["DE", "en"]}})
    assert validated["options"] == CleanOptions(threshold=0.7, languages=("de", "en"))


def test_a_partial_options_object_keeps_the_other_defaults() -> None:
    options = CleanOptions(languages="en, de")  # type: ignore[arg-type] - a string of codes is taken too
    assert options.languages == ("de", "en")
    config = CleanOptions(
        threshold=0.7, boilerplate=str(SEED), min_words=3, output_format="both"
    ).run_config()
    assert (config.minhash.threshold, config.cleanup.boilerplate_file, config.cleanup.min_words) == (
        0.7,
        SEED,
        3,
    )
    assert config.output_format == "both" and config.minhash.num_perm == CleanOptions().num_perm
    with pytest.raises(ValueError, match="unknown language"):
        CleanOptions(languages=("xx",))


def readme_usage(command: str) -> set[str]:
    """The long flags of README's usage line for ``command`` (a line in a code block and its indented
    continuation lines)."""
    lines = README.splitlines()
    [start] = [i for i, line in enumerate(lines) if line.startswith(command + " ")]
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith(" " * 10):
            break
        block.append(line)
    return set(re.findall(r"--[a-z][a-z-]*", " ".join(block)))


def test_readme_usage_lines_list_every_flag_of_each_command() -> None:
    from flows import clean_folder, fetch_and_clean, serve

    assert readme_usage("pipeline clean") == long_flags(subcommand("clean"))
    assert readme_usage("pipeline fetch") == long_flags(subcommand("fetch"))
    assert readme_usage("pipeline serve") | OPTION_FLAGS == long_flags(serve.build_parser())
    # the flows' command lines: their own flags, then "[every option of pipeline clean]"
    assert readme_usage("python -m flows.clean_folder") | OPTION_FLAGS == long_flags(
        clean_folder.build_parser()
    )
    assert readme_usage("python -m flows.fetch_and_clean") | OPTION_FLAGS == long_flags(
        fetch_and_clean.build_parser()
    )


# ---------------------------------------------------------------------------------------------------
# Input shapes


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines() if line]


def lines_of(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines() if line]


def test_one_file_as_input_is_cleaned_as_the_one_file_of_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / SEED.name).write_bytes(SEED.read_bytes())
    (folder / "other.txt").write_text("Another article. " * 40, encoding="utf-8")

    single = run("clean", folder / SEED.name, "--out", tmp_path / "single", "--no-report")
    assert single.returncode == 0, single.stderr
    [record] = records(tmp_path / "single" / contract.RECORDS)
    assert record["source"] == SEED.name  # as in a run over the folder

    whole = run("clean", folder, "--out", tmp_path / "whole", "--no-report")
    assert whole.returncode == 0, whole.stderr
    assert record in records(tmp_path / "whole" / contract.RECORDS)
    again = run("clean", folder / SEED.name, "--out", tmp_path / "single", "--no-report")
    assert b"0 new documents in (0 files; skipped 1 files seen before" in again.stdout


def test_json_lines_on_standard_input_and_records_on_standard_output(tmp_path: Path) -> None:
    """`cat export.jsonl | pipeline clean - --out -`: the kept records as JSON lines on standard output,
    the summary (with duplicates and rejections counted) on standard error."""
    piped = run("clean", "-", "--out", "-", stdin=SAMPLE_EXPORT.read_bytes())
    assert piped.returncode == 0, piped.stderr
    sent = lines_of(piped.stdout)

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "stdin.jsonl").write_bytes(SAMPLE_EXPORT.read_bytes())
    folder = run("clean", tmp_path / "raw", "--out", tmp_path / "out")
    assert folder.returncode == 0, folder.stderr
    assert sent == records(tmp_path / "out" / contract.RECORDS)  # the same records, the same sources
    assert sent and all(r["source"].startswith("stdin.jsonl#") for r in sent)
    [summary] = piped.stderr.decode().splitlines()
    assert "1 duplicates" in summary and "1 rejected (parse_error 1)" in summary
    assert summary.endswith("-> standard output (all runs: 2 kept, 1 duplicates, 1 rejected)")


def test_plain_text_on_standard_input_is_one_document(tmp_path: Path) -> None:
    text = SEED.read_bytes()
    piped = run("clean", "-", "--out", tmp_path / "out", stdin=b"\xef\xbb\xbf\n" + text)
    assert piped.returncode == 0, piped.stderr
    [record] = records(tmp_path / "out" / contract.RECORDS)
    assert record["source"] == "stdin.txt"
    assert json.loads((tmp_path / "out" / contract.STATS).read_text())["documents"] == 1
    # the same bytes again: seen before, by content
    again = run("clean", "-", "--out", tmp_path / "out", stdin=b"\xef\xbb\xbf\n" + text)
    assert b"skipped 1 files seen before (0 unchanged, 1 same content)" in again.stdout


def test_records_to_standard_output_need_json_lines(tmp_path: Path) -> None:
    result = run("clean", DATA / "seed", "--out", "-", "--format", "parquet")
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "pipeline: error: --out - sends JSON lines: leave --format at jsonl"
    ]
    assert result.stdout == b""


@pytest.mark.parametrize("shape", ["empty folder", "folder of hidden files", "empty standard input"])
def test_nothing_to_read_says_so_and_exits_66(tmp_path: Path, shape: str) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    if shape == "folder of hidden files":
        (folder / ".hidden.txt").write_text("not an input", encoding="utf-8")
    given = "-" if shape == "empty standard input" else folder
    result = run("clean", given, "--out", tmp_path / "out")
    assert result.returncode == EXIT_EMPTY == 66
    [line] = result.stderr.decode().splitlines()
    assert line.startswith("pipeline: nothing to read ")
    assert "on standard input: it was empty" in line if given == "-" else "no input file found" in line
    assert result.stdout == b""


def test_a_folder_with_nothing_new_is_not_empty(tmp_path: Path) -> None:
    for scan in ("full", "folders"):
        assert run("clean", DATA / "seed", "--out", tmp_path / scan, "--scan", scan).returncode == 0
        again = run("clean", DATA / "seed", "--out", tmp_path / scan, "--scan", scan)
        assert again.returncode == 0, (scan, again.stderr)


def test_a_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    result = run("clean", tmp_path / "missing", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert (
        result.stderr.decode().strip()
        == f"pipeline: error: input folder or file not found: {tmp_path / 'missing'}"
    )


# ---------------------------------------------------------------------------------------------------
# Progress


PROGRESS = re.compile(
    r"^pipeline: (load|clean): [\d,]+/[\d,]+ files \(\d+%\), [\d,]+ documents(, [\d,.]+ files/s)?, "
    r"[\w ]+ in(, [\w ]+ left)?$"
)


def test_a_piped_run_prints_progress_lines_at_the_interval(tmp_path: Path) -> None:
    corpus = mixed_corpus(tmp_path / "raw", articles=40, pages=12)
    result = run("clean", corpus, "--out", tmp_path / "out", "--progress-every", "0.2", "--workers", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    assert len(lines) >= 3, lines
    assert all(PROGRESS.match(line) for line in lines), lines
    assert {line.split(":")[1].strip() for line in lines} >= {"load"}
    [summary] = result.stdout.decode().splitlines()
    files = json.loads((tmp_path / "out" / contract.STATS).read_text())["files"]
    assert re.match(rf"\d+ new documents in \({files} files\)", summary), summary
    assert any(
        line.startswith(f"pipeline: load: {files}/{files} files") or "clean:" in line for line in lines
    )


def test_quiet_prints_nothing_and_a_short_run_prints_no_progress(tmp_path: Path) -> None:
    quiet = run("clean", DATA / "seed", "--out", tmp_path / "quiet", "--quiet", "--progress-every", "0.01")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, b"", b"")
    short = run("clean", DATA / "seed", "--out", tmp_path / "short")  # far shorter than 10 s
    assert short.stderr == b"" and len(short.stdout.splitlines()) == 1


def test_the_flow_reports_progress_through_its_run_logger(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    from flows.clean_folder import clean_folder

    corpus = mixed_corpus(tmp_path / "raw", articles=20, pages=8)
    state = clean_folder(
        str(corpus), str(tmp_path / "out"), CleanOptions(chunk_size=2, progress_every=0.2), return_state=True
    )
    assert state.is_completed()
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    messages = [log.message for log in logs]
    files = state.result().files
    progress = [m for m in messages if re.match(rf"(load|clean): [\d,]+/{files} files", m)]
    assert progress, messages
    assert any(re.match(rf"\d+ new documents in \({files} files\)", m) for m in messages), messages

    quiet = clean_folder(
        str(corpus), str(tmp_path / "quiet"), CleanOptions(quiet=True, progress_every=0.05), return_state=True
    )
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[quiet.state_details.flow_run_id]))
        )
    assert not [log for log in logs if re.match(r"(load|clean): ", log.message)]


def test_a_piped_fetch_prints_progress_lines(httpserver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`pipeline fetch` too: a line every --progress-every seconds off a terminal, counted in URLs."""
    httpserver.expect_request("/robots.txt").respond_with_data("not found", status=404)
    page = (
        "<html><head><title>T</title></head><body><p>"
        + "A sentence of the page. " * 30
        + "</p></body></html>"
    )
    for n in range(6):
        httpserver.expect_request(f"/p{n}").respond_with_data(page, content_type="text/html")
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(httpserver.url_for(f"/p{n}") for n in range(6)) + "\n", encoding="utf-8")
    args = ["fetch", "--urls", urls, "--raw", tmp_path / "raw", "--allow-private", "--delay", "0.2"]
    result = run(*args, "--progress-every", "0.1", "--concurrency", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    assert lines and all(
        re.match(r"pipeline: fetch: [1-6]/6 URLs \(\d+%\), [\d.]+ URLs/s, ", s) for s in lines
    ), lines
    assert result.stdout.decode().startswith("6 URLs: 6 fetched")
    quiet = run(*args, "--refetch", "--quiet", "--progress-every", "0.1")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, b"", b"")
