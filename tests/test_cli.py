"""Tests for pipeline/cli.py, through a real subprocess (``python -m pipeline``) and in-process (``main``)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import contract
from pipeline.cli import main
from tests.corpus import DATA, OUTPUT_NAMES, SEED

REPO = Path(__file__).resolve().parents[1]
SEED_ARTICLE = SEED


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


CliRunner = Callable[..., CliResult]


def run_subprocess(*args: str | Path) -> CliResult:
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def in_process_runner(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse: --help, --version, usage errors
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(params=["subprocess", "in_process"])
def cli(request: pytest.FixtureRequest) -> CliRunner:
    """Run ``pipeline ARGS`` and return its exit status and output, in a subprocess or in this process."""
    if request.param == "subprocess":
        return run_subprocess
    return in_process_runner(request.getfixturevalue("capsys"))


@pytest.fixture
def in_process(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """The in-process runner alone, for the many cheap cases."""
    return in_process_runner(capsys)


def assert_one_line_error(result: CliResult) -> str:
    assert result.code == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pipeline: error:"), lines[0]
    assert result.stdout == ""
    return lines[0]


# ---------------------------------------------------------------------------------------------------
# help and usage errors


def test_top_level_help(cli: CliRunner) -> None:
    result = cli("--help")

    assert result.code == 0
    assert "clean" in result.stdout and result.stdout.startswith("usage: pipeline")


def test_clean_help(in_process: CliRunner) -> None:
    result = in_process("clean", "--help")

    assert result.code == 0
    for option in (
        "--out",
        "--threshold",
        "--rewrite-threshold",
        "--workers",
        "--chunk-size",
        "--boilerplate",
    ):
        assert option in result.stdout


def test_missing_input_folder_is_a_one_line_error(cli: CliRunner, tmp_path: Path) -> None:
    result = cli("clean", tmp_path / "no-such-folder", "--out", tmp_path / "out")

    line = assert_one_line_error(result)
    assert "no-such-folder" in line
    assert not (tmp_path / "out").exists()


def test_invalid_threshold_is_a_one_line_error(in_process: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()

    result = in_process("clean", tmp_path / "in", "--out", tmp_path / "out", "--threshold", "1.5")

    assert "threshold" in assert_one_line_error(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "option",
    [
        pytest.param(["--threshold", "0"], id="threshold-zero"),
        pytest.param(["--containment", "1.01"], id="containment"),
        pytest.param(["--rewrite-threshold", "0"], id="rewrite-threshold"),
        pytest.param(["--shingle-size", "0"], id="shingle-size"),
        pytest.param(["--num-perm", "8"], id="num-perm"),
        pytest.param(["--workers", "-1"], id="workers"),
        pytest.param(["--chunk-size", "0"], id="chunk-size"),
        pytest.param(["--boilerplate", "no-such-rules.txt"], id="boilerplate-file"),
        pytest.param(["--languages", "de,german"], id="languages"),
        pytest.param(["--min-words", "-1"], id="min-words"),
    ],
)
def test_invalid_options_are_one_line_errors(
    in_process: CliRunner, tmp_path: Path, option: list[str]
) -> None:
    (tmp_path / "in").mkdir()

    assert_one_line_error(in_process("clean", tmp_path / "in", "--out", tmp_path / "out", *option))


# ---------------------------------------------------------------------------------------------------
# a real run


@pytest.fixture
def seed_folder(tmp_path: Path) -> Path:
    """The seed article, an exact copy of it, and an empty file."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copyfile(SEED_ARTICLE, folder / "atacms.txt")
    shutil.copyfile(SEED_ARTICLE, folder / "atacms-copy.txt")
    (folder / "empty.txt").write_bytes(b"")
    return folder


