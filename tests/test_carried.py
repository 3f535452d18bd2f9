"""Carried balances: every period asked for has a row for each account once it has been
recorded, carrying the last known holdings into periods without a snapshot (and saying
so); periods before an account's first snapshot stay empty. Through the CLI and the
daily_balances view, on every backend."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from recorder.cli import cli
from tests import gapped
from tests.conftest import BACKENDS, fresh_database
from tests.gapped import M1, M2, M3, S1, S2


@pytest.fixture(scope="module", params=BACKENDS)
def gapped_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The gapped history on each backend, shared by this module's tests (they only read)."""
    with fresh_database(request.param, tmp_path_factory.mktemp("gapped")) as url:
        gapped.record(url)
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


def test_a_month_without_snapshots_carries_the_last_holdings(gapped_url: str) -> None:
    rows = csv_rows(
        invoke(
            gapped_url, "history", "--every", "month", "--until", "2026-03-31", "--format", "csv"
        ).stdout
    )
    got = [
        (r["period"][:7], r["account"], r["currency"], r["amount"], r["taken_at"], r["carried"])
        for r in rows
    ]
    assert got == [
        ("2026-01", "main", "BTC", "1.5", M2.isoformat(), "no"),
        ("2026-01", "main", "USDT", "100", M2.isoformat(), "no"),
        # The recorder was down all February: main's month-end is carried from 31 January;
        # savings was first recorded in February, and has no January row.
        ("2026-02", "main", "BTC", "1.5", M2.isoformat(), "yes"),
        ("2026-02", "main", "USDT", "100", M2.isoformat(), "yes"),
        ("2026-02", "savings", "ETH", "3", S1.isoformat(), "no"),
        ("2026-03", "main", "BTC", "2", M3.isoformat(), "no"),
        ("2026-03", "main", "USDT", "50", M3.isoformat(), "no"),
        ("2026-03", "savings", "ETH", "2.5", S2.isoformat(), "no"),
        ("2026-03", "savings", "USDT", "600", S2.isoformat(), "no"),
    ]
    carried = [r for r in rows if r["carried"] == "yes"]
    assert {Decimal(r["value_usdt"]) for r in carried} == {Decimal("61500"), Decimal("100")}


def test_every_day_has_a_row_once_the_account_is_recorded(gapped_url: str) -> None:
    rows = json.loads(
        invoke(
            gapped_url,
            "history",
            "--every",
            "day",
            "--currency",
            "BTC",
            "--since",
            "2026-01-14",
            "--until",
            "2026-02-12",
            "--format",
            "json",
        ).stdout
    )
    days = [(r["period"][:10], r["taken_at"], r["carried"]) for r in rows]
    assert days[0] == ("2026-01-15", M1.isoformat(), False)  # nothing on the 14th
    assert days[1] == ("2026-01-16", M1.isoformat(), True)
    assert ("2026-01-31", M2.isoformat(), False) in days
    assert len(days) == 29 and {r["account"] for r in rows} == {"main"}
    assert all(carried for day, _, carried in days if day >= "2026-02-01")


def test_days_are_carried_in_the_zone_asked_for(gapped_url: str) -> None:
    rows = csv_rows(
        invoke(
            gapped_url,
            "history",
            "--every",
            "day",
            "--tz",
            "Europe/Berlin",
            "--account",
            "main",
            "--currency",
            "BTC",
            "--since",
            "2026-01-31",
            "--until",
            "2026-02-02",
            "--format",
            "csv",
        ).stdout
    )
    # M2 (23:00 UTC on 31 January) is the first moment of 1 February in Berlin.
    assert [(r["period"], r["amount"], r["carried"]) for r in rows] == [
        ("2026-01-31T00:00:00+01:00", "1", "yes"),
        ("2026-02-01T00:00:00+01:00", "1.5", "no"),
        ("2026-02-02T00:00:00+01:00", "1.5", "yes"),
    ]


def test_an_account_first_recorded_later_has_no_rows_before(gapped_url: str) -> None:
    rows = csv_rows(
        invoke(
            gapped_url,
            "history",
            "--every",
            "week",
            "--account",
            "savings",
            "--until",
            "2026-02-28",
            "--format",
            "csv",
        ).stdout
    )
    assert [r["period"][:10] for r in rows] == ["2026-02-09", "2026-02-16", "2026-02-23"]
    assert [r["carried"] for r in rows] == ["no", "yes", "yes"]


