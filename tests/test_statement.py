"""`recorder statement`: opening, increases, decreases and closing per account and
currency, valued at the prices recorded with each snapshot, exact on every backend."""

from __future__ import annotations

import csv
import decimal
import io
import itertools
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from recorder.cli import cli
from recorder.store.database import Database
from tests import gapped, year
from tests.conftest import BACKENDS, fresh_database
from tests.gapped import M1, M2, S1
from tests.helpers import query

D = Decimal


@pytest.fixture(scope="module", params=BACKENDS)
def gapped_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with fresh_database(request.param, tmp_path_factory.mktemp("statement")) as url:
        gapped.record(url)
        yield url


@pytest.fixture(autouse=True)
def _exact_sums() -> Iterator[None]:
    """Sums in these tests are exact, or fail: never rounded to 28 digits."""
    with decimal.localcontext(prec=200) as context:
        context.traps[decimal.Inexact] = True
        yield


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"RECORDER_DATABASE_URL": url})


def invoke(url: str, *args: str) -> Result:
    result = run(url, *args)
    assert result.exit_code == 0, result.output
    return result


def statement(url: str, *args: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        invoke(url, "statement", *args, "--format", "json").stdout
    )
    return document


def lines(document: dict[str, Any]) -> dict[tuple[str, str], tuple[Decimal, ...]]:
    """(account, currency) -> (opening, increases, decreases, net, closing) amounts."""
    return {
        (account["account"], line["currency"]): tuple(
            D(line[k])
            for k in ("opening_amount", "increases", "decreases", "net_change", "closing_amount")
        )
        for account in document["accounts"]
        for line in account["lines"]
    }


def test_a_quarter_opens_each_account_at_its_first_snapshot_and_adds_up(gapped_url: str) -> None:
    document = statement(gapped_url, "--quarter", "2026-q1")
    assert (document["period"], document["start"], document["end"]) == (
        "2026-Q1",
        "2026-01-01T00:00:00+00:00",
        "2026-04-01T00:00:00+00:00",
    )
    assert lines(document) == {
        ("main", "BTC"): (D(1), D(1), D(0), D(1), D(2)),
        ("main", "USDT"): (D(100), D(0), D(50), D(-50), D(50)),
        ("savings", "ETH"): (D(3), D(0), D("0.5"), D("-0.5"), D("2.5")),
        ("savings", "USDT"): (D(0), D(600), D(0), D(600), D(600)),
    }
    accounts = {a["account"]: a for a in document["accounts"]}
    assert accounts["main"]["first_recorded"] and accounts["savings"]["first_recorded"]
    assert accounts["main"]["opening_taken_at"] == M1.isoformat()
    totals = {
        name: (D(a["opening_total_value_usdt"]), D(a["closing_total_value_usdt"]))
        for name, a in accounts.items()
    }
    # main: 1 BTC at 40,000 + 100 USDT, then 2 BTC at 42,000 + 50 USDT; savings: 3 ETH at
    # 2,500, then 2.5 ETH at 2,400 + 600 USDT.
    assert totals == {"main": (D(40100), D(84050)), "savings": (D(7500), D(6600))}
    assert D(document["opening_total_value_usdt"]) == D(47600)
    assert D(document["closing_total_value_usdt"]) == D(90650)
    assert all(line["reconciled"] for a in document["accounts"] for line in a["lines"])


def test_a_month_without_snapshots_still_has_its_statement(gapped_url: str) -> None:
    document = statement(gapped_url, "--month", "2026-02")
    accounts = {a["account"]: a for a in document["accounts"]}
    main = accounts["main"]
    # The recorder was down all February: the holdings of 31 January carry through it.
    assert (main["opening_taken_at"], main["closing_taken_at"]) == (M2.isoformat(),) * 2
    assert not main["first_recorded"]
    assert D(main["opening_total_value_usdt"]) == D(main["closing_total_value_usdt"]) == D(61600)
    assert accounts["savings"]["first_recorded"]
    assert accounts["savings"]["opening_taken_at"] == S1.isoformat()
    assert lines(document)[("main", "BTC")] == (D("1.5"), D(0), D(0), D(0), D("1.5"))


