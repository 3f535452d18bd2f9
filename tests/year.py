"""A year of history (2025, and a little on either side) from benchmarks/make_history.py:
two accounts, eight currencies, a snapshot every three hours, trades, and an outage of
the recorder over the end of May."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from tests.conftest import open_db

ROOT = Path(__file__).resolve().parent.parent
END = datetime(2026, 1, 10, 0, 0, 7, tzinfo=UTC)
DAYS = 400  # from early December 2024
OUTAGE = (datetime(2025, 5, 29, 12, tzinfo=UTC), datetime(2025, 6, 3, 6, tzinfo=UTC))


def make_history() -> ModuleType:
    """benchmarks/make_history.py as a module."""
    spec = importlib.util.spec_from_file_location(
        "make_history", ROOT / "benchmarks" / "make_history.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(url: str, *, interval: float = 3 * 3600, currencies: int = 8) -> dict[str, int]:
    """Write the year into the (empty) database at `url`; returns row counts."""
    db = open_db(url)
    try:
        counts: dict[str, int] = make_history().generate(
            db,
            accounts=2,
            days=DAYS,
            currencies=currencies,
            interval=interval,
            trade_probability=0.01,
            end=END,
            outages=[OUTAGE],
            echo=False,
        )
    finally:
        db.close()
    return counts
