"""A small history with holes, written through the recorder's own write path: the
recorder was down for all of February for `main`, and `savings` was first recorded in
February. For the carried-balance and statement tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from recorder.polling.pricing import valuate
from recorder.store.database import Database
from tests.conftest import open_db
from tests.helpers import add_snapshot

M1 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
M2 = datetime(2026, 1, 31, 23, 0, tzinfo=UTC)  # midnight in Berlin: 1 February starts
M3 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
S1 = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
S2 = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)

#: (account, taken_at, holdings, ticker)
EVENTS = [
    ("main", M1, {"BTC": "1", "USDT": "100"}, {"BTC_USDT": "40000"}),
    ("main", M2, {"BTC": "1.5", "USDT": "100"}, {"BTC_USDT": "41000"}),
    ("savings", S1, {"ETH": "3"}, {"ETH_USDT": "2500"}),
    ("main", M3, {"BTC": "2", "USDT": "50"}, {"BTC_USDT": "42000"}),
    ("savings", S2, {"ETH": "2.5", "USDT": "600"}, {"ETH_USDT": "2400"}),
]


def write(db: Database) -> None:
    """Store EVENTS, each valued with its ticker, diffed against the one before."""
    for name, taken_at, holdings, ticker in EVENTS:
        balances = {currency: Decimal(amount) for currency, amount in holdings.items()}
        pairs = {pair: Decimal(last) for pair, last in ticker.items()}
        add_snapshot(db, name, taken_at, balances, valuation=valuate(balances, pairs))


def record(url: str) -> None:
    """Migrate the database at `url` and store EVENTS in it."""
    db = open_db(url)
    write(db)
    db.close()