def test_a_month_in_another_zone_starts_at_its_midnight(gapped_url: str) -> None:
    # February starts at 23:00 UTC on 31 January in Berlin: the snapshot taken then is
    # February's, so its change is an increase and the opening is the one of 15 January.
    berlin_february = ["--month", "2026-02", "--tz", "Europe/Berlin", "--account", "main"]
    document = statement(gapped_url, *berlin_february)
    assert document["start"] == "2026-02-01T00:00:00+01:00"
    assert lines(document)[("main", "BTC")] == (D(1), D("0.5"), D(0), D("0.5"), D("1.5"))
    berlin = ZoneInfo("Europe/Berlin")
    assert document["accounts"][0]["opening_taken_at"] == M1.astimezone(berlin).isoformat()


def test_since_and_until_and_a_currency(gapped_url: str) -> None:
    document = statement(
        gapped_url, "--since", "2026-02-01", "--until", "2026-03-31", "--currency", "usdt"
    )
    assert lines(document) == {
        ("main", "USDT"): (D(100), D(0), D(50), D(-50), D(50)),
        ("savings", "USDT"): (D(0), D(600), D(0), D(600), D(600)),
    }


def test_the_table_csv_and_xlsx_say_the_same(gapped_url: str, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    table = invoke(gapped_url, "statement", "--year", "2026").stdout
    assert table.startswith("Statement 2026: from 2026-01-01T00:00:00+00:00 up to 2027-01-01")
    assert "main: opening 40100 USDT (first recorded 2026-01-15T10:00:00+00:00)" in table
    assert "all accounts: opening 47600 USDT, closing 90650 USDT" in table

    text = invoke(gapped_url, "statement", "--year", "2026", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["account"], r["currency"]) for r in rows] == [
        ("main", "BTC"),
        ("main", "USDT"),
        ("main", ""),
        ("savings", "ETH"),
        ("savings", "USDT"),
        ("savings", ""),
        ("", ""),
    ]
    assert (rows[-1]["opening_value_usdt"], rows[-1]["closing_value_usdt"]) == ("47600", "90650")
    assert rows[0]["opening_price_usdt"] == "40000" and rows[0]["closing_price_usdt"] == "42000"

    path = tmp_path / "2026.xlsx"
    invoke(gapped_url, "statement", "--year", "2026", "--format", "xlsx", "-o", str(path))
    workbook = load_workbook(path, read_only=True)
    sheet = list(workbook["statement"].iter_rows(values_only=True))
    workbook.close()
    header = sheet[0]
    total = dict(zip(header, sheet[-1], strict=False))
    assert (total["opening_value_usdt"], total["closing_value_usdt"]) == (47600, 90650)
    first = dict(zip(header, sheet[1], strict=False))
    assert first["opening_taken_at (UTC)"] == M1.replace(tzinfo=None)
    assert (first["opening_amount"], first["increases"], first["closing_amount"]) == (1, 1, 2)


