"""Spreadsheets that add up: number cells everywhere, the exact decimal beside any number
a spreadsheet cannot hold, frozen and filtered headers, times to the second in the zone
asked for, more rows than a sheet holds on further sheets; and a workbook from a year of
data opened in LibreOffice, whose sums equal the database's exact sums to the cent."""

from __future__ import annotations

import csv
import decimal
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from recorder.cli import cli
from recorder.polling.pricing import valuate
from recorder.reports import xlsx
from recorder.store.database import Database
from tests import gapped, year
from tests.conftest import fresh_database, open_db
from tests.helpers import add_snapshot, query

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
# 123456789.12345678 SHIB at 0.0000123456789 USDT: 17 and 12 significant digits, worth
# 1524.1578751714677...: more digits than any spreadsheet number holds.
LONG_AMOUNT = Decimal("123456789.12345678")
LONG_PRICE = Decimal("0.0000123456789")
TAKEN_AT = datetime(2026, 3, 31, 22, 30, 7, 123456, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def invoke(url: str, *args: str) -> Result:
    result = CliRunner().invoke(
        cli, list(args), env={"RECORDER_DATABASE_URL": url}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result


def sheets(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True)
    found = {name: list(workbook[name].iter_rows(values_only=True)) for name in workbook.sheetnames}
    workbook.close()
    return found


@pytest.fixture
def long_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("sqlite", tmp_path) as url:
        db = open_db(url)
        balances = {"SHIB": LONG_AMOUNT, "USDT": Decimal("10")}
        pairs = {"SHIB_USDT": LONG_PRICE}
        add_snapshot(db, "main", TAKEN_AT, balances, valuation=valuate(balances, pairs))
        db.close()
        yield url


def test_a_number_keeps_its_exact_text_beside_it_only_when_rounded() -> None:
    assert xlsx.exact_number(Decimal("257.51830114")) == (257.51830114, None)
    assert xlsx.exact_number(Decimal("123456789012345")) == (123456789012345.0, None)
    number, exact = xlsx.exact_number(Decimal("1234567890.1234567"))
    assert number == 1234567890.1234567 and exact == "1234567890.1234567"
    assert xlsx.exact_number(Decimal("0.000000000000000001")) == (1e-18, None)


def test_long_values_are_numbers_with_their_exact_decimal_beside(
    long_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "h.xlsx"
    invoke(long_url, "export", "--format", "xlsx", "-o", str(path))
    header, *rows = sheets(path)["balances"]
    shib = dict(zip(header, rows[0], strict=False))
    with decimal.localcontext(prec=100):
        value = LONG_AMOUNT * LONG_PRICE
    assert shib["currency"] == "SHIB"
    assert isinstance(shib["amount"], float) and isinstance(shib["value_usdt"], float)
    assert shib["amount_exact"] == "123456789.12345678"
    assert Decimal(shib["value_usdt_exact"]) == value
    assert shib["price_usdt_exact"] is None  # 12 digits: the number is exact
    assert abs(Decimal(repr(shib["value_usdt"])) - value) < Decimal("1e-9")
    # The statement sheet keeps the exact totals the same way.
    statement_header, *lines = sheets(path)["statement"]
    total = dict(zip(statement_header, lines[-1], strict=False))
    assert Decimal(total["closing_value_usdt_exact"]) == value + 10


def test_headers_are_frozen_and_filtered_and_times_have_seconds_in_the_zone(
    long_url: str, tmp_path: Path
) -> None:
    from openpyxl import load_workbook

    path = tmp_path / "h.xlsx"
    invoke(long_url, "export", "--format", "xlsx", "--tz", "Asia/Tokyo", "-o", str(path))
    workbook = load_workbook(path)  # not read-only: views, filters and formats
    for sheet in workbook.worksheets:
        assert sheet.freeze_panes == "A2", sheet.title
        assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, sheet.max_column).column_letter}" + str(
            sheet.max_row
        )
    balances = workbook["balances"]
    assert balances["B1"].value == "taken_at (Asia/Tokyo)"
    taken_at = balances["B2"]
    assert taken_at.number_format == "yyyy-mm-dd hh:mm:ss"
    tokyo = TAKEN_AT.astimezone(ZoneInfo("Asia/Tokyo")).replace(tzinfo=None)
    assert abs((taken_at.value - tokyo).total_seconds()) < 0.001  # 2026-04-01 07:30:07
    assert balances["I1"].value == "value_usdt" and balances["I2"].number_format == "#,##0.00"
    workbook.close()


