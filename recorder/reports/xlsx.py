"""XLSX workbooks, written with openpyxl in write-only mode (rows go straight to disk)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from recorder import amounts
from recorder.errors import ConfigError
from recorder.reports.formats import REPORT_EXTRA_HINT

#: Excel keeps 15 significant digits; a longer amount goes in as text so it is not rounded.
EXCEL_DIGITS = 15


def excel_value(value: Any, zone: tzinfo) -> Any:
    """A cell value for openpyxl: short decimals as numbers, long ones as exact text."""
    if isinstance(value, Decimal):
        digits = len(value.as_tuple().digits)
        if digits <= EXCEL_DIGITS:
            # Excel cells are doubles; a decimal of at most 15 significant digits survives
            # the trip to a double and back unchanged.
            return float(value)  # float-ok: checked above to be exact as a double
        return amounts.to_text(value)
    if isinstance(value, datetime):
        return value.astimezone(zone).replace(tzinfo=None)
    return value


def write_xlsx(
    sheets: Sequence[tuple[str, Sequence[str], Iterable[Sequence[Any]]]],
    path: str,
    zone: tzinfo,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write each (title, columns, rows) as a sheet; returns the number of rows written."""
    try:
        from openpyxl import Workbook
    except ModuleNotFoundError:
        raise ConfigError(f"XLSX export needs openpyxl: {REPORT_EXTRA_HINT}.") from None
    workbook = Workbook(write_only=True)  # rows go straight to disk: constant memory
    count = 0
    zone_name = str(zone)
    for title, columns, rows in sheets:
        sheet = workbook.create_sheet(title)
        sheet.append([f"{c} ({zone_name})" if c == "taken_at" else c for c in columns])
        for row in rows:
            sheet.append([excel_value(v, zone) for v in row])
            count += 1
            if progress is not None and count % 10000 == 0:
                progress(10000)
    workbook.save(path)
    if progress is not None:
        progress(count % 10000)
    return count
