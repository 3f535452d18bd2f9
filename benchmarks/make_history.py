"""Write a realistic synthetic history through the recorder's bulk path.

    python benchmarks/make_history.py --database sqlite:///year.db \\
        --accounts 1 --days 365 --currencies 20 --interval 60

Each account starts with about `--value` USDT spread over `--currencies` currencies (a
fifth to a third in USDT). Prices follow a random walk with no drift and about 3 % daily
volatility, with 6 significant digits like CoinW's. Now and then the account trades: it
buys a currency with USDT, or sells part or all of one for USDT (a 0.1 % fee), or moves
USDT in or out; each currency keeps a fixed number of decimals (CoinW's countPrecision),
so amounts look like an exchange's. The portfolio drifts with the market, as a real one
does. `--outages` leaves stretches of days with no snapshot (the recorder was down).
Snapshots, balances, changes (only real ones: appeared, changed or gone, never a zero
delta), values and totals are what the recorder would have stored, written in big
transactions (minutes for a year of minute data).
"""

from __future__ import annotations

import argparse
import decimal
import math
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recorder import amounts
from recorder.store import bulk, maintenance, migrate, status, writes
from recorder.store import copy as transfer
from recorder.store.database import Database

CURRENCY_NAMES = [
    "BTC",
    "ETH",
    "USDT",
    "CWT",
    "SAND",
    "SOL",
    "XRP",
    "ADA",
    "DOGE",
    "DOT",
    "LTC",
    "TRX",
    "LINK",
    "BCH",
    "XLM",
    "ATOM",
    "ETC",
    "FIL",
    "NEAR",
    "APT",
    "ARB",
    "OP",
    "SUI",
    "PEPE",
]
START_PRICES = {
    "BTC": "96903.7",
    "ETH": "3391.25",
    "USDT": "1",
    "CWT": "0.0124",
    "SAND": "0.2634",
    "SOL": "187.41",
    "XRP": "2.31",
    "ADA": "0.912",
    "DOGE": "0.3528",
    "DOT": "6.94",
    "LTC": "104.7",
    "TRX": "0.2516",
    "LINK": "22.43",
    "BCH": "451.2",
    "XLM": "0.4137",
    "ATOM": "6.52",
    "ETC": "27.31",
    "FIL": "5.06",
    "NEAR": "5.48",
    "APT": "9.12",
    "ARB": "0.7461",
    "OP": "1.913",
    "SUI": "4.207",
    "PEPE": "0.0000195",
}
# The tables' leading columns (see recorder.store.copy); recorded_by, available and
# on_orders stay NULL, as for a recorder polling returnBalances; change ids are generated.
SNAPSHOT_COLUMNS = transfer.SNAPSHOT_COLUMNS[:5]
BALANCE_COLUMNS = transfer.BALANCE_COLUMNS[:5]
CHANGE_COLUMNS = transfer.CHANGE_COLUMNS[1:]
DAILY_VOLATILITY = 0.03
FEE = Decimal("0.999")
EXACT = decimal.Context(prec=80)


def currency_names(count: int) -> list[str]:
    """The first `count` names: real tickers, then C000, C001, ..."""
    names = CURRENCY_NAMES[:count]
    names += [f"C{n:03d}" for n in range(count - len(names))]
    return names


class Market:
    """Prices on a driftless random walk, with 6 significant digits like CoinW's."""

    def __init__(self, names: list[str], rng: random.Random, interval: float) -> None:
        self.rng = rng
        self.sigma = DAILY_VOLATILITY * math.sqrt(interval / 86400)
        self.prices = {
            name: Decimal(START_PRICES.get(name, f"{10 ** rng.uniform(-3, 2.7):.4g}"))
            for name in names
        }

    def step(self) -> dict[str, Decimal]:
        """Move every price (USDT stays 1) and return them all."""
        for name, price in self.prices.items():
            if name != "USDT":
                # exp(N(-s^2/2, s)) has mean 1: no drift up or down on average.
                factor = math.exp(self.rng.gauss(-(self.sigma**2) / 2, self.sigma))
                self.prices[name] = Decimal(f"{float(price) * factor:.6g}")  # float-ok
        return self.prices