def test_more_rows_than_a_sheet_holds_go_on_to_further_sheets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xlsx, "SHEET_ROWS", 4)  # a header and three rows per sheet
    with fresh_database("sqlite", tmp_path) as url:
        gapped.record(url)
        path = tmp_path / "h.xlsx"
        invoke(url, "export", "--format", "xlsx", "-o", str(path))
        db = Database(url)
        stored = query(db, "SELECT count(*) FROM balances")[0][0]
        db.close()
    found = sheets(path)
    assert list(found) == [
        "statement",
        "statement (2)",
        "statement (3)",
        "balances",
        "balances (2)",
        "balances (3)",
        "changes",
        "changes (2)",
        "changes (3)",
    ]
    balances = [found[name] for name in found if name.startswith("balances")]
    assert all(rows[0] == balances[0][0] and 1 < len(rows) <= 4 for rows in balances)
    assert sum(len(rows) - 1 for rows in balances) == stored == 9


def test_the_real_sheet_limit_is_excels() -> None:
    assert xlsx.SHEET_ROWS == 1_048_576


# -- LibreOffice ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def soffice() -> str:
    if SOFFICE is None:
        if os.environ.get("RECORDER_TEST_REQUIRE_LIBREOFFICE"):
            pytest.fail("LibreOffice is required here (RECORDER_TEST_REQUIRE_LIBREOFFICE is set).")
        pytest.skip("LibreOffice is not installed (apt-get install libreoffice-calc)")
    return SOFFICE


def with_formulas(path: Path, formulas: list[str]) -> Path:
    """A copy of the workbook with a sheet "check" holding one formula per row (column A):
    what a user would type into the spreadsheet, computed by the spreadsheet itself."""
    target = path.with_name("checked.xlsx")
    cells = "".join(
        f'<row r="{i}"><c r="A{i}"><f>{escape(formula)}</f></c></row>'
        for i, formula in enumerate(formulas, 1)
    )
    sheet = (
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData>{cells}</sheetData></worksheet>"
    )
    relation = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
    content = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as out:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/workbook.xml":
                data = data.replace(
                    b"</sheets>", b'<sheet name="check" sheetId="99" r:id="rIdCheck" /></sheets>'
                )
            elif item.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(
                    b"</Relationships>",
                    f'<Relationship Type="{relation}" Target="/xl/worksheets/check.xml" '
                    'Id="rIdCheck" /></Relationships>'.encode(),
                )
            elif item.filename == "[Content_Types].xml":
                data = data.replace(
                    b"</Types>",
                    f'<Override PartName="/xl/worksheets/check.xml" ContentType="{content}" />'
                    "</Types>".encode(),
                )
            out.writestr(item, data)
        out.writestr("xl/worksheets/check.xml", sheet)
    return target


