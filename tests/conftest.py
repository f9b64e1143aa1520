"""Shared test set-up. Prefect: its home is a temporary folder, set before any test module imports Prefect
(Prefect reads its settings on first import), and one temporary server serves the whole session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

_PREFECT_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_PREFECT_HOME] = os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="prefect-home-")
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_PREFECT_HOME, None)
    if home:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect server and database for the session (started on first use, about 10 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield
