"""A small, known history recorded through the simulator, for the report tests."""

from __future__ import annotations

import decimal
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from recorder import app
from recorder.config import AccountConfig, Settings
from recorder.polling.pricing import TickerCache
from recorder.secret import Secret
from recorder.sources.coinw.client import CoinWClient
from recorder.sources.coinw.simulator import Simulator
from recorder.values import Credentials

# 2026-03-31 22:30 UTC is already 1 April in Berlin (summer time, UTC+2): --tz moves it.
T1 = datetime(2026, 3, 30, 12, 0, tzinfo=UTC)
T2 = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
T3 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)

MAIN = [
    (T1, {"BTC": "0.0012", "USDT": "257.518301140000000", "SAND": "108.467", "XYZ": "5"}),
    (T2, {"BTC": "0.0015", "USDT": "257.518301140000000", "SAND": "108.467", "XYZ": "5"}),
    (T3, {"BTC": "0.0015", "USDT": "300.000", "XYZ": "5"}),
]
SAVINGS = [(T2, {"ETH": "2.5"})]
TICKERS = {
    T1: {"BTC_USDT": "96903.7", "SAND_BTC": "0.0000027", "ETH_USDT": "3000"},
    T2: {"BTC_USDT": "97000.1", "SAND_BTC": "0.0000028", "ETH_USDT": "3100.55"},
    T3: {"BTC_USDT": "95000", "SAND_BTC": "0.000003", "ETH_USDT": "3200"},
}


def price(currency: str, at: datetime) -> Decimal | None:
    """The USDT price the recorder should have stored (computed here independently)."""
    ticker = {pair: Decimal(last) for pair, last in TICKERS[at].items()}
    with decimal.localcontext(prec=100):
        if currency == "USDT":
            return Decimal(1)
        if f"{currency}_USDT" in ticker:
            return ticker[f"{currency}_USDT"]
        if f"{currency}_BTC" in ticker:
            return ticker[f"{currency}_BTC"] * ticker["BTC_USDT"]
    return None


def value(currency: str, amount: str, at: datetime) -> Decimal | None:
    p = price(currency, at)
    if p is None:
        return None
    with decimal.localcontext(prec=100):
        return Decimal(amount) * p


def record(db_url: str) -> None:
    """Poll the simulator at T1, T2, T3 with the holdings and prices above."""
    with Simulator() as exchange:
        exchange.add_account("main-key", "main-secret-0123456789", {})
        exchange.add_account("savings-key", "savings-secret-0123456789", {})
        moments: list[datetime] = []
        client = CoinWClient(exchange.url, clock=lambda: moments[-1])
        settings = Settings(
            base_url=exchange.url,
            accounts=(
                AccountConfig("main", Credentials("main-key", Secret("main-secret-0123456789"))),
                AccountConfig(
                    "savings", Credentials("savings-key", Secret("savings-secret-0123456789"))
                ),
            ),
        )
        recorder = app.build(
            replace(settings, database_url=db_url, buffer_file=None), client=client
        )
        poller = recorder.poller
        poller.tickers = TickerCache(client.fetch_ticker, max_age=0)  # a new round each poll
        events = [(t, "main", h) for t, h in MAIN] + [(t, "savings", h) for t, h in SAVINGS]
        for taken_at, name, holdings in sorted(events, key=lambda e: (e[0], e[1])):
            moments.append(taken_at)
            exchange.set_holdings(f"{name}-key", holdings)
            exchange.set_ticker(TICKERS[taken_at])
            result = poller.poll(settings.account(name))
            assert result.ok, result.error
        recorder.close()
        client.close()