def libreoffice_csv(soffice: str, path: Path, work: Path) -> dict[str, list[list[str]]]:
    """Every sheet of the workbook as LibreOffice reads it, through its CSV export (full
    precision, not as shown), by sheet name."""
    out = work / "csv"
    # Comma, double quote, UTF-8, from row 1, ..., every sheet to a file of its own (-1).
    options = "44,34,76,1,,0,false,true,false,false,false,-1"
    subprocess.run(
        [
            soffice,
            f"-env:UserInstallation={(work / 'profile').as_uri()}",
            "--headless",
            "--convert-to",
            f"csv:Text - txt - csv (StarCalc):{options}",
            "--outdir",
            str(out),
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    found = {}
    for file in out.glob(f"{path.stem}-*.csv"):
        with file.open(encoding="utf-8", newline="") as handle:
            found[file.stem.removeprefix(f"{path.stem}-")] = list(csv.reader(handle))
    return found


def to_cent(value: Decimal | str) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


@pytest.mark.slow
def test_a_year_exported_to_xlsx_adds_up_in_libreoffice_to_the_cent(
    soffice: str, tmp_path: Path
) -> None:
    from openpyxl.utils import get_column_letter

    with fresh_database("sqlite", tmp_path) as url:
        year.record(url)
        path = tmp_path / "2025.xlsx"
        arguments = ["--since", "2025-01-01", "--until", "2025-12-31", "--format", "xlsx"]
        invoke(url, "export", *arguments, "-o", str(path))
        db = Database(url)
        stored = query(
            db,
            "SELECT s.id, s.total_value_usdt, b.value_usdt FROM snapshots s "
            "JOIN balances b ON b.snapshot_id = s.id "
            "WHERE s.taken_at >= '2025-01-01' AND s.taken_at < '2026-01-01'",
        )
        db.close()
        statement = invoke(url, "statement", "--year", "2025", "--format", "csv").stdout
    totals = {int(i): Decimal(t) for i, t, _ in stored}
    with decimal.localcontext(prec=100):
        exact_sum = sum((Decimal(v) for *_, v in stored), Decimal(0))
    grand = list(csv.DictReader(statement.splitlines()))[-1]  # all accounts
    assert grand["account"] == grand["currency"] == ""

    workbook_header = list(_header(path, "balances"))
    value = get_column_letter(workbook_header.index("value_usdt") + 1)
    snapshot = get_column_letter(workbook_header.index("snapshot_id") + 1)
    statement_header = list(_header(path, "statement"))
    closing = get_column_letter(statement_header.index("closing_value_usdt") + 1)
    currency = get_column_letter(statement_header.index("currency") + 1)
    some = sorted(totals)[:: max(1, len(totals) // 5)][:5]
    formulas = [f"SUM(balances!{value}:{value})"]
    formulas += [
        f"SUMIF(balances!{snapshot}:{snapshot},{i},balances!{value}:{value})" for i in some
    ]
    # The statement's lines (a currency) of both accounts, added by the spreadsheet.
    formulas.append(
        f'SUMPRODUCT((statement!{currency}2:{currency}100<>"")*statement!{closing}2:{closing}100)'
    )
    checked = with_formulas(path, formulas)

    found = libreoffice_csv(soffice, checked, tmp_path)
    assert set(found) == {"statement", "balances", "changes", "check"}
    check = [Decimal(row[0]) for row in found["check"]]
    assert to_cent(check[0]) == to_cent(exact_sum)
    assert [to_cent(c) for c in check[1:6]] == [to_cent(totals[i]) for i in some]
    assert to_cent(check[6]) == to_cent(grand["closing_value_usdt"])

    # Every snapshot's rows, as LibreOffice reads them, add up to its stored total.
    head, *rows = found["balances"]
    per_snapshot: dict[int, Decimal] = {}
    with decimal.localcontext(prec=100):
        for row in rows:
            record = dict(zip(head, row, strict=True))
            snapshot_id = int(record["snapshot_id"])
            # The number cell, as the spreadsheet holds it (15 significant digits at most).
            assert re.fullmatch(r"-?[0-9.]+(E-?[0-9]+)?", record["value_usdt"])
            worth = Decimal(record["value_usdt"])
            per_snapshot[snapshot_id] = per_snapshot.get(snapshot_id, Decimal(0)) + worth
    assert per_snapshot.keys() == totals.keys()
    assert {i: to_cent(v) for i, v in per_snapshot.items()} == {
        i: to_cent(v) for i, v in totals.items()
    }


def _header(path: Path, sheet: str) -> tuple[Any, ...]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True)
    first = next(workbook[sheet].iter_rows(max_row=1, values_only=True))
    workbook.close()
    return tuple(first)