class Account:
    """One account's holdings and the trades that change them."""

    def __init__(
        self,
        names: list[str],
        places: dict[str, Decimal],
        prices: dict[str, Decimal],
        value: float,
        rng: random.Random,
    ) -> None:
        self.rng = rng
        self.places = places
        usdt = value * rng.uniform(0.2, 0.35)
        weights = {name: rng.expovariate(1) for name in names if name != "USDT"}
        scale = (value - usdt) / (sum(weights.values()) or 1)
        self.held: dict[str, Decimal] = {}
        if "USDT" in names:
            self.set("USDT", Decimal(f"{usdt:.2f}"))
        for name, weight in weights.items():
            self.set(name, Decimal(repr(weight * scale)) / prices[name])

    def set(self, name: str, amount: Decimal) -> None:
        """Hold `amount` of `name`, cut to its decimals (zero: not held)."""
        amount = amount.quantize(self.places[name], rounding=decimal.ROUND_DOWN, context=EXACT)
        if amount > 0:
            self.held[name] = amounts.canonical(amount)
        else:
            self.held.pop(name, None)

    def trade(self, prices: dict[str, Decimal]) -> None:
        """One trade against USDT, or USDT moved in or out."""
        rng = self.rng
        others = [name for name in self.places if name != "USDT"]
        cash = self.held.get("USDT", Decimal(0))
        if rng.random() < 0.01 or not others or "USDT" not in self.places:
            total = sum((a * prices[n] for n, a in self.held.items()), Decimal(0))
            move = total * Decimal(repr(rng.uniform(-0.05, 0.05)))
            self.set("USDT", cash + move)
            return
        name = rng.choice(others)
        amount = self.held.get(name, Decimal(0))
        price = prices[name]
        if amount and rng.random() < 0.5:
            sold = amount if rng.random() < 0.1 else amount * Decimal(repr(rng.uniform(0.05, 0.6)))
            before = self.held.get(name, Decimal(0))
            self.set(name, amount - sold)
            sold = before - self.held.get(name, Decimal(0))
            self.set("USDT", cash + sold * price * FEE)
        elif cash:
            spent = cash * Decimal(repr(rng.uniform(0.05, 0.5)))
            self.set(name, amount + spent / price * FEE)
            bought = self.held.get(name, Decimal(0)) - amount
            self.set("USDT", cash - bought * price / FEE)


def changes_between(
    old: dict[str, Decimal], new: dict[str, Decimal]
) -> list[tuple[str, str | None, str | None, str]]:
    """(currency, old, new, delta) of every currency that appeared, changed or went."""
    found = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before != after:
            delta = amounts.subtract(after or Decimal(0), before or Decimal(0))
            found.append(
                (
                    name,
                    None if before is None else amounts.to_text(before),
                    None if after is None else amounts.to_text(after),
                    amounts.to_text(delta),
                )
            )
    return found


