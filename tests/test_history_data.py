"""Change rows are real changes: the recorder never writes a zero delta, and the
benchmark's synthetic history (benchmarks/make_history.py) looks like a real one: only real
changes, a change log that leads from each snapshot to the next, and a portfolio that
drifts with the market instead of collapsing."""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from recorder.cli import cli
from recorder.diff import diff
from recorder.sources.coinw.simulator import Simulator
from recorder.store.database import Database
from tests import year
from tests.conftest import API_KEY, SECRET, fresh_database
from tests.helpers import query

#: Holdings polled one after another: the same amounts spelled differently, zeros that
#: mean "not held", a currency going to zero and coming back, the smallest amounts.
POLLS = [
    {"BTC": "0.0012", "CWT": "400.000", "DOGE": "0"},
    {"BTC": "0.00120", "CWT": "400", "DOGE": "0.000"},
    {"BTC": "0.0012", "CWT": "0"},
    {"BTC": "0.0012", "CWT": "0.00", "ETH": "0.000000000000000001"},
    {"BTC": "0.001200000", "ETH": "0.0000000000000000010", "CWT": "400.0"},
    {"BTC": "0.0012", "ETH": "0.000000000000000001", "CWT": "400"},
]
# (currency, delta) of every change those polls make.
CHANGES = [
    ("BTC", "0.0012"),
    ("CWT", "400"),
    ("CWT", "-400"),
    ("ETH", "0.000000000000000001"),
    ("CWT", "400"),
]


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


def test_the_recorder_never_writes_a_zero_delta_change_row(
    any_url: str, simulator: Simulator, tmp_path: Path
) -> None:
    env = {
        "COINW_API_KEY": API_KEY,
        "COINW_SECRET_KEY": SECRET,
        "COINW_BASE_URL": simulator.url,
        "RECORDER_DATABASE_URL": any_url,
        "RECORDER_BUFFER_FILE": str(tmp_path / "buffer.jsonl"),
    }
    for holdings in POLLS:
        simulator.set_holdings(API_KEY, holdings)
        result = CliRunner().invoke(cli, ["poll"], env=env)
        assert result.exit_code == 0, result.output
    db = Database(any_url)
    stored = query(db, "SELECT currency, delta FROM balance_changes ORDER BY id")
    zero = query(db, "SELECT count(*) FROM balance_changes WHERE delta = 0")[0][0]
    snapshots = query(db, "SELECT count(*) FROM snapshots")[0][0]
    db.close()
    assert [(c, Decimal(str(d))) for c, d in stored] == [(c, Decimal(d)) for c, d in CHANGES]
    assert zero == 0 and snapshots == len(POLLS)


amounts_text = st.decimals(min_value=0, max_value=10**6, places=8, allow_nan=False).map(str)
spellings = st.sampled_from(["{}", "{}0", "{}00"])


@given(
    st.dictionaries(st.sampled_from(["BTC", "ETH", "USDT", "CWT"]), amounts_text),
    st.dictionaries(st.sampled_from(["BTC", "ETH", "USDT", "CWT"]), amounts_text),
)
def test_a_diff_never_holds_a_zero_delta(old: dict[str, str], new: dict[str, str]) -> None:
    def spelled(holdings: dict[str, str]) -> dict[str, Decimal]:
        # Trailing zeros after a decimal point spell the same amount.
        return {c: Decimal(a + ("0" if "." in a else "")) for c, a in holdings.items()}

    for change in diff(spelled(old), spelled(new)) + diff(spelled(new), spelled(new)):
        assert change.delta != 0


@pytest.fixture(scope="module")
def year_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    with fresh_database("sqlite", tmp_path_factory.mktemp("year")) as url:
        year.record(url)
        db = Database(url)
        yield db
        db.close()


def test_the_synthetic_history_holds_only_real_changes(year_db: Database) -> None:
    rows = query(year_db, "SELECT old_amount, new_amount, delta FROM balance_changes")
    assert len(rows) > 500
    assert all(Decimal(delta) != 0 for _, _, delta in rows)
    kinds = {
        ("appeared" if old is None else "gone" if new is None else "changed")
        for old, new, _ in rows
    }
    assert kinds == {"appeared", "changed", "gone"}


def test_the_synthetic_change_log_leads_from_each_snapshot_to_the_next(year_db: Database) -> None:
    balances: dict[int, dict[str, Decimal]] = {}
    for snapshot_id, currency, amount, price, value in query(
        year_db, "SELECT snapshot_id, currency, amount, price_usdt, value_usdt FROM balances"
    ):
        with decimal.localcontext(prec=100):
            assert Decimal(value) == Decimal(amount) * Decimal(price)
        balances.setdefault(snapshot_id, {})[currency] = Decimal(amount)
    changes: dict[int, list[tuple[str, Decimal | None]]] = {}
    for snapshot_id, currency, new in query(
        year_db, "SELECT snapshot_id, currency, new_amount FROM balance_changes"
    ):
        changes.setdefault(snapshot_id, []).append(
            (currency, None if new is None else Decimal(new))
        )
    for account_id in (1, 2):
        held: dict[str, Decimal] = {}
        ids = [
            i
            for (i,) in query(
                year_db,
                f"SELECT id FROM snapshots WHERE account_id = {account_id} ORDER BY taken_at",
            )
        ]
        for snapshot_id in ids:
            for currency, new in changes.get(snapshot_id, []):
                if new is None:
                    del held[currency]
                else:
                    held[currency] = new
            assert held == balances.get(snapshot_id, {}), snapshot_id


def test_the_synthetic_portfolio_drifts_like_a_real_one(year_db: Database) -> None:
    for account_id in (1, 2):
        totals = [
            Decimal(total)
            for (total,) in query(
                year_db,
                "SELECT total_value_usdt FROM snapshots "
                f"WHERE account_id = {account_id} ORDER BY taken_at",
            )
        ]
        start = totals[0]
        assert Decimal(40000) < start < Decimal(60000)
        # It moves (trades, prices), and never collapses or explodes.
        assert len(set(totals)) > len(totals) // 2
        assert all(start / 3 < total < start * 3 for total in totals)
        assert max(totals) / min(totals) > Decimal("1.05")
