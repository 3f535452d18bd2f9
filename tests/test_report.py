"""History commands and exports on every backend, on a history recorded through the simulator."""

from __future__ import annotations

import csv
import io
import json
import sys
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from recorder.cli import cli
from tests.conftest import BACKENDS, fresh_database
from tests.history import MAIN, SAVINGS, T1, T2, T3, price, record, value


@pytest.fixture(scope="module", params=BACKENDS)
def history_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One recorded history per backend, shared by this module's tests (they only read)."""
    with fresh_database(request.param, tmp_path_factory.mktemp("history")) as url:
        record(url)
        yield url


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def invoke(url: str, *args: str) -> Result:
    result = CliRunner().invoke(
        cli, list(args), env={"RECORDER_DATABASE_URL": url}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def expected_holdings(moment_holdings: dict[str, str], at: object) -> dict[str, tuple]:
    return {
        c: (Decimal(a), price(c, at), value(c, a, at))  # type: ignore[arg-type]
        for c, a in moment_holdings.items()
    }


def parsed(rows: list[dict[str, str]]) -> dict[str, tuple]:
    def number(text: str) -> Decimal | None:
        return Decimal(text) if text else None

    return {
        r["currency"]: (Decimal(r["amount"]), number(r["price_usdt"]), number(r["value_usdt"]))
        for r in rows
    }


def test_at_a_date_gives_the_holdings_at_the_end_of_that_day(history_url: str) -> None:
    rows = csv_rows(
        invoke(history_url, "at", "2026-03-31", "--account", "main", "--format", "csv").stdout
    )
    assert parsed(rows) == expected_holdings(MAIN[1][1], T2)
    assert {r["taken_at"] for r in rows} == {T2.isoformat()}


def test_at_a_date_in_another_zone_ends_that_zones_day(history_url: str) -> None:
    # The end of 31 March in Berlin is 21:59:59 UTC, before T2: the answer is T1's holdings.
    rows = csv_rows(
        invoke(
            history_url,
            "at",
            "2026-03-31",
            "--tz",
            "Europe/Berlin",
            "--account",
            "main",
            "--format",
            "csv",
        ).stdout
    )
    assert parsed(rows) == expected_holdings(MAIN[0][1], T1)
    assert {r["taken_at"] for r in rows} == {"2026-03-30T14:00:00+02:00"}


def test_at_reports_exact_totals_and_names_unpriced_currencies(history_url: str) -> None:
    document = json.loads(invoke(history_url, "at", "2026-04-02", "--format", "json").stdout)
    by_account = {a["account"]: a for a in document["accounts"]}
    main = by_account["main"]
    expected_total = sum(
        (v for c, a in MAIN[2][1].items() if (v := value(c, a, T3)) is not None), Decimal(0)
    )
    assert Decimal(main["total_value_usdt"]) == expected_total
    assert main["unpriced"] == ["XYZ"]
    assert {h["currency"]: h["value_usdt"] for h in main["holdings"]}["XYZ"] is None
    assert Decimal(by_account["savings"]["total_value_usdt"]) == value("ETH", "2.5", T2)


def test_at_as_a_table_shows_the_total_line(history_url: str) -> None:
    out = invoke(history_url, "at", "2026-04-02", "--account", "main").stdout
    assert "257.51830114" not in out  # T3 holds 300 USDT
    assert "main: total" in out and "unpriced, not counted: XYZ" in out


def test_history_every_day_takes_the_last_snapshot_of_each_day(history_url: str) -> None:
    rows = csv_rows(
        invoke(
            history_url,
            "history",
            "--every",
            "day",
            "--account",
            "main",
            "--currency",
            "BTC",
            "--until",
            "2026-04-02",
            "--format",
            "csv",
        ).stdout
    )
    got = [
        (r["period"], r["taken_at"], r["amount"], Decimal(r["value_usdt"]), r["carried"])
        for r in rows
    ]
    assert got == [
        ("2026-03-30T00:00:00+00:00", T1.isoformat(), "0.0012", value("BTC", "0.0012", T1), "no"),
        ("2026-03-31T00:00:00+00:00", T2.isoformat(), "0.0015", value("BTC", "0.0015", T2), "no"),
        ("2026-04-01T00:00:00+00:00", T3.isoformat(), "0.0015", value("BTC", "0.0015", T3), "no"),
        # No snapshot on 2 April: the last one is carried into it.
        ("2026-04-02T00:00:00+00:00", T3.isoformat(), "0.0015", value("BTC", "0.0015", T3), "yes"),
    ]


def test_history_every_day_in_berlin_moves_the_late_snapshot_to_the_next_day(
    history_url: str,
) -> None:
    rows = csv_rows(
        invoke(
            history_url,
            "history",
            "--every",
            "day",
            "--tz",
            "Europe/Berlin",
            "--account",
            "main",
            "--currency",
            "btc",
            "--until",
            "2026-04-01",
            "--format",
            "csv",
        ).stdout
    )
    # T2 (00:30 on 1 April in Berlin) and T3 fall on the same Berlin day: T3 is its last;
    # 31 March in Berlin has no snapshot and carries T1's.
    assert [(r["period"], r["taken_at"], r["carried"]) for r in rows] == [
        ("2026-03-30T00:00:00+02:00", "2026-03-30T14:00:00+02:00", "no"),
        ("2026-03-31T00:00:00+02:00", "2026-03-30T14:00:00+02:00", "yes"),
        ("2026-04-01T00:00:00+02:00", "2026-04-01T11:00:00+02:00", "no"),
    ]


def test_history_without_every_lists_every_snapshot_in_the_range(history_url: str) -> None:
    rows = json.loads(
        invoke(
            history_url,
            "history",
            "--since",
            "2026-03-31",
            "--until",
            "2026-03-31",
            "--format",
            "json",
        ).stdout
    )
    assert {(r["account"], r["currency"], r["amount"]) for r in rows} == {
        ("main", "BTC", "0.0015"),
        ("main", "USDT", "257.51830114"),
        ("main", "SAND", "108.467"),
        ("main", "XYZ", "5"),
        ("savings", "ETH", "2.5"),
    }


def test_changes_lists_the_change_log_exactly(history_url: str) -> None:
    rows = csv_rows(
        invoke(
            history_url, "changes", "--account", "main", "--since", "2026-03-31", "--format", "csv"
        ).stdout
    )
    assert [
        (r["currency"], r["change"], r["old_amount"], r["new_amount"], r["delta"]) for r in rows
    ] == [
        ("BTC", "changed", "0.0012", "0.0015", "0.0003"),
        ("SAND", "gone", "108.467", "", "-108.467"),
        ("USDT", "changed", "257.51830114", "300", "42.48169886"),
    ]


def export_expectation() -> list[tuple[str, str, Decimal, Decimal | None, Decimal | None]]:
    rows = []
    for name, events in (("main", MAIN), ("savings", SAVINGS)):
        for taken_at, holdings in events:
            for currency, amount in holdings.items():
                rows.append(
                    (
                        name,
                        taken_at.isoformat(),
                        Decimal(amount),
                        price(currency, taken_at),
                        value(currency, amount, taken_at),
                    )
                )
    return sorted(rows, key=lambda r: (r[1], r[0], str(r[2])))


def normalise(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda r: (r[1], r[0], str(r[2])))


def number(text: object) -> Decimal | None:
    return None if text in ("", None) else Decimal(str(text))


def exported(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(account, taken_at, amount, price, value) of exported rows, numbers as Decimal."""
    return [
        (
            r["account"],
            r["taken_at"],
            Decimal(r["amount"]),
            number(r["price_usdt"]),
            number(r["value_usdt"]),
        )
        for r in records
    ]


def test_export_csv_and_jsonl_hold_every_row_exactly(history_url: str, tmp_path: Path) -> None:
    invoke(history_url, "export", "--format", "csv", "-o", str(tmp_path / "h.csv"))
    rows = csv_rows((tmp_path / "h.csv").read_text())
    assert normalise(exported(rows)) == export_expectation()

    out = invoke(history_url, "export", "--format", "jsonl", "-o", "-").stdout
    objects = [json.loads(line) for line in out.splitlines()]
    assert normalise(exported(objects)) == export_expectation()
    assert all(isinstance(o["amount"], str) for o in objects)  # exact, not JSON floats


def test_export_xlsx_keeps_every_amount_exact(history_url: str, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    path = tmp_path / "h.xlsx"
    invoke(history_url, "export", "--format", "xlsx", "-o", str(path))
    workbook = load_workbook(path, read_only=True)
    assert workbook.sheetnames == ["statement", "balances", "changes"]
    rows = list(workbook["balances"].iter_rows(values_only=True))
    workbook.close()
    header, body = rows[0], rows[1:]
    assert header == (
        "account",
        "taken_at (UTC)",
        "snapshot_id",
        "currency",
        "amount",
        "amount_exact",
        "price_usdt",
        "price_usdt_exact",
        "value_usdt",
        "value_usdt_exact",
        "available",
        "available_exact",
        "on_orders",
        "on_orders_exact",
    )

    def cell(number_cell: object, exact: object) -> Decimal | None:
        # Every amount is a number; its exact text stands beside it when the number had
        # to be rounded (a float's repr is the exact decimal of up to 15 digits).
        assert number_cell is None or isinstance(number_cell, float | int)
        if exact is not None:
            assert Decimal(str(exact)) != Decimal(repr(number_cell))
            return Decimal(str(exact))
        return number(repr(number_cell) if number_cell is not None else None)

    padded = [tuple(r) + (None,) * (14 - len(r)) for r in body]  # read-only mode trims Nones
    got = [
        (r[0], r[1].isoformat() + "+00:00", cell(r[4], r[5]), cell(r[6], r[7]), cell(r[8], r[9]))
        for r in padded
    ]
    assert normalise(got) == export_expectation()
    with zipfile.ZipFile(path) as archive:
        assert b"<v>257.51830114</v>" in archive.read("xl/worksheets/sheet2.xml")


def test_export_html_is_one_self_contained_file(history_url: str, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    invoke(history_url, "export", "--format", "html", "-o", str(path))
    page = path.read_text()
    # Total value, value per currency, allocation; a section per account (two accounts).
    assert page.count("<svg") == 5
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', ""
    ).replace("http://www.w3.org/1999/xlink", "").replace("http://purl.org/dc", "").replace(
        "http://creativecommons.org/ns#", ""
    ).replace("http://www.w3.org/1999/02/22-rdf", "")
    assert "<script" not in page and "<link" not in page
    assert "Unpriced at capture time" in page and "XYZ" in page
    assert "300" in page and "142.5" in page  # T3's USDT and BTC value, as stored


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["at", "yesterday-ish"], "is not a date or time"),
        (["history", "--since", "31/03/2026"], "is not a date or time"),
        (["at", "--tz", "Mars/Olympus"], "is not a time zone"),
        (["changes", "--account", "nobody"], "No account named 'nobody'"),
        (["changes", "--currency", "DOGE"], "has ever held 'DOGE'"),
        (["export", "--format", "xlsx", "-o", "-"], "cannot go to standard output"),
        (["history", "--since", "2026-04-01", "--until", "2026-03-31"], "is after --until"),
        (["changes", "--since", "2026-04-01", "--until", "2026-03-31"], "is after --until"),
        (["export", "--since", "7d", "--until", "30d", "-o", "h.csv"], "is after --until"),
        (
            [
                "export",
                "--format",
                "html",
                "--since",
                "2026-04-01",
                "--until",
                "2026-03",
                "-o",
                "r",
            ],
            "--until '2026-03' is not a date",
        ),
        (
            [
                "export",
                "--format",
                "html",
                "--since",
                "2026-04-02",
                "--until",
                "2026-04-01",
                "-o",
                "r.html",
            ],
            "--since (2026-04-02T00:00:00+00:00) is after --until (2026-04-01T23:59:59+00:00)",
        ),
    ],
)
def test_bad_input_gets_one_sentence_and_exit_2(
    history_url: str, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, args, env={"RECORDER_DATABASE_URL": history_url})
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert list(Path().iterdir()) == []  # no report of a reversed range, nothing at all


def test_the_views_answer_like_the_commands(history_url: str) -> None:
    engine = sa.create_engine(history_url)
    with engine.connect() as connection:
        latest = {
            (r.account, r.currency): Decimal(str(r.amount))
            for r in connection.execute(sa.text("SELECT * FROM latest_balances"))
        }
        daily = [
            (r.account, str(r.day)[:10], r.currency, Decimal(str(r.amount)), r.carried)
            for r in connection.execute(
                sa.text(
                    "SELECT * FROM daily_balances WHERE currency = 'BTC' "
                    "AND day <= '2026-04-02' ORDER BY day"
                )
            )
        ]
        portfolio = [
            (r.account, r.total_value_usdt, r.unpriced_count)
            for r in connection.execute(
                sa.text("SELECT * FROM portfolio_values ORDER BY taken_at, account")
            )
        ]
    engine.dispose()
    assert latest == {("main", c): Decimal(a) for c, a in MAIN[2][1].items()} | {
        ("savings", "ETH"): Decimal("2.5")
    }
    assert daily == [
        ("main", "2026-03-30", "BTC", Decimal("0.0012"), 0),
        ("main", "2026-03-31", "BTC", Decimal("0.0015"), 0),
        ("main", "2026-04-01", "BTC", Decimal("0.0015"), 0),
        ("main", "2026-04-02", "BTC", Decimal("0.0015"), 1),
    ]
    totals = [(a, Decimal(str(t)), n) for a, t, n in portfolio]
    assert totals[0] == (
        "main",
        sum(
            (v for c, amt in MAIN[0][1].items() if (v := value(c, amt, T1)) is not None), Decimal(0)
        ),
        1,
    )
    assert [t[0] for t in totals] == ["main", "main", "savings", "main"]


@pytest.mark.parametrize(("fmt", "module"), [("html", "matplotlib"), ("xlsx", "openpyxl")])
def test_a_missing_report_extra_gets_a_one_line_hint(
    history_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    result = CliRunner().invoke(
        cli,
        ["export", "--format", fmt, "-o", str(tmp_path / "x")],
        env={"RECORDER_DATABASE_URL": history_url},
    )
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("pip install 'coinw-recorder[report]'.")
    assert result.stderr.count("\n") == 1


def test_exports_stay_quiet_when_not_on_a_terminal(history_url: str, tmp_path: Path) -> None:
    result = invoke(history_url, "export", "-o", str(tmp_path / "h.csv"))
    assert result.stderr == f"Wrote {tmp_path / 'h.csv'}\n"


def test_exports_show_progress_on_a_terminal(history_url: str, tmp_path: Path) -> None:
    import os
    import pty
    import subprocess

    primary, secondary = pty.openpty()
    process = subprocess.run(
        [sys.executable, "-m", "recorder", "export", "-o", str(tmp_path / "h.csv")],
        env={**os.environ, "RECORDER_DATABASE_URL": history_url},
        stderr=secondary,
        stdout=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    assert process.returncode == 0
    assert b"Exporting" in output and b"100%" in output


def test_the_chart_totals_count_every_account_at_its_last_state() -> None:
    from recorder.reports.html import build_series
    from recorder.values import Holding, StoredSnapshot

    def snapshot(account: str, snapshot_id: int, at: datetime) -> StoredSnapshot:
        return StoredSnapshot(account, snapshot_id, at, None, 0)

    def holding(ref: StoredSnapshot, currency: str, value: str) -> Holding:
        price = Decimal(value)
        return Holding(*ref[:3], currency, Decimal(1), price, price, None, None)

    a1, b1, a2 = snapshot("a", 1, T1), snapshot("b", 2, T2), snapshot("a", 3, T3)
    end = T3 + timedelta(days=1)
    series = build_series(
        T1,
        end,
        {"a": {"BTC": 100.0}, "b": {"ETH": 50.0}},  # the openings: b first recorded at T2
        [a1, b1, a2],
        [holding(a1, "BTC", "100"), holding(b1, "ETH", "50"), holding(a2, "BTC", "120")],
    )
    assert series.times == [T1, T2, T3, end]
    totals = [sum(point) for point in zip(*series.per_account().values(), strict=True)]
    # Never only one account: each is carried at its last known state, to the end.
    assert totals == [150.0, 150.0, 170.0, 170.0]
    assert series.per_currency() == {"BTC": [100.0, 100.0, 120.0, 120.0], "ETH": [50.0] * 4}