def generate(
    db: Database,
    *,
    accounts: int,
    days: float,
    currencies: int,
    interval: float,
    seed: int = 1,
    trade_probability: float = 0.002,
    value: float = 50_000,
    end: datetime | None = None,
    outages: Sequence[tuple[datetime, datetime]] = (),
    batch_rows: int = 100_000,
    echo: bool = True,
) -> dict[str, int]:
    """Fill `db` (migrated, empty) with `days` of polls every `interval` seconds up to
    `end` (default now), none during `outages`; returns row counts. Each poll trades with
    probability `trade_probability` x `currencies`."""
    rng = random.Random(seed)
    names = currency_names(currencies)
    market = Market(names, rng, interval)
    steps = int(days * 86400 / interval)
    end = end or datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=days)
    account_ids = [writes.account_id(db, f"acct{n:04d}") for n in range(accounts)]
    # Exchanges keep each currency to a fixed number of decimals (CoinW's countPrecision).
    places = {name: Decimal(1).scaleb(-rng.choice((2, 4, 6, 8))) for name in names}
    places["USDT"] = Decimal("0.00000001")
    holders = [Account(names, places, market.prices, value, rng) for _ in account_ids]
    last: list[dict[str, Decimal]] = [{} for _ in account_ids]
    counts = {"snapshots": 0, "balances": 0, "balance_changes": 0}
    snapshots: list[tuple[object, ...]] = []
    balances: list[tuple[object, ...]] = []
    changes: list[tuple[object, ...]] = []
    snapshot_id = 0
    began = time.perf_counter()

    def flush() -> None:
        with bulk.bulk(db) as writer:
            writer.insert("snapshots", SNAPSHOT_COLUMNS, snapshots)
            writer.insert("balances", BALANCE_COLUMNS, balances)
            writer.insert("balance_changes", CHANGE_COLUMNS, changes)
        counts["snapshots"] += len(snapshots)
        counts["balances"] += len(balances)
        counts["balance_changes"] += len(changes)
        snapshots.clear()
        balances.clear()
        changes.clear()

    for step in range(steps):
        taken_at = start + timedelta(seconds=step * interval)
        prices = market.step()
        for holder in holders:
            if step and rng.random() < trade_probability * currencies:
                holder.trade(prices)
        if any(down <= taken_at < up for down, up in outages):
            continue  # the recorder was down: the market and the trading went on
        stored_at = db.dialect.storage_time(taken_at)
        price_texts = {name: amounts.to_text(price) for name, price in prices.items()}
        for index, account_id in enumerate(account_ids):
            snapshot_id += 1
            held = holders[index].held
            if held != last[index]:
                for name, old, new, delta in changes_between(last[index], held):
                    changes.append((account_id, snapshot_id, name, old, new, delta, stored_at))
                last[index] = dict(held)
            total = Decimal(0)
            for name in sorted(held):
                worth = amounts.multiply(held[name], prices[name])
                total = amounts.add(total, worth)
                balances.append(
                    (
                        snapshot_id,
                        name,
                        amounts.to_text(held[name]),
                        price_texts[name],
                        amounts.to_text(worth),
                    )
                )
            snapshots.append((snapshot_id, account_id, stored_at, amounts.to_text(total), 0))
        if len(balances) >= batch_rows:
            flush()
            if echo:
                print(
                    f"\r{(step + 1) / steps:6.1%}  {counts['balances']:>12,} balance rows",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
    flush()
    bulk.resync_ids(db)
    if echo:
        seconds = time.perf_counter() - began
        print(
            f"\rwrote {counts['balances']:,} balance rows in {seconds:.0f} s "
            f"({counts['balances'] / seconds:,.0f} rows/s)",
            file=sys.stderr,
        )
    maintenance.analyze(db)
    return counts


def random_outages(
    rng: random.Random, count: int, end: datetime, days: float
) -> list[tuple[datetime, datetime]]:
    """`count` stretches of 1 to 10 days without snapshots, inside the history."""
    found = []
    for _ in range(count):
        length = timedelta(days=rng.uniform(1, 10))
        down = end - timedelta(days=days) + (timedelta(days=days) - length) * rng.random()
        found.append((down, down + length))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database", default="sqlite:///history.db")
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--currencies", type=int, default=20)
    parser.add_argument("--interval", type=float, default=60)
    parser.add_argument("--value", type=float, default=50_000, help="USDT per account at first")
    parser.add_argument("--outages", type=int, default=0, help="stretches without snapshots")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    db = Database(args.database)
    migrate.ensure_schema(db)
    if status.count_rows(db)["snapshots"]:
        raise SystemExit(f"{db.display_url} already holds snapshots; use an empty database.")
    end = datetime.now(UTC).replace(microsecond=0)
    generate(
        db,
        accounts=args.accounts,
        days=args.days,
        currencies=args.currencies,
        interval=args.interval,
        seed=args.seed,
        value=args.value,
        end=end,
        outages=random_outages(random.Random(args.seed), args.outages, end, args.days),
    )
    db.close()


if __name__ == "__main__":
    main()