def test_clean_small_folder_through_subprocess(seed_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"

    result = run_subprocess("clean", seed_folder, "--out", out)

    assert result.code == 0, result.stderr
    assert result.stderr == ""
    summary = result.stdout.splitlines()
    assert len(summary) == 1
    for count in ("3 new documents", "3 files", "1 kept", "1 exact", "0 near", "1 rejected", "empty 1"):
        assert count in summary[0], (count, summary[0])
    assert sorted(p.name for p in out.iterdir()) == OUTPUT_NAMES
    assert contract.validate_output(out) == {"records": 1, "duplicates": 1, "rejected": 1}
    records = contract.read_jsonl(out / contract.RECORDS)
    duplicates = contract.read_jsonl(out / contract.DUPLICATES)
    rejected = contract.read_jsonl(out / contract.REJECTED)
    assert [r["source"] for r in records] == ["atacms-copy.txt"]  # of equal copies, the first in sorted order
    assert [(d["source"], d["duplicate_of"], d["kind"]) for d in duplicates] == [
        ("atacms.txt", records[0]["id"], "exact")
    ]
    assert [(r["source"], r["reason"]) for r in rejected] == [("empty.txt", "empty")]


def test_clean_quiet_in_process_prints_nothing(
    in_process: CliRunner, seed_folder: Path, tmp_path: Path
) -> None:
    result = in_process("clean", seed_folder, "--out", tmp_path / "out", "--quiet", "--workers", "1")

    assert (result.code, result.stdout, result.stderr) == (0, "", "")
    assert contract.validate_output(tmp_path / "out")["records"] == 1


def test_every_record_has_its_language_and_languages_keeps_only_those(
    in_process: CliRunner, seed_folder: Path, tmp_path: Path
) -> None:
    for name in ("german", "french"):
        shutil.copyfile(DATA / "cleanup" / f"{name}.in.txt", seed_folder / f"{name}.txt")
    everything, only = tmp_path / "all", tmp_path / "de-en"

    assert in_process("clean", seed_folder, "--out", everything, "--workers", "1").code == 0
    result = in_process("clean", seed_folder, "--out", only, "--languages", "de,EN", "--workers", "1")

    assert result.code == 0, result.stderr
    assert "language 1" in result.stdout
    languages = {
        r["source"]: r["language"]
        for name in (contract.RECORDS, contract.DUPLICATES)
        for r in contract.read_jsonl(everything / name)
    }
    assert languages == {"atacms.txt": "en", "atacms-copy.txt": "en", "german.txt": "de", "french.txt": "fr"}
    assert contract.validate_output(only) == {"records": 2, "duplicates": 1, "rejected": 2}
    [rejected] = [r for r in contract.read_jsonl(only / contract.REJECTED) if r["reason"] == "language"]
    assert rejected == {
        "source": "french.txt",
        "reason": "language",
        "detail": "detected fr (score 1.00), not one of --languages de,en",
        "stage": "language",
    }
    stats = json.loads((only / contract.STATS).read_text(encoding="utf-8"))
    assert stats["config"]["language"] == {"keep": ["de", "en"], "prefix_chars": 2000}


def test_a_run_with_other_languages_asks_for_rebuild(
    in_process: CliRunner, seed_folder: Path, tmp_path: Path
) -> None:
    """Rejections by language are final: a changed --languages would leave the earlier ones standing."""
    out = tmp_path / "out"
    assert in_process("clean", seed_folder, "--out", out, "--workers", "1").code == 0

    line = assert_one_line_error(in_process("clean", seed_folder, "--out", out, "--languages", "de"))
    assert "languages=all/2000 -> languages=de/2000" in line and "--rebuild" in line
    result = in_process("clean", seed_folder, "--out", out, "--languages", "de", "--rebuild")
    assert result.code == 0 and "1 rejected" not in result.stdout  # the seed (en) and its copy: rejected
    assert contract.validate_output(out) == {"records": 0, "duplicates": 0, "rejected": 3}


def test_a_menu_left_alone_is_too_short_unless_min_words_is_zero(
    in_process: CliRunner, seed_folder: Path, tmp_path: Path
) -> None:
    (seed_folder / "menu.txt").write_text("Politics | Business | Culture | Travel\n", encoding="utf-8")
    (seed_folder / "records.jsonl").write_text('{"title": "A brief", "body": "Short."}\n', encoding="utf-8")

    result = in_process("clean", seed_folder, "--out", tmp_path / "out", "--workers", "1")

    assert result.code == 0, result.stderr
    rejected = {r["source"]: r for r in contract.read_jsonl(tmp_path / "out" / contract.REJECTED)}
    assert {s: (r["reason"], r["stage"]) for s, r in rejected.items()} == {
        "empty.txt": ("empty", "load"),
        "menu.txt": ("too_short", "cleanup"),
        "records.jsonl#1": ("too_short", "cleanup"),
    }
    assert rejected["menu.txt"]["detail"] == "4 words and no sentence: not an article (--min-words 10)"
    everything = tmp_path / "everything"
    assert in_process("clean", seed_folder, "--out", everything, "--min-words", "0").code == 0
    assert contract.validate_output(everything) == {"records": 3, "duplicates": 1, "rejected": 1}
    line = assert_one_line_error(in_process("clean", seed_folder, "--out", everything))
    assert "minwords0 -> " in line and "minwords10" in line


# ---------------------------------------------------------------------------------------------------
# the output does not depend on the number of workers or the chunking

WORDS = (
    "river council budget harbour vote school winter market railway festival museum doctor island "
    "mayor bridge theatre energy garden farmer court strike airport library rain police forest "
    "factory coast election museum tax engineer village storm hospital ferry union bakery orchestra "
    "signal archive canal tunnel meadow pilot satellite vaccine glacier quarry lantern"
).split()


def generated_article(rng: random.Random, number: int) -> str:
    def sentence() -> str:
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 14))]
        return " ".join(words).capitalize() + "."

    title = f"Report {number}: " + " ".join(rng.choice(WORDS) for _ in range(5)).capitalize()
    paragraphs = [" ".join(sentence() for _ in range(5)) for _ in range(3)]
    return title + "\n\n" + "\n\n".join(paragraphs) + "\n"


