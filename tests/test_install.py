"""The first install is quiet: the project's own build prints no warning box (README: two commands)."""

from __future__ import annotations

import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_an_editable_install_prints_no_warning(tmp_path: Path) -> None:
    """`pip install -e .` as the Makefile runs it, into a new virtual environment (the dependencies left
    out: they are not the project's build). setuptools printed an "Editable installation" warning box
    here; hatchling prints nothing. pip's own notes about this machine's package indexes (a configured
    index that does not exist) are not the project's and are left out of the check."""
    venv.create(tmp_path / "venv", with_pip=True)
    pip = tmp_path / "venv" / "bin" / "pip"
    result = subprocess.run(
        [str(pip), "install", "--quiet", "--no-deps", "-e", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    ours = [line for line in result.stderr.splitlines() if "is ignored: it is neither a file nor" not in line]
    assert ours == [], result.stderr
    assert result.stdout == ""
    installed = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-c", "import pipeline, flows; print(pipeline.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert installed.returncode == 0, installed.stderr
    assert Path(installed.stdout.strip()) == ROOT / "pipeline" / "__init__.py"
    assert sys.prefix != str(tmp_path / "venv")


def test_the_library_never_imports_flows() -> None:
    """pipeline/ is the library: `pipeline serve` reaches flows/ through an entry point, not an import."""
    imports = re.compile(r"^\s*(from|import)\s+flows\b|import_module\(\s*['\"]flows", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "pipeline").rglob("*.py")
        if imports.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_pipeline_serve_is_found_by_its_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "serve", "--cron", "not a cron"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("pipeline serve: error: "), result.stderr