def test_exports_by_period_carry_like_history(gapped_url: str, tmp_path: Path) -> None:
    arguments = ["--every", "month", "--until", "2026-03-31", "--account", "main"]
    invoke(gapped_url, "export", *arguments, "-o", str(tmp_path / "m.csv"))
    from_csv = csv_rows((tmp_path / "m.csv").read_text())
    lines = invoke(gapped_url, "export", *arguments, "--format", "jsonl", "-o", "-").stdout
    from_jsonl = [json.loads(line) for line in lines.splitlines()]
    expected = [
        ("2026-01", "BTC", "1.5", False),
        ("2026-01", "USDT", "100", False),
        ("2026-02", "BTC", "1.5", True),
        ("2026-02", "USDT", "100", True),
        ("2026-03", "BTC", "2", False),
        ("2026-03", "USDT", "50", False),
    ]
    assert [
        (r["period"][:7], r["currency"], r["amount"], r["carried"] == "yes") for r in from_csv
    ] == expected
    assert [(r["period"][:7], r["currency"], r["amount"], r["carried"]) for r in from_jsonl] == (
        expected
    )
    assert list(from_csv[0]) == [
        "account",
        "period",
        "taken_at",
        "snapshot_id",
        "currency",
        "amount",
        "price_usdt",
        "value_usdt",
        "available",
        "on_orders",
        "carried",
    ]


def test_an_xlsx_export_by_period_marks_carried_rows(gapped_url: str, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    path = tmp_path / "m.xlsx"
    invoke(
        gapped_url,
        "export",
        "--every",
        "month",
        "--until",
        "2026-03-31",
        "--format",
        "xlsx",
        "-o",
        str(path),
    )
    workbook = load_workbook(path, read_only=True)
    rows = list(workbook["balances"].iter_rows(values_only=True))
    workbook.close()
    header = rows[0]
    carried = header.index("carried")
    period = header.index("period (UTC)")
    got = [(r[0], r[period].strftime("%Y-%m"), r[carried]) for r in rows[1:]]
    assert ("main", "2026-02", True) in got and ("savings", "2026-02", False) in got
    assert not any(account == "savings" and month == "2026-01" for account, month, _ in got)


def _time(value: Any) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def test_the_daily_view_carries_like_history_every_day(gapped_url: str) -> None:
    engine = sa.create_engine(gapped_url)
    with engine.connect() as connection:
        view = [
            (
                r.account,
                str(r.day)[:10],
                r.currency,
                Decimal(str(r.amount)),
                _time(r.taken_at),
                bool(r.carried),
            )
            for r in connection.execute(
                sa.text(
                    "SELECT account, day, currency, amount, taken_at, carried "
                    "FROM daily_balances WHERE day BETWEEN '2026-01-10' AND '2026-03-25'"
                )
            )
        ]
    engine.dispose()
    cli_rows = json.loads(
        invoke(
            gapped_url,
            "history",
            "--every",
            "day",
            "--since",
            "2026-01-10",
            "--until",
            "2026-03-25",
            "--format",
            "json",
        ).stdout
    )
    from_cli = [
        (
            r["account"],
            r["period"][:10],
            r["currency"],
            Decimal(r["amount"]),
            _time(r["taken_at"]),
            r["carried"],
        )
        for r in cli_rows
    ]
    assert sorted(view) == sorted(from_cli)
    assert ("main", "2026-02-28", "BTC", Decimal("1.5"), M2, True) in view
    assert min(day for account, day, *_ in view if account == "savings") == "2026-02-10"
    assert min(day for account, day, *_ in view if account == "main") == "2026-01-15"


def test_the_daily_view_carries_every_account_up_to_today(gapped_url: str) -> None:
    engine = sa.create_engine(gapped_url)
    before = datetime.now(UTC).date().isoformat()
    with engine.connect() as connection:
        last = connection.execute(
            sa.text("SELECT account, max(day) FROM daily_balances GROUP BY account")
        ).all()
    after = datetime.now(UTC).date().isoformat()
    engine.dispose()
    assert {account: str(day)[:10] in (before, after) for account, day in last} == {
        "main": True,
        "savings": True,
    }
