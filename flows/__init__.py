"""Prefect flows over the :mod:`pipeline` library: each flow only composes library calls into tasks.

Prefect reads its settings when it is first imported, so the project's opt-out of telemetry is set here,
before any flow module imports Prefect (as the Makefile does for ``make``). ``setdefault``: a value already
in the environment wins.
"""

import os

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
