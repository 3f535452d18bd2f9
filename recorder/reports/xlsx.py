"""XLSX workbooks that add up, written with openpyxl in write-only mode (rows go straight
to disk, so memory stays flat whatever the size).

- Every amount, price and value is a number cell, so =SUM() works. A spreadsheet number is
  a double and keeps 15 significant digits; each decimal column has an `_exact` column
  beside it, which holds the exact decimal as text wherever the number had to be rounded
  (more than 15 significant digits) and is blank elsewhere. Nothing is lost.
- Values (`..._value_usdt`) are shown to the cent, with thousands separators; amounts and
  prices as the spreadsheet shows numbers (the cell holds every digit it can).
- Times are date-time cells in the chosen zone, shown to the second; the header names the
  zone. (CSV and JSON Lines keep the microseconds.)
- The header row is frozen and has a filter.
- A sheet holds 1,048,576 rows: a longer table continues on "balances (2)", "balances (3)",
  and so on, each with its own header.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

from recorder import amounts
from recorder.errors import ConfigError
from recorder.reports.formats import REPORT_EXTRA_HINT

#: Rows in one sheet, the header included (Excel's limit; LibreOffice's too).
SHEET_ROWS = 1_048_576
#: Significant digits a double keeps for any decimal: up to this many survive the trip to
#: a spreadsheet number and back unchanged.
EXCEL_DIGITS = 15
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
VALUE_FORMAT = "#,##0.00"
DECIMAL_COLUMNS = frozenset(
    {
        "amount",
        "price_usdt",
        "value_usdt",
        "available",
        "on_orders",
        "old_amount",
        "new_amount",
        "delta",
        "opening_amount",
        "opening_price_usdt",
        "opening_value_usdt",
        "increases",
        "decreases",
        "net_change",
        "closing_amount",
        "closing_price_usdt",
        "closing_value_usdt",
    }
)
TIME_COLUMNS = frozenset({"taken_at", "period", "opening_taken_at", "closing_taken_at"})
_PLAIN, _TIME, _DECIMAL, _VALUE = range(4)
_WIDTHS = {_PLAIN: 12, _TIME: 20, _DECIMAL: 16, _VALUE: 16}


def exact_number(value: Decimal) -> tuple[float, str | None]:
    """A decimal as a spreadsheet number, and its exact text when the number is rounded."""
    # float() is correctly rounded, so a decimal of at most 15 significant digits comes
    # back unchanged from the double; a longer one keeps its exact text beside it.
    number = float(value)  # float-ok: a spreadsheet cell; the exact text is kept when rounded
    if len(value.as_tuple().digits) <= EXCEL_DIGITS:
        return number, None
    return number, amounts.to_text(value)


def _kind(column: str) -> int:
    if column in TIME_COLUMNS:
        return _TIME
    if column.endswith("value_usdt"):
        return _VALUE
    return _DECIMAL if column in DECIMAL_COLUMNS else _PLAIN


def _local(moment: datetime, zone: tzinfo) -> datetime:
    # Spreadsheets have no time zones: the zone's wall-clock time, named in the header.
    return moment.astimezone(zone).replace(tzinfo=None)


class _Table:
    """One table of the workbook, on as many sheets as it needs."""

    def __init__(self, workbook: Any, title: str, columns: Sequence[str], zone: tzinfo) -> None:
        self.workbook = workbook
        self.title = title
        self.zone = zone
        self.kinds = [_kind(column) for column in columns]
        self.header: list[str] = []
        self.widths: list[int] = []
        for column, kind in zip(columns, self.kinds, strict=True):
            self.header.append(f"{column} ({zone})" if kind == _TIME else column)
            self.widths.append(max(_WIDTHS[kind], len(self.header[-1]) + 3))
            if kind in (_DECIMAL, _VALUE):
                self.header.append(f"{column}_exact")
                self.widths.append(max(24, len(self.header[-1]) + 3))
        self.sheets = 0
        self.sheet: Any = None
        self.rows = SHEET_ROWS  # so that the first row opens the first sheet
        self.styled: dict[int, Any] = {}

    def next_sheet(self) -> None:
        """Start the next sheet of this table, with the header."""
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.utils import get_column_letter

        self.finish()
        self.sheets += 1
        title = self.title if self.sheets == 1 else f"{self.title} ({self.sheets})"
        sheet = self.workbook.create_sheet(title)
        # Write-only sheets take their view and column widths before the first row.
        sheet.freeze_panes = "A2"
        for index, width in enumerate(self.widths, 1):
            sheet.column_dimensions[get_column_letter(index)].width = width
        sheet.append(self.header)
        self.sheet, self.rows = sheet, 1
        # One formatted cell per column, reused row after row: each row is written out
        # before the next is made, and a new cell per value costs a tenth of the export.
        self.styled = {}
        for index, kind in enumerate(self.kinds):
            if kind in (_TIME, _VALUE):
                cell = WriteOnlyCell(sheet)
                cell.number_format = TIME_FORMAT if kind == _TIME else VALUE_FORMAT
                self.styled[index] = cell

    def finish(self) -> None:
        """Put the filter on the header of the sheet being written."""
        if self.sheet is not None:
            from openpyxl.utils import get_column_letter

            last = get_column_letter(len(self.header))
            self.sheet.auto_filter.ref = f"A1:{last}{self.rows}"

    def append(self, row: Sequence[Any]) -> None:
        """Add one row (values in the table's columns), starting a new sheet when full."""
        if self.rows >= SHEET_ROWS:
            self.next_sheet()
        cells: list[Any] = []
        for index, (kind, value) in enumerate(zip(self.kinds, row, strict=True)):
            if kind == _PLAIN or value is None:
                cells.append(value)
                if kind in (_DECIMAL, _VALUE):
                    cells.append(None)
            elif kind == _TIME:
                cell = self.styled[index]
                cell.value = _local(value, self.zone)
                cells.append(cell)
            else:
                number, exact = exact_number(value)
                if kind == _VALUE:
                    cell = self.styled[index]
                    cell.value = number
                    cells.append(cell)
                else:
                    cells.append(number)
                cells.append(exact)
        self.sheet.append(cells)
        self.rows += 1


def _save(workbook: Any, path: str) -> None:
    """Workbook.save, except that a failure (a full disk) leaves no half-written archive
    behind to try again, and fail again, when it is collected at exit."""
    from openpyxl.writer.excel import ExcelWriter

    archive = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
    workbook.properties.modified = datetime.now(UTC).replace(tzinfo=None)
    try:
        ExcelWriter(workbook, archive).save()
    except BaseException:
        handle, archive.fp = archive.fp, None  # closing would write the directory again
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
        raise


def write_xlsx(
    sheets: Sequence[tuple[str, Sequence[str], Iterable[Sequence[Any]]]],
    path: str,
    zone: tzinfo,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write each (title, columns, rows) as a table; returns the number of rows written."""
    try:
        from openpyxl import Workbook
    except ModuleNotFoundError:
        raise ConfigError(f"XLSX export needs openpyxl: {REPORT_EXTRA_HINT}.") from None
    workbook = Workbook(write_only=True)  # rows go straight to disk: constant memory
    count = 0
    try:
        for title, columns, rows in sheets:
            table = _Table(workbook, title, columns, zone)
            for row in rows:
                table.append(row)
                count += 1
                if progress is not None and count % 10000 == 0:
                    progress(10000)
            if table.sheet is None:
                table.next_sheet()  # an empty table still gets its sheet and header
            table.finish()
        _save(workbook, path)
    except BaseException:
        # Sheets left open by a failure would try to finish writing when collected.
        for sheet in workbook.worksheets:
            with contextlib.suppress(Exception):
                sheet.close()
        raise
    if progress is not None:
        progress(count % 10000)
    return count
