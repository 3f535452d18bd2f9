"""Write a realistic synthetic history through the recorder's bulk path.

    python benchmarks/make_history.py --database sqlite:///year.db \\
        --accounts 1 --days 365 --currencies 20 --interval 60

Each account holds `--currencies` currencies; every poll, each holding changes with a small
probability (a trade), prices drift every poll, and values are amount x price, exactly as
the recorder stores them. Snapshots, balances, changes, totals: everything a real year of
polling would leave, written in big transactions (minutes for a year of minute data).
"""

from __future__ import annotations

import argparse
import decimal
import random
import sys
import time
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
START_PRICES = {"BTC": "96903.7", "ETH": "3391.25", "USDT": "1", "CWT": "0.0124"}
# The tables' leading columns (see recorder.store.copy); recorded_by, available and
# on_orders stay NULL, as for a recorder polling returnBalances; change ids are generated.
SNAPSHOT_COLUMNS = transfer.SNAPSHOT_COLUMNS[:5]
BALANCE_COLUMNS = transfer.BALANCE_COLUMNS[:5]
CHANGE_COLUMNS = transfer.CHANGE_COLUMNS[1:]


def currency_names(count: int) -> list[str]:
    names = CURRENCY_NAMES[:count]
    names += [f"C{n:03d}" for n in range(count - len(names))]
    return names


class Market:
    """Prices that drift a little every poll, with 5-6 significant digits like CoinW's."""

    def __init__(self, names: list[str], rng: random.Random) -> None:
        self.rng = rng
        self.prices = {
            name: Decimal(START_PRICES.get(name, f"{rng.uniform(0.01, 500):.4g}")) for name in names
        }

    def step(self) -> dict[str, Decimal]:
        for name, price in self.prices.items():
            if name != "USDT":
                moved = price * Decimal(str(round(self.rng.gauss(1, 0.001), 5)))
                self.prices[name] = Decimal(f"{moved:.6g}")
        return self.prices


def generate(
    db: Database,
    *,
    accounts: int,
    days: float,
    currencies: int,
    interval: float,
    seed: int = 1,
    trade_probability: float = 0.002,
    batch_rows: int = 100_000,
    echo: bool = True,
) -> dict[str, int]:
    """Fill `db` (migrated, empty) with the history; returns row counts."""
    rng = random.Random(seed)
    names = currency_names(currencies)
    market = Market(names, rng)
    steps = int(days * 86400 / interval)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days)
    account_ids = [writes.account_id(db, f"acct{n:04d}") for n in range(accounts)]
    # Exchanges keep each currency to a fixed number of decimals (CoinW's countPrecision).
    places = {name: Decimal(1).scaleb(-rng.choice((2, 4, 6, 8))) for name in names}
    holdings = [
        {
            name: Decimal(f"{rng.uniform(0.01, 1000):.8f}").quantize(places[name]).normalize()
            for name in names
        }
        for _ in account_ids
    ]
    counts = {"snapshots": 0, "balances": 0, "balance_changes": 0}
    snapshots: list[tuple[object, ...]] = []
    balances: list[tuple[object, ...]] = []
    changes: list[tuple[object, ...]] = []
    snapshot_id = 0
    began = time.perf_counter()
    context = decimal.Context(prec=60)

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
        stored_at = db.dialect.storage_time(taken_at)
        prices = market.step()
        price_texts = {name: amounts.to_text(price) for name, price in prices.items()}
        for index, account_id in enumerate(account_ids):
            snapshot_id += 1
            held = holdings[index]
            if step and rng.random() < trade_probability * currencies:
                name = rng.choice(names)
                old = held[name]
                new = (
                    (old * Decimal(str(round(rng.uniform(0.5, 1.5), 4))))
                    .quantize(places[name], context=context)
                    .normalize()
                )
                held[name] = new
                changes.append(
                    (
                        account_id,
                        snapshot_id,
                        name,
                        amounts.to_text(old),
                        amounts.to_text(new),
                        amounts.to_text(new - old),
                        stored_at,
                    )
                )
            elif not step:
                for name, amount in held.items():
                    text = amounts.to_text(amount)
                    changes.append((account_id, snapshot_id, name, None, text, text, stored_at))
            total = Decimal(0)
            for name, amount in held.items():
                value = context.multiply(amount, prices[name])
                total = context.add(total, value)
                balances.append(
                    (
                        snapshot_id,
                        name,
                        amounts.to_text(amount),
                        price_texts[name],
                        amounts.to_text(value),
                    )
                )
            snapshots.append((snapshot_id, account_id, stored_at, amounts.to_text(total), 0))
        if len(balances) >= batch_rows:
            flush()
            if echo and step % 20 == 0:
                done = (step + 1) / steps
                print(
                    f"\r{done:6.1%}  {counts['balances']:>12,} balance rows",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite:///history.db")
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--currencies", type=int, default=20)
    parser.add_argument("--interval", type=float, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    db = Database(args.database)
    migrate.ensure_schema(db)
    if status.count_rows(db)["snapshots"]:
        raise SystemExit(f"{db.display_url} already holds snapshots; use an empty database.")
    generate(
        db,
        accounts=args.accounts,
        days=args.days,
        currencies=args.currencies,
        interval=args.interval,
        seed=args.seed,
    )
    db.close()


if __name__ == "__main__":
    main()