def test_the_html_statement_is_the_report_of_the_period(gapped_url: str, tmp_path: Path) -> None:
    path = tmp_path / "q1.html"
    invoke(gapped_url, "statement", "--quarter", "2026-Q1", "--format", "html", "-o", str(path))
    page = path.read_text()
    assert 'id="statement"' in page and "all accounts" in page
    assert "47,600.00 USDT" in page and "90,650.00 USDT" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "A statement needs a period"),
        (["--month", "2026-13"], "--month '2026-13' is not a period"),
        (["--quarter", "2026-Q5"], "--quarter '2026-Q5' is not a period"),
        (["--year", "26"], "--year '26' is not a period"),
        (["--month", "2026-03", "--year", "2026"], "Give one period"),
        (["--month", "2026-03", "--since", "2026-01-01"], "Give one period"),
        (["--since", "2026-03-01", "--until", "2026-02-01"], "is after --until"),
        (["--year", "2026", "--format", "xlsx"], "needs a file"),
    ],
)
def test_a_bad_period_is_one_sentence_and_exit_2(
    gapped_url: str, args: list[str], message: str
) -> None:
    result = run(gapped_url, "statement", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_a_change_log_that_disagrees_is_reported_and_exits_1(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        gapped.record(url)
        db = Database(url)
        with db.engine.begin() as connection:
            connection.exec_driver_sql(
                "DELETE FROM balance_changes WHERE currency = 'USDT' AND new_amount = '50'"
            )
        assert query(db, "SELECT count(*) FROM balance_changes")[0][0] > 0
        db.close()
        result = run(url, "statement", "--year", "2026", "--format", "json")
    assert result.exit_code == 1
    assert "does not add up for main USDT" in result.stderr
    document = json.loads(result.stdout)
    usdt = [line for line in document["accounts"][0]["lines"] if line["currency"] == "USDT"]
    assert usdt[0]["reconciled"] is False


@pytest.fixture(scope="module", params=BACKENDS)
def year_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A year of history on each backend (see tests/year.py)."""
    with fresh_database(request.param, tmp_path_factory.mktemp("year")) as url:
        year.record(url)
        yield url


def held_at(url: str, moment: str) -> dict[tuple[str, str], tuple[Decimal, Decimal | None]]:
    """(account, currency) -> (amount, value) as `recorder at` answers."""
    document = json.loads(invoke(url, "at", moment, "--format", "json").stdout)
    return {
        (account["account"], h["currency"]): (D(h["amount"]), D(h["value_usdt"]))
        for account in document["accounts"]
        for h in account["holdings"]
    }


def test_a_year_of_history_adds_up_exactly(year_url: str) -> None:
    document = statement(year_url, "--year", "2025")
    found = lines(document)
    assert len(found) >= 10
    for key, (first, up, down, net, last) in found.items():
        assert first + up - down == last, key
        assert up - down == net and up >= 0 and down >= 0
    assert all(line["reconciled"] for a in document["accounts"] for line in a["lines"])

    # The opening and closing are what `recorder at` says was held at the year's edges.
    opening, closing = held_at(year_url, "2024-12-31"), held_at(year_url, "2025-12-31")
    assert {k: v[0] for k, v in found.items() if v[0]} == {k: v[0] for k, v in opening.items()}
    assert {k: v[4] for k, v in found.items() if v[4]} == {k: v[0] for k, v in closing.items()}
    assert D(document["opening_total_value_usdt"]) == sum(v[1] for v in opening.values())
    assert D(document["closing_total_value_usdt"]) == sum(v[1] for v in closing.values())

    # Increases and decreases are the change log's deltas, added up here on their own.
    arguments = ["--since", "2025-01-01", "--until", "2025-12-31", "--format", "csv"]
    log = csv.DictReader(io.StringIO(invoke(year_url, "changes", *arguments).stdout))
    flows: dict[tuple[str, str], list[Decimal]] = {}
    for row in log:
        delta = D(row["delta"])
        assert delta != 0
        sums = flows.setdefault((row["account"], row["currency"]), [D(0), D(0)])
        sums[0 if delta > 0 else 1] += abs(delta)
    assert {k: (v[1], v[2]) for k, v in found.items() if v[1] or v[2]} == {
        k: tuple(v) for k, v in flows.items()
    }


def test_the_months_of_a_year_chain_into_the_year(year_url: str) -> None:
    months = [statement(year_url, "--month", f"2025-{m:02d}") for m in range(1, 13)]
    yearly = lines(statement(year_url, "--year", "2025"))
    for before, after in itertools.pairwise(months):
        closing = {k: v[4] for k, v in lines(before).items() if v[4]}
        assert closing == {k: v[0] for k, v in lines(after).items() if v[0]}
        assert before["closing_total_value_usdt"] == after["opening_total_value_usdt"]
    for key, (_, up, down, _, _) in yearly.items():
        assert up == sum((lines(m).get(key, (D(0),) * 5)[1] for m in months), D(0))
        assert down == sum((lines(m).get(key, (D(0),) * 5)[2] for m in months), D(0))
    # The recorder was down from 29 May to 3 June: May closes with a carried snapshot.
    may = {a["account"]: a["closing_taken_at"] for a in months[4]["accounts"]}
    assert all("2025-05-29T" in taken_at for taken_at in may.values())


def test_the_readme_statement_example_is_what_the_command_prints(tmp_path: Path) -> None:
    from tests.history import record

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    command = "$ recorder statement --month 2026-03 --account main\n"
    shown = readme[readme.index(command) + len(command) :].split("```")[0]
    with fresh_database("sqlite", tmp_path) as url:
        record(url)
        printed = invoke(url, "statement", "--month", "2026-03", "--account", "main").stdout
    assert printed == shown
