"""How values read in every view of the report (page, terminal, dashboards): counts with thousands
separators, scraped fields clipped to a length a row can hold."""

from __future__ import annotations

from typing import Any


def number(value: int) -> str:
    """``12345`` as ``12,345``."""
    return f"{value:,}"


def clip(value: Any, limit: int = 400) -> Any:
    """A field as shown: a hostile 1 MB title must not make the page 1 MB per row (other values as they
    are)."""
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value