@pytest.fixture
def generated_folder(tmp_path: Path) -> Path:
    """30 distinct articles in two sub-folders, plus an exact and a near copy landing in other chunks."""
    rng = random.Random(20241124)
    folder = tmp_path / "generated"
    texts = []
    for number in range(30):
        text = generated_article(rng, number)
        texts.append(text)
        path = folder / ("north" if number % 2 else "south") / f"article-{number:02d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (folder / "zz-exact-copy-of-03.txt").write_text(texts[3], encoding="utf-8")
    words = texts[7].split(" ")
    words[20] = "NEARCOPY"
    (folder / "aa-near-copy-of-07.txt").write_text(" ".join(words), encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    return folder


def test_output_does_not_depend_on_workers_or_chunks(generated_folder: Path, tmp_path: Path) -> None:
    outputs = {}
    for workers, chunk_size in ((1, 5), (2, 5), (2, 7), (1, 1000)):
        out = tmp_path / f"out-w{workers}-c{chunk_size}"
        code = main(
            [
                "clean",
                str(generated_folder),
                "--out",
                str(out),
                "--quiet",
                "--workers",
                str(workers),
                "--chunk-size",
                str(chunk_size),
            ]
        )
        assert code == 0
        outputs[workers, chunk_size] = {
            name: (out / name).read_bytes()
            for name in (contract.RECORDS, contract.DUPLICATES, contract.REJECTED)
        }

    baseline = outputs[1, 5]
    records = contract.read_jsonl(tmp_path / "out-w1-c5" / contract.RECORDS)
    duplicates = contract.read_jsonl(tmp_path / "out-w1-c5" / contract.DUPLICATES)
    assert len(records) == 30
    ids = {r["source"]: r["id"] for r in records + duplicates}
    clusters = {
        ("north/article-03.txt", "zz-exact-copy-of-03.txt"): "exact",
        ("north/article-07.txt", "aa-near-copy-of-07.txt"): "near",
    }
    assert len(duplicates) == len(clusters)
    for pair, kind in clusters.items():
        [dup] = [d for d in duplicates if d["source"] in pair]
        [kept] = [s for s in pair if s != dup["source"]]
        assert (dup["kind"], dup["duplicate_of"]) == (kind, ids[kept])
    for key, files in outputs.items():
        for name in files:
            assert files[name] == baseline[name], f"{name} differs with workers/chunk-size {key}"


def test_fetch_and_serve_subcommands_report_usage_errors_on_one_line(tmp_path: Path) -> None:
    for argv in (["fetch", "--urls", str(tmp_path / "missing.txt")], ["serve", "--cron", "not a cron"]):
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", *argv], capture_output=True, text=True, cwd=REPO, timeout=120
        )
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_fetch_subcommand_fetches_into_raw(tmp_path: Path, httpserver) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/a.html").respond_with_data(
        "<html><head><title>A</title></head><body><article><p>"
        + "Words of the story. " * 30
        + "</p></article></body></html>",
        content_type="text/html; charset=utf-8",
    )
    urls = tmp_path / "urls.txt"
    urls.write_text(httpserver.url_for("/a.html") + "\n", encoding="utf-8")
    argv = ["fetch", "--urls", str(urls), "--raw", str(tmp_path / "raw"), "--delay", "0", "--allow-private"]
    assert main(argv) == 0  # the test server is on this machine: the address guard needs --allow-private
    pages = list((tmp_path / "raw").rglob("*.html"))
    assert len(pages) == 1 and pages[0].with_name(pages[0].name + ".meta.json").exists()
